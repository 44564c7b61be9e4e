//! Alert storms through the real server, alert poster and outbox, on SQLite
//! and Postgres, against a fake Slack that answers 429 above one message
//! (post or edit) per 100 ms per channel, the outbox pacing 10 per second:
//! a compressed storm of 3,000 alerts in 300 groups to one channel becomes
//! one digest, edited within the pace, counting every alert; serious groups
//! in a storm open at most three incidents; after the storm, groups get
//! their own messages again.

use crate::alerts::{edge, CHAT_POLICY};
use crate::fake_slack::Call;
use crate::support::{run_test, TestApp};
use opsbot::clock::Clock;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const ROOT: &str = "C0PRODALERTS";
const CHAT: &str = "C0CHATALERTS";
const GROUPS: usize = 300;
const POSTS: usize = 20;
const PER_POST: usize = 150;

/// Alert `i` of the root storm: one of [`GROUPS`] names, its own instance.
fn storm_alert(i: usize, status: &str) -> Value {
    json!({"status": status, "labels": {"alertname": format!("StormAlert{:03}", i % GROUPS),
        "severity": "warning", "instance": format!("host-{i}")}})
}

fn notification(alerts: Vec<Value>) -> Value {
    json!({"version": "4", "status": "firing", "alerts": alerts})
}

fn is_digest(c: &Call) -> bool {
    c.text()
        .is_some_and(|t| t.starts_with("🌩️ Alert storm") || t.starts_with("✅ Alert storm over"))
}

fn in_channel<'a>(calls: &'a [Call], channel: &'a str) -> impl Iterator<Item = &'a Call> {
    calls
        .iter()
        .filter(move |c| c.ok() && c.channel() == Some(channel))
}

