//! Silences and maintenance windows (migration 0013), and the reads the
//! silence logic needs: every open alert with its group's routing, for
//! matching in pure code (`alerts::silence`), and touching the groups a
//! silence's start or end changes so the alert poster renders them again.

use super::alerts::stored_alert;
use super::{int, opt_text, text, Result, Store, StoredAlert, Tx};
use crate::clock::Millis;
use sqlx::any::AnyRow;
use sqlx::Row;

/// Kind of the silence-end timers (item: the silence id).
pub const SILENCE_END: &str = "silence.end";
/// Kind of the timers of silences that start later (item: the silence id):
/// a scheduled maintenance window's start.
pub const SILENCE_START: &str = "silence.start";

/// A stored silence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRow {
    pub id: i64,
    /// `silence` or `maintenance`.
    pub kind: String,
    /// A JSON array of matcher texts.
    pub matchers: String,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub created_by: String,
    pub created_at: Millis,
    pub comment: Option<String>,
    /// Ended early (`/alerts unsilence`), by whom.
    pub ended_at: Option<Millis>,
    pub ended_by: Option<String>,
}

/// An open (not resolved) alert with its group's routing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub alert: StoredAlert,
    /// Its group's profile.
    pub profile: Option<String>,
    /// When its record was opened.
    pub created_at: Millis,
}

const SILENCE_COLUMNS: &str =
    "id, kind, matchers, starts_at, ends_at, created_by, created_at, comment, ended_at, ended_by";

/// The silences active at `$1`, in id order.
const ACTIVE_SILENCES: &str =
    "SELECT id, kind, matchers, starts_at, ends_at, created_by, created_at, comment, ended_at, ended_by
     FROM silences WHERE ended_at IS NULL AND ends_at > $1 AND starts_at <= $1 ORDER BY id";

const OPEN_ALERTS: &str = "SELECT a.*, g.route, g.group_key, g.profile
     FROM alerts a JOIN alert_groups g ON g.id = a.group_id WHERE a.status <> 'resolved'";

impl Tx {
    /// Stores a new silence; answers it with its id.
    pub async fn add_silence(&mut self, s: &SilenceRow) -> Result<SilenceRow> {
        let row = sqlx::query(
            "INSERT INTO silences (kind, matchers, starts_at, ends_at, created_by, created_at, comment)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(&s.kind)
        .bind(&s.matchers)
        .bind(s.starts_at)
        .bind(s.ends_at)
        .bind(&s.created_by)
        .bind(s.created_at)
        .bind(&s.comment)
        .fetch_one(self.conn())
        .await?;
        Ok(SilenceRow {
            id: int(&row, "id")?,
            ..s.clone()
        })
    }

    /// Ends silence `id` early, if it is still active at `now`; false when
    /// it had ended already (expired, or ended by someone else).
    pub async fn end_silence(&mut self, id: i64, by: &str, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE silences SET ended_at = $3, ended_by = $2
             WHERE id = $1 AND ended_at IS NULL AND ends_at > $3",
        )
        .bind(id)
        .bind(by)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Silence `id`, if it exists.
    pub async fn silence(&mut self, id: i64) -> Result<Option<SilenceRow>> {
        let row = sqlx::query(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        row.as_ref().map(silence_row).transpose()
    }

    /// The silences active at `now` (not ended early, started, not yet
    /// over), in id order.
    pub async fn active_silences(&mut self, now: Millis) -> Result<Vec<SilenceRow>> {
        let rows = sqlx::query(ACTIVE_SILENCES)
            .bind(now)
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(silence_row).collect()
    }

    /// Every open alert with its group's routing.
    pub async fn open_alerts(&mut self) -> Result<Vec<OpenAlert>> {
        let rows = sqlx::query(&format!("{OPEN_ALERTS} ORDER BY a.id"))
            .fetch_all(self.conn())
            .await?;
        rows.iter().map(open_alert).collect()
    }

    /// Marks `groups` changed, so the alert poster renders them again (and
    /// decides their incident again). `updated_at` only grows.
    pub async fn touch_groups(&mut self, groups: &[i64], now: Millis) -> Result<()> {
        self.bump_groups(groups, now, "").await
    }
}

super::on_tx! {
    /// Silence `id`, if it exists (read in its own transaction).
    fn silence(id: i64) -> Option<SilenceRow>;
    /// Every open alert with its group's routing (read in its own transaction).
    fn open_alerts() -> Vec<OpenAlert>;
}

impl Store {
    /// The silences active at `now` (not ended early, started, not yet
    /// over), in id order.
    pub async fn active_silences(&self, now: Millis) -> Result<Vec<SilenceRow>> {
        let rows = sqlx::query(ACTIVE_SILENCES)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(silence_row).collect()
    }

    /// The silences not ended that start after `now`, soonest first.
    pub async fn upcoming_silences(&self, now: Millis) -> Result<Vec<SilenceRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {SILENCE_COLUMNS} FROM silences WHERE ended_at IS NULL AND starts_at > $1
             ORDER BY starts_at, id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(silence_row).collect()
    }

    /// Deletes the silences that ended (expired, or ended early) before
    /// `before`; answers how many. Their audit entries stay.
    pub async fn silences_prune(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM silences WHERE COALESCE(ended_at, ends_at) < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// Every stored silence, in id order (tests, diagnostics).
    pub async fn silences(&self) -> Result<Vec<SilenceRow>> {
        let rows = sqlx::query(&format!("SELECT {SILENCE_COLUMNS} FROM silences ORDER BY id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(silence_row).collect()
    }

    /// The open alerts of `group` that open an incident (their level at or
    /// above the route's threshold), the most severe first.
    pub async fn serious_open_alerts(&self, group: i64) -> Result<Vec<OpenAlert>> {
        let rows = sqlx::query(&format!(
            "{OPEN_ALERTS} AND a.group_id = $1 AND a.opens_incident <> 0 AND a.level IS NOT NULL
             ORDER BY a.level_rank, a.id"
        ))
        .bind(group)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(open_alert).collect()
    }

    /// The scope (`pagerduty/<integration>`) of the latest alert of `group`
    /// acknowledged at or after `since`, if any.
    pub async fn acknowledged_since(&self, group: i64, since: Millis) -> Result<Option<String>> {
        let row = sqlx::query(
            "SELECT scope FROM alerts WHERE group_id = $1 AND status = 'acknowledged' AND changed_at >= $2
             ORDER BY changed_at DESC, id DESC LIMIT 1",
        )
        .bind(group)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| text(&r, "scope")).transpose()
    }
}

fn silence_row(r: &AnyRow) -> Result<SilenceRow> {
    Ok(SilenceRow {
        id: int(r, "id")?,
        kind: text(r, "kind")?,
        matchers: text(r, "matchers")?,
        starts_at: int(r, "starts_at")?,
        ends_at: int(r, "ends_at")?,
        created_by: text(r, "created_by")?,
        created_at: int(r, "created_at")?,
        comment: opt_text(r, "comment")?,
        ended_at: r.try_get::<Option<i64>, _>("ended_at")?,
        ended_by: opt_text(r, "ended_by")?,
    })
}

fn open_alert(r: &AnyRow) -> Result<OpenAlert> {
    Ok(OpenAlert {
        alert: stored_alert(r)?,
        profile: opt_text(r, "profile")?,
        created_at: int(r, "created_at")?,
    })
}
