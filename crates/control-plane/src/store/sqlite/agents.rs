//! Owns: the `agents` table: registration, heartbeats, expiry. Does not own: what membership means
//! (the server's `/v1/agents`).

use super::*;

pub(super) fn register_agent(
    store: &mut SqliteStore,
    request: &RegisterRequest,
    now_ms: i64,
) -> Result<AgentInfo, StoreError> {
    store.conn
        .prepare_cached(
            "INSERT INTO agents (agent_id, availability_zone, advertise_address, client_port, peer_port, http_port, registered_at, last_heartbeat) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7) \
             ON CONFLICT(agent_id) DO UPDATE SET availability_zone = excluded.availability_zone, \
             advertise_address = excluded.advertise_address, client_port = excluded.client_port, \
             peer_port = excluded.peer_port, http_port = excluded.http_port, \
             registered_at = excluded.registered_at, last_heartbeat = excluded.last_heartbeat",
        )?
        .execute(params![
            request.agent_id,
            request.availability_zone,
            request.advertise_address,
            i64::from(request.ports.client),
            i64::from(request.ports.peer),
            i64::from(request.ports.http),
            now_ms
        ])?;
    Ok(AgentInfo {
        agent_id: request.agent_id.clone(),
        availability_zone: request.availability_zone.clone(),
        advertise_address: request.advertise_address.clone(),
        ports: request.ports,
        registered_at_ms: now_ms,
        last_heartbeat_ms: now_ms,
    })
}
pub(super) fn heartbeat(
    store: &mut SqliteStore,
    agent_id: &str,
    now_ms: i64,
    expiry_ms: i64,
) -> Result<Option<AgentInfo>, StoreError> {
    let found: Option<AgentInfo> = store
        .conn
        .prepare_cached(&format!(
            "SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ?1"
        ))?
        .query_row(params![agent_id], agent_from_row)
        .optional()?;
    let Some(mut agent) = found else {
        return Ok(None);
    };
    if now_ms - agent.last_heartbeat_ms > expiry_ms {
        store
            .conn
            .prepare_cached("DELETE FROM agents WHERE agent_id = ?1")?
            .execute(params![agent_id])?;
        return Ok(None);
    }
    store
        .conn
        .prepare_cached("UPDATE agents SET last_heartbeat = ?2 WHERE agent_id = ?1")?
        .execute(params![agent_id, now_ms])?;
    agent.last_heartbeat_ms = now_ms;
    Ok(Some(agent))
}
pub(super) fn remove_agent(store: &mut SqliteStore, agent_id: &str) -> Result<bool, StoreError> {
    let removed = store
        .conn
        .prepare_cached("DELETE FROM agents WHERE agent_id = ?1")?
        .execute(params![agent_id])?;
    Ok(removed > 0)
}
pub(super) fn agents(
    store: &mut SqliteStore,
    now_ms: i64,
    expiry_ms: i64,
) -> Result<Vec<AgentInfo>, StoreError> {
    store
        .conn
        .prepare_cached("DELETE FROM agents WHERE last_heartbeat < ?1")?
        .execute(params![now_ms - expiry_ms])?;
    let mut stmt = store.conn.prepare_cached(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents ORDER BY agent_id"
    ))?;
    let rows = stmt
        .query_map([], agent_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}
pub(super) fn agent_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentInfo> {
    Ok(AgentInfo {
        agent_id: r.get(0)?,
        availability_zone: r.get(1)?,
        advertise_address: r.get(2)?,
        ports: AgentPorts {
            client: u16::try_from(r.get::<_, i64>(3)?).unwrap_or(0),
            peer: u16::try_from(r.get::<_, i64>(4)?).unwrap_or(0),
            http: u16::try_from(r.get::<_, i64>(5)?).unwrap_or(0),
        },
        registered_at_ms: r.get(6)?,
        last_heartbeat_ms: r.get(7)?,
    })
}

pub(super) const AGENT_COLUMNS: &str = "agent_id, availability_zone, advertise_address, client_port, peer_port, http_port, registered_at, last_heartbeat";
