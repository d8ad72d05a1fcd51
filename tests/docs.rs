//! The documentation matches the binary: the README's settings table lists exactly the flags and
//! variables of each command's `--help`, and every `error: …` line the README and docs/ quote is
//! one the binary prints (each produced here by running it).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_infinistream");
const COMMANDS: &[&str] = &["agent", "playground", "control-plane"];

fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("INFINISTREAM_") || key.starts_with("AZURE_") || key == "RUST_LOG" {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn read(path: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `(command, --flag, env var or "")` for every option of `command --help`.
fn help_settings(command_name: &str) -> BTreeSet<(String, String, String)> {
    let out = command()
        .args([command_name, "--help"])
        .output()
        .expect("help");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut settings = BTreeSet::new();
    let mut current: Option<(String, String)> = None;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') && line.starts_with("  ") {
            if let Some((flag, env)) = current.take() {
                settings.insert((command_name.to_owned(), flag, env));
            }
            let flag = trimmed
                .split([' ', ','])
                .find(|w| w.starts_with("--"))
                .unwrap_or_default()
                .to_owned();
            current = Some((flag, String::new()));
        }
        if let Some((_, env)) = current.as_mut()
            && let Some(at) = line.find("[env: ")
        {
            let rest = &line[at + 6..];
            *env = rest.split([']', '=']).next().unwrap_or_default().to_owned();
        }
    }
    if let Some((flag, env)) = current {
        settings.insert((command_name.to_owned(), flag, env));
    }
    settings.retain(|(_, flag, _)| flag != "--help" && flag != "--version");
    assert!(
        settings.len() > 3,
        "help of {command_name} not understood:\n{text}"
    );
    settings
}

/// The same triples from the README's `| env var | flag | commands | default |` table.
fn readme_settings() -> BTreeSet<(String, String, String)> {
    let readme = read("README.md");
    let mut settings = BTreeSet::new();
    let mut in_table = false;
    for line in readme.lines() {
        if line.starts_with("| env var | flag | commands |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            if !settings.is_empty() {
                break;
            }
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let (env, flags, commands) = (cells[1], cells[2], cells[3]);
        let flag = flags
            .split([' ', ','])
            .find(|w| w.starts_with("--"))
            .unwrap_or_else(|| panic!("no flag in {line}"));
        for name in commands.split(',').map(str::trim) {
            assert!(
                COMMANDS.contains(&name),
                "unknown command {name:?} in {line}"
            );
            settings.insert((name.to_owned(), flag.to_owned(), env.to_owned()));
        }
    }
    settings
}

#[test]
fn the_readme_table_and_help_agree() {
    let help: BTreeSet<_> = COMMANDS.iter().flat_map(|c| help_settings(c)).collect();
    let readme = readme_settings();
    let missing: Vec<_> = help.difference(&readme).collect();
    let stale: Vec<_> = readme.difference(&help).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "in --help but not in the README: {missing:#?}\nin the README but not in --help: {stale:#?}"
    );
}

/// Every inline code span starting with `error: ` in the README and docs/.
fn quoted_errors() -> Vec<(String, String)> {
    let mut files = vec!["README.md".to_owned()];
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
    for entry in std::fs::read_dir(docs).expect("docs/") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".md") {
            files.push(format!("docs/{name}"));
        }
    }
    let mut quoted = Vec::new();
    for file in files {
        let text = read(&file).replace('\n', " ");
        for (i, span) in text.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("error: ") {
                quoted.push((file.clone(), span.to_owned()));
            }
        }
    }
    quoted
}

/// Does `line` match `pattern`, where `…` and `<reason>` stand for any text?
fn matches(pattern: &str, line: &str) -> bool {
    let pattern = pattern.replace("<reason>", "…");
    let parts: Vec<&str> = pattern.split('…').collect();
    let mut rest = line;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(after) = rest.strip_prefix(part) else {
                return false;
            };
            rest = after;
        } else if i == parts.len() - 1 {
            return part.is_empty() || rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    rest.is_empty()
}

