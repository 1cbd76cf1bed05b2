//! The steps of an objection case (R-OBJ-1..3) as pure transitions. Each is given the
//! case and the record as the owner holds them and the request as the service parsed
//! it, and makes what the step writes (the case's next version, the record's next
//! version where the step changes it, and the usage entry) or says why it is refused.
//! No store and no wire: the service reads the inputs and writes the output in one
//! `Store::origin_write`, so each rule of a step is tested here on its own.

use std::collections::HashMap;

use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::calendar::Calendar;
use crate::domain::case::{Answer, Case, Checked, Fault, Outcome, Reply, Resolution};
use crate::domain::record::next_version;
use crate::domain::record::{Draft, Record, Status as RecordStatus};
use crate::domain::region::RegionCode;
use crate::domain::usage::{Action, UsageEntry};
use crate::policy::{Validator, Violation};

/// Why a step is refused: the service answers with the status of `kind`, naming the
/// field and the rule, and logs the refusal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    pub kind: Kind,
    pub field: String,
    pub rule: &'static str,
    pub message: String,
}

/// What kind of refusal it is; the service maps it to the caller's status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The request asks for something no case or record could take.
    InvalidArgument,
    /// The case or the record is not held at this node.
    NotFound,
    /// Not in the state the case or the record is in.
    FailedPrecondition,
    /// Not this caller's to do.
    PermissionDenied,
}

impl Refused {
    pub fn new(kind: Kind, field: &str, rule: &'static str, message: impl Into<String>) -> Refused {
        Refused {
            kind,
            field: field.to_string(),
            rule,
            message: message.into(),
        }
    }
}

impl From<Violation> for Refused {
    fn from(v: Violation) -> Self {
        Refused {
            kind: Kind::InvalidArgument,
            field: v.field,
            rule: v.rule,
            message: v.message,
        }
    }
}

/// Who takes a step, at which node, and when by the node's clock.
#[derive(Clone, Debug)]
pub struct Actor {
    pub local: RegionCode,
    /// The caller's URI, as the case and the usage log name it.
    pub by: String,
    pub now_ms: i64,
    pub today: NaiveDate,
}

/// What a step writes at the case's owner, all in one atomic write.
#[derive(Clone, Debug, PartialEq)]
pub struct Next {
    /// The case's next version.
    pub case: Case,
    /// The record's next version, when the step changes the record.
    pub record: Option<Record>,
    pub usage: UsageEntry,
}

/// An objection as filed, its text already checked.
#[derive(Clone, Debug)]
pub struct Filing {
    pub record_id: Uuid,
    pub reason: String,
    pub evidence: String,
}

/// A resolution as asked for, its text already checked.
#[derive(Clone, Debug)]
pub struct Resolve {
    pub outcome: Outcome,
    pub fault: Fault,
    pub reason: String,
    /// The corrected fields (an empty value removes the field); only with `Corrected`.
    pub set_fields: HashMap<String, String>,
}

/// The case `case_id` as filed at this node (version 0) about `record`, while none of
/// the record's `cases` is open.
pub fn file(
    case_id: Uuid,
    filing: Filing,
    record: Option<&Record>,
    cases: Vec<Case>,
    at: &Actor,
) -> Result<Case, Refused> {
    let id = filing.record_id;
    let record = record.ok_or_else(|| {
        Refused::new(
            Kind::NotFound,
            "record_id",
            "R-OBJ-1",
            format!("record {id} is not held at this node"),
        )
    })?;
    if matches!(record.status, RecordStatus::Deleted | RecordStatus::Expired) {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "record_id",
            "R-OBJ-3",
            format!("record {id} is {:?} and no longer released", record.status),
        ));
    }
    let open = cases.into_iter().find(Case::is_open);
    if let Some(open) = open {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "record_id",
            "R-OBJ-3",
            format!("objection {} to record {id} is already open", open.id),
        ));
    }
    Ok(Case {
        id: case_id,
        record_id: id,
        subject_id: record.content.subject.id.clone(),
        owner: record.origin,
        filed_at: at.local,
        filed_by: at.by.clone(),
        received_ms: at.now_ms,
        reason: filing.reason,
        evidence: filing.evidence,
        record_version: record.version,
        record_hash: record.content_hash,
        version: 0,
        checked: None,
        reply: None,
        resolution: None,
        path: Vec::new(),
    })
}

