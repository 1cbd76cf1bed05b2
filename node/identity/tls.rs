//! The server side of R-NODE-3: mutual TLS 1.3 only, client certificates checked against
//! the federation CA and its CRL, and the caller read from the certificate on every RPC.
//!
//! tonic's own `ServerTlsConfig` has no CRL support, so the node runs its own rustls
//! acceptor (`incoming`) and hands tonic finished `TlsStream`s; `Request::peer_certs()`
//! still works because tonic implements `Connected` for tokio-rustls' `TlsStream`.
//!
//! Revocation is enforced twice: at the handshake (rustls' WebPKI verifier with the CRL),
//! and on every RPC (`authenticate` looks the serial up in the current revoked set), because
//! an HTTP/2 connection opened before the revocation can stay up for days.

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::codegen::http;
use tonic::transport::server::Connected;
use tonic::{Request, Status};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::conn::{Activity, IpSlot, LogThrottle, PerIp};
use crate::domain::caller::CallerId;

/// Back-off after a failed `accept` (e.g. out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// What a client sends first: the HTTP/2 connection preface (24 bytes) and the header of
/// its SETTINGS frame (9). Until that much has arrived the preface deadline applies.
const PREFACE_BYTES: usize = 24 + 9;
/// Descriptors kept for the store, the CRL and logs when the connection cap is derived
/// from the process's open-file limit.
const RESERVED_FDS: usize = 64;
/// The connection cap never goes below this, whatever the open-file limit.
const MIN_CONNECTIONS: usize = 16;

/// Bounds on connections before tonic sees them (`[connections]` in the config). A peer
/// that opens connections and sends nothing must not exhaust tasks, memory or file
/// descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// A TLS handshake not finished by then is dropped.
    pub handshake_timeout: Duration,
    /// A connection with no call open for this long is closed (after its preface).
    pub idle_timeout: Duration,
    /// After the handshake, the client's HTTP/2 preface must arrive by then.
    pub preface_timeout: Duration,
    /// Connections still handshaking at once; beyond it new ones wait in the kernel's
    /// backlog, holding no descriptor of ours.
    pub max_handshakes: usize,
    /// Open connections in total (also capped below the process's open-file limit).
    pub max_connections: usize,
    /// Connections still handshaking at once from one address (IPv6: one /64); beyond
    /// it a new connection from there is closed at once.
    pub max_handshakes_per_ip: usize,
    /// Connections open at once from one address (IPv6: one /64); beyond it a new
    /// connection from there is closed at once.
    pub max_connections_per_ip: usize,
    /// Concurrent streams (calls) per HTTP/2 connection.
    pub max_streams: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            handshake_timeout: Duration::from_secs(5),
            preface_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(300),
            max_handshakes: 256,
            max_connections: 1024,
            max_handshakes_per_ip: 16,
            max_connections_per_ip: 256,
            max_streams: 256,
        }
    }
}

impl ConnectionLimits {
    /// `max_connections`, lowered to leave `RESERVED_FDS` below the soft open-file limit
    /// when that is known (Linux `/proc/self/limits`).
    fn effective_max_connections(&self) -> usize {
        let by_fds = open_file_limit().map(|n| n.saturating_sub(RESERVED_FDS));
        match by_fds {
            Some(cap) if cap < self.max_connections => {
                let cap = cap.max(MIN_CONNECTIONS);
                tracing::warn!(
                    configured = self.max_connections,
                    effective = cap,
                    "connections.max_connections lowered below the open-file limit (ulimit -n)"
                );
                cap
            }
            _ => self.max_connections,
        }
    }
}

/// The soft limit on open files, from `/proc/self/limits` (no `unsafe` needed).
fn open_file_limit() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Where a node's TLS material lives on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s) that client certificates must chain to.
    pub ca: PathBuf,
    /// The node's own certificate (chain), PEM.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA's CRL; reread by `reload_crl` and `spawn_crl_watcher`. When given, the file
    /// must hold at least one CRL signed by the CA (`pki init` writes an empty one).
    pub crl: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("{0}: no PEM certificate found")]
    NoCertificates(String),
    #[error("CRL refused: {0}")]
    Crl(String),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The node's TLS state: a `ServerConfig` that is rebuilt whenever the CRL changes, and
