//! PURE incident lifecycle: the incident as plain data, the commands that
//! change it, and [`apply`], which turns (incident, command, person, `now`)
//! into the changed incident and its timeline event, or a friendly refusal.
//! When an incident's escalation step or update reminder is due is
//! [`next_step`] / [`reminder_due`] over the level's policy
//! (`escalation`). The engine (`engine::incidents`) stores what this
//! decides and schedules the due items on the timer table.

pub mod export;

use crate::calendar::Calendar;
use crate::clock::Millis;
use crate::escalation::Level;
use crate::policy::{Destination, ProfilePolicy};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Declared, nobody acknowledged: paging steps fire.
    Open,
    /// Someone acknowledged: only `stop = "resolve"` steps still fire.
    Acked,
    /// Over: nothing fires; follow-ups can still be added.
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Acked => "acked",
            State::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<State> {
        [State::Open, State::Acked, State::Resolved]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// The roles an incident hands out (`/incident role <role> <person>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Commander,
    Comms,
    Scribe,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Commander, Role::Comms, Role::Scribe];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Commander => "commander",
            Role::Comms => "comms",
            Role::Scribe => "scribe",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str().eq_ignore_ascii_case(s))
    }
}

/// One incident as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: i64,
    pub profile: String,
    /// The level's label in the profile's scale (`P1`, `SEV2`).
    pub level: String,
    pub title: String,
    pub state: State,
    pub declared_at: Millis,
    /// Person (or identity of a stranger) who declared it.
    pub declared_by: String,
    /// The instant the current plan's steps count from: the declaration, or
    /// the last severity change.
    pub plan_from: Millis,
    /// Steps of the current plan already fired.
    pub fired: usize,
    pub acked_at: Option<Millis>,
    pub acked_by: Option<String>,
    pub resolved_at: Option<Millis>,
    pub resolved_by: Option<String>,
    pub summary: Option<String>,
    pub commander: Option<String>,
    pub comms: Option<String>,
    pub scribe: Option<String>,
    /// The last `update` or `report` (the declaration at first): the update
    /// reminder counts from here.
    pub last_update_at: Millis,
    /// Where its card and thread live.
    pub destinations: Vec<Destination>,
}

impl Incident {
    /// `#12`: how chat names it.
    pub fn label(&self) -> String {
        label(self.id)
    }

    pub fn role(&self, r: Role) -> Option<&str> {
        match r {
            Role::Commander => self.commander.as_deref(),
            Role::Comms => self.comms.as_deref(),
            Role::Scribe => self.scribe.as_deref(),
        }
        .or(match r {
            // Until someone is named, whoever acknowledged leads.
            Role::Commander => self.acked_by.as_deref(),
            _ => None,
        })
    }
}

pub fn label(id: i64) -> String {
    format!("#{id}")
}

/// One row of an incident's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub at: Millis,
    /// `declared`, `page`, `ack`, `update`, `report`, `severity`, `assign`,
    /// `role`, `followup`, `reminder`, `command`, `resolved`, `note`.
    pub kind: String,
    pub person: String,
    pub text: String,
}

impl Event {
    pub fn new(at: Millis, kind: &str, person: &str, text: impl Into<String>) -> Event {
        Event {
            at,
            kind: kind.into(),
            person: person.into(),
            text: text.into(),
        }
    }
}

impl Event {
    /// The event as a line in the incident's thread.
    pub fn thread_line(&self) -> String {
        match self.kind.as_str() {
            "ack" => format!("✅ {}", self.text),
            "resolved" => format!("🏁 {} — {}", self.text, self.person),
            "update" => format!("📝 update from {}: {}", self.person, self.text),
            "report" => format!("📋 report from {}:\n{}", self.person, self.text),
            "severity" => format!("⚠️ {} — {}", self.text, self.person),
            "followup" => format!("🔖 follow-up from {}: {}", self.person, self.text),
            _ => format!("{} — {}", self.text, self.person),
        }
    }
}

