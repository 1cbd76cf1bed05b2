//! Push then pull, per-record outcomes, versions, and refusals that leave the store as
//! it was (R-DATA-1..4, R-NODE-4).

mod common;

use common::*;
use credit_node::domain::usage::Outcome;
use credit_node::pb;

/// A provider pushes valid records; an operator pulls them back with node-set fields.
#[tokio::test]
async fn push_then_pull() {
    let t = TestNode::start().await;
    let drafts = drafts("admin_penalty", 3, 1);
    let mut amr = t.provider("lingyuan-amr").await;
    let result = push_one(&mut amr, wire(&drafts)).await.unwrap();
    assert_eq!((result.accepted, result.rejected), (3, 0));
    assert!(
        result
            .outcomes
            .iter()
            .all(|o| o.outcome == pb::Outcome::Created as i32 && o.version == 1)
    );

    let mut ops = t.operator().await;
    let records = pull(&mut ops, &drafts[0].subject_id).await.unwrap();
    let mine: Vec<_> = records
        .iter()
        .filter(|r| r.provider_ref == drafts[0].provider_ref)
        .collect();
    assert_eq!(mine.len(), 1);
    let r = mine[0];
    assert_eq!(r.id, result.outcomes[0].record_id);
    assert_eq!(r.provider_id, "lingyuan-amr");
    assert_eq!(r.origin_region, LINGYUAN);
    assert_eq!(r.path, vec![LINGYUAN.to_string()]);
    assert_eq!(r.version, 1);
    assert_eq!(r.status, pb::RecordStatus::Active as i32);
    assert_eq!(r.disclosure, pb::DisclosureClass::Public as i32);
    assert_eq!(r.adverse, Some(true));
    assert_eq!(r.content_hash.len(), 32);
    assert_eq!(r.fields.len(), drafts[0].fields.len());
    // The pull is on record (R-SEC-3).
    let entry = t.last_usage();
    assert_eq!(entry.rpc, "PullBySubject");
    assert_eq!(
        entry.subject.as_deref(),
        Some(drafts[0].subject_id.as_str())
    );
    assert_eq!(entry.outcome, Outcome::Ok);
}

/// Re-pushing the same provider reference: identical is unchanged, different is a new
/// version of the same record.
#[tokio::test]
async fn versions_and_identical_repush() {
    let t = TestNode::start().await;
    let mut d = drafts("admin_penalty", 1, 2);
    let mut amr = t.provider("lingyuan-amr").await;
    let first = push_one(&mut amr, wire(&d)).await.unwrap();
    let id = first.outcomes[0].record_id.clone();
    let before = t.fingerprint();
    let again = push_one(&mut amr, wire(&d)).await.unwrap();
    assert_eq!(again.outcomes[0].outcome, pb::Outcome::Unchanged as i32);
    assert_eq!(again.outcomes[0].record_id, id);
    assert_eq!(
        t.fingerprint(),
        before,
        "an identical re-push changes nothing"
    );

    d[0].fields.insert("remarks".into(), "更正".into());
    let changed = push_one(&mut amr, wire(&d)).await.unwrap();
    assert_eq!(changed.outcomes[0].outcome, pb::Outcome::NewVersion as i32);
    assert_eq!(
        (
            changed.outcomes[0].record_id.as_str(),
            changed.outcomes[0].version
        ),
        (id.as_str(), 2)
    );
    let records = pull(&mut t.operator().await, &d[0].subject_id)
        .await
        .unwrap();
    let r = records.iter().find(|r| r.id == id).unwrap();
    assert_eq!((r.version, r.fields["remarks"].as_str()), (2, "更正"));
}

/// One bad record in a batch does not sink the good ones; the store holds exactly the
/// accepted ones, and the refusal names the field and the rule.
#[tokio::test]
async fn one_bad_record_does_not_sink_the_batch() {
    let t = TestNode::start().await;
    let mut d = drafts("admin_penalty", 3, 3);
    let other = if d[1].subject_id.ends_with('0') {
        "1"
    } else {
        "0"
    };
    d[1].subject_id.replace_range(17..18, other);
    let mut amr = t.provider("lingyuan-amr").await;
    let result = push_one(&mut amr, wire(&d)).await.unwrap();
    assert_eq!((result.accepted, result.rejected), (2, 1));
    let bad = &result.outcomes[1];
    assert_eq!(bad.outcome, pb::Outcome::Rejected as i32);
    let refusal = bad.refusal.as_ref().unwrap();
    assert_eq!(
        (refusal.code, refusal.field.as_str(), refusal.rule.as_str()),
        (
            tonic::Code::InvalidArgument as i32,
            "subject_id",
            "R-DATA-1"
        )
    );
    assert_eq!(t.node().store().stats().unwrap().records, 2);
    assert!(
        pull(&mut t.operator().await, &d[1].subject_id)
            .await
            .unwrap()
            .is_empty()
    );
}

