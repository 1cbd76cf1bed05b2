//! The retention purge on demand (R-SEC-2): the `Purge` RPC runs what the node also runs
//! on its timer (`origin::purge_expired`, then `Store::redact_queued`), or with
//! `dry_run` only names the records it would purge.

use tonic::{Request, Response, Status};

use super::origin::purge_expired;
use super::service::ObjectionService;
use crate::domain::caller::CallerId;
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::rpc::refusal::store_status;

impl ObjectionService {
    /// The `Purge` RPC, admitted: the ids purged (or that would be), logged.
    pub(super) async fn purge_rpc(
        &self,
        caller: CallerId,
        request: Request<pb::PurgeRequest>,
    ) -> Result<Response<pb::PurgeResult>, Status> {
        let dry_run = request.get_ref().dry_run;
        let (local, today, now) = (
            self.ctx.config.region,
            self.ctx.clock.today(),
            self.ctx.clock.now_ms(),
        );
        let ids = self
            .blocking(move |s| {
                let ids = purge_expired(&s, local, today, now, dry_run)?;
                if !dry_run {
                    s.redact_queued()?;
                }
                Ok(ids)
            })
            .await?;
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
        self.ctx
            .usage
            .append(vec![e])
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(pb::PurgeResult {
            record_ids: ids.iter().map(ToString::to_string).collect(),
        }))
    }
}
