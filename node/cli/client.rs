//! Client commands over mutual TLS: push a record file, pull a subject's records.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::CliError;
use super::records::{Format, Lines, read_csv, read_json_lines};
use crate::identity::client::{ClientIdentity, ExpectedServer, connect};
use crate::pb;
use crate::pb::exchange_client::ExchangeClient;
use crate::rpc::convert::record::draft_to_wire;

/// Where a client connects and as whom.
#[derive(Clone, Debug)]
pub struct Target {
    pub endpoint: String,
    pub identity: std::path::PathBuf,
}

impl Target {
    /// Connects to the node, checking its certificate names a node (R-NODE-3).
    pub async fn connect(&self) -> Result<Channel, CliError> {
        let identity = ClientIdentity::load(&self.identity)?;
        Ok(connect(&self.endpoint, &identity, ExpectedServer::AnyNode).await?)
    }
}

/// One refused record: where it was in the file and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub line: u64,
    pub field: String,
    pub rule: String,
    pub message: String,
}

/// What a push did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    pub created: u64,
    pub new_versions: u64,
    pub unchanged: u64,
    /// Refused by the node or, for lines that are not records at all, by the client;
    /// in line order.
    pub rejections: Vec<Rejection>,
}

impl PushReport {
    pub fn accepted(&self) -> u64 {
        self.created + self.new_versions + self.unchanged
    }
    pub fn rejected(&self) -> u64 {
        self.rejections.len() as u64
    }
}

/// Opens a record file by its extension (`.csv` or JSON Lines).
pub fn open_records(path: &Path, period: &str) -> Result<(Lines, u64), CliError> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let lines = match Format::of_path(path) {
        Format::Csv => read_csv(file, period)?,
        Format::JsonLines => read_json_lines(std::io::BufReader::new(file), period),
    };
    Ok((lines, len))
}

/// Streams `lines` to the node in batches of `batch_size` and collects the outcomes.
/// `progress` is told the bytes of each line as it is read.
pub async fn push_lines(
    channel: Channel,
    lines: Lines,
    batch_size: usize,
    progress: impl Fn(u64) + Send + 'static,
) -> Result<PushReport, CliError> {
    let batch_size = batch_size.clamp(1, crate::exchange::MAX_BATCH);
    // Which file line each record of each batch came from, by batch_ref.
    let pending: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let (tx, rx) = mpsc::channel::<pb::PushBatch>(4);
    let reader_pending = pending.clone();
    let reader = tokio::task::spawn_blocking(move || -> Result<Vec<Rejection>, CliError> {
        let mut local = Vec::new();
        let mut records = Vec::with_capacity(batch_size);
        let mut numbers = Vec::with_capacity(batch_size);
        let mut batch_no = 0u64;
        let mut send = |records: Vec<pb::Record>, numbers: Vec<u64>| -> bool {
            batch_no += 1;
            let batch_ref = format!(
                "batch {batch_no}, lines {}-{}",
                numbers[0],
                numbers[numbers.len() - 1]
            );
            if let Ok(mut p) = reader_pending.lock() {
                p.insert(batch_ref.clone(), numbers);
            }
            tx.blocking_send(pb::PushBatch { batch_ref, records })
                .is_ok()
        };
        for parsed in lines {
            let parsed = parsed?;
            progress(parsed.bytes);
            match parsed.draft {
                Ok(draft) => {
                    records.push(draft_to_wire(&draft));
                    numbers.push(parsed.line);
                }
                Err(e) => local.push(Rejection {
                    line: parsed.line,
                    field: e.field,
                    rule: e.rule.to_string(),
                    message: e.message,
                }),
            }
            if records.len() == batch_size
                && !send(std::mem::take(&mut records), std::mem::take(&mut numbers))
            {
                return Ok(local);
            }
        }
        if !records.is_empty() {
            send(records, numbers);
        }
        Ok(local)
    });

    let mut client = ExchangeClient::new(channel)
        .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES)
        .max_encoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
    let mut report = PushReport::default();
    let outcome = receive(&mut client, rx, &pending, &mut report).await;
    let local = reader
        .await
        .map_err(|e| format!("reading the record file failed: {e}"))?;
    // Refusals seen so far are worth printing even when the push stopped early.
    if let Ok(local) = &local {
        report.rejections.extend(local.iter().cloned());
    }
    report.rejections.sort_by_key(|r| r.line);
    let unanswered = pending.lock().map(|p| p.len()).unwrap_or(0);
    let failure = match (outcome, local) {
        (Err(e), _) | (Ok(()), Err(e)) => Some(e),
        (Ok(()), Ok(_)) if unanswered > 0 => {
            Some(format!("the node ended the stream with {unanswered} batches unanswered").into())
        }
        _ => None,
    };
    match failure {
        None => Ok(report),
        Some(cause) => Err(Box::new(PushFailed { report, cause })),
    }
}

