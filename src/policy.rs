//! Severity policies, business calendars and on-call rotations from the
//! config file (`[policies.<profile>]`, `[policies.<profile>.<level>]`,
//! `[calendars.<name>]`, `[rotations.<name>]`; runbooks.md §3 is the
//! source). Loading checks everything and reports each problem as
//! `file:line: what is wrong`; the result is plain data for the pure
//! `escalation` math and, next, the incident engine.

use crate::calendar::Calendar;
use crate::catalog::Problem;
use crate::escalation::{Level, Pages, Step, Stop, Target, When};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use toml::{Table, Value};

/// Where an incident's card goes: `slack:<channel id>` or `discord:<channel id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub platform: String,
    pub channel: String,
}

impl Destination {
    /// Destinations as stored: `slack:C1,discord:2`.
    pub fn parse_list(s: &str) -> Vec<Destination> {
        s.split(',')
            .filter_map(|d| d.split_once(':'))
            .map(|(p, c)| Destination {
                platform: p.into(),
                channel: c.into(),
            })
            .collect()
    }

    /// The stored form of `ds` (see [`Destination::parse_list`]).
    pub fn list(ds: &[Destination]) -> String {
        ds.iter()
            .map(|d| format!("{}:{}", d.platform, d.channel))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One profile's severity policy.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfilePolicy {
    /// Labels, most severe first: rank = position + 1.
    pub scale: Vec<String>,
    pub calendar: Option<String>,
    pub destinations: Vec<Destination>,
    /// Per label.
    pub levels: BTreeMap<String, Level>,
}

impl ProfilePolicy {
    /// The rank of `label` in this profile's scale (1 = most severe).
    pub fn rank(&self, label: &str) -> Option<usize> {
        self.scale
            .iter()
            .position(|l| l.eq_ignore_ascii_case(label))
            .map(|i| i + 1)
    }
}

/// A checked `[rotations.<name>]`: members, length, handoff, zone (its `tz`,
/// else its calendar's, else UTC) and anchor (`start`); see `rotation`.
pub use crate::rotation::Rotation;

/// Everything loaded.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub calendars: BTreeMap<String, Calendar>,
    pub rotations: BTreeMap<String, Rotation>,
    pub profiles: BTreeMap<String, ProfilePolicy>,
    /// Roles that are only paged while a calendar is open (`[roles.<r>]
    /// available = "<calendar>"`), except at rank 1.
    pub role_calendars: BTreeMap<String, String>,
}

impl Policies {
    /// Who is on call in rotation `name` at `at` (`rotation:<name>` resolves
    /// through this at the instant a page is sent); `None` for an unknown name.
    pub fn on_call(
        &self,
        name: &str,
        overrides: &[crate::rotation::Override],
        at: crate::clock::Millis,
    ) -> Option<crate::rotation::Shift> {
        self.rotations.get(name).map(|r| r.on_call(overrides, at))
    }
}

/// The raw tables, as the config file holds them.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct Raw {
    #[serde(default)]
    pub calendars: Table,
    #[serde(default)]
    pub rotations: Table,
    #[serde(default)]
    pub policies: Table,
}

/// What the policies may refer to.
pub struct Known<'a> {
    pub people: &'a BTreeSet<String>,
    pub roles: &'a BTreeSet<String>,
}

/// Loads and checks `raw`; `text` and `file` place problems.
pub fn load(raw: Raw, text: &str, file: &str, known: &Known<'_>) -> (Policies, Vec<Problem>) {
    let mut cx = Cx {
        text,
        file,
        problems: Vec::new(),
    };
    let calendars = calendars(&mut cx, &raw.calendars);
    let rotations = rotations(&mut cx, &raw.rotations, known, &calendars);
    // Declared, even when broken: its own problem says what is wrong.
    let declared: BTreeSet<String> = raw.rotations.keys().cloned().collect();
    let mut profiles = BTreeMap::new();
    for (name, v) in &raw.policies {
        let key = format!("policies.{name}");
        let Some(t) = cx.table(&key, v) else { continue };
        if let Some(p) = profile(&mut cx, name, t, known, &calendars, &declared) {
            profiles.insert(name.clone(), p);
        }
    }
    let policies = Policies {
        calendars,
        rotations,
        profiles,
        role_calendars: BTreeMap::new(),
    };
    (policies, cx.problems)
}

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
    problems: Vec<Problem>,
}

