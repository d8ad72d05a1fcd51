//! Rate limiting of repeated identical warnings: a control plane that is down must not turn into
//! fourteen WARN lines a second. The first occurrence of a warning is written at once; identical
//! ones after it are counted, not written, for a quiet interval that doubles (1 s, 2 s, … 60 s)
//! while they keep coming. The next one written carries the count ("… 140 more in the last 10 s").
//!
//! Owns: what "identical" means (same callsite, same field values), the backoff schedule, and the
//! bounded table of recent warnings. Does not own: formatting (`human`, `mod.rs`) or the clock
//! (callers pass `now`, so tests run the schedule in accelerated time).
//!
//! The table is shared by every thread that logs, behind one mutex: logging, like the metrics
//! counters, is process infrastructure outside the actor graph (see docs/architecture.md). Only
//! WARN and ERROR events take the lock.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level};

/// The first quiet interval after a repeated warning.
pub const FIRST_INTERVAL: Duration = Duration::from_secs(1);
/// The longest quiet interval: a warning that never stops is still written once a minute.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Entries kept at most; past it, entries not seen for a while are forgotten.
const MAX_ENTRIES: usize = 4096;

/// What to do with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Write it; `suppressed` identical events were dropped in the `over` before it.
    Write { suppressed: u64, over: Duration },
    /// Drop it (counted).
    Drop,
}

impl Verdict {
    /// The suffix a written line carries when it stands for dropped ones.
    pub fn note(&self) -> Option<String> {
        match *self {
            Verdict::Write { suppressed, over } if suppressed > 0 => Some(format!(
                "… {suppressed} more in the last {}",
                human_seconds(over)
            )),
            _ => None,
        }
    }
}

/// `10 s`, `1.5 s`: whole seconds above ten, one decimal below.
fn human_seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 10.0 || (s.fract() * 10.0).round() == 0.0 {
        format!("{} s", s.round() as u64)
    } else {
        format!("{s:.1} s")
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When the last written occurrence was written.
    written_at: Instant,
    /// When the next occurrence may be written.
    quiet_until: Instant,
    interval: Duration,
    suppressed: u64,
    last_seen: Instant,
}

/// The backoff table (pure: time comes in as an argument).
#[derive(Debug, Default)]
pub struct Limiter {
    entries: HashMap<u64, Entry>,
}

impl Limiter {
    /// Decides for one occurrence of the warning `key` at `now`.
    pub fn admit(&mut self, key: u64, now: Instant) -> Verdict {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
            self.forget_before(now.checked_sub(MAX_INTERVAL * 2));
        }
        let Some(entry) = self.entries.get_mut(&key) else {
            self.entries.insert(
                key,
                Entry {
                    written_at: now,
                    quiet_until: now + FIRST_INTERVAL,
                    interval: FIRST_INTERVAL,
                    suppressed: 0,
                    last_seen: now,
                },
            );
            return Verdict::Write {
                suppressed: 0,
                over: Duration::ZERO,
            };
        };
        // A warning that stopped for a long while starts again from the short interval.
        let idle = now.saturating_duration_since(entry.last_seen);
        entry.last_seen = now;
        if now < entry.quiet_until {
            entry.suppressed += 1;
            return Verdict::Drop;
        }
        let suppressed = entry.suppressed;
        let over = now.saturating_duration_since(entry.written_at);
        // Still coming as often as the interval: back off further; after a pause, start over.
        entry.interval = if idle <= entry.interval {
            (entry.interval * 2).min(MAX_INTERVAL)
        } else {
            FIRST_INTERVAL
        };
        entry.written_at = now;
        entry.quiet_until = now + entry.interval;
        entry.suppressed = 0;
        Verdict::Write { suppressed, over }
    }

    fn forget_before(&mut self, cutoff: Option<Instant>) {
        match cutoff {
            Some(cutoff) => self.entries.retain(|_, e| e.last_seen >= cutoff),
            None => self.entries.clear(),
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

type Clock = Arc<dyn Fn() -> Instant + Send + Sync>;

/// The process's limiter, shared by the formatters.
#[derive(Clone)]
pub struct Quiet {
    limiter: Arc<Mutex<Limiter>>,
    clock: Clock,
}

impl Default for Quiet {
    fn default() -> Self {
        Self::with_clock(Arc::new(Instant::now))
    }
}

impl std::fmt::Debug for Quiet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quiet").finish_non_exhaustive()
    }
}

impl Quiet {
    /// A limiter reading time from `clock` (tests advance it by hand).
    pub fn with_clock(clock: Clock) -> Self {
        Self {
            limiter: Arc::default(),
            clock,
        }
    }

