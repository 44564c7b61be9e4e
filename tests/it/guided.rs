//! Guided runs (issue #17 DR-5), on SQLite and Postgres, on a virtual clock:
//! a seq with manual steps stops before each `internal.confirm` step, keeps
//! the run as a timer row and posts its message (Done / Abort buttons) in the
//! request's channel; `/done <id> <step>` runs the steps after it, once, for
//! the requester or someone who may run the command; `/abort` stops it; an
//! unconfirmed step stops it when its window passes; a confirmation cut off
//! by a crash is reported as unknown and never run again. The steps call a
//! fake HTTP API; Slack is the platform the messages are rendered for.

use crate::support::{
    audit_kinds, clock, config, pipeline_for, requests, run_test, say_from, slack_origin, FakeApi, TestStore,
};
use opsbot::auth::Roles;
use opsbot::catalog::{self, Catalog};
use opsbot::clock::{Clock, ManualClock};
use opsbot::engine::scheduled::LEASE_MS;
use opsbot::engine::{timers, Outcome, Pipeline, Reply};
use opsbot::store::{OutOp, OutboxRow, GUIDED};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

const MINUTE: i64 = 60_000;

/// `dr drill`: stop, two manual steps, restart, verify. `dr short`: stop,
/// one manual step, restart. `dr approved`: `dr short` behind an sre's
/// approval.
const CATALOG: &str = r#"
[target.api]
kind = "http"
url = "http://127.0.0.1:1"

[command.queue."dr drill"]
summary = "A failover drill"
args = { db = { kind = "id" } }
risk = "write"
roles = ["oncall"]
action = { seq = [
  { http = { method = "POST", target = "api", path = "/api/stop" } },
  { internal = { confirm = { text = "promote {db}", within = "1h" } } },
  { internal = { confirm = { text = "switch the connection strings", within = "30m" } } },
  { http = { method = "POST", target = "api", path = "/api/restart" } },
  { http = { target = "api", path = "/api/verify" } },
] }

[command.queue."dr short"]
summary = "Stop, a manual step, restart"
risk = "write"
roles = ["oncall"]
action = { seq = [
  { http = { method = "POST", target = "api", path = "/api/stop" } },
  { internal = { confirm = { text = "promote it", within = "1h" } } },
  { http = { method = "POST", target = "api", path = "/api/restart" } },
] }

[command.queue."dr approved"]
summary = "dr short, approved"
risk = "destructive"
roles = ["oncall"]
approve = { roles = ["sre"], count = 1, ttl = "15m" }
action = { seq = [
  { http = { method = "POST", target = "api", path = "/api/stop" } },
  { internal = { confirm = { text = "promote it", within = "1h" } } },
  { http = { method = "POST", target = "api", path = "/api/restart" } },
] }
"#;

fn catalog(api: &str) -> Catalog {
    let env: HashMap<String, String> = [("OPSBOT_TARGET_API".to_string(), api.to_string())].into();
    let roles = Roles::new(&Default::default()).names();
    let ctx = catalog::Context {
        roles: &roles,
        env: &env,
    };
    catalog::load_str("guided.toml", CATALOG, &ctx).expect("guided catalog")
}

struct World {
    api: FakeApi,
    clock: Arc<ManualClock>,
    p: Pipeline,
}

impl World {
    async fn new(t: &TestStore) -> World {
        let api = FakeApi::start(&[
            ("POST", "/api/stop", json!({"stopped": true})),
            ("POST", "/api/restart", json!({"restarted": true})),
            ("GET", "/api/verify", json!({"ok": true})),
        ])
        .await;
        let clock = clock();
        let p = pipeline_for(&config(""), catalog(&api.url), t.store.clone(), clock.clone());
        World { api, clock, p }
    }

    /// `text` typed on Slack by `user` (U0ALICE …) in C_QUEUE.
    async fn say(&self, user: &str, text: &str) -> Reply {
        say_from(&self.p, &format!("slack:{user}"), text, slack_origin(user)).await
    }

