//! Publication periods of adverse information about enterprises (失信信息公示期限) and
//! the retention period of adverse information about natural persons (R-SEC-2): when a
//! record stops being public, when it stops being released at all, and when credit
//! repair may withdraw it. The periods come from `catalog/publication.toml`, a versioned
//! table; the node uses the table in force on the day it answers.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{Months, NaiveDate};
use serde::Deserialize;

use crate::domain::record::{Content, Disclosure, Record, SubjectKind};

const BUILTIN: &str = include_str!("../../catalog/publication.toml");

/// Adverse information about a natural person is released for this many years from the
/// day the act or event ended (R-SEC-2).
pub const RETENTION_YEARS: u32 = 5;

/// A publication table that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("publication table {source_name}: {problem}")]
pub struct PublicationError {
    pub source_name: String,
    pub problem: String,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    table: Vec<Table>,
}

/// One version of the table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub version: String,
    pub in_force_from: NaiveDate,
    #[serde(default)]
    pub source: String,
    #[serde(default, rename = "rule")]
    pub rules: Vec<Rule>,
}

/// The periods of one category.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub category: String,
    /// The date field the period starts from (the decision date); `occurred_on` when the
    /// record lacks it.
    pub start_field: Option<String>,
    pub severity_field: Option<String>,
    pub default_class: String,
    pub classes: Vec<Class>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Class {
    pub value: String,
    pub min_months: u32,
    pub max_months: u32,
}

/// The publication tables, oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Publication {
    tables: Vec<Table>,
}

/// A record's publication period under the table in force.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// The table's version.
    pub version: String,
    pub class: String,
    pub starts: NaiveDate,
    /// The first day credit repair may withdraw it.
    pub repairable_from: NaiveDate,
    /// The last day it is public.
    pub public_until: NaiveDate,
}

impl Publication {
    /// The table built into the node.
    pub fn builtin() -> Publication {
        // Checked by a unit test; an empty table withholds nothing extra.
        parse(BUILTIN, "built-in").unwrap_or(Publication { tables: Vec::new() })
    }

    /// The operator's file, or the built-in table.
    pub fn load(path: Option<&Path>) -> Result<Publication, PublicationError> {
        match path {
            None => parse(BUILTIN, "built-in"),
            Some(p) => {
                let name = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|e| PublicationError {
                    source_name: name.clone(),
                    problem: e.to_string(),
                })?;
                parse(&text, &name)
            }
        }
    }

    /// The table in force on `today`.
    pub fn in_force(&self, today: NaiveDate) -> Option<&Table> {
        self.tables.iter().rev().find(|t| t.in_force_from <= today)
    }

    /// The publication period of `record` under the table in force on `today`: only
    /// adverse, public-class records about legal persons of a listed category have one.
    pub fn period(&self, record: &Record, today: NaiveDate) -> Option<Period> {
        let c = &record.content;
        if c.subject.kind != SubjectKind::Legal || !c.adverse || c.disclosure != Disclosure::Public
        {
            return None;
        }
        let table = self.in_force(today)?;
        let rule = table.rules.iter().find(|r| r.category == c.category)?;
        let starts = rule
            .start_field
            .as_ref()
            .and_then(|f| c.fields.get(f))
            .or(Some(&c.occurred_on))
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())?;
        // A decision date still in the future (held from before dates in fields were
        // checked, R-DATA-4) counts from the day the version was accepted, so a mistyped
        // 9999-12-31 cannot keep a penalty public for ever. (Acceptance is stamped by the
        // system clock, so this applies only to dates the validator now refuses.)
        let starts = match (starts > today, record.reported_at_ms > 0) {
            (true, true) => starts.min(crate::domain::clock::local_date(record.reported_at_ms)),
            _ => starts,
        };
        let value = rule
            .severity_field
            .as_ref()
            .and_then(|f| c.fields.get(f))
            .filter(|v| !v.is_empty())
            .unwrap_or(&rule.default_class);
        let class = rule
            .classes
            .iter()
            .find(|k| &k.value == value)
            .or_else(|| rule.classes.iter().find(|k| k.value == rule.default_class))?;
        let max_end = add_months(starts, class.max_months);
        let public_until = c
            .fields
            .get("publish_until")
            .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
            .map_or(max_end, |d| d.min(max_end));
        Some(Period {
            version: table.version.clone(),
            class: class.value.clone(),
            starts,
            repairable_from: add_months(starts, class.min_months),
            public_until,
        })
    }
}

