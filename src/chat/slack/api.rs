//! The Slack Web API calls the outbox makes (`chat.postMessage`,
//! `chat.update`, `chat.postEphemeral`), through slack-morphism's hyper client,
//! with every failure classified as rate-limited, transient or permanent.
//!
//! Requests are slack-morphism's typed request structs, built from the stored
//! body JSON. Responses are decoded into minimal structs of our own (only the
//! `ts` we need): a post that Slack accepted must never look like a failure
//! (and be sent again) because an echoed message did not fit a richer model.

use crate::engine::{ChatApi, SendError};
use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use slack_morphism::errors::SlackClientError;
use slack_morphism::prelude::*;
use std::time::Duration;

/// The Web API base URL when `OPSBOT_SLACK_API_URL` is unset.
pub const DEFAULT_API_URL: &str = "https://slack.com/api/";

/// How long one Web API call may take before it counts as a transient failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Retry-After assumed when a 429 does not carry one.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Slack's answers when the bot may not post in a channel.
const NOT_A_MEMBER: [&str; 2] = ["not_in_channel", "channel_not_found"];

/// `ok: false` error codes that Slack documents as temporary.
const TRANSIENT_CODES: &[&str] = &[
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
];

/// Setting the client up failed.
#[derive(Debug, thiserror::Error)]
pub enum SlackApiError {
    #[error("invalid Slack API URL `{0}` (expected http:// or https://)")]
    InvalidUrl(String),
}

type Connector = SlackClientHyperHttpsConnector;

/// A Slack Web API client for one bot token. Cheap to share behind an `Arc`.
pub struct SlackApi {
    client: SlackClient<Connector>,
    /// For response_url posts, which are not Web API methods.
    http: reqwest::Client,
    token: SecretString,
    base_url: String,
    timeout: Duration,
}

impl std::fmt::Debug for SlackApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackApi")
            .field("base_url", &self.base_url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Posted {
    ts: String,
}

#[derive(Deserialize)]
struct Empty {}

impl SlackApi {
    /// A client for `base_url` (e.g. [`DEFAULT_API_URL`], or a fake Slack in
    /// tests; a trailing slash is optional) authenticating with `token`.
    pub fn new(base_url: &str, token: SecretString) -> Result<SlackApi, SlackApiError> {
        let trimmed = base_url.trim_end_matches('/');
        let parsed =
            reqwest::Url::parse(trimmed).map_err(|_| SlackApiError::InvalidUrl(base_url.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(SlackApiError::InvalidUrl(base_url.to_string()));
        }
        // `SlackClientHyperConnector::new()` is https-only; a fake Slack in
        // tests speaks plain http, so build the same connector allowing both.
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_all_versions()
            .build();
        let connector = SlackClientHyperConnector::from(https).with_slack_api_url(trimmed);
        Ok(SlackApi {
            client: SlackClient::new(connector),
            http: reqwest::Client::new(),
            token,
            base_url: trimmed.to_string(),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// The same client with a different per-call timeout.
    pub fn with_timeout(self, timeout: Duration) -> SlackApi {
        SlackApi { timeout, ..self }
    }

    /// The base URL calls go to (without a trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `chat.postMessage`; answers the new message's `ts`.
    pub async fn post_message(
        &self,
        channel: &str,
        thread_ts: Option<&str>,
        body: &Value,
    ) -> Result<String, SendError> {
        let req = SlackApiChatPostMessageRequest::new(channel.into(), content(body)?)
            .opt_thread_ts(thread_ts.map(SlackTs::from));
        let posted: Posted = self.call("chat.postMessage", &req).await?;
        Ok(posted.ts)
    }

    /// `chat.update` of the message `ts` in `channel`.
    pub async fn update(&self, channel: &str, ts: &str, body: &Value) -> Result<(), SendError> {
        let req = SlackApiChatUpdateRequest::new(channel.into(), content(body)?, ts.into());
        let _: Empty = self.call("chat.update", &req).await?;
        Ok(())
    }

    /// `chat.postEphemeral` to `user` in `channel`.
    pub async fn post_ephemeral(
        &self,
        channel: &str,
        user: &str,
        thread_ts: Option<&str>,
        body: &Value,
    ) -> Result<(), SendError> {
        let req = SlackApiChatPostEphemeralRequest::new(channel.into(), user.into(), content(body)?)
            .opt_thread_ts(thread_ts.map(SlackTs::from));
        let _: Empty = self.call("chat.postEphemeral", &req).await?;
        Ok(())
    }

    /// Posts `body` to the channel through a slash command's `response_url`
    /// (no bot membership needed). The URL itself is never put in an error.
    pub async fn respond(&self, response_url: &str, body: &Value) -> Result<(), SendError> {
        let mut payload = body.clone();
        if let Some(o) = payload.as_object_mut() {
            o.insert("response_type".into(), Value::from("in_channel"));
        }
        let sent = self.http.post(response_url).json(&payload).send();
        match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => Err(SendError::Transient("response_url timed out".into())),
            Ok(Err(e)) => Err(SendError::Transient(format!("response_url: {}", e.without_url()))),
            Ok(Ok(r)) if r.status().is_success() => Ok(()),
            Ok(Ok(r)) if r.status().is_server_error() => {
                Err(SendError::Transient(format!("response_url: HTTP {}", r.status())))
            }
            Ok(Ok(r)) => Err(SendError::Permanent(format!("response_url: HTTP {}", r.status()))),
        }
    }

    async fn call<RQ, RS>(&self, method: &str, req: &RQ) -> Result<RS, SendError>
    where
        RQ: Serialize + Send + Sync,
        RS: DeserializeOwned + Send,
    {
        let token = SlackApiToken::new(SlackApiTokenValue::new(self.token.expose_secret().to_string()));
        let session = self.client.open_session(&token);
        let call = session.http_session_api.http_post(method, req, None);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(rs)) => Ok(rs),
            Ok(Err(e)) => Err(classify(e)),
            Err(_) => Err(SendError::Transient(format!(
                "{method} timed out after {:?}",
                self.timeout
            ))),
        }
    }
}

impl ChatApi for SlackApi {
    fn post<'a>(
        &'a self,
        channel: &'a str,
        thread: Option<&'a str>,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<String, SendError>> {
        Box::pin(self.post_message(channel, thread, body))
    }

    fn update<'a>(
        &'a self,
        channel: &'a str,
        id: &'a str,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(SlackApi::update(self, channel, id, body))
    }

    fn ephemeral<'a>(
        &'a self,
        channel: &'a str,
        user: &'a str,
        thread: Option<&'a str>,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(self.post_ephemeral(channel, user, thread, body))
    }

    fn respond<'a>(&'a self, handle: &'a str, body: &'a Value) -> BoxFuture<'a, Result<(), SendError>> {
        Box::pin(SlackApi::respond(self, handle, body))
    }

    fn fit(&self, body: Value) -> Value {
        super::limits::fit(body)
    }
}

