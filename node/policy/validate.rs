//! Checks one provider draft against the rules and the catalog, and normalises it
//! (R-DATA-1..5).
//!
//! The first failing rule wins, in a fixed order, so a provider sees one clear reason per
//! record. A prohibited field for a natural person (R-DATA-3) is reported before any
//! other field rule: such a record is refused citing the law, never as a mere typo.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{Datelike, NaiveDate};

use super::Violation;
use super::catalog::{AdverseRule, Catalog, Category, DateLimit, FieldSpec, FieldType};
use super::identifier::{check_resident_id, check_uscc, normalise_id};
use super::prohibited::{PROHIBITED_ARTICLE, prohibited_term};
use crate::domain::record::{Content, Draft, Subject, SubjectKind};

/// Most fields one record may carry.
pub const MAX_FIELDS: usize = 64;
/// Longest subject name, in characters.
pub const MAX_SUBJECT_NAME: usize = 200;
/// Longest provider reference, in characters.
pub const MAX_PROVIDER_REF: usize = 128;
/// Longest text value of a field without its own `max_len`, in characters.
pub const MAX_TEXT: usize = 2000;

/// The earliest date a record or a dated field accepts unless the catalog says otherwise
/// for a field: the founding of the People's Republic, before which no platform's data
/// begins. `0000-01-01` is a placeholder, not a date (R-DATA-4).
pub const EARLIEST_DATE: NaiveDate = match NaiveDate::from_ymd_opt(1949, 10, 1) {
    Some(d) => d,
    // Checked when compiling: a real date.
    None => panic!("1949-10-01"),
};

/// Longest piece of caller input quoted back in a message.
const MAX_QUOTED: usize = 64;

/// Checks provider drafts against a catalog.
///
/// Codes on the legacy list (USCCs issued in pilot regions before GB 32100, which fail
/// the mod-31 check yet are real) pass without the identifier check; the operator keeps
/// that list.
#[derive(Clone, Debug)]
pub struct Validator {
    catalog: Arc<Catalog>,
    legacy: HashSet<String>,
}

fn violation(
    field: impl Into<String>,
    rule: &'static str,
    message: impl Into<String>,
) -> Violation {
    Violation {
        field: field.into(),
        rule,
        message: message.into(),
    }
}

/// Caller input for a message: at most `MAX_QUOTED` characters, so a huge value is
/// never echoed back whole (the node's refusals and the CLI's file errors alike).
pub(crate) fn quoted(s: &str) -> String {
    if s.chars().count() <= MAX_QUOTED {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(MAX_QUOTED).collect();
        out.push('…');
        out
    }
}

fn field_path(name: &str) -> String {
    format!("fields.{}", quoted(name))
}

