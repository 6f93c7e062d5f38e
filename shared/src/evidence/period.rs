//! The period an evidence report covers: whole UTC days, `[start, end)`. The last 30 days by default (ending at
//! the start of today, so every day shown is complete), a month (`2026-10`), a quarter (`2026-Q3`), or
//! `previous-month` (what the monthly schedule asks for, since a schedule's input cannot compute a date).

use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc};
use serde::Serialize;

/// The words a period may be written in; every refusal repeats them.
pub const PERIOD_FORMS: &str = "YYYY-MM (2026-10), YYYY-Qn (2026-Q3), last-30-days or previous-month";

/// A period that cannot be reported on; the message says what would be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("`{0}` is not a period: use {PERIOD_FORMS}")]
    Unreadable(String),
    #[error("period {0} has not started yet: ask for a month or quarter that has begun")]
    Future(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// How the report names it: `2026-10`, `2026-Q3`, `30 days to 2026-11-28`.
    pub label: String,
    /// A name fit for a key and a file name: `2026-10`, `2026-Q3`, `30-days-to-2026-11-28`.
    pub slug: String,
    /// The first day.
    pub first: NaiveDate,
    /// The day after the last day.
    pub end: NaiveDate,
}

fn month_start(year: i32, month: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(year, month, 1)
}

fn next_month(d: NaiveDate) -> Option<NaiveDate> {
    if d.month() == 12 {
        month_start(d.year() + 1, 1)
    } else {
        month_start(d.year(), d.month() + 1)
    }
}

impl Period {
    /// `days` whole days ending at the start of `today`.
    pub fn last_days(days: u32, today: NaiveDate) -> Self {
        let first = today - Duration::days(i64::from(days));
        let last = today - Duration::days(1);
        Self {
            label: format!("{days} days to {last}"),
            slug: format!("{days}-days-to-{last}"),
            first,
            end: today,
        }
    }

    fn months(label: String, first: NaiveDate, count: u32) -> Option<Self> {
        let mut end = first;
        for _ in 0..count {
            end = next_month(end)?;
        }
        Some(Self {
            slug: label.clone(),
            label,
            first,
            end,
        })
    }

    /// Reads a period as a person or a schedule writes it; `None` is the default (the last 30 days).
    pub fn parse(text: Option<&str>, now: DateTime<Utc>) -> Result<Self, PeriodError> {
        let today = now.date_naive();
        let raw = text.map(str::trim).unwrap_or("last-30-days");
        let bad = || PeriodError::Unreadable(raw.to_owned());
        let period = match raw {
            "" | "last-30-days" => return Ok(Self::last_days(30, today)),
            "previous-month" => {
                let this = month_start(today.year(), today.month()).ok_or_else(bad)?;
                let first = this - Duration::days(1);
                let first = month_start(first.year(), first.month()).ok_or_else(bad)?;
                Self::months(first.format("%Y-%m").to_string(), first, 1)
            }
            _ => Self::named(raw),
        }
        .ok_or_else(bad)?;
        if period.first > today {
            return Err(PeriodError::Future(period.label));
        }
        Ok(period)
    }

    /// `2026-10` or `2026-Q3`.
    fn named(raw: &str) -> Option<Self> {
        let (year, rest) = raw.split_once('-')?;
        if year.len() != 4 || !year.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year: i32 = year.parse().ok()?;
        if let Some(q) = rest.strip_prefix('Q').or_else(|| rest.strip_prefix('q')) {
            let q: u32 = q.parse().ok().filter(|q| (1..=4).contains(q) && rest.len() == 2)?;
            let first = month_start(year, 3 * q - 2)?;
            return Self::months(format!("{year}-Q{q}"), first, 3);
        }
        if rest.len() != 2 || !rest.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let first = month_start(year, rest.parse().ok()?)?;
        Self::months(format!("{year}-{rest}"), first, 1)
    }

    /// Every day of the period, in order.
    pub fn days(&self) -> Vec<NaiveDate> {
        self.first.iter_days().take_while(|d| *d < self.end).collect()
    }

    pub fn start_time(&self) -> DateTime<Utc> {
        self.first.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    pub fn end_time(&self) -> DateTime<Utc> {
        self.end.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The year and month of the period's last day: the folder its report is written to.
    pub fn folder_month(&self) -> (i32, u32) {
        let last = self.end - Duration::days(1);
        (last.year(), last.month())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 29, 16, 50, 0).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_default_is_the_last_thirty_whole_days() {
        let p = Period::parse(None, now()).unwrap();
        assert_eq!((p.first, p.end), (d(2026, 10, 30), d(2026, 11, 29)));
        assert_eq!(p.days().len(), 30);
        assert_eq!(p.label, "30 days to 2026-11-28");
        assert_eq!(p.slug, "30-days-to-2026-11-28");
        assert_eq!(Period::parse(Some("last-30-days"), now()).unwrap(), p);
        assert_eq!(p.folder_month(), (2026, 11));
    }

    #[test]
    fn months_and_quarters_cover_their_days() {
        let oct = Period::parse(Some("2026-10"), now()).unwrap();
        assert_eq!(
            (oct.first, oct.end, oct.days().len()),
            (d(2026, 10, 1), d(2026, 11, 1), 31)
        );
        let q3 = Period::parse(Some("2026-Q3"), now()).unwrap();
        assert_eq!((q3.first, q3.end, q3.days().len()), (d(2026, 7, 1), d(2026, 10, 1), 92));
        assert_eq!(q3.folder_month(), (2026, 9));
        let q4 = Period::parse(Some("2025-q4"), now()).unwrap();
        assert_eq!((q4.label.as_str(), q4.end), ("2025-Q4", d(2026, 1, 1)));
        let prev = Period::parse(Some("previous-month"), now()).unwrap();
        assert_eq!(prev, oct);
        let jan = Utc.with_ymd_and_hms(2027, 1, 1, 6, 0, 0).unwrap();
        assert_eq!(Period::parse(Some("previous-month"), jan).unwrap().label, "2026-12");
        // The current month is accepted: its days so far are reported, the rest are "not yet".
        assert_eq!(Period::parse(Some("2026-11"), now()).unwrap().days().len(), 30);
    }

    #[test]
    fn bad_periods_are_refused_with_the_forms_that_work() {
        for bad in [
            "2026-13",
            "2026-00",
            "2026-Q5",
            "2026-Q",
            "26-10",
            "2026-1",
            "october",
            "2026-10-01",
            "2026-Q12",
        ] {
            let err = Period::parse(Some(bad), now()).unwrap_err();
            assert_eq!(err, PeriodError::Unreadable(bad.to_owned()));
            assert!(err.to_string().contains("2026-Q3"), "{err}");
        }
        let err = Period::parse(Some("2027-01"), now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "period 2027-01 has not started yet: ask for a month or quarter that has begun"
        );
    }
}
