//! Approvals and their votes. Every state change is a conditional UPDATE on
//! the expected current state, so of two racing deciders exactly one wins.

use super::{int, opt_text, text, Result, Store, StoreError};
use crate::approval::{Approval, State, Vote};
use crate::clock::Millis;
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::BTreeMap;

const COLUMNS: &str =
    "id, profile, command, args, display, request_hash, risk, requester, requester_identity,
     channel, thread, roles, needed, state, created_at, expires_at, decided_by, result";

impl Store {
    /// Opens `n` as a pending approval and returns it as stored. Its `id`,
    /// `state`, `votes`, `decided_by` and `result` are ignored: a new approval
    /// gets a fresh id and starts pending with no votes.
    pub async fn create_approval(&self, n: &Approval) -> Result<Approval> {
        let args = serde_json::to_string(&n.args).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = sqlx::query(&format!(
            "INSERT INTO approvals (profile, command, args, display, request_hash, risk, requester, requester_identity,
                channel, thread, roles, needed, state, created_at, expires_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $13)
             RETURNING {COLUMNS}"
        ))
        .bind(&n.profile)
        .bind(&n.command)
        .bind(args)
        .bind(&n.display)
        .bind(&n.request_hash)
        .bind(&n.risk)
        .bind(&n.requester)
        .bind(&n.requester_identity)
        .bind(&n.channel)
        .bind(&n.thread)
        .bind(n.roles.join(","))
        .bind(i64::from(n.needed))
        .bind(n.created_at)
        .bind(n.expires_at)
        .fetch_one(&self.pool)
        .await?;
        from_row(&row, Vec::new())
    }

    /// One approval with its votes.
    pub async fn approval(&self, id: i64) -> Result<Option<Approval>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(from_row(&r, self.votes(id).await?)?)),
        }
    }

    async fn votes(&self, id: i64) -> Result<Vec<Vote>> {
        let rows = sqlx::query(
            "SELECT person, identity, at FROM approval_votes WHERE approval_id = $1 ORDER BY at, person",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Vote {
                    person: text(r, "person")?,
                    identity: text(r, "identity")?,
                    at: int(r, "at")?,
                })
            })
            .collect()
    }

    /// Approvals still pending and not yet expired at `now`, oldest first.
    pub async fn pending_approvals(&self, now: Millis) -> Result<Vec<Approval>> {
        self.approvals_where("state = 'pending' AND expires_at > $1", now)
            .await
    }

    /// Approvals in `state`, oldest first.
    pub async fn approvals_in_state(&self, state: State) -> Result<Vec<Approval>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE state = $1 ORDER BY id"
        ))
        .bind(state.as_str())
        .fetch_all(&self.pool)
        .await?;
        self.with_votes(rows).await
    }

    async fn approvals_where(&self, cond: &str, now: Millis) -> Result<Vec<Approval>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM approvals WHERE {cond} ORDER BY id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        self.with_votes(rows).await
    }

    async fn with_votes(&self, rows: Vec<AnyRow>) -> Result<Vec<Approval>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id = int(&r, "id")?;
            out.push(from_row(&r, self.votes(id).await?)?);
        }
        Ok(out)
    }

    /// Records `person`'s vote. False when that person had already voted
    /// (double clicks and retries are absorbed here).
    pub async fn add_vote(&self, id: i64, person: &str, identity: &str, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO approval_votes (approval_id, person, identity, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (approval_id, person) DO NOTHING",
        )
        .bind(id)
        .bind(person)
        .bind(identity)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// pending → approved, if enough distinct people voted and it has not
    /// expired. True for exactly one caller.
    pub async fn approve_if_enough_votes(&self, id: i64, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE approvals SET state = 'approved', updated_at = $2
             WHERE id = $1 AND state = 'pending' AND expires_at > $2
               AND (SELECT COUNT(*) FROM approval_votes v WHERE v.approval_id = $1) >= needed",
        )
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves `id` from `from` to `to` if it is still in `from`. True for exactly
    /// one caller; everyone else sees false and must re-read.
    pub async fn transition(
        &self,
        id: i64,
        from: State,
        to: State,
        now: Millis,
        decided_by: Option<&str>,
        result: Option<&str>,
    ) -> Result<bool> {
        debug_assert!(from.can_become(to), "{from:?} -> {to:?}");
        let done = sqlx::query(
            "UPDATE approvals SET state = $3, updated_at = $4,
                decided_by = COALESCE($5, decided_by), result = COALESCE($6, result)
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now)
        .bind(decided_by)
        .bind(result)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Marks every pending approval whose TTL ran out by `now` as expired and
    /// returns them (with their votes).
    pub async fn expire_due_approvals(&self, now: Millis) -> Result<Vec<Approval>> {
        let rows = sqlx::query(&format!(
            "UPDATE approvals SET state = 'expired', updated_at = $1
             WHERE state = 'pending' AND expires_at <= $1 RETURNING {COLUMNS}"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        self.with_votes(rows).await
    }

    /// When the next pending approval expires, if any is pending.
    pub async fn next_approval_expiry(&self) -> Result<Option<Millis>> {
        let row = sqlx::query("SELECT MIN(expires_at) AS next FROM approvals WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>("next")?)
    }

    /// Counts per state, for `/metrics`.
    pub async fn approval_counts(&self) -> Result<Vec<(String, i64)>> {
        self.counts_by_state("approvals").await
    }
}

fn from_row(r: &AnyRow, votes: Vec<Vote>) -> Result<Approval> {
    let state_text = text(r, "state")?;
    let state = State::parse(&state_text)
        .ok_or_else(|| StoreError::Corrupt(format!("approval state `{state_text}`")))?;
    let args: BTreeMap<String, String> = serde_json::from_str(&text(r, "args")?)
        .map_err(|e| StoreError::Corrupt(format!("approval args: {e}")))?;
    let roles = text(r, "roles")?;
    Ok(Approval {
        id: int(r, "id")?,
        profile: text(r, "profile")?,
        command: text(r, "command")?,
        args,
        display: text(r, "display")?,
        request_hash: text(r, "request_hash")?,
        risk: text(r, "risk")?,
        requester: text(r, "requester")?,
        requester_identity: text(r, "requester_identity")?,
        channel: opt_text(r, "channel")?,
        thread: opt_text(r, "thread")?,
        roles: roles
            .split(',')
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
        needed: u32::try_from(int(r, "needed")?).unwrap_or(1),
        votes,
        state,
        created_at: int(r, "created_at")?,
        expires_at: int(r, "expires_at")?,
        decided_by: opt_text(r, "decided_by")?,
        result: opt_text(r, "result")?,
    })
}
