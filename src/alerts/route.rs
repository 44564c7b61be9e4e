//! The alert route tree from `[alerts]` (Alertmanager's routing, in TOML).
//! Pure: loading checks everything and reports each problem as `file:line`;
//! routing takes labels and answers the routes an alert belongs to, each
//! with its group key, severity level and whether that level opens an
//! incident.
//!
//! ```toml
//! [alerts]                      # the root route: whatever nothing below matched
//! to = ["slack:C0ALERTS"]
//! group_by = ["alertname"]
//!
//! [[alerts.routes]]
//! name = "chat"                 # stable: stored with every group
//! match = ['severity=~"critical|warning"']     # all must hold
//! any = ['system="chat"', 'alertname=~"HighErrorRate|AIServiceDown"']  # one must
//! profile = "chat"              # its scale ranks the levels; `to` defaults to its channel
//! severity = { critical = "P1", warning = "P3" }   # label value → level
//! incident = "P1"               # at or above this level an alert opens an incident
//! continue = false              # true: later sibling routes are tried too
//! ```
//!
//! A route matches when all of `match` and (if given) one of `any` hold;
//! then its child routes are tried in order, and the first that matches
//! takes the alert (with `continue`, the next ones too); when none does,
//! the route itself takes it. The root matches everything, so no alert is
//! ever without a route. Children inherit `to`, `group_by`, `profile`,
//! `severity`, `severity_label` and `incident` unless they set them; a
//! child naming another profile inherits none of the profile's mapping.

use super::Labels;
use crate::catalog::{line_of, Problem};
use crate::policy::{Destination, ProfilePolicy};
use regex::Regex;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use toml::Spanned;

/// The name of the root route (the `[alerts]` table itself).
pub const ROOT: &str = "root";

/// `[alerts]` as written (a route, with `routes` below it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    name: Option<Spanned<String>>,
    #[serde(default, rename = "match")]
    matchers: Vec<Spanned<String>>,
    #[serde(default)]
    any: Vec<Spanned<String>>,
    to: Option<Vec<Spanned<String>>>,
    group_by: Option<Vec<String>>,
    profile: Option<Spanned<String>>,
    severity: Option<Spanned<BTreeMap<String, String>>>,
    severity_label: Option<String>,
    incident: Option<Spanned<String>>,
    #[serde(rename = "continue")]
    continue_matching: Option<Spanned<bool>>,
    #[serde(default)]
    routes: Vec<Spanned<Raw>>,
}

/// A label matcher: `name="value"`, `name!="value"`, `name=~"regex"`,
/// `name!~"regex"` (regexes are anchored at both ends). A missing label
/// has the empty value, as in Alertmanager.
#[derive(Debug, Clone)]
pub struct Matcher {
    pub label: String,
    pub op: Op,
    pub value: String,
    regex: Option<Regex>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Re,
    NotRe,
}

impl Matcher {
    /// Parses `name op value`; the value may be double-quoted (with `\"`
    /// and `\\` escapes) or bare.
    pub fn parse(s: &str) -> Result<Matcher, String> {
        let s = s.trim();
        let end = s
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        let (label, rest) = s.split_at(end);
        let valid_name = label
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
        if !valid_name {
            return Err(format!("matcher `{s}` must start with a label name"));
        }
        let rest = rest.trim_start();
        let (op, value) = [("=~", Op::Re), ("!~", Op::NotRe), ("!=", Op::Ne), ("=", Op::Eq)]
            .into_iter()
            .find_map(|(text, op)| rest.strip_prefix(text).map(|v| (op, v)))
            .ok_or_else(|| format!("matcher `{s}` needs one of =, !=, =~, !~ after `{label}`"))?;
        let value = unquote(value.trim()).map_err(|e| format!("matcher `{s}`: {e}"))?;
        let regex = match op {
            Op::Re | Op::NotRe => Some(
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|e| format!("matcher `{s}`: bad regex: {e}"))?,
            ),
            Op::Eq | Op::Ne => None,
        };
        Ok(Matcher {
            label: label.to_string(),
            op,
            value,
            regex,
        })
    }

    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.label).map_or("", String::as_str);
        match (self.op, &self.regex) {
            (Op::Eq, _) => v == self.value,
            (Op::Ne, _) => v != self.value,
            (Op::Re, Some(r)) => r.is_match(v),
            (Op::NotRe, Some(r)) => !r.is_match(v),
            (Op::Re | Op::NotRe, None) => false,
        }
    }
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let inner = inner.strip_suffix('"').ok_or("unterminated quote")?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or("dangling backslash")?),
            '"' => return Err("unescaped quote inside the value".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Which labels make an alert's group within its route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(Vec<String>),
    /// `group_by = ["..."]`: every label (each alert its own group).
    All,
}

