//! The sled backend: seven trees in one sled database (layouts in `keys` and `chunks`).
//!
//! A `Commit` is written as one `apply_batch` per tree, in the order of its parts (usage,
//! notices, changelog, consents, checkpoints, objections, records). Each is atomic, and
//! sled recovers a prefix of its log, so a crash leaves a prefix of that order: what the
//! backend contract asks (`backend`), completed by replay at open.

mod reads;

use std::collections::BTreeMap;
use std::path::Path;

use super::backend::{Backend, Commit, CrashHook, NoticeRow};
use super::durability::Durability;
use super::{
    CheckReport, StoreError, StoreOptions, chunk_value, chunked, decode_chunk, keys, seq_of,
};
use crate::domain::record::Hash;
use uuid::Uuid;

/// The trees of one open sled database.
pub struct SledBackend {
    pub(in crate::store) db: sled::Db,
    pub(in crate::store) records: sled::Tree,
    pub(in crate::store) changelog: sled::Tree,
    pub(in crate::store) usage: sled::Tree,
    /// Notices queued for children (`q`) and received for this node (`i`).
    pub(in crate::store) notices: sled::Tree,
    /// Consents by id, and by subject (see `side`).
    pub(in crate::store) consents: sled::Tree,
    /// Signed usage-log checkpoints, this node's and those of nodes below.
    pub(in crate::store) checkpoints: sled::Tree,
    /// Objection cases (see `objections`).
    pub(in crate::store) objections: sled::Tree,
    pub(in crate::store) durability: Durability,
    /// The simulated crash (`Backend::crash_commits_after`); a part is a tree batch.
    crash: CrashHook,
}

impl SledBackend {
    /// Opens the sled database in `dir` (creating it, and any missing tree), with the
    /// durability handles of its folder.
    pub(in crate::store) fn open(dir: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        Self::open_with(dir, options, true)
    }

    /// As `open`, without first syncing what a previous process left unsynced: for the
    /// offline check (`Store::check_dir`), which reads a copy and should not spend its
    /// time bound on an fsync of it (with `--in-place`, the folder itself: the node that
    /// next opens it settles it then).
    pub(in crate::store) fn open_to_check(
        dir: &Path,
        options: &StoreOptions,
    ) -> Result<Self, StoreError> {
        Self::open_with(dir, options, false)
    }

    fn open_with(dir: &Path, options: &StoreOptions, settle: bool) -> Result<Self, StoreError> {
        let db = open_db(dir, options)?;
        Ok(SledBackend {
            records: db.open_tree("records")?,
            changelog: db.open_tree("changelog")?,
            usage: db.open_tree("usage")?,
            notices: db.open_tree("notices")?,
            consents: db.open_tree("consents")?,
            checkpoints: db.open_tree("checkpoints")?,
            objections: db.open_tree("objections")?,
            durability: Durability::new(dir, settle)?,
            db,
            crash: CrashHook::default(),
        })
    }

    /// The trees for the integrity check.
    pub(in crate::store) fn trees(&self) -> super::check::Trees<'_> {
        super::check::Trees {
            records: &self.records,
            changelog: &self.changelog,
            usage: &self.usage,
            notices: &self.notices,
            consents: &self.consents,
            checkpoints: &self.checkpoints,
            objections: &self.objections,
        }
    }
}