/// The case `id` as the owner holds it (`found`): this node must own it, have taken it,
/// and it must be open.
pub fn owned_open(found: Option<Case>, id: &Uuid, local: RegionCode) -> Result<Case, Refused> {
    let Some(case) = found else {
        return Err(Refused::new(
            Kind::NotFound,
            "case_id",
            "R-OBJ-1",
            format!("no objection case {id} is known at this node"),
        ));
    };
    if case.owner != local {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!(
                "case {id} is owned by the record's origin {}; it is handled there",
                case.owner
            ),
        ));
    }
    if case.version == 0 {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("case {id} has not been taken yet"),
        ));
    }
    if !case.is_open() {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("case {id} is already resolved"),
        ));
    }
    Ok(case)
}

/// The platform's check of an owned, open `case`: whose fault the record was.
pub fn check(mut case: Case, fault: Fault, note: String, at: &Actor) -> Result<Next, Refused> {
    let id = case.id;
    if let Some(c) = &case.checked {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("case {id} was already checked ({} fault)", c.fault.as_str()),
        ));
    }
    case.version += 1;
    case.path = vec![at.local];
    case.checked = Some(Checked {
        at_ms: at.now_ms,
        by: at.by.clone(),
        fault,
        note,
    });
    let mut e = UsageEntry::new(at.by.clone(), Action::Objection, "Check", at.now_ms);
    e.subject = Some(case.subject_id.clone());
    e.record_ids = vec![case.record_id];
    e.detail = match fault {
        Fault::Platform => format!("checked objection {id}: the platform's error"),
        Fault::Provider => {
            format!("checked objection {id}: the provider's; provider notified")
        }
    };
    Ok(Next {
        case,
        record: None,
        usage: e,
    })
}

/// The reply of `provider` to an owned, open `case` about `record`, once the platform
/// referred the case to it.
pub fn reply(
    mut case: Case,
    record: Option<&Record>,
    provider: &str,
    answer: Answer,
    text: String,
    at: &Actor,
) -> Result<Next, Refused> {
    let id = case.id;
    if record.map(|r| r.content.provider_id.as_str()) != Some(provider) {
        return Err(Refused::new(
            Kind::PermissionDenied,
            "case_id",
            "R-OBJ-2",
            format!("case {id} is about a record another provider supplied"),
        ));
    }
    if case.checked.as_ref().map(|c| c.fault) != Some(Fault::Provider) {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("the platform has not referred case {id} to the provider"),
        ));
    }
    if case.reply.is_some() {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-2",
            format!("case {id} was already answered"),
        ));
    }
    if answer == Answer::Corrected && record.is_some_and(|r| r.content_hash == case.record_hash) {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "answer",
            "R-OBJ-2",
            "push the corrected record (same reference) before answering corrected",
        ));
    }
    case.version += 1;
    case.path = vec![at.local];
    case.reply = Some(Reply {
        at_ms: at.now_ms,
        by: at.by.clone(),
        answer,
        text,
    });
    let mut e = UsageEntry::new(at.by.clone(), Action::Objection, "Reply", at.now_ms);
    e.subject = Some(case.subject_id.clone());
    e.record_ids = vec![case.record_id];
    e.detail = format!("provider answered objection {id}: {}", answer.as_str());
    Ok(Next {
        case,
        record: None,
        usage: e,
    })
}

