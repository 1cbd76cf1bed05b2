//! Notices down to the children: the operators' Notify, and the queued notices sent on
//! each child's Sync stream (R-NODE-5).

use std::collections::HashSet;

use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::FederationService;
use super::sync::down;
use crate::config::{Child, next_hop};
use crate::domain::notice::Notice;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::rpc::refusal::{Refusal, store_status};

impl FederationService {
    pub(super) async fn serve_notify(
        &self,
        request: Request<pb::Notice>,
    ) -> Result<Response<pb::NotifyResult>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Notify, Action::Notice)
            .await?;
        let mut wire = request.into_inner();
        wire.from_region = self.ctx.config.region.to_string();
        wire.created_at_ms = self.ctx.clock.now_ms();
        let (mut notice, hop) = match self.notice_to_queue(&wire) {
            Ok(checked) => checked,
            Err(refusal) => {
                return Err(self
                    .ctx
                    .gate
                    .refuse(Some(&caller), "Notify", Action::Notice, refusal)
                    .await);
            }
        };
        let store = self.ctx.store.clone();
        let who = caller.uri();
        let now = self.ctx.clock.now_ms();
        let notice = self
            .ctx
            .store
            .call(move |_| {
                notice.id = store.new_notice_id()?;
                let mut e = UsageEntry::new(who, Action::Notice, "Notify", now);
                e.subject = (!notice.subject_id.is_empty()).then(|| notice.subject_id.clone());
                e.detail = format!(
                    "queued {:?} notice {} for {} via {hop}, record {}",
                    notice.kind, notice.id, notice.target, notice.record_id
                );
                store.queue_notice(&hop, &notice, vec![e])?;
                Ok::<_, crate::store::StoreError>(notice)
            })
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::NotifyResult {
            id: notice.id,
            next_hop: hop.to_string(),
        }))
    }

    /// The checks on an operator's notice, in order: a reserved kind, the wire form, and a
    /// target below this node. Gives the notice and the child it goes to next.
    fn notice_to_queue(&self, wire: &pb::Notice) -> Result<(Notice, RegionCode), Refusal> {
        // Kinds only the federation itself writes: an operator cannot forge them.
        let reserved = if wire.kind == pb::NoticeKind::EntryRefused as i32 {
            Some((
                "R-FED-1",
                "entry-refused notices are written only by a parent's Sync, for the entries \
                 it keeps in quarantine",
            ))
        } else if wire.kind == pb::NoticeKind::Objection as i32 || wire.objection.is_some() {
            Some((
                "R-OBJ-1",
                "objections are filed with Objections.File (`credit-node objection file`), \
                 which keeps the case and withholds the record",
            ))
        } else {
            None
        };
        if let Some((rule, message)) = reserved {
            return Err(Refusal::invalid("kind", rule, message));
        }
        let notice = Notice::from_wire(wire)
            .map_err(|(field, why)| Refusal::invalid(field, "R-NODE-5", why))?;
        let Some(hop) = next_hop(&self.ctx.config.children, &notice.target).map(|c| c.region)
        else {
            let message = format!(
                "{} is not below this node ({})",
                notice.target, self.ctx.config.region
            );
            return Err(Refusal::invalid("target_region", "R-NODE-5", message));
        };
        Ok((notice, hop))
    }

    /// Sends `child` the notices queued for it, those not sent on this stream yet, as far
    /// as the stream has room. Returns whether notices are still waiting.
    pub(super) async fn send_notices(
        &self,
        child: &Child,
        tx: &mpsc::Sender<Result<pb::SyncDown, Status>>,
        sent: &mut HashSet<(RegionCode, u64)>,
    ) -> bool {
        // Notices go down only as far as the stream has room: this task must get
        // back to reading the child's batches, or the child (whose acks queue
        // behind them) and this task would wait on each other for ever.
        let store = self.ctx.store.clone();
        let region = child.region;
        let pending = self
            .ctx
            .store
            .call(move |_| store.pending_notices(&region))
            .await;
        let Ok(pending) = pending else {
            return true;
        };
        let mut notices_waiting = false;
        for n in pending {
            if sent.contains(&(n.from, n.id)) {
                continue;
            }
            match tx.try_send(down(pb::sync_down::Message::Notice(n.to_wire()))) {
                Ok(()) => {
                    sent.insert((n.from, n.id));
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    notices_waiting = true;
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        notices_waiting
    }
}
