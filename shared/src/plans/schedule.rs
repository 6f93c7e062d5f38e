//! A plan rule's schedule: five cron fields in UTC, read the way every SRE already reads them, and the due times
//! they give.
//!
//! `minute hour day-of-month month day-of-week`, each `*`, a number, a range `a-b`, a step `*/n` or `a-b/n`, or a
//! comma-separated list of those; months may be `JAN`..`DEC` and days `SUN`..`SAT` (0 and 7 are both Sunday).
//! Two choices keep a schedule meaning one thing:
//! - **day of month and day of week are never both restricted.** Classic cron runs when *either* matches, which
//!   surprises people ("the 1st and every Monday"); EventBridge refuses the pair outright. So do we.
//! - **minutes are quarter hours** (0, 15, 30, 45): rules fire from a tick every [`TICK_MINUTES`] minutes, and a
//!   due time between ticks would run late without saying so.
//!
//! Times are UTC, as the written policies this serves state them; a policy in local time converts once, here,
//! rather than shifting by an hour twice a year.
//!
//! Must never: read a clock. Every function takes the times it works on.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc};

/// The plan tick's period: every rule whose due time falls in `(tick - TICK, tick]` runs at that tick.
pub const TICK_MINUTES: u32 = 15;

/// A parsed schedule. `Display` gives back the normalised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    text: String,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    days: Vec<bool>,
    months: Vec<bool>,
    weekdays: Vec<bool>,
}

/// Why a schedule is not one. The message names the field and what it got.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("expected five fields `minute hour day-of-month month day-of-week` (UTC), got {0}")]
    FieldCount(usize),
    #[error("{field} field: `{got}` {reason}")]
    Field {
        field: &'static str,
        got: String,
        reason: String,
    },
    #[error("give a day of month or a day of week, not both (one of them must be `*`)")]
    DayAndWeekday,
    #[error(
        "minute {0} is not a quarter hour: rules fire from a tick every {TICK_MINUTES} minutes (use 0, 15, 30 or 45)"
    )]
    NotQuarterHour(u32),
    #[error("this schedule never fires (no month has such a day)")]
    Never,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

struct FieldSpec {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// The first name's number (1 for months, 0 for days).
    names_from: u32,
}

const FIELDS: [FieldSpec; 5] = [
    FieldSpec {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
        names_from: 0,
    },
    FieldSpec {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
        names_from: 0,
    },
    FieldSpec {
        name: "day-of-month",
        min: 1,
        max: 31,
        names: &[],
        names_from: 0,
    },
    FieldSpec {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
        names_from: 1,
    },
    // 7 is Sunday too; folded onto 0 after parsing.
    FieldSpec {
        name: "day-of-week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
        names_from: 0,
    },
];

fn field_error(spec: &FieldSpec, got: &str, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::Field {
        field: spec.name,
        got: got.to_owned(),
        reason: reason.into(),
    }
}

fn value(spec: &FieldSpec, part: &str, whole: &str) -> Result<u32, ScheduleError> {
    let upper = part.to_ascii_uppercase();
    if let Some(i) = spec.names.iter().position(|n| *n == upper) {
        return Ok(spec.names_from + i as u32);
    }
    let n: u32 = part.parse().map_err(|_| {
        let names = if spec.names.is_empty() {
            String::new()
        } else {
            format!(" or a name ({}..{})", spec.names[0], spec.names[spec.names.len() - 1])
        };
        field_error(spec, whole, format!("is not a number{names}"))
    })?;
    if n < spec.min || n > spec.max {
        return Err(field_error(
            spec,
            whole,
            format!("is out of range ({}..={})", spec.min, spec.max),
        ));
    }
    Ok(n)
}

