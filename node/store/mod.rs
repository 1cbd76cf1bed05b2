//! The node's embedded store (R-NODE-4): sled 0.34.7 behind a small interface.
//! Nothing outside this module sees a sled type.
//!
//! # Layout
//!
//! Seven trees, all opened by `open`:
//! * `changelog`: every version of every record, consent, checkpoint and objection case,
//!   in sequence order: the source of truth and the outbox the uplink streams upward.
//!   Stored in chunks: key = the first sequence of the chunk (u64, big-endian), value =
//!   the consecutive versions from there (at most `CHUNK_BYTES` encoded, so chunks stay
//!   below sled's blob threshold). A push batch writes one or a few chunks instead of
//!   one sled insert per record.
//! * `records`: the current state, rebuilt from the changelog if need be:
//!   `k` subject \0 category \0 origin \0 provider \0 reference -> the current version
//!   (a subject's records are one prefix scan); `a` -> the last changelog sequence applied
//!   here; `c` region -> each child's cursor; `o` uuid -> the natural key of a record
//!   applied from a child. Records originated here need no id index: their id carries the
//!   sequence of their first version (see `domain::ids`), which leads to the natural key. The
//!   same tree keeps the census figures and monthly submissions (see `census`), the
//!   quarantine (`quarantine`), the redaction queue (`redact`) and the region (`r`), so
//!   they change in the same atomic batch as the records.
//! * `notices`: notices queued for children and received here (see `notices`).
//! * `consents`, `checkpoints`: the latest state of each consent and every signed
//!   checkpoint (see `side`).
//! * `objections`: the latest state of each objection case here (see `objections`).
//! * `usage`: sequence -> hash-chained usage entry (R-SEC-3), and after the sequences the
//!   subject index.
//!
//! # Writing and durability
//!
//! One writer at a time decides outcomes (created, new version, unchanged) and writes a
//! batch as `apply_batch` calls in a fixed order: usage, changelog, the side trees
//! (consents, checkpoints, objections), records (with the `a` mark). Each is atomic;
//! sled recovers a prefix of its log, so after a crash stored records always have their
//! usage entry, the records tree is never ahead of the changelog, and `open`
//! replays any changelog tail the records tree lacks.
//! A batch is acknowledged only after `sync`: sled's `flush` (which on Linux ends in
//! `sync_file_range`, sled issue #1452) followed by `fdatasync` of sled's `db` file and
//! an fsync of any new blob files and their directory. See ARCHITECTURE.md, "Durability".

mod audit;
mod census;
mod check;
mod codec;
mod durability;
#[cfg(test)]
mod formats;
pub mod fuzz;
mod notices;
mod objections;
mod quarantine;
mod redact;
mod replica;
mod side;
mod usage_log;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::consent::Consent;
use crate::domain::record::{Content, Hash, Record, Status};
use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Checkpoint, UsageEntry};

pub use audit::{AuditFinding, AuditReport};
pub use check::{CheckReport, Damage, MARK_FILE, Mark, read_mark};
pub use objections::OriginChange;
pub use quarantine::{ChildLog, Quarantined, Refused};
pub use replica::ReplicaOutcome;
use replica::replica_id_key;
use side::SideOverlay;
pub use usage_log::UsageLog;

use codec::{decode, encode};
use durability::Durability;

const APPLIED_KEY: &[u8] = b"a";
/// The region of the node the store belongs to (`bind_region`).
const REGION_KEY: &[u8] = b"r";
const RECORD_PREFIX: u8 = b'k';
/// Usage-log keys are sequences (8 bytes big-endian, so below 2^56 they start with 0);
/// the subject index lives in the same tree, after them, so an entry and its index are
/// written in one atomic batch: `USAGE_INDEX` subject \0 sequence -> nothing.
const USAGE_INDEX: [u8; 2] = [0xFF, b's'];
const USAGE_END: [u8; 1] = [0x01];
/// Largest encoded changelog chunk (one record larger than this gets a chunk of its own).
const CHUNK_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage engine: {0}")]
    Engine(String),
    #[error("storage I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("stored data does not decode ({what}): {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("the store refused further writes after an earlier write failed; restart the node")]
    Poisoned,
    #[error("the store's lock was poisoned by a panic; restart the node")]
    Lock,
    /// The store's files are damaged (R-SEC-1): found by the integrity check, by sled, or
    /// by sled panicking while opening or reading them.
    #[error("{file} is damaged: {detail}")]
    Damaged { file: String, detail: String },
    /// sled reported corruption itself.
    #[error("the storage engine found its files corrupted: {0}")]
    EngineCorruption(String),
    /// A store call did not return within its bound (`[store] call_timeout_secs`).
    #[error("the store did not answer within {secs} s")]
    TimedOut { secs: u64 },
    /// Opening or checking the store at start did not finish within its bound: a big
    /// store on a slow disk, or sled looping on a damaged page. Not itself damage (exit 1).
    #[error(
        "{file} was not opened and checked within {secs} s; raise [store] open_timeout_secs \
         for a big store on a slow disk, or run `credit-node store check` on a copy of the \
         folder to look for damage"
    )]
    OpenTimedOut { file: String, secs: u64 },
    /// An earlier store call is still stuck; calls fail at once until it returns.
    #[error("the store is not answering (an earlier call is still stuck); restart the node")]
    Stalled,
}

impl StoreError {
    /// Whether the error says a stored file is damaged (exit 4 in the CLI), rather than
    /// that the store is busy, locked or unreachable.
    pub fn is_damage(&self) -> bool {
        matches!(
            self,
            StoreError::Damaged { .. }
                | StoreError::EngineCorruption(_)
                | StoreError::Corrupt { .. }
        )
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StoreError::Io(io),
            sled::Error::Corruption { at, .. } => StoreError::EngineCorruption(match at {
                Some(at) => format!("at {at}"),
                None => "no position given".into(),
            }),
            other => StoreError::Engine(other.to_string()),
        }
    }
}

