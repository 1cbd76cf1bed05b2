//! The `credit-node` binary as a user meets it: pki, serve, push (exit 0, 3, 1), pull,
//! and a bad config refused with its key.

use std::path::Path;
use std::process::{Command, Output};

mod common;

use common::proc::Proc;

fn bin() -> Command {
    common::bin()
}

fn run(args: &[&str], cwd: &Path) -> Output {
    bin()
        .args(args)
        .current_dir(cwd)
        .env_remove("CREDIT_NODE_ENDPOINT")
        .env_remove("CREDIT_NODE_IDENTITY")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `run` of a client command as `who` (an identity folder) against `endpoint`.
fn run_as(dir: &Path, endpoint: &str, who: &str, args: &[&str]) -> Output {
    let mut all = args.to_vec();
    all.extend(["--endpoint", endpoint, "--identity", who]);
    run(&all, dir)
}

/// The standard output of `args`' run, which must have succeeded.
fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The arguments of `pki issue` for a certificate of `role` named `id` in `region`,
/// written to the folder `out`.
fn pki_issue<'a>(role: &'a str, region: &'a str, id: &'a str, out: &'a str) -> [&'a str; 12] {
    [
        "pki", "issue", "--ca", "ca", "--role", role, "--region", region, "--id", id, "--out", out,
    ]
}

const SAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/lingyuan-amr.jsonl");

fn previous_month() -> String {
    common::previous_month()
}

/// Sets up a CA, a node and identities with the CLI alone, then serves the node.
fn setup(dir: &Path) -> (Proc, String) {
    let ok = |args: &[&str]| succeeded(args, run(args, dir));
    ok(&["pki", "init", "--out", "ca"]);
    ok(&pki_issue("node", "211382", "lingyuan", "node"));
    ok(&pki_issue("provider", "211382", "lingyuan-amr", "amr"));
    ok(&pki_issue("operator", "211382", "ops", "ops"));
    std::fs::write(
        dir.join("node.toml"),
        r#"
region = "211382"
name = "凌源市公共信用信息平台"
listen = "127.0.0.1:0"
data_dir = "data"

[tls]
ca = "ca/ca.pem"
cert = "node/cert.pem"
key = "node/key.pem"
crl = "ca/crl.pem"

[[providers]]
id = "lingyuan-amr"
name = "凌源市市场监督管理局"
categories = ["registration", "admin_license", "admin_penalty"]

[clock]
today = "TODAY"
"#
        .replace("TODAY", &common::today().to_string()),
    )
    .unwrap();
    // The config's paths are read against its folder, `dir`.
    let served = Proc::serve(&dir.join("node.toml"));
    let endpoint = served.endpoint();
    (served, endpoint)
}

#[test]
fn push_and_pull_with_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let (_served, endpoint) = setup(dir.path());
    let as_ = |who: &str, args: &[&str]| run_as(dir.path(), &endpoint, who, args);
    let period = previous_month();

    // Some refused: exit 3, each refusal with line, field and rule, then the totals.
    let out = as_("amr", &["push", SAMPLE, "--period", &period]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("line 26: fields.monthly_income:") && stdout.contains("(R-DATA-3)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("line 25: subject_id:") && stdout.contains("(R-DATA-1)"),
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("accepted 24, rejected 5"),
        "{stdout}"
    );

    // Only good lines: exit 0.
    let good: String = std::fs::read_to_string(SAMPLE)
        .unwrap()
        .lines()
        .take(24)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(dir.path().join("good.jsonl"), good).unwrap();
    let out = as_("amr", &["push", "good.jsonl", "--period", &period]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("accepted 24, rejected 0"));

    // Pull: JSON Lines, one record per line, with the record-file names.
    let out = bin()
        .args(["pull", "91211382MA0Y3K1050"])
        .env("CREDIT_NODE_ENDPOINT", &endpoint)
        .env("CREDIT_NODE_IDENTITY", "ops")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "its registration and its licence");
    assert!(
        lines
            .iter()
            .all(|r| r["subject_id"] == "91211382MA0Y3K1050" && r["origin_region"] == "211382")
    );

    // Status, for this node's operator: region, level, no parent.
    let out = as_("ops", &["status"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("211382 (county)") && stdout.contains("parent: none configured"),
        "{stdout}"
    );
    let out = as_("ops", &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (json["region"].as_str(), json["records"].as_u64()),
        (Some("211382"), Some(23)),
        "24 accepted, one of them a new version"
    );

    // A provider may not pull: exit 1 with the rule.
    let out = as_("amr", &["pull", "91211382MA0Y3K1050"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("PermissionDenied") && text(&out.stderr).contains("R-REL-4"),
        "{}",
        text(&out.stderr)
    );

    // Nothing listening: exit 1.
    let push = ["push", "good.jsonl", "--period", period.as_str()];
    let out = run_as(dir.path(), "https://127.0.0.1:1", "amr", &push);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn pki_refuses_what_it_should() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        run(&["pki", "init", "--out", "ca"], dir.path())
            .status
            .success()
    );
    let again = run(&["pki", "init", "--out", "ca"], dir.path());
    assert_eq!(
        again.status.code(),
        Some(1),
        "a second init must not overwrite the CA key"
    );
    let bad_role = run(&pki_issue("auditor", "211382", "x", "x"), dir.path());
    assert_eq!(bad_role.status.code(), Some(1));
    assert!(text(&bad_role.stderr).contains("--role"));
    assert!(
        run(&pki_issue("agency", "211300", "court", "court"), dir.path())
            .status
            .success()
    );
    let revoked = run(
        &["pki", "revoke", "--ca", "ca", "court/cert.pem"],
        dir.path(),
    );
    assert!(revoked.status.success(), "{}", text(&revoked.stderr));
    let twice = run(
        &["pki", "revoke", "--ca", "ca", "court/cert.pem"],
        dir.path(),
    );
    assert!(text(&twice.stdout).contains("already revoked"));
}

