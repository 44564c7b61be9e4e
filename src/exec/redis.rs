//! Redis actions: one command, a capped SCAN listing, or SCAN + UNLINK deletion.
//!
//! Every argv element is sent as its own binary-safe argument, so a value with
//! spaces or CRLF can never become a second command. `KEYS`, `MONITOR` and the
//! subscribe/replication commands are refused (they block or stream values).
//! Patterns must start with one of the target's `key_prefixes` (deletion
//! requires the list) and a bare `*` is always refused. Argument values inside
//! a longer pattern template are glob-escaped, so they match literally.
//!
//! One deadline covers the whole action (connecting, every SCAN page, every
//! UNLINK batch): the action's `timeout`, else the target's. A deletion cut by
//! it says how many keys it had deleted. A reply is converted up to
//! [`READ_ITEMS`] elements and [`READ_BYTES`] bytes of strings, and the output
//! says where it was cut (`fields.complete` is false). The driver itself
//! parses a reply whole before we see it; what we keep and copy is bounded.

use super::{address, render_argv, root_cause, ExecError, ExecOutput, Executor, READ_BYTES, READ_ITEMS};
use crate::catalog::{RedisAction, Target, TargetKind};
use redis::aio::ConnectionManager;
use redis::Value;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use tokio::time::Instant;

/// Commands never run: they stream, block or scan the whole keyspace at once.
const REFUSED: &[&str] = &[
    "KEYS",
    "MONITOR",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "SYNC",
    "PSYNC",
];

/// Keys listed by `scan` when the action sets no `limit`.
const DEFAULT_SCAN_LIMIT: usize = 200;
/// `COUNT` hint of each SCAN round trip.
const SCAN_COUNT: usize = 1000;
/// Keys per UNLINK.
const UNLINK_BATCH: usize = 500;
/// Most matching keys counted after a previewed delete (the untouched ones).
const UNTOUCHED_COUNT_LIMIT: usize = 100_000;

impl Executor {
    /// Runs a Redis action. `fields`: `{"result": …, "complete": bool}` for a command,
    /// `{"keys": […], "count": n, "complete": bool}` for scan,
    /// `{"deleted": n}` for delete_matching.
    pub(super) async fn run_redis(
        &self,
        a: &RedisAction,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        let t = self.target(targets, &a.target, TargetKind::Redis)?;
        let planned = plan(t, a, args)?;
        let (call, mut conn) = self.begin_call(t, a).await?;
        match &planned {
            Planned::Command { argv } => command(&call, &mut conn, argv).await,
            Planned::Scan { pattern, limit } => scan(&call, &mut conn, pattern, *limit).await,
            Planned::DeleteMatching { pattern } => delete_matching(&call, &mut conn, pattern).await,
        }
    }