/// the revoked serials that `authenticate` checks on every RPC.
pub struct ServerTls {
    material: Material,
    crl_path: Option<PathBuf>,
    current: RwLock<Arc<Current>>,
}

/// What stays fixed for the life of a `ServerTls`; a new CRL is combined with it.
struct Material {
    provider: Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    ca_certs: Vec<CertificateDer<'static>>,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// One consistent generation: config and revoked set always come from the same CRL.
struct Current {
    config: Arc<ServerConfig>,
    revoked: HashSet<Vec<u8>>,
    /// The CRL text this generation was built from, to tell a real change from a touch.
    crl_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("crl_path", &self.crl_path)
            .field("revoked", &self.revoked_count())
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn certs(pem: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificates(what.into()));
    }
    Ok(certs)
}

impl ServerTls {
    /// Loads CA, certificate, key and (optionally) CRL from disk. Only a `ServerTls` built
    /// this way can `reload_crl`.
    pub fn from_files(files: &TlsFiles) -> Result<ServerTls, TlsError> {
        let crl = files.crl.as_deref().map(read).transpose()?;
        let key_pem = read(&files.key)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Pem {
            what: files.key.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::build(
            certs(&read(&files.ca)?, &files.ca.display().to_string())?,
            certs(&read(&files.cert)?, &files.cert.display().to_string())?,
            key,
            crl.as_deref(),
            files.crl.clone(),
        )
    }

    /// The same from PEM text, for tests and the in-process demo and bench.
    pub fn from_pem(
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        crl_pem: Option<&str>,
    ) -> Result<ServerTls, TlsError> {
        let ca_certs = certs(ca_pem.as_bytes(), "CA certificate")?;
        let cert_chain = certs(cert_pem.as_bytes(), "server certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| TlsError::Pem {
            what: "server key".into(),
            reason: e.to_string(),
        })?;
        Self::build(ca_certs, cert_chain, key, crl_pem.map(str::as_bytes), None)
    }

    fn build(
        ca_certs: Vec<CertificateDer<'static>>,
        cert_chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        crl_pem: Option<&[u8]>,
        crl_path: Option<PathBuf>,
    ) -> Result<ServerTls, TlsError> {
        let mut roots = RootCertStore::empty();
        for ca in &ca_certs {
            roots.add(ca.clone())?;
        }
        let material = Material {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            roots: Arc::new(roots),
            ca_certs,
            cert_chain,
            key,
        };
        // Any error in CA, certificate, key or CRL fails construction here.
        let first = material.generation(crl_pem)?;
        Ok(ServerTls {
            material,
            crl_path,
            current: RwLock::new(Arc::new(first)),
        })
    }

    fn current(&self) -> Arc<Current> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Swaps in a new generation built from `crl_pem` unless the text is unchanged.
    /// A bad CRL leaves the running generation in place.
    fn apply_crl(&self, crl_pem: &[u8]) -> Result<bool, TlsError> {
        if self.current().crl_pem.as_deref() == Some(crl_pem) {
            return Ok(false);
        }
        let next = Arc::new(self.material.generation(Some(crl_pem))?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = next;
        Ok(true)
    }

    /// The config new connections are accepted with.
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.current().config.clone()
    }

    /// Rereads the CRL file and returns whether its content changed. A `ServerTls` built
    /// without a CRL file returns `Ok(false)`. On error the previous CRL stays in force.
    pub fn reload_crl(&self) -> Result<bool, TlsError> {
        match &self.crl_path {
            Some(path) => self.apply_crl(&read(path)?),
            None => Ok(false),
        }
    }

    /// Replaces the CRL from PEM text (in-memory nodes: tests, demo, bench).
    pub fn set_crl_pem(&self, crl_pem: &str) -> Result<(), TlsError> {
        self.apply_crl(crl_pem.as_bytes()).map(drop)
    }

