//! The `infinistream` binary: parses the command line, prints configuration problems (exit 2),
//! sets up logging, and runs the chosen subcommand (an error from it: one line on stderr, exit 1).
//!
//! Owns only this edge (`cmd`); the agent lives in the library, the control plane and the bench
//! tool in their crates.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

mod cmd;

use cmd::cli::{self, Run};
use infinistream::logging::LogFormat;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let env: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();

    let invocation = match cli::parse(&argv, &env) {
        Ok(invocation) => invocation,
        Err(exit) => {
            // A closed pipe (`infinistream --help | head`) is not worth a panic.
            if exit.to_stdout() {
                let _ = writeln!(std::io::stdout(), "{exit}");
            } else {
                let _ = writeln!(std::io::stderr(), "{exit}");
            }
            return ExitCode::from(exit.exit_code());
        }
    };

    // The bench's stdout is its report (`--json`), so logs must not be written there.
    let format = match invocation.run {
        Run::Bench { .. } => LogFormat::Text,
        _ => infinistream::logging::init(invocation.log_format),
    };

    match run(invocation.run, format) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // Once, on stderr, each cause once (the error types carry their sources in their
            // messages; `{:#}` would print them twice).
            let line = infinistream::logging::error_chain(err.as_ref());
            let _ = writeln!(std::io::stderr(), "error: {line}");
            ExitCode::from(1)
        }
    }
}

fn run(run: Run, format: LogFormat) -> anyhow::Result<()> {
    match run {
        Run::Agent(cfg) => infinistream::agent::run_blocking(cfg, format)?,
        Run::ControlPlane(cfg) => cmd::control_plane::run_blocking(cfg, format)?,
        Run::Playground(cfg) => cmd::playground::run_blocking(cfg, format)?,
        Run::Bench { command, json } => {
            infinistream_bench::run_blocking(command, json)?;
        }
    }
    Ok(())
}