/// The outcome of an owned, open `case` about `record` (`cases_of_record`: every case
/// about it, this one included), told to the applicant. A correction given as fields is
/// checked by `validator` as the provider's draft would be.
pub fn resolve(
    mut case: Case,
    record: Option<Record>,
    cases_of_record: &[Case],
    req: Resolve,
    calendar: &Calendar,
    validator: &Validator,
    at: &Actor,
) -> Result<Next, Refused> {
    let Resolve {
        outcome,
        fault,
        reason,
        set_fields: set,
    } = req;
    let (id, local, now) = (case.id, at.local, at.now_ms);
    if fault == Fault::Provider {
        if case.checked.as_ref().map(|c| c.fault) != Some(Fault::Provider) {
            return Err(Refused::new(
                Kind::FailedPrecondition,
                "fault",
                "R-OBJ-2",
                format!(
                    "the provider was not notified of case {id}: check it with \
                     fault provider first"
                ),
            ));
        }
        follows_the_reply(&case, outcome, calendar, at.today)?;
    }
    let Some(cur) = record else {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "case_id",
            "R-OBJ-3",
            format!("record {} is not held here", case.record_id),
        ));
    };
    if outcome == Outcome::Corrected
        && matches!(cur.status, RecordStatus::Deleted | RecordStatus::Expired)
    {
        return Err(Refused::new(
            Kind::FailedPrecondition,
            "outcome",
            "R-OBJ-3",
            format!(
                "record {} is {:?} and keeps no content to correct",
                case.record_id, cur.status
            ),
        ));
    }
    let others_open = cases_of_record.iter().any(|c| c.id != id && c.is_open());
    let content = match (outcome, set.is_empty()) {
        (Outcome::Corrected, false) => {
            let draft = corrected_draft(&cur, &set);
            let content = validator.check(&draft, &cur.content.provider_id, at.today)?;
            if content.hash() == case.record_hash {
                return Err(Refused::new(
                    Kind::FailedPrecondition,
                    "set_fields",
                    "R-OBJ-3",
                    "the correction leaves the disputed content as it was",
                ));
            }
            content
        }
        (Outcome::Corrected, true) if cur.content_hash == case.record_hash => {
            return Err(Refused::new(
                Kind::FailedPrecondition,
                "outcome",
                "R-OBJ-3",
                "nothing was corrected: the provider pushes the corrected record (same \
                 reference), or the correction is given with set_fields",
            ));
        }
        _ => cur.content.clone(),
    };
    let status = match cur.status {
        RecordStatus::Active | RecordStatus::Suspended => match outcome {
            Outcome::Deleted => RecordStatus::Deleted,
            _ if others_open => RecordStatus::Suspended,
            _ => RecordStatus::Active,
        },
        // Purged, deleted or repaired meanwhile: the outcome does not undo that.
        other => other,
    };
    let status_reason = match status {
        RecordStatus::Deleted if cur.status != RecordStatus::Deleted => {
            format!("R-OBJ-3: {reason} (objection {id})")
        }
        RecordStatus::Active => String::new(),
        _ => cur.status_reason.clone(),
    };
    let mut content = content;
    if status == RecordStatus::Deleted {
        // The tombstone keeps who, what and why (R-OBJ-3), not the fields.
        content.fields.clear();
    }
    let mut next_record = None;
    let mut record_version = cur.version;
    if status != cur.status || content != cur.content {
        let mut next = next_version(&cur, status, status_reason, now);
        next.content_hash = content.hash();
        next.content = content;
        record_version = next.version;
        next_record = Some(next);
    }
    case.version += 1;
    case.path = vec![local];
    case.resolution = Some(Resolution {
        at_ms: now,
        by: at.by.clone(),
        outcome,
        fault,
        reason,
        record_version,
    });
    let mut e = UsageEntry::new(at.by.clone(), Action::Objection, "Resolve", now);
    e.subject = Some(case.subject_id.clone());
    e.record_ids = vec![case.record_id];
    e.count = 1;
    e.detail = format!(
        "resolved objection {id}: {} ({} fault); record at version {record_version}, {:?}",
        outcome.as_str(),
        fault.as_str(),
        status
    );
    Ok(Next {
        case,
        record: next_record,
        usage: e,
    })
}

/// On the provider's fault, the outcome follows its reply (R-OBJ-2, R-OBJ-3): confirmed is
/// upheld, corrected is corrected, unverifiable is deleted. Without a reply the case
/// waits for it until it is due; after that the record cannot be verified and is only
/// deleted.
fn follows_the_reply(
    case: &Case,
    outcome: Outcome,
    calendar: &Calendar,
    today: NaiveDate,
) -> Result<(), Refused> {
    let refuse = |message: String| {
        Err(Refused::new(
            Kind::FailedPrecondition,
            "outcome",
            "R-OBJ-3",
            message,
        ))
    };
    match &case.reply {
        Some(reply) => {
            let expected = match reply.answer {
                Answer::Confirmed => Outcome::Upheld,
                Answer::Corrected => Outcome::Corrected,
                Answer::Unverifiable => Outcome::Deleted,
            };
            if outcome == expected {
                Ok(())
            } else {
                refuse(format!(
                    "the provider answered {}: the outcome is {}",
                    reply.answer.as_str(),
                    expected.as_str()
                ))
            }
        }
        None => {
            let due = case
                .deadlines(calendar)
                .into_iter()
                .find(|d| d.step == "provider_reply")
                .map(|d| d.due);
            match due {
                Some(due) if today > due && outcome == Outcome::Deleted => Ok(()),
                Some(due) if today > due => refuse(format!(
                    "the provider did not reply by {due}: the record cannot be verified and is \
                     deleted"
                )),
                Some(due) => refuse(format!("the provider's reply is due by {due}; wait for it")),
                // Not referred to the provider: the fault check refuses that.
                None => Ok(()),
            }
        }
    }
}

/// A draft of `cur`'s content with `set` applied (an empty value removes the field).
fn corrected_draft(cur: &Record, set: &HashMap<String, String>) -> Draft {
    let mut draft = cur.content.to_draft();
    for (k, v) in set {
        if v.trim().is_empty() {
            draft.fields.remove(k);
        } else {
            draft.fields.insert(k.clone(), v.clone());
        }
    }
    draft
}

#[cfg(test)]
mod tests;
