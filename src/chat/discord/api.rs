//! The Discord REST calls the outbox makes, sent with our reqwest client and
//! serenity's models for the bodies, with every failure classified for the
//! outbox:
//!
//! - **429** → [`SendError::RateLimited`] with Discord's `retry_after` (a
//!   global 429 also holds every other call of this client);
//! - **rate-limit headers**: when a route's bucket is used up
//!   (`X-RateLimit-Remaining: 0`), the next call on that channel or webhook
//!   waits `X-RateLimit-Reset-After` first, so the 429 never happens;
//! - **5xx, timeouts** → transient; **every other 4xx** → permanent or
//!   not-a-member, never retried (Discord bans clients that send 10,000
//!   invalid requests in 10 minutes);
//! - an interaction token older than 15 minutes is never used: the answer is
//!   [`SendError::Expired`] without a request, and the outbox posts to the
//!   channel instead.
//!
//! The global 50 requests/s is the outbox's `Pacing`. Errors carry the
//! status and Discord's error code, never a URL (tokens are in webhook URLs).

use super::render::{Handle, Target};
use crate::clock::SharedClock;
use crate::engine::{ChatApi, SendError};
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The REST base URL when `OPSBOT_DISCORD_API_URL` is unset.
pub const DEFAULT_API_URL: &str = "https://discord.com/api/v10";

/// How long one call may take before it counts as a transient failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Retry-After assumed when a 429 does not say.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Longest wait for a used-up bucket inside a call; longer ones go back to
/// the outbox as a 429 would.
const MAX_BUCKET_WAIT: Duration = Duration::from_secs(10);

/// Discord's JSON error codes that mean "not there / not allowed in there".
const NOT_A_MEMBER: [u64; 3] = [10003, 50001, 50013];
/// "A thread has already been created for this message."
const THREAD_EXISTS: u64 = 160004;
/// Unknown webhook, invalid webhook token: the interaction's token expired.
const EXPIRED: [u64; 2] = [10015, 50027];

/// Setting the client up failed.
#[derive(Debug, thiserror::Error)]
pub enum DiscordApiError {
    #[error("invalid Discord API URL `{0}` (expected http:// or https://)")]
    InvalidUrl(String),
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// A Discord REST client for one application and bot token.
pub struct DiscordApi {
    http: reqwest::Client,
    base_url: String,
    application_id: String,
    token: SecretString,
    clock: SharedClock,
    /// Per route (channel or webhook): not before this instant.
    buckets: Mutex<HashMap<String, Instant>>,
    /// A global 429: nothing before this instant.
    global: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for DiscordApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordApi")
            .field("base_url", &self.base_url)
            .field("application_id", &self.application_id)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    retry_after: Option<f64>,
    #[serde(default)]
    global: bool,
}

/// Who authenticates a call: the bot, or the interaction token in the URL.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    Bot,
    Webhook,
}

impl DiscordApi {
    /// A client for `base_url` (e.g. [`DEFAULT_API_URL`], or a fake Discord in
    /// tests; a trailing slash is optional).
    pub fn new(
        base_url: &str,
        application_id: &str,
        token: SecretString,
        clock: SharedClock,
    ) -> Result<DiscordApi, DiscordApiError> {
        let trimmed = base_url.trim_end_matches('/');
        let parsed =
            reqwest::Url::parse(trimmed).map_err(|_| DiscordApiError::InvalidUrl(base_url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(DiscordApiError::InvalidUrl(base_url.to_string()));
        }
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_TIMEOUT)
            .user_agent(concat!("DiscordBot (opsbot, ", env!("CARGO_PKG_VERSION"), ")"))
            .build()
            .map_err(|e| DiscordApiError::Client(e.to_string()))?;
        Ok(DiscordApi {
            http,
            base_url: trimmed.to_string(),
            application_id: application_id.to_string(),
            token,
            clock,
            buckets: Mutex::default(),
            global: Mutex::default(),
        })
    }

    /// The base URL calls go to (without a trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `POST /channels/{channel}/messages` (a thread is a channel); the new id.
    pub async fn create_message(&self, channel: &str, body: &Value) -> Result<String, SendError> {
        let path = format!("/channels/{channel}/messages");
        let created: Created = self
            .call(Method::POST, &path, &channel_bucket(channel), Auth::Bot, body)
            .await?;
        Ok(created.id)
    }