/// The last text the digest of `channel` was given, if it has ended.
fn final_digest(calls: &[Call], channel: &str) -> Option<String> {
    in_channel(calls, channel)
        .filter(|c| is_digest(c))
        .last()
        .and_then(|c| c.text())
        .filter(|t| t.starts_with("✅"))
        .map(String::from)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_one_paced_digest_counting_every_alert_then_groups_post_again() {
    run_test(|t| {
        Box::pin(async move {
            let app = TestApp::spawn_paced(t.store.clone(), edge(true), CHAT_POLICY, 10).await;
            app.slack.limit_channel_writes(Duration::from_millis(100));
            let started = Instant::now();
            for k in 0..=POSTS {
                let alerts: Vec<Value> = if k < POSTS {
                    (k * PER_POST..(k + 1) * PER_POST).map(|i| storm_alert(i, "firing")).collect()
                } else {
                    (0..PER_POST).map(|i| storm_alert(i, "resolved")).collect()
                };
                assert_eq!(app.alert("/alerts/alertmanager", &notification(alerts)).await.status(), 200);
                if k == 5 {
                    // 40 critical chat groups at once into their own channel.
                    let serious = (0..40)
                        .map(|j| json!({"status": "firing", "labels": {"alertname": format!("ChatStorm{j:02}"),
                            "system": "chat", "severity": "critical"}}))
                        .collect();
                    assert_eq!(app.alert("/alerts/alertmanager", &notification(serious)).await.status(), 200);
                }
                tokio::time::sleep(Duration::from_millis(100)).await; // spread over ~2 s
            }
            let stored = app.pipeline.store.alerts_count().await.unwrap();
            assert_eq!(stored as usize, POSTS * PER_POST + 40, "nothing dropped from the store");
            let calls = app
                .slack
                .wait_until(
                    Duration::from_secs(30),
                    |calls| final_digest(calls, ROOT).is_some() && final_digest(calls, CHAT).is_some(),
                    "both storms over",
                )
                .await;
            let first = in_channel(&calls, ROOT).next().expect("a first post");
            assert!(
                first.at.duration_since(started) <= Duration::from_secs(2),
                "first notice after {:?}",
                first.at.duration_since(started)
            );
            let limited: Vec<String> = calls
                .iter()
                .filter(|c| !c.ok())
                .map(|c| format!("{} {:?} {:?}", c.method, c.channel(), c.answer))
                .collect();
            assert!(limited.len() <= 1, "429s after the first: {limited:?}");
            // One digest per channel, counting every alert of its groups.
            let digests = in_channel(&calls, ROOT)
                .filter(|c| is_digest(c) && c.method == "chat.postMessage")
                .count();
            assert_eq!(digests, 1, "one digest message per channel and storm");
            let root = final_digest(&calls, ROOT).unwrap();
            assert!(
                root.starts_with(&format!(
                    "✅ Alert storm over: {} alerts in {GROUPS} groups — {} firing · {PER_POST} resolved",
                    POSTS * PER_POST,
                    POSTS * PER_POST - PER_POST
                )),
                "{root}"
            );
            assert!(root.contains("… and 295 more groups"), "{root}");
            let own = |channel: &str, calls: &[Call]| {
                in_channel(calls, channel)
                    .filter(|c| c.method == "chat.postMessage" && !is_digest(c))
                    .count()
            };
            assert!(own(ROOT, &calls) < GROUPS / 10, "most groups only in the digest");
            // Serious groups in the chat storm opened at most three incidents;
            // those before it each opened theirs.
            let calm_chat = own(CHAT, &calls);
            let chat = final_digest(&calls, CHAT).unwrap();
            assert!(
                chat.starts_with(&format!("✅ Alert storm over: {} alerts", 40 - calm_chat)),
                "{chat} after {calm_chat} own messages"
            );
            assert!(chat.contains("🚨 3 incidents opened"), "{chat}");
            let incidents = app.pipeline.store.open_incidents().await.unwrap();
            assert_eq!(incidents.len(), calm_chat + 3, "{calm_chat} before the storm, 3 in it");
            // After the storm: a group only in the digest and a new one get
            // their own messages; a group posted before the storm is edited.
            let name_in = |c: &Call| {
                let t = c.text().unwrap_or("");
                (0..GROUPS).map(|g| format!("StormAlert{g:03}")).find(|n| t.contains(n.as_str()))
            };
            let before = in_channel(&calls, ROOT)
                .find(|c| c.method == "chat.postMessage" && !is_digest(c))
                .expect("a group posted before the storm");
            let (before_name, before_ts) = (name_in(before).expect("its name"), before.ts.clone().unwrap());
            let digest_only = (0..GROUPS)
                .map(|g| format!("StormAlert{g:03}"))
                .find(|name| {
                    !in_channel(&calls, ROOT).any(|c| !is_digest(c) && name_in(c).as_deref() == Some(name.as_str()))
                })
                .expect("a group only in the digest");
            let after = vec![
                json!({"status": "firing", "labels": {"alertname": digest_only, "severity": "warning", "instance": "after"}}),
                json!({"status": "firing", "labels": {"alertname": before_name, "severity": "warning", "instance": "after"}}),
                json!({"status": "firing", "labels": {"alertname": "AfterTheStorm", "severity": "warning"}}),
            ];
            assert_eq!(app.alert("/alerts/alertmanager", &notification(after)).await.status(), 200);
            let posted = |calls: &[Call], name: &str| {
                in_channel(calls, ROOT).any(|c| c.method == "chat.postMessage" && !is_digest(c) && c.text().unwrap_or("").contains(name))
            };
            let edited = |calls: &[Call]| {
                in_channel(calls, ROOT).any(|c| c.method == "chat.update" && c.body["ts"] == before_ts.as_str())
            };
            let calls = app
                .slack
                .wait_until(
                    Duration::from_secs(10),
                    |calls| posted(calls, &digest_only) && posted(calls, "AfterTheStorm") && edited(calls),
                    "per-group messages again",
                )
                .await;
            let reposted = in_channel(&calls, ROOT)
                .filter(|c| c.method == "chat.postMessage" && name_in(c).as_deref() == Some(before_name.as_str()))
                .count();
            assert_eq!(reposted, 1, "{before_name} edited, never posted twice");
            let digest_calls = in_channel(&calls, ROOT).filter(|c| is_digest(c)).count();
            app.settle().await;
            let late = in_channel(&app.slack.calls(), ROOT).filter(|c| is_digest(c)).count();
            assert_eq!(late, digest_calls, "no new storm");
            assert!(app.slack.rate_limited() <= 1);
            app.stop().await;
        })
    })
    .await;
}

/// Posts the root storm's `k`th notification.
async fn post(app: &TestApp, k: usize) {
    let alerts = (k * PER_POST..(k + 1) * PER_POST)
        .map(|i| storm_alert(i, "firing"))
        .collect();
    assert_eq!(
        app.alert("/alerts/alertmanager", &notification(alerts))
            .await
            .status(),
        200
    );
}

/// A restart in the middle of a storm loses nothing: the new instance takes
/// the stored storm over, keeps editing the same digest, and its final edit
/// counts the alerts from before and after the restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_in_a_storm_keeps_its_digest_and_loses_nothing() {
    run_test(|t| {
        Box::pin(async move {
            let first = TestApp::spawn_paced(t.store.clone(), edge(true), "", 10).await;
            for k in 0..3 {
                post(&first, k).await;
            }
            first
                .slack
                .wait_until(
                    Duration::from_secs(10),
                    |calls| in_channel(calls, ROOT).any(is_digest),
                    "the storm's digest",
                )
                .await;
            first.stop().await;
            let second = TestApp::spawn_paced(t.store.clone(), edge(true), "", 10).await;
            for k in 3..6 {
                post(&second, k).await;
            }
            let calls = second
                .slack
                .wait_until(
                    Duration::from_secs(30),
                    |calls| final_digest(calls, ROOT).is_some(),
                    "the storm over",
                )
                .await;
            let text = final_digest(&calls, ROOT).unwrap();
            assert!(
                text.starts_with(&format!(
                    "✅ Alert storm over: {} alerts in {GROUPS} groups",
                    6 * PER_POST
                )),
                "{text}"
            );
            assert!(
                !in_channel(&calls, ROOT).any(|c| is_digest(c) && c.method == "chat.postMessage"),
                "the same digest edited, not a second one"
            );
            let storms = second.pipeline.store.storms().await.unwrap();
            assert_eq!(storms.len(), 1, "{storms:?}");
            assert!(storms[0].ended_at.is_some());
            assert_eq!(
                second.pipeline.store.alerts_count().await.unwrap() as usize,
                6 * PER_POST
            );
            second.stop().await;
        })
    })
    .await;
}

