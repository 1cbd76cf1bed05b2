//! The child side of upward sync: stream the changelog to the parent, from the cursor
//! the parent holds, with at most `WINDOW` batches unacknowledged; reconnect with
//! backoff while the parent is away. Notices that come down the same stream are taken in
//! `notices`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use crate::config::{Child, Parent};
use crate::domain::region::RegionCode;
use crate::identity::client::{ClientIdentity, ExpectedServer, connect};
use crate::pb;
use crate::pb::federation_client::FederationClient;
use crate::rpc::convert::consent::change_to_wire;
use crate::store::Store;

/// Entries per batch sent upward.
pub const BATCH: usize = 1000;
/// Batches sent and not yet acknowledged, per connection.
pub const WINDOW: usize = 4;
/// How often a connected uplink logs its lag.
const LAG_REPORT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// What the uplink is doing, for `status`, health and logs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UplinkState {
    pub connected: bool,
    /// "connecting", "connected" or "disconnected: <reason>".
    pub state: String,
    /// The last sequence the parent acknowledged.
    pub acked: u64,
    pub notices_received: u32,
}

/// A running uplink's shared state.
#[derive(Clone, Default)]
pub struct Uplink {
    state: Arc<Mutex<UplinkState>>,
}

#[derive(Debug, thiserror::Error)]
pub(super) enum SessionError {
    #[error("{0}")]
    Connect(#[from] crate::identity::ClientError),
    #[error("{0}")]
    Status(#[from] tonic::Status),
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("protocol: {0}")]
    Protocol(String),
}

impl Uplink {
    pub fn state(&self) -> UplinkState {
        self.state.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut UplinkState)) {
        if let Ok(mut s) = self.state.lock() {
            f(&mut s);
        }
    }

