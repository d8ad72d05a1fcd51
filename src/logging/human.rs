//! Log lines for people: `06:08:25.338 WARN push consumer lease failed error=… (… 9 more in the
//! last 1 s)`. Time of day in UTC, the level (coloured on a terminal), the message, the fields;
//! the target only for events that are not InfiniStream's own.
//!
//! Owns the text layout. Does not own which events are written (the filter, `quiet`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::quiet::{Quiet, Verdict};

/// The text event format, with repeated warnings rate-limited.
#[derive(Debug, Clone, Default)]
pub struct HumanFormat {
    pub quiet: Quiet,
}

impl<S, N> FormatEvent<S, N> for HumanFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let verdict = self.quiet.judge(event);
        if verdict == Verdict::Drop {
            return Ok(());
        }
        let meta = event.metadata();
        let ansi = writer.has_ansi_escapes();
        write!(writer, "{} ", time_of_day(SystemTime::now()))?;
        let (colour, name) = level_style(meta.level());
        if ansi {
            write!(writer, "\x1b[{colour}m{name}\x1b[0m ")?;
        } else {
            write!(writer, "{name} ")?;
        }
        if !meta.target().starts_with("infinistream") {
            write!(writer, "{}: ", meta.target())?;
        }
        ctx.format_fields(writer.by_ref(), event)?;
        if let Some(note) = verdict.note() {
            write!(writer, " ({note})")?;
        }
        writeln!(writer)
    }
}

fn level_style(level: &Level) -> (&'static str, &'static str) {
    match *level {
        Level::ERROR => ("1;31", "ERROR"),
        Level::WARN => ("33", "WARN "),
        Level::INFO => ("32", "INFO "),
        Level::DEBUG => ("34", "DEBUG"),
        Level::TRACE => ("35", "TRACE"),
    }
}

/// `HH:MM:SS.mmm` in UTC (the date is in every JSON line; people at a terminal know the day).
pub fn time_of_day(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn time_of_day_in_utc() {
        let t = UNIX_EPOCH + Duration::from_millis(((6 * 60 + 8) * 60 + 25) * 1000 + 338);
        assert_eq!(time_of_day(t), "06:08:25.338");
        let t = UNIX_EPOCH + Duration::from_secs(86_400 * 365 + 23 * 3600 + 59 * 60 + 59);
        assert_eq!(time_of_day(t), "23:59:59.000");
    }
}
