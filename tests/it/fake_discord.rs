//! A fake Discord REST API at the wire: an axum app on 127.0.0.1 that records
//! every request, checks the bot token (and the application id of webhook
//! calls), answers like Discord, and can be scripted to answer 429 or an error.
//!
//! ```ignore
//! let discord = FakeDiscord::start().await;         // OPSBOT_DISCORD_API_URL = discord.url()
//! discord.script("/channels/", 1, Answer::RateLimited { retry_after: 0.2, global: false });
//! let calls = discord.wait_for(|c| c.iter().any(|c| c.is_edit_original()), "the answer").await;
//! ```
//!
//! New channel messages and followups get ids `M1`, `M2`, …; an edit of a
//! deferred response (`@original`) answers the same id for the same token.

#![allow(dead_code)] // a shared harness: not every test uses every helper

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

pub const APPLICATION_ID: &str = "4242";
pub const BOT_TOKEN: &str = "discord-test-bot-token";

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Ok,
    /// `429` with `retry_after` seconds in the body (and `Retry-After`).
    RateLimited {
        retry_after: f64,
        global: bool,
    },
    /// An error status with Discord's JSON error `code`.
    Error {
        status: u16,
        code: u64,
    },
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// The path below the API base, e.g. `/channels/C1/messages`.
    pub path: String,
    pub body: Value,
    pub auth: Option<String>,
    pub answer: Answer,
    /// The message id answered, if any.
    pub id: Option<String>,
    pub at: std::time::Instant,
}

impl Call {
    pub fn ok(&self) -> bool {
        self.answer == Answer::Ok
    }
    /// An edit of a deferred interaction response.
    pub fn is_edit_original(&self) -> bool {
        self.method == "PATCH" && self.path.ends_with("/messages/@original")
    }
    /// A followup through an interaction's webhook.
    pub fn is_followup(&self) -> bool {
        self.method == "POST" && self.path.starts_with("/webhooks/")
    }
    /// The message content or embed JSON as one string, for `contains` checks.
    pub fn text(&self) -> String {
        self.body.to_string()
    }
}

struct Rule {
    path: String,
    remaining: usize,
    answer: Answer,
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    rules: Vec<Rule>,
    seq: u64,
    originals: HashMap<String, String>,
    /// Ids of the messages posted, and of those a thread was started from
    /// (as on Discord, the thread's channel id is the message's id).
    posted: std::collections::HashSet<String>,
    threads: std::collections::HashSet<String>,
    /// Answer every success with `X-RateLimit-Remaining: 0` and this
    /// `X-RateLimit-Reset-After` (a bucket used up by each call).
    reset_after: Option<f64>,
}

/// The fake server. Clones share state.
#[derive(Clone)]
pub struct FakeDiscord {
    url: String,
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
}

impl FakeDiscord {
    pub async fn start() -> FakeDiscord {
        let fake = FakeDiscord {
            url: String::new(),
            inner: Arc::default(),
            changed: Arc::new(Notify::new()),
        };
        let app = Router::new()
            .route("/api/v10/{*path}", any(handle))
            .with_state(fake.clone());
        let base = crate::support::serve(app).await;
        FakeDiscord {
            url: format!("{base}/api/v10"),
            ..fake
        }
    }

    /// The base URL, as `OPSBOT_DISCORD_API_URL` would be.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The next `n` requests whose path contains `path` answer `answer`.
    pub fn script(&self, path: &str, n: usize, answer: Answer) {
        self.lock().rules.push(Rule {
            path: path.to_string(),
            remaining: n,
            answer,
        });
    }