    /// A `delete_matching` bound to a preview: UNLINKs, in batches of 500,
    /// only the previewed `keys` that still match the pattern (a key gone
    /// since is counted, not an error), then counts the matching keys left
    /// (created since the preview, or beyond its limit): those are untouched.
    /// `fields`: `{"deleted", "batches", "gone", "skipped", "untouched", "pattern"}`.
    pub(super) async fn run_redis_previewed(
        &self,
        a: &RedisAction,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        keys: &[String],
        complete: bool,
    ) -> Result<ExecOutput, ExecError> {
        let t = self.target(targets, &a.target, TargetKind::Redis)?;
        let Planned::DeleteMatching { pattern } = plan(t, a, args)? else {
            return Err(ExecError::Invalid {
                target: Some(t.name.clone()),
                message: "only delete_matching deletes previewed keys".into(),
            });
        };
        let (call, mut conn) = self.begin_call(t, a).await?;
        let (matching, skipped): (Vec<&String>, Vec<&String>) = keys
            .iter()
            .partition(|k| glob_match(pattern.as_bytes(), k.as_bytes()));
        let mut deleted: u64 = 0;
        let mut batches = 0;
        for chunk in matching.chunks(UNLINK_BATCH) {
            let mut unlink = redis::cmd("UNLINK");
            for key in chunk {
                unlink.arg(key.as_bytes());
            }
            deleted += call
                .send::<u64>(&mut conn, &unlink)
                .await
                .map_err(|e| call.with_progress(e, format!("{} deleted", key_count(deleted as usize))))?;
            batches += 1;
        }
        let gone = matching.len() as u64 - deleted;
        // What still matches was not previewed: untouched.
        let left = scan(&call, &mut conn, &pattern, UNTOUCHED_COUNT_LIMIT)
            .await
            .map_err(|e| call.with_progress(e, format!("{} deleted", key_count(deleted as usize))))?;
        let untouched = left.fields["count"].as_u64().unwrap_or(0);
        let more = if left.fields["complete"].as_bool() == Some(false) {
            "+"
        } else {
            ""
        };
        let since = if complete {
            "created since the preview"
        } else {
            "not in the preview"
        };
        let mut summary = format!(
            "UNLINK in {batches} batch{} · {} deleted · {}{more} {since} untouched",
            if batches == 1 { "" } else { "es" },
            crate::preview::grouped(deleted),
            key_count(untouched as usize),
        );
        if gone > 0 {
            summary.push_str(&format!(" · {} previewed already gone", key_count(gone as usize)));
        }
        if !skipped.is_empty() {
            summary.push_str(&format!(
                " · {} no longer matching skipped",
                key_count(skipped.len())
            ));
        }
        Ok(ExecOutput {
            text: format!("{summary} (pattern `{pattern}`)"),
            summary,
            fields: json!({
                "deleted": deleted, "batches": batches, "gone": gone, "skipped": skipped.len(),
                "untouched": untouched, "pattern": pattern,
            }),
            effects: Vec::new(),
        })
    }

    /// The action's one deadline (its `timeout`, else the target's) and the
    /// connection, reached within it.
    async fn begin_call<'a>(
        &self,
        t: &'a Target,
        a: &RedisAction,
    ) -> Result<(Call<'a>, ConnectionManager), ExecError> {
        let limit = a.timeout.unwrap_or_else(|| t.timeout());
        let call = Call {
            t,
            deadline: Instant::now() + limit,
            limit,
        };
        let connect = tokio::time::timeout_at(call.deadline, self.redis_conn(t));
        let conn = connect.await.map_err(|_| call.timed_out("connecting"))??;
        Ok((call, conn))
    }

    /// The shared connection manager of `t`, connected on first use.
    async fn redis_conn(&self, t: &Target) -> Result<ConnectionManager, ExecError> {
        let key = format!("{}\n{}", t.name, t.url);
        self.redis
            .get(&key, || async {
                let client = redis::Client::open(t.url.as_str()).map_err(|e| ExecError::Invalid {
                    target: Some(t.name.clone()),
                    message: format!("target {} has an invalid Redis URL: {e}", t.name),
                })?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_number_of_retries(0)
                    .set_connection_timeout(t.timeout())
                    .set_response_timeout(t.timeout());
                let connect = ConnectionManager::new_with_config(client, config);
                match tokio::time::timeout(t.timeout(), connect).await {
                    Ok(Ok(c)) => Ok(c),
                    Ok(Err(e)) => Err(unreachable(t, &e)),
                    Err(_) => Err(ExecError::Timeout {
                        target: Some(t.name.clone()),
                        what: format!("connecting target {}", t.name),
                        after: t.timeout(),
                    }),
                }
            })
            .await
    }
}

fn unreachable(t: &Target, e: &redis::RedisError) -> ExecError {
    ExecError::Unreachable {
        target: t.name.clone(),
        reason: root_cause(e),
        address: address(&t.url),
    }
}

