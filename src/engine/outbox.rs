//! The outbox sender: delivers the store's pending chat messages to Slack.
//!
//! - **Durable**: callers only enqueue rows ([`Outbox::send`]); the sender
//!   picks up whatever is pending, including after a restart.
//! - **Ordered per channel**: only a channel's oldest pending row may be sent,
//!   and at most one call per channel is in flight. Channels are independent:
//!   one that waits (pacing, 429, backoff, a slow Slack) never holds up another.
//! - **Paced**: a governor limiter per channel plus a global one.
//! - **Retries**: 429 waits `Retry-After`; transient failures back off
//!   exponentially (250 ms · 2^attempts, capped at 30 s) without limit;
//!   permanent failures mark the row `failed` and the channel moves on.
//! - **Idle is idle**: it sleeps until the earliest due row, a limiter slot, a
//!   finished send or a wake-up ([`Outbox::wake`]); at most 5 s as a safety net.
//!
//! Delivery is at least once: a crash between Slack accepting a message and
//! the store recording it sends that message again after the restart.

use crate::chat::slack::api::{SendError, SlackApi};
use crate::chat::slack::limits;
use crate::clock::{Millis, SharedClock};
use crate::store::{KeyLookup, OutMessage, OutOp, OutboxRow, Store, StoreError, Thread, SLACK};
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::{Id, JoinError, JoinSet};

/// Longest sleep without a reason to wake (a safety net, not a poll interval).
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Sends in flight at once (each in a different channel).
const MAX_IN_FLIGHT: usize = 32;
/// How long a row waits before looking again for the message it refers to.
const KEY_WAIT_MS: i64 = 250;
/// Sleep after the store failed to answer.
const STORE_RETRY: Duration = Duration::from_secs(1);
const BACKOFF_BASE_MS: u64 = 250;
const BACKOFF_CAP_MS: u64 = 30_000;
/// Forget idle channels' limiter state beyond this many channels.
const LIMITER_KEYS: usize = 10_000;

/// Rate limits of the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Sustained messages per second per channel (Slack: about 1).
    pub per_channel_per_sec: u32,
    /// Messages a channel may send at once after a quiet spell.
    pub burst: u32,
    /// Sustained messages per second over all channels (also the global burst).
    pub global_per_sec: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            per_channel_per_sec: 1,
            burst: 3,
            global_per_sec: 50,
        }
    }
}

/// What the rest of the app uses to send chat messages: enqueue, then wake
/// the sender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    notify: Arc<Notify>,
}

impl Outbox {
    /// An outbox over `store`.
    pub fn new(store: Store) -> Self {
        Outbox {
            store,
            notify: Arc::new(Notify::new()),
        }
    }

    /// Stores `msgs` in one transaction (collapsing superseded edits) and wakes
    /// the sender. Once this returns, the messages survive a restart.
    pub async fn send(&self, msgs: &[OutMessage], now: Millis) -> Result<(), StoreError> {
        self.store.enqueue_messages(msgs, now).await?;
        self.wake();
        Ok(())
    }

