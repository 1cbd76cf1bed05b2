//! Consents, consent-gated queries and the usage log, end to end over mutual TLS
//! (R-REL-1..6, R-SEC-1, R-SEC-3): every consent check failing alone with its status and
//! a usage entry; a withdrawal at Lingyuan refusing a query at Liaoning within one sync
//! round; a public query masking identifiers; forwarded queries and history; checkpoints
//! kept by the parent.

mod common;

use std::time::Duration;

use chrono::Days;
use common::fed::{CHAOYANG, Fed, LIAONING, LINGYUAN};
use common::{eventually, push_one, wire};
use credit_node::devnet::DevNet;
use credit_node::domain::caller::Role;
use credit_node::domain::consent::{Consent, Purpose, Terms};
use credit_node::domain::record::{Draft, SubjectKind};
use credit_node::domain::region::RegionCode;
use credit_node::domain::usage::{Action, Outcome, UsageEntry};
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::policy::Catalog;
use credit_node::server::NodeHandle;
use credit_node::store::Change;
use tonic::Code;
use tonic::transport::Channel;

const BANK: &str = "credit://agency/211382/lingyuan-bank";

async fn channel(net: &DevNet, node: &NodeHandle, role: Role, region: &str, id: &str) -> Channel {
    let identity = ClientIdentity::load(&net.identity(role, region, id).unwrap()).unwrap();
    connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap()
}

async fn consents(
    net: &DevNet,
    node: &NodeHandle,
    region: &str,
) -> pb::consents_client::ConsentsClient<Channel> {
    pb::consents_client::ConsentsClient::new(
        channel(net, node, Role::Operator, region, "window-1").await,
    )
}

async fn agency(
    net: &DevNet,
    node: &NodeHandle,
    region: &str,
    id: &str,
) -> pb::query_client::QueryClient<Channel> {
    pb::query_client::QueryClient::new(channel(net, node, Role::Agency, region, id).await)
}

/// Power (consent class) and penalty (public class) records about a few subjects, pushed
/// at Lingyuan by their providers. Returns a natural-person subject that has both.
async fn seed_records(fed: &Fed) -> (String, Vec<Draft>) {
    let catalog = Catalog::builtin().unwrap();
    let period = common::previous_month();
    let drafts = credit_node::policy::sample::generate_drafts_in(
        &catalog,
        &["power", "admin_penalty"],
        60,
        4,
        7,
        &period,
    );
    let subject = drafts
        .iter()
        .filter(|d| d.subject_kind == Some(SubjectKind::Natural))
        .map(|d| d.subject_id.clone())
        .find(|s| {
            ["power", "admin_penalty"].iter().all(|c| {
                drafts
                    .iter()
                    .any(|d| &d.subject_id == s && d.category == *c)
            })
        })
        .expect("a natural person with power and penalty records");
    for (provider, category) in [
        ("lingyuan-power", "power"),
        ("lingyuan-amr", "admin_penalty"),
    ] {
        let batch: Vec<Draft> = drafts
            .iter()
            .filter(|d| d.category == category)
            .cloned()
            .collect();
        let mut client = pb::exchange_client::ExchangeClient::new(
            channel(&fed.net, fed.county(), Role::Provider, LINGYUAN, provider).await,
        );
        let r = push_one(&mut client, wire(&batch)).await.unwrap();
        assert!(r.outcomes.iter().all(|o| o.refusal.is_none()), "{r:?}");
    }
    let mine = drafts
        .into_iter()
        .filter(|d| d.subject_id == subject)
        .collect();
    (subject, mine)
}

/// Records at Lingyuan the subject's consent for `grantee` over power records; its id.
async fn grant_at_lingyuan(fed: &Fed, subject: &str, grantee: &str) -> String {
    consents(&fed.net, fed.county(), LINGYUAN)
        .await
        .grant(grant(subject, grantee, &["power"]))
        .await
        .unwrap()
        .into_inner()
        .terms
        .unwrap()
        .id
}

fn grant(subject: &str, grantee: &str, categories: &[&str]) -> pb::GrantRequest {
    let until = common::today() + Days::new(30);
    pb::GrantRequest {
        subject_id: subject.into(),
        grantee: grantee.into(),
        purpose: "lending".into(),
        purpose_text: "loan application 2026-117".into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        valid_from: String::new(),
        valid_until: until.to_string(),
        evidence: "SQ-2026-0042".into(),
    }
}

