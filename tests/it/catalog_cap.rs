//! The shipped commands of the `cap` profile (seed 000): each one parsed,
//! authorized and rendered for a sample invocation (one snapshot), then run
//! for real: HTTP ones through the pipeline against a fake of the platform's
//! API, `cache ping` against Redis, SQL ones against Postgres in a private
//! schema. Chat values that try to smuggle syntax in through ids, durations,
//! enums and ints are refused by their kind or stay one inert value.

use crate::support::{
    assert_each_sends, assert_each_sends_all, clock, column, config_enabling, pipeline_for, redis_url,
    render_cases, requests, run_shipped, say_in, shipped_catalog_env, FakeApi, PgSchema, Received, SendsAll,
    TestStore,
};
use opsbot::catalog::Catalog;
use opsbot::config::Config;
use opsbot::engine::{Outcome, Pipeline};
use serde_json::{json, Value};

/// A cap channel bound to the profile, with cap enabled besides queue and chat.
fn cfg() -> Config {
    config_enabling("[channels.C_CAP]\nprofile = \"cap\"\n", "cap")
}

/// The shipped catalog with the cap targets pointed at test services.
fn catalog(api: &str, db: &str) -> Catalog {
    shipped_catalog_env(
        &cfg(),
        &[
            ("OPSBOT_TARGET_CAP_API", api),
            ("OPSBOT_TARGET_CAP_DB", db),
            ("OPSBOT_TARGET_CAP_REDIS", &redis_url()),
        ],
    )
}

#[test]
fn every_cap_command_parses_authorizes_and_renders() {
    let catalog = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/cap");
    let cases = [
        ("slack:U0STRANGER", "/ops health"),
        ("slack:U0STRANGER", "/ops health --project proj_42"),
        ("slack:U0STRANGER", "/ops health --project \"42&projectId=1\""),
        ("slack:U0STRANGER", "/ops health --project .."),
        ("slack:U0STRANGER", "/ops errors"),
        ("console:dave", "/ops errors"),
        ("console:dave", "/ops errors --since 24h"),
        ("console:dave", "/ops errors --since 30m"),
        ("console:dave", "/ops errors --since \"30min&since=1y\""),
        ("console:dave", "/ops perf"),
        ("console:dave", "/ops perf --period 24h"),
        ("console:dave", "/ops report weekly"),
        ("console:dave", "/ops report monthly"),
        ("console:dave", "/ops report \"../admin\""),
        ("console:dave", "/ops failed-reports"),
        ("console:dave", "/ops failed-reports --since 24h"),
        ("console:dave", "/ops data data-freshness"),
        ("console:dave", "/ops data competitor-accessibility-check"),
        ("console:dave", "/ops data freshness"),
        ("console:dave", "/ops memory"),
        ("slack:U0STRANGER", "/queue health"),
        ("console:dave", "/queue requeue-failed"),
        ("console:alice", "/queue requeue-failed"),
        ("slack:U0STRANGER", "/cache ping"),
        ("console:alice", "/queue clear-stalled"),
        ("console:bob", "/cache flushdb"),
        ("console:bob", "/cache flushall"),
        ("slack:U0STRANGER", "/db ping"),
        ("console:dave", "/db connections"),
        ("console:dave", "/db connections --by-state"),
        ("console:dave", "/db connections --by-state=\"true'; --\""),
        ("console:dave", "/db slow"),
        ("console:alice", "/db slow"),
        ("console:alice", "/db slow --min-ms 250 --limit 5"),
        ("console:alice", "/db slow --limit \"5; DROP TABLE reports\""),
        ("console:dave", "/db table-sizes"),
        ("console:dave", "/db size"),
        ("console:alice", "/db column-stats"),
        ("console:alice", "/db column-stats --table reports"),
        ("console:alice", "/db column-stats --table \"reports' OR '1'='1\""),
        ("console:alice", "/db analyze"),
        ("console:alice", "/db archive reports"),
        ("console:bob", "/db archive reports"),
        ("console:bob", "/db archive reports --days 120"),
        ("console:bob", "/db archive reports --days 7"),
        ("console:bob", "/db archive reports --days \"90) OR (true\""),
        ("console:alice", "/db cleanup queue-jobs"),
        ("console:bob", "/db cleanup queue-jobs --days 30"),
        ("console:bob", "/db cleanup queue-jobs --days 91"),
        ("slack:U0STRANGER", "/deploy status"),
        ("console:dave", "/deploy flags"),
        ("console:dave", "/deploy verify"),
        ("slack:U0STRANGER", "/deploy verify"),
        ("console:dave", "/deploy test-report"),
        ("console:alice", "/deploy test-report"),
        ("console:alice", "/rollback"),
        ("console:alice", "/rollback --reason \"bad deploy\""),
        (
            "console:alice",
            "/rollback --emergency --disable comparative-reports-v2 --reason \"P0 #41\"",
        ),
        ("console:alice", "/rollback --emergency --disable \"a,b;c\""),
        ("console:alice", "/rollback --disable comparative-reports-v2"),
        ("console:alice", "/rollback --break-glass"),
        ("console:dave", "/rollback --emergency"),
    ];
    insta::assert_snapshot!(render_cases(&catalog, &cfg(), "cap", &cases));
}

