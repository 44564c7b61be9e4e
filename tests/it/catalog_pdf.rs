//! The shipped commands of the `pdf` profile (seed 004): each one parsed,
//! authorized and rendered for a sample invocation (one snapshot), then run
//! against Postgres in a private database holding the seed's tables and
//! Supabase's `auth` and `storage` schemas. Chat values reach the queries
//! only as bound durations and ints; values that try to smuggle SQL in are
//! refused by their kind.

use crate::support::{
    clock, column, config_enabling, pipeline_for, render_cases, run_shipped, say_in, shipped_catalog_env,
    PgDatabase, TestStore,
};
use opsbot::catalog::Catalog;
use opsbot::config::Config;
use opsbot::engine::Outcome;
use serde_json::{json, Value};

/// A pdf channel bound to the profile, with pdf enabled besides queue and chat.
fn cfg() -> Config {
    config_enabling("[channels.C_PDF]\nprofile = \"pdf\"\n", "pdf")
}

/// The shipped catalog with the pdf database at `db`.
fn catalog(db: &str) -> Catalog {
    shipped_catalog_env(&cfg(), &[("OPSBOT_TARGET_PDF_DB", db)])
}

#[test]
fn every_pdf_command_parses_authorizes_and_renders() {
    let catalog = catalog("postgres://127.0.0.1:1/pdf");
    let cases = [
        ("slack:U0STRANGER", "/queue status"),
        ("console:dave", "/queue stuck"),
        ("console:alice", "/queue stuck"),
        ("console:alice", "/queue stuck --older-than 1h30m"),
        (
            "console:alice",
            "/queue stuck --older-than \"30 minutes'::interval; DELETE FROM processing_jobs; --\"",
        ),
        ("console:dave", "/queue reset-stuck"),
        ("console:alice", "/queue reset-stuck"),
        (
            "console:alice",
            "/queue reset-stuck --older-than 2h --max-retries 5",
        ),
        ("console:alice", "/queue reset-stuck --max-retries 9"),
        ("console:alice", "/queue reset-stuck --max-retries \"3 OR 1=1\""),
        ("console:dave", "/db connections --by-state"),
        ("console:alice", "/db slow --min-ms 100"),
        ("console:dave", "/db table-sizes"),
        ("console:alice", "/db analyze"),
        ("console:alice", "/db error-types"),
        ("console:alice", "/db error-types --since 1h"),
        ("console:alice", "/db error-types --since \"1 hour) OR (true\""),
        ("console:dave", "/db auth-check"),
        ("console:alice", "/db auth-check"),
        ("console:alice", "/db rls"),
        ("console:alice", "/db rls --test"),
        ("console:alice", "/db orphans"),
    ];
    insta::assert_snapshot!(render_cases(&catalog, &cfg(), "pdf", &cases));
}

/// Job `n`'s id.
fn job(n: u8) -> String {
    format!("00000000-0000-0000-0000-00000000000{n}")
}

