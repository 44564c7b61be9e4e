//! Alerts in: the four webhook formats parsed into one normalized [`Alert`]
//! (pure: `alertmanager`, `grafana`, `pagerduty`, `generic`), the route tree
//! from `[alerts]` (pure: `route`), and the HTTP endpoints that store every
//! batch before answering (`inbound`); what a group's message shows
//! (`post`) and which silences cover an alert (`silence`), both pure.

pub mod alertmanager;
pub mod digest;
pub mod generic;
pub mod grafana;
pub mod inbound;
pub mod pagerduty;
pub mod post;
pub mod route;
pub mod silence;
pub mod writer;

use crate::clock::Millis;
use crate::store::{AlertRecord, NewAlert};
use std::collections::BTreeMap;

/// Labels or annotations: sorted, so fingerprints and group keys are stable.
pub type Labels = BTreeMap<String, String>;

/// The webhook format an alert came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Format {
    Alertmanager,
    Grafana,
    PagerDuty,
    Generic,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Alertmanager => "alertmanager",
            Format::Grafana => "grafana",
            Format::PagerDuty => "pagerduty",
            Format::Generic => "generic",
        }
    }
}

/// Where an alert stands. `Acknowledged` comes only from PagerDuty's
/// `acknowledge` events; it is still open (not resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Firing,
    Acknowledged,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
        }
    }
}

/// Links an alert carries (each absent when the format has none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// The rule or query that fired (Alertmanager's `generatorURL`,
    /// PagerDuty's `client_url` or first link).
    pub generator: Option<String>,
    pub silence: Option<String>,
    pub dashboard: Option<String>,
    pub panel: Option<String>,
    pub image: Option<String>,
}

/// One alert, whatever format it arrived in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub format: Format,
    /// Which keys can be the same alert: the format, and for PagerDuty the
    /// integration (each integration key dedups on its own, as PagerDuty does).
    pub scope: String,
    /// The dedup key: Alertmanager's / Grafana's `fingerprint`, PagerDuty's
    /// `dedup_key`, the generic `dedup_key` (each computed when absent).
    pub fingerprint: String,
    /// `firing` when the format says so (PagerDuty `trigger`), `acknowledged`
    /// (PagerDuty), `resolved`.
    pub status: Status,
    /// What routing matches on. Severity, when the format has one, is the
    /// label `severity`.
    pub labels: Labels,
    pub annotations: Labels,
    /// A one-line summary when the format has one (PagerDuty's `summary`,
    /// the generic `title`, the `summary` annotation otherwise). PagerDuty
    /// acknowledge and resolve events carry none.
    pub title: Option<String>,
    pub starts_at: Option<Millis>,
    pub ends_at: Option<Millis>,
    pub links: Links,
}

/// An alert's name as messages show it: its `alertname` label, else its
/// title, else its key.
pub fn name_of(labels: &Labels, title: Option<&str>, fingerprint: &str) -> String {
    labels
        .get("alertname")
        .map(String::as_str)
        .or(title)
        .unwrap_or(fingerprint)
        .to_string()
}

/// An alert's severity as messages show it: its route's level, else its
/// `severity` label.
pub fn severity_of(level: Option<&str>, labels: &Labels) -> Option<String> {
    level
        .or(labels.get("severity").map(String::as_str))
        .map(String::from)
}

/// Each alert in each route group it belongs to, as the store takes it.
/// A resolved alert without an end time ends `now` (the time it arrived).
pub fn placed(alerts: &[Alert], tree: &route::RouteTree, now: Millis) -> Vec<NewAlert> {
    let mut out = Vec::with_capacity(alerts.len());
    for a in alerts {
        let labels = serde_json::to_string(&a.labels).unwrap_or_default();
        let annotations = serde_json::to_string(&a.annotations).unwrap_or_default();
        let ends_at = match a.status {
            Status::Resolved => a.ends_at.or(Some(now)),
            _ => a.ends_at,
        };
        for p in tree.place(&a.labels) {
            out.push(NewAlert {
                route: p.route.to_string(),
                group_key: p.group_key,
                profile: p.profile.map(String::from),
                destinations: crate::policy::Destination::list(p.destinations),
                record: AlertRecord {
                    format: a.format.as_str().into(),
                    scope: a.scope.clone(),
                    fingerprint: a.fingerprint.clone(),
                    status: a.status.as_str().into(),
                    title: a.title.clone(),
                    labels: labels.clone(),
                    annotations: annotations.clone(),
                    level: p.level.map(|l| l.label.clone()),
                    rank: p.level.map(|l| l.rank as i64),
                    opens_incident: p.opens_incident,
                    starts_at: a.starts_at,
                    ends_at,
                    generator_url: a.links.generator.clone(),
                    silence_url: a.links.silence.clone(),
                    dashboard_url: a.links.dashboard.clone(),
                    panel_url: a.links.panel.clone(),
                    image_url: a.links.image.clone(),
                    name: name_of(&a.labels, a.title.as_deref(), &a.fingerprint),
                    severity: severity_of(p.level.map(|l| l.label.as_str()), &a.labels),
                },
            });
        }
    }
    out
}

/// A body that is not a valid payload of its format: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Invalid {
    /// The path of the offending field (`alerts[2].startsAt`), or `body`.
    pub field: String,
    pub message: String,
}

impl Invalid {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Deserializes `body` as `T`, naming the field at fault when it does not fit.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Invalid> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path == "?" {
            "body".to_string()
        } else {
            path
        };
        let message = e.into_inner().to_string();
        // serde_json appends " at line 1 column 42"; the field already says where.
        let message = match message.rfind(" at line ") {
            Some(i) => message[..i].to_string(),
            None => message,
        };
        Invalid { field, message }
    })
}

/// An RFC 3339 time in milliseconds; `None` for Alertmanager's zero time
/// (`0001-01-01T00:00:00Z`, "not ended") and for an absent or empty value.
pub(crate) fn time(field: &str, value: Option<&str>) -> Result<Option<Millis>, Invalid> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let t = chrono::DateTime::parse_from_rfc3339(v)
        .map_err(|e| Invalid::new(field, format!("`{v}` is not an RFC 3339 time ({e})")))?;
    let ms = t.timestamp_millis();
    Ok((ms > 0).then_some(ms))
}

/// A stable fingerprint of `parts` (16 hex digits of SHA-256), for formats
/// or events that carry none.
pub(crate) fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        h.update((p.len() as u64).to_be_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// The fingerprint of a label set.
pub(crate) fn label_fingerprint(labels: &Labels) -> String {
    fingerprint(labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]))
}

/// An empty string is no value.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_and_the_zero_time_is_none() {
        assert_eq!(time("t", Some("1970-01-01T00:00:01Z")).unwrap(), Some(1000));
        assert_eq!(time("t", Some("0001-01-01T00:00:00Z")).unwrap(), None);
        assert_eq!(time("t", None).unwrap(), None);
        let e = time("alerts[0].startsAt", Some("yesterday")).unwrap_err();
        assert_eq!(e.field, "alerts[0].startsAt");
    }

    #[test]
    fn fingerprints_are_stable_and_length_prefixed() {
        assert_eq!(fingerprint(["a", "b"]), fingerprint(["a", "b"]));
        assert_ne!(fingerprint(["ab", "c"]), fingerprint(["a", "bc"]));
        assert_eq!(fingerprint(["x"]).len(), 16);
    }
}