/// A level of the route's profile: its label and rank (1 = most severe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    pub label: String,
    pub rank: usize,
}

/// One route, with everything it inherits resolved.
#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    pub matchers: Vec<Matcher>,
    pub any: Vec<Matcher>,
    pub to: Vec<Destination>,
    pub group_by: GroupBy,
    pub profile: Option<String>,
    /// The label whose value `levels` maps (default `severity`).
    pub severity_label: String,
    /// Severity label value (lower case) → level of the profile's scale.
    pub levels: BTreeMap<String, Level>,
    /// Alerts at this rank or more severe open an incident.
    pub incident_rank: Option<usize>,
    pub continue_matching: bool,
    pub routes: Vec<Route>,
}

/// Where one alert goes in one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement<'a> {
    pub route: &'a str,
    /// The group within the route: `{alertname="X",instance="y"}`.
    pub group_key: String,
    pub profile: Option<&'a str>,
    pub destinations: &'a [Destination],
    pub level: Option<&'a Level>,
    pub opens_incident: bool,
}

/// The loaded tree.
#[derive(Debug, Clone)]
pub struct RouteTree {
    pub root: Route,
}

impl Default for RouteTree {
    /// No `[alerts]`: one root route, no destinations, grouped by alert name.
    fn default() -> Self {
        RouteTree {
            root: Route {
                name: ROOT.into(),
                matchers: Vec::new(),
                any: Vec::new(),
                to: Vec::new(),
                group_by: GroupBy::Labels(vec!["alertname".into()]),
                profile: None,
                severity_label: "severity".into(),
                levels: BTreeMap::new(),
                incident_rank: None,
                continue_matching: false,
                routes: Vec::new(),
            },
        }
    }
}

impl RouteTree {
    /// Every route the alert with `labels` belongs to (at least the root),
    /// with its group, level and incident verdict.
    pub fn place(&self, labels: &Labels) -> Vec<Placement<'_>> {
        let mut out = Vec::new();
        self.root.collect(labels, &mut out);
        out.into_iter().map(|r| r.placement(labels)).collect()
    }

    /// Every route by name, depth first.
    pub fn routes(&self) -> Vec<&Route> {
        fn walk<'a>(r: &'a Route, out: &mut Vec<&'a Route>) {
            out.push(r);
            r.routes.iter().for_each(|c| walk(c, out));
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

impl Route {
    fn admits(&self, labels: &Labels) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
            && (self.any.is_empty() || self.any.iter().any(|m| m.matches(labels)))
    }

    /// Adds the routes under (or being) `self` that take the alert; false
    /// when `self` does not match.
    fn collect<'a>(&'a self, labels: &Labels, out: &mut Vec<&'a Route>) -> bool {
        if !self.admits(labels) {
            return false;
        }
        let mut taken = false;
        for child in &self.routes {
            if child.collect(labels, out) {
                taken = true;
                if !child.continue_matching {
                    break;
                }
            }
        }
        if !taken {
            out.push(self);
        }
        true
    }

    /// The group key of an alert with `labels` in this route.
    pub fn group_key(&self, labels: &Labels) -> String {
        let pairs: Vec<String> = match &self.group_by {
            GroupBy::All => labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect(),
            GroupBy::Labels(names) => names
                .iter()
                .map(|k| format!("{k}={:?}", labels.get(k).map_or("", String::as_str)))
                .collect(),
        };
        format!("{{{}}}", pairs.join(","))
    }

    fn placement(&self, labels: &Labels) -> Placement<'_> {
        let level = labels
            .get(&self.severity_label)
            .and_then(|v| self.levels.get(&v.to_ascii_lowercase()));
        Placement {
            route: &self.name,
            group_key: self.group_key(labels),
            profile: self.profile.as_deref(),
            destinations: &self.to,
            level,
            opens_incident: matches!((level, self.incident_rank), (Some(l), Some(t)) if l.rank <= t),
        }
    }
}

