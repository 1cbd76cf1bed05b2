//! Opening a store (with or without the integrity check), binding it to a region, and
//! replaying a changelog tail the records tree lacks.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::backend::{Backend, Commit, Heads, Reads};
use super::codec::encode;
use super::keys;
use super::sled::SledBackend;
use super::{
    Change, CheckReport, Inner, Mark, SideOverlay, Store, StoreError, StoreOptions, Writer, census,
    check, objections, redact,
};
use crate::domain::region::RegionCode;

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
            let backend = SledBackend::open_to_check(&d, &o)?;
            let mark = check::read_mark(&d)?;
            let opened_ms = started.elapsed().as_millis() as u64;
            let mut report = backend.check();
            check::against_mark(&mut report, mark, &d);
            report.open_ms = opened_ms;
            report.check_ms = started.elapsed().as_millis() as u64 - report.open_ms;
            Ok(report)
        })
    }

    /// A store on the in-memory engine `engine` (`memory`): the conformance suite's
    /// reference engine, not for production. `dir` holds only the store mark. Opening
    /// again on the same engine after the store is dropped is a restart: it sees exactly
    /// what was committed, and replays as `open` does. Refused while a store is open on
    /// it (as sled refuses a second open of its folder).
    #[doc(hidden)]
    pub fn open_in_memory(
        engine: &super::memory::MemoryEngine,
        dir: &Path,
    ) -> Result<Store, StoreError> {
        private_dir(dir)?;
        Store::on_backend(
            Box::new(engine.backend()?),
            dir,
            &StoreOptions::default(),
            None,
        )
    }

    /// `checked`: the region the node serves, to refuse another region's folder (before
    /// the integrity check reads it all) and then check the store.
    pub(super) fn open_with(
        dir: &Path,
        options: &StoreOptions,
        checked: Option<&RegionCode>,
    ) -> Result<Store, StoreError> {
        private_dir(dir)?;
        let backend = SledBackend::open(dir, options)?;
        Store::on_backend(Box::new(backend), dir, options, checked)
    }

    /// A store over an open engine: the region and integrity checks when `checked` is
    /// given, the writer's state from the engine, then replay. `dir` holds the store mark
    /// (`check::Mark`) the check compares against.
    pub(super) fn on_backend(
        backend: Box<dyn Backend>,
        dir: &Path,
        options: &StoreOptions,
        checked: Option<&RegionCode>,
    ) -> Result<Store, StoreError> {
        if let Some(region) = checked {
            region_is(&*backend, region)?;
            let started = std::time::Instant::now();
            let mark = check::read_mark(dir)?;
            let mut report = backend.check();
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
        let held = objections::load_held(&*backend)?;
        let Heads {
            next_change,
            next_usage,
            usage_head,
        } = backend.heads()?;
        let figures = backend.figures()?;
        let counted = figures.is_some();
        let store = Store {
            inner: std::sync::Arc::new(Inner {
                backend,
                held: std::sync::RwLock::new(held),
                head: tokio::sync::watch::Sender::new(next_change - 1),
                notices_changed: tokio::sync::watch::Sender::new(0),
                writer: Mutex::new(Writer {
                    next_change,
                    next_usage,
                    usage_head,
                    figures: figures.unwrap_or_default(),
                }),
                written: AtomicU64::new(0),
                synced: Mutex::new(0),
                poisoned: AtomicBool::new(false),
                dir: dir.to_path_buf(),
                call_timeout: options.call_timeout,
                stuck: std::sync::atomic::AtomicUsize::new(0),
            }),
        };
        // A store from before the census was kept: count what it holds, once.
        if !counted {
            let figures = store.recount()?;
            let mut commit = Commit::default();
            commit.current.figures = Some(encode(&figures)?);
            store.inner.backend.commit(commit)?;
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

    /// The integrity check (see `check`) of the store as it stands.
    pub fn check(&self) -> CheckReport {
        self.inner.backend.check()
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

    /// Ties the store to `region` on first use and refuses, later, a node of another
    /// region: a data folder moved between configs would mix two nodes' records and
    /// usage logs.
    pub fn bind_region(&self, region: &RegionCode) -> Result<(), StoreError> {
        if region_is(&*self.inner.backend, region)? {
            return Ok(());
        }
        self.write(|_| {
            // Again under the lock: two binds at once must not both write.
            if region_is(&*self.inner.backend, region)? {
                return Ok(());
            }
            let mut commit = Commit::default();
            commit.current.region = Some(*region);
            self.commit(commit, std::collections::HashSet::new())
        })
    }

    /// The region the store was bound to, if any.
    pub fn region(&self) -> Result<Option<RegionCode>, StoreError> {
        match self.inner.backend.region()? {
            Some(code) => RegionCode::parse(&code)
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
    pub(super) fn replay(&self) -> Result<u64, StoreError> {
        let inner = &self.inner;
        let applied = inner.backend.applied()?;
        let mut replayed = 0u64;
        for (seq, change) in self.changes_since(applied, usize::MAX)? {
            let record = match change {
                Change::Record(record) => record,
                side => {
                    // Consents and checkpoints: applying one again changes nothing.
                    let mut overlay = SideOverlay::default();
                    self.apply_side(&side, &mut overlay)?;
                    let mut commit = Commit::default();
                    let held = overlay.into_commit(&mut commit);
                    commit.current.applied = Some(seq);
                    self.commit(commit, held)?;
                    replayed += 1;
                    continue;
                }
            };
            let key = keys::natural(&record.content, &record.origin);
            let current = inner.backend.record(&key)?;
            let newer = current.as_ref().is_none_or(|c| c.version < record.version);
            let mut commit = Commit::default();
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
                commit.current.figures = Some(encode(&w.figures)?);
                monthly.write(self, &mut commit.current)?;
                // A record that came from below (its path is longer than its origin)
                // is found by id through the replica index.
                if record.path.len() > 1 {
                    commit.current.replica_ids.push((record.id, key.clone()));
                }
                if let Some(queued) = redact::queue_entry(&record)? {
                    commit.current.redact_queue.push(queued);
                }
                commit.current.records.push((key, encode(&record)?));
            }
            commit.current.applied = Some(seq);
            self.commit(commit, std::collections::HashSet::new())?;
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
}

/// Creates the data folder readable by this user alone, and closes an existing one that
/// others could read: it holds a region's personal data and its usage log (R-SEC-1).
pub(super) fn private_dir(dir: &Path) -> Result<(), StoreError> {
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

/// Whether `backend` is bound to `region` (`false`: bound to none yet); another
/// region's store is an error (see `bind_region`).
fn region_is(backend: &dyn Reads, region: &RegionCode) -> Result<bool, StoreError> {
    match backend.region()? {
        Some(r) if r == region.as_str() => Ok(true),
        Some(r) => Err(StoreError::Engine(format!(
            "this data folder belongs to the node of region {r}, not {region}"
        ))),
        None => Ok(false),
    }
}
