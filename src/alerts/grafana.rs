//! Grafana alerting's webhook contact point (payload `version: "1"`): the
//! Alertmanager alert objects plus Grafana's links and evaluated values.
//! Pure. The optional HMAC signature is checked in `inbound` (it needs the
//! secret and the clock).

use super::alertmanager::notification;
use super::{Alert, Format, Invalid};

/// Parses a Grafana webhook body into its alerts. The evaluated value
/// (`valueString`, e.g. `[ var='A' labels={} value=0.07 ]`) becomes the
/// annotation `value` unless the rule set one itself.
pub fn parse(body: &[u8]) -> Result<Vec<Alert>, Invalid> {
    // `state` (alerting / ok), `title`, `message` summarize the group; each
    // alert says its own status.
    let (common, alerts) = notification(body, "1", "Grafana")?;
    alerts
        .into_iter()
        .enumerate()
        .map(|(i, mut a)| {
            let value = a.value_string.take().filter(|v| !v.is_empty());
            let mut alert = a.into_alert(Format::Grafana, i, &common)?;
            if let Some(v) = value {
                alert.annotations.entry("value".into()).or_insert(v);
            }
            Ok(alert)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::Status;

    #[test]
    fn the_fixture_parses_with_grafana_links() {
        let body = std::fs::read("tests/fixtures/alerts/grafana.json").unwrap();
        let alerts = parse(&body).unwrap();
        assert_eq!(alerts.len(), 2);
        let a = &alerts[0];
        assert_eq!(a.format, Format::Grafana);
        assert_eq!(a.status, Status::Firing);
        assert_eq!(a.labels["alertname"], "QueueWaitingHigh");
        assert!(a
            .links
            .silence
            .as_deref()
            .unwrap()
            .contains("/alerting/silence/new"));
        assert!(a.links.dashboard.is_some() && a.links.panel.is_some() && a.links.image.is_some());
        assert!(
            a.annotations["value"].contains("value=642"),
            "{:?}",
            a.annotations
        );
        assert_eq!(alerts[1].status, Status::Resolved);
    }

    #[test]
    fn other_versions_are_refused() {
        let e = parse(br#"{"version":"4","alerts":[]}"#).unwrap_err();
        assert_eq!(e.field, "version");
        let e = parse(br#"{"version":"1"}"#).unwrap_err();
        assert!(e.message.contains("alerts"), "{e}");
    }
}
