//! Panic containment for actors that handle client input.
//!
//! Owns: turning a panic inside one handler (or one of its futures) into a logged, counted
//! failure of that one request, so the actor keeps serving everyone else. actix does not restart
//! a panicked actor (its mailbox just closes), and a dead Router or JsApi would silently stop the
//! whole agent; every such handler therefore runs under [`catch`] or [`catch_future`].
//! Does not own: what the caller answers instead (each caller sends its own error answer), nor
//! the SequenceClient and PeerCache restarts (the supervisors').

use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures::FutureExt;

use crate::actors::ops::metrics;

fn contained(actor: &'static str) {
    // The panic message itself was already printed by the panic hook.
    tracing::error!(
        actor,
        "handler panicked; the request failed and the actor goes on"
    );
    metrics::ACTOR_RESTARTS.with_label_values(&[actor]).inc();
}

/// Runs `f`; a panic is logged, counted in `infinistream_actor_restarts_total{actor}` and
/// returned as None. The handler's state must stay usable after a panic half way: callers only
/// wrap code whose partial effects are harmless (routing one message, parsing one request).
pub fn catch<R>(actor: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            contained(actor);
            None
        }
    }
}

/// [`catch`] for a future: a panic while it is polled ends it with None.
pub async fn catch_future<F: Future>(actor: &'static str, fut: F) -> Option<F::Output> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(r) => Some(r),
        Err(_) => {
            contained(actor);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_none_and_is_counted() {
        let before = metrics::ACTOR_RESTARTS
            .with_label_values(&["guard_test"])
            .get();
        let r: Option<u8> = catch("guard_test", || panic!("boom"));
        assert_eq!(r, None);
        assert_eq!(catch("guard_test", || 7), Some(7));
        let after = metrics::ACTOR_RESTARTS
            .with_label_values(&["guard_test"])
            .get();
        assert_eq!(after, before + 1);
    }

    #[actix_rt::test]
    async fn a_panicking_future_becomes_none() {
        let r: Option<u8> = catch_future("guard_test_future", async { panic!("boom") }).await;
        assert_eq!(r, None);
        assert_eq!(
            catch_future("guard_test_future", async { 3 }).await,
            Some(3)
        );
    }
}
