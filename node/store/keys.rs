//! Every key of every sled tree, in one place: the prefixes and the functions that build
//! keys from them. The byte layouts are the on-disk format (ARCHITECTURE.md, "Storage");
//! changing one breaks every existing data folder, and the golden-byte tests pin them.
//!
//! Within a tree, each kind of key starts with its own byte, so a prefix scan for one
//! kind never meets another (the test below checks it). Sequence keys are 8 bytes
//! big-endian, so they sort in sequence order.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::record::Content;
use crate::domain::region::RegionCode;

/// The `records` tree: current versions and the small state written with them.
pub(super) mod records {
    /// `a` -> the last changelog sequence applied to this tree (replay starts after it).
    pub(in crate::store) const APPLIED: &[u8] = b"a";
    /// `r` -> the region of the node the store belongs to (`bind_region`).
    pub(in crate::store) const REGION: &[u8] = b"r";
    /// `k` subject \0 category \0 origin \0 provider \0 reference -> current version.
    pub(in crate::store) const RECORD: u8 = b'k';
    /// `c` child region -> the child's cursor (its last sequence applied here).
    pub(in crate::store) const CURSOR: u8 = b'c';
    /// `o` uuid -> the natural key of a record applied from a child.
    pub(in crate::store) const REPLICA_ID: u8 = b'o';
    /// `n` -> the census `Figures`.
    pub(in crate::store) const FIGURES: &[u8] = b"n";
    /// `m` provider \0 period -> `Monthly`.
    pub(in crate::store) const MONTHLY: u8 = b'm';
    /// `d` YYYY-MM-DD -> the `Figures` at the end of that day.
    pub(in crate::store) const DAY: u8 = b'd';
    /// `l` -> the day of the last write.
    pub(in crate::store) const LAST_DAY: &[u8] = b"l";
    /// `f` child region -> the child's latest census report.
    pub(in crate::store) const CHILD_REPORT: u8 = b'f';
    /// `x` uuid -> (version, status) of a tombstone whose earlier versions await redaction.
    pub(in crate::store) const REDACT_QUEUE: u8 = b'x';
    /// `q` child region, child sequence -> an entry refused from that child.
    pub(in crate::store) const QUARANTINE: u8 = b'q';
}

/// The `usage` tree: sequence -> hash-chained entry, then the subject index.
pub(super) mod usage {
    /// Usage-log keys are sequences (8 bytes big-endian, so below 2^56 they start with
    /// 0); the subject index lives in the same tree, after them, so an entry and its index
    /// are written in one atomic batch: `INDEX` subject \0 sequence -> nothing.
    pub(in crate::store) const INDEX: [u8; 2] = [0xFF, b's'];
    /// Above every sequence key, below the index: the end of a scan of entries.
    pub(in crate::store) const END: [u8; 1] = [0x01];
}

/// The `notices` tree.
pub(super) mod notices {
    /// `q` next-hop region, from region, id -> a notice queued for a child.
    pub(in crate::store) const OUTBOX: u8 = b'q';
    /// `i` from region, id -> a notice received here.
    pub(in crate::store) const INBOX: u8 = b'i';
}

/// The `consents` tree.
pub(super) mod consents {
    /// `c` uuid -> the consent's latest state.
    pub(in crate::store) const CONSENT: u8 = b'c';
    /// `s` subject \0 uuid -> nothing.
    pub(in crate::store) const BY_SUBJECT: u8 = b's';
}

/// The `checkpoints` tree.
pub(super) mod checkpoints {
    /// `p` region, sequence -> a node's signed checkpoint.
    pub(in crate::store) const CHECKPOINT: u8 = b'p';
}

/// The `objections` tree.
pub(super) mod objections {
    /// `c` case uuid -> the case's latest state here.
    pub(in crate::store) const CASE: u8 = b'c';
    /// `r` record uuid, case uuid -> nothing.
    pub(in crate::store) const BY_RECORD: u8 = b'r';
}

