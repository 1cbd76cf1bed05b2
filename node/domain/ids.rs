//! Record ids: UUID version 7 (RFC 9562) whose random bits carry the origin's region code
//! and the changelog sequence of the record's first version.
//!
//! RFC 9562 §6.2 allows the bits after the timestamp to hold a dedicated counter and
//! other node data. Ids stay time-ordered and unique across the federation (no two
//! origins share a region code, and one origin never reuses a sequence), and the origin
//! can find a record from its id alone, without an id index: one sled insert less per
//! record on the push path.
//!
//! Layout after the 48-bit millisecond timestamp and the version nibble:
//! `rand_a` (12 bits) = region >> 8; after the variant bits, `rand_b` (62 bits) =
//! region & 0xff (8 bits) | first sequence (48 bits) | 6 zero bits.

use uuid::Uuid;

use crate::domain::region::RegionCode;

/// Sequences up to 2^48 fit (some 2.8 * 10^14 versions per origin).
pub(crate) const MAX_SEQ: u64 = (1 << 48) - 1;

fn region_number(region: &RegionCode) -> u32 {
    region.as_str().parse::<u32>().unwrap_or(0)
}

/// The id of a record first written at `seq` by the node of `region`, at `now_ms`. The six
/// spare bits are zero: uniqueness comes from the sequence, and ids are names, not secrets
/// (access is decided by certificates).
pub(crate) fn new_id(now_ms: i64, region: &RegionCode, seq: u64) -> Uuid {
    let ms = u64::try_from(now_ms).unwrap_or(0) & 0xFFFF_FFFF_FFFF;
    let region = region_number(region) & 0xF_FFFF;
    let rand_a = (region >> 8) as u16;
    let rand_b: u64 = (u64::from(region & 0xFF) << 54) | ((seq & MAX_SEQ) << 6);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    b[6] = 0x70 | ((rand_a >> 8) as u8 & 0x0F);
    b[7] = rand_a as u8;
    let rb = rand_b.to_be_bytes();
    b[8] = 0x80 | (rb[0] & 0x3F);
    b[9..].copy_from_slice(&rb[1..]);
    Uuid::from_bytes(b)
}

/// The region number and first sequence an id of this layout carries; `None` for other
/// UUIDs. The caller checks that the changelog entry at that sequence has this id.
pub(crate) fn locate(id: &Uuid) -> Option<(u32, u64)> {
    let b = id.as_bytes();
    if b[6] >> 4 != 7 || b[8] >> 6 != 0b10 {
        return None;
    }
    let rand_a = (u16::from(b[6] & 0x0F) << 8) | u16::from(b[7]);
    let mut rb = [0u8; 8];
    rb[0] = b[8] & 0x3F;
    rb[1..].copy_from_slice(&b[9..]);
    let rand_b = u64::from_be_bytes(rb);
    let region_of_id = (u32::from(rand_a) << 8) | ((rand_b >> 54) as u32 & 0xFF);
    Some((region_of_id, (rand_b >> 6) & MAX_SEQ))
}

/// The region of the node that made a record id (ids carry it), or `None` for an id not
/// made by a node.
pub fn id_origin(id: &Uuid) -> Option<RegionCode> {
    let (region, _) = locate(id)?;
    RegionCode::parse(&format!("{region:06}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_version_7_and_carry_region_and_sequence() {
        let lingyuan = RegionCode::parse("211382").unwrap();
        let chaoyang = RegionCode::parse("211300").unwrap();
        for seq in [1, 2, 1000, MAX_SEQ] {
            let id = new_id(1_790_000_000_000, &lingyuan, seq);
            assert_eq!(id.get_version_num(), 7);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(locate(&id), Some((211382, seq)));
            assert_ne!(
                id,
                new_id(1_790_000_000_000, &chaoyang, seq),
                "regions keep ids apart"
            );
        }
        let a = new_id(1_790_000_000_000, &lingyuan, 5);
        let b = new_id(1_790_000_000_001, &lingyuan, 6);
        assert!(a < b, "time-ordered");
        assert_eq!(locate(&Uuid::from_u128(0)), None, "not a version 7 id");
    }
}
