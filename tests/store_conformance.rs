//! The conformance suite of the storage seam (`store::backend::Backend`): what every
//! storage engine behind `Store` must do. Each check is a function of an `Engine` (how
//! to open a store of that engine in a folder); `engines()` lists the engines, and each
//! test runs its check on every one. sled is the production engine; the in-memory
//! engine (`store::memory`) keeps the same rows in ordered maps, so a check that passes
//! on both tests the contract, not sled's layout. A new backend adds itself to
//! `engines()` and must pass every test unchanged.
//!
//! Covered: atomicity across a simulated crash (a commit stopped after each of its
//! per-tree writes, then reopened: all of the batch or none of it), replay of changelog
//! entries the current state lacks, idempotent replica apply, scan order and resume
//! keys, redaction, the census recount against the kept counters, the order that keeps
//! a batch without a changelog part (a kept case and its notice) safe, the engine's
//! integrity check after each of these, and every `Reads` answer alike on every engine
//! after the same operations.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use credit_node::domain::clock::Clock;
use credit_node::domain::record::{
    Content, Disclosure, Record, Status, Subject, SubjectKind, next_version,
};
use credit_node::domain::region::RegionCode;
use credit_node::domain::usage::{Action, UsageEntry};
use credit_node::store::backend::{Reads, natural_key};
use credit_node::store::memory::MemoryEngine;
use credit_node::store::{
    Applied, Change, OriginChange, ReplicaOutcome, Store, StoreError, StoreOptions,
};

/// A storage engine under test.
struct Engine {
    name: &'static str,
    /// Opens (or reopens) the store of this engine kept in `dir`.
    open: fn(&Path) -> Store,
    /// Whether a crash can leave a prefix of a commit's parts written (no transaction
    /// around them): such an engine must complete the batch at open, by replay.
    torn_writes: bool,
}

fn engines() -> Vec<Engine> {
    vec![
        Engine {
            name: "sled",
            open: |dir| Store::open(dir, &StoreOptions::default()).unwrap(),
            torn_writes: true,
        },
        Engine {
            name: "memory",
            open: |dir| Store::open_in_memory(&memory_engine(dir), dir).unwrap(),
            // Each part of a commit is written on its own, as on sled.
            torn_writes: true,
        },
    ]
}

/// The in-memory engine kept for `dir`: the same data each time a store of that folder
/// is opened, as a restarted process finds its files.
fn memory_engine(dir: &Path) -> MemoryEngine {
    static ENGINES: OnceLock<Mutex<HashMap<PathBuf, MemoryEngine>>> = OnceLock::new();
    ENGINES
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(dir.to_path_buf())
        .or_default()
        .clone()
}

/// Runs `check` on every engine, each in a folder of its own.
fn on_every_engine(check: fn(&Engine, &Path)) {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        eprintln!("engine {}", engine.name);
        check(&engine, dir.path());
    }
}

fn county() -> RegionCode {
    RegionCode::parse("211382").unwrap()
}

fn city() -> RegionCode {
    RegionCode::parse("211300").unwrap()
}

/// A fixed day's time: every write on one day (China Standard Time).
fn at_ms() -> i64 {
    Clock::on(chrono::NaiveDate::from_ymd_opt(2026, 11, 18).unwrap()).now_ms()
}

fn content(subject: &str, reference: &str, amount: &str) -> Content {
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

/// Accepts one record from the county's provider at `at_ms()`.
fn accept_one(store: &Store, subject: &str, reference: &str, amount: &str) -> Vec<Applied> {
    store
        .accept(
            vec![content(subject, reference, amount)],
            county(),
            at_ms(),
            push_usage,
        )
        .unwrap()
}

/// Writes new versions of records originated here, as the origin does (a purge, a
/// correction).
fn write_as_origin(store: &Store, at_ms: i64, records: Vec<Record>) {
    store
        .origin_write(at_ms, |_| {
            Ok(Ok::<_, ()>((
                OriginChange {
                    records,
                    ..Default::default()
                },
                (),
            )))
        })
        .unwrap()
        .unwrap();
}

/// Every changelog entry of `store`, in sequence order.
fn all_changes(store: &Store) -> Vec<Change> {
    store
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c)
        .collect()
}

fn push_usage(applied: &[Applied]) -> Vec<UsageEntry> {
    let mut e = UsageEntry::new(
        "credit://provider/211382/lingyuan-amr",
        Action::Push,
        "Push",
        1,
    );
    e.count = applied.len() as u64;
    vec![e]
}

/// Every record version in the changelog.
fn versions(store: &Store) -> Vec<Record> {
    store
        .changes_since(0, usize::MAX)
        .unwrap()
        .into_iter()
        .filter_map(|(_, c)| c.into_record())
        .collect()
}

