//! The whole stack on loopback: S3 (s3s-fs over HTTP), the control plane (HTTP), N agents.

use infinistream::agent::AgentTuning;
use infinistream::config::{AgentConfig, BucketUrl};

use super::agent::{TestAgent, test_config};
use super::control_plane::TestControlPlane;
use super::s3::TestS3;

pub struct Stack {
    pub s3: TestS3,
    pub cp: TestControlPlane,
    pub agents: Vec<TestAgent>,
    /// Keeps the control plane's data directory alive for the test.
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub fn start(agents: usize) -> Self {
        Self::start_with(agents, |_, _, _| {})
    }

    /// `adjust(i, config, tuning)` runs for agent `i` before it starts.
    pub fn start_with(
        agents: usize,
        adjust: impl Fn(usize, &mut AgentConfig, &mut AgentTuning),
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let s3 = TestS3::start();
        let cp = TestControlPlane::start_at(Some(dir.path().join("control-plane")), 0);
        let mut stack = Stack {
            s3,
            cp,
            agents: Vec::new(),
            dir,
        };
        for i in 0..agents {
            let mut config = stack.agent_config();
            let mut tuning = AgentTuning::default();
            adjust(i, &mut config, &mut tuning);
            stack.agents.push(TestAgent::start_config(config, tuning));
        }
        stack
    }

    /// One agent per entry, in that availability zone, with fast membership refreshes.
    pub fn start_zones(zones: &[&str]) -> Self {
        Self::start_zones_with(zones, |_, _, _| {})
    }

    /// `start_zones` with a further `adjust(i, config, tuning)` per agent.
    pub fn start_zones_with(
        zones: &[&str],
        adjust: impl Fn(usize, &mut AgentConfig, &mut AgentTuning),
    ) -> Self {
        Self::start_with(zones.len(), |i, config, tuning| {
            config.availability_zone = Some(zones[i].to_string());
            tuning.membership_refresh = std::time::Duration::from_millis(100);
            adjust(i, config, tuning);
        })
    }

    /// An agent configuration on this stack's bucket and control plane. The bucket URL turns
    /// object_store's own retries off so injected faults reach the uploader.
    pub fn agent_config(&self) -> AgentConfig {
        let mut c = test_config();
        c.bucket = BucketUrl::parse(&self.s3.bucket_url_with_retries(0)).expect("test bucket url");
        c.control_plane_url = self.cp.url.clone();
        c
    }

    /// Another agent on this stack, as a separate OS process running the real binary.
    pub fn agent_process(&self) -> super::process::AgentProcess {
        super::process::AgentProcess::start(&self.s3.bucket_url_with_retries(0), &self.cp.url)
    }

    pub fn url(&self, agent: usize) -> String {
        self.agents[agent].url.clone()
    }
}
