//! The command-line grammar of the `infinistream` binary (clap derive) and the top-level entry
//! point [`parse`] that turns `argv` plus an environment into a validated [`Invocation`] or a
//! [`CliExit`] (help, version, usage error, configuration errors).
//!
//! Owns: subcommands, flag names, their environment variable names (shown in `--help`), and the
//! Sifflet-style options files (`infinistream agent @agent.opts`). Does not own layering, defaults
//! or validation (`layering`), nor running anything (`main.rs`).
//!
//! Every value flag is an `Option<String>` here on purpose: clap must not validate or require
//! anything, because a value may come from a config file or the environment, and because every
//! problem is reported at once by `config` rather than one at a time by clap.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::{Args, CommandFactory, Parser, Subcommand};

use infinistream::config::AgentConfig;
use infinistream::logging::LogFormat;
use infinistream::values;
use infinistream_bench::{
    BenchCommand, ConsumeOptions, E2eOptions, Limit, PublishOptions, RouteOptions,
};
use infinistream_control_plane::ControlPlaneConfig;

use super::layering::{self, ConfigError, ConfigErrors, PlaygroundConfig};

pub const AGENT: &str = "agent";
pub const CONTROL_PLANE: &str = "control-plane";
pub const PLAYGROUND: &str = "playground";
pub const BENCH: &str = "bench";

const OPTIONS_FILE_HELP: &str = "\
Values are layered: defaults < --config FILE (TOML) < environment < flags.
Flags can also be read from an options file, one per line: infinistream <command> @file.opts";

/// NATS JetStream, stateless and diskless, on your own object-storage bucket.
#[derive(Debug, Parser)]
#[command(
    name = "infinistream",
    version,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: CliCommand,
}

#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run an agent: speaks the NATS protocol to clients, writes to your bucket (production).
    #[command(
        after_help = OPTIONS_FILE_HELP,
        override_usage = "infinistream agent --group-id ID --group-key KEY --bucket-name URL [OPTIONS]\n       \
                          (each required setting may come from its variable or --config instead)"
    )]
    Agent(AgentArgs),
    /// Run the reference control plane: metadata only, never message bytes; SQLite in --data-dir.
    #[command(
        after_help = OPTIONS_FILE_HELP,
        override_usage = "infinistream control-plane --group-id ID --group-key KEY [OPTIONS]\n       \
                          (each required setting may come from its variable or --config instead)"
    )]
    ControlPlane(ControlPlaneArgs),
    /// Run the whole stack (control plane and one agent) in one process on a local directory.
    #[command(after_help = OPTIONS_FILE_HELP)]
    Playground(PlaygroundArgs),
    /// Benchmark any NATS JetStream server (an agent or nats-server) as a client would.
    Bench(BenchArgs),
}

/// Flags shared by every long-running subcommand.
#[derive(Debug, Args)]
pub struct CommonArgs {
    /// TOML file of settings; keys are the long flag names (dashes or underscores).
    #[arg(
        long,
        value_name = "FILE",
        env = "INFINISTREAM_CONFIG",
        hide_env_values = true
    )]
    pub config: Option<PathBuf>,
    /// Log format: text (for people, with a banner) or json (one object per line) [default: text on a terminal, else json].
    #[arg(
        long,
        value_name = "FORMAT",
        env = "INFINISTREAM_LOG_FORMAT",
        hide_env_values = true
    )]
    pub log_format: Option<String>,
}

