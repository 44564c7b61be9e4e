//! Processes stored chat requests off the request path: claim, run through
//! the pipeline, turn the reply into outgoing messages, mark done. After a
//! restart, requests that were mid-way are reported as interrupted (never
//! re-run) and requests never started are run.

use super::outbox::Outbox;
use super::writer::Pressure;
use super::{Invocation, Pipeline, Source};
use crate::chat::slack::render::{self, Origin, OriginKind};
use crate::store::{InboxItem, OutMessage, OutOp, StoreError, Thread};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// How many requests run at once (a slow target must not hold up the rest).
const CONCURRENCY: usize = 4;
/// Safety net for items the in-memory queue could not take.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
const SWEEP_BATCH: i64 = 256;

/// Starts the worker; it runs until `rx` closes.
/// How long a graceful stop waits for requests already running.
const DRAIN: Duration = Duration::from_secs(10);

/// What the worker reads from and yields to.
pub struct Inputs {
    /// Newly stored requests from the writer.
    pub stored: mpsc::Receiver<InboxItem>,
    /// The writer's flood signal.
    pub pressure: Pressure,
    /// Turns true when the process is stopping.
    pub stop: watch::Receiver<bool>,
}

/// Starts the worker. On stop it takes no new requests and waits (up to 10 s)
/// for the running ones; anything cut off is reported after the next start.
pub fn spawn(pipeline: Pipeline, outbox: Outbox, inputs: Inputs) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(pipeline, outbox, inputs))
}

async fn run(pipeline: Pipeline, outbox: Outbox, inputs: Inputs) {
    let Inputs {
        stored: mut rx,
        pressure,
        mut stop,
    } = inputs;
    if let Err(e) = report_interrupted(&pipeline, &outbox).await {
        tracing::error!(error = %e, "could not recover interrupted requests");
    }
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        let items = tokio::select! {
            _ = stop.changed() => break,
            item = rx.recv() => match item {
                Some(i) => vec![i],
                None => break,
            },
            _ = sweep.tick() => {
                let found = pipeline.store.new_inbox_items(SWEEP_BATCH).await.unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "inbox sweep failed");
                    Vec::new()
                });
                // A full batch means a backlog: sweep again as soon as these are under way.
                if found.len() as i64 == SWEEP_BATCH {
                    sweep.reset_immediately();
                }
                found
            }
        };
        for item in items {
            // During an ingest flood acknowledgements come first; the items are stored.
            pressure.wait_low().await;
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let (p, o) = (pipeline.clone(), outbox.clone());
            tokio::spawn(async move {
                if let Err(e) = process(&p, &o, item).await {
                    tracing::error!(error = %e, "processing a stored request failed");
                }
                drop(permit);
            });
        }
    }
    let all = CONCURRENCY as u32;
    if tokio::time::timeout(DRAIN, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("stopping with requests still running; they will be reported as interrupted");
    }
}

/// Runs one stored request, if nobody else has claimed it.
pub async fn process(p: &Pipeline, outbox: &Outbox, item: InboxItem) -> Result<(), StoreError> {
    if !p.store.claim_inbox(item.id).await? {
        return Ok(());
    }
    let inv = Invocation {
        actor: item.actor.clone(),
        channel: item.channel.clone(),
        thread: item.thread.clone(),
        text: item.text.clone(),
        source: Source::Slack,
        received_at: item.received_at,
    };
    let reply = p.handle(&inv).await;
    let approval = match reply.approval {
        Some(id) => p.store.approval(id).await?,
        None => None,
    };
    let msgs = match origin(&item) {
        Some(o) => render::messages(&reply, approval.as_ref(), &o, p.clock.now_ms()),
        None => Vec::new(),
    };
    outbox.send(&msgs, p.clock.now_ms()).await?;
    p.store.finish_inbox(item.id).await
}

fn origin(item: &InboxItem) -> Option<Origin> {
    match item.source.as_str() {
        "slack" => serde_json::from_str(&item.origin).ok(),
        other => {
            tracing::warn!(source = other, "stored request from an unknown source");
            None
        }
    }
}

/// Tells each user whose request was cut off by a restart that its result is unknown.
async fn report_interrupted(p: &Pipeline, outbox: &Outbox) -> Result<(), StoreError> {
    for item in p.store.interrupt_inbox().await? {
        let Some(o) = origin(&item) else { continue };
        tracing::warn!(text = %item.text, actor = %item.actor, "request interrupted by a restart");
        let thread = o.thread_ts.clone().map(Thread::Ts);
        let text = format!(
            "⚠️ opsbot restarted while handling `{}`; its result is unknown. Check the target before retrying.",
            item.text
        );
        let msg = OutMessage {
            channel: o.channel.clone(),
            op: match o.kind {
                OriginKind::Mention => OutOp::Post {
                    key: None,
                    thread,
                    fallback: None,
                },
                _ => OutOp::Ephemeral {
                    user: o.user.clone(),
                    thread,
                },
            },
            body: serde_json::json!({ "text": text }),
        };
        outbox.send(&[msg], p.clock.now_ms()).await?;
    }
    Ok(())
}
