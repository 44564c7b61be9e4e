//! PURE: storm digests. When a channel's alert messages would outrun its
//! pace, the groups routed there stop getting a message each and are summed
//! up in one digest message per channel and storm, edited as the storm goes
//! on: totals, counts by alert name and severity, the largest groups, "and
//! N more". Every window is measured in sends at the channel's pace
//! (`per_sec`, e.g. Slack's one message per second per channel):
//!
//! - a storm **starts** in a channel when its backlog (pending outbox rows)
//!   plus the group messages about to be enqueued exceeds [`BACKLOG_SECS`]
//!   seconds of sends: past that, what is queued could not go out within 2 s;
//! - its digest is **rendered** at once when it has taken its first group
//!   in (never empty), then at most once per
//!   send interval while groups keep changing (pending edits of the digest
//!   supersede each other in the outbox, so one edit per slot goes out),
//!   and never sooner than [`COST_FACTOR`] times what counting its alerts
//!   took the last time (a storm of a million alerts is summed up every few
//!   seconds, and its digest never takes most of the store's time from
//!   ingest);
//! - it **ends** after [`CALM_SENDS`] send intervals without a group change
//!   (30 s at 1/s): the digest gets its final edit and the channel returns to
//!   one message per group. Groups that were only in the digest get their own
//!   message when they next change (posted then, as new); nothing is posted
//!   for them at the end of the storm, which would be a second storm;
//! - while it lasts, its groups open at most [`STORM_INCIDENTS`] incidents;
//!   a serious group beyond that opens its incident when it next changes
//!   after the storm (the digest counts the incidents opened).

use crate::clock::Millis;
use crate::store::{Storm, StormCount};
use std::collections::{BTreeMap, HashMap};

/// A channel storms when its backlog would take longer than this to send.
pub const BACKLOG_SECS: i64 = 2;
/// A storm ends after this many send intervals without a group change.
pub const CALM_SENDS: i64 = 30;
/// Incidents a storm's groups may open while it lasts.
pub const STORM_INCIDENTS: i64 = 3;
/// A digest waits at least this many times its last count's duration.
pub const COST_FACTOR: i64 = 10;
/// Alert names (with severity) listed; the rest are counted.
pub const NAMES_SHOWN: usize = 10;
/// Groups listed; the rest are counted.
pub const GROUPS_SHOWN: usize = 5;

/// One send interval at `per_sec` sends per second, in ms.
pub fn interval_ms(per_sec: u32) -> Millis {
    1000 / Millis::from(per_sec.max(1))
}

/// Would `adding` more messages on top of `backlog` pending ones outrun a
/// channel paced at `per_sec`?
pub fn storming(backlog: i64, adding: i64, per_sec: u32) -> bool {
    backlog + adding > BACKLOG_SECS * i64::from(per_sec.max(1))
}

/// When `storm` ends if nothing changes (counted from its start while it
/// has taken no group in).
pub fn calm_at(storm: &Storm, per_sec: u32) -> Millis {
    storm.last_at.max(storm.started_at) + CALM_SENDS * interval_ms(per_sec)
}

/// Has `storm` taken any group in? A storm is started just before the
/// transaction that takes its first group in; until that commits (and if
/// it never does: another instance rendered the group first) it has
/// nothing to show, and no digest is rendered, not even at its end.
pub fn took_any(storm: &Storm) -> bool {
    storm.last_at > 0
}

/// When `storm`'s digest should next be rendered, if it shows something
/// stale (the first render at once, once it has taken a group in).
pub fn render_at(storm: &Storm, per_sec: u32) -> Option<Millis> {
    if storm.shown_at >= storm.last_at {
        return None;
    }
    if storm.shown_at == 0 {
        return Some(storm.started_at);
    }
    Some(storm.rendered_at + interval_ms(per_sec).max(COST_FACTOR * storm.render_ms))
}

/// When the poster should look at `storm` again: its next render or its end.
pub fn wake_at(storm: &Storm, per_sec: u32) -> Millis {
    let end = calm_at(storm, per_sec);
    render_at(storm, per_sec).map_or(end, |r| r.min(end))
}

/// May a group of `storm` open an incident now?
pub fn may_open_incident(storm: &Storm) -> bool {
    storm.incidents < STORM_INCIDENTS
}

/// The message key of a storm's digest.
pub fn message_key(storm: i64, platform: &str, channel: &str) -> String {
    format!("storm:{storm}:{platform}:{channel}")
}

