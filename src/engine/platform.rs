//! The platform boundary. The engine speaks in [`Notification`]s (what
//! happened, for whom) and stores [`OutMessage`]s; a chat platform plugs in
//! with three things, all registered in `app.rs` and nowhere else:
//!
//! - inbound translation to an [`Invocation`](super::Invocation) carrying an
//!   [`Origin`] (the platform's own JSON: everything needed to answer there);
//! - a [`Renderer`]: notification → the platform's messages (pure);
//! - a [`ChatApi`]: the calls the generic outbox sender makes.
//!
//! Nothing in `engine/` or `store/` names a platform: platform names are data.

use crate::approval::Approval;
use crate::clock::Millis;
use crate::engine::Reply;
use crate::incident::Incident;
pub use crate::origin::Origin;
use crate::store::OutMessage;
use futures::future::BoxFuture;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// What an engine step tells the outside world. Meaning, not markup: each
/// platform decides what (if anything) to post for it.
#[derive(Debug, Clone, Copy)]
pub enum Notification<'a> {
    /// Answer `reply` where `origin` asked. `approval` is the approval the
    /// reply is about, as stored after the step.
    Reply {
        origin: &'a Origin,
        reply: &'a Reply,
        approval: Option<&'a Approval>,
    },
    /// A new approval: show it (a card with buttons) where it was requested.
    ApprovalOpened { approval: &'a Approval },
    /// An approval changed (a vote, a decision, an expiry, a result): bring
    /// what shows it up to date. `result` is the execution's reply text.
    ApprovalChanged {
        approval: &'a Approval,
        result: Option<&'a str>,
    },
    /// A scheduled run's answer where its request was made (its channel and
    /// thread): a watch's message, posted under `key` (`edit` false) and
    /// then edited in place (`edit` true), or a follow-up's result (no key).
    /// The request's own reply handle may be long expired by then.
    Scheduled {
        origin: &'a Origin,
        reply: &'a Reply,
        key: Option<&'a str>,
        edit: bool,
    },
    /// A guided run's message in the channel (and thread) its request was
    /// made in: posted under `key` when `edit` is false, then edited in
    /// place. `waits`: the run's id and the step it waits at, for its Done
    /// and Abort buttons; `None` once the run ended (buttons removed).
    Guided {
        origin: &'a Origin,
        reply: &'a Reply,
        key: &'a str,
        edit: bool,
        waits: Option<(&'a str, usize)>,
    },
    /// A stored request was cut off by a restart; its result is unknown.
    Interrupted { origin: &'a Origin, text: &'a str },
    /// An incident's card in each of its destinations: posted when `new`,
    /// else brought up to date. `ack_by`: its ack deadline while unacked.
    IncidentCard {
        incident: &'a Incident,
        ack_by: Option<Millis>,
        new: bool,
    },
    /// An alert group's message in each of its destinations: posted when
    /// the view is new, else edited in place.
    AlertGroup {
        group: &'a crate::alerts::post::GroupView,
    },
    /// A storm's digest in its channel: posted when new, else edited.
    AlertDigest {
        digest: &'a crate::alerts::digest::DigestView,
    },
    /// A message in the incident's thread, in each of its destinations
    /// (a page, a reminder, a change). `mentions`: the people it pages.
    IncidentThread {
        incident: &'a Incident,
        text: &'a str,
        mentions: &'a [Mention],
    },
}

/// A person to mention, with every chat identity they have (each
/// platform mentions the one it knows; elsewhere the name is written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    pub person: String,
    /// Wire identities, `<platform>:<user id>` (one per platform).
    pub identities: Vec<String>,
}

impl Mention {
    /// The user id on `platform`, if the person has one there.
    pub fn on<'a>(&'a self, platform: &str) -> Option<&'a str> {
        self.identities
            .iter()
            .find_map(|i| i.strip_prefix(platform).and_then(|rest| rest.strip_prefix(':')))
    }
}