/// The current state agrees with the changelog: each record's current version is the
/// last version the changelog holds of it, and the census counters equal a recount.
fn consistent(store: &Store) {
    let mut last: BTreeMap<uuid::Uuid, Record> = BTreeMap::new();
    for r in versions(store) {
        last.insert(r.id, r);
    }
    for (id, r) in &last {
        assert_eq!(store.record(id).unwrap().as_ref(), Some(r), "record {id}");
    }
    assert_eq!(store.stats().unwrap().records, last.len() as u64);
    assert_eq!(store.figures().unwrap(), store.recount().unwrap());
    let report = store.check();
    assert!(report.ok(), "{:?}", report.damage);
}

/// A batch stopped after each of its per-tree writes but the last (this batch writes
/// three: usage, changelog, current state), then the store reopened: the batch is there
/// entirely (its versions, current state, counters) or not at all, and the store takes
/// writes again.
fn atomic_across_a_crash(engine: &Engine, dir: &Path) {
    let mut outcomes = Vec::new();
    for trees in 0..3 {
        let dir = dir.join(format!("crash-{trees}"));
        let before = {
            let store = (engine.open)(&dir);
            store
                .accept(
                    vec![content("S1", "R-1", "1"), content("S2", "R-2", "1")],
                    county(),
                    at_ms(),
                    push_usage,
                )
                .unwrap();
            let before = versions(&store);
            store.crash_commits_after(trees);
            // New versions of both, and a new record: one batch.
            let batch = vec![
                content("S1", "R-1", "2"),
                content("S2", "R-2", "2"),
                content("S3", "R-3", "1"),
            ];
            assert!(
                store.accept(batch, county(), at_ms(), push_usage).is_err(),
                "{}: the commit stopped after {trees} trees must fail",
                engine.name
            );
            // A failed write stops writes until a reopen: with the simulated crash
            // switched off again, the next write is refused as poisoned, not crashed.
            store.crash_commits_after(usize::MAX);
            let next = store.accept(
                vec![content("S4", "R-4", "1")],
                county(),
                at_ms(),
                push_usage,
            );
            assert!(
                matches!(next, Err(StoreError::Poisoned)),
                "{}: a write after a failed one must be refused as poisoned, got {next:?}",
                engine.name
            );
            before
        };
        let store = (engine.open)(&dir);
        consistent(&store);
        let after = versions(&store);
        let amounts: Vec<String> = ["S1", "S2", "S3"]
            .iter()
            .flat_map(|s| store.records_of(s).unwrap())
            .map(|r| r.content.fields["fine_amount"].clone())
            .collect();
        outcomes.push(after.len() > before.len());
        if after.len() == before.len() {
            assert_eq!(after, before);
            assert_eq!(amounts, ["1", "1"], "{}: none of the batch", engine.name);
        } else {
            assert_eq!(after.len(), before.len() + 3);
            assert_eq!(
                amounts,
                ["2", "2", "1"],
                "{}: all of the batch",
                engine.name
            );
        }
        assert!(store.records_of("S4").unwrap().is_empty());
        // Writes go on, without a gap or a repeat in the sequence.
        accept_one(&store, "S5", "R-5", "1");
        let seqs: Vec<u64> = store
            .changes_since(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
        consistent(&store);
    }
    if engine.torn_writes {
        // Stopped before the changelog: nothing; after it: replayed, all.
        assert_eq!(outcomes, [false, false, true], "{}", engine.name);
    }
}

#[test]
fn a_batch_is_all_or_nothing_across_a_crash() {
    on_every_engine(atomic_across_a_crash);
}

/// A crash after the changelog and before the current state: the reopened store replays
/// the entries the current state lacks (records, and a child's record with its id
/// index), idempotently; a second reopen replays nothing more. An engine whose commits
/// are transactions keeps none of the batch instead.
fn replays_what_the_current_state_lacks(engine: &Engine, dir: &Path) {
    let child_dir = dir.join("child");
    let parent_dir = dir.join("parent");
    let from_child = {
        let child = (engine.open)(&child_dir);
        child
            .accept(
                vec![content("C1", "R-1", "1"), content("C2", "R-2", "1")],
                county(),
                at_ms(),
                push_usage,
            )
            .unwrap();
        child.changes_since(0, usize::MAX).unwrap()
    };
    {
        let parent = (engine.open)(&parent_dir);
        // The batch writes no usage entry: the changelog, then stop before the current
        // state.
        parent.crash_commits_after(1);
        let entries = from_child.iter().map(|(_, c)| c.clone()).collect();
        assert!(
            parent
                .apply_replicas(county(), city(), entries, 2, at_ms(), |_| Vec::new())
                .is_err()
        );
    }
    let parent = (engine.open)(&parent_dir);
    consistent(&parent);
    if versions(&parent).is_empty() {
        assert!(!engine.torn_writes, "{}: nothing replayed", engine.name);
        assert_eq!(parent.stats().unwrap().records, 0);
        return;
    }
    for (_, change) in &from_child {
        let sent = change.as_record().unwrap();
        let held = parent.record(&sent.id).unwrap().expect("replayed");
        assert_eq!(held.path, vec![county(), city()]);
        assert_eq!(held.content, sent.content);
    }
    let fingerprint = parent.fingerprint().unwrap();
    drop(parent);
    let parent = (engine.open)(&parent_dir);
    assert_eq!(parent.fingerprint().unwrap(), fingerprint);
}

#[test]
fn open_replays_what_the_current_state_lacks() {
    on_every_engine(replays_what_the_current_state_lacks);
}

/// A case kept at a node that is not its owner, with the notice that carries it to the
/// owner: a batch with no changelog part, so not replayed. Stopped after each of its
/// writes, then reopened, the case is never there without its notice (a case without one
/// would withhold the record here for good, and refuse a second filing); the notice may
/// be there without the case (the resend after the crash keeps it).
fn kept_case_lands_with_its_notice(engine: &Engine, dir: &Path) {
    let child = (engine.open)(&dir.join("child"));
    accept_one(&child, "K1", "R-1", "1");
    let entries: Vec<Change> = all_changes(&child);
    let record = entries[0].as_record().unwrap().clone();
    let case = credit_node::domain::case::Case {
        id: uuid::Uuid::now_v7(),
        record_id: record.id,
        subject_id: record.content.subject.id.clone(),
        owner: county(),
        filed_at: city(),
        filed_by: "credit://operator/211300/window-1".into(),
        received_ms: at_ms(),
        reason: "not mine".into(),
        evidence: "E-1".into(),
        record_version: record.version,
        record_hash: record.content_hash,
        version: 0,
        checked: None,
        reply: None,
        resolution: None,
        path: vec![city()],
    };
    let notice = credit_node::domain::notice::Notice {
        id: 1,
        kind: credit_node::domain::notice::NoticeKind::Objection,
        target: county(),
        record_id: record.id.to_string(),
        subject_id: record.content.subject.id.clone(),
        text: "not mine".into(),
        from: city(),
        created_at_ms: at_ms(),
        objection: Some(case.clone()),
    };
    let usage = || {
        let mut e = UsageEntry::new(
            "credit://operator/211300/window-1",
            Action::Objection,
            "File",
            at_ms(),
        );
        e.subject = Some(record.content.subject.id.clone());
        vec![e]
    };
    let mut whole = false;
    for trees in 0..6 {
        let parent_dir = dir.join(format!("parent-{trees}"));
        {
            let parent = (engine.open)(&parent_dir);
            parent
                .apply_replicas(county(), city(), entries.clone(), 1, at_ms(), |_| {
                    Vec::new()
                })
                .unwrap();
            parent.crash_commits_after(trees);
            whole = parent
                .keep_case(&case, Some((&county(), &notice)), usage())
                .is_ok();
        }
        let parent = (engine.open)(&parent_dir);
        consistent(&parent);
        let has_case = parent.case(&case.id).unwrap().is_some();
        let has_notice = parent
            .pending_notices(&county())
            .unwrap()
            .iter()
            .any(|n| n.objection.as_ref().is_some_and(|c| c.id == case.id));
        assert!(
            !has_case || has_notice,
            "{}: stopped after {trees} writes, the case is kept without its notice",
            engine.name
        );
        if whole {
            assert!(
                has_case && has_notice,
                "{}: a whole commit keeps both",
                engine.name
            );
            break;
        }
    }
    assert!(whole, "{}: keep_case never completed", engine.name);
}

#[test]
fn a_kept_case_never_lands_without_its_notice() {
    on_every_engine(kept_case_lands_with_its_notice);
}

/// The same origin, id and version applied twice is one record and one changelog entry;
/// an older version never overwrites a newer one; the cursor never moves back.
fn replica_apply_is_idempotent(engine: &Engine, dir: &Path) {
    let child = (engine.open)(&dir.join("child"));
    let parent = (engine.open)(&dir.join("parent"));
    accept_one(&child, "C1", "R-1", "1");
    accept_one(&child, "C1", "R-1", "2");
    let sent: Vec<Change> = all_changes(&child);
    let apply = |entries: Vec<Change>, last: u64| {
        parent
            .apply_replicas(county(), city(), entries, last, at_ms(), |_| Vec::new())
            .unwrap()
    };
    assert_eq!(
        apply(sent.clone(), 2),
        [ReplicaOutcome::Applied, ReplicaOutcome::Applied]
    );
    let once = parent.fingerprint().unwrap();
    assert_eq!(
        apply(sent.clone(), 2),
        [ReplicaOutcome::Unchanged, ReplicaOutcome::Unchanged]
    );
    // The first version again, after the second: unchanged, and the cursor stays.
    assert_eq!(apply(sent[..1].to_vec(), 1), [ReplicaOutcome::Unchanged]);
    assert_eq!(parent.fingerprint().unwrap(), once);
    assert_eq!(parent.cursor(&county()).unwrap(), 2);
    assert_eq!(versions(&parent).len(), 2);
    assert_eq!(parent.stats().unwrap().records, 1);
    let held = parent.records_of("C1").unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].version, 2);
    consistent(&parent);
}

