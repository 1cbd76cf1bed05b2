//! `credit-node bench query` and `bench pull`: reads against an in-process node holding
//! a large store (1,000,000 records by default), from many concurrent clients over mutual
//! TLS, each on its own connection. Every query checks its consent and every read writes
//! its usage entry durably before answering, as in production.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use tokio_stream::StreamExt;

use super::sync::{cpu_secs, load, verdict};
use super::{machine, ms, percentile};
use crate::cli::{CliError, Exit};
use crate::devnet::{DevNet, DevProvider};
use crate::domain::caller::Role;
use crate::domain::consent::{Consent, Purpose, Terms};
use crate::domain::record::Disclosure;
use crate::identity::client::{ClientIdentity, ExpectedServer, connect};
use crate::pb;
use crate::policy::sample::generate_drafts;
use crate::policy::{Catalog, Validator};
use crate::store::Change;

#[derive(Args, Debug, Clone)]
pub struct ReadBenchArgs {
    /// Records in the store before reading starts.
    #[arg(long, default_value_t = 1_000_000)]
    pub records: usize,
    /// Records per subject, on average.
    #[arg(long, default_value_t = 5)]
    pub per_subject: usize,
    /// Concurrent clients, each on its own TLS connection.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds of measured reading (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    pub secs: u64,
    /// Subjects with a consent (query only); queries go round them.
    #[arg(long, default_value_t = 2_000)]
    pub consents: usize,
    /// Instead of the reads, call the gRPC health check the same way: the cost of mutual
    /// TLS, HTTP/2 and gRPC alone on this machine, for reading the numbers.
    #[arg(long)]
    pub transport_only: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Query,
    Pull,
    Health,
}

pub async fn query(args: ReadBenchArgs) -> Result<Exit, CliError> {
    run(args, Kind::Query).await
}

pub async fn pull(args: ReadBenchArgs) -> Result<Exit, CliError> {
    run(args, Kind::Pull).await
}

const AGENCY: &str = "bench-agency";
const REGION: &str = "211382";

