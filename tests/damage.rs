//! A damaged store is refused, never served (R-SEC-1). Each test makes a real node,
//! pushes records, stops it, copies its data folder and damages the copy's sled `db` file
//! where live data is (at the bytes of values the test knows), then checks that
//! `credit-node store check` exits 4 naming the damage, that `audit verify` agrees, and
//! that the node refuses to start on it; every step is bounded, so a hang fails the test.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{TestNode, drafts, pull, push_one, wire};
use credit_node::config::Config;
use credit_node::server::Node;

/// Bound on any one step (a command, an open): far above what each takes.
const STEP: Duration = Duration::from_secs(120);

/// Runs the binary with `args`, killing it and failing the test past `STEP`.
fn run_bounded(args: &[&str]) -> Output {
    let child = common::bin()
        .args(args)
        .env_remove("CREDIT_NODE_ENDPOINT")
        .env_remove("CREDIT_NODE_IDENTITY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let id = child.id();
        s.spawn(move || {
            if rx.recv_timeout(STEP).is_err() {
                // Still running past the bound: end it (by its own pid only).
                let _ = Command::new("kill").args(["-9", &id.to_string()]).status();
            }
        });
        let out = child.wait_with_output().unwrap();
        let _ = tx.send(());
        out
    });
    assert!(
        waited.status.code().is_some(),
        "credit-node {args:?} did not finish within {STEP:?}"
    );
    waited
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every offset where `needle` occurs in `hay`.
fn offsets(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    hay.windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

/// A node with records pushed and pulled, stopped; its config and data folder.
struct Stopped {
    _node: TestNode,
    config: Config,
    /// The drafts pushed, to find their bytes in the file.
    refs: Vec<String>,
    scratch: tempfile::TempDir,
}

impl Stopped {
    async fn make() -> Stopped {
        let mut node = TestNode::start().await;
        let records = drafts("admin_penalty", 60, 11);
        let refs = records.iter().map(|d| d.provider_ref.clone()).collect();
        let mut amr = node.provider("lingyuan-amr").await;
        let result = push_one(&mut amr, wire(&records)).await.unwrap();
        assert!(
            result.outcomes.iter().all(|o| o.refusal.is_none()),
            "{result:?}"
        );
        let mut ops = node.operator().await;
        pull(&mut ops, &records[0].subject_id).await.unwrap();
        let handle = node.node.take().unwrap();
        let config = handle.node.config.clone();
        tokio::time::timeout(STEP, handle.shutdown())
            .await
            .expect("the node stops within the bound")
            .unwrap();
        Stopped {
            _node: node,
            config,
            refs,
            scratch: tempfile::tempdir().unwrap(),
        }
    }

    /// A fresh copy of the stopped node's data folder.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.scratch.path().join(name);
        copy_dir(&self.config.data_dir, &to);
        to
    }

    /// The node's config file with its data folder pointed at `dir`.
    fn config_for(&self, dir: &Path) -> PathBuf {
        let original = self.config.data_dir.parent().unwrap().join("node.toml");
        let toml = std::fs::read_to_string(original).unwrap().replace(
            "data_dir = \"data\"",
            &format!("data_dir = {:?}", dir.display().to_string()),
        );
        let path = dir.with_extension("toml");
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// Opens a node on `dir` in-process, within the bound.
    async fn open(&self, dir: &Path) -> Result<(), String> {
        let mut config = self.config.clone();
        config.data_dir = dir.to_path_buf();
        let opened = tokio::time::timeout(
            STEP,
            tokio::task::spawn_blocking(move || Node::open(config).map(|_| ())),
        )
        .await
        .expect("Node::open returns within the bound")
        .unwrap();
        opened.map_err(|e| e.to_string())
    }
}

/// Rewrites `db` in `dir` with `f` applied at each occurrence of `needle`; returns how
/// many places it changed.
fn damage_at(dir: &Path, needle: &[u8], f: impl Fn(&mut [u8])) -> usize {
    let file = dir.join("db");
    let mut bytes = std::fs::read(&file).unwrap();
    let found = offsets(&bytes, needle);
    for at in &found {
        f(&mut bytes[*at..]);
    }
    std::fs::write(&file, bytes).unwrap();
    found.len()
}

fn store_check(dir: &Path) -> Output {
    run_bounded(&["store", "check", "--data-dir", dir.to_str().unwrap()])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_store_passes_store_check_and_starts_r_sec_1() {
    let stopped = Stopped::make().await;
    let dir = stopped.copy("clean");

    let out = store_check(&dir);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("OK:"), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("records 60"),
        "{}",
        text(&out.stdout)
    );
    stopped.open(&dir).await.unwrap();
}

/// 16 bytes flipped at the bytes of known records (each copy of them in the file, so
/// the live one is hit): the check names the damage and the file, exits 4, and the node
/// refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_in_live_records_are_refused_by_store_check_and_at_start_r_sec_1() {
    let stopped = Stopped::make().await;
    // Several offsets: the first, a middle and the last record pushed.
    for (i, pick) in [0usize, 30, 59].into_iter().enumerate() {
        let dir = stopped.copy(&format!("flipped-{i}"));
        let needle = stopped.refs[pick].as_bytes();
        let changed = damage_at(&dir, needle, |b| {
            for x in b.iter_mut().take(16) {
                *x ^= 0xFF;
            }
        });
        assert!(changed > 0, "the record's bytes are in the db file");

        let before = std::fs::read(dir.join("db")).unwrap();
        let out = store_check(&dir);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        println!("store check on damage at record {pick}:\n{said}");
        assert_eq!(out.status.code(), Some(4), "{said}");
        // It checked a copy: the damaged original is as it was (sled's recovery would
        // have rewritten it past the damage), and the copy is gone.
        assert!(
            std::fs::read(dir.join("db")).unwrap() == before,
            "store check left the original db unchanged"
        );
        let parent = dir.parent().unwrap();
        assert!(
            std::fs::read_dir(parent).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(".credit-node-check-")),
            "the copy is removed"
        );
        assert!(said.contains("DAMAGED"), "{said}");
        assert!(
            said.contains(&dir.join("db").display().to_string()),
            "{said}"
        );

        let refused = stopped
            .open(&dir)
            .await
            .expect_err("a damaged store is refused");
        assert!(
            refused.contains("damaged") || refused.contains("corrupt"),
            "{refused}"
        );

        // The binary refuses to serve it: exit 4 naming the file, without listening.
        let config = stopped.config_for(&dir);
        let out = run_bounded(&["serve", "--config", config.to_str().unwrap()]);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        println!("serve on it:\n{said}");
        assert_eq!(out.status.code(), Some(4), "{said}");
        assert!(
            said.contains(&dir.join("db").display().to_string()),
            "{said}"
        );
        assert!(!said.contains("listening on"), "{said}");
    }
}

