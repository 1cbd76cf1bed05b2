//! The role table and provider registration (R-NODE-3, R-DATA-6, R-REL-4): every denial
//! is PermissionDenied naming the rule, is written to the usage log, and changes no data.

mod common;

use common::*;
use credit_node::domain::caller::Role;
use credit_node::domain::usage::Outcome;
use tonic::Code;

fn assert_denied(t: &TestNode, status: &tonic::Status, rule: &str, usage_before: u64) {
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains(rule),
        "{rule} not in {:?}",
        status.message()
    );
    assert_eq!(
        t.usage_entries(),
        usage_before + 1,
        "one usage entry per denial"
    );
    match t.last_usage().outcome {
        Outcome::Refused {
            code, rule: logged, ..
        } => {
            assert_eq!(
                (code, logged.as_str()),
                (Code::PermissionDenied as i32, rule)
            );
        }
        other => panic!("logged {other:?}"),
    }
}

type Client = credit_node::pb::exchange_client::ExchangeClient<tonic::transport::Channel>;

/// A push by `client` of one penalty (generated from `seed`) is denied under `rule`.
async fn push_denied(t: &TestNode, client: &mut Client, seed: u64, rule: &str) {
    let n = t.usage_entries();
    let status = push_one(client, wire(&drafts("admin_penalty", 1, seed)))
        .await
        .unwrap_err();
    assert_denied(t, &status, rule, n);
}

/// A pull by `client` is denied under `rule`.
async fn pull_denied(t: &TestNode, client: &mut Client, rule: &str) {
    let n = t.usage_entries();
    let status = pull(client, "91211382MA0Y3K1050").await.unwrap_err();
    assert_denied(t, &status, rule, n);
}

#[tokio::test]
async fn an_agency_may_neither_push_nor_pull() {
    let t = TestNode::start().await;
    let mut agency = t.client(Role::Agency, LINGYUAN, "procurement").await;
    let before = t.fingerprint();
    push_denied(&t, &mut agency, 1, "R-REL-4").await;
    pull_denied(&t, &mut agency, "R-REL-4").await;
    assert_eq!(t.fingerprint(), before);
}

#[tokio::test]
async fn a_provider_may_not_pull() {
    let t = TestNode::start().await;
    let mut amr = t.provider("lingyuan-amr").await;
    pull_denied(&t, &mut amr, "R-REL-4").await;
}

#[tokio::test]
async fn an_unregistered_provider_or_one_of_another_region_may_not_push() {
    let t = TestNode::start().await;
    let before = t.fingerprint();
    let mut stranger = t.provider("lingyuan-water").await;
    push_denied(&t, &mut stranger, 2, "R-DATA-6").await;
    // The registered id, but a certificate issued for Chaoyang.
    let mut elsewhere = t.client(Role::Provider, "211300", "lingyuan-amr").await;
    push_denied(&t, &mut elsewhere, 2, "R-DATA-6").await;
    assert_eq!(t.fingerprint(), before);
}

#[tokio::test]
async fn operators_pull_only_from_their_own_node_and_never_push() {
    let t = TestNode::start().await;
    let mut other = t.client(Role::Operator, "211300", "chaoyang-ops").await;
    pull_denied(&t, &mut other, "R-NODE-3").await;
    let mut ours = t.operator().await;
    push_denied(&t, &mut ours, 3, "R-DATA-4").await;
    assert!(
        pull(&mut ours, "91211382MA0Y3K1050")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A node never pushes; it pulls only where it is the configured parent or a child
/// (this Lingyuan node has neither, so Chaoyang's certificate is refused: R-REL-4;
/// `tests/tree.rs` has the parent and child that are answered).
#[tokio::test]
async fn nodes_may_not_push_nor_pull_outside_the_tree() {
    let t = TestNode::start().await;
    let mut city = t.client(Role::Node, "211300", "chaoyang").await;
    push_denied(&t, &mut city, 4, "R-NODE-5").await;
    pull_denied(&t, &mut city, "R-REL-4").await;
}

/// A provider pushes only the categories its config entry lists; the refusal is per
/// record, with the PermissionDenied code, and the rest of the batch is stored.
#[tokio::test]
async fn a_provider_pushes_only_its_categories() {
    let t = TestNode::start().await;
    let mut power = t.provider("lingyuan-power").await;
    let mut records = wire(&drafts("power", 2, 5));
    records.extend(wire(&drafts("admin_penalty", 1, 5)));
    let result = push_one(&mut power, records).await.unwrap();
    assert_eq!((result.accepted, result.rejected), (2, 1));
    let refusal = result.outcomes[2].refusal.as_ref().unwrap();
    assert_eq!(
        (refusal.code, refusal.field.as_str(), refusal.rule.as_str()),
        (Code::PermissionDenied as i32, "category", "R-DATA-2")
    );
}
