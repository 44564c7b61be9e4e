//! The timer table: one row per pending deadline (kind, item, due time). The
//! timer loop (`engine::timers`) sleeps until the earliest `due_at` (an index
//! lookup, whatever the number of rows) and fires each due item in the
//! transaction that applies its effects: taking the row is the claim, so two
//! instances never fire one item twice, and a crash fires it again later.

use super::{int, params, text, Result, Store, Tx};
use crate::clock::Millis;
use sqlx::Row;

/// Kind of the approval-expiry timers (item: the approval id).
pub const APPROVAL_EXPIRY: &str = "approval.expire";

/// A due (or pending) item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    pub kind: String,
    pub item: String,
    pub due_at: Millis,
}

impl Tx {
    /// Sets (or moves) the deadline of `(kind, item)`.
    pub async fn schedule(&mut self, kind: &str, item: &str, due_at: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO timers (kind, item, due_at) VALUES ($1, $2, $3)
             ON CONFLICT (kind, item) DO UPDATE SET due_at = excluded.due_at, claimed_until = 0",
        )
        .bind(kind)
        .bind(item)
        .bind(due_at)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Sets many deadlines of one kind at once (many rows per statement).
    pub async fn schedule_many(&mut self, kind: &str, items: &[(String, Millis)]) -> Result<()> {
        let backend = self.backend();
        for chunk in items.chunks(300) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("({})", params(backend, 3 * i + 1, 3).join(", ")))
                .collect();
            let sql = format!(
                "INSERT INTO timers (kind, item, due_at) VALUES {}
                 ON CONFLICT (kind, item) DO UPDATE SET due_at = excluded.due_at, claimed_until = 0",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (item, due) in chunk {
                q = q.bind(kind).bind(item).bind(*due);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// Removes the deadline of `(kind, item)`, if any.
    pub async fn cancel(&mut self, kind: &str, item: &str) -> Result<()> {
        sqlx::query("DELETE FROM timers WHERE kind = $1 AND item = $2")
            .bind(kind)
            .bind(item)
            .execute(self.conn())
            .await?;
        Ok(())
    }

    /// Takes `(kind, item)` if it is due at `now`: true for exactly one
    /// caller (the row is deleted in this transaction; on Postgres a racing
    /// instance waits on the row lock and then finds nothing).
    pub async fn take_timer(&mut self, kind: &str, item: &str, now: Millis) -> Result<bool> {
        let done = sqlx::query("DELETE FROM timers WHERE kind = $1 AND item = $2 AND due_at <= $3")
            .bind(kind)
            .bind(item)
            .bind(now)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Tx {
    /// Takes every `(kind, item)` of `items` that is due at `now`; answers
    /// the items taken (each by exactly one caller, as [`Tx::take_timer`]).
    pub async fn take_timers(&mut self, kind: &str, items: &[String], now: Millis) -> Result<Vec<String>> {
        let backend = self.backend();
        let mut taken = Vec::new();
        for chunk in items.chunks(300) {
            let list = params(backend, 3, chunk.len()).join(", ");
            let sql = format!(
                "DELETE FROM timers WHERE kind = {} AND due_at <= {} AND item IN ({list}) RETURNING item",
                params(backend, 1, 1)[0],
                params(backend, 2, 1)[0],
            );
            let mut q = sqlx::query(&sql).bind(kind).bind(now);
            for item in chunk {
                q = q.bind(item);
            }
            for row in q.fetch_all(self.conn()).await? {
                taken.push(super::text(&row, "item")?);
            }
        }
        Ok(taken)
    }
}

super::on_tx! {
    /// Sets (or moves) a deadline in its own transaction.
    fn schedule(kind: &str, item: &str, due_at: Millis) -> ();
    /// Sets many deadlines in one transaction.
    fn schedule_many(kind: &str, items: &[(String, Millis)]) -> ();
}

impl Store {
    /// The earliest deadline, if any (an index lookup).
    pub async fn next_due(&self) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT due_at FROM timers ORDER BY due_at LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| int(&r, "due_at")).transpose()
    }

    /// Up to `limit` items due at `now`, earliest first.
    pub async fn due_timers(&self, now: Millis, limit: i64) -> Result<Vec<Timer>> {
        let rows =
            sqlx::query("SELECT kind, item, due_at FROM timers WHERE due_at <= $1 ORDER BY due_at LIMIT $2")
                .bind(now)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(Timer {
                    kind: text(r, "kind")?,
                    item: text(r, "item")?,
                    due_at: r.try_get::<i64, _>("due_at")?,
                })
            })
            .collect()
    }

    /// When `(kind, item)` is due, if it is pending.
    pub async fn timer_due(&self, kind: &str, item: &str) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT due_at FROM timers WHERE kind = $1 AND item = $2")
            .bind(kind)
            .bind(item)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| int(&r, "due_at")).transpose()
    }

    /// How many deadlines are pending (metrics, tests).
    pub async fn timer_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM timers")
            .fetch_one(&self.pool)
            .await?;
        int(&row, "n")
    }
}