/// Flags of an agent that also apply to the agent inside the playground.
#[derive(Debug, Args)]
pub struct AgentRuntimeArgs {
    /// Batch window: one object per window; `100`, `100ms`, `0.1s`; 50ms–500ms [default: 250ms].
    #[arg(
        long,
        value_name = "DURATION",
        env = "INFINISTREAM_BATCH_WRITE",
        hide_env_values = true
    )]
    pub batch_write: Option<String>,
    /// Interface the listeners bind [default: 0.0.0.0; playground 127.0.0.1].
    #[arg(
        long,
        value_name = "HOST",
        env = "INFINISTREAM_HOST",
        hide_env_values = true
    )]
    pub host: Option<String>,
    /// NATS client port; 0 picks a free port [default: 4222].
    #[arg(
        short = 'p',
        long,
        value_name = "PORT",
        env = "INFINISTREAM_PORT",
        hide_env_values = true
    )]
    pub port: Option<String>,
    /// Port for other agents [default: 9222].
    #[arg(
        long,
        value_name = "PORT",
        env = "INFINISTREAM_PEER_PORT",
        hide_env_values = true
    )]
    pub peer_port: Option<String>,
    /// HTTP port (health, metrics) [default: 8222].
    #[arg(
        long,
        value_name = "PORT",
        env = "INFINISTREAM_HTTP_PORT",
        hide_env_values = true
    )]
    pub http_port: Option<String>,
    /// Worker (arbiter) count [default: from the cgroup CPU quota, else the number of cores].
    #[arg(
        long,
        value_name = "N",
        env = "INFINISTREAM_WORKERS",
        hide_env_values = true
    )]
    pub workers: Option<String>,
    /// Largest message payload; `1048576`, `1MiB`, `512KiB`, `1MB` [default: 1MiB].
    #[arg(
        long,
        value_name = "SIZE",
        env = "INFINISTREAM_MAX_PAYLOAD",
        hide_env_values = true
    )]
    pub max_payload: Option<String>,
    /// An object is sealed early when it reaches this size [default: 4MiB].
    #[arg(
        long,
        value_name = "SIZE",
        env = "INFINISTREAM_MAX_OBJECT_BYTES",
        hide_env_values = true
    )]
    pub max_object_bytes: Option<String>,
    /// Bytes published but not yet acknowledged before publishers are slowed [default: 256MiB].
    #[arg(
        long,
        value_name = "SIZE",
        env = "INFINISTREAM_MAX_INFLIGHT_BYTES",
        hide_env_values = true
    )]
    pub max_inflight_bytes: Option<String>,
    /// Messages published but not yet acknowledged before publishers are slowed [default: 100000].
    #[arg(
        long,
        value_name = "N",
        env = "INFINISTREAM_MAX_INFLIGHT_MSGS",
        hide_env_values = true
    )]
    pub max_inflight_msgs: Option<String>,
    /// Read cache size; 0 disables it [default: 256MiB].
    #[arg(
        long,
        value_name = "SIZE",
        env = "INFINISTREAM_CACHE_BYTES",
        hide_env_values = true
    )]
    pub cache_bytes: Option<String>,
    /// How long to drain in-flight work on SIGTERM; a bare number is seconds [default: 60s].
    #[arg(
        long,
        value_name = "DURATION",
        env = "INFINISTREAM_GRACEFUL_SHUTDOWN_TIMEOUT",
        hide_env_values = true
    )]
    pub graceful_shutdown_timeout: Option<String>,
    /// Server name announced to clients [default: the host name].
    #[arg(
        long,
        value_name = "NAME",
        env = "INFINISTREAM_SERVER_NAME",
        hide_env_values = true
    )]
    pub server_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Agent group id (required).
    #[arg(
        long,
        value_name = "ID",
        env = "INFINISTREAM_GROUP_ID",
        hide_env_values = true
    )]
    pub group_id: Option<String>,
    /// Agent group key (required unless --group-key-file, secret).
    #[arg(
        long,
        value_name = "KEY",
        env = "INFINISTREAM_GROUP_KEY",
        hide_env_values = true
    )]
    pub group_key: Option<String>,
    /// File holding the group key (trailing whitespace ignored): keeps the key out of the
    /// process list and the environment.
    #[arg(
        long,
        value_name = "FILE",
        env = "INFINISTREAM_GROUP_KEY_FILE",
        hide_env_values = true
    )]
    pub group_key_file: Option<String>,
    /// Bucket URL (required): `s3://BUCKET?endpoint=…&region=…`, `gs://BUCKET?…`, `az://CONTAINER?account_name=…`, `file:///path` or `mem://name`.
    #[arg(
        long,
        value_name = "URL",
        env = "INFINISTREAM_BUCKET_NAME",
        hide_env_values = true
    )]
    pub bucket_name: Option<String>,
    /// Control plane region [default: us-east-1].
    #[arg(
        long,
        value_name = "REGION",
        env = "INFINISTREAM_REGION",
        hide_env_values = true
    )]
    pub region: Option<String>,
    /// Control plane URL; overrides the region's endpoint.
    #[arg(
        long,
        value_name = "URL",
        env = "INFINISTREAM_CONTROL_PLANE_URL",
        hide_env_values = true
    )]
    pub control_plane_url: Option<String>,
    /// PEM file of CA certificates to trust for an https control plane, besides the system roots.
    #[arg(
        long,
        value_name = "FILE",
        env = "INFINISTREAM_CONTROL_PLANE_CA",
        hide_env_values = true
    )]
    pub control_plane_ca: Option<String>,
    /// Availability zone of this agent.
    #[arg(
        long,
        value_name = "ZONE",
        env = "INFINISTREAM_AVAILABILITY_ZONE",
        hide_env_values = true
    )]
    pub availability_zone: Option<String>,
    /// Address other agents and clients should use to reach this one [default: auto].
    #[arg(
        long,
        value_name = "ADDRESS",
        env = "INFINISTREAM_ADVERTISE_ADDRESS",
        hide_env_values = true
    )]
    pub advertise_address: Option<String>,
    #[command(flatten)]
    pub runtime: AgentRuntimeArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct ControlPlaneArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(
        long,
        value_name = "ADDR",
        env = "INFINISTREAM_LISTEN",
        hide_env_values = true
    )]
    pub listen: Option<String>,
    /// Directory of the metadata database [default: ./infinistream-control-plane].
    #[arg(
        long,
        value_name = "DIR",
        env = "INFINISTREAM_DATA_DIR",
        hide_env_values = true
    )]
    pub data_dir: Option<String>,
    /// Keep everything in memory (tests only: all metadata is lost on exit).
    #[arg(long, env = "INFINISTREAM_IN_MEMORY", hide_env_values = true)]
    pub in_memory: bool,
    /// Agent group id served (required).
    #[arg(
        long,
        value_name = "ID",
        env = "INFINISTREAM_GROUP_ID",
        hide_env_values = true
    )]
    pub group_id: Option<String>,
    /// Agent group key served (required unless --group-key-file, secret).
    #[arg(
        long,
        value_name = "KEY",
        env = "INFINISTREAM_GROUP_KEY",
        hide_env_values = true
    )]
    pub group_key: Option<String>,
    /// File holding the group key (trailing whitespace ignored): keeps the key out of the
    /// process list and the environment.
    #[arg(
        long,
        value_name = "FILE",
        env = "INFINISTREAM_GROUP_KEY_FILE",
        hide_env_values = true
    )]
    pub group_key_file: Option<String>,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct PlaygroundArgs {
    /// Directory holding the bucket and the control plane data [default: ./infinistream-data].
    #[arg(
        long,
        value_name = "DIR",
        env = "INFINISTREAM_DIR",
        hide_env_values = true
    )]
    pub dir: Option<String>,
    #[command(flatten)]
    pub runtime: AgentRuntimeArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub workload: BenchWorkload,
}

