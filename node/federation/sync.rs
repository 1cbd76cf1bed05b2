//! The parent's side of Sync: the stream a child opens, the re-check and application of
//! its entries, the quarantine of those refused and the refusal of each (R-FED-1), and
//! RetryQuarantine.

use std::collections::HashMap;

use chrono::NaiveDate;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::FederationService;
use super::check::check_entry;
use crate::config::Child;
use crate::domain::caller::CallerId;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::record::Record;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::Violation;
use crate::policy::authz::Rpc;
use crate::rpc::gate::Gate;
use crate::rpc::refusal::{Refusal, store_status};
use crate::store::{Change, ChildLog, Quarantined, Refused, ReplicaOutcome};

impl FederationService {
    pub(super) async fn serve_sync(
        &self,
        request: Request<Streaming<pb::SyncUp>>,
    ) -> Result<Response<ReceiverStream<Result<pb::SyncDown, Status>>>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Sync, Action::Sync)
            .await?;
        let Some(child) = self.ctx.config.child(&caller.region).cloned() else {
            let refusal = Refusal::denied(
                "R-FED-1",
                format!(
                    "{} is not a configured child of {}",
                    caller.region, self.ctx.config.region
                ),
            );
            return Err(self
                .ctx
                .gate
                .refuse(Some(&caller), "Sync", Action::Sync, refusal)
                .await);
        };
        let serial = Gate::serial(&request).unwrap_or_default();
        let cursor = self
            .ctx
            .store
            .cursor(&child.region)
            .map_err(|e| store_status(&e))?;
        let mut up = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        tx.send(down(pb::sync_down::Message::Cursor(pb::Cursor {
            acked: cursor,
        })))
        .await
        .map_err(|_| Status::cancelled("the child went away"))?;
        tracing::info!(child = %child.region, cursor, "child connected");
        self.seen(&child.region, |s| s.connected += 1);
        let service = self.clone();
        tokio::spawn(async move {
            let mut notices = service.ctx.store.watch_notices();
            let mut notices_waiting = true;
            let mut retry = tokio::time::interval(std::time::Duration::from_millis(200));
            let mut sent: std::collections::HashSet<(crate::domain::region::RegionCode, u64)> =
                Default::default();
            loop {
                tokio::select! {
                    // The child reconnects to the restarted node and resumes from its cursor.
                    () = service.ctx.gate.stopping() => break,
                    msg = up.message() => {
                        let msg = match msg {
                            Ok(Some(msg)) => msg,
                            Ok(None) => break,
                            Err(status) => {
                                tracing::debug!(child = %child.region, %status, "sync stream ended");
                                break;
                            }
                        };
                        if let Err(status) = service.ctx.gate.still_valid(&caller, &serial, "Sync", Action::Sync).await {
                            let _ = tx.send(Err(status)).await;
                            break;
                        }
                        match msg.message {
                            Some(pb::sync_up::Message::Changes(batch)) => {
                                let reply = service.apply(&caller, &child, batch).await.and_then(|ack| down(pb::sync_down::Message::Ack(ack)));
                                let failed = reply.is_err();
                                if tx.send(reply).await.is_err() || failed {
                                    break;
                                }
                            }
                            Some(pb::sync_up::Message::Census(figures)) => {
                                // Two levels below the child are kept, for the census table.
                                let mut report = crate::domain::census::PlatformReport::from_wire(&figures, 2);
                                report.region = child.region.to_string();
                                let region = child.region;
                                if let Err(e) = service.ctx.store.call(move |s| s.set_child_report(&region, &report)).await {
                                    tracing::error!(child = %child.region, error = %e, "cannot keep a census report");
                                }
                            }
                            Some(pb::sync_up::Message::NoticeAck(ack)) => {
                                let Ok(from) = crate::domain::region::RegionCode::parse(&ack.from_region) else { continue };
                                let store = service.ctx.store.clone();
                                let region = child.region;
                                let _ = service.ctx.store.call(move |_| store.ack_notice(&region, &from, ack.id)).await;
                            }
                            None => {}
                        }
                    }
                    changed = notices.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        notices_waiting = true;
                    }
                    _ = retry.tick(), if notices_waiting => {}
                }
                if notices_waiting {
                    notices_waiting = service.send_notices(&child, &tx, &mut sent).await;
                }
            }
            service.seen(&child.region, |s| {
                s.connected = s.connected.saturating_sub(1)
            });
            tracing::info!(child = %child.region, "child disconnected");
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    /// Checks and applies one batch from `child`; returns the acknowledgement.
    async fn apply(
        &self,
        caller: &CallerId,
        child: &Child,
        batch: pb::ChangeBatch,
    ) -> Result<pb::Ack, Status> {
        self.seen(&child.region, |s| {
            s.reported_head = s.reported_head.max(batch.head);
            s.last_seen_ms = self.ctx.clock.now_ms();
        });
        let Some(last_seq) = batch.entries.iter().map(|e| e.seq).max() else {
            let region = child.region;
            return Ok(pb::Ack {
                acked: self
                    .ctx
                    .store
                    .call(move |s| s.cursor(&region))
                    .await
                    .map_err(|e| store_status(&e))?,
                ..Default::default()
            });
        };
        // Dates a day ahead are allowed: the child's clock may be past midnight already.
        let today = self.ctx.clock.today() + chrono::Days::new(1);
        let mut records = Vec::with_capacity(batch.entries.len());
        let mut refused = Vec::new();
        // Each entry as the child sent it, by sequence: a refused one (or one that turns
        // out to conflict) is kept whole in the quarantine (R-FED-1).
        let mut raw: HashMap<u64, Vec<u8>> = HashMap::with_capacity(batch.entries.len());
        // The version held here, for a later one that changes only the status.
        // Read in one bounded store call before the checks (R-SEC-1: no handler reads the
        // store on a runtime thread). A read that fails refuses the whole batch: read as
        // "not held", it would skip the rule that a tombstone is never reopened. The child
        // resends it.
        let held = self
            .ctx
            .store
            .call({
                let ids = held_ids(batch.entries.iter());
                move |s| held_copies(s, &ids)
            })
            .await
            .map_err(|e| store_status(&e))?;
        let known = |id: &uuid::Uuid| held.get(id).cloned();
        for entry in batch.entries {
            let seq = entry.seq;
            let record_id = wire_label(&entry);
            raw.insert(seq, prost::Message::encode_to_vec(&entry));
            match self.check(entry, child, today, &known) {
                Ok(r) => records.push((seq, r)),
                Err(v) => refused.push(Refusal::from(v).for_entry(seq, record_id)),
            }
        }
        let (seqs, records): (Vec<u64>, Vec<_>) = records.into_iter().unzip();
        let entries: Vec<(u64, String)> = seqs
            .iter()
            .zip(&records)
            .map(|(s, r)| (*s, r.label()))
            .collect();
        let store = self.ctx.store.clone();
        let (child_region, local) = (child.region, self.ctx.config.region);
        let who = caller.uri();
        let refused_for_log = refused.clone();
        let entries_for_log = entries.clone();
        let now = self.ctx.clock.now_ms();
        let outcomes = self
            .ctx
            .store
            .call(move |_| {
                let ids = store.clone();
                store.apply_from_child(child_region, local, records, last_seq, now, |outcomes| {
                    let log = sync_usage(
                        &who,
                        child_region,
                        outcomes,
                        &entries_for_log,
                        &refused_for_log,
                        now,
                    );
                    let all = refused_for_log
                        .iter()
                        .cloned()
                        .chain(conflicts(&entries_for_log, outcomes));
                    let mut kept = Vec::new();
                    for r in all {
                        // Drawn also for a resent entry whose notice is not sent again: ids
                        // need only be unique.
                        let id = ids.new_notice_id()?;
                        // Data the law says is never stored (R-DATA-3) or no longer released
                        // (R-SEC-2) is kept as its name, rule and reason only: it could
                        // never pass a retry, and keeping it would store it after all.
                        let entry = if PROHIBITED_CONTENT.contains(&r.rule.as_str()) {
                            Vec::new()
                        } else {
                            raw.remove(&r.seq).unwrap_or_default()
                        };
                        kept.push(quarantine(child_region, local, &r, entry, id, now));
                    }
                    Ok(ChildLog {
                        usage: log,
                        refused: kept,
                        released: Vec::new(),
                    })
                })
            })
            .await
            .map_err(|e| store_status(&e))?;
        let (mut applied, mut unchanged) = (0, 0);
        for outcome in &outcomes {
            match outcome {
                ReplicaOutcome::Applied => applied += 1,
                ReplicaOutcome::Unchanged => unchanged += 1,
                ReplicaOutcome::Conflict { .. } => {}
            }
        }
        refused.extend(conflicts(&entries, &outcomes));
        if !refused.is_empty() {
            tracing::warn!(child = %child.region, refused = refused.len(),
                "refused entries from a child; kept in quarantine and the child notified");
        }
        Ok(pb::Ack {
            acked: last_seq,
            applied,
            unchanged,
            refused,
        })
    }

    /// Checks `child`'s quarantined entries again and applies those that pass now; the
    /// cursor stays where it is. Returns (applied, unchanged, still refused).
    /// Checks one entry from `child` against this node's region, rules and verifier,
    /// the same on a first Sync and on a quarantine retry.
    fn check(
        &self,
        entry: pb::ChangeEntry,
        child: &Child,
        today: NaiveDate,
        known: &dyn Fn(&uuid::Uuid) -> Option<Record>,
    ) -> Result<Change, Violation> {
        check_entry(
            entry,
            child,
            &self.ctx.config.region,
            &self.ctx.validator,
            &self.ctx.verifier,
            today,
            known,
        )
    }

    async fn retry(
        &self,
        who: &str,
        child: &Child,
    ) -> Result<(u32, u32, Vec<pb::EntryRefusal>), Status> {
        let store = self.ctx.store.clone();
        let region = child.region;
        // The kept entries and the copies held of them, in one bounded call (R-SEC-1);
        // a read that fails ends the retry rather than read as "not held".
        let (kept, held) = store
            .call(move |s| {
                let kept = s.quarantined_from(&region)?;
                let wire: Vec<pb::ChangeEntry> = kept
                    .iter()
                    .filter_map(|q| prost::Message::decode(q.entry.as_slice()).ok())
                    .collect();
                let held = held_copies(s, &held_ids(wire.iter()))?;
                Ok::<_, crate::store::StoreError>((kept, held))
            })
            .await
            .map_err(|e| store_status(&e))?;
        let today = self.ctx.clock.today() + chrono::Days::new(1);
        let known = |id: &uuid::Uuid| held.get(id).cloned();
        // Entries that pass now (with what is kept of them, in case they conflict), and
        // those that still fail, with today's reason.
        let (mut changes, mut passed) = (Vec::new(), Vec::new());
        let mut still: Vec<(Quarantined, pb::EntryRefusal)> = Vec::new();
        for q in kept {
            if q.entry.is_empty() {
                // Kept without content (R-DATA-3, R-SEC-2): nothing to try again.
                continue;
            }
            let checked = match <pb::ChangeEntry as prost::Message>::decode(q.entry.as_slice()) {
                Ok(wire) => self
                    .check(wire, child, today, &known)
                    .map_err(Refusal::from),
                Err(e) => Err(Refusal::invalid(
                    "entry",
                    "R-FED-1",
                    format!("the kept entry cannot be read: {e}"),
                )),
            }
            .map_err(|r| r.for_entry(q.child_seq, q.label.clone()));
            match checked {
                Ok(change) => {
                    changes.push(change);
                    passed.push(q);
                }
                Err(r) => still.push((q, r)),
            }
        }
        let entries: Vec<(u64, String)> = passed
            .iter()
            .zip(&changes)
            .map(|(q, c)| (q.child_seq, c.label()))
            .collect();
        let still_refused: Vec<pb::EntryRefusal> = still.iter().map(|(_, r)| r.clone()).collect();
        let (store, local, who) = (
            self.ctx.store.clone(),
            self.ctx.config.region,
            who.to_string(),
        );
        let (entries_for_log, still_for_log) = (entries.clone(), still_refused.clone());
        let now = self.ctx.clock.now_ms();
        let outcomes = self
            .ctx
            .store
            .call(move |_| {
                store.apply_from_child(region, local, changes, 0, now, |outcomes| {
                    let mut usage = sync_usage(
                        &who,
                        region,
                        outcomes,
                        &entries_for_log,
                        &still_for_log,
                        now,
                    );
                    for e in &mut usage {
                        e.rpc = "RetryQuarantine".into();
                    }
                    if let Some(first) = usage.first_mut() {
                        first.detail = format!("quarantine retried {}", first.detail);
                    }
                    let mut log = ChildLog {
                        usage,
                        ..ChildLog::default()
                    };
                    // What stays is kept with today's reason (its key is there already, so
                    // the child is not told twice).
                    for (q, r) in still {
                        log.refused
                            .push(quarantine(region, local, &r, q.entry, 0, now));
                    }
                    for (((seq, id), outcome), q) in
                        entries_for_log.iter().zip(outcomes).zip(passed)
                    {
                        match outcome {
                            ReplicaOutcome::Conflict { existing } => {
                                let r = conflict_refusal(*seq, id, existing);
                                log.refused
                                    .push(quarantine(region, local, &r, q.entry, 0, now));
                            }
                            _ => log.released.push(*seq),
                        }
                    }
                    Ok(log)
                })
            })
            .await
            .map_err(|e| store_status(&e))?;
        let count =
            |f: fn(&ReplicaOutcome) -> bool| outcomes.iter().filter(|o| f(o)).count() as u32;
        let applied = count(|o| matches!(o, ReplicaOutcome::Applied));
        let unchanged = count(|o| matches!(o, ReplicaOutcome::Unchanged));
        let mut refused = still_refused;
        refused.extend(conflicts(&entries, &outcomes));
        Ok((applied, unchanged, refused))
    }

    pub(super) async fn serve_retry_quarantine(
        &self,
        request: Request<pb::RetryQuarantineRequest>,
    ) -> Result<Response<pb::RetryQuarantineResult>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::RetryQuarantine, Action::Sync)
            .await?;
        let asked = request.into_inner().child_region;
        let children: Vec<Child> = if asked.trim().is_empty() {
            self.ctx.config.children.clone()
        } else {
            let found = crate::domain::region::RegionCode::parse(asked.trim())
                .ok()
                .and_then(|r| self.ctx.config.child(&r).cloned());
            match found {
                Some(c) => vec![c],
                None => {
                    let refusal = Refusal::invalid(
                        "child_region",
                        "R-FED-1",
                        format!(
                            "{asked:?} is not a configured child of {}",
                            self.ctx.config.region
                        ),
                    );
                    return Err(self
                        .ctx
                        .gate
                        .refuse(Some(&caller), "RetryQuarantine", Action::Sync, refusal)
                        .await);
                }
            }
        };
        let mut result = pb::RetryQuarantineResult::default();
        for child in &children {
            let (applied, unchanged, refused) = self.retry(&caller.uri(), child).await?;
            result.applied += applied;
            result.unchanged += unchanged;
            result.refused.extend(refused);
        }
        tracing::info!(
            applied = result.applied,
            unchanged = result.unchanged,
            still_refused = result.refused.len(),
            "quarantine retried"
        );
        Ok(Response::new(result))
    }
}