/// A private database with seed 004's tables: five jobs (1: processing, 45
/// minutes without update, file stored; 2: the same for 50 minutes but at the
/// retry cap, file missing; 3: processing, updated 5 minutes ago; 4: pending;
/// 5: completed, no file), error logs, Supabase's auth users and audit log,
/// storage objects, one RLS policy, and a stand-in for pg_stat_statements.
async fn pdf_database() -> PgDatabase {
    let db = PgDatabase::new().await;
    for sql in [
        "CREATE TABLE processing_jobs (id uuid PRIMARY KEY, status text NOT NULL, file_path text, \
         created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL, retry_count int NOT NULL DEFAULT 0, \
         error_message text)",
        "INSERT INTO processing_jobs VALUES \
         ('00000000-0000-0000-0000-000000000001', 'processing', 'a.pdf', now() - interval '2 hours', now() - interval '45 minutes', 0, NULL), \
         ('00000000-0000-0000-0000-000000000002', 'processing', 'b.pdf', now() - interval '3 hours', now() - interval '50 minutes', 3, 'timeout'), \
         ('00000000-0000-0000-0000-000000000003', 'processing', 'c.pdf', now() - interval '1 hour', now() - interval '5 minutes', 1, NULL), \
         ('00000000-0000-0000-0000-000000000004', 'pending', 'c.pdf', now() - interval '10 minutes', now(), 0, NULL), \
         ('00000000-0000-0000-0000-000000000005', 'completed', NULL, now() - interval '1 day', now(), 0, NULL)",
        "ALTER TABLE processing_jobs ENABLE ROW LEVEL SECURITY",
        "CREATE POLICY \"jobs are readable\" ON processing_jobs FOR SELECT USING (true)",
        "CREATE TABLE error_logs (error_type text, timestamp timestamptz)",
        "INSERT INTO error_logs SELECT 'pdf_parse', date_trunc('hour', now()) FROM generate_series(1, 3)",
        "INSERT INTO error_logs VALUES ('storage', date_trunc('hour', now())), ('storage', now() - interval '3 days')",
        "CREATE SCHEMA auth",
        "CREATE TABLE auth.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), email text)",
        "INSERT INTO auth.users (email) VALUES ('a@example.com'), ('b@example.com')",
        "CREATE TABLE auth.audit_log_entries (instance_id uuid, id uuid DEFAULT gen_random_uuid(), payload json, \
         created_at timestamptz, ip_address varchar(64))",
        "INSERT INTO auth.audit_log_entries (payload, created_at) VALUES \
         ('{\"action\": \"login\"}', now() - interval '5 minutes'), ('{\"action\": \"login\"}', now() - interval '6 minutes'), \
         ('{\"action\": \"logout\"}', now() - interval '7 minutes'), ('{\"action\": \"login\"}', now() - interval '2 hours')",
        "CREATE SCHEMA storage",
        "CREATE TABLE storage.objects (id uuid DEFAULT gen_random_uuid(), bucket_id text, name text)",
        "INSERT INTO storage.objects (bucket_id, name) VALUES ('pdf-processing', 'a.pdf'), ('pdf-processing', 'c.pdf')",
        // Stands in for the extension's view (not installed on the test server).
        "CREATE TABLE pg_stat_statements (query text, calls bigint, mean_exec_time float8, \
         total_exec_time float8, rows bigint)",
        "INSERT INTO pg_stat_statements SELECT 'SELECT ' || g, g, g * 10.0, g * 100.0, g FROM generate_series(1, 12) g",
    ] {
        db.exec(sql).await;
    }
    db
}

/// Rows of the shipped pdf command `name` run with `a`.
async fn rows(c: &Catalog, name: &str, a: &[(&str, &str)]) -> Value {
    let out = run_shipped(c, "pdf", name, a).await.unwrap();
    out.fields["rows"].clone()
}

#[tokio::test]
async fn sql_queue_status_and_stuck_jobs() {
    let db = pdf_database().await;
    let c = catalog(&db.url);
    let status = rows(&c, "queue status", &[]).await;
    assert_eq!(column(&status, "status"), ["completed", "pending", "processing"]);
    assert_eq!(column(&status, "jobs"), ["1", "1", "3"]);
    assert!(status[2]["avg_age_seconds"].as_i64().unwrap() >= 7000, "{status}");
    let stuck = rows(&c, "queue stuck", &[("older-than", "30m")]).await;
    assert_eq!(column(&stuck, "id"), [job(2), job(1)], "oldest update first");
    assert_eq!(
        (stuck[0]["retry_count"].clone(), stuck[0]["error_message"].clone()),
        (json!(3), json!("timeout"))
    );
    let recent = rows(&c, "queue stuck", &[("older-than", "1m")]).await;
    assert_eq!(recent.as_array().unwrap().len(), 3);
    db.drop().await;
}