/// A push that stopped before the end, with what had been acknowledged by then.
#[derive(Debug)]
pub struct PushFailed {
    pub report: PushReport,
    pub cause: CliError,
}

impl std::fmt::Display for PushFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}; before that the node stored {} records and refused {} (pushing the file again is safe: \
             stored records come back unchanged)",
            self.cause,
            self.report.accepted(),
            self.report.rejected()
        )
    }
}

impl std::error::Error for PushFailed {}

/// Reads push results into `report`, matching outcomes to file lines.
async fn receive(
    client: &mut ExchangeClient<Channel>,
    rx: mpsc::Receiver<pb::PushBatch>,
    pending: &Mutex<HashMap<String, Vec<u64>>>,
    report: &mut PushReport,
) -> Result<(), CliError> {
    let mut results = client
        .push(ReceiverStream::new(rx))
        .await
        .map_err(status_error)?
        .into_inner();
    while let Some(result) = results.next().await {
        let result = result.map_err(status_error)?;
        let numbers = pending
            .lock()
            .ok()
            .and_then(|mut p| p.remove(&result.batch_ref))
            .unwrap_or_default();
        for o in result.outcomes {
            let line = numbers.get(o.index as usize).copied().unwrap_or(0);
            match pb::Outcome::try_from(o.outcome) {
                Ok(pb::Outcome::Created) => report.created += 1,
                Ok(pb::Outcome::NewVersion) => report.new_versions += 1,
                Ok(pb::Outcome::Unchanged) => report.unchanged += 1,
                _ => {
                    let r = o.refusal.unwrap_or_default();
                    report.rejections.push(Rejection {
                        line,
                        field: r.field,
                        rule: r.rule,
                        message: r.message,
                    });
                }
            }
        }
    }
    Ok(())
}

/// A node's federation status (operators of that node).
pub async fn status(channel: Channel) -> Result<pb::NodeStatus, CliError> {
    let mut client = crate::pb::federation_client::FederationClient::new(channel);
    Ok(client
        .status(pb::StatusRequest {})
        .await
        .map_err(status_error)?
        .into_inner())
}

/// As `local_time`, but a time not yet reached (0 or below) reads "never".
fn when(ms: i64) -> String {
    if ms <= 0 {
        return "never".into();
    }
    super::local_time(ms)
}

/// The status as an operator reads it.
pub fn status_text(s: &pb::NodeStatus) -> String {
    let mut out = format!(
        "{} {} ({})\n  records {}, changelog head {}, usage entries {}, notices received {}\n",
        s.name, s.region, s.level, s.records, s.changelog_head, s.usage_entries, s.inbox
    );
    match &s.parent {
        Some(p) => out.push_str(&format!(
            "  parent {} at {}: {}; acknowledged {} of {} (lag {} entries, {:.1} s)\n",
            p.region,
            p.endpoint,
            p.state,
            p.acked,
            p.head,
            p.lag_entries,
            p.lag_ms as f64 / 1000.0
        )),
        None => out.push_str("  parent: none configured (top of this federation)\n"),
    }
    if s.children.is_empty() {
        out.push_str("  children: none configured\n");
    }
    for c in &s.children {
        out.push_str(&format!(
            "  child {}: {}; applied up to {} of {} reported; last seen {}; notices pending {}\n",
            c.region,
            if c.connected {
                "connected"
            } else {
                "not connected"
            },
            c.cursor,
            c.reported_head,
            when(c.last_seen_ms),
            c.notices_pending
        ));
        if c.refused > 0 {
            out.push_str(&format!(
                "    refused from this child and kept in quarantine: {}\n",
                c.refused
            ));
        }
    }
    if s.refused_from_below > 0 {
        out.push_str(&format!(
            "  refused from below, kept in quarantine (R-FED-1): {}{}\n",
            s.refused_from_below,
            if s.quarantine.len() as u64 == s.refused_from_below {
                String::new()
            } else {
                format!("; the latest {}", s.quarantine.len())
            }
        ));
        for q in &s.quarantine {
            out.push_str(&format!(
                "    child {} entry {} ({}) at {}: {}{} ({})\n",
                q.child_region,
                q.seq,
                q.record_id,
                when(q.at_ms),
                if q.field.is_empty() {
                    String::new()
                } else {
                    format!("{}: ", q.field)
                },
                q.message,
                q.rule
            ));
        }
    }
    if !s.refused_above.is_empty() {
        out.push_str(&format!(
            "  entries the parent refused (kept in its quarantine; correct the record with a new version, or have the parent's operator run `quarantine retry` once its catalog accepts them): {}\n",
            s.refused_above.len()
        ));
        for n in &s.refused_above {
            out.push_str(&format!(
                "    record {} at {}: {}\n",
                n.record_id,
                when(n.created_at_ms),
                n.text
            ));
        }
    }
    out
}

