//! The Objections service: file, check, reply, resolve and list objections (R-OBJ-1..3);
//! credit repair is in `repair`, the retention purge on demand in `purge`.
//!
//! Thin on purpose: each RPC parses its request, reads what the step needs, runs the
//! step (a pure transition in `steps`) and writes its output in one atomic write at the
//! case's owner (`Store::origin_write`): the case's next version, the record's next
//! version where the step changes it, and the usage entry. A refused step writes its
//! refusal to the usage log and nothing else.

use tonic::{Code, Request, Response, Status};
use uuid::Uuid;

use super::origin::take_case;
use super::steps::{self, Actor, Filing, Kind, Next, Refused, Resolve};
use crate::config::next_hop;
use crate::domain::caller::{CallerId, Role};
use crate::domain::case::{Answer, Case, Fault, Outcome};
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::record::mask_id;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::rpc::Context;
use crate::rpc::convert::case::case_to_wire;
use crate::rpc::input;
use crate::rpc::refusal::{Refusal, store_status};
use crate::store::{OriginChange, Store, StoreError};

pub(super) const MAX_REASON: usize = 4000;
const MAX_EVIDENCE: usize = 1000;

/// The Objections service of one node.
#[derive(Clone)]
pub struct ObjectionService {
    pub(super) ctx: Context,
}

/// A step that did not happen: refused (logged with its field and rule, `fail`), or
/// failed (the store's status, passed on as it is).
pub(super) enum Fail {
    Refused(Refusal),
    Failed(Status),
}

impl From<Refusal> for Fail {
    fn from(r: Refusal) -> Fail {
        Fail::Refused(r)
    }
}

impl From<Refused> for Fail {
    fn from(r: Refused) -> Fail {
        Fail::Refused(r.into())
    }
}

impl From<Status> for Fail {
    fn from(status: Status) -> Fail {
        Fail::Failed(status)
    }
}

/// The one conversion of a step's refusal (a plain value: steps see no wire) into the
/// caller's: its kind becomes the status code, field, rule and message are kept.
impl From<Refused> for Refusal {
    fn from(r: Refused) -> Refusal {
        let code = match r.kind {
            Kind::InvalidArgument => Code::InvalidArgument,
            Kind::NotFound => Code::NotFound,
            Kind::FailedPrecondition => Code::FailedPrecondition,
            Kind::PermissionDenied => Code::PermissionDenied,
        };
        Refusal::new(code, &r.field, r.rule, r.message)
    }
}

/// A case step's output as the owner writes it, and the case the caller is answered with.
fn written(next: Next) -> (OriginChange, Case) {
    let out = next.case.clone();
    let change = OriginChange {
        records: next.record.into_iter().collect(),
        cases: vec![next.case],
        usage: vec![next.usage],
    };
    (change, out)
}

/// Shorthand for a step's refusal inside `origin_write`.
macro_rules! refuse_step {
    ($r:expr) => {
        match $r {
            Ok(v) => v,
            Err(refused) => return Ok(Err(refused)),
        }
    };
}

impl ObjectionService {
    pub fn new(node: &Context) -> Self {
        ObjectionService { ctx: node.clone() }
    }

    /// Admits the caller of a case step and opens its usage entry, in that order: a
    /// refused caller leaves no entry here (the gate logs it).
    async fn admit_step<T>(
        &self,
        request: &Request<T>,
        rpc: Rpc,
        name: &str,
    ) -> Result<(CallerId, UsageEntry), Status> {
        let caller = self.ctx.gate.admit(request, rpc, Action::Objection).await?;
        let entry = self.entry(&caller, name);
        Ok((caller, entry))
    }

    pub(super) fn entry(&self, caller: &CallerId, rpc: &str) -> UsageEntry {
        UsageEntry::new(
            caller.uri(),
            Action::Objection,
            rpc,
            self.ctx.clock.now_ms(),
        )
    }

    fn wire(&self, case: &Case) -> pb::ObjectionCase {
        case_to_wire(
            case,
            Some((&self.ctx.config.calendar, self.ctx.clock.today())),
        )
    }

