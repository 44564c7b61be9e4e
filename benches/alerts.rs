//! Durable alert ingest through the real HTTP server: CLIENTS concurrent
//! Alertmanager senders post POSTS notifications of ALERTS alerts each (every
//! alert new, so each post writes its rows), each stored before its 200; or,
//! with FORMAT=pagerduty, single Events v2 triggers (202). Prints alerts/s
//! and the p50 / p99 / max answer time. `cargo bench --bench alerts` (env
//! CLIENTS=8, POSTS=2000, ALERTS=100, FORMAT=alertmanager|pagerduty,
//! DB=sqlite|postgres).

mod support;

use opsbot::app;
use opsbot::config::Config;
use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-alert-token";
const ROUTING_KEY: &str = "benchbenchbenchbenchbenchbench01";

/// One PagerDuty trigger of a new key.
fn event(client: usize, post: usize) -> String {
    serde_json::json!({
        "routing_key": ROUTING_KEY, "event_action": "trigger",
        "dedup_key": format!("c{client}-p{post}"),
        "payload": {"summary": "Disk above 95 % on the PDF host", "source": "pdf-host", "severity": "critical"},
    })
    .to_string()
}

fn body(client: usize, post: usize, alerts: usize) -> String {
    let list: Vec<serde_json::Value> = (0..alerts)
        .map(|i| {
            serde_json::json!({
                "status": "firing",
                "labels": {"alertname": "HighErrorRate", "system": "chat", "severity": "critical",
                           "instance": format!("c{client}-p{post}-a{i}")},
                "annotations": {"summary": "5xx rate above 0.05 req/s"},
                "startsAt": "2026-12-01T21:58:30Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.internal:9090/graph",
                "fingerprint": format!("{client:04x}{post:06x}{i:06x}"),
            })
        })
        .collect();
    serde_json::json!({"version": "4", "status": "firing", "receiver": "opsbot", "alerts": list}).to_string()
}

#[tokio::main]
async fn main() {
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (clients, posts, mut alerts) = (env("CLIENTS", 8), env("POSTS", 2000), env("ALERTS", 100));
    let pagerduty = std::env::var("FORMAT").is_ok_and(|f| f == "pagerduty");
    if pagerduty {
        alerts = 1;
    }
    let bench = support::Bench::start("http://127.0.0.1:9").await;
    let vars: HashMap<String, String> = [
        ("OPSBOT_ALERT_TOKEN".to_string(), TOKEN.to_string()),
        (
            "OPSBOT_ALERT_ROUTING_KEY_PDF".to_string(),
            ROUTING_KEY.to_string(),
        ),
    ]
    .into();
    let config = Config::load(Path::new("config/opsbot.toml"), &vars).expect("config");
    let edge = app::Edge::from_config(&config);
    let pacing = opsbot::engine::outbox::Pacing::default();
    let services = app::start(bench.pipeline.clone(), app::Chats::default(), pacing, &edge).expect("start");
    let path = if pagerduty { "v2/enqueue" } else { "alertmanager" };
    let (base, server) = support::serve(&services).await;
    let url = format!("{base}/alerts/{path}");
    let per_client = posts / clients;
    let bodies: Vec<Vec<String>> = (0..clients)
        .map(|c| {
            (0..per_client)
                .map(|p| {
                    if pagerduty {
                        event(c, p)
                    } else {
                        body(c, p, alerts)
                    }
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for list in bodies {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut times = Vec::with_capacity(list.len());
            for b in list {
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(b)
                    .send()
                    .await
                    .expect("post");
                assert!(r.status().is_success(), "{}", r.text().await.unwrap_or_default());
                times.push(t.elapsed());
            }
            times
        }));
    }
    let mut times: Vec<Duration> = Vec::new();
    for t in tasks {
        times.extend(t.await.expect("client"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    times.sort_unstable();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)].as_secs_f64() * 1000.0;
    let total = times.len() * alerts;
    let stored = bench.store.alerts_count().await.expect("count");
    println!(
        "alerts {} ({}): {} posts of {alerts} alerts from {clients} clients: {:.0} alerts/s ({:.0} posts/s); answer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {stored} stored",
        bench.db,
        if pagerduty { "pagerduty" } else { "alertmanager" },
        times.len(),
        total as f64 / elapsed,
        times.len() as f64 / elapsed,
        pct(0.5),
        pct(0.99),
        pct(1.0),
    );
    assert_eq!(stored as usize, total, "every alert stored");
    services.stop().await;
    server.abort();
    bench.finish().await;
}
