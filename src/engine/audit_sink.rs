//! Best-effort audit for answers given on the ack path. A refusal answered in
//! Slack's ack stores nothing before the answer; its audit entry is handed to
//! this background appender instead. Under a flood of refusals the bounded
//! queue fills and further entries are dropped and counted (the refusals
//! changed nothing), so the ack path never waits on the audit chain.

use crate::audit::Entry;
use crate::store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

const QUEUE: usize = 1024;

#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Entry>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Starts the appender; it ends when every handle is dropped.
    pub fn spawn(store: Store) -> AuditSink {
        let (tx, mut rx) = mpsc::channel::<Entry>(QUEUE);
        tokio::spawn(async move {
            while let Some(entry) = rx.recv().await {
                if let Err(e) = store.append_audit(&entry).await {
                    tracing::error!(error = %e, kind = %entry.kind, "could not append an audit entry");
                }
            }
        });
        AuditSink {
            tx,
            dropped: Arc::default(),
        }
    }

    /// Queues `entry` without waiting.
    pub fn record(&self, entry: Entry) {
        if self.tx.try_send(entry).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n % 10_000 == 0 {
                tracing::warn!(
                    dropped = n,
                    "audit queue full during a flood of refusals; entries dropped"
                );
            }
        }
    }

    /// How many entries were dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
