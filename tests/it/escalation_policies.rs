//! Escalation math of every shipped level (runbooks.md §3), on a virtual
//! clock against the shipped `office` calendar (New York, Mon–Fri 09–17):
//! weekday afternoons, Friday evenings, a holiday, DST weekends, the next
//! business day, and what an ack or a resolve leaves to fire.

use super::policies::shipped;
use chrono::TimeZone;
use opsbot::calendar::Calendar;
use opsbot::clock::{Clock, ManualClock, Millis};
use opsbot::escalation::{Level, Pages, Stop};
use opsbot::policy::Policies;

const M: Millis = 60_000;
const H: Millis = 60 * M;

/// A New York wall time (not ambiguous).
fn ny(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Millis {
    chrono_tz::America::New_York
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .single()
        .expect("an unambiguous New York time")
        .timestamp_millis()
}

fn office(p: &Policies) -> &Calendar {
    &p.calendars["office"]
}

fn level<'a>(p: &'a Policies, profile: &str, label: &str) -> &'a Level {
    &p.profiles[profile].levels[label]
}

/// Every shipped (profile, level), in config order of the scale.
fn all_levels(p: &Policies) -> Vec<(String, String)> {
    p.profiles
        .iter()
        .flat_map(|(name, pp)| pp.scale.iter().map(move |l| (name.clone(), l.clone())))
        .collect()
}

/// Runs a level on a virtual clock the way the engine does: plan the next
/// step, sleep until it or until an ack / resolve arrives first (then plan
/// again), fire it. Returns each fired step and the instant it fired.
fn run(
    l: &Level,
    cal: &Calendar,
    declared: Millis,
    ack_at: Option<Millis>,
    resolve_at: Option<Millis>,
) -> Vec<(usize, Millis)> {
    let clock = ManualClock::new(declared);
    let mut fired = Vec::new();
    let mut from = 0;
    loop {
        let now = clock.now_ms();
        let acked = ack_at.is_some_and(|a| a <= now);
        let resolved = resolve_at.is_some_and(|r| r <= now);
        let Some((i, due)) = l.next(declared, Some(cal), from, acked, resolved) else {
            return fired;
        };
        let interrupt = [ack_at, resolve_at]
            .into_iter()
            .flatten()
            .filter(|t| *t > now && *t < due)
            .min();
        if let Some(t) = interrupt {
            clock.set(t);
            continue;
        }
        clock.set(due.max(now));
        fired.push((i, clock.now_ms()));
        from = i + 1;
    }
}

/// (profile, level, ack deadline, step due times) for a declaration at `at`.
type Expect = (&'static str, &'static str, Millis, Vec<Millis>);

fn check(p: &Policies, cal: &Calendar, declared: Millis, expect: &[Expect]) {
    for (profile, label, ack, steps) in expect {
        let l = level(p, profile, label);
        assert_eq!(
            l.schedule(declared, Some(cal)),
            *steps,
            "{profile} {label}: steps"
        );
        assert_eq!(
            l.ack_deadline(declared, Some(cal)),
            *ack,
            "{profile} {label}: ack"
        );
        let fired: Vec<Millis> = run(l, cal, declared, None, None)
            .into_iter()
            .map(|f| f.1)
            .collect();
        assert_eq!(fired, *steps, "{profile} {label}: fired on the virtual clock");
    }
}

#[test]
fn a_weekday_afternoon_declaration_for_every_shipped_level() {
    let p = shipped();
    let t = ny(2026, 12, 1, 14, 0); // Tuesday 14:00
    let wed = |h: u32| ny(2026, 12, 2, h, 0);
    let fri_14 = ny(2026, 12, 4, 14, 0);
    let expect: Vec<Expect> = vec![
        ("cap", "P0", t + 5 * M, vec![t, t + 5 * M, t + 15 * M, t + 30 * M]),
        ("cap", "P1", t + 15 * M, vec![t, t + 15 * M, t + 30 * M]),
        ("cap", "P2", t + H, vec![t, t + H, t + 2 * H]),
        // Business: 4h of open time from 14:00 is 3h today and 1h Wednesday.
        ("cap", "P3", wed(10), vec![t, wed(9)]),
        ("chat", "P1", t + 15 * M, vec![t, t + 15 * M, t + H]),
        ("chat", "P2", t + H, vec![t, t + H, t + 4 * H]),
        ("chat", "P3", wed(10), vec![t, wed(10), fri_14]),
        // 1w of business time is 168 open hours: 21 working days.
        ("chat", "P4", fri_14, vec![t, fri_14, ny(2026, 12, 30, 14, 0)]),
        (
            "pdf",
            "SEV1",
            t + 15 * M,
            vec![t, t + 15 * M, t + 30 * M, t + H, t + 2 * H],
        ),
        ("pdf", "SEV2", t + 15 * M, vec![t, t + 15 * M, t + 30 * M, t + H]),
        ("pdf", "SEV3", t + 15 * M, vec![t, t + 15 * M, t + 30 * M, t + H]),
        ("pdf", "SEV4", t + 15 * M, vec![t, t + 15 * M, t + 30 * M, t + H]),
        ("queue", "P0", t + 5 * M, vec![t, t + 5 * M, t + 15 * M]),
        ("queue", "P1", t + 15 * M, vec![t, t + 15 * M, t + 30 * M]),
        ("queue", "P2", t + H, vec![t, t + H, t + 2 * H]),
        ("scrape", "P1", t + 5 * M, vec![t]),
        ("scrape", "P2", t + H, vec![t, t + 30 * M]),
        ("scrape", "P3", t + 4 * H, vec![t, t + 2 * H]),
        ("scrape", "P4", fri_14, vec![t, wed(9)]),
    ];
    let covered: Vec<(String, String)> = expect.iter().map(|e| (e.0.into(), e.1.into())).collect();
    assert_eq!(covered, all_levels(&p), "every shipped level has its expectation");
    check(&p, office(&p), t, &expect);
}

