//! Scheduled actions on the one timer service (issue #17 DEP-2, M-3), on
//! SQLite and Postgres, on a virtual clock: `/deploy watch` runs its reads
//! now and again every `--every`, editing one message, until `--for` is
//! over; a restart mid-watch goes on where it was, a run cut off by a crash
//! is reported, never run twice; `/db mongo profile on --for` switches the
//! profiler off by itself when the clock passes its time. The targets are
//! faked at the wire (the queue service, mongosh through the ssh stand-in);
//! the timer loop is stepped by hand.

use crate::support::{
    clock, config, config_enabling_each, pipeline_for, pipeline_with, run_test, say_from, say_in,
    shipped_catalog_env, slack_origin, FakeTarget, StandIns, TestApp, TestStore,
};
use opsbot::catalog::Schedule;
use opsbot::clock::{Clock, ManualClock};
use opsbot::config::Config;
use opsbot::engine::scheduled::LEASE_MS;
use opsbot::engine::{timers, Outcome, Pipeline, Reply};
use opsbot::store::{OutOp, OutboxRow, Store, SCHEDULED};
use std::sync::Arc;
use std::time::Duration;

const MINUTE: i64 = 60_000;

/// The pending Slack rows of the message posted under `key` (its post, its
/// newest edit: an edit supersedes the older pending ones).
async fn rows_of(store: &Store, key: &str) -> Vec<OutboxRow> {
    let rows = store.outbox_pending_for_tests("slack").await.expect("outbox");
    rows.into_iter()
        .filter(|r| match &r.message.op {
            OutOp::Post { key: Some(k), .. } | OutOp::Update { key: k } => k == key,
            _ => false,
        })
        .collect()
}

