//! The inbox: chat requests stored before the platform is acknowledged, then
//! processed off the request path. Many concurrent requests are written as one
//! multi-row INSERT (see `engine::writer`).

use super::replay::{Recent, REPLAY_WINDOW};
use super::{int, opt_text, params, text, Backend, Conn, Result, Store, Tx, ORPHANED};
use crate::clock::Millis;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// One stored chat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboxItem {
    /// Assigned by the writer; time-ordered.
    pub id: i64,
    pub received_at: Millis,
    /// The platform name of its origin.
    pub source: String,
    pub actor: String,
    pub channel: Option<String>,
    pub thread: Option<String>,
    pub text: String,
    /// What the adapter needs to answer (JSON, adapter-defined).
    pub origin: String,
    /// Platform retries carry the same key and are stored once.
    pub dedupe_key: Option<String>,
}

const COLUMNS: &str = "id, received_at, source, actor, channel, thread, text, origin, dedupe_key";

impl Store {
    /// Stores a batch in one statement. Returns the ids actually inserted:
    /// items whose `dedupe_key` was seen before are left out (on SQLite
    /// within [`REPLAY_WINDOW`] of the newest stored request, by the replay
    /// filter in memory; on PostgreSQL by the UNIQUE index).
    pub async fn insert_inbox_batch(&self, items: &[&InboxItem]) -> Result<Vec<i64>> {
        self.conn().await?.insert_inbox_batch(items).await
    }

    /// The replay filter, loaded at the first call from the keys of the rows
    /// stored within the window of the newest (ids are time-ordered:
    /// `received_at << 20 | n`, so this reads a range of the primary key).
    async fn recent(&self, conn: &mut AnyConnection) -> Result<&std::sync::Mutex<Recent>> {
        self.recent
            .get_or_try_init(|| async {
                let rows = sqlx::query(
                    "SELECT dedupe_key, received_at FROM inbox
                     WHERE id >= (SELECT MAX(id) FROM inbox) - $1 AND dedupe_key IS NOT NULL
                     ORDER BY id",
                )
                .bind(REPLAY_WINDOW << 20)
                .fetch_all(&mut *conn)
                .await?;
                let mut recent = Recent::new();
                for r in &rows {
                    recent.reserve(&text(r, "dedupe_key")?, int(r, "received_at")?);
                }
                Ok(std::sync::Mutex::new(recent))
            })
            .await
    }
}

impl Conn {
    /// [`Store::insert_inbox_batch`] on this connection.
    pub async fn insert_inbox_batch(&mut self, items: &[&InboxItem]) -> Result<Vec<i64>> {
        let store = &self.store;
        if store.backend != Backend::Sqlite {
            return insert_rows(&mut self.conn, store.backend, items).await;
        }
        let recent = store.recent(&mut self.conn).await?;
        let fresh: Vec<&InboxItem> = {
            let mut r = lock(recent);
            items
                .iter()
                .copied()
                .filter(|it| {
                    it.dedupe_key
                        .as_deref()
                        .is_none_or(|k| r.reserve(k, it.received_at))
                })
                .collect()
        };
        let stored = insert_rows(&mut self.conn, store.backend, &fresh).await;
        if stored.is_err() {
            // Nothing was stored: the platform's retry must be accepted.
            release(recent, fresh.iter().copied());
        }
        stored
    }

    /// new → abandoned: committed after the caller stopped waiting for the
    /// ack, so the user was told nothing was stored. Never run; the dedupe
    /// key is released so the platform's retry is accepted.
    pub async fn abandon_inbox(&mut self, items: &[InboxItem]) -> Result<()> {
        for chunk in items.chunks(500) {
            let sql = format!(
                "UPDATE inbox SET state = 'abandoned', dedupe_key = NULL WHERE state = 'new' AND id IN ({})",
                params(self.store.backend, 1, chunk.len()).join(",")
            );
            let mut q = sqlx::query(&sql);
            for it in chunk {
                q = q.bind(it.id);
            }
            q.execute(&mut *self.conn).await?;
        }
        if let Some(recent) = self.store.recent.get() {
            release(recent, items.iter());
        }
        Ok(())
    }
}