/// A child's entry that contradicts what this node holds (R-SEC-1).
fn conflict_refusal(seq: u64, id: &str, existing: &uuid::Uuid) -> pb::EntryRefusal {
    let message = if existing.is_nil() {
        "contradicts what this node holds: another checkpoint of that node names the same \
         usage entry with a different hash (its log was rewritten)"
            .to_string()
    } else if id == existing.to_string() {
        format!("contradicts what this node holds: {existing} is held here with other content")
    } else {
        format!(
            "contradicts what this node holds: the same reference or id already names record {existing}"
        )
    };
    Refusal::invalid("id", "R-SEC-1", message).for_entry(seq, id)
}

/// The refusals of the entries that passed the checks but contradict what this node
/// holds (`entries` in the order of `outcomes`).
fn conflicts(entries: &[(u64, String)], outcomes: &[ReplicaOutcome]) -> Vec<pb::EntryRefusal> {
    entries
        .iter()
        .zip(outcomes)
        .filter_map(|((seq, id), o)| match o {
            ReplicaOutcome::Conflict { existing } => Some(conflict_refusal(*seq, id, existing)),
            _ => None,
        })
        .collect()
}

/// A refused entry as the quarantine keeps it, with the notice that tells the child
/// which record and which rule (R-FED-1).
fn quarantine(
    child: crate::domain::region::RegionCode,
    local: crate::domain::region::RegionCode,
    r: &pb::EntryRefusal,
    entry: Vec<u8>,
    notice_id: u64,
    now: i64,
) -> Refused {
    let reason = if r.field.is_empty() {
        format!("{} ({})", r.message, r.rule)
    } else {
        format!("{}: {} ({})", r.field, r.message, r.rule)
    };
    let text: String = format!(
        "node {local} refused entry {} ({}) and keeps it in quarantine: {reason}",
        r.seq, r.record_id
    )
    .chars()
    .take(4000)
    .collect();
    Refused {
        kept: Quarantined {
            child,
            child_seq: r.seq,
            label: r.record_id.clone(),
            field: r.field.clone(),
            rule: r.rule.clone(),
            message: r.message.clone(),
            at_ms: now,
            entry,
        },
        notice: Notice {
            id: notice_id,
            kind: NoticeKind::EntryRefused,
            target: child,
            record_id: r.record_id.chars().take(64).collect(),
            subject_id: String::new(),
            text,
            from: local,
            created_at_ms: now,
            objection: None,
        },
    }
}

