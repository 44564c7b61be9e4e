//! Liveness and recovery. Every instance declares itself alive (a heartbeat
//! row, renewed every 10 s, valid 30 s) and, on the same beat, recovers what
//! dead instances left behind: executions they had claimed become `unknown`
//! (their cards say so), approved requests nobody claimed run (or expire),
//! and stored requests they were processing are reported as interrupted.
//! A live instance's claims are never touched, so two instances on one
//! Postgres database, or a `serve` restarted beside a console `run`, are safe.
//! A crashed process's claims are recovered once its heartbeat lapses.

use super::pipeline::Internal;
use super::platform::Notification;
use super::worker::origin;
use super::Pipeline;
use crate::clock::Millis;
use std::time::Duration;
use tokio::sync::watch;

/// How often the heartbeat is renewed (and recovery looks).
pub const BEAT: Duration = Duration::from_secs(10);
/// How long one heartbeat keeps an instance alive.
pub const ALIVE_MS: Millis = 30_000;

/// Starts the heartbeat-and-recovery loop; it stops when `stop` turns true.
pub fn spawn(pipeline: Pipeline, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = beat(&pipeline).await {
                tracing::warn!(error = %e, "heartbeat or recovery failed; trying again");
            }
            tokio::select! {
                _ = tokio::time::sleep(BEAT) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// One beat: stay alive, then recover what dead instances left.
pub async fn beat(p: &Pipeline) -> Result<(), Internal> {
    let now = p.clock.now_ms();
    p.store.heartbeat(now, now + ALIVE_MS).await?;
    for r in p.recover().await? {
        tracing::warn!(approval = ?r.approval, "recovered: {}", r.text);
    }
    report_interrupted(p).await
}

/// Tells each user whose request was cut off by a dead instance that its
/// result is unknown: the state change and the notice commit together.
async fn report_interrupted(p: &Pipeline) -> Result<(), Internal> {
    for item in p.store.orphaned_inbox_items(p.clock.now_ms()).await? {
        let mut tx = p.store.begin().await?;
        if !tx.interrupt_inbox(item.id).await? {
            continue;
        }
        tracing::warn!(text = %item.text, actor = %item.actor, "request interrupted by a restart");
        let origin = origin(&item);
        let now = p.clock.now_ms();
        let note = Notification::Interrupted {
            origin: &origin,
            text: &item.text,
        };
        tx.enqueue_messages(&p.renderers.render(&[note], now), now)
            .await?;
        tx.commit().await?;
        p.outbox.raise();
    }
    Ok(())
}
