//! R-NODE-3 across the wire: a real tonic server on 127.0.0.1:0 behind `incoming`, the
//! standard health service as the RPC, and clients built with `client::connect`/`lazy`.
//! Under TLS 1.3 a refused client certificate surfaces on the first RPC, so the tests
//! that expect the server to refuse the client use lazy channels and assert on the RPC.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Status};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use super::client::{self, ClientError, ClientIdentity, ExpectedServer};
use super::pki::{self, DevCa, IssuedCert, RevokeOutcome};
use super::tls::{Authenticator, ServerTls, TlsFiles, caller, incoming};
use crate::domain::caller::{CallerId, Role};
use crate::domain::region::RegionCode;

const CITY: &str = "211300";
const COUNTY: &str = "211382";

fn id(role: Role, region: &str, name: &str) -> CallerId {
    CallerId::new(role, RegionCode::parse(region).unwrap(), name)
}

/// A running node; dropping it shuts the server down.
struct Node {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<CallerId>>>,
    _stop: oneshot::Sender<()>,
}

impl Node {
    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.addr.port())
    }

    fn seen(&self) -> Vec<CallerId> {
        self.seen.lock().unwrap().clone()
    }
}

async fn start(tls: Arc<ServerTls>) -> Node {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let mut auth = Authenticator(tls.clone());
    // What a handler sees: the interceptor's `CallerId`, read back with `caller`.
    let svc = InterceptedService::new(health, move |req: Request<()>| {
        let req = auth.call(req)?;
        log.lock().unwrap().push(caller(&req)?.clone());
        Ok(req)
    });
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(
        Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming(listener, tls, Default::default()), async {
                let _ = stopped.await;
            }),
    );
    Node {
        addr,
        seen,
        _stop: stop,
    }
}

fn node_tls(ca: &DevCa, node: &IssuedCert, crl: Option<&str>) -> Arc<ServerTls> {
    Arc::new(ServerTls::from_pem(ca.cert_pem(), &node.cert_pem, &node.key_pem, crl).unwrap())
}

async fn city_node(ca: &DevCa, crl: Option<&str>) -> (Node, Arc<ServerTls>) {
    let cert = ca.issue(&id(Role::Node, CITY, "chaoyang"), &[]).unwrap();
    let tls = node_tls(ca, &cert, crl);
    (start(tls.clone()).await, tls)
}

async fn check(channel: Channel) -> Result<(), Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(drop)
}

/// A client certificate the server refused at the handshake. The client's TLS 1.3
/// handshake had already completed, so the RPC fails with whatever the connection died of:
/// usually the server's alert (`Unknown`, "transport error", source naming the alert),
/// sometimes just a closed connection.
fn assert_refused_at_handshake(status: &Status, alert: &str) {
    let text = format!("{status:?}");
    assert!(
        matches!(status.code(), Code::Unknown | Code::Unavailable),
        "{text}"
    );
    assert!(
        !text.contains("fatal alert") || text.contains(alert),
        "{text}"
    );
}

async fn rpc_lazily(node: &Node, identity: &ClientIdentity) -> Result<(), Status> {
    check(client::lazy(&node.endpoint(), identity, ExpectedServer::AnyNode).unwrap()).await
}

#[tokio::test]
async fn r_node_3_a_provider_is_served_and_the_handler_sees_its_caller_id() {
    let ca = DevCa::generate("test CA").unwrap();
    let (node, _tls) = city_node(&ca, None).await;
    let tax = id(Role::Provider, COUNTY, "lingyuan-tax");
    let identity = ClientIdentity::from(&ca.issue(&tax, &[]).unwrap());
    let region = RegionCode::parse(CITY).unwrap();
    let channel = client::connect(&node.endpoint(), &identity, ExpectedServer::Node(region))
        .await
        .unwrap();
    check(channel).await.unwrap();
    assert_eq!(node.seen(), vec![tax]);
}

#[tokio::test]
async fn r_node_3_a_client_without_certificate_is_refused() {
    let ca = DevCa::generate("test CA").unwrap();
    let (node, _tls) = city_node(&ca, None).await;
    let config = client::client_config(ca.cert_pem(), None, ExpectedServer::AnyNode).unwrap();
    let channel = client::lazy_with_config(&node.endpoint(), config).unwrap();
    let status = check(channel).await.unwrap_err();
    assert_refused_at_handshake(&status, "CertificateRequired");
    assert!(node.seen().is_empty());
}

#[tokio::test]
async fn r_node_3_a_certificate_from_another_ca_is_refused() {
    let ca = DevCa::generate("test CA").unwrap();
    let (node, _tls) = city_node(&ca, None).await;
    let other = DevCa::generate("other CA").unwrap();
    let stranger = other
        .issue(&id(Role::Provider, COUNTY, "tax"), &[])
        .unwrap();
    let identity = ClientIdentity {
        ca_pem: ca.cert_pem().to_string(),
        ..ClientIdentity::from(&stranger)
    };
    let status = rpc_lazily(&node, &identity).await.unwrap_err();
    assert_refused_at_handshake(&status, "UnknownCA");
    assert!(node.seen().is_empty());
}