fn on_consent(
    subject: &str,
    consent: &str,
    purpose: &str,
    categories: &[&str],
) -> pb::QueryRequest {
    pb::QueryRequest {
        subject_id: subject.into(),
        purpose: purpose.into(),
        basis: pb::LegalBasis::Consent as i32,
        consent_id: consent.into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        scope: pb::Scope::Local as i32,
        ..Default::default()
    }
}

/// The last query entry: background work (a notice taken, a checkpoint) may write its
/// own entry after the query's.
fn last_usage(node: &NodeHandle) -> UsageEntry {
    last_of(node, Action::Query)
}

fn last_of(node: &NodeHandle, action: Action) -> UsageEntry {
    let n = node.store().stats().unwrap().usage_entries;
    let from = n.saturating_sub(8);
    node.store()
        .usage_since(from, 8)
        .unwrap()
        .into_iter()
        .rev()
        .map(|(_, e)| e.entry)
        .find(|e| e.action == action)
        .unwrap()
}

/// The refusal's status names the check, and the usage log has the refused query with
/// the subject, the consent and the check as its field.
fn assert_refused(node: &NodeHandle, status: &tonic::Status, code: Code, check: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{check}:")),
        "{status:?}"
    );
    let e = last_usage(node);
    assert_eq!(e.action, Action::Query);
    assert!(e.subject.is_some());
    match e.outcome {
        Outcome::Refused { field, rule, .. } => {
            assert_eq!(field, check);
            assert!(rule.starts_with("R-REL-"), "{rule}");
        }
        Outcome::Ok => panic!("the refusal was not logged: {e:?}"),
    }
}

/// `client`'s `query` is refused at `node` with FailedPrecondition, naming the consent
/// check `check` (see `assert_refused`).
async fn consent_refused(
    client: &mut pb::query_client::QueryClient<Channel>,
    node: &NodeHandle,
    query: pb::QueryRequest,
    check: &str,
) {
    let status = client.query(query).await.unwrap_err();
    assert_refused(node, &status, Code::FailedPrecondition, check);
}

/// Terms of a Lingyuan consent for the bank's lending over power records.
fn bank_terms(subject: &str, from: chrono::NaiveDate, until: chrono::NaiveDate) -> Terms {
    Terms {
        id: uuid::Uuid::now_v7(),
        subject_id: subject.into(),
        grantee: BANK.into(),
        purpose: Purpose::Lending,
        purpose_text: String::new(),
        categories: vec!["power".into()],
        valid_from: from,
        valid_until: until,
        evidence: "SQ-OLD".into(),
        recorded_by: "credit://operator/211382/window-1".into(),
        recorded_at_ms: common::wall_ms(),
        node: RegionCode::parse(LINGYUAN).unwrap(),
    }
}

/// A consent written straight into a node's store, signed by the node: for states the
/// Grant RPC refuses to make (already expired) and for forgeries.
fn stored_consent(node: &NodeHandle, subject: &str, edit: impl FnOnce(&mut Terms)) -> Consent {
    let today = common::today();
    let mut terms = bank_terms(subject, today - Days::new(60), today - Days::new(1));
    let consent = Consent::sign(terms.clone(), &node.node.signer).unwrap();
    edit(&mut terms);
    let consent = Consent { terms, ..consent };
    node.store()
        .append_local(Change::Consent(consent.clone()), Vec::new())
        .unwrap();
    consent
}

