//! 使用记录档案: the usage log, one entry per use of the information (R-SEC-3).
//!
//! Every push, pull and denial appends an entry. Entries are hash-chained: each stored
//! entry carries the SHA-256 of the previous stored entry and of itself, so an edit or a
//! removal breaks the chain (verification and signed checkpoints build on this shape).
//! Nothing deletes entries; they are kept at least 5 years.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::record::Hash;

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

    pub fn refused(mut self, code: tonic::Code, field: &str, rule: &str, message: &str) -> Self {
        self.outcome = Outcome::Refused {
            code: code as i32,
            field: field.to_string(),
            rule: rule.to_string(),
            message: message.to_string(),
        };
        self
    }

    /// Links this entry after `prev_hash`: hash = SHA-256(prev_hash || encoding).
    pub fn chain(self, prev_hash: Hash) -> Chained {
        let hash = chain_hash(&prev_hash, &self);
        Chained {
            entry: self,
            prev_hash,
            hash,
        }
    }
}

/// The chain hash of `entry` after `prev`.
pub fn chain_hash(prev: &Hash, entry: &UsageEntry) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(prev);
    match postcard::to_stdvec(entry) {
        Ok(bytes) => ctx.update(&bytes),
        Err(_) => ctx.update(format!("{entry:?}").as_bytes()),
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_entry_changes_its_chain_hash() {
        let e = UsageEntry::new(
            "credit://operator/211382/ops",
            Action::Pull,
            "PullBySubject",
            1,
        );
        let a = e.clone().chain([0; 32]);
        let mut edited = e;
        edited.count = 1;
        let b = edited.chain([0; 32]);
        assert_ne!(a.hash, b.hash);
        assert_eq!(chain_hash(&a.prev_hash, &a.entry), a.hash);
    }
}
