//! A parent never trusts a child: every entry is checked again before it is applied.

use chrono::NaiveDate;

use crate::config::Child;
use crate::exchange::convert::replica_from_wire;
use crate::pb;
use crate::policy::{Validator, Violation};
use crate::record::Record;

fn bad(field: &str, rule: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        rule,
        message: message.into(),
    }
}

/// Checks one changelog entry from `child` and returns the record to apply.
///
/// The content passes the same catalog and law checks as at the origin (R-DATA-1..5)
/// and must hash to the hash the origin set (R-SEC-1: nothing changed on the way); the
/// record must have come from the child (the last hop of its path) and from an origin
/// inside the child's region (or, for an exception child, the child itself), R-FED-1.
pub fn check_entry(
    entry: pb::ChangeEntry,
    child: &Child,
    validator: &Validator,
    today: NaiveDate,
) -> Result<Record, Violation> {
    let wire = entry
        .record
        .ok_or_else(|| bad("record", "R-FED-1", "an entry must carry a record"))?;
    let (draft, meta) = replica_from_wire(wire)?;
    if meta.path.first() != Some(&meta.origin) || meta.path.last() != Some(&child.region) {
        return Err(bad(
            "path",
            "R-FED-1",
            format!(
                "must start at the origin {} and end at the sending child {}",
                meta.origin, child.region
            ),
        ));
    }
    for (i, hop) in meta.path.iter().enumerate() {
        if meta.path[..i].contains(hop) {
            return Err(bad(
                "path",
                "R-FED-1",
                format!("region {hop} appears twice"),
            ));
        }
    }
    let inside = if child.exception {
        meta.origin == child.region
    } else {
        child.region.contains(&meta.origin)
    };
    if !inside {
        return Err(bad(
            "origin_region",
            "R-FED-1",
            format!(
                "{} is not in the subtree of child {}",
                meta.origin, child.region
            ),
        ));
    }
    if meta.version == 0 || meta.reported_at_ms <= 0 || meta.provider_id.is_empty() {
        return Err(bad(
            "version",
            "R-SEC-1",
            "version, provider and report time must be set by the origin",
        ));
    }
    let content = validator.check(&draft, &meta.provider_id, today)?;
    if meta.disclosure != Some(content.disclosure) {
        return Err(bad(
            "disclosure",
            "R-REL-1",
            "does not match this node's catalog for the category",
        ));
    }
    let hash = content.hash();
    if meta.content_hash.as_slice() != hash.as_slice() {
        return Err(bad(
            "content_hash",
            "R-SEC-1",
            "the content does not match the hash its origin set",
        ));
    }
    Ok(Record {
        id: meta.id,
        content,
        origin: meta.origin,
        path: meta.path,
        reported_at_ms: meta.reported_at_ms,
        version: meta.version,
        status: meta.status,
        status_reason: meta.status_reason,
        content_hash: hash,
    })
}