/// `(status, retry_count)` of job `n`.
async fn state(db: &PgDatabase, n: u8) -> (String, i32) {
    sqlx::query_as("SELECT status, retry_count FROM processing_jobs WHERE id = $1::uuid")
        .bind(job(n))
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn reset_stuck_is_oncall_and_bounded_by_the_retry_cap() {
    let db = pdf_database().await;
    let t = TestStore::sqlite().await;
    let c = catalog(&db.url);
    let p = pipeline_for(&cfg(), c.clone(), t.store.clone(), clock());
    let r = say_in(&p, "C_PDF", "console:dave", "/queue reset-stuck").await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
    let r = say_in(&p, "C_PDF", "console:alice", "/queue reset-stuck").await;
    let reply = format!(
        "Reset to pending (not updated for 30m, fewer than 3 retries):\nid                                   | retry_count\n\
         -------------------------------------+------------\n{} | 1",
        job(1)
    );
    assert_eq!((r.outcome, r.text.as_str()), (Outcome::Done, reply.as_str()));
    // Job 2 is at the cap and stays for a human; job 3 is not stuck.
    assert_eq!(state(&db, 1).await, ("pending".into(), 1));
    assert_eq!(state(&db, 2).await, ("processing".into(), 3));
    assert_eq!(state(&db, 3).await, ("processing".into(), 1));
    let again = rows(
        &c,
        "queue reset-stuck",
        &[("older-than", "30m"), ("max-retries", "3")],
    )
    .await;
    assert_eq!(again, json!([]), "nothing left below the cap");
    let raised = rows(
        &c,
        "queue reset-stuck",
        &[("older-than", "30m"), ("max-retries", "5")],
    )
    .await;
    assert_eq!(raised, json!([{"id": job(2), "retry_count": 4}]));
    t.cleanup().await;
    db.drop().await;
}

#[tokio::test]
async fn sql_reads_of_errors_auth_rls_orphans() {
    let db = pdf_database().await;
    let c = catalog(&db.url);
    let errors = rows(&c, "db error-types", &[("since", "1d")]).await;
    assert_eq!(column(&errors, "error_type"), ["pdf_parse", "storage"]);
    assert_eq!(column(&errors, "errors"), ["3", "1"]);
    let auth = rows(&c, "db auth-check", &[]).await;
    assert_eq!(
        auth,
        json!([
            {"item": "users", "count": 2},
            {"item": "event login", "count": 2},
            {"item": "event logout", "count": 1},
        ])
    );
    let rls = rows(&c, "db rls", &[]).await;
    let policy = json!([{"tablename": "processing_jobs", "policyname": "jobs are readable", "permissive": "PERMISSIVE", "cmd": "SELECT"}]);
    assert_eq!(rls, policy);
    let orphans = rows(&c, "db orphans", &[]).await;
    assert_eq!(orphans, json!([{"id": job(2), "file_path": "b.pdf"}]));
    db.drop().await;
}

#[tokio::test]
async fn sql_reads_of_connections_slow_sizes_and_analyze() {
    let db = pdf_database().await;
    let c = catalog(&db.url);
    let all = rows(&c, "db connections", &[]).await;
    assert_eq!(all[0]["state"], "all");
    let slow = rows(&c, "db slow", &[("min-ms", "0"), ("limit", "10")]).await;
    assert_eq!(
        (slow.as_array().unwrap().len(), slow[0]["query"].clone()),
        (10, json!("SELECT 12"))
    );
    let sizes = rows(&c, "db table-sizes", &[]).await;
    let tables = column(&sizes, "tablename");
    assert!(
        tables.iter().any(|t| t == "processing_jobs") && !tables.iter().any(|t| t == "users"),
        "{tables:?}"
    );
    let analyze = run_shipped(&c, "pdf", "db analyze", &[]).await.unwrap();
    assert_eq!(analyze.summary, "sql: 0 rows");
    db.drop().await;
}
