//! Scheduled actions on the one timer service: a command's run that the bot
//! makes later on its own, for the request that asked for it (catalog
//! `watch` and `then`, `catalog::Schedule`). Each is one timer row of kind
//! [`SCHEDULED`] whose payload ([`Scheduled`]) says what to run (profile,
//! command, arguments, the definition it was requested under), as whom,
//! where to answer and which message to edit.
//!
//! A run is claimed, executed, then settled: the claim moves the row's due
//! time to a lease in its own short transaction (executors never run while
//! a transaction is open), the action runs through the executor, and one
//! transaction then moves the row to the next run (or deletes it) on the
//! condition that the claim still holds it, with the run's audit entry and
//! its message. Two instances never run one tick twice; a run cut off by a
//! crash is found when its lease lapses, reported as unknown and not run
//! again (a watch goes on with its next run).

use super::pipeline::{exec_detail, exec_outcome, Internal, Invocation, Pipeline, SOURCE_TIMER};
use super::platform::{Notification, Origin};
use super::reply::{Outcome, Reply};
use crate::audit::Entry;
use crate::auth::{self, Actor};
use crate::catalog::Schedule;
use crate::clock::Millis;
use crate::command::Request;
use crate::exec::{ExecError, ExecOutput};
use crate::store::{Claimed, Timer, SCHEDULED};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How long a claimed run may take before another instance takes it for
/// cut off, at least (see [`lease_for`]).
pub const LEASE_MS: Millis = 10 * 60 * 1000;

/// A claim's lease for a run whose action may take `budget`
/// (`Executor::budget`): that and a minute to settle, at least
/// [`LEASE_MS`]. A claim that lapses is reported as cut off, so it must not
/// lapse while the action runs.
pub(super) fn lease_for(budget: std::time::Duration) -> Millis {
    let budget = Millis::try_from(budget.as_millis()).unwrap_or(Millis::MAX / 4);
    LEASE_MS.max(budget + 60_000)
}

/// What a scheduled action runs, as whom, and where it answers: the
/// payload of its timer row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheduled {
    pub profile: String,
    /// The command's chat words.
    pub command: String,
    /// The arguments it runs with (normalized, as the parser gave them).
    pub args: BTreeMap<String, String>,
    /// The command's `definition_hash` when it was requested: a changed
    /// command does not run on an old request.
    pub definition: String,
    /// The requester's wire identity; every run is authorized again.
    pub actor: String,
    pub channel: Option<String>,
    pub origin: Origin,
    /// The request as typed (canonical form), for messages and the audit.
    pub request: String,
    pub form: Form,
}

/// A watch's state, or a follow-up's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Form {
    /// Runs every `every_ms` from `started_at` until `ends_at` (`runs` in
    /// all, the request's own the first), editing the message `key`; `run`
    /// is the number of the next run.
    Watch {
        key: String,
        every_ms: Millis,
        started_at: Millis,
        ends_at: Millis,
        run: u32,
        runs: u32,
        /// The last run's result, shown again when the watch is stopped.
        last: String,
    },
    /// Runs once and posts its result.
    Then,
}

/// A request's run: its result, reply, audit entry and the rows for the
/// timeline of the incident it was typed in.
pub(super) type Executed<'a> = (
    &'a Result<ExecOutput, ExecError>,
    Reply,
    Entry,
    Vec<(i64, crate::incident::Event)>,
);

/// What a request of a scheduled command leaves behind: its timer row (due
/// time, payload), its answer, and a watch's message key.
struct Planned {
    row: Option<(Millis, Scheduled)>,
    reply: Reply,
    key: Option<String>,
}

impl Planned {
    /// Nothing runs later (a `then` whose run failed or whose `when` does
    /// not match): the answer alone.
    fn nothing(reply: Reply) -> Planned {
        Planned {
            row: None,
            reply,
            key: None,
        }
    }
}

/// A watch's first run: its message (under `watch:<item>`) and its next run.
fn plan_watch(base: Scheduled, item: &str, every: &str, lasts: &str, now: Millis, reply: Reply) -> Planned {
    let ms = |name: &str| {
        base.args
            .get(name)
            .and_then(|v| crate::duration::parse(v).ok())
            .map_or(0, |d| d.as_millis() as Millis)
    };
    let (every_ms, for_ms) = (ms(every).max(1), ms(lasts));
    let runs = (for_ms / every_ms) as u32 + 1;
    let key = format!("watch:{item}");
    let due = now + every_ms;
    let text = watch_text(&base.request, 1, runs, Some(due), &reply.text);
    let s = Scheduled {
        form: Form::Watch {
            key: key.clone(),
            every_ms,
            started_at: now,
            ends_at: now + for_ms,
            run: 2,
            runs,
            last: reply.text,
        },
        ..base
    };
    Planned {
        row: Some((due, s)),
        reply: Reply::new(reply.outcome, text),
        key: Some(key),
    }
}

