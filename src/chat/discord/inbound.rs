//! `POST /discord/interactions`. Each request is verified (Ed25519 and the
//! timestamp window), then answered at once (PING, help, usage errors,
//! refusals: nothing stored) or stored through the group-committing writer
//! and acknowledged with a deferred response; the answer comes later, from
//! the worker, through the outbox (see `render`).

use super::register;
use super::render::{escape_outside_code, Origin, OriginKind, EPHEMERAL, PLATFORM, TOKEN_TTL_MS};
use super::verify;
use crate::engine::{self, ActorRateLimit, AuditSink, InboxWriter, Invocation, Pipeline};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use serenity::all::{CommandDataOption, InteractionType};
use serenity::interactions_endpoint::Verifier;
use tokio::time::Instant;

/// Shared state of the Discord endpoint.
#[derive(Clone)]
pub struct DiscordInbound {
    pub verifier: Verifier,
    pub writer: InboxWriter,
    pub pipeline: Pipeline,
    /// Where refusals answered in the ack are audited, off the request path.
    pub audit: AuditSink,
    /// Per-identity command rate limit, checked before anything is stored.
    pub rate: ActorRateLimit,
}

/// `/discord/interactions`.
pub fn routes(state: DiscordInbound) -> Router {
    Router::new()
        .route("/discord/interactions", post(interactions))
        .with_state(std::sync::Arc::new(state))
}

/// The parts of an interaction opsbot reads. Our own minimal model: a
/// request Discord signed must not be refused because a field we never use
/// changed shape. Options are serenity's model.
#[derive(Deserialize)]
struct Incoming {
    id: String,
    #[serde(rename = "type")]
    kind: InteractionType,
    #[serde(default)]
    token: String,
    channel_id: Option<String>,
    /// The partial channel Discord sends beside `channel_id` (API v10).
    channel: Option<Channel>,
    member: Option<Member>,
    user: Option<User>,
    data: Option<Data>,
}

#[derive(Deserialize)]
struct Channel {
    #[serde(rename = "type")]
    kind: u8,
}

/// Channel types that are threads (announcement, public, private thread).
const THREAD_TYPES: [u8; 3] = [10, 11, 12];

/// The thread an interaction came from: on Discord a thread is a channel,
/// and one started from a card has the card message's id. Where the partial
/// channel is missing the type is unknown, so the channel may be a thread.
fn thread_of(channel_id: &str, channel: Option<&Channel>) -> Option<String> {
    match channel {
        Some(c) if !THREAD_TYPES.contains(&c.kind) => None,
        _ => Some(channel_id.to_string()),
    }
}

#[derive(Deserialize)]
struct Member {
    user: User,
}

#[derive(Deserialize)]
struct User {
    id: String,
}

#[derive(Deserialize)]
struct Data {
    name: Option<String>,
    #[serde(default)]
    options: Vec<CommandDataOption>,
    custom_id: Option<String>,
}

/// Interaction response types.
const PONG: u8 = 1;
const MESSAGE: u8 = 4;
const DEFERRED_MESSAGE: u8 = 5;
const DEFERRED_UPDATE: u8 = 6;

/// Built-ins answer privately, as Slack answers them.
const PRIVATE: [&str; 6] = ["approve", "reject", "cancel", "approvals", "done", "abort"];

impl DiscordInbound {
    fn verified(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let now = self.pipeline.clock.now_ms() / 1000;
        let (ts, sig) = ("x-signature-timestamp", "x-signature-ed25519");
        crate::chat::signature::verified(headers, ts, sig, PLATFORM, |ts, sig| {
            verify::verify(&self.verifier, ts, sig, body, now)
        })
    }