#[derive(Debug, Subcommand)]
pub enum BenchWorkload {
    /// Publish to streams `bench-<i>` (subjects `bench.<i>.>`) and measure publish-to-ack.
    Publish(BenchPublishArgs),
    /// Read an existing stream with a pull consumer.
    Consume(BenchConsumeArgs),
    /// Publish and consume at once; measures publish-to-receipt latency.
    E2e(BenchE2eArgs),
    /// Core NATS between two servers of one cluster: routed msgs/s, request/reply round trip,
    /// interest convergence.
    Route(BenchRouteArgs),
}

/// Flags of every bench workload.
#[derive(Debug, Args)]
pub struct BenchCommonArgs {
    /// Server URL.
    #[arg(long, value_name = "URL", default_value = "nats://127.0.0.1:4222")]
    pub url: String,
    /// An agent's Prometheus endpoint, to report objects written and bucket requests.
    #[arg(long, value_name = "URL")]
    pub metrics_url: Option<String>,
    /// Print one JSON document on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// Flags of the publishing side (publish, e2e).
#[derive(Debug, Args)]
pub struct BenchPublishFlags {
    /// Connections, each publishing its share of the messages.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub clients: usize,
    /// Streams published to, round-robin.
    #[arg(long, value_name = "M", default_value_t = 1)]
    pub streams: usize,
    /// Distinct subjects per stream, published to round-robin.
    #[arg(long, value_name = "K", default_value_t = 1)]
    pub subjects: usize,
    /// Payload size; `128`, `1KiB`.
    #[arg(long, value_name = "BYTES", default_value = "128", value_parser = parse_bench_size)]
    pub size: usize,
    /// Messages in total (split over the clients) [default: 100000].
    #[arg(long, value_name = "K", conflicts_with = "duration")]
    pub msgs: Option<u64>,
    /// Publish for this long instead of a message count; a bare number is seconds.
    #[arg(long, value_name = "SECS", value_parser = parse_bench_duration)]
    pub duration: Option<std::time::Duration>,
    /// Most unacknowledged publishes per client.
    #[arg(long, value_name = "F", default_value_t = 256)]
    pub inflight: usize,
    /// Use existing streams rather than create them.
    #[arg(long)]
    pub no_create: bool,
    /// Storage of created streams: file or memory (nats-server honours it; existing streams keep theirs).
    #[arg(long, value_name = "KIND", default_value = "file")]
    pub stream_storage: infinistream_bench::StreamStorage,
    /// Open loop: R publishes per second in total, split evenly over the clients; each client
    /// sends one publish per slot of clients/R seconds, at a random point of the slot, whatever
    /// the acks (still at most --inflight unacknowledged); latency counts from the scheduled
    /// time. Without it: closed loop, as fast as --inflight allows.
    #[arg(long, value_name = "R", value_parser = parse_bench_rate)]
    pub rate: Option<f64>,
    /// The agent's batch window, only for the latency bound printed in --rate mode.
    #[arg(long, value_name = "W", default_value_t = 50.0, value_parser = parse_bench_rate)]
    pub window_ms: f64,
}

#[derive(Debug, Args)]
pub struct BenchPublishArgs {
    #[command(flatten)]
    pub publish: BenchPublishFlags,
    #[command(flatten)]
    pub common: BenchCommonArgs,
}

/// Acknowledgement flags of consumers.
#[derive(Debug, Args)]
pub struct BenchAckFlags {
    /// Messages asked for per pull request.
    #[arg(long, value_name = "B", default_value_t = 500)]
    pub batch: usize,
    /// Acknowledge every message (explicit ack policy; the default).
    #[arg(long, overrides_with = "no_ack")]
    pub ack: bool,
    /// Ack policy none.
    #[arg(long, overrides_with = "ack")]
    pub no_ack: bool,
}

#[derive(Debug, Args)]
pub struct BenchConsumeArgs {
    /// Stream to read.
    #[arg(long, value_name = "S", default_value = "bench-0")]
    pub stream: String,
    /// Messages to read.
    #[arg(long, value_name = "K", default_value_t = 100_000)]
    pub msgs: u64,
    /// Durable consumer name [default: an ephemeral consumer, deleted at the end].
    #[arg(long, value_name = "NAME")]
    pub durable: Option<String>,
    #[command(flatten)]
    pub acks: BenchAckFlags,
    #[command(flatten)]
    pub common: BenchCommonArgs,
}

#[derive(Debug, Args)]
pub struct BenchE2eArgs {
    #[command(flatten)]
    pub publish: BenchPublishFlags,
    #[command(flatten)]
    pub acks: BenchAckFlags,
    #[command(flatten)]
    pub common: BenchCommonArgs,
}

#[derive(Debug, Args)]
pub struct BenchRouteArgs {
    /// The second server: the subscriber and the service connect here (the publisher and the
    /// requester to `--url`).
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// Payload size; `128`, `1KiB`.
    #[arg(long, value_name = "BYTES", default_value = "128", value_parser = parse_bench_size)]
    pub size: usize,
    /// Messages published for the throughput run (0 skips it).
    #[arg(long, value_name = "K", default_value_t = 1_000_000)]
    pub msgs: u64,
    /// Sequential requests for the round trip (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    pub requests: usize,
    /// Subscriptions whose interest convergence is timed (0 skips it).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub probes: usize,
    #[command(flatten)]
    pub common: BenchCommonArgs,
}

fn parse_bench_size(s: &str) -> Result<usize, String> {
    usize::try_from(values::parse_size(s)?).map_err(|_| "too large".to_owned())
}

/// A positive, finite number (a rate, milliseconds).
fn parse_bench_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn parse_bench_duration(s: &str) -> Result<std::time::Duration, String> {
    values::parse_duration(s, std::time::Duration::from_secs(1))
}

impl BenchPublishFlags {
    fn options(&self, common: &BenchCommonArgs) -> PublishOptions {
        PublishOptions {
            url: common.url.clone(),
            clients: self.clients,
            streams: self.streams,
            subjects: self.subjects,
            size: self.size,
            limit: match (self.duration, self.msgs) {
                (Some(d), _) => Limit::Duration(d),
                (None, Some(n)) => Limit::Msgs(n),
                (None, None) => Limit::Msgs(100_000),
            },
            inflight: self.inflight,
            create: !self.no_create,
            storage: self.stream_storage,
            metrics_url: common.metrics_url.clone(),
            progress: !common.quiet,
            rate: self.rate,
            window: std::time::Duration::from_secs_f64(self.window_ms / 1000.0),
        }
    }
}

impl BenchArgs {
    /// The workload to run and whether to print JSON.
    pub fn command(&self) -> (BenchCommand, bool) {
        match &self.workload {
            BenchWorkload::Publish(a) => (
                BenchCommand::Publish(a.publish.options(&a.common)),
                a.common.json,
            ),
            BenchWorkload::Consume(a) => (
                BenchCommand::Consume(ConsumeOptions {
                    url: a.common.url.clone(),
                    stream: a.stream.clone(),
                    msgs: a.msgs,
                    batch: a.acks.batch,
                    ack: !a.acks.no_ack,
                    durable: a.durable.clone(),
                    metrics_url: a.common.metrics_url.clone(),
                    progress: !a.common.quiet,
                }),
                a.common.json,
            ),
            BenchWorkload::E2e(a) => (
                BenchCommand::E2e(E2eOptions {
                    publish: a.publish.options(&a.common),
                    batch: a.acks.batch,
                    ack: !a.acks.no_ack,
                }),
                a.common.json,
            ),
            BenchWorkload::Route(a) => (
                BenchCommand::Route(RouteOptions {
                    pub_url: a.common.url.clone(),
                    sub_url: a.to.clone(),
                    size: a.size,
                    msgs: a.msgs,
                    requests: a.requests,
                    probes: a.probes,
                }),
                a.common.json,
            ),
        }
    }
}

/// What `main` should run, fully validated.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The log format asked for; `None` lets the binary choose by the terminal.
    pub log_format: Option<LogFormat>,
    pub run: Run,
}

