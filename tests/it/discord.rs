//! Discord end to end: signed interactions into the real router, the real
//! pipeline and outbox, a fake Discord REST API and a fake queue service at
//! the wire.

use crate::fake_discord::{Answer, Call, FakeDiscord, APPLICATION_ID, BOT_TOKEN};
use crate::support::{both, discord_key, discord_sign, TestApp, TestStore};
use opsbot::approval::State;
use opsbot::chat::discord::api::DiscordApi;
use opsbot::clock::SharedClock;
use opsbot::engine::outbox::{spawn_sender, Delivery, Outbox, Pacing};
use opsbot::engine::Signal;
use opsbot::store::{OutMessage, OutOp, Store};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

const RETRY: (&str, &str) = ("POST", "/api/queue/ai-analysis/retry-failed");

fn retry_options() -> Value {
    json!([{"type": 1, "name": "retry", "options": [{"type": 3, "name": "queue", "value": "ai-analysis"}]}])
}

fn approve_options(id: &str) -> Value {
    json!([{"type": 3, "name": "id", "value": id}])
}

/// The edit of `interaction`'s deferred response, once it arrives.
async fn answer_to(fake: &FakeDiscord, interaction: &Value, what: &str) -> Call {
    let token = interaction["token"].as_str().expect("token").to_string();
    fake.wait_first(|c| c.is_edit_original() && c.path.contains(&token), what)
        .await
}

/// A REST client against `fake` with bot token `token`.
fn api_for(fake: &FakeDiscord, token: &str) -> DiscordApi {
    let clock: SharedClock = Arc::new(opsbot::clock::SystemClock);
    DiscordApi::new(&fake.url(), APPLICATION_ID, token.to_string().into(), clock).expect("api")
}

async fn json_of(r: reqwest::Response) -> Value {
    assert_eq!(r.status(), 200);
    r.json().await.expect("json")
}

