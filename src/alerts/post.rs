//! PURE: what an alert group's chat message shows, from the stored group
//! and its members: counts of firing and resolved alerts, the first lines
//! (name, severity, summary, links) and "and N more". Each platform's
//! renderer turns a [`GroupView`] into its markup; the message is posted
//! once per destination and edited in place as members fire and resolve.

use super::silence::{self, Silence};
use crate::clock::Millis;
use crate::policy::Destination;
use crate::store::{AlertGroup, StoredAlert};
use serde_json::Value;

/// At most this many alerts are listed; the rest are counted.
pub const SHOWN: usize = 10;

/// One alert as its group's message lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub name: String,
    pub resolved: bool,
    pub severity: Option<String>,
    pub summary: Option<String>,
    pub generator_url: Option<String>,
    pub silence_url: Option<String>,
    pub dashboard_url: Option<String>,
    /// Who acknowledged it while open (PagerDuty's `acknowledge`:
    /// `pagerduty/<name>`), whether or not an incident is open for it.
    pub acknowledged_by: Option<String>,
    /// The silence covering it (open alerts only): (id, end).
    pub silenced: Option<(i64, Millis)>,
}

/// An alert group's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupView {
    pub id: i64,
    pub route: String,
    pub profile: Option<String>,
    pub destinations: Vec<Destination>,
    pub firing: i64,
    pub resolved: i64,
    pub lines: Vec<Line>,
    /// Never posted: post it (else edit it).
    pub new: bool,
}

impl GroupView {
    /// The view of `group` with its `members` listed; `silences` are the
    /// ones active at `now`.
    pub fn build(
        group: &AlertGroup,
        members: &[StoredAlert],
        (firing, resolved): (i64, i64),
        silences: &[Silence],
        now: Millis,
    ) -> GroupView {
        let shown = |a: &StoredAlert| {
            let mut l = line(a);
            if !l.resolved {
                let subject = silence::subject_json(&a.record.labels, &group.route, group.profile.as_deref());
                l.silenced = silence::silencing(silences, &subject, now).map(|s| (s.id, s.ends_at));
            }
            l
        };
        GroupView {
            id: group.id,
            route: group.route.clone(),
            profile: group.profile.clone(),
            destinations: Destination::parse_list(&group.destinations),
            firing,
            resolved,
            lines: members.iter().take(SHOWN).map(shown).collect(),
            new: group.posted_at == 0,
        }
    }

    /// How many alerts are not listed.
    pub fn more(&self) -> i64 {
        (self.firing + self.resolved - self.lines.len() as i64).max(0)
    }

    /// `🔥 3 firing · 1 resolved — queue-alerts (queue)`.
    pub fn headline(&self) -> String {
        let icon = if self.firing > 0 { "🔥" } else { "✅" };
        let mut t = format!("{icon} {} firing", self.firing);
        if self.resolved > 0 {
            t.push_str(&format!(" · {} resolved", self.resolved));
        }
        t.push_str(&format!(" — {}", self.route));
        if let Some(p) = &self.profile {
            t.push_str(&format!(" ({p})"));
        }
        t
    }
}

pub(crate) fn line(a: &StoredAlert) -> Line {
    let annotations: Value = serde_json::from_str(&a.record.annotations).unwrap_or_default();
    let get = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(String::from);
    Line {
        name: a.record.name.clone(),
        resolved: a.record.status == "resolved",
        severity: a.record.severity.clone(),
        summary: get(&annotations, "summary")
            .or_else(|| get(&annotations, "description"))
            .or_else(|| a.record.title.clone()),
        generator_url: a.record.generator_url.clone(),
        silence_url: a.record.silence_url.clone(),
        dashboard_url: a.record.dashboard_url.clone(),
        acknowledged_by: (a.record.status == "acknowledged").then(|| a.record.scope.clone()),
        silenced: None,
    }
}

/// The message key of a group's message in one destination.
pub fn message_key(group: i64, d: &Destination) -> String {
    format!("alerts:{group}:{}:{}", d.platform, d.channel)
}

#[cfg(test)]
impl GroupView {
    /// A group as the renderers' snapshots show it, posted to Slack C1 and
    /// Discord 9: a firing alert with links, one acknowledged and silenced,
    /// one resolved, and more not listed.
    pub(crate) fn example() -> GroupView {
        let line = |name: &str| Line {
            name: name.into(),
            resolved: false,
            severity: Some("critical".into()),
            summary: Some("5xx above 5% on <chat-api> & rising".into()),
            generator_url: None,
            silence_url: None,
            dashboard_url: None,
            acknowledged_by: None,
            silenced: None,
        };
        GroupView {
            id: 4,
            route: "chat".into(),
            profile: Some("chat".into()),
            destinations: Destination::parse_list("slack:C1,discord:9"),
            firing: 3,
            resolved: 2,
            lines: vec![
                Line {
                    generator_url: Some("http://prom:9090/graph?g0.expr=rate(x[5m])>0.05".into()),
                    dashboard_url: Some("https://grafana.example/d/chat".into()),
                    silence_url: Some("https://alertmanager.example/#/silences/new".into()),
                    ..line("HighErrorRate")
                },
                Line {
                    acknowledged_by: Some("pagerduty/chat".into()),
                    silenced: Some((3, 1_764_720_000_000)),
                    ..line("DatabaseConnectionFailure")
                },
                Line {
                    resolved: true,
                    severity: Some("warning".into()),
                    summary: None,
                    ..line("SlowResponseTime")
                },
            ],
            new: true,
        }
    }
    /// [`GroupView::example`] with markup in every dynamic string: names,
    /// severity, summary and who acknowledged try to format, ping and link.
    pub(crate) fn hostile_example() -> GroupView {
        let mut g = GroupView::example();
        g.route = "*prod*".into();
        g.profile = Some("_chat_".into());
        let evil = [
            ("*x*", "_y_", "~z~ `rm -rf` <!channel> disk_usage_high"),
            (
                "disk_usage_high",
                "~sev~",
                "`a` *b* _c_ <https://evil.example|runbook>",
            ),
            ("_y_", "`crit`", "> quoted\n> <@U0EVE>"),
        ];
        for (l, (name, severity, summary)) in g.lines.iter_mut().zip(evil) {
            l.name = name.into();
            l.severity = Some(severity.into());
            l.summary = Some(summary.into());
        }
        g.lines[1].acknowledged_by = Some("*eve* `x`".into());
        g
    }
}
