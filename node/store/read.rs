//! Reads: records by subject and by id, the usage log, counts.

use std::path::Path;

use uuid::Uuid;

use super::backend::{NaturalKey, Reads};
use super::{Change, Stats, Store, StoreError};
use crate::domain::record::{Hash, Record};
use crate::domain::usage::Chained;

impl Store {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The current version of every record of one subject, in key order.
    pub fn records_of(&self, subject_id: &str) -> Result<Vec<Record>, StoreError> {
        self.inner.backend.records_of(subject_id, None, usize::MAX)
    }

    /// Calls `f` with the current version of every record held, in key order (a full
    /// scan: for the retention purge, not for hot paths).
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<(), StoreError> {
        let mut resume: Option<NaturalKey> = None;
        loop {
            let page = self.inner.backend.all_records(resume.as_deref(), PAGE)?;
            let done = page.len() < PAGE;
            for (key, record) in page {
                f(record);
                resume = Some(key);
            }
            if done {
                return Ok(());
            }
        }
    }

    /// The current version of a record, by id.
    pub fn record(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        self.inner.backend.record_by_id(id)
    }

    /// The storage engine behind this store, read-only, through the seam (see
    /// `backend`): writes go through `Store`'s writer only.
    pub fn backend(&self) -> &dyn Reads {
        &*self.inner.backend
    }

    /// Makes every later commit stop, as a process crash would, after writing `parts`
    /// of its parts (`Backend::crash_commits_after`; and every commit after it fail): for the conformance
    /// suite's crash tests (`tests/store_conformance.rs`). The store is poisoned by the
    /// failed commit, as by any failed write; reopen it to recover.
    #[doc(hidden)]
    pub fn crash_commits_after(&self, parts: usize) {
        self.inner.backend.crash_commits_after(parts);
    }

    /// Usage entries after `after`, at most `limit`.
    pub fn usage_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.inner.backend.usage(after, limit)
    }

    /// Every usage entry as stored (undecoded), in sequence order, read a page at a
    /// time.
    pub(super) fn usage_rows(
        &self,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), StoreError>> + '_ {
        let mut after = 0;
        let mut page = std::collections::VecDeque::new();
        let mut done = false;
        std::iter::from_fn(move || {
            if page.is_empty() && !done {
                match self.inner.backend.usage_rows(after, PAGE) {
                    Ok(rows) => {
                        done = rows.len() < PAGE;
                        page.extend(rows);
                    }
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                }
            }
            let (seq, v) = page.pop_front()?;
            after = seq;
            Some(Ok((seq, v)))
        })
    }

    /// Changelog entries after `after`, at most `limit`, in sequence order.
    pub fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Change)>, StoreError> {
        self.inner.backend.changes(after, limit)
    }

    /// Counts records by scanning; for status and tests, not for hot paths.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let records = self.inner.backend.record_count()?;
        Ok(Stats {
            records,
            last_change: w.next_change - 1,
            usage_entries: w.next_usage - 1,
        })
    }

    /// SHA-256 over every record, changelog entry and the state kept with them
    /// (`Backend::fingerprint`): equal before and after an operation means the operation
    /// changed no data (the usage log is left out, since every use, refusals included,
    /// appends to it, and so are the notices).
    pub fn fingerprint(&self) -> Result<Hash, StoreError> {
        let _w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        self.inner.backend.fingerprint()
    }
}

/// Records read per page of a full scan.
pub(super) const PAGE: usize = 1024;

/// A record id as the node of `region` makes it for the version at `seq` (see `ids`), for
/// tests that build records by hand.
#[cfg(test)]
pub(crate) fn new_record_id(
    now_ms: i64,
    region: &crate::domain::region::RegionCode,
    seq: u64,
) -> Uuid {
    crate::domain::ids::new_id(now_ms, region, seq)
}

pub(super) fn seq_of(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "sequence key",
        detail: format!("{} bytes", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}
