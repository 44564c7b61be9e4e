//! The outbox sender against a fake Slack, on SQLite and Postgres.

use crate::fake_slack::{Answer, Call, FakeSlack};
use crate::support::{both, TestStore};
use opsbot::chat::slack::api::SlackApi;
use opsbot::chat::slack::render::PLATFORM;
use opsbot::clock::{Clock, SharedClock, SystemClock};
use opsbot::engine::outbox::{spawn_sender, Delivery, Outbox, Pacing};
use opsbot::engine::Signal;
use opsbot::store::{OutMessage, OutOp, Store, Thread};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const TOKEN: &str = "xoxb-test-token";
const WAIT: Duration = Duration::from_secs(10);

/// Pacing that never gets in the way.
const FAST: Pacing = Pacing {
    per_channel_per_sec: 1_000,
    global_per_sec: 10_000,
};

/// A sender running against `fake`.
struct Running {
    outbox: Outbox,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Running {
    fn start(store: &Store, fake: &FakeSlack, pacing: Pacing) -> Running {
        let outbox = Outbox::new(store.clone(), Signal::default());
        let api = SlackApi::new(&fake.url(), TOKEN.to_string().into())
            .expect("api")
            .with_timeout(Duration::from_secs(2));
        let clock: SharedClock = Arc::new(SystemClock);
        let (stop, rx) = watch::channel(false);
        let delivery = Delivery {
            platform: PLATFORM,
            api: Arc::new(api),
        };
        let handle = spawn_sender(outbox.clone(), delivery, clock, pacing, rx);
        Running { outbox, stop, handle }
    }

    async fn send(&self, msgs: &[OutMessage]) {
        self.outbox.send(msgs, now()).await.expect("enqueue");
    }

    async fn stop(self) {
        self.stop.send(true).expect("stop");
        tokio::time::timeout(WAIT, self.handle)
            .await
            .expect("sender stops")
            .expect("sender task");
    }
}

fn now() -> i64 {
    SystemClock.now_ms()
}

fn post(channel: &str, text: &str) -> OutMessage {
    OutMessage {
        platform: PLATFORM.into(),
        channel: channel.into(),
        op: OutOp::Post {
            key: None,
            thread: None,
            fallback: None,
        },
        body: json!({ "text": text }),
    }
}

fn keyed(channel: &str, key: &str, text: &str) -> OutMessage {
    OutMessage {
        platform: PLATFORM.into(),
        channel: channel.into(),
        op: OutOp::Post {
            key: Some(key.into()),
            thread: None,
            fallback: None,
        },
        body: json!({ "text": text }),
    }
}

fn update(channel: &str, key: &str, text: &str) -> OutMessage {
    OutMessage {
        platform: PLATFORM.into(),
        channel: channel.into(),
        op: OutOp::Update { key: key.into() },
        body: json!({ "text": text }),
    }
}

/// Texts delivered (answered ok) per channel, in arrival order.
fn delivered_by_channel(calls: &[Call]) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in calls.iter().filter(|c| c.ok()) {
        out.entry(c.channel().unwrap_or("?").to_string())
            .or_default()
            .push(c.text().unwrap_or("").to_string());
    }
    out
}

fn texts(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

async fn counts(t: &TestStore) -> BTreeMap<String, i64> {
    t.store
        .outbox_counts()
        .await
        .expect("counts")
        .into_iter()
        .collect()
}

#[tokio::test]
async fn messages_arrive_in_order_per_channel() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        let run = Running::start(&t.store, &fake, FAST);
        let mut batch = Vec::new();
        for i in 0..10 {
            for ch in ["C1", "C2", "C3"] {
                batch.push(post(ch, &format!("{ch}-{i}")));
            }
        }
        run.send(&batch[..15]).await;
        for m in &batch[15..] {
            run.send(std::slice::from_ref(m)).await;
        }
        let calls = fake.wait_for_ok(30, WAIT).await;
        let got = delivered_by_channel(&calls);
        for ch in ["C1", "C2", "C3"] {
            assert_eq!(got[ch], texts(ch, 10), "{}: {ch}", t.name);
        }
        assert!(
            calls
                .iter()
                .all(|c| c.auth.as_deref() == Some(&format!("Bearer {TOKEN}"))
                    && c.method == "chat.postMessage")
        );
        run.stop().await;
        assert_eq!(counts(&t).await.get("sent"), Some(&30), "{}", t.name);
        assert_eq!(fake.calls().len(), 30, "{}: nothing sent twice", t.name);
        t.cleanup().await;
    }
}

