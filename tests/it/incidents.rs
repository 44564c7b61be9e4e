//! Incidents: the store on both backends, the escalation chain on a virtual
//! clock (pages, ack, severity, reminders, resolve), an ack racing a firing
//! step on two engines, and a P0 end to end through fake Slack and Discord.

use crate::support::*;
use opsbot::clock::Clock;
use opsbot::engine::timers::fire_due;
use opsbot::engine::{Outcome, Pipeline};
use opsbot::incident::{Event, State};
use opsbot::store::{card_key, OutOp, Store, Thread, INCIDENT_REMINDER, INCIDENT_STEP};
use std::sync::Arc;
use std::time::Duration;

const MIN: i64 = 60_000;

/// Queue's P0–P2 with a three-step P0 (minutes), rotations and a calendar;
/// cards go to Slack C_INC and Discord 999.
pub const POLICY: &str = r#"
[calendars.office]
tz = "UTC"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"

[rotations.primary]
members = ["alice", "bob"]
length = "1w"
handoff = "mon 09:00"
tz = "UTC"

[rotations.secondary]
members = ["bob", "alice"]
length = "1w"
handoff = "mon 09:00"
tz = "UTC"

[policies.queue]
scale = ["P0", "P1", "P2"]
calendar = "office"
channel = ["slack:C_INC", "discord:999"]

[policies.queue.P0]
ack = "5m"
update_every = "15m"
steps = [
  { after = "0s", to = ["rotation:primary"], stop = "ack" },
  { after = "5m", to = ["rotation:secondary"], stop = "ack" },
  { after = "15m", to = ["role:eng-manager"], stop = "resolve" },
]

[policies.queue.P1]
ack = "15m"
steps = [
  { after = "0s", to = ["rotation:primary"], stop = "ack" },
  { after = "30m", to = ["person:carol"], stop = "ack" },
]

[policies.queue.P2]
ack = "1h"
pages = "business"
steps = [{ after = "0s", to = ["rotation:primary"], stop = "ack" }]
"#;

fn engine(store: Store, clock: Arc<opsbot::clock::ManualClock>) -> Pipeline {
    let cfg = config(POLICY);
    pipeline_for(&cfg, shipped_catalog(&cfg, "http://127.0.0.1:9"), store, clock)
}

/// Slack posts in the incident's thread so far (texts), oldest first.
async fn slack_thread(store: &Store, id: i64) -> Vec<String> {
    let key = format!("incident:{id}:slack:C_INC");
    store
        .outbox_pending_for_tests("slack")
        .await
        .expect("outbox")
        .into_iter()
        .filter(|r| matches!(&r.message.op, OutOp::Post { thread: Some(Thread::Key(k)), .. } if *k == key))
        .map(|r| r.message.body["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}:{}", e.kind, e.person))
        .collect()
}

