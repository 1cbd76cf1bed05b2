//! `objection`, `repair` and `purge`: objections to records (R-OBJ-1..3), credit repair
//! and the retention purge (R-SEC-2).

use std::io::Write;

use clap::{Args, Subcommand};
use tonic::transport::Channel;

use super::client::status_error;
use super::{CliError, Exit, TargetArgs, local_time};
use crate::domain::record::mask_id;
use crate::pb;

#[derive(Subcommand, Debug)]
pub enum ObjectionCommand {
    /// File a subject's written objection to a record held by the node (operators).
    /// The record is withheld at once; prints the case, and its id on the last line.
    File {
        /// The record's id.
        #[arg(long)]
        record: String,
        /// What the subject says is wrong.
        #[arg(long)]
        reason: String,
        /// Where the written objection and its evidence are kept (file number).
        #[arg(long)]
        evidence: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List the cases known to the node, with their deadlines in working days (operators;
    /// a provider sees those referred to it).
    List {
        /// Only cases with a deadline overdue today.
        #[arg(long)]
        overdue: bool,
        /// Only open cases.
        #[arg(long)]
        open: bool,
        /// One JSON object per case.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Record the platform's check (due within 3 working days): the fault is the
    /// platform's, or the provider's, which notifies the provider (operators of the
    /// record's origin).
    Check {
        /// The case id.
        case: String,
        /// platform or provider.
        #[arg(long)]
        fault: String,
        #[arg(long, default_value = "")]
        note: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Answer an objection about one of your records (providers, at their node).
    Reply {
        /// The case id.
        case: String,
        /// confirmed, corrected (push the corrected record first) or unverifiable.
        #[arg(long)]
        answer: String,
        /// The written reply.
        #[arg(long)]
        text: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Close a case with its outcome, the written answer to the applicant (operators of
    /// the record's origin). corrected: the corrected version is released; deleted: a
    /// tombstone with the reason (R-OBJ-3); upheld: the suspension is lifted. On the
    /// provider's fault the outcome follows its reply (confirmed: upheld, corrected:
    /// corrected, unverifiable: deleted; no reply by its day: deleted). Every node follows
    /// within a sync round.
    Resolve {
        /// The case id.
        case: String,
        /// corrected, deleted or upheld.
        #[arg(long)]
        outcome: String,
        /// The answer to the applicant; for a deletion, the reason recorded.
        #[arg(long)]
        reason: String,
        /// platform or provider.
        #[arg(long)]
        fault: String,
        /// For a correction by the platform: FIELD=VALUE to set (repeatable; an empty
        /// value removes the field). Without it, the provider's corrected version is used.
        #[arg(long = "set", value_parser = parse_pair)]
        set: Vec<(String, String)>,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `credit-node repair`.
#[derive(Args, Debug)]
pub struct RepairArgs {
    /// The record's id (a record originated at this node).
    #[arg(long)]
    pub record: String,
    /// The repair decision and its reference.
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub target: TargetArgs,
}

/// `credit-node purge`.
#[derive(Args, Debug)]
pub struct PurgeArgs {
    /// List what would be purged, without writing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub target: TargetArgs,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("{s:?} is not FIELD=VALUE"))
}

/// `--set` pairs as the request's map; a field given twice is refused rather than the
/// last value silently winning.
fn set_fields(
    pairs: Vec<(String, String)>,
) -> Result<std::collections::HashMap<String, String>, CliError> {
    let mut fields = std::collections::HashMap::new();
    for (name, value) in pairs {
        if fields.contains_key(&name) {
            return Err(format!("--set names the field {name:?} twice; give it once").into());
        }
        fields.insert(name, value);
    }
    Ok(fields)
}

async fn client(
    t: &TargetArgs,
) -> Result<pb::objections_client::ObjectionsClient<Channel>, CliError> {
    Ok(pb::objections_client::ObjectionsClient::new(
        t.target().connect().await?,
    ))
}

pub async fn objection(command: ObjectionCommand) -> Result<Exit, CliError> {
    let mut out = std::io::stdout().lock();
    let case = match command {
        ObjectionCommand::File {
            record,
            reason,
            evidence,
            target,
        } => {
            let c = client(&target)
                .await?
                .file(pb::FileObjection {
                    record_id: record,
                    reason,
                    evidence,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            write!(out, "{}", case_text(&c))?;
            // The id alone on the last line, for scripts.
            writeln!(out, "{}", c.id)?;
            return Ok(Exit::Ok);
        }
        ObjectionCommand::List {
            overdue,
            open,
            json,
            target,
        } => {
            let list = client(&target)
                .await?
                .list(pb::ListObjections { overdue, open })
                .await
                .map_err(status_error)?
                .into_inner();
            for c in &list.cases {
                if json {
                    writeln!(out, "{}", case_json(c))?;
                } else {
                    write!(out, "{}", case_text(c))?;
                }
            }
            if !json {
                let mut outside: Vec<&str> = list
                    .cases
                    .iter()
                    .flat_map(|c| &c.deadlines)
                    .filter_map(|d| d.due.get(..4))
                    .filter(|y| !list.calendar_years.iter().any(|k| k.to_string() == *y))
                    .collect();
                outside.sort_unstable();
                outside.dedup();
                if !outside.is_empty() {
                    writeln!(
                        out,
                        "warning: the node's calendar has no holiday schedule for {}; those \
                         deadlines count weekends only (add the year to its calendar file)",
                        outside.join(", ")
                    )?;
                }
                let years: Vec<String> = list
                    .calendar_years
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                writeln!(
                    out,
                    "{} cases; working days from the holiday schedules of {}",
                    list.cases.len(),
                    years.join(", ")
                )?;
            }
            return Ok(Exit::Ok);
        }
        ObjectionCommand::Check {
            case,
            fault,
            note,
            target,
        } => client(&target)
            .await?
            .check(pb::CheckObjection {
                case_id: case,
                fault,
                note,
            })
            .await
            .map_err(status_error)?,
        ObjectionCommand::Reply {
            case,
            answer,
            text,
            target,
        } => client(&target)
            .await?
            .reply(pb::ReplyObjection {
                case_id: case,
                answer,
                text,
            })
            .await
            .map_err(status_error)?,
        ObjectionCommand::Resolve {
            case,
            outcome,
            reason,
            fault,
            set,
            target,
        } => client(&target)
            .await?
            .resolve(pb::ResolveObjection {
                case_id: case,
                outcome,
                reason,
                fault,
                set_fields: set_fields(set)?,
            })
            .await
            .map_err(status_error)?,
    };
    write!(out, "{}", case_text(&case.into_inner()))?;
    Ok(Exit::Ok)
}

pub async fn repair(args: RepairArgs) -> Result<Exit, CliError> {
    let r = client(&args.target)
        .await?
        .repair(pb::RepairRequest {
            record_id: args.record,
            reason: args.reason,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    println!(
        "record {} withdrawn from publication and sharing at version {}",
        r.record_id, r.version
    );
    Ok(Exit::Ok)
}

pub async fn purge(args: PurgeArgs) -> Result<Exit, CliError> {
    let r = client(&args.target)
        .await?
        .purge(pb::PurgeRequest {
            dry_run: args.dry_run,
        })
        .await
        .map_err(status_error)?
        .into_inner();
    let mut out = std::io::stdout().lock();
    for id in &r.record_ids {
        writeln!(out, "{id}")?;
    }
    writeln!(
        out,
        "{} records {}",
        r.record_ids.len(),
        if args.dry_run {
            "would be purged"
        } else {
            "purged"
        }
    )?;
    Ok(Exit::Ok)
}

/// A case as a few lines of text: what, where, the deadlines, the steps.
pub fn case_text(c: &pb::ObjectionCase) -> String {
    let mut s = format!(
        "objection {}  {}\n  record {} version {}, owned by {}; filed at {} by {} on {}\n  \
         subject {}\n  reason: {}\n  evidence: {}\n",
        c.id,
        c.state,
        c.record_id,
        c.record_version,
        c.owner_region,
        c.filed_at_region,
        c.filed_by,
        local_time(c.received_at_ms),
        mask_id(&c.subject_id),
        c.reason,
        c.evidence
    );
    for d in &c.deadlines {
        s.push_str(&format!(
            "  {:<15} due {}{}{}\n",
            d.step,
            d.due,
            if d.done.is_empty() {
                String::new()
            } else {
                format!(", done {}", d.done)
            },
            if d.overdue { "  OVERDUE" } else { "" }
        ));
    }
    for (name, step) in [
        ("checked", &c.checked),
        ("reply", &c.reply),
        ("resolution", &c.resolution),
    ] {
        if let Some(st) = step {
            s.push_str(&format!(
                "  {name}: {}{} by {} on {}{}\n",
                st.kind,
                if st.fault.is_empty() {
                    String::new()
                } else {
                    format!(" ({} fault)", st.fault)
                },
                st.by,
                local_time(st.at_ms),
                if st.text.is_empty() {
                    String::new()
                } else {
                    format!(": {}", st.text)
                }
            ));
        }
    }
    s
}

/// A case as one JSON object.
pub fn case_json(c: &pb::ObjectionCase) -> String {
    let step = |s: &Option<pb::ObjectionStep>| {
        s.as_ref().map(|s| {
            serde_json::json!({
                "at": local_time(s.at_ms), "by": s.by, "kind": s.kind, "text": s.text,
                "fault": s.fault, "record_version": s.record_version,
            })
        })
    };
    serde_json::json!({
        "id": c.id,
        "state": c.state,
        "record_id": c.record_id,
        "record_version": c.record_version,
        "owner_region": c.owner_region,
        "filed_at_region": c.filed_at_region,
        "filed_by": c.filed_by,
        "received_at": local_time(c.received_at_ms),
        "subject_id": c.subject_id,
        "reason": c.reason,
        "evidence": c.evidence,
        "deadlines": c.deadlines.iter().map(|d| serde_json::json!({
            "step": d.step, "due": d.due, "done": d.done, "overdue": d.overdue,
        })).collect::<Vec<_>>(),
        "checked": step(&c.checked),
        "reply": step(&c.reply),
        "resolution": step(&c.resolution),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_set_twice_is_refused() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let ok = set_fields(vec![pair("facts", "a"), pair("decision_no", "b")]).unwrap();
        assert_eq!(ok.len(), 2);
        let err = set_fields(vec![pair("facts", "a"), pair("facts", "b")]).unwrap_err();
        assert!(err.to_string().contains("\"facts\" twice"), "{err}");
    }
}