fn natural_penalty() -> credit_node::domain::record::Draft {
    let mut d = drafts("admin_penalty", 40, 4)
        .into_iter()
        .find(|d| d.subject_kind == Some(credit_node::domain::record::SubjectKind::Natural))
        .unwrap();
    d.fields.remove("legal_representative");
    d
}

/// Each refusal: its code, field and rule, a usage entry, and an unchanged store.
#[tokio::test]
async fn every_refusal_leaves_the_store_unchanged() {
    let t = TestNode::start().await;
    let mut amr = t.provider("lingyuan-amr").await;
    // Something to leave unchanged.
    push_one(&mut amr, wire(&drafts("registration", 2, 5)))
        .await
        .unwrap();

    let base = natural_penalty();
    type Edit = fn(&mut credit_node::domain::record::Draft);
    type Case = (&'static str, Edit, &'static str, &'static str, tonic::Code);
    // Bad input is InvalidArgument; a category the provider is not registered for is
    // PermissionDenied.
    fn invalid(name: &'static str, edit: Edit, field: &'static str, rule: &'static str) -> Case {
        (name, edit, field, rule, tonic::Code::InvalidArgument)
    }
    fn denied(name: &'static str, edit: Edit, field: &'static str, rule: &'static str) -> Case {
        (name, edit, field, rule, tonic::Code::PermissionDenied)
    }
    let cases: Vec<Case> = vec![
        invalid(
            "wrong ID check character",
            |d| {
                let last = if d.subject_id.ends_with('1') {
                    "2"
                } else {
                    "1"
                };
                d.subject_id.replace_range(17..18, last)
            },
            "subject_id",
            "R-DATA-1",
        ),
        invalid(
            "impossible birth date",
            |d| {
                // 1990-02-30, with a correct check character for the body.
                let body = format!("{}19900230{}", &d.subject_id[..6], &d.subject_id[14..17]);
                let check = credit_node::policy::identifier::resident_id_check_char(&body).unwrap();
                d.subject_id = format!("{body}{check}");
            },
            "subject_id",
            "R-DATA-1",
        ),
        invalid(
            "prohibited field (English)",
            |d| {
                d.fields.insert("monthly_income".into(), "4500".into());
            },
            "fields.monthly_income",
            "R-DATA-3",
        ),
        invalid(
            "prohibited field (Chinese)",
            |d| {
                d.fields.insert("婚姻状况".into(), "已婚".into());
            },
            "fields.婚姻状况",
            "R-DATA-3",
        ),
        invalid(
            "unknown category",
            |d| d.category = "lottery".into(),
            "category",
            "R-DATA-2",
        ),
        denied(
            "category not registered for this provider",
            |d| d.category = "power".into(),
            "category",
            "R-DATA-2",
        ),
        denied(
            "unregistered category behind a full-width space",
            |d| d.category = "power\u{3000}".into(),
            "category",
            "R-DATA-2",
        ),
        invalid(
            "subject kind the category does not allow",
            |d| d.category = "registration".into(),
            "category",
            "R-DATA-2",
        ),
        invalid(
            "missing required field",
            |d| {
                d.fields.remove("decision_no");
            },
            "fields.decision_no",
            "R-DATA-2",
        ),
        invalid(
            "field not in the catalog",
            |d| {
                d.fields.insert("colour".into(), "red".into());
            },
            "fields.colour",
            "R-DATA-2",
        ),
        invalid(
            "missing subject kind",
            |d| d.subject_kind = None,
            "subject_kind",
            "R-DATA-1",
        ),
        invalid(
            "occurred in the future",
            |d| d.occurred_on = "2999-01-01".into(),
            "occurred_on",
            "R-DATA-4",
        ),
        invalid(
            "bad period",
            |d| d.period = "2026-13".into(),
            "period",
            "R-DATA-5",
        ),
    ];
    for (name, edit, field, rule, code) in cases {
        let mut d = base.clone();
        edit(&mut d);
        let before = t.fingerprint();
        let usage_before = t.usage_entries();
        let result = push_one(&mut amr, wire(&[d])).await.unwrap();
        assert_eq!((result.accepted, result.rejected), (0, 1), "{name}");
        let r = result.outcomes[0].refusal.as_ref().unwrap();
        assert_eq!(
            (r.field.as_str(), r.rule.as_str(), r.code),
            (field, rule, code as i32),
            "{name}: {}",
            r.message
        );
        assert_eq!(t.fingerprint(), before, "{name}: store changed");
        assert_eq!(
            t.usage_entries(),
            usage_before + 1,
            "{name}: one usage entry"
        );
        let entry = t.last_usage();
        match &entry.outcome {
            Outcome::Refused {
                rule: logged,
                field: logged_field,
                ..
            } => {
                assert_eq!(
                    (logged.as_str(), logged_field.as_str()),
                    (rule, field),
                    "{name}"
                )
            }
            other => panic!("{name}: logged {other:?}"),
        }
    }
}

/// A provider cannot set what only the origin node sets (R-SEC-1).
#[tokio::test]
async fn node_set_fields_are_refused() {
    let t = TestNode::start().await;
    let mut amr = t.provider("lingyuan-amr").await;
    let mut r = wire(&drafts("admin_penalty", 1, 6)).remove(0);
    r.version = 7;
    let result = push_one(&mut amr, vec![r]).await.unwrap();
    let refusal = result.outcomes[0].refusal.as_ref().unwrap();
    assert_eq!(
        (refusal.field.as_str(), refusal.rule.as_str()),
        ("version", "R-SEC-1")
    );
}

/// A batch over the limit is refused whole, with the stream's status.
#[tokio::test]
async fn oversized_batch_is_refused_whole() {
    let t = TestNode::start().await;
    let mut amr = t.provider("lingyuan-amr").await;
    let one = wire(&drafts("admin_penalty", 1, 7)).remove(0);
    let before = t.fingerprint();
    let status = push_one(&mut amr, vec![one; credit_node::exchange::MAX_BATCH + 1])
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("R-NODE-2"),
        "{}",
        status.message()
    );
    assert_eq!(t.fingerprint(), before);
}

