//! The timer service: one loop over the store's timer table. It sleeps until
//! the earliest deadline (an index lookup, however many are pending), is
//! woken early only by an earlier new deadline ([`Alarm`]), and fires each
//! due item in the transaction that applies its effects (taking the row is
//! the claim): approval expiry, incident escalation steps and update
//! reminders, silence starts and ends (the kinds of [`fire`]); scheduled
//! actions (a watch's next run, a command's follow-up) are claimed, run and
//! settled by `engine::scheduled`.

use super::pipeline::Internal;
use super::Pipeline;
use crate::store::{
    Timer, APPROVAL_EXPIRY, GUIDED, INCIDENT_REMINDER, INCIDENT_STEP, SCHEDULED, SILENCE_END, SILENCE_START,
};
use std::time::Duration;
use tokio::sync::watch;

/// Longest sleep without a reason to wake (a safety net for deadlines set
/// by another process, e.g. `opsbot run`).
const MAX_SLEEP: Duration = Duration::from_secs(30);
/// Due items read per round.
const BATCH: i64 = 256;

/// Starts the loop; it stops when `stop` turns true.
pub fn spawn(pipeline: Pipeline, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut alarm = pipeline.alarm.listen();
        loop {
            let next = match fire_round(&pipeline, Runs::Detached).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "timers: firing due items failed");
                    Some(pipeline.clock.now_ms() + 1_000)
                }
            };
            pipeline.alarm.sleeping_until(next);
            alarm.mark_unchanged();
            let wait = next
                .map(|at| Duration::from_millis((at - pipeline.clock.now_ms()).max(0) as u64))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = alarm.changed() => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// How a round treats scheduled actions, which run an executor.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runs {
    /// Claimed in the round, run in tasks of their own: a slow read never
    /// holds up an escalation step or an expiry.
    Detached,
    /// Claimed and run in the round (tests step the loop by hand).
    Awaited,
}

/// Fires everything due now, scheduled runs included (awaited); answers
/// when the next item is due.
pub async fn fire_due(p: &Pipeline) -> Result<Option<i64>, Internal> {
    fire_round(p, Runs::Awaited).await
}

async fn fire_round(p: &Pipeline, runs: Runs) -> Result<Option<i64>, Internal> {
    loop {
        let due = p.store.due_timers(p.clock.now_ms(), BATCH).await?;
        let full = due.len() as i64 == BATCH;
        let (incidents, due): (Vec<Timer>, Vec<Timer>) = due
            .into_iter()
            .partition(|t| t.kind == INCIDENT_STEP || t.kind == INCIDENT_REMINDER);
        if !incidents.is_empty() {
            if let Err(e) = p.fire_incident_timers(&incidents).await {
                tracing::warn!(n = incidents.len(), error = %e, "timers: incident items failed; they stay due");
                return Ok(Some(p.clock.now_ms() + 1_000));
            }
        }
        for t in due {
            let fired = match (t.kind.as_str(), runs) {
                (SCHEDULED, Runs::Awaited) => p.fire_scheduled(&t).await,
                (SCHEDULED, Runs::Detached) => detach(p, t.clone()).await,
                (GUIDED, _) => p.fire_guided(&t).await,
                _ => fire(p, &t).await,
            };
            if let Err(e) = fired {
                tracing::warn!(kind = %t.kind, item = %t.item, error = %e, "timers: an item failed; it stays due");
                return Ok(Some(p.clock.now_ms() + 1_000));
            }
        }
        if !full {
            return Ok(p.store.next_due().await?);
        }
    }
}

/// Claims a scheduled action now (so the next round does not see it due)
/// and runs it in a task of its own.
async fn detach(p: &Pipeline, t: Timer) -> Result<(), Internal> {
    let Some(claimed) = p.claim_scheduled(&t).await? else {
        return Ok(());
    };
    let p = p.clone();
    tokio::spawn(async move {
        if let Err(e) = p.run_scheduled_claim(&t, claimed).await {
            // Its claim lapses; the run is then reported as cut off.
            tracing::warn!(item = %t.item, error = %e, "timers: a scheduled run failed to settle");
        }
    });
    Ok(())
}

/// Fires one item: takes it and applies its effects in one transaction.
/// (Incident items go in batches: `Pipeline::fire_incident_timers`.)
async fn fire(p: &Pipeline, t: &Timer) -> Result<(), Internal> {
    let mut tx = p.store.begin().await?;
    if !tx.take_timer(&t.kind, &t.item, p.clock.now_ms()).await? {
        return Ok(()); // another instance fired it, or it moved
    }
    match (t.kind.as_str(), t.item.parse::<i64>()) {
        (APPROVAL_EXPIRY, Ok(id)) => p.expire_in(tx, id).await,
        (SILENCE_END, Ok(id)) => p.silence_expired_in(tx, id).await,
        (SILENCE_START, Ok(id)) => p.silence_started_in(tx, id).await,
        (other, _) => {
            tracing::warn!(kind = other, item = %t.item, "timers: unknown kind or item; dropped");
            Ok(tx.commit().await?)
        }
    }
}
