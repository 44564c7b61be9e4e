//! Previews of destructive commands (runbooks.md §0): the preview runs when
//! the approval is requested, is stored with it and shown on its card, and
//! execution touches only the previewed items that still match. On real
//! Redis (keys under a prefix of their own, or a private redis-server for
//! the flushes), real Postgres (a database or schema of its own) and both
//! store backends.

use crate::fake_discord::Call;
use crate::support::{
    args, both, bound, clock, config, config_enabling, eventually, pg_url, pipeline_for, redis_url, say,
    say_in, shipped_catalog_env, unique, Keys, PgSchema, TestApp,
};
use opsbot::approval::State;
use opsbot::catalog::Catalog;
use opsbot::engine::Outcome;
use opsbot::exec::{Executor, Limits};
use std::time::{Duration, Instant};

/// The shipped catalog with the queue's Redis and Postgres pointed at `redis` and `db`.
fn catalog(redis: &str, db: &str) -> Catalog {
    shipped_catalog_env(
        &config(""),
        &[
            ("OPSBOT_TARGET_QUEUE_API", "http://127.0.0.1:1"),
            ("OPSBOT_TARGET_QUEUE_REDIS", redis),
            ("OPSBOT_TARGET_QUEUE_DB", db),
        ],
    )
}

/// Sets `n` keys `<prefix><name>:<i>`.
async fn fill(k: &mut Keys, name: &str, n: usize) {
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.set(format!("{}{name}:{i}", k.prefix), i).ignore();
    }
    let _: () = pipe.query_async(&mut k.conn).await.unwrap();
}

/// The keys matching `pattern` now, sorted.
async fn matching(k: &mut Keys, pattern: &str) -> Vec<String> {
    let mut out = crate::support::scan_all(&mut k.conn, pattern).await;
    out.sort();
    out
}