    /// Whether the current CRL lists `serial` (the certificate's raw DER serial bytes).
    pub fn is_revoked(&self, serial: &[u8]) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .revoked
            .contains(serial)
    }

    pub fn revoked_count(&self) -> usize {
        self.current().revoked.len()
    }

    /// Polls the CRL file every `every` and reloads it when its mtime or length changes,
    /// so `pki revoke` takes effect without a restart. The task holds only a weak
    /// reference and ends once the `ServerTls` is dropped; without a CRL file it ends at once.
    pub fn spawn_crl_watcher(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let path = self.crl_path.clone();
        tokio::spawn(async move {
            let Some(path) = path else { return };
            let mut tick = tokio::time::interval(every.max(Duration::from_millis(10)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen: Option<(Option<SystemTime>, u64)> = None;
            let mut failing = false;
            loop {
                tick.tick().await;
                let Some(tls) = weak.upgrade() else { return };
                let stamp = match tokio::fs::metadata(&path).await {
                    Ok(meta) => (meta.modified().ok(), meta.len()),
                    Err(error) => {
                        if !failing {
                            tracing::warn!(crl = %path.display(), %error, "cannot stat CRL; keeping the current one");
                        }
                        failing = true;
                        continue;
                    }
                };
                if seen == Some(stamp) {
                    continue;
                }
                seen = Some(stamp);
                failing = false;
                let result = match tokio::fs::read(&path).await {
                    Ok(bytes) => tls.apply_crl(&bytes),
                    Err(source) => Err(TlsError::Read {
                        path: path.clone(),
                        source,
                    }),
                };
                match result {
                    Ok(true) => tracing::info!(
                        crl = %path.display(),
                        revoked = tls.revoked_count(),
                        "CRL reloaded"
                    ),
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(crl = %path.display(), %error, "CRL reload failed; keeping the current one")
                    }
                }
            }
        })
    }
}

/// Accepts TCP connections and completes mutual-TLS handshakes, yielding streams for
/// `Server::serve_with_incoming_shutdown`. Each handshake runs in its own task with a
/// timeout, using the config current at accept time, so a reloaded CRL applies to the
/// next connection. Refused handshakes never reach tonic; they are logged at `warn` with
/// the peer address and the reason. The accept loop ends, closing the listener, when the
/// returned stream is dropped.
///
/// Before each `accept` the loop takes a connection permit and a handshake permit, so
/// beyond `max_connections` or `max_handshakes` connections wait in the kernel's backlog
/// instead of taking descriptors; a failed `accept` (out of descriptors) backs off and
/// goes on. A connection gives its handshake permit back when the handshake ends and its
/// connection permit when it closes.
///
/// After `accept`, a connection from an address that already has `max_handshakes_per_ip`
/// connections handshaking or `max_connections_per_ip` open is closed at once, so one
/// host cannot hold every slot. Warnings about refused or timed-out connections are
/// throttled per kind (`conn::LogThrottle`).
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    limits: ConnectionLimits,
) -> impl Stream<Item = Result<Guarded, std::io::Error>> {
    let (keep, closing) = tokio::sync::watch::channel(false);
    // Never closed by force: the sender lives as long as the listener's task.
    incoming_until(listener, tls, limits, closing, Some(keep))
}

