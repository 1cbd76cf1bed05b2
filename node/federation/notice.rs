//! Notices that travel down the federation to the node that owns a record: an objection,
//! a consent withdrawal, a correction request (R-OBJ-1..2, R-REL-4, R-DATA-4).

use serde::{Deserialize, Serialize};

use crate::objection::Case;
use crate::objection::wire::{case_from_wire, case_to_wire};
use crate::pb;
use crate::region::RegionCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Objection,
    ConsentWithdrawal,
    CorrectionRequest,
    /// The parent refused an entry this node sent up and keeps it in its quarantine
    /// (R-FED-1); written only by the parent's Sync.
    EntryRefused,
}

/// A notice as nodes keep it. `(from, id)` names it across the federation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub id: u64,
    pub kind: NoticeKind,
    /// The node it is for.
    pub target: RegionCode,
    pub record_id: String,
    pub subject_id: String,
    pub text: String,
    /// The node that first queued it.
    pub from: RegionCode,
    pub created_at_ms: i64,
    /// An objection notice carries the case as filed, for the owner to take.
    pub objection: Option<Case>,
}

/// A notice as stored before notices could carry a case (read, never written).
#[derive(Deserialize)]
pub(crate) struct LegacyNotice {
    id: u64,
    kind: NoticeKind,
    target: RegionCode,
    record_id: String,
    subject_id: String,
    text: String,
    from: RegionCode,
    created_at_ms: i64,
}

impl From<LegacyNotice> for Notice {
    fn from(n: LegacyNotice) -> Notice {
        Notice {
            id: n.id,
            kind: n.kind,
            target: n.target,
            record_id: n.record_id,
            subject_id: n.subject_id,
            text: n.text,
            from: n.from,
            created_at_ms: n.created_at_ms,
            objection: None,
        }
    }
}

impl Notice {
    /// The case an objection notice carries, if it is one a node may act on: as filed
    /// (version 0, no steps yet), for the record the notice names, owned by the notice's
    /// target. Anything else is ignored (the notice still travels and is logged).
    pub fn filed_case(&self) -> Option<&Case> {
        let case = self.objection.as_ref()?;
        let as_filed = case.version == 0
            && case.checked.is_none()
            && case.reply.is_none()
            && case.resolution.is_none();
        (self.kind == NoticeKind::Objection
            && as_filed
            && case.owner == self.target
            && case.record_id.to_string() == self.record_id
            && crate::store::id_origin(&case.record_id) == Some(case.owner))
        .then_some(case)
    }

    pub fn to_wire(&self) -> pb::Notice {
        pb::Notice {
            id: self.id,
            kind: match self.kind {
                NoticeKind::Objection => pb::NoticeKind::Objection,
                NoticeKind::ConsentWithdrawal => pb::NoticeKind::ConsentWithdrawal,
                NoticeKind::CorrectionRequest => pb::NoticeKind::CorrectionRequest,
                NoticeKind::EntryRefused => pb::NoticeKind::EntryRefused,
            } as i32,
            target_region: self.target.to_string(),
            record_id: self.record_id.clone(),
            subject_id: self.subject_id.clone(),
            text: self.text.clone(),
            from_region: self.from.to_string(),
            created_at_ms: self.created_at_ms,
            objection: self.objection.as_ref().map(|c| case_to_wire(c, None)),
        }
    }

    /// Reads a wire notice; `Err` names the field that is wrong.
    pub fn from_wire(n: &pb::Notice) -> Result<Notice, (&'static str, String)> {
        let kind = match pb::NoticeKind::try_from(n.kind) {
            Ok(pb::NoticeKind::Objection) => NoticeKind::Objection,
            Ok(pb::NoticeKind::ConsentWithdrawal) => NoticeKind::ConsentWithdrawal,
            Ok(pb::NoticeKind::CorrectionRequest) => NoticeKind::CorrectionRequest,
            Ok(pb::NoticeKind::EntryRefused) => NoticeKind::EntryRefused,
            _ => {
                return Err((
                    "kind",
                    "must be objection, consent withdrawal, correction request or entry refused"
                        .into(),
                ));
            }
        };
        let target =
            RegionCode::parse(&n.target_region).map_err(|e| ("target_region", e.to_string()))?;
        let from = RegionCode::parse(&n.from_region).map_err(|e| ("from_region", e.to_string()))?;
        for (field, value, max) in [
            ("record_id", &n.record_id, 64),
            ("subject_id", &n.subject_id, 64),
            ("text", &n.text, 4000),
        ] {
            if value.chars().count() > max {
                return Err((field, format!("at most {max} characters")));
            }
        }
        let objection = match &n.objection {
            Some(c) => Some(case_from_wire(c).map_err(|(_, why)| ("objection", why))?),
            None => None,
        };
        if kind != NoticeKind::Objection && objection.is_some() {
            return Err((
                "objection",
                "only an objection notice carries a case".into(),
            ));
        }
        if kind == NoticeKind::Objection && objection.is_none() {
            return Err(("objection", "an objection notice carries its case: objections are filed with Objections.File (`credit-node objection file`)".into()));
        }
        Ok(Notice {
            objection,
            id: n.id,
            kind,
            target,
            record_id: n.record_id.clone(),
            subject_id: n.subject_id.clone(),
            text: n.text.clone(),
            from,
            created_at_ms: n.created_at_ms,
        })
    }
}
