//! Objections, retention and publication periods across the three levels, with a clock
//! the test controls (R-OBJ-1..3, R-SEC-2): an objection filed at Liaoning withholds the
//! record there at once and on every level within a sync round; each outcome (upheld,
//! deleted, corrected) propagates; refusals name their field and rule, are logged and
//! change nothing; an adverse record about a person one day past its five years is gone
//! at every level; credit repair waits for the minimum publication period and then
//! withdraws the record everywhere; a penalty past its publication period is no longer
//! public but still shared for statutory duty.

mod common;

use std::time::Duration;

use chrono::{Months, NaiveDate};
use common::fed::{CHAOYANG, Fed, LIAONING, LINGYUAN};
use common::{eventually, pull, push_one, wire};
use credit_node::domain::caller::Role;
use credit_node::domain::record::{Draft, Status, SubjectKind};
use credit_node::domain::usage::{Action, Outcome, UsageEntry};
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::policy::Catalog;
use credit_node::server::NodeHandle;
use tonic::Code;
use tonic::transport::Channel;
use uuid::Uuid;

const LIMIT: Duration = Duration::from_secs(20);

async fn channel(fed: &Fed, node: &NodeHandle, role: Role, region: &str, id: &str) -> Channel {
    let identity = ClientIdentity::load(&fed.net.identity(role, region, id).unwrap()).unwrap();
    connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap()
}

type Objections = pb::objections_client::ObjectionsClient<Channel>;

async fn operator(fed: &Fed, node: &NodeHandle, region: &str) -> Objections {
    Objections::new(channel(fed, node, Role::Operator, region, "window-1").await)
}

async fn puller(
    fed: &Fed,
    node: &NodeHandle,
    region: &str,
) -> pb::exchange_client::ExchangeClient<Channel> {
    pb::exchange_client::ExchangeClient::new(
        channel(fed, node, Role::Operator, region, "window-1").await,
    )
}

/// Lingyuan's provider `id` (`lingyuan-amr`, `lingyuan-power`) on the objection service.
async fn provider_objections(fed: &Fed, id: &str) -> Objections {
    Objections::new(channel(fed, fed.county(), Role::Provider, LINGYUAN, id).await)
}

/// Lingyuan's market regulator on the exchange service.
async fn lingyuan_amr(fed: &Fed) -> pb::exchange_client::ExchangeClient<Channel> {
    pb::exchange_client::ExchangeClient::new(
        channel(fed, fed.county(), Role::Provider, LINGYUAN, "lingyuan-amr").await,
    )
}

/// A Chaoyang client on the query service.
async fn chaoyang_query(fed: &Fed, role: Role, id: &str) -> pb::query_client::QueryClient<Channel> {
    pb::query_client::QueryClient::new(channel(fed, fed.city(), role, CHAOYANG, id).await)
}

/// Penalty drafts as the generator makes them: `n` about legal persons or natural ones.
fn penalties(kind: SubjectKind, n: usize, seed: u64) -> Vec<Draft> {
    let catalog = Catalog::builtin().unwrap();
    let period = common::previous_month();
    credit_node::policy::sample::generate_drafts_in(
        &catalog,
        &["admin_penalty"],
        200,
        200,
        seed,
        &period,
    )
    .into_iter()
    .filter(|d| d.subject_kind == Some(kind))
    .take(n)
    .collect()
}

/// Dates penalties the day before `today`, so they are within their publication period.
fn decided_yesterday(drafts: &mut [Draft], today: NaiveDate) -> NaiveDate {
    let decided = today.pred_opt().unwrap();
    for d in drafts {
        d.occurred_on = decided.to_string();
        d.ended_on = None;
        d.fields.insert("decided_on".into(), decided.to_string());
        d.fields.remove("publish_until");
        d.fields.remove("valid_until");
    }
    decided
}