impl Validator {
    pub fn new(catalog: Arc<Catalog>, legacy_codes: impl IntoIterator<Item = String>) -> Self {
        let legacy = legacy_codes.into_iter().map(|c| normalise_id(&c)).collect();
        Validator { catalog, legacy }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Checks one provider draft and returns its normalised content: identifiers upper
    /// case, text trimmed, blank optional fields dropped, adverse resolved from the
    /// catalog, disclosure from the catalog.
    ///
    /// Rules, in order: subject kind (R-DATA-1); category known and open to the subject
    /// kind (R-DATA-2); subject identifier and name (R-DATA-1); provider reference and
    /// dates (R-DATA-4); reporting period (R-DATA-5); prohibited fields for natural
    /// persons (R-DATA-3); fields known, applicable, required and well typed (R-DATA-2),
    /// dated fields within their limits and amounts not negative (R-DATA-4), and the
    /// adverse flag (R-DATA-2). Every date, the record's own and those in its fields,
    /// lies between 1949-10-01 and today unless the catalog says otherwise for a field.
    pub fn check(
        &self,
        draft: &Draft,
        provider_id: &str,
        today: NaiveDate,
    ) -> Result<Content, Violation> {
        self.check_draft(draft, provider_id, today, false)
    }

    /// Checks a purged record (R-SEC-2): everything `check` checks except the fields,
    /// which must be gone.
    pub fn check_purged(
        &self,
        draft: &Draft,
        provider_id: &str,
        today: NaiveDate,
    ) -> Result<Content, Violation> {
        if let Some(name) = draft.fields.keys().next() {
            return Err(violation(
                field_path(name),
                "R-SEC-2",
                "a purged record keeps no fields",
            ));
        }
        self.check_draft(draft, provider_id, today, true)
    }

    fn check_draft(
        &self,
        draft: &Draft,
        provider_id: &str,
        today: NaiveDate,
        purged: bool,
    ) -> Result<Content, Violation> {
        let kind = draft.subject_kind.ok_or_else(|| {
            violation(
                "subject_kind",
                "R-DATA-1",
                "subject kind must be stated (legal or natural)",
            )
        })?;
        let code = draft.category.trim();
        let category = self.catalog.get(code).ok_or_else(|| {
            violation(
                "category",
                "R-DATA-2",
                format!("unknown category {:?}", quoted(code)),
            )
        })?;
        if !category.allows(kind) {
            return Err(violation(
                "category",
                "R-DATA-2",
                format!("category {code} does not take records about {kind} persons"),
            ));
        }
        let id = self
            .check_id(kind, &draft.subject_id, today)
            .map_err(|m| violation("subject_id", "R-DATA-1", m))?;
        let name = check_text(&draft.subject_name, MAX_SUBJECT_NAME, false)
            .map_err(|m| violation("subject_name", "R-DATA-1", format!("subject name {m}")))?;
        let provider_ref =
            check_text(&draft.provider_ref, MAX_PROVIDER_REF, false).map_err(|m| {
                violation(
                    "provider_ref",
                    "R-DATA-4",
                    format!("the provider's reference that names the record {m}"),
                )
            })?;
        let occurred = check_past_date(&draft.occurred_on, today)
            .map_err(|m| violation("occurred_on", "R-DATA-4", m))?;
        let ended_on = match draft.ended_on.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(s) => {
                let ended =
                    check_past_date(s, today).map_err(|m| violation("ended_on", "R-DATA-4", m))?;
                if ended < occurred {
                    return Err(violation(
                        "ended_on",
                        "R-DATA-4",
                        "the end date is before occurred_on",
                    ));
                }
                Some(s.to_string())
            }
        };
        let period =
            check_period(&draft.period, today).map_err(|m| violation("period", "R-DATA-5", m))?;
        let fields = if purged {
            BTreeMap::new()
        } else {
            self.check_fields(category, kind, &draft.fields, today)?
        };
        let adverse = check_adverse(category, draft.adverse)?;
        Ok(Content {
            subject: Subject {
                kind,
                id,
                name: name.to_string(),
            },
            category: category.code.clone(),
            provider_id: provider_id.to_string(),
            provider_ref: provider_ref.to_string(),
            occurred_on: draft.occurred_on.trim().to_string(),
            ended_on,
            period: period.to_string(),
            adverse,
            disclosure: category.disclosure,
            fields,
        })
    }

    /// The normalised identifier, or what is wrong with it (R-DATA-1).
    fn check_id(&self, kind: SubjectKind, raw: &str, today: NaiveDate) -> Result<String, String> {
        if let Some(m) = super::text::hidden(raw) {
            return Err(m);
        }
        let id = normalise_id(raw);
        if self.legacy.contains(&id) {
            return Ok(id);
        }
        let result = match kind {
            SubjectKind::Legal => {
                check_uscc(&id).map_err(|e| format!("not a valid unified social credit code: {e}"))
            }
            SubjectKind::Natural => check_resident_id(&id, today)
                .map_err(|e| format!("not a valid resident identity number: {e}")),
        };
        result.map(|()| id)
    }

