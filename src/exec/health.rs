//! Health actions: every check's endpoint is called concurrently and each
//! component classified. A failing component is part of the report, never an
//! error: the report is the result.
//!
//! unreachable, timeout, non-2xx, or body `status` unhealthy/down/error →
//! unhealthy; body `status` degraded, or slower than the check's `slow`
//! (default 1s) → degraded; else healthy. A body with a `services` object
//! (seed 002's `HealthCheckResult`) adds one sub-component per service.

use super::http::{build_url, Response};
use super::{millis, ExecError, ExecOutput, Executor};
use crate::catalog::{HealthAction, HealthCheck, Target, TargetKind};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::Duration;

const DEFAULT_SLOW: Duration = Duration::from_secs(1);

/// Worst wins: the order is healthy < degraded < unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unhealthy => "unhealthy",
        }
    }

    fn icon(self) -> &'static str {
        match self {
            Health::Healthy => "✅",
            Health::Degraded => "⚠️",
            Health::Unhealthy => "❌",
        }
    }

    /// A status word from a health body; `None` when it is not a known word.
    fn from_word(s: &str) -> Option<Health> {
        match s.to_ascii_lowercase().as_str() {
            "healthy" | "ok" | "up" | "pass" | "green" => Some(Health::Healthy),
            "degraded" | "warn" | "warning" | "yellow" => Some(Health::Degraded),
            "unhealthy" | "down" | "error" | "fail" | "failed" | "critical" | "red" => {
                Some(Health::Unhealthy)
            }
            _ => None,
        }
    }
}

/// One line of the report.
struct Component {
    name: String,
    /// A service inside another component's body.
    nested: bool,
    status: Health,
    ms: Option<u128>,
    detail: Option<String>,
}

impl Component {
    fn line(&self) -> String {
        let indent = if self.nested { "    " } else { "" };
        let ms = self.ms.map(|m| format!(" ({m} ms)")).unwrap_or_default();
        let detail = self.detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default();
        let (icon, name, status) = (self.status.icon(), &self.name, self.status.as_str());
        format!("{indent}{icon} {name} {status}{ms}{detail}")
    }

    fn json(&self, parent: Option<&str>) -> Value {
        let name = match parent {
            Some(p) => format!("{p}/{}", self.name),
            None => self.name.clone(),
        };
        json!({ "component": name, "status": self.status.as_str(), "ms": self.ms, "detail": self.detail })
    }
}

impl Executor {
    /// Runs every check; `fields` is `{"status", "components": [{"component",
    /// "status", "ms", "detail"}]}` (services named `parent/service`).
    pub(super) async fn run_health(
        &self,
        a: &HealthAction,
        targets: &BTreeMap<String, Target>,
    ) -> ExecOutput {
        let checks = a.checks.iter().map(|c| self.check(c, targets));
        let results: Vec<Vec<Component>> = futures::future::join_all(checks).await;
        let all: Vec<&Component> = results.iter().flatten().collect();
        let overall = all.iter().map(|c| c.status).max().unwrap_or(Health::Healthy);
        let mut lines = vec![format!("overall: {}", overall.as_str())];
        lines.extend(all.iter().map(|c| c.line()));
        let mut fields = Vec::new();
        for group in &results {
            let parent = group.first().map(|c| c.name.as_str());
            for c in group {
                fields.push(c.json(if c.nested { parent } else { None }));
            }
        }
        let top = results.len();
        ExecOutput {
            summary: format!(
                "health: {} ({top} check{})",
                overall.as_str(),
                if top == 1 { "" } else { "s" }
            ),
            text: lines.join("\n"),
            fields: json!({ "status": overall.as_str(), "components": fields }),
            effects: Vec::new(),
        }
    }

    /// One check: its component first, then any services from its body.
    async fn check(&self, c: &HealthCheck, targets: &BTreeMap<String, Target>) -> Vec<Component> {
        let failed = |detail: String| {
            vec![Component {
                name: c.component.clone(),
                nested: false,
                status: Health::Unhealthy,
                ms: None,
                detail: Some(detail),
            }]
        };
        let t = match self.target(targets, &c.target, TargetKind::Http) {
            Ok(t) => t,
            Err(e) => return failed(e.to_string()),
        };
        let url = match build_url(t, &c.path, &BTreeMap::new()) {
            Ok(u) => u,
            Err(e) => return failed(e.to_string()),
        };
        match self.send(t, self.http.get(url)).await {
            Ok(resp) => classify(c, &resp, |s| self.excerpt(s)),
            Err(e) => failed(reason(&e)),
        }
    }
}

/// The short reason of a failed call: `connection refused`, `timed out after 10s`.
fn reason(e: &ExecError) -> String {
    match e {
        ExecError::Unreachable { reason, .. } => reason.clone(),
        ExecError::Timeout { after, .. } => {
            format!("timed out after {}", crate::duration::format(*after))
        }
        other => other.to_string(),
    }
}

fn classify(c: &HealthCheck, resp: &Response, excerpt: impl Fn(&str) -> String) -> Vec<Component> {
    let body: Option<Value> = serde_json::from_str(&resp.body).ok();
    let word = body
        .as_ref()
        .and_then(|b| b.get("status"))
        .and_then(Value::as_str);
    let slow = c.slow.unwrap_or(DEFAULT_SLOW);
    let (status, detail) = if !(200..300).contains(&resp.status) {
        let text = excerpt(&resp.body);
        let detail = if text.is_empty() {
            format!("HTTP {}", resp.status)
        } else {
            format!("HTTP {}: {}", resp.status, super::truncate(&text, 80))
        };
        (Health::Unhealthy, Some(detail))
    } else if let Some(h @ (Health::Unhealthy | Health::Degraded)) = word.and_then(Health::from_word) {
        (h, None)
    } else if resp.elapsed > slow {
        let limit = crate::duration::format(slow);
        (Health::Degraded, Some(format!("slow, over {limit}")))
    } else {
        (Health::Healthy, None)
    };
    let mut out = vec![Component {
        name: c.component.clone(),
        nested: false,
        status,
        ms: Some(millis(resp.elapsed)),
        detail,
    }];
    if let Some(Value::Object(services)) = body.as_ref().and_then(|b| b.get("services")) {
        out.extend(services.iter().map(|(name, v)| service(name, v)));
    }
    out
}

/// A `ServiceStatus`: a status word, or an object with a `status` field (and
/// optionally `responseTime` and `message`/`error`).
fn service(name: &str, v: &Value) -> Component {
    let word = v.as_str().or_else(|| v.get("status").and_then(Value::as_str));
    let (status, mut detail) = match word.map(|w| (w, Health::from_word(w))) {
        Some((_, Some(h))) => (h, None),
        Some((w, None)) => (Health::Degraded, Some(format!("status `{w}`"))),
        None => (Health::Degraded, Some("no status".to_string())),
    };
    let note = ["message", "error"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str));
    if let (Some(n), Health::Degraded | Health::Unhealthy) = (note, status) {
        detail = Some(super::one_line(n, 80));
    }
    let ms = v
        .get("responseTime")
        .and_then(Value::as_f64)
        .map(|m| m.max(0.0).round() as u128);
    Component {
        name: name.to_string(),
        nested: true,
        status,
        ms,
        detail,
    }
}