#[derive(Debug, Clone)]
pub enum Run {
    Agent(AgentConfig),
    ControlPlane(ControlPlaneConfig),
    Playground(PlaygroundConfig),
    /// A benchmark workload; `json` prints the report as JSON.
    Bench {
        command: BenchCommand,
        json: bool,
    },
}

/// Why `main` stops before running anything.
#[derive(Debug)]
pub enum CliExit {
    /// `--help` or `--version`: print to stdout, exit 0.
    Info(String),
    /// Grammar error or help shown because nothing was asked: print to stderr as is, exit 2.
    Usage(String),
    /// Configuration problems: one `error: …` line each on stderr, exit 2.
    Invalid(ConfigErrors),
}

impl CliExit {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliExit::Info(_) => 0,
            CliExit::Usage(_) | CliExit::Invalid(_) => 2,
        }
    }

    pub fn to_stdout(&self) -> bool {
        matches!(self, CliExit::Info(_))
    }
}

impl fmt::Display for CliExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliExit::Info(text) | CliExit::Usage(text) => f.write_str(text.trim_end()),
            CliExit::Invalid(errors) => write!(f, "{errors}"),
        }
    }
}

/// The full command, with environment variable names attached for `--help`.
///
/// Building it reads the process environment (clap does so for every `env` attribute); every
/// value is hidden from help so the output never depends on, nor leaks, the environment.
pub fn command() -> clap::Command {
    Cli::command().mut_subcommands(|sub| sub.args_override_self(true))
}