    /// `POST /channels/{channel}/messages/{message}/threads`: starts the
    /// thread of a message (its id is the message's). A thread that exists
    /// already is not an error.
    pub async fn start_thread(&self, channel: &str, message: &str, name: &str) -> Result<(), SendError> {
        let path = format!("/channels/{channel}/messages/{message}/threads");
        let body = serde_json::json!({ "name": name, "auto_archive_duration": 10080 });
        match self
            .call::<Value>(Method::POST, &path, &channel_bucket(channel), Auth::Bot, &body)
            .await
        {
            Ok(_) => Ok(()),
            Err(SendError::Permanent(d)) if d.contains(&format!("code {THREAD_EXISTS}")) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `PATCH /channels/{channel}/messages/{id}`.
    pub async fn edit_message(&self, channel: &str, id: &str, body: &Value) -> Result<(), SendError> {
        let path = format!("/channels/{channel}/messages/{id}");
        let _: Value = self
            .call(Method::PATCH, &path, &channel_bucket(channel), Auth::Bot, body)
            .await?;
        Ok(())
    }

    /// Answers through an interaction's webhook: edits the deferred response
    /// or sends a followup. The message id, to edit it later.
    pub async fn interaction(&self, handle: &Handle, body: &Value) -> Result<String, SendError> {
        if self.clock.now_ms() >= handle.expires_at {
            return Err(SendError::Expired(
                "interaction token older than 15 minutes".into(),
            ));
        }
        let hook = format!("/webhooks/{}/{}", self.application_id, handle.token);
        let (method, path) = match handle.to {
            Target::Original => (Method::PATCH, format!("{hook}/messages/@original")),
            Target::Followup => (Method::POST, hook),
        };
        let bucket = format!("webhook:{}", short_hash(&handle.token));
        let created: Created = self.call(method, &path, &bucket, Auth::Webhook, body).await?;
        Ok(created.id)
    }

    /// Bulk-overwrites the application's commands (in `guild`, or global):
    /// `PUT /applications/{id}/commands`. Answers how many Discord now has.
    pub async fn overwrite_commands(
        &self,
        guild: Option<&str>,
        commands: &[Value],
    ) -> Result<usize, SendError> {
        let app = &self.application_id;
        let path = match guild {
            Some(g) => format!("/applications/{app}/guilds/{g}/commands"),
            None => format!("/applications/{app}/commands"),
        };
        let body = Value::Array(commands.to_vec());
        let registered: Vec<Value> = self
            .call(Method::PUT, &path, "commands", Auth::Bot, &body)
            .await?;
        Ok(registered.len())
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        bucket: &str,
        auth: Auth,
        body: &Value,
    ) -> Result<T, SendError> {
        self.wait_for(bucket).await?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base_url))
            .json(body);
        if auth == Auth::Bot {
            req = req.header(
                reqwest::header::AUTHORIZATION,
                format!("Bot {}", self.token.expose_secret()),
            );
        }
        let resp = req.send().await.map_err(|e| {
            let what = if e.is_timeout() { "timed out" } else { "failed" };
            SendError::Transient(format!("Discord call {what}: {}", e.without_url()))
        })?;
        self.note_bucket(bucket, resp.headers());
        let status = resp.status();
        if status.is_success() {
            return resp.json::<T>().await.map_err(|e| {
                SendError::Transient(format!("unreadable Discord answer: {}", e.without_url()))
            });
        }
        let header_retry = header_secs(resp.headers(), "retry-after");
        let global_header = resp.headers().contains_key("x-ratelimit-global");
        let err: ErrorBody = resp.json().await.unwrap_or_default();
        let e = classify(status, &err, header_retry);
        if let SendError::RateLimited { retry_after } = &e {
            if err.global || global_header {
                *self.global.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now() + *retry_after);
            }
        }
        Err(e)
    }

    /// Waits for `bucket` (and a global hold) to open; a long wait goes back
    /// to the outbox as a rate limit.
    async fn wait_for(&self, bucket: &str) -> Result<(), SendError> {
        let global = *self.global.lock().unwrap_or_else(|p| p.into_inner());
        let route = self
            .buckets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(bucket)
            .copied();
        let Some(until) = global.into_iter().chain(route).max() else {
            return Ok(());
        };
        let now = Instant::now();
        if until <= now {
            return Ok(());
        }
        if until - now > MAX_BUCKET_WAIT {
            return Err(SendError::RateLimited {
                retry_after: until - now,
            });
        }
        tokio::time::sleep_until(until).await;
        Ok(())
    }

    /// Remembers a used-up bucket until Discord says it resets.
    fn note_bucket(&self, bucket: &str, headers: &reqwest::header::HeaderMap) {
        let remaining = headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        match (remaining, header_secs(headers, "x-ratelimit-reset-after")) {
            (Some(0), Some(after)) => {
                buckets.insert(bucket.to_string(), Instant::now() + after);
            }
            _ => {
                buckets.remove(bucket);
            }
        }
        if buckets.len() > 10_000 {
            let now = Instant::now();
            buckets.retain(|_, at| *at > now);
        }
    }
}

fn channel_bucket(channel: &str) -> String {
    format!("channel:{channel}")
}

/// A short stand-in for a token in bucket names (never logged as is).
fn short_hash(token: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(token.as_bytes())[..8])
}

