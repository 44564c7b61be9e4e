//! The incident side of the pipeline: `/incident …`, `/incidents`,
//! `/oncall …`, and the two timer kinds incidents use (the next escalation
//! step, the update reminder). Every change locks the incident's row, then
//! writes the incident, its timeline event, its audit entry, its timers and
//! its messages (card edit, thread post) in one transaction; what changes is
//! decided by the pure `incident` module, when steps are due by
//! `escalation`.

use super::pipeline::{Internal, Invocation, Pipeline, SOURCE_TIMER};
use super::platform::{Mention, Notification};
use super::reply::{Outcome, Reply};
use crate::alerts::silence::Opening;
use crate::audit::Entry;
use crate::auth::{Actor, Person};
use crate::calendar::Calendar;
use crate::catalog::ApprovePolicy;
use crate::clock::{rfc3339, Millis};
use crate::command::Request;
use crate::escalation::{Level, Step, Target};
use crate::incident::{self, Action, Event, Incident, Oncall, Role, State};
use crate::policy::ProfilePolicy;
use crate::rotation::{Override, Rotation};
use crate::store::{OverrideRow, Timer, Tx, INCIDENT_REMINDER, INCIDENT_STEP};

/// What firing one incident timer did.
enum Fire {
    /// Posted in the thread (and maybe planned the next deadline).
    Fired(Box<Fired>),
    /// Nothing to post (resolved, no more steps, no policy, or a reminder
    /// that moved because an update came).
    Nothing,
}

struct Fired {
    incident: Incident,
    text: String,
    mentions: Vec<Mention>,
    entry: Entry,
}

/// The writes of a batch of incident timers, made together at its end.
#[derive(Default)]
struct Writes {
    /// (incident, steps fired)
    fired: Vec<(i64, usize)>,
    events: Vec<(i64, Event)>,
    /// (kind, incident, due)
    timers: Vec<(&'static str, i64, Millis)>,
}

/// The audit source of what alerts make opsbot do.
const SOURCE_ALERTS: &str = "alerts";

/// Who opsbot is on a timeline.
const OPSBOT: &str = "opsbot";

/// The rotation `/oncall override` changes when none is named.
const DEFAULT_ROTATION: &str = "primary";

fn refused(text: impl Into<String>) -> Reply {
    Reply::new(Outcome::NotPermitted, text)
}

fn usage(text: impl Into<String>) -> Reply {
    Reply::new(Outcome::Usage, text)
}

impl Pipeline {
    /// `/incident <action>`.
    pub(super) async fn incident(
        &self,
        inv: &Invocation,
        actor: &Actor,
        cmd: incident::Command,
    ) -> Result<Reply, Internal> {
        if let Action::Declare {
            level,
            title,
            profile,
        } = &cmd.action
        {
            return self.declare(inv, actor, level, title, profile.as_deref()).await;
        }
        let inc = match self.which_incident(inv, cmd.id).await? {
            Ok(inc) => inc,
            Err(text) => return self.answered(inv, usage(text), &[]).await,
        };
        match &cmd.action {
            Action::Status => {
                let text = self.status_text(&inc);
                self.answered(inv, Reply::new(Outcome::Done, text), &[]).await
            }
            Action::Timeline => {
                let events = self.store.incident_events(inc.id).await?;
                let text = timeline_text(&inc, &events);
                self.answered(inv, Reply::new(Outcome::Done, text), &[]).await
            }
            action => self.change(inv, actor, inc.id, action).await,
        }
    }

    /// The incident `#id` names, or the one whose thread `inv` is in.
    async fn which_incident(
        &self,
        inv: &Invocation,
        id: Option<i64>,
    ) -> Result<Result<Incident, String>, Internal> {
        let id = match id {
            Some(id) => Some(id),
            None => {
                self.thread_incident(&inv.origin.platform, inv.thread.as_deref())
                    .await?
            }
        };
        let Some(id) = id else {
            return Ok(Err(
                "Which incident? Add its id, e.g. `/incident ack #12` (see `/incidents`), or type the command in the incident's thread."
                    .into(),
            ));
        };
        Ok(self
            .store
            .incident(id)
            .await?
            .ok_or_else(|| format!("There is no incident {} (see `/incidents`).", incident::label(id))))
    }

    /// The incident whose card `thread` hangs under, on `platform` (where
    /// threads are channels, the platform's inbound sets the thread to that
    /// channel). Outside a thread nothing is looked up: the common case of a
    /// command in a channel costs no query. The console has no threads.
    pub(super) async fn thread_incident(
        &self,
        platform: &str,
        thread: Option<&str>,
    ) -> Result<Option<i64>, Internal> {
        match thread {
            Some(place) if platform != super::CONSOLE => {
                Ok(self.store.incident_by_card(platform, place).await?)
            }
            _ => Ok(None),
        }
    }

    fn policy_of(&self, profile: &str) -> Option<&ProfilePolicy> {
        self.policies.profiles.get(profile)
    }

    fn level_of<'p>(&'p self, inc: &Incident) -> Option<(&'p ProfilePolicy, &'p Level)> {
        let policy = self.policy_of(&inc.profile)?;
        Some((policy, policy.levels.get(&inc.level)?))
    }