/// What a Redis action sends, after rendering and every safety check: one
/// command's argv, or a checked pattern. Used by [`Executor::run_redis`] and
/// `exec::render`. No I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Planned {
    /// One command; each element is one argument.
    Command { argv: Vec<String> },
    /// SCAN … MATCH `pattern` COUNT 1000, up to `limit` keys.
    Scan { pattern: String, limit: usize },
    /// SCAN … MATCH `pattern`, then UNLINK in batches of 500.
    DeleteMatching { pattern: String },
}

/// Renders `a` for target `t` and applies the refusals (blocking commands,
/// bare `*`, patterns outside the target's key prefixes).
pub(super) fn plan(
    t: &Target,
    a: &RedisAction,
    args: &BTreeMap<String, String>,
) -> Result<Planned, ExecError> {
    if let Some(argv) = &a.command {
        let argv = render_argv(argv, args)?;
        check_command(t, &argv)?;
        return Ok(Planned::Command { argv });
    }
    if let Some(p) = &a.scan {
        let pattern = render_pattern(p, args)?;
        check_pattern(t, &pattern, false)?;
        let limit = a.limit.map_or(DEFAULT_SCAN_LIMIT, |l| l as usize);
        return Ok(Planned::Scan { pattern, limit });
    }
    if let Some(p) = &a.delete_matching {
        let pattern = render_pattern(p, args)?;
        check_pattern(t, &pattern, true)?;
        return Ok(Planned::DeleteMatching { pattern });
    }
    Err(ExecError::Invalid {
        target: Some(t.name.clone()),
        message: "redis action needs one of command, scan, delete_matching".into(),
    })
}

/// The round trips of one action: its target and its one deadline.
struct Call<'a> {
    t: &'a Target,
    deadline: Instant,
    limit: Duration,
}

impl Call<'_> {
    /// Sends `cmd`, failing when the action's deadline passes.
    async fn send<T: redis::FromRedisValue>(
        &self,
        conn: &mut ConnectionManager,
        cmd: &redis::Cmd,
    ) -> Result<T, ExecError> {
        let t = self.t;
        match tokio::time::timeout_at(self.deadline, cmd.query_async::<T>(conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() => {
                Err(unreachable(t, &e))
            }
            Ok(Err(e)) if e.is_timeout() => Err(self.timed_out("calling")),
            Ok(Err(e)) => Err(ExecError::Backend {
                target: t.name.clone(),
                message: e.to_string(),
            }),
            Err(_) => Err(self.timed_out("calling")),
        }
    }

    /// The deadline error: `timed out after 10s <doing> target queue_redis`.
    fn timed_out(&self, doing: &str) -> ExecError {
        ExecError::Timeout {
            target: Some(self.t.name.clone()),
            what: format!("{doing} target {}", self.t.name),
            after: self.limit,
        }
    }

    /// A deadline error that says what the action did before it.
    fn with_progress(&self, e: ExecError, progress: String) -> ExecError {
        match e {
            ExecError::Timeout { target, what, after } => ExecError::Timeout {
                target,
                what: format!("{what} ({progress} before the deadline)"),
                after,
            },
            other => other,
        }
    }
}

/// A template that is exactly one placeholder takes the value as the pattern
/// (checked against the allow-list afterwards). Values inside a longer
/// template are literal: `gemini:{project}:*` with `*` for `project` matches
/// only the project named `*`, not every project.
fn render_pattern(tpl: &str, args: &BTreeMap<String, String>) -> Result<String, ExecError> {
    if crate::template::sole_placeholder(tpl).is_some() {
        return super::render_escaped(tpl, args, str::to_string);
    }
    super::render_escaped(tpl, args, glob_escape)
}