/// The texts of the pending storm digests in Slack.
async fn pending_digests(b: &crate::silences::Bench) -> Vec<String> {
    let rows = b.p.store.outbox_pending_for_tests("slack").await.expect("outbox");
    rows.iter()
        .filter_map(|r| r.message.body["text"].as_str())
        .filter(|t| t.starts_with("🌩️ Alert storm") || t.starts_with("✅ Alert storm over"))
        .map(String::from)
        .collect()
}

/// A storm is started just before the transaction that takes its first
/// group in; if another instance takes that group first, the storm has
/// nothing to show: no digest is posted for it, not even when it ends. A
/// storm's first digest always counts the group it took in.
#[tokio::test]
async fn a_storm_s_first_digest_is_never_empty() {
    run_test(|t| {
        Box::pin(async move {
            let b = crate::silences::Bench::new(t);
            let started =
                b.p.store
                    .start_storm("slack", CHAT, b.clock.now_ms())
                    .await
                    .unwrap();
            b.post_paced(1).await;
            assert!(pending_digests(&b).await.is_empty(), "nothing to show yet");
            b.clock.advance(31_000);
            b.post_paced(1).await;
            let storms = b.p.store.storms().await.unwrap();
            assert_eq!(storms.len(), 1);
            assert!(
                storms[0].ended_at.is_some(),
                "calm 30 s after its start: {storms:?}"
            );
            assert!(pending_digests(&b).await.is_empty(), "ended without a digest");
            // A storm that takes a group in: its first digest counts it.
            let second =
                b.p.store
                    .start_storm("slack", CHAT, b.clock.now_ms())
                    .await
                    .unwrap();
            assert_ne!(second.id, started.id);
            b.firing("SlowResponseTime", "warning").await;
            b.post_paced(1).await;
            let digests = pending_digests(&b).await;
            assert_eq!(digests.len(), 1, "{digests:#?}");
            assert!(
                digests[0].starts_with("🌩️ Alert storm: 1 alerts in 1 groups — 1 firing"),
                "{digests:#?}"
            );
            b.advance(31_000).await;
            let digests = pending_digests(&b).await;
            assert!(
                digests
                    .last()
                    .is_some_and(|t| t.starts_with("✅ Alert storm over: 1 alerts in 1 groups")),
                "{digests:#?}"
            );
        })
    })
    .await;
}
