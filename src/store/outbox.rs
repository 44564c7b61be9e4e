//! The outbox: every outgoing chat post or edit is a row first, and the sender
//! (`engine::outbox`) delivers pending rows oldest-first per channel. Every
//! state change is a conditional UPDATE on `state = 'pending'`, so a row that
//! was superseded while in flight is never resurrected.

use super::{int, opt_text, params, text, Result, Store, StoreError, Tx};
use crate::clock::Millis;
use serde_json::Value;
use sqlx::any::AnyRow;

/// One message (or edit) to deliver to a chat channel.
#[derive(Debug, Clone, PartialEq)]
pub struct OutMessage {
    /// Which platform's sender delivers it (`OutMessage::platform` names a
    /// registered `ChatApi`).
    pub platform: String,
    /// The channel id (for an update: the channel of the keyed message).
    pub channel: String,
    /// What to do with the body.
    pub op: OutOp,
    /// The platform's message JSON, as its renderer built it.
    pub body: Value,
}

/// The kind of delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutOp {
    /// A new message; `key` names it for later updates and replies.
    /// `fallback` is a reply handle the request carried, to post through
    /// instead when the bot is not a member of the channel (unkeyed posts only).
    Post {
        key: Option<String>,
        thread: Option<Thread>,
        fallback: Option<String>,
    },
    /// An edit of the message posted with `key`.
    Update { key: String },
    /// A message only `user` sees.
    Ephemeral { user: String, thread: Option<Thread> },
    /// An answer through `handle`, a reply handle the request carried (e.g. a
    /// chat interaction's own response, valid for a limited time), in
    /// `channel`. `user`: only that user sees it. `key` names the resulting
    /// message for later updates and replies. When the platform says the
    /// handle has expired, a public answer is posted to the channel instead
    /// (under the same key); a private one is given up.
    Respond {
        handle: String,
        key: Option<String>,
        user: Option<String>,
    },
}

/// Where a reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Thread {
    /// Under an existing message (its platform id).
    Ts(String),
    /// Under our own message posted with this key.
    Key(String),
}

/// States of an outbox row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxState {
    Pending,
    Sent,
    Superseded,
    Failed,
}

impl OutboxState {
    /// Every state, in display order (for metrics).
    pub const ALL: [OutboxState; 4] = [
        OutboxState::Pending,
        OutboxState::Sent,
        OutboxState::Superseded,
        OutboxState::Failed,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            OutboxState::Pending => "pending",
            OutboxState::Sent => "sent",
            OutboxState::Superseded => "superseded",
            OutboxState::Failed => "failed",
        }
    }
}

/// A pending row as the sender sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub attempts: u32,
    pub next_at: Millis,
    pub created_at: Millis,
    /// The sender instance holding the row, and until when.
    pub claimed_by: Option<String>,
    pub claimed_until: Millis,
    pub message: OutMessage,
}

impl OutboxRow {
    /// Held by another sender instance whose lease has not lapsed.
    pub fn claimed_elsewhere(&self, me: &str, now: Millis) -> bool {
        self.claimed_until > now && self.claimed_by.as_deref().is_some_and(|c| c != me)
    }
}

/// A row that failed for good, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxFailure {
    pub id: i64,
    pub channel: String,
    pub op: String,
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// Where the message posted under a key is, as far as the sender can tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// Posted: edit or reply to `ts` in `channel`.
    Posted { channel: String, ts: String },
    /// An earlier post with this key is still pending: wait for it.
    Waiting,
    /// There is no such message and never will be (its post failed, or no
    /// post with this key was enqueued before the row asking).
    Missing(String),
}

const ROW_COLUMNS: &str =
    "o.id, o.platform, o.channel, o.op, o.msg_key, o.thread_ts, o.thread_key, o.user_id, o.body, o.attempts, o.next_at, o.fallback_url, o.created_at, o.claimed_by, o.claimed_until, o.reply_handle";

super::on_tx! {
    /// Enqueues `msgs` in their own transaction (see [`Tx::enqueue_messages`]).
    fn enqueue_messages(msgs: &[OutMessage], now: Millis) -> ();
}

impl Tx {
    /// Enqueues `msgs` in this transaction, in order. An update marks older
    /// pending updates of the same key `superseded`: only the newest edit of
    /// a message is ever sent.
    pub async fn enqueue_messages(&mut self, msgs: &[OutMessage], now: Millis) -> Result<()> {
        let mut run: Vec<&OutMessage> = Vec::new();
        for m in msgs {
            if let OutOp::Update { key } = &m.op {
                self.insert_rows(&run, now).await?;
                run.clear();
                sqlx::query(
                    "UPDATE outbox SET state = 'superseded'
                     WHERE platform = $1 AND msg_key = $2 AND op = 'update' AND state = 'pending'",
                )
                .bind(&m.platform)
                .bind(key)
                .execute(self.conn())
                .await?;
            }
            run.push(m);
        }
        self.insert_rows(&run, now).await
    }

