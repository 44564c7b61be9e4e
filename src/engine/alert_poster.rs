//! Alert groups into chat: after alerts are stored, every group whose
//! members changed since its message was last rendered is rendered again
//! (`alerts::post::GroupView`) and its message posted once per destination,
//! then edited in place through the outbox (pending edits of one message
//! supersede each other, so a storm on one group costs one message).
//! A group with an alert at or above its route's threshold opens an
//! incident first (its card, thread and escalation) unless every such alert
//! is silenced (`alerts::silence`; a silence's end marks its groups changed,
//! so the incident opens then), is acked when PagerDuty acknowledges one of
//! its alerts, and resolves when every alert of the group resolved.
//! Marking the group posted and enqueueing its messages is one transaction,
//! conditional on the version shown, so two instances render each version
//! once.

use super::pipeline::Internal;
use super::{Notification, Pipeline};
use crate::alerts::post::{GroupView, SHOWN};
use crate::alerts::silence;
use std::time::Duration;
use tokio::sync::watch;

/// Longest sleep without being woken (alerts stored by another instance).
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Groups rendered per round.
const BATCH: i64 = 64;

pub fn spawn(pipeline: Pipeline, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stored = pipeline.alerts.listen();
        loop {
            stored.mark_unchanged();
            if let Err(e) = post_changed(&pipeline).await {
                tracing::warn!(error = %e, "alert poster: rendering alert groups failed; retrying");
            }
            tokio::select! {
                _ = tokio::time::sleep(MAX_SLEEP) => {}
                _ = stored.changed() => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// Renders every changed group; answers how many messages were enqueued.
pub async fn post_changed(p: &Pipeline) -> Result<usize, Internal> {
    let mut rendered = 0;
    loop {
        let groups = p.store.unposted_alert_groups(BATCH).await?;
        if groups.is_empty() {
            return Ok(rendered);
        }
        let (silences, now) = (p.active_silences().await?, p.clock.now_ms());
        for g in groups {
            match (g.incident_id, g.state.as_str(), &g.profile) {
                (None, "firing", Some(profile)) => {
                    let serious = p.store.serious_open_alerts(g.id).await?;
                    if let Some((level, name)) = silence::first_unsilenced(&serious, &silences, now) {
                        p.declare_for_alerts(g.id, profile, &level, &name).await?;
                    }
                }
                (Some(id), "firing", _) => p.ack_for_alerts(id, g.id).await?,
                (Some(id), "resolved", _) => p.resolve_for_alerts(id, g.id).await?,
                _ => {}
            }
            let (members, firing, resolved) = p.store.group_members(g.id, SHOWN as i64).await?;
            let view = GroupView::build(&g, &members, (firing, resolved), &silences, now);
            let mut tx = p.store.begin().await?;
            if !tx.mark_group_posted(g.id, g.updated_at).await? {
                continue; // another instance rendered this version
            }
            p.commit_notes(tx, &[], &[Notification::AlertGroup { group: &view }], None)
                .await?;
            rendered += 1;
        }
    }
}
