//! An in-memory storage engine: the reference engine of the conformance suite
//! (`tests/store_conformance.rs`), not for production. It keeps each part of a `Commit`
//! in ordered maps keyed by the domain identifiers the seam names (sequence, natural
//! key, id, region), not by sled's keys, so a check that passes on both engines tests
//! the contract in `backend` rather than sled's layout. Values are the encoded bytes
//! `Commit` carries, as every engine stores them.
//!
//! It models the contract honestly: `commit` writes the parts in the declared order,
//! each atomically, and a simulated crash (`crash_commits_after`) stops it between
//! parts, leaving a prefix (as sled may); `sync` only counts, since nothing is lost
//! before it. The data lives in a shared handle (`MemoryEngine`): a store opened again
//! on the same handle after a crash (`Store::open_in_memory`) is a restarted process
//! and sees exactly what was committed. A power cut is not modelled.
//!
//! `reads` answers `Reads` from the maps; `check` holds the integrity check and the
//! fingerprint.
//!
//! Compiled always (and hidden from the docs): integration tests link the library as
//! built without `cfg(test)`, and a cargo feature for it would have to be named on every
//! test run. It holds no sled type and reads no file.

mod check;
mod reads;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use uuid::Uuid;

use super::backend::{Backend, Commit, CrashHook, NaturalKey, NoticeRow};
use super::codec::decode;
use super::{CheckReport, StoreError};
use crate::domain::record::Hash;
use crate::domain::region::RegionCode;

/// The data of one in-memory store, shared by every store opened on it. Clone it to
/// hold on to the data across a simulated restart.
#[derive(Clone, Default)]
pub struct MemoryEngine {
    data: Arc<Mutex<Data>>,
    /// A store is open on the data: one at a time, as sled allows one per folder, so a
    /// test that reopens without dropping the crashed store fails on every engine.
    open: Arc<AtomicBool>,
}

impl MemoryEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend over this data, as a freshly started process opens it (no simulated
    /// crash pending, no syncs counted); refused while another is open.
    pub(super) fn backend(&self) -> Result<MemoryBackend, StoreError> {
        if self.open.swap(true, Ordering::SeqCst) {
            return Err(StoreError::Engine(
                "this in-memory store is open already (drop the other store first)".into(),
            ));
        }
        Ok(MemoryBackend {
            data: Arc::clone(&self.data),
            open: Arc::clone(&self.open),
            crash: CrashHook::default(),
            syncs: AtomicU64::new(0),
        })
    }
}

/// Every table, by the identifiers the seam names each row with.
#[derive(Clone, Default)]
struct Data {
    usage: BTreeMap<u64, Vec<u8>>,
    /// (subject, sequence) of each usage entry indexed under its subject.
    usage_index: BTreeSet<(String, u64)>,
    /// (next hop, sender, id) -> notice.
    outbox: BTreeMap<(RegionCode, RegionCode, u64), Vec<u8>>,
    /// (sender, id) -> notice.
    inbox: BTreeMap<(RegionCode, u64), Vec<u8>>,
    /// One row per entry: sequence -> (variant tag, encoding).
    changelog: BTreeMap<u64, (u8, Vec<u8>)>,
    consents: BTreeMap<Uuid, Vec<u8>>,
    consents_by_subject: BTreeSet<(String, Uuid)>,
    checkpoints: BTreeMap<(RegionCode, u64), Vec<u8>>,
    cases: BTreeMap<Uuid, Vec<u8>>,
    /// (record, case).
    cases_by_record: BTreeSet<(Uuid, Uuid)>,
    records: BTreeMap<NaturalKey, Vec<u8>>,
    replica_ids: BTreeMap<Uuid, NaturalKey>,
    redact_queue: BTreeMap<Uuid, Vec<u8>>,
    cursors: BTreeMap<RegionCode, u64>,
    quarantine: BTreeMap<(RegionCode, u64), Vec<u8>>,
    figures: Option<Vec<u8>>,
    monthly: BTreeMap<(String, String), Vec<u8>>,
    days: BTreeMap<NaiveDate, Vec<u8>>,
    last_day: Option<NaiveDate>,
    applied: u64,
    region: Option<RegionCode>,
    child_reports: BTreeMap<RegionCode, Vec<u8>>,
    /// The last notice id handed out.
    notice_id: u64,
}

/// One process's view of a `MemoryEngine`.
pub(super) struct MemoryBackend {
    data: Arc<Mutex<Data>>,
    /// Cleared when this backend is dropped (`MemoryEngine::open`).
    open: Arc<AtomicBool>,
    /// The simulated crash (`Backend::crash_commits_after`).
    crash: CrashHook,
    syncs: AtomicU64,
}

impl Drop for MemoryBackend {
    fn drop(&mut self) {
        self.open.store(false, Ordering::SeqCst);
    }
}

impl MemoryBackend {
    fn data(&self) -> Result<MutexGuard<'_, Data>, StoreError> {
        self.data.lock().map_err(|_| StoreError::Lock)
    }
}

