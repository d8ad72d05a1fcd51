//! The control plane in process, on its own thread and actix system, over real HTTP.

use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use infinistream::config::Secret;
use infinistream_control_plane::{self as control_plane, ControlPlaneConfig, ControlPlaneOptions};

use super::agent::{GROUP_ID, GROUP_KEY};

pub struct TestControlPlane {
    pub url: String,
    pub port: u16,
    pub data_dir: Option<PathBuf>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl TestControlPlane {
    /// In memory, on a free port.
    pub fn start() -> Self {
        Self::start_at(None, 0)
    }

    /// With a data directory (survives restarts), on `port` (0 = a free one).
    pub fn start_at(data_dir: Option<PathBuf>, port: u16) -> Self {
        let config = ControlPlaneConfig {
            listen: format!("127.0.0.1:{port}")
                .parse()
                .expect("loopback address"),
            data_dir: data_dir.clone(),
            group_id: GROUP_ID.into(),
            group_key: Secret::new(GROUP_KEY),
        };
        let options = ControlPlaneOptions {
            agent_expiry: Duration::from_secs(3),
            workers: 1,
            ..ControlPlaneOptions::default()
        };
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let system = actix_rt::System::new();
            system.block_on(async move {
                match control_plane::start_in_process_with(config, options).await {
                    Ok(running) => {
                        let _ = ready_tx.send(Ok(running.local_addr().port()));
                        let _ = stop_rx.await;
                        running.stop().await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.to_string()));
                    }
                }
            });
        });
        let port = ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("control plane thread answered")
            .expect("control plane started");
        Self {
            url: format!("http://127.0.0.1:{port}"),
            port,
            data_dir,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// Stops it (as a crash would, for the agents) and waits until the port is free.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stops and starts again on the same port and data directory.
    pub fn restart(&mut self) {
        self.stop();
        let next = Self::start_at(self.data_dir.clone(), self.port);
        *self = next;
    }
}

impl TestControlPlane {
    /// Runs `f` with a real client on a throwaway actix system (the client is not `Send`).
    pub fn with_client<T: Send + 'static>(
        &self,
        f: impl AsyncFnOnce(&infinistream::control_plane::client::ControlPlaneClient) -> T
        + Send
        + 'static,
    ) -> T {
        let url = self.url.clone();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let client = infinistream::control_plane::client::ControlPlaneClient::new(
                    url,
                    GROUP_ID,
                    &Secret::new(GROUP_KEY),
                );
                f(&client).await
            })
        })
        .join()
        .expect("client thread")
    }

    /// Successful requests to `endpoint` (a route pattern such as `/v1/commits`) since this
    /// instance started, from its own `/metrics`.
    pub async fn ok_requests(&self, endpoint: &str) -> u64 {
        let (status, page) = super::http_get(
            self.port,
            "/metrics",
            &[
                format!("x-infinistream-group-id: {GROUP_ID}"),
                format!("Authorization: Bearer {GROUP_KEY}"),
            ],
        )
        .await;
        assert_eq!(status, 200, "{page}");
        let series = format!(
            "infinistream_control_plane_requests_total{{endpoint=\"{endpoint}\",status=\"200\"}}"
        );
        super::metric_value(&page, &series).unwrap_or(0.0) as u64
    }

    /// Object keys recorded as uploaded but never committed.
    pub fn orphan_keys(&self) -> Vec<String> {
        self.with_client(async |c| {
            c.orphans()
                .await
                .map(|o| o.into_iter().map(|o| o.object_key).collect())
                .unwrap_or_default()
        })
    }
}

impl Drop for TestControlPlane {
    fn drop(&mut self) {
        self.stop();
    }
}
