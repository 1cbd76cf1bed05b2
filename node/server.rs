//! Assembles a node: store, catalog and validator, TLS, the gRPC services, health and
//! reflection. `Node::serve` takes an already-bound listener and a shutdown future, so
//! tests run whole federations in one process on `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Server;

use crate::access::AccessService;
use crate::config::Config;
use crate::exchange::ExchangeService;
use crate::federation::uplink::{Link, UPLINK_HEALTH_SERVICE, UplinkHealth};
use crate::federation::{FederationService, Uplink};
use crate::identity::client::ClientIdentity;
use crate::identity::signing::{NodeSigner, SignatureVerifier};
use crate::identity::tls::ServerTls;
use crate::pb;
use crate::policy::{Catalog, Validator};
use crate::rpc::Context;
use crate::rpc::codec::MAX_MESSAGE_BYTES;
use crate::rpc::gate::{Authenticate, Gate};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("catalog: {0}")]
    Catalog(#[from] crate::policy::CatalogError),
    #[error("TLS: {0}")]
    Tls(#[from] crate::identity::tls::TlsError),
    #[error("store at {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("gRPC server: {0}")]
    Transport(#[from] tonic::transport::Error),
    #[error("reflection service: {0}")]
    Reflection(String),
    #[error("the node's own certificate for the uplink: {0}")]
    Identity(String),
}

/// How long a stopping node waits for open calls and the uplink (one deadline for both)
/// before it stops anyway.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// The bound on the last sync and store mark at shutdown. With `DRAIN` and the
/// runtime's 5 s for blocking threads (`main.rs`), a stopping node exits within 20 s.
const MARK_BOUND: std::time::Duration = std::time::Duration::from_secs(5);

/// A node's parts, ready to serve.
pub struct Node {
    pub config: Config,
    pub store: Store,
    pub tls: Arc<ServerTls>,
    pub validator: Arc<Validator>,
    /// The uplink's state, when the node has a parent.
    pub uplink: Option<Uplink>,
    /// Signs consents and checkpoints with this node's certificate key.
    pub signer: Arc<NodeSigner>,
    /// Checks other nodes' signatures against the federation CA.
    pub verifier: Arc<SignatureVerifier>,
    /// This node's own certificate as a client, for the uplink.
    identity: ClientIdentity,
}

impl Node {
    /// The parts of this node a service takes.
    pub fn context(&self, gate: Gate, usage: crate::store::UsageLog) -> Context {
        Context {
            config: Arc::new(self.config.clone()),
            store: self.store.clone(),
            validator: self.validator.clone(),
            signer: self.signer.clone(),
            verifier: self.verifier.clone(),
            gate,
            usage,
            clock: self.config.clock.clone(),
        }
    }

    /// Loads the catalog and TLS files and opens (recovering if need be) the store.
    pub fn open(config: Config) -> Result<Node, NodeError> {
        let catalog = Arc::new(Catalog::load(config.catalog.as_deref())?);
        let validator = Arc::new(Validator::new(catalog, config.legacy_codes.iter().cloned()));
        let tls = Arc::new(ServerTls::from_files(&config.tls)?);
        // Checked before anything is served (R-SEC-1): a damaged store refuses to start.
        let store = Store::open_checked(&config.data_dir, &config.store, &config.region).map_err(
            |source| NodeError::Store {
                dir: config.data_dir.display().to_string(),
                source,
            },
        )?;
        store
            .bind_region(&config.region)
            .map_err(|source| NodeError::Store {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| NodeError::Identity(format!("{}: {e}", path.display())))
        };
        let identity = ClientIdentity {
            ca_pem: read(&config.tls.ca)?,
            cert_pem: read(&config.tls.cert)?,
            key_pem: read(&config.tls.key)?,
        };
        let uplink = config.parent.as_ref().map(|_| Uplink::default());
        let signer = NodeSigner::from_pem(&identity.cert_pem, &identity.key_pem)
            .map_err(|e| NodeError::Identity(e.to_string()))?;
        let verifier = SignatureVerifier::from_ca_pem(&identity.ca_pem)
            .map_err(|e| NodeError::Identity(e.to_string()))?;
        // Other nodes check this node's consents (R-REL-4) and checkpoints (R-SEC-3) with
        // the federation CA; a certificate that cannot pass that check (another CA, no
        // serverAuth, keyUsage without digitalSignature, expired) is refused here, at
        // start, rather than surfacing later as every signed entry refused upstream.
        let probe = b"credit-node start-up signing check";
        signer
            .sign(probe)
            .map_err(|e| e.to_string())
            .and_then(|sig| {
                verifier
                    .verify(probe, &sig, &config.region, config.clock.signing_ms())
                    .map_err(|e| e.to_string())
            })
            .map_err(|e| {
                NodeError::Identity(format!(
                    "{}: this node's certificate cannot sign what other nodes check \
                     (consents, R-REL-4; usage-log checkpoints, R-SEC-3): {e}",
                    config.tls.cert.display()
                ))
            })?;
        Ok(Node {
            signer: Arc::new(signer),
            verifier: Arc::new(verifier),
            config,
            store,
            tls,
            validator,
            uplink,
            identity,
        })
    }

    /// Serves on `listener` until `shutdown` completes, then makes the store durable.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), NodeError> {
        let config = &self.config;
        // Turns true when shutdown begins: streams, the uplink and the server all stop.
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = stopping_tx.send(true);
        };
        let usage_log = crate::store::UsageLog::spawn(self.store.clone());
        let gate = Gate::new(
            config.region,
            usage_log.clone(),
            self.tls.clone(),
            stopping.clone(),
            config.clock.clone(),
        );
        let ctx = self.context(gate, usage_log);
        let exchange = ExchangeService::new(&ctx);
        let authenticate = Authenticate(self.tls.clone());

        let (health, health_service) = tonic_health::server::health_reporter();
        health
            .set_serving::<pb::exchange_server::ExchangeServer<ExchangeService>>()
            .await;
        // Both reflection versions: grpcurl and other stock clients differ in which they ask.
        let reflection = || {
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        };
        let reflection_v1 = reflection()
            .build_v1()
            .map_err(|e| NodeError::Reflection(e.to_string()))?;
        let reflection_v1alpha = reflection()
            .build_v1alpha()
            .map_err(|e| NodeError::Reflection(e.to_string()))?;

        let federation = FederationService::new(&ctx, self.uplink.clone());
        health
            .set_serving::<pb::federation_server::FederationServer<FederationService>>()
            .await;
        let federation = InterceptedService::new(
            pb::federation_server::FederationServer::new(federation)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            Authenticate(self.tls.clone()),
        );
        // The uplink runs beside the server: pushes here never wait for the parent.
        let uplink_task = match (&config.parent, &self.uplink) {
            (Some(parent), Some(uplink)) => {
                let health = UplinkHealth(health.clone());
                health
                    .0
                    .set_service_status(
                        UPLINK_HEALTH_SERVICE,
                        tonic_health::ServingStatus::NotServing,
                    )
                    .await;
                let link = Link {
                    parent: parent.clone(),
                    local: config.region,
                    children: config.children.clone(),
                    identity: self.identity.clone(),
                    store: self.store.clone(),
                    health: Some(health),
                    signer: Some(self.signer.clone()),
                    name: config.name.clone(),
                    clock: config.clock.clone(),
                };
                Some(uplink.spawn(link, stopping.clone()))
            }
            _ => None,
        };

        let parent_channel = match &config.parent {
            Some(p) => Some(
                crate::identity::client::lazy(
                    &p.endpoint,
                    &self.identity,
                    crate::identity::ExpectedServer::Node(p.region),
                )
                .map_err(|e| NodeError::Identity(e.to_string()))?,
            ),
            None => None,
        };
        let access = AccessService::new(&ctx, parent_channel);
        health
            .set_serving::<pb::query_server::QueryServer<AccessService>>()
            .await;
        let intercept = |svc| InterceptedService::new(svc, Authenticate(self.tls.clone()));
        let consents = intercept(pb::consents_server::ConsentsServer::new(access.clone()));
        let query = InterceptedService::new(
            pb::query_server::QueryServer::new(access.clone())
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            Authenticate(self.tls.clone()),
        );
        let audit = InterceptedService::new(
            pb::audit_server::AuditServer::new(access).max_encoding_message_size(MAX_MESSAGE_BYTES),
            Authenticate(self.tls.clone()),
        );
        let census = InterceptedService::new(
            pb::census_server::CensusServer::new(crate::census::service::CensusService::new(&ctx)),
            Authenticate(self.tls.clone()),
        );
        let objections = InterceptedService::new(
            pb::objections_server::ObjectionsServer::new(
                crate::objection::service::ObjectionService::new(&ctx),
            ),
            Authenticate(self.tls.clone()),
        );
        let purge = crate::objection::origin::spawn_purge(
            self.store.clone(),
            config.region,
            config.clock.clone(),
            config.purge_every,
            stopping.clone(),
        );
        let checkpoints = crate::access::spawn_checkpoints(
            self.store.clone(),
            self.signer.clone(),
            config.region,
            config.clock.clone(),
            config.checkpoint_every,
            stopping.clone(),
        );

        let store_health = spawn_store_health(
            self.store.clone(),
            health.clone(),
            vec![
                String::new(),
                <pb::exchange_server::ExchangeServer<ExchangeService> as tonic::server::NamedService>::NAME.to_string(),
                <pb::federation_server::FederationServer<FederationService> as tonic::server::NamedService>::NAME.to_string(),
                <pb::query_server::QueryServer<AccessService> as tonic::server::NamedService>::NAME.to_string(),
            ],
            stopping.clone(),
        );
        let crl_watch = self.tls.spawn_crl_watcher(config.crl_reload);
        let exchange = InterceptedService::new(
            pb::exchange_server::ExchangeServer::new(exchange)
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
            authenticate,
        );
        tracing::info!(region = %config.region, level = %config.region.level(), name = %config.name,
            addr = ?listener.local_addr().ok(), "node serving");
        if config.clock.is_moved() {
            tracing::warn!(today = %config.clock.today(),
                "the node's clock is moved ([clock] today): every date rule reads this day, not the real one");
        }
        // Keepalive pings find peers that went away (no answer in 20 s: closed); a
        // connection carries at most `max_streams` calls at once (REFUSED_STREAM
        // beyond). The other bounds (handshake, preface, counts, per address) are in
        // `incoming`; `CountStreams` counts the calls open on each connection so that one
        // with none for `idle_secs` is closed.
        // Turns true when the drain bound passes: connections still open then are ended.
        let (force_close, force_closing) = tokio::sync::watch::channel(false);
        let served = Server::builder()
            .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
            .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
            .max_concurrent_streams(config.connections.max_streams)
            .layer(crate::identity::conn::CountStreams)
            .layer(crate::rpc::codec::LogUndecodable {
                gate: ctx.gate.clone(),
                tls: self.tls.clone(),
            })
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(exchange)
            .add_service(federation)
            .add_service(consents)
            .add_service(query)
            .add_service(audit)
            .add_service(census)
            .add_service(objections)
            .serve_with_incoming_shutdown(
                crate::identity::tls::incoming_until(
                    listener,
                    self.tls.clone(),
                    config.connections,
                    force_closing,
                    None,
                ),
                shutdown,
            );
        // Once shutdown begins, connections and the uplink share one `DRAIN` deadline; a
        // call stuck in the store (bounded itself) or a client that never closes cannot
        // keep the node up. Then the store mark gets `MARK_BOUND`.
        let mut draining = stopping.clone();
        let began = std::sync::OnceLock::new();
        let served = tokio::select! {
            served = served => served,
            () = async {
                let _ = draining.wait_for(|s| *s).await;
                let _ = began.set(tokio::time::Instant::now());
                tokio::time::sleep(DRAIN).await;
            } => {
                tracing::warn!(drain_secs = DRAIN.as_secs(), "connections still open after the drain bound; closing them and stopping");
                // The connections' own tasks outlive the server future: end them, or
                // they would go on serving (and holding) the store being closed.
                let _ = force_close.send(true);
                Ok(())
            }
        };
        let deadline = began
            .get()
            .copied()
            .unwrap_or_else(tokio::time::Instant::now)
            + DRAIN;
        crl_watch.abort();
        store_health.abort();
        checkpoints.abort();
        purge.abort();
        if let Some(mut task) = uplink_task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            tracing::warn!("the uplink did not stop within the drain bound");
            task.abort();
        }
        // After the last sync, the mark the next start checks against (R-SEC-1).
        let synced = self.store.call_within(MARK_BOUND, |s| s.write_mark()).await;
        served?;
        synced.map_err(|source| NodeError::Store {
            dir: config.data_dir.display().to_string(),
            source,
        })?;
        tracing::info!(region = %config.region, "node stopped");
        Ok(())
    }
}

