//! A parent never trusts a child: every entry is checked again before it is applied.

use chrono::NaiveDate;

use crate::config::Child;
use crate::domain::record::{Content, Draft, Hash, Record, Status};
use crate::domain::region::RegionCode;
use crate::identity::signing::SignatureVerifier;
use crate::pb;
use crate::policy::{Validator, Violation};
use crate::rpc::convert::consent::{checkpoint_from_wire, consent_from_wire};
use crate::rpc::convert::record::{ReplicaMeta, replica_from_wire};
use crate::store::Change;

fn bad(field: &str, rule: &'static str, message: impl Into<String>) -> Violation {
    Violation {
        field: field.to_string(),
        rule,
        message: message.into(),
    }
}

/// Checks one changelog entry from `child` and returns what to apply.
///
/// Every entry must have come from the child along a path inside its subtree (see
/// `check_path`). A consent or checkpoint must carry valid signatures of the nodes that
/// made it (R-SEC-1). For a record: the content passes the same catalog and law checks as at the origin (R-DATA-1..5)
/// and must hash to the hash the origin set (R-SEC-1: nothing changed on the way); the
/// record must have come from the child (the last hop of its path), along a path whose
/// every hop lies in the child's subtree, each inside the next, from an origin inside the
/// child's region (or, for an exception child, the child itself), R-FED-1; and its id
/// must be one its origin made (ids carry the origin's region), R-SEC-1.
pub fn check_entry(
    entry: pb::ChangeEntry,
    child: &Child,
    local: &RegionCode,
    validator: &Validator,
    verifier: &SignatureVerifier,
    today: NaiveDate,
    known: &dyn Fn(&uuid::Uuid) -> Option<Record>,
) -> Result<Change, Violation> {
    let kinds = [
        entry.record.is_some(),
        entry.consent.is_some(),
        entry.checkpoint.is_some(),
        entry.objection.is_some(),
    ];
    if kinds.iter().filter(|k| **k).count() != 1 {
        return Err(bad(
            "record",
            "R-FED-1",
            "an entry must carry exactly one of a record, a consent, a checkpoint or an \
             objection case",
        ));
    }
    if let Some(wire) = entry.objection {
        let case = crate::rpc::convert::case::case_from_wire(&wire)
            .map_err(|(field, why)| bad(&format!("objection.{field}"), "R-OBJ-1", why))?;
        check_path(&case.path, &case.owner, child, local)?;
        // Only a record's origin owns its cases (ids carry their origin).
        if crate::domain::ids::id_origin(&case.record_id) != Some(case.owner) || case.version == 0 {
            return Err(bad(
                "objection.owner_region",
                "R-OBJ-1",
                format!(
                    "case {} must come from the origin of record {}, which owns it",
                    case.id, case.record_id
                ),
            ));
        }
        return Ok(Change::Objection(case));
    }
    if let Some(wire) = entry.consent {
        let consent = consent_from_wire(wire)?;
        check_path(&consent.path, &consent.terms.node, child, local)?;
        consent.verify(verifier).map_err(|e| {
            bad(
                "signature",
                "R-SEC-1",
                format!("consent {}: {e}", consent.terms.id),
            )
        })?;
        return Ok(Change::Consent(consent));
    }
    if let Some(wire) = entry.checkpoint {
        let cp = checkpoint_from_wire(wire)?;
        check_path(&cp.path, &cp.node, child, local)?;
        cp.verify(verifier).map_err(|e| {
            bad(
                "signature",
                "R-SEC-1",
                format!("checkpoint {}: {e}", cp.seq),
            )
        })?;
        return Ok(Change::Checkpoint(cp));
    }
    let wire = entry
        .record
        .ok_or_else(|| bad("record", "R-FED-1", "an entry must carry a record"))?;
    let (draft, meta) = replica_from_wire(wire)?;
    check_path(&meta.path, &meta.origin, child, local)?;
    check_record(draft, meta, child, validator, today, known).map(Change::Record)
}

/// The entry came from the child (the last hop of its path), along a path whose every
/// hop lies in the child's subtree, each inside the next, from `origin` (R-FED-1).
fn check_path(
    path: &[RegionCode],
    origin: &RegionCode,
    child: &Child,
    local: &RegionCode,
) -> Result<(), Violation> {
    if path.first() != Some(origin) || path.last() != Some(&child.region) {
        return Err(bad(
            "path",
            "R-FED-1",
            format!(
                "must start at the origin {} and end at the sending child {}",
                origin, child.region
            ),
        ));
    }
    // Every hop lies in the child's subtree (the child itself for an exception child),
    // is inside the next one, appears once, and is not this node.
    for (i, hop) in path.iter().enumerate() {
        if hop == local {
            return Err(bad(
                "path",
                "R-FED-1",
                format!("this node ({local}) is already on the path"),
            ));
        }
        if path[..i].contains(hop) {
            return Err(bad(
                "path",
                "R-FED-1",
                format!("region {hop} appears twice"),
            ));
        }
        let in_subtree = if child.exception {
            *hop == child.region
        } else {
            child.region.contains(hop)
        };
        let under_next = path.get(i + 1).is_none_or(|next| next.contains(hop));
        if !in_subtree || !under_next {
            return Err(bad(
                "path",
                "R-FED-1",
                format!(
                    "hop {hop} is not on a way up through child {}",
                    child.region
                ),
            ));
        }
    }
    Ok(())
}

