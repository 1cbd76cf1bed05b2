//! The Objections service: file, check, reply, resolve and list objections (R-OBJ-1..3),
//! credit repair, and the retention purge on demand (R-SEC-2).
//!
//! Every step is one atomic write at the case's owner (`Store::origin_write`): the case's
//! next version, the record's next version where the step changes it, and the usage
//! entry. A refused step writes its refusal to the usage log and nothing else.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use super::origin::{purge_expired, take_case};
use crate::config::Config;
use crate::config::next_hop;
use crate::domain::caller::{CallerId, Role};
use crate::domain::case::{Answer, Case, Checked, Fault, Outcome, Reply, Resolution};
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::record::next_version;
use crate::domain::record::{Draft, Record, Status as RecordStatus, mask_id};
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::Validator;
use crate::policy::authz::Rpc;
use crate::rpc::Context;
use crate::rpc::convert::case::case_to_wire;
use crate::rpc::gate::Gate;
use crate::rpc::refusal::{Refusal, store_status};
use crate::store::{OriginChange, Store, StoreError, UsageLog};

const MAX_REASON: usize = 4000;
const MAX_EVIDENCE: usize = 1000;

/// The Objections service of one node.
#[derive(Clone)]
pub struct ObjectionService {
    config: Arc<Config>,
    store: Store,
    validator: Arc<Validator>,
    gate: Gate,
    usage: UsageLog,
}

/// A step that did not happen: refused (logged with its field and rule), or failed.
enum Fail {
    Refused(Refusal),
    Failed(Status),
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Fail {
        Fail::Refused(r)
    }
}

/// Trimmed text that must be given, at most `max` characters.
fn required(
    value: &str,
    field: &str,
    rule: &str,
    max: usize,
    what: &str,
) -> Result<String, Refusal> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Refusal::new(
            Code::InvalidArgument,
            field,
            rule,
            format!("{what} must be given"),
        ));
    }
    if v.chars().count() > max {
        return Err(Refusal::new(
            Code::InvalidArgument,
            field,
            rule,
            format!("at most {max} characters"),
        ));
    }
    if let Some(m) = crate::policy::text::hidden(v) {
        return Err(Refusal::new(Code::InvalidArgument, field, rule, m));
    }
    Ok(v.to_string())
}

fn parse_id(value: &str, field: &str, rule: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(value.trim()).map_err(|e| {
        Refusal::new(
            Code::InvalidArgument,
            field,
            rule,
            format!("not a UUID: {e}"),
        )
    })
}

/// The case `id` as the owner holds it, open.
fn owned_open(
    s: &Store,
    id: &Uuid,
    local: crate::domain::region::RegionCode,
) -> Result<Result<Case, Refusal>, StoreError> {
    let Some(case) = s.case(id)? else {
        return Ok(Err(Refusal::new(
            Code::NotFound,
            "case_id",
            "R-OBJ-1",
            format!("no objection case {id} is known at this node"),
        )));
    };
    if case.owner != local {
        return Ok(Err(Refusal::new(
            Code::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!(
                "case {id} is owned by the record's origin {}; it is handled there",
                case.owner
            ),
        )));
    }
    if case.version == 0 {
        return Ok(Err(Refusal::new(
            Code::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("case {id} has not been taken yet"),
        )));
    }
    if !case.is_open() {
        return Ok(Err(Refusal::new(
            Code::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("case {id} is already resolved"),
        )));
    }
    Ok(Ok(case))
}

