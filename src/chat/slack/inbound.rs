//! Slack's HTTP endpoints. Each request is verified, then either answered at
//! once (help, usage errors, refusals: nothing stored) or stored through the
//! group-committing writer and acknowledged. Everything else happens later,
//! off the request path, in `engine::worker`.

use super::render::{Origin, OriginKind, PLATFORM};
use super::verify;
use crate::engine::{self, ActorRateLimit, AuditSink, InboxWriter, Invocation, Outcome, Pipeline, Reply};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use slack_morphism::prelude::{SlackEventCallbackBody, SlackInteractionEvent, SlackPushEvent};
use std::borrow::Cow;
use std::sync::Arc;
use tokio::time::Instant;

/// Shared state of the Slack endpoints.
#[derive(Clone)]
pub struct SlackInbound {
    pub signing_secret: SecretString,
    pub writer: InboxWriter,
    pub pipeline: Pipeline,
    /// Where refusals answered in the ack are audited, off the request path.
    pub audit: AuditSink,
    /// Per-identity command rate limit, checked before anything is stored.
    pub rate: ActorRateLimit,
    /// When set, requests naming another workspace are refused (`SLACK_TEAM_ID`).
    pub team_id: Option<String>,
    /// When set, requests naming another app are refused (`SLACK_APP_ID`).
    pub app_id: Option<String>,
}

/// `/slack/commands`, `/slack/interactions`, `/slack/events`.
pub fn routes(state: SlackInbound) -> Router {
    Router::new()
        .route("/slack/commands", post(commands))
        .route("/slack/interactions", post(interactions))
        .route("/slack/events", post(events))
        .with_state(Arc::new(state))
}

impl SlackInbound {
    fn verified(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let now = self.pipeline.clock.now_ms() / 1000;
        let secret = self.signing_secret.expose_secret().as_bytes();
        let (ts, sig) = ("x-slack-request-timestamp", "x-slack-signature");
        crate::chat::signature::verified(headers, ts, sig, PLATFORM, |ts, sig| {
            verify::verify(secret, ts, sig, body, now)
        })
    }

    /// Stores one request; the answer for Slack once it is durable (see
    /// [`crate::chat::ack::store`]: within the ack deadline or not at all).
    async fn store(
        &self,
        started: Instant,
        inv: Invocation,
        origin: &Origin,
        dedupe_key: Option<String>,
    ) -> Response {
        let origin = match serde_json::to_string(origin) {
            Ok(o) => o,
            Err(e) => {
                // Never store a request whose answer could not find its way back.
                tracing::error!(error = %e, "could not serialize a Slack origin");
                return StatusCode::INTERNAL_SERVER_ERROR.into_response();
            }
        };
        // Slack retries events on errors; commands show the user a failure.
        crate::chat::ack::store(&self.writer, started, PLATFORM, inv, origin, dedupe_key)
            .await
            .into_response()
    }

    /// Whether a verified request names the configured workspace and app
    /// (each checked only when configured; a missing id does not match).
    fn ours(&self, team: Option<&str>, app: Option<&str>) -> bool {
        let matches =
            |want: &Option<String>, got: Option<&str>| want.as_deref().is_none_or(|w| got == Some(w));
        let ok = matches(&self.team_id, team) && matches(&self.app_id, app);
        if !ok {
            tracing::warn!(
                team,
                app,
                "verified Slack request for another workspace or app refused"
            );
        }
        ok
    }

    /// `Err(refusal)` when `inv`'s actor is over the rate limit: nothing is
    /// stored (or audited: a flood changes nothing).
    fn over_limit(&self, inv: &Invocation) -> Result<(), String> {
        self.rate.check(&inv.actor).map_err(|wait| {
            self.pipeline.metrics.rate_limited();
            tracing::debug!(actor = %inv.actor, "rate limited");
            self.rate.refusal(wait)
        })
    }