/// What a refused wire entry is called in acknowledgements and the usage log.
/// Refusals whose entry the quarantine keeps without its content.
const PROHIBITED_CONTENT: [&str; 2] = ["R-DATA-3", "R-SEC-2"];

fn wire_label(entry: &pb::ChangeEntry) -> String {
    if let Some(r) = &entry.record {
        r.id.clone()
    } else if let Some(c) = &entry.consent {
        c.terms
            .as_ref()
            .map(|t| format!("consent {}", t.id))
            .unwrap_or_default()
    } else if let Some(c) = &entry.checkpoint {
        format!("checkpoint {}/{}", c.node, c.seq)
    } else if let Some(c) = &entry.objection {
        format!("objection {} (record {})", c.id, c.record_id)
    } else {
        String::new()
    }
}

/// The usage entries of one sync batch: one for what was applied, one per refused or
/// conflicting entry (`entries` are the checked entries' sequences and ids, in the order
/// of `outcomes`).
fn sync_usage(
    who: &str,
    child: crate::domain::region::RegionCode,
    outcomes: &[ReplicaOutcome],
    entries: &[(u64, String)],
    refused: &[pb::EntryRefusal],
    now: i64,
) -> Vec<UsageEntry> {
    let applied = outcomes
        .iter()
        .filter(|o| matches!(o, ReplicaOutcome::Applied))
        .count();
    let unchanged = outcomes
        .iter()
        .filter(|o| matches!(o, ReplicaOutcome::Unchanged))
        .count();
    let conflicts = outcomes.len() - applied - unchanged;
    let mut log = Vec::with_capacity(1 + refused.len() + conflicts);
    let mut e = UsageEntry::new(who, Action::Sync, "Sync", now);
    e.count = applied as u64;
    e.detail = format!(
        "from child {child}: applied {applied}, unchanged {unchanged}, conflicts {conflicts}, refused {}",
        refused.len()
    );
    log.push(e);
    let conflicts_refused = self::conflicts(entries, outcomes);
    for r in refused.iter().chain(&conflicts_refused) {
        let logged = Refusal::invalid(
            &r.field,
            &r.rule,
            format!("entry {} ({}): {}", r.seq, r.record_id, r.message),
        );
        log.push(logged.mark(UsageEntry::new(who, Action::Sync, "Sync", now)));
    }
    log
}

