//! HTTP actions: one request to an `http` target.
//!
//! Path placeholders are percent-encoded as one path segment each (`/`, `?`,
//! `#`, `%` and everything outside the RFC 3986 unreserved set), and a rendered
//! segment may not be empty, `.` or `..`. Query values are form-encoded by
//! reqwest. JSON bodies are built as values, so a chat value is always a JSON
//! string and never JSON syntax.

use super::{address, millis, render_escaped, render_optional, root_cause, ExecError, ExecOutput, Executor};
use crate::catalog::{HttpAction, Target, TargetKind};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Everything except the RFC 3986 unreserved characters `A-Z a-z 0-9 - . _ ~`.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Bodies larger than this are cut (the rest is not read).
const MAX_BODY_BYTES: usize = 1 << 20;

/// A response as read by [`Executor::send`].
pub(super) struct Response {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

impl Executor {
    /// Runs an HTTP action; `fields` is the JSON body (or `{}`).
    pub(super) async fn run_http(
        &self,
        a: &HttpAction,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let t = self.target(targets, &a.target, TargetKind::Http)?;
        let mut planned = request(t, a, args)?;
        for (field, var) in &a.body_secrets {
            let v = env_secret(&self.env, var).ok_or_else(|| {
                invalid(
                    t,
                    format!("body field {field} needs environment variable {var} (or {var}_FILE), which is not set"),
                )
            })?;
            self.redactor.add(&v);
            set_field(&mut planned.body, field, Value::String(v));
        }
        let method = planned.method.clone();
        let mut req = self.http.request(planned.method, planned.url);
        if let Some(b) = &planned.body {
            req = req.json(b);
        }
        let built = req
            .build()
            .map_err(|e| invalid(t, format!("bad request: {}", root_cause(&e))))?;
        let shown = path_and_query(built.url());
        let resp = self
            .send(t, reqwest::RequestBuilder::from_parts(self.http.clone(), built))
            .await?;
        check_status(self, t, &a.expect, &resp)?;
        let parsed: Option<Value> = serde_json::from_str(&resp.body).ok();
        let text = match &parsed {
            Some(v) => serde_json::to_string_pretty(v).unwrap_or_else(|_| resp.body.clone()),
            None => resp.body.clone(),
        };
        Ok(ExecOutput {
            summary: format!(
                "{method} {shown} → {} in {} ms",
                resp.status,
                millis(resp.elapsed)
            ),
            text,
            fields: parsed.unwrap_or_else(|| Value::Object(Default::default())),
            effects: Vec::new(),
        })
    }

    /// Sends `req` to `t` with the target's headers and timeout and reads the
    /// body (at most 1 MiB). Connection failures and timeouts name the target.
    pub(super) async fn send(&self, t: &Target, req: reqwest::RequestBuilder) -> Result<Response, ExecError> {
        let started = Instant::now();
        let req = req.headers(self.headers(t)?).timeout(t.timeout());
        let mut resp = req.send().await.map_err(|e| request_error(t, &e))?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| request_error(t, &e))? {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_BODY_BYTES {
                body.truncate(MAX_BODY_BYTES);
                break;
            }
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            elapsed: started.elapsed(),
        })
    }

    /// The target's extra headers. A value `env:NAME`, or `<literal> env:NAME`
    /// such as `Bearer env:DEEPSEEK_API_KEY`, takes NAME from the environment
    /// (or the file named by `NAME_FILE`); that value becomes a secret.
    fn headers(&self, t: &Target) -> Result<HeaderMap, ExecError> {
        let mut map = HeaderMap::new();
        for (name, raw) in &t.headers {
            let (value, secret) = match env_reference(raw) {
                Some((prefix, var)) => {
                    let v = env_secret(&self.env, var).ok_or_else(|| {
                        invalid(
                            t,
                            format!("header {name} needs environment variable {var}, which is not set"),
                        )
                    })?;
                    self.redactor.add(&v);
                    (format!("{prefix}{v}"), true)
                }
                None => (raw.clone(), false),
            };
            let hname = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(t, format!("`{name}` is not a valid header name")))?;
            let mut hvalue = HeaderValue::from_str(&value)
                .map_err(|_| invalid(t, format!("header {name} has an invalid value")))?;
            hvalue.set_sensitive(secret);
            map.insert(hname, hvalue);
        }
        Ok(map)
    }
}

