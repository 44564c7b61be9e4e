//! PURE: silences and maintenance windows. A silence is a set of label
//! matchers (the route matcher syntax: `=`, `!=`, `=~`, `!~`) and a time
//! window; an alert it matches is still stored and shown (marked silenced)
//! but opens no incident. Matchers see the alert's labels with two set by
//! routing: `route` (the route's name) and `profile` (its profile; empty
//! when it has none), which replace labels of those names. A maintenance
//! window is a silence with the one matcher `profile="<p>"`.
//!
//! Safety: a silence must pin alerts down with at least one *anchoring*
//! matcher (`label=value` with a value, or `label=~regex` whose regex
//! matches neither the empty string nor an arbitrary word); negative
//! matchers never anchor. So `alertname=~.*`, `alertname=~.+`,
//! `severity!=info` alone, or no matchers at all, are refused: one typo must
//! not mute every page. Durations are at most [`MAX_DURATION`].

use super::route::{Matcher, Op};
use super::Labels;
use crate::clock::Millis;
use crate::store::{OpenAlert, SilenceRow};
use std::time::Duration;

/// The longest silence or maintenance window.
pub const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);
/// The shortest one.
pub const MIN_DURATION: Duration = Duration::from_secs(60);
/// At most this many matchers in one silence.
pub const MAX_MATCHERS: usize = 16;

/// Strings a regex matcher must not match to anchor a silence: the empty
/// string and a few arbitrary words (`.+`, `\w+`, `[a-z]+` match them).
const PROBES: [&str; 5] = ["", "x", "0", "Z", "opsbot-probe_q7"];

/// `silence` or `maintenance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Silence,
    Maintenance,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Silence => "silence",
            Kind::Maintenance => "maintenance",
        }
    }
}

/// A stored silence with its matchers parsed.
#[derive(Debug, Clone)]
pub struct Silence {
    pub id: i64,
    pub kind: Kind,
    pub matchers: Vec<Matcher>,
    pub starts_at: Millis,
    pub ends_at: Millis,
    pub created_by: String,
    pub comment: Option<String>,
    pub ended_at: Option<Millis>,
}

impl Silence {
    /// The silence of a stored row; `None` when its matchers no longer
    /// parse (it then silences nothing).
    pub fn from_row(r: &SilenceRow) -> Option<Silence> {
        let texts: Vec<String> = serde_json::from_str(&r.matchers).ok()?;
        let matchers = texts
            .iter()
            .map(|t| Matcher::parse(t))
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        Some(Silence {
            id: r.id,
            kind: if r.kind == "maintenance" {
                Kind::Maintenance
            } else {
                Kind::Silence
            },
            matchers,
            starts_at: r.starts_at,
            ends_at: r.ends_at,
            created_by: r.created_by.clone(),
            comment: r.comment.clone(),
            ended_at: r.ended_at,
        })
    }

    /// Parsed silences of `rows` (unparseable ones left out).
    pub fn from_rows(rows: &[SilenceRow]) -> Vec<Silence> {
        rows.iter().filter_map(Silence::from_row).collect()
    }

    pub fn active(&self, now: Millis) -> bool {
        self.ended_at.is_none() && self.starts_at <= now && now < self.ends_at
    }

    /// Whether it matches an alert whose matchable labels are `subject`
    /// (see [`subject`]); time is not considered.
    pub fn matches(&self, subject: &Labels) -> bool {
        !self.matchers.is_empty() && self.matchers.iter().all(|m| m.matches(subject))
    }

    /// `s3`.
    pub fn label(&self) -> String {
        label(self.id)
    }

    /// The matchers as typed back: `alertname="X", severity=~"crit.*"`.
    pub fn matcher_text(&self) -> String {
        self.matchers.iter().map(show).collect::<Vec<_>>().join(", ")
    }
}

/// `s3`.
pub fn label(id: i64) -> String {
    format!("s{id}")
}

/// What silences match for an alert with `labels` placed in `route`
/// (profile `profile`): its labels with `route` and `profile` set.
pub fn subject(labels: &Labels, route: &str, profile: Option<&str>) -> Labels {
    let mut s = labels.clone();
    s.insert("route".into(), route.into());
    s.insert("profile".into(), profile.unwrap_or_default().into());
    s
}

