//! Reads: records by subject and by id, the usage log, counts.

use std::path::Path;

use uuid::Uuid;

use super::backend::Reads;
use super::codec::decode;
use super::keys;
use super::{Change, Stats, Store, StoreError};
use crate::domain::record::{Hash, Record};
use crate::domain::usage::Chained;

impl Store {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The current version of every record of one subject, in key order.
    pub fn records_of(&self, subject_id: &str) -> Result<Vec<Record>, StoreError> {
        self.inner.sled.records_of(subject_id, None, usize::MAX)
    }

    /// Calls `f` with the current version of every record held, in key order (a full
    /// scan: for the retention purge, not for hot paths).
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<(), StoreError> {
        for item in self.inner.sled.records.scan_prefix([keys::records::RECORD]) {
            let (_, v) = item?;
            f(decode::<Record>(&v, "record")?);
        }
        Ok(())
    }

    /// The current version of a record, by id.
    pub fn record(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        self.inner.sled.record_by_id(id)
    }

    /// The storage engine behind this store, read-only, through the seam (see
    /// `backend`): writes go through `Store`'s writer only.
    pub fn backend(&self) -> &dyn Reads {
        &self.inner.sled
    }

    /// Makes every later commit stop, as a process crash would, after writing `trees`
    /// of its per-tree batches (and every commit after it fail): for the conformance
    /// suite's crash tests (`tests/store_conformance.rs`). The store is poisoned by the
    /// failed commit, as by any failed write; reopen it to recover.
    #[doc(hidden)]
    pub fn crash_commits_after(&self, trees: usize) {
        self.inner.sled.crash_after(trees);
    }

    /// Usage entries after `after`, at most `limit`.
    pub fn usage_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.inner.sled.usage(after, limit)
    }

    /// Changelog entries after `after`, at most `limit`, in sequence order.
    pub fn changes_since(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Change)>, StoreError> {
        self.inner.sled.changes(after, limit)
    }

    /// Counts records by scanning; for status and tests, not for hot paths.
    pub fn stats(&self) -> Result<Stats, StoreError> {
        let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let records = self
            .inner
            .sled
            .records
            .scan_prefix([keys::records::RECORD])
            .count() as u64;
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
            &self.inner.sled.records,
            &self.inner.sled.changelog,
            &self.inner.sled.consents,
            &self.inner.sled.checkpoints,
            &self.inner.sled.objections,
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
