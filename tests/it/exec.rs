//! Executors against real services: a local axum server, Redis
//! (`TEST_REDIS_URL`) and Postgres (`TEST_DATABASE_URL`).

use crate::support::{args, redis_url};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use opsbot::catalog::{Action, Target, TargetKind};
use opsbot::exec::{truncate, ExecError, ExecOutput, Executor, Limits, Redactor};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "s3cr3t-token-value";

// ---------------------------------------------------------------- helpers

fn action(toml_text: &str) -> Action {
    toml::from_str(toml_text).expect("action toml")
}

fn target(name: &str, kind: TargetKind, url: &str) -> Target {
    Target {
        name: name.into(),
        kind,
        url: url.into(),
        timeout: Some(Duration::from_secs(5)),
        headers: BTreeMap::new(),
        key_prefixes: vec![],
        location: None,
    }
}

fn targets(list: Vec<Target>) -> BTreeMap<String, Target> {
    list.into_iter().map(|t| (t.name.clone(), t)).collect()
}

fn executor() -> Executor {
    executor_with(Limits::default())
}

fn executor_with(limits: Limits) -> Executor {
    executor_env(limits, &[])
}

/// An executor whose bot environment holds `extra` too.
fn executor_env(limits: Limits, extra: &[(&str, &str)]) -> Executor {
    Executor::new(
        limits,
        vec![SecretString::from(SECRET)],
        crate::support::bot_env(extra),
    )
}

fn rand_tag() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// `err` reads `expected` and came within 3 s of `started`.
fn assert_quick(started: Instant, err: &ExecError, expected: &str) {
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?}: {err}");
    assert_eq!(err.to_string(), expected);
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

// ---------------------------------------------------------------- http server

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    uri: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Recorded>>>;

struct Server {
    url: String,
    log: Log,
}