// ---------------------------------------------------------------- http, end to end

/// The seed's healthy answer of the primary health dashboard (000 §Primary
/// Health Dashboard).
fn dashboard() -> Value {
    json!({
        "status": "healthy",
        "errors": {"timeout": 3, "validation": 1},
        "systemHealth": {
            "overall": "healthy", "reportGeneration": "healthy",
            "queueProcessing": "healthy", "database": "healthy"
        },
        "metrics": {
            "activeProjects": 150, "reportsGenerated24h": 45,
            "avgProcessingTime": "1.8min", "errorRate": "2.1%"
        }
    })
}

/// The platform's API as seed 000 names it.
async fn fake_cap() -> FakeApi {
    fake_cap_without(&[]).await
}

/// [`fake_cap`] where the paths `missing` answer 404.
async fn fake_cap_without(missing: &[&str]) -> FakeApi {
    let mut routes = vec![
        ("GET", "/api/debug/comparative-reports", dashboard()),
        ("GET", "/api/debug/error-rates", json!({"errorRate": "2.1%"})),
        ("GET", "/api/debug/performance-trends", json!({"trend": "flat"})),
        (
            "GET",
            "/api/debug/processing-bottlenecks",
            json!({"slowProjects": [{"projectId": "p9", "processingTime": 412}]}),
        ),
        (
            "GET",
            "/api/reports/failed-reports",
            json!([{"projectId": "p1", "error": "timeout"}]),
        ),
        ("GET", "/api/debug/memory-usage", json!({"heapUsedPercent": 61})),
        (
            "GET",
            "/api/queue/health",
            json!({"status": "healthy", "queueDepth": 12}),
        ),
        ("POST", "/api/queue/requeue-failed", json!({"requeued": 4})),
        (
            "GET",
            "/api/deployment/rollout-status",
            json!({"currentPhase": "10%"}),
        ),
        ("GET", "/api/deployment/health", json!({"status": "healthy"})),
        (
            "GET",
            "/api/debug/feature-flags",
            json!({"comparative-reports-v2": true}),
        ),
        ("POST", "/api/reports/test-generation", json!({"reportId": "r1"})),
        ("POST", "/api/deployment/rollback", json!({"success": true})),
    ];
    let reports = ["weekly", "monthly"].map(|k| format!("/api/debug/{k}-performance-report"));
    let checks = [
        "data-freshness",
        "data-freshness-audit",
        "competitor-health",
        "competitor-accessibility-check",
        "product-data-validation",
        "report-quality-metrics",
    ]
    .map(|c| format!("/api/debug/{c}"));
    for path in reports.iter().chain(&checks) {
        routes.push(("GET", path.as_str(), json!({"ok": true})));
    }
    routes.retain(|(_, path, _)| !missing.contains(path));
    FakeApi::start(&routes).await
}

