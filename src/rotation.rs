//! On-call rotations: who is on call at an instant. **Pure**: plain data and
//! an instant in milliseconds since the epoch in, an answer out; nothing does
//! I/O or reads the clock. The incident engine asks at the instant each page
//! is sent (`rotation:<name>` resolves then), `/oncall` lists the next shifts.
//!
//! The rules, which decide who is on call and therefore must not drift:
//!
//! - **Zone.** Handoffs are local wall times in the rotation's zone: its `tz`,
//!   else its calendar's zone, else **UTC** (never the host's zone).
//! - **Anchor.** Shift 0 starts at the first handoff (`mon 09:00`: weekday and
//!   local time) on or after local midnight of the rotation's `start` date,
//!   default **2024-01-01** (a Monday); shift 0 belongs to `members[0]`, shift
//!   `k` to `members[k mod n]`, for negative `k` too. Reordering or adding
//!   members therefore moves the assignment; set `start` to pin it.
//! - **Shifts.** Shift `k` starts at the anchor's local wall time plus `k ×
//!   length` *on the local wall clock*, so a `1w` rotation hands off at 09:00
//!   local on both sides of a daylight-saving change (that week is an hour
//!   shorter or longer), a `1d` one every day at 09:00, a `12h` one at 09:00
//!   and 21:00. A wall time skipped by a DST change is read with the offset in
//!   force before the gap (02:30 becomes 03:30, as RFC 5545 §3.3.5 does); a
//!   repeated wall time means its first occurrence.
//! - **Overrides.** An [`Override`] puts a person on call for `[from, until)`;
//!   where several cover an instant, the latest created wins (`created`, then
//!   the later in the slice). A [`Shift`]'s `from`/`until` are the instants
//!   where who is on call (the override or the scheduled shift) changes.

use crate::clock::Millis;
use chrono::{
    DateTime, Datelike, Duration as Span, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Utc, Weekday,
};
use chrono_tz::Tz;
use std::time::Duration;

/// The anchor date when a rotation names no `start`.
pub const DEFAULT_START: &str = "2024-01-01";

/// The shortest shift accepted.
pub const MIN_LENGTH: Duration = Duration::from_secs(60);

/// Instants are clamped to years 1900–9999 so date arithmetic cannot overflow.
const MIN_AT: Millis = -2_208_988_800_000;
const MAX_AT: Millis = 253_402_300_799_000;

/// Why a rotation definition is unusable (shown as `file:line: …`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    #[error("needs `members` (people, in hand-off order)")]
    NoMembers,
    #[error("handoff `{0}` must look like `mon 09:00` (weekday, local 24-hour time)")]
    Handoff(String),
    #[error("length must be at least 1m, not `{0}`")]
    Length(String),
    #[error("start `{0}` is not a date like 2026-12-07")]
    Start(String),
}

/// A checked rotation: `[rotations.<name>]` with its handoff, zone and anchor
/// resolved once, so lookups do no parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    name: String,
    members: Vec<String>,
    length: Duration,
    handoff: String,
    zone: Tz,
    /// Local wall time at which shift 0 starts.
    anchor: NaiveDateTime,
    /// `length` in milliseconds (≥ [`MIN_LENGTH`]).
    step_ms: i64,
}

/// A temporary swap: `person` is on call in `rotation` for `[from, until)`.
/// `/oncall override <person> <duration>` makes one with [`Override::starting`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Override {
    pub rotation: String,
    pub person: String,
    pub from: Millis,
    pub until: Millis,
    /// When it was created: the latest created override covering an instant wins.
    pub created: Millis,
}

impl Override {
    /// An override from `now` for `d` (what `/oncall override` creates).
    pub fn starting(rotation: &str, person: &str, now: Millis, d: Duration) -> Override {
        let len = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Override {
            rotation: rotation.to_string(),
            person: person.to_string(),
            from: now,
            until: now.saturating_add(len),
            created: now,
        }
    }

    fn covers(&self, at: Millis) -> bool {
        self.from <= at && at < self.until
    }
}