/// Waits until the approval reached `state` and no stored request is left.
async fn settled(store: &Store, id: i64, state: State) {
    let reached = || async { store.approval(id).await.unwrap().map(|a| a.state) == Some(state) };
    crate::support::eventually(&format!("approval {id} to be {state:?}"), reached).await;
    crate::support::settle(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_is_answered_and_bad_signatures_get_401_touching_nothing() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let ping = json!({"id": "1", "application_id": APPLICATION_ID, "type": 1, "token": "t", "version": 1});
    assert_eq!(json_of(app.discord(&ping).await).await, json!({"type": 1}));

    let cmd = TestApp::discord_command(
        "111",
        "queue",
        json!([{"type": 1, "name": "pause",
        "options": [{"type": 3, "name": "queue", "value": "ai-analysis"}]}]),
    )
    .to_string();
    let now = app.now_secs();
    let ts = now.to_string();
    let stale = (now - 301).to_string();
    let wrong_key = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
    for (ts, sig) in [
        (ts.clone(), "00".repeat(64)),
        (ts.clone(), discord_sign(&wrong_key, &ts, &cmd)),
        (ts.clone(), discord_sign(&discord_key(), &ts, "{\"type\":1}")),
        (stale.clone(), discord_sign(&discord_key(), &stale, &cmd)),
        (String::new(), String::new()),
    ] {
        let r = app.discord_post(&cmd, &ts, &sig).await;
        assert_eq!(r.status(), 401, "{ts} {sig}");
        assert_eq!(r.text().await.unwrap(), "", "no detail leaks");
    }
    assert!(app.discord.calls().is_empty());
    assert_eq!(app.target.count("POST", "/api/queue/ai-analysis/pause"), 0);
    assert!(t.store.new_inbox_items(10).await.unwrap().is_empty());
    assert!(t.store.audit_records().await.unwrap().is_empty());
    app.stop().await;

    // Without Discord's variables the route does not exist.
    let bare = TestApp::spawn_without_slack(t.store.clone()).await;
    let r = bare.discord(&ping).await;
    assert_eq!(r.status(), 404);
    bare.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_answers_are_ephemeral_and_store_nothing() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let v = json_of(
        app.discord(&TestApp::discord_command("999", "queue", retry_options()))
            .await,
    )
    .await;
    assert_eq!(v["type"], 4);
    assert_eq!(v["data"]["flags"], 64);
    assert!(
        v["data"]["content"].as_str().unwrap().contains("people."),
        "how to be added: {v}"
    );
    assert_eq!(v["data"]["allowed_mentions"], json!({"parse": []}));
    let help = json!([{"type": 3, "name": "command", "value": "queue retry"}]);
    let v = json_of(app.discord(&TestApp::discord_command("111", "help", help)).await).await;
    assert!(
        v["data"]["content"].as_str().unwrap().contains("/queue retry"),
        "{v}"
    );
    assert!(t.store.new_inbox_items(10).await.unwrap().is_empty());
    assert!(app.discord.calls().is_empty(), "{:#?}", app.discord.calls());
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_command_card_self_click_refused_another_persons_click_executes_once() {
    for t in both().await {
        let app = TestApp::spawn(t.store.clone()).await;
        let cmd = TestApp::discord_command("111", "queue", retry_options());
        let token = cmd["token"].as_str().unwrap().to_string();
        assert_eq!(json_of(app.discord(&cmd).await).await, json!({"type": 5}));

        // The deferred response becomes the card.
        let card = app.discord.wait_first(Call::is_edit_original, "the card").await;
        assert_eq!(
            card.path,
            format!("/webhooks/{APPLICATION_ID}/{token}/messages/@original")
        );
        assert!(
            card.text().contains("/queue retry ai-analysis"),
            "{}",
            card.text()
        );
        let buttons = &card.body["components"][0]["components"];
        assert_eq!(buttons[0]["custom_id"], "approve:a1");
        assert_eq!(buttons[1]["custom_id"], "reject:a1");
        assert_eq!(card.body["allowed_mentions"], json!({"parse": []}));
        let card_id = card.id.clone().unwrap();

        // Self-approval by click: an ephemeral refusal, nothing runs.
        let click = TestApp::discord_click("111", "approve:a1");
        assert_eq!(json_of(app.discord(&click).await).await, json!({"type": 6}));
        let refusal = app.discord.wait_first(Call::is_followup, "the refusal").await;
        assert_eq!(
            refusal.path,
            format!("/webhooks/{APPLICATION_ID}/{}", click["token"].as_str().unwrap())
        );
        assert_eq!(refusal.body["flags"], 64);
        assert!(refusal.text().contains("you requested a1"), "{}", refusal.text());
        assert_eq!(app.target.count(RETRY.0, RETRY.1), 0);

        // Bob double-clicks while Carol clicks at the same instant.
        let clicks = [
            ("222", "approve:a1"),
            ("222", "approve:a1"),
            ("333", "approve:a1"),
        ]
        .map(|(who, id)| TestApp::discord_click(who, id));
        let (a, b, c) = tokio::join!(
            app.discord(&clicks[0]),
            app.discord(&clicks[1]),
            app.discord(&clicks[2]),
        );
        for r in [a, b, c] {
            assert_eq!(json_of(r).await, json!({"type": 6}));
        }
        let edit = format!("/channels/C_QUEUE/messages/{card_id}");
        let calls = app
            .discord
            .wait_for(
                |c| {
                    c.iter()
                        .any(|c| c.path == edit && c.text().contains("Retried 37"))
                },
                "the card with the result",
            )
            .await;
        settled(&t.store, 1, State::Succeeded).await;
        assert_eq!(
            app.target.count(RETRY.0, RETRY.1),
            1,
            "executed exactly once on {}",
            t.name
        );
        let last = calls.iter().rev().find(|c| c.path == edit).unwrap();
        assert_eq!(last.auth.as_deref(), Some(format!("Bot {BOT_TOKEN}").as_str()));
        assert_eq!(last.body["components"], json!([]), "buttons are gone");
        assert!(last.text().contains("approved by"), "{}", last.text());
        assert!(calls.iter().all(Call::ok), "{calls:#?}");
        app.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slack_request_is_approved_from_discord_and_the_slack_card_follows() {
    for t in both().await {
        let app = TestApp::spawn(t.store.clone()).await;
        assert_eq!(
            app.slash("U0ALICE", "/queue", "retry ai-analysis").await.status(),
            200
        );
        app.slack
            .wait_until(
                Duration::from_secs(10),
                |c| c.iter().any(|c| c.method == "chat.postMessage"),
                "the Slack card",
            )
            .await;

        // Alice's own Discord account is still Alice: refused, privately.
        let own = TestApp::discord_command("111", "approve", approve_options("a1"));
        let v = json_of(app.discord(&own).await).await;
        assert_eq!(v, json!({"type": 5, "data": {"flags": 64}}));
        let refusal = answer_to(&app.discord, &own, "alice's refusal").await;
        assert!(refusal.text().contains("you requested a1"), "{}", refusal.text());
        assert_eq!(app.target.count(RETRY.0, RETRY.1), 0);

        // Bob approves from Discord: it runs, and the Slack card shows it.
        let bob = TestApp::discord_command("222", "approve", approve_options("a1"));
        json_of(app.discord(&bob).await).await;
        app.slack
            .wait_until(
                Duration::from_secs(10),
                |c| {
                    c.iter()
                        .any(|c| c.method == "chat.update" && c.body.to_string().contains("Retried 37"))
                },
                "the Slack card with the result",
            )
            .await;
        let answer = answer_to(&app.discord, &bob, "bob's answer").await;
        assert!(answer.text().contains("Retried 37"), "{}", answer.text());
        settled(&t.store, 1, State::Succeeded).await;
        assert_eq!(app.target.count(RETRY.0, RETRY.1), 1);
        let update = app.slack.calls_of("chat.update").pop().unwrap();
        assert!(
            update.body.to_string().contains("approved by bob"),
            "{}",
            update.body
        );
        // No Discord card for a Slack request: only the two private answers.
        let discord = app.discord.calls();
        assert_eq!(discord.len(), 2, "{discord:#?}");
        assert!(discord.iter().all(Call::is_edit_original));
        app.stop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn registration_payload_from_the_shipped_catalog() {
    let cfg = crate::support::config("");
    let catalog = crate::support::shipped_catalog(&cfg, "http://127.0.0.1:9");
    let commands = opsbot::chat::discord::register::commands(&catalog, &cfg.profiles).expect("maps");
    insta::assert_json_snapshot!("discord_commands", commands);

    // `discord-register` sends exactly that, as a bulk overwrite with the bot token.
    let fake = FakeDiscord::start().await;
    let api = api_for(&fake, BOT_TOKEN);
    let n = api.overwrite_commands(Some("G1"), &commands).await.unwrap();
    assert_eq!(n, commands.len());
    let calls = fake.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "PUT");
    assert_eq!(
        calls[0].path,
        format!("/applications/{APPLICATION_ID}/guilds/G1/commands")
    );
    assert_eq!(calls[0].body, Value::Array(commands));
}

#[tokio::test]
async fn entries_discord_cannot_hold_are_named_by_file_and_line() {
    let cfg = crate::support::config("");
    let mut catalog = crate::support::shipped_catalog(&cfg, "http://127.0.0.1:9");
    let retry = catalog
        .commands
        .iter_mut()
        .find(|c| c.name == "queue retry")
        .unwrap();
    retry.summary = "x".repeat(101);
    let line = retry.location.clone();
    let stats = catalog
        .commands
        .iter_mut()
        .find(|c| c.name == "queue stats")
        .unwrap();
    stats.name = "queue stats of Everything now".into();
    let problems = opsbot::chat::discord::register::commands(&catalog, &cfg.profiles).unwrap_err();
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert!(
        text.iter()
            .any(|p| p.starts_with(&line.to_string()) && p.contains("101 characters")),
        "{text:#?}"
    );
    assert!(
        text.iter().any(|p| p.contains("`Everything` contains `E`")),
        "{text:#?}"
    );
    assert!(text.iter().any(|p| p.contains("at most three")), "{text:#?}");
}

#[tokio::test]
async fn every_shipped_profile_registers_and_an_overfull_word_takes_the_rest_as_typed() {
    let cfg = crate::support::config("");
    let catalog = crate::support::shipped_catalog(&cfg, "http://127.0.0.1:9");
    let mut all: Vec<String> = catalog.commands.iter().map(|c| c.profile.clone()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 5, "{all:?}");
    let commands = opsbot::chat::discord::register::commands(&catalog, &all).expect("every profile maps");
    let db = commands
        .iter()
        .find(|c| c["name"] == "db")
        .expect("/db registered");
    // /db of five profiles has more than Discord's 25 subcommands: one `what`.
    let options = db["options"].as_array().unwrap();
    assert_eq!(options.len(), 1, "{db:#}");
    assert_eq!(
        (options[0]["name"].as_str(), options[0]["required"].as_bool()),
        (Some("what"), Some(true))
    );
    let queue = commands.iter().find(|c| c["name"] == "queue").unwrap();
    assert!(
        queue["options"].as_array().unwrap().len() > 1,
        "small words keep their subcommands"
    );
    for c in &commands {
        assert!(c["description"].as_str().unwrap().chars().count() <= 100, "{c:#}");
    }
    let typed: Vec<serenity::all::CommandDataOption> = serde_json::from_value(json!([
        {"name": "what", "type": 3, "value": "vacuum --table=messages --sys chat"}
    ]))
    .unwrap();
    assert_eq!(
        opsbot::chat::discord::register::text("db", &typed),
        "/db vacuum --table=messages --sys chat"
    );
    // Pasted from one of opsbot's code blocks: their U+200B is not kept.
    let pasted: Vec<serenity::all::CommandDataOption> = serde_json::from_value(json!([
        {"name": "what", "type": 3, "value": "log-query `\u{200b}`top-errors"}
    ]))
    .unwrap();
    assert_eq!(
        opsbot::chat::discord::register::text("db", &pasted),
        "/db log-query ``top-errors"
    );
}

/// A sender of Discord rows against `fake`.
fn discord_sender(store: &Store, fake: &FakeDiscord) -> (Outbox, tokio::sync::watch::Sender<bool>) {
    let clock: SharedClock = Arc::new(opsbot::clock::SystemClock);
    let api = api_for(fake, BOT_TOKEN);
    let outbox = Outbox::new(store.clone(), Signal::default());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let delivery = Delivery {
        platform: "discord",
        api: Arc::new(api),
    };
    let pacing = Pacing {
        per_channel_per_sec: 50,
        global_per_sec: 50,
    };
    spawn_sender(outbox.clone(), delivery, clock, pacing, rx);
    (outbox, stop)
}

fn answer(channel: &str, expires_at: i64, user: Option<&str>, text: &str) -> OutMessage {
    let handle = json!({"token": "tok-x", "expires_at": expires_at, "to": "original"}).to_string();
    OutMessage {
        platform: "discord".into(),
        channel: channel.into(),
        op: OutOp::Respond {
            handle,
            key: None,
            user: user.map(Into::into),
        },
        body: json!({"content": text}),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_interactions_answer_in_the_channel_and_429s_wait_without_retry_loops() {
    let t = TestStore::sqlite().await;
    let fake = FakeDiscord::start().await;
    let (outbox, stop) = discord_sender(&t.store, &fake);
    let now = opsbot::clock::Clock::now_ms(&opsbot::clock::SystemClock);

    // An answer after 15 minutes goes to the channel; a private one is given up
    // without a request.
    fake.script(
        "/channels/C_LATE/",
        1,
        Answer::RateLimited {
            retry_after: 0.3,
            global: false,
        },
    );
    outbox
        .send(
            &[
                answer("C_LATE", now - 1, None, "late result"),
                answer("C_PRIV", now - 1, Some("111"), "secret"),
            ],
            now,
        )
        .await
        .unwrap();
    let calls = fake
        .wait_for(|c| c.iter().filter(|c| c.ok()).count() == 1, "the channel post")
        .await;
    assert_eq!(calls.len(), 2, "one 429, then the post: {calls:#?}");
    assert!(matches!(calls[0].answer, Answer::RateLimited { .. }));
    assert_eq!(calls[1].path, "/channels/C_LATE/messages");
    assert_eq!(calls[1].body["content"], "late result");

    // A 4xx other than 429 is not retried.
    fake.script(
        "/channels/C_BAD/",
        5,
        Answer::Error {
            status: 400,
            code: 50035,
        },
    );
    let post = OutMessage {
        platform: "discord".into(),
        channel: "C_BAD".into(),
        op: OutOp::Post {
            key: None,
            thread: None,
            fallback: None,
        },
        body: json!({"content": "x"}),
    };
    outbox.send(&[post], now).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let failed = t.store.outbox_failures(10).await.unwrap();
        if failed.len() == 2 {
            assert!(failed.iter().any(|f| f.channel == "C_PRIV"), "{failed:?}");
            assert!(
                failed.iter().any(|f| f.channel == "C_BAD" && f.attempts == 1),
                "{failed:?}"
            );
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{failed:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let bad: Vec<Call> = fake
        .calls()
        .into_iter()
        .filter(|c| c.path.contains("C_BAD"))
        .collect();
    assert_eq!(bad.len(), 1, "{bad:#?}");
    assert!(fake.calls().iter().all(|c| !c.path.contains("C_PRIV")));
    let _ = stop.send(true);
    t.cleanup().await;
}

#[tokio::test]
async fn a_used_up_bucket_is_waited_out_before_the_next_call() {
    let fake = FakeDiscord::start().await;
    fake.exhaust_buckets(0.3);
    let api = api_for(&fake, BOT_TOKEN);
    let body = json!({"content": "x"});
    api.create_message("C1", &body).await.unwrap();
    api.create_message("C2", &body).await.unwrap(); // another channel: its own bucket
    api.create_message("C1", &body).await.unwrap();
    let calls = fake.calls();
    assert_eq!(calls.len(), 3, "no 429 needed: {calls:#?}");
    assert!(
        calls[2].at - calls[0].at >= Duration::from_millis(290),
        "{:?}",
        calls[2].at - calls[0].at
    );
    assert!(
        calls[1].at - calls[0].at < Duration::from_millis(290),
        "channels do not wait for each other"
    );
}

#[tokio::test]
async fn a_wrong_bot_token_is_refused_once_and_not_retried() {
    let fake = FakeDiscord::start().await;
    let api = api_for(&fake, "not-the-token");
    let e = api
        .create_message("C1", &json!({"content": "x"}))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, opsbot::engine::SendError::Permanent(m) if m.contains("401")),
        "{e:?}"
    );
    assert!(!e.to_string().contains("not-the-token"));
    assert_eq!(fake.calls().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_interaction_runs_once() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let pause = json!([{"type": 1, "name": "pause",
        "options": [{"type": 3, "name": "queue", "value": "ai-analysis"}]}]);
    let cmd = TestApp::discord_command("111", "queue", pause);
    let (a, b) = tokio::join!(app.discord(&cmd), app.discord(&cmd));
    assert_eq!(json_of(a).await, json!({"type": 5}));
    assert_eq!(json_of(b).await, json!({"type": 5}));
    let result = app.discord.wait_first(Call::is_edit_original, "the result").await;
    assert!(result.text().contains("Paused ai-analysis"), "{}", result.text());
    crate::support::settle(&t.store).await;
    assert_eq!(app.target.count("POST", "/api/queue/ai-analysis/pause"), 1);
    assert_eq!(app.discord.calls().len(), 1, "{:#?}", app.discord.calls());
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test]
async fn a_global_429_holds_every_channel() {
    let fake = FakeDiscord::start().await;
    fake.script(
        "/channels/C1/",
        1,
        Answer::RateLimited {
            retry_after: 0.3,
            global: true,
        },
    );
    let api = api_for(&fake, BOT_TOKEN);
    let body = json!({"content": "x"});
    let e = api.create_message("C1", &body).await.unwrap_err();
    assert_eq!(
        e,
        opsbot::engine::SendError::RateLimited {
            retry_after: Duration::from_millis(300)
        }
    );
    api.create_message("C2", &body).await.unwrap();
    let calls = fake.calls();
    assert!(
        calls[1].at - calls[0].at >= Duration::from_millis(290),
        "{:?}",
        calls[1].at - calls[0].at
    );
}

/// One person flooding commands from Discord is refused past the per-identity
/// limit (nothing stored for the refused ones); others are not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_discord_user_is_limited() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let stats = json!([{"type": 1, "name": "stats", "options": []}]);
    let mut refused = 0;
    for _ in 0..30 {
        let v = json_of(
            app.discord(&TestApp::discord_command("111", "queue", stats.clone()))
                .await,
        )
        .await;
        if v["data"]["content"]
            .as_str()
            .is_some_and(|c| c.contains("slow down"))
        {
            refused += 1;
        }
    }
    assert!(refused >= 15, "only {refused} of 30 refused");
    let v = json_of(
        app.discord(&TestApp::discord_command("222", "queue", stats))
            .await,
    )
    .await;
    assert_eq!(v, json!({"type": 5}), "another person is not limited");
    crate::support::settle(&t.store).await;
    let stored: i64 = t.store.inbox_counts().await.unwrap().iter().map(|(_, n)| n).sum();
    assert_eq!(stored, 30 - refused + 1, "refused commands are not stored");
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guided_run_s_buttons_reach_done_and_abort_and_answer_the_clicker_alone() {
    let t = crate::support::TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    for custom_id in ["guided_done:g0000abcd 2", "guided_abort:g0000abcd"] {
        let click = TestApp::discord_click("222", custom_id);
        assert_eq!(json_of(app.discord(&click).await).await, json!({"type": 6}));
        let token = click["token"].as_str().unwrap().to_string();
        let answer = app
            .discord
            .wait_first(
                move |c: &Call| c.is_followup() && c.path.contains(&token),
                "the answer",
            )
            .await;
        assert_eq!(answer.body["flags"], 64, "{custom_id}: {}", answer.text());
        assert!(
            answer.text().contains("No guided run `g0000abcd` is waiting"),
            "{custom_id}: {}",
            answer.text()
        );
    }
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_answers_the_command_then_the_timer_loop_edits_that_message_until_it_ends() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn_with(t.store.clone(), |cat| {
        for c in cat.commands.iter_mut().filter(|c| c.name == "deploy watch") {
            if let Some(opsbot::catalog::Schedule::Watch { min_every, .. }) = c.schedule.as_mut() {
                *min_every = Duration::from_millis(200);
            }
        }
    })
    .await;
    let options = json!([{"type": 1, "name": "watch", "options": [
        {"type": 3, "name": "every", "value": "500ms"},
        {"type": 3, "name": "for", "value": "1500ms"},
    ]}]);
    let cmd = TestApp::discord_command("111", "deploy", options);
    assert_eq!(json_of(app.discord(&cmd).await).await, json!({"type": 5}));
    let calls = app
        .discord
        .wait_for(
            |c| c.iter().any(|c| c.ok() && c.text().contains("watch ended")),
            "the watch's last edit",
        )
        .await;
    // The first run replaces "thinking…"; every later run edits that
    // message, as a channel message (the interaction's token expires).
    let first = calls.iter().find(|c| c.is_edit_original()).expect("the answer");
    assert!(first.text().contains("run 1 of 4"), "{}", first.text());
    let message = format!("/channels/C_QUEUE/messages/{}", first.id.clone().expect("its id"));
    let edits: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "PATCH" && !c.is_edit_original())
        .collect();
    // (A pending edit may be superseded by the next run's.)
    assert!((1..=3).contains(&edits.len()), "{edits:#?}");
    assert!(
        edits.iter().all(|c| c.path == message),
        "every later run edits the command's answer: {edits:#?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "POST" && c.path.starts_with("/channels/")),
        "nothing is posted anew: {calls:#?}"
    );
    let last = edits.last().unwrap().text();
    assert!(last.contains("run 4 of 4 · watch ended"), "{last}");
    assert_eq!(app.target.count("GET", "/api/queue/stats"), 4);
    app.stop().await;
    t.cleanup().await;
}
