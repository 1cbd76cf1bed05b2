//! The operators' Status: this node, its uplink, its children and its quarantine.

use tonic::{Request, Response, Status};

use super::FederationService;
use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::usage::{Action, UsageEntry};
use crate::pb;
use crate::policy::authz::Rpc;
use crate::rpc::convert::quarantine::quarantined_to_wire;
use crate::rpc::refusal::store_status;

/// How many quarantined entries and refusal notices `status` lists (the latest).
const SHOWN: usize = 100;

impl FederationService {
    pub(super) async fn serve_status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        let caller = self
            .ctx
            .gate
            .admit(&request, Rpc::Status, Action::Status)
            .await?;
        let service = self.clone();
        let status = self
            .ctx
            .store
            .call(move |_| service.node_status())
            .await
            .map_err(|e| store_status(&e))?;
        let store = self.ctx.store.clone();
        let mut e = UsageEntry::new(
            caller.uri(),
            Action::Status,
            "Status",
            self.ctx.clock.now_ms(),
        );
        e.detail = "read the node's status".into();
        self.ctx
            .store
            .call(move |_| store.append_usage(vec![e]))
            .await
            .map_err(|e| store_status(&e))?;
        Ok(Response::new(status))
    }

    /// Reads the store (a full count of the records): run it through `Store::call`.
    fn node_status(&self) -> Result<pb::NodeStatus, crate::store::StoreError> {
        let stats = self.ctx.store.stats()?;
        let parent = match (&self.ctx.config.parent, &self.uplink) {
            (Some(p), Some(u)) => {
                let s = u.state();
                let lag_entries = stats.last_change.saturating_sub(s.acked);
                let lag_ms = match self.ctx.store.changes_since(s.acked, 1)?.first() {
                    Some((_, r)) => (self.ctx.clock.now_ms() - r.made_at_ms()).max(0),
                    None => 0,
                };
                Some(pb::UplinkStatus {
                    region: p.region.to_string(),
                    endpoint: p.endpoint.clone(),
                    state: s.state,
                    head: stats.last_change,
                    acked: s.acked,
                    lag_entries,
                    lag_ms,
                    notices_received: s.notices_received,
                })
            }
            _ => None,
        };
        let seen = self.children.lock().map(|m| m.clone()).unwrap_or_default();
        let refused_counts = self.ctx.store.quarantine_counts()?;
        let mut children = Vec::with_capacity(self.ctx.config.children.len());
        for c in &self.ctx.config.children {
            let s = seen.get(&c.region).cloned().unwrap_or_default();
            children.push(pb::ChildStatus {
                region: c.region.to_string(),
                connected: s.connected > 0,
                cursor: self.ctx.store.cursor(&c.region)?,
                reported_head: s.reported_head,
                last_seen_ms: s.last_seen_ms,
                notices_pending: self.ctx.store.pending_notices(&c.region)?.len() as u32,
                refused: refused_counts.get(&c.region).copied().unwrap_or(0),
            });
        }
        let quarantine = self
            .ctx
            .store
            .quarantined(SHOWN)?
            .iter()
            .map(quarantined_to_wire)
            .collect();
        let inbox = self.ctx.store.inbox()?;
        let refused_above: Vec<pb::Notice> = inbox
            .iter()
            .filter(|n| n.kind == NoticeKind::EntryRefused)
            .map(Notice::to_wire)
            .collect();
        let refused_above = refused_above[refused_above.len().saturating_sub(SHOWN)..].to_vec();
        Ok(pb::NodeStatus {
            region: self.ctx.config.region.to_string(),
            level: self.ctx.config.region.level().to_string(),
            name: self.ctx.config.name.clone(),
            parent,
            children,
            records: stats.records,
            changelog_head: stats.last_change,
            usage_entries: stats.usage_entries,
            inbox: inbox.len() as u32,
            refused_from_below: refused_counts.values().sum(),
            quarantine,
            refused_above,
        })
    }
}
