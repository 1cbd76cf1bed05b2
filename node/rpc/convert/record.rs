//! Records, drafts and replica metadata on the wire (`credit.v1.Record`), both ways.

use crate::domain::record::{Disclosure, Draft, Record, Status, SubjectKind};
use crate::pb;
use crate::policy::Violation;

/// Turns a provider's wire record into a draft. Fields only the origin node sets
/// (id, origin, path, version, status, hash, timestamps, disclosure, provider) must be
/// empty: a provider cannot fabricate them (R-SEC-1).
pub fn draft_from_wire(r: pb::Record) -> Result<Draft, Violation> {
    let node_set: [(&str, bool); 9] = [
        ("id", !r.id.is_empty()),
        ("provider_id", !r.provider_id.is_empty()),
        ("origin_region", !r.origin_region.is_empty()),
        ("path", !r.path.is_empty()),
        ("reported_at_ms", r.reported_at_ms != 0),
        ("disclosure", r.disclosure != 0),
        ("version", r.version != 0),
        ("status", r.status != 0 || !r.status_reason.is_empty()),
        ("content_hash", !r.content_hash.is_empty()),
    ];
    if let Some((field, _)) = node_set.iter().find(|(_, set)| *set) {
        return Err(Violation {
            field: (*field).to_string(),
            rule: "R-SEC-1",
            message: "is set by the origin node, not by a provider; leave it empty".into(),
        });
    }
    let mut draft = draft_of(r);
    // Trimmed here, once, so the registration check and the validator see the same
    // category (a trailing space or U+3000 must not slip past either).
    draft.category = draft.category.trim().to_string();
    Ok(draft)
}

/// The provider's part of a wire record, as sent (a child's replica keeps its category
/// untrimmed; a provider's draft trims it).
fn draft_of(r: pb::Record) -> Draft {
    let subject = r.subject.unwrap_or_default();
    Draft {
        subject_kind: subject_kind_from_wire(subject.kind),
        subject_id: subject.id,
        subject_name: subject.name,
        category: r.category,
        provider_ref: r.provider_ref,
        occurred_on: r.occurred_on,
        ended_on: if r.ended_on.is_empty() {
            None
        } else {
            Some(r.ended_on)
        },
        period: r.period,
        adverse: r.adverse,
        fields: r.fields.into_iter().collect(),
    }
}

fn subject_kind_from_wire(kind: i32) -> Option<SubjectKind> {
    match pb::SubjectKind::try_from(kind) {
        Ok(pb::SubjectKind::Legal) => Some(SubjectKind::Legal),
        Ok(pb::SubjectKind::Natural) => Some(SubjectKind::Natural),
        _ => None,
    }
}

/// The wire form of a provider draft, as the CLI sends it.
pub fn draft_to_wire(d: &Draft) -> pb::Record {
    pb::Record {
        subject: Some(pb::Subject {
            kind: match d.subject_kind {
                Some(SubjectKind::Legal) => pb::SubjectKind::Legal as i32,
                Some(SubjectKind::Natural) => pb::SubjectKind::Natural as i32,
                None => pb::SubjectKind::Unspecified as i32,
            },
            id: d.subject_id.clone(),
            name: d.subject_name.clone(),
        }),
        category: d.category.clone(),
        provider_ref: d.provider_ref.clone(),
        occurred_on: d.occurred_on.clone(),
        ended_on: d.ended_on.clone().unwrap_or_default(),
        period: d.period.clone(),
        adverse: d.adverse,
        fields: d
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Default::default()
    }
}

