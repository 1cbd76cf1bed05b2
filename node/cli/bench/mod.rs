//! `credit-node bench push`: end-to-end push throughput over mutual TLS against an
//! in-process node, and the store-only ceiling for the same records on the same machine.
//! `credit-node bench sync` (`sync`): records pushed at a county reaching the province
//! through the city (two uplinks), as throughput and, at a steady push rate, per-record
//! latency. `credit-node bench query` / `bench pull` (`read`): consent-gated queries and
//! pulls from 32 clients against a store of 1,000,000 records. Numbers go to
//! BENCHMARKS.md; tests never assert on timing.

mod read;
mod sync;

pub use read::{ReadBenchArgs, pull, query};
pub use sync::{SyncBenchArgs, sync};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use tokio::sync::{Semaphore, mpsc};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;

use super::{CliError, Exit};
use crate::devnet::{DevNet, DevProvider};
use crate::domain::caller::Role;
use crate::domain::region::RegionCode;
use crate::identity::client::{ClientIdentity, ExpectedServer, connect};
use crate::pb;
use crate::pb::exchange_client::ExchangeClient;
use crate::policy::sample::generate_drafts;
use crate::policy::{Catalog, Validator};
use crate::rpc::convert::record::draft_to_wire;
use crate::store::{Store, StoreOptions};

/// The push load `bench push` sends to its node and `bench sync`, in its throughput
/// phase, to the county: one set of flags for both (under the heading "Throughput phase"
/// in `bench sync --help`). `--subjects` is not here: `sync` spreads both phases over it.
#[derive(Args, Debug, Clone)]
pub struct PushLoad {
    /// Records to push.
    #[arg(long, default_value_t = 200_000)]
    pub records: usize,
    /// Records per batch.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Concurrent push streams (each its own connection, as separate providers would be).
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    /// Batches in flight per stream.
    #[arg(long, default_value_t = 2)]
    pub window: usize,
}

#[derive(Args, Debug, Clone)]
pub struct PushBenchArgs {
    #[command(flatten)]
    pub load: PushLoad,
    /// Distinct subjects the records are spread over.
    #[arg(long, default_value_t = 20_000)]
    pub subjects: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One line describing the machine, for BENCHMARKS.md.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores, {cpu}")
}

