//! Consents, checkpoints and changelog entries on the wire (`credit.v1`), both ways.
//! What comes in is parsed strictly: a bad field is a `Violation` that names it.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::consent::{Consent, Purpose, Terms, Withdrawal};
use crate::domain::region::RegionCode;
use crate::domain::signature::Signature;
use crate::domain::usage::Checkpoint;
use crate::pb;
use crate::policy::Violation;
use crate::rpc::convert::record::record_to_wire;
use crate::store::Change;

fn bad(field: &str, rule: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        rule,
        message: message.into(),
    }
}

fn signature_to_wire(s: &Signature) -> pb::Signature {
    pb::Signature {
        signature: s.signature.clone(),
        cert: s.cert.clone(),
    }
}

fn signature_from_wire(s: Option<pb::Signature>, field: &str) -> Result<Signature, Violation> {
    let s = s.ok_or_else(|| bad(field, "R-SEC-1", "a signature is required"))?;
    Ok(Signature {
        signature: s.signature,
        cert: s.cert,
    })
}

fn region(s: &str, field: &str) -> Result<RegionCode, Violation> {
    RegionCode::parse(s).map_err(|e| bad(field, "R-FED-1", e.to_string()))
}

fn path_from_wire(path: &[String]) -> Result<Vec<RegionCode>, Violation> {
    path.iter().map(|p| region(p, "path")).collect()
}

fn date(s: &str, field: &str) -> Result<NaiveDate, Violation> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
        bad(
            field,
            "R-REL-4",
            format!("must be a date YYYY-MM-DD, got {s:?}"),
        )
    })
}

pub fn consent_to_wire(c: &Consent, today: NaiveDate) -> pb::Consent {
    let t = &c.terms;
    pb::Consent {
        terms: Some(pb::ConsentTerms {
            id: t.id.to_string(),
            subject_id: t.subject_id.clone(),
            grantee: t.grantee.clone(),
            purpose: t.purpose.to_string(),
            purpose_text: t.purpose_text.clone(),
            categories: t.categories.clone(),
            valid_from: t.valid_from.to_string(),
            valid_until: t.valid_until.to_string(),
            evidence: t.evidence.clone(),
            recorded_by: t.recorded_by.clone(),
            recorded_at_ms: t.recorded_at_ms,
            node: t.node.to_string(),
        }),
        signature: Some(signature_to_wire(&c.signature)),
        withdrawal: c.withdrawal.as_ref().map(|w| pb::Withdrawal {
            at_ms: w.at_ms,
            by: w.by.clone(),
            reason: w.reason.clone(),
            node: w.node.to_string(),
            signature: Some(signature_to_wire(&w.signature)),
        }),
        path: c.path.iter().map(ToString::to_string).collect(),
        state: c.state(today).as_str().to_string(),
    }
}

/// Parses a consent from the wire. Its signatures are checked by the caller.
pub fn consent_from_wire(c: pb::Consent) -> Result<Consent, Violation> {
    let t = c
        .terms
        .ok_or_else(|| bad("terms", "R-REL-4", "a consent must carry its terms"))?;
    let id = Uuid::parse_str(&t.id).map_err(|_| bad("id", "R-REL-4", "must be a UUID"))?;
    let purpose = Purpose::parse(&t.purpose).ok_or_else(|| {
        bad(
            "purpose",
            "R-REL-6",
            format!("must be one of {}", Purpose::codes()),
        )
    })?;
    let terms = Terms {
        id,
        subject_id: t.subject_id,
        grantee: t.grantee,
        purpose,
        purpose_text: t.purpose_text,
        categories: t.categories,
        valid_from: date(&t.valid_from, "valid_from")?,
        valid_until: date(&t.valid_until, "valid_until")?,
        evidence: t.evidence,
        recorded_by: t.recorded_by,
        recorded_at_ms: t.recorded_at_ms,
        node: region(&t.node, "node")?,
    };
    let withdrawal = match c.withdrawal {
        Some(w) => Some(Withdrawal {
            at_ms: w.at_ms,
            by: w.by,
            reason: w.reason,
            node: region(&w.node, "withdrawal.node")?,
            signature: signature_from_wire(w.signature, "withdrawal.signature")?,
        }),
        None => None,
    };
    Ok(Consent {
        terms,
        signature: signature_from_wire(c.signature, "signature")?,
        withdrawal,
        path: path_from_wire(&c.path)?,
    })
}

pub fn checkpoint_to_wire(c: &Checkpoint) -> pb::Checkpoint {
    pb::Checkpoint {
        node: c.node.to_string(),
        seq: c.seq,
        head: c.head.to_vec(),
        at_ms: c.at_ms,
        signature: Some(signature_to_wire(&c.signature)),
        path: c.path.iter().map(ToString::to_string).collect(),
    }
}

pub fn checkpoint_from_wire(c: pb::Checkpoint) -> Result<Checkpoint, Violation> {
    let head: [u8; 32] = c
        .head
        .as_slice()
        .try_into()
        .map_err(|_| bad("head", "R-SEC-3", "must be a SHA-256 digest (32 bytes)"))?;
    Ok(Checkpoint {
        node: region(&c.node, "node")?,
        seq: c.seq,
        head,
        at_ms: c.at_ms,
        signature: signature_from_wire(c.signature, "signature")?,
        path: path_from_wire(&c.path)?,
    })
}

/// A changelog entry for the uplink.
pub fn change_to_wire(seq: u64, change: &Change, today: NaiveDate) -> pb::ChangeEntry {
    let mut entry = pb::ChangeEntry {
        seq,
        ..Default::default()
    };
    match change {
        Change::Record(r) => entry.record = Some(record_to_wire(r)),
        Change::Consent(c) => entry.consent = Some(consent_to_wire(c, today)),
        Change::Checkpoint(c) => entry.checkpoint = Some(checkpoint_to_wire(c)),
        Change::Objection(c) => {
            entry.objection = Some(crate::rpc::convert::case::case_to_wire(c, None));
        }
    }
    entry
}
