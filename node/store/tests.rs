use std::collections::BTreeMap;

use super::codec::{decode, encode};
use super::keys;
use super::*;
use std::sync::atomic::Ordering;

use crate::domain::record::Content;
use crate::domain::record::{Disclosure, Subject, SubjectKind};
use crate::domain::usage::Chained;
use crate::domain::usage::{Action, UsageEntry};

/// Accepts one record from this node's provider at `at_ms`, with its push usage entry.
fn accept_one(
    store: &Store,
    subject: &str,
    reference: &str,
    amount: &str,
    at_ms: i64,
) -> Vec<Applied> {
    store
        .accept(
            vec![content(subject, reference, amount)],
            region(),
            at_ms,
            push_usage,
        )
        .unwrap()
}

pub(super) fn content(subject: &str, reference: &str, amount: &str) -> Content {
    Content {
        subject: Subject {
            kind: SubjectKind::Legal,
            id: subject.into(),
            name: "凌源市某建材有限公司".into(),
        },
        category: "admin_penalty".into(),
        provider_id: "lingyuan-amr".into(),
        provider_ref: reference.into(),
        occurred_on: "2026-03-01".into(),
        ended_on: None,
        period: "2026-03".into(),
        adverse: true,
        disclosure: Disclosure::Public,
        fields: BTreeMap::from([("fine_amount".to_string(), amount.to_string())]),
    }
}

pub(super) fn region() -> RegionCode {
    RegionCode::parse("211382").unwrap()
}

pub(super) fn push_usage(applied: &[Applied]) -> Vec<UsageEntry> {
    let mut e = UsageEntry::new(
        "credit://provider/211382/lingyuan-amr",
        Action::Push,
        "Push",
        1,
    );
    e.count = applied.len() as u64;
    vec![e]
}

#[test]
fn create_then_identical_then_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let a = accept_one(&store, "91211382MA0000000X", "R-1", "1.5", 10);
    let Applied::Created { id, version: 1 } = a[0] else {
        panic!("{a:?}")
    };
    let before = store.fingerprint().unwrap();
    let b = accept_one(&store, "91211382MA0000000X", "R-1", "1.5", 11);
    assert_eq!(b[0], Applied::Unchanged { id, version: 1 });
    assert_eq!(
        store.fingerprint().unwrap(),
        before,
        "an identical re-push changes nothing"
    );
    let c = accept_one(&store, "91211382MA0000000X", "R-1", "2.0", 12);
    assert_eq!(c[0], Applied::NewVersion { id, version: 2 });
    let records = store.records_of("91211382MA0000000X").unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].version, 2);
    assert_eq!(records[0].content.fields["fine_amount"], "2.0");
    let stats = store.stats().unwrap();
    assert_eq!(
        (stats.records, stats.last_change, stats.usage_entries),
        (1, 2, 3)
    );
    assert_eq!(store.record(&id).unwrap().unwrap().version, 2);
}

#[test]
fn the_same_reference_twice_in_one_batch_is_one_record() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let a = store
        .accept(
            vec![
                content("S1", "R-1", "1"),
                content("S1", "R-1", "1"),
                content("S1", "R-1", "2"),
            ],
            region(),
            1,
            push_usage,
        )
        .unwrap();
    assert!(matches!(a[0], Applied::Created { .. }));
    assert!(matches!(a[1], Applied::Unchanged { .. }));
    assert!(matches!(a[2], Applied::NewVersion { version: 2, .. }));
    assert_eq!(store.stats().unwrap().records, 1);
    assert_eq!(store.changes_since(0, 10).unwrap().len(), 2);
}

#[test]
fn reopening_keeps_records_changelog_and_usage_chain() {
    let dir = tempfile::tempdir().unwrap();
    let fingerprint;
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let batch = (0..100)
            .map(|i| content(&format!("S{}", i % 7), &format!("R-{i}"), "1"))
            .collect();
        store.accept(batch, region(), 1, push_usage).unwrap();
        fingerprint = store.fingerprint().unwrap();
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.fingerprint().unwrap(), fingerprint);
    assert_eq!(store.stats().unwrap().records, 100);
    store.append_usage(push_usage(&[])).unwrap();
    let usage = store.usage_since(0, 10).unwrap();
    assert_eq!(usage.len(), 2);
    assert_eq!(
        usage[1].1.prev_hash, usage[0].1.hash,
        "the chain continues across a reopen"
    );
}

