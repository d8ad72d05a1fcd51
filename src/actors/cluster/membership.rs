//! Membership: this agent's lease with the control plane and the view of its availability zone.
//!
//! Owns: registering, heartbeating at the lease's interval (registering again when the control
//! plane forgot us), polling `GET /v1/agents`, and telling subscribers when the zone's member
//! list changes. Does not own what members are used for: the peer cache builds its ring from
//! them, the accept loop puts their client addresses in INFO's `connect_urls`.
//!
//! `MembersChanged` reports only agents of this agent's zone (`availability_zone`, "" when
//! unset): agents of other zones never serve each other's reads. `GroupChanged` reports every
//! member of the group, whatever its zone, for the route mesh (core NATS crosses zones).

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use crate::control_plane::client::{ControlPlaneClient, CpError};
use infinistream_api::control_plane::model::{AgentInfo, AgentPorts, RegisterRequest};

/// The zone's members changed (sorted by agent id; this agent included once registered).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct MembersChanged {
    pub self_id: String,
    pub members: Vec<AgentInfo>,
}

/// The group's members changed, every zone (sorted by agent id; this agent included once
/// registered).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct GroupChanged {
    pub self_id: String,
    pub members: Vec<AgentInfo>,
}

/// Wiring: one more recipient of `GroupChanged` (it gets the current view at once).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SubscribeGroup(pub Recipient<GroupChanged>);

/// The current view of the zone.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Vec<AgentInfo>")]
pub struct GetMembers;

/// Wiring: one more recipient of `MembersChanged` (it gets the current view at once).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<MembersChanged>);

#[derive(Debug, Clone)]
pub struct MembershipSettings {
    pub agent_id: String,
    pub zone: String,
    pub advertise_address: String,
    pub ports: AgentPorts,
    /// How often the member list is polled (heartbeats go at least as often as the lease asks).
    pub refresh: Duration,
}

/// Picks the address other agents and clients should use for this agent.
///
/// * `advertise` set to an address: that address;
/// * `advertise` = `auto-ip4`: the IPv4 address of the interface that routes outward (found by
///   "connecting" a UDP socket, which sends nothing), falling back as below;
/// * unset: the listen `host` unless it is a wildcard, else `127.0.0.1` (single-host setups;
///   multi-host deployments must set `advertise_address`).
pub fn resolve_advertise_address(advertise: Option<&str>, host: &str) -> String {
    let fallback = || match host {
        "" | "0.0.0.0" | "::" | "[::]" => Ipv4Addr::LOCALHOST.to_string(),
        h => h.to_string(),
    };
    match advertise {
        Some("auto-ip4") => first_routable_ipv4().map_or_else(fallback, |ip| ip.to_string()),
        Some(a) if !a.is_empty() => a.to_string(),
        _ => fallback(),
    }
}

fn first_routable_ipv4() -> Option<Ipv4Addr> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).ok()?;
    // A documentation address (TEST-NET-1): connect() on UDP only picks the route.
    sock.connect((Ipv4Addr::new(192, 0, 2, 1), 9)).ok()?;
    match sock.local_addr().ok()?.ip() {
        IpAddr::V4(ip) if !ip.is_loopback() && !ip.is_unspecified() => Some(ip),
        _ => None,
    }
}

/// `host:port` of a member's client listener, as nats-server lists `connect_urls`.
pub fn client_url(a: &AgentInfo) -> String {
    format!("{}:{}", a.advertise_address, a.ports.client)
}

/// `host:port` of a member's peer listener.
pub fn peer_addr(a: &AgentInfo) -> String {
    format!("{}:{}", a.advertise_address, a.ports.peer)
}

pub struct Membership {
    settings: MembershipSettings,
    client: Rc<ControlPlaneClient>,
    subscribers: Vec<Recipient<MembersChanged>>,
    group_subscribers: Vec<Recipient<GroupChanged>>,
    connect_urls: Option<watch::Sender<Vec<String>>>,
    members: Vec<AgentInfo>,
    /// Every member of the group, all zones.
    group: Vec<AgentInfo>,
    registered: bool,
    heartbeat: Duration,
    /// Consecutive failed ticks: only the first is a warning (no log flood during an outage).
    failures: u32,
    /// Set by `Leave`: no more heartbeats or registrations.
    left: bool,
}

/// Graceful shutdown: leave the virtual group now, so the zone's peers take over this agent's
/// share of the ring at once instead of at lease expiry. Answers whether the control plane
/// confirmed it.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct Leave;

enum Tick {
    Registered(Duration),
    Heartbeat,
    Lost,
}

impl Membership {
    pub fn new(settings: MembershipSettings, client: ControlPlaneClient) -> Self {
        Self {
            heartbeat: settings.refresh,
            settings,
            client: Rc::new(client),
            subscribers: Vec::new(),
            group_subscribers: Vec::new(),
            connect_urls: None,
            members: Vec::new(),
            group: Vec::new(),
            registered: false,
            failures: 0,
            left: false,
        }
    }

