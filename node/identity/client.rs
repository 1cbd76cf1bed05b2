//! The client side of R-NODE-3, used by the CLI, tests, the bench and the uplink: dial a
//! node over mutual TLS 1.3 and make sure the far end really is a node (of the expected
//! region), not merely a holder of some certificate from the federation CA.
//!
//! A provider's or agency's certificate chains to the same CA, so chain and host name
//! alone would let any party impersonate a node towards its neighbours. The verifier
//! therefore also reads the server certificate's SAN URI.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};

use super::pki::{CA_CERT_FILE, CERT_FILE, IssuedCert, KEY_FILE};
use super::tls::identity_uri;
use crate::domain::caller::{CallerId, Role};
use crate::domain::region::RegionCode;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Pings keep idle uplinks alive through NAT and firewalls between county and city.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM material a party presents: its certificate and key, and the CA it trusts.
#[derive(Clone, Debug)]
pub struct ClientIdentity {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl ClientIdentity {
    /// Reads `ca.pem`, `cert.pem` and `key.pem` from an identity directory
    /// (`credit-node pki issue --out DIR`).
    pub fn load(dir: &Path) -> Result<ClientIdentity, ClientError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|source| ClientError::Read { path, source })
        };
        Ok(ClientIdentity {
            ca_pem: read(CA_CERT_FILE)?,
            cert_pem: read(CERT_FILE)?,
            key_pem: read(KEY_FILE)?,
        })
    }
}

impl From<&IssuedCert> for ClientIdentity {
    fn from(issued: &IssuedCert) -> Self {
        ClientIdentity {
            ca_pem: issued.ca_pem.clone(),
            cert_pem: issued.cert_pem.clone(),
            key_pem: issued.key_pem.clone(),
        }
    }
}

/// Which server a client accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpectedServer {
    /// Any node of the federation (CLI against a given address).
    AnyNode,
    /// The node of this region only (uplink to the configured parent).
    Node(RegionCode),
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: &'static str, reason: String },
    #[error("bad endpoint {endpoint:?}: {reason}")]
    Endpoint { endpoint: String, reason: String },
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("server certificate verifier: {0}")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    /// The server's certificate is valid but does not name the node we asked for.
    #[error("{endpoint}: {reason}")]
    WrongServer { endpoint: String, reason: String },
    #[error("cannot connect to {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
}

/// Why a server was refused after its chain checked out. Its `Debug` is the plain message
/// because rustls prints `CertificateError::Other` with `{:?}` into the TLS error text.
struct WrongServer(String);

impl std::fmt::Debug for WrongServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for WrongServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for WrongServer {}

fn wrong_server(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        WrongServer(format!("R-NODE-3: {reason}")),
    ))))
}

/// WebPKI (chain to our CA, host name, validity) and then: the leaf names a node, of the
/// expected region if one is given.
#[derive(Debug)]
struct NodeVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    expect: ExpectedServer,
}

impl ServerCertVerifier for NodeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        let (_, cert) = x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        let uri = identity_uri(&cert)
            .map_err(|e| wrong_server(format!("the server is not a node: {e}")))?;
        let server = CallerId::parse_uri(uri).map_err(|e| {
            wrong_server(format!(
                "the server is not a node: identity URI {uri:?}: {e}"
            ))
        })?;
        if server.role != Role::Node {
            return Err(wrong_server(format!(
                "the server is not a node: its certificate names {}",
                server.uri()
            )));
        }
        if let ExpectedServer::Node(region) = self.expect
            && server.region != region
        {
            return Err(wrong_server(format!(
                "the server is the wrong region: expected the node of {region}, its certificate names {}",
                server.uri()
            )));
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }

    fn root_hint_subjects(&self) -> Option<&[rustls::DistinguishedName]> {
        self.webpki.root_hint_subjects()
    }
}

