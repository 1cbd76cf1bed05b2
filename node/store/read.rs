//! Reads: records by subject and by id, the usage log, counts.

use std::path::Path;

use uuid::Uuid;

use super::codec::decode;
use super::keys;
use super::{Change, Stats, Store, StoreError, ids};
use crate::record::{Hash, Record};
use crate::region::RegionCode;
use crate::usage::Chained;

impl Store {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// The current version of every record of one subject, in key order.
    pub fn records_of(&self, subject_id: &str) -> Result<Vec<Record>, StoreError> {
        self.inner
            .records
            .scan_prefix(keys::subject_records(subject_id))
            .map(|item| {
                let (_, v) = item?;
                decode::<Record>(&v, "record")
            })
            .collect()
    }

    /// Calls `f` with the current version of every record held, in key order (a full
    /// scan: for the retention purge, not for hot paths).
    pub fn for_each_record(&self, mut f: impl FnMut(Record)) -> Result<(), StoreError> {
        for item in self.inner.records.scan_prefix([keys::records::RECORD]) {
            let (_, v) = item?;
            f(decode::<Record>(&v, "record")?);
        }
        Ok(())
    }

    /// The current version of a record, by id.
    pub fn record(&self, id: &Uuid) -> Result<Option<Record>, StoreError> {
        if let Some(key) = self.inner.records.get(keys::replica_id(id))? {
            return match self.inner.records.get(key)? {
                Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
                None => Err(StoreError::Corrupt {
                    what: "replica index",
                    detail: format!("record {id} is indexed but missing"),
                }),
            };
        }
        let Some((_, first)) = ids::locate(id) else {
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
            .get(keys::natural(&first_version.content, &first_version.origin))?
        {
            Some(v) => Ok(Some(decode::<Record>(&v, "record")?)),
            None => Err(StoreError::Corrupt {
                what: "records",
                detail: format!("record {id} is in the changelog only"),
            }),
        }
    }

    /// Usage entries after `after`, at most `limit`.
    pub fn usage_since(&self, after: u64, limit: usize) -> Result<Vec<(u64, Chained)>, StoreError> {
        self.inner
            .usage
            .range((after + 1).to_be_bytes().to_vec()..keys::usage::END.to_vec())
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
        let records = self
            .inner
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
    ids::new_id(now_ms, region, seq)
}

/// The region of the node that made a record id (ids carry it; see `ids`), or `None`
/// for an id not made by a node.
pub fn id_origin(id: &Uuid) -> Option<RegionCode> {
    let (region, _) = ids::locate(id)?;
    RegionCode::parse(&format!("{region:06}")).ok()
}

pub(super) fn seq_of(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes.try_into().map_err(|_| StoreError::Corrupt {
        what: "sequence key",
        detail: format!("{} bytes", bytes.len()),
    })?;
    Ok(u64::from_be_bytes(arr))
}
