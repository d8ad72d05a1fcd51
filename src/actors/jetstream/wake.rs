//! Which waiting consumers an event-feed `Wake` concerns, shared by the pull and push managers.
//!
//! Owns: the rule (a consumer the wake names, or one on a committed stream whose filters match
//! a committed subject; one whose claim is under way is marked to claim again when it ends).
//! Does not own: claiming (each manager's `pump`).

use std::collections::HashMap;

use crate::actors::messages::Wake;

/// (stream, consumer).
pub type Key = (String, String);

/// A consumer a manager may claim for.
pub trait Waitable {
    /// Something waits for messages (a push driver always does).
    fn waits(&self) -> bool;
    fn claiming(&self) -> bool;
    /// The claim under way may have looked too early: claim again when it ends.
    fn wake_after_claim(&mut self);
    /// The consumer's filter subjects as of its last claim (None before the first).
    fn filters(&self) -> Option<&[String]>;
}

/// The keys `m` concerns that can claim now; those claiming are marked to claim again.
pub fn to_claim<V: Waitable>(items: &mut HashMap<Key, V>, m: &Wake) -> Vec<Key> {
    let mut keys = Vec::new();
    for (k, v) in items.iter_mut() {
        if !v.waits() || !m.concerns(k, v.filters()) {
            continue;
        }
        if v.claiming() {
            v.wake_after_claim();
        } else {
            keys.push(k.clone());
        }
    }
    keys
}
