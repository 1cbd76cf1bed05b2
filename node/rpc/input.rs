//! The checks of a request's fields that every service shares: each refuses bad input
//! with the field and the rule it breaks, as a `Refusal` the service logs and answers.

use chrono::NaiveDate;
use uuid::Uuid;

use crate::domain::region::RegionCode;
use crate::rpc::refusal::Refusal;

/// Trimmed text that must be given, at most `max` characters, with no hidden characters
/// (`policy::text::hidden`). `what` names it in the refusal.
pub fn required(
    value: &str,
    field: &str,
    rule: &str,
    max: usize,
    what: &str,
) -> Result<String, Refusal> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Refusal::invalid(
            field,
            rule,
            format!("{what} must be given"),
        ));
    }
    if v.chars().count() > max {
        return Err(Refusal::invalid(
            field,
            rule,
            format!("at most {max} characters"),
        ));
    }
    if let Some(m) = crate::policy::text::hidden(v) {
        return Err(Refusal::invalid(field, rule, m));
    }
    Ok(v.to_string())
}

/// A UUID, surrounding blanks ignored; refused as "not a UUID: …".
pub fn uuid(value: &str, field: &str, rule: &str) -> Result<Uuid, Refusal> {
    Uuid::parse_str(value.trim())
        .map_err(|e| Refusal::invalid(field, rule, format!("not a UUID: {e}")))
}

/// A region code, refused with the code's own complaint.
pub fn region(value: &str, field: &str, rule: &str) -> Result<RegionCode, Refusal> {
    RegionCode::parse(value).map_err(|e| Refusal::invalid(field, rule, e.to_string()))
}

/// A date YYYY-MM-DD, surrounding blanks ignored.
pub fn date(value: &str, field: &str, rule: &str) -> Result<NaiveDate, Refusal> {
    NaiveDate::parse_from_str(value.trim(), "%Y-%m-%d").map_err(|_| {
        Refusal::invalid(
            field,
            rule,
            format!("must be a date YYYY-MM-DD, got {value:?}"),
        )
    })
}
