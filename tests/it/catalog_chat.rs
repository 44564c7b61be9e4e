//! The shipped commands of the `chat` profile (seed 002): each one parsed,
//! authorized and rendered for a sample invocation (one snapshot), then run
//! for real: HTTP ones through the pipeline against a fake chat API and a
//! fake Deepseek, SQL ones against Postgres in a private schema. The profile
//! has no free-text arguments; values that try to smuggle syntax in through
//! its enums, ints and switches are refused by their kind, and the bound
//! enum values stay inert parameters.

use crate::support::{
    bot_env, both, bound, clock, config, pipeline_env, pipeline_for, render_cases, requests, run_shipped,
    run_shipped_env, say_in, serve, shipped_catalog_env, unique, FakeApi, PgSchema, TestStore,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use opsbot::catalog::Catalog;
use opsbot::engine::Outcome;
use opsbot::exec::{Executor, Limits};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A dba to request the archive, a responder of the security team, a chat
/// channel, and the chat profile bound to it.
const CHAT: &str = "[channels.C_CHAT]\nprofile = \"chat\"\n\n[people.dana]\nconsole = \"dana\"\nroles = [\"dba\"]\n\n[people.sam]\nconsole = \"sam\"\nroles = [\"security\"]\n";

/// The Deepseek key of these tests (the shipped target reads DEEPSEEK_API_KEY).
const KEY: &str = "sk-test-deepseek-0123456789";

/// The shipped catalog with the chat targets pointed at test services (the
/// account API, shipped unset, at the chat API's).
fn catalog(api: &str, db: &str) -> Catalog {
    shipped_catalog_env(
        &config(CHAT),
        &[
            ("OPSBOT_TARGET_CHAT_API", api),
            ("OPSBOT_TARGET_DEEPSEEK", api),
            ("OPSBOT_TARGET_CHAT_DB", db),
            ("OPSBOT_TARGET_CHAT_ACCOUNTS", api),
        ],
    )
}

#[test]
fn every_chat_command_parses_authorizes_and_renders() {
    let catalog = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/chat");
    let cases = [
        ("slack:U0STRANGER", "/ops health"),
        ("slack:U0STRANGER", "/ai health"),
        ("console:dave", "/ai provider"),
        ("console:alice", "/ai provider"),
        ("slack:U0STRANGER", "/db ping"),
        ("console:dave", "/db connections"),
        ("console:dave", "/db connections --by-state"),
        ("console:dave", "/db connections --by-state=\"true'; --\""),
        ("console:dave", "/db pool"),
        ("console:alice", "/db slow"),
        ("console:alice", "/db slow --min-ms 250 --limit 5"),
        ("console:alice", "/db slow --limit \"5; DROP TABLE messages\""),
        ("console:dave", "/db long-running"),
        ("console:alice", "/db long-running"),
        ("console:alice", "/db column-stats"),
        ("console:alice", "/db column-stats --table messages"),
        (
            "console:alice",
            "/db column-stats --table \"messages' OR '1'='1\"",
        ),
        ("console:alice", "/db analyze"),
        ("console:alice", "/db analyze messages"),
        ("console:alice", "/db archive conversations"),
        ("console:dana", "/db archive conversations"),
        ("console:dana", "/db archive conversations --days 730"),
        ("console:dana", "/db archive conversations --days 30"),
        (
            "console:dana",
            "/db archive conversations --days \"365) OR (true\"",
        ),
        ("console:alice", "/db log-query top-errors"),
        ("console:alice", "/db log-query slow-endpoints"),
        ("console:alice", "/db log-query user-errors"),
        ("console:alice", "/db log-query auth-failures"),
        ("console:alice", "/db log-query \"top-errors' OR 1=1 --\""),
        ("console:dave", "/db log-query top-errors"),
        ("console:alice", "/security auth-failures"),
        ("console:dave", "/security auth-failures"),
        ("console:sam", "/security disable-account u-42"),
        ("console:sam", "/security disable-account \"u-42/../../admin\""),
        ("console:alice", "/security disable-account u-42"),
    ];
    insta::assert_snapshot!(render_cases(&catalog, &config(CHAT), "chat", &cases));
}

// ---------------------------------------------------------------- http, end to end

/// The chat app (`/api/health`) and Deepseek (`/health`) of seed 002, faked
/// at the wire. Deepseek accepts only `Bearer KEY` and echoes the header it
/// got, so a leak of the key would show in the output.
#[derive(Clone)]
struct FakeChat {
    url: String,
    /// Status of `/api/health` (the app answers 503 while a service is down).
    health_status: Arc<AtomicU16>,
    /// Authorization headers Deepseek received.
    auth: Arc<Mutex<Vec<String>>>,
}

impl FakeChat {
    async fn start() -> FakeChat {
        let fake = FakeChat {
            url: String::new(),
            health_status: Arc::new(AtomicU16::new(200)),
            auth: Arc::default(),
        };
        let app = Router::new()
            .route("/api/health", get(app_health))
            .route("/health", get(deepseek_health))
            .route(
                "/leak",
                get(|| async { format!("debug dump: DEEPSEEK_API_KEY={KEY}") }),
            )
            .with_state(fake.clone());
        let url = serve(app).await;
        FakeChat { url, ..fake }
    }
}

async fn app_health(State(f): State<FakeChat>) -> (StatusCode, Json<Value>) {
    let status = StatusCode::from_u16(f.health_status.load(Ordering::SeqCst)).expect("status");
    let body = json!({
        "status": "degraded",
        "services": {
            "database": "healthy",
            "ai": { "status": "degraded" },
            "liveScraper": "healthy",
            "imageScraper": "healthy",
            "contactService": "healthy",
            "cache": "healthy"
        },
        "metrics": { "responseTime": 40, "errorRate": 0.01, "uptime": 3600 },
        "timestamp": "2026-01-01T00:00:00Z"
    });
    (status, Json(body))
}

async fn deepseek_health(State(f): State<FakeChat>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    f.auth.lock().expect("lock").push(auth.clone());
    let status = if auth == format!("Bearer {KEY}") {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    (status, Json(json!({ "status": "ok", "you_sent": auth })))
}

#[tokio::test]
async fn http_commands_run_through_the_pipeline() {
    let cfg = config(CHAT);
    let env = bot_env(&[("DEEPSEEK_API_KEY", KEY)]);
    for t in both().await {
        let api = FakeChat::start().await;
        let p = pipeline_env(
            &cfg,
            catalog(&api.url, "postgres://127.0.0.1:1/chat"),
            t.store.clone(),
            clock(),
            &env,
        );
        let r = say_in(&p, "C_CHAT", "slack:U0STRANGER", "/ops health").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(r.text.starts_with("overall: degraded\n"), "{}", r.text);
        assert!(r.text.contains("\n    ⚠️ ai degraded"), "{}", r.text);
        let r = say_in(&p, "C_CHAT", "slack:U0STRANGER", "/ai health").await;
        let ai = "services.ai: {\"status\":\"degraded\"}\noverall: degraded";
        assert_eq!((r.outcome, r.text.as_str()), (Outcome::Done, ai));
        // While a service is down the app answers 503: still a health report.
        api.health_status.store(503, Ordering::SeqCst);
        let r = say_in(&p, "C_CHAT", "slack:U0STRANGER", "/ai health").await;
        assert_eq!((r.outcome, r.text.as_str()), (Outcome::Done, ai));
        let r = say_in(&p, "C_CHAT", "slack:U0STRANGER", "/ai provider").await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        let r = say_in(&p, "C_CHAT", "console:alice", "/ai provider").await;
        let accepted = r
            .text
            .starts_with("Deepseek accepts our key: GET /health → 200 in ");
        assert!(
            r.outcome == Outcome::Done && accepted && !r.text.contains(KEY),
            "{}",
            r.text
        );
        assert_eq!(*api.auth.lock().unwrap(), [format!("Bearer {KEY}")]);
        t.cleanup().await;
    }
}

/// SEC-11 against a fake of the account API its target documents: one
/// POST per account, a 404 shown as the failure it is, a dot segment
/// refused before anything is sent; while the target is unset (as shipped)
/// the command is refused, naming the variable to set.
#[tokio::test]
async fn disable_account_posts_to_the_configured_account_api_and_is_refused_while_unset() {
    let cfg = config(CHAT);
    for t in both().await {
        let api = FakeApi::start(&[(
            "POST",
            "/accounts/u-42/disable",
            json!({ "id": "u-42", "disabled": true }),
        )])
        .await;
        let c = shipped_catalog_env(&cfg, &[("OPSBOT_TARGET_CHAT_ACCOUNTS", &api.url)]);
        let p = pipeline_for(&cfg, c, t.store.clone(), clock());
        let r = say_in(&p, "C_CHAT", "console:sam", "/security disable-account u-42").await;
        assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
        assert!(
            r.text
                .starts_with("Account u-42 disabled: POST /accounts/u-42/disable → 200 in "),
            "{}",
            r.text
        );
        assert!(r.text.contains("\"disabled\": true"), "{}", r.text);
        let sent = api.take();
        assert_eq!(
            requests(&sent),
            [("POST".to_string(), "/accounts/u-42/disable".to_string())]
        );
        assert_eq!(sent[0].body, None, "no body");

        let r = say_in(&p, "C_CHAT", "console:sam", "/security disable-account nobody").await;
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
        assert!(r.text.contains("target chat_accounts answered 404"), "{}", r.text);
        let r = say_in(&p, "C_CHAT", "console:sam", "/security disable-account ..").await;
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
        let r = say_in(&p, "C_CHAT", "console:alice", "/security disable-account u-42").await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        assert_eq!(
            requests(&api.take()),
            [("POST".to_string(), "/accounts/nobody/disable".to_string())],
            "only the 404; the dot segment and the oncall's request sent nothing"
        );

        // As shipped: no URL for the account API.
        let unset = pipeline_for(&cfg, shipped_catalog_env(&cfg, &[]), t.store.clone(), clock());
        let r = say_in(&unset, "C_CHAT", "console:sam", "/security disable-account u-42").await;
        assert_eq!(
            (r.outcome, r.text.as_str()),
            (
                Outcome::Failed,
                "`/security disable-account` failed: target chat_accounts is not configured: set \
                 OPSBOT_TARGET_CHAT_ACCOUNTS to its URL (the command's profile file says what it \
                 must answer)"
            ),
            "{}",
            t.name
        );
        assert!(api.take().is_empty());
        t.cleanup().await;
    }
}

#[tokio::test]
async fn the_deepseek_key_comes_from_the_environment_and_is_redacted() {
    let api = FakeChat::start().await;
    let mut c = catalog(&api.url, "postgres://127.0.0.1:1/chat");
    let header = |c: &mut Catalog, value: String| {
        let t = c.targets.get_mut("deepseek").expect("shipped deepseek target");
        t.headers.insert("Authorization".into(), value);
    };
    // A variable of the test's own, absent from the bot's environment.
    let var = unique("OPSBOT_TEST_DEEPSEEK").to_uppercase();
    header(&mut c, format!("Bearer env:{var}"));
    let err = run_shipped(&c, "chat", "ai provider", &[]).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("target deepseek: header Authorization needs environment variable {var}, which is not set")
    );
    let out = run_shipped_env(&c, "chat", "ai provider", &[], &bot_env(&[(&var, KEY)]))
        .await
        .unwrap();
    assert_eq!(out.fields["you_sent"], "Bearer [redacted]");
    assert!(!out.text.contains(KEY), "{}", out.text);
    // Or from the file named by <VAR>_FILE.
    let from_file = format!("{var}_VIA_FILE");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("deepseek.key");
    std::fs::write(&path, format!("{KEY}\n")).expect("key file");
    header(&mut c, format!("Bearer env:{from_file}"));
    let env = bot_env(&[(&format!("{from_file}_FILE"), &path.display().to_string())]);
    let out = run_shipped_env(&c, "chat", "ai provider", &[], &env)
        .await
        .unwrap();
    assert_eq!(out.fields["you_sent"], "Bearer [redacted]");
    // A rejected key: the 401's body echoes it, the error shows it redacted.
    let wrong = format!("{var}_WRONG");
    header(&mut c, format!("Bearer env:{wrong}"));
    let env = bot_env(&[(&wrong, "sk-test-wrong-key-value")]);
    let err = run_shipped_env(&c, "chat", "ai provider", &[], &env)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("target deepseek answered 401 (expected 2xx): "),
        "{text}"
    );
    assert!(
        text.contains("Bearer [redacted]") && !text.contains("sk-test-wrong"),
        "{text}"
    );
}