/// [`subject`] of a stored labels JSON object.
pub fn subject_json(labels: &str, route: &str, profile: Option<&str>) -> Labels {
    let labels: Labels = serde_json::from_str(labels).unwrap_or_default();
    subject(&labels, route, profile)
}

/// The active silence (at `now`) that matches `subject` and ends last.
pub fn silencing<'a>(silences: &'a [Silence], subject: &Labels, now: Millis) -> Option<&'a Silence> {
    silences
        .iter()
        .filter(|s| s.active(now) && s.matches(subject))
        .max_by_key(|s| (s.ends_at, s.id))
}

/// The silence (active at `now`) of an open alert.
pub fn silencing_open<'a>(silences: &'a [Silence], a: &OpenAlert, now: Millis) -> Option<&'a Silence> {
    silencing(silences, &open_subject(a), now)
}

/// [`subject`] of an open alert.
fn open_subject(a: &OpenAlert) -> Labels {
    subject_json(&a.alert.record.labels, &a.alert.route, a.profile.as_deref())
}

/// What opens a group's incident, decided when the poster sees the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    /// The level and name of the most severe alert that pages.
    pub level: String,
    pub name: String,
    /// Who acknowledged (PagerDuty's `acknowledge`, `pagerduty/<name>`)
    /// when every alert that pages was acknowledged before the incident
    /// opened: the incident opens acknowledged and pages nobody.
    pub acked_by: Option<String>,
}

/// Whether `serious` (a group's incident candidates, most severe first)
/// open an incident at `now`: those no silence covers, and when the
/// group's previous incident was resolved at `after`, only alerts opened
/// since (a new member firing, or a resolved one firing again); a repeat
/// of an alert that was open then is part of the resolved incident.
pub fn opening(
    serious: &[OpenAlert],
    silences: &[Silence],
    now: Millis,
    after: Option<Millis>,
) -> Option<Opening> {
    let pages: Vec<&OpenAlert> = serious
        .iter()
        .filter(|a| after.is_none_or(|t| a.created_at > t))
        .filter(|a| silencing_open(silences, a, now).is_none())
        .collect();
    let first = pages.first()?;
    let acked_by = if pages.iter().all(|a| a.alert.record.status == "acknowledged") {
        pages
            .iter()
            .max_by_key(|a| (a.alert.changed_at, a.alert.id))
            .map(|a| a.alert.record.scope.clone())
    } else {
        None
    };
    Some(Opening {
        level: first.alert.record.level.clone()?,
        name: alert_name(first),
        acked_by,
    })
}

/// An open alert's name: its `alertname`, else its title, else its group.
pub fn alert_name(a: &OpenAlert) -> String {
    let r = &a.alert.record;
    let labels: Labels = serde_json::from_str(&r.labels).unwrap_or_default();
    labels
        .get("alertname")
        .cloned()
        .or_else(|| r.title.clone())
        .unwrap_or_else(|| format!("alert group {}", a.alert.group_id))
}

/// The groups with an open alert `s` matches, and how many such alerts.
pub fn covered(s: &Silence, open: &[OpenAlert]) -> (Vec<i64>, usize) {
    let hits: Vec<&OpenAlert> = open.iter().filter(|a| s.matches(&open_subject(a))).collect();
    let mut groups: Vec<i64> = hits.iter().map(|a| a.alert.group_id).collect();
    groups.sort_unstable();
    groups.dedup();
    (groups, hits.len())
}

/// A matcher as it is stored and shown: `name="value"` (value quoted and
/// escaped), so [`Matcher::parse`] reads it back the same.
pub fn show(m: &Matcher) -> String {
    let op = match m.op {
        Op::Eq => "=",
        Op::Ne => "!=",
        Op::Re => "=~",
        Op::NotRe => "!~",
    };
    let value = m.value.replace('\\', "\\\\").replace('"', "\\\"");
    format!("{}{op}\"{value}\"", m.label)
}

/// Whether a word is meant as a matcher (it has an operator or a `:` in
/// the middle), so the duration is the first word that is not.
pub fn looks_like_matcher(word: &str) -> bool {
    let w = word.trim_matches(',');
    w.contains('=') || w.contains('~') || (w.contains(':') && !w.starts_with(':'))
}

