//! Incidents, their timelines and on-call overrides. A step on an incident
//! locks its row first ([`Tx::lock_incident`]), so of an ack and a firing
//! escalation step racing on two instances one applies after the other
//! and sees its result.

use super::{int, opt_text, params, text, Result, Store, StoreError, Tx};
use crate::clock::Millis;
use crate::incident::{Event, Incident, State};
use crate::policy::Destination;
use sqlx::any::AnyRow;

const COLUMNS: &str = "id, profile, level, title, state, declared_at, declared_by, plan_from, fired,
     acked_at, acked_by, resolved_at, resolved_by, summary, commander, comms, scribe,
     last_update_at, destinations";

/// Timer kind: the next escalation step of an incident (item: its id).
pub const INCIDENT_STEP: &str = "incident.step";
/// Timer kind: the update reminder of an incident (item: its id).
pub const INCIDENT_REMINDER: &str = "incident.reminder";

/// A temporary on-call swap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverrideRow {
    pub id: i64,
    pub rotation: String,
    pub person: String,
    pub from: Millis,
    pub until: Millis,
    pub created_by: String,
    pub created_at: Millis,
}

super::on_tx! {
    /// One incident (see [`Tx::incident`]).
    fn incident(id: i64) -> Option<Incident>;
}

impl Tx {
    /// Stores `n` as a new incident (its `id` is ignored) with its first
    /// timeline event; answers it as stored.
    pub async fn create_incident(&mut self, n: &Incident, first: &Event) -> Result<Incident> {
        let row = sqlx::query(&format!(
            "INSERT INTO incidents (profile, level, title, state, declared_at, declared_by, plan_from, fired,
                acked_at, acked_by, resolved_at, resolved_by, summary, commander, comms, scribe,
                last_update_at, destinations, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $5)
             RETURNING {COLUMNS}"
        ))
        .bind(&n.profile)
        .bind(&n.level)
        .bind(&n.title)
        .bind(n.state.as_str())
        .bind(n.declared_at)
        .bind(&n.declared_by)
        .bind(n.plan_from)
        .bind(n.fired as i64)
        .bind(n.acked_at)
        .bind(&n.acked_by)
        .bind(n.resolved_at)
        .bind(&n.resolved_by)
        .bind(&n.summary)
        .bind(&n.commander)
        .bind(&n.comms)
        .bind(&n.scribe)
        .bind(n.last_update_at)
        .bind(Destination::list(&n.destinations))
        .fetch_one(self.conn())
        .await?;
        let inc = from_row(&row)?;
        self.add_incident_event(inc.id, first).await?;
        Ok(inc)
    }

    /// One incident, read without locking.
    pub async fn incident(&mut self, id: i64) -> Result<Option<Incident>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM incidents WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// One incident, its row locked until this transaction ends (Postgres;
    /// SQLite transactions are serial anyway).
    pub async fn lock_incident(&mut self, id: i64) -> Result<Option<Incident>> {
        let row = sqlx::query(&format!(
            "UPDATE incidents SET updated_at = updated_at WHERE id = $1 RETURNING {COLUMNS}"
        ))
        .bind(id)
        .fetch_optional(self.conn())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Writes back every mutable field of `inc` (whose row this
    /// transaction locked).
    pub async fn save_incident(&mut self, inc: &Incident, now: Millis) -> Result<()> {
        sqlx::query(
            "UPDATE incidents SET level = $2, title = $3, state = $4, plan_from = $5, fired = $6,
                acked_at = $7, acked_by = $8, resolved_at = $9, resolved_by = $10, summary = $11,
                commander = $12, comms = $13, scribe = $14, last_update_at = $15, updated_at = $16
             WHERE id = $1",
        )
        .bind(inc.id)
        .bind(&inc.level)
        .bind(&inc.title)
        .bind(inc.state.as_str())
        .bind(inc.plan_from)
        .bind(inc.fired as i64)
        .bind(inc.acked_at)
        .bind(&inc.acked_by)
        .bind(inc.resolved_at)
        .bind(&inc.resolved_by)
        .bind(&inc.summary)
        .bind(&inc.commander)
        .bind(&inc.comms)
        .bind(&inc.scribe)
        .bind(inc.last_update_at)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Records how many steps each incident (whose row this transaction
    /// locked) has fired: one statement per few hundred.
    pub async fn set_fired(&mut self, fired: &[(i64, usize)], now: Millis) -> Result<()> {
        let backend = self.backend();
        for chunk in fired.chunks(200) {
            let n = chunk.len();
            let p = params(backend, 1, 3 * n + 1);
            let cases: Vec<String> = (0..n)
                .map(|i| format!("WHEN {} THEN {}", p[2 * i], p[2 * i + 1]))
                .collect();
            let sql = format!(
                "UPDATE incidents SET fired = CASE id {} END, updated_at = {} WHERE id IN ({})",
                cases.join(" "),
                p[2 * n],
                p[2 * n + 1..].join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (id, f) in chunk {
                q = q.bind(*id).bind(*f as i64);
            }
            q = q.bind(now);
            for (id, _) in chunk {
                q = q.bind(*id);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Appends one row to an incident's timeline.
    pub async fn add_incident_event(&mut self, incident: i64, e: &Event) -> Result<()> {
        sqlx::query(
            "INSERT INTO incident_events (incident, at, kind, person, text) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(incident)
        .bind(e.at)
        .bind(&e.kind)
        .bind(&e.person)
        .bind(&e.text)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Appends many timeline rows (of any incidents) in one statement per
    /// few hundred.
    pub async fn add_incident_events(&mut self, events: &[(i64, Event)]) -> Result<()> {
        let backend = self.backend();
        for chunk in events.chunks(150) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", params(backend, 5 * i + 1, 5).join(", ")))
                .collect();
            let sql = format!(
                "INSERT INTO incident_events (incident, at, kind, person, text) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (id, e) in chunk {
                q = q.bind(*id).bind(e.at).bind(&e.kind).bind(&e.person).bind(&e.text);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Records a temporary on-call swap.
    pub async fn add_override(&mut self, o: &OverrideRow) -> Result<i64> {
        let row = sqlx::query(
            "INSERT INTO oncall_overrides (rotation, person, from_at, until_at, created_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&o.rotation)
        .bind(&o.person)
        .bind(o.from)
        .bind(o.until)
        .bind(&o.created_by)
        .bind(o.created_at)
        .fetch_one(self.conn())
        .await?;
        int(&row, "id")
    }

    /// The overrides of `rotation` that have not ended at `now`, oldest first.
    pub async fn overrides(&mut self, rotation: &str, now: Millis) -> Result<Vec<OverrideRow>> {
        let rows = sqlx::query(
            "SELECT id, rotation, person, from_at, until_at, created_by, created_at
             FROM oncall_overrides WHERE rotation = $1 AND until_at > $2 ORDER BY id",
        )
        .bind(rotation)
        .bind(now)
        .fetch_all(self.conn())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OverrideRow {
                    id: int(r, "id")?,
                    rotation: text(r, "rotation")?,
                    person: text(r, "person")?,
                    from: int(r, "from_at")?,
                    until: int(r, "until_at")?,
                    created_by: text(r, "created_by")?,
                    created_at: int(r, "created_at")?,
                })
            })
            .collect()
    }
}

super::on_tx! {
    /// Overrides of a rotation still running or to come (see [`Tx::overrides`]).
    fn overrides(rotation: &str, now: Millis) -> Vec<OverrideRow>;
}

impl Store {
    /// The incidents not resolved, oldest first.
    pub async fn open_incidents(&self) -> Result<Vec<Incident>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM incidents WHERE state <> 'resolved' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// An incident's timeline, in order.
    pub async fn incident_events(&self, incident: i64) -> Result<Vec<Event>> {
        let rows =
            sqlx::query("SELECT at, kind, person, text FROM incident_events WHERE incident = $1 ORDER BY id")
                .bind(incident)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Event {
                    at: int(r, "at")?,
                    kind: text(r, "kind")?,
                    person: text(r, "person")?,
                    text: text(r, "text")?,
                })
            })
            .collect()
    }

    /// The incident whose card is the message `ts` on `platform` (a thread
    /// hangs under it; where a platform names a thread started from a
    /// message by that message's id, the thread's id finds it too).
    pub async fn incident_by_card(&self, platform: &str, ts: &str) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT msg_key FROM chat_messages WHERE platform = $1 AND ts = $2 AND msg_key LIKE 'incident:%'",
        )
        .bind(platform)
        .bind(ts)
        .fetch_optional(&self.pool)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let key = text(&r, "msg_key")?;
        Ok(card_incident(&key))
    }
}

/// The message key of an incident's card in one destination.
pub fn card_key(id: i64, d: &Destination) -> String {
    format!("incident:{id}:{}:{}", d.platform, d.channel)
}

/// The incident a card key names.
fn card_incident(key: &str) -> Option<i64> {
    key.strip_prefix("incident:")?.split(':').next()?.parse().ok()
}

fn from_row(r: &AnyRow) -> Result<Incident> {
    let state = text(r, "state")?;
    let dests = text(r, "destinations")?;
    Ok(Incident {
        id: int(r, "id")?,
        profile: text(r, "profile")?,
        level: text(r, "level")?,
        title: text(r, "title")?,
        state: State::parse(&state).ok_or_else(|| StoreError::Corrupt(format!("incident state {state}")))?,
        declared_at: int(r, "declared_at")?,
        declared_by: text(r, "declared_by")?,
        plan_from: int(r, "plan_from")?,
        fired: int(r, "fired")?.max(0) as usize,
        acked_at: opt_int(r, "acked_at")?,
        acked_by: opt_text(r, "acked_by")?,
        resolved_at: opt_int(r, "resolved_at")?,
        resolved_by: opt_text(r, "resolved_by")?,
        summary: opt_text(r, "summary")?,
        commander: opt_text(r, "commander")?,
        comms: opt_text(r, "comms")?,
        scribe: opt_text(r, "scribe")?,
        last_update_at: int(r, "last_update_at")?,
        destinations: Destination::parse_list(&dests),
    })
}

fn opt_int(r: &AnyRow, col: &str) -> Result<Option<i64>> {
    use sqlx::Row;
    Ok(r.try_get::<Option<i64>, _>(col)?)
}
