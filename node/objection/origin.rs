//! What only a record's origin does to it (DESIGN: "only the origin changes a record"):
//! take an objection case and suspend the record, and purge adverse records about
//! persons whose five years have ended (R-SEC-2). The other steps of a case (check,
//! reply, resolve) are pure transitions in `steps`; credit repair is in `repair`.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::case::Case;
use crate::domain::record::{Record, Status, next_version};
use crate::domain::region::RegionCode;
use crate::domain::usage::{Action, UsageEntry};
use crate::policy::publication::retained_until;
use crate::store::{OriginChange, Store, StoreError};

/// Records one purge step writes at most.
const PURGE_BATCH: usize = 500;

/// The owner takes a case filed elsewhere (`rpc` = `Take`) or here (`File`): version 1,
/// and the record suspended if it is active, in one step that travels up. Returns false
/// when the case was already taken (a resent notice).
pub fn take_case(
    store: &Store,
    mut case: Case,
    local: RegionCode,
    now_ms: i64,
    by: &str,
    rpc: &str,
) -> Result<bool, StoreError> {
    let taken = store.origin_write(now_ms, |s| {
        if s.case(&case.id)?.is_some_and(|c| c.version >= 1) {
            return Ok(Err(()));
        }
        case.version = 1;
        case.path = vec![local];
        let mut change = OriginChange::default();
        let mut e = UsageEntry::new(by, Action::Objection, rpc, now_ms);
        e.subject = Some(case.subject_id.clone());
        e.record_ids = vec![case.record_id];
        e.count = 1;
        match s.record(&case.record_id)? {
            Some(rec) if rec.origin == local && rec.status == Status::Active => {
                let next = next_version(
                    &rec,
                    Status::Suspended,
                    format!("R-OBJ-3: objection {} open", case.id),
                    now_ms,
                );
                e.detail = format!(
                    "took objection {} filed at {}; record suspended at version {}",
                    case.id, case.filed_at, next.version
                );
                change.records.push(next);
            }
            Some(rec) => {
                e.detail = format!(
                    "took objection {} filed at {}; record already {:?}",
                    case.id, case.filed_at, rec.status
                );
            }
            None => {
                e.detail = format!(
                    "took objection {} filed at {}; the record is not held here",
                    case.id, case.filed_at
                );
            }
        }
        change.usage.push(e);
        change.cases.push(case);
        Ok(Ok((change, ())))
    })?;
    Ok(taken.is_ok())
}

/// Whether `r` is this node's own, and past its retention period on `today` but not yet
/// purged. A deleted record is left as it is: its tombstone has no fields and keeps the
/// reason it was deleted for (R-OBJ-3).
fn purgeable(r: &Record, local: RegionCode, today: NaiveDate) -> Option<NaiveDate> {
    if r.origin != local || matches!(r.status, Status::Expired | Status::Deleted) {
        return None;
    }
    retained_until(r).filter(|until| today > *until)
}

/// Purges this node's adverse records about natural persons whose five years ended
/// before `today` (R-SEC-2): a new version, status expired, with its fields removed,
/// which travels up and replaces every copy. Each purge writes a usage entry naming
/// the subject. Returns the ids purged (or, with `dry_run`, that would be).
pub fn purge_expired(
    store: &Store,
    local: RegionCode,
    today: NaiveDate,
    now_ms: i64,
    dry_run: bool,
) -> Result<Vec<Uuid>, StoreError> {
    let mut due = Vec::new();
    store.for_each_record(|r| {
        if purgeable(&r, local, today).is_some() {
            due.push(r.id);
        }
    })?;
    if dry_run || due.is_empty() {
        return Ok(due);
    }
    let mut purged = Vec::with_capacity(due.len());
    for ids in due.chunks(PURGE_BATCH) {
        let done = store.origin_write(now_ms, |s| {
            let mut change = OriginChange::default();
            let mut done = Vec::new();
            for id in ids {
                // Read again under the writer lock: a push may have changed it.
                let Some(cur) = s.record(id)? else { continue };
                let Some(until) = purgeable(&cur, local, today) else {
                    continue;
                };
                let was = match cur.status {
                    Status::Active => String::new(),
                    other => format!(" (was {other:?}: {})", cur.status_reason),
                };
                let mut next = next_version(
                    &cur,
                    Status::Expired,
                    format!("R-SEC-2: released until {until}; purged on {today}{was}"),
                    now_ms,
                );
                next.content.fields.clear();
                next.content_hash = next.content.hash();
                let mut e =
                    UsageEntry::new(format!("node {local}"), Action::Purge, "Purge", now_ms);
                e.subject = Some(cur.content.subject.id.clone());
                e.record_ids = vec![cur.id];
                e.count = 1;
                e.detail = format!(
                    "purged version {} of {}: adverse information released until {until} \
                     (R-SEC-2)",
                    next.version, cur.content.category
                );
                change.usage.push(e);
                change.records.push(next);
                done.push(*id);
            }
            Ok(Ok::<_, ()>((change, done)))
        })?;
        if let Ok(done) = done {
            purged.extend(done);
        }
    }
    if !purged.is_empty() {
        tracing::info!(purged = purged.len(), %today, "purged records past their retention period");
    }
    Ok(purged)
}

/// Runs the purge now and then every `every`, until `stopping` turns true; each run also
/// removes the earlier versions of records deleted or purged here or above
/// (`Store::redact_queued`).
pub fn spawn_purge(
    store: Store,
    local: RegionCode,
    clock: crate::domain::clock::Clock,
    every: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let store = store.clone();
            let (today, now) = (clock.today(), clock.now_ms());
            let run = move || {
                purge_expired(&store, local, today, now, false)?;
                store.redact_queued()
            };
            match tokio::task::spawn_blocking(run).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "retention purge failed"),
                Err(e) => tracing::error!(error = %e, "retention purge task failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    })
}