/// What happened to one accepted record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// A new record, version 1.
    Created { id: Uuid, version: u64 },
    /// A known provider reference with different content: a new version.
    NewVersion { id: Uuid, version: u64 },
    /// An identical re-push: nothing was written.
    Unchanged { id: Uuid, version: u64 },
    /// The reference names a record that was deleted (R-OBJ-3) or purged (R-SEC-2): it
    /// is closed, and nothing was written.
    Closed {
        id: Uuid,
        version: u64,
        status: Status,
    },
}

impl Applied {
    pub fn id(&self) -> Uuid {
        match *self {
            Applied::Created { id, .. }
            | Applied::NewVersion { id, .. }
            | Applied::Unchanged { id, .. }
            | Applied::Closed { id, .. } => id,
        }
    }
    pub fn version(&self) -> u64 {
        match *self {
            Applied::Created { version, .. }
            | Applied::NewVersion { version, .. }
            | Applied::Unchanged { version, .. }
            | Applied::Closed { version, .. } => version,
        }
    }
}

/// One changelog entry: what travels upward, in order (R-FED-1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// A version of a credit record.
    Record(Record),
    /// A consent, or its withdrawal (a later version of the same consent).
    Consent(Consent),
    /// A node's signed usage-log checkpoint.
    Checkpoint(Checkpoint),
    /// A version of an objection case, made by the record's origin (R-OBJ-1..3).
    Objection(crate::domain::case::Case),
}

/// postcard's variant index of each `Change` (one byte for these).
const TAG_RECORD: u8 = 0;
const TAG_CONSENT: u8 = 1;
const TAG_CHECKPOINT: u8 = 2;
const TAG_OBJECTION: u8 = 3;

impl Change {
    pub fn as_record(&self) -> Option<&Record> {
        match self {
            Change::Record(r) => Some(r),
            _ => None,
        }
    }

    pub fn into_record(self) -> Option<Record> {
        match self {
            Change::Record(r) => Some(r),
            _ => None,
        }
    }

    /// Regions the entry passed through, its origin first.
    pub fn path(&self) -> &[RegionCode] {
        match self {
            Change::Record(r) => &r.path,
            Change::Consent(c) => &c.path,
            Change::Checkpoint(c) => &c.path,
            Change::Objection(c) => &c.path,
        }
    }

    fn path_mut(&mut self) -> &mut Vec<RegionCode> {
        match self {
            Change::Record(r) => &mut r.path,
            Change::Consent(c) => &mut c.path,
            Change::Checkpoint(c) => &mut c.path,
            Change::Objection(c) => &mut c.path,
        }
    }

    /// What the entry is called in acknowledgements and logs: a record's or consent's
    /// id, or `checkpoint <node>/<seq>`.
    pub fn label(&self) -> String {
        match self {
            Change::Record(r) => r.id.to_string(),
            Change::Consent(c) => c.terms.id.to_string(),
            Change::Checkpoint(c) => format!("checkpoint {}/{}", c.node, c.seq),
            Change::Objection(c) => format!("objection {} v{}", c.id, c.version),
        }
    }

    /// When the entry was made at its origin (Unix ms), for lag.
    pub fn made_at_ms(&self) -> i64 {
        match self {
            Change::Record(r) => r.reported_at_ms,
            Change::Consent(c) => c
                .withdrawal
                .as_ref()
                .map_or(c.terms.recorded_at_ms, |w| w.at_ms),
            Change::Checkpoint(c) => c.at_ms,
            Change::Objection(c) => [
                c.resolution.as_ref().map(|r| r.at_ms),
                c.reply.as_ref().map(|r| r.at_ms),
                c.checked.as_ref().map(|r| r.at_ms),
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(c.received_ms),
        }
    }

    fn tag_and_value(&self) -> Result<(u8, Vec<u8>), StoreError> {
        Ok(match self {
            Change::Record(r) => (TAG_RECORD, encode(r)?),
            Change::Consent(c) => (TAG_CONSENT, encode(c)?),
            Change::Checkpoint(c) => (TAG_CHECKPOINT, encode(c)?),
            Change::Objection(c) => (TAG_OBJECTION, encode(c)?),
        })
    }
}

/// Counts for status and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub records: u64,
    pub last_change: u64,
    pub usage_entries: u64,
}

/// Store tuning that operators may set.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled's page cache, in bytes. RSS runs at about 1.3x this or more (sled #986).
    pub cache_bytes: u64,
    /// The bound on one store call made for a request (`Store::call`).
    pub call_timeout: std::time::Duration,
    /// The bound on opening and checking the store at start (`Store::open_checked`).
    pub open_timeout: std::time::Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 256 * 1024 * 1024,
            call_timeout: std::time::Duration::from_secs(30),
            open_timeout: std::time::Duration::from_secs(600),
        }
    }
}

/// A bounded call's state, so that exactly one side counts it as stuck and uncounts it.
const CALL_RUNNING: u8 = 0;
const CALL_DONE: u8 = 1;
const CALL_ABANDONED: u8 = 2;

/// Marks a bounded call done on drop (see `Store::call_within`).
struct CallDone {
    store: Store,
    state: std::sync::Arc<std::sync::atomic::AtomicU8>,
}

impl Drop for CallDone {
    fn drop(&mut self) {
        if self.state.swap(CALL_DONE, Ordering::SeqCst) == CALL_ABANDONED {
            self.store.inner.stuck.fetch_sub(1, Ordering::SeqCst);
            tracing::warn!("a store call that had passed its bound returned");
        }
    }
}