pub fn record_to_wire(r: &Record) -> pb::Record {
    let c = &r.content;
    pb::Record {
        id: r.id.to_string(),
        subject: Some(pb::Subject {
            kind: match c.subject.kind {
                SubjectKind::Legal => pb::SubjectKind::Legal as i32,
                SubjectKind::Natural => pb::SubjectKind::Natural as i32,
            },
            id: c.subject.id.clone(),
            name: c.subject.name.clone(),
        }),
        category: c.category.clone(),
        provider_id: c.provider_id.clone(),
        provider_ref: c.provider_ref.clone(),
        origin_region: r.origin.to_string(),
        path: r.path.iter().map(|p| p.to_string()).collect(),
        occurred_on: c.occurred_on.clone(),
        ended_on: c.ended_on.clone().unwrap_or_default(),
        reported_at_ms: r.reported_at_ms,
        period: c.period.clone(),
        adverse: Some(c.adverse),
        disclosure: match c.disclosure {
            Disclosure::Public => pb::DisclosureClass::Public as i32,
            Disclosure::Consent => pb::DisclosureClass::Consent as i32,
            Disclosure::Statutory => pb::DisclosureClass::Statutory as i32,
        },
        fields: c
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        version: r.version,
        status: match r.status {
            Status::Active => pb::RecordStatus::Active as i32,
            Status::Suspended => pb::RecordStatus::Suspended as i32,
            Status::Expired => pb::RecordStatus::Expired as i32,
            Status::Deleted => pb::RecordStatus::Deleted as i32,
            Status::Repaired => pb::RecordStatus::Repaired as i32,
        },
        status_reason: r.status_reason.clone(),
        content_hash: r.content_hash.to_vec(),
    }
}

/// What a child node sends about a record besides its checkable content: the fields only
/// the origin sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaMeta {
    pub id: uuid::Uuid,
    pub provider_id: String,
    pub origin: crate::domain::region::RegionCode,
    pub path: Vec<crate::domain::region::RegionCode>,
    pub reported_at_ms: i64,
    pub version: u64,
    pub status: Status,
    pub status_reason: String,
    pub disclosure: Option<Disclosure>,
    pub adverse: Option<bool>,
    pub content_hash: Vec<u8>,
}

fn bad(field: &str, rule: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        rule,
        message: message.into(),
    }
}

/// Splits a record from a child node into a draft (checked again by the receiving node,
/// which never trusts a child) and the origin's metadata.
pub fn replica_from_wire(mut r: pb::Record) -> Result<(Draft, ReplicaMeta), Violation> {
    let id = uuid::Uuid::parse_str(&r.id)
        .map_err(|e| bad("id", "R-SEC-1", format!("not a UUID: {e}")))?;
    let origin = crate::domain::region::RegionCode::parse(&r.origin_region)
        .map_err(|e| bad("origin_region", "R-FED-1", e.to_string()))?;
    let path = r
        .path
        .iter()
        .map(|p| crate::domain::region::RegionCode::parse(p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("path", "R-FED-1", e.to_string()))?;
    let status = match pb::RecordStatus::try_from(r.status) {
        Ok(pb::RecordStatus::Active) => Status::Active,
        Ok(pb::RecordStatus::Suspended) => Status::Suspended,
        Ok(pb::RecordStatus::Expired) => Status::Expired,
        Ok(pb::RecordStatus::Deleted) => Status::Deleted,
        Ok(pb::RecordStatus::Repaired) => Status::Repaired,
        _ => return Err(bad("status", "R-SEC-1", "must be set by the origin")),
    };
    let disclosure = match pb::DisclosureClass::try_from(r.disclosure) {
        Ok(pb::DisclosureClass::Public) => Some(Disclosure::Public),
        Ok(pb::DisclosureClass::Consent) => Some(Disclosure::Consent),
        Ok(pb::DisclosureClass::Statutory) => Some(Disclosure::Statutory),
        _ => None,
    };
    let meta = ReplicaMeta {
        id,
        provider_id: std::mem::take(&mut r.provider_id),
        origin,
        path,
        reported_at_ms: r.reported_at_ms,
        version: r.version,
        status,
        status_reason: std::mem::take(&mut r.status_reason),
        disclosure,
        adverse: r.adverse,
        content_hash: std::mem::take(&mut r.content_hash),
    };
    Ok((draft_of(r), meta))
}