    /// The verdict for `event`: events below WARN are always written.
    pub fn judge(&self, event: &Event<'_>) -> Verdict {
        let meta = event.metadata();
        if *meta.level() > Level::WARN {
            return Verdict::Write {
                suppressed: 0,
                over: Duration::ZERO,
            };
        }
        let key = event_key(event);
        // A poisoned lock only means a thread panicked while logging: keep logging.
        let now = (self.clock)();
        let mut limiter = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        limiter.admit(key, now)
    }
}

/// Identity of an event: its callsite and every field value.
fn event_key(event: &Event<'_>) -> u64 {
    struct Fields(String);
    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            let _ = write!(self.0, "{}={:?};", field.name(), value);
        }
    }
    let mut fields = Fields(String::new());
    event.record(&mut fields);
    let mut hasher = DefaultHasher::new();
    event.metadata().callsite().hash(&mut hasher);
    fields.0.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(v: Verdict) -> Option<u64> {
        match v {
            Verdict::Write { suppressed, .. } => Some(suppressed),
            Verdict::Drop => None,
        }
    }

    /// Fourteen warnings a second for a minute, in accelerated time.
    #[test]
    fn a_steady_warning_backs_off_and_counts() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        let mut lines = Vec::new();
        let step = Duration::from_millis(1000 / 14);
        let mut total = 0u64;
        for i in 0..(14 * 60) {
            let now = start + step * i;
            total += 1;
            if let Some(suppressed) = written(limiter.admit(7, now)) {
                lines.push((now - start, suppressed));
            }
        }
        // Written at about 0, 1, 3, 7, 15, 31 s: six lines instead of 840.
        assert_eq!(lines.len(), 6, "{lines:?}");
        assert_eq!(lines[0].1, 0);
        let gaps: Vec<u64> = lines
            .windows(2)
            .map(|w| (w[1].0 - w[0].0).as_secs_f64().round() as u64)
            .collect();
        assert_eq!(gaps, vec![1, 2, 4, 8, 16], "{lines:?}");
        // Every occurrence is either written or counted in a later line (or still pending).
        let counted: u64 = lines.iter().map(|(_, s)| s + 1).sum();
        assert!(
            counted <= total && total - counted < 14 * 32,
            "{counted} of {total}"
        );
    }

    #[test]
    fn the_interval_stops_growing_at_a_minute() {
        let mut limiter = Limiter::default();
        let start = Instant::now();
        let mut last: Option<Instant> = None;
        let mut gaps = Vec::new();
        for i in 0..(60 * 20) {
            let now = start + Duration::from_secs(i);
            if written(limiter.admit(1, now)).is_some() {
                if let Some(prev) = last {
                    gaps.push((now - prev).as_secs());
                }
                last = Some(now);
            }
        }
        assert_eq!(gaps.iter().max(), Some(&60), "{gaps:?}");
        assert!(gaps.ends_with(&[60, 60, 60]), "{gaps:?}");
    }

    #[test]
    fn distinct_warnings_are_independent_and_a_pause_resets() {
        let mut limiter = Limiter::default();
        let t = Instant::now();
        assert_eq!(written(limiter.admit(1, t)), Some(0));
        assert_eq!(written(limiter.admit(2, t)), Some(0));
        assert_eq!(
            written(limiter.admit(1, t + Duration::from_millis(10))),
            None
        );
        assert_eq!(
            written(limiter.admit(1, t + Duration::from_secs(1))),
            Some(1)
        );
        // Quiet for ten minutes: written again at once and the interval is back to 1 s.
        let later = t + Duration::from_secs(600);
        assert_eq!(written(limiter.admit(1, later)), Some(0));
        assert_eq!(
            written(limiter.admit(1, later + Duration::from_millis(500))),
            None
        );
        assert_eq!(
            written(limiter.admit(1, later + Duration::from_millis(1001))),
            Some(1)
        );
    }

    #[test]
    fn the_table_is_bounded() {
        let mut limiter = Limiter::default();
        let t = Instant::now();
        for key in 0..(MAX_ENTRIES as u64 * 3) {
            limiter.admit(key, t + Duration::from_millis(key));
        }
        assert!(limiter.len() <= MAX_ENTRIES, "{}", limiter.len());
    }

    #[test]
    fn notes() {
        let v = Verdict::Write {
            suppressed: 140,
            over: Duration::from_millis(10_200),
        };
        assert_eq!(v.note().as_deref(), Some("… 140 more in the last 10 s"));
        let v = Verdict::Write {
            suppressed: 3,
            over: Duration::from_millis(1_500),
        };
        assert_eq!(v.note().as_deref(), Some("… 3 more in the last 1.5 s"));
        let v = Verdict::Write {
            suppressed: 0,
            over: Duration::ZERO,
        };
        assert_eq!(v.note(), None);
    }
}