struct Writer {
    next_change: u64,
    next_usage: u64,
    usage_head: Hash,
    /// The census figures, as stored under `census::FIGURES_KEY` (see `census`).
    figures: crate::domain::census::Figures,
}

/// A node's store. Clone it freely: clones share one open database (sled supports one
/// open instance per process).
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    records: sled::Tree,
    changelog: sled::Tree,
    usage: sled::Tree,
    /// Notices queued for children (`q`) and received for this node (`i`).
    notices: sled::Tree,
    /// Consents by id, and by subject (see `side`).
    consents: sled::Tree,
    /// Signed usage-log checkpoints, this node's and those of nodes below.
    checkpoints: sled::Tree,
    /// Objection cases (see `objections`).
    objections: sled::Tree,
    /// Records with an open objection case here.
    held: std::sync::RwLock<std::collections::HashSet<Uuid>>,
    writer: Mutex<Writer>,
    /// The last changelog sequence made durable, for the uplink to wait on.
    head: tokio::sync::watch::Sender<u64>,
    /// Bumped when a notice is queued, for the Sync streams to wait on.
    notices_changed: tokio::sync::watch::Sender<u64>,
    durability: Durability,
    /// Group commit: writes are numbered as they finish (under the writer lock); one
    /// sync covers every write numbered before it began, so concurrent writers (32
    /// queries logging their use at once) share one fdatasync instead of queueing for 32.
    written: AtomicU64,
    /// The highest write number known durable; held while a sync runs.
    synced: Mutex<u64>,
    poisoned: AtomicBool,
    dir: PathBuf,
    /// See `StoreOptions::call_timeout`.
    call_timeout: std::time::Duration,
    /// Calls that passed their bound and have not returned yet (see `call`).
    stuck: std::sync::atomic::AtomicUsize,
}