async fn insert_rows(conn: &mut AnyConnection, backend: Backend, items: &[&InboxItem]) -> Result<Vec<i64>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<String> = (0..items.len())
        .map(|i| format!("({})", params(backend, i * 9 + 1, 9).join(",")))
        .collect();
    let sql = format!(
        "INSERT INTO inbox ({COLUMNS}) VALUES {} ON CONFLICT DO NOTHING",
        rows.join(",")
    );
    let mut q = sqlx::query(&sql);
    for it in items {
        q = q
            .bind(it.id)
            .bind(it.received_at)
            .bind(&it.source)
            .bind(&it.actor)
            .bind(&it.channel)
            .bind(&it.thread)
            .bind(&it.text)
            .bind(&it.origin)
            .bind(&it.dedupe_key);
    }
    // No RETURNING: rows read back cost more than the insert itself, and
    // nearly every batch has no repeat.
    let done = q.execute(&mut *conn).await?;
    if done.rows_affected() == items.len() as u64 {
        return Ok(items.iter().map(|it| it.id).collect());
    }
    // Some repeated a stored dedupe key: ours are the rows stored under
    // our ids with our keys.
    let sql = format!(
        "SELECT id, dedupe_key FROM inbox WHERE id IN ({})",
        params(backend, 1, items.len()).join(",")
    );
    let mut q = sqlx::query(&sql);
    for it in items {
        q = q.bind(it.id);
    }
    let mut stored = std::collections::HashMap::new();
    for r in q.fetch_all(&mut *conn).await? {
        stored.insert(int(&r, "id")?, opt_text(&r, "dedupe_key")?);
    }
    Ok(items
        .iter()
        .filter(|it| stored.get(&it.id).is_some_and(|k| *k == it.dedupe_key))
        .map(|it| it.id)
        .collect())
}

impl Store {
    /// new → processing. True for exactly one caller.
    pub async fn claim_inbox(&self, id: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE inbox SET state = 'processing', owner = $2 WHERE id = $1 AND state = 'new'")
                .bind(id)
                .bind(&*self.instance)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Claims up to `limit` unprocessed items received before `before`,
    /// oldest first (new → processing in one statement); each is returned to
    /// exactly one caller. (Younger items are claimed by id, once their
    /// writer has confirmed their ack: see [`Store::claim_inbox_ids`].)
    pub async fn claim_new_inbox(&self, limit: i64, before: Millis) -> Result<Vec<InboxItem>> {
        let rows = sqlx::query(&format!(
            "UPDATE inbox SET state = 'processing', owner = $3
             WHERE state = 'new' AND id IN (
                SELECT id FROM inbox WHERE state = 'new' AND received_at < $2 ORDER BY id LIMIT $1)
             RETURNING {COLUMNS}"
        ))
        .bind(limit)
        .bind(before)
        .bind(&*self.instance)
        .fetch_all(&self.pool)
        .await?;
        sorted(rows)
    }

    /// Claims the items `ids` that are still new (new → processing).
    pub async fn claim_inbox_ids(&self, ids: &[i64]) -> Result<Vec<InboxItem>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "UPDATE inbox SET state = 'processing', owner = {} WHERE state = 'new' AND id IN ({}) RETURNING {COLUMNS}",
            params(self.backend, 1, 1)[0],
            params(self.backend, 2, ids.len()).join(",")
        );
        let mut q = sqlx::query(&sql).bind(&*self.instance);
        for id in ids {
            q = q.bind(*id);
        }
        sorted(q.fetch_all(&self.pool).await?)
    }

    /// Up to `limit` unprocessed items, oldest first.
    pub async fn new_inbox_items(&self, limit: i64) -> Result<Vec<InboxItem>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM inbox WHERE state = 'new' ORDER BY id LIMIT $1"
        ))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// Items left `processing` by an instance that is no longer alive at
    /// `now` (cut off mid-way by a crash or a stop).
    pub async fn orphaned_inbox_items(&self, now: Millis) -> Result<Vec<InboxItem>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM inbox WHERE state = 'processing' AND {ORPHANED} ORDER BY id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }

    /// The item's state (tests and diagnostics).
    pub async fn inbox_state(&self, id: i64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT state FROM inbox WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| text(&r, "state")).transpose()
    }
}