#[tokio::test]
async fn r_node_3_a_revoked_certificate_is_refused_at_the_handshake() {
    let ca = DevCa::generate("test CA").unwrap();
    let agency = ca.issue(&id(Role::Agency, CITY, "court"), &[]).unwrap();
    let crl = ca.crl_pem(std::slice::from_ref(&agency.serial), 1).unwrap();
    let (node, tls) = city_node(&ca, Some(&crl)).await;
    assert!(tls.is_revoked(&agency.serial));
    let status = rpc_lazily(&node, &ClientIdentity::from(&agency))
        .await
        .unwrap_err();
    assert_refused_at_handshake(&status, "CertificateRevoked");
    // Another certificate of the same CA is unaffected.
    let court2 = ca.issue(&id(Role::Agency, CITY, "court2"), &[]).unwrap();
    rpc_lazily(&node, &ClientIdentity::from(&court2))
        .await
        .unwrap();
}

#[tokio::test]
async fn r_node_3_revoking_while_connected_refuses_the_next_rpc() {
    let ca = DevCa::generate("test CA").unwrap();
    let (node, tls) = city_node(&ca, None).await;
    let op = ca.issue(&id(Role::Operator, CITY, "wang"), &[]).unwrap();
    let identity = ClientIdentity::from(&op);
    let channel = client::connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();
    check(channel.clone()).await.unwrap();

    tls.set_crl_pem(&ca.crl_pem(std::slice::from_ref(&op.serial), 2).unwrap())
        .unwrap();
    let status = check(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "R-NODE-3: certificate revoked");
    // New connections are refused at the handshake by the reloaded config.
    let status = rpc_lazily(&node, &identity).await.unwrap_err();
    assert_refused_at_handshake(&status, "CertificateRevoked");
    assert_eq!(node.seen().len(), 1);
}

#[tokio::test]
async fn r_node_3_a_client_refuses_a_server_that_is_not_a_node() {
    let ca = DevCa::generate("test CA").unwrap();
    let impostor = id(Role::Provider, CITY, "tax");
    // A server certificate good in every other way: CA, host name, ServerAuth.
    let cert = ca
        .issue_as_server(&impostor, &["127.0.0.1".into()])
        .unwrap();
    let node = start(node_tls(&ca, &cert, None)).await;
    let me = ClientIdentity::from(&ca.issue(&id(Role::Agency, CITY, "court"), &[]).unwrap());
    let err = client::connect(&node.endpoint(), &me, ExpectedServer::AnyNode)
        .await
        .unwrap_err();
    let ClientError::WrongServer { reason, .. } = &err else {
        panic!("expected WrongServer, got {err}");
    };
    assert!(
        reason.contains("R-NODE-3: the server is not a node"),
        "{reason}"
    );
    assert!(reason.contains("credit://provider/211300/tax"), "{reason}");

    // A plain provider certificate (no ServerAuth) fails earlier, in WebPKI.
    let plain = ca.issue(&impostor, &[]).unwrap();
    let node = start(node_tls(&ca, &plain, None)).await;
    let err = client::connect(&node.endpoint(), &me, ExpectedServer::AnyNode)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn r_node_3_a_client_refuses_the_node_of_another_region() {
    let ca = DevCa::generate("test CA").unwrap();
    let county = ca.issue(&id(Role::Node, COUNTY, "lingyuan"), &[]).unwrap();
    let node = start(node_tls(&ca, &county, None)).await;
    let me = ClientIdentity::from(&ca.issue(&id(Role::Node, CITY, "chaoyang"), &[]).unwrap());
    let city = RegionCode::parse(CITY).unwrap();
    let err = client::connect(&node.endpoint(), &me, ExpectedServer::Node(city))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::WrongServer { reason, .. } if reason.contains("wrong region")),
        "{err}"
    );
    let county = RegionCode::parse(COUNTY).unwrap();
    let channel = client::connect(&node.endpoint(), &me, ExpectedServer::Node(county))
        .await
        .unwrap();
    check(channel).await.unwrap();
    assert_eq!(node.seen(), vec![id(Role::Node, CITY, "chaoyang")]);
}

fn files(ca_dir: &Path, node_dir: &Path) -> TlsFiles {
    TlsFiles {
        ca: ca_dir.join(pki::CA_CERT_FILE),
        cert: node_dir.join(pki::CERT_FILE),
        key: node_dir.join(pki::KEY_FILE),
        crl: Some(ca_dir.join(pki::CRL_FILE)),
    }
}

/// CA, node and client folders made with the `pki` file commands under one folder.
struct PkiFolders {
    ca: std::path::PathBuf,
    node: std::path::PathBuf,
    client: std::path::PathBuf,
}

