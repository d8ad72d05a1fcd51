//! Go `time.Time` JSON text as nats-server writes it (RFC 3339 with trailing-zero-trimmed
//! nanoseconds, always UTC, `0001-01-01T00:00:00Z` for the zero time).
//!
//! Owns: conversion between unix nanoseconds (`i64`, 0 = Go's zero time) and that text, plus
//! serde helpers. Does not own: durations (nats-server writes them as integer nanoseconds).

use serde::{Deserialize, Deserializer, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Go's zero `time.Time` as JSON text.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Formats unix nanoseconds like Go's `time.Time.MarshalJSON` on a UTC time; 0 is the zero time.
pub fn format_nanos(nanos: i64) -> String {
    if nanos == 0 {
        return GO_ZERO_TIME.to_string();
    }
    let Ok(t) = OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)) else {
        return GO_ZERO_TIME.to_string();
    };
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let ns = t.nanosecond();
    if ns != 0 {
        let frac = format!("{ns:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses RFC 3339 text into unix nanoseconds; Go's zero time (any time in year 1) gives 0.
pub fn parse_nanos(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    if t.year() <= 1 {
        return Some(0);
    }
    i64::try_from(t.unix_timestamp_nanos()).ok()
}

/// The current time in unix nanoseconds.
pub fn now_nanos() -> i64 {
    let n = OffsetDateTime::now_utc().unix_timestamp_nanos();
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// `#[serde(with = "go_time")]` for an `i64` of unix nanoseconds.
pub mod go_time {
    use super::*;

    pub fn serialize<S: Serializer>(nanos: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_nanos(*nanos))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        match text {
            None => Ok(0),
            Some(t) => parse_nanos(&t)
                .ok_or_else(|| serde::de::Error::custom(format!("invalid time {t:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(format_nanos(0), GO_ZERO_TIME);
        assert_eq!(
            format_nanos(1_700_000_000_000_000_000),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            format_nanos(1_700_000_000_120_000_000),
            "2023-11-14T22:13:20.12Z"
        );
        assert_eq!(
            format_nanos(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
    }

    #[test]
    fn parses_back() {
        assert_eq!(parse_nanos(GO_ZERO_TIME), Some(0));
        assert_eq!(
            parse_nanos("2023-11-14T22:13:20.12Z"),
            Some(1_700_000_000_120_000_000)
        );
    }
}