    fn invocation(&self, user: &str, channel: &str, thread: Option<String>, text: String) -> Invocation {
        Invocation {
            actor: format!("slack:{user}"),
            channel: Some(channel.to_string()),
            thread,
            text,
            received_at: self.pipeline.clock.now_ms(),
            // Answers go through the stored item's origin; this one only
            // names the platform for the ack path.
            origin: engine::Origin::new(PLATFORM, String::new()),
            inbox: None,
        }
    }
}

fn unauthorized() -> Response {
    StatusCode::UNAUTHORIZED.into_response()
}

fn ephemeral(reply: &Reply) -> Response {
    let text = super::escape::outside_code(&reply.text);
    Json(json!({ "response_type": "ephemeral", "text": text })).into_response()
}

/// The fields of a slash command opsbot reads, borrowed from the body where
/// no percent-decoding was needed (Slack sends more; they are ignored).
#[derive(serde::Deserialize)]
struct SlashForm<'a> {
    #[serde(borrow)]
    team_id: Cow<'a, str>,
    #[serde(borrow)]
    user_id: Cow<'a, str>,
    #[serde(borrow)]
    channel_id: Cow<'a, str>,
    #[serde(borrow)]
    command: Cow<'a, str>,
    #[serde(borrow, default)]
    text: Cow<'a, str>,
    #[serde(borrow)]
    response_url: Cow<'a, str>,
    #[serde(borrow)]
    trigger_id: Cow<'a, str>,
    #[serde(borrow, default)]
    api_app_id: Option<Cow<'a, str>>,
}

/// The ack of a stored command: `in_channel` with no text, so Slack shows
/// the command itself to the channel.
fn in_channel() -> Response {
    static BODY: &str = r#"{"response_type":"in_channel"}"#;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], BODY).into_response()
}

async fn commands(State(s): State<Arc<SlackInbound>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    if !s.verified(&headers, &body) {
        return unauthorized();
    }
    let Ok(cmd) = serde_urlencoded::from_bytes::<SlashForm>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    // Where Slack wants a delayed answer: an absolute http(s) URL.
    if !cmd.response_url.starts_with("https://") && !cmd.response_url.starts_with("http://") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    if !s.ours(Some(&cmd.team_id), cmd.api_app_id.as_deref()) {
        return StatusCode::FORBIDDEN.into_response();
    }
    // Slack sends `&`, `<`, `>` as entities; parse what the user typed.
    let typed = super::escape::unescape(&cmd.text);
    let text = format!("{} {typed}", cmd.command);
    let inv = s.invocation(&cmd.user_id, &cmd.channel_id, None, text);
    if let Some(quick) = s.pipeline.quick(&inv) {
        if let Some(entry) = quick.denied {
            s.audit.record(entry);
        }
        return ephemeral(&quick.reply);
    }
    if let Err(refusal) = s.over_limit(&inv) {
        return ephemeral(&Reply::new(Outcome::NotPermitted, refusal));
    }
    let origin = Origin {
        user: cmd.user_id.into_owned(),
        channel: cmd.channel_id.into_owned(),
        thread_ts: None,
        kind: OriginKind::Command,
        response_url: Some(cmd.response_url.into_owned()),
    };
    // A replay of the same signed request (same trigger_id) is stored once.
    let key = format!("slack-cmd:{}", cmd.trigger_id);
    let stored = s.store(started, inv, &origin, Some(key)).await;
    if stored.status() != StatusCode::OK {
        let busy = Reply::new(
            Outcome::Failed,
            "opsbot could not record this command in time; nothing was run. Please retry.",
        );
        return ephemeral(&busy);
    }
    in_channel()
}