/// A crash between the changelog write and the records write leaves changelog entries
/// the records tree lacks; opening replays them, once.
#[test]
fn open_replays_a_changelog_tail() {
    let dir = tempfile::tempdir().unwrap();
    let orphan;
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        accept_one(&store, "S1", "R-1", "1", 1);
        // Simulate the crash: a changelog entry written without its records-tree write.
        let record = Record {
            id: crate::domain::ids::new_id(2, &region(), 2),
            content: content("S2", "R-2", "1"),
            origin: region(),
            path: vec![region()],
            reported_at_ms: 2,
            version: 1,
            status: Status::Active,
            status_reason: String::new(),
            content_hash: content("S2", "R-2", "1").hash(),
        };
        orphan = record.id;
        store
            .sled()
            .changelog
            .insert(2u64.to_be_bytes(), encode(&vec![record]).unwrap())
            .unwrap();
        store.sync().unwrap();
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(
        store.record(&orphan).unwrap().unwrap().content.subject.id,
        "S2"
    );
    assert_eq!(store.stats().unwrap().records, 2);
    // The next write continues after the replayed sequence.
    accept_one(&store, "S3", "R-3", "1", 3);
    assert_eq!(store.stats().unwrap().last_change, 3);
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.stats().unwrap().records, 3);
}

#[test]
fn large_values_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut c = content("S1", "R-1", "1");
    c.fields.insert("facts".into(), "x".repeat(200_000));
    store.accept(vec![c], region(), 1, push_usage).unwrap();
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(
        store.records_of("S1").unwrap()[0].content.fields["facts"].len(),
        200_000
    );
}

/// Batches larger than one chunk are split, and every version can be read back by
/// sequence and every record by id.
#[test]
fn chunks_split_and_ids_lead_back_to_records() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut batch: Vec<Content> = (0..600)
        .map(|i| content(&format!("S{i}"), "R", "1"))
        .collect();
    batch[10].fields.insert("facts".into(), "x".repeat(100_000));
    let applied = store.accept(batch, region(), 1, push_usage).unwrap();
    assert!(
        store.sled().changelog.len() > 2,
        "600 records of ~250 bytes and one of 100 KB make several chunks"
    );
    let changes = store.changes_since(0, usize::MAX).unwrap();
    assert_eq!(
        changes.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        (1..=600).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .changes_since(299, 2)
            .unwrap()
            .iter()
            .map(|(s, _)| *s)
            .collect::<Vec<_>>(),
        vec![300, 301]
    );
    for a in &applied {
        assert_eq!(store.record(&a.id()).unwrap().unwrap().id, a.id());
    }
    assert_eq!(store.record(&Uuid::now_v7()).unwrap(), None);
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(
        store.stats().unwrap().last_change,
        600,
        "the sequence continues after the last chunk"
    );
}

/// Acknowledgement waits for the disk: each accepted batch and each usage append has
/// gone through `sync` (flush + fdatasync) before it returns. A SIGKILL test cannot see a
/// missing fsync (the page cache survives), so this checks the call itself.
#[test]
fn every_write_is_synced_before_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let before = store.syncs();
    accept_one(&store, "S1", "R-1", "1", 1);
    assert_eq!(store.syncs(), before + 1);
    accept_one(&store, "S1", "R-1", "1", 1);
    assert_eq!(
        store.syncs(),
        before + 2,
        "an unchanged batch still syncs its usage entry"
    );
    store.append_usage(push_usage(&[])).unwrap();
    assert_eq!(store.syncs(), before + 3);
}

fn pulls(store: &Store, n: usize, subject: &str) {
    for i in 0..n {
        let mut e = UsageEntry::new(
            "credit://operator/211382/ops",
            Action::Pull,
            "PullBySubject",
            i as i64,
        );
        e.subject = Some(subject.to_string());
        store.append_usage(vec![e]).unwrap();
    }
}

fn signer() -> crate::identity::signing::NodeSigner {
    let ca = crate::identity::DevCa::generate("test ca").unwrap();
    let node = ca
        .issue(
            &crate::domain::caller::CallerId::new(
                crate::domain::caller::Role::Node,
                region(),
                "lingyuan",
            ),
            &[],
        )
        .unwrap();
    crate::identity::signing::NodeSigner::from_pem(&node.cert_pem, &node.key_pem).unwrap()
}

