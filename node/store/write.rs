//! The write path: one writer decides outcomes and writes a batch, then a group commit
//! makes it durable before anything is acknowledged.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use super::codec::encode;
use super::keys;
use uuid::Uuid;

use super::backend::{ChangeRun, Commit, UsageRow};
use super::{Applied, Store, StoreError, TAG_RECORD, Writer, census, objections};
use crate::domain::record::{Content, Record, Status};
use crate::domain::region::RegionCode;
use crate::domain::usage::UsageEntry;

impl Store {
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
    pub(super) fn write<T>(
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

    pub(super) fn decide_and_write<F>(
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
        // Later records in the same batch must see earlier ones.
        let mut overlay: HashMap<Vec<u8>, Record> = HashMap::new();
        let mut commit = Commit::default();
        let mut written: Vec<(u8, Vec<u8>)> = Vec::new();
        let mut applied = Vec::with_capacity(batch.len());
        let first_seq = w.next_change;
        let mut next_change = first_seq;
        let mut figures = w.figures.clone();
        let mut monthly = census::MonthlyDelta::default();

        for content in batch {
            let key = keys::natural(&content, &origin);
            let existing = match overlay.get(&key) {
                Some(r) => Some(r.clone()),
                None => self.inner.backend.record(&key)?,
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
            commit.current.records.push((key.clone(), value.clone()));
            overlay.insert(key, record);
            written.push((TAG_RECORD, value));
        }

        let entries = usage(&applied);
        // Usage first (the commit's order): after a crash the log may name a batch that
        // was never stored (and never acknowledged), but it never lacks the entry for
        // data that is stored.
        self.write_usage(w, entries, &mut commit)?;
        if next_change != w.next_change {
            commit.changes.push(ChangeRun {
                first: first_seq,
                entries: written,
            });
            commit.current.applied = Some(next_change - 1);
            self.snapshot_day(&w.figures, now_ms, &mut commit.current)?;
            commit.current.figures = Some(encode(&figures)?);
            monthly.write(self, &mut commit.current)?;
            self.commit(commit, HashSet::new())?;
            w.figures = figures;
        } else {
            self.commit(commit, HashSet::new())?;
        }
        w.next_change = next_change;
        Ok(applied)
    }

    /// Writes `commit` through the backend (not yet durable), then refreshes the
    /// objection holds of `cases_of`, the records whose cases it wrote.
    pub(super) fn commit(&self, commit: Commit, cases_of: HashSet<Uuid>) -> Result<(), StoreError> {
        if !commit.is_empty() {
            self.inner.backend.commit(commit)?;
        }
        objections::refresh_held(&self.inner, &cases_of)
    }

    /// Chains usage entries as the writer, into `commit` (written and synced with it).
    pub(super) fn write_usage(
        &self,
        w: &mut Writer,
        entries: Vec<UsageEntry>,
        commit: &mut Commit,
    ) -> Result<(), StoreError> {
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
            let subject = entry
                .subject
                .as_ref()
                .filter(|s| crate::domain::record::has_id_shape(s))
                .cloned();
            let chained = entry.chain(head)?;
            head = chained.hash;
            commit.usage.push(UsageRow {
                seq,
                subject,
                entry: encode(&chained)?,
            });
            seq += 1;
        }
        w.next_usage = seq;
        w.usage_head = head;
        Ok(())
    }

    /// Appends usage entries (refusals, pulls) and returns after they are durable.
    pub fn append_usage(&self, entries: Vec<UsageEntry>) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(|w| {
            let mut commit = Commit::default();
            self.write_usage(w, entries, &mut commit)?;
            self.commit(commit, HashSet::new())
        })
    }

    /// How many times this store has synced to disk since it was opened.
    pub fn syncs(&self) -> u64 {
        self.inner.backend.syncs()
    }

    /// Returns once write `number` is durable: at once if a sync that began after it
    /// has finished, else after a sync of its own (which covers every write before it).
    pub(super) fn sync_through(&self, number: u64) -> Result<(), StoreError> {
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
        self.inner.backend.sync()
    }
}