    /// Stores one request (see [`crate::chat::ack::store`]) and answers with
    /// `ack` once it is durable.
    async fn store(
        &self,
        started: Instant,
        inv: Invocation,
        origin: &Origin,
        id: &str,
        ack: Value,
    ) -> Response {
        let Ok(data) = serde_json::to_string(origin) else {
            tracing::error!("could not serialize a Discord origin");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        // A replay of the same signed interaction is stored once.
        let key = Some(format!("discord-interaction:{id}"));
        match crate::chat::ack::store(&self.writer, started, PLATFORM, inv, data, key).await {
            StatusCode::OK => Json(ack).into_response(),
            _ => message(
                "opsbot could not record this in time; nothing was run. Please retry.",
                true,
            ),
        }
    }
}

fn message(text: &str, private: bool) -> Response {
    let mut data = json!({ "content": escape_outside_code(text), "allowed_mentions": { "parse": [] } });
    if private {
        data["flags"] = json!(EPHEMERAL);
    }
    Json(json!({ "type": MESSAGE, "data": data })).into_response()
}

async fn interactions(
    State(s): State<std::sync::Arc<DiscordInbound>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    if !s.verified(&headers, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let Ok(ev) = serde_json::from_slice::<Incoming>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let user = ev.member.map(|m| m.user).or(ev.user).map(|u| u.id);
    let (Some(user), Some(channel), Some(data)) = (user, ev.channel_id.clone(), ev.data) else {
        return match ev.kind {
            InteractionType::Ping => Json(json!({ "type": PONG })).into_response(),
            _ => StatusCode::BAD_REQUEST.into_response(),
        };
    };
    let thread = thread_of(&channel, ev.channel.as_ref());
    let now = s.pipeline.clock.now_ms();
    let mut origin = Origin {
        user: user.clone(),
        channel: channel.clone(),
        kind: OriginKind::Command,
        token: ev.token,
        expires_at: now + TOKEN_TTL_MS,
        private: false,
    };
    let inv = |text: String| Invocation {
        actor: format!("discord:{user}"),
        channel: Some(channel.clone()),
        thread: thread.clone(),
        text,
        received_at: now,
        // Answers go through the stored item's origin.
        origin: engine::Origin::new(PLATFORM, String::new()),
        inbox: None,
    };
    match ev.kind {
        InteractionType::Command => {
            let name = data.name.unwrap_or_default();
            let inv = inv(register::text(&name, &data.options));
            origin.private = PRIVATE.contains(&name.as_str());
            if let Some(quick) = s.pipeline.quick(&inv) {
                if let Some(entry) = quick.denied {
                    s.audit.record(entry);
                }
                return message(&quick.reply.text, true);
            }
            if let Err(wait) = s.rate.check(&inv.actor) {
                s.pipeline.metrics.rate_limited();
                return message(&s.rate.refusal(wait), true);
            }
            let mut ack = json!({ "type": DEFERRED_MESSAGE });
            if origin.private {
                ack["data"] = json!({ "flags": EPHEMERAL });
            }
            s.store(started, inv, &origin, &ev.id, ack).await
        }
        InteractionType::Component => {
            let custom = data.custom_id.unwrap_or_default();
            let verb = match custom.split_once(':') {
                Some(("approve", label)) => format!("/approve {label}"),
                Some(("reject", label)) => format!("/reject {label}"),
                Some(("incident_ack", label)) => format!("/incident ack {label}"),
                Some(("incident_resolve", label)) => format!("/incident resolve {label}"),
                Some(("guided_done", label)) => format!("/done {label}"),
                Some(("guided_abort", label)) => format!("/abort {label}"),
                _ => return Json(json!({ "type": DEFERRED_UPDATE })).into_response(),
            };
            origin.kind = OriginKind::Component;
            let inv = inv(verb);
            if let Err(wait) = s.rate.check(&inv.actor) {
                s.pipeline.metrics.rate_limited();
                return message(&s.rate.refusal(wait), true);
            }
            s.store(started, inv, &origin, &ev.id, json!({ "type": DEFERRED_UPDATE }))
                .await
        }
        _ => StatusCode::BAD_REQUEST.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_are_the_channels_of_thread_type_or_of_unknown_type() {
        let of = |kind| Channel { kind };
        assert_eq!(thread_of("T1", Some(&of(11))), Some("T1".into()));
        assert_eq!(thread_of("T1", Some(&of(12))), Some("T1".into()));
        assert_eq!(thread_of("T1", Some(&of(10))), Some("T1".into()));
        assert_eq!(thread_of("C1", Some(&of(0))), None, "a text channel is no thread");
        assert_eq!(
            thread_of("C1", None),
            Some("C1".into()),
            "type unknown: may be a thread"
        );
    }
}