    fn calendar_of(&self, policy: &ProfilePolicy) -> Option<&Calendar> {
        policy
            .calendar
            .as_ref()
            .and_then(|c| self.policies.calendars.get(c))
    }

    /// The ack deadline while nobody acknowledged.
    fn ack_by(&self, inc: &Incident) -> Option<Millis> {
        let (policy, level) = self.level_of(inc)?;
        (inc.state == State::Open).then(|| level.ack_deadline(inc.declared_at, self.calendar_of(policy)))
    }

    async fn declare(
        &self,
        inv: &Invocation,
        actor: &Actor,
        level: &str,
        title: &str,
        profile: Option<&str>,
    ) -> Result<Reply, Internal> {
        let Actor::Person { person, .. } = actor else {
            return self
                .answered(
                    inv,
                    refused("Only people opsbot knows can declare incidents."),
                    &[],
                )
                .await;
        };
        let scope = self.scope(inv);
        let with_policy: Vec<&String> = self
            .profiles
            .iter()
            .filter(|p| self.policies.profiles.contains_key(*p))
            .collect();
        let profile = match profile.or(scope.channel_profile) {
            Some(p) => p.to_string(),
            None if with_policy.len() == 1 => with_policy[0].clone(),
            None => {
                let list: Vec<&str> = with_policy.iter().map(|s| s.as_str()).collect();
                let text = format!(
                    "Which system? This channel is bound to none: add `--sys <system>` ({}).",
                    list.join(", ")
                );
                return self.answered(inv, usage(text), &[]).await;
            }
        };
        let Some(policy) = self
            .policy_of(&profile)
            .filter(|_| self.profiles.contains(&profile))
        else {
            let text = format!("`{profile}` has no severity policy here (see `[policies]` in the config).");
            return self.answered(inv, usage(text), &[]).await;
        };
        let now = self.now();
        let new = match incident::declare(policy, &profile, level, title, &person.name, now) {
            Ok(n) => n,
            Err(text) => return self.answered(inv, usage(text), &[]).await,
        };
        let rank = policy.rank(&new.level).unwrap_or(usize::MAX);
        if !(person.roles.contains("oncall") || (person.roles.contains("support") && rank >= 3)) {
            let text = if person.roles.contains("support") {
                format!(
                    "Declaring {} needs the oncall role (support may declare rank 3 and below).",
                    new.level
                )
            } else {
                "Declaring an incident needs the oncall role (or support, for rank 3 and below).".into()
            };
            return self.answered(inv, refused(text), &[]).await;
        }
        let mut tx = self.store.begin().await?;
        let first = Event::new(
            now,
            "declared",
            &person.name,
            format!("{} {} declared", new.level, new.title),
        );
        let inc = tx.create_incident(&new, &first).await?;
        let due = self.plan(&mut tx, &inc).await?;
        let mut entry = self.entry(inv, actor, "incident.declared", None, None);
        entry.detail = Some(format!(
            "{} {} {} ({})",
            inc.label(),
            inc.level,
            inc.title,
            inc.profile
        ));
        let here = inc
            .destinations
            .iter()
            .any(|d| d.platform == inv.origin.platform && Some(&d.channel) == inv.channel.as_ref());
        let mut reply = Reply::new(
            Outcome::Done,
            format!(
                "declared {} ({} {}): {} — paging per the {} policy",
                inc.label(),
                inc.profile,
                inc.level,
                inc.title,
                inc.level
            ),
        );
        if here {
            reply = reply.private();
        }
        let notes = [Notification::IncidentCard {
            incident: &inc,
            ack_by: self.ack_by(&inc),
            new: true,
        }];
        self.finish(tx, inv, entry, &notes, reply, due).await
    }

