//! PagerDuty Events API v2 (`POST /v2/enqueue`): trigger, acknowledge and
//! resolve events, as PagerDuty's own clients and Alertmanager's
//! `pagerduty_configs` send them. Pure: the routing key is checked against
//! the configured integration keys by `inbound`, which also generates the
//! dedup key of a trigger that has none.

use super::{time, Alert, Format, Invalid, Labels, Links, Status};
use serde_json::{Map, Value};

/// PagerDuty's own limits on the fields.
const MAX_DEDUP_KEY: usize = 255;
const MAX_SUMMARY: usize = 1024;
const SEVERITIES: [&str; 4] = ["critical", "error", "warning", "info"];

/// A valid event, before its integration is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The integration key it claims (a secret: never log it).
    pub routing_key: String,
    pub action: Status,
    pub dedup_key: Option<String>,
    labels: Labels,
    annotations: Labels,
    title: Option<String>,
    starts_at: Option<crate::clock::Millis>,
    links: Links,
}

/// Every fault of an event at once, as PagerDuty lists them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct Refused(pub Vec<Invalid>);

/// Parses one event.
pub fn parse(body: &[u8]) -> Result<Event, Refused> {
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| Refused(vec![Invalid::new("body", format!("not JSON: {e}"))]))?;
    let Value::Object(o) = v else {
        return Err(Refused(vec![Invalid::new("body", "must be a JSON object")]));
    };
    let mut errors = Vec::new();
    let routing_key = required(&o, "routing_key", &mut errors).unwrap_or_default();
    let action = match o.get("event_action").and_then(Value::as_str) {
        Some("trigger") => Some(Status::Firing),
        Some("acknowledge") => Some(Status::Acknowledged),
        Some("resolve") => Some(Status::Resolved),
        _ => {
            errors.push(Invalid::new(
                "event_action",
                "must be one of trigger, acknowledge, resolve",
            ));
            None
        }
    };
    let dedup_key = optional(&o, "dedup_key", &mut errors);
    if dedup_key
        .as_ref()
        .is_some_and(|k| k.chars().count() > MAX_DEDUP_KEY)
    {
        errors.push(Invalid::new("dedup_key", "is longer than 255 characters"));
    }
    if action.is_some_and(|a| a != Status::Firing) && dedup_key.is_none() {
        errors.push(Invalid::new("dedup_key", "is required to acknowledge or resolve"));
    }
    let payload = match o.get("payload") {
        Some(Value::Object(p)) => Some(payload(p, &mut errors)),
        None | Some(Value::Null) if action != Some(Status::Firing) => None,
        _ => {
            errors.push(Invalid::new("payload", "is missing or not an object"));
            None
        }
    };
    let links = links(&o, &mut errors);
    match action {
        Some(action) if errors.is_empty() => {
            let p = payload.unwrap_or_default();
            Ok(Event {
                routing_key,
                action,
                dedup_key,
                labels: p.labels,
                annotations: p.annotations,
                title: p.title,
                starts_at: p.starts_at,
                links,
            })
        }
        _ => Err(Refused(errors)),
    }
}

impl Event {
    /// The alert, admitted through integration `integration` (lower case;
    /// the label `integration`) under `dedup_key` (the event's own, or one
    /// generated for a trigger without).
    pub fn into_alert(self, integration: &str, dedup_key: String) -> Alert {
        let mut labels = self.labels;
        labels.insert("integration".into(), integration.to_string());
        Alert {
            format: Format::PagerDuty,
            scope: format!("pagerduty/{integration}"),
            fingerprint: dedup_key,
            status: self.action,
            labels,
            annotations: self.annotations,
            title: self.title,
            starts_at: self.starts_at,
            ends_at: None,
            links: self.links,
        }
    }
}

#[derive(Default)]
struct Payload {
    labels: Labels,
    annotations: Labels,
    title: Option<String>,
    starts_at: Option<crate::clock::Millis>,
}

