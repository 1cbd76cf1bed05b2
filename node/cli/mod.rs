//! The `credit-node` command line. `main.rs` only parses and calls `run`.
//!
//! * `records`: record files (JSON Lines, CSV) in, JSON Lines out.
//! * `client`: push, pull, status and the quarantine over mutual TLS.
//! * `demo`: the three-level development federation with a generated PKI and sample records.
//! * `access`: consents, consent-gated queries, the usage log's audit and history.
//! * `census`: the census table and the monthly reporting duty.
//! * `objection`: objections to records, credit repair and the retention purge.
//! * `store`: `store check`, the store's integrity check offline.
//! * `bench`: throughput benchmarks.

pub mod access;
pub mod bench;
pub mod census;
pub mod client;
pub mod demo;
pub mod objection;
pub mod records;
pub mod store;

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::domain::caller::{CallerId, Role};
use crate::domain::region::RegionCode;
use crate::identity::pki;

/// Errors at the edge of the program, where they are only printed.
pub type CliError = Box<dyn std::error::Error + Send + Sync>;

/// How a command ended, as its exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// Everything done (0).
    Ok,
    /// `push`: some records were refused, the others stored; `quarantine retry`: some
    /// entries stay in quarantine (3).
    SomeRejected,
    /// `audit verify`: the usage log does not match itself or its checkpoints (4).
    AuditFailed,
    /// `store check`, `audit verify`, `serve`: a damaged store file, named (4).
    Damaged,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Ok => 0,
            Exit::SomeRejected => 3,
            Exit::AuditFailed | Exit::Damaged => 4,
        }
    }
}