/// Shorthand for a step's refusal inside `origin_write`.
macro_rules! refuse_step {
    ($r:expr) => {
        match $r {
            Ok(v) => v,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

impl ObjectionService {
    pub fn new(node: &Context) -> Self {
        ObjectionService {
            config: node.config.clone(),
            store: node.store.clone(),
            validator: node.validator.clone(),
            gate: node.gate.clone(),
            usage: node.usage.clone(),
        }
    }

    fn entry(&self, caller: &CallerId, rpc: &str) -> UsageEntry {
        UsageEntry::new(
            caller.uri(),
            Action::Objection,
            rpc,
            self.config.clock.now_ms(),
        )
    }

    fn wire(&self, case: &Case) -> pb::ObjectionCase {
        case_to_wire(
            case,
            Some((&self.config.calendar, self.config.clock.today())),
        )
    }

    /// Logs a refusal (or passes a failure on) and returns the caller's status.
    async fn fail(&self, entry: UsageEntry, fail: Fail) -> Status {
        match fail {
            Fail::Failed(status) => status,
            Fail::Refused(r) => {
                tracing::info!(caller = %entry.caller, rpc = %entry.rpc, rule = %r.rule,
                    field = %r.field, code = ?r.code, "refused");
                let logged = entry.refused(r.code, &r.field, &r.rule, &r.message);
                if let Err(e) = self.usage.append(vec![logged]).await {
                    tracing::error!(error = %e, "could not log a refusal");
                }
                r.status()
            }
        }
    }

    /// The case for the caller, or the refusal logged.
    async fn answer(
        &self,
        entry: UsageEntry,
        result: Result<Case, Fail>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        match result {
            Ok(case) => Ok(Response::new(self.wire(&case))),
            Err(f) => Err(self.fail(entry, f).await),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Fail> {
        let store = self.store.clone();
        self.store
            .call(move |_| f(store))
            .await
            .map_err(|e| Fail::Failed(store_status(&e)))
    }

    /// Runs one step at the owner: `decide` sees the store under the writer lock.
    async fn step<T: Send + 'static>(
        &self,
        decide: impl FnOnce(&Store) -> Result<Result<(OriginChange, T), Refusal>, StoreError>
        + Send
        + 'static,
    ) -> Result<T, Fail> {
        let now = self.config.clock.now_ms();
        self.blocking(move |s| s.origin_write(now, decide))
            .await?
            .map_err(Fail::Refused)
    }

    async fn file_case(&self, caller: &CallerId, req: pb::FileObjection) -> Result<Case, Fail> {
        let id = parse_id(&req.record_id, "record_id", "R-OBJ-1")?;
        let reason = required(
            &req.reason,
            "reason",
            "R-OBJ-1",
            MAX_REASON,
            "what is wrong with the record",
        )?;
        let evidence = required(
            &req.evidence,
            "evidence",
            "R-OBJ-1",
            MAX_EVIDENCE,
            "a reference to the written objection and its evidence",
        )?;
        let (record, cases) = self
            .blocking(move |s| Ok((s.record(&id)?, s.cases_of_record(&id)?)))
            .await?;
        let record = record.ok_or_else(|| {
            Refusal::new(
                Code::NotFound,
                "record_id",
                "R-OBJ-1",
                format!("record {id} is not held at this node"),
            )
        })?;
        if matches!(record.status, RecordStatus::Deleted | RecordStatus::Expired) {
            return Err(Refusal::new(
                Code::FailedPrecondition,
                "record_id",
                "R-OBJ-3",
                format!("record {id} is {:?} and no longer released", record.status),
            )
            .into());
        }
        let open = cases.into_iter().find(Case::is_open);
        if let Some(open) = open {
            return Err(Refusal::new(
                Code::FailedPrecondition,
                "record_id",
                "R-OBJ-3",
                format!("objection {} to record {id} is already open", open.id),
            )
            .into());
        }
        let local = self.config.region;
        let now = self.config.clock.now_ms();
        let case = Case {
            id: Uuid::now_v7(),
            record_id: id,
            subject_id: record.content.subject.id.clone(),
            owner: record.origin,
            filed_at: local,
            filed_by: caller.uri(),
            received_ms: now,
            reason,
            evidence,
            record_version: record.version,
            record_hash: record.content_hash,
            version: 0,
            checked: None,
            reply: None,
            resolution: None,
            path: Vec::new(),
        };
        if record.origin == local {
            let (kept, by) = (case.clone(), caller.uri());
            self.blocking(move |s| take_case(&s, kept, local, now, &by, "File"))
                .await?;
        } else {
            let Some(hop) = next_hop(&self.config.children, &record.origin).map(|c| c.region)
            else {
                return Err(Refusal::new(
                    Code::FailedPrecondition,
                    "record_id",
                    "R-OBJ-1",
                    format!(
                        "the record's origin {} is not below this node; file the objection there",
                        record.origin
                    ),
                )
                .into());
            };
            let mut e = self.entry(caller, "File");
            e.subject = Some(case.subject_id.clone());
            e.record_ids = vec![id];
            e.count = 1;
            e.detail = format!(
                "filed objection {}; record withheld here, notice sent to its origin {} via {hop}",
                case.id, record.origin
            );
            let kept = case.clone();
            self.blocking(move |s| {
                let notice = Notice {
                    id: s.new_notice_id()?,
                    kind: NoticeKind::Objection,
                    target: kept.owner,
                    record_id: kept.record_id.to_string(),
                    subject_id: kept.subject_id.clone(),
                    text: kept.reason.clone(),
                    from: local,
                    created_at_ms: now,
                    objection: Some(kept.clone()),
                };
                s.keep_case(&kept, Some((&hop, &notice)), vec![e])
            })
            .await?;
        }
        tracing::info!(case = %case.id, record = %id, subject = %mask_id(&case.subject_id),
            owner = %case.owner, "objection filed");
        let stored = self.blocking(move |s| s.case(&case.id)).await?;
        stored.ok_or_else(|| Fail::Failed(Status::internal("the case was not kept")))
    }

    async fn check_case(&self, caller: &CallerId, req: pb::CheckObjection) -> Result<Case, Fail> {
        let id = parse_id(&req.case_id, "case_id", "R-OBJ-2")?;
        let fault = Fault::parse(req.fault.trim()).ok_or_else(|| {
            Refusal::new(
                Code::InvalidArgument,
                "fault",
                "R-OBJ-2",
                "must be platform or provider",
            )
        })?;
        let (local, by, now) = (self.config.region, caller.uri(), self.config.clock.now_ms());
        let note = req.note.trim().to_string();
        if let Some(m) = crate::policy::text::hidden(&note) {
            return Err(Fail::Refused(Refusal::new(
                Code::InvalidArgument,
                "note",
                "R-OBJ-2",
                m,
            )));
        }
        self.step(move |s| {
            let mut case = refuse_step!(owned_open(s, &id, local)?);
            if let Some(c) = &case.checked {
                return Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    "case_id",
                    "R-OBJ-2",
                    format!("case {id} was already checked ({} fault)", c.fault.as_str()),
                )));
            }
            case.version += 1;
            case.path = vec![local];
            case.checked = Some(Checked {
                at_ms: now,
                by: by.clone(),
                fault,
                note,
            });
            let mut e = UsageEntry::new(by, Action::Objection, "Check", now);
            e.subject = Some(case.subject_id.clone());
            e.record_ids = vec![case.record_id];
            e.detail = match fault {
                Fault::Platform => format!("checked objection {id}: the platform's error"),
                Fault::Provider => {
                    format!("checked objection {id}: the provider's; provider notified")
                }
            };
            let out = case.clone();
            Ok(Ok((
                OriginChange {
                    records: vec![],
                    cases: vec![case],
                    usage: vec![e],
                },
                out,
            )))
        })
        .await
    }

    async fn reply_case(&self, caller: &CallerId, req: pb::ReplyObjection) -> Result<Case, Fail> {
        if caller.role != Role::Provider {
            return Err(Refusal::new(
                Code::PermissionDenied,
                "caller",
                "R-OBJ-2",
                "the provider of the record replies to an objection",
            )
            .into());
        }
        let id = parse_id(&req.case_id, "case_id", "R-OBJ-2")?;
        let answer = Answer::parse(req.answer.trim()).ok_or_else(|| {
            Refusal::new(
                Code::InvalidArgument,
                "answer",
                "R-OBJ-2",
                "must be confirmed, corrected or unverifiable",
            )
        })?;
        let text = required(
            &req.text,
            "text",
            "R-OBJ-2",
            MAX_REASON,
            "the provider's written reply",
        )?;
        let (local, by, provider, now) = (
            self.config.region,
            caller.uri(),
            caller.id.clone(),
            self.config.clock.now_ms(),
        );
        self.step(move |s| {
            let mut case = refuse_step!(owned_open(s, &id, local)?);
            let record = s.record(&case.record_id)?;
            if record.as_ref().map(|r| r.content.provider_id.as_str()) != Some(provider.as_str()) {
                return Ok(Err(Refusal::new(
                    Code::PermissionDenied,
                    "case_id",
                    "R-OBJ-2",
                    format!("case {id} is about a record another provider supplied"),
                )));
            }
            if case.checked.as_ref().map(|c| c.fault) != Some(Fault::Provider) {
                return Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    "case_id",
                    "R-OBJ-2",
                    format!("the platform has not referred case {id} to the provider"),
                )));
            }
            if case.reply.is_some() {
                return Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    "case_id",
                    "R-OBJ-2",
                    format!("case {id} was already answered"),
                )));
            }
            if answer == Answer::Corrected
                && record
                    .as_ref()
                    .is_some_and(|r| r.content_hash == case.record_hash)
            {
                return Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    "answer",
                    "R-OBJ-2",
                    "push the corrected record (same reference) before answering corrected",
                )));
            }
            case.version += 1;
            case.path = vec![local];
            case.reply = Some(Reply {
                at_ms: now,
                by: by.clone(),
                answer,
                text,
            });
            let mut e = UsageEntry::new(by, Action::Objection, "Reply", now);
            e.subject = Some(case.subject_id.clone());
            e.record_ids = vec![case.record_id];
            e.detail = format!("provider answered objection {id}: {}", answer.as_str());
            let out = case.clone();
            Ok(Ok((
                OriginChange {
                    records: vec![],
                    cases: vec![case],
                    usage: vec![e],
                },
                out,
            )))
        })
        .await
    }

    async fn resolve_case(
        &self,
        caller: &CallerId,
        req: pb::ResolveObjection,
    ) -> Result<Case, Fail> {
        let id = parse_id(&req.case_id, "case_id", "R-OBJ-2")?;
        let outcome = Outcome::parse(req.outcome.trim()).ok_or_else(|| {
            Refusal::new(
                Code::InvalidArgument,
                "outcome",
                "R-OBJ-3",
                "must be corrected, deleted or upheld",
            )
        })?;
        let fault = Fault::parse(req.fault.trim()).ok_or_else(|| {
            Refusal::new(
                Code::InvalidArgument,
                "fault",
                "R-OBJ-2",
                "must be platform or provider",
            )
        })?;
        let reason = required(
            &req.reason,
            "reason",
            "R-OBJ-3",
            MAX_REASON,
            "the written answer to the applicant",
        )?;
        if !req.set_fields.is_empty() && outcome != Outcome::Corrected {
            return Err(Refusal::new(
                Code::InvalidArgument,
                "set_fields",
                "R-OBJ-3",
                "only a correction sets fields",
            )
            .into());
        }
        let (local, by, now) = (self.config.region, caller.uri(), self.config.clock.now_ms());
        let today = self.config.clock.today();
        let validator = self.validator.clone();
        let calendar = self.config.calendar.clone();
        let set = req.set_fields;
        self.step(move |s| {
            let mut case = refuse_step!(owned_open(s, &id, local)?);
            if fault == Fault::Provider {
                if case.checked.as_ref().map(|c| c.fault) != Some(Fault::Provider) {
                    return Ok(Err(Refusal::new(
                        Code::FailedPrecondition,
                        "fault",
                        "R-OBJ-2",
                        format!(
                            "the provider was not notified of case {id}: check it with \
                             fault provider first"
                        ),
                    )));
                }
                refuse_step!(follows_the_reply(&case, outcome, &calendar, today));
            }
            let Some(cur) = s.record(&case.record_id)? else {
                return Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    "case_id",
                    "R-OBJ-3",
                    format!("record {} is not held here", case.record_id),
                )));
            };
            if outcome == Outcome::Corrected
                && matches!(cur.status, RecordStatus::Deleted | RecordStatus::Expired)
            {
                return Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    "outcome",
                    "R-OBJ-3",
                    format!(
                        "record {} is {:?} and keeps no content to correct",
                        case.record_id, cur.status
                    ),
                )));
            }
            let others_open = s
                .cases_of_record(&case.record_id)?
                .iter()
                .any(|c| c.id != id && c.is_open());
            let content = match (outcome, set.is_empty()) {
                (Outcome::Corrected, false) => {
                    let draft = corrected_draft(&cur, &set);
                    let content = refuse_step!(
                        validator
                            .check(&draft, &cur.content.provider_id, today)
                            .map_err(Refusal::from)
                    );
                    if content.hash() == case.record_hash {
                        return Ok(Err(Refusal::new(
                            Code::FailedPrecondition,
                            "set_fields",
                            "R-OBJ-3",
                            "the correction leaves the disputed content as it was",
                        )));
                    }
                    content
                }
                (Outcome::Corrected, true) if cur.content_hash == case.record_hash => {
                    return Ok(Err(Refusal::new(
                        Code::FailedPrecondition,
                        "outcome",
                        "R-OBJ-3",
                        "nothing was corrected: the provider pushes the corrected record (same \
                         reference), or the correction is given with set_fields",
                    )));
                }
                _ => cur.content.clone(),
            };
            let status = match cur.status {
                RecordStatus::Active | RecordStatus::Suspended => match outcome {
                    Outcome::Deleted => RecordStatus::Deleted,
                    _ if others_open => RecordStatus::Suspended,
                    _ => RecordStatus::Active,
                },
                // Purged, deleted or repaired meanwhile: the outcome does not undo that.
                other => other,
            };
            let status_reason = match status {
                RecordStatus::Deleted if cur.status != RecordStatus::Deleted => {
                    format!("R-OBJ-3: {reason} (objection {id})")
                }
                RecordStatus::Active => String::new(),
                _ => cur.status_reason.clone(),
            };
            let mut content = content;
            if status == RecordStatus::Deleted {
                // The tombstone keeps who, what and why (R-OBJ-3), not the fields.
                content.fields.clear();
            }
            let mut change = OriginChange::default();
            let mut record_version = cur.version;
            if status != cur.status || content != cur.content {
                let mut next = next_version(&cur, status, status_reason, now);
                next.content_hash = content.hash();
                next.content = content;
                record_version = next.version;
                change.records.push(next);
            }
            case.version += 1;
            case.path = vec![local];
            case.resolution = Some(Resolution {
                at_ms: now,
                by: by.clone(),
                outcome,
                fault,
                reason,
                record_version,
            });
            let mut e = UsageEntry::new(by, Action::Objection, "Resolve", now);
            e.subject = Some(case.subject_id.clone());
            e.record_ids = vec![case.record_id];
            e.count = 1;
            e.detail = format!(
                "resolved objection {id}: {} ({} fault); record at version {record_version}, {:?}",
                outcome.as_str(),
                fault.as_str(),
                status
            );
            change.usage.push(e);
            let out = case.clone();
            change.cases.push(case);
            Ok(Ok((change, out)))
        })
        .await
    }

    async fn repair_record(
        &self,
        caller: &CallerId,
        req: pb::RepairRequest,
    ) -> Result<Record, Fail> {
        let id = parse_id(&req.record_id, "record_id", "R-REL-1")?;
        let reason = required(
            &req.reason,
            "reason",
            "R-REL-1",
            MAX_REASON,
            "the repair decision",
        )?;
        let (local, by, now) = (self.config.region, caller.uri(), self.config.clock.now_ms());
        let today = self.config.clock.today();
        let publication = self.config.publication.clone();
        self.step(move |s| {
            let refuse = |field: &str, rule: &str, message: String| {
                Ok(Err(Refusal::new(
                    Code::FailedPrecondition,
                    field,
                    rule,
                    message,
                )))
            };
            let Some(cur) = s.record(&id)? else {
                let message = format!("record {id} is not held here");
                return Ok(Err(Refusal::new(
                    Code::NotFound,
                    "record_id",
                    "R-REL-1",
                    message,
                )));
            };
            if cur.origin != local {
                let message = format!(
                    "record {id} originated at {}; only its origin changes it, so repair it there",
                    cur.origin
                );
                return refuse("record_id", "R-FED-1", message);
            }
            if !cur.content.adverse {
                let message = "credit repair withdraws adverse information only".to_string();
                return refuse("record_id", "R-REL-1", message);
            }
            let open = s.objection_open(&id);
            if open || cur.status != RecordStatus::Active {
                let message = format!(
                    "record {id} is {:?}{}",
                    cur.status,
                    if open { " with an objection open" } else { "" }
                );
                return refuse("record_id", "R-OBJ-3", message);
            }
            if let Some(p) = publication.period(&cur, today)
                && today < p.repairable_from
            {
                return refuse(
                    "record_id",
                    "R-REL-1",
                    format!(
                        "a {} penalty is published at least until {}; it can be repaired \
                         from {} ({})",
                        p.class,
                        p.repairable_from.pred_opt().unwrap_or(p.repairable_from),
                        p.repairable_from,
                        p.version
                    ),
                );
            }
            let reason = format!("信用修复: {reason}");
            let next = next_version(&cur, RecordStatus::Repaired, reason, now);
            let mut e = UsageEntry::new(by, Action::Repair, "Repair", now);
            e.subject = Some(cur.content.subject.id.clone());
            e.record_ids = vec![id];
            e.count = 1;
            e.detail = format!(
                "credit repair: withdrawn from publication and sharing at version {}",
                next.version
            );
            let out = next.clone();
            let change = OriginChange {
                records: vec![next],
                cases: vec![],
                usage: vec![e],
            };
            Ok(Ok((change, out)))
        })
        .await
    }
}