impl Store {
    /// Opens (or creates) the store in `dir`, then replays any changelog entries the
    /// records tree has not yet applied.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        Store::open_with(dir, options, None)
    }

    /// Opens the store as `open` does, after checking its integrity (`check`): any
    /// damage refuses the open, naming what is damaged and where (R-SEC-1). The open and
    /// the check run within `options.open_timeout`, and a panic in sled becomes an error.
    pub fn open_checked(
        dir: &Path,
        options: &StoreOptions,
        region: &RegionCode,
    ) -> Result<Store, StoreError> {
        let (d, o, r) = (dir.to_path_buf(), options.clone(), *region);
        check::bounded(dir, options.open_timeout, move || {
            Store::open_with(&d, &o, Some(&r))
        })
    }

    /// `open` within `options.open_timeout`, a panic in sled becoming an error: for
    /// offline commands that read a store that may be damaged (`audit verify`).
    pub fn open_bounded(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        let (d, o) = (dir.to_path_buf(), options.clone());
        check::bounded(dir, options.open_timeout, move || {
            Store::open_with(&d, &o, None)
        })
    }

    /// The integrity check alone, offline (`credit-node store check`): opens the store in
    /// `dir` without replaying it, checks every tree, and closes it. Within
    /// `options.open_timeout`; a panic in sled becomes an error. The open itself writes:
    /// sled's recovery rewrites a damaged log past the damage and writes a new snapshot,
    /// and `open_tree` creates a missing tree; so the CLI runs it on a copy.
    pub fn check_dir(dir: &Path, options: &StoreOptions) -> Result<CheckReport, StoreError> {
        if !dir.join("db").is_file() {
            return Err(StoreError::Engine(format!(
                "{} holds no node store (no db file)",
                dir.display()
            )));
        }
        let (d, o) = (dir.to_path_buf(), options.clone());
        check::bounded(dir, options.open_timeout, move || {
            let started = std::time::Instant::now();
            let db = open_db(&d, &o)?;
            let trees = [
                "records",
                "changelog",
                "usage",
                "notices",
                "consents",
                "checkpoints",
                "objections",
            ]
            .map(|name| db.open_tree(name));
            let [
                records,
                changelog,
                usage,
                notices,
                consents,
                checkpoints,
                objections,
            ] = trees;
            let mark = check::read_mark(&d)?;
            let opened_ms = started.elapsed().as_millis() as u64;
            let mut report = check::run(&check::Trees {
                records: &records?,
                changelog: &changelog?,
                usage: &usage?,
                notices: &notices?,
                consents: &consents?,
                checkpoints: &checkpoints?,
                objections: &objections?,
            });
            check::against_mark(&mut report, mark, &d);
            report.open_ms = opened_ms;
            report.check_ms = started.elapsed().as_millis() as u64 - report.open_ms;
            Ok(report)
        })
    }

    /// `checked`: the region the node serves, to refuse another region's folder (before
    /// the integrity check reads it all) and then check the store.
    fn open_with(
        dir: &Path,
        options: &StoreOptions,
        checked: Option<&RegionCode>,
    ) -> Result<Store, StoreError> {
        private_dir(dir)?;
        let db = open_db(dir, options)?;
        let records = db.open_tree("records")?;
        let changelog = db.open_tree("changelog")?;
        let usage = db.open_tree("usage")?;
        let notices = db.open_tree("notices")?;
        let consents = db.open_tree("consents")?;
        let checkpoints = db.open_tree("checkpoints")?;
        let objections = db.open_tree("objections")?;
        if let Some(region) = checked {
            region_is(&records, region)?;
            let started = std::time::Instant::now();
            let mark = check::read_mark(dir)?;
            let mut report = check::run(&check::Trees {
                records: &records,
                changelog: &changelog,
                usage: &usage,
                notices: &notices,
                consents: &consents,
                checkpoints: &checkpoints,
                objections: &objections,
            });
            check::against_mark(&mut report, mark, dir);
            if !report.ok() {
                let more = report.damage.len() as u64 + report.more - 1;
                return Err(StoreError::Damaged {
                    file: dir.join("db").display().to_string(),
                    detail: format!(
                        "{}{}; run `credit-node store check --data-dir {}` for the full list",
                        report.damage[0],
                        if more > 0 {
                            format!(" (and {more} more)")
                        } else {
                            String::new()
                        },
                        dir.display()
                    ),
                });
            }
            tracing::info!(
                records = report.records,
                changes = report.changes,
                usage = report.usage_entries,
                ms = started.elapsed().as_millis() as u64,
                "store integrity checked"
            );
        }
        let held = objections::load_held(&objections)?;
        let durability = Durability::new(dir)?;

        let next_change = match changelog.last()? {
            Some((k, v)) => seq_of(&k)? + decode_chunk(&v)?.len() as u64,
            None => 1,
        };
        let (next_usage, usage_head) = match usage.range(..USAGE_END).next_back().transpose()? {
            Some((k, v)) => (seq_of(&k)? + 1, decode::<Chained>(&v, "usage entry")?.hash),
            None => (1, [0u8; 32]),
        };
        let figures = match records.get(census::FIGURES_KEY)? {
            Some(v) => decode(&v, "census figures")?,
            None => crate::domain::census::Figures::default(),
        };
        let store = Store {
            inner: std::sync::Arc::new(Inner {
                db,
                records,
                changelog,
                usage,
                notices,
                consents,
                checkpoints,
                objections,
                held: std::sync::RwLock::new(held),
                head: tokio::sync::watch::Sender::new(next_change - 1),
                notices_changed: tokio::sync::watch::Sender::new(0),
                writer: Mutex::new(Writer {
                    next_change,
                    next_usage,
                    usage_head,
                    figures,
                }),
                durability,
                written: AtomicU64::new(0),
                synced: Mutex::new(0),
                poisoned: AtomicBool::new(false),
                dir: dir.to_path_buf(),
                call_timeout: options.call_timeout,
                stuck: std::sync::atomic::AtomicUsize::new(0),
            }),
        };
        // A store from before the census was kept: count what it holds, once.
        if store.inner.records.get(census::FIGURES_KEY)?.is_none() {
            let figures = store.recount()?;
            store
                .inner
                .records
                .insert(census::FIGURES_KEY, encode(&figures)?)?;
            store
                .inner
                .writer
                .lock()
                .map_err(|_| StoreError::Lock)?
                .figures = figures;
        }
        store.replay()?;
        if checked.is_some() {
            // What this open found is on disk: a later open must find at least as much.
            store.write_mark()?;
        }
        Ok(store)
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Runs `f` on a blocking thread within `[store] call_timeout_secs`: the one way a
    /// request handler calls the store. sled can spin for ever on a damaged page; then the
    /// handler gets `TimedOut` (`Unavailable`) at the bound instead of hanging a runtime
    /// thread, and until that call returns every further call fails at once (`Stalled`)
    /// rather than queueing behind it.
    pub async fn call<T, E>(
        &self,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.call_within(self.inner.call_timeout, f).await
    }

    /// `call` with a bound of its own (a whole-log verification takes longer).
    pub async fn call_within<T, E>(
        &self,
        bound: std::time::Duration,
        f: impl FnOnce(&Store) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        if self.inner.stuck.load(Ordering::SeqCst) > 0 {
            return Err(StoreError::Stalled.into());
        }
        let state = std::sync::Arc::new(std::sync::atomic::AtomicU8::new(CALL_RUNNING));
        let (store, mine) = (self.clone(), state.clone());
        let task = tokio::task::spawn_blocking(move || {
            // Marks the call done when it returns or panics: a call abandoned at its bound
            // that then panics must uncount itself too, or every call after it is
            // `Stalled` until a restart.
            let _done = CallDone {
                store: store.clone(),
                state: mine,
            };
            f(&store)
        });
        match tokio::time::timeout(bound, task).await {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => Err(StoreError::Engine(format!("a store call failed: {e}")).into()),
            Err(_) => {
                self.inner.stuck.fetch_add(1, Ordering::SeqCst);
                if state
                    .compare_exchange(
                        CALL_RUNNING,
                        CALL_ABANDONED,
                        Ordering::SeqCst,
                        Ordering::SeqCst,
                    )
                    .is_err()
                {
                    // It returned just now: not stuck.
                    self.inner.stuck.fetch_sub(1, Ordering::SeqCst);
                }
                tracing::error!(bound_ms = bound.as_millis() as u64, dir = %self.inner.dir.display(),
                    "a store call did not return within its bound");
                Err(StoreError::TimedOut {
                    secs: bound.as_secs(),
                }
                .into())
            }
        }
    }

    /// The integrity check (see `check`) of the store as it stands.
    pub fn check(&self) -> CheckReport {
        let i = &self.inner;
        check::run(&check::Trees {
            records: &i.records,
            changelog: &i.changelog,
            usage: &i.usage,
            notices: &i.notices,
            consents: &i.consents,
            checkpoints: &i.checkpoints,
            objections: &i.objections,
        })
    }

    /// Records how far the store has come (`check::Mark`), for the next open's check.
    /// It syncs first, holding off writers and other syncs, so the mark never names what
    /// is not on disk. A poisoned store (a write or fsync failed: the kernel may have
    /// dropped pages of writes never acknowledged) writes no mark: the one on disk still
    /// names only what was durable, and a later sync could succeed without those pages.
    pub fn write_mark(&self) -> Result<(), StoreError> {
        let mark = {
            let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
            // Lock order: writer, then synced (as in `write`, which releases the writer
            // first); a sync that failed before this point has poisoned the store.
            let _synced = self.inner.synced.lock().map_err(|_| StoreError::Lock)?;
            if self.inner.poisoned.load(Ordering::SeqCst) {
                tracing::warn!("the store is poisoned; no store mark written");
                return Ok(());
            }
            if let Err(e) = self.sync() {
                self.inner.poisoned.store(true, Ordering::SeqCst);
                return Err(e);
            }
            Mark {
                changelog: w.next_change - 1,
                usage: w.next_usage - 1,
            }
        };
        check::write_mark(&self.inner.dir, mark)
    }

    /// Whether the store answers: no call stuck past its bound (`call`) and no failed
    /// write or sync (poisoned). Health reports NOT_SERVING while it does not.
    pub fn answering(&self) -> bool {
        self.inner.stuck.load(Ordering::SeqCst) == 0 && !self.inner.poisoned.load(Ordering::SeqCst)
    }

    /// Whether a call is stuck past its bound: calls fail at once (`Stalled`).
    pub fn stalled(&self) -> bool {
        self.inner.stuck.load(Ordering::SeqCst) > 0
    }

    /// Holds the writer lock until `release` says (or is dropped), as a push stuck in
    /// sled would: for tests of what must not wait on it.
    #[cfg(test)]
    pub(crate) fn hold_writer_until(
        &self,
        release: std::sync::mpsc::Receiver<()>,
    ) -> Result<(), StoreError> {
        let _w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let _ = release.recv();
        Ok(())
    }

    /// The bound on one request's store call.
    pub fn call_timeout(&self) -> std::time::Duration {
        self.inner.call_timeout
    }

    /// Ties the store to `region` on first use and refuses, later, a node of another
    /// region: a data folder moved between configs would mix two nodes' records and
    /// usage logs.
    pub fn bind_region(&self, region: &RegionCode) -> Result<(), StoreError> {
        if region_is(&self.inner.records, region)? {
            return Ok(());
        }
        self.inner
            .records
            .insert(REGION_KEY, region.as_str().as_bytes())?;
        self.sync()
    }

    /// The region the store was bound to, if any.
    pub fn region(&self) -> Result<Option<RegionCode>, StoreError> {
        match self.inner.records.get(REGION_KEY)? {
            Some(v) => RegionCode::parse(&String::from_utf8_lossy(&v))
                .map(Some)
                .map_err(|e| StoreError::Corrupt {
                    what: "region",
                    detail: e.to_string(),
                }),
            None => Ok(None),
        }
    }

    /// Applies changelog entries after the records tree's `applied` mark. Each entry holds
    /// a full record version, so replay is idempotent: an entry never lowers a version.
    fn replay(&self) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let applied = match inner.records.get(APPLIED_KEY)? {
            Some(v) => seq_of(&v)?,
            None => 0,
        };
        let mut replayed = 0u64;
        for (seq, change) in self.changes_since(applied, usize::MAX)? {
            let record = match change {
                Change::Record(record) => record,
                side => {
                    // Consents and checkpoints: applying one again changes nothing.
                    let mut overlay = SideOverlay::default();
                    self.apply_side(&side, &mut overlay)?;
                    overlay.write(&self.inner)?;
                    inner.records.insert(APPLIED_KEY, &seq.to_be_bytes())?;
                    replayed += 1;
                    continue;
                }
            };
            let key = natural_key(&record.content, &record.origin);
            let current = match inner.records.get(&key)? {
                Some(cur) => Some(decode::<Record>(&cur, "record")?),
                None => None,
            };
            let newer = current.as_ref().is_none_or(|c| c.version < record.version);
            let mut batch = sled::Batch::default();
            if newer {
                let mut w = inner.writer.lock().map_err(|_| StoreError::Lock)?;
                let mut monthly = census::MonthlyDelta::default();
                if let Some(c) = &current {
                    w.figures.count(c, false);
                    if c.path.len() == 1 {
                        monthly.count(c, false, record.reported_at_ms);
                    }
                }
                w.figures.count(&record, true);
                // Versions accepted here count toward their provider's monthly duty.
                if record.path.len() == 1 {
                    monthly.count(&record, true, record.reported_at_ms);
                }
                batch.insert(census::FIGURES_KEY, encode(&w.figures)?);
                monthly.write(self, &mut batch)?;
                // A record that came from below (its path is longer than its origin)
                // is found by id through the replica index.
                if record.path.len() > 1 {
                    batch.insert(&replica_id_key(&record.id), key.clone());
                }
                if let Some((k, v)) = redact::queue_entry(&record)? {
                    batch.insert(&k, v);
                }
                batch.insert(key, encode(&record)?);
            }
            batch.insert(APPLIED_KEY, &seq.to_be_bytes());
            inner.records.apply_batch(batch)?;
            replayed += 1;
        }
        if replayed > 0 {
            tracing::warn!(
                replayed,
                "replayed changelog entries missing from the records tree"
            );
            self.sync()?;
        }
        Ok(replayed)
    }

    /// Accepts checked records from this node's providers: each becomes a new record, a
    /// new version, or nothing (an identical re-push). The usage entries `usage` returns,
    /// given the outcomes, are written with the records. Returns after all is durable.
    pub fn accept<F>(
        &self,
        batch: Vec<Content>,
        origin: RegionCode,
        now_ms: i64,
        usage: F,
    ) -> Result<Vec<Applied>, StoreError>
    where
        F: FnOnce(&[Applied]) -> Vec<UsageEntry>,
    {
        self.write(|w| self.decide_and_write(w, batch, origin, now_ms, usage))
    }

    /// Runs `f` as the one writer, then makes its writes durable. Any failure, of the
    /// write or of the sync, stops further writes until a restart: after a failed fsync
    /// the kernel may have dropped the dirty pages, so retrying could acknowledge data
    /// that is not on disk; a restart recovers from what is.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut Writer) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        // The head this write makes durable: everything up to it was written before this
        // write's sync began, so that sync covers it (read under the lock, not after it,
        // where a concurrent writer's unsynced batch could already be counted).
        let result = {
            let mut w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
            f(&mut w).map(|value| {
                let number = self.inner.written.fetch_add(1, Ordering::SeqCst) + 1;
                (value, w.next_change - 1, number)
            })
        }
        .and_then(|(value, head, number)| self.sync_through(number).map(|()| (value, head)));
        match result {
            Ok((value, head)) => {
                self.inner.head.send_if_modified(|h| {
                    let newer = *h < head;
                    *h = head.max(*h);
                    newer
                });
                Ok(value)
            }
            Err(e) => {
                self.inner.poisoned.store(true, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// The last durable changelog sequence, updated as writes land. Readers that must not
    /// see unsynced entries (the uplink) read no further than this.
    pub fn watch_head(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.head.subscribe()
    }

    fn decide_and_write<F>(
        &self,
        w: &mut Writer,
        batch: Vec<Content>,
        origin: RegionCode,
        now_ms: i64,
        usage: F,
    ) -> Result<Vec<Applied>, StoreError>
    where
        F: FnOnce(&[Applied]) -> Vec<UsageEntry>,
    {
        let inner = &self.inner;
        // Later records in the same batch must see earlier ones.
        let mut overlay: HashMap<Vec<u8>, Record> = HashMap::new();
        let mut current = sled::Batch::default();
        let mut written: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut applied = Vec::with_capacity(batch.len());
        let first_seq = w.next_change;
        let mut next_change = first_seq;
        let mut figures = w.figures.clone();
        let mut monthly = census::MonthlyDelta::default();

        for content in batch {
            let key = natural_key(&content, &origin);
            let existing = match overlay.get(&key) {
                Some(r) => Some(r.clone()),
                None => match inner.records.get(&key)? {
                    Some(v) => Some(decode::<Record>(&v, "record")?),
                    None => None,
                },
            };
            let hash = content.hash();
            let seq = next_change;
            if seq > crate::domain::ids::MAX_SEQ {
                return Err(StoreError::Engine(
                    "changelog sequence space exhausted".into(),
                ));
            }
            let record = match existing {
                Some(cur) if matches!(cur.status, Status::Deleted | Status::Expired) => {
                    applied.push(Applied::Closed {
                        id: cur.id,
                        version: cur.version,
                        status: cur.status,
                    });
                    continue;
                }
                Some(cur) if cur.content_hash == hash => {
                    applied.push(Applied::Unchanged {
                        id: cur.id,
                        version: cur.version,
                    });
                    continue;
                }
                Some(cur) => {
                    figures.count(&cur, false);
                    monthly.count(&cur, false, now_ms);
                    let version = cur.version + 1;
                    applied.push(Applied::NewVersion {
                        id: cur.id,
                        version,
                    });
                    Record {
                        id: cur.id,
                        content,
                        origin: cur.origin,
                        path: cur.path,
                        reported_at_ms: now_ms,
                        version,
                        // A correction does not lift a suspension or a repair; those
                        // have their own procedures.
                        status: cur.status,
                        status_reason: cur.status_reason,
                        content_hash: hash,
                    }
                }
                None => {
                    let id = crate::domain::ids::new_id(now_ms, &origin, seq);
                    applied.push(Applied::Created { id, version: 1 });
                    Record {
                        id,
                        content,
                        origin,
                        path: vec![origin],
                        reported_at_ms: now_ms,
                        version: 1,
                        status: Status::Active,
                        status_reason: String::new(),
                        content_hash: hash,
                    }
                }
            };
            next_change += 1;
            figures.count(&record, true);
            monthly.count(&record, true, now_ms);
            let value = encode(&record)?;
            current.insert(key.clone(), value.clone());
            overlay.insert(key, record);
            written.push((TAG_RECORD, value));
        }

        let changes = chunked(first_seq, &written);
        let entries = usage(&applied);
        // Usage first: after a crash the log may name a batch that was never stored (and
        // never acknowledged), but it never lacks the entry for data that is stored.
        self.write_usage(w, entries)?;
        if next_change != w.next_change {
            current.insert(APPLIED_KEY, &(next_change - 1).to_be_bytes());
            self.snapshot_day(&w.figures, now_ms, &mut current)?;
            current.insert(census::FIGURES_KEY, encode(&figures)?);
            monthly.write(self, &mut current)?;
            inner.changelog.apply_batch(changes)?;
            inner.records.apply_batch(current)?;
            w.figures = figures;
        }
        w.next_change = next_change;
        Ok(applied)
    }

    /// Appends hash-chained usage entries as the writer (not yet synced).
    fn write_usage(&self, w: &mut Writer, entries: Vec<UsageEntry>) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        let mut seq = w.next_usage;
        let mut head = w.usage_head;
        for mut entry in entries {
            // Free text keeps no personal identifier (R-REL-2, R-DATA-3): a detail or a
            // refusal can quote what a caller typed. The subject stays, in its own field;
            // the names this node holds for it are masked in the free text.
            // Names in Chinese characters only: an all-ASCII text cannot hold one, and
            // the read is skipped on the hot path (a query's or a pull's entry).
            let mut names: Vec<String> = match &entry.subject {
                Some(subject)
                    if crate::domain::record::has_id_shape(subject)
                        && entry.free_text_may_name() =>
                {
                    self.records_of(subject)?
                        .into_iter()
                        .map(|r| r.content.subject.name)
                        .collect()
                }
                _ => Vec::new(),
            };
            names.sort();
            names.dedup();
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            entry.scrub_free_text_naming(&names);
            // The index takes identifiers only (a NUL would break its key's shape).
            if let Some(subject) = &entry.subject
                && crate::domain::record::has_id_shape(subject)
            {
                batch.insert(usage_index_key(subject, seq), &[]);
            }
            let chained = entry.chain(head)?;
            head = chained.hash;
            batch.insert(&seq.to_be_bytes(), encode(&chained)?);
            seq += 1;
        }
        self.inner.usage.apply_batch(batch)?;
        w.next_usage = seq;
        w.usage_head = head;
        Ok(())
    }

    /// Appends usage entries (refusals, pulls) and returns after they are durable.
    pub fn append_usage(&self, entries: Vec<UsageEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|w| self.write_usage(w, entries))
    }

    /// How many times this store has synced to disk since it was opened.
    pub fn syncs(&self) -> u64 {
        self.inner.durability.syncs()
    }

    /// Returns once write `number` is durable: at once if a sync that began after it
    /// has finished, else after a sync of its own (which covers every write before it).
    fn sync_through(&self, number: u64) -> Result<(), StoreError> {
        let mut synced = self.inner.synced.lock().map_err(|_| StoreError::Lock)?;
        if *synced >= number {
            return Ok(());
        }
        // A sync that failed before this one may have cost the kernel's dirty pages; a
        // later sync could then succeed without them. Never acknowledge after one.
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        let covers = self.inner.written.load(Ordering::SeqCst);
        if let Err(e) = self.sync() {
            self.inner.poisoned.store(true, Ordering::SeqCst);
            return Err(e);
        }
        *synced = covers;
        Ok(())
    }

    /// Makes everything written so far durable. See the module doc.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.inner.db.flush()?;
        self.inner.durability.sync()
    }

    /// The current version of every record of one subject, in key order.
    pub fn records_of(&self, subject_id: &str) -> Result<Vec<Record>, StoreError> {
        let mut prefix = Vec::with_capacity(subject_id.len() + 2);
        prefix.push(RECORD_PREFIX);
        prefix.extend_from_slice(subject_id.as_bytes());
        prefix.push(0);
        self.inner
            .records
            .scan_prefix(prefix)
            .map(|item| {
                let (_, v) = item?;
                decode::<Record>(&v, "record")
            })
            .collect()
    }

    /// Calls `f` with the current version of every record held, in key order (a full
    /// scan: for the retention purge, not for hot paths).
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<(), StoreError> {
        for item in self.inner.records.scan_prefix([RECORD_PREFIX]) {
            let (_, v) = item?;
            f(decode::<Record>(&v, "record")?);
        }
        Ok(())
    }

    /// The current version of a record, by id.
    pub fn record(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        if let Some(key) = self.inner.records.get(replica_id_key(id))? {
            return match self.inner.records.get(key)? {
                Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
                None => Err(StoreError::Corrupt {
                    what: "replica index",
                    detail: format!("record {id} is indexed but missing"),
                }),
            };
        }
        let Some((_, first)) = crate::domain::ids::locate(id) else {
            return Ok(None);
        };
        let Some((_, Change::Record(first_version))) = self
            .changes_since(first.saturating_sub(1), 1)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        // A sequence from another origin's id points at some other record here.
        if first_version.id != *id {
            return Ok(None);
        }
        match self
            .inner
            .records
            .get(natural_key(&first_version.content, &first_version.origin))?
        {
            Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
            None => Err(StoreError::Corrupt {
                what: "records",
                detail: format!("record {id} is in the changelog only"),
            }),
        }
    }

    /// Changelog entries after `after`, at most `limit`, in sequence order.
    pub fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Change)>, StoreError> {
        let from = after.saturating_add(1);
        // The chunk holding `from` starts at or before it.
        let start = match self
            .inner
            .changelog
            .range(..=from.to_be_bytes())
            .next_back()
        {
            Some(item) => seq_of(&item?.0)?,
            None => from,
        };
        let mut out = Vec::new();
        for item in self.inner.changelog.range(start.to_be_bytes()..) {
            let (k, v) = item?;
            let first = seq_of(&k)?;
            for (i, change) in decode_chunk(&v)?.into_iter().enumerate() {
                let seq = first + i as u64;
                if seq >= from {
                    if out.len() == limit {
                        return Ok(out);
                    }
                    out.push((seq, change));
                }
            }
        }
        Ok(out)
    }

    /// Usage entries after `after`, at most `limit`.
    pub fn usage_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.inner
            .usage
            .range((after + 1).to_be_bytes().to_vec()..USAGE_END.to_vec())
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((seq_of(&k)?, decode(&v, "usage entry")?))
            })
            .collect()
    }

    /// Counts records by scanning; for status and tests, not for hot paths.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let records = self.inner.records.scan_prefix([RECORD_PREFIX]).count() as u64;
        Ok(Stats {
            records,
            last_change: w.next_change - 1,
            usage_entries: w.next_usage - 1,
        })
    }

    /// SHA-256 over every record and changelog entry: equal before and after an
    /// operation means the operation changed no data (the usage log is left out, since
    /// every use, refusals included, appends to it).
    pub fn fingerprint(&self) -> Result<Hash, StoreError> {
        let _w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for tree in [
            &self.inner.records,
            &self.inner.changelog,
            &self.inner.consents,
            &self.inner.checkpoints,
            &self.inner.objections,
        ] {
            for item in tree.iter() {
                let (k, v) = item?;
                ctx.update(&(k.len() as u64).to_be_bytes());
                ctx.update(&k);
                ctx.update(&(v.len() as u64).to_be_bytes());
                ctx.update(&v);
            }
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.finish().as_ref());
        Ok(out)
    }
}

