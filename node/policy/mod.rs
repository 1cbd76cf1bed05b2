//! The rules a node applies to what it is given: the catalog of categories (R-DATA-2),
//! identifier checks (R-DATA-1), prohibited personal data (R-DATA-3), record validation
//! (R-DATA-1..5), masking identifiers in released text (R-REL-2), the role-to-RPC table,
//! and generated drafts for tests and benchmarks.
//!
//! Everything here is pure: no I/O except reading the operator's catalog file, no clock
//! (callers pass `today`), so the rules are tested beside the code.

pub mod authz;
pub mod catalog;
pub mod identifier;
pub mod mask;
pub mod prohibited;
pub mod publication;
pub mod release;
pub mod sample;
pub mod text;
pub mod validate;

pub use catalog::{
    AdverseRule, Catalog, CatalogError, Category, DateLimit, FieldSpec, FieldType, PublicRule,
};
pub use validate::Validator;

/// Why one record was refused: the field, the rule id from REQUIREMENTS.md and a message.
///
/// `field` is the field's name in the record file (`subject_id`, `fields.fine_amount`),
/// so a provider can find it; `rule` is the requirement the record breaks (`R-DATA-3`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message} ({rule})")]
pub struct Violation {
    pub field: String,
    pub rule: &'static str,
    pub message: String,
}