/// One busy channel against a Slack that admits one post per second: the
/// retry after a 429 moves the channel's schedule, so the storm costs one
/// 429 and the channel runs at the platform's pace.
#[tokio::test]
async fn one_channel_runs_at_the_platform_pace_with_one_429() {
    let t = TestStore::sqlite().await;
    let fake = FakeSlack::start().await;
    fake.limit_channels(Duration::from_secs(1));
    // The channel is already hot (another app posted): the first post is refused.
    fake.script_channel(
        "chat.postMessage",
        "C1",
        1,
        Answer::RateLimited { retry_after_secs: 1 },
    );
    let slack_pace = Pacing {
        per_channel_per_sec: 1,
        global_per_sec: 50,
    };
    let run = Running::start(&t.store, &fake, slack_pace);
    let started = std::time::Instant::now();
    run.send(&texts("r", 8).iter().map(|x| post("C1", x)).collect::<Vec<_>>())
        .await;
    let calls = fake.wait_for_ok(8, Duration::from_secs(20)).await;
    let took = started.elapsed();
    run.stop().await;
    let limited = calls
        .iter()
        .filter(|c| matches!(c.answer, Answer::RateLimited { .. }))
        .count();
    assert_eq!(limited, 1, "one 429 for the whole storm: {calls:#?}");
    assert_eq!(delivered_by_channel(&calls)["C1"], texts("r", 8));
    assert!(took < Duration::from_secs(9), "8 results took {took:?}");
    t.cleanup().await;
}

#[tokio::test]
async fn a_429_storm_loses_nothing_and_waits_retry_after() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        let channels = ["C1", "C2", "C3"];
        for ch in channels {
            fake.script_channel(
                "chat.postMessage",
                ch,
                2,
                Answer::RateLimited { retry_after_secs: 1 },
            );
        }
        let run = Running::start(&t.store, &fake, FAST);
        let batch: Vec<OutMessage> = (0..4)
            .flat_map(|i| channels.map(|ch| post(ch, &format!("{ch}-{i}"))))
            .collect();
        run.send(&batch).await;
        let calls = fake.wait_for_ok(12, WAIT).await;
        run.stop().await;
        let got = delivered_by_channel(&calls);
        for ch in channels {
            assert_eq!(got[ch], texts(ch, 4), "{}: {ch}", t.name);
            let mine: Vec<&Call> = calls.iter().filter(|c| c.channel() == Some(ch)).collect();
            assert_eq!(mine.len(), 6, "{}: two 429s then four deliveries", t.name);
            for pair in mine.windows(2) {
                if matches!(pair[0].answer, Answer::RateLimited { .. }) {
                    let gap = pair[1].at - pair[0].at;
                    assert!(
                        gap >= Duration::from_millis(990),
                        "{}: retried after {gap:?}",
                        t.name
                    );
                    assert_eq!(
                        pair[1].text(),
                        pair[0].text(),
                        "{}: the same message again",
                        t.name
                    );
                }
            }
        }
        assert_eq!(fake.delivered().len(), 12, "{}: nothing twice", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn server_errors_back_off_then_succeed() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        fake.script("chat.postMessage", 1, Answer::Status(500));
        fake.script("chat.postMessage", 1, Answer::Status(503));
        fake.script("chat.postMessage", 1, Answer::Error("internal_error".into()));
        let run = Running::start(&t.store, &fake, FAST);
        run.send(&[post("C1", "a"), post("C1", "b")]).await;
        let calls = fake.wait_for_ok(2, WAIT).await;
        run.stop().await;
        let answers: Vec<(&str, bool)> = calls.iter().map(|c| (c.text().unwrap_or(""), c.ok())).collect();
        assert_eq!(
            answers,
            [("a", false), ("a", false), ("a", false), ("a", true), ("b", true)],
            "{}",
            t.name
        );
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].at - w[0].at).collect();
        assert!(gaps[0] >= Duration::from_millis(245), "{}: {gaps:?}", t.name);
        assert!(gaps[1] >= Duration::from_millis(495), "{}: {gaps:?}", t.name);
        assert!(gaps[2] >= Duration::from_millis(995), "{}: {gaps:?}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_permanent_error_fails_the_row_and_the_channel_moves_on() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        fake.script_channel(
            "chat.postMessage",
            "C1",
            1,
            Answer::Error("channel_not_found".into()),
        );
        fake.script_channel("chat.postMessage", "C2", 1, Answer::Error("is_archived".into()));
        let run = Running::start(&t.store, &fake, FAST);
        run.send(&[
            post("C1", "a"),
            post("C1", "b"),
            keyed("C2", "card", "card v1"),
            update("C2", "card", "card v2"),
            post("C2", "c"),
        ])
        .await;
        let calls = fake.wait_for_ok(2, WAIT).await;
        run.stop().await;
        assert_eq!(
            delivered_by_channel(&calls),
            BTreeMap::from([("C1".into(), vec!["b".into()]), ("C2".into(), vec!["c".into()])]),
            "{}",
            t.name
        );
        assert!(
            fake.calls_of("chat.update").is_empty(),
            "{}: no edit of a failed post",
            t.name
        );
        let c = counts(&t).await;
        assert_eq!(
            (c.get("failed"), c.get("sent")),
            (Some(&3), Some(&2)),
            "{}",
            t.name
        );
        let failures = t.store.outbox_failures(10).await.expect("failures");
        let errors: HashSet<String> = failures.iter().filter_map(|f| f.last_error.clone()).collect();
        assert!(
            errors.contains("channel_not_found") && errors.contains("is_archived"),
            "{errors:?}"
        );
        assert!(errors.iter().any(|e| e.contains("failed to post")), "{errors:?}");
        t.cleanup().await;
    }
}

