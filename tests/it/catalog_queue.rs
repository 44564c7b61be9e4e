//! The shipped commands of the `queue` profile (seed 003): each one parsed,
//! authorized and rendered for a sample invocation (one snapshot), then run
//! for real: HTTP ones through the pipeline against the fake queue service,
//! Redis ones against Redis under a key prefix of their own, SQL ones against
//! Postgres in a private schema. Chat values that try to smuggle syntax in
//! are refused by their argument kind or stay one inert value.

use crate::support::{
    args, both, clock, config, pipeline_with, redis_url, render_cases, say, shipped_catalog_env, FakeTarget,
    Keys, PgSchema,
};
use opsbot::catalog::{Action, Catalog};
use opsbot::engine::Outcome;
use opsbot::exec::{self, Executor, Limits};
use serde_json::{json, Value};

/// A second sre, so that an sre-only request has someone to approve it.
const ERIN: &str = "[people.erin]\nconsole = \"erin\"\nroles = [\"sre\"]\n";

/// The shipped catalog with every queue target pointed at a test service.
fn catalog(api: &str, db: &str) -> Catalog {
    shipped_catalog_env(
        &config(ERIN),
        &[
            ("OPSBOT_TARGET_QUEUE_API", api),
            ("OPSBOT_TARGET_QUEUE_REDIS", &redis_url()),
            ("OPSBOT_TARGET_QUEUE_DB", db),
        ],
    )
}

#[test]
fn every_queue_command_parses_authorizes_and_renders() {
    let catalog = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/queue");
    let cases = [
        ("console:alice", "/queue pause-all"),
        ("console:alice", "/queue resume-all"),
        ("console:alice", "/queue retry-job ai-analysis 1234"),
        ("console:alice", "/queue retry-job ai-analysis ../../admin"),
        ("console:alice", "/queue retry-job ai-analysis \"12 34\""),
        ("console:alice", "/queue clean-all"),
        ("console:alice", "/queue remove ai-analysis 1234"),
        ("console:alice", "/queue remove ai-analysis ../../admin"),
        ("console:bob", "/queue clean-all"),
        ("console:dave", "/queue board"),
        ("slack:U0STRANGER", "/queue board"),
        ("console:alice", "/queue failed ai-analysis"),
        ("console:alice", "/queue failed ai-analysis --limit 3"),
        ("console:alice", "/queue failed ai-analysis --limit 51"),
        ("console:dave", "/queue failed ai-analysis"),
        ("slack:U0STRANGER", "/cache ping"),
        ("console:dave", "/cache hit-rate"),
        ("console:dave", "/cache size"),
        ("console:alice", "/cache get gemini:analysis:scene:123"),
        ("console:alice", "/cache get other:secret"),
        ("console:alice", "/cache get \"gemini:x\r\nFLUSHALL\""),
        ("console:dave", "/cache ttl gemini:analysis:scene:123"),
        ("console:dave", "/cache ttl \"a b\""),
        ("console:alice", "/cache keys gemini:analysis:*"),
        ("console:alice", "/cache keys *"),
        ("console:alice", "/cache keys other:*"),
        ("console:alice", "/cache keys \"project:*\r\nFLUSHALL\""),
        ("console:alice", "/cache count project:*"),
        ("console:alice", "/cache warm"),
        ("console:alice", "/cache delete gemini:analysis:*"),
        ("console:alice", "/cache delete *"),
        ("console:alice", "/cache delete \"gemini:x\r\nFLUSHALL\""),
        ("console:alice", "/cache flushdb --db 3"),
        ("console:bob", "/cache flushdb --db 3"),
        ("console:bob", "/cache flushdb --db 16"),
        ("console:bob", "/cache flushall"),
        ("slack:U0STRANGER", "/cache warm"),
        ("slack:U0STRANGER", "/db ping"),
        ("console:dave", "/db version"),
        ("console:dave", "/db connections"),
        ("console:dave", "/db connections --by-state"),
        ("console:dave", "/db connections --by-state=\"true'; --\""),
        ("console:alice", "/db slow"),
        ("console:alice", "/db slow --min-ms 250 --limit 5"),
        ("console:alice", "/db slow --min-ms \"100; DROP TABLE projects\""),
        ("console:dave", "/db slow"),
        ("console:alice", "/db index-usage"),
        ("console:alice", "/db missing-indexes"),
        ("console:dave", "/db table-sizes"),
        ("console:alice", "/db analyze"),
        ("console:alice", "/db analyze projects"),
        ("console:alice", "/db kill-long"),
        ("console:alice", "/db kill-long --older-than 30s"),
        ("console:alice", "/db kill-long --older-than \"1s'; --\""),
    ];
    insta::assert_snapshot!(render_cases(&catalog, &config(ERIN), "queue", &cases));
}

