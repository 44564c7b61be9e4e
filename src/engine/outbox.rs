//! The outbox sender: delivers the store's pending messages of one platform
//! through that platform's [`ChatApi`]. One generic sender per platform.
//!
//! - **Durable**: callers only enqueue rows ([`Outbox::send`]); the sender
//!   picks up whatever is pending, including after a restart.
//! - **Ordered per channel**: only a channel's oldest pending row may be sent,
//!   and at most one call per channel is in flight. Channels are independent:
//!   one that waits (pacing, 429, backoff, a slow platform) never holds up another.
//! - **Paced**: per channel, no two sends start closer than the channel's
//!   interval, and a 429 moves that channel's schedule to its `Retry-After`
//!   (so the send after a retry is not squeezed into the same window); a
//!   governor limiter paces the platform as a whole.
//! - **Retries**: 429 waits `Retry-After`; transient failures back off
//!   exponentially (250 ms · 2^attempts, capped at 30 s); a row that failed
//!   [`MAX_ATTEMPTS`] times or is older than [`MAX_AGE_MS`] is marked
//!   `failed` (logged, counted on `/metrics`) and the channel moves on, as
//!   after a permanent failure.
//! - **Claimed**: a row is claimed (lease [`LEASE_MS`]) before its send, so
//!   two instances on one database never send it twice; a dead instance's
//!   claims lapse.
//! - **Reply handles**: a `Respond` row goes through the handle its request
//!   carried (e.g. an interaction's own response) while the platform accepts
//!   it; once the platform says it expired, a public answer is posted to the
//!   channel instead and a private one is given up.
//! - **Idle is idle**: it sleeps until the earliest due row, a pacing slot, a
//!   finished send or a wake-up ([`Outbox::wake`]); at most 5 s as a safety net.
//!
//! Delivery is at least once: a crash between the platform accepting a
//! message and the store recording it sends that message again after the
//! restart.

use super::platform::{ChatApi, SendError};
use super::signal::Signal;
use crate::clock::{Millis, SharedClock};
use crate::store::{KeyLookup, OutMessage, OutOp, OutboxRow, Store, StoreError, Thread};
use governor::clock::Clock as _;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::{Id, JoinError, JoinSet};
use tokio::time::Instant;

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
/// Forget idle channels' pacing state beyond this many channels.
const PACED_CHANNELS: usize = 10_000;
/// Attempts after which a row is given up (about 12 minutes of backoff).
pub const MAX_ATTEMPTS: u32 = 30;
/// Age after which a row that still fails is given up.
pub const MAX_AGE_MS: i64 = 60 * 60 * 1000;
/// How long a claim on a row holds (longer than any one call may take).
pub const LEASE_MS: i64 = 60_000;

/// Rate limits of one platform's sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    /// Sends per second per channel: no two sends in one channel start
    /// closer than `1 / per_channel_per_sec` (default 1).
    pub per_channel_per_sec: u32,
    /// Sustained sends per second over all channels (also the global burst).
    pub global_per_sec: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            per_channel_per_sec: 1,
            global_per_sec: 50,
        }
    }
}

impl Pacing {
    fn interval(&self) -> Duration {
        Duration::from_secs(1) / self.per_channel_per_sec.max(1)
    }
}

/// What the rest of the app uses to send chat messages outside an engine
/// step: enqueue, then wake the senders. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Outbox {
    store: Store,
    signal: Signal,
}

impl Outbox {
    /// An outbox over `store` whose senders listen to `signal`.
    pub fn new(store: Store, signal: Signal) -> Self {
        Outbox { store, signal }
    }

    /// Stores `msgs` in one transaction (collapsing superseded edits) and wakes
    /// the senders. Once this returns, the messages survive a restart.
    pub async fn send(&self, msgs: &[OutMessage], now: Millis) -> Result<(), StoreError> {
        self.store.enqueue_messages(msgs, now).await?;
        self.wake();
        Ok(())
    }

    /// Makes the senders look at the store now.
    pub fn wake(&self) {
        self.signal.raise();
    }

    /// The store behind this outbox.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// One platform's delivery: its name (as stored on its rows) and its API.
#[derive(Clone)]
pub struct Delivery {
    pub platform: &'static str,
    pub api: Arc<dyn ChatApi>,
}

/// Starts the sender of `delivery.platform`'s rows. It runs until `shutdown`
/// turns true (or its sender is dropped), then waits for the calls in flight.
pub fn spawn_sender(
    outbox: Outbox,
    delivery: Delivery,
    clock: SharedClock,
    pacing: Pacing,
    shutdown: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let instance = format!("{:016x}", rand::random::<u64>());
    let shared = Shared {
        outbox,
        delivery,
        clock,
        instance,
    };
    let sender = Sender::new(Arc::new(shared), pacing);
    tokio::spawn(sender.run(shutdown))
}

/// What the send tasks share with the loop.
struct Shared {
    outbox: Outbox,
    delivery: Delivery,
    clock: SharedClock,
    /// This sender's name on its claims.
    instance: String,
}

struct Sender {
    shared: Arc<Shared>,
    pacing: Pacing,
    /// Per channel: the earliest instant its next send may start.
    next_slot: HashMap<String, Instant>,
    global: DefaultDirectRateLimiter,
    /// Channel of each send in flight.
    in_flight: HashMap<Id, String>,
    tasks: JoinSet<Done>,
}

/// What a finished send tells the loop.
struct Done {
    channel: String,
    /// When its call actually started (spacing counts from there).
    started: Instant,
    /// The platform asked this channel to wait (429).
    hold: Option<Duration>,
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

impl Sender {
    fn new(shared: Arc<Shared>, pacing: Pacing) -> Self {
        Sender {
            shared,
            pacing,
            next_slot: HashMap::new(),
            global: RateLimiter::direct(Quota::per_second(nonzero(pacing.global_per_sec))),
            in_flight: HashMap::new(),
            tasks: JoinSet::new(),
        }
    }