/// The key of the one watch message posted so far.
async fn watch_key(store: &Store) -> String {
    let rows = store.outbox_pending_for_tests("slack").await.expect("outbox");
    let keys: Vec<String> = rows
        .iter()
        .filter_map(|r| match &r.message.op {
            OutOp::Post { key: Some(k), .. } if k.starts_with("watch:") => Some(k.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 1, "one watch message: {rows:#?}");
    keys[0].clone()
}

fn text(row: &OutboxRow) -> String {
    row.message.body["text"].as_str().unwrap_or_default().to_string()
}

/// Moves the clock by `ms` and fires what is due on `p`.
async fn tick(p: &Pipeline, clock: &ManualClock, ms: i64) {
    clock.advance(ms);
    timers::fire_due(p).await.expect("timers");
}

/// A fake queue service, a clock and a pipeline over `t` where alice has
/// just typed `text` (a watch) in C_QUEUE on Slack; its answer.
async fn watching(t: &TestStore, text: &str) -> (FakeTarget, Arc<ManualClock>, Pipeline, Reply) {
    let target = FakeTarget::start().await;
    let clock = clock();
    let p = pipeline_with(&config(""), t.store.clone(), &target.url, clock.clone());
    let r = say_from(&p, "slack:U0ALICE", text, slack_origin("U0ALICE")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
    (target, clock, p, r)
}

#[tokio::test]
async fn a_watch_edits_one_message_at_each_run_then_says_it_ended() {
    run_test(|t| {
        Box::pin(async move {
            let (target, clock, p, r) = watching(t, "/deploy watch --every 1m --for 5m").await;
            assert!(r.text.contains("run 1 of 6 · next run at"), "{}", r.text);
            assert_eq!(target.count("GET", "/api/queue/stats"), 1);
            let key = watch_key(&t.store).await;
            let first = rows_of(&t.store, &key).await;
            assert!(matches!(&first[..], [row] if matches!(&row.message.op, OutOp::Post { .. }) && row.message.channel == "C_QUEUE"));
            assert!(text(&first[0]).contains("ai-analysis"), "the queue counts: {}", text(&first[0]));

            for run in 2..=6 {
                tick(&p, &clock, MINUTE).await;
                assert_eq!(target.count("GET", "/api/queue/stats"), run, "{}: run {run}", t.name);
                let rows = rows_of(&t.store, &key).await;
                assert_eq!(rows.len(), 2, "{}: the post and one edit: {rows:#?}", t.name);
                assert_eq!(rows[1].message.op, OutOp::Update { key: key.clone() });
                let shown = text(&rows[1]);
                assert!(shown.contains(&format!("run {run} of 6")), "{}: {shown}", t.name);
                assert_eq!(shown.contains("watch ended"), run == 6, "{}: {shown}", t.name);
            }
            assert_eq!(t.store.timer_count().await.unwrap(), 0, "the watch's row is gone");
            tick(&p, &clock, 10 * MINUTE).await;
            assert_eq!(target.count("GET", "/api/queue/stats"), 6, "nothing runs after the end");
            let audit = t.store.audit_records().await.unwrap();
            let timer_runs = audit
                .iter()
                .filter(|r| r.entry.kind == "execution" && r.entry.source == "timer")
                .count();
            assert_eq!(timer_runs, 5, "{}: one audit entry per later run", t.name);
            assert_eq!(crate::support::verify_audit(&t.store).await.map(|_| ()), Ok(()));
        })
    })
    .await;
}

#[tokio::test]
async fn a_restart_mid_watch_goes_on_and_no_run_happens_twice() {
    run_test(|t| {
        Box::pin(async move {
            let (target, clock, a, r) = watching(t, "/deploy watch --for 30m").await;
            let stats = || target.count("GET", "/api/queue/stats");
            assert!(r.text.contains("run 1 of 31"), "every 1m by default: {}", r.text);
            let key = watch_key(&t.store).await;
            tick(&a, &clock, MINUTE).await;
            assert_eq!(stats(), 2);

            // A restart: another process over the same store goes on.
            let b = pipeline_with(&config(""), t.reopen().await, &target.url, clock.clone());
            tick(&b, &clock, MINUTE).await;
            assert_eq!(stats(), 3, "{}: the restarted process runs the next one", t.name);
            let shown = text(&rows_of(&t.store, &key).await[1]);
            assert!(shown.contains("run 3 of 31"), "{}: {shown}", t.name);

            // Two instances at the same due time: one run.
            clock.advance(MINUTE);
            let (ra, rb) = tokio::join!(timers::fire_due(&a), timers::fire_due(&b));
            ra.unwrap();
            rb.unwrap();
            assert_eq!(stats(), 4, "{}: one of them ran it", t.name);

            // A crash mid-run: the run is claimed, the process dies before
            // it settles. Nobody runs it again before its lease lapses …
            clock.advance(MINUTE);
            let due = t.store.due_timers(clock.now_ms(), 10).await.unwrap();
            let item = &due
                .iter()
                .find(|x| x.kind == SCHEDULED)
                .expect("the watch is due")
                .item;
            let claimed = t
                .store
                .claim_timer(SCHEDULED, item, clock.now_ms(), clock.now_ms() + LEASE_MS)
                .await
                .unwrap()
                .expect("claimed");
            assert!(!claimed.lapsed);
            let c = pipeline_with(&config(""), t.reopen().await, &target.url, clock.clone());
            tick(&c, &clock, MINUTE).await;
            assert_eq!(stats(), 4, "{}: a claimed run is not taken again", t.name);
            // … and then it is reported as cut off, not run again, and the
            // watch goes on with its next run, on its rhythm.
            tick(&c, &clock, LEASE_MS).await;
            assert_eq!(stats(), 4, "{}: the cut-off run is not run again", t.name);
            let shown = text(&rows_of(&t.store, &key).await[1]);
            assert!(
                shown.contains("run 5 of 31") && shown.contains("result is unknown"),
                "{}: {shown}",
                t.name
            );
            tick(&c, &clock, MINUTE).await;
            assert_eq!(stats(), 5, "{}: the watch goes on", t.name);
            let shown = text(&rows_of(&t.store, &key).await[1]);
            assert!(
                shown.contains("run 17 of 31"),
                "{}: runs missed meanwhile are skipped: {shown}",
                t.name
            );
            let unknown = t
                .store
                .audit_records()
                .await
                .unwrap()
                .iter()
                .filter(|r| r.entry.outcome == "unknown")
                .count();
            assert_eq!(unknown, 1);
        })
    })
    .await;
}

fn profile_config(s: &StandIns) -> Config {
    let mut c = config_enabling_each(
        "[people.erin]\nconsole = \"erin\"\nslack = \"U0ERIN\"\nroles = [\"dba\"]\n",
        &["cap", "scrape"],
    );
    c.ssh_program = s.ssh();
    c.process_allow.push("mongosh".into());
    c
}

#[tokio::test]
async fn the_bounds_of_a_schedule_are_friendly_usage_errors() {
    let s = StandIns::new(&[]);
    let config = profile_config(&s);
    let catalog = shipped_catalog_env(&config, &[]);
    let t = TestStore::sqlite().await;
    let p = pipeline_for(&config, catalog, t.store.clone(), clock());
    let mut out = String::new();
    for text in [
        "/deploy watch --sys cap --every 10s",
        "/deploy watch --sys cap --for 2h",
        "/deploy watch --sys queue --every 10m --for 5m",
        "/deploy watch --sys queue --every soon",
        "/db mongo profile on --for 30s",
        "/db mongo profile on --for 2d",
        "/db mongo profile on --slowms 5",
        "/db mongo profile off --for 1h",
    ] {
        let r = say_in(&p, "C_OPS", "console:erin", text).await;
        assert_eq!(r.outcome, Outcome::Usage, "{text}: {}", r.text);
        out.push_str(&format!("> {text}\n{}\n\n", r.text));
    }
    assert_eq!(t.store.timer_count().await.unwrap(), 0, "nothing scheduled");
    insta::assert_snapshot!(out);
    t.cleanup().await;
}

#[tokio::test]
async fn profile_on_for_switches_the_profiler_off_when_its_time_comes() {
    run_test(|t| {
        Box::pin(async move {
            let s = StandIns::new(&[("mongosh", "{ \"was\": 0, \"slowms\": 100, \"ok\": 1 }\n")]);
            let config = profile_config(&s);
            let clock = clock();
            let catalog = shipped_catalog_env(&config, &[]);
            let p = pipeline_for(&config, catalog, t.store.clone(), clock.clone());
            let r = say_from(
                &p,
                "slack:U0ERIN",
                "/db mongo profile on --slowms 250 --for 10m",
                slack_origin("U0ERIN"),
            )
            .await;
            assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
            assert!(
                r.text
                    .contains("Then `/db mongo profile off --slowms 250` runs at")
                    && r.text.contains("(in 10m); its result is posted here."),
                "{}",
                r.text
            );
            let calls = s.calls("mongosh");
            assert_eq!(calls.len(), 1);
            assert!(calls[0].argv[3].contains("setProfilingLevel(1, { slowms: n })"));
            assert_eq!(
                s.envs("mongosh")[0].get("OPSBOT_SLOWMS").map(String::as_str),
                Some("250")
            );
            assert_eq!(t.store.timer_count().await.unwrap(), 1);

            tick(&p, &clock, 9 * MINUTE).await;
            assert_eq!(s.calls("mongosh").len(), 1, "{}: not before its time", t.name);
            s.add("mongosh", "{ \"was\": 1, \"slowms\": 250, \"ok\": 1 }\n");
            tick(&p, &clock, MINUTE).await;
            let calls = s.calls("mongosh");
            assert_eq!(calls.len(), 2, "{}: the off ran", t.name);
            assert!(
                calls[1].argv[3].contains("setProfilingLevel(0)"),
                "{:?}",
                calls[1].argv
            );
            assert_eq!(t.store.timer_count().await.unwrap(), 0);

            // Its result is posted where the request was made.
            let rows = t.store.outbox_pending_for_tests("slack").await.unwrap();
            let last = rows.last().expect("a post");
            assert!(
                matches!(
                    &last.message.op,
                    OutOp::Post {
                        key: None,
                        thread: None,
                        fallback: None
                    }
                ) && last.message.channel == "C_QUEUE",
                "{last:#?}"
            );
            assert!(text(last).contains("\"was\": 1"), "{}", text(last));
            let audit = t.store.audit_records().await.unwrap();
            let off = audit.last().expect("audited");
            assert_eq!(
                (
                    off.entry.kind.as_str(),
                    off.entry.source.as_str(),
                    off.entry.person.as_str(),
                    off.entry.outcome.as_str()
                ),
                ("execution", "timer", "erin", "succeeded")
            );
            assert!(off
                .entry
                .args
                .as_deref()
                .is_some_and(|a| a.contains("\"state\":\"off\"")));

            // `off` schedules nothing.
            let r = say_from(
                &p,
                "slack:U0ERIN",
                "/db mongo profile off",
                slack_origin("U0ERIN"),
            )
            .await;
            assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
            assert_eq!(t.store.timer_count().await.unwrap(), 0);
        })
    })
    .await;
}

#[tokio::test]
async fn stop_ends_the_watches_of_the_channel_and_says_who_stopped_them() {
    run_test(|t| {
        Box::pin(async move {
            let (target, clock, p, _) = watching(t, "/deploy watch --every 1m --for 5m").await;
            let key = watch_key(&t.store).await;
            tick(&p, &clock, MINUTE).await;
            let r = say_from(&p, "slack:U0BOB", "/deploy watch --stop", slack_origin("U0BOB")).await;
            assert_eq!(
                r.text, "Stopped 1 watch of `/deploy watch` in this channel.",
                "{}",
                t.name
            );
            assert_eq!(t.store.timer_count().await.unwrap(), 0);
            let rows = rows_of(&t.store, &key).await;
            let shown = text(&rows[1]);
            assert!(
                shown.contains("stopped by bob after run 2 of 6") && shown.contains("ai-analysis"),
                "{}: the last result stays: {shown}",
                t.name
            );
            tick(&p, &clock, 10 * MINUTE).await;
            assert_eq!(
                target.count("GET", "/api/queue/stats"),
                2,
                "{}: nothing runs after a stop",
                t.name
            );
            let r = say_from(&p, "slack:U0BOB", "/deploy watch --stop", slack_origin("U0BOB")).await;
            assert_eq!(r.text, "No watch of `/deploy watch` is running in this channel.");
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_slack_the_timer_loop_posts_the_watch_then_edits_it_until_it_ends() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn_with(t.store.clone(), |cat| {
        for c in cat.commands.iter_mut().filter(|c| c.name == "deploy watch") {
            if let Some(Schedule::Watch { min_every, .. }) = c.schedule.as_mut() {
                *min_every = Duration::from_millis(200);
            }
        }
    })
    .await;
    app.slash("U0ALICE", "/deploy", "watch --every 500ms --for 1500ms")
        .await;
    let ended = |calls: &[crate::fake_slack::Call]| {
        calls.iter().any(|c| {
            c.method == "chat.update" && c.ok() && c.text().is_some_and(|x| x.contains("watch ended"))
        })
    };
    let calls = app
        .slack
        .wait_until(Duration::from_secs(10), ended, "the watch's last edit")
        .await;
    let posts: Vec<_> = calls.iter().filter(|c| c.method == "chat.postMessage").collect();
    assert_eq!(posts.len(), 1, "one message: {calls:#?}");
    assert!(
        posts[0].text().is_some_and(|x| x.contains("run 1 of 4")),
        "{:?}",
        posts[0].text()
    );
    let ts = posts[0].ts.clone().expect("posted");
    let updates: Vec<_> = calls.iter().filter(|c| c.method == "chat.update").collect();
    assert!(
        updates.iter().all(|u| u.body["ts"].as_str() == Some(ts.as_str())),
        "every edit is of that message: {updates:#?}"
    );
    let last = updates.last().and_then(|u| u.text()).unwrap_or_default();
    assert!(last.contains("run 4 of 4 · watch ended"), "{last}");
    assert_eq!(app.target.count("GET", "/api/queue/stats"), 4);
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn a_claim_is_taken_once_lapses_into_a_report_and_settles_only_while_it_holds() {
    run_test(|t| {
        Box::pin(async move {
            let s = &t.store;
            let mut tx = s.begin().await.unwrap();
            tx.schedule_payload(SCHEDULED, "w1", 1_000, "{\"x\":1}")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            assert_eq!(
                s.claim_timer(SCHEDULED, "w1", 999, 5_000).await.unwrap(),
                None,
                "not due yet"
            );
            let first = s
                .claim_timer(SCHEDULED, "w1", 1_000, 5_000)
                .await
                .unwrap()
                .expect("due");
            assert_eq!(
                (first.payload.as_str(), first.lease, first.lapsed),
                ("{\"x\":1}", 5_000, false)
            );
            assert_eq!(
                s.claim_timer(SCHEDULED, "w1", 1_000, 6_000).await.unwrap(),
                None,
                "taken once"
            );
            assert_eq!(
                s.next_due().await.unwrap(),
                Some(5_000),
                "not due again before its lease"
            );
            // The lease lapses: the next claim is marked, and the old one no longer settles.
            let second = s
                .claim_timer(SCHEDULED, "w1", 5_000, 9_000)
                .await
                .unwrap()
                .expect("lapsed");
            assert!(second.lapsed);
            let mut tx = s.begin().await.unwrap();
            assert!(!tx.settle_claim(SCHEDULED, "w1", first.lease, None).await.unwrap());
            assert!(tx
                .settle_claim(SCHEDULED, "w1", second.lease, Some((20_000, "{\"x\":2}")))
                .await
                .unwrap());
            tx.commit().await.unwrap();
            assert_eq!(s.timer_due(SCHEDULED, "w1").await.unwrap(), Some(20_000));
            assert_eq!(
                s.timer_payloads(SCHEDULED).await.unwrap(),
                [("w1".to_string(), "{\"x\":2}".to_string())]
            );
            let third = s
                .claim_timer(SCHEDULED, "w1", 20_000, 30_000)
                .await
                .unwrap()
                .expect("due");
            assert!(!third.lapsed, "a settled claim leaves no mark");
            let mut tx = s.begin().await.unwrap();
            assert!(tx.settle_claim(SCHEDULED, "w1", third.lease, None).await.unwrap());
            tx.commit().await.unwrap();
            assert_eq!(s.timer_count().await.unwrap(), 0);
        })
    })
    .await;
}
