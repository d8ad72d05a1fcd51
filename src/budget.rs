//! The agent's in-flight budget: publishes accepted from clients but not yet finished (routed, or
//! for JetStream, acked or refused). Connections acquire before they parse the next frame, so when
//! the budget is spent they stop reading their sockets and TCP pushes back on the publishers.
//!
//! This is a counter, not state: like a metrics counter it is shared (an `Arc<Semaphore>`), and
//! nothing else about a publish lives here. Permits travel with the message and are returned when
//! it is dropped, whatever path it took.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

#[derive(Debug, Clone)]
pub struct InflightBudget {
    bytes: Arc<Semaphore>,
    msgs: Arc<Semaphore>,
    max_bytes: u32,
}

/// A share of the budget; returned on drop.
#[derive(Debug)]
pub struct BudgetPermit {
    _bytes: OwnedSemaphorePermit,
    _msgs: OwnedSemaphorePermit,
}

impl InflightBudget {
    pub fn new(max_bytes: usize, max_msgs: usize) -> Self {
        // Semaphore permits are u32 per acquire; one message never needs more than the whole budget.
        let max_bytes = max_bytes.clamp(1, u32::MAX as usize) as u32;
        Self {
            bytes: Arc::new(Semaphore::new(max_bytes as usize)),
            msgs: Arc::new(Semaphore::new(max_msgs.max(1))),
            max_bytes,
        }
    }

    fn cost(&self, bytes: usize) -> u32 {
        (bytes.max(1).min(self.max_bytes as usize)) as u32
    }

    /// Takes a share without waiting, if there is one.
    pub fn try_acquire(&self, bytes: usize) -> Option<BudgetPermit> {
        let msgs = self.msgs.clone().try_acquire_owned().ok()?;
        let bytes = self
            .bytes
            .clone()
            .try_acquire_many_owned(self.cost(bytes))
            .ok()?;
        Some(BudgetPermit {
            _bytes: bytes,
            _msgs: msgs,
        })
    }

    /// Waits for a share. Never fails: the semaphores are never closed.
    pub async fn acquire(&self, bytes: usize) -> BudgetPermit {
        let cost = self.cost(bytes);
        loop {
            let msgs = self.msgs.clone().acquire_owned().await;
            let bytes = self.bytes.clone().acquire_many_owned(cost).await;
            if let (Ok(m), Ok(b)) = (msgs, bytes) {
                return BudgetPermit {
                    _bytes: b,
                    _msgs: m,
                };
            }
        }
    }

    pub fn available_bytes(&self) -> usize {
        self.bytes.available_permits()
    }

    pub fn available_msgs(&self) -> usize {
        self.msgs.available_permits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_return_on_drop() {
        let b = InflightBudget::new(100, 2);
        let p1 = b.try_acquire(60).expect("room");
        assert!(b.try_acquire(60).is_none(), "bytes exhausted");
        let p2 = b.try_acquire(10).expect("room");
        assert!(b.try_acquire(1).is_none(), "messages exhausted");
        drop(p1);
        drop(p2);
        assert_eq!(b.available_bytes(), 100);
        assert_eq!(b.available_msgs(), 2);
        let _big = b.acquire(1_000).await;
        assert_eq!(
            b.available_bytes(),
            0,
            "an oversized message takes the whole budget"
        );
    }
}
