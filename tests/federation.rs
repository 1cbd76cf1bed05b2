//! Level-by-level upward sync (R-FED-1, R-NODE-5): what Lingyuan and Chaoyang accept
//! reaches Liaoning in full, through Chaoyang, with origin and path preserved.

mod common;

use std::time::Duration;

use common::fed::{self, CHAOYANG, Fed, LIAONING, LINGYUAN, holdings, union, wait_for_holdings};
use common::*;
use credit_node::domain::caller::Role;
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::pb::exchange_client::ExchangeClient;
use credit_node::pb::federation_client::FederationClient;

const LIMIT: Duration = Duration::from_secs(30);

/// A channel to `node` as client `id` of `role` in `region`.
async fn channel(
    f: &Fed,
    node: &credit_node::server::NodeHandle,
    role: Role,
    region: &str,
    id: &str,
) -> tonic::transport::Channel {
    let identity = ClientIdentity::load(&f.net.identity(role, region, id).unwrap()).unwrap();
    connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap()
}

async fn exchange(
    f: &Fed,
    node: &credit_node::server::NodeHandle,
    role: Role,
    region: &str,
    id: &str,
) -> ExchangeClient<tonic::transport::Channel> {
    ExchangeClient::new(channel(f, node, role, region, id).await)
}

async fn federation(
    f: &Fed,
    node: &credit_node::server::NodeHandle,
    role: Role,
    region: &str,
    id: &str,
) -> FederationClient<tonic::transport::Channel> {
    FederationClient::new(channel(f, node, role, region, id).await)
}

/// Opens a Sync stream (sending nothing) and returns its refusal.
async fn sync_refusal(client: &mut FederationClient<tonic::transport::Channel>) -> tonic::Status {
    let (_tx, rx) = tokio::sync::mpsc::channel::<pb::SyncUp>(1);
    client
        .sync(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err()
}

/// The record a pull for `subject` returns with the provider reference `provider_ref`.
async fn pulled(
    client: &mut ExchangeClient<tonic::transport::Channel>,
    subject: &str,
    provider_ref: &str,
) -> pb::Record {
    pull(client, subject)
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.provider_ref == provider_ref)
        .unwrap()
}

#[tokio::test]
async fn records_reach_the_province_through_the_city() {
    let f = Fed::start().await;
    let mut county_amr = exchange(&f, f.county(), Role::Provider, LINGYUAN, "lingyuan-amr").await;
    let mut city_amr = exchange(&f, f.city(), Role::Provider, CHAOYANG, "chaoyang-amr").await;
    let county_drafts = drafts("admin_penalty", 40, 31);
    let city_drafts = drafts("admin_license", 25, 32);
    let pushed = push_one(&mut county_amr, wire(&county_drafts)).await;
    assert_eq!(pushed.unwrap().accepted, 40);
    let pushed = push_one(&mut city_amr, wire(&city_drafts)).await;
    assert_eq!(pushed.unwrap().accepted, 25);

    let expected = union(&holdings(f.county()), &holdings(f.city()));
    assert_eq!(expected.len(), 65);
    let at_city = wait_for_holdings(f.city(), &expected, LIMIT).await;
    assert_eq!(
        at_city, expected,
        "the city holds its own and all of the county's"
    );
    let at_province = wait_for_holdings(f.province(), &expected, LIMIT).await;
    assert_eq!(
        at_province, expected,
        "the province holds everything below it"
    );

    // Origin and path are preserved and extended hop by hop.
    let first = &county_drafts[0];
    let mut ops = exchange(&f, f.province(), Role::Operator, LIAONING, "ops").await;
    let r = pulled(&mut ops, &first.subject_id, &first.provider_ref).await;
    assert_eq!(r.origin_region, LINGYUAN);
    assert_eq!(r.path, vec![LINGYUAN, CHAOYANG, LIAONING]);
    assert_eq!(r.provider_id, "lingyuan-amr");

    // A new version at the county replaces the old one upstream, under the same id.
    let mut changed = county_drafts[0].clone();
    changed.fields.insert("remarks".into(), "更正".into());
    let result = push_one(&mut county_amr, wire(&[changed])).await.unwrap();
    assert_eq!(result.outcomes[0].outcome, pb::Outcome::NewVersion as i32);
    let expected = union(&holdings(f.county()), &holdings(f.city()));
    assert_eq!(
        wait_for_holdings(f.province(), &expected, LIMIT).await,
        expected
    );
    let r = pulled(&mut ops, &first.subject_id, &first.provider_ref).await;
    assert_eq!((r.version, r.fields["remarks"].as_str()), (2, "更正"));
    assert_eq!(
        f.province().store().stats().unwrap().records,
        65,
        "a new version is not a new record"
    );
}

#[tokio::test]
async fn status_shows_topology_cursors_and_lag() {
    let f = Fed::start().await;
    let mut amr = exchange(&f, f.county(), Role::Provider, LINGYUAN, "lingyuan-amr").await;
    push_one(&mut amr, wire(&drafts("admin_penalty", 10, 33)))
        .await
        .unwrap();
    let expected = holdings(f.county());
    wait_for_holdings(f.province(), &expected, LIMIT).await;

    let mut ops = federation(&f, f.city(), Role::Operator, CHAOYANG, "ops").await;
    let ok = eventually(LIMIT, || {
        let mut ops = ops.clone();
        async move {
            let s = ops.status(pb::StatusRequest {}).await.unwrap().into_inner();
            let parent = s.parent.unwrap();
            parent.state == "connected"
                && parent.lag_entries == 0
                && s.children
                    .first()
                    .is_some_and(|c| c.connected && c.cursor == 10)
        }
    })
    .await;
    assert!(
        ok,
        "city status never showed a connected, caught-up uplink and child"
    );
    let s = ops.status(pb::StatusRequest {}).await.unwrap().into_inner();
    assert_eq!((s.region.as_str(), s.level.as_str()), (CHAOYANG, "city"));
    assert_eq!(s.parent.as_ref().unwrap().region, LIAONING);
    assert_eq!(s.children[0].region, LINGYUAN);
    assert_eq!(s.records, 10);

    // Only this node's operators read its status.
    let mut other = federation(&f, f.city(), Role::Operator, LINGYUAN, "ops").await;
    assert_eq!(
        other.status(pb::StatusRequest {}).await.unwrap_err().code(),
        tonic::Code::PermissionDenied
    );
}

