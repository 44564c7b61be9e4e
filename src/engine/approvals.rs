//! The approval side of the pipeline: opening approvals, `/approve`,
//! `/reject`, `/cancel`, `/approvals`, executing an approved request at most
//! once, and recovering after a crash.

use super::maintenance::{Applied, Cause};
use super::pipeline::{Change, Internal, Invocation, Pipeline, SOURCE_SYSTEM, SOURCE_TIMER};
use super::reply::{Outcome, Reply};
use crate::approval::{self, Approval, Decision, State, Step};
use crate::audit::Entry;
use crate::auth::Actor;
use crate::catalog::{ApprovePolicy, Command};
use crate::command::{self, Builtin, Request};
use crate::duration;
use crate::incident::Event;
use crate::preview::Previewed;
use crate::store::Tx;
use std::time::Duration;

/// What a requester is told when the catalog command changed under an approval.
const CHANGED: &str = "the command changed since it was requested; request it again";

impl Pipeline {
    pub(super) async fn request_approval(
        &self,
        inv: &Invocation,
        actor: &Actor,
        req: &Request<'_>,
        policy: &ApprovePolicy,
        mut entry: Entry,
        incident: Option<i64>,
    ) -> Result<Reply, Internal> {
        let cmd = req.command;
        let preview = match self.run_preview(inv, cmd, &req.args, &mut entry).await? {
            Ok(p) => p,
            Err(answered) => return Ok(answered),
        };
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
            origin: Some(inv.origin.clone()),
            preview,
        };
        let mut tx = self.store.begin().await?;
        let a = tx.create_approval(&new).await?;
        entry.kind = "approval.requested".into();
        entry.outcome = "pending".into();
        entry.detail = Some(a.label());
        let mut text = format!(
            "approval requested: {} (needs {}, expires in {})",
            a.label(),
            needs(policy.count, &policy.roles),
            duration::format(policy.ttl)
        );
        if let Some(p) = &a.preview {
            text.push_str(&format!("\npreview: {}", p.line()));
            entry.detail = Some(format!("{}: preview {}", a.label(), p.line()));
        }
        let reply = Reply::new(Outcome::ApprovalRequested, text).with_approval(a.id);
        if let Some(incident) = incident {
            let e = Event::new(
                now,
                "approval",
                actor.who(),
                format!("{} requested: {}", a.label(), a.display),
            );
            tx.add_incident_event(incident, &e).await?;
        }
        self.commit(tx, Some(inv), Some(&reply), &[entry], Some(&a), Change::Opened)
            .await?;
        self.alarm.set(a.expires_at);
        Ok(reply)
    }

    /// Runs `cmd`'s preview, if it has one, before anything is stored (it
    /// reads a target: no transaction may be open). `Ok(Ok(found))` to go on;
    /// `Ok(Err(reply))` when the request was answered instead: nothing
    /// matched ("nothing to do", no approval opened) or the preview failed
    /// (refused with the reason; nothing opened).
    pub(super) async fn run_preview(
        &self,
        inv: &Invocation,
        cmd: &Command,
        args: &std::collections::BTreeMap<String, String>,
        entry: &mut Entry,
    ) -> Result<Result<Option<Previewed>, Reply>, Internal> {
        let Some(p) = &cmd.preview else {
            return Ok(Ok(None));
        };
        let (outcome, text) = match self.executor.preview(p, &self.catalog.targets, args).await {
            Ok(found) if !found.is_empty() => return Ok(Ok(Some(found))),
            Ok(found) => (
                (Outcome::Done, "nothing_to_do"),
                format!(
                    "nothing to do: the preview of `/{}` found no {}; no approval was opened",
                    cmd.name, found.what
                ),
            ),
            Err(e) => (
                (Outcome::Failed, "preview_failed"),
                format!(
                    "refused: the preview of `/{}` failed, so nothing was requested: {e}",
                    cmd.name
                ),
            ),
        };
        entry.kind = "approval.refused".into();
        entry.outcome = outcome.1.into();
        entry.detail = Some(text.clone());
        let reply = Reply::new(outcome.0, text);
        Ok(Err(self
            .answered(inv, reply, std::slice::from_ref(entry))
            .await?))
    }

    pub(super) async fn builtin(
        &self,
        inv: &Invocation,
        actor: &Actor,
        b: Builtin,
    ) -> Result<Reply, Internal> {
        let (id, decision) = match b {
            Builtin::Approvals => {
                if let Some((reply, entry)) = self.refuse_listing(inv, actor) {
                    return self.answered(inv, reply, &[entry]).await;
                }
                let reply = self.list_pending().await?.private();
                return self.answered(inv, reply, &[]).await;
            }
            Builtin::Incident(c) => return self.incident(inv, actor, c).await,
            Builtin::Incidents => return self.list_incidents(inv).await,
            Builtin::Oncall(o) => return self.oncall(inv, actor, o).await,
            Builtin::Alerts(a) => return self.alerts(inv, actor, a).await,
            Builtin::Done { id, step } => return self.guided_done(inv, actor, &id, step).await,
            Builtin::Abort { id } => return self.guided_abort(inv, actor, &id).await,
            Builtin::Approve { id } => (id, Decision::Approve),
            Builtin::Reject { id, reason } => (id, Decision::Reject { reason }),
            Builtin::Cancel { id } => (id, Decision::Cancel),
        };
        let found = match id.trim_start_matches('a').parse::<i64>() {
            Ok(n) => self.store.approval(n).await?,
            Err(_) => None,
        };
        let Some(a) = found else {
            let reply = Reply::new(
                Outcome::Usage,
                format!("there is no approval {id} (see /approvals)"),
            );
            return self.answered(inv, reply, &[]).await;
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
                let reply = Reply::new(Outcome::NotPermitted, refusal.to_string()).with_approval(a.id);
                return self.answered(inv, reply, &[entry]).await;
            }
        };
        let reason = match &d {
            Decision::Reject { reason } => reason.clone(),
            _ => None,
        };
        let (to, kind) = match step {
            Step::Vote => {
                if let Err(why) = self.unchanged_command(a) {
                    // An approval given now would be for a command nobody asked for.
                    entry.outcome = "command_changed".into();
                    entry.detail = Some(format!("{}: {why}", a.label()));
                    let text = format!("refused: {}: {CHANGED}", a.label());
                    let reply = Reply::new(Outcome::NotPermitted, text).with_approval(a.id);
                    return self.answered(inv, reply, &[entry]).await;
                }
                return self.vote(inv, actor, a, entry).await;
            }
            Step::Expire => (State::Expired, "approval.expired"),
            Step::Reject => (State::Rejected, "approval.rejected"),
            Step::Cancel => (State::Cancelled, "approval.cancelled"),
        };
        let mut tx = self.store.begin().await?;
        if !tx
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
            drop(tx);
            return self.already_moved(inv, a.id).await;
        }
        let after = tx.approval(a.id).await?;
        entry.kind = kind.into();
        entry.outcome = to.as_str().into();
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
        let reply = Reply::new(outcome, text).with_approval(a.id);
        let change = Change::Changed { result: None };
        self.commit(tx, Some(inv), Some(&reply), &[entry], after.as_ref(), change)
            .await?;
        Ok(reply)
    }

    /// Someone else changed the approval between our read and our write.
    async fn already_moved(&self, inv: &Invocation, id: i64) -> Result<Reply, Internal> {
        let state = self.store.approval(id).await?.map(|a| a.state);
        let text = match state {
            Some(State::Rejected | State::Cancelled | State::Expired) | None => {
                format!("refused: {} is no longer pending", approval::label(id))
            }
            Some(_) => format!("refused: {} already executed", approval::label(id)),
        };
        let reply = Reply::new(Outcome::NotPermitted, text).with_approval(id);
        self.answered(inv, reply, &[]).await
    }

    async fn vote(
        &self,
        inv: &Invocation,
        actor: &Actor,
        a: &Approval,
        mut entry: Entry,
    ) -> Result<Reply, Internal> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        if !tx.add_vote(a.id, actor.who(), actor.identity(), now).await? {
            drop(tx);
            let text = format!("you already approved {}", a.label());
            let reply = Reply::new(Outcome::NotPermitted, text).with_approval(a.id);
            return self.answered(inv, reply, &[]).await;
        }
        entry.kind = "approval.approved".into();
        entry.outcome = "vote".into();
        if tx.approve_if_enough_votes(a.id, now).await? {
            // The vote, the approval and the claim of its execution commit together.
            let Some(claimed) = self.claim(&mut tx, a.id).await? else {
                drop(tx);
                return self.already_moved(inv, a.id).await;
            };
            self.commit(
                tx,
                None,
                None,
                &[entry],
                Some(&claimed),
                Change::Changed { result: None },
            )
            .await?;
            return self.run_claimed(inv, claimed).await;
        }
        let Some(f) = tx.approval(a.id).await?.filter(|f| f.state == State::Pending) else {
            drop(tx);
            return self.already_moved(inv, a.id).await;
        };
        let remaining = f.needed.saturating_sub(f.votes.len() as u32);
        let text = format!(
            "{} approved by {} ({} of {}); waiting for {remaining} more",
            f.label(),
            actor.who(),
            f.votes.len(),
            f.needed
        );
        let reply = Reply::new(Outcome::Done, text).with_approval(a.id);
        let change = Change::Changed { result: None };
        self.commit(tx, Some(inv), Some(&reply), &[entry], Some(&f), change)
            .await?;
        Ok(reply)
    }

    /// approved → executing in `tx`: the approval as claimed, or `None` when
    /// another caller claimed it first.
    async fn claim(&self, tx: &mut Tx, id: i64) -> Result<Option<Approval>, Internal> {
        if !tx
            .transition(id, State::Approved, State::Executing, self.now(), None, None)
            .await?
        {
            return Ok(None);
        }
        Ok(tx.approval(id).await?)
    }

    /// Claims an approved request (approved → executing) and runs it. Exactly
    /// one caller can claim; everyone else is told it already executed.
    pub(super) async fn execute_approved(&self, inv: &Invocation, id: i64) -> Result<Reply, Internal> {
        let mut tx = self.store.begin().await?;
        let Some(claimed) = self.claim(&mut tx, id).await? else {
            drop(tx);
            return self.already_moved(inv, id).await;
        };
        self.commit(
            tx,
            None,
            None,
            &[],
            Some(&claimed),
            Change::Changed { result: None },
        )
        .await?;
        self.run_claimed(inv, claimed).await
    }

    /// The catalog command `a` was requested for, if it is still that
    /// command: same definition, and its stored args pass the current specs.
    /// Otherwise why not (for the audit).
    fn unchanged_command(&self, a: &Approval) -> Result<&Command, String> {
        let cmd = self
            .catalog
            .get(&a.profile, &a.command)
            .ok_or("the command was removed from the catalog")?;
        if command::request_hash(cmd, &a.args) != a.request_hash {
            return Err("its definition (action, risk, roles, approval or arguments) changed".into());
        }
        command::revalidate(cmd, &a.args).map_err(|e| format!("its stored arguments no longer pass: {e}"))?;
        Ok(cmd)
    }

    /// Runs a claimed approval's request (if it still matches the catalog)
    /// and records the result, its audit entry and its notifications at once.
    async fn run_claimed(&self, inv: &Invocation, a: Approval) -> Result<Reply, Internal> {
        let id = a.id;
        let checked = self.unchanged_command(&a);
        let cmd = checked.as_ref().ok().copied();
        let (result, reply, effects) = match &checked {
            Ok(cmd) => {
                let result = self.execute_command(cmd, &a.args, a.preview.as_ref()).await?;
                let reply = self.finish_execution(cmd, &a.args, &result);
                let effects = crate::exec::effects(&result).to_vec();
                (
                    result.map(|o| o.summary).map_err(|e| e.to_string()),
                    reply,
                    effects,
                )
            }
            Err(why) => {
                let text = format!("refused: {}: {CHANGED}; nothing was run", a.label());
                (
                    Err(format!("{why}; nothing was run")),
                    Reply::new(Outcome::Failed, text),
                    Vec::new(),
                )
            }
        };
        let (state, detail) = match &result {
            Ok(summary) => (State::Succeeded, summary.clone()),
            Err(e) => (State::Failed, e.clone()),
        };
        // Before the transaction: on SQLite it holds the only connection.
        let platform = a.origin.as_ref().map_or(super::CONSOLE, |o| o.platform.as_str());
        let incident = self.thread_incident(platform, a.thread.as_deref()).await?;
        let mut tx = self.store.begin().await?;
        tx.transition(id, State::Executing, state, self.now(), None, Some(&detail))
            .await?;
        let after = tx.approval(id).await?;
        let actor = self.directory.resolve(&inv.actor);
        let mut entry = self.entry(inv, &actor, "execution", cmd, serde_json::to_string(&a.args).ok());
        entry.command = Some(format!("{}:{}", a.profile, a.command));
        entry.outcome = state.as_str().into();
        entry.detail = Some(format!("{}: {detail}", a.label()));
        let applied = match cmd {
            Some(cmd) => {
                let display = format!("{} ({})", a.display, a.label());
                let cause = Cause {
                    inv,
                    actor: &actor,
                    by: &a.requester,
                    cmd,
                    display: &display,
                    args: &a.args,
                    origin: a.origin.as_ref().unwrap_or(&inv.origin),
                    resumed: None,
                };
                self.apply_effects(&mut tx, &cause, &effects).await?
            }
            None => Applied::default(),
        };
        let header = format!("{} · {} · requested by {}", a.label(), a.display, a.requester);
        let reply = Reply {
            text: format!("{header}\n{}", applied.append_to(&reply.text)),
            approval: Some(id),
            ..reply
        };
        let change = Change::Changed {
            result: Some(&reply.text),
        };
        if let Some(incident) = incident {
            let text = format!("{} {} by {}: {detail}", a.label(), state.as_str(), actor.who());
            tx.add_incident_event(incident, &Event::new(self.now(), "result", actor.who(), text))
                .await?;
        }
        let audit: Vec<Entry> = std::iter::once(entry)
            .chain(applied.audit.iter().cloned())
            .collect();
        let extra: Vec<_> = applied.notifications().collect();
        self.commit_with(
            tx,
            Some(inv),
            Some(&reply),
            &audit,
            after.as_ref(),
            change,
            &extra,
        )
        .await?;
        self.after_effects(&applied);
        Ok(reply)
    }

    /// `/approvals` lists other people's requests (args, requesters): only
    /// for people opsbot knows. A stranger's refusal says nothing about what
    /// is pending; it comes with its audit entry.
    pub(super) fn refuse_listing(&self, inv: &Invocation, actor: &Actor) -> Option<(Reply, Entry)> {
        let Actor::Unknown { .. } = actor else {
            return None;
        };
        let text = "refused: only people opsbot knows may list approvals";
        let mut entry = self.entry(inv, actor, "denied", None, None);
        entry.command = Some("approvals".into());
        entry.outcome = "not_permitted".into();
        entry.detail = Some(text.into());
        Some((Reply::new(Outcome::NotPermitted, text).private(), entry))
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

    /// Expires approval `id` if it is still pending and due at `now`: state,
    /// audit entry and card update in `tx` (the timer loop's transaction).
    pub(super) async fn expire_in(&self, mut tx: Tx, id: i64) -> Result<(), Internal> {
        let now = self.now();
        let Some(a) = tx.approval(id).await? else {
            return Ok(tx.commit().await?);
        };
        if a.state != State::Pending
            || a.expires_at > now
            || !tx
                .transition(id, State::Pending, State::Expired, now, None, None)
                .await?
        {
            return Ok(tx.commit().await?);
        }
        let after = tx.approval(id).await?;
        let entry = self.system_entry(
            &a,
            SOURCE_TIMER,
            ("approval.expired", "expired"),
            format!(
                "{} expired with {} of {} approvals",
                a.label(),
                a.votes.len(),
                a.needed
            ),
        );
        self.commit(
            tx,
            None,
            None,
            &[entry],
            after.as_ref(),
            Change::Changed { result: None },
        )
        .await
    }

    /// An audit entry written by opsbot itself: expiry (source `timer`) or
    /// recovery (source `system`).
    fn system_entry(&self, a: &Approval, source: &str, what: (&str, &str), detail: String) -> Entry {
        let (kind, outcome) = what;
        let system = Actor::Unknown {
            identity: format!("system:{}", kind.rsplit('.').next().unwrap_or(kind)),
        };
        Entry {
            at: self.now(),
            kind: kind.into(),
            person: system.who().into(),
            identity: system.identity().into(),
            source: source.into(),
            channel: a.channel.clone(),
            command: Some(format!("{}:{}", a.profile, a.command)),
            args: serde_json::to_string(&a.args).ok(),
            outcome: outcome.into(),
            detail: Some(detail),
        }
    }

    /// After a crash: executions claimed by an instance that is no longer
    /// alive are marked `unknown` (never re-run silently) and their cards say so;
    /// approved but unclaimed requests run now, unless their approval expired
    /// meanwhile (then they are expired, not run). Returns what happened.
    pub async fn recover(&self) -> Result<Vec<Reply>, Internal> {
        let mut out = Vec::new();
        let why = "the process stopped while this was executing; its result is unknown: check the target before retrying";
        for a in self.store.orphaned_executions(self.now()).await? {
            let detail = format!("{}: {why}", a.label());
            let to = (State::Unknown, "execution", "unknown");
            if !self
                .close_after_restart(&a, State::Executing, to, &detail, Some(why))
                .await?
            {
                continue;
            }
            tracing::warn!(approval = %a.label(), command = %a.display, "execution interrupted by a restart: marked unknown");
            out.push(
                Reply::new(Outcome::Failed, format!("{} · {} · {why}", a.label(), a.display))
                    .with_approval(a.id),
            );
        }
        for a in self.store.approvals_in_state(State::Approved).await? {
            let now = self.now();
            if a.expires_at <= now {
                let detail = format!(
                    "{} was approved but not run before it expired (opsbot was down); not run",
                    a.label()
                );
                let to = (State::Expired, "approval.expired", "expired");
                if !self
                    .close_after_restart(&a, State::Approved, to, &detail, None)
                    .await?
                {
                    continue;
                }
                tracing::warn!(approval = %a.label(), "approved request expired while opsbot was down: not run");
                out.push(Reply::new(Outcome::NotPermitted, detail).with_approval(a.id));
                continue;
            }
            let inv = recovery_invocation(&a, now);
            out.push(self.execute_approved(&inv, a.id).await?);
        }
        Ok(out)
    }
}

