//! The approval side of the pipeline: opening approvals, `/approve`,
//! `/reject`, `/cancel`, `/approvals`, executing an approved request at most
//! once, and recovering after a crash.

use super::pipeline::{Internal, Invocation, Pipeline};
use super::reply::{Outcome, Reply};
use crate::approval::{self, Approval, Decision, State, Step};
use crate::audit::Entry;
use crate::auth::Actor;
use crate::catalog::ApprovePolicy;
use crate::command::{self, Builtin, Request};
use crate::duration;
use std::time::Duration;

impl Pipeline {
    pub(super) async fn request_approval(
        &self,
        inv: &Invocation,
        actor: &Actor,
        req: &Request<'_>,
        policy: &ApprovePolicy,
        mut entry: Entry,
    ) -> Result<Reply, Internal> {
        let cmd = req.command;
        let now = self.now();
        let new = Approval {
            id: 0,
            profile: cmd.profile.clone(),
            command: cmd.name.clone(),
            args: req.args.clone(),
            display: req.display(),
            request_hash: req.hash(),
            risk: cmd.risk.as_str().into(),
            requester: actor.who().into(),
            requester_identity: actor.identity().into(),
            channel: inv.channel.clone(),
            thread: inv.thread.clone(),
            roles: policy.roles.clone(),
            needed: policy.count,
            votes: Vec::new(),
            state: State::Pending,
            created_at: now,
            expires_at: now + policy.ttl.as_millis() as i64,
            decided_by: None,
            result: None,
        };
        let a = self.store.create_approval(&new).await?;
        self.timers.notify_one();
        entry.kind = "approval.requested".into();
        entry.outcome = "pending".into();
        entry.detail = Some(a.label());
        self.store.append_audit(&entry).await?;
        let text = format!(
            "approval requested: {} (needs {}, expires in {})",
            a.label(),
            needs(policy.count, &policy.roles),
            duration::format(policy.ttl)
        );
        Ok(Reply::new(Outcome::ApprovalRequested, text).with_approval(a.id))
    }

    pub(super) async fn builtin(
        &self,
        inv: &Invocation,
        actor: &Actor,
        b: Builtin,
    ) -> Result<Reply, Internal> {
        let (id, decision) = match b {
            Builtin::Approvals => return self.list_pending().await,
            Builtin::Approve { id } => (id, Decision::Approve),
            Builtin::Reject { id, reason } => (id, Decision::Reject { reason }),
            Builtin::Cancel { id } => (id, Decision::Cancel),
        };
        let found = match id.trim_start_matches('a').parse::<i64>() {
            Ok(n) => self.store.approval(n).await?,
            Err(_) => None,
        };
        let Some(a) = found else {
            return Ok(Reply::new(
                Outcome::Usage,
                format!("there is no approval {id} (see /approvals)"),
            ));
        };
        self.decide(inv, actor, &a, decision).await
    }

    async fn decide(
        &self,
        inv: &Invocation,
        actor: &Actor,
        a: &Approval,
        d: Decision,
    ) -> Result<Reply, Internal> {
        let now = self.now();
        let mut entry = self.entry(inv, actor, "approval.refused", None, None);
        entry.command = Some(format!("{}:{}", a.profile, a.command));
        entry.detail = Some(a.label());
        let step = match approval::decide(a, actor, &d, now) {
            Ok(step) => step,
            Err(refusal) => {
                entry.outcome = "not_permitted".into();
                entry.detail = Some(format!("{}: {refusal}", a.label()));
                self.store.append_audit(&entry).await?;
                return Ok(Reply::new(Outcome::NotPermitted, refusal.to_string()).with_approval(a.id));
            }
        };
        let reason = match &d {
            Decision::Reject { reason } => reason.clone(),
            _ => None,
        };
        let (to, kind) = match step {
            Step::Vote => return self.vote(inv, actor, a, entry).await,
            Step::Expire => (State::Expired, "approval.expired"),
            Step::Reject => (State::Rejected, "approval.rejected"),
            Step::Cancel => (State::Cancelled, "approval.cancelled"),
        };
        if !self
            .store
            .transition(
                a.id,
                State::Pending,
                to,
                now,
                Some(actor.who()),
                reason.as_deref(),
            )
            .await?
        {
            return self.already_moved(a.id).await;
        }
        entry.kind = kind.into();
        entry.outcome = to.as_str().into();
        self.store.append_audit(&entry).await?;
        let text = match to {
            State::Expired => format!(
                "refused: {} expired at {}",
                a.label(),
                crate::clock::rfc3339(a.expires_at)
            ),
            State::Rejected => format!(
                "{} rejected by {}{}",
                a.label(),
                actor.who(),
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            ),
            _ => format!("{} cancelled by {}", a.label(), actor.who()),
        };
        let outcome = if to == State::Expired {
            Outcome::NotPermitted
        } else {
            Outcome::Done
        };
        Ok(Reply::new(outcome, text).with_approval(a.id))
    }