    /// The API calls since the last look.
    fn calls(&self) -> Vec<(String, String)> {
        requests(&self.api.take())
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect()
}

/// The guided run's id in `text` (`g` and 8 hex digits).
fn run_id(text: &str) -> String {
    let re = regex::Regex::new(r"\bg[0-9a-f]{8}\b").unwrap();
    re.find(text).expect("a run id").as_str().to_string()
}

/// The Slack rows of run `id`'s message (its post, then its edits).
async fn message_rows(t: &TestStore, id: &str) -> Vec<OutboxRow> {
    let key = format!("guided:{id}");
    let rows = t.store.outbox_pending_for_tests("slack").await.expect("outbox");
    rows.into_iter()
        .filter(|r| match &r.message.op {
            OutOp::Post { key: Some(k), .. } | OutOp::Update { key: k } => *k == key,
            _ => false,
        })
        .collect()
}

/// The newest state of run `id`'s message: its text and its buttons' values.
async fn message(t: &TestStore, id: &str) -> (String, Vec<String>) {
    let rows = message_rows(t, id).await;
    let last = rows.last().expect("the run's message");
    let body = &last.message.body;
    let text = body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"]["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n");
    let buttons = body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "actions")
        .flat_map(|b| b["elements"].as_array().cloned().unwrap_or_default())
        .map(|e: Value| {
            format!(
                "{}={}",
                e["action_id"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("")
            )
        })
        .collect();
    (text, buttons)
}

async fn pending(t: &TestStore, id: &str) -> bool {
    t.store.timer_row(GUIDED, id).await.expect("timer row").is_some()
}

#[tokio::test]
async fn a_guided_run_waits_at_each_manual_step_and_runs_on_when_it_is_done() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            let r = w.say("U0ALICE", "/dr drill standby-2").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(
                r.text.contains("waits at step 2 of 5: promote standby-2"),
                "{}",
                r.text
            );
            assert!(
                r.text.contains("its message (Done / Abort) is in this channel"),
                "{}",
                r.text
            );
            let id = run_id(&r.text);
            assert_eq!(w.calls(), pairs(&[("POST", "/api/stop")]), "only step 1 ran");
            assert!(pending(t, &id).await);
            let rows = message_rows(t, &id).await;
            assert!(matches!(rows[0].message.op, OutOp::Post { .. }), "{rows:#?}");
            let (text, buttons) = message(t, &id).await;
            assert!(text.contains("promote standby-2"), "{text}");
            assert!(text.contains("✓ 1/5 POST /api/stop → 200"), "{text}");
            assert_eq!(
                buttons,
                [format!("guided_done={id} 2"), format!("guided_abort={id}")]
            );

            // Not the step it waits at; a stranger: nothing runs.
            let r = w.say("U0ALICE", &format!("/done {id} 3")).await;
            assert_eq!(r.outcome, Outcome::Usage, "{}", r.text);
            assert!(r.text.contains("waits at step 2 of 5, not step 3"), "{}", r.text);
            let r = w.say("U0STRANGER", &format!("/done {id} 2")).await;
            assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
            assert!(w.calls().is_empty());

            // Step 2 done: the next step is manual too, so it waits again.
            let r = w.say("U0ALICE", &format!("/done {id} 2")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(r.private, "the confirmation's answer is the confirmer's");
            assert!(r.text.contains("waits at step 3 of 5"), "{}", r.text);
            assert!(w.calls().is_empty());
            let (text, buttons) = message(t, &id).await;
            assert!(
                text.contains("✓ 2/5 confirmed by alice: promote standby-2"),
                "{text}"
            );
            assert!(text.contains("switch the connection strings"), "{text}");
            assert_eq!(buttons[0], format!("guided_done={id} 3"));
            assert!(matches!(
                message_rows(t, &id).await.last().unwrap().message.op,
                OutOp::Update { .. }
            ));

            // Step 3 done, by someone else who may run it: the rest runs,
            // the message shows the whole run.
            let r = w.say("U0BOB", &format!("/done {id} 3")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert_eq!(
                w.calls(),
                pairs(&[("POST", "/api/restart"), ("GET", "/api/verify")])
            );
            let (text, buttons) = message(t, &id).await;
            assert!(text.contains("all 5 steps ran"), "{text}");
            assert!(text.contains("✓ 3/5 confirmed by bob"), "{text}");
            assert!(text.contains("✓ 5/5 GET /api/verify → 200"), "{text}");
            assert!(buttons.is_empty(), "no buttons once it ended: {buttons:?}");
            assert!(!pending(t, &id).await);
            let r = w.say("U0ALICE", &format!("/done {id} 3")).await;
            assert_eq!(r.outcome, Outcome::Usage, "{}", r.text);
            assert!(r.text.contains("No guided run"), "{}", r.text);
            assert!(w.calls().is_empty());
            let kinds = audit_kinds(&t.store).await;
            assert_eq!(
                kinds.iter().filter(|k| *k == "guided.paused").count(),
                2,
                "{kinds:?}"
            );
        })
    })
    .await;
}