fn check_record(
    draft: Draft,
    meta: ReplicaMeta,
    child: &Child,
    validator: &Validator,
    today: NaiveDate,
    known: &dyn Fn(&uuid::Uuid) -> Option<Record>,
) -> Result<Record, Violation> {
    if crate::domain::ids::id_origin(&meta.id) != Some(meta.origin) {
        return Err(bad(
            "id",
            "R-SEC-1",
            format!(
                "record id {} was not made by its origin {}",
                meta.id, meta.origin
            ),
        ));
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
    // A later version of content this node checked and holds (same hash): a change of
    // status only (suspended, lifted, repaired). It is not checked again against today's
    // catalog and dates, so a suspension is never lost to a catalog or calendar change.
    let held = if meta.version > 1 {
        known(&meta.id)
    } else {
        None
    };
    let tombstone = |s: Status| matches!(s, Status::Deleted | Status::Expired);
    // A deleted or purged record stays closed: no later version reopens it (R-OBJ-3,
    // R-SEC-2); its origin refuses to make one.
    if let Some(held) = &held
        && tombstone(held.status)
        && held.version < meta.version
        && !tombstone(meta.status)
    {
        return Err(bad(
            "status",
            if held.status == Status::Deleted {
                "R-OBJ-3"
            } else {
                "R-SEC-2"
            },
            format!(
                "record {} is {:?} here; a later version may not reopen it",
                meta.id, held.status
            ),
        ));
    }
    if let Some(held) = held
        && !tombstone(held.status)
        && !tombstone(meta.status)
        && held.origin == meta.origin
        && held.version < meta.version
        && held.content_hash.as_slice() == meta.content_hash.as_slice()
    {
        return Ok(replica(meta, held.content, held.content_hash));
    }
    let content = if meta.status == Status::Expired
        || (meta.status == Status::Deleted && draft.fields.is_empty())
    {
        // A tombstone keeps who, what and why (R-OBJ-3, R-SEC-2), not the fields. It
        // releases nothing, so when its origin made it is the origin's affair; an
        // earlier version redacted at the origin arrives in the same form.
        validator.check_purged(&draft, &meta.provider_id, today)?
    } else {
        validator.check(&draft, &meta.provider_id, today)?
    };
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
    Ok(replica(meta, content, hash))
}

/// The record a replica keeps: the origin's metadata over the content this node checked
/// (or already held under the same hash).
fn replica(meta: ReplicaMeta, content: Content, content_hash: Hash) -> Record {
    Record {
        id: meta.id,
        content,
        origin: meta.origin,
        path: meta.path,
        reported_at_ms: meta.reported_at_ms,
        version: meta.version,
        status: meta.status,
        status_reason: meta.status_reason,
        content_hash,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::record::Status;
    use crate::policy::Catalog;
    use crate::rpc::convert::record::record_to_wire;

    const LIAONING: &str = "210000";
    const CHAOYANG: &str = "211300";
    const LINGYUAN: &str = "211382";

    fn verifier() -> SignatureVerifier {
        let ca = crate::identity::DevCa::generate("test ca").unwrap();
        SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap()
    }

    fn region(s: &str) -> RegionCode {
        RegionCode::parse(s).unwrap()
    }

    /// A record Lingyuan accepted and Chaoyang forwards to Liaoning, as the wire carries it.
    pub(super) fn forwarded(validator: &Validator, today: NaiveDate) -> pb::ChangeEntry {
        let catalog = Catalog::builtin().unwrap();
        let draft = crate::policy::sample::generate_drafts_in(
            &catalog,
            &["admin_penalty"],
            1,
            1,
            9,
            "2026-10",
        )
        .remove(0);
        let content = validator.check(&draft, "lingyuan-amr", today).unwrap();
        let record = Record {
            id: crate::store::new_record_id(1_790_000_000_000, &region(LINGYUAN), 7),
            content_hash: content.hash(),
            content,
            origin: region(LINGYUAN),
            path: vec![region(LINGYUAN), region(CHAOYANG)],
            reported_at_ms: 1_790_000_000_000,
            version: 1,
            status: Status::Active,
            status_reason: String::new(),
        };
        pb::ChangeEntry {
            seq: 7,
            record: Some(record_to_wire(&record)),
            ..Default::default()
        }
    }

    fn refusal(entry: pb::ChangeEntry) -> (String, &'static str) {
        let validator = Validator::new(Arc::new(Catalog::builtin().unwrap()), Vec::new());
        let child = Child {
            region: region(CHAOYANG),
            exception: false,
        };
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let v = check_entry(
            entry,
            &child,
            &region(LIAONING),
            &validator,
            &verifier(),
            today,
            &|_| None,
        )
        .unwrap_err();
        (v.field, v.rule)
    }

    #[test]
    fn a_forwarded_record_passes_and_tampering_does_not() {
        let validator = Validator::new(Arc::new(Catalog::builtin().unwrap()), Vec::new());
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let child = Child {
            region: region(CHAOYANG),
            exception: false,
        };
        let good = forwarded(&validator, today);
        assert!(
            check_entry(
                good.clone(),
                &child,
                &region(LIAONING),
                &validator,
                &verifier(),
                today,
                &|_| None
            )
            .is_ok()
        );

        let edit = |f: &dyn Fn(&mut pb::Record)| {
            let mut e = good.clone();
            f(e.record.as_mut().unwrap());
            refusal(e)
        };
        // A hop outside the child's subtree (forged through Beijing).
        assert_eq!(
            edit(&|r| r.path = vec![LINGYUAN.into(), "110000".into(), CHAOYANG.into()]),
            ("path".into(), "R-FED-1")
        );
        // This node already on the path.
        assert_eq!(
            edit(&|r| r.path = vec![LINGYUAN.into(), LIAONING.into(), CHAOYANG.into()]),
            ("path".into(), "R-FED-1")
        );
        // Not ending at the sending child.
        assert_eq!(
            edit(&|r| r.path = vec![LINGYUAN.into()]),
            ("path".into(), "R-FED-1")
        );
        // An origin outside the child's region.
        assert_eq!(
            edit(&|r| {
                r.origin_region = "210102".into();
                r.path = vec!["210102".into(), CHAOYANG.into()];
            }),
            ("path".into(), "R-FED-1")
        );
        // An id its origin did not make.
        assert_eq!(
            edit(&|r| r.id = crate::store::new_record_id(1, &region("211381"), 7).to_string()),
            ("id".into(), "R-SEC-1")
        );
        // Content changed on the way.
        assert_eq!(
            edit(&|r| {
                r.fields.insert("remarks".into(), "改".into());
            }),
            ("content_hash".into(), "R-SEC-1")
        );
    }
}

#[cfg(test)]
mod status_tests {
    use std::sync::Arc;

    use super::*;
    use crate::domain::record::Status;
    use crate::policy::Catalog;

    /// A later version that changes only the status of content this node holds is
    /// applied even when the content would no longer pass today's checks (here: dated
    /// after the parent's "today"), so a suspension is never refused and lost.
    #[test]
    fn a_status_change_of_held_content_is_not_checked_again() {
        let validator = Validator::new(Arc::new(Catalog::builtin().unwrap()), Vec::new());
        let today = NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        let child = Child {
            region: RegionCode::parse("211300").unwrap(),
            exception: false,
        };
        let local = RegionCode::parse("210000").unwrap();
        let ca = crate::identity::DevCa::generate("test ca").unwrap();
        let verifier = SignatureVerifier::from_ca_pem(ca.cert_pem()).unwrap();
        let first = tests::forwarded(&validator, today);
        let Change::Record(held) = check_entry(
            first.clone(),
            &child,
            &local,
            &validator,
            &verifier,
            today,
            &|_| None,
        )
        .unwrap() else {
            panic!("a record")
        };
        let mut later = first;
        let wire = later.record.as_mut().unwrap();
        wire.version = 2;
        wire.status = crate::pb::RecordStatus::Suspended as i32;
        let long_ago = NaiveDate::from_ymd_opt(2000, 1, 1).unwrap();
        let check = |known: &dyn Fn(&uuid::Uuid) -> Option<Record>| {
            check_entry(
                later.clone(),
                &child,
                &local,
                &validator,
                &verifier,
                long_ago,
                known,
            )
        };
        assert!(
            check(&|_| None).is_err(),
            "the content fails today's checks"
        );
        let Change::Record(r) = check(&|_| Some(held.clone())).unwrap() else {
            panic!("a record")
        };
        assert_eq!((r.version, r.status), (2, Status::Suspended));
        assert_eq!(r.content, held.content);

        // A tombstone held here is not reopened, and a purge that keeps its fields
        // does not take the shortcut.
        let mut deleted = held.clone();
        deleted.status = Status::Deleted;
        let (field, rule) = match check(&|_| Some(deleted.clone())) {
            Err(v) => (v.field, v.rule),
            Ok(c) => panic!("reopened: {c:?}"),
        };
        assert_eq!((field.as_str(), rule), ("status", "R-OBJ-3"));
        let mut purge = later.clone();
        purge.record.as_mut().unwrap().status = crate::pb::RecordStatus::Expired as i32;
        let refused = check_entry(purge, &child, &local, &validator, &verifier, today, &|_| {
            Some(held.clone())
        })
        .unwrap_err();
        assert_eq!(refused.rule, "R-SEC-2", "{refused:?}");
    }
}
