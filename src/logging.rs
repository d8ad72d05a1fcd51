//! Process-wide logging setup: one `tracing` subscriber writing JSON lines (default) or
//! human-readable text to stdout, filtered by `RUST_LOG` (default `info`).
//!
//! Owns the subscriber and the [`LogFormat`] choice. Does not own what is logged, nor metrics.

use std::io::IsTerminal;
use std::str::FromStr;

use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line, event fields flattened at the top level (for log pipelines).
    #[default]
    Json,
    /// Human-readable lines, coloured when stdout is a terminal.
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

/// The filter from `RUST_LOG`, or `info` when unset or unusable.
fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}

type BoxedSubscriber = Box<dyn Subscriber + Send + Sync + 'static>;

/// The subscriber `init` installs, writing to `writer` (split out so tests can capture output
/// without touching the global subscriber other tests may rely on).
fn build<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool) -> BoxedSubscriber
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
                .finish(),
        ),
        LogFormat::Text => Box::new(builder.with_ansi(ansi).finish()),
    }
}

/// Installs the global subscriber (and the `log` crate bridge). Safe to call more than once
/// (tests, embedding): only the first call takes effect, later ones are ignored.
pub fn init(format: LogFormat) {
    let subscriber = build(
        format,
        filter(),
        std::io::stdout,
        std::io::stdout().is_terminal(),
    );
    // An error only means a subscriber is already installed, which is fine.
    let _ = subscriber.try_init();
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

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat) -> String {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = build(
            format,
            EnvFilter::new("info"),
            move || writer.clone(),
            false,
        );
        tracing::subscriber::with_default(subscriber, || {
            tracing::debug!("filtered out");
            tracing::info!(answer = 42, "logging works");
        });
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn json_lines_with_flat_fields() {
        let out = capture(LogFormat::Json);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "{out}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["message"], "logging works");
        assert_eq!(line["answer"], 42);
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].is_string());
    }

    #[test]
    fn text_lines() {
        let out = capture(LogFormat::Text);
        assert!(
            out.contains("logging works") && out.contains("answer=42"),
            "{out}"
        );
        assert!(!out.contains("filtered out"));
    }
}
