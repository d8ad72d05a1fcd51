//! Process-wide logging setup: one `tracing` subscriber writing JSON lines or lines for people
//! to stdout. Without `--log-format`, people at a terminal get text and everything else JSON.
//! `RUST_LOG` filters; by default InfiniStream's own events from `info` and other crates' (actix,
//! hyper, rustls…) from `warn`. Repeated identical warnings are rate-limited (`quiet`).
//!
//! Owns the subscriber, the [`LogFormat`] choice, the banner layout (`banner`), how an error
//! chain is printed on one line ([`error_chain`]) and the references that tie an error a client
//! is told to its log line ([`reference`]). Does not own what is logged, nor metrics.

mod banner;
mod human;
mod quiet;

use std::error::Error;
use std::fmt;
use std::io::IsTerminal;
use std::str::FromStr;

use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

pub use banner::{Banner, connect_host, url};
use human::HumanFormat;
pub use quiet::{FIRST_INTERVAL, Limiter, MAX_INTERVAL, Quiet, Verdict};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, event fields flattened at the top level (for log pipelines).
    #[default]
    Json,
    /// Lines for people (`HH:MM:SS.mmm LEVEL message key=value`), coloured on a terminal, and a
    /// banner at startup.
    Text,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(LogFormat::Json),
            "text" | "pretty" | "human" => Ok(LogFormat::Text),
            _ => Err("must be json or text".to_owned()),
        }
    }
}

/// The format used: the one asked for, else text on a terminal and JSON elsewhere.
pub fn resolve(asked: Option<LogFormat>, stdout_is_terminal: bool) -> LogFormat {
    match asked {
        Some(format) => format,
        None if stdout_is_terminal => LogFormat::Text,
        None => LogFormat::Json,
    }
}

/// The filter when `RUST_LOG` is unset: other crates' chatter (`starting 2 workers`) is noise
/// to an operator; their warnings are not.
pub const DEFAULT_FILTER: &str = "warn,infinistream=info";

/// The filter from `RUST_LOG`, or [`DEFAULT_FILTER`] when unset or unusable.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

type BoxedSubscriber = Box<dyn Subscriber + Send + Sync + 'static>;

/// JSON lines with repeated warnings rate-limited: a written line that stands for dropped ones
/// carries `suppressed` (how many) and `suppressed_over_ms` (over how long).
struct QuietJson<F> {
    inner: F,
    quiet: Quiet,
}

impl<S, N, F> FormatEvent<S, N> for QuietJson<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        match self.quiet.judge(event) {
            Verdict::Drop => Ok(()),
            Verdict::Write { suppressed, over } if suppressed > 0 => {
                let mut line = String::new();
                self.inner
                    .format_event(ctx, Writer::new(&mut line), event)?;
                let fields = format!(
                    "\"suppressed\":{suppressed},\"suppressed_over_ms\":{},",
                    over.as_millis()
                );
                match line.strip_prefix('{') {
                    Some(rest) => write!(writer, "{{{fields}{rest}"),
                    None => writer.write_str(&line),
                }
            }
            Verdict::Write { .. } => self.inner.format_event(ctx, writer, event),
        }
    }
}

/// The subscriber `init` installs, writing to `writer` (split out so tests can capture output
/// without touching the global subscriber other tests may rely on).
fn build<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
    quiet: Quiet,
) -> BoxedSubscriber
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Json => Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .map_event_format(|inner| QuietJson { inner, quiet })
                .finish(),
        ),
        LogFormat::Text => Box::new(
            builder
                .with_ansi(ansi)
                .event_format(HumanFormat { quiet })
                .finish(),
        ),
    }
}

/// Installs the global subscriber (and the `log` crate bridge) and returns the format in use.
/// Safe to call more than once (tests, embedding): only the first call takes effect.
pub fn init(asked: Option<LogFormat>) -> LogFormat {
    let terminal = std::io::stdout().is_terminal();
    let format = resolve(asked, terminal);
    let subscriber = build(
        format,
        filter(),
        std::io::stdout,
        terminal,
        Quiet::default(),
    );
    // An error only means a subscriber is already installed, which is fine.
    let _ = subscriber.try_init();
    format
}

/// An error and its causes on one line, `outer: cause: root`, each cause once: error types here
/// put their source in their own message, so a cause already in the line is not repeated.
/// A short random reference (8 hex digits) for an error a client is told about: the client's
/// text says what failed and carries it; the log line with the same `reference` field says where
/// (endpoints, object keys, URLs stay out of client errors).
pub fn reference() -> String {
    format!("{:08x}", rand::random::<u32>())
}