/// Decodes an optional stored value.
fn get<T: serde::de::DeserializeOwned>(
    v: Option<&Vec<u8>>,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    v.map(|v| decode(v, what)).transpose()
}

impl Backend for MemoryBackend {
    /// Part by part in the contract's order, each under the one lock (so atomic), with
    /// the simulated crash between parts.
    fn commit(&self, commit: Commit) -> Result<(), StoreError> {
        let Commit {
            usage,
            notices,
            changes,
            consents,
            checkpoints,
            cases,
            current,
        } = commit;
        let mut data = self.data()?;
        if !usage.is_empty() {
            self.crash.next_part()?;
            for row in usage {
                if let Some(subject) = row.subject {
                    data.usage_index.insert((subject, row.seq));
                }
                data.usage.insert(row.seq, row.entry);
            }
        }
        if !notices.is_empty() {
            self.crash.next_part()?;
            for row in notices {
                match row {
                    NoticeRow::Queued {
                        next_hop,
                        from,
                        id,
                        notice,
                    } => {
                        data.outbox.insert((next_hop, from, id), notice);
                    }
                    NoticeRow::Received { from, id, notice } => {
                        data.inbox.insert((from, id), notice);
                    }
                    NoticeRow::Acked { next_hop, from, id } => {
                        data.outbox.remove(&(next_hop, from, id));
                    }
                }
            }
        }
        if !changes.is_empty() {
            self.crash.next_part()?;
            for run in changes {
                for (i, entry) in run.entries.into_iter().enumerate() {
                    data.changelog.insert(run.first + i as u64, entry);
                }
            }
        }
        if !consents.is_empty() {
            self.crash.next_part()?;
            for row in consents {
                if let Some(subject) = row.subject {
                    data.consents_by_subject.insert((subject, row.id));
                }
                data.consents.insert(row.id, row.consent);
            }
        }
        if !checkpoints.is_empty() {
            self.crash.next_part()?;
            for row in checkpoints {
                data.checkpoints.insert((row.node, row.seq), row.checkpoint);
            }
        }
        if !cases.is_empty() {
            self.crash.next_part()?;
            for row in cases {
                if let Some(record) = row.record {
                    data.cases_by_record.insert((record, row.id));
                }
                data.cases.insert(row.id, row.case);
            }
        }
        if !current.is_empty() {
            self.crash.next_part()?;
            data.replica_ids.extend(current.replica_ids);
            data.redact_queue.extend(current.redact_queue);
            data.records.extend(current.records);
            data.cursors.extend(current.cursors);
            for (child, seq, kept) in current.quarantine {
                match kept {
                    Some(value) => data.quarantine.insert((child, seq), value),
                    None => data.quarantine.remove(&(child, seq)),
                };
            }
            if let Some(applied) = current.applied {
                data.applied = applied;
            }
            if let Some((day, figures)) = current.day {
                data.days.insert(day, figures);
            }
            if current.last_day.is_some() {
                data.last_day = current.last_day;
            }
            if current.figures.is_some() {
                data.figures = current.figures;
            }
            for (provider, period, value) in current.monthly {
                data.monthly.insert((provider, period), value);
            }
            data.child_reports.extend(current.child_reports);
            if current.region.is_some() {
                data.region = current.region;
            }
        }
        Ok(())
    }

    /// Nothing to make durable: the data outlives a simulated crash of the process, and
    /// a power cut is not modelled.
    fn sync(&self) -> Result<(), StoreError> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::SeqCst)
    }

    /// All entries or none: every sequence is checked before any is replaced.
    fn rewrite_changes(&self, entries: Vec<(u64, u8, Vec<u8>)>) -> Result<(), StoreError> {
        let mut data = self.data()?;
        if let Some((seq, _, _)) = entries
            .iter()
            .find(|(seq, _, _)| !data.changelog.contains_key(seq))
        {
            return Err(StoreError::Engine(format!(
                "changelog entry {seq} to rewrite is not stored"
            )));
        }
        for (seq, tag, value) in entries {
            data.changelog.insert(seq, (tag, value));
        }
        Ok(())
    }

    fn release_redactions(&self, done: Vec<(Uuid, Vec<u8>)>) -> Result<usize, StoreError> {
        let mut data = self.data()?;
        let mut released = 0;
        for (id, value) in done {
            if data.redact_queue.get(&id) == Some(&value) {
                data.redact_queue.remove(&id);
                released += 1;
            }
        }
        Ok(released)
    }

    fn new_notice_id(&self) -> Result<u64, StoreError> {
        let mut data = self.data()?;
        data.notice_id += 1;
        Ok(data.notice_id)
    }

    /// See `Data::check` (in `check`).
    fn check(&self) -> CheckReport {
        match self.data() {
            Ok(data) => data.check(),
            Err(e) => {
                let mut report = CheckReport::default();
                report.find("all", "the engine", e.to_string());
                report
            }
        }
    }

    /// See `Data::fingerprint` (in `check`).
    fn fingerprint(&self) -> Result<Hash, StoreError> {
        Ok(self.data()?.fingerprint())
    }

    fn crash_commits_after(&self, parts: usize) {
        self.crash.arm(parts);
    }
}