/// A store, the fake API and a pipeline running the shipped catalog against it.
async fn http_pipeline() -> (TestStore, FakeApi, Pipeline) {
    let t = TestStore::sqlite().await;
    let api = fake_cap().await;
    let c = catalog(&api.url, "postgres://127.0.0.1:1/cap");
    let p = pipeline_for(&cfg(), c, t.store.clone(), clock());
    (t, api, p)
}

#[tokio::test]
async fn http_commands_run_through_the_pipeline() {
    let (t, api, p) = http_pipeline().await;
    let r = say_in(&p, "C_CAP", "slack:U0STRANGER", "/ops health").await;
    let health = "healthy: overall healthy · report generation healthy · queue healthy · database healthy\n\
                  active projects 150 · reports in 24h 45 (alert below 50/day)\n\
                  avg processing 1.8min (warning 2–5 min, critical over 5) · error rate 2.1% (warning 5–10 %, critical over 10)";
    assert_eq!((r.outcome, r.text.as_str()), (Outcome::Done, health));
    let r = say_in(&p, "C_CAP", "slack:U0STRANGER", "/queue health").await;
    assert!(
        r.outcome == Outcome::Done
            && r.text
                .starts_with("queue depth 12 (warning 50–100, critical over 100)\n"),
        "{}",
        r.text
    );
    let r = say_in(&p, "C_CAP", "slack:U0STRANGER", "/deploy status").await;
    assert!(r.text.starts_with("phase: 10%\n"), "{}", r.text);
    let sends = [
        (
            "slack:U0STRANGER",
            "/ops health --project p_7",
            "GET",
            "/api/debug/comparative-reports?projectId=p_7",
        ),
        (
            "console:dave",
            "/ops report weekly",
            "GET",
            "/api/debug/weekly-performance-report",
        ),
        (
            "console:dave",
            "/ops report monthly",
            "GET",
            "/api/debug/monthly-performance-report",
        ),
        (
            "console:dave",
            "/ops failed-reports",
            "GET",
            "/api/reports/failed-reports",
        ),
        (
            "console:dave",
            "/ops failed-reports --since 24h",
            "GET",
            "/api/reports/failed-reports?since=24h",
        ),
        (
            "console:dave",
            "/ops data data-freshness-audit",
            "GET",
            "/api/debug/data-freshness-audit",
        ),
        (
            "console:dave",
            "/ops data report-quality-metrics",
            "GET",
            "/api/debug/report-quality-metrics",
        ),
        ("console:dave", "/ops memory", "GET", "/api/debug/memory-usage"),
        ("console:dave", "/deploy flags", "GET", "/api/debug/feature-flags"),
        (
            "console:alice",
            "/deploy test-report",
            "POST",
            "/api/reports/test-generation",
        ),
    ];
    assert_each_sends(&p, "C_CAP", &api, &sends).await;
    const DASHBOARD: (&str, &str) = ("GET", "/api/debug/comparative-reports");
    const BOTTLENECKS: (&str, &str) = ("GET", "/api/debug/processing-bottlenecks");
    let seqs: [SendsAll; 5] = [
        (
            "console:dave",
            "/ops errors",
            &[("GET", "/api/debug/error-rates?since=30min"), DASHBOARD],
        ),
        (
            "console:dave",
            "/ops errors --since 7d",
            &[("GET", "/api/debug/error-rates?since=7d"), DASHBOARD],
        ),
        (
            "console:dave",
            "/ops perf",
            &[("GET", "/api/debug/performance-trends"), BOTTLENECKS],
        ),
        (
            "console:dave",
            "/ops perf --period 24h",
            &[("GET", "/api/debug/performance-trends?period=24h"), BOTTLENECKS],
        ),
        (
            "slack:U0STRANGER",
            "/deploy status",
            &[
                ("GET", "/api/deployment/rollout-status"),
                ("GET", "/api/deployment/health"),
            ],
        ),
    ];
    assert_each_sends_all(&p, "C_CAP", &api, &seqs).await;
    let r = say_in(&p, "C_CAP", "console:dave", "/ops errors").await;
    assert!(
        r.text.starts_with("errors by type: {\"timeout\":3,\"validation\":1}\n✓ 1/2 GET /api/debug/error-rates?since=30min → 200"),
        "{}",
        r.text
    );
    t.cleanup().await;
}

