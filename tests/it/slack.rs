//! Slack end to end: signed requests into the real router, the real pipeline
//! and outbox, a fake Slack Web API and a fake queue service at the wire.

use crate::fake_slack::{Answer, FakeSlack};
use crate::support::{both, run_test, TestApp};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RETRY: (&str, &str) = ("POST", "/api/queue/ai-analysis/retry-failed");

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn body_text(call: &Value) -> String {
    call.to_string()
}

/// The bodies of every call of `method` so far.
fn bodies(slack: &FakeSlack, method: &str) -> Vec<Value> {
    slack.calls_of(method).into_iter().map(|c| c.body).collect()
}

/// Waits for at least `n` calls of `method`; their bodies.
async fn wait_for(slack: &FakeSlack, method: &str, n: usize, timeout: Duration) -> Vec<Value> {
    slack
        .wait_until(
            timeout,
            |calls| calls.iter().filter(|c| c.method == method).count() >= n,
            method,
        )
        .await;
    bodies(slack, method)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_flow_card_self_approval_refused_second_person_executes_once() {
    for t in both().await {
        let app = TestApp::spawn(t.store.clone()).await;
        let r = app.slash("U0ALICE", "/queue", "retry ai-analysis").await;
        assert_eq!(r.status(), 200);
        // The card is posted through the outbox.
        let card = wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
        let card = &card[0];
        let text = body_text(card);
        assert!(
            text.contains("\"action_id\":\"approve\"") && text.contains("/queue retry ai-analysis"),
            "{text}"
        );
        assert_eq!(card["channel"], "C_QUEUE");
        let label = "a1";

        // Self-approval by click: refused, ephemeral to alice, nothing runs.
        assert_eq!(app.click("U0ALICE", "approve", label, "1.1").await.status(), 200);
        let eph = wait_for(&app.slack, "chat.postEphemeral", 1, Duration::from_secs(5)).await;
        assert_eq!(eph[0]["user"], "U0ALICE");
        assert!(body_text(&eph[0]).contains("you requested a1"), "{}", eph[0]);
        assert_eq!(app.target.count(RETRY.0, RETRY.1), 0);

        // Bob double-clicks while Carol clicks at the same instant.
        let (a, b, c) = tokio::join!(
            app.click("U0BOB", "approve", label, "2.1"),
            app.click("U0BOB", "approve", label, "2.2"),
            app.click("U0CAROL", "approve", label, "2.3"),
        );
        assert!([a.status(), b.status(), c.status()].iter().all(|s| *s == 200));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let updates = bodies(&app.slack, "chat.update");
            if updates.iter().any(|u| body_text(u).contains("Retried 37")) {
                let last = body_text(updates.last().unwrap());
                assert!(last.contains("approved by"), "{last}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "card never showed the result: {updates:#?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        app.settle().await;
        assert_eq!(
            app.target.count(RETRY.0, RETRY.1),
            1,
            "executed exactly once on {}",
            t.name
        );
        let a = app.pipeline.store.approval(1).await.unwrap().unwrap();
        assert_eq!(a.state, opsbot::approval::State::Succeeded);
        app.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_requests_get_401_and_change_nothing() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let body = app.command_body("U0ALICE", "/queue", "pause ai-analysis");
    let now = app.now_secs();
    for (ts, sig) in [
        (now.to_string(), "v0=deadbeef".to_string()),
        ((now - 301).to_string(), app.sign(&(now - 301).to_string(), &body)),
        (now.to_string(), app.sign(&now.to_string(), "something else")),
    ] {
        let r = app
            .post_signed(
                "/slack/commands",
                &body,
                &ts,
                &sig,
                "application/x-www-form-urlencoded",
            )
            .await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.text().await.unwrap(), "", "no detail leaks");
    }
    let r = app
        .client
        .post(format!("{}/slack/commands", app.url))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.settle().await;
    assert!(app.slack.calls().is_empty());
    assert_eq!(app.target.count("POST", "/api/queue/ai-analysis/pause"), 0);
    assert!(t.store.new_inbox_items(10).await.unwrap().is_empty());
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_answers_come_in_the_ack_and_store_nothing() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let r = app.slash("U0ALICE", "/queue", "retyr ai-analysis").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["response_type"], "ephemeral");
    assert!(v["text"].as_str().unwrap().contains("/queue retry"), "{v}");
    let v: Value = app
        .slash("U0STRANGER", "/queue", "retry ai-analysis")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["response_type"], "ephemeral");
    assert!(
        v["text"].as_str().unwrap().contains("[people."),
        "how to be added: {v}"
    );
    let v: Value = app.slash("U0ALICE", "/help", "").await.json().await.unwrap();
    assert!(v["text"].as_str().unwrap().contains("/queue retry"), "{v}");
    app.settle().await;
    assert!(app.slack.calls().is_empty(), "{:#?}", app.slack.calls());
    // Only the refusal is audited (off the request path, committed with
    // whatever else the appender gathered); typos and help are not.
    let store = t.store.clone();
    crate::support::eventually("the refusal's audit entry", || {
        let store = store.clone();
        async move { !store.audit_records().await.unwrap().is_empty() }
    })
    .await;
    let records = t.store.audit_records().await.unwrap();
    let kinds: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.entry.kind.as_str(), r.entry.identity.as_str()))
        .collect();
    assert_eq!(kinds, [("denied", "slack:U0STRANGER")]);
    assert!(
        t.store.new_inbox_items(10).await.unwrap().is_empty(),
        "nothing stored for processing"
    );
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_target_never_delays_the_ack() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    app.target
        .delay_ms
        .store(3_000, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let r = app.slash("U0ALICE", "/queue", "pause ai-analysis").await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "ack took {:?}",
        started.elapsed()
    );
    let posts = wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(6)).await;
    assert!(
        body_text(&posts[0]).contains("Paused ai-analysis"),
        "{}",
        posts[0]
    );
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_verify_url_and_run_mentions_once_in_thread() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let r = app
        .event(
            &json!({"type": "url_verification", "token": "x", "challenge": "ch4ll"}),
            None,
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"challenge": "ch4ll"}));
    let ev = json!({
        "type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "Ev123", "event_time": 1700000000,
        "event": {"type": "app_mention", "user": "U0ALICE", "channel": "C_QUEUE", "text": "<@U0BOT> queue stats", "ts": "1700000000.000100"}
    });
    assert_eq!(app.event(&ev, None).await.status(), 200);
    assert_eq!(app.event(&ev, Some(1)).await.status(), 200, "Slack retry");
    assert_eq!(app.event(&ev, Some(2)).await.status(), 200, "Slack retry");
    let posts = wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    assert_eq!(posts[0]["thread_ts"], "1700000000.000100");
    assert!(body_text(&posts[0]).contains("ai-analysis"));
    app.settle().await;
    assert_eq!(
        bodies(&app.slack, "chat.postMessage").len(),
        1,
        "deduplicated by event_id"
    );
    assert_eq!(app.target.count("GET", "/api/queue/stats"), 1);
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn slack_routes_are_404_when_slack_is_disabled() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn_without_slack(t.store.clone()).await;
    let r = app
        .client
        .post(format!("{}/slack/commands", app.url))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_requests_survive_a_restart() {
    let t = crate::support::TestStore::sqlite().await;
    // A request stored (acked) but never processed, and one cut off mid-way,
    // by a process that stopped a while ago.
    let pending = opsbot::store::InboxItem {
        id: 1,
        received_at: now_ms() - 10_000,
        source: "slack".into(),
        actor: "slack:U0ALICE".into(),
        channel: Some("C_QUEUE".into()),
        thread: None,
        text: "/queue pause ai-analysis".into(),
        origin: json!({"user": "U0ALICE", "channel": "C_QUEUE", "thread_ts": null, "kind": "command", "response_url": null}).to_string(),
        dedupe_key: None,
    };
    let cut = opsbot::store::InboxItem {
        id: 2,
        text: "/queue resume ai-analysis".into(),
        ..pending.clone()
    };
    t.store.insert_inbox_batch(&[&pending, &cut]).await.unwrap();
    assert!(t.store.claim_inbox(2).await.unwrap());
    // The restarted process: a new instance over the same database.
    let app = TestApp::spawn(t.reopen().await).await;
    let posts = wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    assert!(
        body_text(&posts[0]).contains("Paused ai-analysis"),
        "{}",
        posts[0]
    );
    let eph = wait_for(&app.slack, "chat.postEphemeral", 1, Duration::from_secs(5)).await;
    assert!(body_text(&eph[0]).contains("result is unknown"), "{}", eph[0]);
    assert_eq!(
        app.target.count("POST", "/api/queue/ai-analysis/resume"),
        0,
        "never re-run"
    );
    // The reply is queued before the item is marked done: wait for the mark.
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.store.inbox_state(1).await.unwrap().as_deref() != Some("done") {
        assert!(Instant::now() < deadline, "item 1 never marked done");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        t.store.inbox_state(2).await.unwrap().as_deref(),
        Some("interrupted")
    );
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_show_expiry_without_anyone_clicking() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn_with(t.store.clone(), |cat| {
        for c in cat.commands.iter_mut().filter(|c| c.name == "queue retry") {
            c.approve.as_mut().unwrap().ttl = Duration::from_millis(400);
        }
    })
    .await;
    app.slash("U0ALICE", "/queue", "retry ai-analysis").await;
    wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    let updates = wait_for(&app.slack, "chat.update", 1, Duration::from_secs(5)).await;
    assert!(body_text(&updates[0]).contains("expired"), "{}", updates[0]);
    assert!(
        !body_text(&updates[0]).contains("\"action_id\""),
        "buttons removed"
    );
    let a = t.store.approval(1).await.unwrap().unwrap();
    assert_eq!(a.state, opsbot::approval::State::Expired);
    let records = t.store.audit_records().await.unwrap();
    let seen: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r.entry.kind.as_str(), r.entry.source.as_str()))
        .collect();
    assert_eq!(
        seen,
        [("approval.requested", "slack"), ("approval.expired", "timer")]
    );
    // A late click is refused and changes nothing.
    app.click("U0BOB", "approve", "a1", "9.9").await;
    let eph = wait_for(&app.slack, "chat.postEphemeral", 1, Duration::from_secs(5)).await;
    assert!(body_text(&eph[0]).contains("a1 is expired"), "{}", eph[0]);
    assert_eq!(app.target.count(RETRY.0, RETRY.1), 0);
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_click_closes_the_card_and_nothing_runs() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    app.slash("U0ALICE", "/queue", "retry ai-analysis").await;
    wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    // A stranger cannot reject: refused, card untouched.
    assert_eq!(app.click("U0STRANGER", "reject", "a1", "3.1").await.status(), 200);
    let eph = wait_for(&app.slack, "chat.postEphemeral", 1, Duration::from_secs(5)).await;
    assert!(body_text(&eph[0]).contains("refused"), "{}", eph[0]);
    app.click("U0CAROL", "reject", "a1", "3.2").await;
    let updates = wait_for(&app.slack, "chat.update", 1, Duration::from_secs(5)).await;
    let card = body_text(&updates[0]);
    assert!(
        card.contains("rejected by carol") && !card.contains("\"action_id\""),
        "{card}"
    );
    app.click("U0BOB", "approve", "a1", "3.3").await;
    let eph = wait_for(&app.slack, "chat.postEphemeral", 2, Duration::from_secs(5)).await;
    assert!(body_text(&eph[1]).contains("a1 is rejected"), "{}", eph[1]);
    app.settle().await;
    assert_eq!(app.target.count(RETRY.0, RETRY.1), 0);
    app.stop().await;
    t.cleanup().await;
}