pub async fn push(args: PushBenchArgs) -> Result<Exit, CliError> {
    let tmp = tempfile::tempdir()?;
    let catalog = Catalog::builtin()?;
    let categories: Vec<String> = catalog.categories().map(|c| c.code.clone()).collect();
    let period = super::previous_month();
    println!("machine: {}", machine());
    println!(
        "generating {} records over {} subjects ({} per batch, {} streams, window {})",
        args.load.records, args.subjects, args.load.batch, args.load.streams, args.load.window
    );
    let drafts = generate_drafts(&catalog, args.load.records, args.subjects, 7, &period);
    let batch = args.load.batch.clamp(1, crate::exchange::MAX_BATCH);
    let wire: Vec<pb::Record> = drafts.iter().map(draft_to_wire).collect();
    let bytes: usize = wire.iter().map(prost::Message::encoded_len).sum();
    println!(
        "average record on the wire: {} bytes",
        bytes / wire.len().max(1)
    );

    // End to end: mTLS, gRPC, validation, store, durable acknowledgement.
    let net = DevNet::create(tmp.path())?;
    let providers = bench_providers(args.load.streams, &categories);
    let config = net.node_config("211382", "bench node", &providers)?;
    let node = crate::server::start(config).await?;
    let endpoint = node.endpoint();

    let mut work = Vec::new();
    for (i, records) in split_even(wire, args.load.streams).into_iter().enumerate() {
        let identity = ClientIdentity::load(&net.identity(
            Role::Provider,
            "211382",
            &format!("bench-{i}"),
        )?)?;
        work.push((
            connect(&endpoint, &identity, ExpectedServer::AnyNode).await?,
            records,
        ));
    }
    let started = Instant::now();
    let (latencies, accepted) = push_streams(work, batch, args.load.window.max(1)).await?;
    let e2e = started.elapsed();
    let stats = node.store().stats()?;
    let data_dir = node.store().dir().to_path_buf();
    node.shutdown().await?;
    let on_disk = dir_bytes(&data_dir);
    if accepted as usize != args.load.records {
        return Err(format!(
            "only {accepted} of {} records were accepted",
            args.load.records
        )
        .into());
    }
    let e2e_rate = args.load.records as f64 / e2e.as_secs_f64();

    // Ceiling: the same records, checked, written straight into a fresh store in the
    // same batch sizes (no TLS, no gRPC, no validation in the timed part).
    let validator = Validator::new(Arc::new(catalog), Vec::new());
    let today = crate::domain::clock::Clock::system().today();
    let contents = drafts
        .iter()
        .map(|d| validator.check(d, "bench-0", today))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|v| format!("generated record refused: {v}"))?;
    let validate_started = Instant::now();
    for d in &drafts {
        let _ = validator.check(d, "bench-0", today);
    }
    let validate_time = validate_started.elapsed();
    let store_dir = tmp.path().join("store-only");
    let region = RegionCode::parse("211382")?;
    let store_rate =
        tokio::task::spawn_blocking(move || -> Result<(f64, f64, u64, u64), CliError> {
            let store = Store::open(&store_dir, &StoreOptions::default())?;
            let started = Instant::now();
            let mut it = contents.into_iter().peekable();
            while it.peek().is_some() {
                let chunk: Vec<_> = it.by_ref().take(batch).collect();
                store.accept(
                    chunk,
                    region,
                    crate::domain::clock::Clock::system().now_ms(),
                    |_| Vec::new(),
                )?;
            }
            let rate = args.load.records as f64 / started.elapsed().as_secs_f64();
            store.sync()?;
            drop(store);
            // What every start adds: the integrity check of the whole store (R-SEC-1).
            let checked = Instant::now();
            let report = Store::check_dir(&store_dir, &StoreOptions::default())?;
            if !report.ok() {
                return Err(
                    format!("the integrity check found damage: {:?}", report.damage).into(),
                );
            }
            Ok((
                rate,
                checked.elapsed().as_secs_f64(),
                report.open_ms,
                report.check_ms,
            ))
        })
        .await??;
    let (store_rate, check_secs, open_ms, check_ms) = store_rate;

    println!();
    println!("end to end (mTLS + gRPC + validation + durable store):");
    println!(
        "  {} records in {:.2} s: {:.0} records/s",
        args.load.records,
        e2e.as_secs_f64(),
        e2e_rate
    );
    println!(
        "  batch latency ({} batches of {batch}): p50 {:.1} ms, p99 {:.1} ms",
        latencies.len(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "  node holds {} records, changelog {}, usage entries {}",
        stats.records, stats.last_change, stats.usage_entries
    );
    println!(
        "  store on disk: {:.1} MiB, {} bytes per record ({} on the wire)",
        on_disk as f64 / (1024.0 * 1024.0),
        on_disk / args.load.records.max(1) as u64,
        bytes / args.load.records.max(1)
    );
    println!(
        "validation alone: {:.0} records/s on one core",
        args.load.records as f64 / validate_time.as_secs_f64()
    );
    println!("store only (same records, same batches, durable): {store_rate:.0} records/s");
    println!(
        "integrity check of that store (store check, run at every start): {check_secs:.2} s \
         (sled's open {open_ms} ms, the check {check_ms} ms)"
    );
    println!(
        "ratio end to end / store only: {:.2}",
        e2e_rate / store_rate
    );
    Ok(Exit::Ok)
}

