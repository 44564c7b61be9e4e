//! Maintenance windows opened and ended by catalog commands (an `internal =
//! { maintenance = … }` step). The executor does no I/O for them: it hands
//! back [`Effect`]s, and the engine applies them here in the transaction
//! that records the execution's result, audit and answer, so a window
//! exists exactly when its execution is recorded. A window is the
//! `maintenance` silence `/alerts maintenance <profile>` sets (matcher
//! `profile="<p>"`); ending it marks its groups changed, so the alert
//! poster opens the incidents it held back. Whether a profile's window is
//! on reaches a `require` step through its arguments.

use super::pipeline::{Internal, Invocation, Pipeline};
use super::platform::Notification;
use super::reply::Reply;
use super::silences::{created_detail, ended_detail, maintenance_profile, window_opened};
use crate::alerts::silence::{Kind, Silence};
use crate::audit::Entry;
use crate::auth::Actor;
use crate::catalog::{Command, MaintenanceStep};
use crate::clock::Millis;
use crate::exec::{Effect, MAINTENANCE_STATE};
use crate::incident::Event;
use crate::store::{SilenceRow, Tx};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// Who a command's effects are applied for, and how they are recorded.
pub(super) struct Cause<'a> {
    pub inv: &'a Invocation,
    /// Whose invocation ran it (the audit entries' person).
    pub actor: &'a Actor,
    /// Whom the window is listed as set by (the requester).
    pub by: &'a str,
    pub cmd: &'a Command,
    /// The request as typed, stored as the window's comment.
    pub display: &'a str,
    /// The request's arguments (as the parser gave them).
    pub args: &'a BTreeMap<String, String>,
    /// Where the request was made (a guided run's message goes there).
    pub origin: &'a super::platform::Origin,
    /// A guided run going on from a confirmation.
    pub resumed: Option<super::guided::Resumed<'a>>,
}

/// What applying effects did: lines for the answer, audit entries, and the
/// deadlines put on the timer table.
#[derive(Default)]
pub(super) struct Applied {
    pub lines: Vec<String>,
    pub audit: Vec<Entry>,
    pub due: Vec<Millis>,
    /// Guided runs' messages (a run paused).
    pub guided: Vec<super::guided::GuidedNote>,
}

