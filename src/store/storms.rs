//! Alert storms (migration 0013): per chat channel, the storm while its
//! alert messages would outrun the channel's pace, and the groups its digest
//! sums up. The policy (when a storm starts and ends, what the digest shows)
//! is `alerts::digest`; this is its storage.

use super::alerts::opt_int;
use super::{int, opt_text, params, text, Result, Store, Tx};
use crate::clock::Millis;
use sqlx::any::AnyRow;
use std::collections::{HashMap, HashSet};

/// How many alerts of one group, name, severity and state a storm sums up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormCount {
    pub group_id: i64,
    pub route: String,
    pub group_key: String,
    pub name: String,
    pub severity: Option<String>,
    pub resolved: bool,
    pub n: i64,
}

/// One storm in one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Storm {
    pub id: i64,
    pub platform: String,
    pub channel: String,
    pub started_at: Millis,
    /// The last group change taken into it (0: none yet).
    pub last_at: Millis,
    /// The `last_at` its digest last showed (0: never posted).
    pub shown_at: Millis,
    /// When its digest was last rendered.
    pub rendered_at: Millis,
    pub ended_at: Option<Millis>,
    /// Incidents opened by its groups while it lasted.
    pub incidents: i64,
    /// How long its digest last took to count.
    pub render_ms: Millis,
}

const STORM_COLUMNS: &str =
    "id, platform, channel, started_at, last_at, shown_at, rendered_at, ended_at, incidents, render_ms";

fn storm(r: &AnyRow) -> Result<Storm> {
    Ok(Storm {
        id: int(r, "id")?,
        platform: text(r, "platform")?,
        channel: text(r, "channel")?,
        started_at: int(r, "started_at")?,
        last_at: int(r, "last_at")?,
        shown_at: int(r, "shown_at")?,
        rendered_at: int(r, "rendered_at")?,
        ended_at: opt_int(r, "ended_at")?,
        incidents: int(r, "incidents")?,
        render_ms: int(r, "render_ms")?,
    })
}