#[test]
fn verify_names_a_changed_a_removed_and_a_rewritten_entry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    pulls(&store, 10, "91211382MA0000000X");
    let signer = signer();
    let (seq, head) = store.usage_head().unwrap();
    assert_eq!(seq, 10);
    let cp = Checkpoint::sign(region(), seq, head, 1, &signer).unwrap();
    store
        .append_local(Change::Checkpoint(cp), Vec::new())
        .unwrap();
    let clean = store.verify_usage(&region(), &[], None).unwrap();
    assert!(clean.ok(), "{clean:?}");
    assert_eq!((clean.entries, clean.checkpoints), (10, 1));
    assert_eq!(
        store
            .usage_of_subject("91211382MA0000000X", 100)
            .unwrap()
            .len(),
        10
    );

    let usage = &store.sled().usage;
    let key = 4u64.to_be_bytes();
    let original = usage.get(key).unwrap().unwrap();

    // One byte of entry 4 changed.
    let mut edited = original.to_vec();
    let i = edited.len() / 3;
    edited[i] ^= 0x01;
    usage.insert(key, edited).unwrap();
    let r = store.verify_usage(&region(), &[], None).unwrap();
    assert_eq!(r.findings[0].seq, 4, "{r:?}");

    // Entry 4 removed.
    usage.remove(key).unwrap();
    let r = store.verify_usage(&region(), &[], None).unwrap();
    assert_eq!(r.findings[0].seq, 4, "{r:?}");
    assert!(r.findings[0].problem.contains("missing"), "{r:?}");

    // Entry 4 changed and the whole chain recomputed after it: only the checkpoint,
    // signed before the rewrite, gives it away.
    let mut chained: Chained = codec::decode(&original, "usage entry").unwrap();
    chained.entry.detail = "nothing to see".into();
    let mut prev = chained.prev_hash;
    for s in 4..=10u64 {
        let mut c: Chained = if s == 4 {
            chained.clone()
        } else {
            codec::decode(&usage.get(s.to_be_bytes()).unwrap().unwrap(), "usage entry").unwrap()
        };
        c.prev_hash = prev;
        c.hash = crate::domain::usage::chain_hash(&prev, &c.entry).unwrap();
        prev = c.hash;
        usage
            .insert(s.to_be_bytes(), codec::encode(&c).unwrap())
            .unwrap();
    }
    let r = store.verify_usage(&region(), &[], None).unwrap();
    assert_eq!(r.findings.len(), 1, "{r:?}");
    assert_eq!(r.findings[0].seq, 10);
    assert!(r.findings[0].problem.contains("rewritten"), "{r:?}");
}

#[test]
fn a_store_belongs_to_one_region() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.region().unwrap(), None);
    store.bind_region(&region()).unwrap();
    store.bind_region(&region()).unwrap();
    assert_eq!(store.region().unwrap(), Some(region()));
    let other = RegionCode::parse("211300").unwrap();
    assert!(store.bind_region(&other).is_err());
}

#[test]
fn consents_and_checkpoints_survive_replay_and_a_withdrawal_is_never_undone() {
    let dir = tempfile::tempdir().unwrap();
    let signer = signer();
    let terms = crate::domain::consent::tests::terms("211382");
    let id = terms.id;
    let subject = terms.subject_id.clone();
    let given = crate::domain::consent::Consent::sign(terms, &signer).unwrap();
    let mut withdrawn = given.clone();
    withdrawn
        .withdraw("op", "asked", region(), 5, &signer)
        .unwrap();
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        assert_eq!(
            store
                .append_local(Change::Consent(given.clone()), Vec::new())
                .unwrap(),
            ReplicaOutcome::Applied
        );
        assert_eq!(
            store
                .append_local(Change::Consent(given.clone()), Vec::new())
                .unwrap(),
            ReplicaOutcome::Unchanged
        );
        assert_eq!(
            store
                .append_local(Change::Consent(withdrawn.clone()), Vec::new())
                .unwrap(),
            ReplicaOutcome::Applied
        );
        // The older state arriving late changes nothing.
        assert_eq!(
            store
                .append_local(Change::Consent(given.clone()), Vec::new())
                .unwrap(),
            ReplicaOutcome::Unchanged
        );
        let mut other = given.clone();
        other.terms.evidence = "different".into();
        assert!(matches!(
            store
                .append_local(Change::Consent(other), Vec::new())
                .unwrap(),
            ReplicaOutcome::Conflict { .. }
        ));
        // Lose the side trees' writes, as if the process died after the changelog.
        store.sled().consents.clear().unwrap();
        store
            .sled()
            .records
            .insert(keys::records::APPLIED, &0u64.to_be_bytes())
            .unwrap();
        store.sync().unwrap();
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let held = store.consent(&id).unwrap().expect("replayed");
    assert!(held.withdrawal.is_some());
    assert_eq!(store.consents_of(&subject).unwrap().len(), 1);
    let changes = store.changes_since(0, 100).unwrap();
    assert_eq!(changes.len(), 2, "given, then withdrawn");
}

