//! 使用记录档案: the usage log, one entry per use of the information (R-SEC-3).
//!
//! Every push, pull and denial appends an entry. Entries are hash-chained: each stored
//! entry carries the SHA-256 of the previous stored entry and of itself, so an edit or a
//! removal breaks the chain (verification and signed checkpoints build on this shape).
//! Nothing deletes entries; they are kept at least 5 years.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::record::Hash;
use crate::domain::region::RegionCode;
use crate::domain::signature::Signature;

/// What was done.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Push,
    Pull,
    /// A call refused before it reached its RPC (authentication or role table).
    Call,
    /// Records received from a child node (upward sync).
    Sync,
    /// A notice queued, forwarded or received.
    Notice,
    /// A node's status read by an operator.
    Status,
    /// A consent recorded, withdrawn or read (R-REL-4).
    Consent,
    /// A query for a subject's records (R-REL-1..5).
    Query,
    /// The usage log verified or a subject's history read.
    Audit,
    /// An objection filed, taken, checked, answered, resolved or listed (R-OBJ-1..3).
    Objection,
    /// A record withdrawn by credit repair.
    Repair,
    /// A record purged after its retention period (R-SEC-2).
    Purge,
}

/// How it ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Ok,
    /// Refused: the gRPC code, the field (may be empty) and the rule cited.
    Refused {
        code: i32,
        field: String,
        rule: String,
        message: String,
    },
}

/// One use of credit information.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The caller's identity URI, or `unauthenticated`.
    pub caller: String,
    /// The party a caller acted for (a forwarding node's agency), when any.
    pub on_behalf_of: Option<String>,
    pub action: Action,
    /// The RPC called, e.g. `Push`.
    pub rpc: String,
    /// The subject whose data was used, when one subject is concerned.
    pub subject: Option<String>,
    pub purpose: Option<String>,
    pub legal_basis: Option<String>,
    pub consent_id: Option<String>,
    /// Records returned or written, when they are few enough to list.
    pub record_ids: Vec<Uuid>,
    /// How many records the use concerned (for a push: accepted; see `detail`).
    pub count: u64,
    pub outcome: Outcome,
    /// A short human-readable account, e.g. `accepted 998, rejected 2`.
    pub detail: String,
}

/// An entry as stored: the entry and its place in the hash chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chained {
    pub entry: UsageEntry,
    pub prev_hash: Hash,
    pub hash: Hash,
}

impl UsageEntry {
    pub fn new(caller: impl Into<String>, action: Action, rpc: &str, at_ms: i64) -> Self {
        UsageEntry {
            at_ms,
            caller: caller.into(),
            on_behalf_of: None,
            action,
            rpc: rpc.to_string(),
            subject: None,
            purpose: None,
            legal_basis: None,
            consent_id: None,
            record_ids: Vec::new(),
            count: 0,
            outcome: Outcome::Ok,
            detail: String::new(),
        }
    }

    /// Marks the entry refused; `code` is the gRPC status code the caller got.
    pub fn refused(mut self, code: impl Into<i32>, field: &str, rule: &str, message: &str) -> Self {
        self.outcome = Outcome::Refused {
            code: code.into(),
            field: field.to_string(),
            rule: rule.to_string(),
            message: message.to_string(),
        };
        self
    }

    /// Whether the free text `scrub_free_text_naming` looks at holds a character outside
    /// ASCII, where a name in Chinese characters could be. Without one, looking up the
    /// subject's names (a store read on every usage write) cannot change the entry.
    pub fn free_text_may_name(&self) -> bool {
        let refused = match &self.outcome {
            Outcome::Refused { message, field, .. } => !message.is_ascii() || !field.is_ascii(),
            _ => false,
        };
        refused
            || !self.detail.is_ascii()
            || [&self.purpose, &self.consent_id]
                .into_iter()
                .flatten()
                .any(|t| !t.is_ascii())
    }

    /// Links this entry after `prev_hash`: hash = SHA-256(prev_hash || encoding).
    pub fn chain(self, prev_hash: Hash) -> Result<Chained, EncodeError> {
        let hash = chain_hash(&prev_hash, &self)?;
        Ok(Chained {
            entry: self,
            prev_hash,
            hash,
        })
    }
}

/// A usage entry postcard cannot encode. It gets no chain hash: a hash over any other
/// text (its `Debug` form, say) could not be recomputed from the stored entry, so the
/// entry would read as tampered with, or the text's shape would become part of the format.
#[derive(Debug, thiserror::Error)]
#[error("a usage entry does not encode: {0}")]
pub struct EncodeError(#[from] postcard::Error);

/// The chain hash of `entry` after `prev`: SHA-256(prev || postcard(entry)).
pub fn chain_hash(prev: &Hash, entry: &UsageEntry) -> Result<Hash, EncodeError> {
    let bytes = postcard::to_stdvec(entry)?;
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    ctx.update(&bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    Ok(out)
}

/// A node's signed statement of its usage log's head: entry `seq` has chain hash
/// `head`. Sent up the uplink and kept by every node above, so a node cannot rewrite its
/// own history without its checkpoints, held elsewhere, giving it away (R-SEC-1, R-SEC-3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub node: RegionCode,
    pub seq: u64,
    pub head: Hash,
    pub at_ms: i64,
    pub signature: Signature,
    /// Regions it passed through, its node first (not signed).
    pub path: Vec<RegionCode>,
}

const CHECKPOINT_LABEL: &[u8] = b"credit-node usage checkpoint v1\0";

pub(crate) fn checkpoint_message(node: &RegionCode, seq: u64, head: &Hash, at_ms: i64) -> Vec<u8> {
    let mut m = CHECKPOINT_LABEL.to_vec();
    m.extend_from_slice(node.as_str().as_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head);
    m.extend_from_slice(&at_ms.to_be_bytes());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_text_outside_ascii_may_hold_a_name() {
        let mut e = UsageEntry::new("credit://agency/211382/bank", Action::Query, "Query", 0);
        e.detail = "answered by 210000: 3 records".into();
        assert!(!e.free_text_may_name());
        e.purpose = Some("依据 王建国 的授权".into());
        assert!(e.free_text_may_name());
        let refused = UsageEntry::new("x", Action::Query, "Query", 0).refused(
            3, // InvalidArgument: the domain knows gRPC codes only as numbers
            "subject_name",
            "R-DATA-1",
            "王建国 is not the holder",
        );
        assert!(refused.free_text_may_name());
    }

    #[test]
    fn a_changed_entry_changes_its_chain_hash() {
        let e = UsageEntry::new(
            "credit://operator/211382/ops",
            Action::Pull,
            "PullBySubject",
            1,
        );
        let a = e.clone().chain([0; 32]).unwrap();
        let mut edited = e;
        edited.count = 1;
        let b = edited.chain([0; 32]).unwrap();
        assert_ne!(a.hash, b.hash);
        assert_eq!(chain_hash(&a.prev_hash, &a.entry).unwrap(), a.hash);
    }
}