impl Server {
    async fn start() -> Server {
        let log: Log = Arc::default();
        let app = axum::Router::new().fallback(handle).with_state(log.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Server { url, log }
    }

    fn last(&self) -> Recorded {
        self.log.lock().unwrap().last().cloned().expect("a request")
    }
}

async fn handle(State(log): State<Log>, req: Request) -> Response {
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let bytes = to_bytes(req.into_body(), usize::MAX).await.unwrap();
    let body = String::from_utf8_lossy(&bytes).into_owned();
    log.lock().unwrap().push(Recorded {
        method: method.clone(),
        uri: uri.clone(),
        body,
    });
    let path = uri.split('?').next().unwrap_or("").to_string();
    let json_resp = |code: u16, v: Value| {
        (
            StatusCode::from_u16(code).unwrap(),
            [("content-type", "application/json")],
            v.to_string(),
        )
            .into_response()
    };
    if let Some(code) = path.strip_prefix("/status/") {
        let code = code.parse().unwrap();
        return (
            StatusCode::from_u16(code).unwrap(),
            Body::from(format!("boom {SECRET}")),
        )
            .into_response();
    }
    if let Some(ms) = path.strip_prefix("/sleep/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        return json_resp(200, json!({"status": "healthy"}));
    }
    match path.as_str() {
        "/headers" => json_resp(200, json!({ "headers": headers })),
        "/secret" => json_resp(200, json!({ "token": SECRET, "note": "ok" })),
        "/text" => "plain text body".into_response(),
        "/health/ok" => json_resp(200, json!({"status": "ok"})),
        "/health/services" => json_resp(
            200,
            json!({
                "status": "degraded",
                "services": {
                    "database": "healthy",
                    "ai": { "status": "degraded", "message": "mock fallback" },
                    "liveScraper": { "status": "healthy", "responseTime": 12 },
                    "imageScraper": "healthy",
                    "contactService": { "status": "healthy" },
                    "cache": "healthy"
                },
                "metrics": { "responseTime": 40, "errorRate": 0.01 }
            }),
        ),
        _ => json_resp(200, json!({ "retried": 3, "method": method })),
    }
}

async fn http_setup() -> (Server, BTreeMap<String, Target>) {
    let s = Server::start().await;
    let t = targets(vec![target("queue_api", TargetKind::Http, &s.url)]);
    (s, t)
}

async fn run(
    ex: &Executor,
    a: &Action,
    t: &BTreeMap<String, Target>,
    a_args: &[(&str, &str)],
) -> Result<ExecOutput, ExecError> {
    ex.execute(a, t, &args(a_args)).await
}

// ---------------------------------------------------------------- http

#[tokio::test]
async fn http_path_values_stay_one_segment() {
    let (s, t) = http_setup().await;
    let ex = executor();
    let a = action(r#"http = { method = "POST", target = "queue_api", path = "/api/queue/{queue}/pause" }"#);
    for (value, expected) in [
        ("ai-analysis", "/api/queue/ai-analysis/pause"),
        ("../admin", "/api/queue/..%2Fadmin/pause"),
        ("a/b", "/api/queue/a%2Fb/pause"),
        ("x?y=1#z", "/api/queue/x%3Fy%3D1%23z/pause"),
        ("%2e%2e", "/api/queue/%252e%252e/pause"),
        ("a b", "/api/queue/a%20b/pause"),
    ] {
        let out = run(&ex, &a, &t, &[("queue", value)]).await.unwrap();
        let r = s.last();
        assert_eq!((r.method.as_str(), r.uri.as_str()), ("POST", expected), "{value}");
        assert!(
            out.summary.starts_with(&format!("POST {expected} → 200 in ")),
            "{}",
            out.summary
        );
    }
    for value in ["..", ".", ""] {
        let err = run(&ex, &a, &t, &[("queue", value)]).await.unwrap_err();
        assert!(err.to_string().contains("refused"), "{value}: {err}");
        assert_eq!(err.target(), Some("queue_api"));
    }
    let missing = run(&ex, &a, &t, &[]).await.unwrap_err();
    assert_eq!(missing.to_string(), "argument `queue` has no value");
}

#[tokio::test]
async fn http_query_values_encoded_and_absent_optional_omitted() {
    let (s, t) = http_setup().await;
    let a = action(
        r#"http = { target = "queue_api", path = "/api/errors", query = { since = "{since}", limit = "{limit}", fixed = "1" } }"#,
    );
    let ex = executor();
    run(&ex, &a, &t, &[("since", "1h&admin=true#x")]).await.unwrap();
    assert_eq!(s.last().uri, "/api/errors?since=1h%26admin%3Dtrue%23x&fixed=1");
    run(&ex, &a, &t, &[("since", "30m"), ("limit", "5")])
        .await
        .unwrap();
    assert_eq!(s.last().uri, "/api/errors?since=30m&limit=5&fixed=1");
}

#[tokio::test]
async fn http_json_body_values_are_strings_never_json() {
    let (s, t) = http_setup().await;
    let a = action(
        r#"http = { method = "POST", target = "queue_api", path = "/api/queue/x/clean", body = { grace = "{grace}", note = "by {who}", list = ["{grace}", 5, true], opt = "{absent}" } }"#,
    );
    let evil = r#""},"evil":""#;
    run(&executor(), &a, &t, &[("grace", evil), ("who", "ann\"\n")])
        .await
        .unwrap();
    let body: Value = serde_json::from_str(&s.last().body).unwrap();
    assert_eq!(
        body,
        json!({ "grace": evil, "note": "by ann\"\n", "list": [evil, 5, true] })
    );
}

#[tokio::test]
async fn http_json_response_becomes_fields() {
    let (_s, t) = http_setup().await;
    let a = action(
        r#"http = { method = "post", target = "queue_api", path = "/api/queue/ai-analysis/retry-failed" }"#,
    );
    let out = run(&executor(), &a, &t, &[]).await.unwrap();
    assert_eq!(out.fields["retried"], 3);
    assert!(out.text.contains("\"retried\": 3"), "{}", out.text);
    assert!(
        out.summary
            .starts_with("POST /api/queue/ai-analysis/retry-failed → 200 in "),
        "{}",
        out.summary
    );
    let plain = action(r#"http = { target = "queue_api", path = "/text" }"#);
    let out = run(&executor(), &plain, &t, &[]).await.unwrap();
    assert_eq!((out.text.as_str(), &out.fields), ("plain text body", &json!({})));
}

#[tokio::test]
async fn http_unexpected_status_names_target_and_redacts() {
    let (_s, t) = http_setup().await;
    let a = action(r#"http = { target = "queue_api", path = "/status/500" }"#);
    let err = run(&executor(), &a, &t, &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "target queue_api answered 500 (expected 2xx): boom [redacted]"
    );
    assert_eq!(err.target(), Some("queue_api"));
    let expect = action(r#"http = { target = "queue_api", path = "/ok", expect = [202, 204] }"#);
    let err = run(&executor(), &expect, &t, &[]).await.unwrap_err();
    assert!(
        err.to_string().contains("answered 200 (expected 202 or 204)"),
        "{err}"
    );
}

#[tokio::test]
async fn http_unreachable_names_target_and_address() {
    let port = closed_port().await;
    let url = format!("http://127.0.0.1:{port}");
    let t = targets(vec![target("queue_api", TargetKind::Http, &url)]);
    let a = action(r#"http = { target = "queue_api", path = "/api/queue/stats" }"#);
    let err = run(&executor(), &a, &t, &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("target queue_api unreachable: connection refused ({url})")
    );
    assert_eq!(err.target(), Some("queue_api"));
}

#[tokio::test]
async fn http_timeout_names_target() {
    let (_s, mut t) = http_setup().await;
    t.get_mut("queue_api").unwrap().timeout = Some(Duration::from_millis(200));
    let a = action(r#"http = { target = "queue_api", path = "/sleep/3000" }"#);
    let started = Instant::now();
    let err = run(&executor(), &a, &t, &[]).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(err.to_string(), "timed out after 200ms calling target queue_api");
    assert!(matches!(err, ExecError::Timeout { .. }));
}

#[tokio::test]
async fn http_secrets_redacted_from_body_and_env_headers() {
    let (_s, mut t) = http_setup().await;
    let var = format!("OPSBOT_TEST_TOKEN_{}", rand_tag());
    let token = format!("Bearer tok-{}", rand_tag());
    t.get_mut("queue_api")
        .unwrap()
        .headers
        .insert("Authorization".into(), format!("env:{var}"));
    let ex = executor_env(Limits::default(), &[(&var, &token)]);
    let a = action(r#"http = { target = "queue_api", path = "/headers" }"#);
    let out = run(&ex, &a, &t, &[]).await.unwrap();
    assert_eq!(out.fields["headers"]["authorization"], "[redacted]");
    assert!(!out.text.contains(&token));
    let a = action(r#"http = { target = "queue_api", path = "/secret" }"#);
    let out = run(&ex, &a, &t, &[]).await.unwrap();
    assert_eq!(out.fields["token"], "[redacted]");
    assert!(out.text.contains("[redacted]") && !out.text.contains(SECRET));
}

// ---------------------------------------------------------------- redis

/// A key prefix of its own; keys under it are removed on drop.
struct RedisScope {
    prefix: String,
    conn: redis::aio::MultiplexedConnection,
    targets: BTreeMap<String, Target>,
}

impl RedisScope {
    async fn new() -> RedisScope {
        let prefix = format!("t{}:", rand_tag());
        let client = redis::Client::open(redis_url()).unwrap();
        let conn = client.get_multiplexed_async_connection().await.unwrap();
        let mut t = target("queue_redis", TargetKind::Redis, &redis_url());
        t.key_prefixes = vec![prefix.clone(), "project:".into()];
        RedisScope {
            prefix,
            conn,
            targets: targets(vec![t]),
        }
    }

    async fn set_many(&mut self, sub: &str, n: usize) {
        let mut pipe = redis::pipe();
        for i in 0..n {
            pipe.set(format!("{}{sub}{i}", self.prefix), i).ignore();
        }
        let _: () = pipe.query_async(&mut self.conn).await.unwrap();
    }

    async fn count(&mut self, pattern: &str) -> usize {
        self.scan_all(pattern).await.len()
    }

    async fn cleanup(mut self, extra: &[&str]) {
        let pattern = format!("{}*", self.prefix);
        let mut keys: Vec<String> = self.scan_all(&pattern).await;
        keys.extend(extra.iter().map(|s| s.to_string()));
        if !keys.is_empty() {
            let _: () = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut self.conn)
                .await
                .unwrap();
        }
    }

    async fn scan_all(&mut self, pattern: &str) -> Vec<String> {
        crate::support::scan_all(&mut self.conn, pattern).await
    }
}

#[tokio::test]
async fn redis_info_with_and_without_section() {
    let r = RedisScope::new().await;
    let ex = executor();
    let a = action(r#"redis = { target = "queue_redis", command = ["INFO", "{section}"] }"#);
    let out = run(&ex, &a, &r.targets, &[("section", "memory")]).await.unwrap();
    assert_eq!(out.summary, "redis INFO memory");
    assert!(out.text.contains("# Memory") && out.text.contains("used_memory:"));
    assert!(!out.text.contains("# Server"));
    let out = run(&ex, &a, &r.targets, &[]).await.unwrap();
    assert_eq!(out.summary, "redis INFO");
    assert!(out.text.contains("# Server"), "{}", out.text);
    r.cleanup(&[]).await;
}

#[tokio::test]
async fn redis_values_are_single_binary_safe_arguments() {
    let mut r = RedisScope::new().await;
    let ex = executor();
    let key = format!("{}k", r.prefix);
    let canary = format!("{}x", r.prefix);
    let _: () = redis::cmd("SET")
        .arg(&canary)
        .arg("1")
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let value = format!("a b\r\nDEL {canary}\r\n");
    let set = action(r#"redis = { target = "queue_redis", command = ["SET", "{key}", "{value}"] }"#);
    let out = run(&ex, &set, &r.targets, &[("key", &key), ("value", &value)])
        .await
        .unwrap();
    assert_eq!(out.text, "OK");
    assert!(!out.summary.contains('\n'), "{}", out.summary);
    let get = action(r#"redis = { target = "queue_redis", command = ["GET", "{key}"] }"#);
    let out = run(&ex, &get, &r.targets, &[("key", &key)]).await.unwrap();
    assert_eq!(out.fields["result"], value.as_str());
    assert_eq!(out.text, value);
    assert_eq!(r.count(&canary).await, 1, "the canary key survives");
    let nil = run(&ex, &get, &r.targets, &[("key", &format!("{}none", r.prefix))])
        .await
        .unwrap();
    assert_eq!(
        (nil.text.as_str(), &nil.fields["result"]),
        ("(nil)", &Value::Null)
    );
    r.cleanup(&[]).await;
}

#[tokio::test]
async fn redis_refuses_keys_and_monitor() {
    let r = RedisScope::new().await;
    for cmd in ["KEYS", "keys", "MONITOR"] {
        let a = action(&format!(
            r#"redis = {{ target = "queue_redis", command = ["{cmd}", "{{p}}"] }}"#
        ));
        let err = run(&executor(), &a, &r.targets, &[("p", "*")]).await.unwrap_err();
        let upper = cmd.to_ascii_uppercase();
        assert!(
            err.to_string().starts_with(&format!("command {upper} refused")),
            "{err}"
        );
    }
    r.cleanup(&[]).await;
}

#[tokio::test]
async fn redis_scan_stops_at_limit() {
    let mut r = RedisScope::new().await;
    r.set_many("s:", 50).await;
    let ex = executor();
    let limited = action(r#"redis = { target = "queue_redis", scan = "{pattern}", limit = 10 }"#);
    let pattern = format!("{}s:*", r.prefix);
    let out = run(&ex, &limited, &r.targets, &[("pattern", &pattern)])
        .await
        .unwrap();
    assert_eq!(
        (out.fields["count"].clone(), out.fields["complete"].clone()),
        (json!(10), json!(false))
    );
    assert_eq!(out.text.lines().count(), 11);
    let all = action(r#"redis = { target = "queue_redis", scan = "{pattern}" }"#);
    let out = run(&ex, &all, &r.targets, &[("pattern", &pattern)])
        .await
        .unwrap();
    assert_eq!(
        (out.fields["count"].clone(), out.fields["complete"].clone()),
        (json!(50), json!(true))
    );
    r.cleanup(&[]).await;
}

#[tokio::test]
async fn redis_delete_matching_unlinks_only_matching_keys_in_batches() {
    let mut r = RedisScope::new().await;
    r.set_many("del:", 1200).await;
    r.set_many("keep:", 20).await;
    let outsider = format!("u{}:del:1", rand_tag());
    let _: () = redis::cmd("SET")
        .arg(&outsider)
        .arg("1")
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let a = action(r#"redis = { target = "queue_redis", delete_matching = "{pattern}" }"#);
    let pattern = format!("{}del:*", r.prefix);
    let out = run(&executor(), &a, &r.targets, &[("pattern", &pattern)])
        .await
        .unwrap();
    assert_eq!(out.fields["deleted"], 1200);
    assert_eq!(r.count(&pattern).await, 0);
    assert_eq!(r.count(&format!("{}keep:*", r.prefix)).await, 20);
    assert_eq!(r.count(&outsider).await, 1);
    r.cleanup(&[&outsider]).await;
}

#[tokio::test]
async fn redis_values_inside_a_pattern_template_match_literally() {
    let mut r = RedisScope::new().await;
    r.set_many("g:a:", 3).await;
    r.set_many("g:b:", 3).await;
    let a = action(&format!(
        r#"redis = {{ target = "queue_redis", delete_matching = "{}g:{{id}}:*" }}"#,
        r.prefix
    ));
    let out = run(&executor(), &a, &r.targets, &[("id", "*")]).await.unwrap();
    assert_eq!(out.fields["deleted"], 0);
    let out = run(&executor(), &a, &r.targets, &[("id", "a")]).await.unwrap();
    assert_eq!(out.fields["deleted"], 3);
    assert_eq!(r.count(&format!("{}g:b:*", r.prefix)).await, 3);
    r.cleanup(&[]).await;
}

#[tokio::test]
async fn redis_unreachable_names_target() {
    let url = format!("redis://127.0.0.1:{}", closed_port().await);
    let t = targets(vec![target("queue_redis", TargetKind::Redis, &url)]);
    let a = action(r#"redis = { target = "queue_redis", command = ["PING"] }"#);
    let started = Instant::now();
    let err = run(&executor(), &a, &t, &[]).await.unwrap_err();
    assert_quick(
        started,
        &err,
        &format!("target queue_redis unreachable: connection refused ({url})"),
    );
}

#[tokio::test]
async fn redis_patterns_outside_the_allow_list_are_refused() {
    let r = RedisScope::new().await;
    let del = action(r#"redis = { target = "queue_redis", delete_matching = "{pattern}" }"#);
    let scan = action(r#"redis = { target = "queue_redis", scan = "{pattern}" }"#);
    let err = run(&executor(), &del, &r.targets, &[("pattern", "*")])
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("pattern `*` refused: it must start with {} or project:", r.prefix)
    );
    assert_eq!(err.target(), Some("queue_redis"));
    for p in ["other:*", "*project:*", "**"] {
        for a in [&del, &scan] {
            let err = run(&executor(), a, &r.targets, &[("pattern", p)])
                .await
                .unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("pattern `{p}` refused")),
                "{err}"
            );
        }
    }
    r.cleanup(&[]).await;
}

// ---------------------------------------------------------------- sql

fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A table of its own, dropped at the end.
struct SqlScope {
    table: String,
    pool: sqlx::PgPool,
    targets: BTreeMap<String, Target>,
}

impl SqlScope {
    async fn new() -> SqlScope {
        let table = format!("t_{}", rand_tag());
        let pool = sqlx::PgPool::connect(&database_url()).await.unwrap();
        sqlx::query(&format!(
            "CREATE TABLE {table} (id serial PRIMARY KEY, name text, score float8, ok bool)"
        ))
        .execute(&pool)
        .await
        .unwrap();
        let t = targets(vec![target("queue_db", TargetKind::Sql, &database_url())]);
        SqlScope {
            table,
            pool,
            targets: t,
        }
    }

    fn action(&self, query: &str, params: &[&str], timeout: Option<&str>) -> Action {
        let query = query.replace("TABLE", &self.table);
        let timeout = timeout
            .map(|t| format!(", timeout = \"{t}\""))
            .unwrap_or_default();
        action(&format!(
            "sql = {{ target = \"queue_db\", query = {}, params = {}{timeout} }}",
            toml::Value::String(query),
            toml::Value::Array(
                params
                    .iter()
                    .map(|p| toml::Value::String(p.to_string()))
                    .collect()
            )
        ))
    }

    async fn drop(self) {
        sqlx::query(&format!("DROP TABLE IF EXISTS {}", self.table))
            .execute(&self.pool)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sql_params_are_bound_not_spliced() {
    let s = SqlScope::new().await;
    let ex = executor();
    let evil = format!("x'; DROP TABLE {}; --", s.table);
    let insert = s.action(
        "INSERT INTO TABLE (name) VALUES ($1) RETURNING name",
        &["{name}"],
        None,
    );
    let out = run(&ex, &insert, &s.targets, &[("name", &evil)]).await.unwrap();
    assert_eq!(out.fields["rows"][0]["name"], evil.as_str());
    let select = s.action(
        "SELECT count(*) AS n FROM TABLE WHERE name = $1",
        &["{name}"],
        None,
    );
    let out = run(&ex, &select, &s.targets, &[("name", &evil)]).await.unwrap();
    assert_eq!(
        out.fields["rows"][0]["n"], 1,
        "table still exists and holds the value"
    );
    s.drop().await;
}

#[tokio::test]
async fn sql_rows_render_as_table_and_json() {
    let s = SqlScope::new().await;
    sqlx::query(&format!(
        "INSERT INTO {} (name, score, ok) VALUES ('alpha', 1.5, true), ('beta', NULL, false), ('gamma', 3, NULL)",
        s.table
    ))
    .execute(&s.pool)
    .await
    .unwrap();
    let a = s.action(
        "SELECT id, name, score, ok FROM TABLE WHERE $1::text IS NULL OR name = $1 ORDER BY id",
        &["{name}"],
        None,
    );
    let out = run(&executor(), &a, &s.targets, &[]).await.unwrap();
    assert_eq!(out.summary, "sql: 3 rows");
    assert_eq!(out.fields["row_count"], 3);
    assert_eq!(
        out.fields["rows"][0],
        json!({"id": 1, "name": "alpha", "score": 1.5, "ok": true})
    );
    assert_eq!(out.fields["rows"][1]["score"], Value::Null);
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[0], "id | name  | score | ok");
    assert_eq!(lines[1], "---+-------+-------+------");
    assert_eq!(lines[3], "2  | beta  | NULL  | false");
    let one = run(&executor(), &a, &s.targets, &[("name", "beta")])
        .await
        .unwrap();
    assert_eq!(one.summary, "sql: 1 row");
    s.drop().await;
}

#[tokio::test]
async fn sql_statement_timeout() {
    let s = SqlScope::new().await;
    let a = s.action("SELECT pg_sleep(5)", &[], Some("200ms"));
    let started = Instant::now();
    let err = run(&executor(), &a, &s.targets, &[]).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.to_string(), "timed out after 200ms querying target queue_db");
    // The pool is still usable afterwards.
    let ok = s.action("SELECT 1 AS one", &[], None);
    let out = run(&executor(), &ok, &s.targets, &[]).await.unwrap();
    assert_eq!(out.fields["rows"][0]["one"], 1);
    s.drop().await;
}

#[tokio::test]
async fn sql_errors_name_the_target() {
    let s = SqlScope::new().await;
    let a = s.action("SELECT * FROM no_such_table_here", &[], None);
    let err = run(&executor(), &a, &s.targets, &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("target queue_db: "), "{err}");
    let a_ts = s.action("SELECT now() AS t", &[], None);
    let err = run(&executor(), &a_ts, &s.targets, &[]).await.unwrap_err();
    assert!(
        err.to_string()
            .ends_with("(cast the column to text in the query)"),
        "{err}"
    );
    let ts = s.action("SELECT now()::text AS t", &[], None);
    assert!(run(&executor(), &ts, &s.targets, &[]).await.is_ok());
    let port = closed_port().await;
    let dead = targets(vec![target(
        "queue_db",
        TargetKind::Sql,
        &format!("postgres://postgres:{SECRET}@127.0.0.1:{port}/test"),
    )]);
    let err = run(&executor(), &a, &dead, &[]).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("target queue_db unreachable: "), "{text}");
    assert!(!text.contains(SECRET), "{text}");
    s.drop().await;
}

// ---------------------------------------------------------------- process

fn proc_executor(output_chars: usize) -> Executor {
    executor_with(proc_limits(output_chars))
}

fn proc_limits(output_chars: usize) -> Limits {
    Limits {
        output_chars,
        process_allow: vec!["echo".into(), "sleep".into(), "sh".into()],
        default_timeout: Duration::from_secs(5),
        ..Limits::default()
    }
}

#[tokio::test]
async fn process_values_are_literal_arguments() {
    let a = action(r#"process = { argv = ["echo", "{msg}", "{absent}"] }"#);
    let msg = "; rm -rf / $(id) `id` && echo pwned | cat";
    let out = run(&proc_executor(3000), &a, &BTreeMap::new(), &[("msg", msg)])
        .await
        .unwrap();
    assert_eq!(out.text, format!("{msg}\n"));
    assert_eq!(out.fields["exit_code"], 0);
    assert!(out.summary.starts_with("exit 0 in "), "{}", out.summary);
}

#[tokio::test]
async fn process_env_is_rendered_and_minimal() {
    let a = action(
        r#"process = { argv = ["sh", "-c", "echo \"$WORKERS:${OPSBOT_TEST_BOT_ONLY:-unset}\""], env = { WORKERS = "{n}" } }"#,
    );
    // In the bot's environment, but not one the process inherits.
    let ex = executor_env(proc_limits(3000), &[("OPSBOT_TEST_BOT_ONLY", "bot-private")]);
    let out = run(&ex, &a, &BTreeMap::new(), &[("n", "4 $(id)")]).await.unwrap();
    assert_eq!(out.text, "4 $(id):unset\n");
}

#[tokio::test]
async fn process_program_must_be_allow_listed() {
    for argv in [r#"["rm", "-rf", "/tmp/x"]"#, r#"["/bin/echo", "x"]"#] {
        let a = action(&format!("process = {{ argv = {argv} }}"));
        let err = run(&proc_executor(3000), &a, &BTreeMap::new(), &[])
            .await
            .unwrap_err();
        assert!(err.to_string().ends_with("is not on the allow-list"), "{err}");
    }
    let a = action(r#"process = { argv = ["rm"] }"#);
    let err = run(&proc_executor(3000), &a, &BTreeMap::new(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "program `rm` is not on the allow-list");
}

fn sleeps_alive(marker: &str) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
        std::fs::read(e.path().join("cmdline"))
            .map(|c| c == format!("sleep\0{marker}\0").into_bytes())
            .unwrap_or(false)
    })
}

#[tokio::test]
async fn process_timeout_kills_the_child() {
    let marker = format!("7.{}", rand::random::<u16>());
    let a = action(&format!(
        r#"process = {{ argv = ["sleep", "{marker}"], timeout = "300ms" }}"#
    ));
    let started = Instant::now();
    let err = run(&proc_executor(3000), &a, &BTreeMap::new(), &[])
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(err.to_string(), "timed out after 300ms running `sleep` (killed)");
    let deadline = Instant::now() + Duration::from_secs(5);
    while sleeps_alive(&marker) {
        assert!(Instant::now() < deadline, "sleep {marker} still running");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn process_non_zero_exit_is_an_error_with_stderr() {
    let a = action(r#"process = { argv = ["sh", "-c", "echo out; echo oops >&2; exit 2"] }"#);
    let err = run(&proc_executor(3000), &a, &BTreeMap::new(), &[])
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "exit code 2: oops");
    assert!(matches!(err, ExecError::Exit { code: Some(2), .. }));
}

#[tokio::test]
async fn process_output_truncated_with_marker_and_redacted() {
    let a = action(r#"process = { argv = ["echo", "{msg}"] }"#);
    let long = "a".repeat(500);
    let out = run(&proc_executor(100), &a, &BTreeMap::new(), &[("msg", &long)])
        .await
        .unwrap();
    assert_eq!(out.text, format!("{}… [truncated 401 chars]", "a".repeat(100)));
    let leak = format!("token={SECRET}");
    let out = run(&proc_executor(3000), &a, &BTreeMap::new(), &[("msg", &leak)])
        .await
        .unwrap();
    assert_eq!(out.text, "token=[redacted]\n");
    assert_eq!(out.fields["stdout"], "token=[redacted]\n");
}

// ---------------------------------------------------------------- health

fn health_action(checks: &[(&str, &str, &str, Option<&str>)]) -> Action {
    let items: Vec<String> = checks
        .iter()
        .map(|(c, t, p, slow)| {
            let slow = slow.map(|s| format!(", slow = \"{s}\"")).unwrap_or_default();
            format!(r#"{{ component = "{c}", target = "{t}", path = "{p}"{slow} }}"#)
        })
        .collect();
    action(&format!("health = {{ checks = [{}] }}", items.join(", ")))
}

async fn health_targets() -> BTreeMap<String, Target> {
    let s = Server::start().await;
    let dead = format!("http://127.0.0.1:{}", closed_port().await);
    // The server task lives as long as the test's runtime.
    targets(vec![
        target("queue_api", TargetKind::Http, &s.url),
        target("chat_api", TargetKind::Http, &s.url),
        target("gone_api", TargetKind::Http, &dead),
    ])
}

#[tokio::test]
async fn health_degraded_from_slowness_and_services() {
    let t = health_targets().await;
    let a = health_action(&[
        ("queue api", "queue_api", "/health/ok", None),
        ("slow api", "queue_api", "/sleep/250", Some("50ms")),
        ("chat api", "chat_api", "/health/services", None),
    ]);
    let out = run(&executor(), &a, &t, &[]).await.unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[0], "overall: degraded");
    assert!(lines[1].starts_with("✅ queue api healthy ("), "{}", out.text);
    assert!(
        lines[2].starts_with("⚠️ slow api degraded (") && lines[2].ends_with("ms): slow, over 50ms"),
        "{}",
        out.text
    );
    assert!(lines[3].starts_with("⚠️ chat api degraded ("), "{}", out.text);
    assert!(
        lines.contains(&"    ⚠️ ai degraded: mock fallback"),
        "{}",
        out.text
    );
    assert!(lines.contains(&"    ✅ database healthy"), "{}", out.text);
    assert!(
        lines.contains(&"    ✅ liveScraper healthy (12 ms)"),
        "{}",
        out.text
    );
    assert_eq!(lines.len(), 10);
    assert_eq!(out.fields["status"], "degraded");
    let comps = out.fields["components"].as_array().unwrap();
    assert!(comps.contains(
        &json!({"component": "chat api/ai", "status": "degraded", "ms": null, "detail": "mock fallback"})
    ));
    assert_eq!(out.summary, "health: degraded (3 checks)");
}

#[tokio::test]
async fn health_failures_are_reported_not_errors() {
    let t = health_targets().await;
    let a = health_action(&[
        ("queue api", "queue_api", "/health/ok", None),
        ("broken api", "queue_api", "/status/500", None),
        ("gone api", "gone_api", "/health", None),
        ("chat api", "chat_api", "/health/services", None),
        ("typo", "no_such_target", "/health", None),
    ]);
    let out = run(&executor(), &a, &t, &[]).await.unwrap();
    let lines: Vec<&str> = out.text.lines().collect();
    assert_eq!(lines[0], "overall: unhealthy");
    let broken = lines
        .iter()
        .find(|l| l.starts_with("❌ broken api unhealthy ("))
        .unwrap();
    assert!(
        broken.ends_with(" ms): HTTP 500: boom [redacted]"),
        "{}",
        out.text
    );
    assert!(
        lines.contains(&"❌ gone api unhealthy: connection refused"),
        "{}",
        out.text
    );
    assert!(
        lines.contains(&"❌ typo unhealthy: target no_such_target is not defined"),
        "{}",
        out.text
    );
    assert_eq!(out.fields["status"], "unhealthy");
}

// ---------------------------------------------------------------- output

#[test]
fn truncate_and_redactor_are_public() {
    assert_eq!(truncate("abcdef", 3), "abc… [truncated 3 chars]");
    let r = Redactor::new(vec![SecretString::from("abc"), SecretString::from("hunter22")]);
    assert_eq!(r.redact("abc hunter22"), "abc [redacted]");
}

#[tokio::test]
async fn executor_is_shareable_across_tasks() {
    let (_s, t) = http_setup().await;
    let ex = Arc::new(executor());
    let a = action(r#"http = { target = "queue_api", path = "/api/queue/stats" }"#);
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (ex, a, t) = (ex.clone(), a.clone(), t.clone());
            tokio::spawn(async move { ex.execute(&a, &t, &BTreeMap::new()).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().fields["retried"], 3);
    }
}

// ---------------------------------------------------------------- bounds (issue #13, finding 8)

#[tokio::test]
async fn sql_reading_stops_at_200_rows_and_says_so() {
    let s = SqlScope::new().await;
    let many = s.action("SELECT g AS n FROM generate_series(1, 1000) g", &[], None);
    let out = run(&executor(), &many, &s.targets, &[]).await.unwrap();
    assert_eq!(
        (&out.fields["row_count"], &out.fields["complete"]),
        (&json!(200), &json!(false))
    );
    assert_eq!(out.summary, "sql: first 200 rows of more");
    assert!(
        out.text
            .starts_with("first 200 rows of more (the rest was not read)\nn\n"),
        "{}",
        out.text
    );
    let exact = s.action("SELECT g AS n FROM generate_series(1, 200) g", &[], None);
    let out = run(&executor(), &exact, &s.targets, &[]).await.unwrap();
    assert_eq!(out.summary, "sql: 200 rows");
    assert_eq!(out.fields["complete"], true);
    s.drop().await;
}

#[tokio::test]
async fn sql_a_write_cut_while_reading_still_commits_whole() {
    let s = SqlScope::new().await;
    let fill = s.action(
        "INSERT INTO TABLE (name) SELECT 'n' || g FROM generate_series(1, 500) g",
        &[],
        None,
    );
    run(&executor(), &fill, &s.targets, &[]).await.unwrap();
    let update = s.action("UPDATE TABLE SET ok = true RETURNING id", &[], None);
    let out = run(&executor(), &update, &s.targets, &[]).await.unwrap();
    assert_eq!(out.summary, "sql: first 200 rows of more");
    let count = s.action("SELECT count(*) AS n FROM TABLE WHERE ok", &[], None);
    let out = run(&executor(), &count, &s.targets, &[]).await.unwrap();
    assert_eq!(out.fields["rows"][0]["n"], 500, "every row was updated");
    s.drop().await;
}

#[tokio::test]
async fn sql_reading_stops_after_1_mib_of_values() {
    let s = SqlScope::new().await;
    // 300 kB per row: the fourth row passes 1 MiB, the fifth is not read.
    let wide = s.action(
        "SELECT g AS n, repeat('x', 300000) AS v FROM generate_series(1, 20) g",
        &[],
        None,
    );
    let out = run(&executor(), &wide, &s.targets, &[]).await.unwrap();
    assert_eq!(
        (&out.fields["row_count"], &out.fields["complete"]),
        (&json!(4), &json!(false))
    );
    assert_eq!(out.summary, "sql: first 4 rows of more");
    s.drop().await;
}

#[tokio::test]
async fn redis_replies_are_cut_at_200_elements_and_1_mib() {
    let mut r = RedisScope::new().await;
    let list = format!("{}list", r.prefix);
    let big = format!("{}big", r.prefix);
    let items: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    let _: () = redis::cmd("RPUSH")
        .arg(&list)
        .arg(&items)
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(&big)
        .arg("é".repeat(1 << 20))
        .query_async(&mut r.conn)
        .await
        .unwrap();
    let ex = executor();
    let lrange = action(r#"redis = { target = "queue_redis", command = ["LRANGE", "{key}", "0", "-1"] }"#);
    let out = run(&ex, &lrange, &r.targets, &[("key", &list)]).await.unwrap();
    assert_eq!(out.fields["result"].as_array().map(Vec::len), Some(200));
    assert_eq!(out.fields["complete"], false);
    assert!(
        out.summary.ends_with(" 0 -1 (first 200 of 500 elements)"),
        "{}",
        out.summary
    );
    assert!(
        out.text
            .starts_with("reply cut: first 200 of 500 elements\n1) 0\n"),
        "{}",
        out.text
    );
    let get = action(r#"redis = { target = "queue_redis", command = ["GET", "{key}"] }"#);
    let out = run(&ex, &get, &r.targets, &[("key", &big)]).await.unwrap();
    // 2 MiB of two-byte characters, cut at 1 MiB on a character boundary.
    assert_eq!(out.fields["complete"], false);
    assert!(
        out.text
            .starts_with("reply cut: first 1048576 of 2097152 bytes\néé"),
        "{}",
        &out.text[..80]
    );
    let whole = run(&ex, &lrange, &r.targets, &[("key", &format!("{}none", r.prefix))])
        .await
        .unwrap();
    assert_eq!(
        (whole.text.as_str(), &whole.fields["complete"]),
        ("(empty)", &json!(true))
    );
    r.cleanup(&[]).await;
}

/// One RESP command from a client: its arguments, `None` at end of stream.
async fn read_command(r: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> Option<Vec<String>> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut line = String::new();
    r.read_line(&mut line).await.ok().filter(|n| *n > 0)?;
    let n: usize = line.trim().strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        line.clear();
        r.read_line(&mut line).await.ok()?;
        let len: usize = line.trim().strip_prefix('$')?.parse().ok()?;
        let mut buf = vec![0; len + 2];
        r.read_exact(&mut buf).await.ok()?;
        buf.truncate(len);
        args.push(String::from_utf8_lossy(&buf).into_owned());
    }
    Some(args)
}

/// A Redis faked at the wire whose SCAN never ends: each page takes
/// `page_ms` and returns the key `fk:stuck` with cursor 1. UNLINK answers 1,
/// anything else OK.
async fn endless_scan_redis(page_ms: u64) -> String {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = tokio::io::BufReader::new(r);
                while let Some(cmd) = read_command(&mut r).await {
                    let reply: &[u8] = match cmd[0].to_ascii_uppercase().as_str() {
                        "SCAN" => {
                            tokio::time::sleep(Duration::from_millis(page_ms)).await;
                            b"*2\r\n$1\r\n1\r\n*1\r\n$8\r\nfk:stuck\r\n"
                        }
                        "UNLINK" => b":1\r\n",
                        _ => b"+OK\r\n",
                    };
                    if w.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn one_deadline_covers_a_whole_scan_or_delete() {
    let url = endless_scan_redis(100).await;
    let mut t = target("queue_redis", TargetKind::Redis, &url);
    t.timeout = Some(Duration::from_secs(1));
    t.key_prefixes = vec!["fk:".into()];
    let t = targets(vec![t]);
    let ex = executor();
    for (a, progress) in [
        (
            r#"redis = { target = "queue_redis", scan = "fk:*", limit = 100000 }"#,
            "(1 key found before the deadline)",
        ),
        (
            r#"redis = { target = "queue_redis", delete_matching = "fk:*" }"#,
            "(0 keys deleted before the deadline)",
        ),
    ] {
        let started = Instant::now();
        // Every page answers well within the target's timeout: only an
        // overall deadline ends this.
        let err = tokio::time::timeout(Duration::from_secs(10), run(&ex, &action(a), &t, &[]))
            .await
            .expect("the action ended at its deadline")
            .unwrap_err();
        let expected = format!("timed out after 1s calling target queue_redis {progress}");
        assert_quick(started, &err, &expected);
    }
    let own =
        action(r#"redis = { target = "queue_redis", scan = "fk:*", limit = 100000, timeout = "300ms" }"#);
    let err = run(&ex, &own, &t, &[]).await.unwrap_err();
    assert!(err.to_string().starts_with("timed out after 300ms "), "{err}");
}

#[tokio::test]
async fn process_values_never_become_options() {
    let ex = proc_executor(3000);
    let echo = action(r#"process = { argv = ["echo", "{msg}"] }"#);
    for value in ["-n", "--help", "-e\\x41"] {
        let err = run(&ex, &echo, &BTreeMap::new(), &[("msg", value)])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "argument `{value}` refused: a value may not start with `-` where the program would read it as an option"
            )
        );
    }
    // A dash inside the value, or an option written in the catalog, is fine.
    let out = run(&ex, &echo, &BTreeMap::new(), &[("msg", "a-n")])
        .await
        .unwrap();
    assert_eq!(out.text, "a-n\n");
    let opt = action(r#"process = { argv = ["echo", "-n", "{msg}"] }"#);
    let out = run(&ex, &opt, &BTreeMap::new(), &[("msg", "x")]).await.unwrap();
    assert_eq!(out.text, "x");
    // After a literal `--` the program reads no more options: the value stays.
    let grep = action(r#"process = { argv = ["grep", "-F", "--", "{corr}", "app.log"] }"#);
    let rendered = opsbot::exec::render(&grep, &BTreeMap::new(), &args(&[("corr", "-v")])).unwrap();
    assert_eq!(
        rendered.to_string(),
        r#"process: ["grep", "-F", "--", "-v", "app.log"]"#
    );
    let no_end = action(r#"process = { argv = ["grep", "-F", "{corr}", "app.log"] }"#);
    assert!(opsbot::exec::render(&no_end, &BTreeMap::new(), &args(&[("corr", "-v")])).is_err());
}

#[test]
fn an_actions_budget_bounds_how_long_all_of_its_steps_may_run() {
    let t = targets(vec![
        target("queue_api", TargetKind::Http, "http://127.0.0.1:1"),
        target("queue_db", TargetKind::Sql, "postgres://127.0.0.1/x"),
    ]);
    let e = executor_with(Limits {
        default_timeout: Duration::from_secs(30),
        ..Limits::default()
    });
    let budget = |text: &str| e.budget(&action(text), &t).as_secs();
    assert_eq!(
        budget(r#"http = { target = "queue_api", path = "/x" }"#),
        5,
        "the target's"
    );
    assert_eq!(
        budget(r#"process = { argv = ["true"] }"#),
        30,
        "the process default"
    );
    // Steps in turn add up (finally steps too); a confirmation takes none of
    // the bot's time; of variants, the longest choice.
    let seq = r#"seq = { steps = [
        { process = { argv = ["a"], timeout = "2m" } },
        { internal = { confirm = { text = "x", within = "1h" } } },
        { sql = { target = "queue_db", query = "SELECT 1", timeout = "20s" } },
        { variants = { by = "k", choices = [
            { value = "a", action = { process = { argv = ["b"], timeout = "1m" } } },
            { value = "b", action = { http = { target = "queue_api", path = "/y" } } },
        ] } },
    ], finally = [{ http = { target = "queue_api", path = "/z" } }] }"#;
    assert_eq!(budget(seq), 120 + 20 + 60 + 5);
}