/// The command used for parsing: no environment attached, because layering (file < env <
/// flags) is done by `config` from an explicit map, which keeps parsing pure and testable.
fn parsing_command() -> clap::Command {
    strip_env(command())
}

fn strip_env(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| arg.env(None::<&'static str>))
        .mut_subcommands(strip_env)
}

#[cfg(test)]
/// The command of one subcommand, for [`parse_subcommand`].
fn subcommand(name: &str) -> Option<clap::Command> {
    parsing_command()
        .get_subcommands()
        .find(|sub| sub.get_name() == name)
        .cloned()
}

/// Parses a whole command line (`argv[0]` included) against `env`.
pub fn parse(argv: &[String], env: &HashMap<String, String>) -> Result<Invocation, CliExit> {
    let program = argv
        .first()
        .cloned()
        .unwrap_or_else(|| "infinistream".to_owned());
    let rest = argv.get(1..).unwrap_or_default();
    let args = expand_options_files(rest).map_err(CliExit::Invalid)?;
    let full: Vec<String> = std::iter::once(program).chain(args).collect();

    let matches = match parsing_command().try_get_matches_from(&full) {
        Ok(matches) => matches,
        Err(err) => return Err(clap_exit(err, &full)),
    };
    let Some((name, sub)) = matches.subcommand() else {
        return Err(CliExit::Usage(command().render_help().to_string()));
    };
    match name {
        AGENT => layering::agent_from_matches(sub, &layered_keys(AGENT), env)
            .map(|(cfg, log_format)| Invocation {
                log_format,
                run: Run::Agent(cfg),
            })
            .map_err(CliExit::Invalid),
        CONTROL_PLANE => {
            layering::control_plane_from_matches(sub, &layered_keys(CONTROL_PLANE), env)
                .map(|(cfg, log_format)| Invocation {
                    log_format,
                    run: Run::ControlPlane(cfg),
                })
                .map_err(CliExit::Invalid)
        }
        PLAYGROUND => layering::playground_from_matches(sub, &layered_keys(PLAYGROUND), env)
            .map(|(cfg, log_format)| Invocation {
                log_format,
                run: Run::Playground(cfg),
            })
            .map_err(CliExit::Invalid),
        BENCH => {
            let args = <BenchArgs as clap::FromArgMatches>::from_arg_matches(sub)
                .map_err(|err| CliExit::Usage(err.render().to_string()))?;
            let (command, json) = args.command();
            Ok(Invocation {
                log_format: None,
                run: Run::Bench { command, json },
            })
        }
        other => Err(CliExit::Usage(format!("error: unknown command {other:?}"))),
    }
}

fn clap_exit(err: clap::Error, full: &[String]) -> CliExit {
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            // Re-render with the environment-annotated command so help lists env var names.
            let text = match command().try_get_matches_from(full) {
                Err(annotated) if annotated.kind() == err.kind() => annotated.render().to_string(),
                _ => err.render().to_string(),
            };
            CliExit::Info(text)
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let text = match command().try_get_matches_from(full) {
                Err(annotated) if annotated.kind() == err.kind() => annotated.render().to_string(),
                _ => err.render().to_string(),
            };
            CliExit::Usage(text)
        }
        _ => CliExit::Usage(err.render().to_string()),
    }
}

