//! The HTTP edge under bad input and abuse, against the real server loop:
//! body limits, slow clients, the concurrency limit, the per-identity rate
//! limit, and `/metrics` served from memory.

use crate::support::{eventually, test_edge, TestApp, TestStore};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A raw connection to `app` (for what reqwest will not send).
async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.url.trim_start_matches("http://"))
        .await
        .expect("connect")
}

/// Everything the server sends until it closes the connection, or `None`
/// if it is still open after `within`.
async fn read_until_closed(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(within, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

/// The status line of the first response on `s`, within `within`.
async fn status_line(s: &mut TcpStream, within: Duration) -> Option<String> {
    let mut buf = vec![0u8; 1024];
    let n = tokio::time::timeout(within, s.read(&mut buf)).await.ok()?.ok()?;
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    head.lines().next().map(str::to_string)
}

const FORM: &str = "application/x-www-form-urlencoded";

/// A POST to `/slack/commands` announcing `length` bytes of body and
/// sending only `sent` of it.
async fn partial_post(app: &TestApp, length: usize, sent: &str) -> TcpStream {
    let mut s = connect(app).await;
    let head = format!(
        "POST /slack/commands HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\nContent-Length: {length}\r\n\r\n{sent}"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s
}

/// `/metrics` as a scraper sees it.
async fn scrape(app: &TestApp) -> String {
    let r = app
        .client
        .get(format!("{}/metrics", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

/// Asserts that no request was stored, then stops the app.
async fn nothing_stored(app: TestApp, t: TestStore) {
    assert!(t.store.new_inbox_items(10).await.unwrap().is_empty());
    app.stop().await;
    t.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_mib_body_gets_413_at_once_and_stores_nothing() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    // Announced: answered from Content-Length before a byte of body is sent.
    let mut s = partial_post(&app, 1024 * 1024, "").await;
    let started = Instant::now();
    let line = status_line(&mut s, Duration::from_secs(2)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Sent whole, as a client would: the same 413.
    let body = "a=".to_string() + &"x".repeat(1024 * 1024);
    let r = app
        .post_signed("/slack/commands", &body, "1", "v0=00", FORM)
        .await;
    assert_eq!(r.status(), 413);
    // Streamed without a length: cut once past the limit.
    let mut s = connect(&app).await;
    let head = "POST /slack/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 16 * 1024, "x".repeat(16 * 1024));
    for _ in 0..8 {
        // The server may stop reading once it has answered.
        if s.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let line = status_line(&mut s, Duration::from_secs(2)).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 413 Payload Too Large"));
    nothing_stored(app, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off() {
    let t = TestStore::sqlite().await;
    let mut edge = test_edge();
    edge.limits.header_timeout = Duration::from_millis(300);
    edge.limits.body_timeout = Duration::from_millis(300);
    let app = TestApp::spawn_with_edge(t.store.clone(), edge).await;
    // A request head that never ends.
    let mut s = connect(&app).await;
    s.write_all(b"POST /slack/commands HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let closed = read_until_closed(&mut s, Duration::from_secs(5)).await;
    assert!(closed.is_some(), "a slow-header client was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // An idle keep-alive connection: closed after the same timeout.
    let mut s = connect(&app).await;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let first = status_line(&mut s, Duration::from_secs(2)).await;
    assert_eq!(first.as_deref(), Some("HTTP/1.1 200 OK"));
    assert!(read_until_closed(&mut s, Duration::from_secs(3)).await.is_some());
    // A body that never arrives.
    let mut s = partial_post(&app, 100, "text=abc").await;
    let answer = read_until_closed(&mut s, Duration::from_secs(5))
        .await
        .expect("a slow-body client was never cut off");
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request"), "{answer}");
    nothing_stored(app, t).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_limit_requests_get_503_at_once() {
    let t = TestStore::sqlite().await;
    let mut edge = test_edge();
    edge.limits.max_concurrent = 2;
    edge.limits.body_timeout = Duration::from_secs(2);
    let app = TestApp::spawn_with_edge(t.store.clone(), edge).await;
    // Two requests inside handlers, waiting for bodies that are slow to come.
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(partial_post(&app, 100, "x").await);
    }
    let health = || app.client.get(format!("{}/healthz", app.url)).send();
    let deadline = Instant::now() + Duration::from_secs(2);
    let r = loop {
        let r = health().await.unwrap();
        if r.status() == 503 || Instant::now() > deadline {
            break r;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    // Once they are cut off, there is room again.
    for mut s in held {
        read_until_closed(&mut s, Duration::from_secs(5)).await;
    }
    assert_eq!(health().await.unwrap().status(), 200);
    let m = scrape(&app).await;
    assert!(!m.contains("opsbot_http_shed_total 0"), "{m}");
    nothing_stored(app, t).await;
}

/// One stranger typing `/queue stats` 1,000 times: after a burst of 10 the
/// rest are refused in the ack (nothing stored), and a request from someone
/// else still gets its card at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_commands_from_one_identity_leave_the_channel_usable() {
    use futures::StreamExt;
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    let started = Instant::now();
    let acks: Vec<Value> = futures::stream::iter(0..1000)
        .map(|_| async {
            let r = app.slash("U0STRANGER", "/queue", "stats").await;
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let took = started.elapsed();
    let accepted = acks.iter().filter(|a| a["response_type"] == "in_channel").count();
    let refused: Vec<&Value> = acks
        .iter()
        .filter(|a| a["response_type"] == "ephemeral")
        .collect();
    // Burst 10, then one more every 3 s (20 a minute).
    let allowed = 10 + (took.as_secs() / 3) as usize + 1;
    assert!(accepted <= allowed, "{accepted} accepted in {took:?}");
    assert_eq!(accepted + refused.len(), 1000);
    let text = refused[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("slow down: at most 20 commands a minute per person"),
        "{text}"
    );
    // Clicks and mentions from the same identity are dropped the same way.
    let stored_before = stored_count(&t).await;
    assert_eq!(
        app.click("U0STRANGER", "approve", "a1", "7.7").await.status(),
        200
    );
    let mention = serde_json::json!({
        "type": "event_callback", "team_id": "T1", "api_app_id": "A1", "event_id": "EvFlood", "event_time": 1700000000,
        "event": {"type": "app_mention", "user": "U0STRANGER", "channel": "C_QUEUE", "text": "<@U0BOT> queue stats", "ts": "1700000000.000200"}
    });
    assert_eq!(app.event(&mention, None).await.status(), 200);
    assert_eq!(stored_count(&t).await, stored_before, "nothing more stored");

    let asked = Instant::now();
    app.slash("U0ALICE", "/queue", "retry ai-analysis").await;
    let card = app
        .slack
        .wait_until(
            Duration::from_secs(5),
            |calls| {
                calls
                    .iter()
                    .any(|c| c.body.to_string().contains("\"action_id\":\"approve\""))
            },
            "alice's card",
        )
        .await;
    drop(card);
    assert!(asked.elapsed() < Duration::from_secs(5));
    let stored = stored_count(&t).await;
    assert!(stored <= accepted + 1, "{stored} stored");
    let m = scrape(&app).await;
    // The refused commands, the click and the mention.
    assert!(
        m.contains(&format!("opsbot_rate_limited_total {}", refused.len() + 2)),
        "{m}"
    );
    app.stop().await;
    t.cleanup().await;
}

/// Inbox rows in any state.
async fn stored_count(t: &TestStore) -> usize {
    let counts = t.store.inbox_counts().await.unwrap();
    counts.iter().map(|(_, n)| *n as usize).sum()
}

/// `/metrics` reads counts refreshed in the background: a scrape never
/// queries the store (here: a store that is gone still scrapes fine).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_come_from_memory() {
    let t = TestStore::sqlite().await;
    let app = TestApp::spawn(t.store.clone()).await;
    app.slash("U0ALICE", "/queue", "retry ai-analysis").await;
    let pending = "opsbot_approvals{state=\"pending\"} 1";
    eventually("the gauges' refresh", || async {
        scrape(&app).await.contains(pending)
    })
    .await;
    t.store.close().await;
    for _ in 0..20 {
        let m = scrape(&app).await;
        assert!(m.contains(pending), "{m}");
    }
    app.stop().await;
    t.cleanup().await;
}
