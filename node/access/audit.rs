//! The Audit service: verify the usage log (R-SEC-1, R-SEC-3) against itself and the
//! checkpoints kept here and at the parent; a subject's usage history, here and on the
//! nodes above; the checkpoints this node keeps for the nodes below.

use tonic::{Code, Request, Response, Status};

use super::consents::subject_id;
use super::{AccessService, MAX_HISTORY};
use crate::domain::caller::{CallerId, Role};
use crate::domain::usage::{Action, Checkpoint, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::rpc::convert::consent::{checkpoint_from_wire, checkpoint_to_wire};
use crate::rpc::convert::usage::usage_record_to_wire;
use crate::rpc::input;
use crate::rpc::refusal::{Refusal, store_status};

/// The bound on one `Audit.Verify`: it reads the whole usage log, which on a big store
/// takes far longer than `[store] call_timeout_secs`. Only a call past its own bound
/// counts as stuck (`Store::call_within`), so a long verification stalls no other call.
const VERIFY_BOUND: std::time::Duration = std::time::Duration::from_secs(3600);

impl AccessService {
    fn audit_entry(&self, caller: &CallerId, rpc: &str) -> UsageEntry {
        UsageEntry::new(caller.uri(), Action::Audit, rpc, self.ctx.clock.now_ms())
    }

    /// This node's checkpoints as its parent keeps them.
    async fn parent_checkpoints(&self) -> Result<Vec<Checkpoint>, String> {
        let Some(channel) = self.parent.clone() else {
            return Ok(Vec::new());
        };
        let mut client = pb::audit_client::AuditClient::new(channel);
        let req = pb::CheckpointsRequest {
            node: self.ctx.config.region.to_string(),
        };
        let list =
            tokio::time::timeout(std::time::Duration::from_secs(10), client.checkpoints(req))
                .await
                .map_err(|_| "the parent did not answer within 10 s".to_string())?
                .map_err(|s| format!("the parent refused: {}", s.message()))?
                .into_inner();
        list.checkpoints
            .into_iter()
            .map(|c| checkpoint_from_wire(c).map_err(|v| format!("{}: {}", v.field, v.message)))
            .collect()
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AccessService {
    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyReport>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::AuditVerify, Action::Audit)
            .await?;
        let (parent, parent_error) = match self.parent_checkpoints().await {
            Ok(c) => (c, String::new()),
            Err(e) => (Vec::new(), e),
        };
        let parent_count = parent.len() as u32;
        let store = self.ctx.store.clone();
        let verifier = self.ctx.verifier.clone();
        let region = self.ctx.config.region;
        let report = self
            .ctx
            .store
            .call_within(VERIFY_BOUND, move |_| {
                store.verify_usage(&region, &parent, Some(&verifier))
            })
            .await
            .map_err(|e| store_status(&e))?;
        let mut e = self.audit_entry(&caller, "Verify");
        e.count = report.entries;
        e.detail = match report.findings.first() {
            None => format!(
                "usage log verified: {} entries, no findings",
                report.entries
            ),
            Some(f) => format!(
                "usage log verified: {} findings, first at entry {}: {}",
                report.findings.len() as u64 + report.more,
                f.seq,
                f.problem
            ),
        };
        self.log(vec![e]).await?;
        Ok(Response::new(pb::VerifyReport {
            node: region.to_string(),
            entries: report.entries,
            last_seq: report.last_seq,
            head: report.head.to_vec(),
            checkpoints: report.checkpoints as u32,
            parent_checkpoints: parent_count,
            findings: report
                .findings
                .into_iter()
                .map(|f| pb::VerifyFinding {
                    seq: f.seq,
                    problem: f.problem,
                })
                .collect(),
            more_findings: report.more,
            parent_error,
        }))
    }

    async fn history(
        &self,
        request: Request<pb::HistoryRequest>,
    ) -> Result<Response<pb::HistoryResult>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::History, Action::Audit)
            .await?;
        let req = request.into_inner();
        let mut entry = self.audit_entry(&caller, "History");
        if caller.role == Role::Node {
            entry.on_behalf_of = Some(req.on_behalf_of.clone());
            // An operator of the forwarding child or of a node below it, never of
            // another part of the tree.
            let for_operator = CallerId::parse_uri(&req.on_behalf_of).is_ok_and(|c| {
                c.role == Role::Operator
                    && (c.region == caller.region || caller.region.contains(&c.region))
            });
            if !self.is_child(&caller) || !for_operator {
                let r = Refusal::new(
                    Code::PermissionDenied,
                    "on_behalf_of",
                    "R-SEC-3",
                    "a node asks for a subject's history only as a configured child, for \
                     an operator of its own region or below",
                );
                return Err(self.refuse(entry, r).await);
            }
        } else if !req.on_behalf_of.is_empty() {
            let r = Refusal::invalid(
                "on_behalf_of",
                "R-SEC-3",
                "only a forwarding node names another party",
            );
            return Err(self.refuse(entry, r).await);
        }
        let subject = match subject_id(
            &req.subject_id,
            &self.ctx.config.legacy_codes,
            self.ctx.clock.today(),
        ) {
            Ok(s) => s,
            Err(r) => return Err(self.refuse(entry, r).await),
        };
        entry.subject = Some(subject.clone());
        let store = self.ctx.store.clone();
        let s = subject.clone();
        let local = self
            .ctx
            .store
            .call(move |_| store.usage_of_subject(&s, MAX_HISTORY))
            .await
            .map_err(|e| store_status(&e))?;
        let region = self.ctx.config.region;
        let mut result = pb::HistoryResult {
            entries: local
                .iter()
                .map(|(seq, c)| usage_record_to_wire(&region, *seq, c))
                .collect(),
            nodes: vec![region.to_string()],
            errors: Vec::new(),
        };
        entry.count = local.len() as u64;
        entry.detail = format!("history of the subject: {} entries here", local.len());
        // Read first, then log: the answer lists uses before this read.
        self.log(vec![entry]).await?;
        if req.scope == pb::Scope::Federation as i32
            && let Some(channel) = self.parent.clone()
        {
            let on_behalf_of = if caller.role == Role::Node {
                req.on_behalf_of.clone()
            } else {
                caller.uri()
            };
            let mut client = pb::audit_client::AuditClient::new(channel);
            let up = pb::HistoryRequest {
                subject_id: subject,
                scope: pb::Scope::Federation as i32,
                on_behalf_of,
            };
            match tokio::time::timeout(std::time::Duration::from_secs(30), client.history(up)).await
            {
                Ok(Ok(r)) => {
                    let r = r.into_inner();
                    result.entries.extend(r.entries);
                    result.nodes.extend(r.nodes);
                    result.errors.extend(r.errors);
                }
                Ok(Err(s)) => result
                    .errors
                    .push(format!("parent of {region} refused: {}", s.message())),
                Err(_) => result
                    .errors
                    .push(format!("parent of {region} did not answer within 30 s")),
            }
        }
        Ok(Response::new(result))
    }

    async fn checkpoints(
        &self,
        request: Request<pb::CheckpointsRequest>,
    ) -> Result<Response<pb::CheckpointList>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Checkpoints, Action::Audit)
            .await?;
        let entry = self.audit_entry(&caller, "Checkpoints");
        let node = match input::region(&request.get_ref().node, "node", "R-SEC-3") {
            Ok(n) => n,
            Err(r) => return Err(self.refuse(entry, r).await),
        };
        if caller.role == Role::Node && (caller.region != node || !self.is_child(&caller)) {
            let r = Refusal::new(
                Code::PermissionDenied,
                "node",
                "R-SEC-3",
                "a node reads only its own checkpoints, and only as a configured child",
            );
            return Err(self.refuse(entry, r).await);
        }
        let store = self.ctx.store.clone();
        let list = self
            .ctx
            .store
            .call(move |_| store.checkpoints(Some(&node)))
            .await
            .map_err(|e| store_status(&e))?;
        let mut entry = entry;
        entry.count = list.len() as u64;
        entry.detail = format!("checkpoints of {node} read: {}", list.len());
        self.log(vec![entry]).await?;
        Ok(Response::new(pb::CheckpointList {
            checkpoints: list.iter().map(checkpoint_to_wire).collect(),
        }))
    }
}