#[test]
fn business_levels_declared_friday_evening_wait_for_monday() {
    let p = shipped();
    let t = ny(2026, 12, 4, 18, 0); // Friday 18:00
    let mon = |h: u32, m: u32| ny(2026, 12, 7, h, m);
    let tue_9 = ny(2026, 12, 8, 9, 0);
    // 24 open hours from Monday 09:00 end at Wednesday's closing: that is the
    // ack deadline, and a page due then waits for Thursday's opening.
    let wed_17 = ny(2026, 12, 9, 17, 0);
    let thu_9 = ny(2026, 12, 10, 9, 0);
    let expect: Vec<Expect> = vec![
        ("cap", "P3", mon(13, 0), vec![mon(9, 0), tue_9]),
        ("chat", "P3", mon(13, 0), vec![mon(9, 0), mon(13, 0), thu_9]),
        // 168 open hours from Monday 09:00 end at Monday 2027-01-04's closing.
        ("chat", "P4", wed_17, vec![mon(9, 0), thu_9, ny(2027, 1, 5, 9, 0)]),
        (
            "pdf",
            "SEV3",
            mon(9, 15),
            vec![mon(9, 0), mon(9, 15), mon(9, 30), mon(10, 0)],
        ),
        (
            "pdf",
            "SEV4",
            mon(9, 15),
            vec![mon(9, 0), mon(9, 15), mon(9, 30), mon(10, 0)],
        ),
        ("scrape", "P4", wed_17, vec![mon(9, 0), tue_9]),
    ];
    check(&p, office(&p), t, &expect);
    // Exactly the business levels wait; every other level pages at once.
    for (profile, label) in all_levels(&p) {
        let l = level(&p, &profile, &label);
        let first = l.schedule(t, Some(office(&p)))[0];
        let business = expect.iter().any(|e| e.0 == profile && e.1 == label);
        assert_eq!(l.pages == Pages::Business, business, "{profile} {label}");
        assert_eq!(first, if business { mon(9, 0) } else { t }, "{profile} {label}");
    }
}

#[test]
fn a_holiday_is_skipped() {
    let p = shipped();
    let days: Vec<String> = ["mon", "tue", "wed", "thu", "fri"].map(String::from).to_vec();
    let xmas = Calendar::new("America/New_York", &days, "09:00-17:00", &["2026-12-25".into()]).unwrap();
    let cap_p3 = level(&p, "cap", "P3");
    // Thursday 2026-12-24 16:00: the next business day is Monday, not Friday the 25th.
    let t = ny(2026, 12, 24, 16, 0);
    let mon = |h: u32| ny(2026, 12, 28, h, 0);
    assert_eq!(cap_p3.schedule(t, Some(&xmas)), vec![t, mon(9)]);
    assert_eq!(
        cap_p3.ack_deadline(t, Some(&xmas)),
        mon(12),
        "1h Thursday + 3h Monday"
    );
    let fri = |h: u32| ny(2026, 12, 25, h, 0);
    assert_eq!(
        cap_p3.schedule(t, Some(office(&p))),
        vec![t, fri(9)],
        "no holiday shipped"
    );
    // Declared on the holiday itself: every business level waits for Monday.
    for (profile, label) in all_levels(&p) {
        let l = level(&p, &profile, &label);
        let first = l.schedule(fri(11), Some(&xmas))[0];
        let expect = if l.pages == Pages::Business {
            mon(9)
        } else {
            fri(11)
        };
        assert_eq!(first, expect, "{profile} {label}");
    }
    let chat_p3 = level(&p, "chat", "P3");
    assert_eq!(
        chat_p3.schedule(fri(11), Some(&xmas)),
        vec![mon(9), mon(13), ny(2026, 12, 31, 9, 0)]
    );
}