    /// Runs the uplink until `stop` turns true.
    pub fn spawn(
        &self,
        link: Link,
        mut stop: watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        let uplink = self.clone();
        tokio::spawn(async move {
            let mut backoff = BACKOFF_MIN;
            loop {
                uplink.update(|s| {
                    s.connected = false;
                    s.state = "connecting".into();
                });
                let outcome = tokio::select! {
                    r = uplink.session(&link) => r,
                    _ = stop.wait_for(|s| *s) => return,
                };
                let reason = match outcome {
                    Ok(()) => "the parent closed the stream".to_string(),
                    Err(e) => e.to_string(),
                };
                if uplink.state().connected {
                    backoff = BACKOFF_MIN;
                }
                tracing::warn!(parent = %link.parent.region, error = %reason, retry_in_ms = backoff.as_millis() as u64, "uplink disconnected");
                uplink.update(|s| {
                    s.connected = false;
                    s.state = format!("disconnected: {reason}");
                });
                if let Some(health) = &link.health {
                    health.set_not_serving_uplink().await;
                }
                tokio::select! {
                    _ = tokio::time::sleep(jitter(backoff)) => {}
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        })
    }

    async fn session(&self, link: &Link) -> Result<(), SessionError> {
        let channel = connect(
            &link.parent.endpoint,
            &link.identity,
            ExpectedServer::Node(link.parent.region),
        )
        .await?;
        let mut client = FederationClient::new(channel)
            .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
        let (tx, rx) = mpsc::channel::<pb::SyncUp>(WINDOW * 2);
        let mut down = client.sync(ReceiverStream::new(rx)).await?.into_inner();
        let cursor = match down.message().await? {
            Some(pb::SyncDown {
                message: Some(pb::sync_down::Message::Cursor(c)),
            }) => c.acked,
            other => {
                return Err(SessionError::Protocol(format!(
                    "expected the parent's cursor first, got {other:?}"
                )));
            }
        };
        let local_head = *link.store.watch_head().borrow();
        if cursor > local_head {
            // The parent has applied entries this node no longer has (a data folder
            // restored from an old backup?): waiting would send nothing, silently.
            return Err(SessionError::Protocol(format!(
                "the parent has applied this node's changelog up to {cursor}, but it ends at \
                 {local_head} here; an operator must reconcile the two before the uplink resumes"
            )));
        }
        tracing::info!(parent = %link.parent.region, cursor, "uplink connected");
        self.update(|s| {
            s.connected = true;
            s.state = "connected".into();
            s.acked = cursor;
        });
        if let Some(health) = &link.health {
            health.set_serving_uplink().await;
        }
        let window = Arc::new(Semaphore::new(WINDOW));
        let sender = AbortOnDrop(tokio::spawn(send_changes(
            link.store.clone(),
            tx.clone(),
            cursor,
            window.clone(),
            link.census_source(),
            link.clock.clone(),
        )));
        // `sender` is dropped, and so aborted, on every way out of here, a cancelled session
        // included (the stop signal drops this future): it holds the store and must not
        // outlive the session.
        self.receive(link, &mut down, &tx, &window, &sender).await
    }

    async fn receive(
        &self,
        link: &Link,
        down: &mut tonic::Streaming<pb::SyncDown>,
        tx: &mpsc::Sender<pb::SyncUp>,
        window: &Semaphore,
        sender: &AbortOnDrop,
    ) -> Result<(), SessionError> {
        let mut report = tokio::time::interval(LAG_REPORT);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let msg = tokio::select! {
                msg = down.message() => match msg? {
                    Some(msg) => msg,
                    None => return Ok(()),
                },
                _ = report.tick() => {
                    // The sender ends only on a store error (logged): without it this
                    // session would look connected while sending nothing.
                    if sender.0.is_finished() {
                        return Err(SessionError::Protocol("the changelog reader stopped; see the error before this".into()));
                    }
                    self.log_lag(link).await;
                    continue;
                }
            };
            match msg.message {
                Some(pb::sync_down::Message::Ack(ack)) => {
                    for r in &ack.refused {
                        tracing::warn!(parent = %link.parent.region, seq = r.seq, record_id = %r.record_id,
                            field = %r.field, rule = %r.rule, "parent refused an entry: {}", r.message);
                    }
                    self.update(|s| s.acked = s.acked.max(ack.acked));
                    window.add_permits(1);
                }
                Some(pb::sync_down::Message::Notice(n)) => {
                    self.notice_from_parent(link, n, tx).await?;
                }
                Some(pb::sync_down::Message::Cursor(_)) => {
                    return Err(SessionError::Protocol(
                        "unexpected cursor from the parent".into(),
                    ));
                }
                None => {}
            }
        }
    }

    /// Logs how far the parent is behind: entries not yet acknowledged, and the age of
    /// the oldest of them.
    async fn log_lag(&self, link: &Link) {
        let head = *link.store.watch_head().borrow();
        let acked = self.state().acked;
        let lag_entries = head.saturating_sub(acked);
        if lag_entries == 0 {
            tracing::debug!(parent = %link.parent.region, head, "uplink caught up");
            return;
        }
        // Bounded like every store call (R-SEC-1): a stuck store must not hang the uplink.
        let lag_ms = match link.store.call(move |s| s.changes_since(acked, 1)).await {
            Ok(entries) => entries
                .first()
                .map_or(0, |(_, r)| (link.clock.now_ms() - r.made_at_ms()).max(0)),
            Err(_) => 0,
        };
        tracing::info!(parent = %link.parent.region, head, acked, lag_entries, lag_ms, "uplink lag");
    }
}

/// Everything a session needs.
#[derive(Clone)]
pub struct Link {
    pub parent: Parent,
    pub local: RegionCode,
    pub children: Vec<Child>,
    pub identity: ClientIdentity,
    pub store: Store,
    pub health: Option<UplinkHealth>,
    /// Signs the withdrawal of a consent recorded here when a node above reports it
    /// withdrawn there (a consent-withdrawal notice).
    pub signer: Option<std::sync::Arc<crate::identity::signing::NodeSigner>>,
    /// This platform's name, for the census it reports up.
    pub name: String,
    /// The node's clock, for the objection cases it takes.
    pub clock: crate::domain::clock::Clock,
}

impl Link {
    fn census_source(&self) -> CensusSource {
        CensusSource {
            region: self.local,
            name: self.name.clone(),
            children: self.children.iter().map(|c| c.region).collect(),
            clock: self.clock.clone(),
        }
    }
}

/// What the uplink needs to build this node's census report.
struct CensusSource {
    region: RegionCode,
    name: String,
    children: Vec<RegionCode>,
    /// The node's clock, for the report's time.
    clock: crate::domain::clock::Clock,
}

impl CensusSource {
    /// This node's census report, read in a bounded store call (R-SEC-1: the figures sit
    /// behind the writer lock, which a push stuck in sled may hold). `None` when it cannot
    /// be read: the next batch sends it, rather than an empty report the parent would take
    /// for this node's stock.
    async fn message(&self, store: &Store) -> Option<pb::SyncUp> {
        let (region, name, children) = (self.region, self.name.clone(), self.children.clone());
        let now = self.clock.now_ms();
        match store
            .call(move |s| crate::census::own_report(s, &region, &name, &children, now))
            .await
        {
            Ok(report) => Some(pb::SyncUp {
                message: Some(pb::sync_up::Message::Census(report.to_wire())),
            }),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the census figures");
                None
            }
        }
    }
}