/// Loads `[alerts]` (`raw`, `None` when the file has no such section)
/// against the severity policies; `text` and `file` place the problems.
pub fn load(
    raw: Option<&Spanned<Raw>>,
    text: &str,
    file: &str,
    policies: &BTreeMap<String, ProfilePolicy>,
) -> (RouteTree, Vec<Problem>) {
    let Some(raw) = raw else {
        return (RouteTree::default(), Vec::new());
    };
    let mut cx = Cx {
        text,
        file,
        policies,
        names: BTreeSet::new(),
        problems: Vec::new(),
    };
    let span = raw.span().start;
    let root_raw = raw.get_ref();
    if let Some(m) = root_raw.matchers.iter().chain(&root_raw.any).next() {
        let msg =
            "[alerts] is the root route and matches everything: move `match`/`any` into an [[alerts.routes]]";
        cx.problem(m.span().start, msg.into());
    }
    if root_raw.continue_matching.is_some() {
        cx.problem(
            span,
            "[alerts] is the root route: `continue` means nothing there".into(),
        );
    }
    let parent = RouteTree::default().root;
    let root = cx.route(root_raw, span, &parent, true);
    if root.to.is_empty() {
        cx.problem(
            span,
            "[alerts] needs `to` (or a `profile` with a channel): where alerts no route matched go".into(),
        );
    }
    (RouteTree { root }, cx.problems)
}

struct Cx<'a> {
    text: &'a str,
    file: &'a str,
    policies: &'a BTreeMap<String, ProfilePolicy>,
    names: BTreeSet<String>,
    problems: Vec<Problem>,
}

