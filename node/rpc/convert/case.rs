//! Objection cases on the wire (`credit.v1.ObjectionCase`).

use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::calendar::Calendar;
use crate::domain::case::{Answer, Case, Checked, Fault, Outcome, Reply, Resolution};
use crate::domain::region::RegionCode;
use crate::pb;

/// A case for the wire; with a calendar, its state and deadlines as of `today`.
pub fn case_to_wire(case: &Case, calendar: Option<(&Calendar, NaiveDate)>) -> pb::ObjectionCase {
    let step = |at_ms, by: &str, kind: &str, text: &str| pb::ObjectionStep {
        at_ms,
        by: by.to_string(),
        kind: kind.to_string(),
        text: text.to_string(),
        fault: String::new(),
        record_version: 0,
    };
    let (state, deadlines) = match calendar {
        Some((cal, today)) => (
            case.state().to_string(),
            case.deadlines(cal)
                .iter()
                .map(|d| pb::Deadline {
                    step: d.step.to_string(),
                    due: d.due.to_string(),
                    done: d.done.map(|d| d.to_string()).unwrap_or_default(),
                    overdue: d.overdue(today),
                })
                .collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    pb::ObjectionCase {
        id: case.id.to_string(),
        record_id: case.record_id.to_string(),
        subject_id: case.subject_id.clone(),
        owner_region: case.owner.to_string(),
        filed_at_region: case.filed_at.to_string(),
        filed_by: case.filed_by.clone(),
        received_at_ms: case.received_ms,
        reason: case.reason.clone(),
        evidence: case.evidence.clone(),
        record_version: case.record_version,
        record_hash: case.record_hash.to_vec(),
        version: case.version,
        checked: case
            .checked
            .as_ref()
            .map(|c| step(c.at_ms, &c.by, c.fault.as_str(), &c.note)),
        reply: case
            .reply
            .as_ref()
            .map(|r| step(r.at_ms, &r.by, r.answer.as_str(), &r.text)),
        resolution: case.resolution.as_ref().map(|r| pb::ObjectionStep {
            fault: r.fault.as_str().to_string(),
            record_version: r.record_version,
            ..step(r.at_ms, &r.by, r.outcome.as_str(), &r.reason)
        }),
        path: case.path.iter().map(ToString::to_string).collect(),
        state,
        deadlines,
    }
}

/// Reads a case from the wire; `Err` names the field that is wrong.
pub fn case_from_wire(w: &pb::ObjectionCase) -> Result<Case, (&'static str, String)> {
    let uuid = |field: &'static str, s: &str| {
        Uuid::parse_str(s).map_err(|e| (field, format!("not a UUID: {e}")))
    };
    let region =
        |field: &'static str, s: &str| RegionCode::parse(s).map_err(|e| (field, e.to_string()));
    for (field, value, max) in [
        ("subject_id", &w.subject_id, 64),
        ("filed_by", &w.filed_by, 256),
        ("reason", &w.reason, 4000),
        ("evidence", &w.evidence, 1000),
    ] {
        if value.chars().count() > max {
            return Err((field, format!("at most {max} characters")));
        }
    }
    let record_hash: [u8; 32] = w
        .record_hash
        .as_slice()
        .try_into()
        .map_err(|_| ("record_hash", "must be 32 bytes".to_string()))?;
    let checked = match &w.checked {
        Some(s) => Some(Checked {
            at_ms: s.at_ms,
            by: s.by.clone(),
            fault: Fault::parse(&s.kind)
                .ok_or(("checked.kind", "must be platform or provider".to_string()))?,
            note: s.text.clone(),
        }),
        None => None,
    };
    let reply = match &w.reply {
        Some(s) => Some(Reply {
            at_ms: s.at_ms,
            by: s.by.clone(),
            answer: Answer::parse(&s.kind).ok_or((
                "reply.kind",
                "must be confirmed, corrected or unverifiable".to_string(),
            ))?,
            text: s.text.clone(),
        }),
        None => None,
    };
    let resolution = match &w.resolution {
        Some(s) => Some(Resolution {
            at_ms: s.at_ms,
            by: s.by.clone(),
            outcome: Outcome::parse(&s.kind).ok_or((
                "resolution.kind",
                "must be corrected, deleted or upheld".to_string(),
            ))?,
            fault: Fault::parse(&s.fault).ok_or((
                "resolution.fault",
                "must be platform or provider".to_string(),
            ))?,
            reason: s.text.clone(),
            record_version: s.record_version,
        }),
        None => None,
    };
    Ok(Case {
        id: uuid("id", &w.id)?,
        record_id: uuid("record_id", &w.record_id)?,
        subject_id: w.subject_id.clone(),
        owner: region("owner_region", &w.owner_region)?,
        filed_at: region("filed_at_region", &w.filed_at_region)?,
        filed_by: w.filed_by.clone(),
        received_ms: w.received_at_ms,
        reason: w.reason.clone(),
        evidence: w.evidence.clone(),
        record_version: w.record_version,
        record_hash,
        version: w.version,
        checked,
        reply,
        resolution,
        path: w
            .path
            .iter()
            .map(|p| region("path", p))
            .collect::<Result<_, _>>()?,
    })
}
