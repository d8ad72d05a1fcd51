//! Pure pieces of publish evaluation shared by store implementations: header value parsing as
//! nats-server does it and the discard-new limit decision.
//!
//! Owns: `Nats-TTL` and `Nats-Rollup` parsing, the order-independent limit checks. Does not own:
//! reading or writing state.

use infinistream_api::jetstream::{ApiError, DiscardPolicy, StreamConfig};

/// A parsed `Nats-TTL`: seconds (> 0), -1 for never, 0 for none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ttl {
    None,
    Seconds(i64),
    Never,
    Invalid,
}

impl Ttl {
    /// nats-server's `parseMessageTTL`: `never`, a Go duration of at least 1s, or integer seconds.
    pub fn parse(raw: Option<&str>) -> Self {
        let Some(raw) = raw else {
            return Self::None;
        };
        if raw.is_empty() {
            return Self::None;
        }
        if raw.eq_ignore_ascii_case("never") {
            return Self::Never;
        }
        if let Some(nanos) = parse_go_duration(raw) {
            if nanos < 1_000_000_000 {
                return Self::Invalid;
            }
            return Self::Seconds(nanos / 1_000_000_000);
        }
        match raw.parse::<i64>() {
            Ok(0) => Self::None,
            Ok(n) if n > 0 => Self::Seconds(n),
            _ => Self::Invalid,
        }
    }

    /// The value nats-server compares with 0 before it checks validity (errors read as 0).
    pub fn raw_value(self) -> i64 {
        match self {
            Self::Seconds(s) => s,
            Self::Never => -1,
            Self::None | Self::Invalid => 0,
        }
    }
}

/// Go's `time.ParseDuration` for the units it knows; None when it would fail (including a bare
/// number without unit other than "0").
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_end == 0 {
            return None;
        }
        let value: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let unit = &rest[..unit_end];
        rest = &rest[unit_end..];
        let scale = match unit {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let n = total as i64;
    Some(if neg { -n } else { n })
}

/// A parsed `Nats-Rollup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollup {
    Subject,
    All,
}

/// nats-server's rollup checks: not permitted unless `allow_rollup_hdrs` and purges are allowed,
/// and only `sub` / `all` (any case).
pub fn parse_rollup(raw: Option<&str>, cfg: &StreamConfig) -> Result<Option<Rollup>, ApiError> {
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if !cfg.allow_rollup_hdrs || cfg.deny_purge {
        return Err(ApiError::stream_rollup_failed("rollup not permitted"));
    }
    let lower = raw.to_ascii_lowercase();
    match lower.as_str() {
        "sub" => Ok(Some(Rollup::Subject)),
        "all" => Ok(Some(Rollup::All)),
        _ => Err(ApiError::stream_rollup_failed(format!(
            "rollup value invalid: {lower:?}"
        ))),
    }
}

/// Inputs of the file store's discard-new check (`storeRawMsg`).
pub struct DiscardNewCheck {
    pub msgs: u64,
    pub bytes: u64,
    /// Messages already stored on this subject.
    pub subject_msgs: u64,
    /// Stored size of the oldest message on this subject (0 when none).
    pub subject_first_size: u64,
    /// Stored size of the new message.
    pub new_size: u64,
    pub has_rollup: bool,
}

/// The file store's refusal for a discard-new stream, as the PubAck error it becomes.
pub fn discard_new_refusal(cfg: &StreamConfig, c: &DiscardNewCheck) -> Option<ApiError> {
    if cfg.discard != DiscardPolicy::New {
        return None;
    }
    let mut replaces_oldest_of_subject = false;
    if cfg.max_msgs_per_subject > 0 && c.subject_msgs + 1 > cfg.max_msgs_per_subject as u64 {
        if cfg.discard_new_per_subject && !c.has_rollup {
            return Some(ApiError::stream_store_failed(
                "maximum messages per subject exceeded",
            ));
        }
        replaces_oldest_of_subject = true;
    }
    if cfg.max_msgs > 0 && c.msgs >= cfg.max_msgs as u64 && !replaces_oldest_of_subject {
        return Some(ApiError::stream_store_failed("maximum messages exceeded"));
    }
    if cfg.max_bytes > 0
        && c.bytes + c.new_size > cfg.max_bytes as u64
        && (!replaces_oldest_of_subject || c.subject_first_size < c.new_size)
    {
        return Some(ApiError::stream_store_failed("maximum bytes exceeded"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_parsing() {
        assert_eq!(Ttl::parse(None), Ttl::None);
        assert_eq!(Ttl::parse(Some("never")), Ttl::Never);
        assert_eq!(Ttl::parse(Some("NEVER")), Ttl::Never);
        assert_eq!(Ttl::parse(Some("30s")), Ttl::Seconds(30));
        assert_eq!(Ttl::parse(Some("1m30s")), Ttl::Seconds(90));
        assert_eq!(Ttl::parse(Some("60")), Ttl::Seconds(60));
        assert_eq!(Ttl::parse(Some("500ms")), Ttl::Invalid);
        assert_eq!(Ttl::parse(Some("abc")), Ttl::Invalid);
        assert_eq!(Ttl::parse(Some("-5")), Ttl::Invalid);
    }
}
