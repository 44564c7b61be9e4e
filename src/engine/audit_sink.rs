//! Best-effort audit for answers given on the ack path. A refusal answered in
//! a platform's ack stores nothing before the answer; its audit entry is handed to
//! this background appender instead. Under a flood of refusals, entries beyond
//! 200 per second (or a full queue) are dropped and counted — the refusals
//! changed nothing — so the ack path never waits on, or competes with, the
//! audit chain. Entries are committed together, at most every 50 ms.

use crate::audit::Entry;
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

const QUEUE: usize = 1024;
const PER_SECOND: u32 = 200;
/// How long the appender gathers entries before committing them.
const LINGER: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
    rate: Arc<governor::DefaultDirectRateLimiter>,
}

impl AuditSink {
    /// Starts the appender; it ends when every handle is dropped.
    pub fn spawn(store: Store) -> AuditSink {
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(QUEUE);
            while rx.recv_many(&mut batch, QUEUE).await > 0 {
                // Refusals come in bursts: one commit (one fsync) per
                // LINGER for all of them, not one per entry beside the acks.
                tokio::time::sleep(LINGER).await;
                while batch.len() < QUEUE {
                    match rx.try_recv() {
                        Ok(entry) => batch.push(entry),
                        Err(_) => break,
                    }
                }
                if let Err(e) = store.append_audits(&batch).await {
                    tracing::error!(error = %e, entries = batch.len(), "could not append audit entries");
                }
                batch.clear();
            }
        });
        let per_second = std::num::NonZeroU32::new(PER_SECOND).unwrap_or(std::num::NonZeroU32::MIN);
        AuditSink {
            tx,
            dropped: Arc::default(),
            rate: Arc::new(governor::RateLimiter::direct(governor::Quota::per_second(
                per_second,
            ))),
        }
    }

    /// Queues `entry` without waiting.
    pub fn record(&self, entry: Entry) {
        if self.rate.check().is_err() || self.tx.try_send(entry).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n.is_multiple_of(10_000) {
                tracing::warn!(
                    dropped = n,
                    "flood of refusals: audit entries beyond the rate limit dropped"
                );
            }
        }
    }

    /// How many entries were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