/// The five reads of `/deploy verify`, in the seed's order.
const VERIFY: [(&str, &str); 5] = [
    ("GET", "/api/debug/comparative-reports"),
    ("GET", "/api/debug/feature-flags"),
    ("GET", "/api/debug/error-rates?since=30min"),
    ("GET", "/api/deployment/rollout-status"),
    ("GET", "/api/deployment/health"),
];

#[tokio::test]
async fn deploy_verify_runs_the_post_deployment_checks_in_order() {
    let (t, api, p) = http_pipeline().await;
    let r = say_in(&p, "C_CAP", "slack:U0STRANGER", "/deploy verify").await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "support and up: {}", r.text);
    assert!(api.take().is_empty());
    let r = say_in(&p, "C_CAP", "console:dave", "/deploy verify").await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let sent = requests(&api.take());
    let expected: Vec<(String, String)> = VERIFY
        .iter()
        .map(|(m, u)| (m.to_string(), u.to_string()))
        .collect();
    assert_eq!(sent, expected);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(
        lines[0], "system healthy · error rate 2.1% (critical over 10 %) · phase 10%",
        "{}",
        r.text
    );
    let done: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with('✓')).collect();
    for (i, (line, (_, path))) in done.iter().zip(VERIFY).enumerate() {
        let start = format!("✓ {}/5 GET {path} → 200 in ", i + 1);
        assert!(line.starts_with(&start), "{start}: {}", r.text);
    }
    assert_eq!(done.len(), 5, "{}", r.text);
    t.cleanup().await;
}

#[tokio::test]
async fn deploy_verify_stops_at_a_failing_check_and_says_which() {
    let t = TestStore::sqlite().await;
    let api = fake_cap_without(&["/api/debug/error-rates"]).await;
    let c = catalog(&api.url, "postgres://127.0.0.1:1/cap");
    let p = pipeline_for(&cfg(), c, t.store.clone(), clock());
    let r = say_in(&p, "C_CAP", "console:dave", "/deploy verify").await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
    let sent = requests(&api.take());
    let ran: Vec<(String, String)> = VERIFY[..3]
        .iter()
        .map(|(m, u)| (m.to_string(), u.to_string()))
        .collect();
    assert_eq!(sent, ran, "the checks after the failing one did not run");
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(
        lines[0], "`/deploy verify` failed: step 3 of 5 failed; steps 4–5 did not run",
        "{}",
        r.text
    );
    assert!(
        lines[1].starts_with("✓ 1/5 GET /api/debug/comparative-reports → 200"),
        "{}",
        r.text
    );
    assert!(
        lines[2].starts_with("✓ 2/5 GET /api/debug/feature-flags → 200"),
        "{}",
        r.text
    );
    assert_eq!(
        lines[3..],
        [
            "✗ 3/5 http cap_api: GET /api/debug/error-rates?since=30min: target cap_api answered 404 (expected 2xx): {\"error\":\"no such route\"}",
            "· 4/5 not run: http cap_api: GET /api/deployment/rollout-status",
            "· 5/5 not run: http cap_api: GET /api/deployment/health",
        ],
        "{}",
        r.text
    );
    t.cleanup().await;
}

