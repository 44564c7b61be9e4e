//! Alertmanager's webhook (`webhook_configs`, payload version 4). Pure.
//! Grafana's webhook extends the same alert objects (see `grafana`).

use super::{from_json, label_fingerprint, non_empty, time, Alert, Format, Invalid, Labels, Links, Status};
use serde::Deserialize;

/// The notification: one Alertmanager group, up to `max_alerts` alerts.
/// Fields opsbot does not use (`receiver`, `groupLabels`, …; Grafana's
/// `state`, `title`, `message`, `orgId`) are ignored, as are fields newer
/// releases add.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Webhook {
    version: String,
    #[serde(default)]
    common_annotations: Labels,
    alerts: Vec<WebhookAlert>,
}

/// One alert of an Alertmanager or Grafana notification.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookAlert {
    status: WireStatus,
    labels: Labels,
    #[serde(default)]
    annotations: Labels,
    starts_at: Option<String>,
    ends_at: Option<String>,
    #[serde(rename = "generatorURL")]
    generator_url: Option<String>,
    fingerprint: Option<String>,
    // Grafana's additions.
    #[serde(rename = "silenceURL")]
    pub(crate) silence_url: Option<String>,
    #[serde(rename = "dashboardURL")]
    pub(crate) dashboard_url: Option<String>,
    #[serde(rename = "panelURL")]
    pub(crate) panel_url: Option<String>,
    #[serde(rename = "imageURL")]
    pub(crate) image_url: Option<String>,
    pub(crate) value_string: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum WireStatus {
    Firing,
    Resolved,
}

/// Parses an Alertmanager webhook body into its alerts.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, Invalid> {
    let (common, alerts) = notification(body, "4", "Alertmanager")?;
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, a)| a.into_alert(Format::Alertmanager, i, &common))
        .collect()
}

/// The common annotations and the alerts of a notification whose `version`
/// must be `want` (as `sender` sends it).
pub(crate) fn notification(
    body: &[u8],
    want: &str,
    sender: &str,
) -> Result<(Labels, Vec<WebhookAlert>), Invalid> {
    let w: Webhook = from_json(body)?;
    if w.version != want {
        return Err(Invalid::new(
            "version",
            format!("`{}` is not supported ({sender} sends \"{want}\")", w.version),
        ));
    }
    Ok((w.common_annotations, w.alerts))
}

impl WebhookAlert {
    /// The normalized alert (the `i`-th of its notification). An annotation
    /// the notification has in common fills in one the alert lacks.
    pub(crate) fn into_alert(self, format: Format, i: usize, common: &Labels) -> Result<Alert, Invalid> {
        let field = |name: &str| format!("alerts[{i}].{name}");
        let starts_at = time(&field("startsAt"), self.starts_at.as_deref())?;
        let ends_at = time(&field("endsAt"), self.ends_at.as_deref())?;
        if self.labels.is_empty() {
            return Err(Invalid::new(field("labels"), "an alert needs at least one label"));
        }
        let mut annotations = common.clone();
        annotations.extend(self.annotations);
        let fingerprint = non_empty(self.fingerprint).unwrap_or_else(|| label_fingerprint(&self.labels));
        let title = annotations
            .get("summary")
            .or_else(|| annotations.get("title"))
            .or_else(|| self.labels.get("alertname"))
            .cloned();
        Ok(Alert {
            format,
            scope: format.as_str().to_string(),
            fingerprint,
            status: match self.status {
                WireStatus::Firing => Status::Firing,
                WireStatus::Resolved => Status::Resolved,
            },
            labels: self.labels,
            annotations,
            title,
            starts_at,
            ends_at,
            links: Links {
                generator: non_empty(self.generator_url),
                silence: non_empty(self.silence_url),
                dashboard: non_empty(self.dashboard_url),
                panel: non_empty(self.panel_url),
                image: non_empty(self.image_url),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<u8> {
        std::fs::read("tests/fixtures/alerts/alertmanager.json").unwrap()
    }

    #[test]
    fn the_fixture_parses() {
        let alerts = parse(&fixture()).unwrap();
        assert_eq!(alerts.len(), 3);
        let a = &alerts[0];
        assert_eq!(a.labels["alertname"], "HighErrorRate");
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.fingerprint, "6f2a1c9d0b3e4f57");
        assert_eq!(a.ends_at, None);
        assert!(a.starts_at.is_some());
        assert!(a.links.generator.as_deref().unwrap().contains("/graph?"));
        assert_eq!(
            a.title.as_deref(),
            Some("5xx rate above 0.05 req/s on partselect-chat")
        );
        assert_eq!(alerts[2].status, Status::Resolved);
        assert!(alerts[2].ends_at.is_some());
    }

    #[test]
    fn unknown_fields_are_ignored_and_missing_ones_named() {
        let mut v: serde_json::Value = serde_json::from_slice(&fixture()).unwrap();
        v["notification_reason"] = "new_alert".into();
        v["alerts"][0]["futureField"] = serde_json::json!({"x": 1});
        assert!(parse(v.to_string().as_bytes()).is_ok());
        v["alerts"][1]["status"] = "exploded".into();
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert_eq!(e.field, "alerts[1].status", "{e}");
        v["alerts"][1]["status"] = "firing".into();
        v["alerts"][1].as_object_mut().unwrap().remove("labels");
        let e = parse(v.to_string().as_bytes()).unwrap_err();
        assert!(e.to_string().contains("labels"), "{e}");
        v["alerts"][1]["labels"] = serde_json::json!({"a": "b"});
        v["alerts"][1]["startsAt"] = "soon".into();
        assert_eq!(
            parse(v.to_string().as_bytes()).unwrap_err().field,
            "alerts[1].startsAt"
        );
        v["version"] = "3".into();
        assert_eq!(parse(v.to_string().as_bytes()).unwrap_err().field, "version");
    }

    #[test]
    fn not_json_is_the_body_s_fault() {
        assert_eq!(parse(b"{nope").unwrap_err().field, "body");
        assert_eq!(parse(b"[]").unwrap_err().field, "body");
    }

    #[test]
    fn a_missing_fingerprint_is_computed_from_the_labels() {
        let body = br#"{"version":"4","alerts":[{"status":"firing","labels":{"alertname":"X","a":"1"}}]}"#;
        let a = &parse(body).unwrap()[0];
        assert_eq!(a.fingerprint, label_fingerprint(&a.labels));
        assert_eq!(a.title.as_deref(), Some("X"));
    }
}