/// A `then` follow-up with `args`, `delay` after `now`.
fn plan_then(
    base: Scheduled,
    req: &Request<'_>,
    args: BTreeMap<String, String>,
    delay: std::time::Duration,
    now: Millis,
    reply: Reply,
) -> Planned {
    let due = now + delay.as_millis() as Millis;
    let then = Request {
        command: req.command,
        args: args.clone(),
        break_glass: false,
    };
    let text = format!(
        "{}\nThen `{}` runs at {} (in {}); its result is posted here.",
        reply.text,
        then.display(),
        utc(due),
        crate::duration::format(delay)
    );
    Planned {
        row: Some((due, Scheduled { args, ..base })),
        reply: Reply::new(reply.outcome, text),
        key: None,
    }
}

/// Where one run leaves the action.
enum Next {
    /// Run again at this time.
    At(Millis),
    /// Over: the row goes.
    Done,
}

impl Pipeline {
    /// Answers a request of a command with a schedule: its result, and in
    /// the same transaction the timer row of what runs later (a watch's
    /// next run, a `then` follow-up after a successful run).
    pub(super) async fn answer_scheduled(
        &self,
        inv: &Invocation,
        req: &Request<'_>,
        schedule: &Schedule,
        done: Executed<'_>,
    ) -> Result<Reply, Internal> {
        let (result, reply, audit, timeline) = done;
        let now = self.now();
        let cmd = req.command;
        let item = format!("{now:x}-{:08x}", rand::random::<u32>());
        let base = Scheduled {
            profile: cmd.profile.clone(),
            command: cmd.name.clone(),
            args: req.args.clone(),
            definition: cmd.definition_hash(),
            actor: inv.actor.clone(),
            channel: inv.channel.clone(),
            origin: inv.origin.clone(),
            request: req.display(),
            form: Form::Then,
        };
        let planned = match (schedule, result.is_ok()) {
            (Schedule::Watch { every, lasts, .. }, _) => plan_watch(base, &item, every, lasts, now, reply),
            (Schedule::Then { .. }, true) => match schedule.follow_up(&req.args) {
                Some((delay, args)) => plan_then(base, req, args, delay, now, reply),
                None => Planned::nothing(reply),
            },
            (Schedule::Then { .. }, false) => Planned::nothing(reply),
        };
        let Planned { row, reply, key } = planned;
        let mut tx = self.store.begin().await?;
        let due = row.as_ref().map(|(due, _)| *due);
        if let Some((due, s)) = &row {
            tx.schedule_payload(SCHEDULED, &item, *due, &to_json(s)).await?;
        }
        let notes = match &key {
            Some(k) => vec![Notification::Scheduled {
                origin: &inv.origin,
                reply: &reply,
                key: Some(k),
                edit: false,
            }],
            None => vec![Notification::Reply {
                origin: &inv.origin,
                reply: &reply,
                approval: None,
            }],
        };
        tx.add_incident_events(&timeline).await?;
        self.commit_notes(tx, &[audit], &notes, inv.inbox).await?;
        if let Some(due) = due {
            self.alarm.set(due);
        }
        Ok(reply)
    }

