//! The Exchange service (R-NODE-2): providers push records; operators and nodes pull a
//! subject's records. Every pull, every batch that stores or refuses a record, and every
//! refused call writes the usage log.
//!
//! Its codec, conversions and refusals are `rpc`'s, shared with every service.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Code, Request, Response, Status, Streaming};

use crate::config::Provider;
use crate::domain::caller::CallerId;
use crate::domain::record::{Content, mask_id};
use crate::domain::region::RegionCode;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::{self, Rpc};
use crate::policy::publication::Publication;
use crate::policy::release::withheld;
use crate::rpc::Context;
use crate::rpc::convert::record as convert;
use crate::rpc::gate::Gate;
use crate::store::Applied;

use crate::rpc::refusal::{Refusal, store_status};

/// Most records one `PushBatch` may carry; larger batches are refused whole.
pub const MAX_BATCH: usize = 10_000;
/// Up to this many record ids are listed in one usage entry; beyond it, counts only.
const MAX_IDS_PER_ENTRY: usize = 1_000;

#[derive(Clone)]
pub struct ExchangeService {
    ctx: Context,
    region: RegionCode,
    providers: Arc<HashMap<String, Provider>>,
    publication: Arc<Publication>,
    /// The parent and children: the only nodes that read here (R-REL-4).
    tree: crate::policy::authz::Tree,
}

/// Refuses adverse information about a person whose five years have already ended: it
/// is no longer kept (R-SEC-2). Checked at the provider's push only; copies from below
/// keep syncing until their origin purges them.
fn within_retention(content: Content, today: chrono::NaiveDate) -> Result<Content, Refusal> {
    match crate::policy::publication::retained_until_content(&content) {
        Some(until) if until < today => Err(Refusal::invalid(
            if content.ended_on.is_some() {
                "ended_on"
            } else {
                "occurred_on"
            },
            "R-SEC-2",
            format!(
                "adverse information about a person is kept five years from the end of the act; \
                 this record's five years ended on {until}"
            ),
        )),
        _ => Ok(content),
    }
}

impl ExchangeService {
    /// The service of the node `node.config` describes, over its store and validator.
    pub fn new(node: &Context) -> Self {
        let config = &node.config;
        let providers = config
            .providers
            .iter()
            .map(|p| (p.id.clone(), p.clone()))
            .collect();
        ExchangeService {
            ctx: node.clone(),
            region: config.region,
            providers: Arc::new(providers),
            publication: config.publication.clone(),
            tree: config.tree(),
        }
    }

    /// A provider pushes only if it is registered at this node, with a certificate of
    /// this node's region (R-DATA-6).
    async fn registered_provider(&self, caller: &CallerId) -> Result<Provider, Status> {
        let refusal = match self.providers.get(&caller.id) {
            Some(p) if caller.region == self.region => return Ok(p.clone()),
            Some(_) => Refusal::denied(
                "R-DATA-6",
                format!(
                    "provider {} holds a certificate for region {}, not for this node's region {}",
                    caller.id, caller.region, self.region
                ),
            ),
            None => Refusal::denied(
                "R-DATA-6",
                format!("provider {} is not registered at this node", caller.id),
            ),
        };
        Err(self
            .ctx
            .gate
            .refuse(Some(caller), "Push", Action::Push, refusal)
            .await)
    }