async fn run(args: ReadBenchArgs, kind: Kind) -> Result<Exit, CliError> {
    let kind = if args.transport_only {
        Kind::Health
    } else {
        kind
    };
    let tmp = tempfile::tempdir()?;
    let catalog = Catalog::builtin()?;
    let categories: Vec<String> = catalog.categories().map(|c| c.code.clone()).collect();
    let consent_classes: Vec<String> = catalog
        .categories()
        .filter(|c| c.disclosure == Disclosure::Consent)
        .map(|c| c.code.clone())
        .collect();
    let period = crate::cli::previous_month();
    println!("machine: {}", machine());
    println!("load average at start: {}", load());

    let net = DevNet::create(tmp.path())?;
    let provider = DevProvider {
        id: "bench-0".into(),
        name: "bench provider".into(),
        categories,
        uscc: None,
        government: false,
    };
    let config = net.node_config(REGION, "bench node", &[provider])?;
    let node = crate::server::start(config).await?;
    let store = node.store().clone();

    // The store, filled directly in push-sized batches (the push path is `bench push`).
    let started = Instant::now();
    let validator = Arc::new(Validator::new(Arc::new(catalog), Vec::new()));
    let chunk = 50_000usize;
    let (records, per_subject) = (args.records, args.per_subject.max(1));
    let fill_store = store.clone();
    let subjects: Vec<(String, bool)> = tokio::task::spawn_blocking(move || {
        let today = crate::domain::clock::Clock::system().today();
        let region = crate::domain::region::RegionCode::parse(REGION)?;
        let mut subjects = Vec::new();
        let mut written = 0usize;
        let mut seed = 1u64;
        while written < records {
            let n = chunk.min(records - written);
            let drafts = generate_drafts(
                validator.catalog(),
                n,
                (n / per_subject).max(1),
                seed,
                &period,
            );
            seed += 1;
            let mut contents = Vec::with_capacity(drafts.len());
            for d in &drafts {
                contents.push(
                    validator
                        .check(d, "bench-0", today)
                        .map_err(|v| format!("generated record refused: {v}"))?,
                );
            }
            // Each subject once, and whether it has a record a consent can open.
            let mut seen: std::collections::HashMap<&str, usize> = Default::default();
            for c in &contents {
                let i = *seen.entry(c.subject.id.as_str()).or_insert_with(|| {
                    subjects.push((c.subject.id.clone(), false));
                    subjects.len() - 1
                });
                subjects[i].1 |= c.disclosure == Disclosure::Consent;
            }
            let mut it = contents.into_iter().peekable();
            while it.peek().is_some() {
                let batch: Vec<_> = it.by_ref().take(1000).collect();
                fill_store.accept(
                    batch,
                    region,
                    crate::domain::clock::Clock::system().now_ms(),
                    |_| Vec::new(),
                )?;
            }
            written += n;
        }
        Ok::<_, CliError>(subjects)
    })
    .await??;
    let stats = store.stats()?;
    println!(
        "store: {} records over {} subjects, filled in {:.1} s",
        stats.records,
        subjects.len(),
        started.elapsed().as_secs_f64()
    );

    // Consents for the subjects queried, recorded and signed by the node.
    let targets: Vec<(String, String)> = if kind == Kind::Query {
        let chosen: Vec<String> = subjects
            .iter()
            .filter(|(_, c)| *c)
            .map(|(s, _)| s.clone())
            .take(args.consents.max(1))
            .collect();
        let signer = node.node.signer.clone();
        let grant_store = store.clone();
        let classes = consent_classes.clone();
        tokio::task::spawn_blocking(move || {
            let today = crate::domain::clock::Clock::system().today();
            let mut out = Vec::with_capacity(chosen.len());
            for subject in chosen {
                let terms = Terms {
                    id: uuid::Uuid::now_v7(),
                    subject_id: subject.clone(),
                    grantee: format!("credit://agency/{REGION}/{AGENCY}"),
                    purpose: Purpose::Lending,
                    purpose_text: "bench".into(),
                    categories: classes.clone(),
                    valid_from: today,
                    valid_until: today + chrono::Days::new(365),
                    evidence: "BENCH".into(),
                    recorded_by: format!("credit://operator/{REGION}/bench"),
                    recorded_at_ms: crate::domain::clock::Clock::system().now_ms(),
                    node: crate::domain::region::RegionCode::parse(REGION)?,
                };
                let id = terms.id.to_string();
                let consent = Consent::sign(terms, &signer)?;
                grant_store.append_local(Change::Consent(consent), Vec::new())?;
                out.push((subject, id));
            }
            Ok::<_, CliError>(out)
        })
        .await??
    } else {
        subjects
            .iter()
            .map(|(s, _)| (s.clone(), String::new()))
            .collect()
    };
    if targets.is_empty() {
        return Err("no subject to read".into());
    }
    let targets = Arc::new(targets);

    let (role, id) = match kind {
        Kind::Query => (Role::Agency, AGENCY),
        Kind::Pull | Kind::Health => (Role::Operator, "bench"),
    };
    let identity = ClientIdentity::load(&net.identity(role, REGION, id)?)?;
    let mut channels = Vec::with_capacity(args.clients);
    for _ in 0..args.clients.max(1) {
        channels.push(connect(&node.endpoint(), &identity, ExpectedServer::AnyNode).await?);
    }
    let what = match kind {
        Kind::Query => "queries (basis consent, signature and every check, usage entry durable)",
        Kind::Pull => "pulls by an operator (usage entry durable)",
        Kind::Health => "gRPC health checks (transport only: no store, no usage entry)",
    };
    println!(
        "{} clients, {what}, {} s after 1 s of warm-up",
        channels.len(),
        args.secs
    );

    let usage_before = store.stats()?.usage_entries;
    let syncs_before = store.syncs();
    let cpu_before = cpu_secs();
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(args.secs.max(1));
    let mut tasks = Vec::new();
    for (i, channel) in channels.into_iter().enumerate() {
        let targets = targets.clone();
        tasks.push(tokio::spawn(async move {
            reader(kind, channel, targets, i, warm_until, end).await
        }));
    }
    let mut latencies = Vec::new();
    let mut returned = 0u64;
    for t in tasks {
        let (l, r) = t.await??;
        latencies.extend(l);
        returned += r;
    }
    let measured = end.duration_since(warm_until).as_secs_f64();
    let cpu = cpu_secs() - cpu_before;
    latencies.sort();
    let n = latencies.len();
    let rate = n as f64 / measured;
    let usage = store.stats()?.usage_entries - usage_before;
    let syncs = store.syncs() - syncs_before;
    let p50 = percentile(&latencies, 0.50);
    let p99 = percentile(&latencies, 0.99);
    println!();
    println!(
        "{n} requests measured: {rate:.0} per second; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(p50),
        ms(p99),
        ms(percentile(&latencies, 0.999)),
        ms(latencies.last().copied().unwrap_or_default())
    );
    println!(
        "  {:.1} records per answer; {usage} usage entries written (warm-up included) in {syncs} syncs ({:.1} per sync)",
        returned as f64 / n.max(1) as f64,
        usage as f64 / syncs.max(1) as f64
    );
    println!(
        "  CPU used by node and clients: {cpu:.1} s over {:.1} s ({:.2} of the cores)",
        measured + 1.0,
        cpu / (measured + 1.0)
    );
    if kind == Kind::Query {
        println!(
            "targets: p99 <= 5 ms: {}; >= 10,000 queries/s: {}",
            verdict(ms(p99) <= 5.0),
            verdict(rate >= 10_000.0)
        );
    }
    println!("load average at end: {}", load());
    node.shutdown().await?;
    Ok(Exit::Ok)
}