impl Cx<'_> {
    /// The line of the table header `[key]` (or of `key =` within its parent).
    fn line(&self, key: &str) -> usize {
        let header = format!("[{key}]");
        let last = key.rsplit('.').next().unwrap_or(key);
        let find = |needle: &str| {
            self.text
                .lines()
                .position(|l| l.trim_start().starts_with(needle))
                .map(|i| i + 1)
        };
        find(&header)
            .or_else(|| find(&format!("{last} =")))
            .or_else(|| find(&format!("{last}=")))
            .unwrap_or(0)
    }

    fn problem(&mut self, key: &str, message: String) {
        let line = self.line(key);
        self.problems.push(Problem {
            file: self.file.to_string(),
            line,
            message: format!("{key}: {message}"),
        });
    }

    fn table<'v>(&mut self, key: &str, v: &'v Value) -> Option<&'v Table> {
        match v {
            Value::Table(t) => Some(t),
            _ => {
                self.problem(key, "must be a table".into());
                None
            }
        }
    }

    fn string(&mut self, key: &str, t: &Table, field: &str) -> Option<String> {
        match t.get(field) {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(key, format!("`{field}` must be a string"));
                None
            }
        }
    }

    fn strings(&mut self, key: &str, t: &Table, field: &str) -> Vec<String> {
        match t.get(field) {
            None => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if a.iter().all(Value::is_str) => {
                a.iter().filter_map(|v| v.as_str().map(String::from)).collect()
            }
            Some(_) => {
                self.problem(key, format!("`{field}` must be a string or a list of strings"));
                Vec::new()
            }
        }
    }

    fn duration(&mut self, key: &str, t: &Table, field: &str) -> Option<Duration> {
        let s = self.string(key, t, field)?;
        match crate::duration::parse(&s) {
            Ok(d) => Some(d),
            Err(e) => {
                self.problem(key, format!("`{field}`: {e}"));
                None
            }
        }
    }

    fn unknown(&mut self, key: &str, t: &Table, allowed: &[&str]) {
        for k in t.keys().filter(|k| !allowed.contains(&k.as_str())) {
            self.problem(key, format!("unknown key `{k}` (known: {})", allowed.join(", ")));
        }
    }
}

fn calendars(cx: &mut Cx<'_>, raw: &Table) -> BTreeMap<String, Calendar> {
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        let key = format!("calendars.{name}");
        let Some(t) = cx.table(&key, v) else { continue };
        cx.unknown(&key, t, &["tz", "days", "hours", "holidays"]);
        let Some(tz) = cx.string(&key, t, "tz") else {
            cx.problem(
                &key,
                "needs `tz` (an IANA time zone; the host's zone is never used)".into(),
            );
            continue;
        };
        let days = cx.strings(&key, t, "days");
        let hours = cx
            .string(&key, t, "hours")
            .unwrap_or_else(|| "09:00-17:00".into());
        let holidays = cx.strings(&key, t, "holidays");
        match Calendar::new(&tz, &days, &hours, &holidays) {
            Ok(c) => {
                out.insert(name.clone(), c);
            }
            Err(e) => cx.problem(&key, e.to_string()),
        }
    }
    out
}