/// `incoming`, and every connection it yielded ends (its reads and writes fail) once
/// `closing` turns true: a stopping node's drain bound, after which a connection that is
/// still open must not go on using the store the node has closed.
pub fn incoming_until(
    listener: TcpListener,
    tls: Arc<ServerTls>,
    limits: ConnectionLimits,
    closing: tokio::sync::watch::Receiver<bool>,
    keep: Option<tokio::sync::watch::Sender<bool>>,
) -> impl Stream<Item = Result<Guarded, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    let connections = Arc::new(Semaphore::new(limits.effective_max_connections()));
    let handshakes = Arc::new(Semaphore::new(limits.max_handshakes.max(1)));
    let per_ip = PerIp::new(limits.max_handshakes_per_ip, limits.max_connections_per_ip);
    let log = Arc::new(LogThrottle::default());
    tokio::spawn(async move {
        let _keep = keep;
        let mut accept_failing = false;
        let mut throttle = [Throttle::default(), Throttle::default()];
        loop {
            let permits = tokio::select! {
                permits = permits(&connections, &handshakes, &mut throttle) => permits,
                () = tx.closed() => return,
            };
            let Some((connection, handshaking)) = permits else {
                return;
            };
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (tcp, peer) = match accepted {
                Ok(conn) => {
                    accept_failing = false;
                    conn
                }
                Err(error) => {
                    if !accept_failing {
                        tracing::warn!(%error, "accept failed; retrying every 100 ms");
                    }
                    accept_failing = true;
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let mut slot = match per_ip.admit(peer.ip()) {
                Ok(slot) => slot,
                Err(cap) => {
                    if log.allow(cap.key()) {
                        tracing::warn!(%peer, cap = cap.key(), "R-NODE-3: too many connections from this address; connection closed");
                    }
                    drop(tcp);
                    continue;
                }
            };
            if let Err(error) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, %error, "cannot set TCP_NODELAY");
            }
            let acceptor = TlsAcceptor::from(tls.server_config());
            let tx = tx.clone();
            let log = log.clone();
            let closing = closing.clone();
            tokio::spawn(async move {
                let stream = handshake(acceptor, tcp, peer, limits.handshake_timeout, &log).await;
                drop(handshaking);
                slot.handshake_done();
                if let Some(stream) = stream {
                    let mut guarded = Guarded::new(stream, peer, limits, connection, slot, log);
                    guarded.closed = Some(forced_close(closing));
                    // A send error means the server stopped; the connection is simply dropped.
                    let _ = tx.send(Ok(guarded)).await;
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

/// At most one warning per `WARN_EVERY` for a cap that is reached: a flood must not
/// turn into a flood of log lines.
const WARN_EVERY: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Throttle(Option<tokio::time::Instant>);

impl Throttle {
    fn ready(&mut self) -> bool {
        let now = tokio::time::Instant::now();
        if self.0.is_some_and(|last| now < last + WARN_EVERY) {
            return false;
        }
        self.0 = Some(now);
        true
    }
}

/// A connection permit and a handshake permit, waiting for each; `None` once closed.
/// Warns (throttled) when a cap is reached.
async fn permits(
    connections: &Arc<Semaphore>,
    handshakes: &Arc<Semaphore>,
    throttle: &mut [Throttle; 2],
) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
    let connection = match connections.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            if throttle[0].ready() {
                tracing::warn!("connections.max_connections reached; new connections wait");
            }
            connections.clone().acquire_owned().await.ok()?
        }
    };
    let handshaking = match handshakes.clone().try_acquire_owned() {
        Ok(p) => p,
        Err(_) => {
            if throttle[1].ready() {
                tracing::warn!("connections.max_handshakes reached; new connections wait");
            }
            handshakes.clone().acquire_owned().await.ok()?
        }
    };
    Some((connection, handshaking))
}

async fn handshake(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
    log: &LogThrottle,
) -> Option<TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            let reason = refusal_reason(&error);
            if log.allow(reason) {
                tracing::warn!(%peer, %reason, %error, "R-NODE-3: TLS handshake refused");
            }
            None
        }
        Err(_) => {
            if log.allow("handshake timeout") {
                tracing::warn!(%peer, timeout_ms = timeout.as_millis() as u64, "R-NODE-3: TLS handshake not finished in time; connection dropped");
            }
            None
        }
    }
}

/// A short name for why a handshake failed: what the operator looks for in the log.
fn refusal_reason(error: &std::io::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match error.get_ref().and_then(|e| e.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "client certificate expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "client certificate not valid yet"
            }
            CertificateError::Revoked => "client certificate revoked",
            CertificateError::UnknownIssuer => "client certificate not issued by the federation CA",
            CertificateError::BadSignature => "client certificate signature invalid",
            _ => "client certificate refused",
        },
        Some(Error::NoCertificatesPresented) => "no client certificate",
        Some(Error::PeerIncompatible(_)) => "client does not speak TLS 1.3 with our settings",
        Some(Error::InvalidMessage(_)) => "not a TLS client hello",
        Some(Error::AlertReceived(_)) => "client aborted the handshake",
        Some(_) => "TLS error",
        None => "connection failed during the handshake",
    }
}

/// A TLS connection handed to tonic: until the client has sent its HTTP/2 preface, a
/// deadline applies, so a client that completes TLS and then sends nothing (or half a
/// preface) is disconnected. After the preface, a connection with no call open for
/// `idle_timeout` is closed (its reads end, so hyper drops it; with no call open
/// nothing is cut short, and a client's channel reconnects on its next call). It holds
/// the connection's permit and its address's slot until it closes.
pub struct Guarded {
    inner: TlsStream<TcpStream>,
    peer: SocketAddr,
    /// Bytes of the preface still to come; the deadline is dropped once it is zero.
    awaiting: usize,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Calls open on this connection (counted by `conn::CountStreams`).
    activity: Arc<Activity>,
    idle_timeout: Duration,
    /// The idle timer and the activity epoch it was armed at.
    idle: Option<(u64, Pin<Box<tokio::time::Sleep>>)>,
    log: Arc<LogThrottle>,
    /// Completes when the node's drain bound has passed (`incoming_until`).
    closed: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    _permit: OwnedSemaphorePermit,
    _slot: IpSlot,
}