/// Alerts of one name and severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameCount {
    pub name: String,
    pub severity: Option<String>,
    pub firing: i64,
    pub resolved: i64,
}

/// One group of the storm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    pub route: String,
    pub key: String,
    pub firing: i64,
    pub resolved: i64,
}

/// A storm's digest message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestView {
    pub storm: i64,
    pub platform: String,
    pub channel: String,
    /// Never posted: post it (else edit it).
    pub new: bool,
    /// The storm is over: the final edit.
    pub ended: bool,
    pub firing: i64,
    pub resolved: i64,
    pub groups: i64,
    /// The largest counts by name and severity, at most [`NAMES_SHOWN`].
    pub names: Vec<NameCount>,
    pub more_names: usize,
    /// The largest groups, at most [`GROUPS_SHOWN`].
    pub top: Vec<GroupCount>,
    pub more_groups: usize,
    pub incidents: i64,
}

impl DigestView {
    /// The digest of `storm` over every alert of its groups.
    pub fn build(storm: &Storm, counts: &[StormCount], ended: bool) -> DigestView {
        let mut names: BTreeMap<(&str, &Option<String>), (i64, i64)> = BTreeMap::new();
        let mut groups: HashMap<i64, GroupCount> = HashMap::new();
        let (mut firing, mut resolved) = (0, 0);
        for c in counts {
            let (f, r) = if c.resolved { (0, c.n) } else { (c.n, 0) };
            firing += f;
            resolved += r;
            let n = names.entry((&c.name, &c.severity)).or_default();
            n.0 += f;
            n.1 += r;
            let g = groups.entry(c.group_id).or_insert_with(|| GroupCount {
                route: c.route.clone(),
                key: c.group_key.clone(),
                firing: 0,
                resolved: 0,
            });
            g.firing += f;
            g.resolved += r;
        }
        let mut names: Vec<NameCount> = names
            .into_iter()
            .map(|((name, severity), (firing, resolved))| NameCount {
                name: name.to_string(),
                severity: severity.clone(),
                firing,
                resolved,
            })
            .collect();
        names.sort_by(|a, b| {
            (b.firing + b.resolved)
                .cmp(&(a.firing + a.resolved))
                .then(a.name.cmp(&b.name))
        });
        let mut top: Vec<GroupCount> = groups.into_values().collect();
        let group_count = top.len() as i64;
        top.sort_by(|a, b| {
            (b.firing, b.resolved)
                .cmp(&(a.firing, a.resolved))
                .then_with(|| (&a.route, &a.key).cmp(&(&b.route, &b.key)))
        });
        let more_names = names.len().saturating_sub(NAMES_SHOWN);
        let more_groups = top.len().saturating_sub(GROUPS_SHOWN);
        names.truncate(NAMES_SHOWN);
        top.truncate(GROUPS_SHOWN);
        DigestView {
            storm: storm.id,
            platform: storm.platform.clone(),
            channel: storm.channel.clone(),
            new: storm.shown_at == 0,
            ended,
            firing,
            resolved,
            groups: group_count,
            names,
            more_names,
            top,
            more_groups,
            incidents: storm.incidents,
        }
    }

    /// Every alert it counts.
    pub fn total(&self) -> i64 {
        self.firing + self.resolved
    }
}