/// The last day adverse information about a natural person is released: the day the
/// act or event ended (`ended_on`, else `occurred_on`) plus five years (R-SEC-2). From
/// the next day it is not released, and the origin purges it. `None` for records the
/// rule does not cover.
pub fn retained_until(record: &Record) -> Option<NaiveDate> {
    retained_until_content(&record.content)
}

/// `retained_until` for a record's content.
pub fn retained_until_content(c: &Content) -> Option<NaiveDate> {
    if c.subject.kind != SubjectKind::Natural || !c.adverse {
        return None;
    }
    let ended = c.ended_on.as_deref().unwrap_or(&c.occurred_on);
    let ended = NaiveDate::parse_from_str(ended, "%Y-%m-%d").ok()?;
    Some(add_months(ended, RETENTION_YEARS * 12))
}

/// `day` plus `months`, the last day of the month when it has no such day (29 February).
fn add_months(day: NaiveDate, months: u32) -> NaiveDate {
    day.checked_add_months(Months::new(months))
        .unwrap_or(NaiveDate::MAX)
}

fn parse(text: &str, source_name: &str) -> Result<Publication, PublicationError> {
    let fail = |problem: String| PublicationError {
        source_name: source_name.to_string(),
        problem,
    };
    // A shape error names the key path it failed at (`table[0].rule[1].category`).
    let raw: RawFile = toml::Deserializer::parse(text)
        .map_err(|e| fail(e.to_string()))
        .and_then(|document| {
            serde_path_to_error::deserialize(document)
                .map_err(|e| fail(format!("key `{}`: {}", e.path(), e.inner())))
        })?;
    let mut tables = raw.table;
    tables.sort_by_key(|t| t.in_force_from);
    let mut versions = BTreeMap::new();
    for t in &tables {
        if versions.insert(t.version.clone(), ()).is_some() {
            return Err(fail(format!("version {} is given twice", t.version)));
        }
        for r in &t.rules {
            if !r.classes.iter().any(|k| k.value == r.default_class) {
                return Err(fail(format!(
                    "{}: {}: default_class {:?} is not one of its classes",
                    t.version, r.category, r.default_class
                )));
            }
            if let Some(k) = r.classes.iter().find(|k| k.min_months > k.max_months) {
                return Err(fail(format!(
                    "{}: {}: class {:?} has min_months above max_months",
                    t.version, r.category, k.value
                )));
            }
        }
    }
    Ok(Publication { tables })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::record::{Status, Subject};
    use crate::domain::region::RegionCode;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    pub(crate) fn record(kind: SubjectKind, adverse: bool, fields: &[(&str, &str)]) -> Record {
        let content = Content {
            subject: Subject {
                kind,
                id: "91210000MA0TEST001".into(),
                name: "x".into(),
            },
            category: "admin_penalty".into(),
            provider_id: "p".into(),
            provider_ref: "r".into(),
            occurred_on: "2026-05-01".into(),
            ended_on: None,
            period: "2026-05".into(),
            adverse,
            disclosure: Disclosure::Public,
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        Record {
            id: uuid::Uuid::nil(),
            content_hash: content.hash(),
            content,
            origin: RegionCode::parse("211382").unwrap(),
            path: vec![],
            reported_at_ms: 0,
            version: 1,
            status: Status::Active,
            status_reason: String::new(),
        }
    }

    #[test]
    fn the_built_in_table_parses_with_both_orders() {
        let p = Publication::load(None).unwrap();
        assert_eq!(
            p.in_force(d("2026-03-31")).unwrap().version,
            "ndrc-order-58-2023"
        );
        assert_eq!(
            p.in_force(d("2026-04-01")).unwrap().version,
            "ndrc-order-36-2025"
        );
        assert!(p.in_force(d("2023-04-30")).is_none());
    }

    #[test]
    fn periods_follow_the_class_and_the_table_in_force() {
        let p = Publication::builtin();
        let today = d("2026-11-28");
        let serious = record(
            SubjectKind::Legal,
            true,
            &[("decided_on", "2026-06-10"), ("severity", "严重")],
        );
        let per = p.period(&serious, today).unwrap();
        assert_eq!(per.version, "ndrc-order-36-2025");
        assert_eq!(per.public_until, d("2029-06-10"));
        assert_eq!(per.repairable_from, d("2027-06-10"));
        // No class: 一般, 3 months to a year.
        let general = record(SubjectKind::Legal, true, &[("decided_on", "2026-06-10")]);
        let per = p.period(&general, today).unwrap();
        assert_eq!(
            (per.repairable_from, per.public_until),
            (d("2026-09-10"), d("2027-06-10"))
        );
        // The provider's earlier publish_until wins; a later one does not.
        let short = record(
            SubjectKind::Legal,
            true,
            &[
                ("decided_on", "2026-06-10"),
                ("publish_until", "2026-12-31"),
            ],
        );
        assert_eq!(
            p.period(&short, today).unwrap().public_until,
            d("2026-12-31")
        );
        let long = record(
            SubjectKind::Legal,
            true,
            &[
                ("decided_on", "2026-06-10"),
                ("publish_until", "2040-01-01"),
            ],
        );
        assert_eq!(
            p.period(&long, today).unwrap().public_until,
            d("2027-06-10")
        );
        // A decision date after the record was accepted (held from before dates in
        // fields were checked) counts from the day of acceptance.
        let mut far = record(SubjectKind::Legal, true, &[("decided_on", "9999-12-31")]);
        far.reported_at_ms = chrono::NaiveDate::from_ymd_opt(2026, 6, 10)
            .unwrap()
            .and_hms_opt(4, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        let per = p.period(&far, today).unwrap();
        assert_eq!(
            (per.starts, per.public_until),
            (d("2026-06-10"), d("2027-06-10"))
        );
        // Under the earlier order, every class ran to three years.
        let per = p.period(&general, d("2026-03-01")).unwrap();
        assert_eq!(per.public_until, d("2029-06-10"));
        // Not adverse, or about a person: no publication period.
        assert!(
            p.period(&record(SubjectKind::Legal, false, &[]), today)
                .is_none()
        );
        assert!(
            p.period(&record(SubjectKind::Natural, true, &[]), today)
                .is_none()
        );
    }

    #[test]
    fn retention_runs_five_years_from_the_end_of_the_act() {
        let mut r = record(SubjectKind::Natural, true, &[]);
        assert_eq!(retained_until(&r), Some(d("2031-05-01")));
        r.content.ended_on = Some("2024-02-29".into());
        assert_eq!(retained_until(&r), Some(d("2029-02-28")));
        r.content.adverse = false;
        assert_eq!(retained_until(&r), None);
    }

    #[test]
    fn bad_tables_are_refused() {
        let bad = "[[table]]\nversion = \"x\"\nin_force_from = \"2026-01-01\"\n[[table.rule]]\n\
                   category = \"a\"\ndefault_class = \"z\"\nclasses = [{ value = \"y\", \
                   min_months = 1, max_months = 2 }]";
        let err = parse(bad, "t").unwrap_err();
        assert!(err.problem.contains("default_class"), "{err}");
        let wrong = bad
            .replace("default_class = \"z\"", "default_class = \"y\"")
            .replace("min_months = 1", "min_months = \"one\"");
        let err = parse(&wrong, "t").unwrap_err();
        assert!(
            err.problem
                .contains("key `table[0].rule[0].classes[0].min_months`"),
            "{err}"
        );
    }
}