/// Who is on call from `from` until `until` (exclusive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shift {
    pub person: String,
    pub from: Millis,
    pub until: Millis,
    /// `true` when an override, not the schedule, puts `person` on call.
    pub overridden: bool,
}

/// What decides who is on call during a stretch of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// Scheduled shift `k`.
    Scheduled(i64),
    /// The override at this index of the slice.
    Override(usize),
}

impl Rotation {
    /// Checks a definition: `handoff = "mon 09:00"`, `length` ≥ 1m, optional
    /// `start = "2026-12-07"` (default [`DEFAULT_START`]), and the resolved zone.
    pub fn new(
        name: &str,
        members: Vec<String>,
        length: Duration,
        handoff: &str,
        start: Option<&str>,
        zone: Tz,
    ) -> Result<Rotation, RotationError> {
        if members.is_empty() {
            return Err(RotationError::NoMembers);
        }
        let (day, time) = parse_handoff(handoff).ok_or_else(|| RotationError::Handoff(handoff.into()))?;
        let step_ms = i64::try_from(length.as_millis())
            .ok()
            .filter(|_| length >= MIN_LENGTH)
            // Shorter than a century keeps every shift index in range.
            .filter(|ms| *ms <= 100 * 366 * 86_400_000)
            .ok_or_else(|| RotationError::Length(crate::duration::format(length)))?;
        let start_s = start.unwrap_or(DEFAULT_START);
        let start_day = NaiveDate::parse_from_str(start_s.trim(), "%Y-%m-%d")
            .ok()
            .filter(|d| (1900..=9000).contains(&d.year()))
            .ok_or_else(|| RotationError::Start(start_s.into()))?;
        let ahead = (7 + day.num_days_from_monday() - start_day.weekday().num_days_from_monday()) % 7;
        let anchor = (start_day + Span::days(i64::from(ahead))).and_time(time);
        Ok(Rotation {
            name: name.to_string(),
            members,
            length,
            handoff: handoff.to_string(),
            zone,
            anchor,
            step_ms,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// In hand-off order: shift `k` is `members[k mod n]`.
    pub fn members(&self) -> &[String] {
        &self.members
    }

    pub fn length(&self) -> Duration {
        self.length
    }

    /// As written, e.g. `mon 09:00`.
    pub fn handoff(&self) -> &str {
        &self.handoff
    }

    /// The zone handoffs are read in.
    pub fn zone(&self) -> Tz {
        self.zone
    }

    /// The instant scheduled shift 0 starts (member 0's first shift).
    pub fn anchor(&self) -> Millis {
        self.start_of(0)
    }

    /// The instant scheduled shift `k` starts.
    fn start_of(&self, k: i64) -> Millis {
        let naive = self.anchor + Span::milliseconds(k.saturating_mul(self.step_ms));
        instant(self.zone, naive)
    }

    /// The scheduled shift index covering `at`.
    fn index_at(&self, at: Millis) -> i64 {
        let local = DateTime::<Utc>::from_timestamp_millis(at)
            .unwrap_or_default()
            .with_timezone(&self.zone)
            .naive_local();
        let mut k = (local - self.anchor).num_milliseconds().div_euclid(self.step_ms);
        // Wall-clock and elapsed time differ by at most a DST offset: a few steps.
        while self.start_of(k) > at {
            k -= 1;
        }
        while self.start_of(k + 1) <= at {
            k += 1;
        }
        k
    }

    fn member(&self, k: i64) -> &str {
        let n = i64::try_from(self.members.len()).unwrap_or(i64::MAX);
        let i = usize::try_from(k.rem_euclid(n)).unwrap_or(0);
        &self.members[i]
    }

    /// The scheduled shift covering `at`, overrides ignored.
    pub fn scheduled(&self, at: Millis) -> Shift {
        let at = at.clamp(MIN_AT, MAX_AT);
        let k = self.index_at(at);
        Shift {
            person: self.member(k).to_string(),
            from: self.start_of(k),
            until: self.start_of(k + 1),
            overridden: false,
        }
    }

    fn source(&self, overrides: &[Override], at: Millis) -> Source {
        overrides
            .iter()
            .enumerate()
            .filter(|(_, o)| o.rotation == self.name && o.covers(at))
            .max_by_key(|(i, o)| (o.created, *i))
            .map_or_else(
                || Source::Scheduled(self.index_at(at)),
                |(i, _)| Source::Override(i),
            )
    }

    /// Instants of this rotation's overrides where who is on call may change.
    fn edges<'a>(&'a self, overrides: &'a [Override]) -> impl Iterator<Item = Millis> + 'a {
        overrides
            .iter()
            .filter(|o| o.rotation == self.name && o.from < o.until)
            .flat_map(|o| [o.from, o.until])
    }

    /// Who is on call at `at`, overrides applied, and from when until when.
    pub fn on_call(&self, overrides: &[Override], at: Millis) -> Shift {
        let at = at.clamp(MIN_AT, MAX_AT);
        let here = self.source(overrides, at);
        // Forward: the next instant where the source changes.
        let mut t = at;
        let until = loop {
            let k = self.index_at(t);
            let next = self
                .edges(overrides)
                .filter(|e| *e > t)
                .fold(self.start_of(k + 1), Millis::min);
            if next >= MAX_AT || self.source(overrides, next) != here {
                break next;
            }
            t = next;
        };
        // Backward: the first instant of the stretch ending at `at`.
        let mut t = at;
        let from = loop {
            let k = self.index_at(t);
            let edge = self
                .edges(overrides)
                .filter(|e| *e <= t)
                .fold(self.start_of(k), Millis::max);
            if edge <= MIN_AT || self.source(overrides, edge - 1) != here {
                break edge;
            }
            t = edge - 1;
        };
        let (person, overridden) = match here {
            Source::Override(i) => (overrides[i].person.clone(), true),
            Source::Scheduled(k) => (self.member(k).to_string(), false),
        };
        Shift {
            person,
            from,
            until,
            overridden,
        }
    }

    /// The next instant after `at` where who is on call changes.
    pub fn next_handoff(&self, overrides: &[Override], at: Millis) -> Millis {
        self.on_call(overrides, at).until
    }

    /// The shift covering `at` and the `n - 1` after it (for `/oncall`).
    pub fn upcoming(&self, overrides: &[Override], at: Millis, n: usize) -> Vec<Shift> {
        let mut out: Vec<Shift> = Vec::with_capacity(n);
        let mut t = at;
        while out.len() < n {
            let s = self.on_call(overrides, t);
            if out.last().is_some_and(|l| l.until == s.until) {
                break; // the end of representable time
            }
            t = s.until;
            out.push(s);
        }
        out
    }
}

/// Who is on call in `rot` at `at`, overrides applied ([`Rotation::on_call`]).
pub fn on_call(rot: &Rotation, overrides: &[Override], at: Millis) -> Shift {
    rot.on_call(overrides, at)
}

/// The next instant after `at` where who is on call in `rot` changes.
pub fn next_handoff(rot: &Rotation, overrides: &[Override], at: Millis) -> Millis {
    rot.next_handoff(overrides, at)
}

/// The shift covering `at` and the `n - 1` after it.
pub fn upcoming(rot: &Rotation, overrides: &[Override], at: Millis, n: usize) -> Vec<Shift> {
    rot.upcoming(overrides, at, n)
}

/// `mon 09:00` → (Monday, 09:00).
pub fn parse_handoff(s: &str) -> Option<(Weekday, NaiveTime)> {
    let (day, time) = s.trim().split_once(' ')?;
    let day = day.parse::<Weekday>().ok()?;
    let time = NaiveTime::parse_from_str(time.trim(), "%H:%M").ok()?;
    Some((day, time))
}

/// The instant of local wall time `naive` in `zone`: a repeated time is its
/// first occurrence; a skipped one is read with the offset before the gap.
fn instant(zone: Tz, naive: NaiveDateTime) -> Millis {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
        LocalResult::None => {
            // A day before in UTC terms is before the gap (offsets are < 1 day).
            let before = zone
                .offset_from_utc_datetime(&(naive - Span::days(1)))
                .fix()
                .local_minus_utc();
            naive.and_utc().timestamp_millis() - i64::from(before) * 1000
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;
    const D: i64 = 24 * H;

    fn local(zone: Tz, y: i32, m: u32, d: u32, h: u32, min: u32) -> Millis {
        zone.with_ymd_and_hms(y, m, d, h, min, 0)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    fn ny(y: i32, m: u32, d: u32, h: u32, min: u32) -> Millis {
        local(chrono_tz::America::New_York, y, m, d, h, min)
    }

    fn berlin(y: i32, m: u32, d: u32, h: u32, min: u32) -> Millis {
        local(chrono_tz::Europe::Berlin, y, m, d, h, min)
    }

    fn rot(members: &[&str], length: &str, handoff: &str, zone: Tz) -> Rotation {
        let members = members.iter().map(|m| m.to_string()).collect();
        let length = crate::duration::parse(length).unwrap();
        Rotation::new("primary", members, length, handoff, None, zone).unwrap()
    }

    fn weekly_ny() -> Rotation {
        rot(&["alice", "bob"], "1w", "mon 09:00", chrono_tz::America::New_York)
    }

    fn over(person: &str, from: Millis, until: Millis, created: Millis) -> Override {
        Override {
            rotation: "primary".into(),
            person: person.into(),
            from,
            until,
            created,
        }
    }

    #[test]
    fn the_anchor_is_the_first_handoff_from_2024_01_01() {
        let r = weekly_ny();
        assert_eq!(r.anchor(), ny(2024, 1, 1, 9, 0));
        assert_eq!(r.scheduled(ny(2024, 1, 1, 9, 0)).person, "alice");
        assert_eq!(r.scheduled(ny(2024, 1, 1, 9, 0) - 1).person, "bob", "shift -1");
        // A `start` moves the anchor to the first handoff on or after it.
        let fri = Rotation::new(
            "p",
            vec!["alice".into(), "bob".into()],
            Duration::from_secs(7 * 86_400),
            "fri 17:30",
            Some("2026-12-01"),
            chrono_tz::UTC,
        )
        .unwrap();
        assert_eq!(fri.anchor(), local(chrono_tz::UTC, 2026, 12, 4, 17, 30));
    }

    #[test]
    fn a_handoff_happens_at_the_exact_instant() {
        let r = weekly_ny();
        let handoff = ny(2026, 12, 7, 9, 0);
        let before = r.on_call(&[], handoff - 1);
        let at = r.on_call(&[], handoff);
        assert_ne!(before.person, at.person);
        assert_eq!(before.until, handoff);
        assert_eq!(at.from, handoff);
        assert_eq!(at.until, ny(2026, 12, 14, 9, 0));
        assert_eq!(r.next_handoff(&[], handoff - 1), handoff);
        assert_eq!(r.next_handoff(&[], handoff), ny(2026, 12, 14, 9, 0));
        assert!(!at.overridden);
    }

    #[test]
    fn members_cycle_in_order() {
        let r = rot(&["a", "b", "c"], "1w", "wed 10:00", chrono_tz::Europe::Berlin);
        let people: Vec<String> = r
            .upcoming(&[], berlin(2026, 12, 2, 10, 0), 7)
            .into_iter()
            .map(|s| s.person)
            .collect();
        let first = people[0].clone();
        let i = ["a", "b", "c"].iter().position(|p| *p == first).unwrap();
        let expect: Vec<String> = (0..7).map(|j| ["a", "b", "c"][(i + j) % 3].to_string()).collect();
        assert_eq!(people, expect);
        // Shifts are back to back.
        let shifts = r.upcoming(&[], berlin(2026, 12, 2, 10, 0), 3);
        assert_eq!(shifts[0].until, shifts[1].from);
        assert_eq!(shifts[1].from, berlin(2026, 12, 9, 10, 0));
    }

    #[test]
    fn weekly_handoffs_keep_local_time_across_dst_in_new_york() {
        let r = weekly_ny();
        // DST starts Sun 2026-03-08, ends Sun 2026-11-01.
        let spring = r.on_call(&[], ny(2026, 3, 5, 12, 0));
        assert_eq!(spring.from, ny(2026, 3, 2, 9, 0));
        assert_eq!(spring.until, ny(2026, 3, 9, 9, 0));
        assert_eq!(spring.until - spring.from, 7 * D - H, "an hour shorter");
        // 2026-03-02 is 113 weeks after the anchor: member 1.
        assert_eq!(spring.person, "bob");
        let after = r.on_call(&[], ny(2026, 3, 9, 9, 0));
        assert_ne!(after.person, spring.person);
        assert_eq!(after.until, ny(2026, 3, 16, 9, 0));
        let autumn = r.on_call(&[], ny(2026, 10, 28, 12, 0));
        assert_eq!(autumn.until, ny(2026, 11, 2, 9, 0));
        assert_eq!(autumn.until - autumn.from, 7 * D + H, "an hour longer");
        // 09:00 local is 14:00 UTC in winter, 13:00 UTC in summer.
        assert_eq!(spring.from % D, 14 * H);
        assert_eq!(after.from % D, 13 * H);
    }

    #[test]
    fn weekly_handoffs_keep_local_time_across_dst_in_berlin() {
        let r = rot(&["alice", "bob"], "1w", "mon 09:00", chrono_tz::Europe::Berlin);
        // DST starts Sun 2026-03-29, ends Sun 2026-10-25.
        let s = r.on_call(&[], berlin(2026, 3, 28, 12, 0));
        assert_eq!(
            (s.from, s.until),
            (berlin(2026, 3, 23, 9, 0), berlin(2026, 3, 30, 9, 0))
        );
        assert_eq!(
            r.on_call(&[], berlin(2026, 3, 30, 9, 0)).until,
            berlin(2026, 4, 6, 9, 0)
        );
        let a = r.on_call(&[], berlin(2026, 10, 25, 12, 0));
        assert_eq!(
            (a.from, a.until),
            (berlin(2026, 10, 19, 9, 0), berlin(2026, 10, 26, 9, 0))
        );
        assert_eq!(a.until - a.from, 7 * D + H);
        // Two members alternate through both changes.
        let people: Vec<String> = r
            .upcoming(&[], berlin(2026, 3, 16, 9, 0), 4)
            .into_iter()
            .map(|s| s.person)
            .collect();
        assert_eq!(people[0], people[2]);
        assert_eq!(people[1], people[3]);
        assert_ne!(people[0], people[1]);
    }

    #[test]
    fn a_daily_rotation_hands_off_every_day_at_the_same_local_time() {
        let r = rot(&["a", "b", "c"], "1d", "mon 08:00", chrono_tz::America::New_York);
        let shifts = r.upcoming(&[], ny(2026, 3, 6, 12, 0), 4);
        let froms: Vec<Millis> = shifts.iter().map(|s| s.from).collect();
        assert_eq!(
            froms,
            vec![
                ny(2026, 3, 6, 8, 0),
                ny(2026, 3, 7, 8, 0),
                ny(2026, 3, 8, 8, 0),
                ny(2026, 3, 9, 8, 0)
            ]
        );
        assert_eq!(
            shifts[2].until - shifts[2].from,
            D,
            "the DST Sunday 08:00 → Monday 08:00"
        );
        assert_eq!(
            shifts[1].until - shifts[1].from,
            D - H,
            "the night the clocks go forward"
        );
        let names: Vec<&str> = shifts.iter().map(|s| s.person.as_str()).collect();
        assert_ne!(names[0], names[1]);
        assert_eq!(names[0], names[3]);
    }

    #[test]
    fn a_twelve_hour_rotation_hands_off_twice_a_day() {
        let r = rot(&["day", "night"], "12h", "mon 09:00", chrono_tz::UTC);
        let s = r.on_call(&[], local(chrono_tz::UTC, 2026, 12, 2, 22, 0));
        assert_eq!(s.from, local(chrono_tz::UTC, 2026, 12, 2, 21, 0));
        assert_eq!(s.person, "night");
        assert_eq!(r.on_call(&[], s.until).person, "day");
    }

    #[test]
    fn a_handoff_in_a_skipped_hour_uses_the_offset_before_the_gap() {
        // 02:30 does not exist in New York on 2026-03-08: it is read as 03:30 EDT.
        let r = rot(&["a", "b"], "1w", "sun 02:30", chrono_tz::America::New_York);
        let s = r.on_call(&[], ny(2026, 3, 7, 12, 0));
        assert_eq!(s.until, ny(2026, 3, 8, 3, 30));
        let next = r.on_call(&[], s.until);
        assert_eq!(next.until, ny(2026, 3, 15, 2, 30));
    }

    #[test]
    fn an_override_covers_its_window_only() {
        let r = weekly_ny();
        let mon = ny(2026, 12, 7, 9, 0);
        let scheduled = r.on_call(&[], mon + H).person;
        let o = [over("carol", mon + 2 * H, mon + 4 * H, mon)];
        let s = r.on_call(&o, mon + 3 * H);
        assert_eq!(
            s,
            Shift {
                person: "carol".into(),
                from: mon + 2 * H,
                until: mon + 4 * H,
                overridden: true
            }
        );
        // Around it the scheduled shift, cut at the override's edges.
        let before = r.on_call(&o, mon + H);
        assert_eq!(
            (before.person.as_str(), before.from, before.until),
            (scheduled.as_str(), mon, mon + 2 * H)
        );
        let after = r.on_call(&o, mon + 4 * H);
        assert_eq!((after.from, after.until), (mon + 4 * H, ny(2026, 12, 14, 9, 0)));
        assert!(!after.overridden);
        assert_eq!(r.next_handoff(&o, mon), mon + 2 * H);
        // Expired: the schedule again.
        assert_eq!(r.on_call(&o, mon + 5 * H).person, scheduled);
        // Another rotation's override does not apply.
        let other = [Override {
            rotation: "secondary".into(),
            ..o[0].clone()
        }];
        assert!(!r.on_call(&other, mon + 3 * H).overridden);
    }

    #[test]
    fn the_latest_created_override_wins() {
        let r = weekly_ny();
        let t = ny(2026, 12, 8, 0, 0);
        // dave covers a long window; erin, created later, a nested one.
        let o = [
            over("dave", t, t + 10 * H, t),
            over("erin", t + 2 * H, t + 4 * H, t + H),
        ];
        assert_eq!(r.on_call(&o, t + H).person, "dave");
        let e = r.on_call(&o, t + 3 * H);
        assert_eq!(
            (e.person.as_str(), e.from, e.until),
            ("erin", t + 2 * H, t + 4 * H)
        );
        let d = r.on_call(&o, t + 5 * H);
        assert_eq!(
            (d.person.as_str(), d.from, d.until),
            ("dave", t + 4 * H, t + 10 * H)
        );
        // Created earlier than the long one: hidden under it.
        let o = [
            over("dave", t, t + 10 * H, t + H),
            over("erin", t + 2 * H, t + 4 * H, t),
        ];
        let d = r.on_call(&o, t + 3 * H);
        assert_eq!((d.person.as_str(), d.from, d.until), ("dave", t, t + 10 * H));
        // Same creation time: the later in the slice.
        let o = [over("dave", t, t + H, t), over("erin", t, t + H, t)];
        assert_eq!(r.on_call(&o, t).person, "erin");
    }

    #[test]
    fn upcoming_lists_overrides_and_shifts_in_order() {
        let r = weekly_ny();
        let now = ny(2026, 12, 8, 12, 0);
        let o = [Override::starting(
            "primary",
            "carol",
            now,
            Duration::from_secs(3600),
        )];
        let list = r.upcoming(&o, now, 3);
        assert_eq!(list[0].person, "carol");
        assert_eq!((list[0].from, list[0].until), (now, now + H));
        assert_eq!((list[1].from, list[1].until), (now + H, ny(2026, 12, 14, 9, 0)));
        assert_eq!(list[2].from, ny(2026, 12, 14, 9, 0));
        assert_ne!(list[1].person, list[2].person);
    }

    #[test]
    fn bad_definitions_say_what_is_wrong() {
        let m = || vec!["a".to_string()];
        let w = Duration::from_secs(7 * 86_400);
        let z = chrono_tz::UTC;
        assert_eq!(
            Rotation::new("r", vec![], w, "mon 09:00", None, z),
            Err(RotationError::NoMembers)
        );
        assert!(matches!(
            Rotation::new("r", m(), w, "monday", None, z),
            Err(RotationError::Handoff(_))
        ));
        assert!(matches!(
            Rotation::new("r", m(), w, "xyz 09:00", None, z),
            Err(RotationError::Handoff(_))
        ));
        assert!(matches!(
            Rotation::new("r", m(), Duration::from_secs(30), "mon 09:00", None, z),
            Err(RotationError::Length(_))
        ));
        assert!(matches!(
            Rotation::new("r", m(), w, "mon 09:00", Some("next monday"), z),
            Err(RotationError::Start(_))
        ));
    }

    #[test]
    fn extreme_instants_do_not_panic() {
        let r = weekly_ny();
        for at in [i64::MIN, -1, 0, i64::MAX] {
            let s = r.on_call(&[], at);
            assert!(s.from < s.until);
        }
        assert_eq!(r.upcoming(&[], i64::MAX, 3).len(), 1);
    }

    #[test]
    fn a_repeated_wall_time_hands_off_at_its_first_occurrence() {
        // 01:30 happens twice in New York on 2026-11-01: EDT (05:30 UTC) first.
        let r = rot(&["a", "b"], "1w", "sun 01:30", chrono_tz::America::New_York);
        let s = r.on_call(&[], ny(2026, 10, 30, 12, 0));
        assert_eq!(s.until, 1_793_511_000_000);
        assert_eq!(
            r.on_call(&[], s.until + H).from,
            s.until,
            "still the new shift in the repeated hour"
        );
    }

    #[test]
    fn every_answer_is_consistent_with_its_neighbours() {
        let zones = [
            chrono_tz::America::New_York,
            chrono_tz::Europe::Berlin,
            chrono_tz::Australia::Lord_Howe,
        ];
        let mut seed: u64 = 42;
        let mut next = |m: i64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            i64::try_from((seed >> 33) % u64::try_from(m).unwrap()).unwrap()
        };
        for zone in zones {
            for length in ["1w", "2w", "1d", "12h", "7h30m", "90m"] {
                let r = rot(&["a", "b", "c"], length, "sun 02:30", zone);
                let base = ny(2026, 1, 1, 0, 0);
                let overrides: Vec<Override> = (0..6)
                    .map(|i| {
                        let from = base + next(365 * D);
                        over(["x", "y"][i % 2], from, from + next(10 * D) + 1, next(1000))
                    })
                    .collect();
                for _ in 0..300 {
                    let t = base + next(365 * D);
                    let s = r.on_call(&overrides, t);
                    assert!(s.from <= t && t < s.until, "{length} {zone}: {s:?} at {t}");
                    assert_eq!(r.on_call(&overrides, s.from), s);
                    assert_eq!(r.on_call(&overrides, s.until - 1), s);
                    assert_ne!(r.on_call(&overrides, s.until), s);
                    assert_ne!(r.on_call(&overrides, s.from - 1), s);
                    if !s.overridden {
                        let k = r.scheduled(t);
                        assert!(k.from <= s.from && s.until <= k.until && k.person == s.person);
                    }
                }
            }
        }
    }
}