#[test]
fn a_dst_weekend_keeps_business_hours_local_and_delays_elapsed() {
    let p = shipped();
    let cal = office(&p);
    // Clocks go forward Sunday 2026-03-08 02:00 in New York.
    let fri = ny(2026, 3, 6, 16, 0);
    let mon = |h: u32| ny(2026, 3, 9, h, 0);
    let cap_p3 = level(&p, "cap", "P3");
    assert_eq!(cap_p3.schedule(fri, Some(cal)), vec![fri, mon(9)]);
    assert_eq!(cap_p3.ack_deadline(fri, Some(cal)), mon(12));
    assert_eq!(
        mon(12) - fri,
        3 * 24 * H - 4 * H - H,
        "the weekend is an hour short"
    );
    let chat_p3 = level(&p, "chat", "P3");
    assert_eq!(chat_p3.schedule(fri, Some(cal))[1], mon(12));
    // An always level counts elapsed time through the change: 01:30 EST + 2h
    // is 04:30 EDT.
    let night = ny(2026, 3, 8, 1, 30);
    let cap_p2 = level(&p, "cap", "P2");
    assert_eq!(
        cap_p2.schedule(night, Some(cal)),
        vec![night, ny(2026, 3, 8, 3, 30), ny(2026, 3, 8, 4, 30)]
    );
    // Clocks go back Sunday 2026-11-01: 09:00 is still the opening on Monday.
    let fri = ny(2026, 10, 30, 16, 0);
    let mon = |h: u32| ny(2026, 11, 2, h, 0);
    assert_eq!(
        chat_p3.schedule(fri, Some(cal)),
        vec![fri, mon(12), ny(2026, 11, 4, 16, 0)]
    );
    assert_eq!(
        mon(12) - fri,
        3 * 24 * H - 4 * H + H,
        "the weekend is an hour long"
    );
    let pdf_sev3 = level(&p, "pdf", "SEV3");
    let sat = ny(2026, 10, 31, 12, 0);
    assert_eq!(
        pdf_sev3.schedule(sat, Some(cal)),
        vec![mon(9), mon(9) + 15 * M, mon(9) + 30 * M, mon(10)]
    );
}

#[test]
fn next_business_day_is_a_later_day_than_the_step_before() {
    let p = shipped();
    let cal = office(&p);
    let d = |day: u32, h: u32| ny(2026, 12, day, h, 0);
    // (declared, first page, next-business-day page); Tue 1st … Mon 7th.
    let cases = [
        (d(1, 7), d(1, 9), d(2, 9)),   // before opening: today, then tomorrow
        (d(1, 14), d(1, 14), d(2, 9)), // open: now, then tomorrow
        (d(1, 18), d(2, 9), d(3, 9)),  // after closing: tomorrow, then the day after
        (d(4, 14), d(4, 14), d(7, 9)), // Friday: Monday
        (d(5, 12), d(7, 9), d(8, 9)),  // Saturday: Monday, then Tuesday
    ];
    for (profile, label) in [("cap", "P3"), ("scrape", "P4")] {
        let l = level(&p, profile, label);
        for (declared, first, second) in cases {
            assert_eq!(
                l.schedule(declared, Some(cal)),
                vec![first, second],
                "{profile} {label} declared {declared}"
            );
        }
    }
}

#[test]
fn an_ack_stops_paging_steps_but_not_resolve_steps() {
    let p = shipped();
    let cal = office(&p);
    let t = ny(2026, 12, 1, 14, 0);
    for (profile, label) in all_levels(&p) {
        let l = level(&p, &profile, &label);
        let due = l.schedule(t, Some(cal));
        let all: Vec<(usize, Millis)> = due.iter().copied().enumerate().collect();
        assert_eq!(
            run(l, cal, t, None, None),
            all,
            "{profile} {label}: unacked, every step"
        );
        // Acked a second after the first page: only the resolve steps remain, on time.
        let resolve_steps: Vec<(usize, Millis)> = all
            .iter()
            .copied()
            .filter(|(i, _)| *i == 0 || l.steps[*i].stop == Stop::Resolve)
            .collect();
        let acked = run(l, cal, t, Some(t + 1_000), None);
        assert_eq!(acked, resolve_steps, "{profile} {label}: acked");
        // Resolved: nothing more.
        assert_eq!(
            run(l, cal, t, Some(t + 1_000), Some(t + 2_000)),
            vec![(0, t)],
            "{profile} {label}"
        );
        assert_eq!(
            run(l, cal, t, None, Some(t + 1_000)),
            vec![(0, t)],
            "{profile} {label}"
        );
    }
    // The shipped shapes: cap P0 keeps eng-manager (15m) and exec (30m) after an ack.
    let cap_p0 = level(&p, "cap", "P0");
    assert_eq!(
        run(cap_p0, cal, t, Some(t + M), None),
        vec![(0, t), (2, t + 15 * M), (3, t + 30 * M)]
    );
    // An ack after the secondary was paged still stops nothing already fired.
    assert_eq!(
        run(cap_p0, cal, t, Some(t + 6 * M), None),
        vec![(0, t), (1, t + 5 * M), (2, t + 15 * M), (3, t + 30 * M)]
    );
    // scrape P1 is one resolve step: an ack changes nothing.
    let scrape_p1 = level(&p, "scrape", "P1");
    assert_eq!(run(scrape_p1, cal, t, Some(t + 1), None), vec![(0, t)]);
}
