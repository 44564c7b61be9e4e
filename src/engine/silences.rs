//! The alerts side of the pipeline: `/alerts` (what is firing),
//! `/alerts silences`, `/alerts silence …`, `/alerts maintenance …`,
//! `/alerts unsilence …`, and the silence-end timer. A silence's start or
//! end marks the alert groups it covers changed (in the transaction that
//! stores it, with its audit entry, its end timer and the answer), so the
//! alert poster renders them again: marked silenced, or opening the
//! incident a silence held back. Which alerts a silence covers is decided
//! by the pure `alerts::silence`.

use super::pipeline::{Internal, Invocation, Pipeline, SOURCE_TIMER};
use super::reply::{Outcome, Reply};
use crate::alerts::silence::{self, Kind, Silence};
use crate::auth::Actor;
use crate::clock::{rfc3339, Millis};
use crate::command::Alerts;
use crate::incident;
use crate::store::{OpenAlert, SilenceRow, Tx, SILENCE_END, SILENCE_START};
use std::collections::BTreeMap;
use std::time::Duration;

/// Lines of `/alerts` and `/alerts silences` before "and N more".
const SHOWN: usize = 15;

/// One firing group as `/alerts` lists it.
struct Firing<'a> {
    first: &'a OpenAlert,
    open: usize,
    silenced: usize,
    /// Acknowledged (PagerDuty) among the open ones.
    acked: usize,
    /// The most severe level among its open alerts: (rank, label).
    level: Option<(i64, &'a str)>,
    since: Millis,
}

impl Pipeline {
    /// `/alerts …`.
    pub(super) async fn alerts(
        &self,
        inv: &Invocation,
        actor: &Actor,
        cmd: Alerts,
    ) -> Result<Reply, Internal> {
        let needs = match cmd {
            Alerts::Firing | Alerts::Silences => "support",
            _ => "oncall",
        };
        if !actor.has_role(needs) {
            let what = match cmd {
                Alerts::Firing | Alerts::Silences => "Listing alerts and silences",
                _ => "Silences and maintenance windows",
            };
            let text = format!("{what} need the {needs} role.");
            let mut entry = self.entry(inv, actor, "denied", None, None);
            entry.outcome = "not_permitted".into();
            entry.detail = Some(format!("/alerts: {text}"));
            return self
                .answered(inv, Reply::new(Outcome::NotPermitted, text), &[entry])
                .await;
        }
        match cmd {
            Alerts::Firing => {
                let text = self.firing_text().await?;
                self.answered(inv, Reply::new(Outcome::Done, text).private(), &[])
                    .await
            }
            Alerts::Silences => {
                let text = self.silences_text().await?;
                self.answered(inv, Reply::new(Outcome::Done, text).private(), &[])
                    .await
            }
            Alerts::Silence {
                matchers,
                duration,
                comment,
            } => {
                self.add_silence(inv, actor, Kind::Silence, matchers, duration, comment)
                    .await
            }
            Alerts::Maintenance {
                profile,
                duration,
                comment,
            } => {
                let matchers = vec![format!("profile=\"{profile}\"")];
                self.add_silence(inv, actor, Kind::Maintenance, matchers, duration, comment)
                    .await
            }
            Alerts::Unsilence { id } => self.unsilence(inv, actor, id).await,
        }
    }

    /// The silences active now, parsed.
    pub(super) async fn active_silences(&self) -> Result<Vec<Silence>, Internal> {
        Ok(Silence::from_rows(&self.store.active_silences(self.now()).await?))
    }

