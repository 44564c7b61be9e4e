//! Escalation policy math. **Pure**: a severity level's policy, the instant
//! an incident was declared, its state and an optional business calendar →
//! when each step is due and which step fires next. The incident engine puts
//! the next due step on the timer table; nothing here does I/O or reads the
//! clock. Shapes follow runbooks.md §3 (`[policies.<profile>.<level>]`).

use crate::calendar::Calendar;
use crate::clock::Millis;
use std::time::Duration;

/// Who a step pages. `rotation:` resolves at the instant the page is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Rotation(String),
    Role(String),
    Person(String),
}

impl Target {
    /// `rotation:primary`, `role:eng-manager`, `person:alice`.
    pub fn parse(s: &str) -> Result<Target, String> {
        let (kind, name) = s.split_once(':').filter(|(_, n)| !n.is_empty()).ok_or_else(|| {
            format!("step target `{s}` must be rotation:<name>, role:<role> or person:<name>")
        })?;
        match kind {
            "rotation" => Ok(Target::Rotation(name.into())),
            "role" => Ok(Target::Role(name.into())),
            "person" => Ok(Target::Person(name.into())),
            _ => Err(format!(
                "step target `{s}`: unknown kind `{kind}` (rotation, role or person)"
            )),
        }
    }
}

/// When a step fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// This long after the incident was declared (business time when the
    /// level pages in business hours only).
    After(Duration),
    /// This long after the step before is due (`from = "previous"`; the
    /// declaration for the first step).
    AfterPrevious(Duration),
    /// At the first opening of the calendar on a later day than the step before.
    NextBusinessDay,
}

/// Until what a step keeps firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Paging steps: cancelled by an ack.
    Ack,
    /// Management notices: still fire after an ack while unresolved.
    Resolve,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pages {
    Always,
    /// Pages wait for the calendar to open; delays count business time.
    Business,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub when: When,
    pub to: Vec<Target>,
    pub stop: Stop,
}

/// The policy of one severity level of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub label: String,
    pub ack: Duration,
    pub update_every: Option<Duration>,
    pub pages: Pages,
    pub steps: Vec<Step>,
}

fn after(cal: Option<&Calendar>, pages: Pages, from: Millis, d: Duration) -> Millis {
    match (pages, cal) {
        (Pages::Business, Some(c)) => c.add_open(from, d),
        _ => from.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)),
    }
}

impl Level {
    /// When each step is due for an incident declared at `declared`.
    pub fn schedule(&self, declared: Millis, cal: Option<&Calendar>) -> Vec<Millis> {
        let mut prev = declared;
        self.steps
            .iter()
            .map(|s| {
                let due = match s.when {
                    // A page never falls due while the calendar is closed: a
                    // delay that ends exactly at closing pages at the next opening.
                    When::After(d) => self.delay(cal, declared, d),
                    When::AfterPrevious(d) => self.delay(cal, prev, d),
                    When::NextBusinessDay => match cal {
                        Some(c) => c.next_business_day(prev),
                        None => prev + 86_400_000,
                    },
                };
                prev = due;
                due
            })
            .collect()
    }

    /// `d` after `from`. A page never falls due while the calendar is
    /// closed: a delay that ends exactly at closing pages at the next opening.
    fn delay(&self, cal: Option<&Calendar>, from: Millis, d: Duration) -> Millis {
        match (self.pages, cal) {
            (Pages::Business, Some(c)) => c.next_open(c.add_open(from, d)),
            _ => after(cal, self.pages, from, d),
        }
    }

    /// The ack deadline of an incident declared at `declared`.
    pub fn ack_deadline(&self, declared: Millis, cal: Option<&Calendar>) -> Millis {
        after(cal, self.pages, declared, self.ack)
    }