/// Reports the uplink's state as the health of service `credit.v1.Uplink`.
#[derive(Clone)]
pub struct UplinkHealth(pub tonic_health::server::HealthReporter);

pub const UPLINK_HEALTH_SERVICE: &str = "credit.v1.Uplink";

impl UplinkHealth {
    async fn set_serving_uplink(&self) {
        self.0
            .set_service_status(UPLINK_HEALTH_SERVICE, tonic_health::ServingStatus::Serving)
            .await;
    }
    async fn set_not_serving_uplink(&self) {
        self.0
            .set_service_status(
                UPLINK_HEALTH_SERVICE,
                tonic_health::ServingStatus::NotServing,
            )
            .await;
    }
}

/// Streams changelog entries after `from`, waiting for new ones when caught up, with at
/// most `WINDOW` batches unacknowledged.
async fn send_changes(
    store: Store,
    tx: mpsc::Sender<pb::SyncUp>,
    mut from: u64,
    window: Arc<Semaphore>,
    census: CensusSource,
    clock: crate::domain::clock::Clock,
) {
    let mut head = store.watch_head();
    // The census first, so the parent knows this node's stock before the backlog.
    if let Some(m) = census.message(&store).await
        && tx.send(m).await.is_err()
    {
        return;
    }
    loop {
        // Only what is durable goes up: entries past the published head may still be
        // waiting for their sync, and a crash could take them back.
        let durable = match head.wait_for(|h| *h > from).await {
            Ok(h) => *h,
            Err(_) => return,
        };
        let limit = usize::try_from(durable - from).unwrap_or(BATCH).min(BATCH);
        let reader = store.clone();
        let entries =
            match tokio::task::spawn_blocking(move || reader.changes_since(from, limit)).await {
                Ok(Ok(entries)) => entries,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "uplink cannot read the changelog");
                    return;
                }
                Err(_) => return,
            };
        if entries.is_empty() {
            // Not expected (the head says entries exist); wait for more rather than spin.
            if head.wait_for(|h| *h > durable).await.is_err() {
                return;
            }
            continue;
        }
        let Ok(permit) = window.acquire().await else {
            return;
        };
        permit.forget();
        from = entries.last().map_or(from, |(seq, _)| *seq);
        let today = clock.today();
        let batch = pb::ChangeBatch {
            entries: entries
                .iter()
                .map(|(seq, change)| change_to_wire(*seq, change, today))
                .collect(),
            head: *head.borrow(),
        };
        if tx
            .send(pb::SyncUp {
                message: Some(pb::sync_up::Message::Changes(batch)),
            })
            .await
            .is_err()
        {
            return;
        }
        if let Some(m) = census.message(&store).await
            && tx.send(m).await.is_err()
        {
            return;
        }
    }
}

/// Up to a quarter more, so children that lost the same parent do not all come back at
/// the same instant.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    d + d.mul_f64(f64::from(nanos % 1000) / 4000.0)
}

/// Aborts a task when dropped: a `JoinHandle` alone lets it run on.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The census the uplink sends its parent reads figures behind the store's writer
    /// lock; with a push stuck in sled holding that lock, building it returns within the
    /// store's bound (no census this time) instead of blocking a runtime thread (R-SEC-1).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_census_for_the_parent_waits_no_longer_than_the_store_bound_r_sec_1() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::store::StoreOptions {
            call_timeout: Duration::from_millis(200),
            ..crate::store::StoreOptions::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        let stuck = store.call(move |s| s.hold_writer_until(held)).await;
        assert!(stuck.is_err(), "{stuck:?}");
        let census = CensusSource {
            region: RegionCode::parse("211382").unwrap(),
            name: "凌源市公共信用信息平台".into(),
            children: Vec::new(),
            clock: crate::domain::clock::Clock::on(
                chrono::NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            ),
        };
        // On a runtime of its own, so that a census read blocking its thread shows as no
        // answer here, not as a hung test.
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = store.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let _ = tx.send(rt.block_on(census.message(&reader)).is_none());
        });
        let answered = rx.recv_timeout(Duration::from_secs(30));
        release.send(()).unwrap();
        assert_eq!(answered, Ok(true), "no census while the store is stuck");
    }
}
