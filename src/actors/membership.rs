//! Membership: this agent's lease with the control plane and the view of its availability zone.
//!
//! Owns: registering, heartbeating at the lease's interval (registering again when the control
//! plane forgot us), polling `GET /v1/agents`, and telling subscribers when the zone's member
//! list changes. Does not own what members are used for: the peer cache builds its ring from
//! them, the accept loop puts their client addresses in INFO's `connect_urls`.
//!
//! Only agents of this agent's zone are reported (`availability_zone`, "" when unset): agents of
//! other zones never serve each other's reads.

use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::rc::Rc;
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::watch;

use crate::control_plane::client::{ControlPlaneClient, CpError};
use crate::control_plane::model::{AgentInfo, AgentPorts, RegisterRequest};

/// The zone's members changed (sorted by agent id; this agent included once registered).
#[derive(Debug, Clone, PartialEq, Eq, Message)]
#[rtype(result = "()")]
pub struct MembersChanged {
    pub self_id: String,
    pub members: Vec<AgentInfo>,
}

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
    connect_urls: Option<watch::Sender<Vec<String>>>,
    members: Vec<AgentInfo>,
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
            connect_urls: None,
            members: Vec::new(),
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

    fn update(&mut self, all: Vec<AgentInfo>) {
        let mut zone: Vec<AgentInfo> = all
            .into_iter()
            .filter(|a| a.availability_zone == self.settings.zone)
            .collect();
        zone.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        let same = zone.len() == self.members.len()
            && zone.iter().zip(&self.members).all(|(a, b)| {
                a.agent_id == b.agent_id
                    && a.advertise_address == b.advertise_address
                    && a.ports == b.ports
            });
        if same {
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
}
