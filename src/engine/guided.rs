//! Guided runs: a command's seq with manual steps (`internal.confirm`),
//! each confirmed by a person before the steps after it run (runbooks.md
//! DR-5: stop the app, promote the standby, update the connection strings,
//! restart, verify).
//!
//! The executor stops a seq before such a step with `Effect::Pause`. The
//! engine then keeps the run as one timer row of kind [`GUIDED`] whose
//! payload ([`Guided`]) says what runs on, as whose request, where it
//! answers, which step it waits at and what ran so far; the row is due at
//! the confirmation's deadline. It is written in the transaction that
//! records the execution's result, whatever path ran it (direct, approved,
//! break-glass), with the run's message (Done and Abort buttons) posted
//! under `guided:<id>` in the request's channel and thread.
//!
//! - `/done <id> <step>` (the Done button): the requester, or anyone who
//!   may request the command, confirms the step it waits at. The payload
//!   read is claimed by a compare-and-set into a lease, so a double click,
//!   or two people at once, confirm once; the steps after it run with no
//!   transaction open; one transaction then settles the claim with the
//!   next pause (the same row, a new payload) or the end of the run, its
//!   audit entry and the edited message.
//! - `/abort <id>`: the same people stop a waiting run (a compare-and-set
//!   delete); nothing after the step runs.
//! - The row falling due while it waits: the confirmation window passed,
//!   the run stops there (reported, audited). Falling due while a claim
//!   holds it: the lease lapsed (a crash, a restart) while steps ran; their
//!   result is unknown and nothing is run again.

use super::maintenance::{Applied, Cause};
use super::pipeline::{exec_detail, exec_outcome, Internal, Invocation, Pipeline, SOURCE_TIMER};
use super::platform::{Notification, Origin};
use super::reply::{Outcome, Reply};
use super::scheduled::{lease_for, utc, LEASE_MS};
use crate::audit::Entry;
use crate::auth::{self, Actor};
use crate::catalog::Command;
use crate::clock::Millis;
use crate::store::{Timer, TimerRow, Tx, GUIDED};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A guided run waiting at one of its manual steps: its timer row's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guided {
    pub profile: String,
    /// The command's chat words.
    pub command: String,
    /// The request's arguments (as the parser gave them).
    pub args: BTreeMap<String, String>,
    /// The command's `definition_hash` when it was requested: a changed
    /// command does not run on.
    pub definition: String,
    /// The requester (a person's name): they may confirm and abort.
    pub requester: String,
    pub channel: Option<String>,
    /// Where the run's message lives.
    pub origin: Origin,
    /// The request as typed (with its approval's label, if approved).
    pub request: String,
    /// The step it waits at, of how many (numbered from 1).
    pub step: usize,
    pub of: usize,
    /// What the person confirms.
    pub text: String,
    pub within_ms: Millis,
    /// When the confirmation window closes.
    pub deadline: Millis,
    /// What ran so far, one line per step, and each confirmation.
    pub lines: Vec<String>,
}

/// A run going on from a confirmation: its id and the lines so far.
pub(super) struct Resumed<'a> {
    pub id: &'a str,
    pub lines: &'a [String],
}

/// A guided run's message to post or edit, after the transaction that wrote
/// its row.
pub(super) struct GuidedNote {
    pub id: String,
    pub key: String,
    pub origin: Origin,
    pub reply: Reply,
    pub edit: bool,
    pub waits: Option<usize>,
}

impl GuidedNote {
    pub fn notification(&self) -> Notification<'_> {
        Notification::Guided {
            origin: &self.origin,
            reply: &self.reply,
            key: &self.key,
            edit: self.edit,
            waits: self.waits.map(|s| (self.id.as_str(), s)),
        }
    }
}

/// The key a guided run's message is posted under.
pub fn message_key(id: &str) -> String {
    format!("guided:{id}")
}

/// A waiting run's message: what it waits for, until when, how to go on.
fn waiting_text(id: &str, g: &Guided) -> String {
    let mut text = format!(
        "⏸ `{}` waits at step {} of {}: {} · `/done {id} {}` (or Done) when it is done, by {}; `/abort {id}` stops the run",
        g.request,
        g.step,
        g.of,
        g.text,
        g.step,
        utc(g.deadline)
    );
    push_lines(&mut text, &g.lines);
    text
}

/// A run's message once it ended: `head`, then every line so far.
fn ended_text(head: &str, lines: &[String]) -> String {
    let mut text = head.to_string();
    push_lines(&mut text, lines);
    text
}