/// Event ids are remembered in the store, so a retry that arrives after a
/// restart is still recognised.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_dedupe_survives_a_restart() {
    let t = crate::support::TestStore::sqlite().await;
    let ev = json!({
        "type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvRestart", "event_time": 1700000000,
        "event": {"type": "app_mention", "user": "U0ALICE", "channel": "C_QUEUE", "text": "<@U0BOT> queue stats", "ts": "1700000000.000200"}
    });
    let first = TestApp::spawn(t.store.clone()).await;
    assert_eq!(first.event(&ev, None).await.status(), 200);
    wait_for(&first.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    first.stop().await;
    let second = TestApp::spawn(t.store.clone()).await;
    assert_eq!(second.event(&ev, Some(3)).await.status(), 200);
    second.settle().await;
    assert!(
        second.slack.calls_of("chat.postMessage").is_empty(),
        "replayed event ran again"
    );
    assert_eq!(second.target.count("GET", "/api/queue/stats"), 0);
    second.stop().await;
    t.cleanup().await;
}

/// Slack refuses `chat.postMessage` in channels the bot was not invited to;
/// the result of a slash command still reaches the channel via response_url.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_reach_channels_the_bot_was_not_invited_to() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    app.slack
        .script("chat.postMessage", 1, Answer::Error("not_in_channel".into()));
    assert_eq!(
        app.slash("U0ALICE", "/queue", "pause ai-analysis").await.status(),
        200
    );
    let via = wait_for(&app.slack, "response_url.cmd", 1, Duration::from_secs(5)).await;
    assert_eq!(via[0]["response_type"], "in_channel");
    assert!(body_text(&via[0]).contains("Paused ai-analysis"), "{}", via[0]);
    assert_eq!(
        bodies(&app.slack, "chat.postMessage").len(),
        1,
        "tried the channel first"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.store.outbox_counts().await.unwrap() != vec![("sent".to_string(), 1)] {
        assert!(Instant::now() < deadline, "{:?}", t.store.outbox_counts().await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
    t.cleanup().await;
}

/// The same signed slash command delivered twice (a replay within the
/// signature window, or a retry): stored and run once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_slash_command_runs_once() {
    run_test(|t| {
        Box::pin(async move {
            let app = TestApp::spawn(t.store.clone()).await;
            let body = app.command_body("U0ALICE", "/queue", "stats");
            let ts = app.now_secs().to_string();
            let sig = app.sign(&ts, &body);
            let ctype = "application/x-www-form-urlencoded";
            for _ in 0..3 {
                let r = app.post_signed("/slack/commands", &body, &ts, &sig, ctype).await;
                assert_eq!(r.status(), 200, "{}", t.name);
            }
            wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
            // A later, different command goes through behind it: the replays are not pending.
            app.slash("U0ALICE", "/queue", "stats").await;
            wait_for(&app.slack, "chat.postMessage", 2, Duration::from_secs(5)).await;
            assert_eq!(
                app.target.count("GET", "/api/queue/stats"),
                2,
                "{}: replays ran",
                t.name
            );
            app.stop().await;
        })
    })
    .await;
}

/// A request whose ack cannot be given in time (the store is stuck) is
/// answered "nothing was run" within Slack's 3 s, and when the store frees
/// up it is not run behind the user's back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_ack_is_abandoned_and_never_run() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    // SQLite has one connection: holding it stalls every write.
    let stuck = t.store.begin().await.expect("hold the connection");
    let started = Instant::now();
    let r = app.slash("U0ALICE", "/queue", "stats").await;
    let took = started.elapsed();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.expect("json");
    assert!(
        answer["text"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing was run"),
        "{answer}"
    );
    assert!(took < Duration::from_millis(2_900), "answered after {took:?}");
    drop(stuck);
    // The write that was already under way lands, and is marked abandoned.
    let abandoned = || async {
        let counts = t.store.inbox_counts().await.expect("counts");
        counts.iter().any(|(s, n)| s == "abandoned" && *n == 1)
    };
    crate::support::eventually("the late write to be marked abandoned", abandoned).await;
    // A later command still runs, and it is the only one that ever did.
    app.slash("U0ALICE", "/queue", "stats").await;
    wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    assert_eq!(app.target.count("GET", "/api/queue/stats"), 1);
    app.stop().await;
    t.cleanup().await;
}

/// A target answering `<!channel> <https://evil.example|runbook>` must not
/// ping the channel or post a spoofed link; what users typed arrives as typed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_markup_from_a_target_arrives_escaped() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn_with(t.store.clone(), |cat| {
        for c in cat.commands.iter_mut().filter(|c| c.name == "queue stats") {
            c.reply = Some("note: {response.note}\n{output}".into());
        }
    })
    .await;
    let evil = "<!channel> <https://evil.example|runbook> ``` <@U0BOB>";
    *app.target.stats.lock().unwrap() = json!({ "note": evil });
    assert_eq!(app.slash("U0ALICE", "/queue", "stats").await.status(), 200);
    let posted = wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    let body = body_text(&posted[0]);
    for raw in ["<!channel>", "<https://evil", "<@U0BOB>"] {
        assert!(!body.contains(raw), "{raw} reached Slack raw: {body}");
    }
    assert!(
        body.contains("note: &lt;!channel&gt; &lt;https://evil.example|runbook&gt;"),
        "{body}"
    );
    let code = posted[0]["blocks"][1]["text"]["text"].as_str().unwrap();
    assert!(code.starts_with("```") && code.ends_with("```"), "{code}");
    assert_eq!(
        code.matches("```").count(),
        2,
        "the output cannot close its block: {code}"
    );
    assert!(
        body.contains("requested by <@U0ALICE>"),
        "the one mention opsbot means"
    );

    // Slack sends typed `<`, `>`, `&` as entities: they are parsed as typed
    // and escaped once on the way back.
    let v: Value = app
        .slash("U0ALICE", "/queue", "&lt;!channel&gt;")
        .await
        .json()
        .await
        .unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(
        text.contains("Unknown command `/queue &lt;!channel&gt;`"),
        "{text}"
    );
    assert!(
        !text.contains("&amp;lt;") && !text.contains("<!channel>"),
        "{text}"
    );
    app.stop().await;
    t.cleanup().await;
}

