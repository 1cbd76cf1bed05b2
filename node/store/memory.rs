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
//! Compiled always (and hidden from the docs): integration tests link the library as
//! built without `cfg(test)`, and a cargo feature for it would have to be named on every
//! test run. It holds no sled type and reads no file.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::NaiveDate;
use uuid::Uuid;

use super::backend::{Backend, Commit, Heads, NaturalKey, NoticeRow, Reads};
use super::check::{self, CheckReport, LatestVersions, UsageChain};
use super::chunks::decode_change;
use super::codec::decode;
use super::notices::decode_notice;
use super::{Change, Quarantined, StoreError, keys};
use crate::domain::case::Case;
use crate::domain::census::{Figures, Monthly, PlatformReport};
use crate::domain::consent::Consent;
use crate::domain::notice::Notice;
use crate::domain::record::{Hash, Record, Status};
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint};

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
            crash_after: AtomicUsize::new(usize::MAX),
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
    /// Parts a commit may still write before it stops as a crash would
    /// (`Backend::crash_commits_after`); `usize::MAX`: never.
    crash_after: AtomicUsize,
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

    /// Before each part of a commit: fails once the parts allowed by `crash_after` are
    /// written (as sled's `next_tree`).
    fn next_part(&self) -> Result<(), StoreError> {
        let left = self.crash_after.load(Ordering::SeqCst);
        if left == usize::MAX {
            return Ok(());
        }
        if left == 0 {
            return Err(StoreError::Engine(
                "a simulated crash stopped this commit".into(),
            ));
        }
        self.crash_after.store(left - 1, Ordering::SeqCst);
        Ok(())
    }
}

/// Decodes an optional stored value.
fn get<T: serde::de::DeserializeOwned>(
    v: Option<&Vec<u8>>,
    what: &'static str,
) -> Result<Option<T>, StoreError> {
    v.map(|v| decode(v, what)).transpose()
}

impl Data {
    fn change(&self, seq: u64) -> Result<Option<Change>, StoreError> {
        self.changelog
            .get(&seq)
            .map(|(tag, v)| decode_change(*tag, v))
            .transpose()
    }

    fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError> {
        get(self.cases.get(id), "objection case")
    }

    fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError> {
        get(self.consents.get(id), "consent")
    }

