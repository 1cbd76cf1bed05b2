//! The census figures (R-FED-2..4) as nodes keep and report them, and the pure rules
//! over them: the collection ratio and its thresholds, the monthly reporting deadline
//! and a provider's standing against it (R-DATA-5, -6).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::domain::record::{Record, Status, SubjectKind};

/// The thresholds the collection ratio is judged by (R-FED-3).
pub const THRESHOLDS: [f64; 3] = [0.9, 0.8, 0.6];

/// A platform's figures as it reports them up, with its children's as it knows them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlatformReport {
    pub region: String,
    pub name: String,
    pub total: u64,
    pub natural: u64,
    pub legal: u64,
    pub at_ms: i64,
    /// Each child's report and how many of its records this platform holds.
    #[serde(deserialize_with = "bounded_children")]
    pub children: Vec<(PlatformReport, u64)>,
}

/// Deepest nesting of children a stored report may have. Reports are kept at most three
/// levels deep (`from_wire(.., 2)`), so more is damage; read without a bound, a deeply
/// nested report would recurse until the stack overflows and aborts the node (found by
/// the `decode_stored` fuzz target, R-SEC-1).
pub const MAX_REPORT_DEPTH: usize = 8;

thread_local! {
    /// How many `children` lists the report being decoded on this thread is inside.
    static REPORT_DEPTH: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One level of `children` being decoded; leaving it (also by an error) steps back out.
struct ReportLevel;

impl ReportLevel {
    fn enter() -> Option<ReportLevel> {
        REPORT_DEPTH.with(|d| {
            let depth = d.get();
            (depth < MAX_REPORT_DEPTH).then(|| {
                d.set(depth + 1);
                ReportLevel
            })
        })
    }
}

impl Drop for ReportLevel {
    fn drop(&mut self) {
        REPORT_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

fn bounded_children<'de, D>(d: D) -> Result<Vec<(PlatformReport, u64)>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let _level = ReportLevel::enter().ok_or_else(|| {
        <D::Error as serde::de::Error>::custom(format!(
            "census report nested more than {MAX_REPORT_DEPTH} levels deep"
        ))
    })?;
    <Vec<(PlatformReport, u64)> as Deserialize>::deserialize(d)
}

/// What a node holds: every record not deleted, counted once however it arrived.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Figures {
    pub total: u64,
    /// About natural persons (自然人).
    pub natural: u64,
    /// About legal persons and other organisations (法人和其他组织).
    pub legal: u64,
    pub by_category: BTreeMap<String, u64>,
    /// By `origin/provider`: a provider id is unique only at its own node.
    pub by_provider: BTreeMap<String, u64>,
    /// Records that arrived through each child, by the child's region code.
    pub via_child: BTreeMap<String, u64>,
}

/// One provider's submissions for one reporting period, at the node it reports to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Monthly {
    /// Records whose current version is for the period.
    pub records: u64,
    /// When the first and the last version for the period were accepted (Unix ms).
    pub first_ms: i64,
    pub last_ms: i64,
}

pub(crate) fn counted(r: &Record) -> bool {
    r.status != Status::Deleted
}

fn bump(map: &mut BTreeMap<String, u64>, key: String, up: bool) {
    let n = map.entry(key.clone()).or_insert(0);
    *n = if up { *n + 1 } else { n.saturating_sub(1) };
    if *n == 0 {
        map.remove(&key);
    }
}

impl Figures {
    /// Counts `r` in (`up`) or out.
    pub(crate) fn count(&mut self, r: &Record, up: bool) {
        if !counted(r) {
            return;
        }
        let step = |n: &mut u64| *n = if up { *n + 1 } else { n.saturating_sub(1) };
        step(&mut self.total);
        match r.content.subject.kind {
            SubjectKind::Natural => step(&mut self.natural),
            SubjectKind::Legal => step(&mut self.legal),
        }
        bump(&mut self.by_category, r.content.category.clone(), up);
        bump(
            &mut self.by_provider,
            format!("{}/{}", r.origin, r.content.provider_id),
            up,
        );
        if r.path.len() >= 2 {
            bump(
                &mut self.via_child,
                r.path[r.path.len() - 2].to_string(),
                up,
            );
        }
    }
}

/// Records held upstream over the child's stock; `None` when the child reported none.
pub fn ratio(held: u64, stock: u64) -> Option<f64> {
    (stock > 0).then(|| held as f64 / stock as f64)
}

/// The threshold a ratio reaches: `>=90%`, `>=80%`, `>=60%` or `<60%`.
pub fn flag(ratio: Option<f64>) -> &'static str {
    match ratio {
        None => "no stock reported",
        Some(r) if r >= THRESHOLDS[0] => ">=90%",
        Some(r) if r >= THRESHOLDS[1] => ">=80%",
        Some(r) if r >= THRESHOLDS[2] => ">=60%",
        Some(_) => "<60%",
    }
}

/// The last day to report for `period` (YYYY-MM): the 23rd of the following month
/// (R-DATA-5).
pub fn deadline(period: &str) -> Option<NaiveDate> {
    let first = NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    NaiveDate::from_ymd_opt(next.year(), next.month(), 23)
}

/// How a provider stands for a period: `on_time` (first submission by the deadline),
/// `late`, `missing` (nothing, deadline passed) or `due` (nothing yet, not passed).
pub fn duty_state(m: &Monthly, deadline: NaiveDate, today: NaiveDate) -> &'static str {
    if m.first_ms == 0 {
        return if today > deadline { "missing" } else { "due" };
    }
    let first = crate::domain::clock::local_date(m.first_ms);
    if first <= deadline { "on_time" } else { "late" }
}

/// Ten-thousands of rows, as the NDRC table reports them (`12.3456`).
pub fn in_10k(n: u64) -> String {
    format!("{:.4}", n as f64 / 10_000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_ratios_and_states() {
        assert_eq!(deadline("2026-10"), NaiveDate::from_ymd_opt(2026, 11, 23));
        assert_eq!(deadline("2026-12"), NaiveDate::from_ymd_opt(2027, 1, 23));
        assert_eq!(deadline("2026-13"), None);
        assert_eq!(flag(ratio(95, 100)), ">=90%");
        assert_eq!(flag(ratio(85, 100)), ">=80%");
        assert_eq!(flag(ratio(59, 100)), "<60%");
        assert_eq!(flag(ratio(0, 0)), "no stock reported");
        let d = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let ms = |y, m, day| {
            NaiveDate::from_ymd_opt(y, m, day)
                .unwrap()
                .and_hms_opt(12, 0, 0)
                .unwrap()
                .and_local_timezone(crate::domain::clock::CHINA)
                .unwrap()
                .timestamp_millis()
        };
        let on = Monthly {
            records: 3,
            first_ms: ms(2026, 11, 23),
            last_ms: ms(2026, 11, 30),
        };
        assert_eq!(duty_state(&on, d, d), "on_time");
        let late = Monthly {
            first_ms: ms(2026, 11, 24),
            ..on
        };
        assert_eq!(duty_state(&late, d, d), "late");
        assert_eq!(duty_state(&Monthly::default(), d, d), "due");
        assert_eq!(
            duty_state(&Monthly::default(), d, d + chrono::Days::new(1)),
            "missing"
        );
        assert_eq!(in_10k(123_456), "12.3456");
    }
}
