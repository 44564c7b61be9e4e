//! The alert endpoints: authenticate, parse, route, store the whole batch in
//! one transaction, and only then answer 2xx. Malformed bodies get 400 with
//! the field at fault and store nothing; a failed store gets 503 (never a
//! 4xx or 429: Alertmanager retries only on 5xx, so anything else loses the
//! notification). Bodies over `http.alert_body_bytes` are refused 413 by the
//! edge before they reach a handler.

use super::route::RouteTree;
use super::writer::AlertWriter;
use super::{alertmanager, generic, grafana, pagerduty, placed, Alert, Invalid};
use crate::clock::SharedClock;
use crate::config::AlertAuth;
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// Grafana's default signature header, and the timestamp header opsbot
/// reads when Grafana is set to send one (it then signs `timestamp:body`).
pub const GRAFANA_SIGNATURE: &str = "x-grafana-alerting-signature";
pub const GRAFANA_TIMESTAMP: &str = "x-grafana-alerting-timestamp";

/// What the endpoints need from the config: credentials and routes.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub auth: AlertAuth,
    pub routes: Arc<RouteTree>,
}

/// The handlers' state: shared, not cloned per request (the credentials and
/// the writer's handle would be, at every request of a flood).
#[derive(Clone)]
struct Inbound(Arc<Shared>);

struct Shared {
    settings: Settings,
    writer: AlertWriter,
    clock: SharedClock,
}

impl std::ops::Deref for Inbound {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// `/alerts/alertmanager`, `/alerts/grafana`, `/alerts/generic` and
/// `/alerts/v2/enqueue` (PagerDuty Events API v2).
pub fn routes(settings: Settings, store: Store, clock: SharedClock, stored: crate::engine::Signal) -> Router {
    Router::new()
        .route("/alerts/alertmanager", post(alertmanager))
        .route("/alerts/grafana", post(grafana))
        .route("/alerts/generic", post(generic))
        .route("/alerts/v2/enqueue", post(pagerduty))
        .with_state(Inbound(Arc::new(Shared {
            settings,
            writer: AlertWriter::spawn(store, stored),
            clock,
        })))
}

async fn alertmanager(State(s): State<Inbound>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.bearer(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.ingest("alertmanager", alertmanager::parse(&body)).await
}

async fn grafana(State(s): State<Inbound>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.bearer(&headers) || !s.grafana_signed(&headers, &body) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.ingest("grafana", grafana::parse(&body)).await
}

async fn generic(State(s): State<Inbound>, headers: HeaderMap, body: Bytes) -> Response {
    if !s.bearer(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    s.ingest("generic", generic::parse(&body).map(|a| vec![a])).await
}

/// PagerDuty's answers: 202 with the dedup key, or 400 listing the faults.
async fn pagerduty(State(s): State<Inbound>, body: Bytes) -> Response {
    let event = match pagerduty::parse(&body) {
        Ok(e) => e,
        Err(refused) => return pd_invalid(refused.0.iter().map(ToString::to_string).collect()),
    };
    let Some(integration) = s.integration(&event.routing_key) else {
        return pd_invalid(vec!["invalid routing key".into()]);
    };
    let dedup_key = event.dedup_key.clone().unwrap_or_else(new_dedup_key);
    let alert = event.into_alert(&integration, dedup_key.clone());
    match s.store(&[alert]).await {
        Ok(_) => (
            StatusCode::ACCEPTED,
            Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})),
        )
            .into_response(),
        Err(r) => r,
    }
}

fn pd_invalid(errors: Vec<String>) -> Response {
    let body = json!({"status": "invalid event", "message": "Event object is invalid", "errors": errors});
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}

/// A key for a trigger that came without one (32 hex digits, like PagerDuty's).
fn new_dedup_key() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Shared {
    async fn ingest(&self, format: &str, parsed: Result<Vec<Alert>, Invalid>) -> Response {
        let alerts = match parsed {
            Ok(a) => a,
            Err(e) => {
                tracing::debug!(format, error = %e, "malformed alert webhook refused");
                let body = json!({"status": "invalid", "field": e.field, "message": e.to_string()});
                return (StatusCode::BAD_REQUEST, Json(body)).into_response();
            }
        };
        match self.store(&alerts).await {
            Ok(groups) => {
                let body = json!({"status": "success", "alerts": alerts.len(), "groups": groups});
                (StatusCode::OK, Json(body)).into_response()
            }
            Err(r) => r,
        }
    }

    /// Routes and stores `alerts` (in one transaction, perhaps with other
    /// requests' alerts); answers how many groups they are in. A failure is
    /// the 503 to answer (logged with a reference).
    async fn store(&self, alerts: &[Alert]) -> Result<usize, Response> {
        let now = self.clock.now_ms();
        let batch = placed(alerts, &self.settings.routes, now);
        let groups: std::collections::BTreeSet<(&str, &str)> = batch
            .iter()
            .map(|a| (a.route.as_str(), a.group_key.as_str()))
            .collect();
        let groups = groups.len();
        self.writer.store(batch, now).await.map(|()| groups).map_err(|e| {
            let reference = format!("{:08x}", rand::random::<u32>());
            tracing::error!(error = %e, reference, alerts = alerts.len(), "could not store alerts");
            let body = json!({"status": "unavailable", "message": format!("alerts not stored (ref {reference}); retry")});
            (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "5")], Json(body)).into_response()
        })
    }

    /// `Authorization: Bearer <OPSBOT_ALERT_TOKEN>` (none configured: never).
    fn bearer(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.settings.auth.token else {
            return false;
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        given.is_some_and(|g| same_secret(g, token))
    }

    /// Grafana's HMAC-SHA256 signature (hex) of the body, or of
    /// `timestamp:body` when a timestamp header came (then within five
    /// minutes of now). Required only when `OPSBOT_GRAFANA_SECRET` is set.
    fn grafana_signed(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let Some(secret) = &self.settings.auth.grafana_secret else {
            return true;
        };
        let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let Some(sig) = h(GRAFANA_SIGNATURE).and_then(|s| hex::decode(s.trim()).ok()) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
            return false;
        };
        if let Some(ts) = h(GRAFANA_TIMESTAMP) {
            let now = self.clock.now_ms() / 1000;
            let window = crate::chat::signature::WINDOW_SECS.unsigned_abs();
            if !ts.trim().parse::<i64>().is_ok_and(|t| now.abs_diff(t) <= window) {
                return false;
            }
            mac.update(ts.as_bytes());
            mac.update(b":");
        }
        mac.update(body);
        mac.verify_slice(&sig).is_ok()
    }

    /// The integration whose key `routing_key` is (every key is compared,
    /// in constant time).
    fn integration(&self, routing_key: &str) -> Option<String> {
        let mut found = None;
        for (name, key) in &self.settings.auth.routing_keys {
            if same_secret(routing_key, key) {
                found = Some(name.clone());
            }
        }
        found
    }
}

/// Compares digests, so neither the content nor the length of the secret
/// shows in the time taken.
fn same_secret(given: &str, secret: &SecretString) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(secret.expose_secret().as_bytes());
    a.ct_eq(&b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content() {
        let s: SecretString = "abc".to_string().into();
        assert!(same_secret("abc", &s));
        assert!(!same_secret("abd", &s));
        assert!(!same_secret("", &s));
    }

    #[test]
    fn generated_keys_are_32_hex_digits() {
        let k = new_dedup_key();
        assert_eq!(k.len(), 32);
        assert!(k.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(k, new_dedup_key());
    }
}