/// Bytes changed so that the value would still decode (one letter of a provider
/// reference for another). sled's own checksum rejects the log message and it silently
/// recovers only the log before it (the node then came up holding nothing); the check
/// compares against the store's mark and names what is missing, and the tree. (A change
/// sled does not notice is caught by the content hash: see the store's unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_changed_in_place_is_refused_by_store_check_and_at_start_r_sec_1() {
    let stopped = Stopped::make().await;
    let dir = stopped.copy("silent");
    let needle = stopped.refs[7].as_bytes().to_vec();
    let last = needle.len() - 1;
    let changed = damage_at(&dir, &needle, |b| {
        b[last] = if b[last] == b'Z' { b'Y' } else { b'Z' };
    });
    assert!(changed > 0);

    let out = store_check(&dir);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains("tree records") || said.contains("tree changelog"),
        "{said}"
    );
    // No resident id or USCC in clear in the report: subject keys are masked.
    let refused = stopped.open(&dir).await.expect_err("refused");
    assert!(refused.contains("damaged"), "{refused}");
    assert!(refused.contains("store check"), "{refused}");
}

/// A usage entry changed in place: `store check` and `audit verify` both exit 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_usage_entry_gives_exit_4_in_store_check_and_audit_verify_r_sec_3() {
    let stopped = Stopped::make().await;
    let dir = stopped.copy("usage");
    // The operator's pull is in the usage log under its caller URI, once.
    let changed = damage_at(&dir, b"credit://operator/211382/ops", |b| b[26] = b'x');
    assert!(changed > 0);

    let out = store_check(&dir);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(said.contains("tree usage"), "{said}");

    let out = run_bounded(&["audit", "verify", "--data-dir", dir.to_str().unwrap()]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(!said.contains("still running"), "{said}");
}

/// Exit codes: a folder with no store is exit 1, not 4, and no "still running" guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_on_a_folder_without_a_store_exits_1() {
    let empty = tempfile::tempdir().unwrap();
    for args in [
        vec![
            "store",
            "check",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
        vec![
            "audit",
            "verify",
            "--data-dir",
            empty.path().to_str().unwrap(),
        ],
    ] {
        let out = run_bounded(&args);
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(1), "{args:?}: {said}");
        assert!(said.contains("no db file"), "{said}");
        assert!(!said.contains("still running"), "{said}");
    }
}