/// A node accepts Sync only from its configured children, by certificate region.
#[tokio::test]
async fn only_configured_children_may_sync() {
    let f = Fed::start().await;
    let mut stranger = federation(&f, f.province(), Role::Node, "211400", "huludao").await;
    let status = sync_refusal(&mut stranger).await;
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(status.message().contains("R-FED-1"), "{}", status.message());
    // The county is a grandchild of the province, not a child.
    let mut county = federation(&f, f.province(), Role::Node, LINGYUAN, "lingyuan").await;
    assert_eq!(
        sync_refusal(&mut county).await.code(),
        tonic::Code::PermissionDenied
    );
    // A provider may not sync at all.
    let mut provider = federation(&f, f.city(), Role::Provider, LINGYUAN, "lingyuan-amr").await;
    assert_eq!(
        sync_refusal(&mut provider).await.code(),
        tonic::Code::PermissionDenied
    );
}

/// Notices travel down hop by hop to their target and are kept until acknowledged.
#[tokio::test]
async fn a_notice_travels_down_to_the_county() {
    let f = Fed::start().await;
    let mut ops = federation(&f, f.province(), Role::Operator, LIAONING, "ops").await;
    let notice = pb::Notice {
        kind: pb::NoticeKind::CorrectionRequest as i32,
        target_region: LINGYUAN.into(),
        record_id: "0190f0a0-0000-7000-8000-000000000001".into(),
        subject_id: "211382198002290134".into(),
        text: "the subject disputes this penalty".into(),
        ..Default::default()
    };
    // Objections are filed with Objections.File, which keeps the case; not through Notify.
    let forged = pb::Notice {
        kind: pb::NoticeKind::Objection as i32,
        ..notice.clone()
    };
    let err = ops.notify(forged).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert!(
        err.message().starts_with("kind:") && err.message().contains("R-OBJ-1"),
        "{err:?}"
    );
    let result = ops.notify(notice.clone()).await.unwrap().into_inner();
    assert_eq!(result.next_hop, CHAOYANG);
    let arrived = eventually(LIMIT, || async {
        f.county().store().inbox().unwrap().len() == 1
    })
    .await;
    assert!(arrived, "the notice never reached Lingyuan");
    let n = &f.county().store().inbox().unwrap()[0];
    assert_eq!(
        (n.from.as_str(), n.target.as_str(), n.id),
        (LIAONING, LINGYUAN, result.id)
    );
    let drained = eventually(LIMIT, || async {
        f.province()
            .store()
            .pending_notices(&credit_node::domain::region::RegionCode::parse(CHAOYANG).unwrap())
            .unwrap()
            .is_empty()
            && f.city()
                .store()
                .pending_notices(&credit_node::domain::region::RegionCode::parse(LINGYUAN).unwrap())
                .unwrap()
                .is_empty()
    })
    .await;
    assert!(drained, "acknowledged notices must leave the queues");
    // A target that is not below is refused.
    let mut bad = notice;
    bad.target_region = "110000".into();
    assert_eq!(
        ops.notify(bad).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
    let _ = fed::LIAONING;
}

/// Many notices for a child meet a backlog of changes from it on one Sync stream: neither
/// direction may wait on the other for ever (the parent keeps reading the child's batches
/// while notices wait for room; the child's acknowledgements never block its reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notices_and_an_upload_backlog_do_not_deadlock() {
    let f = Fed::start().await;
    let mut ops = federation(&f, f.province(), Role::Operator, LIAONING, "ops").await;
    let mut amr = exchange(&f, f.city(), Role::Provider, CHAOYANG, "chaoyang-amr").await;
    // The city's uplink goes away while notices and records pile up on both sides.
    f.city_link.set_target(None);
    f.city_link.cut();
    for i in 0..600 {
        let notice = pb::Notice {
            kind: pb::NoticeKind::CorrectionRequest as i32,
            target_region: CHAOYANG.into(),
            record_id: format!("r{i}"),
            text: "异议".repeat(2000),
            ..Default::default()
        };
        ops.notify(notice).await.unwrap();
    }
    let mut total = 0;
    for seed in 0..8u64 {
        total += push_one(&mut amr, wire(&drafts("admin_license", 1000, 100 + seed)))
            .await
            .unwrap()
            .accepted;
    }
    f.city_link.set_target(Some(f.province().addr));
    let chaoyang = credit_node::domain::region::RegionCode::parse(CHAOYANG).unwrap();
    let done = eventually(Duration::from_secs(60), || async {
        f.province().store().stats().unwrap().records == u64::from(total)
            && f.province()
                .store()
                .pending_notices(&chaoyang)
                .unwrap()
                .is_empty()
    })
    .await;
    assert!(
        done,
        "stalled: province holds {} of {total}, {} notices pending, city inbox {}",
        f.province().store().stats().unwrap().records,
        f.province()
            .store()
            .pending_notices(&chaoyang)
            .unwrap()
            .len(),
        f.city().store().inbox().unwrap().len()
    );
    assert_eq!(f.city().store().inbox().unwrap().len(), 600);
}