    /// Ends the watches of the request's command in its channel (its
    /// `stop` switch): their rows go, each message says who stopped it,
    /// with the answer and the audit entry, in one transaction. A run under
    /// way finds its row gone and drops its result.
    pub(super) async fn stop_watches(
        &self,
        inv: &Invocation,
        actor: &Actor,
        req: &Request<'_>,
        mut audit: Entry,
    ) -> Result<Reply, Internal> {
        let cmd = req.command;
        let mut stopped = Vec::new();
        for (item, payload) in self.store.timer_payloads(SCHEDULED).await? {
            let Ok(s) = serde_json::from_str::<Scheduled>(&payload) else {
                continue;
            };
            let here = s.profile == cmd.profile
                && s.command == cmd.name
                && s.channel == inv.channel
                && s.origin.platform == inv.origin.platform;
            if let (true, Form::Watch { .. }) = (here, &s.form) {
                stopped.push((item, s));
            }
        }
        let mut tx = self.store.begin().await?;
        let mut edits = Vec::new();
        for (item, s) in &stopped {
            tx.cancel(SCHEDULED, item).await?;
            if let Form::Watch {
                key, run, runs, last, ..
            } = &s.form
            {
                let text = format!(
                    "👀 `{}` · stopped by {} after run {} of {runs}\n{last}",
                    s.request,
                    actor.who(),
                    run - 1
                );
                edits.push((s, key.as_str(), Reply::new(Outcome::Done, text)));
            }
        }
        let reply = Reply::new(
            Outcome::Done,
            match stopped.len() {
                0 => format!("No watch of `/{}` is running in this channel.", cmd.name),
                n => format!(
                    "Stopped {n} watch{} of `/{}` in this channel.",
                    if n == 1 { "" } else { "es" },
                    cmd.name
                ),
            },
        );
        let mut notes: Vec<Notification<'_>> = edits
            .iter()
            .map(|(s, key, r)| Notification::Scheduled {
                origin: &s.origin,
                reply: r,
                key: Some(key),
                edit: true,
            })
            .collect();
        notes.push(Notification::Reply {
            origin: &inv.origin,
            reply: &reply,
            approval: None,
        });
        audit.kind = "execution".into();
        audit.outcome = "succeeded".into();
        audit.detail = Some(format!("stopped {} watch(es)", stopped.len()));
        self.commit_notes(tx, &[audit], &notes, inv.inbox).await?;
        Ok(reply)
    }

    /// Runs one due scheduled action (see the module docs).
    pub(super) async fn fire_scheduled(&self, t: &Timer) -> Result<(), Internal> {
        match self.claim_scheduled(t).await? {
            Some(claimed) => self.run_scheduled_claim(t, claimed).await,
            None => Ok(()),
        }
    }

    /// Claims a due scheduled action for one run (`None`: another instance
    /// has it, or it moved).
    pub(super) async fn claim_scheduled(&self, t: &Timer) -> Result<Option<Claimed>, Internal> {
        let now = self.now();
        // Before the payload is read, the command is not known: the lease
        // outlasts the longest action of any scheduled command.
        let longest = self
            .catalog
            .commands
            .iter()
            .filter(|c| c.schedule.is_some())
            .map(|c| self.executor.budget(&c.action, &self.catalog.targets))
            .max()
            .unwrap_or_default();
        Ok(self
            .store
            .claim_timer(SCHEDULED, &t.item, now, now + lease_for(longest))
            .await?)
    }