#[derive(Parser, Debug)]
#[command(
    name = "credit-node",
    version,
    about = "Exchange node for county, city and provincial public-credit-information platforms",
    long_about = "Exchange node for county, city and provincial public-credit-information platforms.\n\n\
        Providers push records to their local node over mutual TLS; operators and nodes pull a \
        subject's records. Every use is written to the node's usage log.\n\n\
        Exit status: 0 success; 3 `push` stored some records and refused others (or `quarantine \
        retry` left some entries in quarantine); 4 `audit verify` found a mismatch, or a store \
        file is damaged (`store check`, `audit verify`, `serve`; the file is named); 1 any other \
        failure."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a node from its TOML config file until interrupted (Ctrl-C or SIGTERM).
    ///
    /// It first checks its store's integrity as `store check` does and refuses to start on
    /// damage (exit 4, the file named). After a signal it stops within a bounded drain.
    Serve {
        /// The node's config file (keys: region, name, listen, data_dir, [tls], [[providers]],
        /// [connections] ...).
        #[arg(long, env = "CREDIT_NODE_CONFIG")]
        config: PathBuf,
    },
    /// The node's store, offline (the node stopped): `check` its integrity.
    Store {
        #[command(subcommand)]
        command: store::StoreCommand,
    },
    /// Development PKI: a CA, certificates naming their holder, revocation.
    Pki {
        #[command(subcommand)]
        command: PkiCommand,
    },
    /// Push a record file (JSON Lines, or CSV by the .csv extension) as a provider.
    ///
    /// Prints each refused record with its line number, field and rule, then
    /// `accepted N, rejected M`. Exits 0 when all were accepted, 3 when some were refused.
    /// Text is UTF-8 (a leading byte order mark is skipped; GBK and UTF-16 are named with
    /// the iconv line that converts them); a key given twice on a JSON line, or a column
    /// twice in a CSV header, is refused rather than guessed.
    Push {
        /// The record file.
        file: PathBuf,
        /// The reporting period the records are submitted for (YYYY-MM).
        #[arg(long)]
        period: String,
        /// Records per batch sent to the node.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print a subject's records held by the node, as JSON Lines (operators of the node;
    /// a node's certificate only for its configured parent or children, R-REL-4).
    Pull {
        /// The subject's Unified Social Credit Code or resident identity number.
        subject_id: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show a node's region, level, parent and children, connection state, cursors and
    /// lag; the entries refused from children and kept in quarantine (R-FED-1), and the
    /// entries this node's parent refused (operators of that node).
    Status {
        /// Print the status as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Entries refused from children and kept in quarantine at this node (operators of
    /// the node, R-FED-1): list them, or retry them once the cause is fixed.
    Quarantine {
        #[command(subcommand)]
        command: client::QuarantineCommand,
    },
    /// Subjects' written consents (operators of the node): grant, withdraw, show, list.
    Consent {
        #[command(subcommand)]
        command: access::ConsentCommand,
    },
    /// Query a subject's records for a stated purpose on a legal basis; prints JSON Lines
    /// and, on stderr, which node answered and as of when.
    Query(access::QueryArgs),
    /// The usage log: verify its chain and checkpoints; a subject's usage history.
    Audit {
        #[command(subcommand)]
        command: access::AuditCommand,
    },
    /// The census of the data this node holds (total, natural persons, legal persons and
    /// other organisations, per category and provider) and its children's stock, how much
    /// of it is held here and the collection ratio (operators of the node).
    Census(census::CensusArgs),
    /// Reports: `monthly`, the providers' reporting duty for a period (operators).
    Report {
        #[command(subcommand)]
        command: census::ReportCommand,
    },
    /// Subjects' objections to records (R-OBJ-1..3): file, list, check, reply, resolve.
    /// The record is withheld on every level while its case is open.
    Objection {
        #[command(subcommand)]
        command: objection::ObjectionCommand,
    },
    /// Credit repair (信用修复): withdraw an adverse record from publication and sharing
    /// on every level (operators of the record's origin).
    Repair(objection::RepairArgs),
    /// Purge this node's adverse records about natural persons whose five years have
    /// ended (R-SEC-2), and remove the fields from the earlier versions of records
    /// deleted or purged here or below; the node also does both every
    /// `[retention] purge_secs`.
    Purge(objection::PurgeArgs),
    /// Start the development federation Lingyuan (211382) -> Chaoyang (211300) -> Liaoning
    /// (210000) with a generated PKI, push realistic records at Lingyuan and Chaoyang, wait
    /// until Liaoning holds them, print what happened and how to call the nodes, and serve
    /// until Ctrl-C.
    Demo {
        /// End after the account instead of serving (for scripts).
        #[arg(long)]
        exit: bool,
        /// Keep the PKI, config and data here instead of a temporary folder.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Measure throughput on this machine (see BENCHMARKS.md).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Make a development CA: DIR/ca.pem, DIR/ca.key (keep it secret), DIR/crl.pem.
    Init {
        #[arg(long)]
        out: PathBuf,
    },
    /// Issue a certificate naming credit://ROLE/REGION/ID: writes OUT/cert.pem, OUT/key.pem, OUT/ca.pem.
    Issue {
        /// The CA folder made by `pki init`.
        #[arg(long)]
        ca: PathBuf,
        /// node, provider, agency or operator.
        #[arg(long)]
        role: String,
        /// The holder's six-digit region code, e.g. 211382.
        #[arg(long)]
        region: String,
        /// The holder's id within its role and region, e.g. lingyuan-tax.
        #[arg(long)]
        id: String,
        /// A DNS name or IP address for a node's certificate (repeatable; default localhost and 127.0.0.1).
        #[arg(long = "host")]
        hosts: Vec<String>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Revoke a certificate: adds it to CA/crl.pem, which running nodes reread.
    Revoke {
        #[arg(long)]
        ca: PathBuf,
        /// The certificate to revoke (PEM).
        cert: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Push generated valid records over mutual TLS to an in-process node, then write the
    /// same records straight into a store (the ceiling); print records/s, batch latency and the ratio.
    Push(bench::PushBenchArgs),
    /// Push generated valid records at a county in an in-process county -> city -> province
    /// federation; print records/s through two hops and, at a steady rate, per-record latency.
    Sync(bench::SyncBenchArgs),
    /// Consent-gated queries from concurrent agencies against an in-process node holding
    /// a large store; print queries/s and latency p50/p99.
    Query(bench::ReadBenchArgs),
    /// Pulls by an operator from concurrent clients against the same kind of store.
    Pull(bench::ReadBenchArgs),
}

/// Where a client command connects, and as whom.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// The node, e.g. https://127.0.0.1:7443.
    #[arg(long, env = "CREDIT_NODE_ENDPOINT")]
    pub endpoint: String,
    /// A folder with ca.pem, cert.pem and key.pem.
    #[arg(long, env = "CREDIT_NODE_IDENTITY")]
    pub identity: PathBuf,
}

impl TargetArgs {
    pub(crate) fn target(&self) -> client::Target {
        client::Target {
            endpoint: self.endpoint.clone(),
            identity: self.identity.clone(),
        }
    }
}

/// A Unix-ms time as local `YYYY-MM-DD HH:MM:SS`, or empty for 0 (never).
pub(crate) fn local_time(ms: i64) -> String {
    if ms == 0 {
        return String::new();
    }
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}

/// The previous calendar month, YYYY-MM: what providers report by the 23rd (R-DATA-5),
/// and a period for which generated records are never dated in the future.
pub fn previous_month() -> String {
    previous_month_of(crate::domain::clock::Clock::system().today())
}

/// The calendar month before `today`'s, YYYY-MM.
pub fn previous_month_of(today: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let first = today.with_day(1).unwrap_or(today);
    first
        .pred_opt()
        .unwrap_or(first)
        .format("%Y-%m")
        .to_string()
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<Exit, CliError> {
    match cli.command {
        Command::Serve { config } => serve(&config).await,
        Command::Pki { command } => pki_command(command),
        Command::Store { command } => store::store(command),
        Command::Push {
            file,
            period,
            batch_size,
            target,
        } => push(&file, &period, batch_size, &target).await,
        Command::Pull { subject_id, target } => {
            let channel = target.target().connect().await?;
            let records = client::pull(channel, &subject_id).await?;
            let mut out = std::io::stdout().lock();
            for r in &records {
                writeln!(out, "{}", records::record_json(r))?;
            }
            Ok(Exit::Ok)
        }
        Command::Status { json, target } => {
            let status = client::status(target.target().connect().await?).await?;
            let mut out = std::io::stdout().lock();
            if json {
                writeln!(out, "{}", client::status_json(&status))?;
            } else {
                write!(out, "{}", client::status_text(&status))?;
            }
            Ok(Exit::Ok)
        }
        Command::Consent { command } => access::consent(command).await,
        Command::Query(args) => access::query(args).await,
        Command::Audit { command } => access::audit(command).await,
        Command::Census(args) => census::census(args).await,
        Command::Report { command } => census::report(command).await,
        Command::Quarantine { command } => client::quarantine(command).await,
        Command::Objection { command } => objection::objection(command).await,
        Command::Repair(args) => objection::repair(args).await,
        Command::Purge(args) => objection::purge(args).await,
        Command::Demo { exit, dir } => demo::run(dir, exit).await,
        Command::Bench {
            command: BenchCommand::Push(args),
        } => bench::push(args).await,
        Command::Bench {
            command: BenchCommand::Sync(args),
        } => bench::sync(args).await,
        Command::Bench {
            command: BenchCommand::Query(args),
        } => bench::query(args).await,
        Command::Bench {
            command: BenchCommand::Pull(args),
        } => bench::pull(args).await,
    }
}

/// The environment variable that lets `serve` run on a moved clock (`[clock] today`).
pub const REHEARSAL_ENV: &str = "CREDIT_NODE_REHEARSAL";

async fn serve(path: &std::path::Path) -> Result<Exit, CliError> {
    let config = Config::load(path)?;
    // A moved clock on a live folder would purge, publish and stamp by the wrong day,
    // and its purges travel up to every level: it takes a second, explicit switch.
    if config.clock.is_moved() && std::env::var(REHEARSAL_ENV).as_deref() != Ok("1") {
        return Err(format!(
            "config key `clock.today`: moves every date rule (the retention purge, publication \
             periods, deadlines) to {}; only for tests and rehearsals on a copy of a data \
             folder, and only with {REHEARSAL_ENV}=1 in the environment",
            config.clock.today()
        )
        .into());
    }
    let addr = config.listen;
    let dir = config.data_dir.clone();
    let node = match crate::server::Node::open(config) {
        Ok(node) => std::sync::Arc::new(node),
        // A damaged store is refused, never served (R-SEC-1): exit 4 naming the file.
        Err(crate::server::NodeError::Store { source, .. }) if source.is_damage() => {
            return store::damaged(&dir, &dir, source);
        }
        Err(e) => return Err(e.into()),
    };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    // One plain line on stdout, for operators and scripts that asked for port 0.
    println!(
        "credit-node: region {} ({}) listening on {bound}",
        node.config.region,
        node.config.region.level()
    );
    std::io::stdout().flush()?;
    node.serve(listener, shutdown_signal()).await?;
    Ok(Exit::Ok)
}

/// Ctrl-C, or SIGTERM on Unix (systemd, Kubernetes).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

fn pki_command(command: PkiCommand) -> Result<Exit, CliError> {
    match command {
        PkiCommand::Init { out } => {
            pki::init(&out)?;
            println!(
                "CA written to {} (ca.pem, ca.key, crl.pem); keep ca.key secret",
                out.display()
            );
        }
        PkiCommand::Issue {
            ca,
            role,
            region,
            id,
            hosts,
            out,
        } => {
            let role = Role::parse(&role).ok_or_else(|| {
                format!("--role must be node, provider, agency or operator, got {role:?}")
            })?;
            let region = RegionCode::parse(&region).map_err(|e| format!("--region: {e}"))?;
            let caller = CallerId::parse_uri(&CallerId::new(role, region, id).uri())
                .map_err(|e| format!("--id: {e}"))?;
            pki::issue(&ca, &caller, &hosts, &out)?;
            println!(
                "{} issued to {} (cert.pem, key.pem, ca.pem)",
                caller.uri(),
                out.display()
            );
        }
        PkiCommand::Revoke { ca, cert } => {
            let outcome = pki::revoke(&ca, &cert)?;
            println!("{outcome}");
        }
    }
    Ok(Exit::Ok)
}

async fn push(
    file: &std::path::Path,
    period: &str,
    batch_size: usize,
    target: &TargetArgs,
) -> Result<Exit, CliError> {
    let period_ok = period.len() == 7
        && period.as_bytes()[4] == b'-'
        && period
            .bytes()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit());
    if !period_ok {
        return Err(format!("--period must be YYYY-MM, got {period:?} (R-DATA-5)").into());
    }
    let (lines, len) = client::open_records(file, period)?;
    let channel = target.target().connect().await?;
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(len),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {bytes}/{total_bytes} [{bar:30}] {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress_bar = bar.clone();
    let report = client::push_lines(channel, lines, batch_size, move |n| progress_bar.inc(n)).await;
    bar.finish_and_clear();
    let report = report?;
    let mut out = std::io::stdout().lock();
    for r in &report.rejections {
        writeln!(
            out,
            "line {}: {}: {} ({})",
            r.line, r.field, r.message, r.rule
        )?;
    }
    writeln!(
        out,
        "accepted {}, rejected {}",
        report.accepted(),
        report.rejected()
    )?;
    Ok(if report.rejected() > 0 {
        Exit::SomeRejected
    } else {
        Exit::Ok
    })
}