    async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut wake = self.shared.outbox.signal.listen();
        while !*shutdown.borrow() {
            wake.mark_unchanged();
            let wait = self.dispatch().await;
            tokio::select! {
                _ = wake.changed() => {}
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
        let s = &self.shared;
        let heads = match s.outbox.store.outbox_heads(s.delivery.platform).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "outbox: reading pending messages failed");
                return STORE_RETRY;
            }
        };
        if self.next_slot.len() > PACED_CHANNELS {
            let now = Instant::now();
            self.next_slot.retain(|_, at| *at > now);
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
            if row.claimed_elsewhere(&self.shared.instance, now) {
                wait = wait.min(millis(LEASE_MS / 4));
                continue;
            }
            match self.admit(channel) {
                Ok(()) => self.start(row),
                Err(until) => wait = wait.min(until),
            }
        }
        wait
    }

    /// Takes the channel's next slot and a slot of the global limiter, or
    /// says how long to wait for them.
    fn admit(&mut self, channel: &str) -> Result<(), Duration> {
        let now = Instant::now();
        if let Some(at) = self.next_slot.get(channel).filter(|at| **at > now) {
            return Err(*at - now);
        }
        if let Err(not_until) = self.global.check() {
            return Err(not_until.wait_time_from(self.global.clock().now()));
        }
        self.next_slot
            .insert(channel.to_string(), now + self.pacing.interval());
        Ok(())
    }

    fn start(&mut self, row: OutboxRow) {
        let channel = row.message.channel.clone();
        let shared = self.shared.clone();
        let handle = self.tasks.spawn(async move {
            let (started, hold) = deliver(&shared, &row).await;
            Done {
                channel: row.message.channel,
                started,
                hold,
            }
        });
        self.in_flight.insert(handle.id(), channel);
    }

