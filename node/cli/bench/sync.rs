//! `credit-node bench sync`: Lingyuan -> Chaoyang -> Liaoning in one process; throughput
//! through two hops, and per-record propagation latency at a steady push rate.

use super::*;

const PROVINCE: &str = "210000";
const CITY: &str = "211300";
const COUNTY: &str = "211382";
/// Batches in flight in the steady phase: enough that the client never holds the rate
/// back while the county's acknowledgements stay below 16 ticks.
const STEADY_WINDOW: usize = 16;

#[derive(Args, Debug, Clone)]
pub struct SyncBenchArgs {
    /// Distinct subjects the records of both phases are spread over.
    #[arg(long, default_value_t = 20_000)]
    pub subjects: usize,
    #[command(flatten, next_help_heading = "Throughput phase")]
    pub load: PushLoad,
    /// Records per second pushed at the county in the latency phase (0 skips the phase).
    #[arg(long, help_heading = "Latency phase", default_value_t = 5000)]
    pub rate: usize,
    /// Seconds the latency phase pushes for.
    #[arg(long, help_heading = "Latency phase", default_value_t = 10)]
    pub steady_secs: u64,
    /// Milliseconds between batches in the latency phase (a batch is rate x tick records).
    #[arg(long, help_heading = "Latency phase", default_value_t = 20)]
    pub tick_ms: u64,
}

/// Lingyuan -> Chaoyang -> Liaoning in this process, started province first.
struct Federation {
    net: DevNet,
    province: crate::server::NodeHandle,
    city: crate::server::NodeHandle,
    county: crate::server::NodeHandle,
}

impl Federation {
    async fn start(dir: &std::path::Path, providers: &[DevProvider]) -> Result<Self, CliError> {
        let net = DevNet::create(dir)?;
        let start = crate::server::start;
        let province = start(net.federated_node_config(
            PROVINCE,
            "辽宁省公共信用信息平台",
            &[],
            None,
            &[CITY],
        )?)
        .await?;
        let city = start(net.federated_node_config(
            CITY,
            "朝阳市公共信用信息平台",
            &[],
            Some((PROVINCE, &province.endpoint())),
            &[COUNTY],
        )?)
        .await?;
        let county = start(net.federated_node_config(
            COUNTY,
            "凌源市公共信用信息平台",
            providers,
            Some((CITY, &city.endpoint())),
            &[],
        )?)
        .await?;
        let fed = Federation {
            net,
            province,
            city,
            county,
        };
        fed.wait_connected().await?;
        Ok(fed)
    }

    /// Both uplinks connected, so the timed part does not include their first handshake.
    async fn wait_connected(&self) -> Result<(), CliError> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let up = [&self.county, &self.city]
                .iter()
                .all(|n| n.node.uplink.as_ref().is_some_and(|u| u.state().connected));
            if up {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("the uplinks did not connect within 20 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A push connection to the county as provider `bench-<i>`.
    async fn provider_channel(&self, i: usize) -> Result<tonic::transport::Channel, CliError> {
        let identity = ClientIdentity::load(&self.net.identity(
            Role::Provider,
            COUNTY,
            &format!("bench-{i}"),
        )?)?;
        Ok(connect(&self.county.endpoint(), &identity, ExpectedServer::AnyNode).await?)
    }

    /// Stops the nodes, county first, each given a few seconds: a parent's graceful
    /// shutdown waits for its child's Sync stream to end, and one that does not is
    /// reported and left to end with the process.
    async fn shutdown(self) -> Result<(), CliError> {
        for (what, node) in [
            ("county", self.county),
            ("city", self.city),
            ("province", self.province),
        ] {
            match tokio::time::timeout(Duration::from_secs(3), node.shutdown()).await {
                Ok(stopped) => stopped?,
                Err(_) => eprintln!(
                    "note: the {what} node did not stop within 3 s (a Sync stream from its \
                     stopped child is still open); it ends with the process"
                ),
            }
        }
        Ok(())
    }
}

/// The 1-, 5- and 15-minute load averages, to read the numbers by.
pub(super) fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// CPU time this process has used (user + system, all threads), from /proc/self/stat in
/// clock ticks of 1/100 s (Linux's USER_HZ); zero where that file is missing.
pub(super) fn cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse::<u64>().ok())
        .sum();
    ticks as f64 / 100.0
}