async fn interactions(State(s): State<Arc<SlackInbound>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    if !s.verified(&headers, &body) {
        return unauthorized();
    }
    #[derive(serde::Deserialize)]
    struct Form {
        payload: String,
    }
    let event = serde_urlencoded::from_bytes::<Form>(&body)
        .ok()
        .and_then(|f| serde_json::from_str::<SlackInteractionEvent>(&f.payload).ok());
    let Some(SlackInteractionEvent::BlockActions(ev)) = event else {
        return StatusCode::OK.into_response();
    };
    if !s.ours(Some(&ev.team.id.0), Some(&ev.api_app_id.0)) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let (Some(user), Some(action)) = (ev.user, ev.actions.and_then(|a| a.into_iter().next())) else {
        return StatusCode::OK.into_response();
    };
    let verb = match action.action_id.0.as_str() {
        "approve" => "/approve",
        "reject" => "/reject",
        "incident_ack" => "/incident ack",
        "incident_resolve" => "/incident resolve",
        "guided_done" => "/done",
        "guided_abort" => "/abort",
        _ => return StatusCode::OK.into_response(),
    };
    let channel = ev.channel.map(|c| c.id.0).unwrap_or_default();
    let thread_ts = ev
        .message
        .as_ref()
        .and_then(|m| m.origin.thread_ts.as_ref())
        .map(|t| t.0.clone());
    let text = format!("{verb} {}", action.value.unwrap_or_default());
    let inv = s.invocation(&user.id.0, &channel, thread_ts.clone(), text);
    let origin = Origin {
        user: user.id.0.clone(),
        channel,
        thread_ts,
        kind: OriginKind::Action,
        response_url: ev.response_url.map(|u| u.0.to_string()),
    };
    // A retried delivery of the same click carries the same action_ts.
    let key = action
        .action_ts
        .map(|ts| format!("slack-action:{}:{}", user.id.0, ts.0));
    if s.over_limit(&inv).is_err() {
        // A click's ack carries no message: dropped (and counted).
        return StatusCode::OK.into_response();
    }
    s.store(started, inv, &origin, key).await
}

async fn events(State(s): State<Arc<SlackInbound>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    if !s.verified(&headers, &body) {
        return unauthorized();
    }
    let Ok(event) = serde_json::from_slice::<SlackPushEvent>(&body) else {
        // Signed by Slack, so not an attack: a 4xx would only make Slack
        // retry it and eventually disable the subscription.
        tracing::warn!(
            bytes = body.len(),
            "a verified Slack event could not be parsed; ignored"
        );
        return StatusCode::OK.into_response();
    };
    match event {
        SlackPushEvent::UrlVerification(v) => Json(json!({ "challenge": v.challenge })).into_response(),
        // Another workspace's or app's event: 200 (no retries), dropped.
        SlackPushEvent::EventCallback(cb) if !s.ours(Some(&cb.team_id.0), Some(&cb.api_app_id.0)) => {
            StatusCode::OK.into_response()
        }
        SlackPushEvent::EventCallback(cb) => {
            let SlackEventCallbackBody::AppMention(m) = cb.event else {
                return StatusCode::OK.into_response();
            };
            let text = strip_mentions(m.content.text.as_deref().unwrap_or_default());
            let thread = m.origin.thread_ts.clone().unwrap_or(m.origin.ts.clone()).0;
            let inv = s.invocation(&m.user.0, &m.channel.0, Some(thread.clone()), text);
            let origin = Origin {
                user: m.user.0.clone(),
                channel: m.channel.0.clone(),
                thread_ts: Some(thread),
                kind: OriginKind::Mention,
                response_url: None,
            };
            if s.over_limit(&inv).is_err() {
                // 200 so Slack does not retry it; dropped (and counted).
                return StatusCode::OK.into_response();
            }
            // Slack retries (X-Slack-Retry-Num) repeat the event_id: stored once.
            let key = format!("slack-event:{}", cb.event_id.0);
            s.store(started, inv, &origin, Some(key)).await
        }
        _ => StatusCode::OK.into_response(),
    }
}

/// `<@U0BOT> queue stats` → `queue stats`.
fn strip_mentions(text: &str) -> String {
    static MENTION: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"<@[A-Z0-9]+(\|[^>]*)?>").expect("static regex"));
    MENTION
        .replace_all(text, " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn mentions_are_stripped() {
        assert_eq!(super::strip_mentions("<@U0BOT> queue  stats"), "queue stats");
        assert_eq!(
            super::strip_mentions("<@U0BOT|opsbot> /ops health"),
            "/ops health"
        );
    }
}
