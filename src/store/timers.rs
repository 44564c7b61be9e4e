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

/// Kind of the scheduled actions (item: a fresh id; the row's payload says
/// what to run, where to answer and which message to edit): a watch's next
/// run, a command's follow-up.
pub const SCHEDULED: &str = "action.scheduled";

/// Kind of the guided runs waiting for a person's confirmation (item: the
/// run's id, `g…`; the payload says what runs on, where it answers and at
/// which step it waits; due: the confirmation's deadline, or while a
/// confirmed step runs, its lease).
pub const GUIDED: &str = "action.guided";

/// A pending row as it stands ([`Store::timer_row`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerRow {
    pub due_at: Millis,
    /// The payload (empty when it has none).
    pub payload: String,
    /// Non-zero while a claim holds the row: its lease.
    pub claimed_until: Millis,
}

/// A scheduled item taken for one run ([`Store::claim_timer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The row's payload (empty when it has none).
    pub payload: String,
    /// The lease this claim holds: [`Tx::settle_claim`] succeeds only while
    /// the row still carries it.
    pub lease: Millis,
    /// An earlier claim lapsed without settling: its run was cut off (a
    /// crash, a restart), its result unknown.
    pub lapsed: bool,
}

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

impl Tx {
    /// Sets (or moves) the deadline of `(kind, item)`, with its payload.
    pub async fn schedule_payload(
        &mut self,
        kind: &str,
        item: &str,
        due_at: Millis,
        payload: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO timers (kind, item, due_at, payload) VALUES ($1, $2, $3, $4)
             ON CONFLICT (kind, item) DO UPDATE SET due_at = excluded.due_at, payload = excluded.payload,
                 claimed_until = 0",
        )
        .bind(kind)
        .bind(item)
        .bind(due_at)
        .bind(payload)
        .execute(self.conn())
        .await?;
        Ok(())
    }

    /// Ends the run that claimed `(kind, item)` with `lease`: the row moves to
    /// `next` (due time, payload) or, without one, is deleted. False (and
    /// nothing changed) when the claim no longer holds the row: another
    /// instance found it lapsed and took it.
    pub async fn settle_claim(
        &mut self,
        kind: &str,
        item: &str,
        lease: Millis,
        next: Option<(Millis, &str)>,
    ) -> Result<bool> {
        let done = match next {
            Some((due, payload)) => {
                sqlx::query(
                    "UPDATE timers SET due_at = $4, payload = $5, claimed_until = 0
                     WHERE kind = $1 AND item = $2 AND claimed_until = $3",
                )
                .bind(kind)
                .bind(item)
                .bind(lease)
                .bind(due)
                .bind(payload)
                .execute(self.conn())
                .await?
            }
            None => {
                sqlx::query("DELETE FROM timers WHERE kind = $1 AND item = $2 AND claimed_until = $3")
                    .bind(kind)
                    .bind(item)
                    .bind(lease)
                    .execute(self.conn())
                    .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Claims `(kind, item)` for one run when it is due at `now`: in one
    /// transaction, the row's due time moves to `lease` (no loop sees it due
    /// again before then) and `claimed_until` records the claim. Exactly one
    /// caller gets it (the update is conditional on what was read). A row
    /// found due with an earlier claim is one whose run never settled: it is
    /// claimed again, marked `lapsed`, for the caller to report, not re-run.
    pub async fn claim_timer(
        &self,
        kind: &str,
        item: &str,
        now: Millis,
        lease: Millis,
    ) -> Result<Option<Claimed>> {
        let mut tx = self.begin().await?;
        let row = sqlx::query(
            "SELECT claimed_until, payload FROM timers WHERE kind = $1 AND item = $2 AND due_at <= $3",
        )
        .bind(kind)
        .bind(item)
        .bind(now)
        .fetch_optional(tx.conn())
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let before = int(&row, "claimed_until")?;
        let payload: Option<String> = row.try_get("payload")?;
        let done = sqlx::query(
            "UPDATE timers SET due_at = $4, claimed_until = $4
             WHERE kind = $1 AND item = $2 AND due_at <= $3 AND claimed_until = $5",
        )
        .bind(kind)
        .bind(item)
        .bind(now)
        .bind(lease)
        .bind(before)
        .execute(tx.conn())
        .await?;
        if done.rows_affected() != 1 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Claimed {
            payload: payload.unwrap_or_default(),
            lease,
            lapsed: before != 0,
        }))
    }
}

impl Tx {
    /// Deletes `(kind, item)` when no claim holds it and its payload is still
    /// `payload`: true for exactly one caller (a compare-and-set: whoever read
    /// an older payload, or raced a claim, gets false and nothing changes).
    pub async fn take_payload(&mut self, kind: &str, item: &str, payload: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM timers WHERE kind = $1 AND item = $2 AND claimed_until = 0 AND payload = $3",
        )
        .bind(kind)
        .bind(item)
        .bind(payload)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// `(kind, item)` as it stands, if pending.
    pub async fn timer_row(&self, kind: &str, item: &str) -> Result<Option<TimerRow>> {
        let row =
            sqlx::query("SELECT due_at, payload, claimed_until FROM timers WHERE kind = $1 AND item = $2")
                .bind(kind)
                .bind(item)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            let payload: Option<String> = r.try_get("payload")?;
            Ok(TimerRow {
                due_at: int(&r, "due_at")?,
                payload: payload.unwrap_or_default(),
                claimed_until: int(&r, "claimed_until")?,
            })
        })
        .transpose()
    }

    /// Claims `(kind, item)` before it is due, for one run, when no claim
    /// holds it, it is not due at `now` and its payload is still `payload`
    /// (a compare-and-set): its due time and `claimed_until` move to `lease`,
    /// settled later with [`Tx::settle_claim`]. True for exactly one caller.
    pub async fn claim_payload(
        &self,
        kind: &str,
        item: &str,
        payload: &str,
        now: Millis,
        lease: Millis,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE timers SET due_at = $5, claimed_until = $5
             WHERE kind = $1 AND item = $2 AND claimed_until = 0 AND payload = $3 AND due_at > $4",
        )
        .bind(kind)
        .bind(item)
        .bind(payload)
        .bind(now)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
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

    /// Every pending `(item, payload)` of `kind` (the scheduled actions a
    /// stop looks through: a few per channel at most).
    pub async fn timer_payloads(&self, kind: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query("SELECT item, payload FROM timers WHERE kind = $1 ORDER BY due_at")
            .bind(kind)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let payload: Option<String> = r.try_get("payload")?;
                Ok((text(r, "item")?, payload.unwrap_or_default()))
            })
            .collect()
    }

    /// How many deadlines are pending (metrics, tests).
    pub async fn timer_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM timers")
            .fetch_one(&self.pool)
            .await?;
        int(&row, "n")
    }
}