/// sled's own `conf` file damaged: refused as damaged (exit 4, the file named), and the
/// node does not start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_sled_conf_file_is_refused_r_sec_1() {
    let stopped = Stopped::make().await;
    let dir = stopped.copy("conf");
    let file = dir.join("conf");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len().min(16);
    for b in &mut bytes[..n] {
        *b ^= 0xFF;
    }
    std::fs::write(&file, bytes).unwrap();

    let out = store_check(&dir);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    println!("store check on a damaged conf:\n{said}");
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(said.contains("DAMAGED"), "{said}");
    assert!(said.contains(&file.display().to_string()), "{said}");
    let refused = stopped.open(&dir).await.expect_err("refused");
    assert!(refused.contains("damaged"), "{refused}");
}

/// A store call stuck inside the storage engine (as sled loops on a damaged page) hangs
/// nothing: the stuck call gives up at `[store] call_timeout_secs`, a `Status` call then
/// gets `Unavailable` at once instead of waiting, the health check still answers (NOT_SERVING
/// while the store does not answer, SERVING again after), and the node still shuts down
/// (R-SEC-1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_store_call_leaves_status_health_and_shutdown_answering_r_sec_1() {
    use credit_node::domain::caller::Role;
    use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
    use credit_node::pb;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    let dir = tempfile::tempdir().unwrap();
    let net = common::devnet(dir.path());
    let mut config = net
        .node_config(
            common::LINGYUAN,
            "凌源市公共信用信息平台",
            &common::providers(),
        )
        .unwrap();
    config.store.call_timeout = Duration::from_secs(1);
    let node = credit_node::server::start(config).await.unwrap();

    // A call that does not return until released, standing in for sled spinning: its
    // result, and the sender that releases it.
    let stick = || async {
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let stuck = node
            .store()
            .call(move |_| {
                let _ = blocked.recv();
                Ok::<_, credit_node::store::StoreError>(())
            })
            .await;
        (stuck, release)
    };
    let (stuck, release) = stick().await;
    assert!(
        matches!(stuck, Err(credit_node::store::StoreError::TimedOut { .. })),
        "{stuck:?}"
    );

    let identity = ClientIdentity::load(
        &net.identity(Role::Operator, common::LINGYUAN, "ops")
            .unwrap(),
    )
    .unwrap();
    let channel = connect(&node.endpoint(), &identity, ExpectedServer::AnyNode)
        .await
        .unwrap();
    let status = tokio::time::timeout(
        STEP,
        pb::federation_client::FederationClient::new(channel.clone()).status(pb::StatusRequest {}),
    )
    .await
    .expect("status answers within the bound");
    assert_eq!(status.unwrap_err().code(), tonic::Code::Unavailable);

    // Health answers, and says NOT_SERVING while the store does not answer; SERVING
    // again once the stuck call returned.
    let health_is = |want: tonic_health::pb::health_check_response::ServingStatus| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let health = tokio::time::timeout(
                STEP,
                client.check(HealthCheckRequest {
                    service: String::new(),
                }),
            )
            .await
            .expect("health answers within the bound");
            health.is_ok_and(|h| h.into_inner().status == want as i32)
        }
    };
    use tonic_health::pb::health_check_response::ServingStatus;
    assert!(
        common::eventually(STEP, || health_is(ServingStatus::NotServing)).await,
        "health says NOT_SERVING while a store call is stuck"
    );
    release.send(()).unwrap();
    assert!(
        common::eventually(STEP, || health_is(ServingStatus::Serving)).await,
        "health says SERVING once the store answers again"
    );

    // Stuck again: shutdown completes with the call still stuck (its last sync fails
    // fast: the store is not answering), then the stuck call is let go.
    let (stuck, release) = stick().await;
    assert!(stuck.is_err(), "{stuck:?}");
    let stopped = tokio::time::timeout(STEP, node.shutdown())
        .await
        .expect("shutdown completes within the bound");
    assert!(stopped.is_err(), "the final sync reports the stuck store");
    let _ = release.send(());
}

/// A running node's folder: `store check` says it is in use by another process (exit 1),
/// not damaged, and does not guess.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_check_on_a_running_nodes_folder_names_the_lock() {
    let node = TestNode::start().await;
    let dir = node.node().node.config.data_dir.clone();
    let out = store_check(&dir);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("in use by another process"), "{said}");
}