impl Cx<'_> {
    fn problem(&mut self, offset: usize, message: String) {
        self.problems.push(Problem {
            file: self.file.to_string(),
            line: line_of(self.text, offset),
            message: format!("alerts: {message}"),
        });
    }

    fn matchers(&mut self, list: &[Spanned<String>]) -> Vec<Matcher> {
        list.iter()
            .filter_map(|m| match Matcher::parse(m.get_ref()) {
                Ok(m) => Some(m),
                Err(e) => {
                    self.problem(m.span().start, e);
                    None
                }
            })
            .collect()
    }

    fn route(&mut self, raw: &Raw, span: usize, parent: &Route, is_root: bool) -> Route {
        let name = match (&raw.name, is_root) {
            (Some(n), _) => n.get_ref().clone(),
            (None, true) => ROOT.to_string(),
            (None, false) => {
                self.problem(
                    span,
                    "every [[alerts.routes]] needs a `name` (alert groups are stored under it)".into(),
                );
                format!("unnamed@{}", line_of(self.text, span))
            }
        };
        if !self.names.insert(name.clone()) {
            let at = raw.name.as_ref().map_or(span, |n| n.span().start);
            self.problem(at, format!("route name `{name}` is used twice"));
        }
        let profile = self.profile(raw, parent);
        let own_profile = raw.profile.is_some();
        let policy = profile.as_ref().and_then(|p| self.policies.get(p));
        let to = match &raw.to {
            Some(list) => self.destinations(list),
            None if own_profile => policy.map(|p| p.destinations.clone()).unwrap_or_default(),
            None => parent.to.clone(),
        };
        let (levels, incident_rank) = if own_profile {
            (BTreeMap::new(), None)
        } else {
            (parent.levels.clone(), parent.incident_rank)
        };
        let mut route = Route {
            name,
            matchers: self.matchers(&raw.matchers),
            any: self.matchers(&raw.any),
            to,
            group_by: match &raw.group_by {
                Some(l) if l.iter().any(|n| n == "...") => GroupBy::All,
                Some(l) => GroupBy::Labels(l.clone()),
                None => parent.group_by.clone(),
            },
            profile,
            severity_label: raw
                .severity_label
                .clone()
                .unwrap_or_else(|| parent.severity_label.clone()),
            levels,
            incident_rank,
            continue_matching: raw.continue_matching.as_ref().is_some_and(|c| *c.get_ref()),
            routes: Vec::new(),
        };
        self.levels(raw, span, policy, &mut route);
        route.routes = raw
            .routes
            .iter()
            .map(|c| self.route(c.get_ref(), c.span().start, &route, false))
            .collect();
        route
    }

    fn profile(&mut self, raw: &Raw, parent: &Route) -> Option<String> {
        let Some(p) = &raw.profile else {
            return parent.profile.clone();
        };
        if !self.policies.contains_key(p.get_ref()) {
            let known = self.policies.keys().cloned().collect::<Vec<_>>().join(", ");
            let known = if known.is_empty() {
                "none is declared".into()
            } else {
                format!("known: {known}")
            };
            let msg = format!(
                "profile `{}` has no [policies.{}] ({known})",
                p.get_ref(),
                p.get_ref()
            );
            self.problem(p.span().start, msg);
        }
        Some(p.get_ref().clone())
    }

    fn destinations(&mut self, list: &[Spanned<String>]) -> Vec<Destination> {
        list.iter()
            .filter_map(|d| match crate::policy::destination(d.get_ref()) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.problem(d.span().start, e);
                    None
                }
            })
            .collect()
    }

    /// `severity` and `incident` of `raw`, checked against the profile's scale.
    fn levels(&mut self, raw: &Raw, span: usize, policy: Option<&ProfilePolicy>, route: &mut Route) {
        let needs_profile = |what: &str| format!("`{what}` needs a `profile` (whose scale it names)");
        if let Some(map) = &raw.severity {
            let at = map.span().start;
            let Some(policy) = policy else {
                if route.profile.is_none() {
                    self.problem(at, needs_profile("severity"));
                }
                return;
            };
            route.levels = BTreeMap::new();
            for (value, label) in map.get_ref() {
                match policy.rank(label) {
                    Some(rank) => {
                        let level = Level {
                            label: policy.scale[rank - 1].clone(),
                            rank,
                        };
                        route.levels.insert(value.to_ascii_lowercase(), level);
                    }
                    None => self.problem(at, not_in_scale(label, route, policy)),
                }
            }
        }
        if let Some(level) = &raw.incident {
            let at = level.span().start;
            match policy {
                None if route.profile.is_none() => self.problem(at, needs_profile("incident")),
                None => {}
                Some(policy) => match policy.rank(level.get_ref()) {
                    Some(rank) => route.incident_rank = Some(rank),
                    None => self.problem(at, not_in_scale(level.get_ref(), route, policy)),
                },
            }
        }
        if route.incident_rank.is_some() && route.levels.is_empty() {
            let msg = format!(
                "route `{}` opens incidents but maps no severity (`severity = {{ critical = \"…\" }}`)",
                route.name
            );
            self.problem(span, msg);
        }
    }
}

fn not_in_scale(label: &str, route: &Route, policy: &ProfilePolicy) -> String {
    format!(
        "`{label}` is not a level of profile `{}` ({})",
        route.profile.as_deref().unwrap_or_default(),
        policy.scale.join(", ")
    )
}

#[cfg(test)]
mod tests;
