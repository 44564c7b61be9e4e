//! How fast stored requests are executed after a flood: N signed-and-stored
//! `/queue stats` commands (as the Slack ack path leaves them in the inbox)
//! run by the real worker against a fast local target, with every effect
//! (audit entry, rendered result, inbox completion) committed. Prints the
//! rate. `cargo bench --bench drain` (env N=20000, DB=sqlite|postgres,
//! PG_URL=postgres://…).

mod support;

use opsbot::clock::{Clock, SystemClock};
use opsbot::engine::worker::{self, Inputs};
use opsbot::engine::Pressure;
use opsbot::store::InboxItem;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let target = fake_target().await;
    let bench = support::Bench::start(&target).await;
    let (store, pipeline, db) = (bench.store.clone(), bench.pipeline.clone(), bench.db.clone());

    let origin = serde_json::json!({"user": "U0ALICE", "channel": "C1", "thread_ts": null,
        "kind": "command", "response_url": "http://127.0.0.1:9/r"})
    .to_string();
    // Stored during a flood that ended a while ago (the sweep takes them).
    let now = SystemClock.now_ms() - 10_000;
    let items: Vec<InboxItem> = (0..n)
        .map(|i| InboxItem {
            id: (now << 20) | i as i64,
            received_at: now,
            source: "slack".into(),
            actor: "slack:U0ALICE".into(),
            channel: Some("C1".into()),
            thread: None,
            text: "/queue stats".into(),
            origin: origin.clone(),
            dedupe_key: None,
        })
        .collect();
    for chunk in items.chunks(512) {
        let chunk: Vec<&InboxItem> = chunk.iter().collect();
        store.insert_inbox_batch(&chunk).await.expect("insert");
    }
    let (_keep, stored) = tokio::sync::mpsc::channel(1);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let started = Instant::now();
    let handle = worker::spawn(
        pipeline,
        Inputs {
            stored,
            pressure: Pressure::default(),
            stop,
        },
    );
    loop {
        // A count through the state index (a GROUP BY over the whole table
        // on SQLite's one connection would slow the drain it measures).
        let open = store.inbox_open().await.expect("open count");
        if open == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let _ = stop_tx.send(true);
    let _ = handle.await;
    let audited = store.audit_records().await.expect("audit").len();
    println!(
        "drain {db}: {n} stored requests executed in {:.2} s = {:.0}/s ({audited} audit entries)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    bench.finish().await;
}

/// The queue API of seed 003, answering at once.
async fn fake_target() -> String {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/api/queue/stats",
        get(|| async { axum::Json(serde_json::json!({"ai-analysis": {"waiting": 1, "failed": 0}})) }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(l, app).await.ok() });
    url
}
