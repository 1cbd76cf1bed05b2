//! Entries a parent keeps refused from its children (R-FED-1), as its Status shows them.

use crate::pb;
use crate::store::Quarantined;

pub fn quarantined_to_wire(q: &Quarantined) -> pb::QuarantinedEntry {
    pb::QuarantinedEntry {
        child_region: q.child.to_string(),
        seq: q.child_seq,
        record_id: q.label.clone(),
        field: q.field.clone(),
        rule: q.rule.clone(),
        message: q.message.clone(),
        at_ms: q.at_ms,
    }
}
