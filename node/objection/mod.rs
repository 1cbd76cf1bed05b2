//! 异议处理: a subject's objection to a record (R-OBJ-1..3), credit repair and the
//! retention purge (R-SEC-2).
//!
//! # The case and who owns it
//!
//! An operator files an objection at any node that holds the record. The node that
//! first accepted the record (its origin) owns the case; only it changes the record.
//! * At the filing node the case is kept at once (version 0) and the record is withheld
//!   there from that moment (`Store::objection_open`).
//! * When the filing node is not the origin, an objection notice carries the case down,
//!   hop by hop; each node on the way keeps a copy and withholds the record too.
//! * The origin takes the case (version 1) and suspends the record: a new version with
//!   status suspended. Both travel up in its changelog, so every copy above is
//!   suspended within one sync round, and each later step of the case follows the same
//!   way up.
//! * The record is released again only by the outcome: corrected (a new version from
//!   the origin), deleted (a tombstone with the reason, R-OBJ-3) or upheld (the
//!   suspension lifted).
//!
//! # Deadlines (R-OBJ-2), in working days of the node's calendar
//! * the platform checks within 3 of receipt;
//! * the platform's own error: corrected at once, the applicant told within 2 of the
//!   check;
//! * otherwise the provider is notified at the check and replies within 10, and the
//!   applicant is told within 2 of the reply.
//!
//! The resolution is the written answer to the applicant: its date is when they were
//! told.

pub mod calendar;
pub mod origin;
pub mod purge;
pub mod repair;
pub mod service;
pub mod steps;
pub mod wire;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::local_date;
use crate::record::Hash;
use crate::region::RegionCode;
pub use calendar::Calendar;

/// Whose error the record was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The platform's own (a wrong import or mapping): corrected at once.
    Platform,
    /// The provider's: it is notified and replies.
    Provider,
}

/// How a case ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A corrected version replaces the disputed one, and is released.
    Corrected,
    /// The record cannot be verified: deleted, with the reason recorded (R-OBJ-3).
    Deleted,
    /// The record stands: the suspension is lifted.
    Upheld,
}

/// The provider's answer to an objection about its record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The record is right as it is.
    Confirmed,
    /// The provider pushed a corrected version.
    Corrected,
    /// The provider cannot verify the record.
    Unverifiable,
}

/// The platform's check (within 3 working days).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checked {
    pub at_ms: i64,
    pub by: String,
    pub fault: Fault,
    pub note: String,
}

/// The provider's reply (within 10 working days of the notice).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub at_ms: i64,
    pub by: String,
    pub answer: Answer,
    pub text: String,
}

/// The outcome, told to the applicant in writing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    pub at_ms: i64,
    pub by: String,
    pub outcome: Outcome,
    pub fault: Fault,
    pub reason: String,
    /// The version of the record the outcome made.
    pub record_version: u64,
}

/// One objection, as every node that knows of it keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    /// UUID v7, made by the node where it was filed.
    pub id: Uuid,
    pub record_id: Uuid,
    pub subject_id: String,
    /// The record's origin, which owns the case.
    pub owner: RegionCode,
    pub filed_at: RegionCode,
    /// The operator who filed it for the subject.
    pub filed_by: String,
    /// When the objection was received (Unix ms): deadlines count from its date.
    pub received_ms: i64,
    pub reason: String,
    /// Where the written objection and its evidence are kept (a file reference).
    pub evidence: String,
    /// The disputed version and content.
    pub record_version: u64,
    pub record_hash: Hash,
    /// 0 as filed, before the owner took it; each change by the owner adds one.
    pub version: u64,
    pub checked: Option<Checked>,
    pub reply: Option<Reply>,
    pub resolution: Option<Resolution>,
    /// Regions the case passed through on its way up, the owner first.
    pub path: Vec<RegionCode>,
}

/// One deadline of a case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deadline {
    /// `check`, `provider_reply` or `tell_applicant`.
    pub step: &'static str,
    pub due: NaiveDate,
    /// When the step was done, if it was.
    pub done: Option<NaiveDate>,
    /// When the case was resolved: a step never done is judged as of that day.
    pub closed: Option<NaiveDate>,
}

impl Deadline {
    /// Done after it was due, or not done and past due on `today` (or, in a resolved
    /// case, on the day it was resolved).
    pub fn overdue(&self, today: NaiveDate) -> bool {
        match self.done {
            Some(done) => done > self.due,
            None => self.closed.unwrap_or(today) > self.due,
        }
    }
}

impl Case {
    pub fn is_open(&self) -> bool {
        self.resolution.is_none()
    }

