//! Consents and usage-log checkpoints: changelog entries that are not records.
//!
//! A consent is stored in its latest state, indexed by subject; a checkpoint by node and
//! sequence, this node's and those of the nodes below (`backend::ConsentRow`,
//! `CheckpointRow`; sled's trees `consents` and `checkpoints`, keys in `keys`).
//!
//! Both are applied from the changelog like records: written after the changelog entry
//! and before the records tree's `applied` mark, and applying one again changes nothing,
//! so replay after a crash is safe. A consent changes only by gaining a withdrawal.

use std::collections::{HashMap, HashSet};

use uuid::Uuid;

use super::backend::{CaseRow, ChangeRun, CheckpointRow, Commit, ConsentRow};
use super::codec::encode;
use super::{Change, ReplicaOutcome, Store, StoreError};
use crate::domain::case::Case;
use crate::domain::consent::Consent;
use crate::domain::record::Hash;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint, UsageEntry};

/// Writes of one batch to the side trees, and what they hold so far (later entries of a
/// batch see earlier ones).
#[derive(Default)]
pub(super) struct SideOverlay {
    consents: HashMap<Uuid, Consent>,
    checkpoints: HashMap<(RegionCode, u64), Checkpoint>,
    cases: HashMap<Uuid, Case>,
    consent_rows: Vec<ConsentRow>,
    checkpoint_rows: Vec<CheckpointRow>,
    case_rows: Vec<CaseRow>,
}

impl SideOverlay {
    /// Moves the rows into `commit`; returns the records whose cases it writes, whose
    /// holds are refreshed once it is written (`Store::commit`).
    pub(super) fn into_commit(self, commit: &mut Commit) -> HashSet<Uuid> {
        commit.consents.extend(self.consent_rows);
        commit.checkpoints.extend(self.checkpoint_rows);
        commit.cases.extend(self.case_rows);
        self.cases.values().map(|c| c.record_id).collect()
    }
}

impl Store {
    /// Applies a consent or checkpoint to the side trees (through `overlay`): new, a
    /// consent's withdrawal, the same again (unchanged), or a contradiction (conflict).
    pub(super) fn apply_side(
        &self,
        change: &Change,
        overlay: &mut SideOverlay,
    ) -> Result<ReplicaOutcome, StoreError> {
        match change {
            Change::Record(_) => Err(StoreError::Engine(
                "a record is not a side entry".to_string(),
            )),
            Change::Consent(consent) => {
                let id = consent.terms.id;
                let current = match overlay.consents.get(&id) {
                    Some(c) => Some(c.clone()),
                    None => self.consent(&id)?,
                };
                match current {
                    Some(cur)
                        if cur.terms != consent.terms || cur.signature != consent.signature =>
                    {
                        Ok(ReplicaOutcome::Conflict { existing: id })
                    }
                    Some(cur) if !cur.is_superseded_by(consent) => Ok(ReplicaOutcome::Unchanged),
                    existing => {
                        overlay.consent_rows.push(ConsentRow {
                            id,
                            subject: existing.is_none().then(|| consent.terms.subject_id.clone()),
                            consent: encode(consent)?,
                        });
                        overlay.consents.insert(id, consent.clone());
                        Ok(ReplicaOutcome::Applied)
                    }
                }
            }
            Change::Objection(case) => {
                let current = match overlay.cases.get(&case.id) {
                    Some(c) => Some(c.clone()),
                    None => self.case(&case.id)?,
                };
                match current {
                    // Only the owner's later versions replace a case.
                    Some(cur) if cur.version >= case.version => Ok(ReplicaOutcome::Unchanged),
                    existing => {
                        overlay.case_rows.push(CaseRow {
                            id: case.id,
                            record: existing.is_none().then_some(case.record_id),
                            case: encode(case)?,
                        });
                        overlay.cases.insert(case.id, case.clone());
                        Ok(ReplicaOutcome::Applied)
                    }
                }
            }
            Change::Checkpoint(cp) => {
                let key = (cp.node, cp.seq);
                let current = match overlay.checkpoints.get(&key) {
                    Some(c) => Some(c.clone()),
                    None => self.inner.backend.checkpoint(&cp.node, cp.seq)?,
                };
                match current {
                    Some(cur) if cur.head == cp.head => Ok(ReplicaOutcome::Unchanged),
                    // Two different heads for one sequence: the node rewrote its log.
                    Some(_) => Ok(ReplicaOutcome::Conflict {
                        existing: Uuid::nil(),
                    }),
                    None => {
                        overlay.checkpoint_rows.push(CheckpointRow {
                            node: cp.node,
                            seq: cp.seq,
                            checkpoint: encode(cp)?,
                        });
                        overlay.checkpoints.insert(key, cp.clone());
                        Ok(ReplicaOutcome::Applied)
                    }
                }
            }
        }
    }

    /// Writes a consent (new or withdrawn) or a checkpoint made at this node, with
    /// `usage`, and returns after both are durable. A change that says nothing new
    /// (`Unchanged`) or contradicts what is held (`Conflict`) writes nothing at all: the
    /// caller logs its refusal.
    pub fn append_local(
        &self,
        change: Change,
        usage: Vec<UsageEntry>,
    ) -> Result<ReplicaOutcome, StoreError> {
        self.write(|w| {
            let mut overlay = SideOverlay::default();
            let outcome = self.apply_side(&change, &mut overlay)?;
            if outcome == ReplicaOutcome::Applied {
                let mut commit = Commit::default();
                self.write_usage(w, usage, &mut commit)?;
                let seq = w.next_change;
                if seq > crate::domain::ids::MAX_SEQ {
                    return Err(StoreError::Engine(
                        "changelog sequence space exhausted".into(),
                    ));
                }
                commit.changes.push(ChangeRun {
                    first: seq,
                    entries: vec![change.tag_and_value()?],
                });
                let held = overlay.into_commit(&mut commit);
                commit.current.applied = Some(seq);
                self.commit(commit, held)?;
                w.next_change = seq + 1;
            }
            Ok(outcome)
        })
    }

    /// A consent by id, in its latest state here.
    pub fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError> {
        self.inner.backend.consent(id)
    }

    /// A subject's consents held here, oldest id first.
    pub fn consents_of(&self, subject_id: &str) -> Result<Vec<Consent>, StoreError> {
        self.inner.backend.consents_of(subject_id)
    }

    /// Checkpoints held here: of one node, or of all, in (node, sequence) order.
    pub fn checkpoints(&self, node: Option<&RegionCode>) -> Result<Vec<Checkpoint>, StoreError> {
        self.inner.backend.checkpoints(node)
    }

    /// The usage log's last sequence and chain hash (0 and zeros when empty).
    pub fn usage_head(&self) -> Result<(u64, Hash), StoreError> {
        let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        Ok((w.next_usage - 1, w.usage_head))
    }

    /// Usage entries that name `subject`, oldest first, at most `limit`.
    pub fn usage_of_subject(
        &self,
        subject: &str,
        limit: usize,
    ) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.inner.backend.usage_of(subject, limit)
    }
}