/// `k` subject \0 category \0 origin \0 provider \0 reference: a provider's id is unique
/// only at its own node, so above the origin the origin's region keeps two providers
/// apart. None of the parts can hold a NUL: identifiers and codes are checked ASCII, and
/// references refuse control characters.
pub(super) fn natural(c: &Content, origin: &RegionCode) -> Vec<u8> {
    let mut key = Vec::with_capacity(
        11 + c.subject.id.len() + c.category.len() + c.provider_id.len() + c.provider_ref.len(),
    );
    key.push(records::RECORD);
    key.extend_from_slice(c.subject.id.as_bytes());
    key.push(0);
    key.extend_from_slice(c.category.as_bytes());
    key.push(0);
    key.extend_from_slice(origin.as_str().as_bytes());
    key.push(0);
    key.extend_from_slice(c.provider_id.as_bytes());
    key.push(0);
    key.extend_from_slice(c.provider_ref.as_bytes());
    key
}

/// The prefix of every natural key of one subject.
pub(super) fn subject_records(subject_id: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(subject_id.len() + 2);
    prefix.push(records::RECORD);
    prefix.extend_from_slice(subject_id.as_bytes());
    prefix.push(0);
    prefix
}

pub(super) fn replica_id(id: &Uuid) -> [u8; 17] {
    uuid_key(records::REPLICA_ID, id)
}

pub(super) fn cursor(child: &RegionCode) -> [u8; 7] {
    let mut key = [0u8; 7];
    key[0] = records::CURSOR;
    key[1..].copy_from_slice(child.as_str().as_bytes());
    key
}

pub(super) fn monthly(provider: &str, period: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(provider.len() + period.len() + 2);
    key.push(records::MONTHLY);
    key.extend_from_slice(provider.as_bytes());
    key.push(0);
    key.extend_from_slice(period.as_bytes());
    key
}

pub(super) fn day(day: NaiveDate) -> Vec<u8> {
    let mut key = vec![records::DAY];
    key.extend_from_slice(day.to_string().as_bytes());
    key
}

pub(super) fn child_report(child: &RegionCode) -> Vec<u8> {
    let mut key = vec![records::CHILD_REPORT];
    key.extend_from_slice(child.as_str().as_bytes());
    key
}

pub(super) fn redact_queue(id: &Uuid) -> [u8; 17] {
    uuid_key(records::REDACT_QUEUE, id)
}

