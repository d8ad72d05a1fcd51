//! Owns: the byte form of a pending run (one claim's deliveries still waiting for their acks) in
//! the `consumer_runs` table. Does not own: which deliveries form a run or when one is written
//! (`crate::consumers`), nor the table's other columns (`consumers`).
//!
//! Layout, all LEB128 (signed ones zigzag), entries in consumer-sequence order, each value a
//! delta from the entry before (the first from the run's first consumer sequence, and from 0):
//!
//! ```text
//! version = 1 | count | (cseq delta, sseq delta (signed), deliveries, deadline delta (signed))*
//! ```
//!
//! A claim's new messages cost about four bytes each: deltas of 1, one delivery, one deadline.

use infinistream_api::varint::{self, Reader};

use super::super::PendingDelivery;

const VERSION: u64 = 1;

pub(super) fn encode(first_cseq: u64, entries: &[PendingDelivery]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + entries.len() * 4);
    varint::put(&mut out, VERSION);
    varint::put(&mut out, entries.len() as u64);
    let (mut cseq, mut sseq, mut deadline) = (first_cseq, 0u64, 0i64);
    for e in entries {
        varint::put(&mut out, e.cseq.wrapping_sub(cseq));
        varint::put(&mut out, varint::zigzag(e.sseq.wrapping_sub(sseq) as i64));
        varint::put(&mut out, e.deliveries);
        varint::put(&mut out, varint::zigzag(e.deadline.wrapping_sub(deadline)));
        (cseq, sseq, deadline) = (e.cseq, e.sseq, e.deadline);
    }
    out
}

/// The run's entries; an error names what is wrong (the caller reports the row).
pub(super) fn decode(first_cseq: u64, bytes: &[u8]) -> Result<Vec<PendingDelivery>, String> {
    let mut r = Reader::new(bytes);
    let bad = |e: varint::VarintError| e.to_string();
    let version = r.get().map_err(bad)?;
    if version != VERSION {
        return Err(format!(
            "pending run version {version}, this build reads {VERSION}"
        ));
    }
    let count = usize::try_from(r.get().map_err(bad)?).unwrap_or(usize::MAX);
    // Every entry takes at least four bytes.
    if count > bytes.len() / 4 {
        return Err(format!(
            "pending run claims {count} entries in {} bytes",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    let (mut cseq, mut sseq, mut deadline) = (first_cseq, 0u64, 0i64);
    for _ in 0..count {
        cseq = cseq.wrapping_add(r.get().map_err(bad)?);
        sseq = sseq.wrapping_add(r.get_signed().map_err(bad)? as u64);
        let deliveries = r.get().map_err(bad)?;
        deadline = deadline.wrapping_add(r.get_signed().map_err(bad)?);
        out.push(PendingDelivery {
            sseq,
            cseq,
            deliveries,
            deadline,
        });
    }
    if !r.is_done() {
        return Err("pending run has trailing bytes".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_round_trip_in_a_few_bytes_and_damage_is_an_error() {
        let deadline = 1_800_000_000_000_000_000;
        let mut entries: Vec<PendingDelivery> = (0..500)
            .map(|i| PendingDelivery {
                sseq: 1000 + i,
                cseq: 40 + i,
                deliveries: 1,
                deadline,
            })
            .collect();
        let bytes = encode(40, &entries);
        assert!(bytes.len() < 4 * 500 + 16, "{} bytes", bytes.len());
        assert_eq!(decode(40, &bytes), Ok(entries.clone()));
        // Gaps, a redelivery, an earlier deadline (a nak), a stream sequence going back.
        entries.retain(|e| e.cseq % 3 != 0);
        entries[5].deliveries = 4;
        entries[6].deadline -= 5;
        entries[7].sseq = 2;
        assert_eq!(decode(40, &encode(40, &entries)), Ok(entries.clone()));
        assert_eq!(decode(7, &encode(7, &[])), Ok(Vec::new()));
        let good = encode(40, &entries);
        for cut in 0..good.len() {
            assert!(decode(40, &good[..cut]).is_err(), "cut at {cut}");
        }
        assert!(decode(40, &[2, 0]).is_err(), "unknown version");
        assert!(
            decode(40, &[1, 0xff, 0xff, 0xff, 0x0f]).is_err(),
            "huge count"
        );
    }
}