#[test]
fn a_subject_id_with_a_nul_is_not_indexed_and_breaks_no_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    pulls(&store, 2, "91211382MA0000000X");
    pulls(&store, 1, "91211382MA0000000X\0evil");
    pulls(&store, 1, "91211382MA0000000X");
    let history = store.usage_of_subject("91211382MA0000000X", 100).unwrap();
    assert_eq!(history.len(), 3);
    assert!(store.verify_usage(&region(), &[], None).unwrap().ok());
}

fn case_for(record: &Record, version: u64) -> crate::domain::case::Case {
    crate::domain::case::Case {
        id: Uuid::now_v7(),
        record_id: record.id,
        subject_id: record.content.subject.id.clone(),
        owner: record.origin,
        filed_at: record.origin,
        filed_by: "credit://operator/211382/window-1".into(),
        received_ms: 5,
        reason: "wrong".into(),
        evidence: "E-1".into(),
        record_version: record.version,
        record_hash: record.content_hash,
        version,
        checked: None,
        reply: None,
        resolution: None,
        path: vec![record.origin],
    }
}

/// A case taken at the origin suspends the record in the same step; after a crash that
/// left the step in the changelog only, replay restores both, and the set of records
/// with an open case is rebuilt at open.
#[test]
fn a_taken_case_and_its_suspension_survive_replay_together() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, replayed);
    {
        let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        store
            .accept(
                vec![content("S1", "R-1", "1"), content("S2", "R-2", "1")],
                region(),
                1,
                push_usage,
            )
            .unwrap();
        let records = store.records_of("S1").unwrap();
        let first = records[0].clone();
        kept = case_for(&first, 0);
        assert!(
            crate::objection::origin::take_case(&store, kept.clone(), region(), 2, "op", "File")
                .unwrap()
        );
        assert!(store.objection_open(&first.id));
        assert_eq!(
            store.record(&first.id).unwrap().unwrap().status,
            Status::Suspended
        );
        // Taken twice (a resent notice): nothing more happens.
        let before = store.fingerprint().unwrap();
        assert!(
            !crate::objection::origin::take_case(&store, kept.clone(), region(), 3, "op", "Take")
                .unwrap()
        );
        assert_eq!(store.fingerprint().unwrap(), before);

        // The crash: the second record's suspension and case reach the changelog only.
        let second = store.records_of("S2").unwrap()[0].clone();
        let suspended =
            crate::domain::record::next_version(&second, Status::Suspended, "R-OBJ-3".into(), 4);
        replayed = case_for(&second, 1);
        let seq = store.stats().unwrap().last_change + 1;
        let written = [
            Change::Record(suspended).tag_and_value().unwrap(),
            Change::Objection(replayed.clone()).tag_and_value().unwrap(),
        ];
        let torn = backend::Commit {
            changes: vec![backend::ChangeRun {
                first: seq,
                entries: written.to_vec(),
            }],
            ..Default::default()
        };
        backend::Backend::commit(store.sled(), torn).unwrap();
        store.sync().unwrap();
        assert!(!store.objection_open(&second.id));
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let first = store.case(&kept.id).unwrap().unwrap();
    assert_eq!(first.version, 1);
    assert!(store.objection_open(&first.record_id));
    assert!(store.objection_open(&replayed.record_id));
    assert_eq!(
        store.record(&replayed.record_id).unwrap().unwrap().status,
        Status::Suspended
    );
    assert_eq!(
        store.cases_of_record(&replayed.record_id).unwrap(),
        [replayed]
    );
    assert_eq!(
        store.recount().unwrap(),
        store.inner.writer.lock().unwrap().figures
    );
}

