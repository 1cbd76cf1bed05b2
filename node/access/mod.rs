//! Access to credit information: consents (R-REL-4), queries on a legal basis
//! (R-REL-1..6) and the usage log's audit (R-SEC-1, R-SEC-3).
//!
//! * `consents`: operators record, withdraw, read and list consents; the node signs them.
//! * `query`: the Query service, local or forwarded up to the top of the federation.
//! * `audit`: verifying the usage log, a subject's usage history, and the checkpoints
//!   this node keeps for the nodes below.
//!
//! Every call, answered or refused, appends a usage entry naming the subject, purpose,
//! basis and consent where there is one, before any data leaves the node.

mod audit;
mod consents;
mod query;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tonic::Status;
use tonic::transport::Channel;

use crate::domain::caller::CallerId;
use crate::domain::consent::Consent;
use crate::domain::record::Hash;
use crate::domain::usage::UsageEntry;
use crate::identity::signing::{NodeSigner, VerifyError};
use crate::rpc::Context;
use crate::rpc::refusal::{Refusal, store_status};
use crate::store::Store;

/// Record ids listed in one usage entry at most (the count is always there).
const MAX_IDS_PER_ENTRY: usize = 1_000;
/// Usage entries one history answer lists at most, per node.
const MAX_HISTORY: usize = 10_000;

/// The Consents, Query and Audit services of one node.
#[derive(Clone)]
pub struct AccessService {
    ctx: Context,
    /// To the parent, as this node (forwarded queries and history, checkpoints).
    parent: Option<Channel>,
    /// Digests of consents whose signatures checked out: checking two ECDSA signatures
    /// (the certificate's and the consent's) on every query would cost more than the
    /// rest of the query. A consent changes only by gaining a withdrawal, which changes
    /// its digest, so a cached digest is always of exactly what was checked.
    verified: Arc<Mutex<HashSet<Hash>>>,
}

/// Consents' digests kept at most; the cache starts over when full.
const MAX_VERIFIED: usize = 100_000;

impl AccessService {
    /// The services of a node (`node`, its parts); `parent` is a channel to its parent as the node.
    pub fn new(node: &Context, parent: Option<Channel>) -> Self {
        AccessService {
            ctx: node.clone(),
            parent,
            verified: Arc::default(),
        }
    }

    /// Checks a consent's signatures, or remembers having checked exactly these bytes.
    fn verify_cached(&self, consent: &Consent) -> Result<(), VerifyError> {
        // The path is not signed and differs from node to node: leave it out.
        let signed = (&consent.terms, &consent.signature, &consent.withdrawal);
        let digest: Hash = match postcard::to_stdvec(&signed) {
            Ok(bytes) => {
                let mut d = [0u8; 32];
                d.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
                d
            }
            Err(_) => return consent.verify(&self.ctx.verifier),
        };
        if self.verified.lock().is_ok_and(|v| v.contains(&digest)) {
            return Ok(());
        }
        consent.verify(&self.ctx.verifier)?;
        if let Ok(mut v) = self.verified.lock() {
            if v.len() >= MAX_VERIFIED {
                v.clear();
            }
            v.insert(digest);
        }
        Ok(())
    }

    /// Appends `entry` durably; the use is on record before anything leaves the node.
    async fn log(&self, entries: Vec<UsageEntry>) -> Result<(), Status> {
        self.ctx
            .usage
            .append(entries)
            .await
            .map_err(|e| store_status(&e))
    }

    /// Logs `entry` as refused with `refusal` and returns the caller's status
    /// (`rpc::refusal::refuse`).
    async fn refuse(&self, entry: UsageEntry, refusal: Refusal) -> Status {
        crate::rpc::refusal::refuse(&self.ctx.usage, entry, refusal).await
    }

    /// Whether `caller` is a node configured as this node's child.
    fn is_child(&self, caller: &CallerId) -> bool {
        self.ctx
            .config
            .children
            .iter()
            .any(|c| c.region == caller.region)
    }
}

/// Signs a checkpoint of the usage log every `every` when the log has grown since the
/// last one, as a changelog entry: the uplink carries it to the parent, which keeps it
/// (R-SEC-3). Stops when `stopping` turns true.
pub fn spawn_checkpoints(
    store: Store,
    signer: Arc<NodeSigner>,
    region: crate::domain::region::RegionCode,
    clock: crate::domain::clock::Clock,
    every: std::time::Duration,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        // The first one after `every`, not at start: a node restarted often (tests, a
        // crash loop) does not flood its parent with checkpoints.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
            let store = store.clone();
            let signer = signer.clone();
            let at_ms = clock.signing_ms();
            let made =
                tokio::task::spawn_blocking(move || checkpoint_now(&store, &signer, region, at_ms))
                    .await;
            match made {
                Ok(Ok(Some(seq))) => tracing::debug!(seq, "usage log checkpoint signed"),
                Ok(Ok(None)) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "cannot write a usage log checkpoint"),
                Err(e) => tracing::error!(error = %e, "checkpoint task failed"),
            }
        }
    })
}

/// Signs and stores a checkpoint of the usage log's head, unless the last one already
/// covers it. Returns the sequence it covers.
pub fn checkpoint_now(
    store: &Store,
    signer: &NodeSigner,
    region: crate::domain::region::RegionCode,
    at_ms: i64,
) -> Result<Option<u64>, String> {
    let (seq, head) = store.usage_head().map_err(|e| e.to_string())?;
    let last = store
        .checkpoints(Some(&region))
        .map_err(|e| e.to_string())?
        .last()
        .map_or(0, |c| c.seq);
    if seq == 0 || seq <= last {
        return Ok(None);
    }
    let cp = crate::domain::usage::Checkpoint::sign(region, seq, head, at_ms, signer)
        .map_err(|e| e.to_string())?;
    store
        .append_local(crate::store::Change::Checkpoint(cp), Vec::new())
        .map_err(|e| e.to_string())?;
    Ok(Some(seq))
}