/// Bytes of the files under `dir` (sled's data, blobs and snapshots).
/// The `streams` providers a bench registers, `bench-0` up, each for `categories`.
fn bench_providers(streams: usize, categories: &[String]) -> Vec<DevProvider> {
    (0..streams)
        .map(|i| DevProvider {
            id: format!("bench-{i}"),
            name: format!("bench provider {i}"),
            categories: categories.to_vec(),
            uscc: None,
            government: false,
        })
        .collect()
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// Pushes `records` on one stream with at most `window` batches in flight, and with
/// `pace`, at most one batch per tick (a late tick delays the ones after it, so the rate
/// falls short rather than bursting); returns each batch's latency (sent to result) and
/// the number accepted.
async fn push_stream(
    channel: tonic::transport::Channel,
    records: Vec<pb::Record>,
    batch: usize,
    window: usize,
    pace: Option<Duration>,
) -> Result<(Vec<Duration>, u64), CliError> {
    let mut client = ExchangeClient::new(channel)
        .max_encoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES)
        .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let permits = Arc::new(Semaphore::new(window));
    let (tx, rx) = mpsc::channel::<pb::PushBatch>(window);
    let sender_sent = sent.clone();
    let sender_permits = permits.clone();
    let sender = tokio::spawn(async move {
        let mut ticker = pace.map(|p| {
            let mut t = tokio::time::interval(p);
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        });
        let mut rest = records;
        let mut n = 0u64;
        while !rest.is_empty() {
            let tail = rest.split_off(batch.min(rest.len()));
            if let Some(t) = ticker.as_mut() {
                t.tick().await;
            }
            let Ok(permit) = sender_permits.acquire().await else {
                break;
            };
            permit.forget();
            n += 1;
            let batch_ref = n.to_string();
            if let Ok(mut s) = sender_sent.lock() {
                s.insert(batch_ref.clone(), Instant::now());
            }
            if tx
                .send(pb::PushBatch {
                    batch_ref,
                    records: rest,
                })
                .await
                .is_err()
            {
                break;
            }
            rest = tail;
        }
    });
    let mut results = client.push(ReceiverStream::new(rx)).await?.into_inner();
    let mut latencies = Vec::new();
    let mut accepted = 0u64;
    while let Some(result) = results.next().await {
        let result = result?;
        if let Some(at) = sent
            .lock()
            .ok()
            .and_then(|mut s| s.remove(&result.batch_ref))
        {
            latencies.push(at.elapsed());
        }
        accepted += u64::from(result.accepted);
        if result.rejected > 0 {
            let first = result.outcomes.iter().find_map(|o| o.refusal.clone());
            return Err(format!("bench records were refused: {first:?}").into());
        }
        permits.add_permits(1);
    }
    sender.await?;
    Ok((latencies, accepted))
}

/// Runs one push stream per (channel, records) at once and waits for all; returns every
/// batch's latency, sorted, and the number of records accepted.
async fn push_streams(
    work: Vec<(tonic::transport::Channel, Vec<pb::Record>)>,
    batch: usize,
    window: usize,
) -> Result<(Vec<Duration>, u64), CliError> {
    let tasks: Vec<_> = work
        .into_iter()
        .map(|(channel, records)| tokio::spawn(push_stream(channel, records, batch, window, None)))
        .collect();
    let mut latencies = Vec::new();
    let mut accepted = 0u64;
    for t in tasks {
        let (lat, acc) = t.await??;
        latencies.extend(lat);
        accepted += acc;
    }
    latencies.sort();
    Ok((latencies, accepted))
}

/// Splits `records` into `parts` runs of nearly equal length, in order.
fn split_even(records: Vec<pb::Record>, parts: usize) -> Vec<Vec<pb::Record>> {
    let per = records.len().div_ceil(parts.max(1)).max(1);
    let mut out = Vec::new();
    let mut rest = records;
    while !rest.is_empty() {
        let tail = rest.split_off(per.min(rest.len()));
        out.push(rest);
        rest = tail;
    }
    out
}