#[tokio::test]
async fn test_report_sends_the_seed_body_and_requeue_needs_an_sre() {
    let (t, api, p) = http_pipeline().await;
    let r = say_in(&p, "C_CAP", "console:alice", "/deploy test-report").await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let sent = Received {
        method: "POST".into(),
        uri: "/api/reports/test-generation".into(),
        body: Some(json!({"testMode": true})),
    };
    assert_eq!(api.take(), [sent]);
    let r = say_in(&p, "C_CAP", "console:dave", "/queue requeue-failed").await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
    let r = say_in(&p, "C_CAP", "console:alice", "/queue requeue-failed").await;
    assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
    let id = r.approval.expect("approval id");
    let r = say_in(&p, "C_CAP", "console:carol", &format!("/approve a{id}")).await;
    assert_eq!(
        r.outcome,
        Outcome::NotPermitted,
        "eng-manager is not an approver: {}",
        r.text
    );
    assert!(api.take().is_empty(), "nothing ran before the approval");
    let r = say_in(&p, "C_CAP", "console:bob", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    assert_eq!(
        requests(&api.take()),
        [("POST".to_string(), "/api/queue/requeue-failed".to_string())]
    );
    t.cleanup().await;
}

#[tokio::test]
async fn cache_ping_answers_pong() {
    let c = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/cap");
    let ping = run_shipped(&c, "cap", "cache ping", &[]).await.unwrap();
    assert_eq!(
        (ping.summary.as_str(), ping.text.as_str()),
        ("redis PING", "PONG")
    );
}

// ---------------------------------------------------------------- sql

/// A private schema with the seed's reports (two older than 90 days, one of
/// them archived already; one of 40 days; one new), projects and queue_jobs.
async fn cap_schema() -> PgSchema {
    let s = PgSchema::new().await;
    for sql in [
        "CREATE TABLE SCHEMA.projects (id int PRIMARY KEY, name text)",
        "CREATE TABLE SCHEMA.reports (id int PRIMARY KEY, project_id int, created_at timestamptz NOT NULL, \
         archived bool NOT NULL DEFAULT false)",
        "CREATE TABLE SCHEMA.queue_jobs (id int PRIMARY KEY, status text, completed_at timestamptz)",
        "INSERT INTO SCHEMA.projects SELECT g, 'p' || g FROM generate_series(1, 30) g",
        "INSERT INTO SCHEMA.reports VALUES (1, 1, now() - interval '200 days', false), \
         (2, 1, now() - interval '100 days', false), (3, 2, now() - interval '120 days', true), \
         (4, 2, now() - interval '40 days', false), (5, 3, now(), false)",
        // Stands in for the extension's view (not installed on the test server).
        "CREATE TABLE SCHEMA.pg_stat_statements (query text, calls bigint, mean_exec_time float8, \
         total_exec_time float8, rows bigint)",
        "INSERT INTO SCHEMA.pg_stat_statements SELECT 'SELECT ' || g, g, g * 250.0, g * 1000.0, g \
         FROM generate_series(1, 12) g",
    ] {
        s.exec(sql).await;
    }
    s
}

#[tokio::test]
async fn sql_reads_ping_connections_slow_sizes_stats() {
    let s = cap_schema().await;
    s.exec("ANALYZE SCHEMA.reports").await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let run = |name: &'static str, a: &'static [(&'static str, &'static str)]| {
        let c = c.clone();
        async move { run_shipped(&c, "cap", name, a).await.unwrap() }
    };
    assert_eq!(run("db ping", &[]).await.fields["rows"], json!([{"ok": 1}]));
    let all = run("db connections", &[]).await;
    assert_eq!(all.fields["rows"][0]["state"], "all");
    // The seed's defaults: slower than 1000 ms on average, the 10 slowest.
    let slow = run("db slow", &[("min-ms", "1000"), ("limit", "10")]).await;
    let expected: Vec<String> = (5..=12).rev().map(|g| format!("SELECT {g}")).collect();
    assert_eq!(column(&slow.fields["rows"], "query"), expected);
    let sizes = run("db table-sizes", &[]).await;
    let tables = column(&sizes.fields["rows"], "tablename");
    assert!(tables.iter().any(|t| t == "reports"), "{}", sizes.text);
    let size = run("db size", &[]).await;
    assert!(size.fields["rows"][0]["size"].as_str().is_some(), "{}", size.text);
    let stats = run("db column-stats", &[("table", "reports")]).await;
    let tables = column(&stats.fields["rows"], "tablename");
    assert!(
        !tables.is_empty() && tables.iter().all(|t| t == "reports"),
        "{}",
        stats.text
    );
    // Bound, an enum-shaped injection is one value that names no table.
    let none = run("db column-stats", &[("table", "reports' OR '1'='1")]).await;
    assert_eq!(none.fields["rows"], json!([]));
    assert_eq!(run("db analyze", &[]).await.summary, "sql: 0 rows");
    s.drop().await;
}

/// `(archived, not archived)` reports.
async fn archived(s: &PgSchema) -> (i64, i64) {
    let q = format!(
        "SELECT count(*) FILTER (WHERE archived), count(*) FILTER (WHERE NOT archived) FROM {}.reports",
        s.name
    );
    sqlx::query_as(&q).fetch_one(&s.pool).await.unwrap()
}

#[tokio::test]
async fn archive_reports_needs_an_sre_and_marks_only_old_unarchived_rows() {
    let s = cap_schema().await;
    let t = TestStore::sqlite().await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let p = pipeline_for(&cfg(), c.clone(), t.store.clone(), clock());
    let r = say_in(&p, "C_CAP", "console:alice", "/db archive reports").await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
    assert_eq!(archived(&s).await, (1, 4));
    let r = say_in(&p, "C_CAP", "console:bob", "/db archive reports").await;
    let reply = "Marked reports older than 90 days as archived:\narchived\n--------\n2";
    assert!(
        r.outcome == Outcome::Done && r.text.ends_with(reply),
        "{}",
        r.text
    );
    assert_eq!(archived(&s).await, (3, 2));
    let out = run_shipped(&c, "cap", "db archive reports", &[("days", "30")])
        .await
        .unwrap();
    assert_eq!(out.fields["rows"], json!([{"archived": 1}]));
    assert_eq!(archived(&s).await, (4, 1));
    t.cleanup().await;
    s.drop().await;
}

// ---------------------------------------------------------------- /rollback

/// cap with a P0 policy (break-glass needs an open rank-1 incident) and a
/// tech-lead besides the shared people.
fn rollback_cfg() -> Config {
    config_enabling(
        r#"
[channels.C_CAP]
profile = "cap"

[people.tina]
console = "tina"
roles = ["tech-lead"]

[rotations.primary]
members = ["alice", "bob"]
length = "1w"
handoff = "mon 09:00"
tz = "UTC"

[policies.cap]
scale = ["P0", "P1"]
channel = ["slack:C_INC"]

[policies.cap.P0]
ack = "5m"
steps = [{ after = "0s", to = ["rotation:primary"], stop = "ack" }]

[policies.cap.P1]
ack = "15m"
steps = [{ after = "0s", to = ["rotation:primary"], stop = "ack" }]
"#,
        "cap",
    )
}

async fn rollback_pipeline() -> (TestStore, FakeApi, Pipeline) {
    let t = TestStore::sqlite().await;
    let api = fake_cap().await;
    let c = catalog(&api.url, "postgres://127.0.0.1:1/cap");
    let p = pipeline_for(&rollback_cfg(), c, t.store.clone(), clock());
    (t, api, p)
}

/// What a rollback sends: the POST with `body`, then the rollout status.
fn rollback_sent(body: Value) -> Vec<Received> {
    vec![
        Received {
            method: "POST".into(),
            uri: "/api/deployment/rollback".into(),
            body: Some(body),
        },
        Received {
            method: "GET".into(),
            uri: "/api/deployment/rollout-status".into(),
            body: None,
        },
    ]
}

/// Opens an approval for `text` as alice (oncall) and answers its id.
async fn rollback_requested(p: &Pipeline, text: &str, needs: &str) -> i64 {
    let r = say_in(p, "C_CAP", "console:alice", text).await;
    assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
    assert!(r.text.contains(needs), "{needs:?} in {}", r.text);
    r.approval.expect("approval id")
}

/// RB-2 then RB-1: the same words, each form approved by its own roles
/// (runbooks.md §1), the wrong role refused and nothing sent before the
/// approval; the emergency body carries the features as a JSON array.
#[tokio::test]
async fn rollback_forms_are_approved_by_their_own_roles() {
    let (t, api, p) = rollback_pipeline().await;
    let r = say_in(&p, "C_CAP", "console:dave", "/rollback").await;
    assert_eq!(
        r.outcome,
        Outcome::NotPermitted,
        "support is not oncall: {}",
        r.text
    );

    let id = rollback_requested(&p, "/rollback --reason \"bad deploy\"", "sre or tech-lead").await;
    let r = say_in(&p, "C_CAP", "console:carol", &format!("/approve a{id}")).await;
    assert_eq!(
        r.outcome,
        Outcome::NotPermitted,
        "eng-manager approves only the emergency form: {}",
        r.text
    );
    assert!(api.take().is_empty(), "nothing ran before the approval");
    let r = say_in(&p, "C_CAP", "console:tina", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    assert!(r.text.contains("\nrolled back · phase now 10%\n"), "{}", r.text);
    assert_eq!(
        api.take(),
        rollback_sent(json!({"reason": "bad deploy", "emergencyRollback": false}))
    );

    let text = "/rollback --emergency --disable comparative-reports-v2,report-cache --reason \"P0 #41\"";
    let id = rollback_requested(&p, text, "eng-manager or sre").await;
    let r = say_in(&p, "C_CAP", "console:tina", &format!("/approve a{id}")).await;
    assert_eq!(
        r.outcome,
        Outcome::NotPermitted,
        "tech-lead approves only the planned form: {}",
        r.text
    );
    let r = say_in(&p, "C_CAP", "console:alice", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "the requester: {}", r.text);
    assert!(api.take().is_empty(), "nothing ran before the approval");
    let r = say_in(&p, "C_CAP", "console:carol", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let body = json!({
        "reason": "P0 #41",
        "emergencyRollback": true,
        "disableFeatures": ["comparative-reports-v2", "report-cache"]
    });
    assert_eq!(api.take(), rollback_sent(body));

    let r = say_in(&p, "C_CAP", "console:alice", "/rollback --disable report-cache").await;
    assert_eq!(r.outcome, Outcome::Usage, "{}", r.text);
    assert!(
        r.text.starts_with("`--disable` is only used with --emergency."),
        "{}",
        r.text
    );
    t.cleanup().await;
}

/// Only the emergency form breaks glass, and only in an open P0 of cap;
/// `/help` shows both forms' approvers (the listings: `cli.rs`).
#[tokio::test]
async fn only_the_emergency_rollback_breaks_glass_and_help_shows_both_forms() {
    let (t, api, p) = rollback_pipeline().await;
    let r = say_in(&p, "C_CAP", "console:alice", "/rollback --break-glass").await;
    assert_eq!(r.outcome, Outcome::Usage, "{}", r.text);
    assert!(
        r.text
            .contains("`/rollback` (without --emergency) has no break-glass"),
        "{}",
        r.text
    );
    let r = say_in(
        &p,
        "C_CAP",
        "console:alice",
        "/rollback --emergency --break-glass",
    )
    .await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
    assert!(r.text.contains("needs an open P0 incident of cap"), "{}", r.text);
    assert!(api.take().is_empty());
    let r = say_in(
        &p,
        "C_CAP",
        "console:alice",
        "/incident declare P0 error rate 17 %",
    )
    .await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let r = say_in(
        &p,
        "C_CAP",
        "console:alice",
        "/rollback --emergency --reason \"P0\" --break-glass",
    )
    .await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    assert_eq!(
        api.take(),
        rollback_sent(json!({"reason": "P0", "emergencyRollback": true}))
    );
    let r = say_in(&p, "C_CAP", "console:alice", "/help rollback").await;
    assert!(
        r.text.contains(
            "Approval (the requester cannot approve):\n\
             • --emergency: 1 approval from eng-manager or sre, valid for 15m; --break-glass in an open rank-1 incident\n\
             • without --emergency: 1 approval from sre or tech-lead, valid for 15m"
        ),
        "{}",
        r.text
    );
    t.cleanup().await;
}