#[cfg(test)]
impl DigestView {
    /// A storm's digest as the renderers' snapshots show it (Slack C1):
    /// more names and groups than are listed, incidents opened.
    pub(crate) fn example(ended: bool) -> DigestView {
        let name = |name: &str, severity: &str, firing, resolved| NameCount {
            name: name.into(),
            severity: Some(severity.into()),
            firing,
            resolved,
        };
        let group = |key: &str, firing, resolved| GroupCount {
            route: "chat".into(),
            key: key.into(),
            firing,
            resolved,
        };
        DigestView {
            storm: 7,
            platform: "slack".into(),
            channel: "C1".into(),
            new: !ended,
            ended,
            firing: 2_950,
            resolved: 50,
            groups: 300,
            names: vec![
                name("HighErrorRate", "critical", 1_200, 0),
                name("Slow_*Response*", "warning", 900, 50),
            ],
            more_names: 12,
            top: vec![
                group("{alertname=\"HighErrorRate\"}", 1_200, 0),
                group("{alertname=\"Slow_*Response*\"}", 900, 50),
            ],
            more_groups: 298,
            incidents: 3,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storm() -> Storm {
        Storm {
            id: 7,
            platform: "slack".into(),
            channel: "C1".into(),
            started_at: 1_000,
            last_at: 1_000,
            shown_at: 0,
            rendered_at: 0,
            ended_at: None,
            incidents: 0,
            render_ms: 0,
        }
    }

    /// One alert of `group`, counted as the store counts it.
    fn alert(group: i64, name: &str, severity: &str, status: &str) -> StormCount {
        StormCount {
            group_id: group,
            route: "chat".into(),
            group_key: format!("alertname={name}/{group}"),
            name: name.into(),
            severity: Some(severity.into()),
            resolved: status == "resolved",
            n: 1,
        }
    }

    #[test]
    fn a_channel_storms_past_two_seconds_of_backlog() {
        assert!(!storming(0, 2, 1));
        assert!(storming(1, 2, 1));
        assert!(!storming(15, 5, 10));
        assert!(storming(15, 6, 10));
        assert_eq!(interval_ms(1), 1000);
        assert_eq!(interval_ms(0), 1000);
        assert_eq!(interval_ms(10), 100);
    }

    #[test]
    fn renders_at_once_then_once_per_slot_and_ends_when_calm() {
        let mut s = storm();
        s.last_at = 1_001;
        assert_eq!(render_at(&s, 1), Some(1_000), "first render at once");
        s.shown_at = 1_001;
        s.rendered_at = 1_050;
        assert_eq!(render_at(&s, 1), None, "nothing new to show");
        assert_eq!(wake_at(&s, 1), 1_001 + 30_000, "then only its end");
        s.last_at = 1_500;
        assert_eq!(render_at(&s, 1), Some(2_050), "one slot after the last render");
        s.render_ms = 300;
        assert_eq!(render_at(&s, 1), Some(4_050), "ten times its last count's cost");
        s.render_ms = 0;
        assert_eq!(wake_at(&s, 10), 1_150);
        assert_eq!(calm_at(&s, 10), 1_500 + 3_000);
        s.incidents = STORM_INCIDENTS - 1;
        assert!(may_open_incident(&s));
        s.incidents = STORM_INCIDENTS;
        assert!(!may_open_incident(&s));
    }

    #[test]
    fn a_storm_that_took_no_group_in_shows_nothing_and_ends_quietly() {
        let mut s = storm();
        s.last_at = 0;
        assert!(!took_any(&s));
        assert_eq!(render_at(&s, 1), None, "no empty first digest");
        assert_eq!(calm_at(&s, 1), 1_000 + 30_000, "calm counted from its start");
        assert_eq!(wake_at(&s, 1), 31_000);
        s.last_at = 1_200;
        assert!(took_any(&s));
        assert_eq!(render_at(&s, 1), Some(1_000), "then at once");
    }

    #[test]
    fn counts_every_alert_by_name_severity_and_group() {
        let mut alerts = Vec::new();
        for g in 0..8 {
            for i in 0..=g {
                let status = if i == 0 && g % 2 == 0 {
                    "resolved"
                } else {
                    "firing"
                };
                let name = format!("Name{}", g % 12);
                alerts.push(alert(
                    g,
                    &name,
                    if g < 4 { "critical" } else { "warning" },
                    status,
                ));
            }
        }
        for n in 0..12 {
            alerts.push(alert(100 + n, &format!("Other{n:02}"), "info", "firing"));
        }
        let d = DigestView::build(&storm(), &alerts, false);
        assert_eq!(d.total(), alerts.len() as i64);
        assert_eq!(d.resolved, 4);
        assert_eq!(d.groups, 20);
        assert!(d.new && !d.ended);
        assert_eq!(d.names.len(), NAMES_SHOWN);
        assert_eq!(d.more_names, 10);
        assert_eq!(
            d.names[0],
            NameCount {
                name: "Name7".into(),
                severity: Some("warning".into()),
                firing: 8,
                resolved: 0
            }
        );
        assert_eq!((d.top.len(), d.more_groups), (GROUPS_SHOWN, 15));
        assert_eq!((d.top[0].firing, d.top[0].key.as_str()), (8, "alertname=Name7/7"));
        assert_eq!((d.top[1].firing, d.top[1].resolved), (6, 1));
        assert_eq!(message_key(7, "slack", "C1"), "storm:7:slack:C1");
    }
}