fn payload(p: &Map<String, Value>, errors: &mut Vec<Invalid>) -> Payload {
    let mut out = Payload::default();
    let summary = required(p, "payload.summary", errors);
    if summary.as_ref().is_some_and(|s| s.chars().count() > MAX_SUMMARY) {
        errors.push(Invalid::new("payload.summary", "is longer than 1024 characters"));
    }
    out.title = summary;
    for field in ["source", "severity"] {
        if let Some(v) = required(p, &format!("payload.{field}"), errors) {
            out.labels.insert(field.into(), v);
        }
    }
    if let Some(s) = out
        .labels
        .get("severity")
        .filter(|s| !SEVERITIES.contains(&s.as_str()))
    {
        let msg = format!("`{s}` is not one of critical, error, warning, info");
        errors.push(Invalid::new("payload.severity", msg));
    }
    for field in ["component", "group", "class"] {
        if let Some(v) = optional(p, &format!("payload.{field}"), errors) {
            out.labels.insert(field.into(), v);
        }
    }
    let ts = optional(p, "payload.timestamp", errors);
    match time("payload.timestamp", ts.as_deref()) {
        Ok(t) => out.starts_at = t,
        Err(e) => errors.push(e),
    }
    match p.get("custom_details") {
        None | Some(Value::Null) => {}
        Some(Value::Object(d)) => {
            for (k, v) in d {
                out.annotations.insert(k.clone(), text(v));
            }
        }
        Some(other) => {
            out.annotations.insert("details".into(), text(other));
        }
    }
    alertmanager_details(&mut out);
    out
}

/// Alertmanager's `pagerduty_configs` sends `severity: "error"` for every
/// group unless told otherwise, and lists the firing alerts as text in
/// `custom_details.firing` (its `__text_alert_list` template: `Labels:` then
/// ` - name = value` lines per alert). The labels every listed alert shares
/// become labels of the event, so routing and the severity mapping see the
/// rules' own `alertname` and `severity`; PagerDuty's severity is kept as
/// the annotation `pagerduty_severity`.
fn alertmanager_details(p: &mut Payload) {
    let Some(common) = p.annotations.get("firing").and_then(|t| common_labels(t)) else {
        return;
    };
    if let Some(s) = p.labels.get("severity") {
        p.annotations.insert("pagerduty_severity".into(), s.clone());
    }
    p.labels.extend(common);
}

/// The labels shared by every alert of an Alertmanager text alert list.
fn common_labels(text: &str) -> Option<Labels> {
    let mut alerts: Vec<Labels> = Vec::new();
    let mut in_labels = false;
    for line in text.lines() {
        match line.trim() {
            "Labels:" => {
                alerts.push(Labels::new());
                in_labels = true;
            }
            l => match l.strip_prefix("- ").and_then(|kv| kv.split_once(" = ")) {
                Some((k, v)) if in_labels => {
                    if let Some(current) = alerts.last_mut() {
                        current.insert(k.trim().to_string(), v.trim().to_string());
                    }
                }
                Some(_) => {}
                // `Annotations:`, `Source: …`: the labels are over.
                None => in_labels = false,
            },
        }
    }
    let mut iter = alerts.into_iter();
    let first = iter.next().filter(|l| !l.is_empty())?;
    Some(iter.fold(first, |acc, l| {
        acc.into_iter().filter(|(k, v)| l.get(k) == Some(v)).collect()
    }))
}

/// `client_url` (Alertmanager: its external URL) or the first link is the
/// generator; the first image is the image.
fn links(o: &Map<String, Value>, errors: &mut Vec<Invalid>) -> Links {
    let first = |list: &str, field: &str| {
        o.get(list)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(|x| x.get(field))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(String::from)
    };
    let client_url = optional(o, "client_url", errors);
    Links {
        generator: client_url.or_else(|| first("links", "href")),
        image: first("images", "src"),
        ..Links::default()
    }
}