/// `/approvals` lists other people's requests: strangers get a refusal that
/// reveals nothing (in the ack: nothing stored), people get the list to
/// themselves alone (ephemeral), never posted to the channel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_are_listed_to_known_people_alone() {
    for t in both().await {
        let app = TestApp::spawn(t.store.clone()).await;
        app.slash("U0ALICE", "/queue", "retry ai-analysis").await;
        wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;

        let r = app.slash("U0STRANGER", "/approvals", "").await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["response_type"], "ephemeral", "{}: {v}", t.name);
        let text = v["text"].as_str().unwrap();
        assert_eq!(text, "refused: only people opsbot knows may list approvals");
        assert_eq!(
            t.store
                .inbox_counts()
                .await
                .unwrap()
                .iter()
                .map(|(_, n)| n)
                .sum::<i64>(),
            1,
            "{}: only alice's request was stored",
            t.name
        );

        assert_eq!(app.slash("U0BOB", "/approvals", "").await.status(), 200);
        let eph = wait_for(&app.slack, "chat.postEphemeral", 1, Duration::from_secs(5)).await;
        assert_eq!(eph[0]["user"], "U0BOB", "{}", eph[0]);
        let list = body_text(&eph[0]);
        assert!(
            list.contains("a1") && list.contains("/queue retry ai-analysis"),
            "{list}"
        );
        let posts = bodies(&app.slack, "chat.postMessage");
        assert_eq!(posts.len(), 1, "{}: only the card is public: {posts:#?}", t.name);
        // The stranger's refusal is audited (in the background).
        let denied = || async {
            let kinds = crate::support::audit_kinds(&t.store).await;
            kinds.iter().any(|k| k == "denied")
        };
        crate::support::eventually("the refusal's audit entry", denied).await;
        app.stop().await;
        t.cleanup().await;
    }
}