#[tokio::test]
async fn each_consent_check_fails_alone_with_its_status_and_a_usage_entry() {
    let fed = Fed::start().await;
    let county = fed.county();
    let (subject, mine) = seed_records(&fed).await;
    let power = mine.iter().filter(|d| d.category == "power").count();

    let granted = consents(&fed.net, county, LINGYUAN)
        .await
        .grant(grant(&subject, BANK, &["power"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(granted.state, "given");
    let id = granted.terms.unwrap().id;

    let mut bank = agency(&fed.net, county, LINGYUAN, "lingyuan-bank").await;
    let ok = bank
        .query(on_consent(&subject, &id, "lending", &[]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ok.answered_by, LINGYUAN);
    assert_eq!(
        ok.records.len(),
        power,
        "the consent covers power records only"
    );
    assert!(ok.records.iter().all(|r| r.category == "power"));
    let logged = last_usage(county);
    assert_eq!(logged.consent_id.as_deref(), Some(id.as_str()));
    assert_eq!(logged.purpose.as_deref(), Some("lending"));
    assert_eq!(logged.legal_basis.as_deref(), Some("consent"));
    assert_eq!(logged.count, power as u64);
    assert_eq!(logged.record_ids.len(), power);

    // Each check failing alone; a refused query changes no data.
    let before = county.store().fingerprint().unwrap();
    let mut other = agency(&fed.net, county, LINGYUAN, "other-bank").await;
    let query = on_consent(&subject, &id, "lending", &[]);
    consent_refused(&mut other, county, query, "grantee").await;

    let query = on_consent(&subject, &id, "subsidy", &[]);
    consent_refused(&mut bank, county, query, "purpose").await;

    let query = on_consent(&subject, &id, "lending", &["power", "admin_penalty"]);
    consent_refused(&mut bank, county, query, "categories").await;

    let unknown = uuid::Uuid::now_v7().to_string();
    let query = on_consent(&subject, &unknown, "lending", &[]);
    consent_refused(&mut bank, county, query, "consent_id").await;
    assert_eq!(before, county.store().fingerprint().unwrap());

    let expired = stored_consent(county, &subject, |_| {});
    let query = on_consent(&subject, &expired.terms.id.to_string(), "lending", &[]);
    consent_refused(&mut bank, county, query, "validity").await;

    // Signed as expired, then extended: the signature no longer matches.
    let forged = stored_consent(county, &subject, |t| {
        t.valid_until = common::today() + Days::new(10);
    });
    let query = on_consent(&subject, &forged.terms.id.to_string(), "lending", &[]);
    consent_refused(&mut bank, county, query, "signature").await;

    let mut ops = consents(&fed.net, county, LINGYUAN).await;
    let withdrawn = ops
        .withdraw(pb::WithdrawRequest {
            id: id.clone(),
            reason: "subject revoked in writing".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.state, "withdrawn");
    let query = on_consent(&subject, &id, "lending", &[]);
    consent_refused(&mut bank, county, query, "withdrawn").await;

    // Input errors name their field; roles that may not use a basis are denied.
    let mut bad = on_consent(&subject, &id, "speculation", &[]);
    let s = bank.query(bad.clone()).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(s.message().starts_with("purpose:"), "{s:?}");
    bad.purpose = "lending".into();
    bad.basis = pb::LegalBasis::Self_ as i32;
    let s = bank.query(bad).await.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains("R-REL-3"), "{s:?}");
    let listed = ops
        .list(pb::ListConsentsRequest {
            subject_id: subject.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.consents.len(), 3);
    // A provider may not record consents.
    let mut provider = pb::consents_client::ConsentsClient::new(
        channel(&fed.net, county, Role::Provider, LINGYUAN, "lingyuan-power").await,
    );
    let s = provider
        .grant(grant(&subject, BANK, &["power"]))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_withdrawal_at_lingyuan_refuses_a_query_at_liaoning_within_one_sync_round() {
    let fed = Fed::start().await;
    let (subject, mine) = seed_records(&fed).await;
    let power = mine.iter().filter(|d| d.category == "power").count();
    let grantee = "credit://agency/210000/liaoning-bank";
    let id = grant_at_lingyuan(&fed, &subject, grantee).await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let province = fed.province();
    assert!(
        eventually(Duration::from_secs(20), || async {
            province.store().consent(&uuid).unwrap().is_some()
                && province.store().records_of(&subject).unwrap().len() == mine.len()
        })
        .await,
        "the consent and the records reach Liaoning"
    );
    let mut bank = agency(&fed.net, province, LIAONING, "liaoning-bank").await;
    let answer = bank
        .query(on_consent(&subject, &id, "lending", &["power"]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.answered_by, LIAONING);
    assert_eq!(answer.records.len(), power);

    consents(&fed.net, fed.county(), LINGYUAN)
        .await
        .withdraw(pb::WithdrawRequest {
            id: id.clone(),
            reason: "withdrawn at the Lingyuan window".into(),
        })
        .await
        .unwrap();
    // One sync round: the withdrawal is the next changelog entry after the consent.
    assert!(
        eventually(Duration::from_secs(20), || async {
            province
                .store()
                .consent(&uuid)
                .unwrap()
                .is_some_and(|c| c.withdrawal.is_some())
        })
        .await
    );
    let query = on_consent(&subject, &id, "lending", &["power"]);
    consent_refused(&mut bank, province, query, "withdrawn").await;
}

#[tokio::test]
async fn a_federation_query_is_answered_above_logged_on_both_nodes_and_in_the_history() {
    let fed = Fed::start().await;
    let (subject, mine) = seed_records(&fed).await;
    let county = fed.county();
    let id = grant_at_lingyuan(&fed, &subject, BANK).await;
    let province = fed.province();
    assert!(
        eventually(Duration::from_secs(20), || async {
            province.store().records_of(&subject).unwrap().len() == mine.len()
        })
        .await
    );
    let mut bank = agency(&fed.net, county, LINGYUAN, "lingyuan-bank").await;
    let mut q = on_consent(&subject, &id, "lending", &[]);
    q.scope = pb::Scope::Federation as i32;
    // The consent may not have reached Liaoning yet: Lingyuan carries its signed copy.
    let answer = bank.query(q).await.unwrap().into_inner();
    assert_eq!(answer.answered_by, LIAONING);
    assert_eq!(answer.path, [LIAONING, CHAOYANG, LINGYUAN]);
    assert!(!answer.records.is_empty());
    let at_province = last_usage(province);
    assert_eq!(at_province.on_behalf_of.as_deref(), Some(BANK));
    assert!(at_province.caller.starts_with("credit://node/211300/"));
    assert_eq!(at_province.consent_id.as_deref(), Some(id.as_str()));
    let at_county = last_usage(county);
    assert_eq!(at_county.caller, BANK);
    assert!(
        at_county.detail.contains("answered by 210000"),
        "{at_county:?}"
    );

    let mut audit = pb::audit_client::AuditClient::new(
        channel(&fed.net, county, Role::Operator, LINGYUAN, "window-1").await,
    );
    let history = audit
        .history(pb::HistoryRequest {
            subject_id: subject.clone(),
            scope: pb::Scope::Federation as i32,
            on_behalf_of: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.nodes, [LINGYUAN, CHAOYANG, LIAONING]);
    assert!(history.errors.is_empty(), "{:?}", history.errors);
    let by_node = |n: &str| {
        history
            .entries
            .iter()
            .filter(|e| e.node == n && e.rpc == "Query")
            .count()
    };
    assert_eq!(by_node(LINGYUAN), 1);
    assert_eq!(by_node(CHAOYANG), 1);
    assert_eq!(by_node(LIAONING), 1);
    let above = history
        .entries
        .iter()
        .find(|e| e.node == LIAONING && e.rpc == "Query")
        .unwrap();
    assert_eq!(above.on_behalf_of, BANK);
    assert_eq!(above.purpose, "lending");
    assert_eq!(above.legal_basis, "consent");
    assert_eq!(above.consent_id, id);
}

#[tokio::test]
async fn a_public_query_masks_identifiers_and_withholds_non_public_records() {
    let fed = Fed::start().await;
    let (subject, mine) = seed_records(&fed).await;
    let penalties = mine
        .iter()
        .filter(|d| d.category == "admin_penalty")
        .count();
    let power = mine.len() - penalties;
    let mut anyone = agency(&fed.net, fed.county(), LINGYUAN, "news-agency").await;
    let answer = anyone
        .query(pb::QueryRequest {
            subject_id: subject.clone(),
            purpose: "other".into(),
            basis: pb::LegalBasis::Public as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(answer.masked);
    assert_eq!(answer.records.len(), penalties);
    assert_eq!(answer.withheld as usize, power);
    for r in &answer.records {
        let s = r.subject.as_ref().unwrap();
        assert!(
            r.content_hash.is_empty(),
            "the hash of the unmasked content is withheld"
        );
        assert_ne!(s.id, subject);
        assert!(s.id.contains('*'), "{}", s.id);
        assert!(
            s.name.contains('*') || s.name.chars().count() <= 1,
            "{}",
            s.name
        );
    }
}

#[tokio::test]
async fn checkpoints_reach_the_parent_and_the_operator_rpc_verifies_against_them() {
    let fed = Fed::start().await;
    seed_records(&fed).await;
    let county = fed.county();
    // A checkpoint now, rather than waiting for the minute.
    credit_node::access::checkpoint_now(
        county.store(),
        &county.node.signer,
        county.node.config.region,
        county.node.config.clock.signing_ms(), // wall-clock: signing times only
    )
    .unwrap()
    .expect("the log grew, so a checkpoint is due");
    let lingyuan = RegionCode::parse(LINGYUAN).unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            !fed.city()
                .store()
                .checkpoints(Some(&lingyuan))
                .unwrap()
                .is_empty()
                && !province_checkpoints(&fed, &lingyuan).is_empty()
        })
        .await,
        "the city and the province keep Lingyuan's checkpoint"
    );
    let mut audit = pb::audit_client::AuditClient::new(
        channel(&fed.net, county, Role::Operator, LINGYUAN, "window-1").await,
    );
    let report = audit
        .verify(pb::VerifyRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    assert!(report.parent_error.is_empty(), "{}", report.parent_error);
    assert_eq!(report.checkpoints, 2, "one held here, one from the parent");
    assert_eq!(report.parent_checkpoints, 1);
    // An agency may not verify; the denial is logged.
    let mut bank = pb::audit_client::AuditClient::new(
        channel(&fed.net, county, Role::Agency, LINGYUAN, "lingyuan-bank").await,
    );
    let s = bank.verify(pb::VerifyRequest {}).await.unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(matches!(
        last_of(county, Action::Audit).outcome,
        Outcome::Refused { .. }
    ));
}

fn province_checkpoints(
    fed: &Fed,
    node: &RegionCode,
) -> Vec<credit_node::domain::usage::Checkpoint> {
    fed.province().store().checkpoints(Some(node)).unwrap()
}

#[tokio::test]
async fn a_withdrawal_recorded_above_reaches_the_recording_node_by_notice() {
    let fed = Fed::start().await;
    let (subject, _) = seed_records(&fed).await;
    let id = grant_at_lingyuan(&fed, &subject, BANK).await;
    let uuid = uuid::Uuid::parse_str(&id).unwrap();
    let province = fed.province();
    assert!(
        eventually(Duration::from_secs(20), || async {
            province.store().consent(&uuid).unwrap().is_some()
        })
        .await
    );
    // The subject withdraws at the provincial service window.
    let withdrawn = consents(&fed.net, province, LIAONING)
        .await
        .withdraw(pb::WithdrawRequest {
            id: id.clone(),
            reason: "withdrawn at the provincial window".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(withdrawn.withdrawal.unwrap().node, LIAONING);
    let county = fed.county();
    assert!(
        eventually(Duration::from_secs(20), || async {
            county
                .store()
                .consent(&uuid)
                .unwrap()
                .is_some_and(|c| c.withdrawal.is_some())
        })
        .await,
        "Lingyuan applies the withdrawal the notice reports"
    );
    let mut bank = agency(&fed.net, county, LINGYUAN, "lingyuan-bank").await;
    let query = on_consent(&subject, &id, "lending", &[]);
    consent_refused(&mut bank, county, query, "withdrawn").await;
    // The city, between the two, holds it withdrawn too.
    assert!(
        eventually(Duration::from_secs(20), || async {
            fed.city()
                .store()
                .consent(&uuid)
                .unwrap()
                .is_some_and(|c| c.withdrawal.is_some())
        })
        .await
    );
}

#[tokio::test]
async fn a_caller_cannot_bring_its_own_copy_of_a_consent_or_read_another_window() {
    let fed = Fed::start().await;
    let (subject, _) = seed_records(&fed).await;
    let county = fed.county();
    // A consent validly signed by Lingyuan but held nowhere: only a forwarding child
    // may carry a copy, so an agency's copy is not looked at.
    let today = common::today();
    let terms = bank_terms(&subject, today, today + Days::new(10));
    let copy = Consent::sign(terms, &county.node.signer).unwrap();
    let mut q = on_consent(&subject, &copy.terms.id.to_string(), "lending", &[]);
    q.consent = Some(credit_node::rpc::convert::consent::consent_to_wire(
        &copy, today,
    ));
    let mut bank = agency(&fed.net, county, LINGYUAN, "lingyuan-bank").await;
    consent_refused(&mut bank, county, q, "consent_id").await;

    // An operator of another region is not this node's service window (R-REL-3).
    let own_query = || pb::QueryRequest {
        subject_id: subject.clone(),
        purpose: "other".into(),
        basis: pb::LegalBasis::Self_ as i32,
        legal_reference: "ID card checked".into(),
        ..Default::default()
    };
    let net = &fed.net;
    let window = |region, id| async move {
        pb::query_client::QueryClient::new(channel(net, county, Role::Operator, region, id).await)
    };
    let s = window(CHAOYANG, "window-9")
        .await
        .query(own_query())
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    assert!(s.message().contains("R-REL-3"), "{s:?}");
    // This node's window may.
    let answer = window(LINGYUAN, "window-1")
        .await
        .query(own_query())
        .await
        .unwrap()
        .into_inner();
    assert!(!answer.records.is_empty() && !answer.masked);
}