fn rotations(
    cx: &mut Cx<'_>,
    raw: &Table,
    known: &Known<'_>,
    calendars: &BTreeMap<String, Calendar>,
) -> BTreeMap<String, Rotation> {
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        let key = format!("rotations.{name}");
        let Some(t) = cx.table(&key, v) else { continue };
        cx.unknown(
            &key,
            t,
            &["members", "length", "handoff", "calendar", "tz", "start"],
        );
        let members = cx.strings(&key, t, "members");
        for m in members.iter().filter(|m| !known.people.contains(*m)) {
            cx.problem(&key, format!("member `{m}` is not a person of [people]"));
        }
        let length = cx
            .duration(&key, t, "length")
            .unwrap_or(Duration::from_secs(7 * 86_400));
        let handoff = cx
            .string(&key, t, "handoff")
            .unwrap_or_else(|| "mon 09:00".into());
        let start = cx.string(&key, t, "start");
        let calendar = cx.string(&key, t, "calendar");
        let mut zone = chrono_tz::UTC;
        match calendar.as_ref().map(|c| calendars.get(c).ok_or(c)) {
            Some(Ok(c)) => zone = c.tz(),
            Some(Err(c)) => cx.problem(&key, format!("unknown calendar `{c}`")),
            None => {}
        }
        if let Some(z) = cx.string(&key, t, "tz") {
            match z.parse::<chrono_tz::Tz>() {
                Ok(z) => zone = z,
                Err(_) => cx.problem(&key, format!("unknown time zone `{z}`")),
            }
        }
        match Rotation::new(name, members, length, &handoff, start.as_deref(), zone) {
            Ok(r) => {
                out.insert(name.clone(), r);
            }
            Err(e) => cx.problem(&key, e.to_string()),
        }
    }
    out
}

const PROFILE_KEYS: [&str; 3] = ["scale", "calendar", "channel"];

fn profile(
    cx: &mut Cx<'_>,
    name: &str,
    t: &Table,
    known: &Known<'_>,
    calendars: &BTreeMap<String, Calendar>,
    rotations: &BTreeSet<String>,
) -> Option<ProfilePolicy> {
    let key = format!("policies.{name}");
    let scale = cx.strings(&key, t, "scale");
    if scale.is_empty() {
        cx.problem(&key, "needs `scale` (level labels, most severe first)".into());
        return None;
    }
    let distinct: BTreeSet<String> = scale.iter().map(|s| s.to_ascii_lowercase()).collect();
    if distinct.len() != scale.len() {
        cx.problem(&key, "`scale` repeats a level".into());
    }
    let calendar = cx.string(&key, t, "calendar");
    if let Some(c) = calendar.as_ref().filter(|c| !calendars.contains_key(*c)) {
        cx.problem(&key, format!("unknown calendar `{c}`"));
    }
    let destinations = cx
        .strings(&key, t, "channel")
        .into_iter()
        .filter_map(|d| match destination(&d) {
            Ok(d) => Some(d),
            Err(e) => {
                cx.problem(&key, e);
                None
            }
        })
        .collect();
    let mut levels = BTreeMap::new();
    for (label, v) in t.iter().filter(|(k, _)| !PROFILE_KEYS.contains(&k.as_str())) {
        let lkey = format!("{key}.{label}");
        if !scale.contains(label) {
            cx.problem(
                &lkey,
                format!("`{label}` is not a level of the scale ({})", scale.join(", ")),
            );
            continue;
        }
        let Some(lt) = cx.table(&lkey, v) else { continue };
        let refs = Refs {
            known,
            rotations,
            has_calendar: calendar.is_some(),
        };
        if let Some(l) = level(cx, &lkey, label, lt, &refs) {
            levels.insert(label.clone(), l);
        }
    }
    for missing in scale
        .iter()
        .filter(|l| !levels.contains_key(*l) && !t.contains_key(*l))
    {
        cx.problem(&key, format!("level `{missing}` has no [{key}.{missing}] table"));
    }
    Some(ProfilePolicy {
        scale,
        calendar,
        destinations,
        levels,
    })
}