/// Declares as `who` in C_QUEUE (bound to queue); answers the new id.
pub async fn declare(p: &Pipeline, who: &str, text: &str) -> i64 {
    let r = say(p, who, &format!("/incident declare {text}")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let open = p.store.open_incidents().await.expect("open");
    open.last().expect("declared").id
}

#[tokio::test]
async fn the_store_keeps_incidents_timelines_and_overrides() {
    for t in both().await {
        let s = &t.store;
        let p = engine(s.clone(), clock());
        let policy = &p.policies.profiles["queue"];
        let new = opsbot::incident::declare(policy, "queue", "p1", "db down", "alice", 1_000).unwrap();
        let mut tx = s.begin().await.unwrap();
        let inc = tx
            .create_incident(
                &new,
                &Event::new(1_000, "declared", "alice", "P1 db down declared"),
            )
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(inc.id > 0, "{}", t.name);
        assert_eq!(inc.destinations, policy.destinations, "{}", t.name);
        let mut tx = s.begin().await.unwrap();
        let mut locked = tx.lock_incident(inc.id).await.unwrap().expect("there");
        locked.state = State::Acked;
        locked.acked_by = Some("bob".into());
        locked.acked_at = Some(2_000);
        locked.fired = 1;
        tx.save_incident(&locked, 2_000).await.unwrap();
        tx.add_incident_event(inc.id, &Event::new(2_000, "ack", "bob", "acknowledged by bob"))
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(s.incident(inc.id).await.unwrap(), Some(locked), "{}", t.name);
        assert_eq!(
            kinds(&s.incident_events(inc.id).await.unwrap()),
            ["declared:alice", "ack:bob"],
            "{}",
            t.name
        );
        assert!(s.incident(inc.id + 100).await.unwrap().is_none());
        // Overrides: those that have not ended, oldest first.
        let mut tx = s.begin().await.unwrap();
        for (person, until) in [("bob", 5_000), ("carol", 9_000)] {
            let o = opsbot::store::OverrideRow {
                id: 0,
                rotation: "primary".into(),
                person: person.into(),
                from: 1_000,
                until,
                created_by: "alice".into(),
                created_at: 1_000,
            };
            tx.add_override(&o).await.unwrap();
        }
        tx.commit().await.unwrap();
        let live: Vec<String> = s
            .overrides("primary", 6_000)
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.person)
            .collect();
        assert_eq!(live, ["carol"], "{}", t.name);
        // A card's message finds its incident (a thread under it).
        let msg = opsbot::store::OutMessage {
            platform: "slack".into(),
            channel: "C_INC".into(),
            op: OutOp::Post {
                key: Some(card_key(inc.id, &policy.destinations[0])),
                thread: None,
                fallback: None,
            },
            body: serde_json::json!({"text": "card"}),
        };
        s.enqueue_messages(&[msg], 1_000).await.unwrap();
        let row = s.outbox_pending_for_tests("slack").await.unwrap().remove(0);
        let key = card_key(inc.id, &policy.destinations[0]);
        s.outbox_mark_posted(row.id, "slack", &key, "C_INC", "1700.000100", 1_000)
            .await
            .unwrap();
        assert_eq!(
            s.incident_by_card("slack", "1700.000100").await.unwrap(),
            Some(inc.id)
        );
        assert_eq!(s.incident_by_card("discord", "1700.000100").await.unwrap(), None);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_p0_pages_escalates_stops_at_the_ack_and_resolves() {
    for t in both().await {
        let clock = clock();
        let p = engine(t.store.clone(), clock.clone());
        // Who is primary this week is rotation math; an override makes it alice.
        for o in ["alice 2h", "bob 2h --rotation secondary"] {
            let r = say(&p, "console:alice", &format!("/oncall override {o}")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        }
        let id = declare(&p, "console:alice", "P0 checkout is down").await;
        let item = id.to_string();
        assert_eq!(
            t.store.timer_due(INCIDENT_STEP, &item).await.unwrap(),
            Some(clock.now_ms())
        );
        fire_due(&p).await.unwrap();
        let thread = slack_thread(&t.store, id).await;
        assert_eq!(thread.len(), 1, "{thread:?}");
        assert!(thread[0].starts_with("📟 P0 #"), "{thread:?}");
        assert!(
            thread[0].ends_with("<@U0ALICE>"),
            "only alice is paged: {thread:?}"
        );
        // Nothing more until the secondary's 5 minutes are up.
        clock.advance(5 * MIN - 1);
        fire_due(&p).await.unwrap();
        assert_eq!(slack_thread(&t.store, id).await.len(), 1);
        clock.advance(1);
        fire_due(&p).await.unwrap();
        let thread = slack_thread(&t.store, id).await;
        assert!(
            thread[1].contains("no ack → step 2 of 3") && thread[1].ends_with("<@U0BOB>"),
            "{thread:?}"
        );
        // bob acks: the card loses its Ack button, the thread says so, and
        // only the manager notice (stop = resolve) stays planned.
        let r = say(&p, "console:bob", &format!("/incident ack #{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        let again = say(&p, "console:alice", &format!("/incident ack #{id}")).await;
        assert!(
            again.text.contains("already acknowledged by bob"),
            "{}",
            again.text
        );
        let declared = t.store.incident(id).await.unwrap().unwrap().declared_at;
        assert_eq!(
            t.store.timer_due(INCIDENT_STEP, &item).await.unwrap(),
            Some(declared + 15 * MIN)
        );
        clock.advance(10 * MIN);
        fire_due(&p).await.unwrap();
        let thread = slack_thread(&t.store, id).await;
        assert!(
            thread
                .iter()
                .any(|m| m.contains("step 3 of 3: notifying") && m.ends_with("<@U0CAROL>")),
            "{thread:?}"
        );
        assert!(thread.iter().any(|m| m == "✅ acknowledged by bob"), "{thread:?}");
        let r = say(
            &p,
            "console:bob",
            &format!("/incident resolve #{id} failover done"),
        )
        .await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert_eq!(t.store.timer_due(INCIDENT_STEP, &item).await.unwrap(), None);
        assert_eq!(t.store.timer_due(INCIDENT_REMINDER, &item).await.unwrap(), None);
        let events = t.store.incident_events(id).await.unwrap();
        assert_eq!(
            kinds(&events)
                .iter()
                .filter(|k| !k.starts_with("reminder"))
                .cloned()
                .collect::<Vec<_>>(),
            [
                "declared:alice",
                "page:alice",
                "page:bob",
                "ack:bob",
                "page:carol",
                "resolved:bob"
            ]
        );
        let kinds = audit_kinds(&t.store).await;
        for k in [
            "incident.declared",
            "incident.page",
            "incident.ack",
            "incident.resolved",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} audited: {kinds:?}");
        }
        assert!(verify_audit(&t.store).await.is_ok());
        // The card was posted once per destination and edited on each change.
        let cards: Vec<_> = t
            .store
            .outbox_pending_for_tests("slack")
            .await
            .unwrap()
            .into_iter()
            .filter(|r| match &r.message.op {
                OutOp::Post { key: Some(k), .. } | OutOp::Update { key: k } => k.starts_with("incident:"),
                _ => false,
            })
            .collect();
        assert!(matches!(cards[0].message.op, OutOp::Post { .. }));
        let last = &cards.last().unwrap().message.body;
        assert!(!last.to_string().contains("incident_ack"), "resolved: no buttons");
        assert!(!t
            .store
            .outbox_pending_for_tests("discord")
            .await
            .unwrap()
            .is_empty());
        t.cleanup().await;
    }
}

#[tokio::test]
async fn reminders_nag_until_an_update_and_severity_replans() {
    for t in both().await {
        let clock = clock();
        let p = engine(t.store.clone(), clock.clone());
        let id = declare(&p, "console:alice", "P0 queue backlog").await;
        fire_due(&p).await.unwrap();
        let r = say(&p, "console:alice", &format!("/incident ack #{id}")).await;
        assert_eq!(r.outcome, Outcome::Done);
        clock.advance(10 * MIN);
        let r = say(
            &p,
            "console:alice",
            &format!("/incident update #{id} workers restarted"),
        )
        .await;
        assert_eq!(r.outcome, Outcome::Done);
        // 15m after declaring there is no reminder (an update came at 10m)…
        clock.advance(5 * MIN);
        fire_due(&p).await.unwrap();
        assert!(!slack_thread(&t.store, id)
            .await
            .iter()
            .any(|m| m.contains("reminder")));
        // …but 15m after the update there is.
        clock.advance(10 * MIN);
        fire_due(&p).await.unwrap();
        let thread = slack_thread(&t.store, id).await;
        let nag = thread
            .iter()
            .find(|m| m.contains("reminder"))
            .expect("a reminder");
        assert!(
            nag.contains("no update for 15m") && nag.ends_with("<@U0ALICE>"),
            "to the commander: {nag}"
        );
        // P0 → P1: the P1 chain counts from the change; its acked state holds.
        let r = say(&p, "console:alice", &format!("/incident severity #{id} P1")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        let inc = t.store.incident(id).await.unwrap().unwrap();
        assert_eq!(
            (inc.level.as_str(), inc.fired, inc.plan_from),
            ("P1", 0, clock.now_ms())
        );
        assert_eq!(
            t.store.timer_due(INCIDENT_STEP, &id.to_string()).await.unwrap(),
            None,
            "acked: P1's ack-stopped steps do not fire"
        );
        let bad = say(&p, "console:alice", &format!("/incident severity #{id} SEV1")).await;
        assert!(bad.text.contains("use one of P0, P1, P2"), "{}", bad.text);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn who_may_do_what() {
    run_test(|t| {
        Box::pin(async move {
            let clock = clock();
            let p = engine(t.store.clone(), clock.clone());
            // dave (support) may declare rank 3 (P2) but not P0.
            let r = say(&p, "console:dave", "/incident declare P0 all down").await;
            assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
            let r = say(&p, "console:stranger", "/incident declare P2 typo").await;
            assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
            let id = declare(&p, "console:dave", "P2 typo in the report header").await;
            // Business hours: the first page waits for the calendar (UTC 09:00 on a weekday).
            let due = t
                .store
                .timer_due(INCIDENT_STEP, &id.to_string())
                .await
                .unwrap()
                .unwrap();
            assert!(due >= clock.now_ms());
            // dave was not paged and is not oncall: no ack; carol (eng-manager ⊇ oncall) may.
            let r = say(&p, "console:dave", &format!("/incident ack #{id}")).await;
            assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
            let r = say(&p, "console:carol", &format!("/incident ack #{id}")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            // Unknown ids and missing ids are usage errors with a way out.
            let r = say(&p, "console:alice", "/incident ack #999").await;
            assert!(r.text.contains("no incident #999"), "{}", r.text);
            let r = say(&p, "console:alice", "/incident ack").await;
            assert!(r.text.contains("Which incident?"), "{}", r.text);
            let r = say(&p, "console:alice", &format!("/incident assign #{id} nobody")).await;
            assert!(r.text.contains("not a person opsbot knows"), "{}", r.text);
            // /oncall: who now, until when, who next; overrides win.
            let r = say(&p, "console:dave", "/oncall primary").await;
            assert!(
                r.text.contains("• primary: ") && r.text.contains(" · then "),
                "{}",
                r.text
            );
            let r = say(&p, "console:dave", "/oncall override bob 1h").await;
            assert_eq!(
                r.outcome,
                Outcome::NotPermitted,
                "support may not swap: {}",
                r.text
            );
            let r = say(&p, "console:alice", "/oncall override bob 1h").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            let r = say(&p, "console:dave", "/oncall").await;
            assert!(r.text.contains("• primary: bob (override) until"), "{}", r.text);
            assert!(r.text.contains("• secondary: "), "{}", r.text);
            let r = say(&p, "console:dave", "/oncall tertiary").await;
            assert!(
                r.text.contains("no rotation `tertiary` (primary, secondary)"),
                "{}",
                r.text
            );
            let r = say(&p, "console:alice", "/incidents").await;
            assert!(
                r.text.contains("P2 (queue) typo in the report header"),
                "{}",
                r.text
            );
            let r = say(&p, "console:alice", &format!("/incident timeline #{id}")).await;
            assert!(
                r.text.contains("declared · dave") && r.text.contains("ack · carol"),
                "{}",
                r.text
            );
        })
    })
    .await;
}

/// Two engines (two instances) on one Postgres: one fires due steps while
/// the other acks the same incidents. No incident is paged after its ack,
/// and no step fires twice.
#[tokio::test]
async fn an_ack_racing_a_firing_step_never_pages_after_the_ack() {
    let t = TestStore::postgres().await;
    let clock = clock();
    let a = engine(t.store.clone(), clock.clone());
    let b = engine(t.reopen().await, clock.clone());
    let mut ids = Vec::new();
    for i in 0..40 {
        ids.push(declare(&a, "console:alice", &format!("P0 race {i}")).await);
    }
    fire_due(&a).await.unwrap();
    clock.advance(5 * MIN);
    let firing = {
        let a = a.clone();
        tokio::spawn(async move { fire_due(&a).await.unwrap() })
    };
    let acking = {
        let b = b.clone();
        let ids = ids.clone();
        tokio::spawn(async move {
            for id in ids {
                let r = say(&b, "console:bob", &format!("/incident ack #{id}")).await;
                assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            }
        })
    };
    firing.await.unwrap();
    acking.await.unwrap();
    fire_due(&b).await.unwrap();
    let mut paged_before_ack = 0;
    for id in ids {
        let events = t.store.incident_events(id).await.unwrap();
        let k = kinds(&events);
        let ack = k.iter().position(|e| e == "ack:bob").expect("acked");
        let second: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == "page" && e.text.starts_with("step 2"))
            .map(|(i, _)| i)
            .collect();
        assert!(second.len() <= 1, "step 2 fired twice: {k:?}");
        if let Some(&at) = second.first() {
            assert!(at < ack, "paged after the ack: {k:?}");
            paged_before_ack += 1;
        }
    }
    eprintln!("{paged_before_ack} of 40 were paged before the ack");
    t.cleanup().await;
}

/// The whole loop through the real HTTP edges: a P0 declared from Slack
/// pages the primary in the card's thread in Slack and in a Discord thread
/// started from the card, pages the secondary when nobody acks, and stops
/// when someone clicks Ack in Discord; the Slack card follows.
#[tokio::test]
async fn a_p0_chain_end_to_end_through_slack_and_discord() {
    run_test(|t| {
        Box::pin(async move {
            let fast = POLICY
                .replace("after = \"5m\"", "after = \"150ms\"")
                .replace("after = \"15m\"", "after = \"1h\"");
            let app = TestApp::spawn_with_config(t.store.clone(), &fast).await;
            let started = std::time::Instant::now();
            for o in ["alice 1h", "bob 1h --rotation secondary"] {
                assert_eq!(
                    app.slash("U0ALICE", "/oncall", &format!("override {o}"))
                        .await
                        .status(),
                    200
                );
            }
            assert_eq!(
                app.slash("U0ALICE", "/incident", "declare P0 checkout is down")
                    .await
                    .status(),
                200
            );
            let slack = app
                .slack
                .wait_until(
                    Duration::from_secs(5),
                    |calls| {
                        calls
                            .iter()
                            .filter(|c| c.text().is_some_and(|t| t.starts_with("📟")))
                            .count()
                            >= 2
                    },
                    "two pages in the thread",
                )
                .await;
            let card = slack
                .iter()
                .find(|c| {
                    c.method == "chat.postMessage"
                        && c.channel() == Some("C_INC")
                        && c.body.get("thread_ts").is_none()
                })
                .expect("the card");
            let card_ts = card.ts.clone().expect("posted");
            let pages: Vec<_> = slack
                .iter()
                .filter(|c| c.text().is_some_and(|t| t.starts_with("📟")))
                .collect();
            assert!(
                pages.iter().all(|p| p.body["thread_ts"] == card_ts.as_str()),
                "in the card's thread"
            );
            assert!(pages[0].text().unwrap().ends_with("<@U0ALICE>"));
            assert!(pages[1].text().unwrap().ends_with("<@U0BOB>"));
            // Discord: the card, a thread started from it, the pages inside.
            let discord = app
                .discord
                .wait_for(
                    |calls| {
                        calls
                            .iter()
                            .filter(|c| {
                                c.ok() && c.body["content"].as_str().is_some_and(|t| t.starts_with("📟"))
                            })
                            .count()
                            >= 2
                    },
                    "two pages in the Discord thread",
                )
                .await;
            let dcard = discord
                .iter()
                .find(|c| c.ok() && c.path == "/channels/999/messages")
                .expect("card");
            let mid = dcard.id.clone().unwrap();
            assert!(discord
                .iter()
                .any(|c| c.ok() && c.path == format!("/channels/999/messages/{mid}/threads")));
            let dpage = discord
                .iter()
                .find(|c| c.ok() && c.path == format!("/channels/{mid}/messages"))
                .expect("a page in the thread");
            assert_eq!(
                dpage.body["allowed_mentions"]["users"],
                serde_json::json!(["111"])
            );
            assert!(
                dpage
                    .body
                    .get(opsbot::chat::discord::render::THREAD_NAME)
                    .is_none(),
                "our field is not sent"
            );
            // bob acks from Discord: the Slack card loses its Ack button.
            let click = TestApp::discord_click("222", "incident_ack:#1");
            assert_eq!(app.discord(&click).await.status(), 200);
            app.slack
                .wait_until(
                    Duration::from_secs(5),
                    |calls| {
                        calls.iter().any(|c| {
                            c.method == "chat.update"
                                && c.body["ts"] == card_ts.as_str()
                                && !c.body.to_string().contains("incident_ack")
                        })
                    },
                    "the card updated without its Ack button",
                )
                .await;
            let inc = app.pipeline.store.incident(1).await.unwrap().unwrap();
            assert_eq!((inc.state, inc.acked_by.as_deref()), (State::Acked, Some("bob")));
            // Typed in the incident's Discord thread: the incident is implied,
            // and runbook commands land on its timeline.
            for (name, options) in [
                (
                    "queue",
                    serde_json::json!([{"type": 1, "name": "stats", "options": []}]),
                ),
                (
                    "incident",
                    serde_json::json!([{"type": 3, "name": "what", "value": "update workers restarted"}]),
                ),
            ] {
                let mut cmd = TestApp::discord_command("111", name, options);
                // A public thread (type 11) started from the card has its id.
                cmd["channel_id"] = serde_json::json!(mid);
                cmd["channel"] = serde_json::json!({"id": mid, "type": 11});
                assert_eq!(app.discord(&cmd).await.status(), 200);
            }
            let store = app.pipeline.store.clone();
            eventually("the command and the update on the timeline", || {
                let store = store.clone();
                async move {
                    let k = kinds(&store.incident_events(1).await.unwrap());
                    k.contains(&"command:alice".to_string()) && k.contains(&"update:alice".to_string())
                }
            })
            .await;
            let events = app.pipeline.store.incident_events(1).await.unwrap();
            let cmd = events.iter().find(|e| e.kind == "command").unwrap();
            assert!(cmd.text.starts_with("/queue stats → succeeded"), "{}", cmd.text);
            let notice = app.pipeline.store.timer_due(INCIDENT_STEP, "1").await.unwrap();
            assert!(notice.is_some(), "the 1h manager notice stays");
            eprintln!("P0 chain end to end: {:?}", started.elapsed());
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "took {:?}",
                started.elapsed()
            );
            app.settle().await;
            app.stop().await;
        })
    })
    .await;
}

/// Two engines on one Postgres fire the same 1,000 due steps at once:
/// each step is paged exactly once.
#[tokio::test]
async fn two_engines_racing_over_a_thousand_due_steps_fire_each_once() {
    let t = TestStore::postgres().await;
    let clock = clock();
    let a = engine(t.store.clone(), clock.clone());
    let b = engine(t.reopen().await, clock.clone());
    let policy = &a.policies.profiles["queue"];
    let now = clock.now_ms();
    let mut ids = Vec::new();
    let mut tx = t.store.begin().await.unwrap();
    for i in 0..1_000 {
        let mut inc = opsbot::incident::declare(
            policy,
            "queue",
            "P0",
            &format!("race {i}"),
            "alice",
            now - 5 * MIN,
        )
        .unwrap();
        inc.fired = 1;
        let inc = tx
            .create_incident(&inc, &Event::new(now, "declared", "alice", "race"))
            .await
            .unwrap();
        tx.schedule(INCIDENT_STEP, &inc.id.to_string(), now)
            .await
            .unwrap();
        ids.push(inc.id);
    }
    tx.commit().await.unwrap();
    let (ra, rb) = tokio::join!(fire_due(&a), fire_due(&b));
    ra.unwrap();
    rb.unwrap();
    for id in ids {
        let pages: Vec<Event> = t
            .store
            .incident_events(id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.kind == "page")
            .collect();
        assert_eq!(pages.len(), 1, "incident {id}: {pages:?}");
        assert!(pages[0].text.starts_with("step 2"), "{pages:?}");
    }
    t.cleanup().await;
}

/// `--break-glass` on a command whose approval allows it: refused without
/// an open rank-1 incident of its profile; during one it runs at once, its
/// approvers are paged in the incident's thread, and the run is flagged in
/// the audit log and on the timeline.
#[tokio::test]
async fn break_glass_runs_at_once_only_during_a_rank_1_incident() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let cfg = config(POLICY);
        let mut catalog = shipped_catalog(&cfg, &target.url);
        for c in catalog.commands.iter_mut().filter(|c| c.name == "queue retry") {
            c.approve.as_mut().expect("an approval").break_glass = true;
        }
        let p = pipeline_for(&cfg, catalog, t.store.clone(), clock());
        let r = say(&p, "console:alice", "/queue retry ai-analysis --break-glass").await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        assert!(
            r.text.contains("needs an open P0 incident of queue"),
            "{}",
            r.text
        );
        let r = say(&p, "console:alice", "/queue stats --break-glass").await;
        assert!(r.text.contains("has no break-glass"), "{}", r.text);
        // A P1 is not rank 1 in queue: still refused.
        let p1 = declare(&p, "console:alice", "P1 slow queue").await;
        let r = say(&p, "console:alice", "/queue retry ai-analysis --break-glass").await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        let p0 = declare(&p, "console:alice", "P0 nothing is processed").await;
        let r = say(&p, "console:alice", "/queue retry ai-analysis --break-glass").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert_eq!(
            target.count("POST", "/api/queue/ai-analysis/retry-failed"),
            1,
            "ran at once"
        );
        let k = audit_kinds(&t.store).await;
        assert!(k.iter().any(|k| k == "execution.break_glass"), "{k:?}");
        let events = t.store.incident_events(p0).await.unwrap();
        let bg = events
            .iter()
            .find(|e| e.kind == "break-glass")
            .expect("on the timeline");
        assert!(
            bg.text.contains("flagged for review") && bg.person == "alice",
            "{bg:?}"
        );
        assert!(t
            .store
            .incident_events(p1)
            .await
            .unwrap()
            .iter()
            .all(|e| e.kind != "break-glass"));
        let page = slack_thread(&t.store, p0)
            .await
            .into_iter()
            .find(|m| m.starts_with("🚨 break-glass"))
            .expect("approvers paged");
        assert!(
            page.ends_with("<@U0BOB>, <@U0CAROL>"),
            "sre and eng-manager, not alice: {page}"
        );
        assert!(verify_audit(&t.store).await.is_ok());
        t.cleanup().await;
    }
}