/// The rustls config `connect` and `lazy` use: TLS 1.3, ALPN h2, the node-checking
/// verifier, and the client certificate `(cert_pem, key_pem)` if any. `None` exists for
/// tests that prove a node refuses anonymous clients; a real party always presents one.
pub fn client_config(
    ca_pem: &str,
    client_auth: Option<(&str, &str)>,
    expect: ExpectedServer,
) -> Result<Arc<ClientConfig>, ClientError> {
    let pem = |what: &'static str| {
        move |e: rustls_pki_types::pem::Error| ClientError::Pem {
            what,
            reason: e.to_string(),
        }
    };
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(ca.map_err(pem("CA certificate"))?)?;
    }
    let webpki =
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build()?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NodeVerifier { webpki, expect }));
    let mut config = match client_auth {
        Some((cert_pem, key_pem)) => {
            let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(pem("client certificate"))?;
            let key =
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(pem("client key"))?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Host and port of `https://host:port`, `https://[v6]:port` or bare `host:port`.
fn parse_endpoint(endpoint: &str) -> Result<(String, u16), ClientError> {
    let bad = |reason: &str| ClientError::Endpoint {
        endpoint: endpoint.to_string(),
        reason: reason.to_string(),
    };
    let rest = match endpoint.split_once("://") {
        Some(("https", rest)) => rest,
        Some(_) => return Err(bad("only https:// is served (mutual TLS, R-NODE-3)")),
        None => endpoint,
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => v6.split_once("]:"),
        None => rest.rsplit_once(':'),
    }
    .ok_or_else(|| bad("expected host:port"))?;
    if host.is_empty() || host.contains(['/', '@', '[', ']']) {
        return Err(bad("expected host:port"));
    }
    let port = port.parse().map_err(|_| bad("bad port"))?;
    Ok((host.to_string(), port))
}

/// The config a party dials with: its own certificate, and our node-checking verifier.
fn identity_config(
    identity: &ClientIdentity,
    expect: ExpectedServer,
) -> Result<Arc<ClientConfig>, ClientError> {
    client_config(
        &identity.ca_pem,
        Some((&identity.cert_pem, &identity.key_pem)),
        expect,
    )
}

/// The tonic endpoint for `host:port`. The URI is plain `http://` because TLS is done by
/// our connector, not by tonic (which would refuse `https://` without its own TLS config).
fn endpoint_for(endpoint: &str) -> Result<(Endpoint, Arc<str>, u16), ClientError> {
    let (host, port) = parse_endpoint(endpoint)?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let channel = Endpoint::from_shared(format!("http://{authority}"))
        .map_err(|e| ClientError::Endpoint {
            endpoint: endpoint.to_string(),
            reason: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    Ok((channel, host.into(), port))
}

/// TCP without Nagle (gRPC messages are small and latency-bound), then TLS.
async fn dial(
    tls: TlsConnector,
    host: Arc<str>,
    port: u16,
) -> std::io::Result<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tcp = TcpStream::connect((&*host, port)).await?;
    tcp.set_nodelay(true)?;
    Ok(TokioIo::new(tls.connect(name, tcp).await?))
}

/// Connects now and fails fast: a wrong server (not a node, wrong region, foreign CA)
/// is reported here. A server that refuses *our* certificate does so only on the first
/// RPC, since under TLS 1.3 the client's handshake completes before the server decides.
pub async fn connect(
    endpoint: &str,
    identity: &ClientIdentity,
    expect: ExpectedServer,
) -> Result<Channel, ClientError> {
    let tls = TlsConnector::from(identity_config(identity, expect)?);
    let (channel, host, port) = endpoint_for(endpoint)?;
    let connector = tower::service_fn(move |_: Uri| dial(tls.clone(), host.clone(), port));
    channel
        .connect_with_connector(connector)
        .await
        .map_err(|e| classify(endpoint, &e))
}

/// A channel that dials on first use and redials after failures (the uplink). Connection
/// errors, including a wrong server, surface as `Unavailable` on the RPCs.
pub fn lazy(
    endpoint: &str,
    identity: &ClientIdentity,
    expect: ExpectedServer,
) -> Result<Channel, ClientError> {
    lazy_with_config(endpoint, identity_config(identity, expect)?)
}

/// `lazy` with a config from `client_config`.
pub fn lazy_with_config(endpoint: &str, config: Arc<ClientConfig>) -> Result<Channel, ClientError> {
    let tls = TlsConnector::from(config);
    let (channel, host, port) = endpoint_for(endpoint)?;
    let connector = tower::service_fn(move |_: Uri| dial(tls.clone(), host.clone(), port));
    Ok(channel.connect_with_connector_lazy(connector))
}

/// Turns tonic's "transport error" into a message that says what went wrong, and a
/// `WrongServer` when our verifier refused the server.
fn classify(endpoint: &str, error: &(dyn std::error::Error + 'static)) -> ClientError {
    let mut reasons: Vec<String> = Vec::new();
    let mut next = Some(error);
    while let Some(err) = next {
        // `io::Error::source` skips the error it wraps; step into it by hand.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
            inner.and_then(|e| e.downcast_ref::<rustls::Error>())
            && let Some(wrong) = other.0.downcast_ref::<WrongServer>()
        {
            return ClientError::WrongServer {
                endpoint: endpoint.to_string(),
                reason: wrong.0.clone(),
            };
        }
        let text = err.to_string();
        if !reasons.iter().any(|r| r.contains(&text)) {
            reasons.push(text);
        }
        next = inner.or_else(|| err.source());
    }
    ClientError::Connect {
        endpoint: endpoint.to_string(),
        reason: reasons.join(": "),
    }
}

/// Why the node refused this party's own certificate, when `error` (an RPC's status or a
/// connection error, with its chain of causes) shows it. Under TLS 1.3 the client's side
/// of the handshake completes before the node has checked the client certificate, so the
/// refusal arrives as a TLS alert on the first RPC, deep in the error's causes (tokio-rustls
/// passes it on as text inside an `io::Error`), and the top of the chain says only
/// "transport error" or "operation was canceled".
pub fn refused_certificate(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut next = Some(error);
    while let Some(err) = next {
        // `io::Error::source` skips the error it wraps; step into it by hand.
        let inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|inner| inner as &(dyn std::error::Error + 'static));
        for e in [Some(err), inner].into_iter().flatten() {
            let alert = match e.downcast_ref::<rustls::Error>() {
                Some(rustls::Error::AlertReceived(alert)) => Some(format!("{alert:?}")),
                _ => e
                    .to_string()
                    .split_once("received fatal alert: ")
                    .map(|(_, alert)| alert.trim().to_string()),
            };
            if let Some(why) = alert.as_deref().and_then(alert_meaning) {
                return Some(why);
            }
        }
        next = inner.or_else(|| err.source());
    }
    None
}

/// What a TLS alert from the node says about the client's certificate.
fn alert_meaning(alert: &str) -> Option<&'static str> {
    Some(match alert {
        "CertificateExpired" => "expired (or not yet valid)",
        "UnknownCA" => "not issued by the federation CA",
        "CertificateRevoked" => "revoked",
        "CertificateRequired" => "none was presented",
        "BadCertificate" | "UnsupportedCertificate" | "CertificateUnknown" => {
            "not acceptable (bad or unsupported certificate)"
        }
        "AccessDenied" => "access denied",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_with_and_without_scheme() {
        let ok = |s: &str| parse_endpoint(s).unwrap();
        assert_eq!(ok("https://127.0.0.1:7443"), ("127.0.0.1".into(), 7443));
        assert_eq!(ok("https://localhost:7443/"), ("localhost".into(), 7443));
        assert_eq!(ok("localhost:1"), ("localhost".into(), 1));
        assert_eq!(ok("https://[::1]:7443"), ("::1".into(), 7443));
        for bad in [
            "http://127.0.0.1:7443",
            "https://127.0.0.1",
            "127.0.0.1:99999",
            ":7443",
            "https://h:1/path",
        ] {
            assert!(
                matches!(parse_endpoint(bad), Err(ClientError::Endpoint { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_missing_identity_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let err = ClientIdentity::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }
}
