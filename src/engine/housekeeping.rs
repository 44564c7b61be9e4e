//! Periodic cleanup: finished inbox and outbox rows older than the retention
//! period are deleted, and silences that ended more than
//! [`SILENCE_RETENTION`] ago (approvals, votes and the audit log, with the
//! silences' own entries, are kept forever).

use crate::clock::{Millis, SharedClock};
use crate::store::Store;
use std::time::Duration;
use tokio::sync::watch;

/// How long finished inbox/outbox rows are kept.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long an ended or expired silence is kept.
pub const SILENCE_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
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
                _ = tick.tick() => prune(&store, clock.now_ms()).await,
                _ = stop.changed() => return,
            }
        }
    })
}

/// Deletes what is past its retention at `now`.
pub async fn prune(store: &Store, now: Millis) {
    let before = |d: Duration| now - d.as_millis() as Millis;
    let inbox = store.inbox_prune(before(RETENTION)).await;
    let outbox = store.outbox_prune(before(RETENTION)).await;
    let silences = store.silences_prune(before(SILENCE_RETENTION)).await;
    match (inbox, outbox, silences) {
        (Ok(i), Ok(o), Ok(s)) if i + o + s > 0 => {
            tracing::info!(inbox = i, outbox = o, silences = s, "pruned finished rows")
        }
        (Ok(_), Ok(_), Ok(_)) => {}
        (i, o, s) => {
            tracing::warn!(inbox = ?i.err(), outbox = ?o.err(), silences = ?s.err(), "pruning failed")
        }
    }
}