fn push_lines(text: &mut String, lines: &[String]) {
    for l in lines {
        text.push('\n');
        text.push_str(l);
    }
}

/// Lines of a step output (`ran`), none when empty.
fn lines_of(ran: &str) -> impl Iterator<Item = String> + '_ {
    ran.lines().filter(|l| !l.trim().is_empty()).map(str::to_string)
}

fn to_json(g: &Guided) -> String {
    // Strings, numbers and maps of strings: serializing cannot fail.
    serde_json::to_string(g).unwrap_or_default()
}

/// Why a `/done` or `/abort` is refused, as the reply's outcome and text.
type Refusal = (Outcome, String);

impl Pipeline {
    /// Keeps a run that paused (`Effect::Pause`) in `tx`: its row (a new id,
    /// or the resumed run's), its audit entry, the line for the answer and
    /// its message, posted (new) or edited (resumed) after the commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn pause_run(
        &self,
        tx: &mut Tx,
        cause: &Cause<'_>,
        (step, of): (usize, usize),
        text: &str,
        within: std::time::Duration,
        ran: &str,
        applied: &mut Applied,
    ) -> Result<(), Internal> {
        let now = self.now();
        let within_ms = within.as_millis() as Millis;
        let (id, mut lines, edit) = match &cause.resumed {
            Some(r) => (r.id.to_string(), r.lines.to_vec(), true),
            None => (format!("g{:08x}", rand::random::<u32>()), Vec::new(), false),
        };
        lines.extend(lines_of(ran));
        let g = Guided {
            profile: cause.cmd.profile.clone(),
            command: cause.cmd.name.clone(),
            args: cause.args.clone(),
            definition: cause.cmd.definition_hash(),
            requester: cause.by.to_string(),
            channel: cause.inv.channel.clone(),
            origin: cause.origin.clone(),
            request: cause.display.to_string(),
            step,
            of,
            text: text.to_string(),
            within_ms,
            deadline: now + within_ms,
            lines,
        };
        tx.schedule_payload(GUIDED, &id, g.deadline, &to_json(&g)).await?;
        // Where no message is rendered (the console), the line is all there is.
        let message = match self.renderers.renders(&g.origin.platform) {
            true => "; its message (Done / Abort) is in this channel",
            false => "",
        };
        applied.lines.push(format!(
            "⏸ guided run `{id}` waits at step {step} of {of}: {text} (confirm with `/done {id} {step}` by {}, or `/abort {id}`){message}.",
            utc(g.deadline)
        ));
        let mut entry = self.entry(cause.inv, cause.actor, "guided.paused", Some(cause.cmd), None);
        entry.detail = Some(format!("{id} waits at step {step} of {of}: {text}"));
        applied.audit.push(entry);
        applied.due.push(g.deadline);
        applied.guided.push(GuidedNote {
            key: message_key(&id),
            reply: Reply::new(Outcome::Done, waiting_text(&id, &g)),
            origin: g.origin.clone(),
            id,
            edit,
            waits: Some(step),
        });
        Ok(())
    }

    /// `/done <id> <step>`: confirms the step run `id` waits at, runs the
    /// steps after it and settles (see the module docs).
    pub(super) async fn guided_done(
        &self,
        inv: &Invocation,
        actor: &Actor,
        id: &str,
        step: usize,
    ) -> Result<Reply, Internal> {
        let now = self.now();
        let (row, g, cmd) = match self.waiting_run(actor, id).await? {
            Ok(found) => found,
            Err(refusal) => return self.refuse_guided(inv, actor, "guided.done", refusal).await,
        };
        if step != g.step {
            let why = format!(
                "`{id}` waits at step {} of {}, not step {step}: `/done {id} {}` once that is done.",
                g.step, g.of, g.step
            );
            return self
                .refuse_guided(inv, actor, "guided.done", (Outcome::Usage, why))
                .await;
        }
        let lease = now + lease_for(self.executor.budget(&cmd.action, &self.catalog.targets));
        if !self
            .store
            .claim_payload(GUIDED, id, &row.payload, now, lease)
            .await?
        {
            let why = format!("`{id}` changed meanwhile (confirmed, aborted or expired): nothing was done.");
            return self
                .refuse_guided(inv, actor, "guided.done", (Outcome::NotPermitted, why))
                .await;
        }
        let args = self.execution_args(cmd, &g.args).await?;
        let result = self
            .executor
            .resume(&cmd.action, &self.catalog.targets, &args, g.step)
            .await;
        let who = actor.who();
        let mut lines = g.lines.clone();
        lines.push(format!("✓ {}/{} confirmed by {who}: {}", g.step, g.of, g.text));
        let mut tx = self.store.begin().await?;
        if !tx.settle_claim(GUIDED, id, lease, None).await? {
            // Another instance found the lease lapsed and reported the run.
            let text =
                format!("Step {step} of `{id}` ran, but its report was taken over; see the run's message.");
            return Ok(Reply::new(Outcome::Failed, text).private());
        }
        let mut entry = self.entry(
            inv,
            actor,
            "execution",
            Some(cmd),
            serde_json::to_string(&g.args).ok(),
        );
        entry.outcome = exec_outcome(&result).into();
        entry.detail = Some(format!(
            "{id}: step {} of {} confirmed by {who}; {}",
            g.step,
            g.of,
            exec_detail(&result)
        ));
        let resumed = Resumed { id, lines: &lines };
        let cause = Cause {
            inv,
            actor,
            by: &g.requester,
            cmd,
            display: &g.request,
            args: &g.args,
            origin: &g.origin,
            resumed: Some(resumed),
        };
        let mut applied = self
            .apply_effects(&mut tx, &cause, crate::exec::effects(&result))
            .await?;
        let finished = self.finish_execution(cmd, &g.args, &result);
        let reply = if applied.guided.is_empty() {
            // The run ended: its message shows the whole of it.
            let mut all = lines;
            all.extend(lines_of(&finished.text));
            let head = match finished.outcome {
                Outcome::Failed => format!("`{}` failed after step {} was confirmed", g.request, g.step),
                _ => format!("`{}` · all {} steps ran", g.request, g.of),
            };
            applied.guided.push(GuidedNote {
                id: id.to_string(),
                key: message_key(id),
                origin: g.origin.clone(),
                reply: Reply::new(finished.outcome, ended_text(&head, &all)),
                edit: true,
                waits: None,
            });
            Reply::new(
                finished.outcome,
                format!("Step {step} of `{id}` confirmed; {}", finished.text),
            )
        } else {
            Reply::new(
                Outcome::Done,
                applied.append_to(&format!("Step {step} of `{id}` confirmed.")),
            )
        };
        let reply = reply.private();
        let audit: Vec<Entry> = std::iter::once(entry)
            .chain(applied.audit.iter().cloned())
            .collect();
        self.commit_answer(tx, inv, &reply, &audit, &applied).await?;
        self.after_effects(&applied);
        Ok(reply)
    }

    /// `/abort <id>`: stops run `id` where it waits.
    pub(super) async fn guided_abort(
        &self,
        inv: &Invocation,
        actor: &Actor,
        id: &str,
    ) -> Result<Reply, Internal> {
        let (row, g, cmd) = match self.waiting_run(actor, id).await? {
            Ok(found) => found,
            Err(refusal) => return self.refuse_guided(inv, actor, "guided.abort", refusal).await,
        };
        let mut tx = self.store.begin().await?;
        if !tx.take_payload(GUIDED, id, &row.payload).await? {
            let why = format!("`{id}` changed meanwhile (confirmed, aborted or expired): nothing was done.");
            return self
                .refuse_guided(inv, actor, "guided.abort", (Outcome::NotPermitted, why))
                .await;
        }
        let who = actor.who();
        let head = format!(
            "`{}` aborted by {who} at step {} of {}: the steps from there on did not run",
            g.request, g.step, g.of
        );
        let mut entry = self.entry(inv, actor, "guided.aborted", Some(cmd), None);
        entry.detail = Some(format!("{id} aborted at step {} of {}", g.step, g.of));
        let applied = Applied {
            guided: vec![ended(id, &g, Outcome::Failed, &head)],
            ..Applied::default()
        };
        let reply = Reply::new(Outcome::Done, format!("`{id}` aborted at step {}.", g.step)).private();
        self.commit_answer(tx, inv, &reply, &[entry], &applied).await?;
        Ok(reply)
    }

    /// The run `id` waiting for a confirmation that `actor` may give, with
    /// its command as requested; else why not.
    async fn waiting_run(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<Result<(TimerRow, Guided, &Command), Refusal>, Internal> {
        let row = self.store.timer_row(GUIDED, id).await?;
        let found = row.and_then(|r| serde_json::from_str::<Guided>(&r.payload).ok().map(|g| (r, g)));
        let Some((row, g)) = found else {
            let why = format!("No guided run `{id}` is waiting: it ended, or the id is mistyped.");
            return Ok(Err((Outcome::Usage, why)));
        };
        if row.claimed_until != 0 {
            let why = format!(
                "Step {} of `{id}` was confirmed and the steps after it are running.",
                g.step
            );
            return Ok(Err((Outcome::NotPermitted, why)));
        }
        if row.due_at <= self.now() {
            let why = format!("`{id}` was not confirmed in time: it stopped at step {}.", g.step);
            return Ok(Err((Outcome::NotPermitted, why)));
        }
        let cmd = match self.catalog.get(&g.profile, &g.command) {
            Some(c) if c.definition_hash() == g.definition => c,
            _ => {
                let why = format!(
                    "`/{}` changed since `{id}` was requested: it cannot go on (`/abort {id}` ends it).",
                    g.command
                );
                return Ok(Err((Outcome::NotPermitted, why)));
            }
        };
        let permitted = matches!(actor, Actor::Person { .. })
            && (actor.who() == g.requester || auth::may_request(actor, cmd).is_ok());
        if !permitted {
            let why = format!(
                "refused: only {} or someone who may run `/{}` confirms or aborts `{id}`.",
                g.requester, g.command
            );
            return Ok(Err((Outcome::NotPermitted, why)));
        }
        Ok(Ok((row, g, cmd)))
    }

    async fn refuse_guided(
        &self,
        inv: &Invocation,
        actor: &Actor,
        kind: &str,
        (outcome, why): Refusal,
    ) -> Result<Reply, Internal> {
        let mut entry = self.entry(inv, actor, kind, None, None);
        entry.outcome = "refused".into();
        entry.detail = Some(why.clone());
        self.answered(inv, Reply::new(outcome, why).private(), &[entry])
            .await
    }

    /// A guided row fell due: the confirmation window passed (the run stops
    /// there), or a claim's lease lapsed (steps ran, their result unknown,
    /// nothing run again). Reported in the run's message and the audit.
    pub(super) async fn fire_guided(&self, t: &Timer) -> Result<(), Internal> {
        let now = self.now();
        let Some(claimed) = self
            .store
            .claim_timer(GUIDED, &t.item, now, now + LEASE_MS)
            .await?
        else {
            return Ok(());
        };
        let mut tx = self.store.begin().await?;
        if !tx.settle_claim(GUIDED, &t.item, claimed.lease, None).await? {
            return Ok(());
        }
        let Ok(g) = serde_json::from_str::<Guided>(&claimed.payload) else {
            tracing::warn!(item = %t.item, "timers: a guided run's payload is unreadable; dropped");
            return Ok(tx.commit().await?);
        };
        let (head, outcome, detail) = if claimed.lapsed {
            (
                format!(
                    "⚠️ opsbot restarted while the steps after step {} of `{}` ran; their result is unknown. Check the target before retrying; nothing was run again.",
                    g.step, g.request
                ),
                "unknown",
                format!("{}: cut off by a restart after step {} was confirmed", t.item, g.step),
            )
        } else {
            (
                format!(
                    "⌛ `{}` stopped: step {} of {} was not confirmed within {}; the steps from there on did not run",
                    g.request,
                    g.step,
                    g.of,
                    crate::duration::format(std::time::Duration::from_millis(g.within_ms as u64))
                ),
                "expired",
                format!("{} expired at step {} of {}", t.item, g.step, g.of),
            )
        };
        let entry = Entry {
            at: now,
            kind: "guided.ended".into(),
            person: g.requester.clone(),
            identity: String::new(),
            source: SOURCE_TIMER.into(),
            channel: g.channel.clone(),
            command: Some(format!("{}:{}", g.profile, g.command)),
            args: serde_json::to_string(&g.args).ok(),
            outcome: outcome.into(),
            detail: Some(detail),
        };
        let note = ended(&t.item, &g, Outcome::Failed, &head);
        self.commit_notes(tx, &[entry], &[note.notification()], None)
            .await
    }
}

/// The edit of run `id`'s message once it ended with `head`.
fn ended(id: &str, g: &Guided, outcome: Outcome, head: &str) -> GuidedNote {
    GuidedNote {
        id: id.to_string(),
        key: message_key(id),
        origin: g.origin.clone(),
        reply: Reply::new(outcome, ended_text(head, &g.lines)),
        edit: true,
        waits: None,
    }
}