/// A record id as the node of `region` makes it for the version at `seq` (see `ids`), for
/// tests that build records by hand.
#[cfg(test)]
pub(crate) fn new_record_id(now_ms: i64, region: &RegionCode, seq: u64) -> Uuid {
    crate::domain::ids::new_id(now_ms, region, seq)
}

/// `k` subject \0 category \0 origin \0 provider \0 reference: a provider's id is unique
/// only at its own node, so above the origin the origin's region keeps two providers
/// apart. None of the parts can hold a NUL: identifiers and codes are checked ASCII, and
/// references refuse control characters.
fn natural_key(c: &Content, origin: &RegionCode) -> Vec<u8> {
    let mut key = Vec::with_capacity(
        11 + c.subject.id.len() + c.category.len() + c.provider_id.len() + c.provider_ref.len(),
    );
    key.push(RECORD_PREFIX);
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

/// Opens sled, waiting up to two seconds for the file lock: after a `Store` in this
/// process is dropped, sled's background flusher can hold the lock a moment longer.
/// Another process holding it is reported as such.
/// Creates the data folder readable by this user alone, and closes an existing one that
/// others could read: it holds a region's personal data and its usage log (R-SEC-1).
fn private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777),
            "the data folder was open to other users; closing it to its owner (0700)");
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

