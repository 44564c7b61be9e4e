//! Business calendars: working days and hours in an IANA time zone (never
//! the host's), with holidays. **Pure**: every answer is computed from the
//! given instant (milliseconds since the epoch); nothing reads the clock.
//! Escalation uses it for `pages = "business"` (pages wait for the calendar
//! to open; delays count business time) and `at = "next_business_day"`.

use crate::clock::Millis;
use chrono::{DateTime, Datelike, Duration as Span, NaiveDate, NaiveTime, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use std::collections::BTreeSet;
use std::time::Duration;

/// How far ahead an opening is looked for (a calendar with no working day
/// at all is refused when it is built, so this only bounds holiday runs).
const HORIZON_DAYS: i64 = 400;

/// A working-hours calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    tz: Tz,
    /// Monday first.
    days: [bool; 7],
    open: NaiveTime,
    close: NaiveTime,
    holidays: BTreeSet<NaiveDate>,
}

/// Why a calendar definition is unusable (shown as `file:line: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalendarError {
    #[error("unknown time zone `{0}` (use an IANA name such as `Europe/Berlin`)")]
    Zone(String),
    #[error("unknown day `{0}` (use mon, tue, wed, thu, fri, sat, sun)")]
    Day(String),
    #[error("hours must look like `09:00-17:00` with the opening first, not `{0}`")]
    Hours(String),
    #[error("holiday `{0}` is not a date like 2026-12-25")]
    Holiday(String),
    #[error("a calendar needs at least one working day")]
    NoDays,
}

impl Calendar {
    /// From config values: `tz = "Europe/Berlin"`, `days = ["mon", …]`,
    /// `hours = "09:00-17:00"`, `holidays = ["2026-12-25"]`.
    pub fn new(
        tz: &str,
        days: &[String],
        hours: &str,
        holidays: &[String],
    ) -> Result<Calendar, CalendarError> {
        let tz: Tz = tz.parse().map_err(|_| CalendarError::Zone(tz.to_string()))?;
        let mut set = [false; 7];
        for d in days {
            let wd: Weekday = d.parse().map_err(|_| CalendarError::Day(d.clone()))?;
            set[wd.num_days_from_monday() as usize] = true;
        }
        if !set.contains(&true) {
            return Err(CalendarError::NoDays);
        }
        let (open, close) = hours
            .split_once('-')
            .and_then(|(a, b)| {
                let t = |s: &str| NaiveTime::parse_from_str(s.trim(), "%H:%M").ok();
                Some((t(a)?, t(b)?))
            })
            .filter(|(a, b)| a < b)
            .ok_or_else(|| CalendarError::Hours(hours.to_string()))?;
        let holidays = holidays
            .iter()
            .map(|h| NaiveDate::parse_from_str(h, "%Y-%m-%d").map_err(|_| CalendarError::Holiday(h.clone())))
            .collect::<Result<_, _>>()?;
        Ok(Calendar {
            tz,
            days: set,
            open,
            close,
            holidays,
        })
    }

    /// The calendar's time zone (rotations that name a calendar hand off in it).
    pub fn tz(&self) -> Tz {
        self.tz
    }

    fn local(&self, at: Millis) -> DateTime<Tz> {
        Utc.timestamp_millis_opt(at)
            .single()
            .unwrap_or_default()
            .with_timezone(&self.tz)
    }

    fn working_day(&self, d: NaiveDate) -> bool {
        self.days[d.weekday().num_days_from_monday() as usize] && !self.holidays.contains(&d)
    }

    /// The instant `t` on local day `d` (a time skipped by a DST change moves
    /// to the first valid instant after it).
    fn instant(&self, d: NaiveDate, t: NaiveTime) -> Millis {
        let mut naive = d.and_time(t);
        for _ in 0..4 {
            if let Some(x) = self.tz.from_local_datetime(&naive).earliest() {
                return x.timestamp_millis();
            }
            naive += Span::minutes(30);
        }
        Utc.from_utc_datetime(&d.and_time(t)).timestamp_millis()
    }

    /// `(opening, closing)` of local day `d`, if it is a working day.
    fn window(&self, d: NaiveDate) -> Option<(Millis, Millis)> {
        self.working_day(d)
            .then(|| (self.instant(d, self.open), self.instant(d, self.close)))
    }

    /// Is the calendar open at `at`?
    pub fn is_open(&self, at: Millis) -> bool {
        self.window(self.local(at).date_naive())
            .is_some_and(|(o, c)| o <= at && at < c)
    }