/// Time this process's threads have spent runnable but waiting for a core (the second
/// field of /proc/self/task/*/schedstat), in seconds: how much other work on the machine
/// held the benchmark back. Threads that have exited are not counted.
fn cpu_wait_secs() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum();
    nanos as f64 / 1e9
}

pub(super) fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

/// Waits (bounded) until `head` reaches `n`; returns when it did, or None.
async fn reached(
    mut head: tokio::sync::watch::Receiver<u64>,
    n: u64,
    limit: Duration,
) -> Option<Instant> {
    match tokio::time::timeout(limit, head.wait_for(|h| *h >= n)).await {
        Ok(Ok(_)) => Some(Instant::now()),
        _ => None,
    }
}

/// For every changelog entry landing in `store` after `seen`, until `expected` have
/// landed or `limit` passes: (the origin's `reported_at_ms`, arrival), in Unix
/// milliseconds, with arrival read as soon as this task learns of a new head (so a late
/// wake-up counts against the node, never for it).
async fn arrivals(
    store: Store,
    mut head: tokio::sync::watch::Receiver<u64>,
    mut seen: u64,
    expected: usize,
    limit: Duration,
) -> Result<Vec<(i64, i64)>, CliError> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut arrived = Vec::with_capacity(expected);
    while arrived.len() < expected {
        match tokio::time::timeout_at(deadline, head.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
        let now = crate::domain::clock::Clock::system().now_ms();
        let h = *head.borrow_and_update();
        if h <= seen {
            continue;
        }
        let reader = store.clone();
        let from = seen;
        let entries = tokio::task::spawn_blocking(move || {
            reader.changes_since(from, usize::try_from(h - from).unwrap_or(usize::MAX))
        })
        .await??;
        arrived.extend(entries.iter().map(|(_, r)| (r.made_at_ms(), now)));
        seen = h;
    }
    Ok(arrived)
}

/// p50, p99 and max of arrival - reported, in milliseconds.
fn ms_percentiles(arrived: &[(i64, i64)]) -> (i64, i64, i64) {
    let mut v: Vec<i64> = arrived.iter().map(|(at, now)| now - at).collect();
    v.sort_unstable();
    let at = |p: f64| {
        if v.is_empty() {
            return 0;
        }
        v[(((v.len() - 1) as f64) * p).round() as usize]
    };
    (at(0.50), at(0.99), v.last().copied().unwrap_or(0))
}