#[test]
fn replica_apply_is_idempotent_by_origin_id_and_version() {
    on_every_engine(replica_apply_is_idempotent);
}

/// Scans through the seam are ordered and resume where they stopped: a subject's
/// records by natural key, the changelog and the usage log by sequence.
fn scans_are_ordered_and_resumable(engine: &Engine, dir: &Path) {
    let store = (engine.open)(dir);
    // Subjects whose ids are prefixes of one another, references out of order.
    for (subject, refs) in [
        ("91211382MA0000001", ["R-9", "R-1", "R-5"]),
        ("91211382MA00000012", ["R-3", "R-2", "R-7"]),
        ("91211382MA000000", ["R-4", "R-6", "R-8"]),
    ] {
        let batch = refs.iter().map(|r| content(subject, r, "1")).collect();
        store.accept(batch, county(), at_ms(), push_usage).unwrap();
    }
    let backend: &dyn Reads = store.backend();
    let all = backend
        .records_of("91211382MA0000001", None, usize::MAX)
        .unwrap();
    let refs: Vec<&str> = all
        .iter()
        .map(|r| r.content.provider_ref.as_str())
        .collect();
    assert_eq!(refs, ["R-1", "R-5", "R-9"], "{}", engine.name);
    assert!(
        all.iter()
            .all(|r| r.content.subject.id == "91211382MA0000001")
    );
    // Page by page, resuming after the last natural key seen.
    let mut paged = Vec::new();
    let mut resume = None;
    loop {
        let page = backend
            .records_of("91211382MA0000001", resume.as_deref(), 2)
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 2);
        resume = Some(natural_key(page.last().unwrap()));
        paged.extend(page);
        // A scan that resumed at its key rather than after it would never end.
        assert!(
            paged.len() <= all.len(),
            "{}: a record seen twice",
            engine.name
        );
    }
    assert_eq!(paged, all);

    // The changelog: sequences 1.. without a gap, and pages that add up to the whole.
    let changes = backend.changes(0, usize::MAX).unwrap();
    let seqs: Vec<u64> = changes.iter().map(|(s, _)| *s).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    for limit in [1, 2, 4, 100] {
        let mut after = 0;
        let mut pages = Vec::new();
        loop {
            let page = backend.changes(after, limit).unwrap();
            if page.is_empty() {
                break;
            }
            assert!(page.len() <= limit);
            after = page.last().unwrap().0;
            pages.extend(page);
            assert!(
                pages.len() <= changes.len(),
                "limit {limit}: an entry seen twice"
            );
        }
        assert_eq!(pages, changes, "limit {limit}");
    }
    assert_eq!(backend.changes(4, 2).unwrap(), changes[4..6].to_vec());
    assert!(backend.changes(9, 10).unwrap().is_empty());

    // The usage log: one entry per batch, in sequence order, chained.
    let usage = backend.usage(0, usize::MAX).unwrap();
    assert_eq!(usage.iter().map(|(s, _)| *s).collect::<Vec<_>>(), [1, 2, 3]);
    assert_eq!(backend.usage(1, 1).unwrap(), usage[1..2].to_vec());
    let heads = backend.heads().unwrap();
    assert_eq!(heads.next_change, 10);
    assert_eq!(heads.next_usage, 4);
    assert_eq!(heads.usage_head, usage[2].1.hash);
    let mut prev = [0u8; 32];
    for (_, entry) in &usage {
        assert_eq!(entry.prev_hash, prev);
        prev = entry.hash;
    }
}

