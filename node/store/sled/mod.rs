//! The sled backend: seven trees in one sled database (layouts in `keys` and `chunks`).
//!
//! A `Commit` is written as one `apply_batch` per tree, in the order of its parts (usage,
//! notices, changelog, consents, checkpoints, objections, records). Each is atomic, and
//! sled recovers a prefix of its log, so a crash leaves a prefix of that order: what the
//! backend contract asks (`backend`), completed by replay at open.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::backend::{Backend, Commit, Heads, NoticeRow, Reads};
use super::codec::decode;
use super::durability::Durability;
use super::{Change, StoreError, chunked, decode_chunk, keys, seq_of};
use uuid::Uuid;

use crate::domain::record::Record;
use crate::domain::usage::Chained;

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
    /// Tree batches a commit may still write before it stops as a crash would
    /// (`Store::crash_commits_after`); `usize::MAX`: never.
    crash_after: AtomicUsize,
}

/// The names of the trees, in the order `check` reads them.
pub(in crate::store) const TREES: [&str; 7] = [
    "records",
    "changelog",
    "usage",
    "notices",
    "consents",
    "checkpoints",
    "objections",
];

impl SledBackend {
    /// Opens the trees of `db` (creating missing ones) and the durability handles of its
    /// folder.
    pub(in crate::store) fn new(db: sled::Db, dir: &std::path::Path) -> Result<Self, StoreError> {
        Ok(SledBackend {
            records: db.open_tree("records")?,
            changelog: db.open_tree("changelog")?,
            usage: db.open_tree("usage")?,
            notices: db.open_tree("notices")?,
            consents: db.open_tree("consents")?,
            checkpoints: db.open_tree("checkpoints")?,
            objections: db.open_tree("objections")?,
            durability: Durability::new(dir)?,
            db,
            crash_after: AtomicUsize::new(usize::MAX),
        })
    }

    /// See `Store::crash_commits_after`.
    pub(in crate::store) fn crash_after(&self, trees: usize) {
        self.crash_after.store(trees, Ordering::SeqCst);
    }

    /// Before each tree batch of a commit: fails once the batches allowed by
    /// `crash_after` are written, leaving what a process crash there leaves on disk.
    fn next_tree(&self) -> Result<(), StoreError> {
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
            self.next_tree()?;
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
                }
            }
            self.next_tree()?;
            self.notices.apply_batch(batch)?;
        }
        if !changes.is_empty() {
            let mut batch = sled::Batch::default();
            for run in &changes {
                chunked(run.first, &run.entries, &mut batch);
            }
            self.next_tree()?;
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
            self.next_tree()?;
            self.consents.apply_batch(batch)?;
        }
        if !checkpoints.is_empty() {
            let mut batch = sled::Batch::default();
            for row in checkpoints {
                batch.insert(keys::checkpoint(&row.node, row.seq), row.checkpoint);
            }
            self.next_tree()?;
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
            self.next_tree()?;
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
            self.next_tree()?;
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
}

impl Reads for SledBackend {
    fn heads(&self) -> Result<Heads, StoreError> {
        let next_change = match self.changelog.last()? {
            Some((k, v)) => seq_of(&k)? + decode_chunk(&v)?.len() as u64,
            None => 1,
        };
        let (next_usage, usage_head) = match self
            .usage
            .range(..keys::usage::END)
            .next_back()
            .transpose()?
        {
            Some((k, v)) => (seq_of(&k)? + 1, decode::<Chained>(&v, "usage entry")?.hash),
            None => (1, [0u8; 32]),
        };
        Ok(Heads {
            next_change,
            next_usage,
            usage_head,
        })
    }

    fn record(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        match self.records.get(key)? {
            Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
            None => Ok(None),
        }
    }

    /// Through the replica index for a record applied from a child; else through the
    /// sequence of its first version, which the id carries (`ids`).
    fn record_by_id(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        if let Some(key) = self.records.get(keys::replica_id(id))? {
            return match self.records.get(key)? {
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
        let Some((_, Change::Record(first_version))) =
            self.changes(first.saturating_sub(1), 1)?.into_iter().next()
        else {
            return Ok(None);
        };
        // A sequence from another origin's id points at some other record here.
        if first_version.id != *id {
            return Ok(None);
        }
        match self
            .records
            .get(keys::natural(&first_version.content, &first_version.origin))?
        {
            Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
            None => Err(StoreError::Corrupt {
                what: "records",
                detail: format!("record {id} is in the changelog only"),
            }),
        }
    }

    fn replica_key(&self, id: &Uuid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.records.get(keys::replica_id(id))?.map(|k| k.to_vec()))
    }

    fn records_of(
        &self,
        subject: &str,
        resume: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        let prefix = keys::subject_records(subject);
        let scan = match resume {
            // Strictly after `resume`, inside the prefix (a key of another subject never
            // sorts between: the NUL ends the subject).
            Some(after) if after.starts_with(&prefix) => self
                .records
                .range::<&[u8], _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded)),
            Some(_) => return Ok(Vec::new()),
            None => self.records.range::<&[u8], _>(prefix.as_slice()..),
        };
        let mut out = Vec::new();
        for item in scan {
            if out.len() == limit {
                break;
            }
            let (k, v) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(decode::<Record>(&v, "record")?);
        }
        Ok(out)
    }

    fn changes(&self, after: u64, limit: usize) -> Result<Vec<(u64, Change)>, StoreError> {
        let from = after.saturating_add(1);
        // The chunk holding `from` starts at or before it.
        let start = match self.changelog.range(..=from.to_be_bytes()).next_back() {
            Some(item) => seq_of(&item?.0)?,
            None => from,
        };
        let mut out = Vec::new();
        for item in self.changelog.range(start.to_be_bytes()..) {
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

    fn usage(&self, after: u64, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.usage
            .range((after + 1).to_be_bytes().to_vec()..keys::usage::END.to_vec())
            .take(limit)
            .map(|item| {
                let (k, v) = item?;
                Ok((seq_of(&k)?, decode(&v, "usage entry")?))
            })
            .collect()
    }
}