// ---------------------------------------------------------------- http, end to end

#[tokio::test]
async fn http_commands_run_through_the_pipeline() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline_with(&config(ERIN), t.store.clone(), &target.url, clock());
        for (text, hit, reply) in [
            ("/queue pause-all", "/api/queue/pause-all", "Paused every queue"),
            (
                "/queue resume-all",
                "/api/queue/resume-all",
                "Resumed every queue",
            ),
            (
                "/queue retry-job ai-analysis job:42",
                "/api/queue/ai-analysis/jobs/job:42/retry",
                "Retried job job:42 in ai-analysis",
            ),
            ("/cache warm", "/api/cache/warm", "Cache warming started"),
        ] {
            let r = say(&p, "console:alice", text).await;
            assert_eq!((r.outcome, r.text.as_str()), (Outcome::Done, reply), "{text}");
            assert_eq!(target.count("POST", hit), 1, "{text}");
        }
        let r = say(&p, "console:alice", "/queue retry-job ai-analysis ../admin").await;
        assert_eq!(r.outcome, Outcome::Usage, "{}", r.text);
        t.cleanup().await;
    }
}

#[tokio::test]
async fn queue_board_answers_the_link_without_calling_or_showing_credentials() {
    let target = FakeTarget::start().await;
    let port = target.url.rsplit(':').next().expect("port");
    let with_credentials = format!("http://ops:s3cret-board-pw@127.0.0.1:{port}/");
    let c = catalog(&with_credentials, "postgres://127.0.0.1:1/queue");
    let cmd = c.get("queue", "queue board").expect("queue board");
    let out = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]))
        .execute(&cmd.action, &c.targets, &args(&[]))
        .await
        .expect("a link");
    let link = format!("http://127.0.0.1:{port}/admin/queues");
    assert_eq!(
        (out.text.as_str(), &out.fields),
        (link.as_str(), &json!({ "url": link }))
    );
    assert!(
        !out.summary.contains("s3cret") && !out.summary.contains("ops:"),
        "{}",
        out.summary
    );
    assert!(target.hits.lock().unwrap().is_empty(), "nothing was called");
    let t = crate::support::TestStore::sqlite().await;
    let p = pipeline_with(&config(ERIN), t.store.clone(), &target.url, clock());
    let r = say(&p, "console:dave", "/queue board").await;
    let reply = format!("Bull Board: {}/admin/queues", target.url);
    assert_eq!((r.outcome, r.text.as_str()), (Outcome::Done, reply.as_str()));
    assert!(target.hits.lock().unwrap().is_empty(), "nothing was called");
    t.cleanup().await;
}

