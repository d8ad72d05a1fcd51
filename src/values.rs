//! Pure parsers and formatters of configuration values: durations, sizes, counts, ports, hosts,
//! http URLs. Errors are the reason part of a configuration message ("must be …").
//!
//! Owns: the value grammar shared by every subcommand's settings and the bucket URL's options.
//! Does not own: where values come from (the binary's layering) or what they configure.

use std::net::IpAddr;
use std::time::Duration;

/// Parses a duration: a decimal number with an optional unit (`ns`, `us`, `ms`, `s`, `m`, `h`);
/// a bare number is in `bare_unit`. `100`, `100ms`, `0.1s` with a millisecond bare unit are all
/// 100 ms. Exact: no floating point is involved.
pub fn parse_duration(s: &str, bare_unit: Duration) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let unit_nanos: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" => bare_unit.as_nanos(),
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" | "sec" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use a number with ms, s, m or h, such as 250ms"
            ));
        }
    };
    let nanos = scale_decimal(number, unit_nanos).ok_or_else(|| {
        "must be a number with an optional unit, such as 250ms or 0.25s".to_owned()
    })?;
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| "too large".to_owned())?;
    let sub = u32::try_from(nanos % 1_000_000_000).map_err(|_| "too large".to_owned())?;
    Ok(Duration::new(secs, sub))
}

/// Parses a byte size: a decimal number with an optional unit: none or `B` (bytes), `KB`/`MB`/`GB`
/// (powers of 1000), `KiB`/`MiB`/`GiB` and `K`/`M`/`G` (powers of 1024); case-insensitive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let multiplier: u128 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}: use bytes or KiB, MiB, GiB, KB, MB, GB"
            ));
        }
    };
    let bytes = scale_decimal(number, multiplier)
        .ok_or_else(|| "must be a size such as 1048576, 512KiB or 1MiB".to_owned())?;
    u64::try_from(bytes).map_err(|_| "too large".to_owned())
}

/// `number` (digits, optional fraction) times `unit`, exactly, rounded down.
fn scale_decimal(number: &str, unit: u128) -> Option<u128> {
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    if !int.chars().all(|c| c.is_ascii_digit())
        || !frac.chars().all(|c| c.is_ascii_digit())
        || frac.len() > 18
    {
        return None;
    }
    let int_value: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let mut total = int_value.checked_mul(unit)?;
    if !frac.is_empty() {
        let frac_value: u128 = frac.parse().ok()?;
        let scale = 10u128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        total = total.checked_add(frac_value.checked_mul(unit)? / scale)?;
    }
    Some(total)
}

pub fn parse_size_in(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let bytes = parse_size(s)?;
    let bytes = usize::try_from(bytes).map_err(|_| "too large".to_owned())?;
    if bytes < min || bytes > max {
        return Err(if max == usize::MAX {
            format!("must be at least {}", format_size(min))
        } else {
            format!(
                "must be between {} and {}",
                format_size(min),
                format_size(max)
            )
        });
    }
    Ok(bytes)
}

pub fn parse_count(s: &str, min: usize, max: usize) -> Result<usize, String> {
    let n: usize = s
        .replace('_', "")
        .parse()
        .map_err(|_| "must be a whole number".to_owned())?;
    if n < min || n > max {
        return Err(if max == usize::MAX {
            format!("must be at least {min}")
        } else {
            format!("must be between {min} and {max}")
        });
    }
    Ok(n)
}

/// A TCP port; 0 means "pick a free port".
pub fn parse_port(s: &str) -> Result<u16, String> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| "must be a number from 0 to 65535 (0 picks a free port)".to_owned())
}

pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("must be true or false".to_owned()),
    }
}

pub fn parse_host(s: &str) -> Result<String, String> {
    if s.parse::<IpAddr>().is_ok() {
        return Ok(s.to_owned());
    }
    let hostname = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if hostname {
        Ok(s.to_owned())
    } else {
        Err("must be an IP address (such as 0.0.0.0) or a host name".to_owned())
    }
}

pub fn parse_http_url(s: &str) -> Result<String, String> {
    match url::Url::parse(s) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("must be an http:// or https:// URL".to_owned()),
    }
}

/// Prints a duration the way users write it: `250ms`, `60s`, `1.5s`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) && d < Duration::from_secs(10) {
        format!("{}ms", d.as_millis())
    } else if d.as_nanos().is_multiple_of(1_000) && d < Duration::from_millis(1) {
        format!("{}us", d.as_micros())
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

/// Prints a size with the largest binary unit that divides it exactly.
pub fn format_size(bytes: usize) -> String {
    const UNITS: [(usize, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{}{name}", bytes / unit);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ms = Duration::from_millis(1);
        assert_eq!(parse_duration("100", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("100ms", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0.1s", ms), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration(".25s", ms), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5 s", ms), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m", ms), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h", ms), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("10us", ms), Ok(Duration::from_micros(10)));
        assert_eq!(
            parse_duration("60", Duration::from_secs(1)),
            Ok(Duration::from_secs(60))
        );
        for bad in ["", "ms", "1.2.3s", "-1s", "1d", "1e3"] {
            assert!(parse_duration(bad, ms).is_err(), "{bad}");
        }
        assert_eq!(format_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_duration(Duration::from_secs(60)), "60s");
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1 << 20));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("1mib"), Ok(1 << 20));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1MB"), Ok(1_000_000));
        assert_eq!(parse_size("1.5KiB"), Ok(1536));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("10 B"), Ok(10));
        for bad in ["", "MiB", "1XB", "-1", "1,000"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(1 << 20), "1MiB");
        assert_eq!(format_size(1000), "1000B");
    }
}