fn open_db(dir: &Path, options: &StoreOptions) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(dir)
        .cache_capacity(options.cache_bytes)
        .flush_every_ms(Some(5_000));
    let mut waited = 0;
    loop {
        match config.open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                if waited >= 20 {
                    return Err(StoreError::Engine(format!(
                        "{} is in use by another process (sled holds a lock on its db file)",
                        dir.display()
                    )));
                }
                waited += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            // sled checks its `conf` file's checksum and format; a damaged one reads as
            // "unsupported" (or as a store from before sled 0.29).
            Err(sled::Error::Unsupported(m)) => {
                return Err(StoreError::Damaged {
                    file: dir.join("conf").display().to_string(),
                    detail: format!(
                        "the storage engine cannot read it ({m}): damaged, or not written by \
                         sled 0.34"
                    ),
                });
            }
            Err(sled::Error::Corruption { at, .. }) => {
                return Err(StoreError::Damaged {
                    file: dir.join("db").display().to_string(),
                    detail: format!(
                        "the storage engine found it corrupted{}",
                        at.map(|a| format!(" at {a}")).unwrap_or_default()
                    ),
                });
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Splits the versions a batch wrote (each as `encode` made it for the records tree)
/// into changelog chunks of at most `CHUNK_BYTES`, keyed by their first sequence.
///
/// A chunk is what `encode(&Vec<Record>)` would make: the format byte, the count as a
/// postcard varint, then each record's postcard bytes. Built from the bytes already
/// encoded, so no record is serialised twice.
fn chunked(first_seq: u64, written: &[(u8, Vec<u8>)]) -> sled::Batch {
    let mut batch = sled::Batch::default();
    let mut start = 0usize;
    let mut chunk_start = first_seq;
    while start < written.len() {
        let mut end = start;
        let mut bytes = 0usize;
        while end < written.len() && (end == start || bytes + written[end].1.len() <= CHUNK_BYTES) {
            bytes += written[end].1.len();
            end += 1;
        }
        let records = &written[start..end];
        batch.insert(&chunk_start.to_be_bytes(), chunk_value(records));
        chunk_start += records.len() as u64;
        start = end;
    }
    batch
}

/// One chunk's value from entries encoded as `tag_and_value` makes them: the format byte,
/// the count, then each entry's tag and value without its own format byte.
fn chunk_value(entries: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let bytes: usize = entries.iter().map(|(_, v)| v.len()).sum();
    let mut value = Vec::with_capacity(bytes + 10);
    value.push(codec::CHANGES_FORMAT);
    codec::push_varint(&mut value, entries.len() as u64);
    for (tag, r) in entries {
        value.push(*tag);
        value.extend_from_slice(&r[1..]);
    }
    value
}

/// A changelog chunk: `CHANGES_FORMAT` holds `Change`s; chunks written before consents
/// existed (`FORMAT`) hold records only.
fn decode_chunk(bytes: &[u8]) -> Result<Vec<Change>, StoreError> {
    match bytes.first() {
        Some(&codec::CHANGES_FORMAT) => codec::whole(&bytes[1..], "changelog chunk"),
        _ => Ok(decode::<Vec<Record>>(bytes, "changelog chunk")?
            .into_iter()
            .map(Change::Record)
            .collect()),
    }
}

/// Whether `records` is bound to `region` (`false`: bound to none yet); another
/// region's folder is an error (see `bind_region`).
fn region_is(records: &sled::Tree, region: &RegionCode) -> Result<bool, StoreError> {
    match records.get(REGION_KEY)? {
        Some(v) if v.as_ref() == region.as_str().as_bytes() => Ok(true),
        Some(v) => Err(StoreError::Engine(format!(
            "this data folder belongs to the node of region {}, not {region}",
            String::from_utf8_lossy(&v)
        ))),
        None => Ok(false),
    }
}

fn usage_index_key(subject: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(subject.len() + 11);
    key.extend_from_slice(&USAGE_INDEX);
    key.extend_from_slice(subject.as_bytes());
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "sequence key",
        detail: format!("{} bytes", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests;