/// Under `dir`: a CA in `ca/`, the Chaoyang node's files in `node/`, and the files of
/// `client` (a caller of Chaoyang) in `<folder>/`. The folders, the client's certificate,
/// and the node's TLS config read from its files.
fn pki_folders(
    dir: &Path,
    folder: &str,
    client: &CallerId,
) -> (PkiFolders, IssuedCert, Arc<ServerTls>) {
    let f = PkiFolders {
        ca: dir.join("ca"),
        node: dir.join("node"),
        client: dir.join(folder),
    };
    pki::init(&f.ca).unwrap();
    pki::issue(&f.ca, &id(Role::Node, CITY, "chaoyang"), &[], &f.node).unwrap();
    let issued = pki::issue(&f.ca, client, &[], &f.client).unwrap();
    let tls = Arc::new(ServerTls::from_files(&files(&f.ca, &f.node)).unwrap());
    (f, issued, tls)
}

#[tokio::test]
async fn r_node_3_pki_files_init_issue_revoke_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (folders, tax, tls) = pki_folders(dir.path(), "tax", &id(Role::Provider, CITY, "tax"));
    let (ca_dir, node_dir, tax_dir) = (folders.ca, folders.node, folders.client);
    assert!(matches!(
        pki::init(&ca_dir),
        Err(pki::PkiError::CaExists(_))
    ));
    let node = start(tls.clone()).await;
    let identity = ClientIdentity::load(&tax_dir).unwrap();
    let channel = client::connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();
    check(channel.clone()).await.unwrap();
    assert!(
        !tls.reload_crl().unwrap(),
        "untouched CRL counts as unchanged"
    );

    let cert = tax_dir.join(pki::CERT_FILE);
    let outcome = pki::revoke(&ca_dir, &cert).unwrap();
    assert_eq!(
        outcome,
        RevokeOutcome::Revoked {
            serial: tax.serial.clone(),
            crl_number: 2
        }
    );
    assert_eq!(
        pki::revoke(&ca_dir, &cert).unwrap(),
        RevokeOutcome::AlreadyRevoked {
            serial: tax.serial.clone()
        }
    );
    let crl = std::fs::read(ca_dir.join(pki::CRL_FILE)).unwrap();
    let der = rustls_pki_types::CertificateRevocationListDer::pem_slice_iter(&crl)
        .next()
        .unwrap()
        .unwrap();
    let (_, parsed) = x509_parser::parse_x509_crl(&der).unwrap();
    let listed: Vec<_> = parsed
        .iter_revoked_certificates()
        .map(|r| r.raw_serial().to_vec())
        .collect();
    assert_eq!(listed, vec![tax.serial.clone()]);

    assert!(tls.reload_crl().unwrap());
    assert!(tls.is_revoked(&tax.serial));
    let status = check(channel).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = rpc_lazily(&node, &identity).await.unwrap_err();
    assert_refused_at_handshake(&status, "CertificateRevoked");

    // A node restarted from the same files refuses the certificate too.
    let restarted = start(Arc::new(
        ServerTls::from_files(&files(&ca_dir, &node_dir)).unwrap(),
    ))
    .await;
    let status = rpc_lazily(&restarted, &identity).await.unwrap_err();
    assert_refused_at_handshake(&status, "CertificateRevoked");

    // A certificate of another CA cannot be revoked here.
    let other_dir = dir.path().join("other");
    pki::init(&other_dir).unwrap();
    let stranger_dir = dir.path().join("stranger");
    pki::issue(&other_dir, &id(Role::Agency, CITY, "x"), &[], &stranger_dir).unwrap();
    let err = pki::revoke(&ca_dir, &stranger_dir.join(pki::CERT_FILE)).unwrap_err();
    assert!(matches!(err, pki::PkiError::NotIssuedByCa { .. }), "{err}");
}

#[tokio::test]
async fn r_node_3_the_crl_watcher_applies_a_revocation_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (folders, op, tls) = pki_folders(dir.path(), "op", &id(Role::Operator, CITY, "li"));
    let (ca_dir, op_dir) = (folders.ca, folders.client);
    let watcher = tls.spawn_crl_watcher(Duration::from_millis(20));

    pki::revoke(&ca_dir, &op_dir.join(pki::CERT_FILE)).unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !tls.is_revoked(&op.serial) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "watcher never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A broken or emptied CRL file is refused and the revocation stays in force.
    for broken in [
        "",
        "garbage",
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    ] {
        std::fs::write(ca_dir.join(pki::CRL_FILE), broken).unwrap();
        assert!(tls.reload_crl().is_err(), "{broken:?}");
        assert!(tls.is_revoked(&op.serial));
    }
    drop(tls);
    tokio::time::timeout(Duration::from_secs(5), watcher)
        .await
        .expect("the watcher ends with its ServerTls")
        .unwrap();
}