/// Parses `slack:<channel id>` / `discord:<channel id>` (also used by the
/// alert routes).
pub(crate) fn destination(s: &str) -> Result<Destination, String> {
    match s.split_once(':') {
        Some((p @ ("slack" | "discord"), ch)) if !ch.is_empty() => Ok(Destination {
            platform: p.to_string(),
            channel: ch.to_string(),
        }),
        _ => Err(format!(
            "channel `{s}` must be `slack:<channel id>` or `discord:<channel id>`"
        )),
    }
}

struct Refs<'a> {
    known: &'a Known<'a>,
    rotations: &'a BTreeSet<String>,
    has_calendar: bool,
}

fn level(cx: &mut Cx<'_>, key: &str, label: &str, t: &Table, refs: &Refs<'_>) -> Option<Level> {
    cx.unknown(
        key,
        t,
        &["ack", "update_every", "resolve_target", "pages", "steps"],
    );
    let ack = cx.duration(key, t, "ack");
    if ack.is_none() && !t.contains_key("ack") {
        cx.problem(key, "needs `ack` (the ack deadline, e.g. \"5m\")".into());
    }
    let update_every = cx.duration(key, t, "update_every");
    match cx.string(key, t, "resolve_target").as_deref() {
        None | Some("none") => {}
        Some(d) => {
            if let Err(e) = crate::duration::parse(d) {
                cx.problem(key, format!("`resolve_target`: {e} (or \"none\")"));
            }
        }
    }
    let pages = match cx.string(key, t, "pages").as_deref() {
        None | Some("always") => Pages::Always,
        Some("business") => Pages::Business,
        Some(other) => {
            cx.problem(key, format!("`pages` is `always` or `business`, not `{other}`"));
            Pages::Always
        }
    };
    if pages == Pages::Business && !refs.has_calendar {
        cx.problem(
            key,
            "`pages = \"business\"` needs the profile's `calendar`".into(),
        );
    }
    let steps = match t.get("steps") {
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .filter_map(|(i, s)| step(cx, &format!("{key}.steps[{i}]"), key, s, refs))
            .collect(),
        Some(_) => {
            cx.problem(key, "`steps` must be a list of { after | at, to, stop }".into());
            Vec::new()
        }
        None => {
            cx.problem(key, "needs `steps` (who is paged, when)".into());
            Vec::new()
        }
    };
    Some(Level {
        label: label.to_string(),
        ack: ack?,
        update_every,
        pages,
        steps,
    })
}

fn step(cx: &mut Cx<'_>, what: &str, key: &str, v: &Value, refs: &Refs<'_>) -> Option<Step> {
    let Value::Table(t) = v else {
        cx.problem(key, format!("{what} must be a table {{ after | at, to, stop }}"));
        return None;
    };
    for k in t
        .keys()
        .filter(|k| !["after", "from", "at", "to", "stop"].contains(&k.as_str()))
    {
        cx.problem(
            key,
            format!("{what}: unknown key `{k}` (after, from, at, to, stop)"),
        );
    }
    let previous = match t.get("from") {
        None => false,
        Some(Value::String(f)) if f == "declared" => false,
        Some(Value::String(f)) if f == "previous" => true,
        Some(_) => {
            cx.problem(key, format!("{what}: `from` is `declared` or `previous`"));
            false
        }
    };
    if t.contains_key("from") && !t.contains_key("after") {
        cx.problem(key, format!("{what}: `from` goes with `after`"));
    }
    let when = match (t.get("after"), t.get("at")) {
        (Some(Value::String(a)), None) => match crate::duration::parse(a) {
            Ok(d) if previous => When::AfterPrevious(d),
            Ok(d) => When::After(d),
            Err(e) => {
                cx.problem(key, format!("{what}: `after`: {e}"));
                return None;
            }
        },
        (None, Some(Value::String(at))) if at == "next_business_day" => {
            if !refs.has_calendar {
                cx.problem(
                    key,
                    format!("{what}: `at = \"next_business_day\"` needs the profile's `calendar`"),
                );
            }
            When::NextBusinessDay
        }
        _ => {
            cx.problem(
                key,
                format!(
                    "{what}: needs exactly one of `after = \"<duration>\"` or `at = \"next_business_day\"`"
                ),
            );
            return None;
        }
    };
    let mut to = Vec::new();
    for target in cx.strings(key, t, "to") {
        match Target::parse(&target) {
            Ok(tg) => {
                if let Some(why) = unknown_target(&tg, refs) {
                    cx.problem(key, format!("{what}: {why}"));
                }
                to.push(tg);
            }
            Err(e) => cx.problem(key, format!("{what}: {e}")),
        }
    }
    if to.is_empty() {
        cx.problem(key, format!("{what}: needs `to` (who is paged)"));
    }
    let stop = match t.get("stop").and_then(Value::as_str) {
        Some("ack") | None => Stop::Ack,
        Some("resolve") => Stop::Resolve,
        Some(other) => {
            cx.problem(
                key,
                format!("{what}: `stop` is `ack` or `resolve`, not `{other}`"),
            );
            Stop::Ack
        }
    };
    Some(Step { when, to, stop })
}