    async fn firing_text(&self) -> Result<String, Internal> {
        let now = self.now();
        let silences = self.active_silences().await?;
        let open = self.store.open_alerts().await?;
        let mut groups: BTreeMap<i64, Firing<'_>> = BTreeMap::new();
        for a in &open {
            let r = &a.alert.record;
            let g = groups.entry(a.alert.group_id).or_insert(Firing {
                first: a,
                open: 0,
                silenced: 0,
                acked: 0,
                level: None,
                since: a.created_at,
            });
            g.open += 1;
            g.acked += usize::from(r.status == "acknowledged");
            if silence::silencing_open(&silences, a, now).is_some() {
                g.silenced += 1;
            }
            if let (Some(rank), Some(label)) = (r.rank, r.level.as_deref()) {
                if g.level.is_none_or(|(r, _)| rank < r) {
                    g.level = Some((rank, label));
                }
            }
            g.since = g.since.min(a.created_at);
        }
        if groups.is_empty() {
            return Ok("Nothing is firing.".into());
        }
        let mut list: Vec<Firing<'_>> = groups.into_values().collect();
        // Most severe first, then the biggest, then the oldest.
        list.sort_by_key(|g| {
            (
                g.level.map_or(i64::MAX, |l| l.0),
                std::cmp::Reverse(g.open),
                g.since,
            )
        });
        let total: usize = list.iter().map(|g| g.open).sum();
        let mut t = format!(
            "🔥 {total} alert{} firing in {} group{}:",
            plural(total),
            list.len(),
            plural(list.len())
        );
        for g in list.iter().take(SHOWN) {
            let a = g.first;
            t.push_str(&format!("\n• {} {}", a.alert.route, a.alert.group_key));
            if let Some(p) = &a.profile {
                t.push_str(&format!(" ({p})"));
            }
            t.push_str(&format!(": {} firing", g.open));
            if let Some((_, level)) = g.level {
                t.push_str(&format!(", {level}"));
            }
            t.push_str(&format!(", for {}", incident::ago(now, g.since)));
            match g.silenced {
                0 => {}
                n if n == g.open => t.push_str(" · 🔕 silenced"),
                n => t.push_str(&format!(" · 🔕 {n} silenced")),
            }
            if g.acked > 0 {
                t.push_str(&format!(" · 👀 {} acknowledged", g.acked));
            }
        }
        if list.len() > SHOWN {
            t.push_str(&format!("\n… and {} more", list.len() - SHOWN));
        }
        Ok(t)
    }

    async fn silences_text(&self) -> Result<String, Internal> {
        let now = self.now();
        let silences = self.active_silences().await?;
        let later = Silence::from_rows(&self.store.upcoming_silences(now).await?);
        let mut t = if silences.is_empty() {
            "No active silences.".to_string()
        } else {
            format!("{} active silence{}:", silences.len(), plural(silences.len()))
        };
        list(&mut t, &silences, now);
        if !later.is_empty() {
            t.push_str(&format!("\n{} to come:", later.len()));
            list(&mut t, &later, now);
        }
        Ok(t)
    }

