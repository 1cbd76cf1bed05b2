//! The parent's quarantine: entries a child sent that this node refused (R-FED-1).
//!
//! A parent moves a child's cursor past a refused entry, so one bad entry cannot stall
//! the uplink; the entry is never dropped. It is kept here, in the records tree under
//! `q` child region (6 ASCII digits) child sequence (8 bytes big-endian) -> a
//! `Quarantined` (codec format byte 1, postcard), written in the same records-tree batch
//! as the cursor move, so a crash loses neither or both (and the child then resends).
//! The notice to the child goes into the notices tree just before that batch: a crash
//! between the two can send the child a second notice, never none.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::codec::{decode, encode};
use super::{Store, StoreError};
use crate::federation::Notice;
use crate::region::RegionCode;
use crate::usage::UsageEntry;

const QUARANTINE_PREFIX: u8 = b'q';

/// An entry refused from a child, as the parent keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub child: RegionCode,
    /// The entry's sequence in the child's changelog.
    pub child_seq: u64,
    /// The record id (or `consent <id>`, `checkpoint <node>/<seq>`) the entry names.
    pub label: String,
    pub field: String,
    pub rule: String,
    pub message: String,
    /// When it was refused (Unix ms).
    pub at_ms: i64,
    /// The whole entry as the child sent it: a protobuf `credit.v1.ChangeEntry`, kept as
    /// bytes (the store never sees protobuf types), so it can be examined or applied
    /// once the cause is fixed.
    pub entry: Vec<u8>,
}

/// A refused entry to keep, and the notice that tells the child (sent only the first
/// time the entry is refused: a resent entry replaces the kept one silently).
#[derive(Clone, Debug)]
pub struct Refused {
    pub kept: Quarantined,
    pub notice: Notice,
}

/// What a batch from a child (or a retry of its quarantined entries) writes beside the
/// records: its usage entries, the entries to keep in quarantine, and the child
/// sequences to release from it (applied now).
#[derive(Debug, Default)]
pub struct ChildLog {
    pub usage: Vec<UsageEntry>,
    pub refused: Vec<Refused>,
    pub released: Vec<u64>,
}

pub(super) fn quarantine_key(child: &RegionCode, seq: u64) -> [u8; 15] {
    let mut key = [0u8; 15];
    key[0] = QUARANTINE_PREFIX;
    key[1..7].copy_from_slice(child.as_str().as_bytes());
    key[7..].copy_from_slice(&seq.to_be_bytes());
    key
}

impl Store {
    /// Adds `refused` to the records-tree `batch` (the caller's, with the cursor) and
    /// queues each new one's notice for its child. Returns how many notices were queued.
    pub(super) fn put_quarantined(
        &self,
        batch: &mut sled::Batch,
        refused: Vec<Refused>,
    ) -> Result<usize, StoreError> {
        let mut notices = 0;
        for Refused { kept, notice } in refused {
            let key = quarantine_key(&kept.child, kept.child_seq);
            if !self.inner.records.contains_key(key)? {
                self.put_notice(&kept.child, &notice)?;
                notices += 1;
            }
            batch.insert(&key, encode(&kept)?);
        }
        Ok(notices)
    }

    /// Every entry kept in quarantine, by child and sequence; at most `limit`, the
    /// latest first when there are more.
    pub fn quarantined(&self, limit: usize) -> Result<Vec<Quarantined>, StoreError> {
        let mut out = Vec::new();
        for item in self.inner.records.scan_prefix([QUARANTINE_PREFIX]).rev() {
            if out.len() >= limit {
                break;
            }
            out.push(decode::<Quarantined>(&item?.1, "quarantined entry")?);
        }
        out.reverse();
        Ok(out)
    }

    /// Every entry of `child` kept in quarantine, by sequence.
    pub fn quarantined_from(&self, child: &RegionCode) -> Result<Vec<Quarantined>, StoreError> {
        let mut prefix = vec![QUARANTINE_PREFIX];
        prefix.extend_from_slice(child.as_str().as_bytes());
        self.inner
            .records
            .scan_prefix(prefix)
            .map(|item| decode::<Quarantined>(&item?.1, "quarantined entry"))
            .collect()
    }

    /// How many entries of each child are kept in quarantine.
    pub fn quarantine_counts(&self) -> Result<BTreeMap<RegionCode, u64>, StoreError> {
        let mut counts = BTreeMap::new();
        for item in self.inner.records.scan_prefix([QUARANTINE_PREFIX]) {
            let (key, _) = item?;
            let region = std::str::from_utf8(key.get(1..7).unwrap_or_default())
                .ok()
                .and_then(|r| RegionCode::parse(r).ok())
                .ok_or_else(|| StoreError::Corrupt {
                    what: "quarantine key",
                    detail: format!("{key:?}"),
                })?;
            *counts.entry(region).or_insert(0) += 1;
        }
        Ok(counts)
    }
}
