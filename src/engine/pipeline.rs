//! Invocation → parse → authorize → approval or execute → reply, with every
//! step audited. Adapters call `Pipeline::handle`; nothing here knows which
//! chat the text came from. Each step ends in [`Pipeline::commit`]: its state
//! change, audit entries, rendered notifications and the stored request's
//! completion land in one transaction.

use super::committer::{CommitError, Committer, Effects};
use super::maintenance::Cause;
use super::platform::{Notification, Origin, Renderers};
use super::reply::{Outcome, Reply};
use super::signal::{Alarm, Signal};
use crate::approval::Approval;
use crate::audit::Entry;
use crate::auth::{self, Actor, Directory};
use crate::catalog::{Catalog, Command};
use crate::clock::{Millis, SharedClock};
use crate::command::{self, Parsed, Request, Scope};
use crate::exec::{ExecError, ExecOutput, Executor};
use crate::metrics::Metrics;
use crate::policy::Policies;
use crate::store::{Store, StoreError, Tx};
use crate::template;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The platform name of the console (`opsbot run`), which prints replies
/// itself and has no renderer.
pub const CONSOLE: &str = "console";

/// The audit source of steps the timer loop takes (expiry).
pub const SOURCE_TIMER: &str = "timer";
/// The audit source of steps opsbot takes on its own (recovery after a restart).
pub const SOURCE_SYSTEM: &str = "system";

/// The one normalized input every adapter produces.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Wire identity: `<platform>:<user id>`, e.g. `console:alice`.
    pub actor: String,
    pub channel: Option<String>,
    pub thread: Option<String>,
    pub text: String,
    pub received_at: Millis,
    /// Where to answer (and the audit's source: its platform).
    pub origin: Origin,
    /// The stored request this answers; marked done by the last step.
    pub inbox: Option<i64>,
}

impl Invocation {
    /// A command typed at the console as `actor` in `channel`.
    pub fn console(actor: &str, channel: Option<String>, text: &str, now: Millis) -> Invocation {
        Invocation {
            actor: actor.to_string(),
            channel,
            thread: None,
            text: text.to_string(),
            received_at: now,
            origin: Origin::new(CONSOLE, String::new()),
            inbox: None,
        }
    }
}

/// What a step did to the approval it is about, for its notifications.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change<'a> {
    /// Newly opened: show its card.
    Opened,
    /// Changed: update its card (with the execution's reply, if any).
    Changed { result: Option<&'a str> },
}

/// An answer computed on the ack path (see `Pipeline::quick`).
#[derive(Debug, Clone)]
pub struct Quick {
    pub reply: Reply,
    /// The audit entry of a refusal, for a background appender.
    pub denied: Option<Entry>,
}

/// Everything the pipeline needs, shared by all adapters.
#[derive(Clone)]
pub struct Pipeline {
    pub catalog: Arc<Catalog>,
    pub directory: Arc<Directory>,
    pub store: Store,
    pub executor: Arc<Executor>,
    pub clock: SharedClock,
    pub profiles: Arc<Vec<String>>,
    /// Channel id → bound profile.
    pub channels: Arc<BTreeMap<String, String>>,
    pub metrics: Arc<Metrics>,
    /// Every platform's renderer (registered in `app.rs`).
    pub renderers: Arc<Renderers>,
    /// Raised after a commit that enqueued messages (the senders look).
    pub outbox: Signal,
    /// Raised after alerts were stored (the alert poster looks).
    pub alerts: Signal,
    /// Set when a commit scheduled a deadline (the timer loop looks).
    pub alarm: Alarm,
    /// Group commit of stateless steps.
    pub committer: Committer,
    /// Severity policies, calendars and rotations (incidents).
    pub policies: Arc<Policies>,
}

/// Internal failures: logged with a reference, shown only as that reference.
#[derive(Debug, thiserror::Error)]
pub enum Internal {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Commit(#[from] CommitError),
}

impl Pipeline {
    /// Handles one invocation end to end and says what to answer.
    pub async fn handle(&self, inv: &Invocation) -> Reply {
        let reply = match self.dispatch(inv).await {
            Ok(r) => r,
            Err(e) => {
                let reference = format!("{:08x}", rand::random::<u32>());
                tracing::error!(error = %e, reference, actor = %inv.actor, "internal error handling a command");
                let r = Reply::new(Outcome::Failed, format!("something went wrong (ref {reference})"));
                if let Err(e) = self.answer(inv, &r, &[]).await {
                    tracing::error!(error = %e, reference, "could not even answer the failure");
                }
                r
            }
        };
        self.metrics.request(reply.outcome);
        reply
    }