/// Parses the matcher words of `/alerts silence`: each word one or more
/// matchers separated by commas (outside quotes). Bad syntax is refused
/// with a did-you-mean where the slip is recognizable.
pub fn parse_matchers(words: &[&str]) -> Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for w in words {
        for part in split_commas(&normalize_quotes(w)) {
            out.push(parse_one(&part)?);
        }
    }
    if out.len() > MAX_MATCHERS {
        return Err(format!("A silence takes at most {MAX_MATCHERS} matchers."));
    }
    Ok(out)
}

/// Slack turns `"` into typographic quotes.
fn normalize_quotes(w: &str) -> String {
    w.chars()
        .map(|c| {
            if matches!(c, '“' | '”' | '„') {
                '"'
            } else {
                c
            }
        })
        .collect()
}

/// `a="x,y",b=z` → [`a="x,y"`, `b=z`]; empty parts dropped.
fn split_commas(w: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut escaped = false;
    for c in w.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = parts.last_mut() {
            last.push(c);
        }
    }
    parts.into_iter().filter(|p| !p.trim().is_empty()).collect()
}

fn parse_one(text: &str) -> Result<Matcher, String> {
    let hint = |fixed: String| format!("`{text}` is not a matcher. Did you mean `{fixed}`?");
    if !text.contains(['=', '~']) {
        if let Some((l, v)) = text.split_once(':') {
            return Err(hint(format!("{l}={v}")));
        }
        return Err(format!(
            "`{text}` is not a matcher: write `label=value`, `label!=value`, `label=~regex` or `label!~regex`."
        ));
    }
    if let Some((l, v)) = text.split_once("==") {
        return Err(hint(format!("{l}={v}")));
    }
    if let Some((l, v)) = text.split_once("~=") {
        return Err(hint(format!("{l}=~{v}")));
    }
    let m = Matcher::parse(text).map_err(|e| {
        // A glob where a regex goes: `crit*` → `crit.*`.
        match text.split_once("=~").or_else(|| text.split_once("!~")) {
            Some((l, v)) if v.starts_with('*') => {
                let op = if text.contains("!~") { "!~" } else { "=~" };
                hint(format!("{l}{op}.{v}"))
            }
            _ if e.ends_with("unterminated quote") => format!(
                "{e}: a value with spaces needs the whole matcher quoted, e.g. `'job=\"db primary\"'`."
            ),
            _ => format!("{e}."),
        }
    })?;
    if matches!(m.op, Op::Re | Op::NotRe) && is_glob(&m.value) {
        let op = if m.op == Op::Re { "=~" } else { "!~" };
        return Err(hint(format!("{}{op}{}", m.label, globbed(&m.value))));
    }
    Ok(m)
}

/// `crit*` (a `*` right after a letter or digit, no `.` before it): a glob
/// where a regex goes.
fn is_glob(v: &str) -> bool {
    glob_stars(v).next().is_some()
}

/// Where a glob `*` is: right after a letter or digit that is not escaped
/// (`\d*` is a regex).
fn glob_stars(v: &str) -> impl Iterator<Item = usize> + '_ {
    let chars: Vec<char> = v.chars().collect();
    (1..chars.len()).filter(move |&i| {
        chars[i] == '*' && chars[i - 1].is_alphanumeric() && (i < 2 || chars[i - 2] != '\\')
    })
}