    fn finished(&mut self, done: Result<(Id, Done), JoinError>) {
        let id = match done {
            Ok((id, done)) => {
                // Spacing counts from when the call really started (a task may
                // start late under load); a 429 moves the channel's schedule:
                // nothing goes there before Retry-After, and the retry itself
                // takes that slot.
                let from_start = done.started + self.pacing.interval();
                let next = match done.hold {
                    Some(hold) => Instant::now() + hold,
                    None => from_start,
                };
                let slot = self.next_slot.entry(done.channel).or_insert(next);
                *slot = (*slot).max(next);
                id
            }
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

/// How one attempt at a row ended.
#[derive(Debug)]
enum Step {
    /// Delivered; a post answers its ts.
    Sent { ts: Option<String> },
    /// The message it refers to is not posted yet: look again shortly.
    Wait,
    /// Try again after `after`; `hold`: the whole channel must wait (429).
    Retry {
        after: Duration,
        hold: bool,
        error: String,
    },
    /// Give up on this row.
    Failed(String),
}

/// One attempt at `row` (if this sender can claim it), recorded in the
/// store. Answers when the attempt started (after the claim) and how long
/// the platform asked the channel to wait, if it did.
async fn deliver(s: &Shared, row: &OutboxRow) -> (Instant, Option<Duration>) {
    let now = s.clock.now_ms();
    let store = &s.outbox.store;
    match store.outbox_claim(row.id, &s.instance, now, now + LEASE_MS).await {
        Ok(true) => {}
        Ok(false) => return (Instant::now(), None), // another instance has it, or it is done
        Err(e) => {
            tracing::warn!(id = row.id, error = %e, "outbox: claiming a row failed");
            return (Instant::now(), None);
        }
    }
    let mut started = Instant::now();
    let step = give_up_if_too_old(row, attempt(s, row, &mut started).await, s.clock.now_ms());
    let hold = match &step {
        Step::Retry {
            hold: true, after, ..
        } => Some(*after),
        _ => None,
    };
    let mut pause = Duration::from_millis(100);
    for _ in 0..5 {
        match record(s, row, &step).await {
            Ok(()) => return (started, hold),
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
    (started, hold)
}

/// A row that keeps failing is given up after [`MAX_ATTEMPTS`] or [`MAX_AGE_MS`].
fn give_up_if_too_old(row: &OutboxRow, step: Step, now: Millis) -> Step {
    match step {
        Step::Retry { error, .. }
            if row.attempts + 1 >= MAX_ATTEMPTS || now - row.created_at > MAX_AGE_MS =>
        {
            Step::Failed(format!("gave up after {} attempts: {error}", row.attempts + 1))
        }
        other => other,
    }
}

/// `called`: set to when the platform call started (after any key lookup:
/// the channel's spacing counts from there).
async fn attempt(s: &Shared, row: &OutboxRow, called: &mut Instant) -> Step {
    let m = &row.message;
    let api = &s.delivery.api;
    let body = api.fit(m.body.clone());
    let result = match &m.op {
        OutOp::Post {
            thread,
            key,
            fallback,
        } => match thread_ts(s, row.id, thread).await {
            Ok(ts) => {
                *called = Instant::now();
                match api.post(&m.channel, ts.as_deref(), &body).await {
                    // Not a member of the channel: an unkeyed result can still go
                    // through the request's reply handle. Keyed posts (cards, to be
                    // edited later) need the bot there.
                    Err(SendError::NotMember(code)) if key.is_none() => match fallback {
                        Some(url) => api.respond(url, &body).await.map(|()| None),
                        None => Err(SendError::NotMember(code)),
                    },
                    other => other.map(Some),
                }
            }
            Err(step) => return step,
        },
        OutOp::Update { key } => match lookup(s, key, row.id).await {
            Ok((channel, ts)) => {
                *called = Instant::now();
                api.update(&channel, &ts, &body).await.map(|()| None)
            }
            Err(step) => return step,
        },
        OutOp::Ephemeral { user, thread } => match thread_ts(s, row.id, thread).await {
            Ok(ts) => {
                *called = Instant::now();
                api.ephemeral(&m.channel, user, ts.as_deref(), &body)
                    .await
                    .map(|()| None)
            }
            Err(step) => return step,
        },
        // Through the request's own reply handle while it is valid; then a
        // public answer goes to the channel, a private one is given up.
        OutOp::Respond { handle, user, .. } => match api.answer(handle, &body).await {
            Err(SendError::Expired(why)) if user.is_none() => {
                tracing::info!(channel = %m.channel, %why, "outbox: reply handle expired; posting to the channel");
                api.post(&m.channel, None, &body).await.map(Some)
            }
            other => other,
        },
    };
    match result {
        Ok(ts) => Step::Sent { ts },
        Err(SendError::RateLimited { retry_after }) => Step::Retry {
            after: retry_after,
            hold: true,
            error: format!("rate limited; retry after {retry_after:?}"),
        },
        Err(SendError::Transient(e)) => Step::Retry {
            after: backoff(row.attempts),
            hold: false,
            error: e,
        },
        Err(SendError::Permanent(e) | SendError::NotMember(e) | SendError::Expired(e)) => Step::Failed(e),
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
    match s
        .outbox
        .store
        .resolve_message_key(s.delivery.platform, key, id)
        .await
    {
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
            OutOp::Post { key: Some(key), .. } | OutOp::Respond { key: Some(key), .. } => {
                store
                    .outbox_mark_posted(row.id, &m.platform, key, &m.channel, ts, now)
                    .await?
            }
            _ => store.outbox_mark_sent(row.id, now).await?,
        },
        Step::Sent { ts: None } => store.outbox_mark_sent(row.id, now).await?,
        Step::Wait => store.outbox_defer(row.id, now + KEY_WAIT_MS).await?,
        Step::Retry { after, error, .. } => {
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
    fn pacing_defaults_are_one_per_second() {
        let p = Pacing::default();
        assert_eq!(p.interval(), Duration::from_secs(1));
        assert_eq!(nonzero(0), NonZeroU32::MIN);
        let fast = Pacing {
            per_channel_per_sec: 50,
            global_per_sec: 500,
        };
        assert_eq!(fast.interval(), Duration::from_millis(20));
    }

    #[test]
    fn rows_that_keep_failing_are_given_up() {
        let row = |attempts, created_at| OutboxRow {
            id: 1,
            attempts,
            next_at: 0,
            created_at,
            claimed_by: None,
            claimed_until: 0,
            message: OutMessage {
                platform: "p".into(),
                channel: "C".into(),
                op: OutOp::Ephemeral {
                    user: "U".into(),
                    thread: None,
                },
                body: serde_json::json!({}),
            },
        };
        let retry = || Step::Retry {
            after: Duration::from_secs(1),
            hold: false,
            error: "HTTP 503".into(),
        };
        assert!(matches!(
            give_up_if_too_old(&row(3, 0), retry(), 1_000),
            Step::Retry { .. }
        ));
        assert!(matches!(
            give_up_if_too_old(&row(MAX_ATTEMPTS - 1, 0), retry(), 1_000),
            Step::Failed(e) if e.contains("30 attempts")
        ));
        assert!(matches!(
            give_up_if_too_old(&row(1, 0), retry(), MAX_AGE_MS + 1),
            Step::Failed(_)
        ));
    }
}