fn closed_by_drain() -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the node stopped: the drain bound passed",
    )
}

/// Completes once `closing` turns true; never if its sender goes away first.
fn forced_close(
    mut closing: tokio::sync::watch::Receiver<bool>,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    Box::pin(async move {
        if closing.wait_for(|c| *c).await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

impl Guarded {
    fn new(
        inner: TlsStream<TcpStream>,
        peer: SocketAddr,
        limits: ConnectionLimits,
        permit: OwnedSemaphorePermit,
        slot: IpSlot,
        log: Arc<LogThrottle>,
    ) -> Guarded {
        Guarded {
            inner,
            peer,
            awaiting: PREFACE_BYTES,
            deadline: Some(Box::pin(tokio::time::sleep(limits.preface_timeout))),
            activity: Arc::new(Activity::default()),
            idle_timeout: limits.idle_timeout,
            idle: None,
            log,
            closed: None,
            _permit: permit,
            _slot: slot,
        }
    }

    /// Whether the node's drain bound has passed: the connection ends.
    fn forced(&mut self, cx: &mut Context<'_>) -> bool {
        self.closed
            .as_mut()
            .is_some_and(|c| c.as_mut().poll(cx).is_ready())
    }

    /// After the preface, with the reader waiting: whether the connection has had no call
    /// open for `idle_timeout`. Arms (or rearms) the timer as calls come and go.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let (open, epoch) = self.activity.snapshot();
        if open > 0 {
            self.idle = None;
            self.activity.wake_when_idle(cx.waker());
            return false;
        }
        if self.idle.as_ref().is_none_or(|(armed, _)| *armed != epoch) {
            self.idle = Some((epoch, Box::pin(tokio::time::sleep(self.idle_timeout))));
        }
        match self.idle.as_mut() {
            Some((_, timer)) => timer.as_mut().poll(cx).is_ready(),
            None => false,
        }
    }
}

/// What tonic puts in every request's extensions for a `Guarded` connection: the TLS
/// details (peer certificates, addresses) and the connection's count of open calls.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    pub tls: <TlsStream<TcpStream> as Connected>::ConnectInfo,
    pub(crate) activity: Arc<Activity>,
}

/// The client certificates of the connection `extensions` came on.
pub fn peer_certs(extensions: &http::Extensions) -> Option<Arc<Vec<CertificateDer<'static>>>> {
    match extensions.get::<ConnInfo>() {
        Some(info) => info.tls.peer_certs(),
        None => extensions
            .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
            .and_then(|info| info.peer_certs()),
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.forced(cx) {
            return Poll::Ready(Err(closed_by_drain()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = buf.filled().len() - before;
                if this.deadline.is_some() {
                    this.awaiting = this.awaiting.saturating_sub(read);
                    if this.awaiting == 0 {
                        this.deadline = None;
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                if let Some(deadline) = this.deadline.as_mut() {
                    if deadline.as_mut().poll(cx).is_ready() {
                        if this.log.allow("no preface") {
                            tracing::warn!(peer = %this.peer, "R-NODE-3: no HTTP/2 preface in time after the TLS handshake; disconnected");
                        }
                        return Poll::Ready(Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no HTTP/2 preface in time",
                        )));
                    }
                } else if this.idle_expired(cx) {
                    tracing::debug!(peer = %this.peer, idle_secs = this.idle_timeout.as_secs(), "connection idle with no call open; closed");
                    // End of stream: hyper closes the connection.
                    return Poll::Ready(Ok(()));
                }
                Poll::Pending
            }
            other => other,
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.forced(cx) {
            return Poll::Ready(Err(closed_by_drain()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl Connected for Guarded {
    type ConnectInfo = ConnInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        ConnInfo {
            tls: self.inner.connect_info(),
            activity: self.activity.clone(),
        }
    }
}

impl Material {
    /// Builds a config and revoked set from the CRL text, if the node has a CRL.
    fn generation(&self, crl_pem: Option<&[u8]>) -> Result<Current, TlsError> {
        let (crls, revoked) = match crl_pem {
            Some(pem) => self.parse_crls(pem)?,
            None => (Vec::new(), HashSet::new()),
        };
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots.clone(), self.provider.clone())
                .with_crls(crls)
                .build()?;
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Current {
            config: Arc::new(config),
            revoked,
            crl_pem: crl_pem.map(<[u8]>::to_vec),
        })
    }

    /// Parses every CRL in `pem` and checks it is signed by one of our CAs: rustls would
    /// only find a bad signature at the next handshake, and refuse every client then.
    /// Text without any CRL is refused too: a truncated or mistyped file must not quietly
    /// un-revoke everything (`pki init` writes a signed CRL that lists nothing).
    fn parse_crls(
        &self,
        pem: &[u8],
    ) -> Result<(Vec<CertificateRevocationListDer<'static>>, HashSet<Vec<u8>>), TlsError> {
        let crls = CertificateRevocationListDer::pem_slice_iter(pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Crl(e.to_string()))?;
        if crls.is_empty() {
            return Err(TlsError::Crl("no X509 CRL section found".into()));
        }
        let cas = self
            .ca_certs
            .iter()
            .filter_map(|der| x509_parser::parse_x509_certificate(der).ok())
            .map(|(_, cert)| cert)
            .collect::<Vec<_>>();
        let mut revoked = HashSet::new();
        for der in &crls {
            let (_, crl) =
                x509_parser::parse_x509_crl(der).map_err(|e| TlsError::Crl(e.to_string()))?;
            let signed = cas.iter().any(|ca| {
                ca.subject().as_raw() == crl.issuer().as_raw()
                    && crl.verify_signature(ca.public_key()).is_ok()
            });
            if !signed {
                return Err(TlsError::Crl(format!(
                    "issued by {}, which is not a trusted CA or did not sign it",
                    crl.issuer()
                )));
            }
            revoked.extend(
                crl.iter_revoked_certificates()
                    .map(|r| r.raw_serial().to_vec()),
            );
        }
        Ok((crls, revoked))
    }
}

/// Why a certificate names no single caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityUriError {
    #[error("certificate has no identity URI (SAN credit://<role>/<region>/<id>)")]
    Missing,
    /// Two `credit://` URIs name two parties; taking the first would be a guess.
    #[error(
        "certificate names {0} identity URIs (SAN credit://...); exactly one is allowed, so it names no caller"
    )]
    Several(usize),
}

/// The one `credit://` URI among the certificate's subject alternative names. Other URI
/// schemes are ignored; none, or more than one, is refused (R-NODE-3).
pub(crate) fn identity_uri<'a>(cert: &'a X509Certificate<'_>) -> Result<&'a str, IdentityUriError> {
    let san = match cert.subject_alternative_name() {
        Ok(Some(san)) => san,
        _ => return Err(IdentityUriError::Missing),
    };
    let mut uris = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri)
                if uri
                    .get(..9)
                    .is_some_and(|scheme| scheme.eq_ignore_ascii_case("credit://")) =>
            {
                Some(*uri)
            }
            _ => None,
        });
    match (uris.next(), uris.count()) {
        (None, _) => Err(IdentityUriError::Missing),
        (Some(uri), 0) => Ok(uri),
        (Some(_), more) => Err(IdentityUriError::Several(more + 1)),
    }
}