    /// `filed`, `open`, `checked`, `provider_notified`, `replied` or `resolved`.
    pub fn state(&self) -> &'static str {
        match (&self.resolution, &self.reply, &self.checked) {
            (Some(_), _, _) => "resolved",
            (None, Some(_), _) => "replied",
            (None, None, Some(c)) if c.fault == Fault::Provider => "provider_notified",
            (None, None, Some(_)) => "checked",
            (None, None, None) if self.version == 0 => "filed",
            (None, None, None) => "open",
        }
    }

    /// The fault found at the check, or at the resolution when there was no separate
    /// check.
    pub fn fault(&self) -> Option<Fault> {
        self.checked
            .as_ref()
            .map(|c| c.fault)
            .or(self.resolution.as_ref().map(|r| r.fault))
    }

    /// The case's deadlines by `calendar` (R-OBJ-2); those not yet fixed (the
    /// applicant's, before the provider replied) are left out.
    pub fn deadlines(&self, calendar: &Calendar) -> Vec<Deadline> {
        let received = local_date(self.received_ms);
        let resolved = self.resolution.as_ref().map(|r| local_date(r.at_ms));
        let checked = self
            .checked
            .as_ref()
            .map(|c| local_date(c.at_ms))
            .or(resolved);
        let mut out = vec![Deadline {
            step: "check",
            due: calendar.add_working_days(received, 3),
            done: checked,
            closed: resolved,
        }];
        match (self.fault(), checked) {
            (Some(Fault::Platform), Some(checked)) => out.push(Deadline {
                step: "tell_applicant",
                due: calendar.add_working_days(checked, 2),
                done: resolved,
                closed: resolved,
            }),
            (Some(Fault::Provider), Some(checked)) => {
                let replied = self.reply.as_ref().map(|r| local_date(r.at_ms));
                out.push(Deadline {
                    step: "provider_reply",
                    due: calendar.add_working_days(checked, 10),
                    done: replied,
                    closed: resolved,
                });
                if let Some(replied) = replied {
                    out.push(Deadline {
                        step: "tell_applicant",
                        due: calendar.add_working_days(replied, 2),
                        done: resolved,
                        closed: resolved,
                    });
                }
            }
            _ => {}
        }
        out
    }

    /// Whether the case is open with a deadline overdue on `today` (what `objection list
    /// --overdue` shows: the cases that need action).
    pub fn overdue(&self, calendar: &Calendar, today: NaiveDate) -> bool {
        self.is_open() && self.deadlines(calendar).iter().any(|d| d.overdue(today))
    }
}

impl Fault {
    pub fn as_str(&self) -> &'static str {
        match self {
            Fault::Platform => "platform",
            Fault::Provider => "provider",
        }
    }
    pub fn parse(s: &str) -> Option<Fault> {
        [Fault::Platform, Fault::Provider]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

impl Outcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            Outcome::Corrected => "corrected",
            Outcome::Deleted => "deleted",
            Outcome::Upheld => "upheld",
        }
    }
    pub fn parse(s: &str) -> Option<Outcome> {
        [Outcome::Corrected, Outcome::Deleted, Outcome::Upheld]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

impl Answer {
    pub fn as_str(&self) -> &'static str {
        match self {
            Answer::Confirmed => "confirmed",
            Answer::Corrected => "corrected",
            Answer::Unverifiable => "unverifiable",
        }
    }
    pub fn parse(s: &str) -> Option<Answer> {
        [Answer::Confirmed, Answer::Corrected, Answer::Unverifiable]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn ms(day: &str) -> i64 {
        let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        crate::clock::CHINA
            .from_local_datetime(&d.and_hms_opt(10, 0, 0).unwrap())
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    fn case(received: &str) -> Case {
        let region = RegionCode::parse("211382").unwrap();
        Case {
            id: Uuid::nil(),
            record_id: Uuid::nil(),
            subject_id: "S".into(),
            owner: region,
            filed_at: region,
            filed_by: "op".into(),
            received_ms: ms(received),
            reason: "r".into(),
            evidence: "e".into(),
            record_version: 1,
            record_hash: [0; 32],
            version: 1,
            checked: None,
            reply: None,
            resolution: None,
            path: vec![region],
        }
    }

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    /// Received the day before the National Day week: the check is due on the make-up
    /// Saturday; the provider's ten days and the applicant's two run past the holiday.
    #[test]
    fn provider_fault_deadlines_across_the_national_day_week() {
        let cal = Calendar::builtin();
        let mut c = case("2026-09-30");
        let due = |c: &Case| -> Vec<(&str, NaiveDate)> {
            c.deadlines(&cal).iter().map(|d| (d.step, d.due)).collect()
        };
        assert_eq!(due(&c), vec![("check", d("2026-10-10"))]);
        assert!(!c.overdue(&cal, d("2026-10-10")));
        assert!(c.overdue(&cal, d("2026-10-11")));
        c.checked = Some(Checked {
            at_ms: ms("2026-10-09"),
            by: "op".into(),
            fault: Fault::Provider,
            note: String::new(),
        });
        assert_eq!(c.state(), "provider_notified");
        // Ten working days from Fri Oct 9: Sat 10 (make-up), 12-16, 19-22.
        assert_eq!(
            due(&c),
            vec![
                ("check", d("2026-10-10")),
                ("provider_reply", d("2026-10-22"))
            ]
        );
        assert!(!c.overdue(&cal, d("2026-10-22")));
        c.reply = Some(Reply {
            at_ms: ms("2026-10-23"),
            by: "p".into(),
            answer: Answer::Confirmed,
            text: String::new(),
        });
        // Replied a day late; the applicant is due an answer by Tue Oct 27.
        assert_eq!(due(&c)[2], ("tell_applicant", d("2026-10-27")));
        assert!(c.deadlines(&cal)[1].overdue(d("2026-10-23")));
        assert!(c.overdue(&cal, d("2026-10-24")));
    }

    #[test]
    fn a_platform_fault_resolved_at_the_check_meets_both_deadlines() {
        let cal = Calendar::builtin();
        let mut c = case("2026-09-18");
        c.resolution = Some(Resolution {
            at_ms: ms("2026-09-20"),
            by: "op".into(),
            outcome: Outcome::Corrected,
            fault: Fault::Platform,
            reason: "wrong import".into(),
            record_version: 3,
        });
        let dl = c.deadlines(&cal);
        assert_eq!(dl[0].due, d("2026-09-22"));
        assert_eq!(dl[1].step, "tell_applicant");
        assert_eq!(dl[1].due, d("2026-09-22"));
        assert!(!c.overdue(&cal, d("2027-01-01")));
        assert_eq!(c.state(), "resolved");
    }
}
