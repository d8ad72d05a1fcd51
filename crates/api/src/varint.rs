//! LEB128 integers (zigzag for signed ones): the compact byte forms both sides store and send.
//!
//! Owns: the encoding, its length, and a bounds-checked [`Reader`]. Does not own what the bytes
//! mean (block entry columns in `control_plane::entries`, the control plane's index sets and
//! pending runs).

/// Why bytes did not read as a varint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VarintError {
    #[error("bytes end inside a value")]
    Truncated,
    #[error("a value is longer than 64 bits")]
    TooLong,
}

/// Appends `v`, 7 bits a byte, low bits first.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Bytes [`put`] takes for `v`.
pub fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Signed to unsigned, small magnitudes to small values.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads values from the front of a byte slice; never reads past its end.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Every byte read.
    pub fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    pub fn byte(&mut self) -> Result<u8, VarintError> {
        let b = *self.bytes.get(self.at).ok_or(VarintError::Truncated)?;
        self.at += 1;
        Ok(b)
    }

    pub fn get(&mut self) -> Result<u64, VarintError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(VarintError::TooLong)
    }

    pub fn get_signed(&mut self) -> Result<i64, VarintError> {
        self.get().map(unzigzag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_bad_bytes_are_refused() {
        let values = [0u64, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let mut out = Vec::new();
        for v in values {
            let before = out.len();
            put(&mut out, v);
            assert_eq!(out.len() - before, len(v), "{v}");
        }
        let mut r = Reader::new(&out);
        for v in values {
            assert_eq!(r.get(), Ok(v));
        }
        assert!(r.is_done());
        assert_eq!(r.get(), Err(VarintError::Truncated));
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
        assert_eq!(Reader::new(&[0x80]).get(), Err(VarintError::Truncated));
        assert_eq!(Reader::new(&[0xff; 11]).get(), Err(VarintError::TooLong));
    }
}
