//! The parent side of upward sync, and the operators' Status and Notify: the
//! `Federation` service, whose RPCs live by concern in `sync`, `status` and `notify`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Uplink;
use crate::pb;
use crate::rpc::Context;

/// What a parent knows of each child's connection, for `status`.
#[derive(Clone, Debug, Default)]
pub(super) struct ChildSeen {
    pub(super) connected: u32,
    pub(super) reported_head: u64,
    pub(super) last_seen_ms: i64,
}

#[derive(Clone)]
pub struct FederationService {
    pub(super) ctx: Context,
    pub(super) uplink: Option<Uplink>,
    pub(super) children: Arc<Mutex<HashMap<crate::domain::region::RegionCode, ChildSeen>>>,
}

impl FederationService {
    pub fn new(node: &Context, uplink: Option<Uplink>) -> Self {
        FederationService {
            ctx: node.clone(),
            uplink,
            children: Arc::default(),
        }
    }

    pub(super) fn seen(
        &self,
        child: &crate::domain::region::RegionCode,
        f: impl FnOnce(&mut ChildSeen),
    ) {
        if let Ok(mut map) = self.children.lock() {
            f(map.entry(*child).or_default());
        }
    }
}

#[tonic::async_trait]
impl pb::federation_server::Federation for FederationService {
    type SyncStream = ReceiverStream<Result<pb::SyncDown, Status>>;

    async fn sync(
        &self,
        request: Request<Streaming<pb::SyncUp>>,
    ) -> Result<Response<Self::SyncStream>, Status> {
        self.serve_sync(request).await
    }

    async fn status(
        &self,
        request: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        self.serve_status(request).await
    }

    async fn retry_quarantine(
        &self,
        request: Request<pb::RetryQuarantineRequest>,
    ) -> Result<Response<pb::RetryQuarantineResult>, Status> {
        self.serve_retry_quarantine(request).await
    }

    async fn notify(
        &self,
        request: Request<pb::Notice>,
    ) -> Result<Response<pb::NotifyResult>, Status> {
        self.serve_notify(request).await
    }
}