#[tokio::test]
async fn the_deepseek_key_is_redacted_from_every_target_before_first_use() {
    let api = FakeChat::start().await;
    let c = catalog(&api.url, "postgres://127.0.0.1:1/chat");
    // A fresh executor whose first call goes to another target that leaks it.
    let leak: opsbot::catalog::Action =
        toml::from_str(r#"http = { target = "chat_api", path = "/leak" }"#).expect("action");
    let out = Executor::new(Limits::default(), vec![], bot_env(&[("DEEPSEEK_API_KEY", KEY)]))
        .execute(&leak, &c.targets, &Default::default())
        .await
        .unwrap();
    assert_eq!(out.text, "debug dump: DEEPSEEK_API_KEY=[redacted]");
}

// ---------------------------------------------------------------- sql

/// A private schema holding the seed's tables: conversations (two older than a
/// year, one of 100 days, one new), their archive, messages, and logs.
async fn chat_schema() -> PgSchema {
    let s = PgSchema::new().await;
    for sql in [
        "CREATE TABLE SCHEMA.conversations (id int PRIMARY KEY, title text, created_at timestamptz NOT NULL)",
        "CREATE TABLE SCHEMA.conversations_archive (LIKE SCHEMA.conversations)",
        "CREATE TABLE SCHEMA.messages (id serial PRIMARY KEY, \
         conversation_id int REFERENCES SCHEMA.conversations ON DELETE CASCADE, body text, created_at timestamptz)",
        "CREATE TABLE SCHEMA.logs (level text, message text, timestamp timestamptz, metadata jsonb)",
        "INSERT INTO SCHEMA.conversations VALUES (1, 'old', now() - interval '400 days'), \
         (2, 'old too', now() - interval '366 days'), (3, 'recent', now() - interval '100 days'), \
         (4, 'today', now())",
        "INSERT INTO SCHEMA.messages (conversation_id, body, created_at) \
         SELECT 1 + g % 4, 'm' || g, now() FROM generate_series(1, 40) g",
    ] {
        s.exec(sql).await;
    }
    s
}

/// Log lines for the four canned queries, inside and outside their windows.
async fn insert_logs(s: &PgSchema) {
    let rows = [
        (6, "error", "db timeout", "10 minutes", json!({"userId": "u7"})),
        (2, "error", "AI failed", "10 minutes", json!({"userId": "u8"})),
        (1, "error", "old failure", "2 days", json!({"userId": "u7"})),
        (
            2,
            "info",
            "API Request Completed",
            "5 minutes",
            json!({"endpoint": "/api/chat", "responseTime": 800}),
        ),
        (
            3,
            "info",
            "API Request Completed",
            "5 minutes",
            json!({"endpoint": "/api/health", "responseTime": 20}),
        ),
        (
            6,
            "warn",
            "Authentication Failed",
            "20 minutes",
            json!({"ip": "10.0.0.9"}),
        ),
        (
            2,
            "warn",
            "Authentication Failed",
            "20 minutes",
            json!({"ip": "10.0.0.8"}),
        ),
    ];
    for (n, level, message, ago, metadata) in rows {
        let sql = format!(
            "INSERT INTO SCHEMA.logs SELECT '{level}', '{message}', now() - interval '{ago}', '{metadata}'::jsonb \
             FROM generate_series(1, {n})"
        );
        s.exec(&sql).await;
    }
}

#[tokio::test]
async fn sql_reads_ping_connections_pool_slow_analyze() {
    let s = chat_schema().await;
    // Stands in for the extension's view (not installed on the test server).
    s.exec(
        "CREATE TABLE SCHEMA.pg_stat_statements (query text, calls bigint, mean_exec_time float8, \
         total_exec_time float8, rows bigint)",
    )
    .await;
    s.exec(
        "INSERT INTO SCHEMA.pg_stat_statements SELECT 'SELECT ' || g, g, g * 10.0, g * 100.0, g \
         FROM generate_series(1, 12) g",
    )
    .await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let ping = run_shipped(&c, "chat", "db ping", &[]).await.unwrap();
    assert_eq!(ping.fields["rows"], json!([{"ok": 1}]));
    let all = run_shipped(&c, "chat", "db connections", &[]).await.unwrap();
    assert_eq!(all.fields["rows"][0]["state"], "all");
    let pool = run_shipped(&c, "chat", "db pool", &[]).await.unwrap();
    let row = &pool.fields["rows"][0];
    let (active, max) = (
        row["active_connections"].as_i64().unwrap(),
        row["max_conn"].as_i64().unwrap(),
    );
    assert!(active >= 1 && max >= active, "{row}");
    let percent = row["connection_usage_percent"].as_f64().unwrap();
    assert!(
        (percent - (active * 100) as f64 / max as f64).abs() < 0.06,
        "{row}"
    );
    // The seed's defaults: no threshold, the 10 slowest.
    let slow = run_shipped(&c, "chat", "db slow", &[("min-ms", "0"), ("limit", "10")])
        .await
        .unwrap();
    assert_eq!(slow.fields["row_count"], 10);
    assert_eq!(slow.fields["rows"][0]["query"], "SELECT 12");
    let analyze = run_shipped(&c, "chat", "db analyze", &[]).await.unwrap();
    assert_eq!(analyze.summary, "sql: 0 rows");
    s.drop().await;
}

#[tokio::test]
async fn sql_long_running_shows_a_busy_backend_and_column_stats_one_table() {
    let s = chat_schema().await;
    s.exec("ANALYZE SCHEMA.messages").await;
    s.exec("ANALYZE SCHEMA.conversations").await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let marker = unique("busy");
    let busy = s.pool.clone();
    let sleeper_sql = format!("SELECT pg_sleep(30) /* {marker} */");
    let sleeper = tokio::spawn(async move { sqlx::query(&sleeper_sql).execute(&busy).await });
    // Wait until the sleeping query shows up (it runs on another connection).
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = loop {
        let out = run_shipped(&c, "chat", "db long-running", &[]).await.unwrap();
        let rows = out.fields["rows"].as_array().cloned().unwrap_or_default();
        let found = rows
            .iter()
            .find(|r| r["query"].as_str().is_some_and(|q| q.contains(&marker)));
        if let Some(r) = found {
            assert_eq!(r["state"], "active");
            assert!(
                r["age"].as_str().is_some() && r["query_start"].as_str().is_some(),
                "{r}"
            );
            break r["pid"].as_i64().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the sleeping query never showed: {}",
            out.text
        );
    };
    sqlx::query("SELECT pg_cancel_backend($1::int)")
        .bind(pid as i32)
        .execute(&s.pool)
        .await
        .unwrap();
    assert!(sleeper.await.unwrap().is_err(), "the sleeper was cancelled");
    let one = run_shipped(&c, "chat", "db column-stats", &[("table", "messages")])
        .await
        .unwrap();
    let tables: Vec<&str> = one.fields["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["tablename"].as_str().unwrap())
        .collect();
    assert!(
        !tables.is_empty() && tables.iter().all(|t| *t == "messages"),
        "{tables:?}"
    );
    let every = run_shipped(&c, "chat", "db column-stats", &[]).await.unwrap();
    assert!(
        every.fields["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["tablename"] == "conversations"),
        "{}",
        every.text
    );
    s.drop().await;
}

#[tokio::test]
async fn sql_log_queries_and_auth_failures() {
    let s = chat_schema().await;
    insert_logs(&s).await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    for (q, expected) in [
        (
            "top-errors",
            json!([
                {"item": "db timeout", "count": 6, "avg_ms": null},
                {"item": "AI failed", "count": 2, "avg_ms": null},
            ]),
        ),
        (
            "slow-endpoints",
            json!([{"item": "/api/chat", "count": 2, "avg_ms": 800.0}]),
        ),
        ("user-errors", json!([{"item": "u7", "count": 6, "avg_ms": null}])),
        (
            "auth-failures",
            json!([{"item": "10.0.0.9", "count": 6, "avg_ms": null}]),
        ),
        // Not a value the enum lets through; bound, it selects nothing.
        ("top-errors' OR 1=1 --", json!([])),
    ] {
        let out = run_shipped(&c, "chat", "db log-query", &[("q", q)])
            .await
            .unwrap();
        assert_eq!(out.fields["rows"], expected, "{q}");
    }
    let auth = run_shipped(&c, "chat", "security auth-failures", &[])
        .await
        .unwrap();
    assert_eq!(
        auth.fields["rows"],
        json!([{"ip_address": "10.0.0.9", "failed_attempts": 6}])
    );
    s.drop().await;
}

/// `(conversations, archived, messages)` row counts.
async fn counts(s: &PgSchema) -> (i64, i64, i64) {
    let q = format!(
        "SELECT (SELECT count(*) FROM {0}.conversations), (SELECT count(*) FROM {0}.conversations_archive), \
         (SELECT count(*) FROM {0}.messages)",
        s.name
    );
    sqlx::query_as(&q).fetch_one(&s.pool).await.unwrap()
}

#[tokio::test]
async fn archive_needs_a_dba_and_an_approver_and_moves_rows_with_one_cutoff() {
    let s = chat_schema().await;
    let t = TestStore::sqlite().await;
    let cfg = config(CHAT);
    let c = catalog("http://127.0.0.1:1", &s.url);
    let p = pipeline_for(&cfg, c.clone(), t.store.clone(), clock());
    let r = say_in(&p, "C_CHAT", "console:alice", "/db archive conversations").await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
    let r = say_in(&p, "C_CHAT", "console:dana", "/db archive conversations").await;
    assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
    assert!(
        r.text.contains("\npreview: 2 conversations (n 2 · cutoff "),
        "{}",
        r.text
    );
    let id = r.approval.expect("approval id");
    let r = say_in(&p, "C_CHAT", "console:alice", &format!("/approve a{id}")).await;
    assert_eq!(
        r.outcome,
        Outcome::NotPermitted,
        "oncall is not an approver: {}",
        r.text
    );
    assert_eq!(counts(&s).await, (4, 0, 40), "nothing ran before the approval");
    let r = say_in(&p, "C_CHAT", "console:bob", &format!("/approve a{id}")).await;
    let reply = "\nArchived conversations older than 365 days:\narchived\n--------\n2";
    assert!(
        r.outcome == Outcome::Done && r.text.ends_with(reply),
        "{}",
        r.text
    );
    // The two old conversations moved; their messages followed the foreign key.
    assert_eq!(counts(&s).await, (2, 2, 20));
    let cmd = c.get("chat", "db archive conversations").unwrap();
    let exec = opsbot::exec::Executor::new(opsbot::exec::Limits::default(), vec![], bot_env(&[]));
    let a = crate::support::args(&[("days", "90")]);
    let found = exec
        .preview(cmd.preview.as_ref().unwrap(), &c.targets, &a)
        .await
        .unwrap();
    assert_eq!(found.count, 1);
    let out = exec
        .execute_previewed(&cmd.action, &c.targets, &a, bound(cmd, &found))
        .await
        .unwrap();
    assert_eq!(out.fields["rows"], json!([{"archived": 1}]));
    assert_eq!(counts(&s).await, (1, 3, 10));
    t.cleanup().await;
    s.drop().await;
}
