//! The generic format (`POST /alerts/generic`) for scripts and tools with no
//! alerting format of their own: `{title, severity, source, dedup_key?,
//! labels?, status?}`. Pure.

use super::{fingerprint, from_json, Alert, Format, Invalid, Labels, Links, Status};
use serde::Deserialize;

#[derive(Deserialize)]
struct Generic {
    title: String,
    severity: String,
    source: String,
    dedup_key: Option<String>,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    status: Option<WireStatus>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum WireStatus {
    Firing,
    Resolved,
}

/// Parses one generic alert. `severity` and `source` become labels (they
/// win over `labels` of the same name), and so does `alertname` = `title`
/// unless `labels` names the alert; without a `dedup_key` the alert is
/// keyed by its source and title.
pub fn parse(body: &[u8]) -> Result<Alert, Invalid> {
    let g: Generic = from_json(body)?;
    for (field, v) in [
        ("title", &g.title),
        ("severity", &g.severity),
        ("source", &g.source),
    ] {
        if v.trim().is_empty() {
            return Err(Invalid::new(field, "must not be blank"));
        }
    }
    let fingerprint =
        super::non_empty(g.dedup_key).unwrap_or_else(|| fingerprint([g.source.as_str(), g.title.as_str()]));
    let mut labels = g.labels;
    labels.insert("severity".into(), g.severity);
    labels.insert("source".into(), g.source);
    labels
        .entry("alertname".into())
        .or_insert_with(|| g.title.clone());
    Ok(Alert {
        format: Format::Generic,
        scope: Format::Generic.as_str().into(),
        fingerprint,
        status: match g.status {
            None | Some(WireStatus::Firing) => Status::Firing,
            Some(WireStatus::Resolved) => Status::Resolved,
        },
        labels,
        annotations: Labels::new(),
        title: Some(g.title),
        starts_at: None,
        ends_at: None,
        links: Links::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_parses() {
        let body = std::fs::read("tests/fixtures/alerts/generic.json").unwrap();
        let a = parse(&body).unwrap();
        assert_eq!(a.labels["severity"], "critical");
        assert_eq!(a.labels["system"], "cap");
        assert_eq!(a.labels["alertname"], "CapBackupFailed");
        assert_eq!(a.fingerprint, "cap-backup-2026-12-01");
        assert_eq!(a.status, Status::Firing);
    }

    #[test]
    fn faults_name_the_field() {
        let e = parse(br#"{"title":"t","severity":"s"}"#).unwrap_err();
        assert!(e.message.contains("source"), "{e}");
        let e = parse(br#"{"title":" ","severity":"s","source":"x"}"#).unwrap_err();
        assert_eq!(e.field, "title");
        let e = parse(br#"{"title":"t","severity":"s","source":"x","status":"gone"}"#).unwrap_err();
        assert_eq!(e.field, "status");
        let e = parse(br#"{"title":"t","severity":"s","source":"x","labels":{"a":1}}"#).unwrap_err();
        assert_eq!(e.field, "labels.a");
    }

    #[test]
    fn without_a_key_source_and_title_are_the_key() {
        let a = parse(br#"{"title":"t","severity":"s","source":"x"}"#).unwrap();
        let b = parse(br#"{"title":"t","severity":"s","source":"x","status":"resolved"}"#).unwrap();
        assert_eq!(a.fingerprint, b.fingerprint);
        assert_eq!(b.status, Status::Resolved);
    }
}
