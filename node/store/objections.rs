//! Objection cases (R-OBJ-1..3) and the writes only a record's origin makes: new
//! versions that suspend, lift, correct, delete, repair or purge a record.
//!
//! A case is stored in its latest state here, indexed by its record
//! (`backend::CaseRow`; sled's tree `objections`, keys in `keys::objections`). The ids
//! of records with an open case are also kept in memory, since every release asks.
//!
//! Cases reach the tree two ways. A copy as filed (version 0) is kept where the
//! objection was filed and at each node its notice passes (`keep_case`), outside the
//! changelog. The owner's versions go through the changelog like consents, so they
//! travel up and are applied at every node above (`side::apply_side`).

use std::collections::HashSet;

use uuid::Uuid;

use super::backend::{ChangeRun, Commit, Reads};
use super::codec::encode;
use super::keys;
use super::side::SideOverlay;
use super::{Change, Inner, Store, StoreError, TAG_RECORD};
use crate::domain::case::Case;
use crate::domain::notice::Notice;
use crate::domain::record::Record;
use crate::domain::region::RegionCode;
use crate::domain::usage::UsageEntry;

/// What the origin writes in one atomic step: new versions of its own records, case
/// versions, and the usage entries that say so.
#[derive(Default)]
pub struct OriginChange {
    pub records: Vec<Record>,
    pub cases: Vec<Case>,
    pub usage: Vec<UsageEntry>,
}

/// The ids of records with an open case.
pub(super) fn load_held(backend: &dyn Reads) -> Result<HashSet<Uuid>, StoreError> {
    Ok(backend
        .cases()?
        .into_iter()
        .filter(Case::is_open)
        .map(|case| case.record_id)
        .collect())
}

/// Recomputes whether each of `records` has an open case, after a write.
pub(super) fn refresh_held(inner: &Inner, records: &HashSet<Uuid>) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let mut open = Vec::new();
    for rid in records {
        let any = inner
            .backend
            .cases_of_record(rid)?
            .iter()
            .any(Case::is_open);
        open.push((*rid, any));
    }
    let mut held = inner.held.write().map_err(|_| StoreError::Lock)?;
    for (rid, any) in open {
        if any {
            held.insert(rid);
        } else {
            held.remove(&rid);
        }
    }
    Ok(())
}

impl Store {
    /// Whether an objection to `record` is open here (R-OBJ-3).
    pub fn objection_open(&self, record: &Uuid) -> bool {
        self.inner
            .held
            .read()
            .map_or(true, |held| held.contains(record))
    }

    /// A case by id, in its latest state here.
    pub fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError> {
        self.inner.backend.case(id)
    }

    /// Every case known here, oldest first (ids are UUID v7).
    pub fn cases(&self) -> Result<Vec<Case>, StoreError> {
        self.inner.backend.cases()
    }

    /// The cases about one record.
    pub fn cases_of_record(&self, record: &Uuid) -> Result<Vec<Case>, StoreError> {
        self.inner.backend.cases_of_record(record)
    }

    /// Keeps a case as filed (version 0) at a node that is not its owner, and queues the
    /// notice that carries it towards the owner, with `usage`; durable on return. A copy
    /// already here at the same or a later version is left as it is (returns false),
    /// but the notice is still queued, so a resend after a crash goes on.
    pub fn keep_case(
        &self,
        case: &Case,
        notice: Option<(&RegionCode, &Notice)>,
        usage: Vec<UsageEntry>,
    ) -> Result<bool, StoreError> {
        let kept = self.write(|w| {
            let mut commit = Commit::default();
            self.write_usage(w, usage, &mut commit)?;
            // The notice first: sled recovers a prefix of its writes, so after a crash
            // a case kept here always has its notice on the way (a case without one
            // would withhold the record here for good, and refuse a second filing).
            if let Some((hop, notice)) = notice {
                self.put_notice(hop, notice, &mut commit)?;
            }
            let newer = self
                .case(&case.id)?
                .is_none_or(|c| c.version < case.version);
            let mut held = HashSet::new();
            if newer {
                let mut overlay = SideOverlay::default();
                self.apply_side(&Change::Objection(case.clone()), &mut overlay)?;
                held = overlay.into_commit(&mut commit);
            }
            self.commit(commit, held)?;
            Ok(newer)
        })?;
        if notice.is_some() {
            self.inner.notices_changed.send_modify(|n| *n += 1);
        }
        Ok(kept)
    }

    /// Writes, as the origin, what `decide` returns given the store as it is under the
    /// writer lock: new versions of records this node originated, case versions, and
    /// usage entries, all in one step and durable on return. `decide` may refuse
    /// (`Ok(Err(..))`), which writes nothing.
    pub fn origin_write<T, R>(
        &self,
        now_ms: i64,
        decide: impl FnOnce(&Store) -> Result<Result<(OriginChange, T), R>, StoreError>,
    ) -> Result<Result<T, R>, StoreError> {
        self.write(|w| {
            let (change, value) = match decide(self)? {
                Ok(v) => v,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let inner = &self.inner;
            let first_seq = w.next_change;
            let mut seq = first_seq;
            let mut written: Vec<(u8, Vec<u8>)> = Vec::new();
            let mut commit = Commit::default();
            let mut figures = w.figures.clone();
            let mut monthly = super::census::MonthlyDelta::default();
            for record in &change.records {
                let key = keys::natural(&record.content, &record.origin);
                if let Some(cur) = inner.backend.record(&key)? {
                    figures.count(&cur, false);
                    // As `replay` counts it, so a replayed change counts the same.
                    if cur.path.len() == 1 {
                        monthly.count(&cur, false, record.reported_at_ms);
                    }
                }
                figures.count(record, true);
                if record.path.len() == 1 {
                    monthly.count(record, true, record.reported_at_ms);
                }
                let value = encode(record)?;
                if let Some(queued) = super::redact::queue_entry(record)? {
                    commit.current.redact_queue.push(queued);
                }
                commit.current.records.push((key, value.clone()));
                written.push((TAG_RECORD, value));
                seq += 1;
            }
            let mut overlay = SideOverlay::default();
            for case in change.cases {
                let c = Change::Objection(case);
                self.apply_side(&c, &mut overlay)?;
                written.push(c.tag_and_value()?);
                seq += 1;
            }
            if seq > crate::domain::ids::MAX_SEQ {
                return Err(StoreError::Engine(
                    "changelog sequence space exhausted".into(),
                ));
            }
            self.write_usage(w, change.usage, &mut commit)?;
            let mut held = HashSet::new();
            if seq != first_seq {
                commit.current.applied = Some(seq - 1);
                self.snapshot_day(&w.figures, now_ms, &mut commit.current)?;
                commit.current.figures = Some(encode(&figures)?);
                monthly.write(self, &mut commit.current)?;
                commit.changes.push(ChangeRun {
                    first: first_seq,
                    entries: written,
                });
                held = overlay.into_commit(&mut commit);
            }
            self.commit(commit, held)?;
            if seq != first_seq {
                w.figures = figures;
                w.next_change = seq;
            }
            Ok(Ok(value))
        })
    }
}
