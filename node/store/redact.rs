//! Removing a deleted or purged record's earlier versions from the changelog (R-OBJ-3,
//! R-SEC-2). The changelog keeps every version, so without this a record purged at the
//! end of its five years would still hold its fields in the versions before the purge.
//!
//! A version written with status deleted or expired and without fields queues its
//! record (id -> that version and status, `Current::redact_queue`, in the same commit).
//! `Store::redact_queued` later finds the earlier versions of queued records, rewrites those versions in place (same sequence and version, status
//! and no fields, content hash recomputed: `Backend::rewrite_changes`), syncs, and only
//! then drops the queue entries it read (`Backend::release_redactions`, compare-and-swap,
//! so a record queued again meanwhile stays queued): a crash redoes it, and redoing
//! changes nothing. The changelog is read a page at a time without the writer lock, and
//! each page's redactions are rewritten under it, so pushes wait for one page at most. A parent that syncs from
//! the start later receives the redacted versions, which pass its checks as tombstones.

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use uuid::Uuid;

use super::codec::{decode, encode};
use super::read::PAGE;
use super::{Change, Store, StoreError};
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
        let raw = inner.backend.redact_queue()?;
        let mut queued: HashMap<Uuid, (u64, Status)> = HashMap::new();
        for (id, v) in &raw {
            queued.insert(*id, decode(v, "redaction queue")?);
        }
        if queued.is_empty() {
            return Ok(0);
        }
        // The changelog is read a page at a time without the writer lock (a version
        // once written changes only by redaction, which gives the same bytes again),
        // and each page's redactions are written under it: pushes wait for one page's
        // rewrite at most, and memory holds one page.
        let mut rewritten = 0;
        let mut after = 0;
        loop {
            let page = inner.backend.changes(after, PAGE)?;
            let done = page.len() < PAGE;
            let mut entries = Vec::new();
            for (seq, change) in page {
                after = seq;
                if let Change::Record(r) = &change
                    && let Some(red) = queued.get(&r.id).and_then(|(v, s)| redacted(r, *v, *s))
                {
                    let (tag, value) = Change::Record(red).tag_and_value()?;
                    entries.push((seq, tag, value));
                }
            }
            if !entries.is_empty() {
                rewritten += entries.len();
                let _w = inner.writer.lock().map_err(|_| StoreError::Lock)?;
                // A write that failed meanwhile stops this one too, as it stops all.
                if inner.poisoned.load(Ordering::SeqCst) {
                    return Err(StoreError::Poisoned);
                }
                if let Err(e) = inner.backend.rewrite_changes(entries) {
                    inner.poisoned.store(true, Ordering::SeqCst);
                    return Err(e);
                }
            }
            if done {
                break;
            }
        }
        if inner.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        if let Err(e) = self.sync() {
            // As for every write: after a failed sync nothing more is acknowledged.
            inner.poisoned.store(true, Ordering::SeqCst);
            return Err(e);
        }
        // Only the entries as read: a record queued again meanwhile (a later tombstone)
        // stays queued for the next run.
        let released = inner.backend.release_redactions(raw)?;
        if released < queued.len() {
            tracing::debug!("a record was queued again during redaction; next run");
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