    /// Makes the sender look at the store now (e.g. after another process
    /// enqueued rows).
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// The store behind this outbox.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Starts the sender. It runs until `shutdown` turns true (or its sender is
/// dropped), then waits for the calls in flight and returns.
pub fn spawn_sender(
    outbox: Outbox,
    api: SlackApi,
    clock: SharedClock,
    pacing: Pacing,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let sender = Sender::new(Arc::new(Shared { outbox, api, clock }), pacing);
    tokio::spawn(sender.run(shutdown))
}

/// What the send tasks share with the loop.
struct Shared {
    outbox: Outbox,
    api: SlackApi,
    clock: SharedClock,
}

struct Sender {
    shared: Arc<Shared>,
    per_channel: DefaultKeyedRateLimiter<String>,
    global: DefaultDirectRateLimiter,
    /// Channel of each send in flight.
    in_flight: HashMap<Id, String>,
    tasks: JoinSet<()>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Sender {
    fn new(shared: Arc<Shared>, pacing: Pacing) -> Self {
        let channel_quota =
            Quota::per_second(nonzero(pacing.per_channel_per_sec)).allow_burst(nonzero(pacing.burst));
        Sender {
            shared,
            per_channel: RateLimiter::keyed(channel_quota),
            global: RateLimiter::direct(Quota::per_second(nonzero(pacing.global_per_sec))),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let notify = self.shared.outbox.notify.clone();
        while !*shutdown.borrow() {
            let wait = self.dispatch().await;
            tokio::select! {
                _ = notify.notified() => {}
                Some(done) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.finished(done);
                }
                _ = tokio::time::sleep(wait) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
            }
        }
        while let Some(done) = self.tasks.join_next_with_id().await {
            self.finished(done);
        }
    }

    /// Starts every send that may go now; answers how long to sleep at most.
    async fn dispatch(&mut self) -> Duration {
        let heads = match self.shared.outbox.store.outbox_heads(SLACK).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: reading pending messages failed");
                return STORE_RETRY;
            }
        };
        if self.per_channel.len() > LIMITER_KEYS {
            self.per_channel.retain_recent();
        }
        let now = self.shared.clock.now_ms();
        let mut wait = MAX_SLEEP;
        for row in heads {
            if self.tasks.len() >= MAX_IN_FLIGHT {
                break;
            }
            let channel = &row.message.channel;
            if self.in_flight.values().any(|c| c == channel) {
                continue;
            }
            if row.next_at > now {
                wait = wait.min(millis(row.next_at - now));
                continue;
            }
            match self.admit(channel) {
                Ok(()) => self.start(row),
                Err(until) => wait = wait.min(until),
            }
        }
        wait
    }

    /// Takes a slot of the channel's and the global limiter, or says how long
    /// to wait for one.
    fn admit(&self, channel: &str) -> Result<(), Duration> {
        let key = channel.to_string();
        if let Err(not_until) = self.per_channel.check_key(&key) {
            return Err(not_until.wait_time_from(self.per_channel.clock().now()));
        }
        if let Err(not_until) = self.global.check() {
            return Err(not_until.wait_time_from(self.global.clock().now()));
        }
        Ok(())
    }

    fn start(&mut self, row: OutboxRow) {
        let channel = row.message.channel.clone();
        let shared = self.shared.clone();
        let handle = self.tasks.spawn(async move { deliver(&shared, row).await });
        self.in_flight.insert(handle.id(), channel);
    }

    fn finished(&mut self, done: Result<(Id, ()), JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                tracing::error!(error = %e, "outbox: a send task died; its message stays pending");
                e.id()
            }
        };
        self.in_flight.remove(&id);
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Slack's answers when the bot may not post in a channel.
const NOT_A_MEMBER: [&str; 2] = ["not_in_channel", "channel_not_found"];

/// How one attempt at a row ended.
#[derive(Debug)]
enum Step {
    /// Delivered; a post answers its ts.
    Sent { ts: Option<String> },
    /// The message it refers to is not posted yet: look again shortly.
    Wait,
    /// Try again after `after`.
    Retry { after: Duration, error: String },
    /// Give up on this row.
    Failed(String),
}

/// One attempt at `row`, recorded in the store.
async fn deliver(s: &Shared, row: OutboxRow) {
    let step = attempt(s, &row).await;
    let mut pause = Duration::from_millis(100);
    for _ in 0..5 {
        match record(s, &row, &step).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(id = row.id, error = %e, "outbox: recording a send failed; retrying");
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
        }
    }
    tracing::error!(
        id = row.id,
        ?step,
        "outbox: could not record a send; the row stays pending"
    );
}

