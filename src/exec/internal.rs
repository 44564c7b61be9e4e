//! `internal` actions: answered by opsbot itself. Nothing is sent anywhere;
//! a link is built from the target's base URL with user name and password
//! removed, its path rendered as an http action's path is.

use super::{address, http, lookup, ExecError, ExecOutput};
use crate::catalog::{InternalAction, Target, TargetKind};
use serde_json::json;
use std::collections::BTreeMap;

/// The URL a link action answers (no credentials). No I/O.
pub(super) fn link(
    targets: &BTreeMap<String, Target>,
    target: &str,
    path: &str,
    args: &BTreeMap<String, String>,
) -> Result<reqwest::Url, ExecError> {
    let t = lookup(targets, target, TargetKind::Http)?;
    let url = http::build_url(t, path, args)?;
    let invalid = |e: String| ExecError::Invalid {
        target: Some(t.name.clone()),
        message: format!("target {}: no link: {e}", t.name),
    };
    let parsed = reqwest::Url::parse(&address(&url)).map_err(|e| invalid(e.to_string()))?;
    match parsed.scheme() {
        "http" | "https" => Ok(parsed),
        other => Err(invalid(format!("`{other}` is not an http URL"))),
    }
}

/// Runs an internal action: `fields.url` is the link.
pub(super) fn run(
    a: &InternalAction,
    targets: &BTreeMap<String, Target>,
    args: &BTreeMap<String, String>,
) -> Result<ExecOutput, ExecError> {
    match a {
        InternalAction::Link { target, path } => {
            let url = link(targets, target, path, args)?;
            Ok(ExecOutput {
                summary: format!("link to {target}: {url}"),
                text: url.to_string(),
                fields: json!({ "url": url.to_string() }),
            })
        }
    }
}