    /// Inserts `msgs` in order, many rows per statement.
    async fn insert_rows(&mut self, msgs: &[&OutMessage], now: Millis) -> Result<()> {
        // now is bound twice (next_at, created_at): positional parameters.
        const PER_ROW: usize = 12;
        let backend = self.backend();
        for chunk in msgs.chunks(64) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    let p = params(backend, i * PER_ROW + 1, PER_ROW);
                    format!(
                        "({}, {}, {}, {}, {}, {}, {}, {}, 'pending', 0, {}, {}, {}, {})",
                        p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO outbox (platform, channel, op, msg_key, thread_ts, thread_key, user_id, body,
                    state, attempts, next_at, created_at, fallback_url, reply_handle) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for m in chunk {
                let c = Columns::of(&m.op);
                q = q
                    .bind(&m.platform)
                    .bind(&m.channel)
                    .bind(c.op)
                    .bind(c.key)
                    .bind(c.thread_ts)
                    .bind(c.thread_key)
                    .bind(c.user)
                    .bind(m.body.to_string())
                    .bind(now)
                    .bind(now)
                    .bind(c.fallback)
                    .bind(c.handle);
            }
            q.execute(self.conn()).await?;
        }
        Ok(())
    }
}

impl Store {
    /// The head of every channel of `platform`: its oldest pending row, due
    /// or not (the sender sleeps until the earliest `next_at`). Oldest first.
    pub async fn outbox_heads(&self, platform: &str) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox o
             JOIN (SELECT channel, MIN(id) AS head FROM outbox
                   WHERE platform = $1 AND state = 'pending' GROUP BY channel) h
               ON o.id = h.head
             ORDER BY o.id"
        ))
        .bind(platform)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// Claims pending row `id` for sender `me` until `until`, unless another
    /// sender holds a live claim. True for exactly one claimant.
    pub async fn outbox_claim(&self, id: i64, me: &str, now: Millis, until: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET claimed_by = $2, claimed_until = $4
             WHERE id = $1 AND state = 'pending' AND (claimed_until <= $3 OR claimed_by = $2)",
        )
        .bind(id)
        .bind(me)
        .bind(now)
        .bind(until)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Every pending row of `platform`, oldest first (tests and diagnostics).
    pub async fn outbox_pending_for_tests(&self, platform: &str) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ROW_COLUMNS} FROM outbox o WHERE o.platform = $1 AND o.state = 'pending' ORDER BY o.id"
        ))
        .bind(platform)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_from).collect()
    }

    /// pending → sent. False if the row was no longer pending.
    pub async fn outbox_mark_sent(&self, id: i64, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $2, attempts = attempts + 1
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// pending → sent for a keyed post, recording where the message lives
    /// (`key` → `channel`, `ts`) in the same transaction. A later post under
    /// the same key takes the key over.
    pub async fn outbox_mark_posted(
        &self,
        id: i64,
        platform: &str,
        key: &str,
        channel: &str,
        ts: &str,
        now: Millis,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE outbox SET state = 'sent', sent_at = $2, attempts = attempts + 1
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO chat_messages (platform, msg_key, channel, ts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (platform, msg_key) DO UPDATE SET channel = excluded.channel, ts = excluded.ts",
        )
        .bind(platform)
        .bind(key)
        .bind(channel)
        .bind(ts)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// A failed attempt that will be retried at `next_at` (attempts + 1).
    pub async fn outbox_retry_at(&self, id: i64, next_at: Millis, error: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET next_at = $2, attempts = attempts + 1, last_error = $3, claimed_until = 0
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(next_at)
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Postpones a row that could not be attempted yet (it waits for the
    /// message it refers to); not counted as an attempt.
    pub async fn outbox_defer(&self, id: i64, next_at: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET next_at = $2, claimed_until = 0 WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(next_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// pending → failed, for good, with the reason.
    pub async fn outbox_mark_failed(&self, id: i64, error: &str, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE outbox SET state = 'failed', last_error = $2, sent_at = $3, attempts = attempts + 1
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(error)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Resolves `key` for the row `asking` (an update or a threaded reply):
    /// waits while an earlier post with that key is pending, else answers
    /// where the keyed message lives, or that it never will.
    pub async fn resolve_message_key(&self, platform: &str, key: &str, asking: i64) -> Result<KeyLookup> {
        let latest = sqlx::query(
            "SELECT state FROM outbox
             WHERE platform = $1 AND msg_key = $2 AND op = 'post' AND id < $3
             ORDER BY id DESC LIMIT 1",
        )
        .bind(platform)
        .bind(key)
        .bind(asking)
        .fetch_optional(&self.pool)
        .await?;
        let latest = latest.map(|r| text(&r, "state")).transpose()?;
        if latest.as_deref() == Some("pending") {
            return Ok(KeyLookup::Waiting);
        }
        if let Some((channel, ts)) = self.chat_message(platform, key).await? {
            return Ok(KeyLookup::Posted { channel, ts });
        }
        Ok(KeyLookup::Missing(match latest.as_deref() {
            Some("failed") => format!("message `{key}` failed to post"),
            _ => format!("no message was posted with key `{key}`"),
        }))
    }

    /// Where the message posted under `key` lives: `(channel, ts)`.
    pub async fn chat_message(&self, platform: &str, key: &str) -> Result<Option<(String, String)>> {
        let row = sqlx::query("SELECT channel, ts FROM chat_messages WHERE platform = $1 AND msg_key = $2")
            .bind(platform)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((text(&r, "channel")?, text(&r, "ts")?)))
            .transpose()
    }

    /// Outbox rows per state, for `/metrics`.
    pub async fn outbox_counts(&self) -> Result<Vec<(String, i64)>> {
        self.counts_by_state("outbox").await
    }

    /// Deletes finished rows (sent, superseded, failed) created before
    /// `before`; answers how many. `chat_messages` is kept, so old messages
    /// can still be edited and replied to.
    pub async fn outbox_prune(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM outbox WHERE state <> 'pending' AND created_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// The most recent rows that failed for good, newest first.
    pub async fn outbox_failures(&self, limit: i64) -> Result<Vec<OutboxFailure>> {
        let rows = sqlx::query(
            "SELECT id, channel, op, attempts, last_error FROM outbox
             WHERE state = 'failed' ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutboxFailure {
                    id: int(r, "id")?,
                    channel: text(r, "channel")?,
                    op: text(r, "op")?,
                    attempts: int(r, "attempts")?,
                    last_error: opt_text(r, "last_error")?,
                })
            })
            .collect()
    }
}

/// An [`OutOp`] flattened into its columns.
struct Columns<'a> {
    op: &'static str,
    key: Option<&'a str>,
    thread_ts: Option<&'a str>,
    thread_key: Option<&'a str>,
    user: Option<&'a str>,
    fallback: Option<&'a str>,
    handle: Option<&'a str>,
}

impl<'a> Columns<'a> {
    fn of(op: &'a OutOp) -> Self {
        let none = Columns {
            op: "post",
            key: None,
            thread_ts: None,
            thread_key: None,
            user: None,
            fallback: None,
            handle: None,
        };
        match op {
            OutOp::Post {
                key,
                thread,
                fallback,
            } => Columns {
                key: key.as_deref(),
                fallback: fallback.as_deref(),
                ..none.with_thread(thread)
            },
            OutOp::Update { key } => Columns {
                op: "update",
                key: Some(key),
                ..none
            },
            OutOp::Ephemeral { user, thread } => Columns {
                op: "ephemeral",
                user: Some(user),
                ..none.with_thread(thread)
            },
            // A public answer is a post, a private one an ephemeral: only the
            // handle tells them from ordinary ones.
            OutOp::Respond { handle, key, user } => Columns {
                op: if user.is_some() { "ephemeral" } else { "post" },
                key: key.as_deref(),
                user: user.as_deref(),
                handle: Some(handle),
                ..none
            },
        }
    }

    fn with_thread(self, thread: &'a Option<Thread>) -> Self {
        match thread {
            Some(Thread::Ts(ts)) => Columns {
                thread_ts: Some(ts),
                ..self
            },
            Some(Thread::Key(k)) => Columns {
                thread_key: Some(k),
                ..self
            },
            None => self,
        }
    }
}

fn row_from(r: &AnyRow) -> Result<OutboxRow> {
    let thread = match (opt_text(r, "thread_ts")?, opt_text(r, "thread_key")?) {
        (Some(ts), _) => Some(Thread::Ts(ts)),
        (None, Some(k)) => Some(Thread::Key(k)),
        (None, None) => None,
    };
    let key = opt_text(r, "msg_key")?;
    let op_text = text(r, "op")?;
    let op = match (op_text.as_str(), opt_text(r, "reply_handle")?) {
        ("post" | "ephemeral", Some(handle)) => OutOp::Respond {
            handle,
            key,
            user: opt_text(r, "user_id")?,
        },
        (op_text, _) => match op_text {
            "post" => OutOp::Post {
                key,
                thread,
                fallback: opt_text(r, "fallback_url")?,
            },
            "update" => OutOp::Update {
                key: key.ok_or_else(|| StoreError::Corrupt("outbox update without a key".into()))?,
            },
            "ephemeral" => OutOp::Ephemeral {
                user: opt_text(r, "user_id")?
                    .ok_or_else(|| StoreError::Corrupt("outbox ephemeral without a user".into()))?,
                thread,
            },
            other => return Err(StoreError::Corrupt(format!("outbox op `{other}`"))),
        },
    };
    let body: Value = serde_json::from_str(&text(r, "body")?)
        .map_err(|e| StoreError::Corrupt(format!("outbox body: {e}")))?;
    Ok(OutboxRow {
        id: int(r, "id")?,
        attempts: u32::try_from(int(r, "attempts")?).unwrap_or(u32::MAX),
        next_at: int(r, "next_at")?,
        created_at: int(r, "created_at")?,
        claimed_by: opt_text(r, "claimed_by")?,
        claimed_until: int(r, "claimed_until")?,
        message: OutMessage {
            platform: text(r, "platform")?,
            channel: text(r, "channel")?,
            op,
            body,
        },
    })
}
