//! The `seq` executor end to end: a catalog of its own whose steps call a fake
//! HTTP API, Redis and Postgres (a private schema), run through the pipeline.
//! Steps run in order; the first failure stops the seq and the reply says
//! which step failed, what ran before it and what did not run; a step that
//! would refuse its values stops the seq before anything ran; an approval
//! runs every step once and is bound to every step; secrets are redacted
//! from every step's part of a failure.

use crate::support::{
    clock, config, owned, pipeline_for, redis_url, requests, say_in, unique, FakeApi, PgSchema, StandIns,
    TestStore,
};
use opsbot::auth::Roles;
use opsbot::catalog::{self, Catalog};
use opsbot::engine::{Outcome, Pipeline};
use serde_json::json;
use std::collections::HashMap;

/// Four commands over the targets `api`, `r` and `db`: `seq release` pauses,
/// counts in Redis, logs in SQL and resumes (approved by an sre); `seq broken`
/// fails at its HTTP middle step, `seq bad-sql` at its SQL middle step.
const CATALOG: &str = r#"
[target.api]
kind = "http"
url = "http://127.0.0.1:1"

[target.r]
kind = "redis"
url = "redis://127.0.0.1:1"

[target.db]
kind = "sql"
url = "postgres://127.0.0.1:1/x"

[command.queue."seq release"]
summary = "Pause, count, log, resume"
args = { job = { kind = "id" }, key = { kind = "id" } }
risk = "write"
roles = ["oncall"]
approve = { roles = ["sre"], count = 1, ttl = "15m" }
action = { seq = [
  { http = { method = "POST", target = "api", path = "/api/pause" } },
  { redis = { target = "r", command = ["INCR", "{key}"] } },
  { sql = { target = "db", query = "INSERT INTO seq_log (job) VALUES ($1) RETURNING job", params = ["{job}"] } },
  { http = { method = "POST", target = "api", path = "/api/resume/{job}" } },
] }

[command.queue."seq broken"]
summary = "Its middle step answers 404"
risk = "read"
roles = ["anyone"]
action = { seq = [
  { http = { target = "api", path = "/api/first" } },
  { http = { target = "api", path = "/api/missing" } },
  { http = { target = "api", path = "/api/last" } },
] }

[command.queue."seq bad-sql"]
summary = "Its middle step reads a table that does not exist"
args = { key = { kind = "id" } }
risk = "write"
roles = ["oncall"]
action = { seq = [
  { http = { target = "api", path = "/api/first" } },
  { sql = { target = "db", query = "SELECT count(*) FROM no_such_table" } },
  { redis = { target = "r", command = ["INCR", "{key}"] } },
] }

[command.queue."seq nested"]
summary = "A seq of a seq"
risk = "read"
roles = ["anyone"]
reply = "phase {response.2.1.phase} · {response.1.ok}\n{response.steps}"
action = { seq = [
  { http = { target = "api", path = "/api/first" } },
  { seq = [
    { http = { target = "api", path = "/api/last" } },
    { http = { target = "api", path = "/api/missing" } },
  ] },
] }
"#;

