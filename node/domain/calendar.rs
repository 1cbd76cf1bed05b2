//! The working-day calendar for objection deadlines (R-OBJ-2): weekends off, public
//! holidays off, and the weekend days declared working days (调休上班) on. The State
//! Council's schedule ships as data (`calendar/cn-holidays.toml`); an operator extends
//! it with the next year's schedule without a new build.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::{Datelike, Duration, NaiveDate, Weekday};
use serde::Deserialize;

const BUILTIN: &str = include_str!("../../calendar/cn-holidays.toml");

/// A calendar file that cannot be used: where, and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("calendar {source_name}: {problem}")]
pub struct CalendarError {
    pub source_name: String,
    pub problem: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    #[serde(default)]
    year: Vec<RawYear>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawYear {
    year: i32,
    #[serde(default)]
    source: String,
    #[serde(default)]
    off: Vec<String>,
    #[serde(default)]
    work: Vec<String>,
}

/// Which days are working days.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Calendar {
    off: BTreeSet<NaiveDate>,
    work: BTreeSet<NaiveDate>,
    /// The years the calendar has a schedule for, with the notice each comes from.
    years: BTreeMap<i32, String>,
}

impl Calendar {
    /// The schedule built into the node.
    pub fn builtin() -> Calendar {
        // The built-in file is checked by a unit test; should it ever fail to parse,
        // weekends alone are still a calendar.
        parse(BUILTIN, "built-in").unwrap_or_default()
    }

    /// The built-in schedule, with the years of the operator's file (when given) added
    /// or, for a year both have, taken from the file.
    pub fn load(path: Option<&Path>) -> Result<Calendar, CalendarError> {
        let mut cal = parse(BUILTIN, "built-in")?;
        if let Some(p) = path {
            let name = p.display().to_string();
            let text = std::fs::read_to_string(p).map_err(|e| CalendarError {
                source_name: name.clone(),
                problem: e.to_string(),
            })?;
            cal.merge(parse(&text, &name)?);
        }
        Ok(cal)
    }

    /// Takes every year `other` has from it.
    fn merge(&mut self, other: Calendar) {
        for year in other.years.keys() {
            self.off.retain(|d| d.year() != *year);
            self.work.retain(|d| d.year() != *year);
        }
        self.off.extend(other.off);
        self.work.extend(other.work);
        self.years.extend(other.years);
    }

    pub fn from_toml_str(text: &str) -> Result<Calendar, CalendarError> {
        parse(text, "calendar text")
    }