/// `body` with the top-level `field` set to `value` (an absent or non-object
/// body becomes an object).
fn set_field(body: &mut Option<Value>, field: &str, value: Value) {
    if !matches!(body, Some(Value::Object(_))) {
        *body = Some(Value::Object(Default::default()));
    }
    if let Some(Value::Object(o)) = body {
        o.insert(field.to_string(), value);
    }
}

/// `body` as `exec::render` shows it: each secret field as `[secret VAR]`.
pub(super) fn shown_body(a: &HttpAction, mut body: Option<Value>) -> Option<Value> {
    for (field, var) in &a.body_secrets {
        set_field(&mut body, field, Value::String(format!("[secret {var}]")));
    }
    body
}

/// `env:NAME` → `("", NAME)`; `Bearer env:NAME` → `("Bearer ", NAME)`.
pub(super) fn env_reference(raw: &str) -> Option<(&str, &str)> {
    let at = if raw.starts_with("env:") {
        0
    } else {
        raw.rfind(" env:")? + 1
    };
    let var = &raw[at + 4..];
    let plain = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    plain.then(|| (&raw[..at], var))
}

/// `var` from `env` (the bot's environment), or the trimmed contents of the
/// file named by `<var>_FILE`; `None` when neither gives a non-empty value.
pub(super) fn env_secret(env: &HashMap<String, String>, var: &str) -> Option<String> {
    let direct = env.get(var).filter(|v| !v.is_empty()).cloned();
    direct.or_else(|| {
        let path = env.get(&format!("{var}_FILE"))?;
        let v = std::fs::read_to_string(path).ok()?.trim().to_string();
        (!v.is_empty()).then_some(v)
    })
}

/// The request an HTTP action makes, before target headers and timeout: what
/// [`Executor::run_http`] sends and what `exec::render` shows.
pub(super) struct Planned {
    pub method: reqwest::Method,
    /// Target base URL, rendered path and form-encoded query.
    pub url: reqwest::Url,
    pub body: Option<Value>,
}

/// Renders method, path, query and body of `a` for target `t`. No I/O.
pub(super) fn request(
    t: &Target,
    a: &HttpAction,
    args: &BTreeMap<String, String>,
) -> Result<Planned, ExecError> {
    let method = reqwest::Method::from_bytes(a.method.to_ascii_uppercase().as_bytes())
        .map_err(|_| invalid(t, format!("`{}` is not an HTTP method", a.method)))?;
    let url = build_url(t, &a.path, args)?;
    let mut url = reqwest::Url::parse(&url).map_err(|e| invalid(t, format!("bad request: {e}")))?;
    let query = render_query(a, args)?;
    if !query.is_empty() {
        // The same form encoding as reqwest's `RequestBuilder::query`.
        url.query_pairs_mut().extend_pairs(&query);
    }
    let body = match &a.body {
        Some(b) => render_json(b, args, &a.lists)?,
        None => None,
    };
    Ok(Planned { method, url, body })
}

fn invalid(t: &Target, message: String) -> ExecError {
    ExecError::Invalid {
        target: Some(t.name.clone()),
        message: format!("target {}: {message}", t.name),
    }
}

/// Maps a reqwest error to a user-facing error naming the target.
pub(super) fn request_error(t: &Target, e: &reqwest::Error) -> ExecError {
    if e.is_timeout() {
        ExecError::Timeout {
            target: Some(t.name.clone()),
            what: format!("calling target {}", t.name),
            after: t.timeout(),
        }
    } else if e.is_connect() {
        ExecError::Unreachable {
            target: t.name.clone(),
            reason: root_cause(e),
            address: address(&t.url),
        }
    } else {
        ExecError::Backend {
            target: t.name.clone(),
            message: root_cause(e),
        }
    }
}