/// A store call that blocks (as sled does looping on a damaged page) does not hang the
/// handler: it gets `TimedOut` (`Unavailable`) at the bound; while that call is stuck,
/// further calls fail at once (`Stalled`); once it returns, calls work again (R-SEC-1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_call_that_blocks_returns_unavailable_within_its_bound_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        call_timeout: std::time::Duration::from_millis(200),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let outer = std::time::Duration::from_secs(30);
    let stuck = tokio::time::timeout(
        outer,
        store.call(move |s| {
            let _ = blocked.recv();
            s.stats()
        }),
    )
    .await
    .expect("the handler gets an answer at the bound, not never");
    let err = stuck.unwrap_err();
    assert!(matches!(err, StoreError::TimedOut { .. }), "{err}");
    let next = tokio::time::timeout(outer, store.call(|s| s.stats()))
        .await
        .unwrap();
    assert!(matches!(next, Err(StoreError::Stalled)), "{next:?}");

    release.send(()).unwrap();
    assert!(
        answers_within_3s(&store).await,
        "calls work again once the stuck one returned"
    );
}

/// Whether a store call succeeds within about 3 s (tried every 10 ms).
async fn answers_within_3s(store: &Store) -> bool {
    for _ in 0..300 {
        if store.call(|s| s.stats()).await.is_ok() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    false
}

/// The integrity check passes a store as the write paths leave it, and names a record
/// changed in place (still decoding), a changelog chunk that no longer decodes, census
/// figures that differ from a recount, and a usage entry changed in place (R-SEC-1).
#[test]
fn the_integrity_check_names_each_kind_of_damage_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let subjects = ["91211382MA0000000X", "91211382MA0000001X"];
    for (i, s) in subjects.iter().enumerate() {
        accept_one(&store, s, &format!("R-{i}"), "1.5", 10);
    }
    // A new version of the first, so the changelog holds two versions of one id.
    accept_one(&store, subjects[0], "R-0", "2.5", 11);
    let clean = store.check();
    assert!(clean.ok(), "{:?}", clean.damage);
    assert_eq!((clean.records, clean.changes), (2, 3));

    // A record's field changed in place: still decodes, no longer matches its hash.
    let key = keys::natural(&content(subjects[1], "R-1", "1.5"), &region());
    let mut r: Record = decode(&store.sled().records.get(&key).unwrap().unwrap(), "r").unwrap();
    r.content.fields.insert("fine_amount".into(), "9.5".into());
    store
        .sled()
        .records
        .insert(&key, encode(&r).unwrap())
        .unwrap();
    let found = store.check();
    assert!(
        found
            .damage
            .iter()
            .any(|d| d.tree == "records" && d.problem.contains("content hash")),
        "{:?}",
        found.damage
    );
    // Subject identifiers in keys are masked in the report.
    assert!(
        found.damage.iter().all(|d| !d.key.contains(subjects[1])),
        "{:?}",
        found.damage
    );

    // A chunk that no longer decodes, figures that differ, a usage entry changed.
    let (k, v) = store.sled().changelog.first().unwrap().unwrap();
    let bad = v[..v.len() - 8].to_vec();
    store.sled().changelog.insert(&k, bad).unwrap();
    let mut figures = store.recount().unwrap();
    figures.total += 1;
    store
        .sled()
        .records
        .insert(keys::records::FIGURES, encode(&figures).unwrap())
        .unwrap();
    let (uk, uv) = store.sled().usage.first().unwrap().unwrap();
    let mut chained: Chained = decode(&uv, "u").unwrap();
    chained.entry.count += 1;
    store
        .sled()
        .usage
        .insert(&uk, encode(&chained).unwrap())
        .unwrap();
    let found = store.check();
    for (tree, what) in [
        ("changelog", "does not decode"),
        ("records", "census figures"),
        ("usage", "does not match its hash"),
    ] {
        assert!(
            found
                .damage
                .iter()
                .any(|d| d.tree == tree && d.problem.contains(what)),
            "{tree}: {what}: {:?}",
            found.damage
        );
    }
}