pub fn error_chain(err: &(dyn Error + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !text.is_empty() && !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line.replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn parses_formats() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("TEXT".parse(), Ok(LogFormat::Text));
        assert!("xml".parse::<LogFormat>().is_err());
        assert_eq!(LogFormat::default(), LogFormat::Json);
    }

    #[test]
    fn text_on_a_terminal_json_elsewhere_unless_asked() {
        assert_eq!(resolve(None, true), LogFormat::Text);
        assert_eq!(resolve(None, false), LogFormat::Json);
        assert_eq!(resolve(Some(LogFormat::Json), true), LogFormat::Json);
        assert_eq!(resolve(Some(LogFormat::Text), false), LogFormat::Text);
    }

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot listen on 0.0.0.0:4222: {0}")]
        Bind(#[source] std::io::Error),
        #[error("control plane store")]
        Store(#[source] std::io::Error),
    }

    #[test]
    fn error_chains_name_each_cause_once() {
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use");
        assert_eq!(
            error_chain(&Outer::Bind(io())),
            "cannot listen on 0.0.0.0:4222: Address already in use"
        );
        assert_eq!(
            error_chain(&Outer::Store(io())),
            "control plane store: Address already in use"
        );
    }

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("buffer lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, filter: &str, events: impl FnOnce()) -> String {
        capture_with(format, filter, Quiet::default(), events)
    }

    fn capture_with(
        format: LogFormat,
        filter: &str,
        quiet: Quiet,
        events: impl FnOnce(),
    ) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = build(
            format,
            EnvFilter::new(filter),
            move || writer.clone(),
            false,
            quiet,
        );
        tracing::subscriber::with_default(subscriber, events);
        let bytes = buffer.0.lock().expect("buffer lock").clone();
        String::from_utf8(bytes).expect("log lines are UTF-8")
    }

    fn sample() {
        tracing::debug!("filtered out");
        tracing::info!(answer = 42, "logging works");
    }

    #[test]
    fn json_lines_with_flat_fields() {
        let out = capture(LogFormat::Json, "info", sample);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).expect("a JSON line");
        assert_eq!(line["message"], "logging works");
        assert_eq!(line["answer"], 42);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].is_string());
    }

    #[test]
    fn text_lines() {
        let out = capture(LogFormat::Text, "info", sample);
        assert_eq!(out.lines().count(), 1, "{out}");
        let line = out.lines().next().unwrap_or_default();
        assert!(line.contains("INFO  logging works answer=42"), "{out}");
        // Our own events do not repeat the crate name.
        assert!(!line.contains("infinistream"), "{out}");
    }

    #[test]
    fn other_crates_below_warn_are_filtered_by_default() {
        let out = capture(LogFormat::Text, DEFAULT_FILTER, || {
            tracing::info!(target: "actix_server::builder", "starting 2 workers");
            tracing::warn!(target: "actix_server::accept", "accept failed");
            tracing::info!("infinistream event");
        });
        assert!(!out.contains("starting 2 workers"), "{out}");
        assert!(
            out.contains("WARN  actix_server::accept: accept failed"),
            "{out}"
        );
        assert!(out.contains("infinistream event"), "{out}");
    }

    fn warn_storm() {
        for _ in 0..50 {
            tracing::warn!(error = "connection refused", "polling streams failed");
        }
        tracing::warn!(error = "timed out", "polling streams failed");
        tracing::info!("info is never held back");
        tracing::info!("info is never held back");
    }

    #[test]
    fn repeated_warnings_are_written_once_in_text() {
        let out = capture(LogFormat::Text, "info", warn_storm);
        assert_eq!(out.matches("connection refused").count(), 1, "{out}");
        assert_eq!(out.matches("timed out").count(), 1, "{out}");
        assert_eq!(out.matches("info is never held back").count(), 2, "{out}");
    }

    #[test]
    fn repeated_warnings_are_written_once_in_json() {
        let out = capture(LogFormat::Json, "info", warn_storm);
        assert_eq!(out.lines().count(), 4, "{out}");
        for line in out.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
            assert!(v["message"].is_string(), "{line}");
        }
    }

    /// The written line after a quiet interval counts the dropped ones, in both formats.
    #[test]
    fn the_line_after_the_quiet_interval_counts_the_dropped_ones() {
        for format in [LogFormat::Text, LogFormat::Json] {
            let start = std::time::Instant::now();
            let now = Arc::new(Mutex::new(start));
            let clock = now.clone();
            let quiet = Quiet::with_clock(Arc::new(move || *clock.lock().expect("clock lock")));
            // One callsite: identical warnings come from the same line of code.
            let warn = || tracing::warn!(error = "connection refused", "polling streams failed");
            let out = capture_with(format, "info", quiet, || {
                for _ in 0..141 {
                    warn();
                }
                *now.lock().expect("clock lock") = start + std::time::Duration::from_secs(10);
                warn();
            });
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "{out}");
            match format {
                LogFormat::Text => assert!(
                    lines[1].ends_with(
                        "polling streams failed error=\"connection refused\" (… 140 more in the last 10 s)"
                    ),
                    "{out}"
                ),
                LogFormat::Json => {
                    let v: serde_json::Value = serde_json::from_str(lines[1]).expect("a JSON line");
                    assert_eq!(v["suppressed"], 140, "{out}");
                    assert_eq!(v["suppressed_over_ms"], 10_000, "{out}");
                    assert_eq!(v["message"], "polling streams failed", "{out}");
                }
            }
        }
    }
}