fn catalog(api: &str, db: &str) -> Catalog {
    let env: HashMap<String, String> = [
        ("OPSBOT_TARGET_API", api.to_string()),
        ("OPSBOT_TARGET_R", redis_url()),
        ("OPSBOT_TARGET_DB", db.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let roles = Roles::new(&Default::default()).names();
    let ctx = catalog::Context {
        roles: &roles,
        env: &env,
    };
    catalog::load_str("seq.toml", CATALOG, &ctx).expect("seq catalog")
}

async fn fake_api() -> FakeApi {
    FakeApi::start(&[
        ("POST", "/api/pause", json!({"paused": true})),
        ("POST", "/api/resume/j_7", json!({"resumed": "j_7"})),
        ("GET", "/api/first", json!({"ok": "first ok"})),
        ("GET", "/api/last", json!({"phase": "50%"})),
    ])
    .await
}

/// The services, a store and a pipeline over [`CATALOG`].
struct World {
    api: FakeApi,
    db: PgSchema,
    store: TestStore,
    p: Pipeline,
    key: String,
    redis: redis::aio::MultiplexedConnection,
}

impl World {
    async fn new() -> World {
        let api = fake_api().await;
        let db = PgSchema::new().await;
        db.exec("CREATE TABLE SCHEMA.seq_log (job text NOT NULL)").await;
        let store = TestStore::sqlite().await;
        let p = pipeline_for(
            &config(""),
            catalog(&api.url, &db.url),
            store.store.clone(),
            clock(),
        );
        let client = redis::Client::open(redis_url()).expect("redis url");
        let redis = client.get_multiplexed_async_connection().await.expect("redis");
        World {
            api,
            db,
            store,
            p,
            key: unique("seq:count"),
            redis,
        }
    }

    async fn say(&self, who: &str, text: &str) -> opsbot::engine::Reply {
        say_in(&self.p, "C_QUEUE", who, text).await
    }

    /// The Redis counter (0 when never incremented).
    async fn count(&mut self) -> i64 {
        let v: Option<i64> = redis::cmd("GET")
            .arg(&self.key)
            .query_async(&mut self.redis)
            .await
            .expect("GET");
        v.unwrap_or(0)
    }

    async fn logged(&self) -> Vec<String> {
        let q = format!("SELECT job FROM {}.seq_log ORDER BY job", self.db.name);
        sqlx::query_scalar(&q)
            .fetch_all(&self.db.pool)
            .await
            .expect("log")
    }

    async fn cleanup(mut self) {
        let _: () = redis::cmd("DEL")
            .arg(&self.key)
            .query_async(&mut self.redis)
            .await
            .expect("DEL");
        self.store.cleanup().await;
        self.db.drop().await;
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect()
}

#[tokio::test]
async fn an_approved_seq_runs_every_step_once_in_order() {
    let mut w = World::new().await;
    let text = format!("/seq release j_7 {}", w.key);
    let r = w.say("console:alice", &text).await;
    assert_eq!(r.outcome, Outcome::ApprovalRequested, "{}", r.text);
    let id = r.approval.expect("approval id");
    assert!(w.api.take().is_empty(), "nothing runs before the approval");
    let r = w.say("console:bob", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    assert_eq!(
        requests(&w.api.take()),
        pairs(&[("POST", "/api/pause"), ("POST", "/api/resume/j_7")])
    );
    assert_eq!(w.count().await, 1);
    assert_eq!(w.logged().await, ["j_7"]);
    let lines: Vec<&str> = r.text.lines().filter(|l| l.starts_with('✓')).collect();
    assert_eq!(lines.len(), 4, "{}", r.text);
    for (i, start) in [
        "✓ 1/4 POST /api/pause → 200",
        "✓ 2/4 redis INCR",
        "✓ 3/4 sql: 1 row",
        "✓ 4/4 POST /api/resume/j_7 → 200",
    ]
    .iter()
    .enumerate()
    {
        assert!(lines[i].starts_with(start), "line {i}: {}", r.text);
    }
    assert!(r.text.contains("seq: 4 of 4 steps succeeded in "), "{}", r.text);
    w.say("console:bob", &format!("/approve a{id}")).await;
    assert!(w.api.take().is_empty(), "an approved seq runs at most once");
    assert_eq!(w.count().await, 1);
    w.cleanup().await;
}

#[tokio::test]
async fn a_failing_middle_step_stops_the_seq_and_the_reply_says_which() {
    let w = World::new().await;
    let r = w.say("slack:U0STRANGER", "/seq broken").await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
    assert_eq!(
        requests(&w.api.take()),
        pairs(&[("GET", "/api/first"), ("GET", "/api/missing")]),
        "the step after the failure did not run"
    );
    let mut lines = r.text.lines();
    assert_eq!(
        lines.next(),
        Some("`/seq broken` failed: step 2 of 3 failed; step 3 did not run")
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("✓ 1/3 GET /api/first → 200 in "),
        "{}",
        r.text
    );
    assert_eq!(
        lines.next(),
        Some(
            "✗ 2/3 http api: GET /api/missing: target api answered 404 (expected 2xx): {\"error\":\"no such route\"}"
        )
    );
    assert_eq!(lines.next(), Some("· 3/3 not run: http api: GET /api/last"));
    assert_eq!(lines.next(), None, "{}", r.text);
    w.cleanup().await;
}

#[tokio::test]
async fn a_failing_sql_step_leaves_the_redis_step_unrun() {
    let mut w = World::new().await;
    let text = format!("/seq bad-sql {}", w.key);
    let r = w.say("console:alice", &text).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
    assert!(
        r.text.starts_with(
            "`/seq bad-sql` failed: step 2 of 3 failed; step 3 did not run\n✓ 1/3 GET /api/first → 200"
        ),
        "{}",
        r.text
    );
    assert!(
        r.text
            .contains("\n✗ 2/3 sql db: SELECT count(*) FROM no_such_table: target db: "),
        "{}",
        r.text
    );
    let not_run = format!("\n· 3/3 not run: redis r: [\"INCR\", {:?}]", w.key);
    assert!(r.text.ends_with(&not_run), "{}", r.text);
    assert_eq!(w.count().await, 0, "the Redis step did not run");
    assert_eq!(requests(&w.api.take()), pairs(&[("GET", "/api/first")]));
    w.cleanup().await;
}

#[tokio::test]
async fn a_step_that_refuses_its_values_stops_the_seq_before_anything_runs() {
    let mut w = World::new().await;
    // `..` is a valid id but no path segment: step 4 refuses it, so step 1
    // (which would have paused the queue) never runs.
    let text = format!("/seq release .. {}", w.key);
    let r = w.say("console:alice", &text).await;
    let id = r.approval.expect("approval id");
    let r = w.say("console:bob", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
    assert!(
        r.text
            .contains("`/seq release` failed: step 4 of 4 refused, nothing was run: "),
        "{}",
        r.text
    );
    assert!(w.api.take().is_empty());
    assert_eq!(w.count().await, 0);
    assert!(w.logged().await.is_empty());
    w.cleanup().await;
}

#[tokio::test]
async fn a_nested_seq_reports_its_own_steps_and_fields() {
    let w = World::new().await;
    let r = w.say("slack:U0STRANGER", "/seq nested").await;
    assert_eq!(r.outcome, Outcome::Failed, "{}", r.text);
    let lines: Vec<&str> = r.text.lines().collect();
    assert_eq!(lines[0], "`/seq nested` failed: step 2 of 2 failed", "{}", r.text);
    assert!(lines[1].starts_with("✓ 1/2 GET /api/first → 200"), "{}", r.text);
    assert_eq!(lines[2], "✗ 2/2 seq of 2 steps: step 2 of 2 failed", "{}", r.text);
    assert!(
        lines[3].starts_with("    ✓ 1/2 GET /api/last → 200"),
        "{}",
        r.text
    );
    assert!(
        lines[4].starts_with("    ✗ 2/2 http api: GET /api/missing: target api answered 404"),
        "{}",
        r.text
    );
    w.api.take();
    w.cleanup().await;
}

#[tokio::test]
async fn reply_templates_read_each_steps_fields_by_number() {
    let api = fake_api().await;
    let mut c = catalog(&api.url, "postgres://127.0.0.1:1/x");
    let cmd = c
        .commands
        .iter_mut()
        .find(|c| c.name == "seq nested")
        .expect("seq nested");
    // Without the failing step, the template sees both levels.
    if let catalog::Action::Seq(steps) = &mut cmd.action {
        if let catalog::Action::Seq(inner) = &mut steps.steps[1].action {
            inner.steps.pop();
        }
    }
    let t = TestStore::sqlite().await;
    let p = pipeline_for(&config(""), c, t.store.clone(), clock());
    let r = say_in(&p, "C_QUEUE", "slack:U0STRANGER", "/seq nested").await;
    assert_eq!(r.outcome, Outcome::Done, "{}", r.text);
    let mut lines = r.text.lines();
    assert_eq!(lines.next(), Some("phase 50% · first ok"));
    assert!(
        lines.next().unwrap().starts_with("✓ 1/2 GET /api/first → 200"),
        "{}",
        r.text
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("✓ 2/2 seq: 1 of 1 step succeeded in "),
        "{}",
        r.text
    );
    assert_eq!(lines.next(), None, "{}", r.text);
    t.cleanup().await;
}

#[test]
fn render_shows_every_step_in_order() {
    let c = catalog("http://127.0.0.1:1", "postgres://127.0.0.1:1/x");
    let cases = [
        ("console:alice", "/seq release j_7 seq:count"),
        ("console:alice", "/seq release \"j 7\" seq:count"),
        ("console:alice", "/seq release .. seq:count"),
        ("slack:U0STRANGER", "/seq release j_7 seq:count"),
        ("slack:U0STRANGER", "/seq nested"),
    ];
    insta::assert_snapshot!(crate::support::render_cases(&c, &config(""), "queue", &cases));
}

#[tokio::test]
async fn an_approval_is_bound_to_every_step() {
    let mut w = World::new().await;
    let text = format!("/seq release j_7 {}", w.key);
    let id = w.say("console:alice", &text).await.approval.expect("approval id");
    // A new catalog changes only the last step: the approval no longer fits.
    let mut cat = (*w.p.catalog).clone();
    let cmd = cat
        .commands
        .iter_mut()
        .find(|c| c.name == "seq release")
        .expect("seq release");
    if let catalog::Action::Seq(steps) = &mut cmd.action {
        if let Some(catalog::Action::Http(h)) = steps.steps.last_mut().map(|s| &mut s.action) {
            h.path = "/api/purge/{job}".into();
        }
    }
    let mut changed = w.p.clone();
    changed.catalog = std::sync::Arc::new(cat);
    let r = say_in(&changed, "C_QUEUE", "console:bob", &format!("/approve a{id}")).await;
    assert_eq!(r.outcome, Outcome::NotPermitted, "{}", r.text);
    assert!(
        r.text.contains("the command changed since it was requested"),
        "{}",
        r.text
    );
    assert!(w.api.take().is_empty(), "no step ran");
    assert_eq!(w.count().await, 0);
    assert!(w.logged().await.is_empty());
    w.cleanup().await;
}

#[tokio::test]
async fn secrets_are_redacted_from_every_step_of_a_failure() {
    const SECRET: &str = "s3q-secret-token-value";
    let api = FakeApi::start(&[
        ("GET", "/api/first", json!({"echo": SECRET})),
        ("GET", "/api/second", json!({"token": SECRET})),
    ])
    .await;
    let c = catalog(&api.url, "postgres://127.0.0.1:1/x");
    let action: catalog::Action = toml::from_str(
        r#"seq = [
  { http = { target = "api", path = "/api/first" } },
  { http = { target = "api", path = "/api/second", expect = [201] } },
]"#,
    )
    .expect("seq action");
    let ex = opsbot::exec::Executor::new(
        opsbot::exec::Limits::default(),
        vec![SECRET.into()],
        crate::support::bot_env(&[]),
    );
    let err = ex
        .execute(&action, &c.targets, &Default::default())
        .await
        .expect_err("step 2 expects 201");
    let text = err.to_string();
    assert!(
        text.starts_with("step 2 of 2 failed\n✓ 1/2 GET /api/first → 200"),
        "{text}"
    );
    assert!(text.contains("answered 200 (expected 201)"), "{text}");
    assert!(!text.contains(SECRET) && text.contains("[redacted]"), "{text}");
    assert_eq!(err.target(), Some("api"));
    api.take();
}

#[tokio::test]
async fn a_process_step_off_the_allow_list_stops_the_seq_before_anything_runs() {
    let api = fake_api().await;
    let c = catalog(&api.url, "postgres://127.0.0.1:1/x");
    let action: catalog::Action = toml::from_str(
        r#"seq = [
  { http = { target = "api", path = "/api/first" } },
  { seq = [{ process = { argv = ["opsbot-test-not-allowed"] } }] },
]"#,
    )
    .expect("seq action");
    let ex = opsbot::exec::Executor::new(
        opsbot::exec::Limits::default(),
        vec![],
        crate::support::bot_env(&[]),
    );
    let err = ex
        .execute(&action, &c.targets, &Default::default())
        .await
        .expect_err("not on the allow-list");
    assert_eq!(
        err.to_string(),
        "step 2 of 2 › step 1 of 1 refused, nothing was run: program `opsbot-test-not-allowed` is not on the allow-list"
    );
    assert!(api.take().is_empty(), "the http step did not run either");
}

// ---------------------------------------------------------------- finally

/// Three process steps and two `finally` steps; the programs are stand-ins
/// found on the bot's `PATH` (the injected environment's), recording argv.
const CLEANUP: &str = r#"
[command.queue."seq cleanup"]
summary = "Create, fill and check a scratch copy; drop it and log, whatever happened"
args = { name = { kind = "id" } }
risk = "write"
roles = ["oncall"]
action = { seq = { steps = [
  { process = { argv = ["mk", "{name}"] } },
  { process = { argv = ["fill", "{name}"] } },
  { process = { argv = ["check", "{name}"] } },
], finally = [
  { process = { argv = ["drop", "{name}"] } },
  { process = { argv = ["note", "done {name}"] } },
] } }
"#;

const CLEANUP_PROGRAMS: [&str; 5] = ["mk", "fill", "check", "drop", "note"];

fn cleanup_catalog() -> Catalog {
    let roles = Roles::new(&Default::default()).names();
    let env = HashMap::new();
    let ctx = catalog::Context {
        roles: &roles,
        env: &env,
    };
    catalog::load_str("cleanup.toml", CLEANUP, &ctx).expect("cleanup catalog")
}

/// Runs `seq cleanup` with `name` against stand-ins changed by `tweak`; the
/// stand-ins and the result's text (durations as `N`).
async fn run_cleanup(tweak: impl FnOnce(&StandIns)) -> (StandIns, Result<String, String>) {
    let s = StandIns::new(&CLEANUP_PROGRAMS.map(|p| (p, "ok\n")));
    tweak(&s);
    let path = format!("{}:{}", s.path("bin"), std::env::var("PATH").unwrap_or_default());
    let ex = opsbot::exec::Executor::new(
        opsbot::exec::Limits {
            process_allow: CLEANUP_PROGRAMS.map(String::from).to_vec(),
            default_timeout: std::time::Duration::from_secs(10),
            ..opsbot::exec::Limits::default()
        },
        vec![],
        crate::support::bot_env(&[("PATH", &path)]),
    );
    let c = cleanup_catalog();
    let cmd = c.get("queue", "seq cleanup").expect("command");
    let out = ex
        .execute(
            &cmd.action,
            &c.targets,
            &crate::support::args(&[("name", "scratch_1")]),
        )
        .await
        .map(|o| millis_as_n(&o.text))
        .map_err(|e| millis_as_n(&e.to_string()));
    (s, out)
}

/// `exit 0 in 12 ms` → `exit 0 in N ms` (for snapshots).
fn millis_as_n(text: &str) -> String {
    regex::Regex::new(r"in \d+ ms")
        .expect("regex")
        .replace_all(text, "in N ms")
        .into_owned()
}

#[tokio::test]
async fn a_failing_middle_step_still_runs_every_finally_step() {
    let (s, out) = run_cleanup(|s| s.add_failing("fill", "fill: disk full\n")).await;
    let text = out.expect_err("fill fails");
    assert_eq!(s.only_call("mk"), owned(&["scratch_1"]));
    assert_eq!(s.only_call("fill"), owned(&["scratch_1"]));
    assert!(
        s.calls("check").is_empty(),
        "the step after the failure did not run"
    );
    assert_eq!(s.only_call("drop"), owned(&["scratch_1"]), "the cleanup ran");
    assert_eq!(s.only_call("note"), owned(&["done scratch_1"]));
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn a_failing_finally_step_does_not_stop_the_next_and_the_first_failure_is_reported() {
    let (s, out) = run_cleanup(|s| {
        s.add_failing("fill", "fill: disk full\n");
        s.add_failing("drop", "drop: scratch_1 is in use\n");
    })
    .await;
    let text = out.expect_err("fill fails");
    assert_eq!(s.calls("drop").len(), 1);
    assert_eq!(
        s.only_call("note"),
        owned(&["done scratch_1"]),
        "the next cleanup step ran"
    );
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn after_every_step_succeeded_a_failing_finally_step_fails_the_seq() {
    let (s, out) = run_cleanup(|s| s.add_failing("drop", "drop: scratch_1 is in use\n")).await;
    let text = out.expect_err("drop fails");
    assert_eq!(s.calls("check").len(), 1);
    assert_eq!(s.only_call("note"), owned(&["done scratch_1"]));
    insta::assert_snapshot!(text);
}

#[tokio::test]
async fn a_seq_whose_steps_and_finally_steps_succeed_says_so() {
    let (s, out) = run_cleanup(|_| {}).await;
    let text = out.expect("runs");
    assert_eq!(s.only_call("drop"), owned(&["scratch_1"]));
    insta::assert_snapshot!(text);
}

#[test]
fn render_shows_the_finally_steps_after_the_steps() {
    let c = cleanup_catalog();
    let cases = [("console:alice", "/seq cleanup scratch_1")];
    insta::assert_snapshot!(crate::support::render_cases(&c, &config(""), "queue", &cases));
}

#[test]
fn a_finally_list_is_checked_like_the_steps() {
    let text = CLEANUP.replace(r#"["note", "done {name}"]"#, r#"["note", "{nope}"]"#);
    let roles = Roles::new(&Default::default()).names();
    let env = HashMap::new();
    let ctx = catalog::Context {
        roles: &roles,
        env: &env,
    };
    let err = catalog::load_str("cleanup.toml", &text, &ctx).expect_err("unknown argument");
    let msgs: Vec<String> = err.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(
        msgs[0].starts_with("cleanup.toml:13: finally step 2 of 2: "),
        "{msgs:?}"
    );
    let text = CLEANUP.replace("steps = [", "stepz = [");
    let err = catalog::load_str("cleanup.toml", &text, &ctx).expect_err("unknown field");
    assert!(
        err.problems[0].message.contains("unknown field `stepz`"),
        "{err:?}"
    );
}