/// How often health looks at the store (see `spawn_store_health`).
const STORE_HEALTH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Reports `services` NOT_SERVING while the store does not answer (a call stuck past its
/// bound, or a failed write or sync: every call would fail), and SERVING again once it
/// does (R-SEC-1): a load balancer then stops sending calls a stuck store cannot serve.
fn spawn_store_health(
    store: Store,
    health: tonic_health::server::HealthReporter,
    services: Vec<String>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut was = true;
        loop {
            let now = store.answering();
            if now != was {
                let status = if now {
                    tracing::info!("the store answers again; health SERVING");
                    tonic_health::ServingStatus::Serving
                } else {
                    tracing::warn!("the store does not answer; health NOT_SERVING");
                    tonic_health::ServingStatus::NotServing
                };
                for s in &services {
                    health.set_service_status(s, status).await;
                }
                was = now;
            }
            tokio::select! {
                () = tokio::time::sleep(STORE_HEALTH_EVERY) => {}
                _ = stopping.wait_for(|s| *s) => return,
            }
        }
    })
}

/// A node started in the background, for tests, the demo and benchmarks.
pub struct NodeHandle {
    pub addr: SocketAddr,
    pub node: Arc<Node>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), NodeError>>,
}

impl NodeHandle {
    /// `https://127.0.0.1:<port>`, for clients.
    pub fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    pub fn store(&self) -> &Store {
        &self.node.store
    }

    /// Stops serving, waits for the server to finish, and syncs the store.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(e) => Err(NodeError::Reflection(format!("server task failed: {e}"))),
        }
    }
}

/// Opens a node and serves it on `config.listen` (port 0 picks a free port).
pub async fn start(config: Config) -> Result<NodeHandle, NodeError> {
    let addr = config.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| NodeError::Listen { addr, source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| NodeError::Listen { addr, source })?;
    // Opening checks the whole store (R-SEC-1): off the runtime's threads, which the
    // tasks of a node stopping in the same process may still need.
    let data_dir = config.data_dir.display().to_string();
    let node = tokio::task::spawn_blocking(move || Node::open(config))
        .await
        .map_err(|e| NodeError::Store {
            dir: data_dir,
            source: StoreError::Engine(format!("the task opening the store failed: {e}")),
        })??;
    let node = Arc::new(node);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(node.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    Ok(NodeHandle {
        addr,
        node,
        stop: Some(stop),
        task,
    })
}
