//! Verifying the usage log (R-SEC-1, R-SEC-3): every entry's chain hash, the chain's
//! continuity, and the signed checkpoints, this node's own and those its parent keeps.
//!
//! An edited entry no longer matches its hash; a removed entry leaves a gap in the
//! sequences and breaks the next entry's link; a log rewritten with fresh hashes no
//! longer matches the checkpoints signed before the rewrite. Each finding names the
//! entry where the log stops matching.

use std::collections::BTreeMap;

use super::codec::decode;
use super::{Store, StoreError};
use crate::domain::record::Hash;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint, chain_hash};
use crate::identity::signing::SignatureVerifier;

/// Findings past this many are counted, not listed.
const MAX_FINDINGS: usize = 100;

/// One place where the log does not match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditFinding {
    /// The usage entry concerned.
    pub seq: u64,
    pub problem: String,
}

/// What a verification found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditReport {
    pub entries: u64,
    pub last_seq: u64,
    pub head: Hash,
    pub checkpoints: usize,
    /// In sequence order; the first is where the log first stops matching.
    pub findings: Vec<AuditFinding>,
    /// Findings beyond those listed.
    pub more: u64,
}

impl AuditReport {
    pub fn ok(&self) -> bool {
        self.findings.is_empty()
    }

    fn find(&mut self, seq: u64, problem: String) {
        if self.findings.len() < MAX_FINDINGS {
            self.findings.push(AuditFinding { seq, problem });
        } else {
            self.more += 1;
        }
    }
}

impl Store {
    /// Checks the whole usage log against itself and against `node`'s checkpoints held
    /// here plus `elsewhere` (its parent's copies). With a `verifier`, each checkpoint's
    /// signature is checked too.
    pub fn verify_usage(
        &self,
        node: &RegionCode,
        elsewhere: &[Checkpoint],
        verifier: Option<&SignatureVerifier>,
    ) -> Result<AuditReport, StoreError> {
        let mut checkpoints = self.checkpoints(Some(node))?;
        checkpoints.extend(elsewhere.iter().filter(|c| c.node == *node).cloned());
        let wanted: BTreeMap<u64, ()> = checkpoints.iter().map(|c| (c.seq, ())).collect();
        let mut at_checkpoint: BTreeMap<u64, Hash> = BTreeMap::new();

        let mut report = AuditReport::default();
        let mut expected = 1u64;
        let mut prev: Hash = [0; 32];
        for item in self.usage_rows() {
            let (seq, v) = item?;
            if seq != expected {
                let missing = if seq == expected + 1 {
                    format!("entry {expected} is missing")
                } else {
                    format!("entries {expected} to {} are missing", seq - 1)
                };
                report.find(expected, missing);
            }
            expected = seq + 1;
            report.entries += 1;
            report.last_seq = seq;
            let chained = match decode::<Chained>(&v, "usage entry") {
                Ok(c) => c,
                Err(e) => {
                    report.find(seq, format!("entry {seq} does not decode: {e}"));
                    // Its successor's link cannot be checked against it.
                    prev = [0; 32];
                    continue;
                }
            };
            if chained.prev_hash != prev && seq > 1 {
                report.find(
                    seq,
                    format!(
                        "entry {seq} does not follow the entry before it (its previous-hash \
                         differs: an entry before it was changed or removed)"
                    ),
                );
            } else if seq == 1 && chained.prev_hash != [0; 32] {
                report.find(seq, "entry 1 does not start the chain".into());
            }
            match chain_hash(&chained.prev_hash, &chained.entry) {
                // Reported like `store check` does, not a stop: the rest is still read.
                Err(e) => report.find(
                    seq,
                    format!(
                        "entry {seq} cannot be hashed again: {}",
                        StoreError::from(e)
                    ),
                ),
                Ok(hash) if hash != chained.hash => report.find(
                    seq,
                    format!("entry {seq} was changed: its content does not match its hash"),
                ),
                Ok(_) => {}
            }
            if wanted.contains_key(&seq) {
                at_checkpoint.insert(seq, chained.hash);
            }
            prev = chained.hash;
        }
        report.head = prev;

        for cp in &checkpoints {
            report.checkpoints += 1;
            if let Some(verifier) = verifier
                && let Err(e) = cp.verify(verifier)
            {
                report.find(
                    cp.seq,
                    format!("the checkpoint at entry {} is not valid: {e}", cp.seq),
                );
                continue;
            }
            match at_checkpoint.get(&cp.seq) {
                None => report.find(
                    cp.seq,
                    format!(
                        "a checkpoint signed at {} names entry {}, which the log lacks",
                        cp.at_ms, cp.seq
                    ),
                ),
                Some(h) if *h != cp.head => report.find(
                    cp.seq,
                    format!(
                        "entry {} does not match the checkpoint signed at {}: the log was \
                         rewritten at or before this entry",
                        cp.seq, cp.at_ms
                    ),
                ),
                Some(_) => {}
            }
        }
        report.findings.sort_by_key(|f| f.seq);
        Ok(report)
    }
}
