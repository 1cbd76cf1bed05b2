//! Notices on the wire (`credit.v1.Notice`), both ways.

use crate::domain::notice::{Notice, NoticeKind};
use crate::domain::region::RegionCode;
use crate::pb;
use crate::rpc::convert::case::{case_from_wire, case_to_wire};

impl Notice {
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