impl Backend for SledBackend {
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
        if !usage.is_empty() {
            let mut batch = sled::Batch::default();
            for row in usage {
                if let Some(subject) = &row.subject {
                    batch.insert(keys::usage_index(subject, row.seq), &[]);
                }
                batch.insert(&row.seq.to_be_bytes(), row.entry);
            }
            self.crash.next_part()?;
            self.usage.apply_batch(batch)?;
        }
        if !notices.is_empty() {
            let mut batch = sled::Batch::default();
            for row in notices {
                match row {
                    NoticeRow::Queued {
                        next_hop,
                        from,
                        id,
                        notice,
                    } => batch.insert(keys::outbox(&next_hop, &from, id), notice),
                    NoticeRow::Received { from, id, notice } => {
                        batch.insert(keys::inbox(&from, id), notice)
                    }
                    NoticeRow::Acked { next_hop, from, id } => {
                        batch.remove(keys::outbox(&next_hop, &from, id))
                    }
                }
            }
            self.crash.next_part()?;
            self.notices.apply_batch(batch)?;
        }
        if !changes.is_empty() {
            let mut batch = sled::Batch::default();
            for run in &changes {
                for (first, chunk) in chunked(run.first, &run.entries) {
                    batch.insert(&first.to_be_bytes(), chunk);
                }
            }
            self.crash.next_part()?;
            self.changelog.apply_batch(batch)?;
        }
        if !consents.is_empty() {
            let mut batch = sled::Batch::default();
            for row in consents {
                if let Some(subject) = &row.subject {
                    let mut key = keys::consents_of(subject);
                    key.extend_from_slice(row.id.as_bytes());
                    batch.insert(key, &[]);
                }
                batch.insert(&keys::consent(&row.id), row.consent);
            }
            self.crash.next_part()?;
            self.consents.apply_batch(batch)?;
        }
        if !checkpoints.is_empty() {
            let mut batch = sled::Batch::default();
            for row in checkpoints {
                batch.insert(keys::checkpoint(&row.node, row.seq), row.checkpoint);
            }
            self.crash.next_part()?;
            self.checkpoints.apply_batch(batch)?;
        }
        if !cases.is_empty() {
            let mut batch = sled::Batch::default();
            for row in cases {
                if let Some(record) = &row.record {
                    batch.insert(&keys::case_by_record(record, &row.id)[..], &[]);
                }
                batch.insert(&keys::case(&row.id), row.case);
            }
            self.crash.next_part()?;
            self.objections.apply_batch(batch)?;
        }
        if !current.is_empty() {
            let mut batch = sled::Batch::default();
            for (id, key) in current.replica_ids {
                batch.insert(&keys::replica_id(&id), key);
            }
            for (id, value) in current.redact_queue {
                batch.insert(&keys::redact_queue(&id), value);
            }
            for (key, value) in current.records {
                batch.insert(key, value);
            }
            for (child, cursor) in current.cursors {
                batch.insert(&keys::cursor(&child), &cursor.to_be_bytes());
            }
            for (child, seq, kept) in current.quarantine {
                let key = keys::quarantine(&child, seq);
                match kept {
                    Some(value) => batch.insert(&key, value),
                    None => batch.remove(&key),
                }
            }
            if let Some(applied) = current.applied {
                batch.insert(keys::records::APPLIED, &applied.to_be_bytes());
            }
            if let Some((day, figures)) = current.day {
                batch.insert(keys::day(day), figures);
            }
            if let Some(day) = current.last_day {
                batch.insert(keys::records::LAST_DAY, day.to_string().as_bytes());
            }
            if let Some(figures) = current.figures {
                batch.insert(keys::records::FIGURES, figures);
            }
            for (provider, period, value) in current.monthly {
                batch.insert(keys::monthly(&provider, &period), value);
            }
            for (child, report) in current.child_reports {
                batch.insert(keys::child_report(&child), report);
            }
            if let Some(region) = current.region {
                batch.insert(keys::records::REGION, region.as_str().as_bytes());
            }
            self.crash.next_part()?;
            self.records.apply_batch(batch)?;
        }
        Ok(())
    }

    /// sled's `flush`, then `fdatasync` of its `db` file and an fsync of new blob files
    /// and their folder (ARCHITECTURE.md, "Durability").
    fn sync(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.durability.sync()
    }

    fn syncs(&self) -> u64 {
        self.durability.syncs()
    }

    /// Each chunk holding a sequence of `entries` is read, the entries replaced, and
    /// written back as one value under the same key, even if it grew: a reader never
    /// sees a sequence twice.
    fn rewrite_changes(&self, entries: Vec<(u64, u8, Vec<u8>)>) -> Result<(), StoreError> {
        let mut by_chunk: BTreeMap<u64, Vec<(u64, u8, Vec<u8>)>> = BTreeMap::new();
        for (seq, tag, value) in entries {
            let Some(item) = self.changelog.range(..=seq.to_be_bytes()).next_back() else {
                return Err(StoreError::Engine(format!(
                    "changelog entry {seq} to rewrite is not stored"
                )));
            };
            by_chunk
                .entry(seq_of(&item?.0)?)
                .or_default()
                .push((seq, tag, value));
        }
        for (first, replaced) in by_chunk {
            let Some(v) = self.changelog.get(first.to_be_bytes())? else {
                return Err(StoreError::Engine(format!(
                    "the changelog chunk at {first} to rewrite is gone"
                )));
            };
            let mut written = Vec::new();
            for change in decode_chunk(&v)? {
                written.push(change.tag_and_value()?);
            }
            for (seq, tag, value) in replaced {
                let i = (seq - first) as usize;
                match written.get_mut(i) {
                    Some(slot) => *slot = (tag, value),
                    None => {
                        return Err(StoreError::Engine(format!(
                            "changelog entry {seq} to rewrite is not stored"
                        )));
                    }
                }
            }
            self.changelog
                .insert(first.to_be_bytes(), chunk_value(&written))?;
        }
        Ok(())
    }

    fn release_redactions(&self, done: Vec<(Uuid, Vec<u8>)>) -> Result<usize, StoreError> {
        let mut released = 0;
        for (id, value) in done {
            let swapped = self.records.compare_and_swap(
                keys::redact_queue(&id),
                Some(value),
                None::<&[u8]>,
            )?;
            if swapped.is_ok() {
                released += 1;
            }
        }
        Ok(released)
    }

    fn new_notice_id(&self) -> Result<u64, StoreError> {
        Ok(self.db.generate_id()? + 1)
    }

    fn check(&self) -> CheckReport {
        super::check::run(&self.trees())
    }

    /// Over every key and value of every tree but `usage` and `notices`, in key order.
    fn fingerprint(&self) -> Result<Hash, StoreError> {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for tree in [
            &self.records,
            &self.changelog,
            &self.consents,
            &self.checkpoints,
            &self.objections,
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

    fn crash_commits_after(&self, parts: usize) {
        self.crash.arm(parts);
    }
}

/// Opens sled, waiting up to two seconds for the file lock: after a `Store` in this
/// process is dropped, sled's background flusher can hold the lock a moment longer.
/// Another process holding it is reported as such.
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