/// The data folder holds personal data: created private, and an existing one that other
/// users could read is closed to its owner (R-SEC-1).
#[test]
fn the_data_folder_is_private_to_its_owner_r_sec_1() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh/data");
    drop(Store::open(&fresh, &StoreOptions::default()).unwrap());
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&fresh), 0o700);
    let open = dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
    drop(Store::open(&open, &StoreOptions::default()).unwrap());
    assert_eq!(mode(&open), 0o700);
}

/// A call abandoned at its bound that then panics uncounts itself: calls work again
/// rather than stay `Stalled` until a restart (R-SEC-1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_call_that_panics_does_not_stall_the_store_for_good_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        call_timeout: std::time::Duration::from_millis(100),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let stuck = store
        .call(move |_| -> Result<(), StoreError> {
            let _ = blocked.recv();
            panic!("sled panicked on a damaged page");
        })
        .await;
    assert!(
        matches!(stuck, Err(StoreError::TimedOut { .. })),
        "{stuck:?}"
    );
    assert!(matches!(
        store.call(|s| s.stats()).await,
        Err(StoreError::Stalled)
    ));
    release.send(()).unwrap();
    assert!(
        answers_within_3s(&store).await,
        "calls work again once the stuck call panicked"
    );
}

/// A poisoned store (a failed write or fsync) writes no store mark at shutdown: the
/// kernel may have dropped pages of writes never acknowledged, so the mark keeps naming
/// only what was durable, and the next start is not refused as damaged (R-SEC-1).
#[test]
fn a_poisoned_store_writes_no_mark_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    accept_one(&store, "91211382MA0000000X", "R-0", "1.5", 10);
    store.write_mark().unwrap();
    let before = check::read_mark(dir.path()).unwrap().unwrap();
    // A write that reached sled but whose sync "failed".
    accept_one(&store, "91211382MA0000001X", "R-1", "1.5", 11);
    store.inner.poisoned.store(true, Ordering::SeqCst);
    store.write_mark().unwrap();
    assert_eq!(check::read_mark(dir.path()).unwrap().unwrap(), before);
}

/// Slow is not damaged: an open or check that passes its bound is `OpenTimedOut` (exit 1,
/// "raise open_timeout_secs"), and a store mark that cannot be read (permissions, I/O)
/// is an I/O error, not damage; a panic inside sled stays damage, naming the file (R-SEC-1).
#[test]
fn a_slow_open_or_an_unreadable_mark_is_not_reported_as_damage_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let slow = check::bounded(dir.path(), std::time::Duration::from_millis(50), || {
        std::thread::sleep(std::time::Duration::from_secs(2));
        Ok(())
    })
    .unwrap_err();
    assert!(matches!(slow, StoreError::OpenTimedOut { .. }), "{slow}");
    assert!(!slow.is_damage());
    assert!(slow.to_string().contains("open_timeout_secs"), "{slow}");

    let panicked = check::bounded(dir.path(), std::time::Duration::from_secs(30), || {
        if true {
            panic!("sled: bad page");
        }
        Ok(())
    })
    .unwrap_err();
    assert!(panicked.is_damage(), "{panicked}");
    assert!(panicked.to_string().contains("db"), "{panicked}");

    std::fs::create_dir(dir.path().join(check::MARK_FILE)).unwrap();
    let unreadable = check::read_mark(dir.path()).unwrap_err();
    assert!(matches!(unreadable, StoreError::Io(_)), "{unreadable}");
    assert!(!unreadable.is_damage());
    assert!(
        unreadable.to_string().contains(check::MARK_FILE),
        "{unreadable}"
    );
}

/// The held copies a child's sync batch is checked against: a copy that cannot be read
/// is an error for the whole batch, never "not held" (which would skip the rule that a
/// tombstone is never reopened) (R-FED-1, R-SEC-1).
#[test]
fn a_held_copy_that_cannot_be_read_is_an_error_not_absent_r_fed_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let c = content("91211382MA0000000X", "R-0", "1.5");
    let applied = store
        .accept(vec![c.clone()], region(), 10, push_usage)
        .unwrap();
    let Applied::Created { id, .. } = applied[0] else {
        panic!("{applied:?}")
    };
    let held = crate::federation::sync::held_copies(&store, &[id]).unwrap();
    assert!(held.contains_key(&id));
    // The record and its changelog chunk damaged: neither reads.
    store
        .sled()
        .records
        .insert(keys::natural(&c, &region()), &b"\x01garbage"[..])
        .unwrap();
    let (k, v) = store.sled().changelog.first().unwrap().unwrap();
    store
        .sled()
        .changelog
        .insert(&k, v[..v.len() - 8].to_vec())
        .unwrap();
    assert!(store.record(&id).is_err());
    assert!(crate::federation::sync::held_copies(&store, &[id]).is_err());
}