fn check_status(ex: &Executor, t: &Target, expect: &[u16], resp: &Response) -> Result<(), ExecError> {
    let ok = if expect.is_empty() {
        (200..300).contains(&resp.status)
    } else {
        expect.contains(&resp.status)
    };
    if ok {
        return Ok(());
    }
    let expected = if expect.is_empty() {
        "2xx".to_string()
    } else {
        expect.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
    };
    Err(ExecError::Status {
        target: t.name.clone(),
        status: resp.status,
        expected,
        body: ex.excerpt(&resp.body),
    })
}

/// `target.url` joined with the rendered `path` template (which may carry a
/// literal `?query` part whose values are encoded too).
pub(super) fn build_url(
    t: &Target,
    path_tpl: &str,
    args: &BTreeMap<String, String>,
) -> Result<String, ExecError> {
    let (path_tpl, query_tpl) = match path_tpl.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_tpl, None),
    };
    let encode = |v: &str| utf8_percent_encode(v, COMPONENT).to_string();
    let path = render_escaped(path_tpl, args, encode)?;
    check_segments(t, path_tpl, &path)?;
    let mut url = format!("{}/{}", t.url.trim_end_matches('/'), path.trim_start_matches('/'));
    if let Some(q) = query_tpl {
        url.push('?');
        url.push_str(&render_escaped(q, args, encode)?);
    }
    Ok(url)
}

/// Refuses rendered segments that are empty, `.` or `..` where the template
/// had a placeholder: they would change which path is called.
fn check_segments(t: &Target, tpl: &str, rendered: &str) -> Result<(), ExecError> {
    for (tseg, rseg) in tpl.split('/').zip(rendered.split('/')) {
        if crate::template::placeholders(tseg).is_empty() {
            continue;
        }
        let decoded = percent_encoding::percent_decode_str(rseg).decode_utf8_lossy();
        if matches!(decoded.as_ref(), "" | "." | "..") {
            return Err(ExecError::Refused {
                target: Some(t.name.clone()),
                what: format!("path segment `{decoded}`"),
                reason: format!("a value for target {} must be a non-empty name", t.name),
            });
        }
    }
    Ok(())
}

/// Query pairs; a parameter that is exactly the placeholder of an absent
/// argument is left out.
fn render_query(a: &HttpAction, args: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, ExecError> {
    let mut pairs = Vec::new();
    for (k, tpl) in &a.query {
        if let Some(v) = render_optional(tpl, args)? {
            pairs.push((k.clone(), v));
        }
    }
    Ok(pairs)
}

/// Substitutes placeholders inside every JSON string. A string that is exactly
/// one placeholder of an absent argument is dropped (from its object or array);
/// one that is exactly the placeholder of a list argument (of `lists`) is the
/// array of its values.
pub(super) fn render_json(
    v: &Value,
    args: &BTreeMap<String, String>,
    lists: &BTreeSet<String>,
) -> Result<Option<Value>, ExecError> {
    Ok(Some(match v {
        Value::String(s) => match (list_placeholder(s, lists), render_optional(s, args)?) {
            (_, None) => return Ok(None),
            (true, Some(r)) => Value::Array(r.split(',').map(|x| Value::String(x.into())).collect()),
            (false, Some(r)) => Value::String(r),
        },
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for x in items {
                out.extend(render_json(x, args, lists)?);
            }
            Value::Array(out)
        }
        Value::Object(o) => {
            let mut out = serde_json::Map::new();
            for (k, x) in o {
                if let Some(r) = render_json(x, args, lists)? {
                    out.insert(k.clone(), r);
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }))
}

/// `s` is exactly `{name}` of a list argument.
fn list_placeholder(s: &str, lists: &BTreeSet<String>) -> bool {
    s.strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .is_some_and(|name| lists.contains(name))
}

pub(super) fn path_and_query(u: &reqwest::Url) -> String {
    match u.query() {
        Some(q) => format!("{}?{q}", u.path()),
        None => u.path().to_string(),
    }
}