fn header_secs(headers: &reqwest::header::HeaderMap, name: &str) -> Option<Duration> {
    let secs: f64 = headers.get(name)?.to_str().ok()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

/// Sorts a failed call into the outbox's retry classes.
fn classify(status: StatusCode, err: &ErrorBody, header_retry: Option<Duration>) -> SendError {
    let detail = if err.code > 0 {
        format!("HTTP {} (code {}: {})", status.as_u16(), err.code, err.message)
    } else {
        format!("HTTP {}", status.as_u16())
    };
    match status.as_u16() {
        429 => SendError::RateLimited {
            retry_after: err
                .retry_after
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64)
                .or(header_retry)
                .unwrap_or(DEFAULT_RETRY_AFTER),
        },
        408 | 500..=599 => SendError::Transient(detail),
        _ if EXPIRED.contains(&err.code) => SendError::Expired(detail),
        _ if NOT_A_MEMBER.contains(&err.code) => SendError::NotMember(detail),
        _ => SendError::Permanent(detail),
    }
}

impl ChatApi for DiscordApi {
    fn post<'a>(
        &'a self,
        channel: &'a str,
        thread: Option<&'a str>,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(async move {
            let Some(thread) = thread else {
                return self.create_message(channel, body).await;
            };
            let mut body = body.clone();
            let name = body
                .as_object_mut()
                .and_then(|o| o.remove(super::render::THREAD_NAME))
                .and_then(|v| v.as_str().map(String::from));
            match (self.create_message(thread, &body).await, name) {
                // A thread from a message has the message's id; it does not
                // exist until someone starts it.
                (Err(SendError::NotMember(_)), Some(name)) => {
                    self.start_thread(channel, thread, &name).await?;
                    self.create_message(thread, &body).await
                }
                (other, _) => other,
            }
        })
    }

    fn update<'a>(
        &'a self,
        channel: &'a str,
        id: &'a str,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.edit_message(channel, id, body))
    }

    fn ephemeral<'a>(
        &'a self,
        _channel: &'a str,
        _user: &'a str,
        _thread: Option<&'a str>,
        _body: &'a Value,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        // Only an interaction can show a message to one user; the renderer
        // sends those through `answer`.
        Box::pin(async {
            Err(SendError::Permanent(
                "Discord has no ephemeral messages outside an interaction".into(),
            ))
        })
    }

    fn respond<'a>(&'a self, handle: &'a str, body: &'a Value) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(async move { self.answer(handle, body).await.map(|_| ()) })
    }

    fn answer<'a>(
        &'a self,
        handle: &'a str,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move {
            let handle: Handle = serde_json::from_str(handle)
                .map_err(|e| SendError::Permanent(format!("unreadable interaction handle: {e}")))?;
            self.interaction(&handle, body).await.map(Some)
        })
    }

    fn fit(&self, body: Value) -> Value {
        super::limits::fit(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(code: u64) -> ErrorBody {
        ErrorBody {
            code,
            message: "m".into(),
            ..ErrorBody::default()
        }
    }

    #[test]
    fn errors_are_classified_without_retrying_4xx() {
        let s = |n| StatusCode::from_u16(n).unwrap();
        assert!(matches!(classify(s(503), &err(0), None), SendError::Transient(_)));
        assert!(matches!(
            classify(s(400), &err(50035), None),
            SendError::Permanent(_)
        ));
        assert!(matches!(classify(s(401), &err(0), None), SendError::Permanent(_)));
        assert!(matches!(
            classify(s(403), &err(50001), None),
            SendError::NotMember(_)
        ));
        assert!(matches!(
            classify(s(404), &err(10003), None),
            SendError::NotMember(_)
        ));
        assert!(matches!(
            classify(s(404), &err(10015), None),
            SendError::Expired(_)
        ));
        let limited = ErrorBody {
            retry_after: Some(1.5),
            ..err(0)
        };
        assert_eq!(
            classify(s(429), &limited, Some(Duration::from_secs(9))),
            SendError::RateLimited {
                retry_after: Duration::from_millis(1_500)
            }
        );
        assert_eq!(
            classify(s(429), &err(0), Some(Duration::from_secs(2))),
            SendError::RateLimited {
                retry_after: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn urls_are_checked_and_the_token_stays_out_of_debug() {
        let clock: SharedClock = std::sync::Arc::new(crate::clock::SystemClock);
        let token = SecretString::from("bot-secret-1");
        assert!(DiscordApi::new("ftp://x", "1", token.clone(), clock.clone()).is_err());
        let api = DiscordApi::new(DEFAULT_API_URL, "1", token, clock).unwrap();
        assert_eq!(api.base_url(), "https://discord.com/api/v10");
        assert!(!format!("{api:?}").contains("bot-secret"));
    }
}