    /// `at` itself when open, else the next opening.
    pub fn next_open(&self, at: Millis) -> Millis {
        let today = self.local(at).date_naive();
        for i in 0..HORIZON_DAYS {
            let d = today + Span::days(i);
            match self.window(d) {
                Some((_, c)) if at >= c => continue,
                Some((o, _)) => return o.max(at),
                None => continue,
            }
        }
        at
    }

    /// The first opening on a local day later than `at`'s.
    pub fn next_business_day(&self, at: Millis) -> Millis {
        let today = self.local(at).date_naive();
        (1..HORIZON_DAYS)
            .find_map(|i| self.window(today + Span::days(i)).map(|(o, _)| o))
            .unwrap_or(at)
    }

    /// `at` plus `d` of open time: the clock runs only while the calendar is
    /// open (a 4 h delay from Friday 15:00 on a 9–17 calendar ends Monday 11:00).
    pub fn add_open(&self, at: Millis, d: Duration) -> Millis {
        let mut left = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut t = self.next_open(at);
        for _ in 0..HORIZON_DAYS * 2 {
            let day = self.local(t).date_naive();
            let Some((_, close)) = self.window(day) else {
                t = self.next_open(t);
                continue;
            };
            if t + left <= close {
                return t + left;
            }
            left -= close - t;
            t = self.next_open(close);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> Calendar {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec();
        Calendar::new("America/New_York", &days, "09:00-17:00", &["2026-12-25".into()]).unwrap()
    }

    /// Milliseconds of a New York local time.
    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> Millis {
        chrono_tz::America::New_York
            .with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn open_hours_follow_the_zone_not_the_host() {
        let c = office();
        // Tue 2026-12-01: 09:00 New York is 14:00 UTC.
        assert!(!c.is_open(ny(2026, 12, 1, 8, 59)));
        assert!(c.is_open(ny(2026, 12, 1, 9, 0)));
        assert!(!c.is_open(ny(2026, 12, 1, 17, 0)));
        assert!(!c.is_open(ny(2026, 12, 5, 12, 0)), "Saturday");
        assert!(!c.is_open(ny(2026, 12, 25, 12, 0)), "holiday");
    }

    #[test]
    fn next_opening_skips_nights_weekends_and_holidays() {
        let c = office();
        let fri_evening = ny(2026, 12, 4, 18, 0);
        assert_eq!(c.next_open(fri_evening), ny(2026, 12, 7, 9, 0));
        let open = ny(2026, 12, 1, 10, 0);
        assert_eq!(c.next_open(open), open, "open now: now");
        assert_eq!(c.next_open(ny(2026, 12, 24, 18, 0)), ny(2026, 12, 28, 9, 0));
        assert_eq!(c.next_business_day(ny(2026, 12, 1, 10, 0)), ny(2026, 12, 2, 9, 0));
        assert_eq!(c.next_business_day(ny(2026, 12, 4, 8, 0)), ny(2026, 12, 7, 9, 0));
    }

    #[test]
    fn business_time_runs_only_while_open() {
        let c = office();
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(c.add_open(ny(2026, 12, 4, 15, 0), h(4)), ny(2026, 12, 7, 11, 0));
        assert_eq!(c.add_open(ny(2026, 12, 1, 10, 0), h(1)), ny(2026, 12, 1, 11, 0));
        assert_eq!(c.add_open(ny(2026, 12, 1, 20, 0), h(0)), ny(2026, 12, 2, 9, 0));
    }

    #[test]
    fn daylight_saving_changes_keep_local_hours() {
        let c = office();
        // Before and after the March change, 09:00 local stays the opening.
        assert_eq!(c.next_open(ny(2026, 3, 6, 18, 0)), ny(2026, 3, 9, 9, 0));
        assert_eq!(
            ny(2026, 3, 9, 9, 0) - ny(2026, 3, 6, 9, 0),
            (3 * 24 - 1) * 3_600_000
        );
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        let days = vec!["mon".to_string()];
        assert_eq!(
            Calendar::new("Mars/Olympus", &days, "09:00-17:00", &[]).unwrap_err(),
            CalendarError::Zone("Mars/Olympus".into())
        );
        assert!(matches!(
            Calendar::new("UTC", &["funday".into()], "09:00-17:00", &[]),
            Err(CalendarError::Day(_))
        ));
        assert!(matches!(
            Calendar::new("UTC", &days, "17:00-09:00", &[]),
            Err(CalendarError::Hours(_))
        ));
        assert!(matches!(
            Calendar::new("UTC", &[], "09:00-17:00", &[]),
            Err(CalendarError::NoDays)
        ));
        assert!(matches!(
            Calendar::new("UTC", &days, "09:00-17:00", &["25.12.2026".into()]),
            Err(CalendarError::Holiday(_))
        ));
    }
}