/// `s` with Redis glob metacharacters (`* ? [ ] \`) escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `key` matches the Redis glob `pattern` (`*`, `?`, `[abc]`,
/// `[a-z]`, `[^x]`, `\` escapes), as SCAN MATCH would. Pure.
pub(super) fn glob_match(pattern: &[u8], key: &[u8]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((b'*', rest)) => (0..=key.len()).any(|i| glob_match(rest, &key[i..])),
        Some((b'?', rest)) => !key.is_empty() && glob_match(rest, &key[1..]),
        Some((b'[', rest)) => {
            let Some((&c, tail)) = key.split_first() else {
                return false;
            };
            let (negate, mut p) = match rest.first() {
                Some(b'^') => (true, &rest[1..]),
                _ => (false, rest),
            };
            let mut hit = false;
            loop {
                match p {
                    [] => return false,
                    [b']', after @ ..] => {
                        p = after;
                        break;
                    }
                    [b'\\', x, after @ ..] => {
                        hit |= *x == c;
                        p = after;
                    }
                    [lo, b'-', hi, after @ ..] if *hi != b']' => {
                        hit |= (*lo.min(hi)..=*lo.max(hi)).contains(&c);
                        p = after;
                    }
                    [x, after @ ..] => {
                        hit |= *x == c;
                        p = after;
                    }
                }
            }
            hit != negate && glob_match(p, tail)
        }
        Some((b'\\', rest)) if !rest.is_empty() => {
            key.first() == Some(&rest[0]) && glob_match(&rest[1..], &key[1..])
        }
        Some((c, rest)) => key.first() == Some(c) && glob_match(rest, &key[1..]),
    }
}

/// A pattern must not be bare `*` and must start with an allow-listed prefix
/// (`required`: an empty allow-list refuses everything).
fn check_pattern(t: &Target, pattern: &str, required: bool) -> Result<(), ExecError> {
    let prefixes = &t.key_prefixes;
    let allowed = prefixes
        .iter()
        .any(|p| !p.is_empty() && pattern.starts_with(p.as_str()));
    let unrestricted = prefixes.is_empty() && !required;
    if pattern.trim_matches('*').is_empty() || !(allowed || unrestricted) {
        let reason = if prefixes.is_empty() {
            format!("target {} allows no key prefixes", t.name)
        } else {
            format!("it must start with {}", prefixes.join(" or "))
        };
        return Err(ExecError::Refused {
            target: Some(t.name.clone()),
            what: format!("pattern `{pattern}`"),
            reason,
        });
    }
    Ok(())
}

/// Refuses an empty argv and the commands in [`REFUSED`].
fn check_command(t: &Target, argv: &[String]) -> Result<(), ExecError> {
    let Some(name) = argv.first() else {
        return Err(ExecError::Invalid {
            target: Some(t.name.clone()),
            message: "redis command is empty".into(),
        });
    };
    let upper = name.to_ascii_uppercase();
    if REFUSED.contains(&upper.as_str()) {
        return Err(ExecError::Refused {
            target: Some(t.name.clone()),
            what: format!("command {upper}"),
            reason: "it blocks the server or streams values; use SCAN or INFO".into(),
        });
    }
    Ok(())
}

/// Sends a command that [`plan`] has checked.
async fn command(
    call: &Call<'_>,
    conn: &mut ConnectionManager,
    argv: &[String],
) -> Result<ExecOutput, ExecError> {
    check_command(call.t, argv)?;
    let name = &argv[0];
    let mut cmd = redis::cmd(name);
    for a in &argv[1..] {
        cmd.arg(a.as_bytes());
    }
    let value: Value = call.send(conn, &cmd).await?;
    let mut budget = Budget::new();
    let mut text = to_text(&value, &mut budget);
    let result = to_json(&value, &mut Budget::new());
    let mut summary = format!("redis {}", shown_argv(argv));
    if let Some(cut) = &budget.cut {
        // First, so that cutting the text to chat size keeps it.
        text = format!("reply cut: {cut}\n{text}");
        summary.push_str(&format!(" ({cut})"));
    }
    Ok(ExecOutput {
        summary,
        text,
        fields: json!({ "result": result, "complete": budget.cut.is_none() }),
        effects: Vec::new(),
    })
}

/// `1 key`, `2 keys`.
fn key_count(n: usize) -> String {
    format!("{n} key{}", if n == 1 { "" } else { "s" })
}