/// One field as a set: `set[n]` says whether value `n` matches. Returns whether the field was `*` (unrestricted).
fn parse_field(spec: &FieldSpec, raw: &str) -> Result<(Vec<bool>, bool), ScheduleError> {
    let mut set = vec![false; spec.max as usize + 1];
    let mut star = false;
    for item in raw.split(',') {
        if item.is_empty() {
            return Err(field_error(spec, raw, "has an empty list item"));
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| field_error(spec, raw, format!("step `{s}` is not a number")))?;
                if step == 0 {
                    return Err(field_error(spec, raw, "has a step of 0"));
                }
                (r, step)
            }
            None => (item, 1),
        };
        let (from, to) = if range == "*" {
            if step == 1 {
                star = true;
            }
            (spec.min, spec.max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(spec, a, raw)?, value(spec, b, raw)?);
            if a > b {
                return Err(field_error(spec, raw, format!("range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(spec, range, raw)?;
            // `5/15` means from 5 to the end in steps of 15, as cron reads it.
            (a, if step > 1 { spec.max } else { a })
        };
        let mut n = from;
        while n <= to {
            set[n as usize] = true;
            n += step;
        }
    }
    Ok((set, star))
}

impl Schedule {
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(ScheduleError::FieldCount(parts.len()));
        }
        let mut sets = Vec::with_capacity(5);
        let mut stars = Vec::with_capacity(5);
        for (spec, raw) in FIELDS.iter().zip(&parts) {
            let (set, star) = parse_field(spec, raw)?;
            sets.push(set);
            stars.push(star);
        }
        if !stars[2] && !stars[4] {
            return Err(ScheduleError::DayAndWeekday);
        }
        if let Some(m) = (0..60).find(|&m| sets[0][m as usize] && m % TICK_MINUTES != 0) {
            return Err(ScheduleError::NotQuarterHour(m));
        }
        let mut weekdays = sets.pop().unwrap_or_default();
        if weekdays.get(7).copied().unwrap_or(false) {
            weekdays[0] = true;
        }
        weekdays.truncate(7);
        let months = sets.pop().unwrap_or_default();
        let days = sets.pop().unwrap_or_default();
        let hours = sets.pop().unwrap_or_default();
        let minutes = sets.pop().unwrap_or_default();
        let schedule = Schedule {
            text: parts.join(" "),
            minutes,
            hours,
            days,
            months,
            weekdays,
        };
        // `0 0 31 2 *` names no real day: refuse it rather than never alarm about it.
        let start = Utc
            .with_ymd_and_hms(2024, 1, 1, 0, 0, 0)
            .single()
            .ok_or(ScheduleError::Never)?;
        if schedule.next_after(start - Duration::minutes(1)).is_none() {
            return Err(ScheduleError::Never);
        }
        Ok(schedule)
    }

    /// Whether `t` (truncated to the minute) is a due time.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        self.minutes[t.minute() as usize]
            && self.hours[t.hour() as usize]
            && self.days[t.day() as usize]
            && self.months[t.month() as usize]
            && self.weekdays[t.weekday().num_days_from_sunday() as usize]
    }

    /// The due times in `(after, until]`, oldest first. Walks quarter hours, so a year is 35,000 steps.
    pub fn due_between(&self, after: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut t = quarter_after(after);
        while t <= until {
            if self.matches(t) {
                out.push(t);
            }
            t += Duration::minutes(i64::from(TICK_MINUTES));
        }
        out
    }

    /// The first due time after `t`, looking at most eight years ahead (every valid schedule fires in that span:
    /// 29 February comes at least once in eight years).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let limit = t + Duration::days(366 * 8);
        let mut day = t.date_naive();
        while let Some(midnight) = day.and_hms_opt(0, 0, 0).map(|d| d.and_utc()) {
            if midnight > limit {
                return None;
            }
            if self.days[day.day() as usize]
                && self.months[day.month() as usize]
                && self.weekdays[day.weekday().num_days_from_sunday() as usize]
            {
                for h in (0..24).filter(|&h| self.hours[h as usize]) {
                    for m in (0..60)
                        .step_by(TICK_MINUTES as usize)
                        .filter(|&m| self.minutes[m as usize])
                    {
                        let due = midnight + Duration::minutes(i64::from(h * 60 + m));
                        if due > t {
                            return Some(due);
                        }
                    }
                }
            }
            day = day.succ_opt()?;
        }
        None
    }

    /// The longest time between two consecutive due times from `from`, over the span that repeats the
    /// schedule whole ([`Schedule::period`]: two days for a daily pattern, fifteen for a weekly one, four years,
    /// a leap year included, for any other). This is the freshness the rule implies: a backup older than this,
    /// plus a grace, means a run was missed.
    pub fn longest_gap(&self, from: DateTime<Utc>) -> Duration {
        let until = from + self.period();
        let mut longest = Duration::zero();
        let mut prev = self.next_after(from - Duration::minutes(1));
        while let Some(p) = prev {
            let next = self.next_after(p);
            match next {
                Some(n) if n <= until => {
                    longest = longest.max(n - p);
                    prev = Some(n);
                }
                _ => break,
            }
        }
        longest
    }
}

