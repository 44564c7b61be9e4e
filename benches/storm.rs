//! An alert storm through the real server, alert poster and outbox: ALERTS
//! alerts (default 10,000) in NAMES groups (default 500) over STORM_SECS
//! seconds (default 60, as issue #16 asks), one Alertmanager post of 100
//! alerts at a time, all routed to one Slack channel of a fake Slack that
//! answers 429 above one message (post or edit) per second per channel; the
//! outbox paces at Slack's one per second. Waits for the storm's final
//! digest, then prints: 429s after the first, alerts missing from the final
//! digests, first post latency, and the channel's posts and edits per
//! second. `cargo bench --bench storm` (env STORM_SECS, ALERTS, NAMES,
//! DB=sqlite|postgres).

#[path = "../tests/it/fake_slack.rs"]
mod fake_slack;
mod support;

use fake_slack::{Call, FakeSlack};
use opsbot::app;
use opsbot::config::{Config, SlackConfig};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-alert-token";
/// The shipped config's root route channel.
const CHANNEL: &str = "C0PRODALERTS";
const PER_POST: usize = 100;

fn body(post: usize, names: usize) -> String {
    let alerts: Vec<serde_json::Value> = (post * PER_POST..(post + 1) * PER_POST)
        .map(|i| {
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": format!("StormAlert{:04}", i % names), "severity": "warning",
                           "instance": format!("host-{i}")},
                "annotations": {"summary": "a storm"},
            })
        })
        .collect();
    serde_json::json!({"version": "4", "status": "firing", "receiver": "opsbot", "alerts": alerts})
        .to_string()
}

fn is_digest(c: &Call) -> bool {
    c.text().is_some_and(|t| t.contains("Alert storm"))
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (secs, alerts, names) = (env("STORM_SECS", 60), env("ALERTS", 10_000), env("NAMES", 500));
    let posts = alerts / PER_POST;
    let slack = FakeSlack::start().await;
    slack.limit_channel_writes(Duration::from_secs(1));
    let bench = support::Bench::start("http://127.0.0.1:9").await;
    let vars: HashMap<String, String> = [("OPSBOT_ALERT_TOKEN".to_string(), TOKEN.to_string())].into();
    let config = Config::load(Path::new("config/opsbot.toml"), &vars).expect("config");
    let edge = app::Edge::from_config(&config);
    let slack_cfg = SlackConfig {
        signing_secret: "bench-signing-secret".to_string().into(),
        bot_token: "xoxb-bench".to_string().into(),
        app_token: None,
        api_url: slack.url(),
        team_id: None,
        app_id: None,
    };
    let chats = app::Chats {
        slack: Some(&slack_cfg),
        discord: None,
    };
    let pacing = opsbot::engine::outbox::Pacing::default();
    let services = app::start(bench.pipeline.clone(), chats, pacing, &edge).expect("start");
    let (base, server) = support::serve(&services).await;
    let url = format!("{base}/alerts/alertmanager");
    let client = reqwest::Client::new();
    let started = Instant::now();
    let every = Duration::from_secs(secs as u64) / posts.max(1) as u32;
    for p in 0..posts {
        tokio::time::sleep_until((started + every * p as u32).into()).await;
        let r = client
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(body(p, names))
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
    }
    let ingested = started.elapsed();
    // The storm ends 30 calm seconds after the last change; its final edit follows.
    let over = |calls: &[Call]| {
        calls
            .iter()
            .rev()
            .find(|c| c.ok() && is_digest(c))
            .is_some_and(|c| c.text().is_some_and(|t| t.starts_with("✅")))
    };
    let calls = slack
        .wait_until(
            Duration::from_secs(secs as u64 + 300),
            over,
            "the storm's final digest",
        )
        .await;
    let stored = bench.store.alerts_count().await.expect("count");
    let written: Vec<&Call> = calls
        .iter()
        .filter(|c| c.ok() && c.channel() == Some(CHANNEL))
        .collect();
    // The final text of each digest (by ts: its post, then its edits).
    let mut finals: HashMap<String, &str> = HashMap::new();
    let mut digests = HashSet::new();
    for c in written.iter().filter(|c| is_digest(c)) {
        let ts =
            c.ts.clone()
                .or_else(|| c.body["ts"].as_str().map(String::from))
                .unwrap_or_default();
        digests.insert(ts.clone());
        finals.insert(ts, c.text().unwrap_or(""));
    }
    let counted: i64 = finals
        .values()
        .filter_map(|t| t.split(": ").nth(1)?.split(' ').next()?.parse::<i64>().ok())
        .sum();
    let limited = calls.iter().filter(|c| !c.ok()).count();
    let first = written.first().map(|c| c.at.duration_since(started));
    let span = match (written.first(), written.last()) {
        (Some(a), Some(b)) => b.at.duration_since(a.at).as_secs_f64().max(1.0),
        _ => 1.0,
    };
    let gaps = written.windows(2).map(|w| w[1].at.duration_since(w[0].at));
    let closest = gaps.min().unwrap_or_default();
    let end = started + ingested;
    let during = written.iter().filter(|c| c.at <= end).count() as f64 / ingested.as_secs_f64();
    let posts_n = written.iter().filter(|c| c.method == "chat.postMessage").count();
    let edits_n = written.iter().filter(|c| c.method == "chat.update").count();
    println!(
        "storm {}: {alerts} alerts in {names} groups over {:.1} s to one channel ({stored} stored); \
         429s after the first: {}; alerts missing from the final digests: {}; first post after {:.0} ms; \
         {during:.2} posts+edits/s while alerts arrived; {posts_n} posts + {edits_n} edits in {span:.0} s \
         ({:.2}/s, the closest two {:.0} ms apart); \
         {} digest(s); storm over {:.0} s after the last alert",
        bench.db,
        ingested.as_secs_f64(),
        limited.saturating_sub(1),
        stored - counted,
        first.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
        (posts_n + edits_n) as f64 / span,
        closest.as_secs_f64() * 1000.0,
        digests.len(),
        (written.last().map_or(started, |c| c.at) - (started + ingested)).as_secs_f64(),
    );
    services.stop().await;
    server.abort();
    bench.finish().await;
}