    /// Logs a refusal (`rpc::refusal::refuse`), or passes a failure on, and returns the
    /// caller's status.
    pub(super) async fn fail(&self, entry: UsageEntry, fail: Fail) -> Status {
        match fail {
            Fail::Failed(status) => status,
            Fail::Refused(r) => crate::rpc::refusal::refuse(&self.ctx.usage, entry, r).await,
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

    /// Runs `f` on the store in one bounded call; a failure is the store's status.
    pub(super) async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let store = self.ctx.store.clone();
        self.ctx
            .store
            .call(move |_| f(store))
            .await
            .map_err(|e| store_status(&e))
    }

    /// Runs one step at the owner: `decide` sees the store under the writer lock and
    /// returns what the step writes, or its refusal.
    pub(super) async fn step<T: Send + 'static>(
        &self,
        decide: impl FnOnce(&Store) -> Result<Result<(OriginChange, T), Refused>, StoreError>
        + Send
        + 'static,
    ) -> Result<T, Fail> {
        let now = self.ctx.clock.now_ms();
        Ok(self
            .blocking(move |s| s.origin_write(now, decide))
            .await??)
    }

    /// The caller, this node and its clock, as a step sees them.
    pub(super) fn actor(&self, caller: &CallerId) -> Actor {
        Actor {
            local: self.ctx.config.region,
            by: caller.uri(),
            now_ms: self.ctx.clock.now_ms(),
            today: self.ctx.clock.today(),
        }
    }

