//! Notices that travel down the federation to the node that owns a record: an objection,
//! a consent withdrawal, a correction request (R-OBJ-1..2, R-REL-4, R-DATA-4).

use serde::{Deserialize, Serialize};

use crate::domain::case::Case;
use crate::domain::ids::id_origin;
use crate::domain::region::RegionCode;

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
            && id_origin(&case.record_id) == Some(case.owner))
        .then_some(case)
    }
}