/// The message content (text, blocks, …) of a stored body.
fn content(body: &Value) -> Result<SlackMessageContent, SendError> {
    serde_json::from_value(body.clone())
        .map_err(|e| SendError::Permanent(format!("invalid message body: {e}")))
}

/// Sorts a slack-morphism error into retry classes. Messages carry the
/// status or Slack error code, never the request (and so never the token).
fn classify(e: SlackClientError) -> SendError {
    match e {
        SlackClientError::RateLimitError(r) => SendError::RateLimited {
            retry_after: r.retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
        },
        SlackClientError::ApiError(a) if TRANSIENT_CODES.contains(&a.code.as_str()) => {
            SendError::Transient(a.code)
        }
        SlackClientError::ApiError(a) if NOT_A_MEMBER.contains(&a.code.as_str()) => {
            SendError::NotMember(a.code)
        }
        SlackClientError::ApiError(a) => SendError::Permanent(a.code),
        SlackClientError::HttpError(h) => {
            let status = h.status_code;
            if status.is_server_error() || status.as_u16() == 408 {
                SendError::Transient(format!("HTTP {status}"))
            } else {
                SendError::Permanent(format!("HTTP {status}"))
            }
        }
        SlackClientError::ProtocolError(p) => {
            SendError::Transient(format!("unreadable response: {}", p.json_error))
        }
        other => SendError::Transient(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use slack_morphism::errors::{SlackClientApiError, SlackClientHttpError, SlackRateLimitError};

    #[test]
    fn urls_are_checked_and_trimmed() {
        let token = SecretString::from("xoxb-1");
        assert!(SlackApi::new("ftp://x", token.clone()).is_err());
        assert!(SlackApi::new("not a url", token.clone()).is_err());
        let api = SlackApi::new(DEFAULT_API_URL, token).unwrap();
        assert_eq!(api.base_url(), "https://slack.com/api");
        assert!(!format!("{api:?}").contains("xoxb"));
    }

    #[test]
    fn bodies_become_slack_content() {
        let c = content(&serde_json::json!({
            "text": "hi",
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]
        }))
        .unwrap();
        assert_eq!(c.text.as_deref(), Some("hi"));
        assert_eq!(c.blocks.map(|b| b.len()), Some(1));
        assert!(matches!(
            content(&serde_json::json!({"text": 5})),
            Err(SendError::Permanent(_))
        ));
    }

    #[test]
    fn errors_are_classified() {
        let api = |code: &str| SlackClientError::ApiError(SlackClientApiError::new(code.into()));
        assert_eq!(
            classify(api("channel_not_found")),
            SendError::NotMember("channel_not_found".into())
        );
        assert_eq!(
            classify(api("invalid_auth")),
            SendError::Permanent("invalid_auth".into())
        );
        assert!(matches!(classify(api("internal_error")), SendError::Transient(_)));
        let http = |s: u16| {
            SlackClientError::HttpError(SlackClientHttpError::new(
                axum::http::StatusCode::from_u16(s).unwrap(),
            ))
        };
        assert!(matches!(classify(http(503)), SendError::Transient(_)));
        assert!(matches!(classify(http(404)), SendError::Permanent(_)));
        let limited = SlackClientError::RateLimitError(
            SlackRateLimitError::new().with_retry_after(Duration::from_secs(3)),
        );
        assert_eq!(
            classify(limited),
            SendError::RateLimited {
                retry_after: Duration::from_secs(3)
            }
        );
    }
}