    /// Whether `day` is a working day.
    pub fn is_working_day(&self, day: NaiveDate) -> bool {
        if self.work.contains(&day) {
            return true;
        }
        if self.off.contains(&day) {
            return false;
        }
        !matches!(day.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The last day of a period of `n` working days that starts the day after `from`
    /// (the day something was received does not count). With `n` = 0, `from` itself.
    pub fn add_working_days(&self, from: NaiveDate, n: u32) -> NaiveDate {
        let mut day = from;
        let mut left = n;
        while left > 0 {
            day += Duration::days(1);
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        day
    }

    /// Whether the calendar has the holiday schedule of `year` (without it, only
    /// weekends are off that year).
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// The years with a schedule, and the notice each comes from.
    pub fn years(&self) -> impl Iterator<Item = (i32, &str)> {
        self.years.iter().map(|(y, s)| (*y, s.as_str()))
    }
}

fn parse(text: &str, source_name: &str) -> Result<Calendar, CalendarError> {
    let fail = |problem: String| CalendarError {
        source_name: source_name.to_string(),
        problem,
    };
    // A shape error names the key path it failed at (`year[1].off[0]`).
    let raw: RawCalendar = toml::Deserializer::parse(text)
        .map_err(|e| fail(e.to_string()))
        .and_then(|document| {
            serde_path_to_error::deserialize(document)
                .map_err(|e| fail(format!("key `{}`: {}", e.path(), e.inner())))
        })?;
    let mut cal = Calendar::default();
    for y in raw.year {
        if cal.years.insert(y.year, y.source.clone()).is_some() {
            return Err(fail(format!("year {} is given twice", y.year)));
        }
        for (list, name) in [(&y.off, "off"), (&y.work, "work")] {
            for item in list {
                let (first, last) = parse_range(item).ok_or_else(|| {
                    fail(format!(
                        "year {}: {name} entry {item:?} is not YYYY-MM-DD or \
                         YYYY-MM-DD..YYYY-MM-DD",
                        y.year
                    ))
                })?;
                if first.year() != y.year || last.year() != y.year || last < first {
                    return Err(fail(format!(
                        "year {}: {name} entry {item:?} must lie within {} and run forwards",
                        y.year, y.year
                    )));
                }
                let mut day = first;
                while day <= last {
                    let added = if name == "off" {
                        cal.off.insert(day)
                    } else {
                        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
                            return Err(fail(format!(
                                "year {}: {day} is listed as a make-up working day but is a {}; \
                                 only weekend days are declared working days",
                                y.year,
                                day.weekday()
                            )));
                        }
                        cal.work.insert(day)
                    };
                    if !added {
                        return Err(fail(format!("year {}: {day} is listed twice", y.year)));
                    }
                    day += Duration::days(1);
                }
            }
        }
    }
    if let Some(day) = cal.off.intersection(&cal.work).next() {
        return Err(fail(format!(
            "{day} is listed both as off and as a working day"
        )));
    }
    Ok(cal)
}

fn parse_range(item: &str) -> Option<(NaiveDate, NaiveDate)> {
    let day = |s: &str| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
    match item.split_once("..") {
        Some((a, b)) => Some((day(a)?, day(b)?)),
        None => day(item).map(|d| (d, d)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_built_in_schedule_parses_and_covers_2025_and_2026() {
        let cal = Calendar::load(None).unwrap();
        assert!(cal.covers(2025) && cal.covers(2026) && !cal.covers(2027));
        // A holiday weekday, a make-up Sunday, an ordinary Saturday.
        assert!(!cal.is_working_day(d("2026-10-05")));
        assert!(cal.is_working_day(d("2026-09-20")));
        assert!(!cal.is_working_day(d("2026-09-19")));
    }

    /// The worked example of research/holidays.md: received Friday 2026-09-18, checked
    /// within 3 working days: Sat 19 off, Sun 20 a make-up working day (day 1), Mon 21
    /// (day 2), Tue 22 (day 3).
    #[test]
    fn three_working_days_from_friday_18_september_2026_end_on_tuesday_22() {
        let cal = Calendar::builtin();
        assert_eq!(cal.add_working_days(d("2026-09-18"), 3), d("2026-09-22"));
    }

    /// Across the National Day week and its make-up Saturday: received Wed 2026-09-30;
    /// Oct 1-7 are off, Sat Oct 10 is a working day.
    #[test]
    fn deadlines_skip_the_holiday_week_and_count_the_make_up_saturday() {
        let cal = Calendar::builtin();
        // Oct 8 (1), Oct 9 (2), Oct 10 Saturday make-up (3).
        assert_eq!(cal.add_working_days(d("2026-09-30"), 3), d("2026-10-10"));
        assert_eq!(cal.add_working_days(d("2026-09-30"), 2), d("2026-10-09"));
        // Ten: Oct 8, 9, 10, 12, 13, 14, 15, 16, 19, 20.
        assert_eq!(cal.add_working_days(d("2026-09-30"), 10), d("2026-10-20"));
        // Mid-Autumn (Fri 25 - Sun 27) then the Sunday make-up day is already past.
        assert_eq!(cal.add_working_days(d("2026-09-24"), 1), d("2026-09-28"));
        assert_eq!(cal.add_working_days(d("2026-09-24"), 0), d("2026-09-24"));
    }

    #[test]
    fn a_year_without_a_schedule_counts_weekends_only() {
        let cal = Calendar::builtin();
        // Fri 2027-01-01 is a working day here: no 2027 schedule shipped.
        assert!(cal.is_working_day(d("2027-01-01")));
        assert_eq!(cal.add_working_days(d("2026-12-31"), 2), d("2027-01-04"));
    }

    #[test]
    fn an_operator_file_adds_a_year_and_replaces_one_it_repeats() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cal.toml");
        std::fs::write(
            &path,
            "[[year]]\nyear = 2027\noff = [\"2027-01-01\"]\n\
             [[year]]\nyear = 2026\noff = [\"2026-01-01\"]\n",
        )
        .unwrap();
        let cal = Calendar::load(Some(&path)).unwrap();
        assert!(cal.covers(2025) && cal.covers(2026) && cal.covers(2027));
        assert!(!cal.is_working_day(d("2027-01-01")));
        // 2026 is the file's now: National Day is a working day in it.
        assert!(cal.is_working_day(d("2026-10-05")));
        assert!(!cal.is_working_day(d("2025-10-06")));
    }

    #[test]
    fn bad_files_are_refused_with_the_entry() {
        for (text, needle) in [
            (
                "[[year]]\nyear = 2027\noff = [\"2027-13-01\"]",
                "2027-13-01",
            ),
            (
                "[[year]]\nyear = 2027\noff = [\"2026-12-31\"]",
                "must lie within 2027",
            ),
            ("[[year]]\nyear = 2027\nwork = [\"2027-01-05\"]", "is a Tue"),
            (
                "[[year]]\nyear = 2027\noff = [\"2027-01-02\"]\nwork = [\"2027-01-02\"]",
                "both",
            ),
            ("[[year]]\nyear = 2027\n[[year]]\nyear = 2027", "twice"),
            (
                "[[year]]\nyear = 2027\n[[year]]\nyear = 2028\noff = [\"2028-01-03\", 5]",
                "key `year[1].off[1]`",
            ),
        ] {
            let err = Calendar::from_toml_str(text).unwrap_err();
            assert!(err.problem.contains(needle), "{text}: {err}");
        }
    }
}