    /// Current records whose natural key starts with `prefix`, in natural-key order,
    /// strictly after `resume` (which must lie inside the prefix), at most `limit`.
    fn records_under(
        &self,
        prefix: &[u8],
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError> {
        let from = match resume {
            Some(after) if after.starts_with(prefix) => Bound::Excluded(after),
            Some(_) => return Ok(Vec::new()),
            None => Bound::Included(prefix),
        };
        self.records
            .range::<[u8], _>((from, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| Ok((k.clone(), decode(v, "record")?)))
            .collect()
    }
}

impl Reads for MemoryBackend {
    fn heads(&self) -> Result<Heads, StoreError> {
        let data = self.data()?;
        let next_change = data.changelog.keys().next_back().map_or(1, |s| s + 1);
        let (next_usage, usage_head) = match data.usage.iter().next_back() {
            Some((seq, v)) => (seq + 1, decode::<Chained>(v, "usage entry")?.hash),
            None => (1, [0u8; 32]),
        };
        Ok(Heads {
            next_change,
            next_usage,
            usage_head,
        })
    }

    fn record(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        get(self.data()?.records.get(key), "record")
    }

    /// As on sled: through the replica index for a record applied from a child, else
    /// through the sequence of its first version, which the id carries (`ids`).
    fn record_by_id(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        let data = self.data()?;
        if let Some(key) = data.replica_ids.get(id) {
            return match data.records.get(key) {
                Some(v) => Ok(Some(decode(v, "record")?)),
                None => Err(StoreError::Corrupt {
                    what: "replica index",
                    detail: format!("record {id} is indexed but missing"),
                }),
            };
        }
        let Some((_, first)) = crate::domain::ids::locate(id) else {
            return Ok(None);
        };
        let Some(Change::Record(first_version)) = data.change(first)? else {
            return Ok(None);
        };
        // A sequence from another origin's id points at some other record here.
        if first_version.id != *id {
            return Ok(None);
        }
        let key = keys::natural(&first_version.content, &first_version.origin);
        match data.records.get(&key) {
            Some(v) => Ok(Some(decode(v, "record")?)),
            None => Err(StoreError::Corrupt {
                what: "records",
                detail: format!("record {id} is in the changelog only"),
            }),
        }
    }

    fn replica_key(&self, id: &Uuid) -> Result<Option<NaturalKey>, StoreError> {
        Ok(self.data()?.replica_ids.get(id).cloned())
    }

    fn records_of(
        &self,
        subject: &str,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::subject_records(subject);
        Ok(self
            .data()?
            .records_under(&prefix, resume, limit)?
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        self.data()?
            .changelog
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, (tag, v))| Ok((*seq, decode_change(*tag, v)?)))
            .collect()
    }

    fn all_records(
        &self,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError> {
        self.data()?
            .records_under(&[keys::records::RECORD], resume, limit)
    }

    fn record_count(&self) -> Result<u64, StoreError> {
        Ok(self.data()?.records.len() as u64)
    }

    fn usage_rows(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        Ok(self
            .data()?
            .usage
            .range(after.saturating_add(1)..)
            .take(limit)
            .map(|(seq, v)| (*seq, v.clone()))
            .collect())
    }

    fn usage_of(&self, subject: &str, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        let data = self.data()?;
        let mut out = Vec::new();
        for (_, seq) in data
            .usage_index
            .range((subject.to_string(), 0)..)
            .take_while(|(s, _)| s == subject)
            .take(limit)
        {
            // An index row without its entry is skipped (see the trait).
            if let Some(v) = data.usage.get(seq) {
                out.push((*seq, decode(v, "usage entry")?));
            }
        }
        Ok(out)
    }

    fn region(&self) -> Result<Option<RegionCode>, StoreError> {
        Ok(self.data()?.region)
    }

    fn applied(&self) -> Result<u64, StoreError> {
        Ok(self.data()?.applied)
    }

    fn cursor(&self, child: &RegionCode) -> Result<u64, StoreError> {
        Ok(self.data()?.cursors.get(child).copied().unwrap_or(0))
    }

    fn figures(&self) -> Result<Option<Figures>, StoreError> {
        get(self.data()?.figures.as_ref(), "census figures")
    }

    fn monthly(&self, provider: &str, period: &str) -> Result<Option<Monthly>, StoreError> {
        let data = self.data()?;
        let key = (provider.to_string(), period.to_string());
        get(data.monthly.get(&key), "monthly submissions")
    }

    fn last_day(&self) -> Result<Option<NaiveDate>, StoreError> {
        Ok(self.data()?.last_day)
    }

    fn figures_at(&self, day: NaiveDate) -> Result<Option<Figures>, StoreError> {
        let data = self.data()?;
        get(
            data.days.range(..=day).next_back().map(|(_, v)| v),
            "census snapshot",
        )
    }

    fn child_reports(&self) -> Result<Vec<PlatformReport>, StoreError> {
        self.data()?
            .child_reports
            .values()
            .map(|v| decode(v, "child census report"))
            .collect()
    }

    fn redact_queue(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError> {
        Ok(self
            .data()?
            .redact_queue
            .iter()
            .map(|(id, v)| (*id, v.clone()))
            .collect())
    }

    fn quarantine(
        &self,
        child: Option<&RegionCode>,
        limit: usize,
    ) -> Result<Vec<Quarantined>, StoreError> {
        let data = self.data()?;
        let mut out = data
            .quarantine
            .iter()
            .rev()
            .filter(|((c, _), _)| child.is_none_or(|child| c == child))
            .take(limit)
            .map(|(_, v)| decode(v, "quarantined entry"))
            .collect::<Result<Vec<Quarantined>, _>>()?;
        out.reverse();
        Ok(out)
    }

    fn quarantine_counts(&self) -> Result<BTreeMap<RegionCode, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for (child, _) in self.data()?.quarantine.keys() {
            *counts.entry(*child).or_insert(0) += 1;
        }
        Ok(counts)
    }

    fn is_quarantined(&self, child: &RegionCode, seq: u64) -> Result<bool, StoreError> {
        Ok(self.data()?.quarantine.contains_key(&(*child, seq)))
    }

    fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError> {
        self.data()?.consent(id)
    }

    fn consents_of(&self, subject: &str) -> Result<Vec<Consent>, StoreError> {
        let data = self.data()?;
        let mut out = Vec::new();
        for (_, id) in data
            .consents_by_subject
            .range((subject.to_string(), Uuid::nil())..)
            .take_while(|(s, _)| s == subject)
        {
            match data.consent(id)? {
                Some(c) => out.push(c),
                None => {
                    return Err(StoreError::Corrupt {
                        what: "consent index",
                        detail: format!("consent {id} is indexed but missing"),
                    });
                }
            }
        }
        Ok(out)
    }

    fn checkpoint(&self, node: &RegionCode, seq: u64) -> Result<Option<Checkpoint>, StoreError> {
        get(self.data()?.checkpoints.get(&(*node, seq)), "checkpoint")
    }

    fn checkpoints(&self, node: Option<&RegionCode>) -> Result<Vec<Checkpoint>, StoreError> {
        self.data()?
            .checkpoints
            .iter()
            .filter(|((n, _), _)| node.is_none_or(|node| n == node))
            .map(|(_, v)| decode(v, "checkpoint"))
            .collect()
    }

    fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError> {
        self.data()?.case(id)
    }

    fn cases(&self) -> Result<Vec<Case>, StoreError> {
        self.data()?
            .cases
            .values()
            .map(|v| decode(v, "objection case"))
            .collect()
    }

    fn cases_of_record(&self, record: &Uuid) -> Result<Vec<Case>, StoreError> {
        let data = self.data()?;
        let mut out = Vec::new();
        for (_, id) in data
            .cases_by_record
            .range((*record, Uuid::nil())..)
            .take_while(|(r, _)| r == record)
        {
            if let Some(c) = data.case(id)? {
                out.push(c);
            }
        }
        Ok(out)
    }

    fn pending_notices(&self, next_hop: &RegionCode) -> Result<Vec<Notice>, StoreError> {
        self.data()?
            .outbox
            .iter()
            .filter(|((hop, _, _), _)| hop == next_hop)
            .map(|(_, v)| decode_notice(v))
            .collect()
    }

    fn notice_pending(
        &self,
        next_hop: &RegionCode,
        from: &RegionCode,
        id: u64,
    ) -> Result<bool, StoreError> {
        Ok(self.data()?.outbox.contains_key(&(*next_hop, *from, id)))
    }

    fn inbox(&self) -> Result<Vec<Notice>, StoreError> {
        self.data()?
            .inbox
            .values()
            .map(|v| decode_notice(v))
            .collect()
    }

    fn received(&self, from: &RegionCode, id: u64) -> Result<bool, StoreError> {
        Ok(self.data()?.inbox.contains_key(&(*from, id)))
    }
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
            self.next_part()?;
            for row in usage {
                if let Some(subject) = row.subject {
                    data.usage_index.insert((subject, row.seq));
                }
                data.usage.insert(row.seq, row.entry);
            }
        }
        if !notices.is_empty() {
            self.next_part()?;
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
            self.next_part()?;
            for run in changes {
                for (i, entry) in run.entries.into_iter().enumerate() {
                    data.changelog.insert(run.first + i as u64, entry);
                }
            }
        }
        if !consents.is_empty() {
            self.next_part()?;
            for row in consents {
                if let Some(subject) = row.subject {
                    data.consents_by_subject.insert((subject, row.id));
                }
                data.consents.insert(row.id, row.consent);
            }
        }
        if !checkpoints.is_empty() {
            self.next_part()?;
            for row in checkpoints {
                data.checkpoints.insert((row.node, row.seq), row.checkpoint);
            }
        }
        if !cases.is_empty() {
            self.next_part()?;
            for row in cases {
                if let Some(record) = row.record {
                    data.cases_by_record.insert((record, row.id));
                }
                data.cases.insert(row.id, row.case);
            }
        }
        if !current.is_empty() {
            self.next_part()?;
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

    /// What can be checked of data that no disk can damage: every value decodes as its
    /// table says; record versions match their content hash and sit under their own
    /// natural key; the current records agree with the changelog's latest versions and
    /// the census figures with a recount (the rules in `check`, shared with sled); the
    /// changelog and the usage log run from 1 without gap and the usage chain links;
    /// every index names a row that is held. It catches a `Store` that wrote
    /// inconsistent data through the seam, not a damaged medium.
    fn check(&self) -> CheckReport {
        let mut rep = CheckReport::default();
        let data = match self.data() {
            Ok(d) => d,
            Err(e) => {
                rep.find("all", "the engine", e.to_string());
                return rep;
            }
        };
        let seq_at = |seq: u64| format!("sequence {seq}");

        let mut latest = LatestVersions::new();
        for (&seq, (tag, v)) in &data.changelog {
            // One row per entry: each is its own "chunk" in the report.
            rep.chunks += 1;
            rep.changes += 1;
            if seq != rep.last_change + 1 {
                rep.find(
                    "changelog",
                    seq_at(seq),
                    format!("entries {} to {} are missing", rep.last_change + 1, seq - 1),
                );
            }
            rep.last_change = seq;
            match decode_change(*tag, v) {
                Ok(change) => check::changelog_entry(&mut rep, seq, &change, &mut latest),
                Err(e) => rep.find("changelog", seq_at(seq), e.to_string()),
            }
        }

        rep.applied = data.applied;
        let caught_up = data.applied == rep.last_change;
        let mut figures = Figures::default();
        for (k, v) in &data.records {
            if let Some(problem) =
                check::current_record(&mut rep, k, v, caught_up, &mut latest, &mut figures)
            {
                rep.find("records", check::show_key(k), problem);
            }
        }
        let stored = match data.figures.as_deref().map(|v| decode(v, "census figures")) {
            Some(Ok(f)) => Some(f),
            Some(Err(e)) => {
                rep.find("records", "census figures", e.to_string());
                None
            }
            None => None,
        };
        check::current_against_changelog(
            &mut rep,
            &latest,
            stored,
            &figures,
            ("the replay mark", "census figures"),
        );
        data.check_current(&mut rep);

        let mut chain = UsageChain::default();
        for (&seq, v) in &data.usage {
            chain.entry(&mut rep, seq, v, &seq_at(seq));
        }
        for (subject, seq) in &data.usage_index {
            rep.usage_index += 1;
            if !data.usage.contains_key(seq) {
                rep.find(
                    "usage",
                    format!("usage index of {}", crate::domain::record::mask_id(subject)),
                    format!("names entry {seq}, but the log ends at {}", chain.last()),
                );
            }
        }
        data.check_side(&mut rep);
        rep
    }

    /// Over every row of every table but the usage log and the notices, table by table
    /// in key order.
    fn fingerprint(&self) -> Result<Hash, StoreError> {
        let data = self.data()?;
        let mut fp = Fingerprint(ring::digest::Context::new(&ring::digest::SHA256));
        fp.table("records", data.records.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "replica ids",
            data.replica_ids.iter().map(|(id, k)| (id_key(id), k)),
        );
        fp.table(
            "redaction queue",
            data.redact_queue.iter().map(|(id, v)| (id_key(id), v)),
        );
        let cursors: Vec<(Vec<u8>, Vec<u8>)> = data
            .cursors
            .iter()
            .map(|(c, s)| (region_key(c), s.to_be_bytes().to_vec()))
            .collect();
        fp.table("cursors", cursors.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "quarantine",
            data.quarantine
                .iter()
                .map(|((c, s), v)| (seq_key(region_key(c), *s), v)),
        );
        fp.table("figures", data.figures.iter().map(|v| (Vec::new(), v)));
        fp.table(
            "monthly",
            data.monthly.iter().map(|((p, m), v)| {
                let mut k = p.as_bytes().to_vec();
                k.push(0);
                k.extend_from_slice(m.as_bytes());
                (k, v)
            }),
        );
        fp.table(
            "days",
            data.days
                .iter()
                .map(|(d, v)| (d.to_string().into_bytes(), v)),
        );
        let marks: Vec<(Vec<u8>, Vec<u8>)> = [
            data.last_day
                .map(|d| (b"last day".to_vec(), d.to_string().into_bytes())),
            Some((b"applied".to_vec(), data.applied.to_be_bytes().to_vec())),
            data.region
                .map(|r| (b"region".to_vec(), r.as_str().as_bytes().to_vec())),
        ]
        .into_iter()
        .flatten()
        .collect();
        fp.table("marks", marks.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "child reports",
            data.child_reports.iter().map(|(c, v)| (region_key(c), v)),
        );
        let changelog: Vec<(Vec<u8>, Vec<u8>)> = data
            .changelog
            .iter()
            .map(|(s, (tag, v))| {
                let mut value = vec![*tag];
                value.extend_from_slice(v);
                (s.to_be_bytes().to_vec(), value)
            })
            .collect();
        fp.table("changelog", changelog.iter().map(|(k, v)| (k.clone(), v)));
        fp.table(
            "consents",
            data.consents.iter().map(|(id, v)| (id_key(id), v)),
        );
        fp.table(
            "consents by subject",
            data.consents_by_subject.iter().map(|(s, id)| {
                let mut k = s.as_bytes().to_vec();
                k.push(0);
                k.extend_from_slice(id.as_bytes());
                (k, &EMPTY)
            }),
        );
        fp.table(
            "checkpoints",
            data.checkpoints
                .iter()
                .map(|((n, s), v)| (seq_key(region_key(n), *s), v)),
        );
        fp.table("cases", data.cases.iter().map(|(id, v)| (id_key(id), v)));
        fp.table(
            "cases by record",
            data.cases_by_record.iter().map(|(r, c)| {
                let mut k = id_key(r);
                k.extend_from_slice(c.as_bytes());
                (k, &EMPTY)
            }),
        );
        let mut out = [0u8; 32];
        out.copy_from_slice(fp.0.finish().as_ref());
        Ok(out)
    }

    fn crash_commits_after(&self, parts: usize) {
        self.crash_after.store(parts, Ordering::SeqCst);
    }
}

/// The value of an index row (the row is its key).
static EMPTY: Vec<u8> = Vec::new();

fn id_key(id: &Uuid) -> Vec<u8> {
    id.as_bytes().to_vec()
}

fn region_key(region: &RegionCode) -> Vec<u8> {
    region.as_str().as_bytes().to_vec()
}

fn seq_key(mut key: Vec<u8>, seq: u64) -> Vec<u8> {
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// SHA-256 over tables of rows, each length-prefixed so no two contents hash alike.
struct Fingerprint(ring::digest::Context);

impl Fingerprint {
    fn bytes(&mut self, b: &[u8]) {
        self.0.update(&(b.len() as u64).to_be_bytes());
        self.0.update(b);
    }

    fn table<'a>(&mut self, name: &str, rows: impl Iterator<Item = (Vec<u8>, &'a Vec<u8>)>) {
        self.bytes(name.as_bytes());
        for (k, v) in rows {
            self.bytes(&k);
            self.bytes(v);
        }
    }
}

impl Data {
    /// The current state's values other than records: each decodes, each index names a
    /// record held, a quarantined entry sits under its own child and sequence.
    fn check_current(&self, rep: &mut CheckReport) {
        let find = |rep: &mut CheckReport, at: String, problem: String| {
            rep.find("records", at, problem);
        };
        rep.other += (self.replica_ids.len()
            + self.redact_queue.len()
            + self.cursors.len()
            + self.quarantine.len()
            + self.monthly.len()
            + self.days.len()
            + self.child_reports.len()) as u64;
        for (id, key) in &self.replica_ids {
            if !self.records.contains_key(key) {
                find(
                    rep,
                    format!("replica index of {id}"),
                    "the replica index names a record that is not held".into(),
                );
            }
        }
        for (id, v) in &self.redact_queue {
            if let Err(e) = decode::<(u64, Status)>(v, "redaction queue") {
                find(rep, format!("redaction queue, {id}"), e.to_string());
            }
        }
        for ((child, seq), v) in &self.quarantine {
            match decode::<Quarantined>(v, "quarantined entry") {
                Ok(q) if (q.child, q.child_seq) != (*child, *seq) => find(
                    rep,
                    format!("quarantine of {child}, {seq}"),
                    "a quarantined entry under another child's or sequence's key".into(),
                ),
                Ok(_) => {}
                Err(e) => find(rep, format!("quarantine of {child}, {seq}"), e.to_string()),
            }
        }
        for ((provider, period), v) in &self.monthly {
            if let Err(e) = decode::<Monthly>(v, "monthly submissions") {
                find(
                    rep,
                    format!("monthly of {provider}, {period}"),
                    e.to_string(),
                );
            }
        }
        for (day, v) in &self.days {
            if let Err(e) = decode::<Figures>(v, "census snapshot") {
                find(rep, format!("census snapshot of {day}"), e.to_string());
            }
        }
        for (child, v) in &self.child_reports {
            if let Err(e) = decode::<PlatformReport>(v, "child census report") {
                find(rep, format!("census report of {child}"), e.to_string());
            }
        }
    }

