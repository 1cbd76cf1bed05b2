//! The node's store (R-NODE-4): the decisions of every write, over a storage engine
//! behind one seam (`backend`); sled 0.34.7 is the embedded one. Only the sled engine
//! (`sled/`) and its integrity check (`check`) name a sled type (`tests/layers.rs`).
//!
//! # Layout
//!
//! sled's layout: seven trees; `keys` builds every key of every tree (the on-disk
//! format):
//! * `changelog`: every version of every record, consent, checkpoint and objection case,
//!   in sequence order: the source of truth and the outbox the uplink streams upward.
//!   Stored in chunks (`chunks`): key = the first sequence of the chunk (u64,
//!   big-endian), value = the consecutive entries from there (at most `CHUNK_BYTES`
//!   encoded, so chunks stay below sled's blob threshold). A push batch writes one or a
//!   few chunks instead of one sled insert per record.
//! * `records`: the current state, rebuilt from the changelog if need be: the current
//!   version by natural key (a subject's records are one prefix scan), the last changelog
//!   sequence applied here, each child's cursor, the id index of records applied from
//!   children, the census figures and monthly submissions (`census`), the redaction
//!   queue (`redact`), the quarantine (`quarantine`), the node's region. Records
//!   originated here need no id index: their id carries the sequence of their first
//!   version (see `domain::ids`), which leads to the natural key.
//! * `usage`: sequence -> hash-chained usage entry (R-SEC-3), then a subject index.
//! * `notices`: notices queued for children and received here (`notices`).
//! * `consents`, `checkpoints`: see `side`; `objections`: see `objections`.
//!
//! # The seam, and where the logic lives
//!
//! `Store` is the cloneable handle the node passes around. Every decision lives in it,
//! above the storage seam (`backend::Backend`), once for every engine: outcomes on
//! accept (`write`), idempotent replica apply (`replica`), usage chaining and scrubbing
//! (`write`), consents, checkpoints and cases (`side`, `objections`), census counters
//! (`census`), objection holds, quarantine, the redaction queue, replay at open (`open`).
//! Each batch becomes one typed `backend::Commit`, written by `Backend::commit` and made
//! durable by `Backend::sync` (group commit in `write`); reads by key and ordered scans
//! with a resume key go through its reading half, `backend::Reads`, the only part a
//! holder of a `Store` sees (`Store::backend`), so no holder writes around `Store`; and
//! `Store` commits under its writer lock (but the replay and the census recount at
//! open). `Inner` holds the engine as a `Box<dyn Backend>`: one dynamic call per batch
//! written, and per key or page read. `sled` (`SledBackend`) is the production engine; `memory`
//! (`MemoryEngine`) keeps the same rows in ordered maps and is the conformance suite's
//! reference (`tests/store_conformance.rs` runs every check on both). `backend`
//! documents the contract and how a database shared by several processes must allocate
//! the changelog and usage sequences.
//!
//! Every read and write of the store goes through the seam. Only the opening of an
//! engine is not: `open`, `open_checked` and `check_dir` open sled in the data folder
//! (its lock, its recovery, the check under a time bound); `Store::on_backend` builds a
//! store over any engine, so a config choice of engine goes there.
//!
//! # Writing and durability
//!
//! One writer at a time (the `Writer` lock) decides outcomes (created, new version,
//! unchanged) and allocates the changelog and usage sequences; the sled backend writes
//! its commit as one `apply_batch` per tree in a fixed order: usage, notices, changelog,
//! consents, checkpoints, objections, records. Each is atomic; sled recovers a prefix of
//! its log, so after a crash stored records always have their usage entry, the records
//! tree is never ahead of the changelog, and `open` replays any changelog tail the
//! records tree lacks. A batch is acknowledged only after `sync`: sled's `flush` (which
//! on Linux ends in `sync_file_range`, sled issue #1452) followed by `fdatasync` of
//! sled's `db` file and an fsync of any new blob files and their directory. See
//! ARCHITECTURE.md, "Durability".
//!
//! # Files
//!
//! * `backend`: the seam (the `Reads` and `Backend` traits and the typed `Commit`).
//! * `sled/`: the sled engine behind it (`reads`: its half of `Reads`).
//! * `memory/`: an in-memory engine, the conformance suite's reference (not for
//!   production; `Store::open_in_memory`).
//! * `open`: opening (checked, bounded), binding to a region, replay at open.
//! * `write`: the write path: deciding a provider batch, usage append, group commit.
//! * `chunks`: the changelog's chunk encoding (sled's layout of the changelog).
//! * `read`: records by subject and by id, full scans a page at a time, usage scans,
//!   counts, fingerprint.
//! * `call`: bounded calls for request handlers.
//! * `replica`, `side`, `objections`, `notices`, `quarantine`, `redact`, `census`:
//!   what a child's entries, consents and checkpoints, cases, notices, refused entries,
//!   tombstones and counts write.
//! * `check`, `audit`, `durability`, `codec`, `keys`, `fuzz`, `usage_log`, and `formats`
//!   (golden tests of every stored format).

mod audit;
pub mod backend;
mod call;
mod census;
mod check;
mod chunks;
mod codec;
mod durability;
#[cfg(test)]
mod formats;
pub mod fuzz;
mod keys;
#[doc(hidden)]
pub mod memory;
mod notices;
mod objections;
mod open;
mod quarantine;
mod read;
mod redact;
mod replica;
mod side;
mod sled;
mod usage_log;
mod write;

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::consent::Consent;
use crate::domain::record::{Hash, Record, Status};
use crate::domain::region::RegionCode;
use crate::domain::usage::Checkpoint;

pub use audit::{AuditFinding, AuditReport};
pub use check::{CheckReport, Damage, MARK_FILE, Mark, read_mark};
pub use objections::OriginChange;
pub use quarantine::{ChildLog, Quarantined, Refused};

#[cfg(test)]
pub(crate) use read::new_record_id;
pub use replica::ReplicaOutcome;
use side::SideOverlay;
pub use usage_log::UsageLog;

use chunks::{TAG_RECORD, chunk_value, chunked, decode_chunk};
use read::seq_of;

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

struct Writer {
    next_change: u64,
    next_usage: u64,
    usage_head: Hash,
    /// The census figures, as stored under `keys::records::FIGURES` (see `census`).
    figures: crate::domain::census::Figures,
}

/// A node's store. Clone it freely: clones share one open database (sled supports one
/// open instance per process).
#[derive(Clone)]
pub struct Store {
    inner: std::sync::Arc<Inner>,
}

struct Inner {
    /// The storage engine (see `backend`).
    backend: Box<dyn backend::Backend>,
    /// Records with an open objection case here.
    held: std::sync::RwLock<std::collections::HashSet<Uuid>>,
    writer: Mutex<Writer>,
    /// The last changelog sequence made durable, for the uplink to wait on.
    head: tokio::sync::watch::Sender<u64>,
    /// Bumped when a notice is queued, for the Sync streams to wait on.
    notices_changed: tokio::sync::watch::Sender<u64>,
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

#[cfg(test)]
mod tests;

#[cfg(test)]
impl Store {
    /// The sled engine under this store, for tests that damage its files.
    fn sled(&self) -> &self::sled::SledBackend {
        let engine: &dyn std::any::Any = &*self.inner.backend;
        engine
            .downcast_ref()
            .expect("the tests' stores are on sled")
    }
}