    /// Runs and settles a claimed scheduled action.
    pub(super) async fn run_scheduled_claim(&self, t: &Timer, claimed: Claimed) -> Result<(), Internal> {
        let s: Scheduled = match serde_json::from_str(&claimed.payload) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(item = %t.item, error = %e, "timers: a scheduled action's payload is unreadable; dropped");
                let mut tx = self.store.begin().await?;
                tx.settle_claim(SCHEDULED, &t.item, claimed.lease, None).await?;
                return Ok(tx.commit().await?);
            }
        };
        let actor = self.directory.resolve(&s.actor);
        let (reply, entry) = if claimed.lapsed {
            let text = format!(
                "opsbot restarted while running `{}`; its result is unknown. Check the target before retrying.",
                s.request
            );
            let mut e = self.scheduled_entry(&s, &actor);
            e.outcome = "unknown".into();
            e.detail = Some("cut off by a restart".into());
            (Reply::new(Outcome::Failed, text), e)
        } else {
            self.run_scheduled(&s, &actor).await
        };
        // A command gone, changed or no longer permitted ends a watch.
        let refused = entry.kind == "denied";
        self.settle_scheduled(t, &claimed, s, reply, entry, refused).await
    }

    /// Runs the action of `s` as `actor` (authorized again, on the command
    /// as it was requested): the reply and its audit entry.
    async fn run_scheduled(&self, s: &Scheduled, actor: &Actor) -> (Reply, Entry) {
        let mut entry = self.scheduled_entry(s, actor);
        let cmd = match self.catalog.get(&s.profile, &s.command) {
            Some(c) if c.definition_hash() == s.definition => c,
            found => {
                let why = match found {
                    Some(_) => "the command's definition changed since it was requested",
                    None => "the command is no longer in the catalog",
                };
                return (self.scheduled_refusal(s, why), denied(entry, why));
            }
        };
        if let Err(d) = auth::may_request(actor, cmd) {
            let why = d.to_string();
            return (self.scheduled_refusal(s, &why), denied(entry, &why));
        }
        let result = self
            .executor
            .execute(&cmd.action, &self.catalog.targets, &s.args)
            .await;
        entry.outcome = exec_outcome(&result).into();
        entry.detail = Some(exec_detail(&result));
        (self.finish_execution(cmd, &s.args, &result), entry)
    }

    fn scheduled_refusal(&self, s: &Scheduled, why: &str) -> Reply {
        Reply::new(
            Outcome::NotPermitted,
            format!("`{}` did not run: {why}.", s.request),
        )
    }

    /// Settles a claimed run: the row moves on (or goes), with the run's
    /// audit entry and message, in one transaction; nothing when the claim
    /// lapsed meanwhile (another instance reported the run).
    async fn settle_scheduled(
        &self,
        t: &Timer,
        claimed: &Claimed,
        mut s: Scheduled,
        reply: Reply,
        entry: Entry,
        refused: bool,
    ) -> Result<(), Internal> {
        let now = self.now();
        let (next, reply, key) = match &mut s.form {
            Form::Watch {
                key,
                every_ms,
                started_at,
                ends_at,
                run,
                runs,
                last,
            } => {
                // Runs keep the request's rhythm; one missed while nothing
                // ran (a long restart, a lapsed claim) is skipped, not caught up.
                let current = *run;
                let due_of = |r: u32| *started_at + Millis::from(r - 1) * *every_ms;
                let mut next_run = current + 1;
                while due_of(next_run) <= now {
                    next_run += 1;
                }
                let next = if refused || due_of(next_run) > *ends_at {
                    Next::Done
                } else {
                    Next::At(due_of(next_run))
                };
                let at = match next {
                    Next::At(d) => Some(d),
                    Next::Done => None,
                };
                let text = watch_text(&s.request, current, *runs, at, &reply.text);
                *run = next_run;
                last.clone_from(&reply.text);
                (next, Reply::new(reply.outcome, text), Some(key.clone()))
            }
            Form::Then => (Next::Done, reply, None),
        };
        let payload = to_json(&s);
        let mut tx = self.store.begin().await?;
        let moved = match next {
            Next::At(due) => Some((due, payload.as_str())),
            Next::Done => None,
        };
        if !tx.settle_claim(SCHEDULED, &t.item, claimed.lease, moved).await? {
            tracing::warn!(item = %t.item, "timers: a scheduled run's row was taken meanwhile (stopped, or its lease lapsed); its result is dropped");
            return Ok(());
        }
        let note = Notification::Scheduled {
            origin: &s.origin,
            reply: &reply,
            key: key.as_deref(),
            edit: key.is_some(),
        };
        self.commit_notes(tx, &[entry], &[note], None).await?;
        if let Next::At(due) = next {
            self.alarm.set(due);
        }
        Ok(())
    }

    /// The audit entry of a scheduled run of `s` (source `timer`).
    fn scheduled_entry(&self, s: &Scheduled, actor: &Actor) -> Entry {
        Entry {
            at: self.now(),
            kind: "execution".into(),
            person: actor.who().into(),
            identity: actor.identity().into(),
            source: SOURCE_TIMER.into(),
            channel: s.channel.clone(),
            command: Some(format!("{}:{}", s.profile, s.command)),
            args: serde_json::to_string(&s.args).ok(),
            outcome: "ok".into(),
            detail: None,
        }
    }
}

fn denied(mut e: Entry, why: &str) -> Entry {
    e.kind = "denied".into();
    e.outcome = "not_permitted".into();
    e.detail = Some(why.into());
    e
}

/// A watch's message: which run it shows, when the next one is (or that the
/// watch ended), then the run's result.
fn watch_text(request: &str, run: u32, runs: u32, next: Option<Millis>, result: &str) -> String {
    let state = match next {
        Some(at) => format!("next run at {}", utc(at)),
        None => "watch ended".into(),
    };
    format!("👀 `{request}` · run {run} of {runs} · {state}\n{result}")
}

/// `16:04:05 UTC`.
pub(super) fn utc(ms: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}

fn to_json(s: &Scheduled) -> String {
    // Strings and maps of strings: serializing cannot fail.
    serde_json::to_string(s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_claim_outlasts_the_action_it_runs() {
        assert_eq!(
            lease_for(Duration::from_secs(30)),
            LEASE_MS,
            "at least the least lease"
        );
        assert_eq!(
            lease_for(Duration::from_secs(30 * 60)),
            31 * 60_000,
            "the action, and a minute"
        );
    }
}