/// A long read-only call (a whole-log verification) under its own long bound is not
/// stuck when it passes the default bound: other calls go on meanwhile (R-SEC-1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_call_within_its_own_bound_stalls_no_other_call_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        call_timeout: std::time::Duration::from_millis(100),
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    let (release, blocked) = std::sync::mpsc::channel::<()>();
    let long = {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .call_within(std::time::Duration::from_secs(60), move |s| {
                    let _ = blocked.recv();
                    s.stats()
                })
                .await
        })
    };
    // Past the default bound, other calls still answer.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(store.call(|s| s.stats()).await.is_ok());
    release.send(()).unwrap();
    assert!(long.await.unwrap().is_ok());
}

/// Another region's folder is refused for its region before the integrity check reads
/// it all (a damaged one included), and a usage-index key in a report shows the subject
/// masked, not in hex (R-SEC-1).
#[test]
fn another_regions_folder_is_refused_first_and_index_keys_are_masked_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    store.bind_region(&region()).unwrap();
    store
        .sled()
        .records
        .insert(
            keys::natural(&content("91211382MA0000000X", "R-0", "1"), &region()),
            &b"\x01garbage"[..],
        )
        .unwrap();
    drop(store);
    let other = RegionCode::parse("211300").unwrap();
    let err = match Store::open_checked(dir.path(), &StoreOptions::default(), &other) {
        Ok(_) => panic!("another region's folder opened"),
        Err(e) => e,
    };
    assert!(!err.is_damage(), "{err}");
    assert!(
        err.to_string()
            .contains("belongs to the node of region 211382"),
        "{err}"
    );

    let shown = check::show_key(&keys::usage_index("211382199001010134", 7));
    assert!(!shown.contains("199001"), "{shown}");
    assert!(shown.contains("entry 7"), "{shown}");
}

/// A folder bound to a region code this build does not take (a province prefix since
/// dropped, say) is refused as another region's, naming the code, not taken for damage.
#[test]
fn a_folder_bound_to_a_code_no_longer_taken_is_refused_by_name_not_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    store
        .sled()
        .records
        .insert(keys::records::REGION, &b"991300"[..])
        .unwrap();
    store.sync().unwrap();
    drop(store);
    let err = match Store::open_checked(dir.path(), &StoreOptions::default(), &region()) {
        Ok(_) => panic!("a folder of region 991300 opened"),
        Err(e) => e,
    };
    assert!(!err.is_damage(), "{err}");
    assert!(
        err.to_string()
            .contains("belongs to the node of region 991300"),
        "{err}"
    );
}

/// The check compares each record with the changelog as it reads it (holding no records
/// in memory): an older version put back in place of the current one, and a record gone
/// from the records tree, are each named (R-SEC-1).
#[test]
fn the_check_names_a_stale_and_a_missing_record_against_the_changelog_r_sec_1() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let subjects = ["91211382MA0000000X", "91211382MA0000001X"];
    let first = content(subjects[0], "R-0", "1.5");
    store
        .accept(vec![first.clone()], region(), 10, push_usage)
        .unwrap();
    let key = keys::natural(&first, &region());
    let v1 = store.sled().records.get(&key).unwrap().unwrap();
    accept_one(&store, subjects[0], "R-0", "2.5", 11);
    let second = content(subjects[1], "R-1", "1.5");
    store
        .accept(vec![second.clone()], region(), 12, push_usage)
        .unwrap();
    assert!(store.check().ok(), "{:?}", store.check().damage);

    store.sled().records.insert(&key, v1).unwrap();
    store
        .sled()
        .records
        .remove(keys::natural(&second, &region()))
        .unwrap();
    let found = store.check();
    for what in [
        "holds v1 but the changelog's latest is v2",
        "the changelog names 2 records, the records tree holds 1",
    ] {
        assert!(
            found.damage.iter().any(|d| d.problem.contains(what)),
            "{what}: {:?}",
            found.damage
        );
    }
}