fn refuse(reason: impl std::fmt::Display) -> Status {
    Status::unauthenticated(format!("R-NODE-3: {reason}"))
}

/// A caller established from its certificate, with the certificate's serial so a
/// long-lived stream can be checked against later revocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    pub caller: CallerId,
    pub serial: Vec<u8>,
}

/// Who is calling, from the client certificate of the connection the request came on.
///
/// Runs on every RPC, so it parses only the leaf. The serial check catches certificates
/// revoked after their connection was established; the handshake caught the rest.
pub fn authenticate<T>(req: &Request<T>, tls: &ServerTls) -> Result<CallerId, Status> {
    authenticate_peer(req, tls).map(|a| a.caller)
}

/// `authenticate`, keeping the certificate's serial.
pub fn authenticate_peer<T>(req: &Request<T>, tls: &ServerTls) -> Result<Authenticated, Status> {
    let certs = peer_certs(req.extensions()).ok_or_else(|| refuse("no client certificate"))?;
    let leaf = certs
        .first()
        .ok_or_else(|| refuse("no client certificate"))?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| refuse(format_args!("client certificate unreadable: {e}")))?;
    if tls.is_revoked(cert.raw_serial()) {
        return Err(refuse("certificate revoked"));
    }
    let uri = identity_uri(&cert).map_err(refuse)?;
    let caller =
        CallerId::parse_uri(uri).map_err(|e| refuse(format_args!("identity URI {uri:?}: {e}")))?;
    Ok(Authenticated {
        caller,
        serial: cert.raw_serial().to_vec(),
    })
}