#[tokio::test]
async fn channels_are_paced_but_not_serialized() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        let pacing = Pacing {
            per_channel_per_sec: 10,
            global_per_sec: 1_000,
        };
        let run = Running::start(&t.store, &fake, pacing);
        let batch: Vec<OutMessage> = (0..5)
            .flat_map(|i| ["A", "B"].map(|ch| post(ch, &format!("{ch}-{i}"))))
            .collect();
        run.send(&batch).await;
        let calls = fake.wait_for_ok(10, WAIT).await;
        run.stop().await;
        for ch in ["A", "B"] {
            let at: Vec<_> = calls
                .iter()
                .filter(|c| c.channel() == Some(ch))
                .map(|c| c.at)
                .collect();
            assert_eq!(at.len(), 5);
            for w in at.windows(2) {
                assert!(
                    w[1] - w[0] >= Duration::from_millis(90),
                    "{}: {ch} gap {:?}",
                    t.name,
                    w[1] - w[0]
                );
            }
        }
        let order: Vec<&str> = calls.iter().filter_map(Call::channel).collect();
        let first_b = order.iter().position(|c| *c == "B").unwrap();
        let last_a = order.iter().rposition(|c| *c == "A").unwrap();
        assert!(first_b < last_a, "{}: channels interleave: {order:?}", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn a_waiting_or_slow_channel_does_not_block_others() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        fake.script_channel(
            "chat.postMessage",
            "LIMITED",
            1,
            Answer::RateLimited { retry_after_secs: 1 },
        );
        fake.script_channel(
            "chat.postMessage",
            "SLOW",
            3,
            Answer::SlowOk(Duration::from_millis(400)),
        );
        let run = Running::start(&t.store, &fake, FAST);
        let mut batch = vec![post("LIMITED", "l-0"), post("SLOW", "s-0"), post("SLOW", "s-1")];
        batch.extend(texts("f", 5).iter().map(|x| post("FAST", x)));
        run.send(&batch).await;
        let calls = fake.wait_for_ok(8, WAIT).await;
        run.stop().await;
        let pos = |ch: &str, n: usize| {
            calls
                .iter()
                .enumerate()
                .filter(|(_, c)| c.channel() == Some(ch))
                .nth(n)
                .map(|(i, _)| i)
                .unwrap()
        };
        let last_fast = pos("FAST", 4);
        assert!(
            last_fast < pos("LIMITED", 1),
            "{}: FAST did not wait for the 429",
            t.name
        );
        assert!(
            last_fast < pos("SLOW", 1),
            "{}: FAST did not wait for the slow channel",
            t.name
        );
        t.cleanup().await;
    }
}

