//! Refusals: what the caller and the usage log see of a refused call (`Refusal`, and
//! `refuse`, the one path that logs one and answers the caller), the wire form of a
//! refusal of one item of a batch (`Refusal::for_record`, `Refusal::for_entry`), and the
//! mapping of library errors to `tonic::Status` with the right code and a message that
//! names the field and the rule.

use tonic::{Code, Status};

use crate::domain::usage::UsageEntry;
use crate::pb;
use crate::policy::Violation;
use crate::policy::authz::Denial;
use crate::store::{StoreError, UsageLog};

/// A refusal as the caller and the usage log see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub field: String,
    pub rule: String,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, field: &str, rule: &str, message: impl Into<String>) -> Refusal {
        Refusal {
            code,
            field: field.to_string(),
            rule: rule.to_string(),
            message: message.into(),
        }
    }

    /// Bad input: `field` breaks `rule`.
    pub fn invalid(field: &str, rule: &str, message: impl Into<String>) -> Refusal {
        Refusal::new(Code::InvalidArgument, field, rule, message)
    }

    /// A caller `rule` does not allow this call, whatever its input.
    pub fn denied(rule: &str, message: impl Into<String>) -> Refusal {
        Refusal::new(Code::PermissionDenied, "", rule, message)
    }

    /// A caller who is not (or no longer) authenticated.
    pub fn unauthenticated(rule: &str, message: impl Into<String>) -> Refusal {
        Refusal::new(Code::Unauthenticated, "", rule, message)
    }

    /// The same refusal, naming `field`.
    pub fn with_field(self, field: &str) -> Refusal {
        Refusal {
            field: field.to_string(),
            ..self
        }
    }

    /// The same refusal, saying `message` instead.
    pub fn with_message(self, message: impl Into<String>) -> Refusal {
        Refusal {
            message: message.into(),
            ..self
        }
    }

    /// `entry` with this refusal as its outcome.
    pub fn mark(&self, entry: UsageEntry) -> UsageEntry {
        entry.refused(self.code, &self.field, &self.rule, &self.message)
    }

    /// This refusal of one record of a Push batch, as its outcome sends it.
    pub fn for_record(&self) -> pb::Refusal {
        pb::Refusal {
            code: self.code as i32,
            field: self.field.clone(),
            rule: self.rule.clone(),
            message: self.message.clone(),
        }
    }

    /// This refusal of one entry of a child's batch (`seq`, named `record_id`), as the
    /// Sync acknowledgement and RetryQuarantine send it (R-FED-1). The entry is refused,
    /// not the call, so no code goes with it.
    pub fn for_entry(self, seq: u64, record_id: impl Into<String>) -> pb::EntryRefusal {
        pb::EntryRefusal {
            seq,
            record_id: record_id.into(),
            field: self.field,
            rule: self.rule,
            message: self.message,
        }
    }

    pub fn status(&self) -> Status {
        let text = if self.field.is_empty() {
            format!("{} ({})", self.message, self.rule)
        } else {
            format!("{}: {} ({})", self.field, self.message, self.rule)
        };
        Status::new(self.code, text)
    }
}

impl From<Violation> for Refusal {
    fn from(v: Violation) -> Self {
        Refusal::invalid(&v.field, v.rule, v.message)
    }
}

impl From<Denial> for Refusal {
    fn from(d: Denial) -> Self {
        Refusal::denied(d.rule, d.message)
    }
}

/// Writes `entry`, refused with `refusal`, to the usage log (R-SEC-3) and returns the
/// caller's status. A refusal that cannot be logged is still refused (and the node's log
/// says why).
pub async fn refuse(usage: &UsageLog, entry: UsageEntry, refusal: Refusal) -> Status {
    tracing::info!(caller = %entry.caller, rpc = %entry.rpc, rule = %refusal.rule,
        field = %refusal.field, code = ?refusal.code, "refused");
    if let Err(e) = usage.append(vec![refusal.mark(entry)]).await {
        tracing::error!(error = %e, "could not log a refusal");
    }
    refusal.status()
}

/// Storage failures are the node's fault, never the caller's: `Unavailable` when the
/// store has stopped taking writes (a restart recovers), `Internal` otherwise. The
/// detail goes to the node's log, not to the caller.
pub fn store_status(e: &StoreError) -> Status {
    tracing::error!(error = %e, "store failure");
    match e {
        StoreError::Poisoned | StoreError::Lock => Status::unavailable(
            "the node's store is not accepting writes; its operator must restart it",
        ),
        // A call past its bound (sled stuck on a damaged page, or the disk): the caller may
        // retry later; nothing from this call was acknowledged.
        StoreError::TimedOut { .. } | StoreError::Stalled => Status::unavailable(
            "the node's store did not answer in time; nothing from this call was acknowledged",
        ),
        _ => Status::internal("the node's store failed; nothing from this call was acknowledged"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store call past its bound, and the calls refused while it is stuck, are
    /// `Unavailable` to the caller: retry later (R-SEC-1; the store side is
    /// `store::tests::a_store_call_that_blocks_returns_unavailable_within_its_bound_r_sec_1`).
    #[test]
    fn a_store_that_does_not_answer_is_unavailable_r_sec_1() {
        assert_eq!(
            store_status(&StoreError::TimedOut { secs: 1 }).code(),
            Code::Unavailable
        );
        assert_eq!(store_status(&StoreError::Stalled).code(), Code::Unavailable);
    }
}