fn unknown_target(t: &Target, refs: &Refs<'_>) -> Option<String> {
    match t {
        Target::Rotation(r) if !refs.rotations.contains(r) => {
            Some(format!("unknown rotation `{r}` (declare [rotations.{r}])"))
        }
        Target::Role(r) if !refs.known.roles.contains(r) => Some(format!("unknown role `{r}`")),
        Target::Person(p) if !refs.known.people.contains(p) => {
            Some(format!("`{p}` is not a person of [people]"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> (Policies, Vec<String>) {
        let raw: Raw = toml::from_str(text).unwrap();
        let people: BTreeSet<String> = ["alice", "bob"].map(String::from).into();
        let roles: BTreeSet<String> = ["oncall", "sre", "eng-manager"].map(String::from).into();
        let known = Known {
            people: &people,
            roles: &roles,
        };
        let (p, problems) = load(raw, text, "config/opsbot.toml", &known);
        (p, problems.iter().map(|p| p.to_string()).collect())
    }

    #[test]
    fn steps_may_count_from_the_previous_one() {
        let text = GOOD.replace(
            r#"{ after = "15m", to = ["role:eng-manager"], stop = "resolve" }"#,
            r#"{ after = "15m", from = "previous", to = ["role:eng-manager"], stop = "resolve" }"#,
        );
        let (p, problems) = load_text(&text);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            p.profiles["queue"].levels["P0"].steps[1].when,
            When::AfterPrevious(Duration::from_secs(900))
        );
        let bad = GOOD.replace(r#"{ after = "15m", to"#, r#"{ after = "15m", from = "later", to"#);
        let (_, problems) = load_text(&bad);
        assert!(
            problems
                .iter()
                .any(|p| p.contains("`from` is `declared` or `previous`")),
            "{problems:?}"
        );
    }

    const GOOD: &str = r#"
[calendars.office]
tz = "Europe/Berlin"
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"

[rotations.primary]
members = ["alice", "bob"]
length = "1w"
handoff = "mon 09:00"
calendar = "office"

[policies.queue]
scale = ["P0", "P1"]
calendar = "office"
channel = ["slack:C0ALERTS", "discord:123"]

[policies.queue.P0]
ack = "5m"
update_every = "15m"
steps = [
  { after = "0s", to = ["rotation:primary"], stop = "ack" },
  { after = "15m", to = ["role:eng-manager"], stop = "resolve" },
]

[policies.queue.P1]
ack = "4h"
pages = "business"
steps = [
  { after = "0s", to = ["rotation:primary"] },
  { at = "next_business_day", to = ["person:bob"] },
]
"#;

    #[test]
    fn a_good_policy_loads() {
        let (p, problems) = load_text(GOOD);
        assert!(problems.is_empty(), "{problems:#?}");
        let q = &p.profiles["queue"];
        assert_eq!(q.rank("P1"), Some(2));
        assert_eq!(q.destinations.len(), 2);
        assert_eq!(q.levels["P0"].steps.len(), 2);
        assert_eq!(q.levels["P1"].pages, Pages::Business);
        assert_eq!(q.levels["P1"].steps[1].when, When::NextBusinessDay);
    }

    #[test]
    fn problems_name_the_line_and_the_fault() {
        let bad = GOOD
            .replace(
                "rotation:primary\"], stop = \"ack\"",
                "rotation:secondary\"], stop = \"ack\"",
            )
            .replace("tz = \"Europe/Berlin\"", "tz = \"Berlin\"")
            .replace("\"discord:123\"", "\"#alerts\"")
            .replace("ack = \"4h\"", "ack = \"4 hours\"");
        let (_, problems) = load_text(&bad);
        let all = problems.join("\n");
        for needle in [
            "config/opsbot.toml:2: calendars.office: unknown time zone `Berlin`",
            "unknown rotation `secondary`",
            "channel `#alerts` must be `slack:<channel id>` or `discord:<channel id>`",
            "policies.queue.P1: `ack`:",
        ] {
            assert!(all.contains(needle), "missing {needle:?} in\n{all}");
        }
    }

    #[test]
    fn levels_must_match_the_scale() {
        let bad = GOOD.replace("[policies.queue.P1]", "[policies.queue.P7]");
        let (_, problems) = load_text(&bad);
        let all = problems.join("\n");
        assert!(all.contains("`P7` is not a level of the scale (P0, P1)"), "{all}");
        assert!(
            all.contains("level `P1` has no [policies.queue.P1] table"),
            "{all}"
        );
    }

    #[test]
    fn rotations_resolve_their_zone_and_anchor() {
        let (p, problems) = load_text(GOOD);
        assert!(problems.is_empty(), "{problems:#?}");
        let r = &p.rotations["primary"];
        assert_eq!(r.zone(), chrono_tz::Europe::Berlin, "the calendar's zone");
        assert_eq!(r.members(), ["alice", "bob"]);
        let text = GOOD.replace(
            "calendar = \"office\"\n\n[policies",
            "tz = \"Asia/Tokyo\"\nstart = \"2026-12-01\"\n\n[policies",
        );
        let (p, problems) = load_text(&text);
        assert!(problems.is_empty(), "{problems:#?}");
        let r = &p.rotations["primary"];
        assert_eq!(r.zone(), chrono_tz::Asia::Tokyo);
        // Mon 2026-12-07 09:00 in Tokyo is 00:00 UTC.
        assert_eq!(r.anchor(), 1_796_601_600_000);
        let text = GOOD.replace("calendar = \"office\"\n\n[policies", "\n[policies");
        let (p, problems) = load_text(&text);
        assert!(problems.is_empty(), "{problems:#?}");
        assert_eq!(p.rotations["primary"].zone(), chrono_tz::UTC, "neither: UTC");
    }

    #[test]
    fn rotation_problems_name_the_line() {
        let bad = GOOD.replace(
            "handoff = \"mon 09:00\"",
            "handoff = \"monday 9am\"\nstart = \"soon\"",
        );
        let (p, problems) = load_text(&bad);
        let all = problems.join("\n");
        assert!(
            all.contains(
                "config/opsbot.toml:7: rotations.primary: handoff `monday 9am` must look like `mon 09:00`"
            ),
            "{all}"
        );
        assert!(!all.contains("unknown rotation"), "declared, only broken: {all}");
        assert!(!p.rotations.contains_key("primary"));
        let bad = GOOD.replace("handoff = \"mon 09:00\"", "start = \"2026-02-30\"");
        let all = load_text(&bad).1.join("\n");
        assert!(
            all.contains("rotations.primary: start `2026-02-30` is not a date"),
            "{all}"
        );
        let bad = GOOD.replace("length = \"1w\"", "length = \"10s\"");
        let all = load_text(&bad).1.join("\n");
        assert!(
            all.contains("rotations.primary: length must be at least 1m"),
            "{all}"
        );
    }
}
