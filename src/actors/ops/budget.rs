//! The agent's in-flight budget: publishes accepted from clients but not yet finished (routed, or
//! for JetStream, acked or refused). Connections acquire before they parse the next frame, so when
//! the budget is spent they stop reading their sockets and TCP pushes back on the publishers.
//!
//! This is a counter, not state: like a metrics counter it is shared (two atomic counters, bytes
//! and messages, and a `Notify` for connections waiting for room), and nothing else about a
//! publish lives here. Permits travel with the message and are returned when it is dropped,
//! whatever path it took. Returning one is two atomic additions (every message of the hot path
//! returns one); waiters are woken only when there are any, and all of them retry (not FIFO: a
//! connection waits for room, not for its turn).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
struct Counters {
    /// Bytes and messages still available.
    bytes: AtomicUsize,
    msgs: AtomicUsize,
    /// Connections waiting in `acquire`.
    waiting: AtomicUsize,
    room: Notify,
}

#[derive(Debug, Clone)]
pub struct InflightBudget {
    counters: Arc<Counters>,
    max_bytes: usize,
}

/// One publish's share: `bytes` and one message, returned on drop.
#[derive(Debug)]
pub struct BudgetPermit {
    counters: Arc<Counters>,
    bytes: usize,
}

impl Drop for BudgetPermit {
    fn drop(&mut self) {
        self.counters.release(self.bytes, 1);
    }
}

impl Counters {
    /// Takes `n` of `counter` if that many are available.
    fn take(counter: &AtomicUsize, n: usize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |have| {
                have.checked_sub(n)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize, msgs: usize) {
        self.bytes.fetch_add(bytes, Ordering::SeqCst);
        self.msgs.fetch_add(msgs, Ordering::SeqCst);
        // A waiter announces itself before it checks for room again, so either it sees what
        // was just returned or it is counted here and woken.
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.room.notify_waiters();
        }
    }
}

/// Counts a connection in `acquire` for as long as it waits, even when its wait is cancelled.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InflightBudget {
    pub fn new(max_bytes: usize, max_msgs: usize) -> Self {
        let max_bytes = max_bytes.clamp(1, u32::MAX as usize);
        Self {
            counters: Arc::new(Counters {
                bytes: AtomicUsize::new(max_bytes),
                msgs: AtomicUsize::new(max_msgs.max(1)),
                waiting: AtomicUsize::new(0),
                room: Notify::new(),
            }),
            max_bytes,
        }
    }

    /// What a message of `bytes` costs: at least 1, at most the whole budget (an oversized
    /// message waits for an empty budget instead of never fitting).
    fn cost(&self, bytes: usize) -> usize {
        bytes.clamp(1, self.max_bytes)
    }

    /// A permit now, or None when the budget is spent.
    pub fn try_acquire(&self, bytes: usize) -> Option<BudgetPermit> {
        let cost = self.cost(bytes);
        let c = &self.counters;
        if !Counters::take(&c.msgs, 1) {
            return None;
        }
        if !Counters::take(&c.bytes, cost) {
            c.release(0, 1);
            return None;
        }
        Some(BudgetPermit {
            counters: c.clone(),
            bytes: cost,
        })
    }

    /// A permit, waiting until there is room.
    pub async fn acquire(&self, bytes: usize) -> BudgetPermit {
        loop {
            if let Some(p) = self.try_acquire(bytes) {
                return p;
            }
            let room = self.counters.room.notified();
            tokio::pin!(room);
            room.as_mut().enable();
            let _counted = Waiting::new(&self.counters.waiting);
            if let Some(p) = self.try_acquire(bytes) {
                return p;
            }
            room.await;
        }
    }

    pub fn available_bytes(&self) -> usize {
        self.counters.bytes.load(Ordering::SeqCst)
    }

    pub fn available_msgs(&self) -> usize {
        self.counters.msgs.load(Ordering::SeqCst)
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

    #[tokio::test]
    async fn a_refused_byte_share_gives_its_message_back() {
        let b = InflightBudget::new(10, 5);
        let _p = b.try_acquire(8).expect("room");
        assert!(b.try_acquire(8).is_none());
        assert_eq!(b.available_msgs(), 4, "the failed try kept no message");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_wake_when_room_returns() {
        let b = InflightBudget::new(10, 1);
        let held = b.try_acquire(10).expect("room");
        let mut waiters = Vec::new();
        for _ in 0..4 {
            let b = b.clone();
            waiters.push(tokio::spawn(async move {
                let p = b.acquire(10).await;
                drop(p);
            }));
        }
        drop(held);
        for w in waiters {
            tokio::time::timeout(std::time::Duration::from_secs(5), w)
                .await
                .expect("every waiter got the budget in turn")
                .expect("waiter ran");
        }
        assert_eq!(b.available_bytes(), 10);
        assert_eq!(b.available_msgs(), 1);
    }
}
