//! The storage seam: what the node needs from a storage engine, in domain terms.
//!
//! `Store` (the handle the whole node passes around) keeps every decision above this
//! seam: new version / unchanged / closed on accept, idempotent replica apply, usage
//! chaining and scrubbing, census counters, objection holds, quarantine. It hands a
//! backend one `Commit` per batch, each part typed by what it is (usage entries,
//! notices, changelog entries, consents, checkpoints, cases, current records and the
//! small state written with them), so that a relational backend maps each part to its
//! own table and a key-value backend to its own tree. A row is named by its domain
//! identifiers (sequence, natural key, id, region); its value is the stored encoding
//! (`codec`, pinned by the golden-byte tests), made once above the seam, so every
//! backend stores the same bytes, a record version is serialised once for both the
//! changelog and the current-record index, and copying a store between engines moves
//! bytes unchanged.
//!
//! # The contract
//!
//! * `commit` writes one batch. Its parts are written in the order the fields of
//!   `Commit` are declared: usage, notices, changelog, side (consents, checkpoints,
//!   cases), then the current state. A backend with transactions writes them in one; a
//!   backend without (sled: one atomic batch per tree) must leave, after any crash, a
//!   prefix of that order, so that stored data always has its usage entry, the current
//!   state never leads the changelog, and `Store::open` replays the changelog after the
//!   `applied` mark (idempotently) to complete a batch cut short. A batch with a
//!   changelog part is thus all or nothing after reopening, beside usage entries (which
//!   may name a batch never acknowledged, as ARCHITECTURE.md says). A batch without one
//!   is not replayed: `keep_case`, `queue_notice` and `receive_notice` are safe by
//!   their order alone (a notice is written before the case it carries, see
//!   `objections.rs`), not all or nothing; `ack_notice`, `bind_region`,
//!   `set_child_report` and the census recount at open write one part each.
//! * `Store` makes one commit at a time: every commit is made under its writer lock,
//!   but for the replay and the census recount at open, before the store is shared.
//! * `sync` is the durable acknowledgement: every commit that returned before it began
//!   survives a power cut once it returns. Nothing is acknowledged to a caller before.
//! * Scans are ordered and resumable: the changelog and the usage log by sequence
//!   (resume after the last sequence seen), a subject's records by natural key (resume
//!   after the natural key of the last record seen, `keys::natural`).
//!
//! # Sequences under concurrent writers
//!
//! The changelog and usage sequences must be gap-free and become visible in order (the
//! uplink's cursor, the usage hash chain). Today the one writer allocates them under
//! its lock (`Writer`), from the heads read at open. A database shared by several node
//! processes (issue 14) must allocate them under a lock of its own, held until the
//! batch commits: a one-row `heads` table (next changelog sequence, next usage
//! sequence, usage chain head, census figures: exactly `Writer`) read `FOR UPDATE` at
//! the start of the batch's transaction. A database `SEQUENCE` will not do: it leaves
//! gaps on rollback and hands out numbers that commit out of order. The decision logic
//! must run inside that transaction too, so two processes never both make version n+1.
//! So a shared-database engine adds a `begin` to this seam that returns the locked
//! writer state (sled: the in-process mutex; PostgreSQL: the transaction holding the
//! `heads` row) and a `commit` on it; with one process per store (sled, and a database
//! used by one node) `Writer` is that lock, and `heads` is read once, at open.
//!
//! # Reads
//!
//! `Reads` returns domain values, decoded from the stored bytes (`codec`), and scans in
//! the orders its methods name; an engine is free in how it finds them. The writer's
//! own state (sequences, chain head, figures) is read once at open; the rest is read
//! on demand. A read sees every commit that returned before it began.
//!
//! # Natural keys
//!
//! `NaturalKey` is the canonical encoding of (subject, category, origin, provider,
//! reference) that `keys::natural` makes: the parts joined by NUL after a `k`. None of
//! the parts can hold a NUL, so a relational backend splits it into its columns.
//! "Natural-key order" is the bytewise order of that encoding, which is the order of the
//! parts compared bytewise in turn (a part that is a prefix of another sorts first): a
//! relational backend orders its columns bytewise (PostgreSQL: `COLLATE "C"`), not by
//! a locale's collation. Ids (UUIDs) and regions order bytewise too.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use uuid::Uuid;

use super::codec::decode;
use super::{Change, CheckReport, Quarantined, StoreError};
use crate::domain::case::Case;
use crate::domain::census::{Figures, Monthly, PlatformReport};
use crate::domain::consent::Consent;
use crate::domain::notice::Notice;
use crate::domain::record::{Hash, Record};
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint};

/// `keys::natural` of a record: see the module doc.
pub type NaturalKey = Vec<u8>;