    /// Someone else changed the approval between our read and our write.
    async fn already_moved(&self, id: i64) -> Result<Reply, Internal> {
        let state = self.store.approval(id).await?.map(|a| a.state);
        let text = match state {
            Some(State::Rejected | State::Cancelled | State::Expired) | None => {
                format!("refused: {} is no longer pending", approval::label(id))
            }
            Some(_) => format!("refused: {} already executed", approval::label(id)),
        };
        Ok(Reply::new(Outcome::NotPermitted, text).with_approval(id))
    }

    async fn vote(
        &self,
        inv: &Invocation,
        actor: &Actor,
        a: &Approval,
        mut entry: Entry,
    ) -> Result<Reply, Internal> {
        let now = self.now();
        if !self
            .store
            .add_vote(a.id, actor.who(), actor.identity(), now)
            .await?
        {
            let text = format!("you already approved {}", a.label());
            return Ok(Reply::new(Outcome::NotPermitted, text).with_approval(a.id));
        }
        entry.kind = "approval.approved".into();
        entry.outcome = "vote".into();
        self.store.append_audit(&entry).await?;
        if self.store.approve_if_enough_votes(a.id, now).await? {
            return self.execute_approved(inv, a.id).await;
        }
        let fresh = self.store.approval(a.id).await?;
        match fresh {
            Some(f) if f.state == State::Pending => {
                let remaining = f.needed.saturating_sub(f.votes.len() as u32);
                let text = format!(
                    "{} approved by {} ({} of {}); waiting for {remaining} more",
                    f.label(),
                    actor.who(),
                    f.votes.len(),
                    f.needed
                );
                Ok(Reply::new(Outcome::Done, text).with_approval(a.id))
            }
            _ => self.already_moved(a.id).await,
        }
    }

    /// Claims an approved request (approved → executing) and runs it. Exactly
    /// one caller can claim; everyone else is told it already executed.
    pub(super) async fn execute_approved(&self, inv: &Invocation, id: i64) -> Result<Reply, Internal> {
        let now = self.now();
        if !self
            .store
            .transition(id, State::Approved, State::Executing, now, None, None)
            .await?
        {
            return self.already_moved(id).await;
        }
        let Some(a) = self.store.approval(id).await? else {
            return self.already_moved(id).await;
        };
        let cmd = self.catalog.get(&a.profile, &a.command);
        let (result, reply) = match cmd {
            Some(cmd) if command::request_hash(&cmd.profile, &cmd.name, &a.args) == a.request_hash => {
                let result = self
                    .executor
                    .execute(&cmd.action, &self.catalog.targets, &a.args)
                    .await;
                let reply = self.finish_execution(cmd, &a.args, &result);
                (result.map(|o| o.summary).map_err(|e| e.to_string()), reply)
            }
            _ => {
                let why = format!(
                    "{} no longer matches the catalog (command changed or removed); nothing was run",
                    a.label()
                );
                (Err(why.clone()), Reply::new(Outcome::Failed, why))
            }
        };
        let (state, detail) = match &result {
            Ok(summary) => (State::Succeeded, summary.clone()),
            Err(e) => (State::Failed, e.clone()),
        };
        self.store
            .transition(id, State::Executing, state, self.now(), None, Some(&detail))
            .await?;
        let actor = self.directory.resolve(&inv.actor);
        let mut entry = self.entry(inv, &actor, "execution", cmd, serde_json::to_string(&a.args).ok());
        entry.command = Some(format!("{}:{}", a.profile, a.command));
        entry.outcome = state.as_str().into();
        entry.detail = Some(format!("{}: {detail}", a.label()));
        self.store.append_audit(&entry).await?;
        let header = format!("{} · {} · requested by {}", a.label(), a.display, a.requester);
        Ok(Reply {
            text: format!("{header}\n{}", reply.text),
            approval: Some(id),
            ..reply
        })
    }