    fn check_fields(
        &self,
        category: &Category,
        kind: SubjectKind,
        fields: &BTreeMap<String, String>,
        today: NaiveDate,
    ) -> Result<BTreeMap<String, String>, Violation> {
        if kind == SubjectKind::Natural {
            for name in fields.keys() {
                if let Some(term) = prohibited_term(name) {
                    return Err(violation(
                        field_path(name),
                        "R-DATA-3",
                        format!(
                            "{:?} names prohibited personal data ({term}): {PROHIBITED_ARTICLE}",
                            quoted(name)
                        ),
                    ));
                }
            }
        }
        if fields.len() > MAX_FIELDS {
            return Err(violation(
                "fields",
                "R-DATA-2",
                format!(
                    "a record carries at most {MAX_FIELDS} fields, this one has {}",
                    fields.len()
                ),
            ));
        }
        let mut specs = Vec::with_capacity(fields.len());
        for name in fields.keys() {
            let spec = category.field(name).ok_or_else(|| {
                violation(
                    field_path(name),
                    "R-DATA-2",
                    format!("not in the catalog's field list for {}", category.code),
                )
            })?;
            if !spec.applies_to(kind) {
                return Err(violation(
                    field_path(name),
                    "R-DATA-2",
                    format!(
                        "only records about legal persons may carry this field in {}",
                        category.code
                    ),
                ));
            }
            specs.push(spec);
        }
        for spec in category
            .fields
            .iter()
            .filter(|f| f.required && f.applies_to(kind))
        {
            let present = fields.get(&spec.name).is_some_and(|v| !v.trim().is_empty());
            if !present {
                return Err(violation(
                    field_path(&spec.name),
                    "R-DATA-2",
                    format!("required field of {} is missing or blank", category.code),
                ));
            }
        }
        let mut out = BTreeMap::new();
        for (spec, (name, value)) in specs.into_iter().zip(fields) {
            let value = value.trim();
            // A blank optional field is what a spreadsheet export gives for "none".
            if value.is_empty() {
                continue;
            }
            let value = self.check_value(spec, value, today).map_err(|m| {
                violation(
                    field_path(name),
                    "R-DATA-2",
                    format!("not a valid {} value: {m}", spec.kind),
                )
            })?;
            check_limits(spec, &value, today)
                .map_err(|m| violation(field_path(name), "R-DATA-4", m))?;
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    /// The normalised value of a trimmed, non-blank field, or what is wrong with it.
    fn check_value(
        &self,
        spec: &FieldSpec,
        value: &str,
        today: NaiveDate,
    ) -> Result<String, String> {
        match spec.kind {
            FieldType::Text => {
                check_text(value, spec.max_len.unwrap_or(MAX_TEXT), true)?;
            }
            FieldType::Date => {
                parse_date(value).ok_or("expected a calendar date YYYY-MM-DD")?;
            }
            FieldType::YearMonth => {
                parse_year_month(value).ok_or("expected YYYY-MM with month 01-12")?;
            }
            FieldType::Integer => {
                value
                    .parse::<i64>()
                    .map_err(|_| "expected a whole number (64-bit)")?;
            }
            FieldType::Decimal => {
                if !is_decimal(value) {
                    return Err("expected digits with an optional sign and up to 6 decimals".into());
                }
            }
            FieldType::Bool => {
                if value != "true" && value != "false" {
                    return Err("expected true or false".into());
                }
            }
            FieldType::Uscc => return self.check_id(SubjectKind::Legal, value, today),
            FieldType::ResidentId => return self.check_id(SubjectKind::Natural, value, today),
            FieldType::Enum => {
                if !spec.values.iter().any(|v| v == value) {
                    return Err(format!("expected one of {}", spec.values.join(", ")));
                }
            }
        }
        Ok(value.to_string())
    }
}

/// The trimmed text, or what is wrong with it: blank, longer than `max` characters, or
/// holding control characters (newline and tab allowed only in `multiline` text).
fn check_text(raw: &str, max: usize, multiline: bool) -> Result<&str, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be blank".into());
    }
    let n = s.chars().count();
    if n > max {
        return Err(format!("is {n} characters, at most {max} allowed"));
    }
    if let Some(m) = super::text::hidden(s) {
        return Err(m);
    }
    let allowed = |c: char| multiline && (c == '\n' || c == '\t');
    if let Some(c) = s.chars().find(|&c| c.is_control() && !allowed(c)) {
        return Err(format!("contains the control character {c:?}"));
    }
    Ok(s)
}

/// Whether `s` is `d+` with digits at `digits` positions and `-` elsewhere.
fn has_shape(s: &str, dashes: &[usize]) -> bool {
    s.bytes().enumerate().all(|(i, b)| {
        if dashes.contains(&i) {
            b == b'-'
        } else {
            b.is_ascii_digit()
        }
    })
}

/// `YYYY-MM-DD`, exactly, a real calendar date.
pub(crate) fn parse_date(s: &str) -> Option<NaiveDate> {
    if s.len() != 10 || !has_shape(s, &[4, 7]) {
        return None;
    }
    let year = s[..4].parse().ok()?;
    let month = s[5..7].parse().ok()?;
    let day = s[8..].parse().ok()?;
    NaiveDate::from_ymd_opt(year, month, day)
}

/// `YYYY-MM`, exactly, month 01-12.
pub(crate) fn parse_year_month(s: &str) -> Option<(i32, u32)> {
    if s.len() != 7 || !has_shape(s, &[4]) {
        return None;
    }
    let year = s[..4].parse().ok()?;
    let month = s[5..].parse().ok()?;
    (1..=12).contains(&month).then_some((year, month))
}

