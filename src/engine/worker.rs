//! Processes stored chat requests off the request path: claim, run through
//! the pipeline, turn the reply into outgoing messages, mark done. After a
//! restart, requests that were mid-way are reported as interrupted (never
//! re-run) and requests never started are run.

use super::writer::Pressure;
use super::{Invocation, Origin, Pipeline};
use crate::store::InboxItem;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};

/// How many requests run at once (a slow target must not hold up the rest).
const CONCURRENCY: usize = 64;
/// Safety net for items the in-memory queue could not take.
const SWEEP_EVERY: Duration = Duration::from_secs(2);
/// Requests claimed per statement at most.
const CLAIM_BATCH: usize = 64;
/// The sweep claims only requests older than this (longer than any ack
/// deadline: a younger one may still be abandoned by its writer).
const SWEEP_AGE_MS: i64 = 5_000;

/// Starts the worker; it runs until `rx` closes.
/// How long a graceful stop waits for requests already running.
const DRAIN: Duration = Duration::from_secs(10);

/// What the worker reads from and yields to.
pub struct Inputs {
    /// Ids of newly stored requests, from the writer.
    pub stored: mpsc::Receiver<i64>,
    /// The writer's flood signal.
    pub pressure: Pressure,
    /// Turns true when the process is stopping.
    pub stop: watch::Receiver<bool>,
}

/// Starts the worker. On stop it takes no new requests and waits (up to 10 s)
/// for the running ones; anything cut off is reported after the next start.
pub fn spawn(pipeline: Pipeline, inputs: Inputs) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(pipeline, inputs))
}

async fn run(pipeline: Pipeline, inputs: Inputs) {
    let Inputs {
        stored: mut rx,
        pressure,
        mut stop,
    } = inputs;
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    let mut running = tokio::task::JoinSet::new();
    loop {
        reap(&pipeline, &mut running);
        // Hinted: stored by the writer, their ack confirmed. The sweep takes
        // what the hints missed (a full queue, a restart), once it is older
        // than any ack deadline, so it never races the writer's abandon.
        let mut hinted: Vec<i64> = Vec::new();
        let sweeping = tokio::select! {
            _ = stop.changed() => break,
            item = rx.recv() => match item {
                Some(id) => {
                    hinted.push(id);
                    while let Ok(id) = rx.try_recv() {
                        hinted.push(id);
                    }
                    false
                }
                None => break,
            },
            _ = sweep.tick() => true,
        };
        // Claim in batches while a backlog remains, never more than can start
        // at once (a claimed item cut off by a crash is reported as interrupted).
        while !*stop.borrow() {
            // During an ingest flood acknowledgements come first; the items are stored.
            pressure.wait_low().await;
            let Ok(first) = permits.clone().acquire_owned().await else {
                return;
            };
            let limit = (permits.available_permits() + 1).min(CLAIM_BATCH);
            let claimed = if hinted.is_empty() {
                if !sweeping {
                    break;
                }
                let before = pipeline.clock.now_ms() - SWEEP_AGE_MS;
                pipeline.store.claim_new_inbox(limit as i64, before).await
            } else {
                let take: Vec<i64> = hinted.drain(..limit.min(hinted.len())).collect();
                pipeline.store.claim_inbox_ids(&take).await
            };
            let batch = match claimed {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming stored requests failed");
                    break;
                }
            };
            let more = !hinted.is_empty() || (sweeping && batch.len() == limit);
            let mut first = Some(first);
            for item in batch {
                let permit = match first.take() {
                    Some(p) => p,
                    None => match permits.clone().acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => return,
                    },
                };
                let p = pipeline.clone();
                running.spawn(async move {
                    run_claimed(&p, item).await;
                    drop(permit);
                });
                reap(&pipeline, &mut running);
            }
            if !more {
                break;
            }
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

/// Forgets finished request tasks; a panic is logged and counted (the
/// request stays `processing` and is reported as interrupted after a restart).
fn reap(p: &Pipeline, running: &mut tokio::task::JoinSet<()>) {
    while let Some(done) = running.try_join_next() {
        if let Err(e) = done {
            if e.is_panic() {
                p.metrics.task_panicked();
                tracing::error!(error = %e, "a stored request's task panicked");
            }
        }
    }
}

/// Runs one claimed request. The pipeline's last step answers it and marks
/// it done in one transaction.
async fn run_claimed(p: &Pipeline, item: InboxItem) {
    let inv = Invocation {
        actor: item.actor.clone(),
        channel: item.channel.clone(),
        thread: item.thread.clone(),
        text: item.text.clone(),
        received_at: item.received_at,
        origin: origin(&item),
        inbox: Some(item.id),
    };
    p.handle(&inv).await;
}

pub(super) fn origin(item: &InboxItem) -> Origin {
    Origin::new(&item.source, item.origin.clone())
}
