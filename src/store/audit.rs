//! The audit log: appended under a lock on the single `audit_head` row, so
//! concurrent appends (threads or processes) form one unbroken chain.

use super::{int, opt_text, text, Result, Store, Tx};
use crate::audit::{chain_hash, Entry, Head, Record, CURRENT_VERSION};
use sqlx::Row;

super::on_tx! {
    /// Appends `entry` to the chain in its own transaction.
    fn append_audit(entry: &Entry) -> i64;
}

impl Tx {
    /// Appends `entry` to the chain; returns its sequence number.
    pub async fn append_audit(&mut self, entry: &Entry) -> Result<i64> {
        let tx = &mut self.inner;
        // Writing first takes the write lock at once (SQLite) / locks the row (Postgres).
        let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
            .fetch_one(&mut **tx)
            .await?;
        let seq = int(&head, "seq")?;
        let prev = text(&head, "hash")?;
        let hash = chain_hash(&prev, seq, entry);
        sqlx::query(
            "INSERT INTO audit_log (seq, at, kind, person, identity, source, channel, command, args, outcome, detail, prev_hash, hash, hash_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(seq)
        .bind(entry.at)
        .bind(&entry.kind)
        .bind(&entry.person)
        .bind(&entry.identity)
        .bind(&entry.source)
        .bind(&entry.channel)
        .bind(&entry.command)
        .bind(&entry.args)
        .bind(&entry.outcome)
        .bind(&entry.detail)
        .bind(&prev)
        .bind(&hash)
        .bind(i64::from(CURRENT_VERSION))
        .execute(&mut **tx)
        .await?;
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&hash)
            .execute(&mut **tx)
            .await?;
        Ok(seq)
    }
}

impl Store {
    /// The stored head: the last appended entry's seq and hash. Read it
    /// before [`Store::audit_records`] to check the chain's end.
    pub async fn audit_head(&self) -> Result<Head> {
        let row = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(Head {
            seq: int(&row, "seq")?,
            hash: text(&row, "hash")?,
        })
    }

    /// The whole chain in order (for `opsbot audit verify` and tests).
    pub async fn audit_records(&self) -> Result<Vec<Record>> {
        let rows = sqlx::query(
            "SELECT seq, at, kind, person, identity, source, channel, command, args, outcome, detail, prev_hash, hash, hash_version
             FROM audit_log ORDER BY seq",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Record {
                    seq: int(r, "seq")?,
                    entry: Entry {
                        at: int(r, "at")?,
                        kind: text(r, "kind")?,
                        person: text(r, "person")?,
                        identity: text(r, "identity")?,
                        source: opt_text(r, "source")?.unwrap_or_default(),
                        channel: opt_text(r, "channel")?,
                        command: opt_text(r, "command")?,
                        args: opt_text(r, "args")?,
                        outcome: text(r, "outcome")?,
                        detail: opt_text(r, "detail")?,
                    },
                    prev_hash: text(r, "prev_hash")?,
                    hash: r.try_get::<String, _>("hash")?,
                    version: u8::try_from(int(r, "hash_version")?)
                        .map_err(|_| super::StoreError::Corrupt("audit hash_version".into()))?,
                })
            })
            .collect()
    }
}
