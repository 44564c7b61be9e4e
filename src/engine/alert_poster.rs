//! Alert groups into chat: after alerts are stored, every group whose
//! members changed since its message was last rendered is rendered again
//! (`alerts::post::GroupView`) and its message posted once per destination,
//! then edited in place through the outbox (pending edits of one message
//! supersede each other, so a storm on one group costs one message).
//! A group with an alert at or above its route's threshold opens an
//! incident first (its card, thread and escalation) unless every such alert
//! is silenced (`alerts::silence`; a silence's end marks its groups changed,
//! so the incident opens then), is acked when PagerDuty acknowledges one of
//! its alerts (opened acked when every alert that pages was acknowledged
//! before it opened), and resolves when every alert of the group resolved.
//! After its incident was resolved (by hand or with its alerts), an alert
//! of the group opened since (a new member, or a resolved one firing again)
//! opens a new incident, linked in place of the resolved one.
//! Marking the group posted and enqueueing its messages is one transaction,
//! conditional on the version shown, so two instances render each version
//! once. Whether a destination gets a post or an edit is decided per
//! destination (is there a message under its key?).
//! Rounds are paced: after a round that rendered a group the next starts
//! [`ROUND_GAP`] later at the earliest, so a group changing with every
//! commit of a busy ingest is rendered a few times a second (each render
//! shows everything stored since), not once per commit; an idle poster
//! renders a new group at once.
//! Storms (`alerts::digest`, `engine::storms`): a destination whose channel
//! is storming gets no message of its own; the group joins the storm's
//! digest instead, in the same transaction, and its groups open at most a
//! few incidents while it lasts.

use super::pipeline::Internal;
use super::storms::Weather;
use super::{Notification, Pipeline};
use crate::alerts::post::{message_key, GroupView, SHOWN};
use crate::alerts::silence::{self, Silence};
use crate::incident::State;
use crate::policy::Destination;
use crate::store::AlertGroup;
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::watch;

/// Longest sleep without being woken (alerts stored by another instance).
const MAX_SLEEP: Duration = Duration::from_secs(5);
/// Groups read per query (a round reads until none is left).
const BATCH: i64 = 64;
/// Least time from a round that rendered a group to the next round: the
/// outbox sends a message's edits at most once per channel interval
/// anyway (pending edits supersede each other), so rendering more often
/// only takes the store from ingest.
pub const ROUND_GAP: Duration = Duration::from_millis(200);

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    /// Groups rendered.
    pub rendered: usize,
    /// When a storm digest is next due or a storm may end.
    pub next: Option<i64>,
}

/// `per_sec`: the outbox's sends per second per channel (storms are
/// measured against it).
pub fn spawn(
    pipeline: Pipeline,
    per_sec: u32,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stored = pipeline.alerts.listen();
        loop {
            stored.mark_unchanged();
            let (sleep, paced) = match post_changed(&pipeline, per_sec).await {
                // Paced: whatever is stored meanwhile waits for the next round.
                Ok(round) if round.rendered > 0 => (ROUND_GAP, true),
                Ok(round) => (until(&pipeline, round.next), false),
                Err(e) => {
                    tracing::warn!(error = %e, "alert poster: rendering alert groups failed; retrying");
                    (MAX_SLEEP, false)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = stored.changed(), if !paced => {}
                _ = stop.changed() => return,
            }
        }
    })
}

/// How long to sleep until `next` (at most [`MAX_SLEEP`]).
fn until(p: &Pipeline, next: Option<i64>) -> Duration {
    next.map(|at| Duration::from_millis(u64::try_from(at - p.now()).unwrap_or(0)))
        .map_or(MAX_SLEEP, |d| d.min(MAX_SLEEP))
}

