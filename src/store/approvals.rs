//! Approvals and their votes. Every state change is a conditional UPDATE on
//! the expected current state, so of two racing deciders exactly one wins.

use super::timers::APPROVAL_EXPIRY;
use super::{int, opt_text, text, Result, Store, StoreError, Tx, ORPHANED};
use crate::approval::{Approval, State, Vote};
use crate::clock::Millis;
use crate::origin::Origin;
use sqlx::any::AnyRow;
use sqlx::AnyConnection;
use std::collections::BTreeMap;

const COLUMNS: &str =
    "id, profile, command, args, display, request_hash, risk, requester, requester_identity,
     channel, thread, roles, needed, state, created_at, expires_at, decided_by, result,
     origin_platform, origin, preview";

super::on_tx! {
    /// Opens `n` as a pending approval (see [`Tx::create_approval`]).
    fn create_approval(n: &Approval) -> Approval;
    /// One approval with its votes.
    fn approval(id: i64) -> Option<Approval>;
    /// Records `person`'s vote (see [`Tx::add_vote`]).
    fn add_vote(id: i64, person: &str, identity: &str, now: Millis) -> bool;
    /// pending → approved if enough votes (see [`Tx::approve_if_enough_votes`]).
    fn approve_if_enough_votes(id: i64, now: Millis) -> bool;
    /// A conditional state change (see [`Tx::transition`]).
    fn transition(id: i64, from: State, to: State, now: Millis, decided_by: Option<&str>, result: Option<&str>) -> bool;
}

impl Tx {
    /// Opens `n` as a pending approval and returns it as stored, with its
    /// expiry on the timer table. Its `id`, `state`, `votes`, `decided_by`
    /// and `result` are ignored: a new approval gets a fresh id and starts
    /// pending with no votes.
    pub async fn create_approval(&mut self, n: &Approval) -> Result<Approval> {
        let args = serde_json::to_string(&n.args).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let preview = match &n.preview {
            Some(p) => Some(serde_json::to_string(p).map_err(|e| StoreError::Corrupt(e.to_string()))?),
            None => None,
        };
        let row = sqlx::query(&format!(
            "INSERT INTO approvals (profile, command, args, display, request_hash, risk, requester, requester_identity,
                channel, thread, roles, needed, state, created_at, expires_at, updated_at, origin_platform, origin, preview)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', $13, $14, $13, $15, $16, $17)
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
        .bind(n.origin.as_ref().map(|o| o.platform.as_str()))
        .bind(n.origin.as_ref().map(|o| o.data.as_str()))
        .bind(preview)
        .fetch_one(self.conn())
        .await?;
        let a = from_row(&row, Vec::new())?;
        self.schedule(APPROVAL_EXPIRY, &a.id.to_string(), a.expires_at)
            .await?;
        Ok(a)
    }

    /// One approval with its votes.
    pub async fn approval(&mut self, id: i64) -> Result<Option<Approval>> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM approvals WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.conn())
            .await?;
        match row {
            None => Ok(None),
            Some(r) => Ok(Some(from_row(&r, votes(self.conn(), id).await?)?)),
        }
    }

    /// Records `person`'s vote. False when that person had already voted
    /// (double clicks and retries are absorbed here).
    pub async fn add_vote(&mut self, id: i64, person: &str, identity: &str, now: Millis) -> Result<bool> {
        // Lock the approval first: concurrent voters then count each other's
        // committed votes instead of each seeing only its own.
        sqlx::query("UPDATE approvals SET updated_at = updated_at WHERE id = $1")
            .bind(id)
            .execute(self.conn())
            .await?;
        let done = sqlx::query(
            "INSERT INTO approval_votes (approval_id, person, identity, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (approval_id, person) DO NOTHING",
        )
        .bind(id)
        .bind(person)
        .bind(identity)
        .bind(now)
        .execute(self.conn())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// pending → approved, if enough distinct people voted and it has not
    /// expired (its expiry timer goes). True for exactly one caller.
    pub async fn approve_if_enough_votes(&mut self, id: i64, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE approvals SET state = 'approved', updated_at = $2
             WHERE id = $1 AND state = 'pending' AND expires_at > $2
               AND (SELECT COUNT(*) FROM approval_votes v WHERE v.approval_id = $1) >= needed",
        )
        .bind(id)
        .bind(now)
        .execute(self.conn())
        .await?;
        let won = done.rows_affected() == 1;
        if won {
            self.cancel(APPROVAL_EXPIRY, &id.to_string()).await?;
        }
        Ok(won)
    }

    /// Moves `id` from `from` to `to` if it is still in `from`. True for exactly
    /// one caller; everyone else sees false and must re-read. Leaving
    /// `pending` removes the expiry timer.
    pub async fn transition(
        &mut self,
        id: i64,
        from: State,
        to: State,
        now: Millis,
        decided_by: Option<&str>,
        result: Option<&str>,
    ) -> Result<bool> {
        debug_assert!(from.can_become(to), "{from:?} -> {to:?}");
        // Whoever moves it to `executing` owns the execution (recovery leaves
        // a live owner's executions alone).
        let owner = (to == State::Executing).then(|| self.instance.to_string());
        let done = sqlx::query(
            "UPDATE approvals SET state = $3, updated_at = $4,
                decided_by = COALESCE($5, decided_by), result = COALESCE($6, result),
                owner = COALESCE($7, owner)
             WHERE id = $1 AND state = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(now)
        .bind(decided_by)
        .bind(result)
        .bind(owner)
        .execute(self.conn())
        .await?;
        let won = done.rows_affected() == 1;
        if won && from == State::Pending {
            self.cancel(APPROVAL_EXPIRY, &id.to_string()).await?;
        }
        Ok(won)
    }
}

async fn votes(c: &mut AnyConnection, id: i64) -> Result<Vec<Vote>> {
    let rows = sqlx::query(
        "SELECT person, identity, at FROM approval_votes WHERE approval_id = $1 ORDER BY at, person",
    )
    .bind(id)
    .fetch_all(c)
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

impl Store {
    /// Approvals still pending and not yet expired at `now`, oldest first.
    pub async fn pending_approvals(&self, now: Millis) -> Result<Vec<Approval>> {
        self.approvals_where("state = 'pending' AND expires_at > $1", now)
            .await
    }

    /// Executions whose owner is no longer alive at `now` (cut off by a
    /// crash), oldest first.
    pub async fn orphaned_executions(&self, now: Millis) -> Result<Vec<Approval>> {
        self.approvals_where(&format!("state = 'executing' AND {ORPHANED}"), now)
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
        let mut conn = self.pool.acquire().await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id = int(&r, "id")?;
            out.push(from_row(&r, votes(&mut conn, id).await?)?);
        }
        Ok(out)
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
        origin: match (opt_text(r, "origin_platform")?, opt_text(r, "origin")?) {
            (Some(platform), data) => Some(Origin {
                platform,
                data: data.unwrap_or_default(),
            }),
            (None, _) => None,
        },
        preview: match opt_text(r, "preview")? {
            Some(p) => Some(
                serde_json::from_str(&p)
                    .map_err(|e| StoreError::Corrupt(format!("approval preview: {e}")))?,
            ),
            None => None,
        },
    })
}
