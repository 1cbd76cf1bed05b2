//! The census figures (R-FED-2..4) and providers' monthly submissions (R-DATA-5), kept
//! incrementally: every write adjusts them in the same atomic records-tree batch as the
//! records it changes, so they never drift from the data, and `recount` recomputes them
//! from the records alone for a spot check.
//!
//! Written with the current state (`backend::Current`): the `Figures`, each provider's
//! `Monthly` per period, the `Figures` as they stood at the end of a day (written on the
//! first write of a later day) and the day of the last write; sled keeps them in the
//! records tree (`keys::records`).

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::backend::{Commit, Current};
use super::codec::encode;
use super::{Store, StoreError};
use crate::domain::census::{Figures, Monthly, counted};
use crate::domain::record::Record;

/// A batch's changes to the monthly submissions, applied at its end.
#[derive(Default)]
pub(super) struct MonthlyDelta {
    changes: BTreeMap<(String, String), (i64, i64)>,
}

impl MonthlyDelta {
    /// A version of a record originated here counted in (`up`, accepted at `at_ms`) or
    /// out (the version it replaces).
    pub(super) fn count(&mut self, r: &Record, up: bool, at_ms: i64) {
        if !counted(r) {
            return;
        }
        let key = (r.content.provider_id.clone(), r.content.period.clone());
        let e = self.changes.entry(key).or_insert((0, 0));
        if up {
            e.0 += 1;
            e.1 = at_ms;
        } else {
            e.0 -= 1;
        }
    }

    /// The inserts that apply these changes, read against the store as it is.
    pub(super) fn write(self, store: &Store, current: &mut Current) -> Result<(), StoreError> {
        for ((provider, period), (delta, at_ms)) in self.changes {
            let mut m = store
                .inner
                .backend
                .monthly(&provider, &period)?
                .unwrap_or_default();
            m.records = (m.records as i64 + delta).max(0) as u64;
            // A version for the period was accepted (not only one moved away from it).
            if at_ms > 0 {
                if m.first_ms == 0 || at_ms < m.first_ms {
                    m.first_ms = at_ms;
                }
                m.last_ms = m.last_ms.max(at_ms);
            }
            current.monthly.push((provider, period, encode(&m)?));
        }
        Ok(())
    }
}

/// The calendar day (China Standard Time) of a Unix-ms time.
fn day_of(ms: i64) -> NaiveDate {
    crate::domain::clock::local_date(ms)
}

impl Store {
    /// The figures as they stand.
    pub fn figures(&self) -> Result<Figures, StoreError> {
        let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        Ok(w.figures.clone())
    }

    /// The figures at the end of `day` (local time): from the snapshot the first write of
    /// a later day kept, or the current figures when nothing was written since.
    pub fn figures_as_of(&self, day: NaiveDate) -> Result<Figures, StoreError> {
        let w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        let last = self.inner.backend.last_day()?;
        if last.is_none_or(|l| day >= l) {
            return Ok(w.figures.clone());
        }
        Ok(self.inner.backend.figures_at(day)?.unwrap_or_default())
    }

    /// One provider's submissions for one period (`provider` as in its certificate).
    pub fn monthly(&self, provider: &str, period: &str) -> Result<Monthly, StoreError> {
        Ok(self
            .inner
            .backend
            .monthly(provider, period)?
            .unwrap_or_default())
    }

    /// The figures recomputed from the records alone (a full scan): what the kept
    /// figures must equal.
    pub fn recount(&self) -> Result<Figures, StoreError> {
        let mut f = Figures::default();
        self.for_each_record(|r| f.count(&r, true))?;
        Ok(f)
    }

    /// Before a write at `now_ms`: on the first write of a new day, keeps the figures as
    /// they stood at the end of the last day written (in `batch`, so atomically).
    pub(super) fn snapshot_day(
        &self,
        figures: &Figures,
        now_ms: i64,
        current: &mut Current,
    ) -> Result<(), StoreError> {
        let today = day_of(now_ms);
        let last = self.inner.backend.last_day()?;
        if last == Some(today) {
            return Ok(());
        }
        if let Some(last) = last
            && last < today
        {
            current.day = Some((last, encode(figures)?));
        }
        current.last_day = Some(today);
        Ok(())
    }
}

impl Store {
    /// Keeps a child's latest census report (not part of the changelog: the next batch
    /// brings a newer one, so it needs no sync of its own).
    pub fn set_child_report(
        &self,
        child: &crate::domain::region::RegionCode,
        report: &crate::domain::census::PlatformReport,
    ) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let mut commit = Commit::default();
        commit.current.child_reports.push((*child, encode(report)?));
        // As the writer, like every commit (the engine sees one commit at a time); a
        // failed one stops further writes, as any failed write does.
        let _w = self.inner.writer.lock().map_err(|_| StoreError::Lock)?;
        if self.inner.poisoned.load(Ordering::SeqCst) {
            return Err(StoreError::Poisoned);
        }
        self.inner.backend.commit(commit).inspect_err(|_| {
            self.inner.poisoned.store(true, Ordering::SeqCst);
        })
    }

    /// The children's latest census reports.
    pub fn child_reports(&self) -> Result<Vec<crate::domain::census::PlatformReport>, StoreError> {
        self.inner.backend.child_reports()
    }
}
