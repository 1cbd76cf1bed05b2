//! 信息主体书面授权: a subject's written consent to one agency's query, for one
//! purpose, over named categories, for a period (R-REL-4, R-REL-6).
//!
//! An operator records the consent from the signed paper (its number is the evidence
//! reference); the recording node signs the terms with its certificate's key
//! (`identity::signed`), so every node that later holds the consent can check it was
//! recorded by that node and not changed since. A withdrawal is signed the same way, by
//! the node that records it. Consents travel upward in the changelog like records; a
//! withdrawal is a later version of the same consent and never undone.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::region::RegionCode;
use crate::domain::signature::Signature;
use crate::domain::usage::EncodeError;

/// Why the information is used (R-REL-6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Procurement,
    Bidding,
    ProjectApproval,
    SpecialFunds,
    Subsidy,
    InvestmentPromotion,
    Lending,
    Other,
}

impl Purpose {
    pub const ALL: [Purpose; 8] = [
        Purpose::Procurement,
        Purpose::Bidding,
        Purpose::ProjectApproval,
        Purpose::SpecialFunds,
        Purpose::Subsidy,
        Purpose::InvestmentPromotion,
        Purpose::Lending,
        Purpose::Other,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Purpose::Procurement => "procurement",
            Purpose::Bidding => "bidding",
            Purpose::ProjectApproval => "project_approval",
            Purpose::SpecialFunds => "special_funds",
            Purpose::Subsidy => "subsidy",
            Purpose::InvestmentPromotion => "investment_promotion",
            Purpose::Lending => "lending",
            Purpose::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Purpose> {
        Purpose::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The codes, comma-separated, for messages.
    pub fn codes() -> String {
        Purpose::ALL.map(|p| p.as_str()).join(", ")
    }
}

impl std::fmt::Display for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the subject signed, as the operator recorded it. Signed as a whole.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Terms {
    pub id: Uuid,
    /// Normalised USCC or resident identity number.
    pub subject_id: String,
    /// The agency's identity URI as in its certificate, `credit://agency/<region>/<id>`.
    pub grantee: String,
    pub purpose: Purpose,
    pub purpose_text: String,
    /// Catalog category codes the consent covers.
    pub categories: Vec<String>,
    pub valid_from: NaiveDate,
    /// The last day the consent is valid.
    pub valid_until: NaiveDate,
    /// The number of the signed paper.
    pub evidence: String,
    /// The operator who recorded it (identity URI) and when (Unix ms).
    pub recorded_by: String,
    pub recorded_at_ms: i64,
    /// The node that recorded and signed it.
    pub node: RegionCode,
}

/// A withdrawal of a consent, signed by the node that recorded it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withdrawal {
    pub at_ms: i64,
    /// The operator who recorded the withdrawal.
    pub by: String,
    pub reason: String,
    pub node: RegionCode,
    pub signature: Signature,
}

/// A consent as nodes hold and pass it on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub terms: Terms,
    pub signature: Signature,
    pub withdrawal: Option<Withdrawal>,
    /// Regions the consent passed through, the recording node first (not signed: each
    /// hop appends itself, and the receiving parent checks it like a record's path).
    pub path: Vec<RegionCode>,
}

/// A consent's state on a given day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Given,
    /// Not yet in force.
    Pending,
    Withdrawn,
    Expired,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Given => "given",
            State::Pending => "pending",
            State::Withdrawn => "withdrawn",
            State::Expired => "expired",
        }
    }
}

const TERMS_LABEL: &[u8] = b"credit-node consent v1\0";
const WITHDRAWAL_LABEL: &[u8] = b"credit-node consent withdrawal v1\0";

/// The bytes a consent's signature covers: a label, then postcard's encoding of the
/// terms (deterministic for these types). An encoding failure is an error: never sign
/// or check a message that leaves the terms out.
pub(crate) fn terms_message(terms: &Terms) -> Result<Vec<u8>, EncodeError> {
    let mut m = TERMS_LABEL.to_vec();
    m.extend(postcard::to_stdvec(terms)?);
    Ok(m)
}

/// The bytes a withdrawal's signature covers (as `terms_message`).
pub(crate) fn withdrawal_message(
    id: &Uuid,
    at_ms: i64,
    by: &str,
    reason: &str,
    node: &RegionCode,
) -> Result<Vec<u8>, EncodeError> {
    let mut m = WITHDRAWAL_LABEL.to_vec();
    m.extend(postcard::to_stdvec(&(
        id,
        at_ms,
        by,
        reason,
        node.as_str(),
    ))?);
    Ok(m)
}

impl Consent {
    pub fn state(&self, today: NaiveDate) -> State {
        if self.withdrawal.is_some() {
            State::Withdrawn
        } else if today > self.terms.valid_until {
            State::Expired
        } else if today < self.terms.valid_from {
            State::Pending
        } else {
            State::Given
        }
    }

    /// Whether `other` (the same consent) says more than this one: only a withdrawal
    /// can be added, never taken back.
    pub fn is_superseded_by(&self, other: &Consent) -> bool {
        self.withdrawal.is_none() && other.withdrawal.is_some()
    }

    /// Of this node's copy and another node's, the one to go by: this node's, unless
    /// the other is the same consent with a withdrawal this one lacks. Signatures are
    /// checked by the caller.
    pub fn latest(held: Option<Consent>, other: Option<Consent>) -> Option<Consent> {
        match (held, other) {
            (Some(h), Some(o)) if h.is_superseded_by(&o) && o.terms == h.terms => Some(o),
            (Some(h), _) => Some(h),
            (None, o) => o,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn terms(node: &str) -> Terms {
        Terms {
            id: Uuid::now_v7(),
            subject_id: "91211382MA0XXXXXX1".into(),
            grantee: "credit://agency/211300/chaoyang-finance".into(),
            purpose: Purpose::Subsidy,
            purpose_text: "2026 export subsidy review".into(),
            categories: vec!["administrative_penalty".into()],
            valid_from: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(),
            valid_until: NaiveDate::from_ymd_opt(2026, 12, 31).unwrap(),
            evidence: "SQ-2026-0042".into(),
            recorded_by: "credit://operator/211382/window-1".into(),
            recorded_at_ms: crate::domain::clock::Clock::system().now_ms(), // wall-clock: signing times only
            node: RegionCode::parse(node).unwrap(),
        }
    }
}