#[test]
fn scans_are_in_order_and_resume_after_their_key() {
    on_every_engine(scans_are_ordered_and_resumable);
}

/// A purged record's earlier versions lose their fields in the changelog, others keep
/// theirs, and the redaction survives a reopen. (Moved from `store::tests`.)
fn redaction_removes_the_fields_of_earlier_versions(engine: &Engine, dir: &Path) {
    let store = (engine.open)(dir);
    store
        .accept(vec![content("S1", "R-1", "1")], county(), 1, push_usage)
        .unwrap();
    store
        .accept(vec![content("S1", "R-1", "2")], county(), 2, push_usage)
        .unwrap();
    let other = store
        .accept(vec![content("S2", "R-2", "3")], county(), 3, push_usage)
        .unwrap()[0]
        .id();
    let cur = store.records_of("S1").unwrap().remove(0);
    assert_eq!(store.redact_queued().unwrap(), 0, "nothing queued yet");
    let mut purged = next_version(&cur, Status::Expired, "R-SEC-2".into(), 4);
    purged.content.fields.clear();
    purged.content_hash = purged.content.hash();
    write_as_origin(&store, 4, vec![purged.clone()]);
    assert_eq!(store.redact_queued().unwrap(), 2);
    let versions: Vec<Record> = versions(&store)
        .into_iter()
        .filter(|r| r.id == cur.id)
        .collect();
    assert_eq!(versions.len(), 3);
    for v in &versions {
        assert!(
            v.content.fields.is_empty() && v.status == Status::Expired,
            "{v:?}"
        );
        assert_eq!(v.content_hash, v.content.hash());
    }
    assert_eq!(store.redact_queued().unwrap(), 0);
    drop(store);
    let store = (engine.open)(dir);
    assert_eq!(store.record(&cur.id).unwrap().unwrap(), purged);
    let untouched = store.record(&other).unwrap().unwrap();
    assert_eq!(
        untouched
            .content
            .fields
            .get("fine_amount")
            .map(String::as_str),
        Some("3")
    );
}

