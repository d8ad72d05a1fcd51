//! The consistent-hash ring of one availability zone: which agent owns which block.
//!
//! Owns: placing agents on the ring (virtual nodes) and mapping a block to its owner. Does not
//! own membership (the `Membership` actor says who is in the zone) or connections. Hashes are
//! SHA-256 based so every agent, whatever its build, computes the same owner.

use sha2::{Digest, Sha256};

use crate::actors::read::block::BlockLocation;

/// Virtual nodes per agent: enough to spread blocks evenly over a handful of agents.
pub const VNODES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingNode {
    pub agent_id: String,
    /// `host:port` of the agent's peer listener.
    pub peer_addr: String,
}

#[derive(Debug, Clone, Default)]
pub struct Ring {
    points: Vec<(u64, usize)>,
    nodes: Vec<RingNode>,
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    let d = h.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&d[..8]);
    u64::from_le_bytes(first)
}

impl Ring {
    pub fn new(mut nodes: Vec<RingNode>) -> Self {
        nodes.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
        nodes.dedup_by(|a, b| a.agent_id == b.agent_id);
        let mut points: Vec<(u64, usize)> = nodes
            .iter()
            .enumerate()
            .flat_map(|(i, n)| {
                (0..VNODES as u64)
                    .map(move |v| (hash(&[n.agent_id.as_bytes(), &v.to_le_bytes()]), i))
            })
            .collect();
        points.sort_unstable();
        Self { points, nodes }
    }

    pub fn nodes(&self) -> &[RingNode] {
        &self.nodes
    }

    /// The agent that owns `block`: the first virtual node at or after the block's hash.
    pub fn owner(&self, block: &BlockLocation) -> Option<&RingNode> {
        if self.points.is_empty() {
            return None;
        }
        let h = hash(&[
            block.object_key.as_bytes(),
            &block.offset.to_le_bytes(),
            &block.len.to_le_bytes(),
        ]);
        let i = self.points.partition_point(|(p, _)| *p < h);
        let (_, node) = self.points[i % self.points.len()];
        self.nodes.get(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn node(id: &str) -> RingNode {
        RingNode {
            agent_id: id.into(),
            peer_addr: format!("{id}:9222"),
        }
    }

    fn block(i: u64) -> BlockLocation {
        BlockLocation {
            object_key: format!("infinistream/g/objects/{i:020}.obj"),
            offset: 8,
            len: 100,
        }
    }

    #[test]
    fn every_block_has_one_owner_and_load_is_spread() {
        let ring = Ring::new(vec![node("a"), node("b"), node("c")]);
        let mut load: HashMap<String, usize> = HashMap::new();
        for i in 0..3000 {
            *load
                .entry(ring.owner(&block(i)).unwrap().agent_id.clone())
                .or_default() += 1;
        }
        assert_eq!(load.len(), 3);
        assert!(load.values().all(|&n| n > 500), "{load:?}");
    }

    #[test]
    fn owners_agree_whatever_the_member_order_and_move_little() {
        let a = Ring::new(vec![node("a"), node("b"), node("c")]);
        let b = Ring::new(vec![node("c"), node("a"), node("b"), node("a")]);
        let fewer = Ring::new(vec![node("a"), node("c")]);
        let mut moved = 0;
        for i in 0..1000 {
            let o = a.owner(&block(i)).unwrap();
            assert_eq!(o, b.owner(&block(i)).unwrap());
            let f = fewer.owner(&block(i)).unwrap();
            if o.agent_id != "b" {
                // Blocks of agents that stay keep their owner.
                assert_eq!(o, f);
            } else {
                moved += 1;
            }
        }
        assert!(moved > 0);
        assert!(Ring::new(Vec::new()).owner(&block(1)).is_none());
    }
}
