//! Periodic cleanup: finished inbox and outbox rows older than the retention
//! period are deleted (approvals, votes and the audit log are kept forever).

use crate::clock::SharedClock;
use crate::store::Store;
use std::time::Duration;
use tokio::sync::watch;

/// How long finished inbox/outbox rows are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
const EVERY: Duration = Duration::from_secs(600);

/// Starts the cleanup loop; it ends when `stop` turns true.
pub fn spawn(
    store: Store,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => prune(&store, clock.now_ms() - RETENTION.as_millis() as i64).await,
                _ = stop.changed() => return,
            }
        }
    })
}

/// Deletes what is past retention at `before`.
pub async fn prune(store: &Store, before: i64) {
    match (store.inbox_prune(before).await, store.outbox_prune(before).await) {
        (Ok(i), Ok(o)) if i + o > 0 => tracing::info!(inbox = i, outbox = o, "pruned finished rows"),
        (Ok(_), Ok(_)) => {}
        (i, o) => tracing::warn!(inbox = ?i.err(), outbox = ?o.err(), "pruning failed"),
    }
}