    /// Publishes the zone's client URLs on `tx` (read by the accept loop for INFO).
    pub fn with_connect_urls(mut self, tx: watch::Sender<Vec<String>>) -> Self {
        self.connect_urls = Some(tx);
        self
    }

    fn request(&self) -> RegisterRequest {
        RegisterRequest {
            agent_id: self.settings.agent_id.clone(),
            availability_zone: self.settings.zone.clone(),
            advertise_address: self.settings.advertise_address.clone(),
            ports: self.settings.ports,
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.left {
            return;
        }
        let client = self.client.clone();
        let registered = self.registered;
        let request = self.request();
        let agent_id = self.settings.agent_id.clone();
        ctx.spawn(
            async move {
                let tick = if registered {
                    match client.heartbeat(&agent_id).await {
                        Ok(r) if r.known => Ok(Tick::Heartbeat),
                        Ok(_) => Ok(Tick::Lost),
                        Err(e) => Err(e),
                    }
                } else {
                    client
                        .register(&request)
                        .await
                        .map(|l| Tick::Registered(Duration::from_millis(l.heartbeat_interval_ms)))
                };
                let tick = match tick {
                    Ok(Tick::Lost) => {
                        tracing::info!(agent_id = %agent_id, "control plane forgot this agent, registering again");
                        client
                            .register(&request)
                            .await
                            .map(|l| Tick::Registered(Duration::from_millis(l.heartbeat_interval_ms)))
                    }
                    other => other,
                };
                let members = match &tick {
                    Ok(_) => Some(client.agents().await),
                    Err(_) => None,
                };
                (tick, members)
            }
            .into_actor(self)
            .map(|(tick, members), act, ctx| {
                match tick {
                    Ok(Tick::Registered(interval)) => {
                        act.registered = true;
                        act.heartbeat = interval.max(Duration::from_millis(10));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        act.failures += 1;
                        log_cp_error("membership heartbeat failed", &e, act.failures);
                    }
                }
                match members {
                    Some(Ok(all)) => {
                        act.failures = 0;
                        act.update(all)
                    }
                    Some(Err(e)) => {
                        act.failures += 1;
                        log_cp_error("listing agents failed", &e, act.failures)
                    }
                    None => {}
                }
                let next = act.heartbeat.min(act.settings.refresh);
                ctx.run_later(next, |act, ctx| act.tick(ctx));
            }),
        );
    }

    fn update(&mut self, mut all: Vec<AgentInfo>) {
        all.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        self.update_group(&all);
        let zone: Vec<AgentInfo> = all
            .into_iter()
            .filter(|a| a.availability_zone == self.settings.zone)
            .collect();
        if same_members(&zone, &self.members) {
            self.members = zone;
            return;
        }
        tracing::info!(
            zone = %self.settings.zone,
            members = zone.len(),
            "availability zone membership changed"
        );
        self.members = zone;
        let msg = MembersChanged {
            self_id: self.settings.agent_id.clone(),
            members: self.members.clone(),
        };
        self.subscribers.retain(|s| s.connected());
        for s in &self.subscribers {
            s.do_send(msg.clone());
        }
        if let Some(tx) = &self.connect_urls {
            tx.send_replace(self.members.iter().map(client_url).collect());
        }
    }
}

impl Membership {
    fn update_group(&mut self, all: &[AgentInfo]) {
        if same_members(all, &self.group) {
            self.group = all.to_vec();
            return;
        }
        self.group = all.to_vec();
        let msg = GroupChanged {
            self_id: self.settings.agent_id.clone(),
            members: self.group.clone(),
        };
        self.group_subscribers.retain(|s| s.connected());
        for s in &self.group_subscribers {
            s.do_send(msg.clone());
        }
    }
}

/// Same agents at the same addresses (heartbeat times aside); both sorted by agent id.
fn same_members(a: &[AgentInfo], b: &[AgentInfo]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.agent_id == b.agent_id
                && a.availability_zone == b.availability_zone
                && a.advertise_address == b.advertise_address
                && a.ports == b.ports
        })
}

fn log_cp_error(what: &str, e: &CpError, failures: u32) {
    if failures <= 1 {
        tracing::warn!(error = %e, "{what}");
    } else {
        tracing::debug!(error = %e, failures, "{what}");
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
    }
}

impl Handler<Leave> for Membership {
    type Result = ResponseFuture<bool>;
    fn handle(&mut self, _: Leave, _: &mut Self::Context) -> Self::Result {
        self.left = true;
        let client = self.client.clone();
        let agent_id = self.settings.agent_id.clone();
        Box::pin(async move {
            match client.leave(&agent_id).await {
                Ok(_) => true,
                Err(e) => {
                    tracing::warn!(agent_id = %agent_id, error = %e, "leaving the virtual group failed; the lease will expire");
                    false
                }
            }
        })
    }
}