#[test]
fn redaction_removes_the_fields_of_earlier_versions_only() {
    on_every_engine(redaction_removes_the_fields_of_earlier_versions);
}

/// The census figures kept incrementally equal a full recount after every write: pushes
/// (new records, new versions), a child's records, and their suspensions, deletions and
/// lifts; and again after a reopen. (Moved from `store::tests`; the child's records
/// now come from a store of the child's own.)
fn census_recount_equals_the_kept_figures(engine: &Engine, dir: &Path) {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 18).unwrap();
    let at_ms = Clock::on(today).now_ms();
    let child = RegionCode::parse("211381").unwrap();
    let city = city();
    let seed = 0x2545_F491_4F6C_DD1Du64;
    eprintln!("census rounds from fastrand seed {seed:#x}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut next = move || rng.u64(..);
    let child_store = (engine.open)(&dir.join("child"));
    let city_dir = dir.join("city");
    // Records from the child, kept so later versions can change their status.
    let mut replicas: Vec<Record> = Vec::new();
    let mut child_refs = 0u64;
    {
        let store = (engine.open)(&city_dir);
        for round in 0..60 {
            match next() % 4 {
                // Pushes here: new records and new versions (same references, new amounts).
                0 | 1 => {
                    let batch: Vec<Content> = (0..(1 + next() % 20))
                        .map(|_| {
                            let mut c = content(
                                &format!("91211300MA{:08}", next() % 30),
                                &format!("R-{}", next() % 40),
                                &format!("{}", next() % 3),
                            );
                            if next() % 3 == 0 {
                                c.subject.kind = SubjectKind::Natural;
                            }
                            c.period = format!("2026-{:02}", 1 + next() % 3);
                            c
                        })
                        .collect();
                    store.accept(batch, city, at_ms, push_usage).unwrap();
                }
                // New records from the child.
                2 => {
                    let batch: Vec<Content> = (0..(1 + next() % 10))
                        .map(|_| {
                            child_refs += 1;
                            content(
                                &format!("91211381MA{:08}", next() % 30),
                                &format!("C-{child_refs}"),
                                "1",
                            )
                        })
                        .collect();
                    let after = child_store.stats().unwrap().last_change;
                    child_store.accept(batch, child, 5, push_usage).unwrap();
                    let sent = child_store.changes_since(after, usize::MAX).unwrap();
                    let last = sent.last().unwrap().0;
                    let entries: Vec<Change> = sent.into_iter().map(|(_, c)| c).collect();
                    replicas.extend(entries.iter().filter_map(|c| c.as_record().cloned()));
                    store
                        .apply_replicas(child, city, entries, last, at_ms, |_| Vec::new())
                        .unwrap();
                }
                // Suspensions, deletions and lifts of the child's records.
                _ => {
                    if replicas.is_empty() {
                        continue;
                    }
                    let i = (next() as usize) % replicas.len();
                    let r = &mut replicas[i];
                    r.version += 1;
                    r.status = match next() % 3 {
                        0 => Status::Suspended,
                        1 => Status::Deleted,
                        _ => Status::Active,
                    };
                    r.path = vec![child];
                    store
                        .apply_replicas(
                            child,
                            city,
                            vec![Change::Record(r.clone())],
                            0,
                            at_ms,
                            |_| Vec::new(),
                        )
                        .unwrap();
                }
            }
            assert_eq!(
                store.figures().unwrap(),
                store.recount().unwrap(),
                "{}: round {round}",
                engine.name
            );
        }
        let f = store.figures().unwrap();
        assert!(f.total > 0 && f.natural > 0 && f.legal > 0, "{f:?}");
        assert_eq!(f.total, f.natural + f.legal);
        assert_eq!(f.total, f.by_category.values().sum::<u64>());
        assert!(f.via_child.get("211381").copied().unwrap_or(0) > 0, "{f:?}");
        let months: u64 = (1..=3)
            .map(|m| {
                store
                    .monthly("lingyuan-amr", &format!("2026-{m:02}"))
                    .unwrap()
                    .records
            })
            .sum();
        assert_eq!(months, f.by_provider["211300/lingyuan-amr"]);
    }
    // Kept across a restart, and still equal to a recount.
    let store = (engine.open)(&city_dir);
    assert_eq!(store.figures().unwrap(), store.recount().unwrap());
    let long_ago = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
    assert_eq!(
        store.figures_as_of(long_ago).unwrap(),
        credit_node::domain::census::Figures::default()
    );
    assert_eq!(
        store.figures_as_of(today).unwrap(),
        store.figures().unwrap()
    );
}