    /// Stores a silence (or maintenance window), its end timer, the audit
    /// entry and the answer, and marks the groups it covers changed.
    async fn add_silence(
        &self,
        inv: &Invocation,
        actor: &Actor,
        kind: Kind,
        matchers: Vec<String>,
        duration: Duration,
        comment: Option<String>,
    ) -> Result<Reply, Internal> {
        let now = self.now();
        let ends_at = now + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2);
        let row = SilenceRow {
            id: 0,
            kind: kind.as_str().into(),
            matchers: serde_json::to_string(&matchers).unwrap_or_default(),
            starts_at: now,
            ends_at,
            created_by: actor.who().into(),
            created_at: now,
            comment,
            ended_at: None,
            ended_by: None,
        };
        let Some(parsed) = Silence::from_row(&row) else {
            let text = "Those matchers do not parse; see `/alerts help`.";
            return self.answered(inv, Reply::new(Outcome::Usage, text), &[]).await;
        };
        let mut tx = self.store.begin().await?;
        let open = tx.open_alerts().await?;
        let (s, hits) = self.store_silence(&mut tx, &row, parsed, &open).await?;
        let text = match kind {
            Kind::Silence => format!(
                "🔕 silence {}: {} until {} ({}) — {}; they are still recorded and shown, but page nobody. End it early with `/alerts unsilence {}`.",
                s.label(),
                s.matcher_text(),
                rfc3339(ends_at),
                crate::duration::format(duration),
                matching(hits),
                s.label()
            ),
            Kind::Maintenance => window_opened(&s, hits, now),
        };
        let mut entry = self.entry(inv, actor, &format!("{}.created", kind.as_str()), None, None);
        entry.detail = Some(created_detail(&s, now));
        self.finish_silence(tx, inv, entry, Reply::new(Outcome::Done, text), Some(ends_at))
            .await
    }

    /// Stores silence `row` (`parsed`) in `tx` with its end timer, and its
    /// start timer when it starts later; one that has started marks the
    /// groups it covers among `open` changed now. Answers it with its id
    /// and how many firing alerts it matches.
    pub(super) async fn store_silence(
        &self,
        tx: &mut Tx,
        row: &SilenceRow,
        parsed: Silence,
        open: &[OpenAlert],
    ) -> Result<(Silence, usize), Internal> {
        let now = self.now();
        let (groups, hits) = silence::covered(&parsed, open);
        let stored = tx.add_silence(row).await?;
        let item = stored.id.to_string();
        tx.schedule(SILENCE_END, &item, row.ends_at).await?;
        if row.starts_at > now {
            tx.schedule(SILENCE_START, &item, row.starts_at).await?;
        } else {
            tx.touch_groups(&groups, now).await?;
        }
        Ok((
            Silence {
                id: stored.id,
                ..parsed
            },
            hits,
        ))
    }

    /// Ends silence `row` at `now` in `tx`, if it is still on or to come:
    /// its timers go, the groups it covered among `open` are rendered
    /// again. False when it had ended already.
    pub(super) async fn end_silence_in(
        &self,
        tx: &mut Tx,
        row: &SilenceRow,
        by: &str,
        open: &[OpenAlert],
    ) -> Result<bool, Internal> {
        let now = self.now();
        if !tx.end_silence(row.id, by, now).await? {
            return Ok(false);
        }
        let item = row.id.to_string();
        tx.cancel(SILENCE_END, &item).await?;
        tx.cancel(SILENCE_START, &item).await?;
        let groups = Silence::from_row(row).map(|s| silence::covered(&s, open).0);
        tx.touch_groups(&groups.unwrap_or_default(), now).await?;
        Ok(true)
    }

    /// `/alerts unsilence <id>`: ends it now; the groups it covered are
    /// rendered again (and open the incidents it held back).
    async fn unsilence(&self, inv: &Invocation, actor: &Actor, id: i64) -> Result<Reply, Internal> {
        let usage = |t: String| Reply::new(Outcome::Usage, t);
        let Some(row) = self.store.silence(id).await? else {
            let text = format!(
                "There is no silence {} (see `/alerts silences`).",
                silence::label(id)
            );
            return self.answered(inv, usage(text), &[]).await;
        };
        let mut tx = self.store.begin().await?;
        let open = tx.open_alerts().await?;
        if !self.end_silence_in(&mut tx, &row, actor.who(), &open).await? {
            drop(tx);
            let text = format!("Silence {} has already ended.", silence::label(id));
            return self.answered(inv, usage(text), &[]).await;
        }
        let text = format!(
            "🔔 silence {} ended by {}; alerts it matched page again.",
            silence::label(id),
            actor.who()
        );
        let mut entry = self.entry(inv, actor, &format!("{}.ended", row.kind), None, None);
        entry.detail = Some(ended_detail(&row));
        self.finish_silence(tx, inv, entry, Reply::new(Outcome::Done, text), None)
            .await
    }

    /// Commits a silence change with its answer; the poster and (for a new
    /// end) the timer loop are told.
    async fn finish_silence(
        &self,
        tx: Tx,
        inv: &Invocation,
        entry: crate::audit::Entry,
        reply: Reply,
        due: Option<Millis>,
    ) -> Result<Reply, Internal> {
        let note = super::Notification::Reply {
            origin: &inv.origin,
            reply: &reply,
            approval: None,
        };
        self.commit_notes(tx, &[entry], &[note], inv.inbox).await?;
        self.alerts.raise();
        due.into_iter().for_each(|d| self.alarm.set(d));
        Ok(reply)
    }

    /// A silence's end is due (its timer row taken in `tx`): the groups it
    /// covered are rendered again, and open the incidents it held back.
    pub(super) async fn silence_expired_in(&self, tx: Tx, id: i64) -> Result<(), Internal> {
        self.silence_turned_in(tx, id, false).await
    }

    /// A later silence's start is due (its timer row taken in `tx`): the
    /// groups it covers are rendered again, marked silenced.
    pub(super) async fn silence_started_in(&self, tx: Tx, id: i64) -> Result<(), Internal> {
        self.silence_turned_in(tx, id, true).await
    }

    /// Silence `id` `started` (else expired): its groups are marked
    /// changed, with the timer's audit entry.
    async fn silence_turned_in(&self, mut tx: Tx, id: i64, started: bool) -> Result<(), Internal> {
        let now = self.now();
        let Some(row) = tx.silence(id).await? else {
            return Ok(tx.commit().await?);
        };
        let open = tx.open_alerts().await?;
        let groups = Silence::from_row(&row).map(|s| silence::covered(&s, &open).0);
        tx.touch_groups(&groups.unwrap_or_default(), now).await?;
        let label = silence::label(id);
        let (what, detail) = if started {
            let (from, until) = (rfc3339(row.starts_at), rfc3339(row.ends_at));
            ("started", format!("{label} started at {from} (until {until})"))
        } else {
            ("expired", format!("{label} ended at {}", rfc3339(row.ends_at)))
        };
        let entry = self.opsbot_entry(SOURCE_TIMER, &format!("{}.{what}", row.kind), detail);
        self.commit_notes(tx, &[entry], &[], None).await?;
        self.alerts.raise();
        Ok(())
    }
}

