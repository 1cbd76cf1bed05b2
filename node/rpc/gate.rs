//! Admission to every RPC: who is calling (read from the client certificate by the
//! `Authenticate` interceptor), whether the role table lets them call it, and a
//! usage-log entry for every refusal (R-NODE-3, R-SEC-3).

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::domain::caller::CallerId;
use crate::domain::clock::Clock;
use crate::domain::region::RegionCode;
use crate::domain::usage::{Action, UsageEntry};
use crate::identity::tls::{Authenticated, ServerTls, authenticate_peer};
use crate::policy::authz::{self, Rpc};
use crate::rpc::refusal::{Refusal, refuse};
use crate::store::UsageLog;

/// The result of authenticating a call, put in the request's extensions by the
/// interceptor and read once by `Gate::admit`, which logs refusals.
#[derive(Clone)]
pub struct Authn(pub Result<Authenticated, Status>);

/// Reads the caller from the client certificate on every call (R-NODE-3). It never
/// refuses by itself: the refusal is written to the usage log by `Gate::admit`, which
/// can wait for the disk.
#[derive(Clone)]
pub struct Authenticate(pub Arc<ServerTls>);

impl Interceptor for Authenticate {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let authn = authenticate_peer(&req, &self.0);
        req.extensions_mut().insert(Authn(authn));
        Ok(req)
    }
}

/// Admission to every RPC: who is calling, may they call this, and a usage-log entry
/// for every refusal.
#[derive(Clone)]
pub struct Gate {
    region: RegionCode,
    /// Where refusals are logged.
    usage: UsageLog,
    tls: Arc<ServerTls>,
    stopping: tokio::sync::watch::Receiver<bool>,
    clock: Clock,
}

impl Gate {
    /// `stopping` turns true when the node begins to shut down: long-lived streams end
    /// then, so the server's graceful shutdown does not wait on them forever.
    pub fn new(
        region: RegionCode,
        usage: UsageLog,
        tls: Arc<ServerTls>,
        stopping: tokio::sync::watch::Receiver<bool>,
        clock: Clock,
    ) -> Self {
        Gate {
            region,
            usage,
            tls,
            stopping,
            clock,
        }
    }

    /// Completes when the node begins to shut down.
    pub async fn stopping(&self) {
        let mut stopping = self.stopping.clone();
        if stopping.wait_for(|s| *s).await.is_err() {
            // The node is gone altogether.
        }
    }

    /// The serial of the caller's certificate, when the call was authenticated.
    pub fn serial<T>(req: &Request<T>) -> Option<Vec<u8>> {
        match req.extensions().get::<Authn>() {
            Some(Authn(Ok(a))) => Some(a.serial.clone()),
            _ => None,
        }
    }

    /// For long-lived streams: refuses (and logs) a caller whose certificate was revoked
    /// after the stream began (R-NODE-3).
    pub async fn still_valid(
        &self,
        caller: &CallerId,
        serial: &[u8],
        rpc: &str,
        action: Action,
    ) -> Result<(), Status> {
        if !self.tls.is_revoked(serial) {
            return Ok(());
        }
        let refusal =
            Refusal::unauthenticated("R-NODE-3", "certificate revoked while the stream was open");
        Err(self.refuse(Some(caller), rpc, action, refusal).await)
    }

    /// The caller of `req`, if authenticated and allowed `rpc` by the role table.
    pub async fn admit<T>(
        &self,
        req: &Request<T>,
        rpc: Rpc,
        action: Action,
    ) -> Result<CallerId, Status> {
        let name = rpc_name(rpc);
        let authn = match req.extensions().get::<Authn>() {
            Some(Authn(result)) => result.clone().map(|a| a.caller),
            None => Err(Status::unauthenticated("no client identity (R-NODE-3)")),
        };
        let caller = match authn {
            Ok(caller) => caller,
            Err(status) => {
                let refusal = Refusal::unauthenticated("R-NODE-3", status.message());
                // The caller gets the authentication's own status, not the refusal's.
                let _ = self.refuse(None, name, action, refusal).await;
                return Err(status);
            }
        };
        match authz::check(&caller, rpc, &self.region) {
            Ok(()) => Ok(caller),
            Err(denial) => Err(self
                .refuse(Some(&caller), name, action, denial.into())
                .await),
        }
    }

    /// Writes the refusal to the usage log and returns the status for the caller.
    pub async fn refuse(
        &self,
        caller: Option<&CallerId>,
        rpc: &str,
        action: Action,
        refusal: Refusal,
    ) -> Status {
        let who = caller.map_or_else(|| "unauthenticated".to_string(), CallerId::uri);
        let entry = UsageEntry::new(who, action, rpc, self.clock.now_ms());
        refuse(&self.usage, entry, refusal).await
    }
}

fn rpc_name(rpc: Rpc) -> &'static str {
    match rpc {
        Rpc::Push => "Push",
        Rpc::PullBySubject => "PullBySubject",
        Rpc::Sync => "Sync",
        Rpc::Status => "Status",
        Rpc::Notify => "Notify",
        Rpc::RetryQuarantine => "RetryQuarantine",
        Rpc::Consents => "Consents",
        Rpc::Query => "Query",
        Rpc::AuditVerify => "Verify",
        Rpc::History => "History",
        Rpc::Checkpoints => "Checkpoints",
        Rpc::Census => "Census",
        Rpc::Objections => "Objections",
        Rpc::ObjectionReply => "Reply",
    }
}
