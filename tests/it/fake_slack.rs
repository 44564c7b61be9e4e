//! A fake Slack Web API at the wire: an axum app on 127.0.0.1 that records
//! every call and answers like Slack, and can be scripted to misbehave.
//!
//! ```ignore
//! let slack = FakeSlack::start().await;            // OPSBOT_SLACK_API_URL = slack.url()
//! slack.script("chat.postMessage", 2, Answer::RateLimited { retry_after_secs: 1 });
//! slack.script_channel("chat.update", "C1", 1, Answer::Error("message_not_found".into()));
//! let calls = slack.wait_for_ok(3, Duration::from_secs(5)).await;
//! ```
//!
//! Calls go to `{url}{method}` (e.g. `…/api/chat.postMessage`); JSON and form
//! bodies (and GET query strings) are recorded as a JSON object. Successful
//! `chat.postMessage` calls answer increasing `ts` values
//! (`1700000000.000100`, `1700000000.000200`, …).

#![allow(dead_code)] // a shared harness: not every test uses every helper

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// How the fake answers one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `200 {"ok": true, …}`.
    Ok,
    /// `200 {"ok": true, …}` after a delay (a slow Slack).
    SlowOk(Duration),
    /// `429` with `Retry-After: <secs>`.
    RateLimited { retry_after_secs: u64 },
    /// A bare HTTP status (e.g. 500, 503) with a text body.
    Status(u16),
    /// `200 {"ok": false, "error": <code>}`.
    Error(String),
}

impl Answer {
    fn ok(&self) -> bool {
        matches!(self, Answer::Ok | Answer::SlowOk(_))
    }
}

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// Web API method, e.g. `chat.postMessage`.
    pub method: String,
    /// The request body (JSON, or form fields / query as string values).
    pub body: Value,
    /// The `Authorization` header as sent.
    pub auth: Option<String>,
    /// When the request arrived.
    pub at: Instant,
    /// What the fake answered.
    pub answer: Answer,
    /// The `ts` answered by a successful `chat.postMessage`.
    pub ts: Option<String>,
}

impl Call {
    /// `channel` of the request.
    pub fn channel(&self) -> Option<&str> {
        self.body.get("channel").and_then(Value::as_str)
    }
    /// `text` of the request.
    pub fn text(&self) -> Option<&str> {
        self.body.get("text").and_then(Value::as_str)
    }
    /// Did the fake answer `ok: true`?
    pub fn ok(&self) -> bool {
        self.answer.ok()
    }
}

struct Rule {
    method: Option<String>,
    channel: Option<String>,
    remaining: usize,
    answer: Answer,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    rules: Vec<Rule>,
    responses: HashMap<String, Value>,
    seq: u64,
    /// Slack's per-channel limit: posts closer than this to the channel's
    /// last accepted post get 429 (with a 20 ms allowance for jitter).
    channel_interval: Option<Duration>,
    /// The limit counts `chat.update` calls too.
    limit_updates: bool,
    last_accepted: HashMap<String, Instant>,
}

/// Network jitter the per-channel limit forgives.
const JITTER: Duration = Duration::from_millis(20);

