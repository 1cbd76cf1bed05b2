//! Each step's rules on their own: the refusals in the order the service meets them,
//! and what an accepted step makes of the case and the record.

use std::sync::Arc;

use chrono::TimeZone;

use super::*;
use crate::domain::record::SubjectKind;
use crate::policy::Catalog;
use crate::policy::publication::tests::record as a_record;

const HERE: &str = "211382";
const BY: &str = "credit://operator/211382/ops";

fn region(code: &str) -> RegionCode {
    RegionCode::parse(code).unwrap()
}

fn d(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// 10:00 in China on `day`, in Unix ms.
fn ms(day: &str) -> i64 {
    crate::domain::clock::CHINA
        .from_local_datetime(&d(day).and_hms_opt(10, 0, 0).unwrap())
        .earliest()
        .unwrap()
        .timestamp_millis()
}

fn at(day: &str) -> Actor {
    Actor {
        local: region(HERE),
        by: BY.into(),
        now_ms: ms(day),
        today: d(day),
    }
}

/// An adverse record this node is the origin of, version 1, active.
fn record() -> Record {
    a_record(
        SubjectKind::Legal,
        true,
        &[("decision_no", "凌市监罚〔2026〕1号")],
    )
}

/// The case about `record()` as its owner took it (version 1), received on `received`.
fn taken(received: &str) -> Case {
    let r = record();
    Case {
        id: Uuid::from_u128(1),
        record_id: r.id,
        subject_id: r.content.subject.id.clone(),
        owner: region(HERE),
        filed_at: region("210000"),
        filed_by: "credit://operator/210000/ops".into(),
        received_ms: ms(received),
        reason: "annulled on review".into(),
        evidence: "辽宁异议〔2026〕1号".into(),
        record_version: r.version,
        record_hash: r.content_hash,
        version: 1,
        checked: None,
        reply: None,
        resolution: None,
        path: vec![region(HERE)],
    }
}

fn checked(mut case: Case, fault: Fault, day: &str) -> Case {
    case.checked = Some(Checked {
        at_ms: ms(day),
        by: BY.into(),
        fault,
        note: String::new(),
    });
    case.version += 1;
    case
}

fn replied(mut case: Case, answer: Answer, day: &str) -> Case {
    case.reply = Some(Reply {
        at_ms: ms(day),
        by: "credit://provider/211382/p".into(),
        answer,
        text: "t".into(),
    });
    case.version += 1;
    case
}

fn validator() -> Validator {
    Validator::new(Arc::new(Catalog::builtin().unwrap()), Vec::<String>::new())
}

fn resolve_as(outcome: Outcome, fault: Fault) -> Resolve {
    Resolve {
        outcome,
        fault,
        reason: "told in writing".into(),
        set_fields: HashMap::new(),
    }
}

/// `resolve` with the built-in calendar and validator, the case the only one about the
/// record.
fn resolve_with(
    case: Case,
    record: Option<Record>,
    req: Resolve,
    day: &str,
) -> Result<Next, Refused> {
    let cases = vec![case.clone()];
    resolve(
        case,
        record,
        &cases,
        req,
        &Calendar::builtin(),
        &validator(),
        &at(day),
    )
}

/// `case` resolved: upheld, the platform's fault.
fn upheld(mut case: Case) -> Case {
    case.resolution = Some(Resolution {
        at_ms: 0,
        by: BY.into(),
        outcome: Outcome::Upheld,
        fault: Fault::Platform,
        reason: "r".into(),
        record_version: 1,
    });
    case
}

/// The platform's own error resolved as `outcome` on 2026-06-03, the day after the
/// check the tests make.
fn platform_resolves(
    case: Case,
    record: Option<Record>,
    outcome: Outcome,
) -> Result<Next, Refused> {
    resolve_with(
        case,
        record,
        resolve_as(outcome, Fault::Platform),
        "2026-06-03",
    )
}

fn refusal<T: std::fmt::Debug>(r: Result<T, Refused>) -> (Kind, String, &'static str) {
    let r = r.unwrap_err();
    (r.kind, r.field, r.rule)
}

fn precondition(field: &str, rule: &'static str) -> (Kind, String, &'static str) {
    (Kind::FailedPrecondition, field.to_string(), rule)
}

#[test]
fn filing_makes_version_0_owned_by_the_records_origin() {
    let mut r = record();
    r.origin = region("211300");
    let filing = Filing {
        record_id: r.id,
        reason: "wrong".into(),
        evidence: "ref".into(),
    };
    let mut here = at("2026-06-01");
    here.local = region("210000");
    let case = file(Uuid::from_u128(9), filing, Some(&r), vec![], &here).unwrap();
    assert_eq!(case.id, Uuid::from_u128(9));
    assert_eq!(
        (case.owner, case.filed_at),
        (region("211300"), region("210000"))
    );
    assert_eq!((case.version, case.state()), (0, "filed"));
    assert_eq!(case.received_ms, here.now_ms);
    assert_eq!(case.filed_by, BY);
    assert_eq!(
        (case.record_version, case.record_hash),
        (r.version, r.content_hash)
    );
    assert_eq!(case.subject_id, r.content.subject.id);
    assert!(case.path.is_empty());
}

#[test]
fn filing_is_refused_without_a_released_record_or_with_a_case_open() {
    let r = record();
    let filing = || Filing {
        record_id: r.id,
        reason: "wrong".into(),
        evidence: "ref".into(),
    };
    let at = at("2026-06-01");
    let go = |rec: Option<&Record>, cases: Vec<Case>| file(Uuid::nil(), filing(), rec, cases, &at);
    assert_eq!(
        refusal(go(None, vec![])),
        (Kind::NotFound, "record_id".into(), "R-OBJ-1")
    );
    for status in [RecordStatus::Deleted, RecordStatus::Expired] {
        let mut gone = r.clone();
        gone.status = status;
        assert_eq!(
            refusal(go(Some(&gone), vec![])),
            precondition("record_id", "R-OBJ-3")
        );
    }
    let open = taken("2026-05-20");
    let e = go(Some(&r), vec![open.clone()]).unwrap_err();
    assert_eq!(e.rule, "R-OBJ-3");
    assert!(e.message.contains(&open.id.to_string()), "{}", e.message);
    // A resolved case does not stand in the way of a new one.
    assert!(go(Some(&r), vec![upheld(open)]).is_ok());
}

#[test]
fn only_the_owner_changes_a_case_it_took_and_that_is_open() {
    let id = Uuid::from_u128(1);
    let here = region(HERE);
    assert_eq!(
        refusal(owned_open(None, &id, here)),
        (Kind::NotFound, "case_id".into(), "R-OBJ-1")
    );
    let mut elsewhere = taken("2026-06-01");
    elsewhere.owner = region("211300");
    let e = owned_open(Some(elsewhere), &id, here).unwrap_err();
    assert_eq!((e.kind, e.rule), (Kind::FailedPrecondition, "R-OBJ-2"));
    assert!(e.message.contains("211300"), "{}", e.message);
    let mut filed = taken("2026-06-01");
    filed.version = 0;
    let e = owned_open(Some(filed), &id, here).unwrap_err();
    assert!(
        e.message.ends_with("has not been taken yet"),
        "{}",
        e.message
    );
    let e = owned_open(Some(upheld(taken("2026-06-01"))), &id, here).unwrap_err();
    assert!(e.message.ends_with("is already resolved"), "{}", e.message);
    assert_eq!(
        owned_open(Some(taken("2026-06-01")), &id, here).unwrap().id,
        id
    );
}

#[test]
fn a_check_adds_a_version_once() {
    let at = at("2026-06-02");
    let next = check(
        taken("2026-06-01"),
        Fault::Provider,
        "to the regulator".into(),
        &at,
    )
    .unwrap();
    assert_eq!(next.case.version, 2);
    assert_eq!(next.case.state(), "provider_notified");
    assert_eq!(next.case.path, vec![region(HERE)]);
    let c = next.case.checked.as_ref().unwrap();
    assert_eq!(
        (c.at_ms, c.by.as_str(), c.note.as_str()),
        (at.now_ms, BY, "to the regulator")
    );
    assert!(next.record.is_none());
    assert_eq!(
        (next.usage.rpc.as_str(), next.usage.action),
        ("Check", Action::Objection)
    );
    assert!(
        next.usage.detail.ends_with("provider notified"),
        "{}",
        next.usage.detail
    );
    let platform = check(taken("2026-06-01"), Fault::Platform, String::new(), &at).unwrap();
    assert_eq!(platform.case.state(), "checked");
    assert_eq!(
        refusal(check(next.case, Fault::Platform, String::new(), &at)),
        precondition("case_id", "R-OBJ-2")
    );
}

#[test]
fn only_the_records_provider_replies_once_referred_and_only_once() {
    let at = at("2026-06-03");
    let r = record();
    let provider = r.content.provider_id.clone();
    let referred = checked(taken("2026-06-01"), Fault::Provider, "2026-06-02");
    let go = |case: Case, rec: Option<&Record>, who: &str, answer: Answer| {
        reply(case, rec, who, answer, "t".into(), &at)
    };
    assert_eq!(
        refusal(go(referred.clone(), Some(&r), "another", Answer::Confirmed)),
        (Kind::PermissionDenied, "case_id".into(), "R-OBJ-2")
    );
    assert_eq!(
        refusal(go(referred.clone(), None, &provider, Answer::Confirmed)),
        (Kind::PermissionDenied, "case_id".into(), "R-OBJ-2")
    );
    let platform = checked(taken("2026-06-01"), Fault::Platform, "2026-06-02");
    assert_eq!(
        refusal(go(platform, Some(&r), &provider, Answer::Confirmed)),
        precondition("case_id", "R-OBJ-2")
    );
    assert_eq!(
        refusal(go(
            taken("2026-06-01"),
            Some(&r),
            &provider,
            Answer::Confirmed
        )),
        precondition("case_id", "R-OBJ-2")
    );
    // Corrected, but the record is still the disputed content.
    assert_eq!(
        refusal(go(referred.clone(), Some(&r), &provider, Answer::Corrected)),
        precondition("answer", "R-OBJ-2")
    );
    let next = go(referred, Some(&r), &provider, Answer::Confirmed).unwrap();
    assert_eq!((next.case.version, next.case.state()), (3, "replied"));
    assert_eq!(next.case.reply.as_ref().unwrap().answer, Answer::Confirmed);
    assert!(next.record.is_none());
    assert_eq!(next.usage.rpc, "Reply");
    assert_eq!(
        refusal(go(next.case, Some(&r), &provider, Answer::Confirmed)),
        precondition("case_id", "R-OBJ-2")
    );
}

#[test]
fn upheld_lifts_the_suspension_unless_another_case_is_open() {
    let mut suspended = record();
    suspended.version = 2;
    suspended.status = RecordStatus::Suspended;
    suspended.status_reason = "R-OBJ-3: objection open".into();
    let case = checked(taken("2026-06-01"), Fault::Platform, "2026-06-02");
    let next = platform_resolves(case.clone(), Some(suspended.clone()), Outcome::Upheld).unwrap();
    let rec = next.record.as_ref().unwrap();
    assert_eq!((rec.version, rec.status), (3, RecordStatus::Active));
    assert_eq!(rec.status_reason, "");
    assert_eq!(rec.content, suspended.content);
    let res = next.case.resolution.as_ref().unwrap();
    assert_eq!((res.outcome, res.record_version), (Outcome::Upheld, 3));
    assert_eq!((next.case.version, next.case.state()), (3, "resolved"));
    assert_eq!((next.usage.rpc.as_str(), next.usage.count), ("Resolve", 1));

    let mut other = taken("2026-06-01");
    other.id = Uuid::from_u128(2);
    let cases = vec![case.clone(), other];
    let next = resolve(
        case,
        Some(suspended.clone()),
        &cases,
        resolve_as(Outcome::Upheld, Fault::Platform),
        &Calendar::builtin(),
        &validator(),
        &at("2026-06-03"),
    )
    .unwrap();
    // Still suspended for the other case: the record does not change.
    assert!(next.record.is_none());
    assert_eq!(next.case.resolution.unwrap().record_version, 2);
}

#[test]
fn deleted_leaves_a_tombstone_with_the_reason_and_no_fields() {
    let case = checked(taken("2026-06-01"), Fault::Platform, "2026-06-02");
    let next = platform_resolves(case.clone(), Some(record()), Outcome::Deleted).unwrap();
    let rec = next.record.unwrap();
    assert_eq!(rec.status, RecordStatus::Deleted);
    assert_eq!(
        rec.status_reason,
        format!("R-OBJ-3: told in writing (objection {})", case.id)
    );
    assert!(rec.content.fields.is_empty());
    assert_eq!(rec.content_hash, rec.content.hash());
    assert_eq!(rec.path, vec![region(HERE)]);
}

#[test]
fn an_outcome_does_not_undo_a_repair_or_a_purge() {
    let mut repaired = record();
    repaired.status = RecordStatus::Repaired;
    repaired.status_reason = "信用修复: x".into();
    let case = checked(taken("2026-06-01"), Fault::Platform, "2026-06-02");
    let next = platform_resolves(case.clone(), Some(repaired), Outcome::Upheld).unwrap();
    assert!(next.record.is_none());
    let mut purged = record();
    purged.status = RecordStatus::Expired;
    assert_eq!(
        refusal(platform_resolves(
            case.clone(),
            Some(purged),
            Outcome::Corrected
        )),
        precondition("outcome", "R-OBJ-3")
    );
    assert_eq!(
        refusal(platform_resolves(case, None, Outcome::Upheld)),
        precondition("case_id", "R-OBJ-3")
    );
}

#[test]
fn a_correction_must_change_the_disputed_content() {
    let case = checked(taken("2026-06-01"), Fault::Platform, "2026-06-02");
    // Nothing pushed and no fields given.
    assert_eq!(
        refusal(platform_resolves(
            case.clone(),
            Some(record()),
            Outcome::Corrected
        )),
        precondition("outcome", "R-OBJ-3")
    );
    // The provider pushed a new version: corrected as it stands, and released.
    let mut pushed = record();
    pushed
        .content
        .fields
        .insert("decision_no".into(), "凌市监罚〔2026〕2号".into());
    pushed.content_hash = pushed.content.hash();
    pushed.version = 2;
    let next = platform_resolves(case.clone(), Some(pushed.clone()), Outcome::Corrected).unwrap();
    assert!(next.record.is_none());
    assert_eq!(next.case.resolution.unwrap().record_version, 2);
    let mut suspended = pushed;
    suspended.status = RecordStatus::Suspended;
    let next =
        platform_resolves(case.clone(), Some(suspended.clone()), Outcome::Corrected).unwrap();
    let rec = next.record.unwrap();
    assert_eq!((rec.version, rec.status), (3, RecordStatus::Active));
    assert_eq!(rec.content, suspended.content);
    // Fields given go through the validator as a provider's draft would.
    let mut bad = resolve_as(Outcome::Corrected, Fault::Platform);
    bad.set_fields.insert("no_such_field".into(), "x".into());
    let e = resolve_with(case, Some(record()), bad, "2026-06-03").unwrap_err();
    assert_eq!(e.kind, Kind::InvalidArgument);
}

#[test]
fn on_the_providers_fault_the_outcome_follows_its_reply() {
    let r = record();
    let notified = checked(taken("2026-06-01"), Fault::Provider, "2026-06-02");
    let day = "2026-06-05";
    let go = |case: Case, outcome: Outcome, day: &str| {
        resolve_with(
            case,
            Some(r.clone()),
            resolve_as(outcome, Fault::Provider),
            day,
        )
    };
    // Not referred to the provider.
    let platform = checked(taken("2026-06-01"), Fault::Platform, "2026-06-02");
    assert_eq!(
        refusal(go(platform, Outcome::Upheld, day)),
        precondition("fault", "R-OBJ-2")
    );
    for (answer, expected) in [
        (Answer::Confirmed, Outcome::Upheld),
        (Answer::Unverifiable, Outcome::Deleted),
    ] {
        let case = replied(notified.clone(), answer, "2026-06-04");
        for outcome in [Outcome::Upheld, Outcome::Deleted, Outcome::Corrected] {
            let got = go(case.clone(), outcome, day);
            if outcome == expected {
                assert!(got.is_ok(), "{answer:?} -> {outcome:?}: {got:?}");
            } else {
                assert_eq!(refusal(got), precondition("outcome", "R-OBJ-3"));
            }
        }
    }
    // No reply: wait until it is due (ten working days from the check), then only delete.
    let e = go(notified.clone(), Outcome::Upheld, day).unwrap_err();
    assert!(e.message.contains("wait for it"), "{}", e.message);
    assert!(go(notified.clone(), Outcome::Deleted, day).is_err());
    let late = "2026-07-01";
    let e = go(notified.clone(), Outcome::Upheld, late).unwrap_err();
    assert!(e.message.contains("cannot be verified"), "{}", e.message);
    assert!(go(notified, Outcome::Deleted, late).is_ok());
}