#[test]
fn a_bad_config_is_refused_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("node.toml"), "region = \"211382\"\nname = \"x\"\nlisten = \"nowhere\"\ndata_dir = \"d\"\n[tls]\nca = \"a\"\ncert = \"b\"\nkey = \"c\"\n").unwrap();
    let out = run(&["serve", "--config", "node.toml"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("config key `listen`"),
        "{}",
        text(&out.stderr)
    );
}

/// A moved clock (`[clock] today`) on a live data folder would purge, publish and stamp
/// by the wrong day, and the purges travel up: `serve` needs a second, explicit switch.
#[test]
fn serve_refuses_a_moved_clock_without_the_rehearsal_switch() {
    let dir = tempfile::tempdir().unwrap();
    let net = common::devnet(dir.path());
    net.node_config("211382", "凌源市公共信用信息平台", &[])
        .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_credit-node"))
        .env_remove(credit_node::cli::REHEARSAL_ENV)
        .args(["serve", "--config", "211382/node.toml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("config key `clock.today`") && err.contains("CREDIT_NODE_REHEARSAL=1"),
        "{err}"
    );
}

#[test]
fn consent_query_history_and_an_offline_verify_that_catches_an_edit() {
    let dir = tempfile::tempdir().unwrap();
    let (served, endpoint) = setup(dir.path());
    let as_ = |who: &str, args: &[&str]| run_as(dir.path(), &endpoint, who, args);
    let ok = |who: &str, args: &[&str]| succeeded(args, as_(who, args));
    let bank = pki_issue("agency", "211382", "bank", "bank");
    succeeded(&bank, run(&bank, dir.path()));
    as_("amr", &["push", SAMPLE, "--period", &previous_month()]);
    let until = (common::today() + chrono::Days::new(30)).to_string();
    let granted = ok(
        "ops",
        &[
            "consent",
            "grant",
            "--subject",
            "91211382MA0Y3K1050",
            "--grantee",
            "credit://agency/211382/bank",
            "--purpose",
            "bidding",
            "--categories",
            "admin_license",
            "--until",
            &until,
            "--evidence",
            "SQ-7",
        ],
    );
    let id = granted.lines().last().unwrap().trim().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{granted}");
    assert!(granted.contains("state     given"), "{granted}");
    let query = |purpose: &str| {
        let args = [
            "query",
            "91211382MA0Y3K1050",
            "--purpose",
            purpose,
            "--basis",
            "consent",
            "--consent",
            id.as_str(),
        ];
        as_("bank", &args)
    };

    let out = query("bidding");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 1, "the licence only");
    assert_eq!(records[0]["category"], "admin_license");
    assert!(
        text(&out.stderr).contains("answered by 211382"),
        "{}",
        text(&out.stderr)
    );

    // The wrong purpose: refused, exit 1, naming the check and the rule.
    let out = query("lending");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("FailedPrecondition") && err.contains("purpose") && err.contains("R-REL-4"),
        "{err}"
    );

    let history = ok("ops", &["audit", "history", "91211382MA0Y3K1050"]);
    assert!(
        history.contains("by credit://agency/211382/bank  purpose bidding  basis consent"),
        "{history}"
    );
    assert!(history.contains("refused R-REL-4"), "{history}");

    let verified = ok("ops", &["audit", "verify"]);
    assert!(verified.contains("OK: every entry"), "{verified}");

    // Offline, with the node stopped: clean, then one byte of entry 3 changed.
    drop(served);
    let mut verified = None;
    for _ in 0..50 {
        let out = run(
            &["audit", "verify", "--data-dir", "data", "--ca", "ca/ca.pem"],
            dir.path(),
        );
        if out.status.success() {
            verified = Some(text(&out.stdout));
            break;
        }
        // The killed node's lock may take a moment to go.
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let verified = verified.expect("offline verify of a clean log");
    assert!(
        verified.contains("usage log of 211382") && verified.contains("OK"),
        "{verified}"
    );
    {
        let db = sled::open(dir.path().join("data")).unwrap();
        let usage = db.open_tree("usage").unwrap();
        let mut v = usage.get(3u64.to_be_bytes()).unwrap().unwrap().to_vec();
        let i = v.len() / 2;
        v[i] ^= 0x20;
        usage.insert(3u64.to_be_bytes(), v).unwrap();
        db.flush().unwrap();
    }
    let out = run(&["audit", "verify", "--data-dir", "data"], dir.path());
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("MISMATCH: the log stops matching at entry 3"),
        "{stdout}"
    );
}