/// A tonic interceptor that authenticates every request and leaves the `CallerId` in its
/// extensions for handlers (`caller(&req)`), so the certificate is parsed once per RPC.
#[derive(Clone, Debug)]
pub struct Authenticator(pub Arc<ServerTls>);

impl tonic::service::Interceptor for Authenticator {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let caller = authenticate(&req, &self.0)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// The caller the `Authenticator` established for this request.
pub fn caller<T>(req: &Request<T>) -> Result<&CallerId, Status> {
    req.extensions()
        .get::<CallerId>()
        .ok_or_else(|| refuse("request was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::caller::Role;
    use crate::domain::region::RegionCode;
    use crate::identity::pki::DevCa;

    fn node_tls(ca: &DevCa, crl: Option<&str>) -> Result<ServerTls, TlsError> {
        let node = CallerId::new(Role::Node, RegionCode::parse("211300").unwrap(), "n");
        let issued = ca.issue(&node, &[]).unwrap();
        ServerTls::from_pem(ca.cert_pem(), &issued.cert_pem, &issued.key_pem, crl)
    }

    #[test]
    fn a_request_without_tls_is_unauthenticated() {
        let ca = DevCa::generate("test CA").unwrap();
        let tls = node_tls(&ca, None).unwrap();
        let status = authenticate(&Request::new(()), &tls).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "R-NODE-3: no client certificate");
        let status = caller(&Request::new(())).unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn a_crl_from_another_ca_is_refused_and_the_old_one_kept() {
        let ca = DevCa::generate("test CA").unwrap();
        let tls = node_tls(&ca, Some(&ca.crl_pem(&[vec![0x42]], 1).unwrap())).unwrap();
        assert!(tls.is_revoked(&[0x42]));
        let other = DevCa::generate("other CA").unwrap();
        let err = tls
            .set_crl_pem(&other.crl_pem(&[], 2).unwrap())
            .unwrap_err();
        assert!(matches!(err, TlsError::Crl(_)), "{err}");
        assert!(tls.is_revoked(&[0x42]));
        assert!(node_tls(&ca, Some(&other.crl_pem(&[], 1).unwrap())).is_err());
        tls.set_crl_pem(&ca.crl_pem(&[], 2).unwrap()).unwrap();
        assert!(!tls.is_revoked(&[0x42]));
        // Built from PEM: there is no file to reread.
        assert!(!tls.reload_crl().unwrap());
    }

    #[test]
    fn a_san_uri_with_a_multibyte_character_at_byte_nine_is_no_identity_and_no_panic() {
        use rcgen::{CertificateParams, CustomExtension, KeyPair};
        for uri in ["credit:/\u{e9}/x", "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"] {
            let bytes = uri.as_bytes();
            let mut inner = vec![0x86, bytes.len() as u8];
            inner.extend_from_slice(bytes);
            let mut san = vec![0x30, inner.len() as u8];
            san.extend_from_slice(&inner);
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            params
                .custom_extensions
                .push(CustomExtension::from_oid_content(&[2, 5, 29, 17], san));
            let key = KeyPair::generate().unwrap();
            let cert = params.self_signed(&key).unwrap();
            let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
            assert_eq!(
                identity_uri(&parsed),
                Err(IdentityUriError::Missing),
                "{uri}"
            );
        }
    }

    #[test]
    fn garbage_material_is_refused() {
        let ca = DevCa::generate("test CA").unwrap();
        let err = ServerTls::from_pem("not pem", ca.cert_pem(), "", None).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificates(_)), "{err}");
        assert!(
            node_tls(
                &ca,
                Some("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n")
            )
            .is_err()
        );
    }
}