/// A notice delivered twice at once is kept once, with one receipt in the usage log:
/// whether it was already here is decided under the writer lock (R-FED-1).
#[test]
fn a_notice_delivered_twice_at_once_is_received_once() {
    use crate::domain::notice::{Notice, NoticeKind};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    for id in 1..=20u64 {
        let notice = Notice {
            id,
            kind: NoticeKind::ConsentWithdrawal,
            target: region(),
            record_id: String::new(),
            subject_id: "211382199001010015".into(),
            text: "withdrawn".into(),
            from: RegionCode::parse("211300").unwrap(),
            created_at_ms: 1,
            objection: None,
        };
        let before = store.stats().unwrap().usage_entries;
        let barrier = std::sync::Barrier::new(4);
        let received: usize = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let usage = vec![UsageEntry::new(
                            "credit://node/211300",
                            Action::Notice,
                            "Notify",
                            1,
                        )];
                        store.receive_notice(&notice, usage).unwrap()
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|t| usize::from(t.join().unwrap()))
                .sum()
        });
        assert_eq!(
            received, 1,
            "notice {id}: taken as new by {received} deliveries"
        );
        assert_eq!(
            store.stats().unwrap().usage_entries,
            before + 1,
            "notice {id}"
        );
    }
    assert_eq!(store.inbox().unwrap().len(), 20);
}

/// Releasing the redaction queue drops only the entries still as they were read: a
/// record queued again meanwhile (a later tombstone) stays queued for the next run, on
/// every engine (R-SEC-2).
#[test]
fn a_record_queued_again_during_a_redaction_stays_queued() {
    let dir = tempfile::tempdir().unwrap();
    let memory = memory::MemoryEngine::new();
    let engines: Vec<(&str, Box<dyn backend::Backend>)> = vec![
        (
            "sled",
            Box::new(super::sled::SledBackend::open(dir.path(), &StoreOptions::default()).unwrap()),
        ),
        ("memory", Box::new(memory.backend().unwrap())),
    ];
    let id = uuid::Uuid::from_u128(7);
    let queued = |version: u64| encode(&(version, Status::Expired)).unwrap();
    for (name, engine) in engines {
        let queue = |value: Vec<u8>| {
            let mut commit = backend::Commit::default();
            commit.current.redact_queue.push((id, value));
            engine.commit(commit).unwrap();
        };
        queue(queued(2));
        let read = engine.redact_queue().unwrap();
        assert_eq!(read, [(id, queued(2))], "{name}");
        // A later tombstone of the same record, between the read and the release.
        queue(queued(3));
        assert_eq!(engine.release_redactions(read).unwrap(), 0, "{name}");
        assert_eq!(engine.redact_queue().unwrap(), [(id, queued(3))], "{name}");
        let read = engine.redact_queue().unwrap();
        assert_eq!(engine.release_redactions(read).unwrap(), 1, "{name}");
        assert!(engine.redact_queue().unwrap().is_empty(), "{name}");
    }
}

/// A record whose commit has written the changelog but not yet the records tree (a
/// reader between the two tree batches; here a commit stopped there) is not found by
/// id, not reported as damage; missing after the applied mark has passed it, it is
/// damage (R-SEC-1).
#[test]
fn a_record_in_the_changelog_alone_is_in_flight_until_the_applied_mark_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    accept_one(&store, "91211382MA0000000X", "R-0", "1.5", 10);
    // Usage and changelog parts written, the records tree's not.
    store.crash_commits_after(2);
    assert!(
        store
            .accept(
                vec![content("91211382MA0000001X", "R-1", "1.5")],
                region(),
                11,
                push_usage,
            )
            .is_err()
    );
    let changes = store.changes_since(0, usize::MAX).unwrap();
    assert_eq!(changes.len(), 2);
    let in_flight = changes[1].1.as_record().unwrap().id;
    assert_eq!(store.record(&in_flight).unwrap(), None);

    // The first record, with the applied mark past it, gone from the records tree.
    let first = changes[0].1.as_record().unwrap().clone();
    store
        .sled()
        .records
        .remove(keys::natural(&first.content, &first.origin))
        .unwrap();
    let err = store.record(&first.id).unwrap_err();
    assert!(err.is_damage(), "{err}");
}