    /// Checks every record of a batch on its own, stores the accepted ones durably, and
    /// reports one outcome per record.
    async fn push_batch(
        &self,
        caller: &CallerId,
        provider: &Provider,
        batch: pb::PushBatch,
    ) -> Result<pb::PushResult, Status> {
        if batch.records.len() > MAX_BATCH {
            let refusal = Refusal::invalid(
                "records",
                "R-NODE-2",
                format!(
                    "a batch holds at most {MAX_BATCH} records, this one {}",
                    batch.records.len()
                ),
            );
            return Err(self
                .ctx
                .gate
                .refuse(Some(caller), "Push", Action::Push, refusal)
                .await);
        }
        let today = self.ctx.clock.today();
        let total = batch.records.len();
        let mut outcomes: Vec<Option<pb::RecordOutcome>> = vec![None; total];
        let mut accepted: Vec<(usize, Content)> = Vec::with_capacity(total);
        let mut refused: Vec<(String, Refusal)> = Vec::new();
        for (index, wire) in batch.records.into_iter().enumerate() {
            let subject = wire
                .subject
                .as_ref()
                .map(|s| s.id.clone())
                .unwrap_or_default();
            // An unknown category is bad input (the validator says so); a known one the
            // provider is not registered for is a denial.
            let checked = convert::draft_from_wire(wire)
                .map_err(Refusal::from)
                .and_then(|draft| {
                    let known = self.ctx.validator.catalog().get(&draft.category).is_some();
                    if known {
                        authz::category_allowed(&provider.categories, &draft.category)
                            .map_err(|d| Refusal::from(d).with_field("category"))?;
                    }
                    Ok(draft)
                })
                .and_then(|draft| {
                    self.ctx
                        .validator
                        .check(&draft, &provider.id, today)
                        .map_err(Refusal::from)
                })
                .and_then(|content| within_retention(content, today));
            match checked {
                Ok(content) => accepted.push((index, content)),
                Err(refusal) => {
                    outcomes[index] = Some(rejected_outcome(index, &refusal));
                    refused.push((subject, refusal));
                }
            }
        }

        let (indices, contents): (Vec<usize>, Vec<Content>) = accepted.into_iter().unzip();
        let caller_uri = caller.uri();
        let origin = self.region;
        let rejected = refused.len();
        let clock = self.ctx.clock.clone();
        let applied = self
            .ctx
            .store
            .call(move |store| {
                // Acceptance time by the node's clock: the monthly duty (R-DATA-5) judges
                // it against the same calendar as every other date rule.
                let now = clock.now_ms();
                // A closed reference's refusal names its subject from the record held (a
                // read on that rare path only).
                let subject_of = |id: &uuid::Uuid| {
                    store
                        .record(id)
                        .ok()
                        .flatten()
                        .map(|r| r.content.subject.id)
                };
                store.accept(contents, origin, now, |applied| {
                    push_usage(&caller_uri, now, applied, &subject_of, &refused)
                })
            })
            .await
            .map_err(|e| store_status(&e))?;

        let mut closed = 0;
        for (index, a) in indices.into_iter().zip(&applied) {
            let outcome = match a {
                Applied::Created { .. } => pb::Outcome::Created,
                Applied::NewVersion { .. } => pb::Outcome::NewVersion,
                Applied::Unchanged { .. } => pb::Outcome::Unchanged,
                Applied::Closed { .. } => {
                    closed += 1;
                    if let Some(r) = closed_refusal(a) {
                        outcomes[index] = Some(rejected_outcome(index, &r));
                    }
                    continue;
                }
            };
            outcomes[index] = Some(pb::RecordOutcome {
                index: index as u32,
                outcome: outcome as i32,
                record_id: a.id().to_string(),
                version: a.version(),
                refusal: None,
            });
        }
        tracing::debug!(caller = %caller, accepted = applied.len() - closed,
            rejected = rejected + closed, "push batch stored");
        Ok(pb::PushResult {
            batch_ref: batch.batch_ref,
            outcomes: outcomes.into_iter().flatten().collect(),
            accepted: (applied.len() - closed) as u32,
            rejected: (rejected + closed) as u32,
        })
    }
}