    /// Executes `cmd` with `args` (as [`Self::execution_args`] gives them to
    /// it), bound to what its preview `found` when it has one.
    pub(super) async fn execute_command(
        &self,
        cmd: &Command,
        args: &BTreeMap<String, String>,
        found: Option<&crate::preview::Previewed>,
    ) -> Result<Result<crate::exec::ExecOutput, crate::exec::ExecError>, Internal> {
        let args = self.execution_args(cmd, args).await?;
        let bound = super::approvals::bound(cmd, found);
        Ok(self
            .executor
            .execute_previewed(&cmd.action, &self.catalog.targets, &args, bound)
            .await)
    }

    /// Ends a step in `tx`: appends `audit`, renders the answer to `inv`'s
    /// origin and what `change` means for `approval` (as it stands after the
    /// step), marks the stored request done, and commits. All or nothing.
    pub(super) async fn commit(
        &self,
        tx: Tx,
        inv: Option<&Invocation>,
        reply: Option<&Reply>,
        audit: &[Entry],
        approval: Option<&Approval>,
        change: Change<'_>,
    ) -> Result<(), Internal> {
        self.commit_with(tx, inv, reply, audit, approval, change, &[])
            .await
    }

    /// [`Self::commit`], with `extra` notifications after the step's own.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn commit_with(
        &self,
        tx: Tx,
        inv: Option<&Invocation>,
        reply: Option<&Reply>,
        audit: &[Entry],
        approval: Option<&Approval>,
        change: Change<'_>,
        extra: &[Notification<'_>],
    ) -> Result<(), Internal> {
        let mut notes = Vec::with_capacity(2 + extra.len());
        if let (Some(a), Change::Opened) = (approval, change) {
            notes.push(Notification::ApprovalOpened { approval: a });
        }
        if let (Some(inv), Some(reply)) = (inv, reply) {
            notes.push(Notification::Reply {
                origin: &inv.origin,
                reply,
                approval,
            });
        }
        if let (Some(a), Change::Changed { result }) = (approval, change) {
            notes.push(Notification::ApprovalChanged { approval: a, result });
        }
        notes.extend(extra.iter().cloned());
        self.commit_notes(tx, audit, &notes, inv.and_then(|i| i.inbox))
            .await
    }

