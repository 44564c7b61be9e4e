//! The audit log: appended under a lock on the single `audit_head` row, so
//! concurrent appends (threads or processes) form one unbroken chain.

use super::{int, opt_text, text, Result, Store, Tx};
use crate::audit::{chain_hash, Entry, Head, Record, CURRENT_VERSION};
use sqlx::Row;

super::on_tx! {
    /// Appends `entry` to the chain in its own transaction.
    fn append_audit(entry: &Entry) -> i64;
    /// Appends `entries` to the chain in one transaction of their own.
    fn append_audits(entries: &[Entry]) -> i64;
}

impl Tx {
    /// Appends `entry` to the chain; returns its sequence number.
    pub async fn append_audit(&mut self, entry: &Entry) -> Result<i64> {
        self.append_audits(std::slice::from_ref(entry)).await
    }

    /// Appends `entries` in order, as one stretch of the chain: the head row
    /// is locked and moved once, the rows go in with multi-row INSERTs.
    /// Returns the last sequence number (the head's, when `entries` is empty).
    pub async fn append_audits(&mut self, entries: &[Entry]) -> Result<i64> {
        let n = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        // Writing first takes the write lock at once (SQLite) / locks the row (Postgres).
        let head = sqlx::query("UPDATE audit_head SET seq = seq + $1 WHERE id = 1 RETURNING seq, hash")
            .bind(n)
            .fetch_one(self.conn())
            .await?;
        let last = int(&head, "seq")?;
        let mut prev = text(&head, "hash")?;
        if entries.is_empty() {
            return Ok(last);
        }
        let mut rows = Vec::with_capacity(entries.len());
        for (seq, entry) in (last - n + 1..).zip(entries) {
            let hash = chain_hash(&prev, seq, entry);
            rows.push((seq, entry, std::mem::replace(&mut prev, hash.clone()), hash));
        }
        const PER_ROW: usize = 14;
        let backend = self.backend();
        for chunk in rows.chunks(32) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "({})",
                        super::params(backend, i * PER_ROW + 1, PER_ROW).join(", ")
                    )
                })
                .collect();
            let sql = format!(
                "INSERT INTO audit_log (seq, at, kind, person, identity, source, channel, command, args, outcome, detail, prev_hash, hash, hash_version)
                 VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql);
            for (seq, entry, prev, hash) in chunk {
                q = q
                    .bind(*seq)
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
                    .bind(prev)
                    .bind(hash)
                    .bind(i64::from(CURRENT_VERSION));
            }
            q.execute(self.conn()).await?;
        }
        sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
            .bind(&prev)
            .execute(self.conn())
            .await?;
        Ok(last)
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
