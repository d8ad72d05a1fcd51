//! The `infinistream` binary: parses the command line, prints configuration problems (exit 2),
//! sets up logging, and runs the chosen subcommand (an error from it: one line, exit 1).
//!
//! Owns only this edge; everything else lives in the library.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use infinistream::cli::{self, Run};

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
    if !matches!(invocation.run, Run::Bench { .. }) {
        infinistream::logging::init(invocation.log_format);
    }

    match run(invocation.run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("{err:#}").replace('\n', " ");
            tracing::error!(error = %line, "stopped on error");
            let _ = writeln!(std::io::stderr(), "error: {line}");
            ExitCode::from(1)
        }
    }
}

fn run(run: Run) -> anyhow::Result<()> {
    match run {
        Run::Agent(cfg) => {
            tracing::info!(config = ?cfg, "starting agent");
            infinistream::agent::run_blocking(cfg)?;
        }
        Run::ControlPlane(cfg) => {
            tracing::info!(config = ?cfg, "starting control plane");
            infinistream::control_plane::run_blocking(cfg)?;
        }
        Run::Playground(cfg) => {
            tracing::info!(config = ?cfg, "starting playground");
            infinistream::playground::run_blocking(cfg)?;
        }
        Run::Bench { command, json } => {
            infinistream::bench::run_blocking(command, json)?;
        }
    }
    Ok(())
}
