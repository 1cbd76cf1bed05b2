//! Mutual TLS against a real node (R-NODE-3): who cannot get in, and that a revocation
//! written by `pki revoke` takes effect without a restart.

mod common;

use std::time::Duration;

use common::*;
use credit_node::domain::caller::Role;
use credit_node::domain::usage::Outcome;
use credit_node::identity::client::{self, ClientIdentity, ExpectedServer};
use credit_node::identity::pki::DevCa;
use credit_node::pb::exchange_client::ExchangeClient;
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use rustls_pki_types::pem::PemObject;

/// A client identity whose certificate, signed by the federation CA, carries `uri`.
fn identity_with_uri(t: &TestNode, uri: &str) -> ClientIdentity {
    let ca_pem = std::fs::read_to_string(t.net.ca_dir().join("ca.pem")).unwrap();
    let ca_key = std::fs::read_to_string(t.net.ca_dir().join("ca.key")).unwrap();
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, KeyPair::from_pem(&ca_key).unwrap()).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .subject_alt_names
        .push(SanType::URI(uri.try_into().unwrap()));
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    ClientIdentity {
        ca_pem,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

async fn pull_as(
    t: &TestNode,
    identity: &ClientIdentity,
) -> Result<Vec<credit_node::pb::Record>, tonic::Status> {
    let channel = client::lazy(&t.endpoint(), identity, ExpectedServer::AnyNode).unwrap();
    pull(&mut ExchangeClient::new(channel), "91211382MA0Y3K1050").await
}

#[tokio::test]
async fn no_client_certificate_is_refused() {
    let t = TestNode::start().await;
    let ca_pem = std::fs::read_to_string(t.net.ca_dir().join("ca.pem")).unwrap();
    let config = client::client_config(&ca_pem, None, ExpectedServer::AnyNode).unwrap();
    let channel = client::lazy_with_config(&t.endpoint(), config).unwrap();
    let status = pull(&mut ExchangeClient::new(channel), "91211382MA0Y3K1050")
        .await
        .unwrap_err();
    assert_ne!(status.code(), tonic::Code::Ok);
    assert_eq!(t.usage_entries(), 0, "nothing reached an RPC");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let t = TestNode::start().await;
    let other = DevCa::generate("someone else's CA").unwrap();
    let caller =
        credit_node::domain::caller::CallerId::parse_uri("credit://operator/211382/ops").unwrap();
    let foreign = other.issue(&caller, &[]).unwrap();
    let ca_pem = std::fs::read_to_string(t.net.ca_dir().join("ca.pem")).unwrap();
    let identity = ClientIdentity {
        ca_pem,
        ..ClientIdentity::from(&foreign)
    };
    assert!(pull_as(&t, &identity).await.is_err());
    assert_eq!(t.usage_entries(), 0);
}

#[tokio::test]
async fn unknown_roles_and_malformed_uris_are_unauthenticated_and_logged() {
    let t = TestNode::start().await;
    for uri in [
        "credit://auditor/211382/x",
        "credit://operator/211382",
        "https://example.org/ops",
    ] {
        let n = t.usage_entries();
        let status = pull_as(&t, &identity_with_uri(&t, uri)).await.unwrap_err();
        assert_eq!(
            status.code(),
            tonic::Code::Unauthenticated,
            "{uri}: {status:?}"
        );
        assert!(
            status.message().contains("R-NODE-3"),
            "{uri}: {}",
            status.message()
        );
        assert_eq!(t.usage_entries(), n + 1, "{uri}");
        let entry = t.last_usage();
        assert_eq!(entry.caller, "unauthenticated");
        assert!(
            matches!(entry.outcome, Outcome::Refused { code, .. } if code == tonic::Code::Unauthenticated as i32)
        );
    }
}

/// `pki revoke` rewrites crl.pem; the running node rereads it: an open connection is
/// refused on its next RPC, and new connections fail at the handshake.
#[tokio::test]
async fn a_revocation_takes_effect_without_restart() {
    let t = TestNode::start().await;
    let ops = t.identity(Role::Operator, LINGYUAN, "ops");
    let identity = ClientIdentity::load(&ops).unwrap();
    let channel = client::connect(&t.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();
    let mut open = ExchangeClient::new(channel);
    pull(&mut open, "91211382MA0Y3K1050").await.unwrap();

    t.net.revoke(&ops).unwrap();
    let refused = eventually(Duration::from_secs(20), || {
        let mut open = open.clone();
        async move { pull(&mut open, "91211382MA0Y3K1050").await.is_err() }
    })
    .await;
    assert!(refused, "the revoked certificate was still served");
    let status = pull(&mut open, "91211382MA0Y3K1050").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        pull_as(&t, &identity).await.is_err(),
        "a new connection must fail too"
    );
    // Other holders are unaffected.
    let mut other = t.client(Role::Operator, LINGYUAN, "ops-2").await;
    pull(&mut other, "91211382MA0Y3K1050").await.unwrap();
}

/// A client checks that it reached a node: a provider's certificate does not pass.
#[tokio::test]
async fn a_client_refuses_a_server_that_is_not_a_node() {
    let t = TestNode::start().await;
    let ops = ClientIdentity::load(&t.identity(Role::Operator, LINGYUAN, "ops")).unwrap();
    // Expecting Chaoyang but reaching Lingyuan.
    let city = credit_node::domain::region::RegionCode::parse("211300").unwrap();
    assert!(
        client::connect(&t.endpoint(), &ops, ExpectedServer::Node(city))
            .await
            .is_err()
    );
}

/// A certificate revoked while its push stream is open is refused on the next batch,
/// and the refusal is logged.
#[tokio::test]
async fn a_revocation_ends_an_open_push_stream() {
    let t = TestNode::start().await;
    let amr = t.identity(Role::Provider, LINGYUAN, "lingyuan-amr");
    let identity = ClientIdentity::load(&amr).unwrap();
    let channel = client::connect(&t.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();
    let mut client = ExchangeClient::new(channel);
    let drafts = drafts("admin_penalty", 2, 21);
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut results = client
        .push(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(credit_node::pb::PushBatch {
        batch_ref: "1".into(),
        records: wire(&drafts[..1]),
    })
    .await
    .unwrap();
    let first = tokio_stream::StreamExt::next(&mut results)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.accepted, 1);

    t.net.revoke(&amr).unwrap();
    let serial = {
        let der = rustls_pki_types::CertificateDer::from_pem_file(amr.join("cert.pem")).unwrap();
        x509_parser::parse_x509_certificate(&der)
            .unwrap()
            .1
            .raw_serial()
            .to_vec()
    };
    let tls = t.node().node.tls.clone();
    let reloaded = eventually(Duration::from_secs(20), || {
        let (tls, serial) = (tls.clone(), serial.clone());
        async move { tls.is_revoked(&serial) }
    })
    .await;
    assert!(reloaded, "the node did not reread the CRL");
    let before = t.fingerprint();
    tx.send(credit_node::pb::PushBatch {
        batch_ref: "2".into(),
        records: wire(&drafts[1..]),
    })
    .await
    .unwrap();
    let second = tokio_stream::StreamExt::next(&mut results)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(second.code(), tonic::Code::Unauthenticated);
    assert!(second.message().contains("R-NODE-3"), "{second:?}");
    assert_eq!(
        t.fingerprint(),
        before,
        "nothing from the revoked stream was stored"
    );
    assert!(matches!(t.last_usage().outcome, Outcome::Refused { .. }));
}

/// A node whose certificate other nodes could not check its signatures with (here: one
/// from another CA) does not start: its consents (R-REL-4) and usage-log checkpoints
/// (R-SEC-3) would all be refused upstream. The error names the certificate file.
#[tokio::test]
async fn a_node_whose_certificate_cannot_sign_for_the_federation_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let net = devnet(dir.path());
    let config = net
        .node_config(LINGYUAN, "凌源市公共信用信息平台", &providers())
        .unwrap();
    let other = DevCa::generate("another CA").unwrap();
    let caller = credit_node::domain::caller::CallerId::new(
        Role::Node,
        LINGYUAN.parse().unwrap(),
        "lingyuan",
    );
    let issued = other.issue(&caller, &[]).unwrap();
    std::fs::write(&config.tls.cert, &issued.cert_pem).unwrap();
    std::fs::write(&config.tls.key, &issued.key_pem).unwrap();
    let err = match credit_node::server::start(config.clone()).await {
        Ok(_) => panic!("a node with another CA's certificate started"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("cannot sign what other nodes check")
            && err.contains(&config.tls.cert.display().to_string()),
        "{err}"
    );
}