    /// The next step to fire once `fired` steps have fired: its index and due
    /// time, or `None` when nothing more fires (resolved, or acked with only
    /// ack-stopped steps left).
    pub fn next(
        &self,
        declared: Millis,
        cal: Option<&Calendar>,
        fired: usize,
        acked: bool,
        resolved: bool,
    ) -> Option<(usize, Millis)> {
        if resolved {
            return None;
        }
        let times = self.schedule(declared, cal);
        (fired..self.steps.len())
            .find(|&i| !(acked && self.steps[i].stop == Stop::Ack))
            .map(|i| (i, times[i]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const MIN: u64 = 60;

    fn step(when: When, to: &str, stop: Stop) -> Step {
        Step {
            when,
            to: vec![Target::parse(to).unwrap()],
            stop,
        }
    }

    /// cap P0 (runbooks.md §3): 0 primary · 5m secondary · 15m eng-manager · 30m exec.
    fn cap_p0() -> Level {
        let at = |m: u64| When::After(Duration::from_secs(m * MIN));
        Level {
            label: "P0".into(),
            ack: Duration::from_secs(5 * MIN),
            update_every: Some(Duration::from_secs(15 * MIN)),
            pages: Pages::Always,
            steps: vec![
                step(at(0), "rotation:primary", Stop::Ack),
                step(at(5), "rotation:secondary", Stop::Ack),
                step(at(15), "role:eng-manager", Stop::Resolve),
                step(at(30), "role:exec", Stop::Resolve),
            ],
        }
    }

    #[test]
    fn steps_are_due_after_declaration() {
        let p = cap_p0();
        let m = 60_000;
        assert_eq!(
            p.schedule(1_000, None),
            vec![1_000, 1_000 + 5 * m, 1_000 + 15 * m, 1_000 + 30 * m]
        );
        assert_eq!(p.ack_deadline(0, None), 5 * m);
    }

    #[test]
    fn an_ack_stops_paging_but_not_management_notices() {
        let p = cap_p0();
        let m = 60_000;
        assert_eq!(p.next(0, None, 1, false, false), Some((1, 5 * m)));
        assert_eq!(
            p.next(0, None, 1, true, false),
            Some((2, 15 * m)),
            "acked: skip secondary"
        );
        assert_eq!(p.next(0, None, 4, true, false), None);
        assert_eq!(p.next(0, None, 0, false, true), None, "resolved: nothing fires");
    }

    #[test]
    fn business_levels_wait_for_the_calendar() {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec();
        let cal = Calendar::new("Europe/Berlin", &days, "09:00-17:00", &[]).unwrap();
        // cap P3: 0 primary · next business day secondary; ack 4h business.
        let p3 = Level {
            label: "P3".into(),
            ack: Duration::from_secs(4 * 60 * MIN),
            update_every: None,
            pages: Pages::Business,
            steps: vec![
                step(When::After(Duration::ZERO), "rotation:primary", Stop::Ack),
                step(When::NextBusinessDay, "rotation:secondary", Stop::Ack),
            ],
        };
        let berlin = |d: u32, h: u32| {
            chrono_tz::Europe::Berlin
                .with_ymd_and_hms(2026, 12, d, h, 0, 0)
                .single()
                .unwrap()
                .timestamp_millis()
        };
        // Declared Friday 20:00: the first page waits for Monday 09:00, the
        // second for Tuesday 09:00; the ack deadline is Monday 13:00.
        let times = p3.schedule(berlin(4, 20), Some(&cal));
        assert_eq!(times, vec![berlin(7, 9), berlin(8, 9)]);
        assert_eq!(p3.ack_deadline(berlin(4, 20), Some(&cal)), berlin(7, 13));
    }

    #[test]
    fn from_previous_counts_from_the_step_before() {
        // pdf's chain read per level (runbooks.md §3): L2 15m after L1, L3
        // 30m after L2, L4 1h after L3 → 0, 15m, 45m, 1h45m.
        let mut p = cap_p0();
        for (s, m) in p.steps.iter_mut().zip([0, 15, 30, 60]) {
            s.when = When::AfterPrevious(Duration::from_secs(m * MIN));
        }
        let m = 60_000;
        assert_eq!(p.schedule(0, None), vec![0, 15 * m, 45 * m, 105 * m]);
        // Mixed: a step counted from the declaration after relative ones.
        p.steps[3].when = When::After(Duration::from_secs(30 * MIN));
        assert_eq!(p.schedule(0, None)[3], 30 * m);
    }

    #[test]
    fn targets_are_checked() {
        assert_eq!(
            Target::parse("person:alice").unwrap(),
            Target::Person("alice".into())
        );
        assert!(Target::parse("team:sre")
            .unwrap_err()
            .contains("unknown kind `team`"));
        assert!(Target::parse("rotation:").is_err());
        assert!(Target::parse("alice").is_err());
    }

    #[test]
    fn a_business_page_due_at_closing_waits_for_the_next_opening() {
        let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec();
        let cal = Calendar::new("UTC", &days, "09:00-17:00", &[]).unwrap();
        let eight = When::After(Duration::from_secs(8 * 60 * MIN));
        let p = Level {
            label: "P3".into(),
            ack: Duration::from_secs(8 * 60 * MIN),
            update_every: None,
            pages: Pages::Business,
            steps: vec![step(eight, "rotation:secondary", Stop::Ack)],
        };
        let utc = |d: u32, h: u32| {
            chrono::Utc
                .with_ymd_and_hms(2026, 12, d, h, 0, 0)
                .single()
                .unwrap()
                .timestamp_millis()
        };
        // Tue 09:00 + 8h of open time is Tue 17:00, when the calendar closes:
        // the deadline stays there, the page moves to Wednesday's opening.
        assert!(!cal.is_open(utc(1, 17)));
        assert_eq!(p.ack_deadline(utc(1, 9), Some(&cal)), utc(1, 17));
        assert_eq!(p.schedule(utc(1, 9), Some(&cal)), vec![utc(2, 9)]);
    }
}