    /// Every successful answer says its bucket is used up for `secs`.
    pub fn exhaust_buckets(&self, secs: f64) {
        self.lock().reset_after = Some(secs);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Waits until `done(calls)` holds; panics after 10 s with what arrived.
    pub async fn wait_for(&self, done: impl Fn(&[Call]) -> bool, what: &str) -> Vec<Call> {
        crate::support::wait_for_calls(
            &self.changed,
            Duration::from_secs(10),
            || self.calls(),
            done,
            &format!("fake Discord: {what}"),
            |c| format!("{} {} {:?} {}", c.method, c.path, c.answer, c.text()),
        )
        .await
    }

    /// Waits for the first call that `is` says is the one.
    pub async fn wait_first(&self, is: impl Fn(&Call) -> bool, what: &str) -> Call {
        let calls = self.wait_for(|c| c.iter().any(&is), what).await;
        calls.into_iter().find(|c| is(c)).expect("found")
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("fake discord lock")
    }

    fn record(&self, method: &Method, path: &str, body: Value, auth: Option<String>) -> Call {
        let mut inner = self.lock();
        let webhook = path.starts_with("/webhooks/");
        let authorized = if webhook {
            path.starts_with(&format!("/webhooks/{APPLICATION_ID}/"))
        } else {
            auth.as_deref() == Some(&format!("Bot {BOT_TOKEN}"))
        };
        let scripted = inner
            .rules
            .iter_mut()
            .find(|r| r.remaining > 0 && path.contains(&r.path))
            .map(|r| {
                r.remaining -= 1;
                r.answer.clone()
            });
        let parts: Vec<&str> = path.split('/').collect();
        // Discord's threads: `/channels/{message}/messages` exists only once
        // a thread was started from that message, and starts only once.
        let thread_answer = match parts.as_slice() {
            ["", "channels", ch, "messages"]
                if inner.posted.contains(*ch) && !inner.threads.contains(*ch) =>
            {
                Some(Answer::Error {
                    status: 404,
                    code: 10003,
                })
            }
            ["", "channels", _, "messages", msg, "threads"] if inner.threads.contains(*msg) => {
                Some(Answer::Error {
                    status: 400,
                    code: 160004,
                })
            }
            _ => None,
        };
        let answer = match (authorized, scripted, thread_answer) {
            (false, _, _) => Answer::Error { status: 401, code: 0 },
            (true, Some(a), _) => a,
            (true, None, Some(a)) => a,
            (true, None, None) => Answer::Ok,
        };
        if answer == Answer::Ok && *method == Method::POST {
            if let ["", "channels", _, "messages", msg, "threads"] = parts.as_slice() {
                inner.threads.insert(msg.to_string());
            }
        }
        let id = (answer == Answer::Ok).then(|| {
            if path.ends_with("/messages/@original") {
                let token = path.split('/').nth(3).unwrap_or_default().to_string();
                let next = inner.seq + 1;
                let id = inner
                    .originals
                    .entry(token)
                    .or_insert_with(|| format!("M{next}"))
                    .clone();
                if id == format!("M{next}") {
                    inner.seq = next;
                }
                id
            } else if *method == Method::POST && path.ends_with("/threads") {
                // A thread started from a message has the message's id.
                parts.get(4).copied().unwrap_or_default().to_string()
            } else if *method == Method::POST {
                inner.seq += 1;
                let id = format!("M{}", inner.seq);
                inner.posted.insert(id.clone());
                id
            } else {
                path.rsplit('/').next().unwrap_or_default().to_string()
            }
        });
        let call = Call {
            method: method.to_string(),
            path: path.to_string(),
            body,
            auth,
            answer,
            id,
            at: std::time::Instant::now(),
        };
        inner.calls.push(call.clone());
        drop(inner);
        self.changed.notify_waiters();
        call
    }
}

async fn handle(
    State(fake): State<FakeDiscord>,
    method: Method,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let path = format!("/{path}");
    let call = fake.record(&method, &path, body.clone(), auth);
    let reset_after = fake.lock().reset_after;
    let mut resp = match call.answer {
        Answer::Ok if method == Method::PUT => Json(body).into_response(),
        Answer::Ok => {
            let channel = path.split('/').nth(2).unwrap_or_default();
            Json(json!({"id": call.id, "channel_id": channel, "content": body.get("content")}))
                .into_response()
        }
        Answer::RateLimited { retry_after, global } => {
            let mut resp = (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, format!("{}", retry_after.ceil() as u64))],
                Json(json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": global})),
            )
                .into_response();
            if global {
                resp.headers_mut()
                    .insert("x-ratelimit-global", "true".parse().expect("header"));
            }
            resp
        }
        Answer::Error { status, code } => (
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
            Json(json!({"code": code, "message": "refused by the fake"})),
        )
            .into_response(),
    };
    if let (Some(secs), true) = (reset_after, call.ok()) {
        let h = resp.headers_mut();
        h.insert("x-ratelimit-remaining", "0".parse().expect("header"));
        h.insert(
            "x-ratelimit-reset-after",
            secs.to_string().parse().expect("header"),
        );
    }
    resp
}