/// Several batches on one stream come back in order, one result each.
#[tokio::test]
async fn a_stream_of_batches() {
    let t = TestNode::start().await;
    let mut amr = t.provider("lingyuan-amr").await;
    let d = drafts("admin_license", 50, 8);
    let batches: Vec<pb::PushBatch> = d
        .chunks(10)
        .enumerate()
        .map(|(i, c)| pb::PushBatch {
            batch_ref: format!("b{i}"),
            records: wire(c),
        })
        .collect();
    let mut results = amr
        .push(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let mut refs = Vec::new();
    while let Some(r) = tokio_stream::StreamExt::next(&mut results).await {
        let r = r.unwrap();
        assert_eq!(
            r.accepted,
            10,
            "{:?}",
            r.outcomes
                .iter()
                .filter_map(|o| o.refusal.clone())
                .collect::<Vec<_>>()
        );
        refs.push(r.batch_ref);
    }
    assert_eq!(refs, ["b0", "b1", "b2", "b3", "b4"]);
    assert_eq!(t.node().store().stats().unwrap().records, 50);
}

/// Everything acknowledged survives a restart of the node on the same data folder.
#[tokio::test]
async fn restart_keeps_everything_acknowledged() {
    let mut t = TestNode::start().await;
    let d = drafts("admin_penalty", 20, 9);
    let result = push_one(&mut t.provider("lingyuan-amr").await, wire(&d))
        .await
        .unwrap();
    assert_eq!(result.accepted, 20);
    let before = t.fingerprint();
    t.restart().await;
    assert_eq!(t.fingerprint(), before);
    let records = pull(&mut t.operator().await, &d[0].subject_id)
        .await
        .unwrap();
    assert!(records.iter().any(|r| r.provider_ref == d[0].provider_ref));
}

/// A batch the node cannot read (here: over its message size limit) ends the stream with
/// an error the client sees, not a quiet success, and the refusal is logged.
#[tokio::test]
async fn an_unreadable_batch_is_refused_out_loud() {
    let t = TestNode::start().await;
    let mut amr = t
        .provider("lingyuan-amr")
        .await
        .max_encoding_message_size(usize::MAX);
    let mut big = wire(&drafts("admin_penalty", 1, 10)).remove(0);
    big.fields.insert(
        "facts".into(),
        "x".repeat(credit_node::rpc::codec::MAX_MESSAGE_BYTES + 1),
    );
    let batches = vec![
        pb::PushBatch {
            batch_ref: "small".into(),
            records: wire(&drafts("admin_penalty", 1, 11)),
        },
        pb::PushBatch {
            batch_ref: "big".into(),
            records: vec![big],
        },
    ];
    let mut results = amr
        .push(tokio_stream::iter(batches))
        .await
        .unwrap()
        .into_inner();
    let first = tokio_stream::StreamExt::next(&mut results)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.accepted, 1);
    let second = tokio_stream::StreamExt::next(&mut results)
        .await
        .unwrap()
        .unwrap_err();
    assert_ne!(second.code(), tonic::Code::Ok);
    assert!(second.message().contains("R-NODE-2"), "{second:?}");
    match t.last_usage().outcome {
        Outcome::Refused { rule, .. } => assert_eq!(rule, "R-NODE-2"),
        other => panic!("logged {other:?}"),
    }
}