impl Store {
    /// Every storm still going on.
    pub async fn active_storms(&self) -> Result<Vec<Storm>> {
        let rows = sqlx::query(&format!(
            "SELECT {STORM_COLUMNS} FROM alert_storms WHERE ended_at IS NULL ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(storm).collect()
    }

    /// Every storm, oldest first (tests, diagnostics).
    pub async fn storms(&self) -> Result<Vec<Storm>> {
        let rows = sqlx::query(&format!("SELECT {STORM_COLUMNS} FROM alert_storms ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(storm).collect()
    }

    /// Starts a storm in `channel` unless one is going on there (another
    /// instance started it); answers the channel's active storm. A new
    /// storm has taken no group in yet (`last_at` 0): nothing to show until
    /// the transaction taking its first group commits.
    pub async fn start_storm(&self, platform: &str, channel: &str, now: Millis) -> Result<Storm> {
        sqlx::query(
            "INSERT INTO alert_storms (platform, channel, started_at, last_at) VALUES ($1, $2, $3, 0)
             ON CONFLICT (platform, channel) WHERE ended_at IS NULL DO NOTHING",
        )
        .bind(platform)
        .bind(channel)
        .bind(now)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {STORM_COLUMNS} FROM alert_storms
             WHERE platform = $1 AND channel = $2 AND ended_at IS NULL"
        ))
        .bind(platform)
        .bind(channel)
        .fetch_one(&self.pool)
        .await?;
        storm(&row)
    }

    /// The alerts of the groups storm `id` sums up, counted by group, name,
    /// severity and state (a digest reads counts, not its storm's rows).
    pub async fn storm_counts(&self, id: i64) -> Result<Vec<StormCount>> {
        let rows = sqlx::query(
            "SELECT a.group_id, g.route, g.group_key, a.name, a.severity,
                    CASE WHEN a.status = 'resolved' THEN 1 ELSE 0 END AS resolved, COUNT(*) AS n
             FROM alert_storm_groups s
             JOIN alerts a ON a.group_id = s.group_id
             JOIN alert_groups g ON g.id = s.group_id
             WHERE s.storm_id = $1
             GROUP BY a.group_id, g.route, g.group_key, a.name, a.severity,
                      CASE WHEN a.status = 'resolved' THEN 1 ELSE 0 END",
        )
        .bind(id)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StormCount {
                    group_id: int(r, "group_id")?,
                    route: text(r, "route")?,
                    group_key: text(r, "group_key")?,
                    name: text(r, "name")?,
                    severity: opt_text(r, "severity")?,
                    resolved: int(r, "resolved")? != 0,
                    n: int(r, "n")?,
                })
            })
            .collect()
    }

    /// Pending outbox rows per (platform, channel): each channel's backlog.
    pub async fn outbox_backlogs(&self) -> Result<HashMap<(String, String), i64>> {
        let rows = sqlx::query(
            "SELECT platform, channel, COUNT(*) AS n FROM outbox WHERE state = 'pending' GROUP BY platform, channel",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(((text(r, "platform")?, text(r, "channel")?), int(r, "n")?)))
            .collect()
    }

    /// Which of `keys` name a message of `platform` that was posted or whose
    /// post is pending (the rest would be new posts).
    pub async fn known_message_keys(&self, platform: &str, keys: &[String]) -> Result<HashSet<String>> {
        let backend = self.backend();
        let mut known = HashSet::new();
        // Every placeholder from `params`: SQLite's are positional.
        for (table, only) in [
            ("chat_messages", ""),
            ("outbox", "AND op = 'post' AND state = 'pending'"),
        ] {
            for chunk in keys.chunks(400) {
                let p = params(backend, 1, chunk.len() + 1);
                let sql = format!(
                    "SELECT msg_key FROM {table} WHERE platform = {} {only} AND msg_key IN ({})",
                    p[0],
                    p[1..].join(", ")
                );
                let mut q = sqlx::query(&sql).bind(platform);
                for k in chunk {
                    q = q.bind(k);
                }
                for r in q.fetch_all(&self.pool).await? {
                    known.insert(text(&r, "msg_key")?);
                }
            }
        }
        Ok(known)
    }
}

impl Tx {
    /// Takes `group`'s change at `now` into storm `id`.
    pub async fn add_storm_group(&mut self, id: i64, group: i64, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO alert_storm_groups (storm_id, group_id) VALUES ($1, $2)
             ON CONFLICT (storm_id, group_id) DO NOTHING",
        )
        .bind(id)
        .bind(group)
        .execute(self.conn())
        .await?;
        // last_at only grows, also within one millisecond: the digest is
        // rendered again for every change it has not shown.
        sqlx::query(
            "UPDATE alert_storms SET last_at = CASE WHEN last_at >= $2 THEN last_at + 1 ELSE $2 END WHERE id = $1",
        )
        .bind(id)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Counts an incident opened by a group of storm `id`.
    pub async fn count_storm_incident(&mut self, id: i64) -> Result<()> {
        sqlx::query("UPDATE alert_storms SET incidents = incidents + 1 WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Records that storm `id`'s digest now shows its changes up to
    /// `shown_at` (rendered at `now`, its counts read in `render_ms`);
    /// `end`: the storm is over, unless a change came in after `shown_at`.
    /// False if another instance recorded it first, the storm already
    /// ended, or it did not calm down after all.
    pub async fn mark_storm_rendered(
        &mut self,
        id: i64,
        shown_at: Millis,
        now: Millis,
        end: bool,
        render_ms: Millis,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alert_storms SET shown_at = $2, rendered_at = $3, render_ms = $5,
               ended_at = CASE WHEN $4 = 1 THEN $3 ELSE NULL END
             WHERE id = $1 AND ended_at IS NULL
               AND ((($4 = 1) AND last_at = $2) OR (($4 = 0) AND shown_at < $2))",
        )
        .bind(id)
        .bind(shown_at)
        .bind(now)
        .bind(i64::from(end))
        .bind(render_ms)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