/// Optional sign, at least one and at most 18 digits, then optionally `.` and 1-6
/// digits: the templates' decimal(18,6) amounts.
fn is_decimal(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |p: &str, max: usize| {
        !p.is_empty() && p.len() <= max && p.bytes().all(|b| b.is_ascii_digit())
    };
    digits(int, 18) && frac.is_none_or(|f| digits(f, 6))
}

fn check_past_date(raw: &str, today: NaiveDate) -> Result<NaiveDate, String> {
    let date = parse_date(raw.trim()).ok_or("must be a calendar date YYYY-MM-DD")?;
    if date > today {
        return Err(format!("{date} is after today ({today})"));
    }
    if date < EARLIEST_DATE {
        return Err(format!("{date} is before {EARLIEST_DATE}"));
    }
    Ok(date)
}

/// The trimmed reporting period, or what is wrong with it (R-DATA-5).
fn check_period(raw: &str, today: NaiveDate) -> Result<&str, String> {
    let s = raw.trim();
    let (year, month) = parse_year_month(s).ok_or("must be a month YYYY-MM with month 01-12")?;
    if (year, month) > (today.year(), today.month()) {
        return Err(format!("{s} is after the current month"));
    }
    if (year, month) < (EARLIEST_DATE.year(), EARLIEST_DATE.month()) {
        return Err(format!("{s} is before {}", EARLIEST_DATE.format("%Y-%m")));
    }
    Ok(s)
}

/// What is wrong with a well-typed field value beyond its type (R-DATA-4), as the
/// catalog states for the field: a date or year-month not after today (unless
/// `not_after = "any"`) and not before its `not_before` (1949-10-01 unless stated); an
/// amount not negative (unless `allow_negative`) and of at most 14 digits before the point.
/// The most digits before the point an integer or decimal field holds (R-DATA-4).
const MAX_AMOUNT_DIGITS: usize = 14;

fn check_limits(spec: &FieldSpec, value: &str, today: NaiveDate) -> Result<(), String> {
    let floor = spec
        .not_before
        .as_deref()
        .and_then(parse_date)
        .unwrap_or(EARLIEST_DATE);
    let future_ok = spec.not_after == Some(DateLimit::Any);
    match spec.kind {
        FieldType::Date => {
            let Some(date) = parse_date(value) else {
                return Ok(());
            };
            if !future_ok && date > today {
                return Err(format!("{date} is after today ({today})"));
            }
            if date < floor {
                return Err(format!(
                    "{date} is before {floor}, the earliest date this field accepts"
                ));
            }
        }
        FieldType::YearMonth => {
            let Some(month) = parse_year_month(value) else {
                return Ok(());
            };
            if !future_ok && month > (today.year(), today.month()) {
                return Err(format!("{value} is after the current month"));
            }
            if month < (floor.year(), floor.month()) {
                return Err(format!(
                    "{value} is before {}, the earliest month this field accepts",
                    floor.format("%Y-%m")
                ));
            }
        }
        FieldType::Integer | FieldType::Decimal => {
            let negative =
                value.starts_with('-') && value.bytes().any(|b| (b'1'..=b'9').contains(&b));
            if negative && !spec.allow_negative {
                return Err(format!(
                    "{} is negative; this amount cannot be",
                    quoted(value)
                ));
            }
            // No amount, count or area of a credit record runs to 10^14: a number that
            // long is an identifier in the wrong column (a shifted CSV), and would be
            // released as a number. The value is not quoted: it may be an id.
            let whole = value.split('.').next().unwrap_or_default();
            let digits = whole
                .trim_start_matches(['-', '+'])
                .trim_start_matches('0')
                .len();
            if digits > MAX_AMOUNT_DIGITS {
                return Err(format!(
                    "has {digits} digits before the point; an amount, count or area has at \
                     most {MAX_AMOUNT_DIGITS} (is an identifier in the wrong column?)"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_adverse(category: &Category, stated: Option<bool>) -> Result<bool, Violation> {
    let wrong = |message: String| violation("adverse", "R-DATA-2", message);
    match (category.adverse, stated) {
        (AdverseRule::Yes, Some(false)) => Err(wrong(format!(
            "every {} record is adverse; this one says it is not",
            category.code
        ))),
        (AdverseRule::No, Some(true)) => Err(wrong(format!(
            "no {} record is adverse; this one says it is",
            category.code
        ))),
        (AdverseRule::PerRecord, None) => {
            Err(wrong("adverse must be stated for this category".into()))
        }
        (AdverseRule::Yes, _) => Ok(true),
        (AdverseRule::No, _) => Ok(false),
        (AdverseRule::PerRecord, Some(adverse)) => Ok(adverse),
    }
}

#[cfg(test)]
mod tests;