/// The refusal of a re-push of a deleted or purged record.
fn closed_refusal(a: &Applied) -> Option<Refusal> {
    let Applied::Closed { id, status, .. } = a else {
        return None;
    };
    let (rule, what) = match status {
        crate::domain::record::Status::Deleted => ("R-OBJ-3", "deleted after an objection"),
        _ => ("R-SEC-2", "purged at the end of its retention period"),
    };
    Some(Refusal::new(
        Code::FailedPrecondition,
        "provider_ref",
        rule,
        format!(
            "record {id} with this reference was {what}; the reference is closed and nothing \
             was stored (a corrected record takes a new reference)"
        ),
    ))
}

fn rejected_outcome(index: usize, r: &Refusal) -> pb::RecordOutcome {
    pb::RecordOutcome {
        index: index as u32,
        outcome: pb::Outcome::Rejected as i32,
        record_id: String::new(),
        version: 0,
        refusal: Some(r.for_record()),
    }
}

/// The usage entries of one push batch: one for the batch, one per refused record.
fn push_usage(
    caller: &str,
    now: i64,
    applied: &[Applied],
    subject_of: &dyn Fn(&uuid::Uuid) -> Option<String>,
    refused: &[(String, Refusal)],
) -> Vec<UsageEntry> {
    let (mut created, mut versions, mut unchanged) = (0, 0, 0);
    let mut closed = Vec::new();
    for a in applied {
        match a {
            Applied::Created { .. } => created += 1,
            Applied::NewVersion { .. } => versions += 1,
            Applied::Unchanged { .. } => unchanged += 1,
            Applied::Closed { .. } => closed.extend(closed_refusal(a).map(|r| (*a, r))),
        }
    }
    let accepted = applied.len() - closed.len();
    let mut entries = Vec::with_capacity(1 + refused.len() + closed.len());
    if accepted > 0 {
        let mut e = UsageEntry::new(caller, Action::Push, "Push", now);
        e.count = accepted as u64;
        if applied.len() <= MAX_IDS_PER_ENTRY {
            e.record_ids = applied
                .iter()
                .filter(|a| matches!(a, Applied::Created { .. } | Applied::NewVersion { .. }))
                .map(Applied::id)
                .collect();
        }
        e.detail = format!(
            "accepted {accepted}: created {created}, new versions {versions}, unchanged {unchanged}; rejected {}",
            refused.len() + closed.len()
        );
        entries.push(e);
    }
    for (a, r) in closed {
        let mut e = r.mark(UsageEntry::new(caller, Action::Push, "Push", now));
        e.record_ids = vec![a.id()];
        e.subject = subject_of(&a.id());
        entries.push(e);
    }
    for (subject, r) in refused {
        let mut e = r.mark(UsageEntry::new(caller, Action::Push, "Push", now));
        e.subject = loggable_subject(subject);
        entries.push(e);
    }
    entries
}