/// What `/incident …` asks for. `Declare` has no incident yet; every other
/// action is about the incident named by `#<id>` or implied by the thread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Declare {
        level: String,
        title: String,
        /// `--sys <profile>`: else the channel's profile.
        profile: Option<String>,
    },
    Ack,
    Update(String),
    Severity(String),
    Assign(String),
    Role {
        role: Role,
        person: String,
    },
    Report {
        impact: String,
        actions: String,
        next: Option<Duration>,
    },
    Followup(String),
    Resolve(Option<String>),
    /// Page the next step now.
    Escalate,
    Status,
    Timeline,
}

impl Action {
    /// Reads without changing anything.
    pub fn is_read(&self) -> bool {
        matches!(self, Action::Status | Action::Timeline)
    }
}

/// `/incident <action> [#id]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub action: Action,
    /// `#<id>` when given.
    pub id: Option<i64>,
}

/// `/oncall …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Oncall {
    /// Who is on call (one rotation, or all).
    Show { rotation: Option<String> },
    /// `/oncall override <person> <duration> [--rotation <name>]`.
    Override {
        person: String,
        duration: Duration,
        rotation: Option<String>,
    },
}

/// A new incident, before it has an id.
pub fn declare(
    policy: &ProfilePolicy,
    profile: &str,
    level: &str,
    title: &str,
    by: &str,
    now: Millis,
) -> Result<Incident, String> {
    let Some(rank) = policy.rank(level) else {
        return Err(unknown_level(profile, policy, level));
    };
    let title = title.trim();
    if title.is_empty() {
        return Err("Give the incident a title: `/incident declare <level> <title>`".into());
    }
    Ok(Incident {
        id: 0,
        profile: profile.into(),
        level: policy.scale[rank - 1].clone(),
        title: title.into(),
        state: State::Open,
        declared_at: now,
        declared_by: by.into(),
        plan_from: now,
        fired: 0,
        acked_at: None,
        acked_by: None,
        resolved_at: None,
        resolved_by: None,
        summary: None,
        commander: None,
        comms: None,
        scribe: None,
        last_update_at: now,
        destinations: policy.destinations.clone(),
    })
}

fn unknown_level(profile: &str, policy: &ProfilePolicy, level: &str) -> String {
    format!(
        "`{level}` is not a severity of {profile}: use one of {}",
        policy.scale.join(", ")
    )
}

/// The result of a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub incident: Incident,
    pub event: Event,
    /// The escalation plan changed (ack, severity, resolve): re-schedule.
    pub replan: bool,
}