/// A body Slack signed but opsbot cannot read gets 200 (logged): a 4xx makes
/// Slack retry it and eventually disable the event subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verified_but_unparseable_events_get_200() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    for body in ["not json", "{\"type\": \"event_callback\"}", "[]"] {
        let r = app.signed("/slack/events", body, "application/json", None).await;
        assert_eq!(r.status(), 200, "{body}");
    }
    assert!(t.store.new_inbox_items(10).await.unwrap().is_empty());
    app.stop().await;
    t.cleanup().await;
}

/// With SLACK_TEAM_ID / SLACK_APP_ID set, verified requests naming another
/// workspace or app are refused (events: 200 and dropped) and store nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_for_another_workspace_or_app_are_refused() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn_for(t.store.clone(), "T1", "A1").await;
    let form = "application/x-www-form-urlencoded";
    for (team, app_id) in [("T2", "A1"), ("T1", "A2")] {
        let body = app.command_body_from(team, app_id, "U0ALICE", "/queue", "stats");
        let r = app.signed("/slack/commands", &body, form, None).await;
        assert_eq!(r.status(), 403, "{team}/{app_id}");
    }
    let ev = json!({
        "type": "event_callback", "team_id": "T2", "api_app_id": "A1", "event_id": "Ev9", "event_time": 1700000000,
        "event": {"type": "app_mention", "user": "U0ALICE", "channel": "C_QUEUE", "text": "<@U0BOT> queue stats", "ts": "1700000000.000100"}
    });
    assert_eq!(app.event(&ev, None).await.status(), 200);
    assert!(t.store.new_inbox_items(10).await.unwrap().is_empty());
    assert!(app.slack.calls().is_empty());
    // The configured workspace and app still work (clicks come from T1 / A1).
    assert_eq!(app.slash("U0ALICE", "/queue", "stats").await.status(), 200);
    wait_for(&app.slack, "chat.postMessage", 1, Duration::from_secs(5)).await;
    assert_eq!(app.click("U0BOB", "approve", "a9", "3.3").await.status(), 200);
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guided_run_s_buttons_reach_done_and_abort() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    // Done's value is "<id> <step>", Abort's the id: both reach the engine as
    // `/done` and `/abort`, which answer the clicker alone (no such run here).
    assert_eq!(
        app.click("U0BOB", "guided_done", "g0000abcd 2", "4.1")
            .await
            .status(),
        200
    );
    let eph = wait_for(&app.slack, "chat.postEphemeral", 1, Duration::from_secs(5)).await;
    assert!(
        body_text(&eph[0]).contains("No guided run `g0000abcd` is waiting"),
        "{}",
        eph[0]
    );
    app.click("U0BOB", "guided_abort", "g0000abcd", "4.2").await;
    let eph = wait_for(&app.slack, "chat.postEphemeral", 2, Duration::from_secs(5)).await;
    assert!(
        body_text(&eph[1]).contains("No guided run `g0000abcd` is waiting"),
        "{}",
        eph[1]
    );
    app.settle().await;
    assert!(app.slack.calls_of("chat.postMessage").is_empty());
    app.stop().await;
    t.cleanup().await;
}
