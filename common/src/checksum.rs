//! The checksum every gran file (training checkpoint, generator export) carries in its metadata:
//! over each tensor's name and little-endian bytes, in name order. It detects corruption, not
//! tampering.

/// A 64-bit checksum of byte strings (word-wise multiply-xorshift).
#[derive(Clone, Copy, Debug)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Checksum(0x243F_6A88_85A3_08D3)
    }
}

impl Checksum {
    /// Takes in one byte string (its length too, so that boundaries between strings count).
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0 ^ (bytes.len() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
            h = (h ^ w).wrapping_mul(0xFF51_AFD7_ED55_8CCD);
            h ^= h >> 29;
        }
        for &b in chunks.remainder() {
            h = (h ^ b as u64).wrapping_mul(0xC4CE_B9FE_1A85_EC53);
        }
        self.0 = h;
    }

    /// Takes in one tensor: its name, then its bytes.
    pub fn tensor(&mut self, name: &str, bytes: &[u8]) {
        self.update(name.as_bytes());
        self.update(bytes);
    }

    pub fn value(self) -> u64 {
        self.0
    }
}

/// The checksum of (name, bytes) pairs given in name order, as files store it.
pub fn tensor_checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [u8])>) -> u64 {
    let mut sum = Checksum::default();
    for (name, bytes) in tensors {
        sum.tensor(name, bytes);
    }
    sum.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_bytes_and_boundaries_all_count() {
        let base = tensor_checksum([("a", &[1u8, 2, 3][..])].into_iter());
        assert_ne!(base, tensor_checksum([("b", &[1u8, 2, 3][..])].into_iter()));
        assert_ne!(base, tensor_checksum([("a", &[1u8, 2, 4][..])].into_iter()));
        assert_ne!(base, tensor_checksum([("a", &[1u8, 2][..]), ("", &[3u8][..])].into_iter()));
        // A known value: files written by every earlier version carry it.
        assert_eq!(tensor_checksum(std::iter::empty()), 0x243F_6A88_85A3_08D3);
    }
}