    async fn file_case(&self, caller: &CallerId, req: pb::FileObjection) -> Result<Case, Fail> {
        let id = input::uuid(&req.record_id, "record_id", "R-OBJ-1")?;
        let reason = input::required(
            &req.reason,
            "reason",
            "R-OBJ-1",
            MAX_REASON,
            "what is wrong with the record",
        )?;
        let evidence = input::required(
            &req.evidence,
            "evidence",
            "R-OBJ-1",
            MAX_EVIDENCE,
            "a reference to the written objection and its evidence",
        )?;
        let (record, cases) = self
            .blocking(move |s| Ok((s.record(&id)?, s.cases_of_record(&id)?)))
            .await?;
        let at = self.actor(caller);
        let filing = Filing {
            record_id: id,
            reason,
            evidence,
        };
        let case = steps::file(Uuid::now_v7(), filing, record.as_ref(), cases, &at)?;
        let (local, now) = (at.local, at.now_ms);
        if case.owner == local {
            let (kept, by) = (case.clone(), at.by);
            self.blocking(move |s| take_case(&s, kept, local, now, &by, "File"))
                .await?;
        } else {
            let Some(hop) = next_hop(&self.ctx.config.children, &case.owner).map(|c| c.region)
            else {
                return Err(Refusal::new(
                    Code::FailedPrecondition,
                    "record_id",
                    "R-OBJ-1",
                    format!(
                        "the record's origin {} is not below this node; file the objection there",
                        case.owner
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
                case.id, case.owner
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
        Ok(stored.ok_or_else(|| Status::internal("the case was not kept"))?)
    }

    async fn check_case(&self, caller: &CallerId, req: pb::CheckObjection) -> Result<Case, Fail> {
        let id = input::uuid(&req.case_id, "case_id", "R-OBJ-2")?;
        let fault = Fault::parse(req.fault.trim())
            .ok_or_else(|| Refusal::invalid("fault", "R-OBJ-2", "must be platform or provider"))?;
        let at = self.actor(caller);
        let note = req.note.trim().to_string();
        if let Some(m) = crate::policy::text::hidden(&note) {
            return Err(Fail::Refused(Refusal::invalid("note", "R-OBJ-2", m)));
        }
        self.step(move |s| {
            let case = refuse_step!(steps::owned_open(s.case(&id)?, &id, at.local));
            let next = steps::check(case, fault, note, &at);
            Ok(next.map(written))
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
        let id = input::uuid(&req.case_id, "case_id", "R-OBJ-2")?;
        let answer = Answer::parse(req.answer.trim()).ok_or_else(|| {
            Refusal::invalid(
                "answer",
                "R-OBJ-2",
                "must be confirmed, corrected or unverifiable",
            )
        })?;
        let text = input::required(
            &req.text,
            "text",
            "R-OBJ-2",
            MAX_REASON,
            "the provider's written reply",
        )?;
        let (at, provider) = (self.actor(caller), caller.id.clone());
        self.step(move |s| {
            let case = refuse_step!(steps::owned_open(s.case(&id)?, &id, at.local));
            let record = s.record(&case.record_id)?;
            let next = steps::reply(case, record.as_ref(), &provider, answer, text, &at);
            Ok(next.map(written))
        })
        .await
    }

    async fn resolve_case(
        &self,
        caller: &CallerId,
        req: pb::ResolveObjection,
    ) -> Result<Case, Fail> {
        let id = input::uuid(&req.case_id, "case_id", "R-OBJ-2")?;
        let outcome = Outcome::parse(req.outcome.trim()).ok_or_else(|| {
            Refusal::invalid("outcome", "R-OBJ-3", "must be corrected, deleted or upheld")
        })?;
        let fault = Fault::parse(req.fault.trim())
            .ok_or_else(|| Refusal::invalid("fault", "R-OBJ-2", "must be platform or provider"))?;
        let reason = input::required(
            &req.reason,
            "reason",
            "R-OBJ-3",
            MAX_REASON,
            "the written answer to the applicant",
        )?;
        if !req.set_fields.is_empty() && outcome != Outcome::Corrected {
            return Err(
                Refusal::invalid("set_fields", "R-OBJ-3", "only a correction sets fields").into(),
            );
        }
        let at = self.actor(caller);
        let validator = self.ctx.validator.clone();
        let calendar = self.ctx.config.calendar.clone();
        let resolve = Resolve {
            outcome,
            fault,
            reason,
            set_fields: req.set_fields,
        };
        self.step(move |s| {
            let case = refuse_step!(steps::owned_open(s.case(&id)?, &id, at.local));
            let record = s.record(&case.record_id)?;
            let cases = s.cases_of_record(&case.record_id)?;
            let next = steps::resolve(case, record, &cases, resolve, &calendar, &validator, &at);
            Ok(next.map(written))
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::objections_server::Objections for ObjectionService {
    async fn file(
        &self,
        request: Request<pb::FileObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let (caller, mut entry) = self.admit_step(&request, Rpc::Objections, "File").await?;
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
        let (caller, entry) = self.admit_step(&request, Rpc::Objections, "Check").await?;
        let result = self.check_case(&caller, request.into_inner()).await;
        self.answer(entry, result).await
    }

    async fn reply(
        &self,
        request: Request<pb::ReplyObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let (caller, entry) = self
            .admit_step(&request, Rpc::ObjectionReply, "Reply")
            .await?;
        let result = self.reply_case(&caller, request.into_inner()).await;
        self.answer(entry, result).await
    }

    async fn resolve(
        &self,
        request: Request<pb::ResolveObjection>,
    ) -> Result<Response<pb::ObjectionCase>, Status> {
        let (caller, entry) = self
            .admit_step(&request, Rpc::Objections, "Resolve")
            .await?;
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
            .ctx
            .gate
            .admit(&request, Rpc::ObjectionReply, Action::Objection)
            .await?;
        let req = request.into_inner();
        let (local, today) = (self.ctx.config.region, self.ctx.clock.today());
        let calendar = self.ctx.config.calendar.clone();
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
        let cases = listed.await?;
        let mut e = self.entry(&caller, "List");
        e.count = cases.len() as u64;
        e.detail = format!("listed {} objection cases", cases.len());
        self.ctx
            .usage
            .append(vec![e])
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::ObjectionList {
            cases: cases.iter().map(|c| self.wire(c)).collect(),
            calendar_years: self.ctx.config.calendar.years().map(|(y, _)| y).collect(),
        }))
    }

    async fn repair(
        &self,
        request: Request<pb::RepairRequest>,
    ) -> Result<Response<pb::RepairResult>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Objections, Action::Repair)
            .await?;
        self.repair_rpc(caller, request).await
    }

    async fn purge(
        &self,
        request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeResult>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Objections, Action::Purge)
            .await?;
        self.purge_rpc(caller, request).await
    }
}