pub(super) fn down(message: pb::sync_down::Message) -> Result<pb::SyncDown, Status> {
    Ok(pb::SyncDown {
        message: Some(message),
    })
}

/// The ids of the records in `entries` whose held copy `check_entry` asks about: it asks
/// only about later versions (a change of status).
fn held_ids<'a>(entries: impl Iterator<Item = &'a pb::ChangeEntry>) -> Vec<uuid::Uuid> {
    entries
        .filter_map(|e| e.record.as_ref())
        .filter(|r| r.version > 1)
        .filter_map(|r| uuid::Uuid::parse_str(&r.id).ok())
        .collect()
}

/// The copies held here of `ids`. A read that fails is an error, never "not held"
/// (R-FED-1: a tombstone is never reopened).
pub(crate) fn held_copies(
    store: &crate::store::Store,
    ids: &[uuid::Uuid],
) -> Result<HashMap<uuid::Uuid, crate::domain::record::Record>, crate::store::StoreError> {
    let mut held = HashMap::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = store.record(id)? {
            held.insert(*id, r);
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::region::RegionCode;

    fn refusal(field: &str, record_id: &str) -> pb::EntryRefusal {
        Refusal::invalid(field, "R-DATA-1", "is not a valid identifier").for_entry(7, record_id)
    }

    /// The quarantine keeps the refusal as it was sent, and the notice down to the child
    /// names the entry and the reason, bounded like every notice (R-FED-1).
    #[test]
    fn a_quarantined_entry_keeps_its_refusal_and_tells_the_child_r_fed_1() {
        let child = RegionCode::parse("211382").unwrap();
        let local = RegionCode::parse("211300").unwrap();
        let kept = quarantine(
            child,
            local,
            &refusal("subject_id", "r-1"),
            vec![1, 2],
            9,
            1_000,
        );
        assert_eq!(kept.kept.child, child);
        assert_eq!(kept.kept.child_seq, 7);
        assert_eq!(kept.kept.entry, vec![1, 2]);
        assert_eq!(kept.kept.at_ms, 1_000);
        assert_eq!(kept.notice.kind, NoticeKind::EntryRefused);
        assert_eq!((kept.notice.target, kept.notice.from), (child, local));
        assert_eq!(kept.notice.id, 9);
        assert_eq!(
            kept.notice.text,
            format!(
                "node {local} refused entry 7 (r-1) and keeps it in quarantine: \
                 subject_id: is not a valid identifier (R-DATA-1)"
            )
        );

        let long = "x".repeat(5000);
        let kept = quarantine(child, local, &refusal("", &long), Vec::new(), 0, 0);
        assert_eq!(kept.notice.record_id.chars().count(), 64);
        assert_eq!(kept.notice.text.chars().count(), 4000);
        assert_eq!(
            kept.kept.label, long,
            "the quarantine keeps the label whole"
        );
    }

    /// A conflict names what this node holds: a rewritten usage log (nil id), the same
    /// record with other content, or another record under the same reference (R-SEC-1).
    #[test]
    fn a_conflict_says_what_it_contradicts_r_sec_1() {
        let id = uuid::Uuid::from_u128(1);
        let other = uuid::Uuid::from_u128(2);
        let rewritten = conflict_refusal(3, "checkpoint n/1", &uuid::Uuid::nil());
        assert!(
            rewritten.message.contains("its log was rewritten"),
            "{rewritten:?}"
        );
        let same = conflict_refusal(3, &id.to_string(), &id);
        assert!(
            same.message.contains("held here with other content"),
            "{same:?}"
        );
        let named = conflict_refusal(3, &id.to_string(), &other);
        assert!(
            named
                .message
                .ends_with(&format!("already names record {other}")),
            "{named:?}"
        );
        assert_eq!(
            (named.seq, named.field.as_str(), named.rule.as_str()),
            (3, "id", "R-SEC-1")
        );

        let entries = vec![(1, "a".to_string()), (2, "b".to_string())];
        let outcomes = [
            ReplicaOutcome::Applied,
            ReplicaOutcome::Conflict { existing: other },
        ];
        let found = conflicts(&entries, &outcomes);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].seq, found[0].record_id.as_str()), (2, "b"));
    }
}
