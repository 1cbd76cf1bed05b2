//! Usage-log entries on the wire (`credit.v1.UsageRecord`), outward only.

use crate::domain::region::RegionCode;
use crate::domain::usage::{Chained, Outcome};
use crate::pb;

/// A usage-log entry as the history and audit answers list it.
pub fn usage_record_to_wire(node: &RegionCode, seq: u64, c: &Chained) -> pb::UsageRecord {
    let e = &c.entry;
    pb::UsageRecord {
        node: node.to_string(),
        seq,
        at_ms: e.at_ms,
        caller: e.caller.clone(),
        on_behalf_of: e.on_behalf_of.clone().unwrap_or_default(),
        action: format!("{:?}", e.action).to_lowercase(),
        rpc: e.rpc.clone(),
        purpose: e.purpose.clone().unwrap_or_default(),
        legal_basis: e.legal_basis.clone().unwrap_or_default(),
        consent_id: e.consent_id.clone().unwrap_or_default(),
        record_ids: e.record_ids.iter().map(ToString::to_string).collect(),
        count: e.count,
        outcome: match &e.outcome {
            Outcome::Ok => "ok".into(),
            Outcome::Refused { rule, message, .. } => format!("refused {rule}: {message}"),
        },
        detail: e.detail.clone(),
    }
}