pub(super) fn quarantine(child: &RegionCode, seq: u64) -> [u8; 15] {
    let mut key = [0u8; 15];
    key[0] = records::QUARANTINE;
    key[1..7].copy_from_slice(child.as_str().as_bytes());
    key[7..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// The prefix of a subject's usage index keys.
pub(super) fn usage_subject(subject: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 11);
    key.extend_from_slice(&usage::INDEX);
    key.extend_from_slice(subject.as_bytes());
    key.push(0);
    key
}

pub(super) fn usage_index(subject: &str, seq: u64) -> Vec<u8> {
    let mut key = usage_subject(subject);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(super) fn outbox_prefix(next_hop: &RegionCode) -> Vec<u8> {
    let mut key = Vec::with_capacity(21);
    key.push(notices::OUTBOX);
    key.extend_from_slice(next_hop.as_str().as_bytes());
    key
}

pub(super) fn outbox(next_hop: &RegionCode, from: &RegionCode, id: u64) -> Vec<u8> {
    let mut key = outbox_prefix(next_hop);
    key.extend_from_slice(from.as_str().as_bytes());
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub(super) fn inbox(from: &RegionCode, id: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(15);
    key.push(notices::INBOX);
    key.extend_from_slice(from.as_str().as_bytes());
    key.extend_from_slice(&id.to_be_bytes());
    key
}

pub(super) fn consent(id: &Uuid) -> [u8; 17] {
    uuid_key(consents::CONSENT, id)
}

/// The prefix of a subject's consent index keys (the consent's id follows).
pub(super) fn consents_of(subject: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 18);
    key.push(consents::BY_SUBJECT);
    key.extend_from_slice(subject.as_bytes());
    key.push(0);
    key
}

pub(super) fn checkpoints_of(node: &RegionCode) -> Vec<u8> {
    let mut key = Vec::with_capacity(15);
    key.push(checkpoints::CHECKPOINT);
    key.extend_from_slice(node.as_str().as_bytes());
    key
}

pub(super) fn checkpoint(node: &RegionCode, seq: u64) -> Vec<u8> {
    let mut key = checkpoints_of(node);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(super) fn case(id: &Uuid) -> [u8; 17] {
    uuid_key(objections::CASE, id)
}

pub(super) fn case_by_record(record: &Uuid, case: &Uuid) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[0] = objections::BY_RECORD;
    key[1..17].copy_from_slice(record.as_bytes());
    key[17..].copy_from_slice(case.as_bytes());
    key
}

fn uuid_key(prefix: u8, id: &Uuid) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = prefix;
    key[1..].copy_from_slice(id.as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A kind of key: its name and first byte(s).
    type Kind = (&'static str, Vec<u8>);

    /// Every kind of key of each tree.
    fn trees() -> Vec<(&'static str, Vec<Kind>)> {
        vec![
            (
                "records",
                vec![
                    ("applied", records::APPLIED.to_vec()),
                    ("region", records::REGION.to_vec()),
                    ("record", vec![records::RECORD]),
                    ("cursor", vec![records::CURSOR]),
                    ("replica id", vec![records::REPLICA_ID]),
                    ("figures", records::FIGURES.to_vec()),
                    ("monthly", vec![records::MONTHLY]),
                    ("day", vec![records::DAY]),
                    ("last day", records::LAST_DAY.to_vec()),
                    ("child report", vec![records::CHILD_REPORT]),
                    ("redaction queue", vec![records::REDACT_QUEUE]),
                    ("quarantine", vec![records::QUARANTINE]),
                ],
            ),
            (
                "usage",
                vec![
                    // Every sequence below 2^56 starts with a zero byte.
                    ("entry", vec![0]),
                    ("subject index", usage::INDEX.to_vec()),
                ],
            ),
            (
                "notices",
                vec![
                    ("outbox", vec![notices::OUTBOX]),
                    ("inbox", vec![notices::INBOX]),
                ],
            ),
            (
                "consents",
                vec![
                    ("consent", vec![consents::CONSENT]),
                    ("by subject", vec![consents::BY_SUBJECT]),
                ],
            ),
            (
                "checkpoints",
                vec![("checkpoint", vec![checkpoints::CHECKPOINT])],
            ),
            (
                "objections",
                vec![
                    ("case", vec![objections::CASE]),
                    ("by record", vec![objections::BY_RECORD]),
                ],
            ),
        ]
    }

    #[test]
    fn the_key_kinds_of_each_tree_are_distinct_and_none_is_a_prefix_of_another() {
        for (tree, kinds) in trees() {
            for (i, (a, ka)) in kinds.iter().enumerate() {
                for (b, kb) in &kinds[i + 1..] {
                    assert!(
                        !ka.starts_with(kb) && !kb.starts_with(ka),
                        "tree {tree}: the keys of {a} ({ka:?}) and {b} ({kb:?}) overlap"
                    );
                }
            }
        }
    }

    #[test]
    fn usage_entries_sort_before_the_end_key_and_the_index_after_it() {
        for s in [0, 1, 1 << 40, (1 << 56) - 1] {
            assert!(u64::to_be_bytes(s).as_slice() < usage::END.as_slice());
        }
        assert!(usage_index("x", 0).as_slice() > usage::END.as_slice());
    }

    #[test]
    fn keys_built_for_one_subject_or_child_do_not_match_another_s_prefix() {
        // A subject whose id is another's plus a suffix: the NUL keeps them apart.
        let a = subject_records("91110000");
        let b = subject_records("9111000");
        assert!(!a.starts_with(&b) && !b.starts_with(&a));
        assert!(!usage_subject("91110000").starts_with(&usage_subject("9111000")));
        assert!(!consents_of("91110000").starts_with(&consents_of("9111000")));
        let child = RegionCode::parse("211382").unwrap();
        let other = RegionCode::parse("211300").unwrap();
        assert!(!checkpoint(&child, 1).starts_with(&checkpoints_of(&other)));
        assert!(!outbox(&child, &other, 1).starts_with(&outbox_prefix(&other)));
    }
}