    /// Ends a step in `tx`: appends `audit`, renders and enqueues `notes`,
    /// marks the stored request `inbox` done, and commits. All or nothing.
    pub(super) async fn commit_notes(
        &self,
        mut tx: Tx,
        audit: &[Entry],
        notes: &[Notification<'_>],
        inbox: Option<i64>,
    ) -> Result<(), Internal> {
        if !audit.is_empty() {
            tx.append_audits(audit).await?;
        }
        let now = self.now();
        let msgs = self.renderers.render(notes, now);
        tx.enqueue_messages(&msgs, now).await?;
        if let Some(id) = inbox {
            tx.finish_inbox(id).await?;
        }
        tx.commit().await?;
        if !msgs.is_empty() {
            self.outbox.raise();
        }
        Ok(())
    }

    /// A step that changes nothing but the answer (and the audit): its
    /// effects go through the group committer, many steps per transaction.
    pub(super) async fn answer(
        &self,
        inv: &Invocation,
        reply: &Reply,
        audit: &[Entry],
    ) -> Result<(), Internal> {
        self.answer_with(inv, reply, audit, Vec::new()).await
    }

    /// [`Self::answer`] that also appends rows to incident timelines.
    pub(super) async fn answer_with(
        &self,
        inv: &Invocation,
        reply: &Reply,
        audit: &[Entry],
        timeline: Vec<(i64, crate::incident::Event)>,
    ) -> Result<(), Internal> {
        let now = self.now();
        let note = Notification::Reply {
            origin: &inv.origin,
            reply,
            approval: None,
        };
        let effects = Effects {
            audit: audit.to_vec(),
            messages: self.renderers.render(&[note], now),
            inbox: inv.inbox,
            now,
            timeline,
        };
        let sends = !effects.messages.is_empty();
        self.committer.commit(effects).await?;
        if sends {
            self.outbox.raise();
        }
        Ok(())
    }

    /// [`Self::answer`], passing the reply through.
    pub(super) async fn answered(
        &self,
        inv: &Invocation,
        reply: Reply,
        audit: &[Entry],
    ) -> Result<Reply, Internal> {
        self.answer(inv, &reply, audit).await?;
        Ok(reply)
    }

    pub(super) fn now(&self) -> Millis {
        self.clock.now_ms()
    }

    pub(super) fn scope<'a>(&'a self, inv: &'a Invocation) -> Scope<'a> {
        Scope {
            enabled_profiles: &self.profiles,
            channel_profile: inv
                .channel
                .as_ref()
                .and_then(|c| self.channels.get(c))
                .map(String::as_str),
        }
    }

    /// The answer when one can be given without touching the store: help,
    /// usage errors and permission refusals. `None` means the request must be
    /// stored and run through `handle`. Pure apart from the metrics counter; a
    /// refusal comes with the audit entry the caller should record.
    pub fn quick(&self, inv: &Invocation) -> Option<Quick> {
        let (reply, denied) = match command::parse(&self.catalog, &self.scope(inv), &inv.text) {
            Err(e) => (Reply::new(Outcome::Usage, e.message), None),
            Ok(Parsed::Help(text)) => (Reply::new(Outcome::Done, text), None),
            Ok(Parsed::Builtin(command::Builtin::Approvals)) => {
                let actor = self.directory.resolve(&inv.actor);
                let (reply, entry) = self.refuse_listing(inv, &actor)?;
                (reply, Some(entry))
            }
            Ok(Parsed::Builtin(_)) => return None,
            Ok(Parsed::Run(req)) => {
                let actor = self.directory.resolve(&inv.actor);
                let denial = auth::may_request(&actor, req.command).err()?;
                let mut entry = self.entry(
                    inv,
                    &actor,
                    "denied",
                    Some(req.command),
                    serde_json::to_string(&req.args).ok(),
                );
                entry.outcome = "not_permitted".into();
                entry.detail = Some(denial.to_string());
                (Reply::new(Outcome::NotPermitted, denial.to_string()), Some(entry))
            }
        };
        self.metrics.request(reply.outcome);
        Some(Quick { reply, denied })
    }

    async fn dispatch(&self, inv: &Invocation) -> Result<Reply, Internal> {
        let parsed = match command::parse(&self.catalog, &self.scope(inv), &inv.text) {
            Ok(p) => p,
            Err(e) => {
                return self
                    .answered(inv, Reply::new(Outcome::Usage, e.message), &[])
                    .await
            }
        };
        let actor = self.directory.resolve(&inv.actor);
        match parsed {
            Parsed::Help(text) => self.answered(inv, Reply::new(Outcome::Done, text), &[]).await,
            Parsed::Builtin(b) => self.builtin(inv, &actor, b).await,
            Parsed::Run(req) => self.run(inv, &actor, &req).await,
        }
    }

    async fn run(&self, inv: &Invocation, actor: &Actor, req: &Request<'_>) -> Result<Reply, Internal> {
        let cmd = req.command;
        let args_json = serde_json::to_string(&req.args).ok();
        let mut entry = self.entry(inv, actor, "request", Some(cmd), args_json);
        if let Err(denied) = auth::may_request(actor, cmd) {
            entry.kind = "denied".into();
            entry.outcome = "not_permitted".into();
            entry.detail = Some(denied.to_string());
            let reply = Reply::new(Outcome::NotPermitted, denied.to_string());
            return self.answered(inv, reply, &[entry]).await;
        }
        // A command typed in an incident's thread goes on its timeline.
        let incident = self
            .thread_incident(&inv.origin.platform, inv.thread.as_deref())
            .await?;
        if let Some(policy) = cmd.approval(&req.args) {
            if req.break_glass {
                return self.break_glass(inv, actor, req, policy, entry).await;
            }
            return self
                .request_approval(inv, actor, req, policy, entry, incident)
                .await;
        }
        if cmd.schedule.as_ref().is_some_and(|s| s.stops(&req.args)) {
            return self.stop_watches(inv, actor, req, entry).await;
        }
        let result = self.execute_command(cmd, &req.args, None).await?;
        let reply = self.finish_execution(cmd, &req.args, &result);
        entry.kind = "execution".into();
        entry.outcome = exec_outcome(&result).into();
        entry.detail = Some(exec_detail(&result));
        let timeline: Vec<_> = incident
            .map(|id| {
                let text = format!("{} → {}: {}", req.display(), entry.outcome, exec_detail(&result));
                (
                    id,
                    crate::incident::Event::new(self.now(), "command", actor.who(), text),
                )
            })
            .into_iter()
            .collect();
        if let Some(schedule) = &cmd.schedule {
            let done = (&result, reply, entry, timeline);
            return self.answer_scheduled(inv, req, schedule, done).await;
        }
        let effects = crate::exec::effects(&result);
        if effects.is_empty() {
            self.answer_with(inv, &reply, &[entry], timeline).await?;
            return Ok(reply);
        }
        let display = req.display();
        let cause = Cause {
            inv,
            actor,
            by: actor.who(),
            cmd,
            display: &display,
            args: &req.args,
            origin: &inv.origin,
            resumed: None,
        };
        self.answer_with_effects(&cause, reply, entry, timeline, effects)
            .await
    }

    /// Turns an execution result into the reply, counting it.
    pub(super) fn finish_execution(
        &self,
        cmd: &Command,
        args: &BTreeMap<String, String>,
        result: &Result<ExecOutput, ExecError>,
    ) -> Reply {
        self.metrics.execution(result.is_ok());
        match result {
            Ok(out) => Reply::new(Outcome::Done, render_reply(cmd, args, out)),
            Err(e) => Reply::new(Outcome::Failed, format!("`/{}` failed: {e}", cmd.name)),
        }
    }

    /// An audit entry for `actor` acting in `inv`'s channel.
    pub(super) fn entry(
        &self,
        inv: &Invocation,
        actor: &Actor,
        kind: &str,
        cmd: Option<&Command>,
        args: Option<String>,
    ) -> Entry {
        Entry {
            at: self.now(),
            kind: kind.into(),
            person: actor.who().into(),
            identity: actor.identity().into(),
            source: source(inv).into(),
            channel: inv.channel.clone(),
            command: cmd.map(|c| format!("{}:{}", c.profile, c.name)),
            args,
            outcome: "ok".into(),
            detail: None,
        }
    }
}

/// Where `inv` came from, for the audit: its platform, or `system` for the
/// invocations opsbot makes itself (recovery runs as `system:recovery`).
fn source(inv: &Invocation) -> &str {
    if inv.actor.starts_with("system:") {
        SOURCE_SYSTEM
    } else {
        &inv.origin.platform
    }
}

/// An execution's audit outcome.
pub(super) fn exec_outcome(result: &Result<ExecOutput, ExecError>) -> &'static str {
    if result.is_ok() {
        "succeeded"
    } else {
        "failed"
    }
}

/// One line for the audit log.
pub(super) fn exec_detail(result: &Result<ExecOutput, ExecError>) -> String {
    match result {
        Ok(out) => out.summary.clone(),
        Err(e) => e.to_string(),
    }
}

/// The command's reply template (args, `{response.x}`, `{output}`, `{status}`),
/// or the executor's summary and output.
pub(super) fn render_reply(cmd: &Command, args: &BTreeMap<String, String>, out: &ExecOutput) -> String {
    let Some(tpl) = &cmd.reply else {
        return if out.text.is_empty() {
            out.summary.clone()
        } else {
            format!("{}\n{}", out.summary, out.text)
        };
    };
    template::render(tpl, |name| {
        if let Some(path) = name.strip_prefix("response.") {
            let v = path.split('.').try_fold(&out.fields, |v, k| v.get(k));
            return Some(match v {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => "?".into(),
            });
        }
        match name {
            "output" => Some(out.text.clone()),
            "status" => Some(out.summary.clone()),
            _ => args.get(name).cloned(),
        }
    })
}