/// One client: reads round the targets until `end`; returns the latencies measured after
/// `warm_until` and the records those answers held.
async fn reader(
    kind: Kind,
    channel: tonic::transport::Channel,
    targets: Arc<Vec<(String, String)>>,
    offset: usize,
    warm_until: Instant,
    end: Instant,
) -> Result<(Vec<Duration>, u64), CliError> {
    let mut query = pb::query_client::QueryClient::new(channel.clone())
        .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
    let mut exchange = pb::exchange_client::ExchangeClient::new(channel.clone())
        .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut latencies = Vec::new();
    let mut returned = 0u64;
    // Spread the clients over the targets with a stride prime to most lengths.
    let mut i = offset * 7919;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let (subject, consent) = &targets[i % targets.len()];
        i += 1;
        let started = Instant::now();
        let records = match kind {
            Kind::Query => query
                .query(pb::QueryRequest {
                    subject_id: subject.clone(),
                    purpose: Purpose::Lending.to_string(),
                    basis: pb::LegalBasis::Consent as i32,
                    consent_id: consent.clone(),
                    scope: pb::Scope::Local as i32,
                    ..Default::default()
                })
                .await?
                .into_inner()
                .records
                .len() as u64,
            Kind::Pull => {
                let mut stream = exchange
                    .pull_by_subject(pb::PullRequest {
                        subject_id: subject.clone(),
                    })
                    .await?
                    .into_inner();
                let mut n = 0u64;
                while let Some(r) = stream.next().await {
                    r?;
                    n += 1;
                }
                n
            }
            Kind::Health => {
                health
                    .check(tonic_health::pb::HealthCheckRequest {
                        service: String::new(),
                    })
                    .await?;
                0
            }
        };
        if started >= warm_until {
            latencies.push(started.elapsed());
            returned += records;
        }
    }
    Ok((latencies, returned))
}