/// Pushes `drafts` at Lingyuan as its market regulator; the records' ids.
async fn push_at_lingyuan(fed: &Fed, drafts: &[Draft]) -> Vec<Uuid> {
    let mut client = lingyuan_amr(fed).await;
    let r = push_one(&mut client, wire(drafts)).await.unwrap();
    assert!(r.outcomes.iter().all(|o| o.refusal.is_none()), "{r:?}");
    r.outcomes
        .iter()
        .map(|o| Uuid::parse_str(&o.record_id).unwrap())
        .collect()
}

fn nodes(fed: &Fed) -> [(&'static str, &NodeHandle); 3] {
    [
        (LINGYUAN, fed.county()),
        (CHAOYANG, fed.city()),
        (LIAONING, fed.province()),
    ]
}

/// Waits until every level holds `id` with `status` (and, when given, `version`).
async fn everywhere(fed: &Fed, id: Uuid, status: Status, version: Option<u64>) {
    for (region, node) in nodes(fed) {
        let ok = eventually(LIMIT, || async {
            node.store()
                .record(&id)
                .unwrap()
                .is_some_and(|r| r.status == status && version.is_none_or(|v| r.version == v))
        })
        .await;
        let held = node.store().record(&id).unwrap();
        assert!(
            ok,
            "{region}: record {id} is {held:?}, not {status:?} v{version:?}"
        );
    }
}

/// Waits until Lingyuan, the owner, holds case `id` at `min_version` or later.
async fn case_at_lingyuan(fed: &Fed, id: &str, min_version: u64) {
    let id = Uuid::parse_str(id).unwrap();
    let ok = eventually(LIMIT, || async {
        fed.county()
            .store()
            .case(&id)
            .unwrap()
            .is_some_and(|c| c.version >= min_version)
    })
    .await;
    assert!(ok, "Lingyuan does not hold case {id} at v{min_version}");
}

/// Whether an operator's pull at `node` returns record `id`.
async fn pulled(fed: &Fed, node: &NodeHandle, region: &str, subject: &str, id: Uuid) -> bool {
    pull(&mut puller(fed, node, region).await, subject)
        .await
        .unwrap()
        .iter()
        .any(|r| r.id == id.to_string())
}

fn objection(record: Uuid, reason: &str, evidence: &str) -> pb::FileObjection {
    pb::FileObjection {
        record_id: record.to_string(),
        reason: reason.into(),
        evidence: evidence.into(),
    }
}

/// Runs a purge as `region`'s operator at `node`.
async fn purge(fed: &Fed, node: &NodeHandle, region: &str, dry_run: bool) -> pb::PurgeResult {
    operator(fed, node, region)
        .await
        .purge(pb::PurgeRequest { dry_run })
        .await
        .unwrap()
        .into_inner()
}

fn resolution(case: &str, outcome: &str, fault: &str, reason: &str) -> pb::ResolveObjection {
    pb::ResolveObjection {
        case_id: case.into(),
        outcome: outcome.into(),
        reason: reason.into(),
        fault: fault.into(),
        ..Default::default()
    }
}

/// The ids a subject's own query (basis self, at an operator's window) returns at `node`.
async fn own_records(fed: &Fed, node: &NodeHandle, region: &str, subject: &str) -> Vec<String> {
    let mut query = pb::query_client::QueryClient::new(
        channel(fed, node, Role::Operator, region, "window-1").await,
    );
    query
        .query(pb::QueryRequest {
            subject_id: subject.into(),
            purpose: "other".into(),
            basis: pb::LegalBasis::Self_ as i32,
            legal_reference: "身份证 checked at the window".into(),
            scope: pb::Scope::Local as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .records
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Every version of record `id` in the node's changelog.
fn versions_of(node: &NodeHandle, id: Uuid) -> Vec<credit_node::domain::record::Record> {
    node.store()
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|(_, c)| c.into_record())
        .filter(|r| r.id == id)
        .collect()
}

/// The node's changelog holds `count` versions of `id`, each with `status` and no fields.
fn assert_every_version_scrubbed(
    node: &NodeHandle,
    region: &str,
    id: Uuid,
    count: usize,
    status: Status,
) {
    let versions = versions_of(node, id);
    assert_eq!(versions.len(), count, "{region}");
    assert!(
        versions
            .iter()
            .all(|v| v.content.fields.is_empty() && v.status == status),
        "{region}: an earlier version kept the fields: {versions:?}"
    );
}

fn usage(node: &NodeHandle) -> Vec<UsageEntry> {
    node.store()
        .usage_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c.entry)
        .collect()
}

/// Sends `request` (a call not yet awaited) and checks it is refused: the status has the
/// code and names `field`, the node's last usage entry is the refusal with `field` and
/// `rule`, and the store is as it was just before.
async fn refused<T: std::fmt::Debug>(
    node: &NodeHandle,
    request: impl Future<Output = Result<T, tonic::Status>>,
    code: Code,
    field: &str,
    rule: &str,
) {
    let before = node.store().fingerprint().unwrap();
    let status = request.await.unwrap_err();
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().starts_with(&format!("{field}:")),
        "{status:?}"
    );
    let last = usage(node).pop().unwrap();
    match &last.outcome {
        Outcome::Refused {
            field: f, rule: r, ..
        } => {
            assert_eq!((f.as_str(), r.as_str()), (field, rule), "{last:?}");
        }
        Outcome::Ok => panic!("not logged as refused: {last:?}"),
    }
    assert_eq!(
        node.store().fingerprint().unwrap(),
        before,
        "a refusal changed the store"
    );
}

/// The first record of a push was refused with `field` and `rule`.
fn assert_push_refused(result: &pb::PushResult, field: &str, rule: &str) {
    let refusal = result.outcomes[0].refusal.as_ref().expect("refused");
    assert_eq!(
        (refusal.field.as_str(), refusal.rule.as_str()),
        (field, rule)
    );
}

fn steps(node: &NodeHandle, record: Uuid) -> Vec<String> {
    usage(node)
        .into_iter()
        .filter(|e| e.record_ids.contains(&record) && e.outcome == Outcome::Ok)
        .filter(|e| matches!(e.action, Action::Objection | Action::Repair | Action::Purge))
        .map(|e| e.rpc)
        .collect()
}

#[tokio::test]
async fn an_objection_at_liaoning_suspends_every_copy_and_each_outcome_propagates() {
    let fed = Fed::start().await;
    let mut drafts = penalties(SubjectKind::Legal, 3, 11);
    decided_yesterday(&mut drafts, common::today());
    let ids = push_at_lingyuan(&fed, &drafts).await;
    for id in &ids {
        everywhere(&fed, *id, Status::Active, Some(1)).await;
    }
    let (r1, r2, r3) = (ids[0], ids[1], ids[2]);
    let subject1 = drafts[0].subject_id.clone();

    // Filed at Liaoning while the link to Chaoyang is down: withheld there at once,
    // although the owner has not heard of it.
    fed.city_link.set_target(None);
    fed.city_link.cut();
    let mut liaoning = operator(&fed, fed.province(), LIAONING).await;
    let case = liaoning
        .file(objection(
            r1,
            "the penalty was annulled on review",
            "凌源异议〔2026〕17号",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (case.owner_region.as_str(), case.filed_at_region.as_str()),
        (LINGYUAN, LIAONING)
    );
    assert!(case.deadlines.iter().any(|d| d.step == "check"));
    assert!(!pulled(&fed, fed.province(), LIAONING, &subject1, r1).await);
    assert!(!fed.county().store().objection_open(&r1));
    assert_eq!(
        fed.county().store().record(&r1).unwrap().unwrap().status,
        Status::Active
    );
    // The link returns: the owner suspends it, and its suspension reaches every level.
    fed.city_link.set_target(Some(fed.province().addr));
    everywhere(&fed, r1, Status::Suspended, Some(2)).await;
    for (region, node) in nodes(&fed) {
        assert!(node.store().objection_open(&r1), "{region}");
        assert!(
            !pulled(&fed, node, region, &subject1, r1).await,
            "{region} released it"
        );
    }

    // Only the owner handles the case.
    refused(
        fed.province(),
        liaoning.resolve(resolution(&case.id, "upheld", "platform", "x")),
        Code::FailedPrecondition,
        "case_id",
        "R-OBJ-2",
    )
    .await;
    let mut lingyuan = operator(&fed, fed.county(), LINGYUAN).await;
    case_at_lingyuan(&fed, &case.id, 1).await;
    // The provider's fault, but not yet referred to it.
    refused(
        fed.county(),
        lingyuan.resolve(resolution(
            &case.id,
            "upheld",
            "provider",
            "confirmed by the regulator",
        )),
        Code::FailedPrecondition,
        "fault",
        "R-OBJ-2",
    )
    .await;
    refused(
        fed.county(),
        lingyuan.file(objection(r2, " ", "e")),
        Code::InvalidArgument,
        "reason",
        "R-OBJ-1",
    )
    .await;

    // Referred to the provider, who replies through its own client.
    let checked = lingyuan
        .check(pb::CheckObjection {
            case_id: case.id.clone(),
            fault: "provider".into(),
            note: "refer to the market regulator".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checked.state, "provider_notified");
    assert!(checked.deadlines.iter().any(|d| d.step == "provider_reply"));
    let mut power = provider_objections(&fed, "lingyuan-power").await;
    refused(
        fed.county(),
        power.reply(pb::ReplyObjection {
            case_id: case.id.clone(),
            answer: "confirmed".into(),
            text: "not ours".into(),
        }),
        Code::PermissionDenied,
        "case_id",
        "R-OBJ-2",
    )
    .await;
    assert!(
        power
            .list(pb::ListObjections::default())
            .await
            .unwrap()
            .into_inner()
            .cases
            .is_empty()
    );
    let mut amr = provider_objections(&fed, "lingyuan-amr").await;
    let listed = amr
        .list(pb::ListObjections {
            open: true,
            overdue: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
    amr.reply(pb::ReplyObjection {
        case_id: case.id.clone(),
        answer: "confirmed".into(),
        text: "the decision stands; the review upheld it".into(),
    })
    .await
    .unwrap();
    // The outcome follows the provider's answer.
    refused(
        fed.county(),
        lingyuan.resolve(resolution(
            &case.id,
            "deleted",
            "provider",
            "deleted anyway",
        )),
        Code::FailedPrecondition,
        "outcome",
        "R-OBJ-3",
    )
    .await;
    let resolved = lingyuan
        .resolve(resolution(
            &case.id,
            "upheld",
            "provider",
            "the provider confirmed the record",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resolved.state, "resolved");
    assert_eq!(resolved.resolution.as_ref().unwrap().record_version, 3);
    // Upheld: the suspension is lifted everywhere.
    everywhere(&fed, r1, Status::Active, Some(3)).await;
    for (region, node) in nodes(&fed) {
        let ok = eventually(LIMIT, || async { !node.store().objection_open(&r1) }).await;
        assert!(ok, "{region} still withholds it");
        assert!(pulled(&fed, node, region, &subject1, r1).await, "{region}");
    }
    assert_eq!(
        steps(fed.county(), r1),
        ["Take", "Check", "Reply", "Resolve"]
    );
    assert_eq!(steps(fed.province(), r1), ["File"]);
    assert!(
        usage(fed.city())
            .iter()
            .any(|e| e.action == Action::Notice && e.detail.contains("forwarded"))
    );

    // Filed at Chaoyang while Lingyuan is cut off: withheld at Chaoyang at once, also from
    // a query Chaoyang forwards to Liaoning, whose copy is still active.
    let subject2 = drafts[1].subject_id.clone();
    let mut bank = chaoyang_query(&fed, Role::Agency, "chaoyang-bank").await;
    let public = pb::QueryRequest {
        subject_id: subject2.clone(),
        purpose: "other".into(),
        basis: pb::LegalBasis::Public as i32,
        scope: pb::Scope::Federation as i32,
        ..Default::default()
    };
    let answer = bank.query(public.clone()).await.unwrap().into_inner();
    assert_eq!(answer.answered_by, LIAONING);
    assert!(answer.records.iter().any(|r| r.id == r2.to_string()));
    fed.county_link.set_target(None);
    fed.county_link.cut();
    let mut chaoyang = operator(&fed, fed.city(), CHAOYANG).await;
    let case2 = chaoyang
        .file(objection(
            r2,
            "no such decision was ever issued",
            "朝阳异议〔2026〕3号",
        ))
        .await
        .unwrap()
        .into_inner();
    let answer = bank.query(public.clone()).await.unwrap().into_inner();
    assert_eq!(answer.answered_by, LIAONING);
    assert!(
        answer.records.iter().all(|r| r.id != r2.to_string()),
        "released from above"
    );
    assert!(answer.withheld >= 1);
    fed.county_link.set_target(Some(fed.city().addr));
    everywhere(&fed, r2, Status::Suspended, Some(2)).await;

    // Referred to the provider, who cannot verify it: deleted with the reason, on every
    // level; upholding it is refused.
    case_at_lingyuan(&fed, &case2.id, 0).await;
    lingyuan
        .check(pb::CheckObjection {
            case_id: case2.id.clone(),
            fault: "provider".into(),
            note: String::new(),
        })
        .await
        .unwrap();
    amr.reply(pb::ReplyObjection {
        case_id: case2.id.clone(),
        answer: "unverifiable".into(),
        text: "no such decision in our register".into(),
    })
    .await
    .unwrap();
    let resolve2 = |outcome: &str| {
        resolution(
            &case2.id,
            outcome,
            "provider",
            "the decision cannot be verified",
        )
    };
    refused(
        fed.county(),
        lingyuan.resolve(resolve2("upheld")),
        Code::FailedPrecondition,
        "outcome",
        "R-OBJ-3",
    )
    .await;
    lingyuan.resolve(resolve2("deleted")).await.unwrap();
    everywhere(&fed, r2, Status::Deleted, Some(3)).await;
    for (region, node) in nodes(&fed) {
        let r = node.store().record(&r2).unwrap().unwrap();
        assert!(
            r.status_reason.contains("R-OBJ-3") && r.status_reason.contains("cannot be verified"),
            "{region}: {}",
            r.status_reason
        );
        assert!(
            r.content.fields.is_empty(),
            "{region}: the tombstone kept the fields"
        );
        purge(&fed, node, region, false).await;
        assert_every_version_scrubbed(node, region, r2, 3, Status::Deleted);
    }
    // The provider's reference is closed: a re-push stores nothing.
    let mut provider = lingyuan_amr(&fed).await;
    let before = fed.county().store().fingerprint().unwrap();
    let again = push_one(&mut provider, wire(&drafts[1..2])).await.unwrap();
    assert_push_refused(&again, "provider_ref", "R-OBJ-3");
    assert_eq!(fed.county().store().fingerprint().unwrap(), before);

    // Filed at the owner, corrected by the platform at once: the new content everywhere.
    let case3 = lingyuan
        .file(objection(
            r3,
            "the fine amount was mistyped",
            "凌源异议〔2026〕18号",
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(case3.state, "open");
    refused(
        fed.county(),
        lingyuan.resolve(resolution(
            &case3.id,
            "corrected",
            "platform",
            "nothing given",
        )),
        Code::FailedPrecondition,
        "outcome",
        "R-OBJ-3",
    )
    .await;
    lingyuan
        .resolve(pb::ResolveObjection {
            case_id: case3.id.clone(),
            outcome: "corrected".into(),
            reason: "the amount is corrected from the decision".into(),
            fault: "platform".into(),
            set_fields: [("fine_amount".to_string(), "1.5".to_string())].into(),
        })
        .await
        .unwrap();
    everywhere(&fed, r3, Status::Active, Some(3)).await;
    for (region, node) in nodes(&fed) {
        let r = node.store().record(&r3).unwrap().unwrap();
        assert_eq!(
            r.content.fields.get("fine_amount").map(String::as_str),
            Some("1.5"),
            "{region}"
        );
    }
    assert_eq!(steps(fed.county(), r3), ["File", "Resolve"]);
}

#[tokio::test]
async fn an_adverse_record_about_a_person_one_day_past_five_years_is_gone_at_every_level() {
    let clock = common::clock();
    let fed = Fed::start_with_clock(clock.clone()).await;
    let mut draft = penalties(SubjectKind::Natural, 1, 5).remove(0);
    draft.ended_on = Some(draft.occurred_on.clone());
    let ended = NaiveDate::parse_from_str(&draft.occurred_on, "%Y-%m-%d").unwrap();
    let until = ended.checked_add_months(Months::new(60)).unwrap();
    let subject = draft.subject_id.clone();
    let again_draft = draft.clone();
    let id = push_at_lingyuan(&fed, &[draft]).await[0];
    everywhere(&fed, id, Status::Active, Some(1)).await;

    let own = || async {
        own_records(&fed, fed.province(), LIAONING, &subject)
            .await
            .contains(&id.to_string())
    };
    // The last day of the five years: still released everywhere.
    clock.set_today(until);
    for (region, node) in nodes(&fed) {
        assert!(pulled(&fed, node, region, &subject, id).await, "{region}");
    }
    assert!(own().await);
    // One day past: gone at every level at once, purge or no purge.
    clock.set_today(until.succ_opt().unwrap());
    for (region, node) in nodes(&fed) {
        assert!(!pulled(&fed, node, region, &subject, id).await, "{region}");
    }
    assert!(!own().await);

    // The origin purges it; the purge replaces every copy.
    let dry = purge(&fed, fed.county(), LINGYUAN, true).await;
    assert_eq!(dry.record_ids, [id.to_string()]);
    assert_eq!(
        fed.county().store().record(&id).unwrap().unwrap().status,
        Status::Active
    );
    let done = purge(&fed, fed.county(), LINGYUAN, false).await;
    assert_eq!(done.record_ids, [id.to_string()]);
    everywhere(&fed, id, Status::Expired, Some(2)).await;
    for (region, node) in nodes(&fed) {
        let r = node.store().record(&id).unwrap().unwrap();
        assert!(r.content.fields.is_empty(), "{region} kept the fields");
        assert!(r.status_reason.contains("R-SEC-2"), "{region}");
    }
    // Each level's next purge run also removes the fields from the versions before.
    for (region, node) in nodes(&fed) {
        purge(&fed, node, region, false).await;
        assert_every_version_scrubbed(node, region, id, 2, Status::Expired);
    }
    let purged = usage(fed.county())
        .into_iter()
        .find(|e| e.action == Action::Purge && e.record_ids == [id])
        .expect("a usage entry for the purge");
    assert_eq!(purged.subject.as_deref(), Some(subject.as_str()));
    // The provider cannot bring it back: past its five years it is no longer kept.
    let mut amr = lingyuan_amr(&fed).await;
    let r = push_one(&mut amr, wire(std::slice::from_ref(&again_draft)))
        .await
        .unwrap();
    assert_push_refused(&r, "ended_on", "R-SEC-2");
    // A second run finds nothing more to do.
    let again = purge(&fed, fed.county(), LINGYUAN, false).await;
    assert!(again.record_ids.is_empty());
}

#[tokio::test]
async fn repair_waits_for_the_minimum_period_and_an_ended_publication_is_shared_only() {
    let clock = common::clock();
    let fed = Fed::start_with_clock(clock.clone()).await;
    let mut drafts = penalties(SubjectKind::Legal, 2, 23);
    let today = clock.today();
    let decided = decided_yesterday(&mut drafts, today);
    drafts[0].fields.insert("severity".into(), "严重".into());
    drafts[1].fields.insert("severity".into(), "一般".into());
    let ids = push_at_lingyuan(&fed, &drafts).await;
    for id in &ids {
        everywhere(&fed, *id, Status::Active, Some(1)).await;
    }
    let mut lingyuan = operator(&fed, fed.county(), LINGYUAN).await;

    // A serious penalty is published for at least a year (Order No. 36).
    refused(
        fed.county(),
        lingyuan.repair(pb::RepairRequest {
            record_id: ids[0].to_string(),
            reason: "信用修复决定书 凌信修〔2026〕1号".into(),
        }),
        Code::FailedPrecondition,
        "record_id",
        "R-REL-1",
    )
    .await;
    // Only the origin repairs.
    refused(
        fed.province(),
        operator(&fed, fed.province(), LIAONING)
            .await
            .repair(pb::RepairRequest {
                record_id: ids[0].to_string(),
                reason: "x".into(),
            }),
        Code::FailedPrecondition,
        "record_id",
        "R-FED-1",
    )
    .await;

    // A year and a day later: repaired, and withdrawn from sharing on every level.
    clock.set_today(decided.checked_add_months(Months::new(12)).unwrap());
    lingyuan
        .repair(pb::RepairRequest {
            record_id: ids[0].to_string(),
            reason: "信用修复决定书 凌信修〔2026〕1号".into(),
        })
        .await
        .unwrap();
    everywhere(&fed, ids[0], Status::Repaired, Some(2)).await;
    assert_eq!(steps(fed.county(), ids[0]), ["Repair"]);
    let repaired = drafts[0].subject_id.clone();
    for (region, node) in nodes(&fed) {
        assert!(
            !pulled(&fed, node, region, &repaired, ids[0]).await,
            "{region} shares it"
        );
    }
    // The subject still sees its own record.
    assert!(
        own_records(&fed, fed.province(), LIAONING, &repaired)
            .await
            .contains(&ids[0].to_string())
    );

    // The general penalty's year has ended: not public, still shared for statutory duty.
    let subject = drafts[1].subject_id.clone();
    let ask = |basis: pb::LegalBasis| pb::QueryRequest {
        subject_id: subject.clone(),
        purpose: "other".into(),
        basis: basis as i32,
        legal_reference: "《行政处罚法》".into(),
        scope: pb::Scope::Local as i32,
        ..Default::default()
    };
    let public = chaoyang_query(&fed, Role::Agency, "chaoyang-bank").await;
    let general = ids[1].to_string();
    let answers = |client: &pb::query_client::QueryClient<Channel>, basis| {
        let mut client = client.clone();
        let req = ask(basis);
        async move {
            let answer = client.query(req).await.unwrap().into_inner();
            answer.records.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    // Public through the last day of its year.
    assert!(
        answers(&public, pb::LegalBasis::Public)
            .await
            .contains(&general),
        "not public"
    );
    clock.set_today(
        decided
            .checked_add_months(Months::new(12))
            .unwrap()
            .succ_opt()
            .unwrap(),
    );
    assert!(
        !answers(&public, pb::LegalBasis::Public)
            .await
            .contains(&general),
        "still public"
    );
    let duty = chaoyang_query(&fed, Role::Provider, "chaoyang-amr").await;
    assert!(
        answers(&duty, pb::LegalBasis::StatutoryDuty)
            .await
            .contains(&general),
        "not shared"
    );
}