    /// Ends a change: commits `notes` and the answer `reply` with `entry`,
    /// then tells the alarm about the new deadline `due`.
    async fn finish(
        &self,
        tx: Tx,
        inv: &Invocation,
        entry: Entry,
        notes: &[Notification<'_>],
        reply: Reply,
        due: Option<Millis>,
    ) -> Result<Reply, Internal> {
        let mut all = notes.to_vec();
        all.push(Notification::Reply {
            origin: &inv.origin,
            reply: &reply,
            approval: None,
        });
        self.commit_notes(tx, &[entry], &all, inv.inbox).await?;
        due.into_iter().for_each(|d| self.alarm.set(d));
        Ok(reply)
    }

    /// `--break-glass`: during an open rank-1 incident of the command's
    /// profile, runs an approval-gated command at once; its approvers are
    /// paged in the incident's thread, and the run is flagged for review in
    /// the audit log and on the incident's timeline. Without such an
    /// incident it is refused.
    pub(super) async fn break_glass(
        &self,
        inv: &Invocation,
        actor: &Actor,
        req: &Request<'_>,
        policy: &ApprovePolicy,
        mut entry: Entry,
    ) -> Result<Reply, Internal> {
        let cmd = req.command;
        let rank_one = |i: &Incident| self.policy_of(&i.profile).and_then(|p| p.rank(&i.level)) == Some(1);
        let open = self.store.open_incidents().await?;
        let Some(inc) = open.into_iter().find(|i| i.profile == cmd.profile && rank_one(i)) else {
            let top = self
                .policy_of(&cmd.profile)
                .and_then(|p| p.scale.first().cloned())
                .unwrap_or_else(|| "rank-1".into());
            let text = format!(
                "`--break-glass` needs an open {top} incident of {}; there is none. Drop `--break-glass` to request the approval.",
                cmd.profile
            );
            entry.kind = "denied".into();
            entry.outcome = "not_permitted".into();
            entry.detail = Some(text.clone());
            return self.answered(inv, refused(text), &[entry]).await;
        };
        // Break-glass skips the approval, not the preview: only what it
        // finds is touched.
        let preview = match self.run_preview(inv, cmd, &req.args, &mut entry).await? {
            Ok(p) => p,
            Err(answered) => return Ok(answered),
        };
        let result = self.execute_command(cmd, &req.args, preview.as_ref()).await?;
        let mut reply = self.finish_execution(cmd, &req.args, &result);
        let outcome = super::pipeline::exec_outcome(&result);
        let detail = super::pipeline::exec_detail(&result);
        entry.kind = "execution.break_glass".into();
        entry.outcome = outcome.into();
        entry.detail = Some(format!(
            "BREAK-GLASS during {} without approval, flagged for review: {detail}",
            inc.label()
        ));
        let who = actor.who();
        let mut mentions: Vec<Mention> = Vec::new();
        for p in policy.roles.iter().flat_map(|r| self.directory.with_role(r)) {
            if p.name != who && !mentions.iter().any(|m| m.person == p.name) {
                mentions.push(mention(p));
            }
        }
        let text = format!(
            "🚨 break-glass: {who} ran `{}` without approval → {outcome}; flagged for review by",
            req.display()
        );
        let event = Event::new(
            self.now(),
            "break-glass",
            who,
            format!("{} → {outcome}: {detail} (flagged for review)", req.display()),
        );
        let mut tx = self.store.begin().await?;
        tx.add_incident_event(inc.id, &event).await?;
        let display = req.display();
        let cause = super::maintenance::Cause {
            inv,
            actor,
            by: who,
            cmd,
            display: &display,
            args: &req.args,
            origin: &inv.origin,
            resumed: None,
        };
        let applied = self
            .apply_effects(&mut tx, &cause, crate::exec::effects(&result))
            .await?;
        reply.text = applied.append_to(&reply.text);
        let audit: Vec<Entry> = std::iter::once(entry)
            .chain(applied.audit.iter().cloned())
            .collect();
        let mut notes = vec![
            Notification::IncidentThread {
                incident: &inc,
                text: &text,
                mentions: &mentions,
            },
            Notification::Reply {
                origin: &inv.origin,
                reply: &reply,
                approval: None,
            },
        ];
        notes.extend(applied.notifications());
        self.commit_notes(tx, &audit, &notes, inv.inbox).await?;
        self.after_effects(&applied);
        Ok(reply)
    }

    /// Puts the incident's next step and update reminder on the timer
    /// table (or takes them off); answers the earliest new deadline.
    async fn plan(&self, tx: &mut Tx, inc: &Incident) -> Result<Option<Millis>, Internal> {
        let item = inc.id.to_string();
        let Some((policy, level)) = self.level_of(inc) else {
            tx.cancel(INCIDENT_STEP, &item).await?;
            tx.cancel(INCIDENT_REMINDER, &item).await?;
            return Ok(None);
        };
        let step = incident::next_step(inc, level, self.calendar_of(policy)).map(|s| s.1);
        let reminder = incident::reminder_due(inc, level);
        for (kind, due) in [(INCIDENT_STEP, step), (INCIDENT_REMINDER, reminder)] {
            match due {
                Some(at) => tx.schedule(kind, &item, at).await?,
                None => tx.cancel(kind, &item).await?,
            }
        }
        Ok([step, reminder].into_iter().flatten().min())
    }

    /// Who may apply `action` to `inc`.
    async fn may_change(
        &self,
        actor: &Actor,
        inc: &Incident,
        action: &Action,
    ) -> Result<Result<(), String>, Internal> {
        let Actor::Person { person, .. } = actor else {
            return Ok(Err("Only people opsbot knows can change incidents.".into()));
        };
        if person.roles.contains("oncall") {
            return Ok(Ok(()));
        }
        if matches!(action, Action::Ack) {
            let paged = self
                .store
                .incident_events(inc.id)
                .await?
                .iter()
                .any(|e| e.kind == "page" && e.person == person.name);
            if paged {
                return Ok(Ok(()));
            }
            return Ok(Err(format!(
                "Acknowledging {} needs the oncall role or a page for it.",
                inc.label()
            )));
        }
        Ok(Err(format!("Changing {} needs the oncall role.", inc.label())))
    }

    /// A change to an existing incident, applied under its row lock.
    async fn change(
        &self,
        inv: &Invocation,
        actor: &Actor,
        id: i64,
        action: &Action,
    ) -> Result<Reply, Internal> {
        let platform = inv.origin.platform.as_str();
        // People named in the command must be people opsbot knows.
        let action = match action {
            Action::Assign(p) | Action::Role { person: p, .. } => match self.directory.lookup(platform, p) {
                Some(found) => match action {
                    Action::Assign(_) => Action::Assign(found.name.clone()),
                    Action::Role { role, .. } => Action::Role {
                        role: *role,
                        person: found.name.clone(),
                    },
                    _ => unreachable!("matched above"),
                },
                None => {
                    let text = format!("`{p}` is not a person opsbot knows (see `[people]` in the config).");
                    return self.answered(inv, usage(text), &[]).await;
                }
            },
            other => other.clone(),
        };
        let Some(current) = self.store.incident(id).await? else {
            return self.answered(inv, usage("That incident is gone."), &[]).await;
        };
        if let Err(text) = self.may_change(actor, &current, &action).await? {
            return self.answered(inv, refused(text), &[]).await;
        }
        let Some(policy) = self.policy_of(&current.profile) else {
            let text = format!("{} has no severity policy any more.", current.label());
            return self.answered(inv, usage(text), &[]).await;
        };
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(inc) = tx.lock_incident(id).await? else {
            return self.answered(inv, usage("That incident is gone."), &[]).await;
        };
        let applied = match incident::apply(&inc, &action, actor.who(), now, policy) {
            Ok(a) => a,
            Err(text) => {
                drop(tx);
                return self.answered(inv, usage(text), &[]).await;
            }
        };
        let next = applied.incident;
        tx.save_incident(&next, now).await?;
        tx.add_incident_event(id, &applied.event).await?;
        if matches!(action, Action::Escalate) {
            tx.schedule(INCIDENT_STEP, &id.to_string(), now).await?;
        }
        let due = if applied.replan || matches!(action, Action::Update(_) | Action::Report { .. }) {
            self.plan(&mut tx, &next).await?
        } else {
            None
        };
        let due = if matches!(action, Action::Escalate) {
            Some(now)
        } else {
            due
        };
        let mut entry = self.entry(
            inv,
            actor,
            &format!("incident.{}", applied.event.kind),
            None,
            None,
        );
        entry.detail = Some(format!("{}: {}", next.label(), applied.event.text));
        let thread_text = applied.event.thread_line();
        let reply = Reply::new(Outcome::Done, format!("{} {}", next.label(), applied.event.text)).private();
        let notes = [
            Notification::IncidentCard {
                incident: &next,
                ack_by: self.ack_by(&next),
                new: false,
            },
            Notification::IncidentThread {
                incident: &next,
                text: &thread_text,
                mentions: &[],
            },
        ];
        self.finish(tx, inv, entry, &notes, reply, due).await
    }

    /// Fires due incident timers (escalation steps, update reminders), many
    /// per transaction: each is claimed under its incident's row lock (taken
    /// in id order, as every other step takes one), and all their pages,
    /// timeline rows, audit entries, messages and next deadlines commit
    /// together; the alarm learns their next deadlines.
    pub(super) async fn fire_incident_timers(&self, due: &[Timer]) -> Result<(), Internal> {
        let now = self.now();
        let mut due: Vec<(i64, &Timer)> = due
            .iter()
            .filter_map(|t| Some((t.item.parse::<i64>().ok()?, t)))
            .collect();
        due.sort_by(|a, b| (a.0, &a.1.kind).cmp(&(b.0, &b.1.kind)));
        let mut tx = self.store.begin().await?;
        let mut fired = Vec::new();
        let mut on_call = OnCall::default();
        let mut writes = Writes::default();
        // Lock every incident first (in id order), then claim the timers.
        let mut locked = std::collections::BTreeMap::new();
        for &(id, _) in &due {
            if let std::collections::btree_map::Entry::Vacant(slot) = locked.entry(id) {
                if let Some(inc) = tx.lock_incident(id).await? {
                    slot.insert(inc);
                }
            }
        }
        let mut taken = std::collections::BTreeSet::new();
        for kind in [INCIDENT_STEP, INCIDENT_REMINDER] {
            let items: Vec<String> = due
                .iter()
                .filter(|(_, t)| t.kind == kind)
                .map(|(_, t)| t.item.clone())
                .collect();
            // Timers of incidents that are gone are taken and dropped.
            for item in tx.take_timers(kind, &items, now).await? {
                taken.insert((kind, item));
            }
        }
        for (id, t) in due {
            let kind = if t.kind == INCIDENT_STEP {
                INCIDENT_STEP
            } else {
                INCIDENT_REMINDER
            };
            if !taken.contains(&(kind, t.item.clone())) {
                continue; // another instance fired it, or it moved
            }
            let Some(inc) = locked.get(&id).cloned() else {
                continue;
            };
            let out = if kind == INCIDENT_STEP {
                self.step_in(&mut tx, inc, now, &mut on_call, &mut writes).await?
            } else {
                self.reminder_in(inc, now, &mut writes)
            };
            if let Fire::Fired(f) = out {
                locked.insert(id, f.incident.clone());
                fired.push(*f);
            }
        }
        tx.set_fired(&writes.fired, now).await?;
        tx.add_incident_events(&writes.events).await?;
        for kind in [INCIDENT_STEP, INCIDENT_REMINDER] {
            let items: Vec<(String, Millis)> = writes
                .timers
                .iter()
                .filter(|w| w.0 == kind)
                .map(|w| (w.1.to_string(), w.2))
                .collect();
            tx.schedule_many(kind, &items).await?;
        }
        let next: Vec<Millis> = writes.timers.iter().map(|w| w.2).collect();
        let entries: Vec<Entry> = fired.iter().map(|f| f.entry.clone()).collect();
        let notes: Vec<Notification<'_>> = fired
            .iter()
            .map(|f| Notification::IncidentThread {
                incident: &f.incident,
                text: &f.text,
                mentions: &f.mentions,
            })
            .collect();
        self.commit_notes(tx, &entries, &notes, None).await?;
        if let Some(&d) = next.iter().min() {
            self.alarm.set(d);
        }
        Ok(())
    }

    /// The incident's next escalation step is due (its row is locked): pages
    /// its targets, records each page, plans the step after.
    async fn step_in(
        &self,
        tx: &mut Tx,
        mut inc: Incident,
        now: Millis,
        on_call: &mut OnCall,
        writes: &mut Writes,
    ) -> Result<Fire, Internal> {
        let id = inc.id;
        let Some((policy, level)) = self.level_of(&inc) else {
            tracing::warn!(incident = id, level = %inc.level, "incident: no policy for its level; no step fires");
            return Ok(Fire::Nothing);
        };
        let cal = self.calendar_of(policy);
        let Some((i, _)) = incident::next_step(&inc, level, cal) else {
            return Ok(Fire::Nothing);
        };
        let rank = policy.rank(&inc.level).unwrap_or(usize::MAX);
        let (mentions, notified, events) = self.page(tx, &level.steps[i], i, rank, now, on_call).await?;
        inc.fired = i + 1;
        writes.fired.push((id, inc.fired));
        writes.events.extend(events.into_iter().map(|e| (id, e)));
        // A step changes when the next step is due, not the reminder.
        let due = incident::next_step(&inc, level, cal).map(|s| s.1);
        writes.timers.extend(due.map(|d| (INCIDENT_STEP, id, d)));
        let text = page_text(&inc, i, level, &mentions, &notified, self.ack_by(&inc));
        let entry = self.timer_entry(
            "incident.page",
            format!("{} step {}: {}", inc.label(), i + 1, text),
        );
        Ok(Fire::Fired(Box::new(Fired {
            incident: inc,
            text,
            mentions,
            entry,
        })))
    }

    /// Resolves a step's targets at `now`: the people paged (mentioned),
    /// the people only notified (business-hours roles outside hours, below
    /// rank 1), and one timeline event per person.
    async fn page(
        &self,
        tx: &mut Tx,
        step: &Step,
        index: usize,
        rank: usize,
        now: Millis,
        on_call: &mut OnCall,
    ) -> Result<(Vec<Mention>, Vec<String>, Vec<Event>), Internal> {
        let mut paged: Vec<(&Person, String)> = Vec::new();
        let mut notified: Vec<String> = Vec::new();
        let mut notes: Vec<Event> = Vec::new();
        for target in &step.to {
            match target {
                Target::Rotation(name) => match self.policies.rotations.get(name) {
                    Some(rot) => {
                        let who = match on_call.get(name) {
                            Some(who) => who.clone(),
                            None => {
                                let who = on_call_now(rot, &tx.overrides(name, now).await?, now);
                                on_call.insert(name.clone(), who.clone());
                                who
                            }
                        };
                        match who.as_deref().and_then(|w| self.directory.person(w)) {
                            Some(p) => paged.push((p, format!("rotation:{name}"))),
                            None => notes.push(Event::new(
                                now,
                                "note",
                                OPSBOT,
                                format!("rotation {name} has nobody on call"),
                            )),
                        }
                    }
                    None => notes.push(Event::new(now, "note", OPSBOT, format!("no rotation {name}"))),
                },
                Target::Role(role) => {
                    let closed = self
                        .policies
                        .role_calendars
                        .get(role)
                        .and_then(|c| self.policies.calendars.get(c))
                        .is_some_and(|c| !c.is_open(now));
                    let holders = self.directory.with_role(role);
                    if holders.is_empty() {
                        notes.push(Event::new(
                            now,
                            "note",
                            OPSBOT,
                            format!("nobody holds role {role}"),
                        ));
                    }
                    for p in holders {
                        if closed && rank > 1 {
                            notified.push(p.name.clone());
                            notes.push(Event::new(
                                now,
                                "notify",
                                &p.name,
                                format!("step {}: role:{role} outside its hours, not paged", index + 1),
                            ));
                        } else {
                            paged.push((p, format!("role:{role}")));
                        }
                    }
                }
                Target::Person(name) => match self.directory.person(name) {
                    Some(p) => paged.push((p, format!("person:{name}"))),
                    None => notes.push(Event::new(now, "note", OPSBOT, format!("no person {name}"))),
                },
            }
        }
        let mut mentions: Vec<Mention> = Vec::new();
        let mut events = Vec::new();
        for (p, why) in paged {
            if mentions.iter().any(|m| m.person == p.name) {
                continue;
            }
            events.push(Event::new(
                now,
                "page",
                &p.name,
                format!("step {}: {why}", index + 1),
            ));
            mentions.push(mention(p));
        }
        events.extend(notes);
        Ok((mentions, notified, events))
    }

    /// The update reminder is due (the incident's row is locked): nags in
    /// the thread, mentioning the commander, unless an update came meanwhile.
    fn reminder_in(&self, inc: Incident, now: Millis, writes: &mut Writes) -> Fire {
        let id = inc.id;
        let Some((_, level)) = self.level_of(&inc) else {
            return Fire::Nothing;
        };
        match incident::reminder_due(&inc, level) {
            None => return Fire::Nothing,
            Some(at) if at > now => {
                // An update came meanwhile: the reminder moves.
                writes.timers.push((INCIDENT_REMINDER, id, at));
                return Fire::Nothing;
            }
            Some(_) => {}
        }
        let silent = incident::ago(now, inc.last_update_at);
        let text = format!(
            "⏰ reminder: no update for {silent} — `/incident update {} <text>`",
            inc.label()
        );
        let mentions: Vec<Mention> = inc
            .role(Role::Commander)
            .and_then(|c| self.directory.person(c))
            .map(mention)
            .into_iter()
            .collect();
        writes.events.push((
            id,
            Event::new(now, "reminder", OPSBOT, format!("no update for {silent}")),
        ));
        let due = level
            .update_every
            .map(|e| now + i64::try_from(e.as_millis()).unwrap_or(i64::MAX / 2));
        if let Some(at) = due {
            writes.timers.push((INCIDENT_REMINDER, id, at));
        }
        let entry = self.timer_entry(
            "incident.reminder",
            format!("{}: no update for {silent}", inc.label()),
        );
        Fire::Fired(Box::new(Fired {
            incident: inc,
            text,
            mentions,
            entry,
        }))
    }

    fn timer_entry(&self, kind: &str, detail: String) -> Entry {
        self.opsbot_entry(SOURCE_TIMER, kind, detail)
    }

    /// An audit entry of a step opsbot takes itself, from `source`.
    pub(super) fn opsbot_entry(&self, source: &str, kind: &str, detail: String) -> Entry {
        Entry {
            at: self.now(),
            kind: kind.into(),
            person: OPSBOT.into(),
            identity: format!("{source}:{OPSBOT}"),
            source: source.into(),
            channel: None,
            command: None,
            args: None,
            outcome: "ok".into(),
            detail: Some(detail),
        }
    }

    /// An alert group reached its route's threshold: opens an incident at
    /// the opening's level of `profile` and links the group to it in place
    /// of `previous` (its resolved incident, if any), in one transaction
    /// (the link is conditional: of two instances, one opens it), counted
    /// in the alert `storms` the group is in. When every alert that pages
    /// was acknowledged before (PagerDuty), it opens acknowledged by the
    /// integration, in the same transaction: nobody is paged. True if it
    /// opened one.
    pub(super) async fn declare_for_alerts(
        &self,
        group: i64,
        previous: Option<i64>,
        profile: &str,
        opening: &Opening,
        storms: &[i64],
    ) -> Result<bool, Internal> {
        let Some(policy) = self.policy_of(profile) else {
            return Ok(false);
        };
        let now = self.now();
        let new = match incident::declare(policy, profile, &opening.level, &opening.name, OPSBOT, now) {
            Ok(n) => n,
            Err(why) => {
                tracing::warn!(
                    group,
                    profile,
                    level = opening.level,
                    why,
                    "alerts: no incident opened"
                );
                return Ok(false);
            }
        };
        let mut tx = self.store.begin().await?;
        let mut text = format!("{} {} declared by alert group {group}", new.level, new.title);
        if let Some(old) = previous {
            text.push_str(&format!(
                ", firing again after {} was resolved",
                incident::label(old)
            ));
        }
        let mut inc = tx
            .create_incident(&new, &Event::new(now, "declared", OPSBOT, text))
            .await?;
        if !tx.link_group_incident(group, previous, inc.id).await? {
            return Ok(false); // dropped: rolled back
        }
        for s in storms {
            tx.count_storm_incident(*s).await?;
        }
        let mut entries = vec![self.opsbot_entry(
            SOURCE_ALERTS,
            "incident.declared",
            format!(
                "{} {} {} ({}) from alert group {group}",
                inc.label(),
                inc.level,
                inc.title,
                inc.profile
            ),
        )];
        let mut ack_line = None;
        if let Some(by) = &opening.acked_by {
            if let Ok(mut applied) = incident::apply(&inc, &Action::Ack, by, now, policy) {
                applied.event.text.push_str(" before the incident opened");
                tx.save_incident(&applied.incident, now).await?;
                tx.add_incident_event(inc.id, &applied.event).await?;
                entries.push(self.opsbot_entry(
                    SOURCE_ALERTS,
                    "incident.ack",
                    format!("{}: {} ({by})", inc.label(), applied.event.text),
                ));
                ack_line = Some(applied.event.thread_line());
                inc = applied.incident;
            }
        }
        let due = self.plan(&mut tx, &inc).await?;
        let mut notes = vec![Notification::IncidentCard {
            incident: &inc,
            ack_by: self.ack_by(&inc),
            new: true,
        }];
        if let Some(text) = &ack_line {
            notes.push(Notification::IncidentThread {
                incident: &inc,
                text,
                mentions: &[],
            });
        }
        self.commit_notes(tx, &entries, &notes, None).await?;
        due.into_iter().for_each(|d| self.alarm.set(d));
        Ok(true)
    }

    /// Every alert of the group that opened incident `id` resolved: the
    /// incident resolves (unless someone resolved it already).
    pub(super) async fn resolve_for_alerts(&self, id: i64, group: i64) -> Result<(), Internal> {
        let summary = format!("every alert of alert group {group} resolved");
        self.apply_for_alerts(id, &Action::Resolve(Some(summary)), OPSBOT)
            .await
    }

    /// An alert of the group that opened `inc` was acknowledged
    /// (PagerDuty's `acknowledge`) after the incident opened: while nobody
    /// acknowledged the incident, it is acked by the integration
    /// (`pagerduty/<name>` on its timeline), and its escalation stops.
    pub(super) async fn ack_for_alerts(&self, inc: &Incident, group: i64) -> Result<(), Internal> {
        if inc.state != State::Open {
            return Ok(());
        }
        let Some(by) = self.store.acknowledged_since(group, inc.declared_at).await? else {
            return Ok(());
        };
        self.apply_for_alerts(inc.id, &Action::Ack, &by).await
    }

    /// Applies `action` by `actor` to incident `id` under its row lock, with
    /// its timeline row, timers, audit entry, card and thread post in one
    /// transaction; an action the incident's state refuses is dropped.
    async fn apply_for_alerts(&self, id: i64, action: &Action, actor: &str) -> Result<(), Internal> {
        let now = self.now();
        let mut tx = self.store.begin().await?;
        let Some(inc) = tx.lock_incident(id).await? else {
            return Ok(());
        };
        let Some(policy) = self.policy_of(&inc.profile) else {
            return Ok(());
        };
        let Ok(applied) = incident::apply(&inc, action, actor, now, policy) else {
            return Ok(());
        };
        let next = applied.incident;
        tx.save_incident(&next, now).await?;
        tx.add_incident_event(id, &applied.event).await?;
        self.plan(&mut tx, &next).await?;
        let entry = self.opsbot_entry(
            SOURCE_ALERTS,
            &format!("incident.{}", applied.event.kind),
            format!("{}: {} ({actor})", next.label(), applied.event.text),
        );
        let line = applied.event.thread_line();
        let notes = [
            Notification::IncidentCard {
                incident: &next,
                ack_by: self.ack_by(&next),
                new: false,
            },
            Notification::IncidentThread {
                incident: &next,
                text: &line,
                mentions: &[],
            },
        ];
        self.commit_notes(tx, &[entry], &notes, None).await?;
        Ok(())
    }

    /// `/incidents`.
    pub(super) async fn list_incidents(&self, inv: &Invocation) -> Result<Reply, Internal> {
        let open = self.store.open_incidents().await?;
        let now = self.now();
        let text = if open.is_empty() {
            "No open incidents.".to_string()
        } else {
            let mut t = format!(
                "{} open incident{}:\n",
                open.len(),
                if open.len() == 1 { "" } else { "s" }
            );
            for inc in &open {
                let state = match (&inc.state, &inc.acked_by) {
                    (State::Acked, Some(by)) => format!("acked by {by}"),
                    _ => "not acknowledged".into(),
                };
                t.push_str(&format!(
                    "• {} {} ({}) {} — {} ago, {state}\n",
                    inc.label(),
                    inc.level,
                    inc.profile,
                    inc.title,
                    incident::ago(now, inc.declared_at)
                ));
            }
            t
        };
        self.answered(inv, Reply::new(Outcome::Done, text), &[]).await
    }

    fn status_text(&self, inc: &Incident) -> String {
        let now = self.now();
        let mut t = format!(
            "{} {} ({}) {} — {}, declared {} ago by {}",
            inc.label(),
            inc.level,
            inc.profile,
            inc.title,
            inc.state.as_str(),
            incident::ago(now, inc.declared_at),
            inc.declared_by
        );
        for r in Role::ALL {
            if let Some(p) = inc.role(r) {
                t.push_str(&format!("\n{}: {p}", r.as_str()));
            }
        }
        if let Some(at) = self.ack_by(inc) {
            t.push_str(&format!("\nack by {}", rfc3339(at)));
        }
        if let Some((_, level)) = self.level_of(inc) {
            if let Some(at) = incident::reminder_due(inc, level) {
                t.push_str(&format!("\nnext update due {}", rfc3339(at)));
            }
        }
        t
    }

    /// `/oncall …`.
    pub(super) async fn oncall(&self, inv: &Invocation, actor: &Actor, o: Oncall) -> Result<Reply, Internal> {
        let now = self.now();
        match o {
            Oncall::Show { rotation } => {
                let names: Vec<&String> = match &rotation {
                    Some(r) if !self.policies.rotations.contains_key(r) => {
                        let text = format!("There is no rotation `{r}` ({}).", self.rotation_names());
                        return self.answered(inv, usage(text), &[]).await;
                    }
                    Some(r) => vec![r],
                    None => self.policies.rotations.keys().collect(),
                };
                if names.is_empty() {
                    return self
                        .answered(
                            inv,
                            Reply::new(Outcome::Done, "No rotations are configured."),
                            &[],
                        )
                        .await;
                }
                let mut t = String::from("On call now:");
                for name in names {
                    let rot = &self.policies.rotations[name];
                    let overrides = as_overrides(&self.store.overrides(name, now).await?);
                    let shifts = rot.upcoming(&overrides, now, 3);
                    let Some((current, next)) = shifts.split_first() else {
                        continue;
                    };
                    let swapped = if current.overridden { " (override)" } else { "" };
                    t.push_str(&format!(
                        "\n• {name}: {}{swapped} until {}",
                        current.person,
                        rfc3339(current.until)
                    ));
                    if !next.is_empty() {
                        let then: Vec<String> = next
                            .iter()
                            .map(|s| format!("{} from {}", s.person, rfc3339(s.from)))
                            .collect();
                        t.push_str(&format!(" · then {}", then.join(", ")));
                    }
                }
                self.answered(inv, Reply::new(Outcome::Done, t), &[]).await
            }
            Oncall::Override {
                person,
                duration,
                rotation,
            } => {
                if !actor.has_role("oncall") {
                    return self
                        .answered(inv, refused("On-call overrides need the oncall role."), &[])
                        .await;
                }
                let rotation = rotation.unwrap_or_else(|| DEFAULT_ROTATION.into());
                if !self.policies.rotations.contains_key(&rotation) {
                    let text = format!(
                        "There is no rotation `{rotation}` ({}): name one with `--rotation`.",
                        self.rotation_names()
                    );
                    return self.answered(inv, usage(text), &[]).await;
                }
                let Some(p) = self.directory.lookup(&inv.origin.platform, &person) else {
                    let text = format!("`{person}` is not a person opsbot knows.");
                    return self.answered(inv, usage(text), &[]).await;
                };
                let until = now + i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2);
                let row = OverrideRow {
                    id: 0,
                    rotation: rotation.clone(),
                    person: p.name.clone(),
                    from: now,
                    until,
                    created_by: actor.who().into(),
                    created_at: now,
                };
                let mut tx = self.store.begin().await?;
                tx.add_override(&row).await?;
                let text = format!(
                    "{} is on call for {rotation} until {} (override by {})",
                    p.name,
                    rfc3339(until),
                    actor.who()
                );
                let mut entry = self.entry(inv, actor, "oncall.override", None, None);
                entry.detail = Some(text.clone());
                self.finish(tx, inv, entry, &[], Reply::new(Outcome::Done, text), None)
                    .await
            }
        }
    }

