//! Approval expiry: marks approvals whose TTL ran out as expired, audits it,
//! and updates their Slack cards. Sleeps until the earliest expiry (woken when
//! a new approval is opened), so it costs nothing while idle. Deciding on an
//! expired approval is refused anyway (`approval::decide`); this loop makes the
//! state and the cards say so without anyone having to click.

use super::outbox::Outbox;
use super::Pipeline;
use crate::approval::Approval;
use crate::auth::Actor;
use crate::chat::slack::render;
use crate::store::StoreError;
use std::time::Duration;
use tokio::sync::watch;

/// Longest sleep between checks, as a safety net.
const MAX_SLEEP: Duration = Duration::from_secs(60);

/// Starts the loop; `outbox` is where card updates go when Slack is enabled.
pub fn spawn(
    pipeline: Pipeline,
    outbox: Option<Outbox>,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let next = match expire_due(&pipeline, outbox.as_ref()).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(error = %e, "approval expiry check failed");
                    None
                }
            };
            let now = pipeline.clock.now_ms();
            let wait = next
                .map(|at| Duration::from_millis((at - now).max(0) as u64 + 1))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = pipeline.timers.notified() => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// Expires what is due now; returns when the next pending approval expires.
pub async fn expire_due(p: &Pipeline, outbox: Option<&Outbox>) -> Result<Option<i64>, StoreError> {
    let now = p.clock.now_ms();
    for a in p.store.expire_due_approvals(now).await? {
        record(p, &a).await?;
        if let (Some(o), true) = (outbox, render::has_card(&a)) {
            o.send(&[render::card_update(&a, None, now)], now).await?;
        }
    }
    p.store.next_approval_expiry().await
}

async fn record(p: &Pipeline, a: &Approval) -> Result<(), StoreError> {
    let system = Actor::Unknown {
        identity: "system:expiry".into(),
    };
    let mut entry = crate::audit::Entry {
        at: p.clock.now_ms(),
        kind: "approval.expired".into(),
        person: system.who().into(),
        identity: system.identity().into(),
        channel: a.channel.clone(),
        command: Some(format!("{}:{}", a.profile, a.command)),
        args: serde_json::to_string(&a.args).ok(),
        outcome: "expired".into(),
        detail: None,
    };
    entry.detail = Some(format!(
        "{} expired with {} of {} approvals",
        a.label(),
        a.votes.len(),
        a.needed
    ));
    p.store.append_audit(&entry).await.map(|_| ())
}