#[test]
fn census_figures_kept_incrementally_equal_a_full_recount() {
    on_every_engine(census_recount_equals_the_kept_figures);
}

/// The same operations on every engine: records pushed here and applied from a child
/// (with a refused entry kept in quarantine), consents and a withdrawal, checkpoints, a
/// case and its notice, notices received and acknowledged, a child's census report, a
/// redaction, writes on two days. Returns the child's store too (kept open).
fn the_same_operations(engine: &Engine, dir: &Path) -> Store {
    use credit_node::domain::consent::{Consent, Purpose, Terms, Withdrawal};
    use credit_node::domain::notice::{Notice, NoticeKind};
    use credit_node::domain::signature::Signature;
    use credit_node::domain::usage::Checkpoint;
    use credit_node::store::{ChildLog, Quarantined, Refused};

    let store = (engine.open)(&dir.join("city"));
    let child = (engine.open)(&dir.join("child"));
    store.bind_region(&city()).unwrap();
    let day = |d: u32| Clock::on(chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap()).now_ms();
    for (subject, refs) in [
        ("91211382MA0000001", ["R-9", "R-1", "R-5"]),
        ("91211382MA00000012", ["R-3", "R-2", "R-7"]),
        ("91211382MA000000", ["R-4", "R-6", "R-8"]),
    ] {
        let batch = refs.iter().map(|r| content(subject, r, "1")).collect();
        store.accept(batch, city(), day(17), push_usage).unwrap();
    }
    store
        .accept(
            vec![content("91211382MA0000001", "R-5", "2")],
            city(),
            day(18),
            push_usage,
        )
        .unwrap();

    // From the child: two records, and a third refused into quarantine.
    child
        .accept(
            vec![content("C1", "R-1", "1"), content("C2", "R-2", "1")],
            county(),
            day(17),
            push_usage,
        )
        .unwrap();
    let entries: Vec<Change> = all_changes(&child);
    let record = entries[0].as_record().unwrap().clone();
    let notice = |id: u64, from: RegionCode, target: RegionCode| Notice {
        id,
        kind: NoticeKind::Objection,
        target,
        record_id: record.id.to_string(),
        subject_id: record.content.subject.id.clone(),
        text: format!("notice {id}"),
        from,
        created_at_ms: day(18),
        objection: None,
    };
    store
        .apply_from_child(county(), city(), entries, 3, day(18), |_| {
            Ok(ChildLog {
                usage: Vec::new(),
                refused: vec![Refused {
                    kept: Quarantined {
                        child: county(),
                        child_seq: 3,
                        label: "refused".into(),
                        field: "fields".into(),
                        rule: "R-DATA-3".into(),
                        message: "not to be stored".into(),
                        at_ms: day(18),
                        entry: Vec::new(),
                    },
                    notice: notice(7, city(), county()),
                }],
                released: Vec::new(),
            })
        })
        .unwrap();

    // Consents (one withdrawn) and checkpoints.
    let signature = Signature {
        signature: vec![1, 2, 3],
        cert: vec![4, 5, 6],
    };
    let consent = |n: u128, subject: &str| Consent {
        terms: Terms {
            id: uuid::Uuid::from_u128(n),
            subject_id: subject.into(),
            grantee: "credit://agency/211300/fgw".into(),
            purpose: Purpose::Procurement,
            purpose_text: "procurement".into(),
            categories: vec!["admin_penalty".into()],
            valid_from: chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            valid_until: chrono::NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(),
            evidence: format!("E-{n}"),
            recorded_by: "credit://operator/211300/window-1".into(),
            recorded_at_ms: day(18),
            node: city(),
        },
        signature: signature.clone(),
        withdrawal: None,
        path: vec![city()],
    };
    for (n, subject) in [
        (3, "91211382MA0000001"),
        (1, "91211382MA0000001"),
        (2, "S9"),
    ] {
        store
            .append_local(Change::Consent(consent(n, subject)), Vec::new())
            .unwrap();
    }
    let mut withdrawn = consent(1, "91211382MA0000001");
    withdrawn.withdrawal = Some(Withdrawal {
        at_ms: day(18),
        by: "credit://operator/211300/window-1".into(),
        reason: "withdrawn".into(),
        node: city(),
        signature: signature.clone(),
    });
    store
        .append_local(Change::Consent(withdrawn), Vec::new())
        .unwrap();
    for (node, seq) in [(county(), 9), (city(), 2), (county(), 4)] {
        let checkpoint = Checkpoint {
            node,
            seq,
            head: [seq as u8; 32],
            at_ms: day(18),
            signature: signature.clone(),
            path: vec![node],
        };
        store
            .append_local(Change::Checkpoint(checkpoint), Vec::new())
            .unwrap();
    }

    // A case kept with its notice; notices queued, acknowledged and received.
    let case = credit_node::domain::case::Case {
        id: uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001),
        record_id: record.id,
        subject_id: record.content.subject.id.clone(),
        owner: county(),
        filed_at: city(),
        filed_by: "credit://operator/211300/window-1".into(),
        received_ms: day(18),
        reason: "not mine".into(),
        evidence: "E-1".into(),
        record_version: record.version,
        record_hash: record.content_hash,
        version: 0,
        checked: None,
        reply: None,
        resolution: None,
        path: vec![city()],
    };
    let mut carried = notice(1, city(), county());
    carried.objection = Some(case.clone());
    store
        .keep_case(&case, Some((&county(), &carried)), Vec::new())
        .unwrap();
    for id in [5, 2, 3] {
        store
            .queue_notice(&county(), &notice(id, city(), county()), Vec::new())
            .unwrap();
    }
    assert!(store.ack_notice(&county(), &city(), 3).unwrap());
    let province = RegionCode::parse("210000").unwrap();
    for id in [4, 1] {
        store
            .receive_notice(&notice(id, province, city()), Vec::new())
            .unwrap();
    }
    store
        .set_child_report(
            &county(),
            &credit_node::domain::census::PlatformReport {
                region: "211382".into(),
                name: "凌源市".into(),
                total: 2,
                legal: 2,
                at_ms: day(18),
                ..Default::default()
            },
        )
        .unwrap();

    // A purge, its redaction, and a use logged against a subject.
    let cur = store.records_of("91211382MA0000001").unwrap().remove(1);
    let mut purged = next_version(&cur, Status::Expired, "R-SEC-2".into(), day(18));
    purged.content.fields.clear();
    purged.content_hash = purged.content.hash();
    write_as_origin(&store, day(18), vec![purged.clone()]);
    store.redact_queued().unwrap();
    let mut used = UsageEntry::new(
        "credit://agency/211300/fgw",
        Action::Query,
        "Query",
        day(18),
    );
    used.subject = Some("91211382MA0000001".into());
    store.append_usage(vec![used]).unwrap();
    drop(child);
    store
}

