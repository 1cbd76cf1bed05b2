//! Removing a deleted or purged record's earlier versions from the changelog (R-OBJ-3,
//! R-SEC-2). The changelog keeps every version, so without this a record purged at the
//! end of its five years would still hold its fields in the versions before the purge.
//!
//! A version written with status deleted or expired and without fields queues its
//! record (`x` id -> that version and status, in the records tree, in the same atomic
//! batch). `Store::redact_queued` later finds the chunks holding earlier versions of
//! queued records, rewrites those versions in place (same sequence and version, status
//! and no fields, content hash recomputed; the chunk stays one value under its key),
//! syncs, and only then drops the queue entries it read (compare-and-swap, so a record
//! queued again meanwhile stays queued): a crash redoes it, and redoing changes nothing. The chunks are found without
//! the writer lock and rewritten one at a time under it, so pushes wait for one chunk at
//! most. A parent that syncs from the start later receives the redacted versions, which
//! pass its checks as tombstones.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::codec::{decode, encode};
use super::keys;
use super::{Change, Store, StoreError, chunk_value, decode_chunk, seq_of};
use crate::domain::record::{Record, Status};

/// Whether `r` is a tombstone whose earlier versions must be redacted; its queue entry:
/// the record's id and (version, status), encoded.
pub(super) fn queue_entry(r: &Record) -> Result<Option<(Uuid, Vec<u8>)>, StoreError> {
    if matches!(r.status, Status::Deleted | Status::Expired) && r.content.fields.is_empty() {
        Ok(Some((r.id, encode(&(r.version, r.status))?)))
    } else {
        Ok(None)
    }
}

/// The redacted form of an earlier version `r` of a record now `status` at `version`.
fn redacted(r: &Record, version: u64, status: Status) -> Option<Record> {
    let done = r.status == status && r.content.fields.is_empty();
    if r.version >= version || done {
        return None;
    }
    let mut out = r.clone();
    out.content.fields.clear();
    out.content_hash = out.content.hash();
    out.status = status;
    out.status_reason = format!("redacted: the record was {status:?} at version {version}");
    Some(out)
}

impl Store {
    /// Rewrites the earlier versions of queued records in the changelog (see the module
    /// doc). Returns how many versions it rewrote.
    pub fn redact_queued(&self) -> Result<usize, StoreError> {
        let inner = &self.inner;
        if inner.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        let mut queued: HashMap<Uuid, (u64, Status)> = HashMap::new();
        let mut raw = Vec::new();
        for item in inner
            .sled
            .records
            .scan_prefix([keys::records::REDACT_QUEUE])
        {
            let (k, v) = item?;
            let id = Uuid::from_slice(&k[1..]).map_err(|e| StoreError::Corrupt {
                what: "redaction queue",
                detail: e.to_string(),
            })?;
            queued.insert(id, decode(&v, "redaction queue")?);
            raw.push((k, v));
        }
        if queued.is_empty() {
            return Ok(0);
        }
        let needs = |change: &Change| match change {
            Change::Record(r) => queued
                .get(&r.id)
                .and_then(|(v, s)| redacted(r, *v, *s))
                .is_some(),
            _ => false,
        };
        let mut chunks = Vec::new();
        for item in inner.sled.changelog.iter() {
            let (k, v) = item?;
            if decode_chunk(&v)?.iter().any(needs) {
                chunks.push(seq_of(&k)?);
            }
        }
        let mut rewritten = 0;
        for first in chunks {
            let _w = inner.writer.lock().map_err(|_| StoreError::Lock)?;
            let Some(v) = inner.sled.changelog.get(first.to_be_bytes())? else {
                continue;
            };
            let mut written = Vec::new();
            for change in decode_chunk(&v)? {
                let change = match &change {
                    Change::Record(r) => {
                        match queued.get(&r.id).and_then(|(v, s)| redacted(r, *v, *s)) {
                            Some(red) => {
                                rewritten += 1;
                                Change::Record(red)
                            }
                            None => change,
                        }
                    }
                    _ => change,
                };
                written.push(change.tag_and_value()?);
            }
            // One value under the same key, even if it grew: a reader never sees a
            // sequence twice.
            inner
                .sled
                .changelog
                .insert(first.to_be_bytes(), chunk_value(&written))?;
        }
        if let Err(e) = self.sync() {
            // As for every write: after a failed sync nothing more is acknowledged.
            inner.poisoned.store(true, Ordering::SeqCst);
            return Err(e);
        }
        // Only the entries as read: a record queued again meanwhile (a later tombstone)
        // stays queued for the next run.
        for (k, v) in raw {
            let swapped = inner
                .sled
                .records
                .compare_and_swap(k, Some(v), None::<&[u8]>)?;
            if swapped.is_err() {
                tracing::debug!("a record was queued again during redaction; next run");
            }
        }
        if rewritten > 0 {
            tracing::info!(
                records = queued.len(),
                versions = rewritten,
                "redacted earlier versions of deleted and purged records"
            );
        }
        Ok(rewritten)
    }
}