#[tokio::test]
async fn clean_all_needs_an_sre_to_request_and_another_to_approve() {
    for t in both().await {
        let target = FakeTarget::start().await;
        let p = pipeline_with(&config(ERIN), t.store.clone(), &target.url, clock());
        let r = say(&p, "console:alice", "/queue clean-all").await;
        assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
        let r = say(&p, "console:bob", "/queue clean-all").await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
        let id = r.approval.expect("approval id");
        let r = say(&p, "console:carol", &format!("/approve a{id}")).await;
        assert_eq!(
            r.outcome,
            Outcome::NotPermitted,
            "eng-manager is not an approver: {}",
            r.text
        );
        assert_eq!(target.count("POST", "/api/queue/clean-all"), 0);
        let r = say(&p, "console:erin", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(r.text.ends_with("\nCleaned every queue"), "{}", r.text);
        assert_eq!(target.count("POST", "/api/queue/clean-all"), 1);
        t.cleanup().await;
    }
}

// ---------------------------------------------------------------- redis

/// Runs the shipped queue command `name` with `args`.
async fn run_shipped(
    catalog: &Catalog,
    name: &str,
    a: &[(&str, &str)],
) -> Result<exec::ExecOutput, exec::ExecError> {
    crate::support::run_shipped(catalog, "queue", name, a).await
}

#[tokio::test]
async fn redis_reads_ping_size_hit_rate() {
    let c = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/queue");
    let ping = run_shipped(&c, "cache ping", &[]).await.unwrap();
    assert_eq!(
        (ping.summary.as_str(), ping.text.as_str()),
        ("redis PING", "PONG")
    );
    let size = run_shipped(&c, "cache size", &[]).await.unwrap();
    assert!(size.fields["result"].as_i64().is_some(), "{:?}", size.fields);
    let rate = run_shipped(&c, "cache hit-rate", &[]).await.unwrap();
    let re = regex::Regex::new(
        r"^(hit rate \d+\.\d% \((ok|warning|critical); hits \d+, misses \d+\)|no key lookups yet .*)$",
    )
    .unwrap();
    assert!(re.is_match(&rate.text), "{}", rate.text);
}

#[tokio::test]
async fn redis_get_returns_at_most_2kb_and_ttl_reads_one_key() {
    let c = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/queue");
    let mut k = Keys::new().await;
    let big = format!("{}big", k.prefix);
    let odd = format!("{}odd", k.prefix);
    k.cmd(
        redis::cmd("SET")
            .arg(&big)
            .arg("x".repeat(3000))
            .arg("EX")
            .arg(100),
    )
    .await;
    k.cmd(redis::cmd("SET").arg(&odd).arg("v\r\nFLUSHALL\r\n")).await;
    let out = run_shipped(&c, "cache get", &[("key", &big)]).await.unwrap();
    assert_eq!(out.fields["result"].as_str().map(str::len), Some(2048));
    let out = run_shipped(&c, "cache get", &[("key", &odd)]).await.unwrap();
    assert_eq!(out.fields["result"], "v\r\nFLUSHALL\r\n", "a value is data");
    let ttl = run_shipped(&c, "cache ttl", &[("key", &big)]).await.unwrap();
    let secs = ttl.fields["result"].as_i64().unwrap();
    assert!((1..=100).contains(&secs), "{secs}");
    let none = run_shipped(&c, "cache ttl", &[("key", &odd)]).await.unwrap();
    assert_eq!(none.fields["result"], -1);
    k.cleanup(&[]).await;
}

#[tokio::test]
async fn redis_keys_and_count_scan_inside_the_allow_list_only() {
    let c = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/queue");
    let mut k = Keys::new().await;
    let mut pipe = redis::pipe();
    for i in 0..60 {
        pipe.set(format!("{}scene:{i}", k.prefix), i).ignore();
    }
    let _: () = pipe.query_async(&mut k.conn).await.unwrap();
    let pattern = format!("{}scene:*", k.prefix);
    let scanned = |out: &exec::ExecOutput| json!([out.fields["count"], out.fields["complete"]]);
    let keys = run_shipped(&c, "cache keys", &[("pattern", &pattern)])
        .await
        .unwrap();
    assert_eq!(scanned(&keys), json!([50, false]));
    let count = run_shipped(&c, "cache count", &[("pattern", &pattern)])
        .await
        .unwrap();
    assert_eq!(scanned(&count), json!([60, true]));
    assert_eq!(count.summary, format!("redis SCAN {pattern}: 60 keys"));
    // A CRLF in the pattern is part of the one MATCH argument: nothing matches.
    let smuggled = format!("{pattern}\r\nFLUSHALL");
    let none = run_shipped(&c, "cache count", &[("pattern", &smuggled)])
        .await
        .unwrap();
    assert_eq!(none.fields["count"], 0);
    for p in ["*", "**", "bull:*", "*gemini:*"] {
        let err = run_shipped(&c, "cache keys", &[("pattern", p)])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("pattern `{p}` refused: it must start with gemini: or project:")
        );
    }
    k.cleanup(&[]).await;
}

/// The shipped `queue failed` with Bull's `bull:` prefix moved under `tag`.
fn failed_action(c: &Catalog, tag: &str) -> Action {
    let mut action = c.get("queue", "queue failed").expect("shipped").action.clone();
    let Action::Redis(r) = &mut action else {
        panic!("a redis action")
    };
    for el in r.command.iter_mut().flatten() {
        *el = el.replace("bull:", &format!("{tag}bull:"));
    }
    action
}

#[tokio::test]
async fn redis_failed_jobs_newest_first_with_reason() {
    let c = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/queue");
    let mut k = Keys::new().await;
    let base = format!("{}bull:ai-analysis:", k.prefix);
    for (id, at, reason) in [
        ("1", 100, "timeout"),
        ("2", 300, "x\r\nFLUSHALL"),
        ("3", 200, "quota"),
    ] {
        k.cmd(redis::cmd("ZADD").arg(format!("{base}failed")).arg(at).arg(id))
            .await;
        k.cmd(
            redis::cmd("HSET")
                .arg(format!("{base}{id}"))
                .arg("name")
                .arg("analyze")
                .arg("attemptsMade")
                .arg(3)
                .arg("failedReason")
                .arg(reason)
                .arg("stacktrace")
                .arg(format!("[\"Error: {reason}\\n    at worker.js:{id}\"]")),
        )
        .await;
    }
    let ex = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]));
    let action = failed_action(&c, &k.prefix);
    let a = args(&[("queue", "ai-analysis"), ("limit", "2")]);
    let out = ex.execute(&action, &c.targets, &a).await.unwrap();
    let items = out.fields["result"].as_array().expect("one line per job").clone();
    assert_eq!(items.len(), 2, "{items:?}");
    assert!(
        items[0]
            .as_str()
            .unwrap()
            .starts_with("2 analyze, attempts 3: x\r\nFLUSHALL | [\"Error: x"),
        "{items:?}"
    );
    assert!(
        items[1]
            .as_str()
            .unwrap()
            .starts_with("3 analyze, attempts 3: quota | "),
        "{items:?}"
    );
    let empty = failed_action(&c, &format!("{}none:", k.prefix));
    let out = ex.execute(&empty, &c.targets, &a).await.unwrap();
    assert_eq!(out.fields["result"], "no failed jobs");
    k.cleanup(&[]).await;
}