/// Everything `Reads` answers about a store, by name.
fn reads(store: &Store) -> Vec<(&'static str, String)> {
    let b: &dyn Reads = store.backend();
    let ids: Vec<uuid::Uuid> = versions(store).iter().map(|r| r.id).collect();
    let subjects = [
        "91211382MA0000001",
        "91211382MA00000012",
        "91211382MA000000",
        "C1",
        "S9",
        "none",
    ];
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
    let regions = [county(), city(), RegionCode::parse("210000").unwrap()];
    let first_key = natural_key(&b.all_records(None, 1).unwrap()[0].1);
    let case = uuid::Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
    vec![
        ("heads", format!("{:?}", b.heads().unwrap())),
        (
            "records by key",
            format!(
                "{:?}",
                b.all_records(None, usize::MAX)
                    .unwrap()
                    .iter()
                    .map(|(k, _)| b.record(k).unwrap())
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "records by id",
            format!(
                "{:?}",
                ids.iter()
                    .map(|id| (b.record_by_id(id).unwrap(), b.replica_key(id).unwrap()))
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "records of",
            format!(
                "{:?}",
                subjects
                    .iter()
                    .map(|s| (
                        b.records_of(s, None, usize::MAX).unwrap(),
                        b.records_of(s, None, 1).unwrap(),
                    ))
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "all records",
            format!(
                "{:?} {:?} {}",
                b.all_records(None, usize::MAX).unwrap(),
                b.all_records(Some(&first_key), 2).unwrap(),
                b.record_count().unwrap()
            ),
        ),
        (
            "changes",
            format!(
                "{:?} {:?}",
                b.changes(0, usize::MAX).unwrap(),
                b.changes(3, 4).unwrap()
            ),
        ),
        (
            "usage",
            format!(
                "{:?} {:?} {:?}",
                b.usage_rows(0, usize::MAX).unwrap(),
                b.usage(2, 3).unwrap(),
                subjects
                    .iter()
                    .map(|s| b.usage_of(s, usize::MAX).unwrap())
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "marks",
            format!(
                "{:?} {} {:?} {:?}",
                b.region().unwrap(),
                b.applied().unwrap(),
                regions.map(|r| b.cursor(&r).unwrap()),
                b.last_day().unwrap()
            ),
        ),
        (
            "census",
            format!(
                "{:?} {:?} {:?} {:?}",
                b.figures().unwrap(),
                [day(16), day(17), day(18), day(19)].map(|d| b.figures_at(d).unwrap()),
                ["2026-03", "2026-04"].map(|p| b.monthly("lingyuan-amr", p).unwrap()),
                b.child_reports().unwrap()
            ),
        ),
        (
            "redaction queue",
            format!("{:?}", b.redact_queue().unwrap()),
        ),
        (
            "quarantine",
            format!(
                "{:?} {:?} {:?} {:?} {:?}",
                b.quarantine(None, usize::MAX).unwrap(),
                b.quarantine(Some(&county()), 1).unwrap(),
                b.quarantine(Some(&city()), usize::MAX).unwrap(),
                b.quarantine_counts().unwrap(),
                [3, 4].map(|s| b.is_quarantined(&county(), s).unwrap())
            ),
        ),
        (
            "consents",
            format!(
                "{:?} {:?}",
                (1..=4)
                    .map(|n| b.consent(&uuid::Uuid::from_u128(n)).unwrap())
                    .collect::<Vec<_>>(),
                subjects.map(|s| b.consents_of(s).unwrap())
            ),
        ),
        (
            "checkpoints",
            format!(
                "{:?} {:?} {:?}",
                b.checkpoints(None).unwrap(),
                regions.map(|r| b.checkpoints(Some(&r)).unwrap()),
                [(county(), 4), (county(), 5)].map(|(n, s)| b.checkpoint(&n, s).unwrap())
            ),
        ),
        (
            "cases",
            format!(
                "{:?} {:?} {:?}",
                b.cases().unwrap(),
                b.case(&case).unwrap(),
                ids.iter()
                    .map(|id| b.cases_of_record(id).unwrap())
                    .collect::<Vec<_>>()
            ),
        ),
        (
            "notices",
            format!(
                "{:?} {:?} {:?} {:?}",
                regions.map(|r| b.pending_notices(&r).unwrap()),
                b.inbox().unwrap(),
                [1, 2, 3, 5, 7].map(|id| b.notice_pending(&county(), &city(), id).unwrap()),
                [1, 2, 4].map(|id| b
                    .received(&RegionCode::parse("210000").unwrap(), id)
                    .unwrap())
            ),
        ),
    ]
}

/// The engines answer every read alike after the same operations, and again after a
/// reopen; and their integrity checks pass.
#[test]
fn every_engine_reads_alike_after_the_same_operations() {
    let mut seen: Option<(&'static str, Vec<(&'static str, String)>)> = None;
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let store = the_same_operations(&engine, dir.path());
        let read = reads(&store);
        let report = store.check();
        assert!(report.ok(), "{}: {:?}", engine.name, report.damage);
        drop(store);
        let store = (engine.open)(&dir.path().join("city"));
        assert_eq!(reads(&store), read, "{}: after a reopen", engine.name);
        match &seen {
            None => seen = Some((engine.name, read)),
            Some((first, expected)) => {
                for ((what, theirs), (_, ours)) in expected.iter().zip(&read) {
                    assert_eq!(ours, theirs, "{what}: {} against {first}", engine.name);
                }
            }
        }
    }
}

/// Scans with a limit keep the part their contract names: the quarantine its last
/// entries, a subject's usage its first index rows, records and the changelog their
/// first, each in order.
fn scans_keep_the_part_their_limit_names(engine: &Engine, dir: &Path) {
    use credit_node::store::{ChildLog, Quarantined, Refused};
    let store = (engine.open)(dir);
    store.bind_region(&city()).unwrap();
    let kept = |seq: u64| Refused {
        kept: Quarantined {
            child: county(),
            child_seq: seq,
            label: format!("entry {seq}"),
            field: "fields".into(),
            rule: "R-DATA-3".into(),
            message: "not to be stored".into(),
            at_ms: at_ms(),
            entry: Vec::new(),
        },
        notice: credit_node::domain::notice::Notice {
            id: seq,
            kind: credit_node::domain::notice::NoticeKind::EntryRefused,
            target: county(),
            record_id: format!("entry {seq}"),
            subject_id: String::new(),
            text: "refused".into(),
            from: city(),
            created_at_ms: at_ms(),
            objection: None,
        },
    };
    store
        .apply_from_child(county(), city(), Vec::new(), 3, at_ms(), |_| {
            Ok(ChildLog {
                usage: Vec::new(),
                refused: (1..=3).map(kept).collect(),
                released: Vec::new(),
            })
        })
        .unwrap();
    let seqs = |limit| -> Vec<u64> {
        store
            .backend()
            .quarantine(Some(&county()), limit)
            .unwrap()
            .iter()
            .map(|q| q.child_seq)
            .collect()
    };
    assert_eq!(seqs(2), [2, 3], "{}: the last two, in order", engine.name);
    assert_eq!(seqs(usize::MAX), [1, 2, 3], "{}", engine.name);
    assert_eq!(
        store.quarantined(1).unwrap()[0].child_seq,
        3,
        "{}",
        engine.name
    );

    let subject = "91211382MA0000009";
    let used = |n: u64| {
        let mut e = UsageEntry::new("credit://agency/bench", Action::Query, "Query", 1);
        e.subject = Some(subject.into());
        e.count = n;
        e
    };
    store.append_usage(vec![used(1), used(2), used(3)]).unwrap();
    let counts: Vec<u64> = store
        .backend()
        .usage_of(subject, 2)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c.entry.count)
        .collect();
    assert_eq!(counts, [1, 2], "{}: the first two, in order", engine.name);
}

#[test]
fn scans_with_a_limit_keep_the_part_their_contract_names() {
    on_every_engine(scans_keep_the_part_their_limit_names);
}