#[tokio::test]
async fn the_global_limit_holds_across_channels() {
    let t = TestStore::sqlite().await;
    let fake = FakeSlack::start().await;
    let pacing = Pacing {
        global_per_sec: 10,
        ..FAST
    };
    let run = Running::start(&t.store, &fake, pacing);
    let batch: Vec<OutMessage> = (0..20).map(|i| post(&format!("C{i}"), "x")).collect();
    run.send(&batch).await;
    let calls = fake.wait_for_ok(20, WAIT).await;
    run.stop().await;
    let span = calls[19].at - calls[0].at;
    assert!(
        span >= Duration::from_millis(850),
        "20 messages at 10/s (burst 10) took {span:?}"
    );
    t.cleanup().await;
}

#[tokio::test]
async fn superseded_edits_are_collapsed() {
    for t in both().await {
        t.store
            .enqueue_messages(&[keyed("C1", "card", "v0"), update("C1", "card", "v1")], now())
            .await
            .expect("enqueue");
        t.store
            .enqueue_messages(&[update("C1", "card", "v2")], now())
            .await
            .expect("enqueue");
        t.store
            .enqueue_messages(&[update("C1", "card", "v3")], now())
            .await
            .expect("enqueue");
        let c = counts(&t).await;
        assert_eq!(
            (c.get("pending"), c.get("superseded")),
            (Some(&2), Some(&2)),
            "{}",
            t.name
        );

        let fake = FakeSlack::start().await;
        let run = Running::start(&t.store, &fake, FAST);
        fake.wait_for_ok(2, WAIT).await;
        crate::support::settle(&t.store).await;
        run.stop().await;
        let posts = fake.calls_of("chat.postMessage");
        let updates = fake.calls_of("chat.update");
        assert_eq!(posts.len(), 1, "{}", t.name);
        assert_eq!(updates.len(), 1, "{}: only the newest edit", t.name);
        assert_eq!(updates[0].text(), Some("v3"));
        assert_eq!(updates[0].channel(), Some("C1"));
        assert_eq!(
            updates[0].body["ts"].as_str(),
            posts[0].ts.as_deref(),
            "{}",
            t.name
        );
        assert!(updates[0].at >= posts[0].at);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn pending_messages_survive_a_restart() {
    for t in both().await {
        // Enqueued while no sender runs (a previous process died).
        let batch: Vec<OutMessage> = (0..3)
            .flat_map(|i| ["C1", "C2"].map(|ch| post(ch, &format!("{ch}-{i}"))))
            .collect();
        t.store.enqueue_messages(&batch, now()).await.expect("enqueue");
        let fake = FakeSlack::start().await;
        let run = Running::start(&t.store, &fake, FAST);
        let calls = fake.wait_for_ok(6, WAIT).await;
        run.stop().await;
        let got = delivered_by_channel(&calls);
        assert_eq!(
            (got["C1"].clone(), got["C2"].clone()),
            (texts("C1", 3), texts("C2", 3))
        );

        // Stopped mid-way, then a new process on the same database.
        let slow = Pacing {
            per_channel_per_sec: 10,
            global_per_sec: 100,
        };
        let fake = FakeSlack::start().await;
        let run = Running::start(&t.store, &fake, slow);
        let batch: Vec<OutMessage> = texts("m", 10).iter().map(|x| post("C9", x)).collect();
        run.send(&batch).await;
        fake.wait_for_ok(3, WAIT).await;
        run.stop().await;
        let before = fake.calls().len();
        assert!(before < 10, "{}: stopped mid-way ({before})", t.name);
        let reopened = t.reopen().await;
        let run = Running::start(&reopened, &fake, slow);
        let calls = fake.wait_for_ok(10, WAIT).await;
        crate::support::settle(&reopened).await;
        run.stop().await;
        reopened.close().await;
        assert_eq!(delivered_by_channel(&calls)["C9"], texts("m", 10), "{}", t.name);
        assert_eq!(fake.calls().len(), 10, "{}: none twice", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn replies_find_their_thread_by_key() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        let run = Running::start(&t.store, &fake, FAST);
        let reply = |op: OutOp, text: &str| OutMessage {
            platform: PLATFORM.into(),
            channel: "C1".into(),
            op,
            body: json!({ "text": text }),
        };
        run.send(&[
            keyed("C1", "incident-7", "Incident 7 opened"),
            reply(
                OutOp::Post {
                    key: None,
                    thread: Some(Thread::Key("incident-7".into())),
                    fallback: None,
                },
                "update 1",
            ),
            reply(
                OutOp::Ephemeral {
                    user: "U1".into(),
                    thread: Some(Thread::Key("incident-7".into())),
                },
                "only you",
            ),
            reply(
                OutOp::Post {
                    key: None,
                    thread: Some(Thread::Ts("1600000000.000001".into())),
                    fallback: None,
                },
                "elsewhere",
            ),
        ])
        .await;
        let calls = fake.wait_for_ok(4, WAIT).await;
        run.stop().await;
        let parent = calls[0].ts.clone().expect("ts");
        assert_eq!(calls[0].body.get("thread_ts"), None, "{}", t.name);
        assert_eq!(
            calls[1].body["thread_ts"].as_str(),
            Some(parent.as_str()),
            "{}",
            t.name
        );
        assert_eq!(calls[2].method, "chat.postEphemeral");
        assert_eq!(calls[2].body["user"], "U1");
        assert_eq!(calls[2].body["thread_ts"].as_str(), Some(parent.as_str()));
        assert_eq!(calls[3].body["thread_ts"], "1600000000.000001");
        let stored = t.store.chat_message("slack", "incident-7").await.expect("lookup");
        assert_eq!(stored, Some(("C1".to_string(), parent)));
        t.cleanup().await;
    }
}

fn section(text: String) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

#[tokio::test]
async fn oversized_bodies_are_fitted_before_sending() {
    for t in both().await {
        let fake = FakeSlack::start().await;
        let run = Running::start(&t.store, &fake, FAST);
        let blocks: Vec<Value> = (0..60)
            .map(|i| section(format!("{i}:{}", "x".repeat(4_000))))
            .collect();
        let big = OutMessage {
            platform: PLATFORM.into(),
            channel: "C1".into(),
            op: OutOp::Post {
                key: None,
                thread: None,
                fallback: None,
            },
            body: json!({"text": "y".repeat(50_000), "blocks": blocks}),
        };
        let long_section = OutMessage {
            body: json!({"text": "s", "blocks": [section("line\n".repeat(1_000))]}),
            ..big.clone()
        };
        run.send(&[big, long_section]).await;
        let calls = fake.wait_for_ok(2, WAIT).await;
        run.stop().await;
        for c in &calls {
            let blocks = c.body["blocks"].as_array().expect("blocks");
            assert!(blocks.len() <= 50, "{}: {} blocks", t.name, blocks.len());
            assert!(c.text().unwrap().chars().count() <= 40_000, "{}", t.name);
            for b in blocks.iter().filter(|b| b["type"] == "section") {
                assert!(
                    b["text"]["text"].as_str().unwrap().chars().count() <= 3_000,
                    "{}",
                    t.name
                );
            }
        }
        assert!(calls[0].text().unwrap().contains("[truncated 10"), "{}", t.name);
        let last = &calls[0].body["blocks"][49];
        assert_eq!(last["type"], "context");
        assert!(last["elements"][0]["text"]
            .as_str()
            .unwrap()
            .contains("more blocks truncated"));
        let joined: String = calls[1].body["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(joined, "line\n".repeat(1_000), "{}: split, nothing lost", t.name);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn block_kit_bodies_arrive_as_written() {
    let t = TestStore::sqlite().await;
    let fake = FakeSlack::start().await;
    let run = Running::start(&t.store, &fake, FAST);
    let body = json!({
        "text": "Approval a1: /queue retry ai-analysis",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Approval needed", "emoji": true}},
            {"type": "section", "block_id": "summary",
             "text": {"type": "mrkdwn", "text": "*alice* wants to run `/queue retry ai-analysis`"},
             "accessory": {"type": "button", "action_id": "approve", "value": "a1", "style": "primary",
                           "text": {"type": "plain_text", "text": "Approve"}}},
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "expires in 15m"}]},
            {"type": "actions", "block_id": "decide", "elements": [
                {"type": "button", "action_id": "reject", "value": "a1", "style": "danger",
                 "text": {"type": "plain_text", "text": "Reject"}}
            ]}
        ]
    });
    let msg = OutMessage {
        platform: PLATFORM.into(),
        channel: "C1".into(),
        op: OutOp::Post {
            key: None,
            thread: None,
            fallback: None,
        },
        body: body.clone(),
    };
    run.send(&[msg]).await;
    let calls = fake.wait_for_ok(1, WAIT).await;
    run.stop().await;
    assert_eq!(calls[0].body["text"], body["text"]);
    assert_eq!(calls[0].body["blocks"], body["blocks"]);
    t.cleanup().await;
}

#[tokio::test]
async fn outbox_state_changes_are_conditional_and_prunable() {
    for t in both().await {
        let s = &t.store;
        s.enqueue_messages(&[keyed("C1", "k", "v0"), update("C1", "k", "v1")], 1_000)
            .await
            .expect("enqueue");
        let heads = s.outbox_heads("slack").await.expect("heads");
        assert_eq!(heads.len(), 1, "{}: one head per channel", t.name);
        let (post_id, post) = (heads[0].id, heads[0].message.clone());
        assert_eq!(post, keyed("C1", "k", "v0"));
        assert_eq!(
            s.resolve_message_key("slack", "k", post_id + 1)
                .await
                .expect("resolve"),
            opsbot::store::KeyLookup::Waiting
        );
        assert!(s
            .outbox_mark_posted(post_id, "slack", "k", "C1", "1.0001", 2_000)
            .await
            .expect("posted"));
        assert!(
            !s.outbox_mark_sent(post_id, 2_001).await.expect("again"),
            "{}: only once",
            t.name
        );
        let update_id = s.outbox_heads("slack").await.expect("heads")[0].id;
        // A newer edit arrives while the older one is in flight: the older one's
        // outcome no longer changes its row.
        s.enqueue_messages(&[update("C1", "k", "v2")], 3_000)
            .await
            .expect("enqueue");
        assert!(!s.outbox_retry_at(update_id, 9_000, "boom").await.expect("retry"));
        assert!(!s.outbox_mark_sent(update_id, 3_001).await.expect("sent"));
        assert_eq!(
            s.resolve_message_key("slack", "k", update_id + 1)
                .await
                .expect("resolve"),
            opsbot::store::KeyLookup::Posted {
                channel: "C1".into(),
                ts: "1.0001".into()
            }
        );
        let c = counts(&t).await;
        assert_eq!(
            (c.get("sent"), c.get("superseded"), c.get("pending")),
            (Some(&1), Some(&1), Some(&1))
        );
        assert_eq!(s.outbox_prune(2_500).await.expect("prune"), 2, "{}", t.name);
        assert_eq!(
            s.outbox_prune(10_000).await.expect("prune"),
            0,
            "{}: pending stays",
            t.name
        );
        assert!(s.chat_message("slack", "k").await.expect("lookup").is_some());
        t.cleanup().await;
    }
}

/// Two instances on one Postgres database: every row is claimed by one
/// sender, so nothing is sent twice.
#[tokio::test]
async fn two_senders_on_one_database_send_each_row_once() {
    let t = TestStore::postgres().await;
    let fake = FakeSlack::start().await;
    let other = t.reopen().await;
    let a = Running::start(&t.store, &fake, FAST);
    let b = Running::start(&other, &fake, FAST);
    let batch: Vec<OutMessage> = (0..10)
        .flat_map(|i| ["C1", "C2", "C3"].map(|ch| post(ch, &format!("{ch}-{i}"))))
        .collect();
    a.send(&batch).await;
    b.outbox.wake();
    let calls = fake.wait_for_ok(30, WAIT).await;
    a.stop().await;
    b.stop().await;
    assert_eq!(fake.calls().len(), 30, "nothing sent twice: {:#?}", fake.calls());
    let got = delivered_by_channel(&calls);
    for ch in ["C1", "C2", "C3"] {
        assert_eq!(got[ch], texts(ch, 10), "order kept in {ch}");
    }
    other.close().await;
    t.cleanup().await;
}
