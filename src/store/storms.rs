//! Alert storms (migration 0013): per chat channel, the storm while its
//! alert messages would outrun the channel's pace, and the groups its digest
//! sums up. The policy (when a storm starts and ends, what the digest shows)
//! is `alerts::digest`; this is its storage.

use super::alerts::opt_int;
use super::alerts::stored_alert;
use super::{int, params, text, Result, Store, StoredAlert, Tx};
use crate::clock::Millis;
use sqlx::any::AnyRow;
use std::collections::{HashMap, HashSet};

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
}

const STORM_COLUMNS: &str =
    "id, platform, channel, started_at, last_at, shown_at, rendered_at, ended_at, incidents";

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

    /// Every alert of the groups storm `id` sums up.
    pub async fn storm_alerts(&self, id: i64) -> Result<Vec<StoredAlert>> {
        let rows = sqlx::query(
            "SELECT a.*, g.route, g.group_key FROM alerts a
             JOIN alert_storm_groups s ON s.group_id = a.group_id
             JOIN alert_groups g ON g.id = a.group_id
             WHERE s.storm_id = $1 ORDER BY a.id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stored_alert).collect()
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
    /// `shown_at` (rendered at `now`); `end`: the storm is over, unless a
    /// change came in after `shown_at`. False if another instance recorded
    /// it first, the storm already ended, or it did not calm down after all.
    pub async fn mark_storm_rendered(
        &mut self,
        id: i64,
        shown_at: Millis,
        now: Millis,
        end: bool,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE alert_storms SET shown_at = $2, rendered_at = $3,
               ended_at = CASE WHEN $4 = 1 THEN $3 ELSE NULL END
             WHERE id = $1 AND ended_at IS NULL
               AND ((($4 = 1) AND last_at = $2) OR (($4 = 0) AND shown_at < $2))",
        )
        .bind(id)
        .bind(shown_at)
        .bind(now)
        .bind(i64::from(end))
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