// ---------------------------------------------------------------- sql

fn columns(out: &exec::ExecOutput) -> Vec<String> {
    match out.fields["rows"].get(0) {
        Some(Value::Object(o)) => o.keys().cloned().collect(),
        _ => vec![],
    }
}

#[tokio::test]
async fn sql_ping_version_connections() {
    let s = PgSchema::new().await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let ping = run_shipped(&c, "db ping", &[]).await.unwrap();
    assert_eq!(ping.fields["rows"], json!([{"ok": 1}]));
    let v = run_shipped(&c, "db version", &[]).await.unwrap();
    assert!(v.fields["rows"][0]["version"]
        .as_str()
        .unwrap()
        .starts_with("PostgreSQL "));
    let all = run_shipped(&c, "db connections", &[]).await.unwrap();
    assert_eq!(all.fields["rows"].as_array().unwrap().len(), 1, "{}", all.text);
    assert_eq!(all.fields["rows"][0]["state"], "all");
    assert!(all.fields["rows"][0]["backends"].as_i64().unwrap() >= 1);
    let by_state = run_shipped(&c, "db connections", &[("by-state", "true")])
        .await
        .unwrap();
    let states: Vec<&str> = by_state.fields["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["state"].as_str())
        .collect();
    assert!(states.contains(&"active"), "our own query is active: {states:?}");
    s.drop().await;
}

#[tokio::test]
async fn sql_slow_statements_bound_threshold_and_limit() {
    let s = PgSchema::new().await;
    // Stands in for the extension's view (not installed on the test server).
    s.exec(
        "CREATE TABLE SCHEMA.pg_stat_statements (query text, calls bigint, mean_exec_time float8, \
         total_exec_time float8, rows bigint)",
    )
    .await;
    s.exec(
        "INSERT INTO SCHEMA.pg_stat_statements VALUES \
         ('SELECT * FROM scenes', 10, 450.25, 4502.5, 100), \
         ('SELECT * FROM projects', 5, 120.04, 600.2, 5), \
         ('SELECT 1', 1000, 0.01, 10, 1000)",
    )
    .await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let out = run_shipped(&c, "db slow", &[("min-ms", "100"), ("limit", "20")])
        .await
        .unwrap();
    assert_eq!(
        out.fields["rows"],
        json!([
            {"query": "SELECT * FROM scenes", "calls": 10, "mean_ms": 450.3, "total_ms": 4502.5, "rows": 100},
            {"query": "SELECT * FROM projects", "calls": 5, "mean_ms": 120.0, "total_ms": 600.2, "rows": 5},
        ])
    );
    let top = run_shipped(&c, "db slow", &[("min-ms", "0"), ("limit", "1")])
        .await
        .unwrap();
    assert_eq!(top.fields["row_count"], 1);
    s.drop().await;
}

#[tokio::test]
async fn sql_index_and_table_reports_and_analyze() {
    let s = PgSchema::new().await;
    s.exec("CREATE TABLE SCHEMA.scenes (id serial PRIMARY KEY, project_id int)")
        .await;
    s.exec("CREATE INDEX scenes_project ON SCHEMA.scenes (project_id)")
        .await;
    let c = catalog("http://127.0.0.1:1", &s.url);
    let usage = run_shipped(&c, "db index-usage", &[]).await.unwrap();
    assert!(usage.fields["row_count"].as_u64().unwrap() <= 20);
    assert_eq!(
        columns(&usage),
        ["idx_scan", "indexrelname", "relname", "schemaname"]
    );
    let missing = run_shipped(&c, "db missing-indexes", &[]).await.unwrap();
    assert!(missing.fields["row_count"].as_u64().unwrap() <= 50);
    let sizes = run_shipped(&c, "db table-sizes", &[]).await.unwrap();
    assert!(sizes.fields["row_count"].as_u64().unwrap() <= 20);
    let analyze = run_shipped(&c, "db analyze", &[]).await.unwrap();
    assert_eq!(analyze.summary, "sql: 0 rows");
    s.drop().await;
}