/// The command for the summary: each argument cut to 40 chars, controls escaped.
fn shown_argv(argv: &[String]) -> String {
    argv.iter()
        .map(|a| super::one_line(a, 40))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One SCAN round trip: the next cursor and the keys of this page.
async fn scan_page(
    call: &Call<'_>,
    conn: &mut ConnectionManager,
    cursor: u64,
    pattern: &str,
) -> Result<(u64, Vec<Vec<u8>>), ExecError> {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(SCAN_COUNT);
    call.send(conn, &cmd).await
}

async fn scan(
    call: &Call<'_>,
    conn: &mut ConnectionManager,
    pattern: &str,
    limit: usize,
) -> Result<ExecOutput, ExecError> {
    let mut keys = BTreeSet::new();
    let mut cursor = 0;
    let complete = loop {
        let (next, page) = scan_page(call, conn, cursor, pattern)
            .await
            .map_err(|e| call.with_progress(e, format!("{} found", key_count(keys.len()))))?;
        keys.extend(page);
        if keys.len() >= limit {
            break next == 0 && keys.len() == limit;
        }
        if next == 0 {
            break true;
        }
        cursor = next;
    };
    let keys: Vec<String> = keys
        .into_iter()
        .take(limit)
        .map(|k| String::from_utf8_lossy(&k).into_owned())
        .collect();
    let more = if complete {
        ""
    } else {
        " (limit reached, more exist)"
    };
    let head = format!("{} keys matching `{pattern}`{more}", keys.len());
    Ok(ExecOutput {
        summary: format!("redis SCAN {pattern}: {} keys{more}", keys.len()),
        text: std::iter::once(head)
            .chain(keys.iter().cloned())
            .collect::<Vec<_>>()
            .join("\n"),
        fields: json!({ "keys": keys, "count": keys.len(), "complete": complete }),
        effects: Vec::new(),
    })
}

async fn delete_matching(
    call: &Call<'_>,
    conn: &mut ConnectionManager,
    pattern: &str,
) -> Result<ExecOutput, ExecError> {
    let mut deleted: u64 = 0;
    let mut pending: Vec<Vec<u8>> = Vec::new();
    let mut cursor = 0;
    let progress =
        |call: &Call<'_>, e, n: u64| call.with_progress(e, format!("{} deleted", key_count(n as usize)));
    loop {
        let (next, page) = scan_page(call, conn, cursor, pattern)
            .await
            .map_err(|e| progress(call, e, deleted))?;
        pending.extend(page);
        while pending.len() >= UNLINK_BATCH || (next == 0 && !pending.is_empty()) {
            let n = pending.len().min(UNLINK_BATCH);
            let mut unlink = redis::cmd("UNLINK");
            for key in pending.drain(..n) {
                unlink.arg(key);
            }
            deleted += call
                .send::<u64>(conn, &unlink)
                .await
                .map_err(|e| progress(call, e, deleted))?;
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    Ok(ExecOutput {
        summary: format!("redis UNLINK {pattern}: {deleted} keys deleted"),
        text: format!("deleted {deleted} keys matching `{pattern}`"),
        fields: json!({ "deleted": deleted, "pattern": pattern }),
        effects: Vec::new(),
    })
}

/// What converting a reply may still produce; `cut` says where it stopped.
struct Budget {
    items: usize,
    bytes: usize,
    cut: Option<String>,
}

impl Budget {
    fn new() -> Budget {
        Budget {
            items: READ_ITEMS,
            bytes: READ_BYTES,
            cut: None,
        }
    }

    /// How many of `total` elements to convert (each costs one item).
    fn take_items(&mut self, total: usize) -> usize {
        let n = total.min(self.items);
        self.items -= n;
        if n < total && self.cut.is_none() {
            self.cut = Some(format!("first {n} of {total} elements"));
        }
        n
    }

    /// `b` as text, cut to the bytes left (on a character boundary).
    fn take_str(&mut self, b: &[u8]) -> String {
        let mut n = b.len().min(self.bytes);
        if n < b.len() {
            // Not inside a character split by the cut.
            if let Err(e) = std::str::from_utf8(&b[..n]) {
                if e.error_len().is_none() {
                    n = e.valid_up_to();
                }
            }
            if self.cut.is_none() {
                self.cut = Some(format!("first {n} of {} bytes", b.len()));
            }
        }
        self.bytes -= n;
        String::from_utf8_lossy(&b[..n]).into_owned()
    }
}

/// A reply as redis-cli would show it (bulk strings and INFO as they are),
/// within `budget`.
fn to_text(v: &Value, budget: &mut Budget) -> String {
    match v {
        Value::Nil => "(nil)".into(),
        Value::Int(i) => format!("(integer) {i}"),
        Value::BulkString(b) => budget.take_str(b),
        Value::SimpleString(s) => budget.take_str(s.as_bytes()),
        Value::Okay => "OK".into(),
        Value::Double(d) => d.to_string(),
        Value::Boolean(b) => b.to_string(),
        Value::VerbatimString { text, .. } => budget.take_str(text.as_bytes()),
        Value::Array(items) | Value::Set(items) => {
            let n = budget.take_items(items.len());
            let lines: Vec<String> = items[..n].iter().map(|x| to_text(x, budget)).collect();
            numbered(lines, items.is_empty())
        }
        Value::Map(pairs) => {
            let n = budget.take_items(pairs.len());
            let lines: Vec<String> = pairs[..n]
                .iter()
                .map(|(k, v)| format!("{} => {}", to_text(k, budget), to_text(v, budget)))
                .collect();
            numbered(lines, pairs.is_empty())
        }
        Value::Attribute { data, .. } => to_text(data, budget),
        other => format!("{other:?}"),
    }
}

fn numbered(lines: Vec<String>, empty: bool) -> String {
    if empty {
        return "(empty)".into();
    }
    lines
        .into_iter()
        .enumerate()
        .map(|(i, s)| format!("{}) {s}", i + 1))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A reply as JSON for reply templates, within `budget` (lists are cut short).
fn to_json(v: &Value, budget: &mut Budget) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Nil => J::Null,
        Value::Int(i) => json!(i),
        Value::BulkString(b) => J::String(budget.take_str(b)),
        Value::SimpleString(s) => J::String(budget.take_str(s.as_bytes())),
        Value::Okay => J::String("OK".into()),
        Value::Double(d) => json!(d),
        Value::Boolean(b) => J::Bool(*b),
        Value::VerbatimString { text, .. } => J::String(budget.take_str(text.as_bytes())),
        Value::Array(items) | Value::Set(items) => {
            let n = budget.take_items(items.len());
            J::Array(items[..n].iter().map(|x| to_json(x, budget)).collect())
        }
        Value::Map(pairs) => {
            let n = budget.take_items(pairs.len());
            J::Object(
                pairs[..n]
                    .iter()
                    .map(|(k, v)| (to_text(k, budget), to_json(v, budget)))
                    .collect(),
            )
        }
        Value::Attribute { data, .. } => to_json(data, budget),
        other => J::String(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs_match_as_scan_match_does() {
        let m = |p: &str, k: &str| glob_match(p.as_bytes(), k.as_bytes());
        assert!(m("gemini:*", "gemini:analysis:1"));
        assert!(!m("gemini:*", "project:1"));
        assert!(m("gemini:a?c", "gemini:abc"));
        assert!(!m("gemini:a?c", "gemini:ac"));
        assert!(m("k[0-9]", "k7") && !m("k[0-9]", "kx"));
        assert!(m("k[^0-9]", "kx") && !m("k[^0-9]", "k7"));
        assert!(m("k[ab]z", "kbz") && !m("k[ab]z", "kcz"));
        assert!(m(r"lit\*", "lit*") && !m(r"lit\*", "litx"));
        assert!(m("*", "") && m("a*b*c", "aXXbYc") && !m("a*b*c", "aXXbY"));
    }
}