/// A string field that must be present and not blank (`path` is dotted; the
/// last segment is the key in `o`).
fn required(o: &Map<String, Value>, path: &str, errors: &mut Vec<Invalid>) -> Option<String> {
    let v = optional(o, path, errors);
    if v.is_none() && !errors.iter().any(|e| e.field == path) {
        errors.push(Invalid::new(path, "is missing or blank"));
    }
    v
}

fn optional(o: &Map<String, Value>, path: &str, errors: &mut Vec<Invalid>) -> Option<String> {
    let key = path.rsplit('.').next().unwrap_or(path);
    match o.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(Invalid::new(path, "must be a string"));
            None
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("tests/fixtures/alerts/{name}")).unwrap()
    }

    #[test]
    fn a_trigger_parses() {
        let e = parse(&fixture("pagerduty_trigger.json")).unwrap();
        assert_eq!(e.action, Status::Firing);
        assert_eq!(e.dedup_key.as_deref(), Some("pdf-stuck-jobs-2026-12-01"));
        let a = e.into_alert("pdf", "pdf-stuck-jobs-2026-12-01".into());
        assert_eq!(a.labels["integration"], "pdf");
        assert_eq!(a.labels["severity"], "warning");
        assert_eq!(a.labels["component"], "processing_jobs");
        assert_eq!(a.scope, "pagerduty/pdf");
        assert_eq!(a.annotations["stuck_jobs"], "7");
        assert!(a.links.generator.is_some() && a.links.image.is_some());
        assert!(a.starts_at.is_some());
    }

    #[test]
    fn alertmanager_s_payload_takes_the_rules_labels() {
        let e = parse(&fixture("pagerduty_alertmanager.json")).unwrap();
        let a = e.into_alert("chat", "k".into());
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.labels["alertname"], "HighErrorRate");
        assert!(!a.labels.contains_key("instance"), "not common: {:?}", a.labels);
        assert_eq!(a.annotations["pagerduty_severity"], "error");
        assert!(a.title.unwrap().starts_with("[FIRING:2] HighErrorRate"));
    }

    #[test]
    fn acknowledge_and_resolve_need_only_the_key() {
        let body = br#"{"routing_key":"k","event_action":"resolve","dedup_key":"d1"}"#;
        let e = parse(body).unwrap();
        assert_eq!((e.action, e.dedup_key.as_deref()), (Status::Resolved, Some("d1")));
        let e = parse(br#"{"routing_key":"k","event_action":"acknowledge"}"#).unwrap_err();
        assert_eq!(e.0[0].field, "dedup_key");
    }

    #[test]
    fn every_fault_is_listed() {
        let body = br#"{"event_action":"trigger","payload":{"summary":"","severity":"bad","source":1}}"#;
        let e = parse(body).unwrap_err();
        let fields: Vec<&str> = e.0.iter().map(|i| i.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "routing_key",
                "payload.summary",
                "payload.source",
                "payload.severity"
            ],
            "{e}"
        );
        let e = parse(br#"{"routing_key":"k","event_action":"explode"}"#).unwrap_err();
        assert_eq!(e.0[0].field, "event_action");
        let e = parse(br#"{"routing_key":"k","event_action":"trigger"}"#).unwrap_err();
        assert_eq!(e.0[0].field, "payload");
        assert_eq!(parse(b"[1]").unwrap_err().0[0].field, "body");
    }

    #[test]
    fn common_labels_of_a_text_list() {
        let text = "Labels:\n - alertname = A\n - instance = x\nAnnotations:\n - summary = s = t\nSource: http://p\nLabels:\n - alertname = A\n - instance = y\nAnnotations:\nSource: \n";
        let l = common_labels(text).unwrap();
        assert_eq!(
            l.into_iter().collect::<Vec<_>>(),
            [("alertname".into(), "A".into())]
        );
        assert_eq!(common_labels("free text"), None);
    }
}