/// Arguments and extra environment of one run of the binary.
type Run = (Vec<String>, Vec<(&'static str, String)>);

/// Runs the binary on inputs that provoke each documented startup error; returns its lines.
fn printed_errors() -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display().to_string();
    let agent = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            "agent",
            "--group-id=g",
            "--group-key=k",
            "--bucket-name=mem://b",
            "--control-plane-url=http://127.0.0.1:1",
        ];
        args.extend_from_slice(extra);
        args.iter().map(|s| s.to_string()).collect()
    };
    let taken = std::net::TcpListener::bind("0.0.0.0:0").expect("a port");
    let taken_port = taken.local_addr().expect("addr").port().to_string();
    let locked = tempfile::tempdir().expect("temp dir");
    let _lock = infinistream_control_plane::dirlock::DirLock::acquire(locked.path()).expect("lock");
    let empty_ca = dir.path().join("empty.pem");
    std::fs::write(&empty_ca, "").expect("write");
    let bad_config = dir.path().join("bad.toml");
    std::fs::write(&bad_config, "batch_wrte = \"100ms\"\n").expect("write");

    let runs: Vec<Run> = vec![
        (vec!["agent".into()], vec![]),
        (
            agent(&[]),
            vec![("INFINISTREAM_BATCH_WRITE", "1s".to_owned())],
        ),
        (agent(&["--batch-write", "fast"]), vec![]),
        (agent(&["--port", "70000"]), vec![]),
        (agent(&["--port", "4222", "--peer-port", "4222"]), vec![]),
        (
            vec![
                "agent".into(),
                "--group-id=g".into(),
                "--group-key=k".into(),
                "--bucket-name=mem://b".into(),
                "--region=mars-1".into(),
            ],
            vec![],
        ),
        (
            vec![
                "agent".into(),
                "--group-id=g".into(),
                "--group-key=k".into(),
            ],
            vec![("INFINISTREAM_BUCKET_NAME", "gopher://b".to_owned())],
        ),
        (agent(&["--max-payload", "lots"]), vec![]),
        (
            agent(&[
                "--port=0",
                "--http-port=0",
                "--peer-port=0",
                "--bucket-name=az://container",
            ]),
            vec![],
        ),
        (agent(&["--control-plane-url", "ftp://x"]), vec![]),
        (agent(&["--workers", "0"]), vec![]),
        (agent(&["--log-format", "xml"]), vec![]),
        (agent(&["--max-payload", "8MiB"]), vec![]),
        (agent(&["--graceful-shutdown-timeout", "soon"]), vec![]),
        (agent(&["--config", &format!("{d}/absent.toml")]), vec![]),
        (
            agent(&["--config", bad_config.to_str().unwrap_or_default()]),
            vec![],
        ),
        (
            agent(&[
                "--port",
                &taken_port,
                "--http-port=0",
                "--peer-port=0",
                "--host=0.0.0.0",
            ]),
            vec![],
        ),
        (
            agent(&[
                "--port=0",
                "--http-port=0",
                "--peer-port=0",
                "--control-plane-ca",
                empty_ca.to_str().unwrap_or_default(),
            ]),
            vec![],
        ),
        (
            vec![
                "playground".into(),
                "--dir".into(),
                locked.path().display().to_string(),
            ],
            vec![],
        ),
        (
            vec![
                "control-plane".into(),
                "--group-id=g".into(),
                "--group-key=k".into(),
                "--listen=localhost".into(),
                "--in-memory".into(),
                format!("--data-dir={d}"),
            ],
            vec![],
        ),
    ];
    let bucket_urls = [
        "nope",
        "ftp://b",
        "s3://",
        "s3://b*d",
        "s3://b/prefix",
        "s3://key:secret@b",
        "s3://b?colour=blue",
        "s3://b?allow_http=maybe",
        "s3://b?region=%zz",
        "file://relative",
    ];
    let mut runs = runs;
    for url in bucket_urls {
        runs.push((
            vec![
                "agent".into(),
                "--group-id=g".into(),
                "--group-key=k".into(),
                format!("--bucket-name={url}"),
            ],
            vec![],
        ));
    }
    let mut lines = Vec::new();
    for (args, env) in runs {
        let out = command()
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("run");
        assert!(!out.status.success(), "{args:?} succeeded");
        for line in String::from_utf8_lossy(&out.stderr).lines() {
            // The docs show the agent's default port where the test had to take a free one.
            lines.push(line.replace(&format!(":{taken_port}:"), ":4222:"));
        }
    }
    drop(taken);
    lines
}

#[test]
fn every_quoted_error_is_printed_by_the_binary() {
    let quoted = quoted_errors();
    assert!(quoted.len() > 10, "{quoted:#?}");
    let printed = printed_errors();
    let unmatched: Vec<_> = quoted
        .iter()
        .filter(|(_, pattern)| !printed.iter().any(|line| matches(pattern, line)))
        .collect();
    assert!(
        unmatched.is_empty(),
        "quoted but not printed: {unmatched:#?}\nprinted:\n{}",
        printed.join("\n")
    );
}

#[test]
fn the_pattern_matcher() {
    assert!(matches("error: a … b", "error: a xyz b"));
    assert!(matches("error: a …", "error: a xyz"));
    assert!(!matches("error: a … b", "error: a xyz c"));
    assert!(matches("error: x <reason>; y", "error: x why; y"));
    assert!(!matches("error: exact", "error: exact and more"));
}
