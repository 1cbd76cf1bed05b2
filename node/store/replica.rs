//! Applying a child's changelog entries (upward sync, R-FED-1) and the per-child cursors.
//!
//! The caller has checked every entry (a parent never trusts a child); here each is
//! applied idempotently by (origin, id, version): the same entry twice is one record, an
//! older version never overwrites a newer one. Applied versions go into this node's own
//! changelog with this node added to their path, so they travel on up. The child's cursor
//! moves in the same records-tree batch as the records, so a crash can only make the
//! child resend entries that then come back unchanged.

use std::collections::HashMap;

use uuid::Uuid;

use super::backend::{ChangeRun, Commit};
use super::codec::encode;
use super::keys;
use super::quarantine::ChildLog;
use super::side::SideOverlay;
use super::{Change, Store, StoreError, TAG_RECORD, Writer};
use crate::domain::record::Record;
use crate::domain::region::RegionCode;
use crate::domain::usage::UsageEntry;

/// What became of one entry from a child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaOutcome {
    /// A new record or a newer version, now in this node's changelog.
    Applied,
    /// This version (or a newer one) is already here.
    Unchanged,
    /// The same origin, category, provider and reference already name another id: the
    /// child's data contradicts what it sent before.
    Conflict { existing: Uuid },
}

impl Store {
    /// Applies `entries` from `child` (checked by the caller), moves the child's cursor to
    /// `last_seq` (never backwards), and writes the usage entries `usage` returns for the
    /// outcomes. `now_ms` is the node's clock (the day the census figures move on).
    /// Returns after everything is durable.
    pub fn apply_replicas<F>(
        &self,
        child: RegionCode,
        local: RegionCode,
        entries: Vec<Change>,
        last_seq: u64,
        now_ms: i64,
        usage: F,
    ) -> Result<Vec<ReplicaOutcome>, StoreError>
    where
        F: FnOnce(&[ReplicaOutcome]) -> Vec<UsageEntry>,
    {
        self.apply_from_child(child, local, entries, last_seq, now_ms, |outcomes| {
            Ok(ChildLog {
                usage: usage(outcomes),
                ..ChildLog::default()
            })
        })
    }

    /// As `apply_replicas`, and keeps the entries `log` names as refused in the
    /// quarantine (with a notice for the child) and drops those it names as released,
    /// in the same records-tree batch as the cursor move, so none is dropped (R-FED-1).
    /// A retry of quarantined entries passes `last_seq` 0: the cursor never moves back.
    pub fn apply_from_child<F>(
        &self,
        child: RegionCode,
        local: RegionCode,
        entries: Vec<Change>,
        last_seq: u64,
        now_ms: i64,
        log: F,
    ) -> Result<Vec<ReplicaOutcome>, StoreError>
    where
        F: FnOnce(&[ReplicaOutcome]) -> Result<ChildLog, StoreError>,
    {
        let (outcomes, notices) =
            self.write(|w| self.apply_locked(w, child, local, entries, (last_seq, now_ms), log))?;
        if notices > 0 {
            self.inner.notices_changed.send_modify(|n| *n += 1);
        }
        Ok(outcomes)
    }

    fn apply_locked<F>(
        &self,
        w: &mut Writer,
        child: RegionCode,
        local: RegionCode,
        entries: Vec<Change>,
        (last_seq, now_ms): (u64, i64),
        log: F,
    ) -> Result<(Vec<ReplicaOutcome>, usize), StoreError>
    where
        F: FnOnce(&[ReplicaOutcome]) -> Result<ChildLog, StoreError>,
    {
        let inner = &self.inner;
        let mut overlay: HashMap<Vec<u8>, Record> = HashMap::new();
        let mut commit = Commit::default();
        let mut written: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut side = SideOverlay::default();
        let mut figures = w.figures.clone();
        let mut outcomes = Vec::with_capacity(entries.len());
        let first_seq = w.next_change;
        let mut next_change = first_seq;

        for change in entries {
            let mut record = match change {
                Change::Record(record) => record,
                mut other => {
                    let outcome = self.apply_side(&other, &mut side)?;
                    if outcome == ReplicaOutcome::Applied {
                        let path = other.path_mut();
                        if path.last() != Some(&local) {
                            path.push(local);
                        }
                        // The side trees keep the entry as it arrived; the changelog
                        // carries it on with this node on its path.
                        written.push(other.tag_and_value()?);
                        next_change += 1;
                    }
                    outcomes.push(outcome);
                    continue;
                }
            };
            let key = keys::natural(&record.content, &record.origin);
            let existing = match overlay.get(&key) {
                Some(r) => Some(r.clone()),
                None => inner.backend.record(&key)?,
            };
            match &existing {
                Some(cur) if cur.id != record.id => {
                    outcomes.push(ReplicaOutcome::Conflict { existing: cur.id });
                    continue;
                }
                Some(cur) if cur.version >= record.version => {
                    outcomes.push(ReplicaOutcome::Unchanged);
                    continue;
                }
                Some(_) => {}
                None => {
                    // The id must not already name another record here.
                    if let Some(other) = inner.backend.replica_key(&record.id)?
                        && other != key
                    {
                        outcomes.push(ReplicaOutcome::Conflict {
                            existing: record.id,
                        });
                        continue;
                    }
                    commit.current.replica_ids.push((record.id, key.clone()));
                }
            }
            if record.path.last() != Some(&local) {
                record.path.push(local);
            }
            if let Some(cur) = &existing {
                figures.count(cur, false);
            }
            figures.count(&record, true);
            let value = encode(&record)?;
            if let Some(queued) = super::redact::queue_entry(&record)? {
                commit.current.redact_queue.push(queued);
            }
            commit.current.records.push((key.clone(), value.clone()));
            overlay.insert(key, record);
            written.push((TAG_RECORD, value));
            next_change += 1;
            outcomes.push(ReplicaOutcome::Applied);
        }

        let cursor = self.cursor(&child)?.max(last_seq);
        commit.current.cursors.push((child, cursor));
        let ChildLog {
            usage,
            refused,
            released,
        } = log(&outcomes)?;
        self.write_usage(w, usage, &mut commit)?;
        for seq in released {
            commit.current.quarantine.push((child, seq, None));
        }
        let notices = self.put_quarantined(&mut commit, refused)?;
        if next_change != first_seq {
            commit.current.applied = Some(next_change - 1);
            self.snapshot_day(&w.figures, now_ms, &mut commit.current)?;
            commit.current.figures = Some(encode(&figures)?);
            commit.changes.push(ChangeRun {
                first: first_seq,
                entries: written,
            });
        }
        let held = side.into_commit(&mut commit);
        self.commit(commit, held)?;
        w.figures = figures;
        w.next_change = next_change;
        Ok((outcomes, notices))
    }

    /// The last sequence of `child` applied here (0 before its first entry).
    pub fn cursor(&self, child: &RegionCode) -> Result<u64, StoreError> {
        self.inner.backend.cursor(child)
    }
}
