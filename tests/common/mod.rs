//! Builders for integration tests: a development federation in a temporary folder,
//! nodes started in-process on 127.0.0.1:0, and clients with certificates made by the
//! project's own PKI code.
#![allow(dead_code)]

pub mod fed;
pub mod proc;
pub mod proxy;

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use credit_node::devnet::{DevNet, DevProvider};
use credit_node::domain::caller::Role;
use credit_node::domain::clock::Clock;
use credit_node::domain::record::Draft;
use credit_node::identity::client::{ClientIdentity, ExpectedServer, connect};
use credit_node::pb;
use credit_node::pb::exchange_client::ExchangeClient;
use credit_node::policy::Catalog;
use credit_node::server::{NodeHandle, start};
use tokio_stream::StreamExt;
use tonic::transport::Channel;

pub const LINGYUAN: &str = "211382";

/// What `CREDIT_NODE_TEST_TODAY` may pin the suite to, when unset.
pub const DEFAULT_TODAY: &str = "2026-11-18";

/// The day every test runs on. No test reads the wall clock (`tests/wall_clock.rs`
/// checks it): a test's nodes run on a `Clock` started at noon of this day, and its
/// records, periods and consents are dated from it. `CREDIT_NODE_TEST_TODAY=YYYY-MM-DD`
/// pins the whole suite to another day; `.ci/run` runs it on the first and last day of a
/// month, 29 February, the turn of a year and a 调休 working weekend.
pub fn today() -> NaiveDate {
    let raw = std::env::var("CREDIT_NODE_TEST_TODAY").unwrap_or_else(|_| DEFAULT_TODAY.into());
    NaiveDate::parse_from_str(&raw, "%Y-%m-%d")
        .unwrap_or_else(|_| panic!("CREDIT_NODE_TEST_TODAY={raw:?} is not YYYY-MM-DD"))
}

/// A clock at noon of `today()`; clones move together.
pub fn clock() -> Clock {
    Clock::on(today())
}

/// The month before `today()`'s, YYYY-MM: a period providers may report.
pub fn previous_month() -> String {
    credit_node::cli::previous_month_of(today())
}

/// The real time, Unix milliseconds: only for a signing time, which is checked against
/// certificates that TLS checks by the real clock. Never a date rule's input.
pub fn wall_ms() -> i64 {
    credit_node::domain::clock::Clock::system().now_ms() // wall-clock: signing times only
}

/// The `credit-node` binary, allowed to serve the moved clock `common::devnet` writes
/// into every config (`[clock] today` needs `CREDIT_NODE_REHEARSAL=1`).
pub fn bin() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_credit-node"));
    command.env(credit_node::cli::REHEARSAL_ENV, "1");
    command
}

/// A development federation folder whose node configs start their clocks on `today()`.
pub fn devnet(dir: &std::path::Path) -> DevNet {
    DevNet::create(dir).unwrap().pinned_to(today())
}

/// A folder with a CA and one running Lingyuan node with two providers:
/// `lingyuan-amr` (registration, licences, penalties) and `lingyuan-power` (power).
pub struct TestNode {
    pub net: DevNet,
    pub node: Option<NodeHandle>,
    _dir: tempfile::TempDir,
}

pub fn providers() -> Vec<DevProvider> {
    credit_node::devnet::sample_providers()
}

impl TestNode {
    pub async fn start() -> TestNode {
        let dir = tempfile::tempdir().unwrap();
        let net = devnet(dir.path());
        let config = net
            .node_config(LINGYUAN, "凌源市公共信用信息平台", &providers())
            .unwrap();
        let node = start(config).await.unwrap();
        TestNode {
            net,
            node: Some(node),
            _dir: dir,
        }
    }

    pub fn node(&self) -> &NodeHandle {
        self.node.as_ref().expect("node running")
    }

    pub fn endpoint(&self) -> String {
        self.node().endpoint()
    }

    /// Stops the node and starts it again on the same data folder and config.
    pub async fn restart(&mut self) {
        let node = self.node.take().expect("node running");
        let config = node.node.config.clone();
        node.shutdown().await.unwrap();
        let mut config = config;
        config.listen = "127.0.0.1:0".parse().unwrap();
        self.node = Some(start(config).await.unwrap());
    }

    pub fn identity(&self, role: Role, region: &str, id: &str) -> PathBuf {
        self.net.identity(role, region, id).unwrap()
    }

    /// A connection to the node as client `id` of `role` in `region`, for any service.
    pub async fn channel(&self, role: Role, region: &str, id: &str) -> Channel {
        let identity = ClientIdentity::load(&self.identity(role, region, id)).unwrap();
        connect(&self.endpoint(), &identity, ExpectedServer::AnyNode)
            .await
            .unwrap()
    }

    pub async fn client(&self, role: Role, region: &str, id: &str) -> ExchangeClient<Channel> {
        ExchangeClient::new(self.channel(role, region, id).await)
    }

    pub async fn provider(&self, id: &str) -> ExchangeClient<Channel> {
        self.client(Role::Provider, LINGYUAN, id).await
    }

    pub async fn operator(&self) -> ExchangeClient<Channel> {
        self.client(Role::Operator, LINGYUAN, "ops").await
    }

    pub fn fingerprint(&self) -> [u8; 32] {
        self.node().store().fingerprint().unwrap()
    }

    pub fn usage_entries(&self) -> u64 {
        self.node().store().stats().unwrap().usage_entries
    }

    /// The last usage entry written.
    pub fn last_usage(&self) -> credit_node::domain::usage::UsageEntry {
        let n = self.usage_entries();
        let entries = self.node().store().usage_since(n - 1, 1).unwrap();
        entries.into_iter().next().unwrap().1.entry
    }
}

/// One batch through a fresh Push stream; returns its result or the stream's status.
pub async fn push_one(
    client: &mut ExchangeClient<Channel>,
    records: Vec<pb::Record>,
) -> Result<pb::PushResult, tonic::Status> {
    let batch = pb::PushBatch {
        batch_ref: "test".into(),
        records,
    };
    let mut results = client
        .push(tokio_stream::iter(vec![batch]))
        .await?
        .into_inner();
    match results.next().await {
        Some(r) => r,
        None => Err(tonic::Status::unknown("no result")),
    }
}

pub async fn pull(
    client: &mut ExchangeClient<Channel>,
    subject: &str,
) -> Result<Vec<pb::Record>, tonic::Status> {
    let mut stream = client
        .pull_by_subject(pb::PullRequest {
            subject_id: subject.into(),
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        out.push(r?);
    }
    Ok(out)
}

/// Valid drafts for the given category, generated by the project's own generator.
pub fn drafts(category: &str, n: usize, seed: u64) -> Vec<Draft> {
    let catalog = Catalog::builtin().unwrap();
    let period = previous_month();
    credit_node::policy::sample::generate_drafts_in(
        &catalog,
        &[category],
        n,
        n.div_ceil(2).max(1),
        seed,
        &period,
    )
}

pub fn wire(drafts: &[Draft]) -> Vec<pb::Record> {
    drafts
        .iter()
        .map(credit_node::rpc::convert::record::draft_to_wire)
        .collect()
}

/// Polls `check` until it holds or `limit` passes; never a fixed sleep.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
