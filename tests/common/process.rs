//! An agent as a separate OS process: the real binary, configured through its environment the way
//! an operator would, with its port read back from the `infinistream agent started` log line.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use super::agent::{GROUP_ID, GROUP_KEY};

pub struct AgentProcess {
    pub port: u16,
    /// The monitoring port (`/metrics`, `/varz`).
    pub http_port: u16,
    pub url: String,
    child: Child,
}

impl AgentProcess {
    pub fn start(bucket_url: &str, control_plane_url: &str) -> Self {
        Self::start_with_env(bucket_url, control_plane_url, &[])
    }

    /// Like `start`, with extra `INFINISTREAM_*` (or other) environment variables.
    pub fn start_with_env(bucket_url: &str, control_plane_url: &str, env: &[(&str, &str)]) -> Self {
        // e.g. `INFINISTREAM_TEST_AGENT_WRAPPER="heaptrack -o /tmp/agent"` to profile the agent
        // of a test; the process measured is then the wrapper's.
        let wrapper = std::env::var("INFINISTREAM_TEST_AGENT_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(env!("CARGO_BIN_EXE_infinistream"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_infinistream")),
        };
        let mut child = command
            .args([
                "agent",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--http-port",
                "0",
            ])
            .args([
                "--peer-port",
                "0",
                "--batch-write",
                "50ms",
                "--workers",
                "2",
            ])
            .env("INFINISTREAM_GROUP_ID", GROUP_ID)
            .env("INFINISTREAM_GROUP_KEY", GROUP_KEY)
            .env("INFINISTREAM_BUCKET_NAME", bucket_url)
            .env("INFINISTREAM_CONTROL_PLANE_URL", control_plane_url)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("agent binary starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sent {
                    continue; // keep draining so the agent never blocks on a full pipe
                }
                let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let message = v.get("message").or_else(|| v.pointer("/fields/message"));
                if message.and_then(|m| m.as_str()) == Some("infinistream agent started") {
                    let field = |name: &str| {
                        v.get(name)
                            .or_else(|| v.pointer(&format!("/fields/{name}")))
                            .and_then(|p| p.as_u64())
                    };
                    let _ = tx.send(field("port").zip(field("http_port")));
                    sent = true;
                }
            }
        });
        let (port, http_port) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("agent logged that it started")
            .expect("the started line carries the ports");
        let port = port as u16;
        Self {
            port,
            http_port: http_port as u16,
            url: format!("nats://127.0.0.1:{port}"),
            child,
        }
    }
}

impl AgentProcess {
    /// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`), 0 when unreadable.
    #[allow(dead_code)]
    pub fn status_kib(&self, field: &str) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl AgentProcess {
    /// The value of an unlabelled metric on the agent's `/metrics`, 0 when absent.
    #[allow(dead_code)]
    pub async fn metric(&self, name: &str) -> f64 {
        let (_, page) = super::http_get(self.http_port, "/metrics", &[]).await;
        super::metric_value(&page, name).unwrap_or(0.0)
    }
}

impl AgentProcess {
    /// SIGKILL: the agent gets no chance to leave the group or close its sockets itself.
    #[allow(dead_code)]
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