/// The subject of a refused record as the usage log keeps it: the log is permanent, so
/// caller input goes in only when it has the shape of an identifier; anything else is
/// kept as a short, marked prefix.
fn loggable_subject(raw: &str) -> Option<String> {
    let id = crate::policy::identifier::normalise_id(raw);
    if id.is_empty() {
        return None;
    }
    if crate::domain::record::has_id_shape(&id) {
        return Some(id);
    }
    let prefix: String = id.chars().filter(|c| !c.is_control()).take(32).collect();
    Some(format!("(not an identifier, {} bytes) {prefix}", raw.len()))
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for ExchangeService {
    type PushStream = ReceiverStream<Result<pb::PushResult, Status>>;
    type PullBySubjectStream = ReceiverStream<Result<pb::Record, Status>>;

    async fn push(
        &self,
        request: Request<Streaming<pb::PushBatch>>,
    ) -> Result<Response<Self::PushStream>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Push, Action::Push)
            .await?;
        let provider = self.registered_provider(&caller).await?;
        let serial = Gate::serial(&request).unwrap_or_default();
        let mut batches = request.into_inner();
        let (tx, rx) = mpsc::channel(4);
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                let next = tokio::select! {
                    next = batches.message() => next,
                    () = service.ctx.gate.stopping() => {
                        let _ = tx.send(Err(Status::unavailable(
                            "the node is shutting down; batches without a result were not stored",
                        ))).await;
                        break;
                    }
                };
                let batch = match next {
                    Ok(Some(batch)) => batch,
                    Ok(None) => break,
                    Err(status) if status.code() == Code::Cancelled => {
                        tracing::debug!(caller = %caller, "push stream cancelled by the client");
                        break;
                    }
                    Err(status) => {
                        // A batch that cannot be read (too large, malformed) is refused
                        // out loud: the client must not take a quiet end for success.
                        let refusal = Refusal::new(
                            status.code(),
                            "batch",
                            "R-NODE-2",
                            format!("the batch could not be read: {}", status.message()),
                        );
                        let status = service
                            .ctx
                            .gate
                            .refuse(Some(&caller), "Push", Action::Push, refusal)
                            .await;
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                };
                // A push stream can outlive its certificate (R-NODE-3).
                if let Err(status) = service
                    .ctx
                    .gate
                    .still_valid(&caller, &serial, "Push", Action::Push)
                    .await
                {
                    let _ = tx.send(Err(status)).await;
                    break;
                }
                let result = service.push_batch(&caller, &provider, batch).await;
                let failed = result.is_err();
                if tx.send(result).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn pull_by_subject(
        &self,
        request: Request<pb::PullRequest>,
    ) -> Result<Response<Self::PullBySubjectStream>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::PullBySubject, Action::Pull)
            .await?;
        if let Err(denial) = crate::policy::authz::tree_reader(&caller, &self.tree, &self.region) {
            return Err(self
                .ctx
                .gate
                .refuse(Some(&caller), "PullBySubject", Action::Pull, denial.into())
                .await);
        }
        let subject = crate::policy::identifier::normalise_id(&request.get_ref().subject_id);
        if !crate::domain::record::has_id_shape(&subject) {
            let refusal = Refusal::invalid(
                "subject_id",
                "R-DATA-1",
                "must be a subject identifier (letters and digits, at most 64)",
            );
            return Err(self
                .ctx
                .gate
                .refuse(Some(&caller), "PullBySubject", Action::Pull, refusal)
                .await);
        }
        let subject_for_log = subject.clone();
        // Bounded like every store call (sled can spin on a damaged page); the entry
        // goes through the group commit.
        let asked = subject.clone();
        let held = self
            .ctx
            .store
            .call(move |s| s.records_of(&asked))
            .await
            .map_err(|e| store_status(&e))?;
        // Released as held, except what no one may have: records suspended by an
        // objection, purged, deleted, repaired or past their retention (R-OBJ-3, R-SEC-2).
        let today = self.ctx.clock.today();
        let total = held.len();
        let records: Vec<_> = held
            .into_iter()
            .filter(|r| {
                withheld(
                    r,
                    None,
                    today,
                    &self.publication,
                    self.ctx.store.objection_open(&r.id),
                )
                .is_none()
            })
            .collect();
        let mut e = UsageEntry::new(
            caller.uri(),
            Action::Pull,
            "PullBySubject",
            self.ctx.clock.now_ms(),
        );
        e.subject = Some(subject);
        e.count = records.len() as u64;
        e.record_ids = records
            .iter()
            .take(MAX_IDS_PER_ENTRY)
            .map(|r| r.id)
            .collect();
        e.detail = format!(
            "returned {} records, withheld {}",
            records.len(),
            total - records.len()
        );
        // The use is on record before any data leaves the node.
        self.ctx
            .usage
            .append(vec![e])
            .await
            .map_err(|e| store_status(&e))?;
        tracing::debug!(caller = %caller, subject = %mask_id(&subject_for_log), records = records.len(), "pull");
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(async move {
            for r in &records {
                if tx.send(Ok(convert::record_to_wire(r))).await.is_err() {
                    break;
                }
            }
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