    fn rotation_names(&self) -> String {
        let names: Vec<&str> = self.policies.rotations.keys().map(String::as_str).collect();
        if names.is_empty() {
            "none are configured".into()
        } else {
            names.join(", ")
        }
    }
}

/// How a page names `p`: every identity they have.
fn mention(p: &Person) -> Mention {
    Mention {
        person: p.name.clone(),
        identities: p.identities.clone(),
    }
}

/// Who is on call per rotation at the instant a batch of steps fires.
type OnCall = std::collections::HashMap<String, Option<String>>;

/// Who is on call in `rot` at `now`, overrides applied.
fn on_call_now(rot: &Rotation, overrides: &[OverrideRow], now: Millis) -> Option<String> {
    Some(rot.on_call(&as_overrides(overrides), now).person)
}

fn as_overrides(rows: &[OverrideRow]) -> Vec<Override> {
    rows.iter()
        .map(|o| Override {
            rotation: o.rotation.clone(),
            person: o.person.clone(),
            from: o.from,
            until: o.until,
            created: o.created_at,
        })
        .collect()
}

/// The thread message of a fired step.
fn page_text(
    inc: &Incident,
    index: usize,
    level: &Level,
    paged: &[Mention],
    notified: &[String],
    ack_by: Option<Millis>,
) -> String {
    let who: Vec<&str> = paged.iter().map(|m| m.person.as_str()).collect();
    let mut t = if index == 0 {
        format!("📟 {} {}: paging", inc.level, inc.label())
    } else if inc.state == State::Open {
        format!("📟 no ack → step {} of {}: paging", index + 1, level.steps.len())
    } else {
        format!("📣 step {} of {}: notifying", index + 1, level.steps.len())
    };
    if who.is_empty() {
        t.push_str(" nobody (see the timeline)");
    }
    if let (Some(at), State::Open) = (ack_by, inc.state) {
        t.push_str(&format!(" · ack by {}", rfc3339(at)));
    }
    if !notified.is_empty() {
        t.push_str(&format!(" · outside hours, not paged: {}", notified.join(", ")));
    }
    t
}

/// `/incident timeline`: the last rows.
fn timeline_text(inc: &Incident, events: &[Event]) -> String {
    const SHOWN: usize = 30;
    let mut t = format!("Timeline of {} {} {}:", inc.label(), inc.level, inc.title);
    let skip = events.len().saturating_sub(SHOWN);
    if skip > 0 {
        t.push_str(&format!(
            "\n… {skip} earlier (`opsbot incident export {}`)",
            inc.id
        ));
    }
    for e in &events[skip..] {
        t.push_str(&format!(
            "\n{} · {} · {} · {}",
            rfc3339(e.at),
            e.kind,
            e.person,
            e.text
        ));
    }
    t
}