/// The reading half of the seam: what anyone holding a `Store` may see through it
/// (`Store::backend`). Writing is `Backend`'s, reached only by `Store`'s writer, which
/// allocates the sequences and decides each batch under its lock.
pub trait Reads: Send + Sync {
    /// Where the sequences stand: the next changelog sequence, the next usage sequence
    /// and the usage chain's head hash (zeros when the log is empty).
    fn heads(&self) -> Result<Heads, StoreError>;

    /// The current version held under a natural key.
    fn record(&self, key: &[u8]) -> Result<Option<Record>, StoreError>;

    /// The current version of a record, by id. `Current::records` names rows by natural
    /// key only: a record applied from a child is found through `Current::replica_ids`;
    /// one originated here through the sequence its id carries (`domain::ids::locate`)
    /// and the changelog entry there (sled and the memory engine do so), or through an
    /// id index the engine builds from the decoded value.
    fn record_by_id(&self, id: &Uuid) -> Result<Option<Record>, StoreError>;

    /// The natural key a record applied from a child is indexed under, by id.
    fn replica_key(&self, id: &Uuid) -> Result<Option<NaturalKey>, StoreError>;

    /// The current versions of one subject's records in natural-key order, strictly
    /// after the natural key `resume` (from the start when `None`; nothing when `resume`
    /// is not under this subject), at most `limit`.
    fn records_of(
        &self,
        subject: &str,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError>;

    /// Changelog entries after sequence `after`, at most `limit`, in sequence order.
    fn changes(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError>;

    /// Every current record in natural-key order, after the natural key `resume` (from
    /// the start when `None`), at most `limit`, each with its natural key (to resume
    /// after): a full scan, in pages.
    fn all_records(
        &self,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(NaturalKey, Record)>, StoreError>;

    /// How many current records are held.
    fn record_count(&self) -> Result<u64, StoreError>;

    /// Usage entries after sequence `after`, at most `limit`, in sequence order, as
    /// stored (undecoded: the audit reports an entry that does not decode and goes on).
    fn usage_rows(&self, after: u64, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError>;

    /// Usage entries after sequence `after`, at most `limit`, in sequence order.
    fn usage(&self, after: u64, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.usage_rows(after, limit)?
            .into_iter()
            .map(|(seq, v)| Ok((seq, decode(&v, "usage entry")?)))
            .collect()
    }

    /// The usage entries indexed under `subject`, in sequence order, from the first
    /// `limit` index rows: a row whose entry is missing is skipped, and counts toward
    /// `limit` (`audit verify` names the gap).
    fn usage_of(&self, subject: &str, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError>;

    /// The region code the store is bound to (`Current::region`), as written: a code
    /// this build no longer takes is still named to the operator, not taken for damage.
    fn region(&self) -> Result<Option<String>, StoreError>;

    /// The last changelog sequence the current state reflects (0: none).
    fn applied(&self) -> Result<u64, StoreError>;

    /// A child's cursor: its last sequence applied here (0 before its first entry).
    fn cursor(&self, child: &RegionCode) -> Result<u64, StoreError>;

    /// The census figures as last written (`None` in a store from before the census).
    fn figures(&self) -> Result<Option<Figures>, StoreError>;

    /// One provider's submissions for one period.
    fn monthly(&self, provider: &str, period: &str) -> Result<Option<Monthly>, StoreError>;

    /// The day of the last write.
    fn last_day(&self) -> Result<Option<NaiveDate>, StoreError>;

    /// The latest end-of-day figures kept for a day at or before `day`.
    fn figures_at(&self, day: NaiveDate) -> Result<Option<Figures>, StoreError>;

    /// The children's latest census reports, by child.
    fn child_reports(&self) -> Result<Vec<PlatformReport>, StoreError>;

    /// The redaction queue: record id -> (version, status), as stored (the value is what
    /// `Backend::release_redactions` compares).
    fn redact_queue(&self) -> Result<Vec<(Uuid, Vec<u8>)>, StoreError>;

    /// Entries kept in quarantine, of one child or of all, by child and sequence: the
    /// last `limit` of them when there are more.
    fn quarantine(
        &self,
        child: Option<&RegionCode>,
        limit: usize,
    ) -> Result<Vec<Quarantined>, StoreError>;

    /// How many entries of each child are kept in quarantine.
    fn quarantine_counts(&self) -> Result<BTreeMap<RegionCode, u64>, StoreError>;

    /// Whether the entry at `seq` of `child` is kept in quarantine.
    fn is_quarantined(&self, child: &RegionCode, seq: u64) -> Result<bool, StoreError>;

    /// A consent in its latest state here.
    fn consent(&self, id: &Uuid) -> Result<Option<Consent>, StoreError>;

    /// A subject's consents, by id.
    fn consents_of(&self, subject: &str) -> Result<Vec<Consent>, StoreError>;

    /// One node's checkpoint at one of its usage sequences.
    fn checkpoint(&self, node: &RegionCode, seq: u64) -> Result<Option<Checkpoint>, StoreError>;

    /// Checkpoints of one node or of all, in (node, sequence) order.
    fn checkpoints(&self, node: Option<&RegionCode>) -> Result<Vec<Checkpoint>, StoreError>;

    /// A case in its latest version here.
    fn case(&self, id: &Uuid) -> Result<Option<Case>, StoreError>;

    /// Every case, by id (UUID v7: oldest first).
    fn cases(&self) -> Result<Vec<Case>, StoreError>;

    /// The cases about one record, by id.
    fn cases_of_record(&self, record: &Uuid) -> Result<Vec<Case>, StoreError>;

    /// Notices queued for the child `next_hop`, by sender and id.
    fn pending_notices(&self, next_hop: &RegionCode) -> Result<Vec<Notice>, StoreError>;

    /// Whether a notice is queued for `next_hop`.
    fn notice_pending(
        &self,
        next_hop: &RegionCode,
        from: &RegionCode,
        id: u64,
    ) -> Result<bool, StoreError>;

    /// Notices received here, by sender and id.
    fn inbox(&self) -> Result<Vec<Notice>, StoreError>;

    /// Whether the notice `id` from `from` was received here.
    fn received(&self, from: &RegionCode, id: u64) -> Result<bool, StoreError>;
}

/// What the node needs from a storage engine: `Reads`, and the writes. Object-safe; one
/// call per batch, not per record. (`Any`: the engine's own tests reach its files.)
pub trait Backend: Reads + std::any::Any {
    /// Writes one batch (see the module doc for the atomicity contract). Not durable
    /// until `sync`.
    fn commit(&self, commit: Commit) -> Result<(), StoreError>;

    /// Makes every commit that returned before this call durable.
    fn sync(&self) -> Result<(), StoreError>;

    /// How many syncs this engine has made since it was opened.
    fn syncs(&self) -> u64;

    /// Replaces changelog entries in place, each at its sequence with its variant tag
    /// and encoding (the redaction of earlier versions): a reader sees each sequence
    /// once, before or after. Atomic per entry at least; not durable until `sync`.
    fn rewrite_changes(&self, entries: Vec<(u64, u8, Vec<u8>)>) -> Result<(), StoreError>;

    /// Drops redaction-queue entries that still hold the value read (a record queued
    /// again meanwhile stays queued). Returns how many were dropped.
    fn release_redactions(&self, done: Vec<(Uuid, Vec<u8>)>) -> Result<usize, StoreError>;

    /// A new notice id, unique in this store across restarts (gaps allowed).
    fn new_notice_id(&self) -> Result<u64, StoreError>;

    /// The engine's integrity check of everything it holds (R-SEC-1; see `check`).
    fn check(&self) -> CheckReport;

    /// SHA-256 over everything stored but the usage log and the notices (queued and
    /// received): equal before and after an operation means the operation changed no
    /// data (every use appends to the usage log, and a refusal may queue a notice). Engines
    /// need not agree on the value.
    fn fingerprint(&self) -> Result<Hash, StoreError>;

    /// Makes every later commit stop, as a process crash would, after writing `parts`
    /// of its parts (separately atomic writes, in the contract's order), and every
    /// commit after it fail: for the conformance suite's crash tests. An engine with
    /// one transaction per commit writes nothing of a commit that stops.
    fn crash_commits_after(&self, parts: usize);
}

/// The natural key of a record (see the module doc): what `Reads::records_of`
/// resumes after.
pub fn natural_key(record: &Record) -> NaturalKey {
    super::keys::natural(&record.content, &record.origin)
}

/// See `Reads::heads`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Heads {
    pub next_change: u64,
    pub next_usage: u64,
    pub usage_head: Hash,
}

/// One batch's writes, part by part, in the order they are written (see the module doc).
/// Values are the stored encodings (`codec`).
#[derive(Default)]
pub struct Commit {
    /// Hash-chained usage entries, by sequence.
    pub usage: Vec<UsageRow>,
    /// Notices queued for a child or received here.
    pub notices: Vec<NoticeRow>,
    /// Changelog entries: runs of consecutive sequences, each entry as its `Change`
    /// variant tag and its encoding (with the format byte, which a chunk leaves out).
    pub changes: Vec<ChangeRun>,
    /// Consents, new or in a later state.
    pub consents: Vec<ConsentRow>,
    /// Signed usage-log checkpoints.
    pub checkpoints: Vec<CheckpointRow>,
    /// Objection cases, new or in a later version.
    pub cases: Vec<CaseRow>,
    /// The current state: records and what is written with them.
    pub current: Current,
}

impl Commit {
    /// Whether the commit writes nothing.
    pub fn is_empty(&self) -> bool {
        self.usage.is_empty()
            && self.notices.is_empty()
            && self.changes.is_empty()
            && self.consents.is_empty()
            && self.checkpoints.is_empty()
            && self.cases.is_empty()
            && self.current.is_empty()
    }
}

/// The current state a commit writes, after everything else.
#[derive(Default)]
pub struct Current {
    /// Current versions, by natural key.
    pub records: Vec<(NaturalKey, Vec<u8>)>,
    /// The id index of records applied from children: id -> natural key.
    pub replica_ids: Vec<(Uuid, NaturalKey)>,
    /// Tombstones whose earlier versions await redaction: id -> (version, status).
    pub redact_queue: Vec<(Uuid, Vec<u8>)>,
    /// Children's cursors.
    pub cursors: Vec<(RegionCode, u64)>,
    /// Entries refused from a child (`Some`: kept; `None`: released), by child and the
    /// child's sequence.
    pub quarantine: Vec<(RegionCode, u64, Option<Vec<u8>>)>,
    /// The census figures.
    pub figures: Option<Vec<u8>>,
    /// Providers' monthly submissions: (provider, period) -> `Monthly`.
    pub monthly: Vec<(String, String, Vec<u8>)>,
    /// The figures as they stood at the end of a day.
    pub day: Option<(NaiveDate, Vec<u8>)>,
    /// The day of the last write.
    pub last_day: Option<NaiveDate>,
    /// The last changelog sequence the current state reflects (replay starts after it).
    pub applied: Option<u64>,
    /// The region the store is bound to (`Store::bind_region`), once.
    pub region: Option<RegionCode>,
    /// Children's latest census reports, by child.
    pub child_reports: Vec<(RegionCode, Vec<u8>)>,
}

impl Current {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
            && self.replica_ids.is_empty()
            && self.redact_queue.is_empty()
            && self.cursors.is_empty()
            && self.quarantine.is_empty()
            && self.figures.is_none()
            && self.monthly.is_empty()
            && self.day.is_none()
            && self.last_day.is_none()
            && self.applied.is_none()
            && self.region.is_none()
            && self.child_reports.is_empty()
    }
}

/// One usage entry (`Chained`, encoded) at its sequence, and the subject it is indexed
/// under (identifiers only).
pub struct UsageRow {
    pub seq: u64,
    pub subject: Option<String>,
    pub entry: Vec<u8>,
}

/// A notice row.
pub enum NoticeRow {
    /// Queued for the child `next_hop` until it acknowledges it.
    Queued {
        next_hop: RegionCode,
        from: RegionCode,
        id: u64,
        notice: Vec<u8>,
    },
    /// Received here.
    Received {
        from: RegionCode,
        id: u64,
        notice: Vec<u8>,
    },
    /// Acknowledged by `next_hop`: no longer queued.
    Acked {
        next_hop: RegionCode,
        from: RegionCode,
        id: u64,
    },
}

/// Consecutive changelog entries from sequence `first`.
pub struct ChangeRun {
    pub first: u64,
    pub entries: Vec<(u8, Vec<u8>)>,
}

/// A consent's latest state; `subject` is set when the consent is new here (indexed).
pub struct ConsentRow {
    pub id: Uuid,
    pub subject: Option<String>,
    pub consent: Vec<u8>,
}

/// A node's checkpoint at one of its usage sequences.
pub struct CheckpointRow {
    pub node: RegionCode,
    pub seq: u64,
    pub checkpoint: Vec<u8>,
}

/// A case's latest version here; `record` is set when the case is new here (indexed).
pub struct CaseRow {
    pub id: Uuid,
    pub record: Option<Uuid>,
    pub case: Vec<u8>,
}

/// The simulated crash of `Backend::crash_commits_after`, as an engine keeps it: how
/// many parts commits may still write (`usize::MAX`: no crash armed).
pub(in crate::store) struct CrashHook(std::sync::atomic::AtomicUsize);

impl Default for CrashHook {
    fn default() -> Self {
        CrashHook(std::sync::atomic::AtomicUsize::new(usize::MAX))
    }
}

impl CrashHook {
    /// Lets commits write `parts` more parts, then stop.
    pub(in crate::store) fn arm(&self, parts: usize) {
        self.0.store(parts, std::sync::atomic::Ordering::SeqCst);
    }

    /// Before each part of a commit: fails once the parts allowed are written, leaving
    /// what a process crash there leaves. One atomic step, so concurrent commits never
    /// share one allowed part.
    pub(in crate::store) fn next_part(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.0
            .fetch_update(SeqCst, SeqCst, |left| match left {
                usize::MAX => Some(left),
                0 => None,
                _ => Some(left - 1),
            })
            .map(|_| ())
            .map_err(|_| StoreError::Engine("a simulated crash stopped this commit".into()))
    }
}