#[tokio::test]
async fn pattern_delete_previews_asks_and_unlinks_only_the_previewed_keys_still_there() {
    for t in both().await {
        let mut k = Keys::new().await;
        fill(&mut k, "scene", 1214).await;
        let pattern = format!("{}scene:*", k.prefix);
        let c = catalog(&redis_url(), "postgres://127.0.0.1:1/x");
        let p = pipeline_for(&config(""), c.clone(), t.store.clone(), clock());
        let r = say(&p, "console:alice", &format!("/cache delete {pattern}")).await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
        assert!(r.text.contains("\npreview: 1 214 keys ("), "{}", r.text);
        let id = r.approval.unwrap();
        let stored = t.store.approval(id).await.unwrap().unwrap();
        let preview = stored.preview.expect("the preview is stored with the approval");
        assert_eq!(
            (preview.count, preview.complete, preview.samples.len()),
            (1214, true, 5)
        );
        assert_eq!(preview.items.as_ref().map(Vec::len), Some(1214));

        // After the preview: two keys appear, one previewed key goes.
        fill(&mut k, "scene:new", 2).await;
        let gone = format!("{}scene:7", k.prefix);
        k.cmd(redis::cmd("DEL").arg(&gone)).await;

        // A restarted opsbot (a new pipeline over the database opened
        // again) runs it from what was stored.
        let restarted = pipeline_for(&config(""), c, t.reopen().await, clock());
        let r = say(&restarted, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}: {}", t.name, r.text);
        assert!(
            r.text.contains(
                "UNLINK in 3 batches · 1 213 deleted · 2 keys created since the preview untouched · 1 key previewed already gone"
            ),
            "{}",
            r.text
        );
        let left = matching(&mut k, &pattern).await;
        assert_eq!(
            left,
            [
                format!("{}scene:new:0", k.prefix),
                format!("{}scene:new:1", k.prefix)
            ]
        );
        let a = t.store.approval(id).await.unwrap().unwrap();
        assert_eq!(a.state, State::Succeeded);
        k.cleanup(&[]).await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn nothing_matched_bare_star_and_a_failed_preview_open_no_approval() {
    for t in both().await {
        let k = Keys::new().await;
        let p = pipeline_for(
            &config(""),
            catalog(&redis_url(), "postgres://127.0.0.1:1/x"),
            t.store.clone(),
            clock(),
        );
        let none = say(
            &p,
            "console:alice",
            &format!("/cache delete {}nothing:*", k.prefix),
        )
        .await;
        assert_eq!(none.outcome, Outcome::Done, "{}", none.text);
        assert_eq!(
            none.text,
            "nothing to do: the preview of `/cache delete` found no keys; no approval was opened"
        );
        for (pattern, reason) in [
            ("*", "pattern `*` refused: it must start with gemini: or project:"),
            (
                "other:*",
                "pattern `other:*` refused: it must start with gemini: or project:",
            ),
        ] {
            let r = say(&p, "console:alice", &format!("/cache delete {pattern}")).await;
            assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
            assert!(
                r.text
                    .starts_with("refused: the preview of `/cache delete` failed, so nothing was requested:")
                    && r.text.ends_with(reason),
                "{}",
                r.text
            );
        }
        let down = pipeline_for(
            &config(""),
            catalog("redis://127.0.0.1:1", "postgres://127.0.0.1:1/x"),
            t.store.clone(),
            clock(),
        );
        let r = say(&down, "console:alice", &format!("/cache delete {}x:*", k.prefix)).await;
        assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
        assert!(
            r.text
                .contains("failed, so nothing was requested: target queue_redis"),
            "{}",
            r.text
        );
        let pending = t.store.pending_approvals(i64::MAX / 2).await.unwrap();
        assert!(pending.is_empty(), "{}: {pending:?}", t.name);
        assert!(
            t.store.approval(1).await.unwrap().is_none(),
            "nothing half-opened"
        );
        t.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_and_discord_cards_show_the_count_and_samples() {
    for t in both().await {
        let mut k = Keys::new().await;
        fill(&mut k, "card", 12).await;
        let app = TestApp::spawn(t.store.clone()).await;
        let pattern = format!("{}card:*", k.prefix);
        assert_eq!(
            app.slash("U0ALICE", "/cache", &format!("delete {pattern}"))
                .await
                .status(),
            200
        );
        let posts = app
            .slack
            .wait_until(
                Duration::from_secs(5),
                |calls| calls.iter().any(|c| c.method == "chat.postMessage"),
                "the Slack card",
            )
            .await;
        let card = posts
            .iter()
            .find(|c| c.method == "chat.postMessage")
            .unwrap()
            .body
            .to_string();
        assert!(card.contains("*Preview:* 12 keys"), "{card}");
        assert!(card.contains(&format!("{}card:", k.prefix)), "samples: {card}");

        let options = serde_json::json!([{"type": 1, "name": "delete", "options": [{"type": 3, "name": "pattern", "value": pattern}]}]);
        let cmd = TestApp::discord_command("111", "cache", options);
        assert_eq!(app.discord(&cmd).await.status(), 200);
        let card = app
            .discord
            .wait_first(Call::is_edit_original, "the Discord card")
            .await;
        let fields = card.body["embeds"][0]["fields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let preview = fields
            .iter()
            .find(|f| f["name"] == "Preview")
            .unwrap_or_else(|| panic!("no Preview field: {}", card.text()));
        let value = preview["value"].as_str().unwrap();
        assert!(value.starts_with("12 keys\n```"), "{value}");
        assert_eq!(value.matches(&format!("{}card:", k.prefix)).count(), 5, "{value}");
        app.stop().await;
        k.cleanup(&[]).await;
        t.cleanup().await;
    }
}

// ---------------------------------------------------------------- postgres

/// A database of its own (pg_stat_activity is per server: D-7 only looks
/// at the target's own database, so other tests' backends are never hit).
struct OwnDb {
    name: String,
    url: String,
    admin: sqlx::PgPool,
}

impl OwnDb {
    async fn new() -> OwnDb {
        let admin = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
        let name = unique("kl");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        let base = pg_url();
        let (server, _) = base.rsplit_once('/').unwrap();
        OwnDb {
            url: format!("{server}/{name}"),
            name,
            admin,
        }
    }

    /// A backend of this database sleeping `secs` in a query; its pid.
    async fn sleeper(&self, secs: u32) -> (i32, tokio::task::JoinHandle<Result<(), sqlx::Error>>) {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&self.url).await.unwrap();
        let (pid,): (i32,) = sqlx::query_as("SELECT pg_backend_pid()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        let task = tokio::spawn(async move {
            sqlx::query(&format!("SELECT pg_sleep({secs})"))
                .execute(&mut conn)
                .await
                .map(|_| ())
        });
        (pid, task)
    }

    /// Waits until `pid` has run its query for more than a second.
    async fn running_over_a_second(&self, pid: i32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active' AND now() - query_start > interval '1.2 seconds'",
            )
            .bind(pid)
            .fetch_one(&self.admin)
            .await
            .unwrap();
            if n == 1 {
                return;
            }
            assert!(Instant::now() < deadline, "pid {pid} never ran for a second");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn active(&self, pid: i32) -> bool {
        let (n,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'")
                .bind(pid)
                .fetch_one(&self.admin)
                .await
                .unwrap();
        n == 1
    }

    async fn drop(self) {
        let _ = sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&self.admin)
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_long_terminates_only_previewed_pids_that_still_run() {
    for t in both().await {
        let db = OwnDb::new().await;
        let (long, long_task) = db.sleeper(60).await;
        let (short, short_task) = db.sleeper(3).await;
        db.running_over_a_second(long).await;
        db.running_over_a_second(short).await;
        let p = pipeline_for(
            &config(""),
            catalog(&redis_url(), &db.url),
            t.store.clone(),
            clock(),
        );
        let r = say(&p, "console:alice", "/db kill-long --older-than 1s").await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
        assert!(r.text.contains("preview: 2 queries (pid "), "{}", r.text);
        let id = r.approval.unwrap();
        let mut items = t
            .store
            .approval(id)
            .await
            .unwrap()
            .unwrap()
            .preview
            .unwrap()
            .items
            .unwrap();
        items.sort();
        let mut expected = vec![long.to_string(), short.to_string()];
        expected.sort();
        assert_eq!(items, expected);

        // The short query finishes; a new long one starts after the preview.
        short_task.await.unwrap().expect("the short query ran to its end");
        let (late, late_task) = db.sleeper(60).await;
        db.running_over_a_second(late).await;

        let r = say(&p, "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(
            r.text
                .contains("1 of 2 previewed queries touched · 1 no longer matched (untouched)"),
            "{}",
            r.text
        );
        assert!(
            long_task.await.unwrap().is_err(),
            "the previewed long query was terminated"
        );
        assert!(db.active(late).await, "a query started after the preview runs on");
        late_task.abort();
        db.drop().await;
        t.cleanup().await;
    }
}

#[tokio::test]
async fn cleanup_deletes_with_the_cutoff_the_preview_fixed() {
    let s = PgSchema::new().await;
    s.exec(
        "CREATE TABLE SCHEMA.queue_jobs (id int PRIMARY KEY, status text NOT NULL, completed_at timestamptz)",
    )
    .await;
    s.exec(
        "INSERT INTO SCHEMA.queue_jobs VALUES
           (1, 'completed', now() - interval '10 days'), (2, 'completed', now() - interval '8 days'),
           (3, 'completed', now() - interval '2 days'), (4, 'failed', now() - interval '30 days')",
    )
    .await;
    let c = shipped_catalog_env(&config_enabling("", "cap"), &[("OPSBOT_TARGET_CAP_DB", &s.url)]);
    let cmd = c.get("cap", "db cleanup queue-jobs").unwrap();
    let exec = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]));
    let a = args(&[("days", "7")]);
    let found = exec
        .preview(cmd.preview.as_ref().unwrap(), &c.targets, &a)
        .await
        .unwrap();
    assert_eq!((found.count, found.items.is_none()), (2, true));
    let cutoff = found.values["cutoff"].clone();
    // A row that reaches the age only after the preview (just newer than
    // its cutoff): a delete computing now() again would take it too.
    s.exec(&format!(
        "INSERT INTO SCHEMA.queue_jobs VALUES (5, 'completed', '{cutoff}'::timestamptz + interval '10 milliseconds')"
    ))
    .await;
    let aged_sql = format!(
        "SELECT completed_at < now() - interval '7 days' FROM {}.queue_jobs WHERE id = 5",
        s.name
    );
    eventually("row 5 to age past 7 days", || async {
        let (aged,): (bool,) = sqlx::query_as(&aged_sql).fetch_one(&s.pool).await.unwrap();
        aged
    })
    .await;
    let out = exec
        .execute_previewed(&cmd.action, &c.targets, &a, bound(cmd, &found))
        .await
        .unwrap();
    assert_eq!(out.fields["rows"][0]["deleted"], 2, "{:?}", out.fields);
    let ids: Vec<(i32,)> = sqlx::query_as(&format!("SELECT id FROM {}.queue_jobs ORDER BY id", s.name))
        .fetch_all(&s.pool)
        .await
        .unwrap();
    assert_eq!(ids, [(3,), (4,), (5,)]);
}

// ---------------------------------------------------------------- flushes

/// A redis-server of the test's own on a free port (the flushes would
/// empty the shared one), stopped when dropped.
struct PrivateRedis {
    url: String,
    _child: tokio::process::Child,
}

impl PrivateRedis {
    async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server on PATH");
        let url = format!("redis://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redis::Client::open(url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
            {
                if redis::cmd("PING").query_async::<String>(&mut c).await.is_ok() {
                    break;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        PrivateRedis { url, _child: child }
    }

    async fn conn(&self, db: u8) -> redis::aio::MultiplexedConnection {
        redis::Client::open(format!("{}/{db}", self.url))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }

    async fn dbsize(&self, db: u8) -> i64 {
        redis::cmd("DBSIZE")
            .query_async(&mut self.conn(db).await)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn flushdb_previews_one_database_and_empties_only_it() {
    let r = PrivateRedis::start().await;
    let mut db3 = r.conn(3).await;
    let _: () = redis::pipe()
        .set("bull:reports:1", 1)
        .set("gemini:x", 1)
        .query_async(&mut db3)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("keep")
        .arg(1)
        .query_async(&mut r.conn(0).await)
        .await
        .unwrap();
    let c = catalog(&r.url, "postgres://127.0.0.1:1/x");
    let cmd = c.get("queue", "cache flushdb").unwrap();
    let exec = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]));
    let a = args(&[("db", "3")]);
    let found = exec
        .preview(cmd.preview.as_ref().unwrap(), &c.targets, &a)
        .await
        .unwrap();
    assert_eq!(found.count, 2);
    assert_eq!(found.samples[0], "db 3: 2 keys");
    assert!(
        found.samples[1].starts_with("bull:* queue keys live here (1 seen)"),
        "{:?}",
        found.samples
    );
    exec.execute_previewed(&cmd.action, &c.targets, &a, bound(cmd, &found))
        .await
        .unwrap();
    assert_eq!((r.dbsize(3).await, r.dbsize(0).await), (0, 1));
    // The SELECT stayed inside the script: the shared connection still reads db 0.
    let size = exec
        .execute(
            &c.get("queue", "cache size").unwrap().action,
            &c.targets,
            &args(&[]),
        )
        .await
        .unwrap();
    assert_eq!(size.fields["result"], 1);
    let empty = exec
        .preview(cmd.preview.as_ref().unwrap(), &c.targets, &a)
        .await
        .unwrap();
    assert!(empty.is_empty(), "an empty database is nothing to do");
}

#[tokio::test]
async fn flushall_previews_every_database_and_stalled_key_shows_type_and_size() {
    let r = PrivateRedis::start().await;
    let _: () = redis::cmd("SET")
        .arg("a")
        .arg(1)
        .query_async(&mut r.conn(0).await)
        .await
        .unwrap();
    let _: () = redis::pipe()
        .set("b", 1)
        .set("c", 1)
        .query_async(&mut r.conn(5).await)
        .await
        .unwrap();
    let _: () = redis::cmd("ZADD")
        .arg("queue:comparative-reports:stalled")
        .arg(1)
        .arg("job:1")
        .arg(2)
        .arg("job:2")
        .query_async(&mut r.conn(0).await)
        .await
        .unwrap();
    let exec = Executor::new(Limits::default(), vec![], crate::support::bot_env(&[]));
    let cap = shipped_catalog_env(
        &config_enabling("", "cap"),
        &[("OPSBOT_TARGET_CAP_REDIS", &r.url)],
    );
    let stalled = cap.get("cap", "queue clear-stalled").unwrap();
    let found = exec
        .preview(stalled.preview.as_ref().unwrap(), &cap.targets, &args(&[]))
        .await
        .unwrap();
    assert_eq!(
        (found.count, found.samples.clone()),
        (2, vec!["type zset".to_string(), "size 2".to_string()])
    );

    let c = catalog(&r.url, "postgres://127.0.0.1:1/x");
    let cmd = c.get("queue", "cache flushall").unwrap();
    let found = exec
        .preview(cmd.preview.as_ref().unwrap(), &c.targets, &args(&[]))
        .await
        .unwrap();
    assert_eq!(found.count, 4);
    assert_eq!(found.samples[..2], ["db0: 2 keys", "db5: 2 keys"]);
    exec.execute_previewed(&cmd.action, &c.targets, &args(&[]), bound(cmd, &found))
        .await
        .unwrap();
    eventually("FLUSHALL ASYNC to empty the server", || async {
        r.dbsize(0).await + r.dbsize(5).await == 0
    })
    .await;
    let found = exec
        .preview(stalled.preview.as_ref().unwrap(), &cap.targets, &args(&[]))
        .await
        .unwrap();
    assert!(found.is_empty(), "no stalled key: nothing to do");
}

/// The store keeps a preview with its approval, on both backends.
#[tokio::test]
async fn the_store_keeps_the_preview_with_the_approval() {
    for t in both().await {
        let p = pipeline_for(
            &config(""),
            catalog(&redis_url(), "postgres://127.0.0.1:1/x"),
            t.store.clone(),
            clock(),
        );
        let mut keys = Keys::new().await;
        fill(&mut keys, "s", 3).await;
        let r = say_in(
            &p,
            "C_QUEUE",
            "console:alice",
            &format!("/cache delete {}s:*", keys.prefix),
        )
        .await;
        let id = r.approval.expect(&r.text);
        let a = t.store.approval(id).await.unwrap().unwrap();
        let listed = t.store.pending_approvals(0).await.unwrap();
        assert_eq!(listed.iter().find(|x| x.id == id).unwrap().preview, a.preview);
        let pv = a.preview.unwrap();
        assert_eq!((pv.what.as_str(), pv.count, pv.samples.len()), ("keys", 3, 3));
        keys.cleanup(&[]).await;
        t.cleanup().await;
    }
}

// ---------------------------------------------------------------- http

/// A scrape channel, with scrape enabled besides queue and chat.
fn scrape_cfg() -> opsbot::config::Config {
    config_enabling("[channels.C_SCRAPE]\nprofile = \"scrape\"\n", "scrape")
}

fn scrape_catalog(api: &crate::support::FakeApi) -> Catalog {
    shipped_catalog_env(&scrape_cfg(), &[("OPSBOT_TARGET_SCRAPE_API", &api.url)])
}

/// alice's `/scrape clear-queue` against `api`.
async fn clear_queue(api: &crate::support::FakeApi, store: &opsbot::store::Store) -> opsbot::engine::Reply {
    let p = pipeline_for(&scrape_cfg(), scrape_catalog(api), store.clone(), clock());
    say_in(&p, "C_SCRAPE", "console:alice", "/scrape clear-queue").await
}

#[tokio::test]
async fn clear_queue_shows_the_queued_count_and_an_empty_queue_is_nothing_to_do() {
    use crate::support::{requests, FakeApi};
    for t in both().await {
        let api = FakeApi::start(&[
            (
                "GET",
                "/api/scraping/queue-status",
                serde_json::json!({"queued": 14, "running": 6}),
            ),
            (
                "DELETE",
                "/api/scraping/jobs/queue/clear",
                serde_json::json!({"cleared": 14}),
            ),
        ])
        .await;
        let r = clear_queue(&api, &t.store).await;
        assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
        assert!(
            r.text
                .ends_with("\npreview: 14 queued jobs (queued 14 · running 6)"),
            "{}",
            r.text
        );
        let id = r.approval.unwrap();
        assert_eq!(
            requests(&api.take()),
            [("GET".to_string(), "/api/scraping/queue-status".to_string())]
        );
        let p = pipeline_for(&scrape_cfg(), scrape_catalog(&api), t.store.clone(), clock());
        let r = say_in(&p, "C_SCRAPE", "console:bob", &format!("/approve a{id}")).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert_eq!(
            requests(&api.take()),
            [("DELETE".to_string(), "/api/scraping/jobs/queue/clear".to_string())]
        );

        let empty = FakeApi::start(&[(
            "GET",
            "/api/scraping/queue-status",
            serde_json::json!({"queued": 0, "running": 2}),
        )])
        .await;
        let r = clear_queue(&empty, &t.store).await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(
            r.text
                .starts_with("nothing to do: the preview of `/scrape clear-queue` found no queued jobs"),
            "{}",
            r.text
        );
        assert_eq!(requests(&empty.take()).len(), 1, "only the preview was sent");
        t.cleanup().await;
    }
}

#[tokio::test]
async fn remove_shows_the_jobs_state_and_refuses_a_job_that_is_not_there() {
    use crate::support::{requests, FakeApi};
    let t = crate::support::TestStore::sqlite().await;
    let job = serde_json::json!({"id": "1234", "state": "active", "timestamp": 1_700_000_000_000i64, "attemptsMade": 3});
    let api = FakeApi::start(&[
        ("GET", "/api/queue/ai-analysis/jobs/1234", job),
        (
            "DELETE",
            "/api/queue/ai-analysis/jobs/1234",
            serde_json::json!({"removed": true}),
        ),
    ])
    .await;
    let c = shipped_catalog_env(&config(""), &[("OPSBOT_TARGET_QUEUE_API", &api.url)]);
    let p = pipeline_for(&config(""), c, t.store.clone(), clock());
    let r = say(&p, "console:alice", "/queue remove ai-analysis 1234").await;
    assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
    assert!(
        r.text
            .ends_with("\npreview: 1 job (state active · timestamp 1700000000000 · attemptsMade 3)"),
        "{}",
        r.text
    );
    let r = say(&p, "console:bob", &format!("/approve a{}", r.approval.unwrap())).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let missing = say(&p, "console:alice", "/queue remove ai-analysis 999").await;
    assert_eq!(missing.outcome, Outcome::Failed, "{}", missing.text);
    assert!(missing.text.contains("answered 404"), "{}", missing.text);
    assert_eq!(
        requests(&api.take()),
        [
            ("GET".to_string(), "/api/queue/ai-analysis/jobs/1234".to_string()),
            (
                "DELETE".to_string(),
                "/api/queue/ai-analysis/jobs/1234".to_string()
            ),
            ("GET".to_string(), "/api/queue/ai-analysis/jobs/999".to_string()),
        ]
    );
    t.cleanup().await;
}

/// Break-glass skips the approval, not the preview: during a P0 the
/// previewed pids are terminated at once, and with none there is nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_long_with_break_glass_runs_the_preview_then_only_its_pids() {
    use crate::incidents::{declare, POLICY};
    for t in both().await {
        let db = OwnDb::new().await;
        let cfg = config(POLICY);
        let c = shipped_catalog_env(
            &cfg,
            &[
                ("OPSBOT_TARGET_QUEUE_DB", &db.url),
                ("OPSBOT_TARGET_QUEUE_API", "http://127.0.0.1:1"),
            ],
        );
        let p = pipeline_for(&cfg, c, t.store.clone(), clock());
        declare(&p, "console:alice", "P0 the database is stuck").await;
        let r = say(&p, "console:alice", "/db kill-long --older-than 1s --break-glass").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(
            r.text
                .starts_with("nothing to do: the preview of `/db kill-long` found no queries"),
            "{}",
            r.text
        );
        let (pid, task) = db.sleeper(60).await;
        db.running_over_a_second(pid).await;
        let r = say(&p, "console:alice", "/db kill-long --older-than 1s --break-glass").await;
        assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
        assert!(
            r.text
                .contains("1 of 1 previewed queries touched · 0 no longer matched"),
            "{}",
            r.text
        );
        assert!(task.await.unwrap().is_err(), "the previewed query was terminated");
        assert!(
            t.store.pending_approvals(0).await.unwrap().is_empty(),
            "no approval was opened"
        );
        db.drop().await;
        t.cleanup().await;
    }
}