#[tokio::test]
async fn from_the_console_the_answer_says_what_to_do_and_done_goes_on() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            // `opsbot run` has no message to edit: its answer is all there is.
            let r = crate::support::say(&w.p, "console:alice", "/dr short").await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            let id = run_id(&r.text);
            assert!(
                r.text.contains(&format!(
                    "waits at step 2 of 3: promote it (confirm with `/done {id} 2`"
                )),
                "{}",
                r.text
            );
            assert!(!r.text.contains("its message"), "{}", r.text);
            let r = crate::support::say(&w.p, "console:alice", &format!("/done {id} 2")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(
                r.text.contains(&format!("Step 2 of `{id}` confirmed")),
                "{}",
                r.text
            );
            assert!(r.text.contains("✓ 3/3 POST /api/restart → 200"), "{}", r.text);
            assert_eq!(
                w.calls(),
                pairs(&[("POST", "/api/stop"), ("POST", "/api/restart")])
            );
            assert!(t
                .store
                .outbox_pending_for_tests("slack")
                .await
                .unwrap()
                .is_empty());
        })
    })
    .await;
}

#[tokio::test]
async fn a_step_confirmed_twice_at_once_runs_on_once() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            let id = run_id(&w.say("U0ALICE", "/dr short").await.text);
            w.calls();
            let done = format!("/done {id} 2");
            let (a, b) = tokio::join!(w.say("U0ALICE", &done), w.say("U0ALICE", &done));
            let confirmed = [&a, &b].iter().filter(|r| r.outcome == Outcome::Done).count();
            assert_eq!(confirmed, 1, "{} / {}", a.text, b.text);
            assert_eq!(w.calls(), pairs(&[("POST", "/api/restart")]));
            assert!(!pending(t, &id).await);
        })
    })
    .await;
}

#[tokio::test]
async fn an_unconfirmed_step_stops_the_run_when_its_window_passes() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            let id = run_id(&w.say("U0ALICE", "/dr short").await.text);
            w.calls();
            w.clock.advance(59 * MINUTE);
            timers::fire_due(&w.p).await.expect("timers");
            assert!(pending(t, &id).await, "still within its hour");
            w.clock.advance(MINUTE);
            timers::fire_due(&w.p).await.expect("timers");
            assert!(!pending(t, &id).await);
            let (text, buttons) = message(t, &id).await;
            assert!(text.contains("step 2 of 3 was not confirmed within 1h"), "{text}");
            assert!(buttons.is_empty());
            let r = w.say("U0ALICE", &format!("/done {id} 2")).await;
            assert!(r.text.contains("No guided run"), "{}", r.text);
            assert!(w.calls().is_empty(), "nothing after the manual step ran");
            assert!(audit_kinds(&t.store).await.contains(&"guided.ended".to_string()));
        })
    })
    .await;
}

#[tokio::test]
async fn abort_stops_a_waiting_run_for_the_people_who_may_run_it() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            let id = run_id(&w.say("U0ALICE", "/dr short").await.text);
            w.calls();
            let r = w.say("U0STRANGER", &format!("/abort {id}")).await;
            assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
            assert!(pending(t, &id).await);
            let r = w.say("U0ALICE", &format!("/abort {id}")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(!pending(t, &id).await);
            let (text, buttons) = message(t, &id).await;
            assert!(text.contains("aborted by alice at step 2 of 3"), "{text}");
            assert!(buttons.is_empty());
            let r = w.say("U0ALICE", &format!("/done {id} 2")).await;
            assert!(r.text.contains("No guided run"), "{}", r.text);
            assert!(w.calls().is_empty());
        })
    })
    .await;
}