    async fn list_pending(&self) -> Result<Reply, Internal> {
        let now = self.now();
        let pending = self.store.pending_approvals(now).await?;
        if pending.is_empty() {
            return Ok(Reply::new(Outcome::Done, "no approvals pending"));
        }
        let lines: Vec<String> = pending
            .iter()
            .map(|a| {
                let left = Duration::from_millis((a.expires_at - now).max(0) as u64);
                format!(
                    "{} · {} · {} · by {} · needs {} · {} of {} approved · expires in {}",
                    a.label(),
                    a.display,
                    a.risk,
                    a.requester,
                    needs(a.needed, &a.roles),
                    a.votes.len(),
                    a.needed,
                    duration::format(Duration::from_secs(left.as_secs()))
                )
            })
            .collect();
        Ok(Reply::new(Outcome::Done, lines.join("\n")))
    }

    /// After a restart: executions that were claimed but never finished are
    /// marked `unknown` (never re-run silently); approved but unclaimed
    /// requests are run now. Returns what happened, for logs and chat.
    pub async fn recover(&self) -> Result<Vec<Reply>, crate::store::StoreError> {
        let mut out = Vec::new();
        let system = Actor::Unknown {
            identity: "system:recovery".into(),
        };
        for a in self.store.approvals_in_state(State::Executing).await? {
            let why = "the process stopped while this was executing; its result is unknown: check the target before retrying";
            if self
                .store
                .transition(
                    a.id,
                    State::Executing,
                    State::Unknown,
                    self.now(),
                    None,
                    Some(why),
                )
                .await?
            {
                let inv = recovery_invocation(&a, self.now());
                let mut entry = self.entry(
                    &inv,
                    &system,
                    "execution",
                    None,
                    serde_json::to_string(&a.args).ok(),
                );
                entry.command = Some(format!("{}:{}", a.profile, a.command));
                entry.outcome = "unknown".into();
                entry.detail = Some(format!("{}: {why}", a.label()));
                self.store.append_audit(&entry).await?;
                tracing::warn!(approval = %a.label(), command = %a.display, "execution interrupted by a restart: marked unknown");
                out.push(
                    Reply::new(Outcome::Failed, format!("{} · {} · {why}", a.label(), a.display))
                        .with_approval(a.id),
                );
            }
        }
        for a in self.store.approvals_in_state(State::Approved).await? {
            let inv = recovery_invocation(&a, self.now());
            match self.execute_approved(&inv, a.id).await {
                Ok(r) => out.push(r),
                Err(Internal::Store(e)) => return Err(e),
            }
        }
        Ok(out)
    }
}

fn recovery_invocation(a: &Approval, now: i64) -> Invocation {
    Invocation {
        actor: "system:recovery".into(),
        channel: a.channel.clone(),
        thread: a.thread.clone(),
        text: a.display.clone(),
        source: super::Source::Console,
        received_at: now,
    }
}

/// "sre or eng-manager", "2 of sre, eng-manager".
fn needs(count: u32, roles: &[String]) -> String {
    if count <= 1 {
        roles.join(" or ")
    } else {
        format!("{count} distinct people from {}", roles.join(", "))
    }
}