/// Renders every changed group, then every storm digest that is due.
pub async fn post_changed(p: &Pipeline, per_sec: u32) -> Result<Round, Internal> {
    let mut weather = Weather::load(p, per_sec).await?;
    let mut seen: HashSet<i64> = HashSet::new();
    loop {
        let groups = p.store.unposted_alert_groups(BATCH).await?;
        let waiting = !groups.is_empty();
        let more = groups.len() as i64 == BATCH;
        // A group that changed again during this round waits for the next
        // (paced) one: under a steady flood a round would never end.
        let fresh: Vec<AlertGroup> = groups.into_iter().filter(|g| seen.insert(g.id)).collect();
        if fresh.is_empty() {
            // A storm does not end while changed groups are still waiting.
            let next = weather.render_digests(p, !waiting).await?;
            return Ok(Round {
                rendered: seen.len(),
                next,
            });
        }
        let (silences, now) = (p.active_silences().await?, p.clock.now_ms());
        for g in fresh {
            post_group(p, &mut weather, g, &silences, now).await?;
        }
        weather.render_digests(p, !more).await?;
        weather = Weather::load(p, per_sec).await?;
    }
}

/// One changed group: its incident, then its message in each calm
/// destination and its place in each storming one's digest.
async fn post_group(
    p: &Pipeline,
    weather: &mut Weather,
    g: AlertGroup,
    silences: &[Silence],
    now: i64,
) -> Result<(), Internal> {
    let mut calm: Vec<Destination> = Vec::new();
    let mut storms: Vec<i64> = Vec::new();
    for d in Destination::parse_list(&g.destinations) {
        match weather.storm_for(p, &d, now).await? {
            Some(s) => storms.push(s),
            None => calm.push(d),
        }
    }
    let opened = incident_for(p, weather, &g, &storms, silences, now).await?;
    let views = if calm.is_empty() {
        Vec::new()
    } else {
        let (members, firing, resolved) = p.store.group_members(g.id, SHOWN as i64).await?;
        let view = GroupView::build(&g, &members, (firing, resolved), silences, now);
        per_destination(p, view, calm).await?
    };
    let mut tx = p.store.begin().await?;
    if !tx.mark_group_posted(g.id, g.updated_at).await? {
        return Ok(()); // another instance rendered this version
    }
    let at = p.now(); // storms calm from the last group taken in, not the batch's start
    for s in &storms {
        tx.add_storm_group(*s, g.id, at).await?;
    }
    let notes: Vec<Notification> = views
        .iter()
        .map(|v| Notification::AlertGroup { group: v })
        .collect();
    p.commit_notes(tx, &[], &notes, None).await?;
    weather.took(&storms, at, opened);
    Ok(())
}

/// The group's incident: opened when it pages (`silence::opening`; again
/// after its last one was resolved, by an alert opened since), acked on a
/// PagerDuty acknowledge, resolved with its alerts. True if one opened.
async fn incident_for(
    p: &Pipeline,
    weather: &Weather,
    g: &AlertGroup,
    storms: &[i64],
    silences: &[Silence],
    now: i64,
) -> Result<bool, Internal> {
    let last = match g.incident_id {
        Some(id) => p.store.incident(id).await?,
        None => None,
    };
    let open = last.as_ref().filter(|i| i.state != State::Resolved);
    match (open, g.state.as_str(), &g.profile) {
        (Some(inc), "firing", _) => p.ack_for_alerts(inc, g.id).await?,
        (Some(inc), "resolved", _) => p.resolve_for_alerts(inc.id, g.id).await?,
        (None, "firing", Some(profile)) if weather.may_open_incident(storms) => {
            let serious = p.store.serious_open_alerts(g.id).await?;
            let after = last.as_ref().and_then(|i| i.resolved_at);
            if let Some(opening) = silence::opening(&serious, silences, now, after) {
                return p
                    .declare_for_alerts(g.id, g.incident_id, profile, &opening, storms)
                    .await;
            }
        }
        _ => {}
    }
    Ok(false)
}

/// `view` for `calm` destinations: one view posting where no message of
/// the group exists yet, one editing where it does.
async fn per_destination(
    p: &Pipeline,
    view: GroupView,
    calm: Vec<Destination>,
) -> Result<Vec<GroupView>, Internal> {
    let (mut new, mut known) = (Vec::new(), Vec::new());
    for d in calm {
        let key = message_key(view.id, &d);
        let found = p.store.known_message_keys(&d.platform, &[key]).await?;
        if found.is_empty() {
            new.push(d);
        } else {
            known.push(d);
        }
    }
    Ok([(new, true), (known, false)]
        .into_iter()
        .filter(|(ds, _)| !ds.is_empty())
        .map(|(destinations, new)| GroupView {
            destinations,
            new,
            ..view.clone()
        })
        .collect())
}