fn globbed(v: &str) -> String {
    let stars: Vec<usize> = glob_stars(v).collect();
    let mut out = String::new();
    for (i, c) in v.chars().enumerate() {
        if stars.contains(&i) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// Refuses matchers that could mute everything (see the module docs).
pub fn check_anchored(matchers: &[Matcher]) -> Result<(), String> {
    if matchers.iter().any(anchors) {
        return Ok(());
    }
    let what = if matchers.is_empty() {
        "A silence needs matchers".to_string()
    } else {
        format!(
            "`{}` would match every alert",
            matchers.iter().map(show).collect::<Vec<_>>().join(", ")
        )
    };
    Err(format!(
        "{what}: give at least one matcher that pins alerts down, `label=value` or a regex such as `alertname=~High.*` \
         (`.*`, `.+` and `!=`/`!~` alone match everything and would mute all paging). \
         For a whole system, use `/alerts maintenance <system> <duration>`."
    ))
}

fn anchors(m: &Matcher) -> bool {
    match m.op {
        Op::Eq => !m.value.is_empty(),
        Op::Re => {
            let labels = |v: &str| Labels::from([(m.label.clone(), v.to_string())]);
            PROBES.iter().all(|p| !m.matches(&labels(p)))
        }
        Op::Ne | Op::NotRe => false,
    }
}

/// Refuses a duration outside [`MIN_DURATION`]..=[`MAX_DURATION`].
pub fn check_duration(d: Duration) -> Result<(), String> {
    if d < MIN_DURATION {
        return Err(format!(
            "A silence lasts at least {}.",
            crate::duration::format(MIN_DURATION)
        ));
    }
    if d > MAX_DURATION {
        return Err(format!(
            "A silence lasts at most {} (7 days); set a new one when it ends.",
            crate::duration::format(MAX_DURATION)
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(words: &[&str]) -> Result<Vec<Matcher>, String> {
        parse_matchers(words)
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn silence(words: &[&str]) -> Silence {
        Silence {
            id: 3,
            kind: Kind::Silence,
            matchers: ms(words).unwrap(),
            starts_at: 100,
            ends_at: 200,
            created_by: "alice".into(),
            comment: None,
            ended_at: None,
        }
    }

    #[test]
    fn commas_and_spaces_both_separate_matchers() {
        let m = ms(&["alertname=HighErrorRate,severity=~crit.*", "job!=\"a,b\""]).unwrap();
        let shown: Vec<String> = m.iter().map(show).collect();
        assert_eq!(
            shown,
            [
                r#"alertname="HighErrorRate""#,
                r#"severity=~"crit.*""#,
                r#"job!="a,b""#
            ]
        );
        // What is stored reads back the same.
        for s in &shown {
            assert_eq!(show(&Matcher::parse(s).unwrap()), *s);
        }
        assert_eq!(ms(&["a=“x y”"]).unwrap()[0].value, "x y", "smart quotes");
    }

    #[test]
    fn slips_get_a_did_you_mean() {
        let e = |w: &str| ms(&[w]).unwrap_err();
        assert!(e("alertname:HighErrorRate").contains("Did you mean `alertname=HighErrorRate`?"));
        assert!(e("alertname==X").contains("Did you mean `alertname=X`?"));
        assert!(e("severity~=crit.*").contains("Did you mean `severity=~crit.*`?"));
        assert!(e("severity=~crit*").contains("Did you mean `severity=~crit.*`?"));
        assert!(ms(&["instance=~host\\d*"]).is_ok(), "an escaped class is a regex");
        assert!(e("alertname=~*Error").contains("Did you mean `alertname=~.*Error`?"));
        assert!(e("=x").contains("must start with a label name"));
        assert!(e("a=~(").contains("bad regex"));
        assert!(e("HighErrorRate").contains("is not a matcher"));
        let many: Vec<String> = (0..17).map(|i| format!("l{i}=v")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(ms(&many).unwrap_err().contains("at most 16"));
    }

    #[test]
    fn match_all_is_refused_and_anchored_sets_pass() {
        let refused = |w: &[&str]| check_anchored(&ms(w).unwrap()).is_err();
        assert!(refused(&[]));
        assert!(refused(&["alertname=~.*"]));
        assert!(refused(&["alertname=~.+"]));
        assert!(refused(&["alertname=~\\w+"]));
        assert!(refused(&["alertname=~[a-zA-Z0-9_-]+"]));
        assert!(refused(&["severity!=info"]));
        assert!(refused(&["severity!~info", "alertname=~.*"]));
        assert!(refused(&["alertname=\"\""]));
        assert!(!refused(&["alertname=HighErrorRate"]));
        assert!(!refused(&["severity=~crit.*"]));
        assert!(!refused(&["alertname=~.*", "profile=chat"]));
        assert!(check_anchored(&[]).unwrap_err().contains("/alerts maintenance"));
    }

    #[test]
    fn durations_are_bounded() {
        assert!(check_duration(Duration::from_secs(7 * 24 * 3600)).is_ok());
        assert!(check_duration(Duration::from_secs(7 * 24 * 3600 + 1)).is_err());
        assert!(check_duration(Duration::from_secs(59)).is_err());
        assert!(check_duration(Duration::from_secs(3600)).is_ok());
    }

    #[test]
    fn routing_labels_replace_the_alert_s_own() {
        let s = silence(&["profile=chat"]);
        let own = labels(&[("alertname", "X"), ("profile", "chat")]);
        assert!(!s.matches(&subject(&own, "root", None)), "routing decides");
        assert!(s.matches(&subject(&own, "chat", Some("chat"))));
        let r = silence(&["route=queue", "severity=critical"]);
        assert!(r.matches(&subject(&labels(&[("severity", "critical")]), "queue", None)));
    }

    #[test]
    fn only_active_silences_silence_and_the_longest_wins() {
        let subj = subject(&labels(&[("alertname", "HighErrorRate")]), "chat", Some("chat"));
        let mut a = silence(&["alertname=HighErrorRate"]);
        let mut b = a.clone();
        b.id = 4;
        b.ends_at = 300;
        let both = [a.clone(), b.clone()];
        assert_eq!(silencing(&both, &subj, 150).map(|s| s.id), Some(4));
        assert_eq!(silencing(&both, &subj, 99).map(|s| s.id), None, "not started");
        assert_eq!(silencing(&both, &subj, 250).map(|s| s.id), Some(4));
        assert_eq!(silencing(&both, &subj, 300).map(|s| s.id), None, "ended");
        a.ended_at = Some(120);
        b.ended_at = Some(120);
        assert!(silencing(&[a, b], &subj, 150).is_none(), "ended early");
    }

    fn open(id: i64, group: i64, labels: &str, level: &str) -> OpenAlert {
        let mut alert = crate::store::StoredAlert::example(id, group, labels.into());
        alert.record.level = Some(level.into());
        alert.record.rank = Some(1);
        alert.record.opens_incident = true;
        OpenAlert {
            alert,
            profile: Some("chat".into()),
            created_at: 0,
        }
    }

    #[test]
    fn the_first_unsilenced_serious_alert_opens_the_incident() {
        let serious = [
            open(1, 7, r#"{"alertname":"A","severity":"critical"}"#, "P1"),
            open(2, 7, r#"{"alertname":"B","severity":"critical"}"#, "P1"),
        ];
        let named = |o: Option<Opening>| o.map(|o| (o.level, o.name, o.acked_by));
        let s = [silence(&["alertname=A"])];
        assert_eq!(
            named(opening(&serious, &s, 150, None)),
            Some(("P1".into(), "B".into(), None))
        );
        let all = [silence(&["severity=critical"])];
        assert_eq!(opening(&serious, &all, 150, None), None);
        assert_eq!(
            named(opening(&serious, &all, 250, None)),
            Some(("P1".into(), "A".into(), None))
        );
        let (groups, n) = covered(&all[0], &serious);
        assert_eq!((groups, n), (vec![7], 2));
    }

    #[test]
    fn an_incident_opens_acknowledged_when_every_alert_that_pages_was() {
        let mut serious = [
            open(1, 7, r#"{"alertname":"A"}"#, "P1"),
            open(2, 7, r#"{"alertname":"B"}"#, "P1"),
        ];
        let ack = |a: &mut OpenAlert, scope: &str, at: Millis| {
            a.alert.record.status = "acknowledged".into();
            a.alert.record.scope = scope.into();
            a.alert.changed_at = at;
        };
        ack(&mut serious[0], "pagerduty/chat", 40);
        let by =
            |s: &[OpenAlert], silences: &[Silence]| opening(s, silences, 150, None).and_then(|o| o.acked_by);
        assert_eq!(by(&serious, &[]), None, "B still pages");
        assert_eq!(
            by(&serious, &[silence(&["alertname=B"])]),
            Some("pagerduty/chat".into()),
            "the silenced one pages nobody"
        );
        ack(&mut serious[1], "pagerduty/pdf", 50);
        assert_eq!(by(&serious, &[]), Some("pagerduty/pdf".into()), "the latest ack");
    }

    #[test]
    fn after_a_resolved_incident_only_alerts_opened_since_page() {
        let mut serious = [
            open(1, 7, r#"{"alertname":"A"}"#, "P1"),
            open(2, 7, r#"{"alertname":"B"}"#, "P2"),
        ];
        serious[0].created_at = 100;
        serious[1].created_at = 300;
        let name = |after| opening(&serious, &[], 400, after).map(|o| o.name);
        assert_eq!(name(None).as_deref(), Some("A"));
        assert_eq!(
            name(Some(200)).as_deref(),
            Some("B"),
            "A was part of the resolved one"
        );
        assert_eq!(name(Some(300)), None, "nothing new since");
    }
}