/// On the provider's fault, the outcome follows its reply (R-OBJ-2, R-OBJ-3): confirmed is
/// upheld, corrected is corrected, unverifiable is deleted. Without a reply the case
/// waits for it until it is due; after that the record cannot be verified and is only
/// deleted.
fn follows_the_reply(
    case: &Case,
    outcome: Outcome,
    calendar: &crate::domain::calendar::Calendar,
    today: chrono::NaiveDate,
) -> Result<(), Refusal> {
    let refuse = |message: String| {
        Err(Refusal::new(
            Code::FailedPrecondition,
            "outcome",
            "R-OBJ-3",
            message,
        ))
    };
    match &case.reply {
        Some(reply) => {
            let expected = match reply.answer {
                Answer::Confirmed => Outcome::Upheld,
                Answer::Corrected => Outcome::Corrected,
                Answer::Unverifiable => Outcome::Deleted,
            };
            if outcome == expected {
                Ok(())
            } else {
                refuse(format!(
                    "the provider answered {}: the outcome is {}",
                    reply.answer.as_str(),
                    expected.as_str()
                ))
            }
        }
        None => {
            let due = case
                .deadlines(calendar)
                .into_iter()
                .find(|d| d.step == "provider_reply")
                .map(|d| d.due);
            match due {
                Some(due) if today > due && outcome == Outcome::Deleted => Ok(()),
                Some(due) if today > due => refuse(format!(
                    "the provider did not reply by {due}: the record cannot be verified and is \
                     deleted"
                )),
                Some(due) => refuse(format!("the provider's reply is due by {due}; wait for it")),
                // Not referred to the provider: the fault check refuses that.
                None => Ok(()),
            }
        }
    }
}