pub async fn sync(args: SyncBenchArgs) -> Result<Exit, CliError> {
    let tmp = tempfile::tempdir()?;
    let catalog = Catalog::builtin()?;
    let categories: Vec<String> = catalog.categories().map(|c| c.code.clone()).collect();
    let period = crate::cli::previous_month();
    let streams = args.load.streams.max(1);
    let providers = bench_providers(streams, &categories);
    let batch = args.load.batch.clamp(1, crate::exchange::MAX_BATCH);
    println!("machine: {}", machine());
    println!("load average at start: {}", load());
    println!(
        "federation in one process: county {COUNTY} -> city {CITY} -> province {PROVINCE}, \
         uplink batches of {} with {} in flight",
        crate::federation::uplink::BATCH,
        crate::federation::uplink::WINDOW
    );

    // Phase 1: throughput through two hops.
    println!();
    println!(
        "throughput: {} records over {} subjects pushed at the county ({batch} per batch, \
         {streams} streams, window {})",
        args.load.records, args.subjects, args.load.window
    );
    let drafts = generate_drafts(&catalog, args.load.records, args.subjects, 7, &period);
    let wire: Vec<pb::Record> = drafts.iter().map(draft_to_wire).collect();
    drop(drafts);
    let n = wire.len() as u64;
    let fed = Federation::start(&tmp.path().join("throughput"), &providers).await?;
    for i in 0..streams {
        fed.net
            .identity(Role::Provider, COUNTY, &format!("bench-{i}"))?;
    }
    let limit = Duration::from_secs(60) + Duration::from_secs_f64(n as f64 / 2_000.0);
    let city_done = tokio::spawn(reached(fed.city.store().watch_head(), n, limit));
    let province_done = tokio::spawn(reached(fed.province.store().watch_head(), n, limit));
    let (cpu_started, wait_started) = (cpu_secs(), cpu_wait_secs());
    let mut work = Vec::new();
    for (i, records) in split_even(wire, streams).into_iter().enumerate() {
        work.push((fed.provider_channel(i).await?, records));
    }
    let started = Instant::now();
    let (latencies, accepted) = push_streams(work, batch, args.load.window.max(1)).await?;
    let pushed = started.elapsed();
    let at_push_end = (
        *fed.city.store().watch_head().borrow(),
        *fed.province.store().watch_head().borrow(),
    );
    if accepted != n {
        return Err(format!("only {accepted} of {n} records were accepted at the county").into());
    }
    let city_at = city_done.await?;
    let province_at = province_done.await?;
    let (Some(city_at), Some(province_at)) = (city_at, province_at) else {
        let city = *fed.city.store().watch_head().borrow();
        let province = *fed.province.store().watch_head().borrow();
        return Err(format!(
            "after {:.0} s the city holds {city} and the province {province} of {n} records",
            started.elapsed().as_secs_f64()
        )
        .into());
    };
    let to_city = city_at.duration_since(started);
    let to_province = province_at.duration_since(started);
    let cpu = cpu_secs() - cpu_started;
    let cpu_wait = cpu_wait_secs() - wait_started;
    let province_stats = fed.province.store().stats()?;
    fed.shutdown().await?;
    let rate = n as f64 / to_province.as_secs_f64();
    println!(
        "  push at the county: {n} records acknowledged in {:.2} s ({:.0} records/s); \
         batch latency p50 {:.1} ms, p99 {:.1} ms",
        pushed.as_secs_f64(),
        n as f64 / pushed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "  when the push ended the city held {} and the province {} of them",
        at_push_end.0, at_push_end.1
    );
    println!(
        "  all at the city after {:.2} s ({:.0} records/s through one hop)",
        to_city.as_secs_f64(),
        n as f64 / to_city.as_secs_f64()
    );
    println!(
        "  all at the province after {:.2} s: {rate:.0} records/s through two hops \
         (target >= 30000: {})",
        to_province.as_secs_f64(),
        verdict(rate >= 30_000.0)
    );
    println!(
        "  province holds {} records, changelog {}",
        province_stats.records, province_stats.last_change
    );
    println!(
        "  CPU used by the three nodes and the pushing client until then: {cpu:.1} s \
         ({:.2} of {} cores on average, {:.0} µs per record); runnable but waiting for a \
         core (summed over threads): {cpu_wait:.1} s",
        cpu / to_province.as_secs_f64(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu * 1e6 / n as f64
    );
    if province_stats.records != n {
        return Err(format!(
            "the province holds {} records, expected {n}",
            province_stats.records
        )
        .into());
    }

    // Phase 2: per-record propagation latency at a steady rate, on fresh nodes.
    if args.rate == 0 || args.steady_secs == 0 {
        println!("load average at end: {}", load());
        return Ok(Exit::Ok);
    }
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let per_tick = (args.rate as u128 * tick.as_millis() / 1000).max(1) as usize;
    let ticks = (args.steady_secs as u128 * 1000 / tick.as_millis()).max(1) as usize;
    let steady_n = per_tick * ticks;
    println!();
    println!(
        "propagation: {steady_n} records pushed at the county on one stream, {per_tick} every \
         {} ms (offered {:.0} records/s for {:.1} s), window {STEADY_WINDOW}; fresh nodes",
        tick.as_millis(),
        per_tick as f64 / tick.as_secs_f64(),
        ticks as f64 * tick.as_secs_f64()
    );
    let drafts = generate_drafts(&catalog, steady_n, args.subjects, 8, &period);
    let wire: Vec<pb::Record> = drafts.iter().map(draft_to_wire).collect();
    drop(drafts);
    let fed = Federation::start(&tmp.path().join("steady"), &providers[..1]).await?;
    let channel = fed.provider_channel(0).await?;
    let limit = Duration::from_secs(60) + tick * ticks as u32;
    let watch = |node: &crate::server::NodeHandle| {
        let head = node.store().watch_head();
        let seen = *head.borrow();
        tokio::spawn(arrivals(node.store().clone(), head, seen, steady_n, limit))
    };
    let (city_watch, province_watch) = (watch(&fed.city), watch(&fed.province));
    let (cpu_started, wait_started) = (cpu_secs(), cpu_wait_secs());
    let started = Instant::now();
    let (latencies, accepted) =
        push_stream(channel, wire, per_tick, STEADY_WINDOW, Some(tick)).await?;
    let pushed = started.elapsed();
    let mut latencies = latencies;
    latencies.sort();
    let city = city_watch.await??;
    let province = province_watch.await??;
    let (cpu, cpu_wait) = (cpu_secs() - cpu_started, cpu_wait_secs() - wait_started);
    let phase = started.elapsed();
    fed.shutdown().await?;
    // The county's own acceptance times: records after the first batch, over the time
    // from the first batch's acceptance to the last's.
    let (first, last) = province
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), (at, _)| {
            (lo.min(*at), hi.max(*at))
        });
    let achieved = if last > first {
        (province.len().saturating_sub(per_tick)) as f64 * 1000.0 / (last - first) as f64
    } else {
        0.0
    };
    let offered = per_tick as f64 / tick.as_secs_f64();
    println!(
        "  pushed {accepted} records in {:.2} s (first send to last acknowledgement); \
         batch latency at the county p50 {:.1} ms, p99 {:.1} ms",
        pushed.as_secs_f64(),
        ms(percentile(&latencies, 0.50)),
        ms(percentile(&latencies, 0.99))
    );
    println!(
        "  achieved rate at the county: {achieved:.0} records/s ({} records after the first \
         batch over {:.2} s between the first and last acceptance, by reported_at_ms); \
         offered {offered:.0}",
        province.len().saturating_sub(per_tick),
        (last - first) as f64 / 1000.0
    );
    println!(
        "  latency per record = arrival (the node's durable changelog head reaching it, read \
         when the watcher wakes) - reported_at_ms (set by the county when it accepts the \
         batch, before its fsync); millisecond resolution"
    );
    let (city_n, province_n) = (city.len(), province.len());
    let (c50, c99, cmax) = ms_percentiles(&city);
    let (p50, p99, pmax) = ms_percentiles(&province);
    println!(
        "  county -> city:     {city_n} of {accepted} measured: p50 {c50} ms, p99 {c99} ms, max {cmax} ms"
    );
    println!(
        "  county -> province: {province_n} of {accepted} measured: p50 {p50} ms, p99 {p99} ms, \
         max {pmax} ms (target p99 <= 1000 ms: {}; achieved within 1% of offered: {})",
        verdict(p99 <= 1000 && province_n as u64 == accepted),
        verdict(achieved >= 0.99 * offered)
    );
    println!(
        "  CPU used until the last arrival: {cpu:.1} s in {:.1} s ({:.2} cores on average); \
         runnable but waiting for a core (summed over threads): {cpu_wait:.1} s",
        phase.as_secs_f64(),
        cpu / phase.as_secs_f64()
    );
    println!("load average at end: {}", load());
    if accepted != steady_n as u64 || province_n != steady_n || city_n != steady_n {
        return Err(format!(
            "{steady_n} records offered, {accepted} accepted, {city_n} measured at the city, \
             {province_n} at the province"
        )
        .into());
    }
    Ok(Exit::Ok)
}