impl Notification<'_> {
    /// The platforms this notification is for (none: nowhere to post).
    pub fn platforms(&self) -> Vec<&str> {
        match self {
            Notification::Reply { origin, .. }
            | Notification::Interrupted { origin, .. }
            | Notification::Scheduled { origin, .. }
            | Notification::Guided { origin, .. } => {
                vec![&origin.platform]
            }
            Notification::ApprovalOpened { approval } | Notification::ApprovalChanged { approval, .. } => {
                approval.origin.iter().map(|o| o.platform.as_str()).collect()
            }
            Notification::IncidentCard { incident, .. } | Notification::IncidentThread { incident, .. } => {
                distinct_platforms(&incident.destinations)
            }
            Notification::AlertGroup { group } => distinct_platforms(&group.destinations),
            Notification::AlertDigest { digest } => vec![&digest.platform],
        }
    }
}

fn distinct_platforms(ds: &[crate::policy::Destination]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for d in ds {
        if !out.contains(&d.platform.as_str()) {
            out.push(&d.platform);
        }
    }
    out
}

/// Turns notifications into one platform's messages. Pure.
pub trait Renderer: Send + Sync {
    /// The name its origins and messages are stored under.
    fn platform(&self) -> &'static str;
    /// The messages for `n` (empty: nothing to post). A notification about
    /// several destinations (an incident's) is rendered by each platform
    /// involved: render only the destinations on this platform.
    fn render(&self, n: &Notification<'_>, now: Millis) -> Vec<OutMessage>;
}

/// Every platform's renderer, by name. Notifications for a platform without
/// a renderer (the console prints its replies itself) render to nothing.
#[derive(Clone, Default)]
pub struct Renderers {
    by_name: HashMap<&'static str, Arc<dyn Renderer>>,
}

impl std::fmt::Debug for Renderers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_name.keys()).finish()
    }
}

impl Renderers {
    pub fn with(mut self, r: Arc<dyn Renderer>) -> Self {
        self.by_name.insert(r.platform(), r);
        self
    }

    /// Whether notifications for `platform` become messages.
    pub fn renders(&self, platform: &str) -> bool {
        self.by_name.contains_key(platform)
    }

    /// The messages for all of `notes`, in order.
    pub fn render(&self, notes: &[Notification<'_>], now: Millis) -> Vec<OutMessage> {
        notes
            .iter()
            .flat_map(|n| {
                n.platforms()
                    .into_iter()
                    .filter_map(|p| self.by_name.get(p))
                    .flat_map(move |r| r.render(n, now))
            })
            .collect()
    }
}

/// Why a delivery did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The platform said 429: wait `retry_after`, then try again.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Duration },
    /// 5xx, timeouts, connection errors: retry with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The bot may not post in that channel (not invited, not found).
    #[error("not a member of the channel: {0}")]
    NotMember(String),
    /// Refused for good (bad auth, invalid body): retrying won't help.
    #[error("refused: {0}")]
    Permanent(String),
    /// The reply handle is no longer valid (the platform's time for answering
    /// through it is over): answer in the channel instead, if at all.
    #[error("reply handle expired: {0}")]
    Expired(String),
}

/// The calls the outbox sender makes on one platform.
pub trait ChatApi: Send + Sync {
    /// Posts `body` (under the message `thread`, if any); answers the new
    /// message's id.
    fn post<'a>(
        &'a self,
        channel: &'a str,
        thread: Option<&'a str>,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<String, SendError>>;
    /// Replaces the message `id` in `channel` with `body`.
    fn update<'a>(
        &'a self,
        channel: &'a str,
        id: &'a str,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<(), SendError>>;
    /// A message only `user` sees.
    fn ephemeral<'a>(
        &'a self,
        channel: &'a str,
        user: &'a str,
        thread: Option<&'a str>,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<(), SendError>>;
    /// Posts through a reply handle the request carried (used when the bot
    /// is not a member of the channel).
    fn respond<'a>(&'a self, handle: &'a str, body: &'a Value) -> BoxFuture<'a, Result<(), SendError>>;
    /// Answers through a reply handle the platform's renderer stored with the
    /// message (`OutOp::Respond`); answers the resulting message's id, if
    /// there is one to edit later. [`SendError::Expired`] when the handle can
    /// no longer be used. By default the same as [`ChatApi::respond`].
    fn answer<'a>(
        &'a self,
        handle: &'a str,
        body: &'a Value,
    ) -> BoxFuture<'a, Result<Option<String>, SendError>> {
        Box::pin(async move { self.respond(handle, body).await.map(|()| None) })
    }
    /// `body` cut to the platform's size limits.
    fn fit(&self, body: Value) -> Value;
}