/// The fake server. Clones share state.
#[derive(Clone)]
pub struct FakeSlack {
    url: String,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl FakeSlack {
    /// Starts a fake on a free port of 127.0.0.1.
    pub async fn start() -> FakeSlack {
        let fake = FakeSlack {
            url: String::new(),
            inner: Arc::default(),
            changed: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/api/{method}", any(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        FakeSlack {
            url: format!("http://{addr}/api/"),
            ..fake
        }
    }

    /// Enforces Slack's per-channel posting rate: one `chat.postMessage` per
    /// `every` per channel, more get 429 with the seconds left.
    pub fn limit_channels(&self, every: Duration) {
        self.lock().channel_interval = Some(every);
    }

    /// Like [`limit_channels`](Self::limit_channels), counting edits
    /// (`chat.update`) too: one message written per `every` per channel.
    pub fn limit_channel_writes(&self, every: Duration) {
        let mut inner = self.lock();
        inner.channel_interval = Some(every);
        inner.limit_updates = true;
    }

    /// Calls answered 429 so far.
    pub fn rate_limited(&self) -> usize {
        self.lock()
            .calls
            .iter()
            .filter(|c| matches!(c.answer, Answer::RateLimited { .. }))
            .count()
    }

    /// The base URL, as `OPSBOT_SLACK_API_URL` would be (with a trailing slash).
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The next `n` calls of `method` (`"*"` = any method) answer `answer`.
    /// Rules are consumed in the order they were added.
    pub fn script(&self, method: &str, n: usize, answer: Answer) {
        self.add_rule(method, None, n, answer);
    }

    /// Like [`script`](Self::script), but only for calls to `channel`.
    pub fn script_channel(&self, method: &str, channel: &str, n: usize, answer: Answer) {
        self.add_rule(method, Some(channel), n, answer);
    }

    fn add_rule(&self, method: &str, channel: Option<&str>, n: usize, answer: Answer) {
        self.lock().rules.push(Rule {
            method: (method != "*").then(|| method.to_string()),
            channel: channel.map(String::from),
            remaining: n,
            answer,
        });
    }

    /// A fixed successful response for `method` (merged over `{"ok": true}`),
    /// e.g. for `auth.test` or `users.info`.
    pub fn respond(&self, method: &str, response: Value) {
        self.lock().responses.insert(method.to_string(), response);
    }

    /// Every call so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Every call of `method` so far.
    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.method == method)
            .cloned()
            .collect()
    }

    /// Calls answered `ok: true`, in arrival order.
    pub fn delivered(&self) -> Vec<Call> {
        self.lock().calls.iter().filter(|c| c.ok()).cloned().collect()
    }

    /// Waits until at least `n` calls arrived; panics after `timeout`.
    pub async fn wait_for_calls(&self, n: usize, timeout: Duration) -> Vec<Call> {
        self.wait_until(timeout, |calls| calls.len() >= n, &format!("{n} calls"))
            .await
    }

    /// Waits until at least `n` calls were answered `ok: true`; panics after `timeout`.
    pub async fn wait_for_ok(&self, n: usize, timeout: Duration) -> Vec<Call> {
        self.wait_until(
            timeout,
            |calls| calls.iter().filter(|c| c.ok()).count() >= n,
            &format!("{n} successful calls"),
        )
        .await
    }

    /// Waits until `done(calls)` holds; panics after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Call]) -> bool,
        what: &str,
    ) -> Vec<Call> {
        crate::support::wait_for_calls(
            &self.changed,
            timeout,
            || self.calls(),
            done,
            &format!("fake Slack: {what}"),
            |c| format!("{} {:?} {:?}", c.method, c.text(), c.answer),
        )
        .await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake slack lock")
    }

    /// Records a call and decides the answer (consuming a matching rule).
    fn record(
        &self,
        method: String,
        body: Value,
        auth: Option<String>,
    ) -> (Answer, Option<String>, Option<Value>) {
        let mut inner = self.lock();
        let channel = body.get("channel").and_then(Value::as_str).map(String::from);
        let answer = inner
            .rules
            .iter_mut()
            .find(|r| {
                r.remaining > 0
                    && r.method.as_ref().is_none_or(|m| *m == method)
                    && r.channel.as_ref().is_none_or(|c| Some(c) == channel.as_ref())
            })
            .map_or(Answer::Ok, |r| {
                r.remaining -= 1;
                r.answer.clone()
            });
        let now = Instant::now();
        let limited = method == "chat.postMessage" || (inner.limit_updates && method == "chat.update");
        let answer = match (&answer, inner.channel_interval, &channel) {
            (Answer::Ok, Some(every), Some(ch)) if limited => match inner.last_accepted.get(ch) {
                Some(last) if now.duration_since(*last) + JITTER < every => {
                    let left = every - now.duration_since(*last);
                    Answer::RateLimited {
                        retry_after_secs: left.as_secs_f64().ceil() as u64,
                    }
                }
                _ => {
                    inner.last_accepted.insert(ch.clone(), now);
                    Answer::Ok
                }
            },
            _ => answer,
        };
        let ts = (answer.ok() && method == "chat.postMessage").then(|| {
            inner.seq += 100;
            format!(
                "{}.{:06}",
                1_700_000_000 + inner.seq / 1_000_000,
                inner.seq % 1_000_000
            )
        });
        let fixed = inner.responses.get(&method).cloned();
        inner.calls.push(Call {
            method,
            body,
            auth,
            at: Instant::now(),
            answer: answer.clone(),
            ts: ts.clone(),
        });
        drop(inner);
        self.changed.notify_waiters();
        (answer, ts, fixed)
    }
}

async fn handle(
    State(fake): State<FakeSlack>,
    Path(method): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = parse_body(&headers, &body, query.as_deref());
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (answer, ts, fixed) = fake.record(method.clone(), body.clone(), auth);
    match answer {
        Answer::Ok => Json(ok_response(&method, &body, ts, fixed)).into_response(),
        Answer::SlowOk(delay) => {
            tokio::time::sleep(delay).await;
            Json(ok_response(&method, &body, ts, fixed)).into_response()
        }
        Answer::RateLimited { retry_after_secs } => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, retry_after_secs.to_string())],
            Json(json!({"ok": false, "error": "ratelimited"})),
        )
            .into_response(),
        Answer::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "upstream trouble",
        )
            .into_response(),
        Answer::Error(code) => Json(json!({"ok": false, "error": code})).into_response(),
    }
}

fn parse_body(headers: &HeaderMap, body: &[u8], query: Option<&str>) -> Value {
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("application/json") {
        return serde_json::from_slice(body).unwrap_or(Value::Null);
    }
    let text = if body.is_empty() {
        query.unwrap_or("").to_string()
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let mut fields = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        fields.insert(decode(k), Value::String(decode(v)));
    }
    Value::Object(fields)
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(&s.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

fn ok_response(method: &str, req: &Value, ts: Option<String>, fixed: Option<Value>) -> Value {
    let channel = req.get("channel").cloned().unwrap_or(Value::Null);
    let text = req.get("text").cloned().unwrap_or(Value::Null);
    let mut out = match method {
        "chat.postMessage" => json!({
            "ok": true, "channel": channel, "ts": ts,
            "message": {"type": "message", "text": text, "ts": ts},
        }),
        "chat.update" => json!({
            "ok": true, "channel": channel, "ts": req.get("ts").cloned().unwrap_or(Value::Null), "text": text,
        }),
        "chat.postEphemeral" => json!({"ok": true, "message_ts": "1700000000.999999"}),
        _ => json!({"ok": true}),
    };
    if let (Some(Value::Object(extra)), Some(obj)) = (fixed, out.as_object_mut()) {
        obj.extend(extra);
    }
    out
}