impl Handler<GetMembers> for Membership {
    type Result = MessageResult<GetMembers>;
    fn handle(&mut self, _: GetMembers, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.members.clone())
    }
}

impl Handler<Subscribe> for Membership {
    type Result = ();
    fn handle(&mut self, m: Subscribe, _: &mut Self::Context) {
        if !self.members.is_empty() {
            m.0.do_send(MembersChanged {
                self_id: self.settings.agent_id.clone(),
                members: self.members.clone(),
            });
        }
        self.subscribers.push(m.0);
    }
}

impl Handler<SubscribeGroup> for Membership {
    type Result = ();
    fn handle(&mut self, m: SubscribeGroup, _: &mut Self::Context) {
        if !self.group.is_empty() {
            m.0.do_send(GroupChanged {
                self_id: self.settings.agent_id.clone(),
                members: self.group.clone(),
            });
        }
        self.group_subscribers.push(m.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertise_address_resolution() {
        assert_eq!(
            resolve_advertise_address(Some("10.1.2.3"), "0.0.0.0"),
            "10.1.2.3"
        );
        assert_eq!(resolve_advertise_address(None, "0.0.0.0"), "127.0.0.1");
        assert_eq!(
            resolve_advertise_address(None, "192.168.0.7"),
            "192.168.0.7"
        );
        assert_eq!(resolve_advertise_address(Some(""), "::"), "127.0.0.1");
        let auto = resolve_advertise_address(Some("auto-ip4"), "0.0.0.0");
        assert!(auto.parse::<Ipv4Addr>().is_ok(), "{auto}");
    }

    /// Forwards what it is told to a channel the test awaits.
    struct Collector {
        group: tokio::sync::mpsc::UnboundedSender<GroupChanged>,
        zone: tokio::sync::mpsc::UnboundedSender<MembersChanged>,
    }

    impl Actor for Collector {
        type Context = Context<Self>;
    }

    impl Handler<GroupChanged> for Collector {
        type Result = ();
        fn handle(&mut self, m: GroupChanged, _: &mut Self::Context) {
            let _ = self.group.send(m);
        }
    }

    impl Handler<MembersChanged> for Collector {
        type Result = ();
        fn handle(&mut self, m: MembersChanged, _: &mut Self::Context) {
            let _ = self.zone.send(m);
        }
    }

    fn member(
        id: &str,
        zone: &str,
        cp: &infinistream_control_plane::RunningControlPlane,
    ) -> Addr<Membership> {
        let settings = MembershipSettings {
            agent_id: id.to_owned(),
            zone: zone.to_owned(),
            advertise_address: "127.0.0.1".to_owned(),
            ports: AgentPorts {
                client: 4222,
                peer: 9222,
                http: 8222,
            },
            refresh: Duration::from_millis(20),
        };
        let key = crate::config::Secret::new("k");
        Membership::new(settings, ControlPlaneClient::new(cp.base_url(), "g", &key)).start()
    }

    /// The group view spans zones; the zone view keeps to this agent's zone.
    #[actix_rt::test]
    async fn the_group_view_spans_zones_and_the_zone_view_does_not() {
        let cp = infinistream_control_plane::start_in_process(
            infinistream_control_plane::ControlPlaneConfig {
                listen: ([127, 0, 0, 1], 0).into(),
                data_dir: None,
                group_id: "g".into(),
                group_key: crate::config::Secret::new("k"),
            },
        )
        .await
        .expect("control plane");
        let a = member("agent-a", "zone-1", &cp);
        let _b = member("agent-b", "zone-2", &cp);
        let (group_tx, mut group_rx) = tokio::sync::mpsc::unbounded_channel();
        let (zone_tx, mut zone_rx) = tokio::sync::mpsc::unbounded_channel();
        let collector = Collector {
            group: group_tx,
            zone: zone_tx,
        }
        .start();
        a.do_send(SubscribeGroup(collector.clone().recipient()));
        a.do_send(Subscribe(collector.recipient()));
        let both = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let m = group_rx.recv().await.expect("group views");
                if m.members.len() == 2 {
                    return m;
                }
            }
        })
        .await
        .expect("both agents in the group view");
        let ids: Vec<&str> = both.members.iter().map(|m| m.agent_id.as_str()).collect();
        assert_eq!(ids, vec!["agent-a", "agent-b"]);
        assert_eq!(both.self_id, "agent-a");
        let zone = zone_rx.recv().await.expect("a zone view");
        let ids: Vec<&str> = zone.members.iter().map(|m| m.agent_id.as_str()).collect();
        assert_eq!(ids, vec!["agent-a"]);
        cp.stop().await;
    }
}