async fn attempt(s: &Shared, row: &OutboxRow) -> Step {
    let m = &row.message;
    let body = limits::fit(m.body.clone());
    let result = match &m.op {
        OutOp::Post {
            thread,
            key,
            fallback,
        } => match thread_ts(s, row.id, thread).await {
            Ok(ts) => match s.api.post_message(&m.channel, ts.as_deref(), &body).await {
                // Not invited to the channel: a result can still go through the
                // slash command's response_url. Cards (keyed) need the bot there.
                Err(SendError::Permanent(code)) if key.is_none() && NOT_A_MEMBER.contains(&code.as_str()) => {
                    match fallback {
                        Some(url) => s.api.respond(url, &body).await.map(|()| None),
                        None => Err(SendError::Permanent(code)),
                    }
                }
                other => other.map(Some),
            },
            Err(step) => return step,
        },
        OutOp::Update { key } => match lookup(s, key, row.id).await {
            Ok((channel, ts)) => s.api.update(&channel, &ts, &body).await.map(|()| None),
            Err(step) => return step,
        },
        OutOp::Ephemeral { user, thread } => match thread_ts(s, row.id, thread).await {
            Ok(ts) => s
                .api
                .post_ephemeral(&m.channel, user, ts.as_deref(), &body)
                .await
                .map(|()| None),
            Err(step) => return step,
        },
    };
    match result {
        Ok(ts) => Step::Sent { ts },
        Err(SendError::RateLimited { retry_after }) => Step::Retry {
            after: retry_after,
            error: format!("rate limited; retry after {retry_after:?}"),
        },
        Err(SendError::Transient(e)) => Step::Retry {
            after: backoff(row.attempts),
            error: e,
        },
        Err(SendError::Permanent(e)) => Step::Failed(e),
    }
}

/// The ts to reply under, if any.
async fn thread_ts(s: &Shared, id: i64, thread: &Option<Thread>) -> Result<Option<String>, Step> {
    match thread {
        None => Ok(None),
        Some(Thread::Ts(ts)) => Ok(Some(ts.clone())),
        Some(Thread::Key(key)) => lookup(s, key, id).await.map(|(_, ts)| Some(ts)),
    }
}

/// Where the message posted under `key` lives: `(channel, ts)`.
async fn lookup(s: &Shared, key: &str, id: i64) -> Result<(String, String), Step> {
    match s.outbox.store.resolve_message_key(SLACK, key, id).await {
        Ok(KeyLookup::Posted { channel, ts }) => Ok((channel, ts)),
        Ok(KeyLookup::Waiting) => Err(Step::Wait),
        Ok(KeyLookup::Missing(why)) => Err(Step::Failed(why)),
        Err(e) => {
            tracing::warn!(id, error = %e, "outbox: resolving a message key failed");
            Err(Step::Wait)
        }
    }
}

/// 250 ms · 2^attempts, at most 30 s.
fn backoff(attempts: u32) -> Duration {
    let factor = 1u64 << attempts.min(16);
    Duration::from_millis(BACKOFF_BASE_MS.saturating_mul(factor).min(BACKOFF_CAP_MS))
}

async fn record(s: &Shared, row: &OutboxRow, step: &Step) -> Result<(), StoreError> {
    let store = &s.outbox.store;
    let now = s.clock.now_ms();
    let m = &row.message;
    match step {
        Step::Sent { ts: Some(ts) } => match &m.op {
            OutOp::Post { key: Some(key), .. } => {
                store
                    .outbox_mark_posted(row.id, SLACK, key, &m.channel, ts, now)
                    .await?
            }
            _ => store.outbox_mark_sent(row.id, now).await?,
        },
        Step::Sent { ts: None } => store.outbox_mark_sent(row.id, now).await?,
        Step::Wait => store.outbox_defer(row.id, now + KEY_WAIT_MS).await?,
        Step::Retry { after, error } => {
            tracing::info!(id = row.id, channel = %m.channel, attempts = row.attempts + 1, error = %error, "outbox: will retry");
            let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX / 2);
            store
                .outbox_retry_at(row.id, now.saturating_add(after), error)
                .await?
        }
        Step::Failed(error) => {
            tracing::error!(id = row.id, channel = %m.channel, error = %error, "outbox: message failed for good");
            store.outbox_mark_failed(row.id, error, now).await?
        }
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(250));
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_millis(2_000));
        assert_eq!(backoff(7), Duration::from_secs(30));
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn pacing_defaults_follow_slack() {
        let p = Pacing::default();
        assert_eq!((p.per_channel_per_sec, p.burst), (1, 3));
        assert_eq!(nonzero(0), NonZeroU32::MIN);
    }
}