impl Pipeline {
    /// One recovery step: `from → to.0` with its audit entry (kind `to.1`,
    /// outcome `to.2`) and the card update, in one transaction. False when
    /// the approval had already moved.
    async fn close_after_restart(
        &self,
        a: &Approval,
        from: State,
        to: (State, &str, &str),
        detail: &str,
        result: Option<&str>,
    ) -> Result<bool, Internal> {
        let (state, kind, outcome) = to;
        let mut tx = self.store.begin().await?;
        if !tx.transition(a.id, from, state, self.now(), None, result).await? {
            return Ok(false);
        }
        let after = tx.approval(a.id).await?;
        let entry = self.system_entry(a, SOURCE_SYSTEM, (kind, outcome), detail.to_string());
        let change = Change::Changed { result: None };
        self.commit(tx, None, None, &[entry], after.as_ref(), change)
            .await?;
        Ok(true)
    }
}

/// The invocation a recovered request runs under: answers go where the
/// request was made.
fn recovery_invocation(a: &Approval, now: i64) -> Invocation {
    let mut inv = Invocation::console("system:recovery", a.channel.clone(), &a.display, now);
    inv.thread = a.thread.clone();
    if let Some(o) = &a.origin {
        inv.origin = o.clone();
    }
    inv
}

/// "sre or eng-manager", "2 of sre, eng-manager".
fn needs(count: u32, roles: &[String]) -> String {
    if count <= 1 {
        roles.join(" or ")
    } else {
        format!("{count} distinct people from {}", roles.join(", "))
    }
}

/// What a command's execution is bound to: its preview's definition and
/// what it found (stored with the approval, or just run for break-glass).
pub(super) fn bound<'a>(cmd: &'a Command, found: Option<&'a Previewed>) -> Option<crate::exec::Bound<'a>> {
    Some(crate::exec::Bound {
        preview: cmd.preview.as_ref()?,
        found: found?,
    })
}