/// A draft of `cur`'s content with `set` applied (an empty value removes the field).
fn corrected_draft(cur: &Record, set: &std::collections::HashMap<String, String>) -> Draft {
    let mut draft = cur.content.to_draft();
    for (k, v) in set {
        if v.trim().is_empty() {
            draft.fields.remove(k);
        } else {
            draft.fields.insert(k.clone(), v.clone());
        }
    }
    draft
}

#[tonic::async_trait]
impl pb::objections_server::Objections for ObjectionService {
    async fn file(
        &self,
        request: Request<pb::FileObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::Objections, Action::Objection)
            .await?;
        let mut entry = self.entry(&caller, "File");
        entry.record_ids = Uuid::parse_str(request.get_ref().record_id.trim())
            .into_iter()
            .collect();
        let result = self.file_case(&caller, request.into_inner()).await;
        self.answer(entry, result).await
    }

    async fn check(
        &self,
        request: Request<pb::CheckObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::Objections, Action::Objection)
            .await?;
        let entry = self.entry(&caller, "Check");
        let result = self.check_case(&caller, request.into_inner()).await;
        self.answer(entry, result).await
    }

    async fn reply(
        &self,
        request: Request<pb::ReplyObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::ObjectionReply, Action::Objection)
            .await?;
        let entry = self.entry(&caller, "Reply");
        let result = self.reply_case(&caller, request.into_inner()).await;
        self.answer(entry, result).await
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::Objections, Action::Objection)
            .await?;
        let entry = self.entry(&caller, "Resolve");
        match self.resolve_case(&caller, request.into_inner()).await {
            Ok(case) => {
                tracing::info!(case = %case.id,
                    outcome = ?case.resolution.as_ref().map(|r| r.outcome), "objection resolved");
                Ok(Response::new(self.wire(&case)))
            }
            Err(f) => Err(self.fail(entry, f).await),
        }
    }

    async fn list(
        &self,
        request: Request<pb::ListObjections>,
    ) -> Result<Response<pb::ObjectionList>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::ObjectionReply, Action::Objection)
            .await?;
        let req = request.into_inner();
        let (local, today) = (self.config.region, self.config.clock.today());
        let calendar = self.config.calendar.clone();
        let provider = (caller.role == Role::Provider).then(|| caller.id.clone());
        let listed = self.blocking(move |s| {
            let mut out = Vec::new();
            for case in s.cases()? {
                if req.open && !case.is_open() {
                    continue;
                }
                if req.overdue && !case.overdue(&calendar, today) {
                    continue;
                }
                // A provider sees the cases about its own records, once referred to it.
                if let Some(p) = &provider {
                    let own = case.owner == local
                        && s.record(&case.record_id)?
                            .is_some_and(|r| &r.content.provider_id == p);
                    if !own || case.checked.as_ref().map(|c| c.fault) != Some(Fault::Provider) {
                        continue;
                    }
                }
                out.push(case);
            }
            Ok(out)
        });
        let cases = match listed.await {
            Ok(c) => c,
            Err(f) => return Err(self.fail(self.entry(&caller, "List"), f).await),
        };
        let mut e = self.entry(&caller, "List");
        e.count = cases.len() as u64;
        e.detail = format!("listed {} objection cases", cases.len());
        self.usage
            .append(vec![e])
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ObjectionList {
            cases: cases.iter().map(|c| self.wire(c)).collect(),
            calendar_years: self.config.calendar.years().map(|(y, _)| y).collect(),
        }))
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResult>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::Objections, Action::Repair)
            .await?;
        let mut entry = UsageEntry::new(
            caller.uri(),
            Action::Repair,
            "Repair",
            self.config.clock.now_ms(),
        );
        entry.record_ids = Uuid::parse_str(request.get_ref().record_id.trim())
            .into_iter()
            .collect();
        match self.repair_record(&caller, request.into_inner()).await {
            Ok(r) => {
                tracing::info!(record = %r.id, version = r.version,
                    "record withdrawn by credit repair");
                Ok(Response::new(pb::RepairResult {
                    record_id: r.id.to_string(),
                    version: r.version,
                }))
            }
            Err(f) => Err(self.fail(entry, f).await),
        }
    }

    async fn purge(
        &self,
        request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeResult>, Status> {
        let caller = self
            .gate
            .admit(&request, Rpc::Objections, Action::Purge)
            .await?;
        let dry_run = request.get_ref().dry_run;
        let (local, today, now) = (
            self.config.region,
            self.config.clock.today(),
            self.config.clock.now_ms(),
        );
        let ids = match self
            .blocking(move |s| {
                let ids = purge_expired(&s, local, today, now, dry_run)?;
                if !dry_run {
                    s.redact_queued()?;
                }
                Ok(ids)
            })
            .await
        {
            Ok(ids) => ids,
            Err(f) => return Err(self.fail(self.entry(&caller, "Purge"), f).await),
        };
        let mut e = UsageEntry::new(caller.uri(), Action::Purge, "Purge", now);
        e.count = ids.len() as u64;
        e.detail = if dry_run {
            format!(
                "{} records past their retention period would be purged",
                ids.len()
            )
        } else {
            format!("purge run: {} records purged", ids.len())
        };
        self.usage
            .append(vec![e])
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::PurgeResult {
            record_ids: ids.iter().map(ToString::to_string).collect(),
        }))
    }
}