super::on_tx! {
    /// processing → done, in its own transaction.
    fn finish_inbox(id: i64) -> bool;
}

impl Tx {
    /// processing → done (in the transaction of the request's last step).
    pub async fn finish_inbox(&mut self, id: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE inbox SET state = 'done' WHERE id = $1 AND state = 'processing'")
            .bind(id)
            .execute(self.conn())
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// processing → done for every id of `ids`.
    pub async fn finish_inbox_batch(&mut self, ids: &[i64]) -> Result<()> {
        for chunk in ids.chunks(500) {
            let list = params(self.backend(), 1, chunk.len()).join(",");
            let sql =
                format!("UPDATE inbox SET state = 'done' WHERE state = 'processing' AND id IN ({list})");
            let mut q = sqlx::query(&sql);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }

    /// processing → interrupted: cut off by a restart, never re-run. True
    /// for exactly one caller.
    pub async fn interrupt_inbox(&mut self, id: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE inbox SET state = 'interrupted' WHERE id = $1 AND state = 'processing'")
                .bind(id)
                .execute(self.conn())
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

/// The filter's lock; a panic while it was held cannot leave it half-updated
/// in a way that matters (at worst a key is remembered or forgotten early).
fn lock(m: &std::sync::Mutex<Recent>) -> std::sync::MutexGuard<'_, Recent> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Forgets the dedupe keys of `items` in the replay filter.
fn release<'a>(recent: &std::sync::Mutex<Recent>, items: impl Iterator<Item = &'a InboxItem>) {
    let mut r = lock(recent);
    for k in items.filter_map(|it| it.dedupe_key.as_deref()) {
        r.release(k);
    }
}

fn sorted(rows: Vec<AnyRow>) -> Result<Vec<InboxItem>> {
    let mut items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    items.sort_by_key(|i| i.id);
    Ok(items)
}

fn from_row(r: &AnyRow) -> Result<InboxItem> {
    Ok(InboxItem {
        id: int(r, "id")?,
        received_at: int(r, "received_at")?,
        source: text(r, "source")?,
        actor: text(r, "actor")?,
        channel: opt_text(r, "channel")?,
        thread: opt_text(r, "thread")?,
        text: r.try_get::<String, _>("text")?,
        origin: text(r, "origin")?,
        dedupe_key: opt_text(r, "dedupe_key")?,
    })
}

impl Store {
    /// Counts per state, for `/metrics`.
    pub async fn inbox_counts(&self) -> Result<Vec<(String, i64)>> {
        self.counts_by_state("inbox").await
    }

    /// How many requests are stored and not finished (new or processing):
    /// read through the state index, so it costs what is open, not the table.
    pub async fn inbox_open(&self) -> Result<i64> {
        let r = sqlx::query("SELECT COUNT(*) AS n FROM inbox WHERE state IN ('new', 'processing')")
            .fetch_one(&self.pool)
            .await?;
        int(&r, "n")
    }

    /// Deletes finished requests (done, interrupted) received before `before`.
    pub async fn inbox_prune(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query(
            "DELETE FROM inbox WHERE state IN ('done', 'interrupted', 'abandoned') AND received_at < $1",
        )
        .bind(before)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }
}
