//! Storm weather for the alert poster: which channels are storming, each
//! channel's outbox backlog, and the digests to render. The rules (when a
//! storm starts, is rendered, ends) are `alerts::digest`, pure; this applies
//! them against the store. Loaded once per batch of groups, so the backlog
//! it counts is fresh; a storm started by another instance is found through
//! the store's one-active-storm-per-channel index.

use super::pipeline::Internal;
use super::{Notification, Pipeline};
use crate::alerts::digest::{self, DigestView};
use crate::clock::Millis;
use crate::policy::Destination;
use crate::store::Storm;
use std::collections::HashMap;

type Channel = (String, String);

/// What the poster knows about its channels during one batch.
pub struct Weather {
    /// Sends per second per channel (the outbox's pacing).
    per_sec: u32,
    storms: HashMap<Channel, Storm>,
    backlog: HashMap<Channel, i64>,
}

fn channel(d: &Destination) -> Channel {
    (d.platform.clone(), d.channel.clone())
}

impl Weather {
    pub async fn load(p: &Pipeline, per_sec: u32) -> Result<Weather, Internal> {
        let storms = p.store.active_storms().await?;
        Ok(Weather {
            per_sec,
            storms: storms
                .into_iter()
                .map(|s| ((s.platform.clone(), s.channel.clone()), s))
                .collect(),
            backlog: p.store.outbox_backlogs().await?,
        })
    }

    /// The storm `d`'s messages go into now, starting one when another
    /// message would outrun the channel; `None`: post per group (counted in
    /// the channel's backlog).
    pub async fn storm_for(
        &mut self,
        p: &Pipeline,
        d: &Destination,
        now: Millis,
    ) -> Result<Option<i64>, Internal> {
        let ch = channel(d);
        if let Some(s) = self.storms.get(&ch) {
            return Ok(Some(s.id));
        }
        let backlog = self.backlog.entry(ch.clone()).or_default();
        if !digest::storming(*backlog, 1, self.per_sec) {
            *backlog += 1;
            return Ok(None);
        }
        let storm = p.store.start_storm(&d.platform, &d.channel, now).await?;
        tracing::info!(platform = %d.platform, channel = %d.channel, storm = storm.id, backlog = *backlog, "alerts: storm; digest instead of one message per group");
        let id = storm.id;
        self.storms.insert(ch, storm);
        Ok(Some(id))
    }

    /// May a group whose messages go into `storms` open an incident now?
    pub fn may_open_incident(&self, storms: &[i64]) -> bool {
        self.storms
            .values()
            .filter(|s| storms.contains(&s.id))
            .all(digest::may_open_incident)
    }

    /// Records in memory what a committed change did to `storms`.
    pub fn took(&mut self, storms: &[i64], now: Millis, incident: bool) {
        for s in self.storms.values_mut().filter(|s| storms.contains(&s.id)) {
            s.last_at = if s.last_at >= now { s.last_at + 1 } else { now };
            s.incidents += i64::from(incident);
        }
    }

    /// Renders every digest that is due, ends the storms that calmed down
    /// (if `may_end`: no changed group is known to be waiting); answers when
    /// to look again (the earliest next render or end).
    pub async fn render_digests(&mut self, p: &Pipeline, may_end: bool) -> Result<Option<Millis>, Internal> {
        let mut next: Option<Millis> = None;
        for s in self.storms.values_mut() {
            let now = p.now();
            let end = may_end && now >= digest::calm_at(s, self.per_sec);
            let due = digest::render_at(s, self.per_sec).is_some_and(|at| at <= now);
            if end && !digest::took_any(s) {
                // It took no group in (another instance rendered the one it
                // was started for): it ends without a digest, unless a
                // group came in meanwhile.
                let mut tx = p.store.begin().await?;
                if tx.mark_storm_rendered(s.id, 0, now, true, 0).await? {
                    tx.commit().await?;
                    tracing::info!(platform = %s.platform, channel = %s.channel, storm = s.id, "alerts: storm over before it took a group in");
                    continue;
                }
            }
            if end || due {
                let counting = std::time::Instant::now();
                let counts = p.store.storm_counts(s.id).await?;
                let cost = Millis::try_from(counting.elapsed().as_millis()).unwrap_or(Millis::MAX);
                let view = DigestView::build(s, &counts, end);
                let mut tx = p.store.begin().await?;
                if tx.mark_storm_rendered(s.id, s.last_at, now, end, cost).await? {
                    p.commit_notes(tx, &[], &[Notification::AlertDigest { digest: &view }], None)
                        .await?;
                    if end {
                        tracing::info!(platform = %s.platform, channel = %s.channel, storm = s.id, alerts = view.total(), "alerts: storm over");
                    }
                }
                s.shown_at = s.last_at;
                s.rendered_at = now;
                s.render_ms = cost;
                if end {
                    continue;
                }
            }
            let at = digest::wake_at(s, self.per_sec);
            next = Some(next.map_or(at, |n| n.min(at)));
        }
        Ok(next)
    }
}
