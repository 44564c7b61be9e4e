use super::*;
use crate::escalation::{Pages, Step, Stop, Target, When};
use std::collections::BTreeMap;

const MIN: i64 = 60_000;

fn level(label: &str) -> Level {
    let at = |m: u64| When::After(Duration::from_secs(m * 60));
    let step = |w, to: &str, stop| Step {
        when: w,
        to: vec![Target::parse(to).unwrap()],
        stop,
    };
    Level {
        label: label.into(),
        ack: Duration::from_secs(5 * 60),
        update_every: Some(Duration::from_secs(15 * 60)),
        pages: Pages::Always,
        steps: vec![
            step(at(0), "rotation:primary", Stop::Ack),
            step(at(5), "rotation:secondary", Stop::Ack),
            step(at(15), "role:eng-manager", Stop::Resolve),
        ],
    }
}

fn policy() -> ProfilePolicy {
    let scale: Vec<String> = ["P0", "P1", "P2"].map(String::from).to_vec();
    ProfilePolicy {
        levels: scale
            .iter()
            .map(|l| (l.clone(), level(l)))
            .collect::<BTreeMap<_, _>>(),
        scale,
        calendar: None,
        destinations: vec![Destination {
            platform: "slack".into(),
            channel: "C1".into(),
        }],
    }
}

fn declared() -> Incident {
    let mut inc = declare(&policy(), "cap", "p0", "checkout down", "alice", 1_000).unwrap();
    inc.id = 7;
    inc
}

#[test]
fn declaring_reads_the_level_in_the_profile_scale() {
    let inc = declared();
    assert_eq!(
        (inc.level.as_str(), inc.state, inc.plan_from),
        ("P0", State::Open, 1_000)
    );
    assert_eq!(inc.label(), "#7");
    let e = declare(&policy(), "cap", "SEV1", "x", "alice", 0).unwrap_err();
    assert!(e.contains("not a severity of cap: use one of P0, P1, P2"), "{e}");
    assert!(declare(&policy(), "cap", "P1", "  ", "alice", 0).is_err());
}

#[test]
fn an_ack_stops_paging_steps_once() {
    let p = policy();
    let inc = declared();
    let lvl = &p.levels["P0"];
    assert_eq!(next_step(&inc, lvl, None), Some((0, 1_000)));
    let mut fired = inc.clone();
    fired.fired = 1;
    assert_eq!(next_step(&fired, lvl, None), Some((1, 1_000 + 5 * MIN)));
    let acked = apply(&fired, &Action::Ack, "bob", 2_000, &p).unwrap();
    assert!(acked.replan);
    assert_eq!(acked.incident.state, State::Acked);
    assert_eq!(acked.incident.role(Role::Commander), Some("bob"));
    assert_eq!(
        next_step(&acked.incident, lvl, None),
        Some((2, 1_000 + 15 * MIN)),
        "acked: the secondary is skipped, the manager notice stays"
    );
    let again = apply(&acked.incident, &Action::Ack, "carol", 3_000, &p).unwrap_err();
    assert!(again.contains("already acknowledged by bob"), "{again}");
}

#[test]
fn a_severity_change_replans_from_the_change() {
    let p = policy();
    let mut inc = declared();
    inc.fired = 2;
    let a = apply(&inc, &Action::Severity("P1".into()), "bob", 10 * MIN, &p).unwrap();
    assert_eq!(
        (a.incident.level.as_str(), a.incident.fired, a.incident.plan_from),
        ("P1", 0, 10 * MIN)
    );
    assert!(a.replan);
    assert_eq!(a.event.text, "severity P0 → P1");
    assert!(apply(&a.incident, &Action::Severity("p1".into()), "bob", 0, &p)
        .unwrap_err()
        .contains("already P1"));
    assert!(apply(&inc, &Action::Severity("P9".into()), "bob", 0, &p).is_err());
}

#[test]
fn resolve_cancels_everything_and_only_followups_remain() {
    let p = policy();
    let inc = declared();
    let r = apply(
        &inc,
        &Action::Resolve(Some("rolled back".into())),
        "bob",
        1_000 + 41 * MIN,
        &p,
    )
    .unwrap();
    assert_eq!(r.event.text, "resolved after 41m: rolled back");
    assert_eq!(next_step(&r.incident, &p.levels["P0"], None), None);
    assert_eq!(reminder_due(&r.incident, &p.levels["P0"]), None);
    let e = apply(&r.incident, &Action::Update("x".into()), "bob", 0, &p).unwrap_err();
    assert!(e.contains("is resolved"), "{e}");
    let f = apply(
        &r.incident,
        &Action::Followup("add an alert".into()),
        "bob",
        0,
        &p,
    )
    .unwrap();
    assert_eq!(f.event.kind, "followup");
}

#[test]
fn updates_move_the_reminder() {
    let p = policy();
    let inc = declared();
    let lvl = &p.levels["P0"];
    assert_eq!(reminder_due(&inc, lvl), Some(1_000 + 15 * MIN));
    let u = apply(
        &inc,
        &Action::Update("db failover started".into()),
        "bob",
        9 * MIN,
        &p,
    )
    .unwrap();
    assert!(!u.replan);
    assert_eq!(reminder_due(&u.incident, lvl), Some(24 * MIN));
    let r = apply(
        &inc,
        &Action::Report {
            impact: "checkout 50% errors".into(),
            actions: "rolled back".into(),
            next: Some(Duration::from_secs(900)),
        },
        "bob",
        2 * MIN,
        &p,
    )
    .unwrap();
    assert_eq!(
        r.event.text,
        "impact: checkout 50% errors\nactions: rolled back\nnext update in 15m"
    );
    assert_eq!(reminder_due(&r.incident, lvl), Some(17 * MIN));
}

#[test]
fn roles_are_handed_out() {
    let p = policy();
    let inc = declared();
    let a = apply(
        &inc,
        &Action::Role {
            role: Role::Comms,
            person: "carol".into(),
        },
        "bob",
        0,
        &p,
    )
    .unwrap();
    assert_eq!(a.incident.role(Role::Comms), Some("carol"));
    let b = apply(&a.incident, &Action::Assign("dave".into()), "bob", 0, &p).unwrap();
    assert_eq!(b.incident.role(Role::Commander), Some("dave"));
    assert_eq!(Role::parse("Scribe"), Some(Role::Scribe));
}

#[test]
fn export_is_a_postmortem_skeleton() {
    let p = policy();
    let inc = declared();
    let r = apply(&inc, &Action::Resolve(None), "bob", 61_000, &p).unwrap();
    let events = vec![
        Event::new(1_000, "declared", "alice", "P0 checkout down declared"),
        Event::new(1_000, "page", "alice", "step 1: rotation:primary"),
        Event::new(30_000, "followup", "bob", "alert on | pipes"),
        r.event.clone(),
    ];
    let md = export::markdown(&r.incident, &events);
    assert!(md.starts_with("# Incident #7 — P0 checkout down\n"), "{md}");
    assert!(
        md.contains("| 1970-01-01T00:00:01.000Z | page | alice | step 1: rotation:primary |"),
        "{md}"
    );
    assert!(md.contains("- [ ] alert on | pipes (bob)"), "{md}");
    assert!(md.contains("resolved after 1m"), "{md}");
    let j = export::json(&r.incident, &events);
    assert_eq!(j["state"], "resolved");
    assert_eq!(j["timeline"].as_array().unwrap().len(), 4);
    assert_eq!(j["followups"][0], "alert on | pipes");
}