/// The status as one JSON object.
pub fn status_json(s: &pb::NodeStatus) -> serde_json::Value {
    serde_json::json!({
        "region": s.region,
        "level": s.level,
        "name": s.name,
        "records": s.records,
        "changelog_head": s.changelog_head,
        "usage_entries": s.usage_entries,
        "notices_received": s.inbox,
        "parent": s.parent.as_ref().map(|p| serde_json::json!({
            "region": p.region,
            "endpoint": p.endpoint,
            "state": p.state,
            "head": p.head,
            "acked": p.acked,
            "lag_entries": p.lag_entries,
            "lag_ms": p.lag_ms,
            "notices_received": p.notices_received,
        })),
        "children": s.children.iter().map(|c| serde_json::json!({
            "region": c.region,
            "connected": c.connected,
            "cursor": c.cursor,
            "reported_head": c.reported_head,
            "last_seen_ms": c.last_seen_ms,
            "notices_pending": c.notices_pending,
            "refused": c.refused,
        })).collect::<Vec<_>>(),
        "refused_from_below": s.refused_from_below,
        "quarantine": s.quarantine.iter().map(quarantined_json).collect::<Vec<_>>(),
        "refused_above": s.refused_above.iter().map(|n| serde_json::json!({
            "from_region": n.from_region,
            "id": n.id,
            "record_id": n.record_id,
            "text": n.text,
            "at_ms": n.created_at_ms,
        })).collect::<Vec<_>>(),
    })
}

/// `quarantine list` and `quarantine retry`.
#[derive(clap::Subcommand, Debug)]
pub enum QuarantineCommand {
    /// The latest 100 entries refused from children and kept here, as JSON Lines: child,
    /// the child's sequence, record, field, rule, message, when.
    List {
        #[command(flatten)]
        target: super::TargetArgs,
    },
    /// Check the kept entries again by this node's catalog and rules as they are now (say,
    /// after adding the category the child uses) and apply those that pass; the others
    /// stay, with today's reason. Running it again changes nothing. Exit 3 when some stay.
    Retry {
        /// Only this configured child's entries (default: every child's).
        #[arg(long)]
        child: Option<String>,
        #[command(flatten)]
        target: super::TargetArgs,
    },
}

fn quarantined_json(q: &pb::QuarantinedEntry) -> serde_json::Value {
    serde_json::json!({
        "child_region": q.child_region,
        "seq": q.seq,
        "record_id": q.record_id,
        "field": q.field,
        "rule": q.rule,
        "message": q.message,
        "at_ms": q.at_ms,
    })
}

pub async fn quarantine(command: QuarantineCommand) -> Result<super::Exit, CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match command {
        QuarantineCommand::List { target } => {
            let s = status(target.target().connect().await?).await?;
            for q in &s.quarantine {
                writeln!(out, "{}", quarantined_json(q))?;
            }
            Ok(super::Exit::Ok)
        }
        QuarantineCommand::Retry { child, target } => {
            let mut client =
                pb::federation_client::FederationClient::new(target.target().connect().await?);
            let r = client
                .retry_quarantine(pb::RetryQuarantineRequest {
                    child_region: child.unwrap_or_default(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            writeln!(
                out,
                "applied {}, already held {}, still refused {}",
                r.applied,
                r.unchanged,
                r.refused.len()
            )?;
            for e in &r.refused {
                writeln!(
                    out,
                    "  entry {} ({}): {}: {} ({})",
                    e.seq, e.record_id, e.field, e.message, e.rule
                )?;
            }
            Ok(if r.refused.is_empty() {
                super::Exit::Ok
            } else {
                super::Exit::SomeRejected
            })
        }
    }
}

/// All records of one subject that the node holds.
pub async fn pull(channel: Channel, subject_id: &str) -> Result<Vec<pb::Record>, CliError> {
    let mut client = ExchangeClient::new(channel)
        .max_decoding_message_size(crate::rpc::codec::MAX_MESSAGE_BYTES);
    let mut stream = client
        .pull_by_subject(pb::PullRequest {
            subject_id: subject_id.to_string(),
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut out = Vec::new();
    while let Some(r) = stream.next().await {
        out.push(r.map_err(status_error)?);
    }
    Ok(out)
}

/// A failed call as a person reads it: a refusal by the node (`PermissionDenied: ...
/// (R-…)`) is told apart from a call that failed on the way (unreachable, TLS, transport).
pub fn status_error(s: tonic::Status) -> CliError {
    use tonic::Code::*;
    if let Some(why) = crate::identity::client::refused_certificate(&s) {
        return format!("the node refused this certificate: {why} (R-NODE-3)").into();
    }
    match s.code() {
        InvalidArgument | PermissionDenied | Unauthenticated | FailedPrecondition | OutOfRange
        | ResourceExhausted | NotFound | AlreadyExists => {
            format!("the node refused: {:?}: {}", s.code(), s.message()).into()
        }
        _ => format!("the call failed: {:?}: {}", s.code(), s.message()).into(),
    }
}