/// `matches 2 firing alerts now`.
fn matching(hits: usize) -> String {
    format!("matches {hits} firing alert{} now", plural(hits))
}

/// What a new maintenance window's answer says: until when it holds pages
/// back, or from when.
pub(super) fn window_opened(s: &Silence, hits: usize, now: Millis) -> String {
    let length = crate::duration::format(Duration::from_millis(
        u64::try_from(s.ends_at - s.starts_at).unwrap_or(0),
    ));
    if s.starts_at > now {
        return format!(
            "🔧 maintenance window {} for {} scheduled from {} until {} ({length}); from then its alerts are still recorded and shown, but page nobody. Cancel it with `/alerts unsilence {}`.",
            s.label(),
            maintenance_profile(s),
            rfc3339(s.starts_at),
            rfc3339(s.ends_at),
            s.label()
        );
    }
    format!(
        "🔧 maintenance window {} for {} until {} ({length}) — {}; its alerts are still recorded and shown, but page nobody. End it early with `/alerts unsilence {}`.",
        s.label(),
        maintenance_profile(s),
        rfc3339(s.ends_at),
        matching(hits),
        s.label()
    )
}

/// The audit detail of a new silence: `s3 profile="pdf" until …: comment`.
pub(super) fn created_detail(s: &Silence, now: Millis) -> String {
    let from = if s.starts_at > now {
        format!(" from {}", rfc3339(s.starts_at))
    } else {
        String::new()
    };
    format!(
        "{} {}{from} until {}{}",
        s.label(),
        s.matcher_text(),
        rfc3339(s.ends_at),
        s.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default()
    )
}

/// The audit detail of a silence ended early.
pub(super) fn ended_detail(row: &SilenceRow) -> String {
    format!(
        "{} ended early (was until {})",
        silence::label(row.id),
        rfc3339(row.ends_at)
    )
}

/// Lines of `/alerts silences` for `silences`, then "and N more".
fn list(t: &mut String, silences: &[Silence], now: Millis) {
    for s in silences.iter().take(SHOWN) {
        t.push_str(&format!("\n• {}", describe(s, now)));
    }
    if silences.len() > SHOWN {
        t.push_str(&format!("\n… and {} more", silences.len() - SHOWN));
    }
}

/// One line of `/alerts silences`.
fn describe(s: &Silence, now: Millis) -> String {
    let what = match s.kind {
        Kind::Silence => s.matcher_text(),
        Kind::Maintenance => format!("🔧 maintenance {}", maintenance_profile(s)),
    };
    let when = if s.starts_at > now {
        format!(
            "from {} (in {}) until {}",
            rfc3339(s.starts_at),
            incident::ago(s.starts_at, now),
            rfc3339(s.ends_at)
        )
    } else {
        let left = incident::ago(s.ends_at, now);
        format!("until {} ({left} left)", rfc3339(s.ends_at))
    };
    let mut t = format!("{} {what} {when}, by {}", s.label(), s.created_by);
    if let Some(c) = &s.comment {
        t.push_str(&format!(" — {c}"));
    }
    t
}

/// The profile a maintenance window silences.
pub(super) fn maintenance_profile(s: &Silence) -> &str {
    s.matchers.first().map_or("?", |m| m.value.as_str())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}