#[test]
fn an_objection_filed_checked_answered_and_resolved_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (_served, endpoint) = setup(dir.path());
    let as_ = |who: &str, args: &[&str]| run_as(dir.path(), &endpoint, who, args);
    let ok = |who: &str, args: &[&str]| succeeded(args, as_(who, args));
    as_("amr", &["push", SAMPLE, "--period", &previous_month()]);
    let pulled = ok("ops", &["pull", "91211382MA0Y3K1050"]);
    let record: serde_json::Value = serde_json::from_str(pulled.lines().next().unwrap()).unwrap();
    let record_id = record["id"].as_str().unwrap().to_string();

    let filed = ok(
        "ops",
        &[
            "objection",
            "file",
            "--record",
            &record_id,
            "--reason",
            "wrong amount",
            "--evidence",
            "YY-1",
        ],
    );
    let case = filed.lines().last().unwrap().trim().to_string();
    assert!(uuid::Uuid::parse_str(&case).is_ok(), "{filed}");
    assert!(filed.contains("check") && filed.contains("due"), "{filed}");
    let pulled = ok("ops", &["pull", "91211382MA0Y3K1050"]);
    assert!(
        !pulled.contains(&record_id),
        "released while the objection is open"
    );

    let checked = ok("ops", &["objection", "check", &case, "--fault", "provider"]);
    assert!(
        checked.contains("provider_notified") && checked.contains("provider_reply"),
        "{checked}"
    );
    let listed = ok("amr", &["objection", "list", "--open", "--json"]);
    let listed: serde_json::Value = serde_json::from_str(listed.lines().next().unwrap()).unwrap();
    assert_eq!(listed["id"], case.as_str());
    ok(
        "amr",
        &[
            "objection",
            "reply",
            &case,
            "--answer",
            "confirmed",
            "--text",
            "the amount is right",
        ],
    );
    let resolve = |outcome: &str| {
        as_(
            "ops",
            &[
                "objection",
                "resolve",
                &case,
                "--outcome",
                outcome,
                "--reason",
                "confirmed",
                "--fault",
                "provider",
            ],
        )
    };
    // A bad outcome: refused with its field and rule, exit 1.
    let out = resolve("kept");
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("outcome") && err.contains("R-OBJ-3"), "{err}");
    let out = resolve("upheld");
    let resolved = text(&out.stdout);
    assert!(
        resolved.contains("resolved") && resolved.contains("upheld"),
        "{resolved}"
    );
    let pulled = ok("ops", &["pull", "91211382MA0Y3K1050"]);
    assert!(pulled.contains(&record_id), "the suspension was not lifted");
}