impl Schedule {
    /// A span after which the schedule's pattern of gaps repeats, with one wrap-around included: a schedule
    /// that names no day, month or weekday repeats daily; one that names only weekdays, weekly; any other is
    /// measured over four years. Measuring a 6-hourly rule's gaps over four years would cost thousands of steps
    /// per threshold (`make bench-plan`).
    pub fn period(&self) -> Duration {
        let all = |set: &[bool], from: usize| set[from..].iter().all(|b| *b);
        let (days, months, weekdays) = (all(&self.days, 1), all(&self.months, 1), all(&self.weekdays, 0));
        match (days, months, weekdays) {
            (true, true, true) => Duration::days(2),
            (true, true, false) => Duration::days(15),
            _ => Duration::days(366 * 4),
        }
    }
}

impl std::fmt::Display for Schedule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first quarter hour strictly after `t`.
pub fn quarter_after(t: DateTime<Utc>) -> DateTime<Utc> {
    quarter_at_or_before(t) + Duration::minutes(i64::from(TICK_MINUTES))
}

/// `t` rounded down to its quarter hour: the tick a delivery at `t` stands for.
pub fn quarter_at_or_before(t: DateTime<Utc>) -> DateTime<Utc> {
    let minute = t.minute() - t.minute() % TICK_MINUTES;
    t.with_minute(minute)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn the_written_policies_read_as_they_say() {
        let daily = Schedule::parse("0 2 * * *").unwrap();
        assert_eq!(
            daily.due_between(at("2026-12-01T00:00:00Z"), at("2026-12-03T23:59:00Z")),
            vec![
                at("2026-12-01T02:00:00Z"),
                at("2026-12-02T02:00:00Z"),
                at("2026-12-03T02:00:00Z")
            ]
        );
        let six_hourly = Schedule::parse("0 */6 * * *").unwrap();
        assert_eq!(
            six_hourly
                .due_between(at("2026-12-01T00:00:00Z"), at("2026-12-02T00:00:00Z"))
                .len(),
            4
        );
        // 2026-12-06 is a Sunday.
        let sundays = Schedule::parse("0 1 * * SUN").unwrap();
        assert_eq!(
            sundays.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-06T01:00:00Z"))
        );
        assert_eq!(
            Schedule::parse("0 1 * * 7")
                .unwrap()
                .next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-06T01:00:00Z"))
        );
        let quarterly = Schedule::parse("0 5 1 JAN,APR,JUL,OCT *").unwrap();
        assert_eq!(
            quarterly.next_after(at("2026-12-06T00:00:00Z")),
            Some(at("2027-01-01T05:00:00Z"))
        );
        assert_eq!(
            quarterly.next_after(at("2027-01-01T05:00:00Z")),
            Some(at("2027-04-01T05:00:00Z"))
        );
    }

    #[test]
    fn a_window_is_open_below_and_closed_above_so_ticks_never_run_a_time_twice() {
        let s = Schedule::parse("0,15,30,45 * * * *").unwrap();
        let t0 = at("2026-12-06T02:00:00Z");
        let mut seen = Vec::new();
        for i in 0..8 {
            let from = t0 + Duration::minutes(15 * i);
            seen.extend(s.due_between(from, from + Duration::minutes(15)));
        }
        let mut dedup = seen.clone();
        dedup.dedup();
        assert_eq!(seen, dedup);
        assert_eq!(seen.len(), 8);
        assert_eq!(seen[0], at("2026-12-06T02:15:00Z"));
    }

    #[test]
    fn longest_gaps_are_the_implied_freshness() {
        let from = at("2026-01-01T00:00:00Z");
        assert_eq!(
            Schedule::parse("0 2 * * *").unwrap().longest_gap(from),
            Duration::hours(24)
        );
        assert_eq!(
            Schedule::parse("0 */6 * * *").unwrap().longest_gap(from),
            Duration::hours(6)
        );
        assert_eq!(
            Schedule::parse("0 1 * * SUN").unwrap().longest_gap(from),
            Duration::days(7)
        );
        assert_eq!(
            Schedule::parse("0 4 1 * *").unwrap().longest_gap(from),
            Duration::days(31)
        );
        // April to July is 91 days, July to October 92, October to January 92.
        assert_eq!(
            Schedule::parse("0 5 1 1,4,7,10 *").unwrap().longest_gap(from),
            Duration::days(92)
        );
        // Irregular hours: the longest gap, not the average one.
        assert_eq!(
            Schedule::parse("0 2,4 * * *").unwrap().longest_gap(from),
            Duration::hours(22)
        );
    }

    #[test]
    fn a_shorter_measuring_span_gives_the_four_year_answer() {
        let from = at("2026-01-01T00:00:00Z");
        for text in [
            "0 */6 * * *",
            "0 2,4 * * *",
            "30 8-18/5 * * MON-FRI",
            "0 1 * * SUN",
            "0 5 1 1,4,7,10 *",
            "0 4 1 * *",
        ] {
            let s = Schedule::parse(text).unwrap();
            let mut long = Duration::zero();
            let mut prev = s.next_after(from - Duration::minutes(1)).unwrap();
            while let Some(n) = s.next_after(prev).filter(|n| *n <= from + Duration::days(366 * 4)) {
                long = long.max(n - prev);
                prev = n;
            }
            assert_eq!(s.longest_gap(from), long, "{text}");
        }
        assert_eq!(Schedule::parse("0 */6 * * *").unwrap().period(), Duration::days(2));
        assert_eq!(Schedule::parse("0 1 * * SUN").unwrap().period(), Duration::days(15));
        assert_eq!(Schedule::parse("0 1 1 * *").unwrap().period(), Duration::days(366 * 4));
    }

    #[test]
    fn bad_schedules_name_what_is_wrong() {
        let cases = [
            ("0 2 * *", "five fields"),
            ("0 2 * * * *", "five fields"),
            ("0 24 * * *", "hour field: `24` is out of range (0..=23)"),
            ("7 2 * * *", "minute 7 is not a quarter hour"),
            ("*/5 * * * *", "minute 5 is not a quarter hour"),
            ("0 2 1 * MON", "not both"),
            ("0 2 * FOO *", "month field: `FOO` is not a number or a name (JAN..DEC)"),
            ("0 2 * * 8", "day-of-week field: `8` is out of range"),
            ("0 2 5-1 * *", "runs backwards"),
            ("0 */0 * * *", "step of 0"),
            ("0 2 ,1 * *", "empty list item"),
            ("0 0 31 2 *", "never fires"),
            ("0 0 30 FEB *", "never fires"),
        ];
        for (text, expected) in cases {
            let err = Schedule::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn leap_days_fire_and_ranges_and_steps_combine() {
        let leap = Schedule::parse("0 0 29 2 *").unwrap();
        assert_eq!(
            leap.next_after(at("2026-12-06T00:00:00Z")),
            Some(at("2028-02-29T00:00:00Z"))
        );
        let s = Schedule::parse("30 8-18/5 * * MON-FRI").unwrap();
        let due = s.due_between(at("2026-12-07T00:00:00Z"), at("2026-12-08T00:00:00Z"));
        assert_eq!(
            due,
            vec![
                at("2026-12-07T08:30:00Z"),
                at("2026-12-07T13:30:00Z"),
                at("2026-12-07T18:30:00Z")
            ]
        );
        assert!(s
            .due_between(at("2026-12-05T00:00:00Z"), at("2026-12-07T00:00:00Z"))
            .is_empty());
        assert_eq!(s.to_string(), "30 8-18/5 * * MON-FRI");
    }

    #[test]
    fn quarters_round_down_and_step_up() {
        assert_eq!(
            quarter_at_or_before(at("2026-12-06T02:29:59.9Z")),
            at("2026-12-06T02:15:00Z")
        );
        assert_eq!(quarter_after(at("2026-12-06T02:15:00Z")), at("2026-12-06T02:30:00Z"));
        assert_eq!(quarter_after(at("2026-12-06T02:14:00Z")), at("2026-12-06T02:15:00Z"));
    }
}