/// Applies a changing `action` by `by` at `now`. Refusals are the text to
/// show. Reads and `Declare` are not changes: refused here.
pub fn apply(
    inc: &Incident,
    action: &Action,
    by: &str,
    now: Millis,
    policy: &ProfilePolicy,
) -> Result<Applied, String> {
    let mut next = inc.clone();
    let l = inc.label();
    if inc.state == State::Resolved && !matches!(action, Action::Followup(_)) {
        return Err(format!(
            "{l} is resolved; only `/incident followup <text>` still applies"
        ));
    }
    let (kind, text, replan) = match action {
        Action::Ack => {
            if let (State::Acked, Some(who)) = (inc.state, &inc.acked_by) {
                return Err(format!("{l} was already acknowledged by {who}"));
            }
            next.state = State::Acked;
            next.acked_at = Some(now);
            next.acked_by = Some(by.into());
            ("ack", format!("acknowledged by {by}"), true)
        }
        Action::Update(text) => {
            next.last_update_at = now;
            ("update", text.clone(), false)
        }
        Action::Report {
            impact,
            actions,
            next: due,
        } => {
            next.last_update_at = now;
            let mut t = format!("impact: {impact}\nactions: {actions}");
            if let Some(d) = due {
                t.push_str(&format!("\nnext update in {}", crate::duration::format(*d)));
            }
            ("report", t, false)
        }
        Action::Severity(level) => {
            let Some(rank) = policy.rank(level) else {
                return Err(unknown_level(&inc.profile, policy, level));
            };
            let label = &policy.scale[rank - 1];
            if *label == inc.level {
                return Err(format!("{l} is already {label}"));
            }
            next.level = label.clone();
            next.plan_from = now;
            next.fired = 0;
            ("severity", format!("severity {} → {label}", inc.level), true)
        }
        Action::Assign(person) => {
            next.commander = Some(person.clone());
            ("assign", format!("assigned to {person} (commander)"), false)
        }
        Action::Role { role, person } => {
            match role {
                Role::Commander => next.commander = Some(person.clone()),
                Role::Comms => next.comms = Some(person.clone()),
                Role::Scribe => next.scribe = Some(person.clone()),
            }
            ("role", format!("{} is {person}", role.as_str()), false)
        }
        Action::Followup(text) => ("followup", text.clone(), false),
        Action::Resolve(summary) => {
            next.state = State::Resolved;
            next.resolved_at = Some(now);
            next.resolved_by = Some(by.into());
            next.summary = summary.clone();
            let took = ago(now, inc.declared_at);
            let text = match summary {
                Some(s) => format!("resolved after {took}: {s}"),
                None => format!("resolved after {took}"),
            };
            ("resolved", text, true)
        }
        Action::Escalate => ("escalate", format!("{by} escalated to the next step"), true),
        Action::Declare { .. } | Action::Status | Action::Timeline => {
            return Err("not a change".into());
        }
    };
    Ok(Applied {
        incident: next,
        event: Event::new(now, kind, by, text),
        replan,
    })
}

/// The next escalation step of `inc` under `level`: its index in the
/// level's steps and its due time.
pub fn next_step(inc: &Incident, level: &Level, cal: Option<&Calendar>) -> Option<(usize, Millis)> {
    level.next(
        inc.plan_from,
        cal,
        inc.fired,
        inc.state != State::Open,
        inc.state == State::Resolved,
    )
}

/// When the update reminder is due (none for resolved incidents or levels
/// without `update_every`).
pub fn reminder_due(inc: &Incident, level: &Level) -> Option<Millis> {
    let every = level.update_every?;
    (inc.state != State::Resolved)
        .then(|| inc.last_update_at + i64::try_from(every.as_millis()).unwrap_or(i64::MAX / 2))
}

/// How long ago `at` was, for chat (`5m`, `1h 30m`).
pub fn ago(now: Millis, at: Millis) -> String {
    crate::duration::format(Duration::from_secs(((now - at).max(0) / 1000) as u64))
}

/// An open P0 incident #7 with cards in Slack C_INC and Discord 999, for
/// renderer tests.
#[cfg(test)]
pub fn example() -> Incident {
    let d = |p: &str, c: &str| Destination {
        platform: p.into(),
        channel: c.into(),
    };
    let policy = ProfilePolicy {
        scale: vec!["P0".into()],
        calendar: None,
        destinations: vec![d("slack", "C_INC"), d("discord", "999")],
        levels: Default::default(),
    };
    let mut inc = declare(&policy, "cap", "P0", "checkout <down> & *bold*", "alice", 0).expect("declare");
    inc.id = 7;
    inc.fired = 1;
    inc
}

/// The people a page mentions in renderer tests: one with chat accounts,
/// one with only a console identity.
#[cfg(test)]
pub fn example_mentions() -> Vec<crate::engine::Mention> {
    vec![
        crate::engine::Mention {
            person: "alice".into(),
            identities: vec!["slack:U0A".into(), "discord:111".into()],
        },
        crate::engine::Mention {
            person: "dave_*x*".into(),
            identities: vec!["console:dave".into()],
        },
    ]
}

#[cfg(test)]
mod tests;