#[tokio::test]
async fn a_confirmation_cut_off_by_a_crash_is_reported_unknown_and_not_run_again() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            let id = run_id(&w.say("U0ALICE", "/dr short").await.text);
            w.calls();
            // A /done claimed the run, then the process died before settling.
            let row = t.store.timer_row(GUIDED, &id).await.unwrap().expect("row");
            let now = w.clock.now_ms();
            assert!(t
                .store
                .claim_payload(GUIDED, &id, &row.payload, now, now + LEASE_MS)
                .await
                .unwrap());
            let r = w.say("U0ALICE", &format!("/done {id} 2")).await;
            assert!(r.text.contains("are running"), "{}", r.text);
            w.clock.advance(LEASE_MS);
            timers::fire_due(&w.p).await.expect("timers");
            assert!(!pending(t, &id).await);
            let (text, _) = message(t, &id).await;
            assert!(text.contains("their result is unknown"), "{text}");
            assert!(w.calls().is_empty(), "nothing is run again");
        })
    })
    .await;
}

#[tokio::test]
async fn an_approved_guided_run_pauses_after_the_approval_and_says_so() {
    run_test(|t| {
        Box::pin(async move {
            let w = World::new(t).await;
            let r = w.say("U0ALICE", "/dr approved").await;
            assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
            let a = r.approval.expect("approval");
            assert!(w.calls().is_empty());
            let r = w.say("U0BOB", &format!("/approve a{a}")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert!(
                r.text.contains("waits at step 2 of 3"),
                "the card's result says so: {}",
                r.text
            );
            assert_eq!(w.calls(), pairs(&[("POST", "/api/stop")]));
            let id = run_id(&r.text);
            let (text, _) = message(t, &id).await;
            assert!(
                text.contains("`/dr approved (a"),
                "the run names its approval: {text}"
            );
            // The requester confirms; the approved request runs on.
            let r = w.say("U0ALICE", &format!("/done {id} 2")).await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert_eq!(w.calls(), pairs(&[("POST", "/api/restart")]));
        })
    })
    .await;
}

#[tokio::test]
async fn the_store_confirms_and_takes_a_waiting_row_once_by_its_payload() {
    run_test(|t| {
        Box::pin(async move {
            let s = &t.store;
            let mut tx = s.begin().await.unwrap();
            tx.schedule_payload(GUIDED, "g1", 10_000, "{\"step\":2}")
                .await
                .unwrap();
            tx.schedule_payload(GUIDED, "g2", 10_000, "{\"step\":2}")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            // An older payload, or a claim after the deadline, claims nothing.
            assert!(!s
                .claim_payload(GUIDED, "g1", "{\"step\":1}", 1_000, 5_000)
                .await
                .unwrap());
            assert!(!s
                .claim_payload(GUIDED, "g1", "{\"step\":2}", 10_000, 50_000)
                .await
                .unwrap());
            assert!(s
                .claim_payload(GUIDED, "g1", "{\"step\":2}", 1_000, 5_000)
                .await
                .unwrap());
            assert!(
                !s.claim_payload(GUIDED, "g1", "{\"step\":2}", 1_000, 6_000)
                    .await
                    .unwrap(),
                "once"
            );
            let row = s.timer_row(GUIDED, "g1").await.unwrap().unwrap();
            assert_eq!((row.due_at, row.claimed_until), (5_000, 5_000));
            let mut tx = s.begin().await.unwrap();
            assert!(
                !tx.take_payload(GUIDED, "g1", "{\"step\":2}").await.unwrap(),
                "claimed rows stay"
            );
            assert!(!tx.take_payload(GUIDED, "g2", "{\"step\":1}").await.unwrap());
            assert!(tx.take_payload(GUIDED, "g2", "{\"step\":2}").await.unwrap());
            assert!(!tx.take_payload(GUIDED, "g2", "{\"step\":2}").await.unwrap());
            tx.commit().await.unwrap();
            assert_eq!(s.timer_row(GUIDED, "g2").await.unwrap(), None);
            assert!(s.timer_row(GUIDED, "g1").await.unwrap().is_some());
        })
    })
    .await;
}
