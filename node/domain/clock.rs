//! The node's clock for everything that turns on a date: retention (R-SEC-2),
//! publication periods, objection deadlines (R-OBJ-2). Normally the system clock; tests
//! (and a rehearsal of next year's purge) move it. Clones share one setting, so a test
//! moves a whole federation's clock at once.
//!
//! Dates are China Standard Time (UTC+8), whatever the host's time zone: a node in a UTC
//! container must not count an objection received at 07:00 on Monday from Sunday.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{FixedOffset, NaiveDate, TimeZone};

/// China Standard Time, UTC+8 (no daylight saving).
pub const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(offset) => offset,
    // Checked when compiling: 8 hours is a valid offset.
    None => panic!("UTC+8"),
};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Added to the system time, in milliseconds.
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads noon of `day` now and runs on from there: a rehearsal of a
    /// future date (`[clock] today` in the config), or a test pinned to a fixed date.
    pub fn on(day: NaiveDate) -> Clock {
        let clock = Clock::default();
        clock.set_today(day);
        clock
    }

    /// Whether this clock has been moved away from the system clock.
    pub fn is_moved(&self) -> bool {
        self.offset_ms.load(Ordering::SeqCst) != 0
    }

    /// Unix milliseconds now.
    pub fn now_ms(&self) -> i64 {
        wall_ms() + self.offset_ms.load(Ordering::SeqCst)
    }

    /// The real time, Unix milliseconds, for a signature's time: it is checked against
    /// certificates, which TLS checks by the real clock, so a moved clock does not move
    /// it. Never a date rule's input.
    pub fn signing_ms(&self) -> i64 {
        wall_ms()
    }

    /// Today in China Standard Time.
    pub fn today(&self) -> NaiveDate {
        local_date(self.now_ms())
    }

    /// Moves the clock so that it is noon of `day` now (noon, so that a test never
    /// crosses midnight while it runs). Every clone moves with it.
    pub fn set_today(&self, day: NaiveDate) {
        let noon = day.and_hms_opt(12, 0, 0).unwrap_or_default();
        let target = CHINA
            .from_local_datetime(&noon)
            .earliest()
            .map_or(0, |t| t.timestamp_millis());
        self.offset_ms.store(target - wall_ms(), Ordering::SeqCst);
    }
}

/// Unix milliseconds now by the system clock, before any offset.
fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The date in China Standard Time of Unix milliseconds `ms`.
pub fn local_date(ms: i64) -> NaiveDate {
    CHINA
        .timestamp_millis_opt(ms)
        .earliest()
        .map_or(NaiveDate::MIN, |t| t.date_naive())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_move_together() {
        let a = Clock::system();
        let b = a.clone();
        let day = NaiveDate::from_ymd_opt(2031, 11, 28).unwrap();
        a.set_today(day);
        assert_eq!(b.today(), day);
        assert_eq!(local_date(b.now_ms()), day);
        assert!(b.is_moved());
        assert_eq!(Clock::on(day).today(), day);
        assert!(!Clock::system().is_moved());
    }
}