impl Applied {
    /// The messages the effects post after their transaction (guided runs').
    pub fn notifications(&self) -> impl Iterator<Item = Notification<'_>> {
        self.guided.iter().map(super::guided::GuidedNote::notification)
    }

    /// `text` with the lines appended, one per line.
    pub fn append_to(&self, text: &str) -> String {
        std::iter::once(text.to_string())
            .chain(self.lines.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Pipeline {
    /// The arguments an execution of `cmd` gets: `args`, with whether its
    /// profile's maintenance window is on now when a step requires it (read
    /// here, at execution, before the action runs).
    pub(super) async fn execution_args<'a>(
        &self,
        cmd: &Command,
        args: &'a BTreeMap<String, String>,
    ) -> Result<Cow<'a, BTreeMap<String, String>>, Internal> {
        let requires = cmd
            .action
            .maintenance_steps()
            .iter()
            .any(|s| matches!(s, MaintenanceStep::Require));
        if !requires {
            return Ok(Cow::Borrowed(args));
        }
        let on = !self.windows_on(&cmd.profile).await?.is_empty();
        let mut with = args.clone();
        with.insert(MAINTENANCE_STATE.into(), if on { "on" } else { "off" }.into());
        Ok(Cow::Owned(with))
    }

    /// The maintenance windows of `profile` active now.
    async fn windows_on(&self, profile: &str) -> Result<Vec<SilenceRow>, Internal> {
        let rows = self.store.active_silences(self.now()).await?;
        Ok(rows.into_iter().filter(|r| is_window_of(r, profile)).collect())
    }

    /// Applies an execution's `effects` in `tx`, the transaction that
    /// records its result.
    pub(super) async fn apply_effects(
        &self,
        tx: &mut Tx,
        cause: &Cause<'_>,
        effects: &[Effect],
    ) -> Result<Applied, Internal> {
        let mut applied = Applied::default();
        if effects.is_empty() {
            return Ok(applied);
        }
        // The open alerts a window covers (none read for a pause alone).
        let windows = effects.iter().any(|e| !matches!(e, Effect::Pause { .. }));
        let open = match windows {
            true => tx.open_alerts().await?,
            false => Vec::new(),
        };
        for effect in effects {
            match effect {
                Effect::OpenWindow { starts_at, ends_at } => {
                    self.open_window(tx, cause, (*starts_at, *ends_at), &open, &mut applied)
                        .await?
                }
                Effect::CloseWindow => self.close_windows(tx, cause, &open, &mut applied).await?,
                Effect::Pause {
                    step,
                    of,
                    text,
                    within,
                    ran,
                } => {
                    self.pause_run(tx, cause, (*step, *of), text, *within, ran, &mut applied)
                        .await?
                }
            }
        }
        Ok(applied)
    }

    async fn open_window(
        &self,
        tx: &mut Tx,
        cause: &Cause<'_>,
        (starts_at, ends_at): (Millis, Millis),
        open: &[crate::store::OpenAlert],
        applied: &mut Applied,
    ) -> Result<(), Internal> {
        let now = self.now();
        let profile = &cause.cmd.profile;
        let row = SilenceRow {
            id: 0,
            kind: Kind::Maintenance.as_str().into(),
            matchers: serde_json::to_string(&[format!("profile=\"{profile}\"")]).unwrap_or_default(),
            starts_at,
            ends_at,
            created_by: cause.by.into(),
            created_at: now,
            comment: Some(cause.display.into()),
            ended_at: None,
            ended_by: None,
        };
        // The profile's name comes from the catalog: its matcher parses.
        let Some(parsed) = Silence::from_row(&row) else {
            applied.lines.push(format!(
                "⚠️ no maintenance window opened: `{profile}` is no matcher value"
            ));
            return Ok(());
        };
        let (s, hits) = self.store_silence(tx, &row, parsed, open).await?;
        applied.lines.push(window_opened(&s, hits, now));
        applied
            .audit
            .push(self.effect_entry(cause, "maintenance.created", created_detail(&s, now)));
        applied.due.extend([starts_at.max(now), ends_at]);
        Ok(())
    }

    async fn close_windows(
        &self,
        tx: &mut Tx,
        cause: &Cause<'_>,
        open: &[crate::store::OpenAlert],
        applied: &mut Applied,
    ) -> Result<(), Internal> {
        let profile = &cause.cmd.profile;
        let rows = tx.active_silences(self.now()).await?;
        let mut ended = 0;
        for row in rows.iter().filter(|r| is_window_of(r, profile)) {
            if !self.end_silence_in(tx, row, cause.by, open).await? {
                continue;
            }
            ended += 1;
            applied.lines.push(format!(
                "🔔 maintenance window {} for {profile} ended; its alerts page again.",
                crate::alerts::silence::label(row.id)
            ));
            applied
                .audit
                .push(self.effect_entry(cause, "maintenance.ended", ended_detail(row)));
        }
        if ended == 0 {
            applied
                .lines
                .push(format!("No maintenance window of {profile} was on."));
        }
        Ok(())
    }

    /// Answers an execution without approval whose result carries
    /// `effects`: they change state, so the answer, `entry` and the
    /// `timeline` events commit in their transaction (not the group
    /// committer's).
    pub(super) async fn answer_with_effects(
        &self,
        cause: &Cause<'_>,
        mut reply: Reply,
        entry: Entry,
        timeline: Vec<(i64, Event)>,
        effects: &[Effect],
    ) -> Result<Reply, Internal> {
        let mut tx = self.store.begin().await?;
        let applied = self.apply_effects(&mut tx, cause, effects).await?;
        for (id, event) in &timeline {
            tx.add_incident_event(*id, event).await?;
        }
        reply.text = applied.append_to(&reply.text);
        let audit: Vec<Entry> = std::iter::once(entry)
            .chain(applied.audit.iter().cloned())
            .collect();
        self.commit_answer(tx, cause.inv, &reply, &audit, &applied)
            .await?;
        self.after_effects(&applied);
        Ok(reply)
    }

    /// Commits a step that answers `inv`: `audit`, the answer, then the
    /// messages of `applied` (a guided run's).
    pub(super) async fn commit_answer(
        &self,
        tx: Tx,
        inv: &Invocation,
        reply: &Reply,
        audit: &[Entry],
        applied: &Applied,
    ) -> Result<(), Internal> {
        let mut notes = vec![Notification::Reply {
            origin: &inv.origin,
            reply,
            approval: None,
        }];
        notes.extend(applied.notifications());
        self.commit_notes(tx, audit, &notes, inv.inbox).await
    }

    /// An audit entry of the execution's cause (source: its platform).
    fn effect_entry(&self, cause: &Cause<'_>, kind: &str, detail: String) -> Entry {
        let mut entry = self.entry(cause.inv, cause.actor, kind, Some(cause.cmd), None);
        entry.detail = Some(detail);
        entry
    }

    /// After the transaction that applied `applied` committed: the alert
    /// poster renders the groups it changed, the timer loop learns its
    /// deadlines.
    pub(super) fn after_effects(&self, applied: &Applied) {
        if applied.audit.is_empty() {
            return;
        }
        self.alerts.raise();
        applied.due.iter().for_each(|d| self.alarm.set(*d));
    }
}

/// Whether `row` is a maintenance window of `profile` (as `/alerts
/// maintenance <profile>` sets one).
fn is_window_of(row: &SilenceRow, profile: &str) -> bool {
    Silence::from_row(row).is_some_and(|s| {
        s.kind == Kind::Maintenance
            && s.matchers.len() == 1
            && s.matchers[0].label == "profile"
            && s.matchers[0].op == crate::alerts::route::Op::Eq
            && maintenance_profile(&s) == profile
    })
}