#[cfg(test)]
/// Parses the arguments of one subcommand (without the program and subcommand names), options
/// files expanded. Used by the `load_*` functions.
pub(crate) fn parse_subcommand(
    name: &str,
    args: &[String],
) -> Result<clap::ArgMatches, ConfigErrors> {
    let Some(cmd) = subcommand(name) else {
        return Err(ConfigErrors(vec![ConfigError::Usage(format!(
            "unknown command {name:?}"
        ))]));
    };
    let args = expand_options_files(args)?;
    let full = std::iter::once(name.to_owned()).chain(args);
    cmd.try_get_matches_from(full).map_err(|err| {
        ConfigErrors(vec![ConfigError::Usage(first_line(
            &err.render().to_string(),
        ))])
    })
}

#[cfg(test)]
/// Loads `infinistream agent`'s configuration. `args` are the arguments after the subcommand
/// (no program or subcommand name); `@file` arguments are options files.
pub fn load_agent(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<AgentConfig, ConfigErrors> {
    let matches = parse_subcommand(AGENT, args)?;
    layering::agent_from_matches(&matches, &layered_keys(AGENT), env).map(|(cfg, _)| cfg)
}

#[cfg(test)]
/// Loads `infinistream control-plane`'s configuration; `args` as for [`load_agent`].
pub fn load_control_plane(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<ControlPlaneConfig, ConfigErrors> {
    let matches = parse_subcommand(CONTROL_PLANE, args)?;
    layering::control_plane_from_matches(&matches, &layered_keys(CONTROL_PLANE), env)
        .map(|(cfg, _)| cfg)
}

#[cfg(test)]
/// Loads `infinistream playground`'s configuration; `args` as for [`load_agent`].
pub fn load_playground(
    args: &[String],
    env: &HashMap<String, String>,
) -> Result<PlaygroundConfig, ConfigErrors> {
    let matches = parse_subcommand(PLAYGROUND, args)?;
    layering::playground_from_matches(&matches, &layered_keys(PLAYGROUND), env).map(|(cfg, _)| cfg)
}

/// The keys (arg ids, i.e. long flag names with underscores) that take part in layering.
pub fn layered_keys(subcommand: &str) -> Vec<String> {
    let cmd = command();
    let Some(sub) = cmd.get_subcommands().find(|s| s.get_name() == subcommand) else {
        return Vec::new();
    };
    sub.get_arguments()
        .filter(|arg| arg.get_long().is_some())
        .map(|arg| arg.get_id().as_str().to_owned())
        .filter(|id| !matches!(id.as_str(), "config" | "help" | "version"))
        .collect()
}

#[cfg(test)]
fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    line.strip_prefix("error: ").unwrap_or(line).to_owned()
}

/// Replaces every `@FILE` argument by the flags it holds (see [`parse_options_file`]).
///
/// Files are not expanded recursively: an `@` inside an options file is taken literally.
pub fn expand_options_files(args: &[String]) -> Result<Vec<String>, ConfigErrors> {
    let mut out = Vec::with_capacity(args.len());
    let mut errors = Vec::new();
    for arg in args {
        match arg.strip_prefix('@') {
            Some(path) if !path.is_empty() => {
                let path = Path::new(path);
                match std::fs::read_to_string(path) {
                    Ok(text) => match parse_options_file(&text) {
                        Ok(flags) => out.extend(flags),
                        Err(problems) => {
                            errors.extend(problems.into_iter().map(|(line, reason)| {
                                ConfigError::OptionsFile {
                                    path: path.to_path_buf(),
                                    reason: format!("line {line}: {reason}"),
                                }
                            }))
                        }
                    },
                    Err(err) => errors.push(ConfigError::OptionsFile {
                        path: path.to_path_buf(),
                        reason: format!("cannot read it: {err}"),
                    }),
                }
            }
            _ => out.push(arg.clone()),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Parses the text of an options file: one flag per line, `--flag value` or `--flag=value` (or a
/// bare `--flag`), blank lines and lines starting with `#` ignored, matching surrounding quotes
/// stripped from the value. Returns the arguments, or `(line number, problem)` for each bad line.
pub fn parse_options_file(text: &str) -> Result<Vec<String>, Vec<(usize, String)>> {
    let mut args = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !line.starts_with('-') || line == "-" || line == "--" {
            problems.push((
                index + 1,
                "expected a flag such as `--name value` or `--name=value`".to_owned(),
            ));
            continue;
        }
        let name_end = line
            .find(|c: char| c == '=' || c.is_whitespace())
            .unwrap_or(line.len());
        let (flag, rest) = line.split_at(name_end);
        let value = rest.strip_prefix('=').unwrap_or(rest).trim();
        let has_value = !rest.is_empty();
        if !has_value {
            args.push(flag.to_owned());
            continue;
        }
        let value = strip_quotes(value);
        if flag.starts_with("--") {
            // `--flag=value` keeps a value starting with `-` from being read as a flag.
            args.push(format!("{flag}={value}"));
        } else {
            args.push(flag.to_owned());
            args.push(value.to_owned());
        }
    }
    if problems.is_empty() {
        Ok(args)
    } else {
        Err(problems)
    }
}

fn strip_quotes(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn clap_definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn every_env_name_follows_the_flag_name() {
        for sub in command().get_subcommands() {
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else { continue };
                let Some(env) = arg.get_env() else { continue };
                let expected = format!("INFINISTREAM_{}", long.replace('-', "_").to_uppercase());
                assert_eq!(env.to_str(), Some(expected.as_str()), "flag --{long}");
                // Layering relies on the arg id being the key: the long name with underscores.
                assert_eq!(arg.get_id().as_str(), long.replace('-', "_"));
            }
        }
    }

    #[test]
    fn options_file_lines() {
        let text = r#"
# a comment
--group-id g1

--bucket-name "s3://b?endpoint=http://x:9000&region=us-east-1"
--batch-write=100ms
-p 5000
--server-name 'my-server'
--in-memory
   --port   6000
"#;
        let args = parse_options_file(text).unwrap();
        assert_eq!(
            args,
            s(&[
                "--group-id=g1",
                "--bucket-name=s3://b?endpoint=http://x:9000&region=us-east-1",
                "--batch-write=100ms",
                "-p",
                "5000",
                "--server-name=my-server",
                "--in-memory",
                "--port=6000",
            ])
        );
    }

    #[test]
    fn options_file_rejects_bare_words() {
        let problems = parse_options_file("--port 1\nport 2\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, 2);
    }

    #[test]
    fn missing_options_file_is_reported() {
        let errors = expand_options_files(&s(&["@/nonexistent/agent.opts"])).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(errors.to_string().contains("/nonexistent/agent.opts"));
    }

    #[test]
    fn help_and_version_are_info() {
        let env = HashMap::new();
        let help = parse(&s(&["infinistream", "--help"]), &env).unwrap_err();
        assert_eq!(help.exit_code(), 0);
        assert!(help.to_string().contains("agent"));
        let agent_help = parse(&s(&["infinistream", "agent", "--help"]), &env).unwrap_err();
        let text = agent_help.to_string();
        assert!(text.contains("INFINISTREAM_GROUP_KEY"), "{text}");
        assert!(text.contains("--batch-write"));
        let version = parse(&s(&["infinistream", "--version"]), &env).unwrap_err();
        assert_eq!(version.exit_code(), 0);
        assert!(version.to_string().contains(env!("CARGO_PKG_VERSION")));
    }

    #[test]
    fn bench_publish_flags() {
        let inv = parse(
            &s(&[
                "infinistream",
                "bench",
                "publish",
                "--url",
                "nats://h:1",
                "--clients",
                "4",
                "--streams",
                "10",
                "--size",
                "1KiB",
                "--msgs",
                "1000",
                "--inflight",
                "64",
                "--stream-storage",
                "memory",
                "--json",
            ]),
            &HashMap::new(),
        )
        .unwrap();
        let Run::Bench {
            command: BenchCommand::Publish(o),
            json,
        } = inv.run
        else {
            panic!("not bench publish")
        };
        assert!(json);
        assert_eq!(o.url, "nats://h:1");
        assert_eq!(
            (o.clients, o.streams, o.size, o.inflight),
            (4, 10, 1024, 64)
        );
        assert_eq!(o.limit, Limit::Msgs(1000));
        assert_eq!(o.storage, infinistream_bench::StreamStorage::Memory);
        assert!(o.create && o.progress);
        assert_eq!(o.rate, None);
        assert_eq!(o.window, infinistream_bench::DEFAULT_WINDOW);
    }

    #[test]
    fn bench_rate_flags() {
        let env = HashMap::new();
        let inv = parse(
            &s(&[
                "infinistream",
                "bench",
                "e2e",
                "--rate",
                "1000",
                "--window-ms",
                "20",
                "--duration",
                "10",
            ]),
            &env,
        )
        .unwrap();
        let Run::Bench {
            command: BenchCommand::E2e(o),
            ..
        } = inv.run
        else {
            panic!("not bench e2e")
        };
        assert_eq!(o.publish.rate, Some(1000.0));
        assert_eq!(o.publish.window, std::time::Duration::from_millis(20));
        for bad in ["0", "-5", "x", "inf"] {
            assert!(
                parse(
                    &s(&["infinistream", "bench", "publish", "--rate", bad]),
                    &env
                )
                .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn bench_consume_and_e2e_flags() {
        let env = HashMap::new();
        let inv = parse(
            &s(&[
                "infinistream",
                "bench",
                "consume",
                "--stream",
                "S",
                "--no-ack",
                "-q",
            ]),
            &env,
        )
        .unwrap();
        let Run::Bench {
            command: BenchCommand::Consume(o),
            json,
        } = inv.run
        else {
            panic!("not bench consume")
        };
        assert!(!json && !o.ack && !o.progress);
        assert_eq!((o.stream.as_str(), o.msgs, o.batch), ("S", 100_000, 500));
        let inv = parse(
            &s(&[
                "infinistream",
                "bench",
                "e2e",
                "--duration",
                "3",
                "--no-create",
            ]),
            &env,
        )
        .unwrap();
        let Run::Bench {
            command: BenchCommand::E2e(o),
            ..
        } = inv.run
        else {
            panic!("not bench e2e")
        };
        assert!(o.ack && !o.publish.create);
        assert_eq!(
            o.publish.limit,
            Limit::Duration(std::time::Duration::from_secs(3))
        );
        let both = parse(
            &s(&[
                "infinistream",
                "bench",
                "publish",
                "--msgs",
                "1",
                "--duration",
                "1",
            ]),
            &env,
        )
        .unwrap_err();
        assert_eq!(both.exit_code(), 2);
        let bad = parse(
            &s(&["infinistream", "bench", "publish", "--size", "x"]),
            &env,
        )
        .unwrap_err();
        assert_eq!(bad.exit_code(), 2);
    }

    #[test]
    fn no_subcommand_is_a_usage_error() {
        let exit = parse(&s(&["infinistream"]), &HashMap::new()).unwrap_err();
        assert_eq!(exit.exit_code(), 2);
    }

    #[test]
    fn later_flags_override_earlier_ones() {
        let env = HashMap::new();
        let inv = parse(
            &s(&[
                "infinistream",
                "agent",
                "--group-id=g",
                "--group-key=k",
                "--bucket-name=mem://x",
                "--port=1",
                "--port=2",
            ]),
            &env,
        )
        .unwrap();
        let Run::Agent(cfg) = inv.run else {
            panic!("not an agent")
        };
        assert_eq!(cfg.port, 2);
    }
}