    /// Consents, checkpoints, cases and notices: each decodes; each index names what is
    /// held.
    fn check_side(&self, rep: &mut CheckReport) {
        for (id, v) in &self.consents {
            rep.consents += 1;
            if let Err(e) = decode::<Consent>(v, "consent") {
                rep.find("consents", format!("consent {id}"), e.to_string());
            }
        }
        for (_, id) in &self.consents_by_subject {
            if !self.consents.contains_key(id) {
                rep.find(
                    "consents",
                    "subject index",
                    "names a consent that is not held",
                );
            }
        }
        for ((node, seq), v) in &self.checkpoints {
            rep.checkpoints += 1;
            if let Err(e) = decode::<Checkpoint>(v, "checkpoint") {
                rep.find("checkpoints", format!("{node}/{seq}"), e.to_string());
            }
        }
        for (id, v) in &self.cases {
            rep.objections += 1;
            if let Err(e) = decode::<Case>(v, "objection case") {
                rep.find("objections", format!("case {id}"), e.to_string());
            }
        }
        for (record, id) in &self.cases_by_record {
            if !self.cases.contains_key(id) {
                rep.find(
                    "objections",
                    format!("cases of record {record}"),
                    "names a case that is not held",
                );
            }
        }
        let queued = self.outbox.iter().map(|((_, from, id), v)| (from, id, v));
        let received = self.inbox.iter().map(|((from, id), v)| (from, id, v));
        for (from, id, v) in queued.chain(received) {
            rep.notices += 1;
            if let Err(e) = decode_notice(v) {
                rep.find("notices", format!("notice {from}/{id}"), e.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::codec::encode;
    use crate::store::tests::{content, push_usage, region};

    /// A way to damage the data.
    type Harm = Box<dyn Fn(&mut Data)>;

    /// The check applies the rules sled's check applies: a store written through the
    /// seam passes, and each inconsistency a `Store` could write is named.
    #[test]
    fn the_check_names_each_inconsistency() {
        let dir = tempfile::tempdir().unwrap();
        let engine = MemoryEngine::new();
        let store = Store::open_in_memory(&engine, dir.path()).unwrap();
        let batch = vec![content("S1", "R-1", "1"), content("S2", "R-2", "1")];
        store.accept(batch, region(), 10, push_usage).unwrap();
        let batch = vec![content("S1", "R-1", "2")];
        store.accept(batch, region(), 11, push_usage).unwrap();
        let report = store.check();
        assert!(report.ok(), "{:?}", report.damage);
        assert_eq!((report.records, report.changes), (2, 3));
        assert_eq!((report.usage_entries, report.applied), (2, 3));
        assert!(
            Store::open_in_memory(&engine, dir.path()).is_err(),
            "open twice"
        );
        drop(store);
        let pristine = engine.data.lock().unwrap().clone();
        let first_version = pristine.changelog[&1].1.clone();
        let damages: Vec<(&str, Harm)> = vec![
            (
                "does not link to the one before it",
                Box::new(|d| {
                    let first = d.usage[&1].clone();
                    d.usage.insert(2, first);
                }),
            ),
            (
                "holds v1 but the changelog's latest is v2",
                Box::new(move |d| {
                    let key = d.records.keys().next().unwrap().clone();
                    d.records.insert(key, first_version.clone());
                }),
            ),
            (
                "differ from a recount",
                Box::new(|d| d.figures = Some(encode(&Figures::default()).unwrap())),
            ),
            (
                "entries 2 to 2 are missing",
                Box::new(|d| {
                    d.changelog.remove(&2);
                }),
            ),
            ("applied the changelog up to 9", Box::new(|d| d.applied = 9)),
            (
                "not under its own key",
                Box::new(|d| {
                    let (_, v) = d.records.pop_first().unwrap();
                    d.records.insert(b"kS9\0x".to_vec(), v);
                }),
            ),
            (
                "unknown format byte",
                Box::new(|d| {
                    d.inbox.insert((region(), 1), vec![9, 9]);
                }),
            ),
            (
                "names a case that is not held",
                Box::new(|d| {
                    d.cases_by_record.insert((Uuid::nil(), Uuid::nil()));
                }),
            ),
        ];
        for (expected, damage) in damages {
            let mut data = pristine.clone();
            damage(&mut data);
            let damaged = MemoryEngine {
                data: Arc::new(Mutex::new(data)),
                ..MemoryEngine::default()
            };
            let report = damaged.backend().unwrap().check();
            assert!(
                report.damage.iter().any(|d| d.problem.contains(expected)),
                "{expected}: {:?}",
                report.damage
            );
        }
    }
}
