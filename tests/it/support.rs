//! Test harness: real stores (a temp SQLite file and a private Postgres
//! schema), a fake HTTP target that records what it was sent, and a pipeline
//! wired exactly as `opsbot serve` wires it, on a manual clock.

use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use opsbot::app;
use opsbot::auth::{Directory, Roles};
use opsbot::catalog::{self, Catalog, Command};
use opsbot::clock::{ManualClock, SharedClock};
use opsbot::config::Config;
use opsbot::engine::{Invocation, Origin, Pipeline, Reply};
use opsbot::store::Store;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// Action arguments as the parser hands them over.
pub fn args(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// What `cmd`'s execution is bound to after its preview found `found`.
pub fn bound<'a>(cmd: &'a Command, found: &'a opsbot::preview::Previewed) -> Option<opsbot::exec::Bound<'a>> {
    Some(opsbot::exec::Bound {
        preview: cmd.preview.as_ref().expect("the command has a preview"),
        found,
    })
}

/// A name no other test (or test run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}_{}_{}_{:x}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst),
        rand::random::<u32>()
    )
}

/// The kinds of the audit entries so far, in order.
pub async fn audit_kinds(store: &Store) -> Vec<String> {
    store
        .audit_records()
        .await
        .expect("audit")
        .into_iter()
        .map(|r| r.entry.kind)
        .collect()
}

/// How many audit entries of each of `kinds` are stored, in that order.
pub async fn audit_counts<const N: usize>(store: &Store, kinds: [&str; N]) -> [usize; N] {
    let all = audit_kinds(store).await;
    kinds.map(|k| all.iter().filter(|x| *x == k).count())
}

/// Waits (up to 5 s) until `done` answers true; panics naming `what` if not.
pub async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// `opsbot audit verify` on `store`: the chain, and its end against the head.
pub async fn verify_audit(store: &Store) -> Result<usize, opsbot::audit::Broken> {
    let head = store.audit_head().await.expect("audit head");
    opsbot::audit::verify(&store.audit_records().await.expect("audit"), &head)
}

/// A store for one test; dropped schemas/files are cleaned by `cleanup`.
pub struct TestStore {
    pub name: &'static str,
    pub store: Store,
    pub url: String,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("opsbot.db").display());
        let store = Store::connect(&url).await.expect("sqlite connect");
        store.migrate().await.expect("sqlite migrate");
        TestStore {
            name: "sqlite",
            store,
            url,
            schema: None,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> TestStore {
        let schema = unique("t");
        let store = Store::connect_in_schema(&pg_url(), Some(&schema))
            .await
            .expect("postgres connect (TEST_DATABASE_URL)");
        store.migrate().await.expect("postgres migrate");
        TestStore {
            name: "postgres",
            store,
            url: pg_url(),
            schema: Some(schema),
            _dir: None,
        }
    }

    /// A second, independent connection pool to the same database (a second process).
    pub async fn reopen(&self) -> Store {
        Store::connect_in_schema(&self.url, self.schema.as_deref())
            .await
            .expect("reopen")
    }

    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    pub async fn cleanup(self) {
        self.store.close().await;
        if let Some(s) = self.schema {
            let admin = Store::connect(&pg_url()).await.expect("connect");
            admin.drop_schema_for_tests(&s).await.expect("drop schema");
            admin.close().await;
        }
    }
}

/// Runs `test` on SQLite and on Postgres (bors's `run_test`): each store is
/// torn down afterwards even when the test fails, and the failure is then
/// re-raised. Use with `|t| Box::pin(async move { … })`.
pub async fn run_test<F>(test: F)
where
    F: for<'a> Fn(&'a TestStore) -> futures::future::BoxFuture<'a, ()>,
{
    use futures::FutureExt;
    for t in both().await {
        let outcome = std::panic::AssertUnwindSafe(test(&t)).catch_unwind().await;
        let name = t.name;
        t.cleanup().await;
        if let Err(panic) = outcome {
            eprintln!("test failed on {name}");
            std::panic::resume_unwind(panic);
        }
    }
}

/// Waits (at most 10 s) until `store` has no stored request left to run and
/// no message left to send.
pub async fn settle(store: &Store) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let inbox = store.inbox_counts().await.expect("inbox counts");
        let outbox = store.outbox_counts().await.expect("outbox counts");
        let busy = inbox
            .iter()
            .any(|(s, n)| (s == "new" || s == "processing") && *n > 0)
            || outbox.iter().any(|(s, n)| s == "pending" && *n > 0);
        if !busy {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never settled: inbox {inbox:?}, outbox {outbox:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Both backends, for tests that must hold on each.
pub async fn both() -> Vec<TestStore> {
    vec![TestStore::sqlite().await, TestStore::postgres().await]
}

/// One request the fake target received.
#[derive(Debug, Clone)]
pub struct Hit {
    pub method: String,
    pub path: String,
}

/// The queue service of seed 003, faked at the wire.
#[derive(Clone)]
pub struct FakeTarget {
    pub url: String,
    pub hits: Arc<Mutex<Vec<Hit>>>,
    /// Extra delay of the POST endpoints, in milliseconds (slow-target tests).
    pub delay_ms: Arc<AtomicU64>,
    /// What `GET /api/queue/stats` answers (tests may replace it).
    pub stats: Arc<Mutex<serde_json::Value>>,
}

#[derive(Clone)]
struct TargetState {
    hits: Arc<Mutex<Vec<Hit>>>,
    delay_ms: Arc<AtomicU64>,
    stats: Arc<Mutex<serde_json::Value>>,
}

impl FakeTarget {
    pub async fn start() -> FakeTarget {
        let state = TargetState {
            hits: Arc::default(),
            delay_ms: Arc::new(AtomicU64::new(20)),
            stats: Arc::new(Mutex::new(
                serde_json::json!({"ai-analysis": {"waiting": 12, "active": 3, "completed": 900, "failed": 37}}),
            )),
        };
        let app = Router::new()
            .route("/health", get(health))
            .route("/api/queue/stats", get(stats))
            .route("/api/queue/{q}/{op}", post(queue_op))
            .route("/api/queue/{q}/jobs/{job}/retry", post(job_retry))
            .route("/api/queue/{op}", post(all_queues_op))
            .route("/api/cache/warm", post(cache_warm))
            .with_state(state.clone());
        let url = serve(app).await;
        FakeTarget {
            url,
            hits: state.hits,
            delay_ms: state.delay_ms,
            stats: state.stats,
        }
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.hits
            .lock()
            .expect("lock")
            .iter()
            .filter(|h| h.method == method && h.path == path)
            .count()
    }
}

fn rec(m: &str, p: String, s: &TargetState) {
    s.hits.lock().expect("lock").push(Hit {
        method: m.into(),
        path: p,
    });
}

async fn health(State(s): State<TargetState>) -> Json<serde_json::Value> {
    rec("GET", "/health".into(), &s);
    Json(serde_json::json!({"status": "ok"}))
}

async fn stats(State(s): State<TargetState>) -> Json<serde_json::Value> {
    rec("GET", "/api/queue/stats".into(), &s);
    Json(s.stats.lock().expect("lock").clone())
}

async fn queue_op(
    State(s): State<TargetState>,
    UrlPath((q, op)): UrlPath<(String, String)>,
) -> Json<serde_json::Value> {
    rec("POST", format!("/api/queue/{q}/{op}"), &s);
    // Slow enough by default that racing approvers overlap with the execution.
    let ms = s.delay_ms.load(Ordering::SeqCst);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Json(serde_json::json!({"retried": 37, "queue": q}))
}

async fn job_retry(
    State(s): State<TargetState>,
    UrlPath((q, job)): UrlPath<(String, String)>,
) -> Json<serde_json::Value> {
    rec("POST", format!("/api/queue/{q}/jobs/{job}/retry"), &s);
    Json(serde_json::json!({"retried": 1, "queue": q, "job": job}))
}

/// `pause-all`, `resume-all`, `clean-all`.
async fn all_queues_op(
    State(s): State<TargetState>,
    UrlPath(op): UrlPath<String>,
) -> Json<serde_json::Value> {
    rec("POST", format!("/api/queue/{op}"), &s);
    Json(serde_json::json!({"queues": ["ai-analysis"]}))
}

async fn cache_warm(State(s): State<TargetState>) -> Json<serde_json::Value> {
    rec("POST", "/api/cache/warm".into(), &s);
    Json(serde_json::json!({"started": true}))
}

/// One request a [`FakeApi`] received: method, path with query, JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub method: String,
    pub uri: String,
    pub body: Option<serde_json::Value>,
}

/// A seed system's HTTP API faked at the wire: each `(method, path)` of its
/// routes answers 200 with a fixed JSON body, anything else 404; every request
/// is recorded, so a test sees exactly what a command sent.
#[derive(Clone)]
pub struct FakeApi {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeApi {
    pub async fn start(routes: &[(&str, &str, serde_json::Value)]) -> FakeApi {
        let routes: Arc<HashMap<(String, String), serde_json::Value>> = Arc::new(
            routes
                .iter()
                .map(|(m, p, v)| ((m.to_string(), p.to_string()), v.clone()))
                .collect(),
        );
        let received: Arc<Mutex<Vec<Received>>> = Arc::default();
        let log = received.clone();
        let app = Router::new().fallback(
            move |method: axum::http::Method, uri: axum::http::Uri, body: axum::body::Bytes| {
                let (routes, log) = (routes.clone(), log.clone());
                async move {
                    log.lock().expect("lock").push(Received {
                        method: method.to_string(),
                        uri: uri.to_string(),
                        body: serde_json::from_slice(&body).ok(),
                    });
                    match routes.get(&(method.to_string(), uri.path().to_string())) {
                        Some(v) => (axum::http::StatusCode::OK, Json(v.clone())),
                        None => (
                            axum::http::StatusCode::NOT_FOUND,
                            Json(serde_json::json!({"error": "no such route"})),
                        ),
                    }
                }
            },
        );
        FakeApi {
            url: serve(app).await,
            received,
        }
    }

    /// The requests received since the last call, oldest first.
    pub fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.received.lock().expect("lock"))
    }
}

/// `(method, path with query)` of each request, for short assertions.
pub fn requests(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .map(|r| (r.method.clone(), r.uri.clone()))
        .collect()
}

/// Runs each `(identity, text, method, path with query)` of `cases` in
/// `channel` and asserts that it is done and sent exactly that one request.
pub async fn assert_each_sends(
    p: &Pipeline,
    channel: &str,
    api: &FakeApi,
    cases: &[(&str, &str, &str, &str)],
) {
    api.take();
    for (who, text, method, uri) in cases {
        let r = say_in(p, channel, who, text).await;
        assert_eq!(r.outcome, opsbot::engine::Outcome::Done, "{text}: {}", r.text);
        let sent = requests(&api.take());
        assert_eq!(sent, [(method.to_string(), uri.to_string())], "{text}");
    }
}

/// `(identity, text, requests)`: a command and the `(method, path with
/// query)` requests it must send, in order.
pub type SendsAll<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// Like [`assert_each_sends`] for commands that send several requests (a
/// `seq`): each `(identity, text, requests)` is done and sent exactly those
/// `(method, path with query)` requests, in that order.
pub async fn assert_each_sends_all(p: &Pipeline, channel: &str, api: &FakeApi, cases: &[SendsAll<'_>]) {
    api.take();
    for (who, text, expected) in cases {
        let r = say_in(p, channel, who, text).await;
        assert_eq!(r.outcome, opsbot::engine::Outcome::Done, "{text}: {}", r.text);
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(m, u)| (m.to_string(), u.to_string()))
            .collect();
        assert_eq!(requests(&api.take()), expected, "{text}");
    }
}

/// Serves `app` on a free local port; its base URL.
pub async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    url
}

pub use crate::wait::wait_for_calls;

/// An address where nothing listens.
pub async fn dead_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    drop(l);
    url
}

pub const PEOPLE: &str = r#"
[profiles]
enabled = ["queue", "chat"]

[channels.C_QUEUE]
profile = "queue"

[people.alice]
console = "alice"
slack = "U0ALICE"
discord = "111"
roles = ["oncall"]

[people.bob]
console = "bob"
slack = "U0BOB"
discord = "222"
roles = ["sre"]

[people.carol]
console = "carol"
slack = "U0CAROL"
discord = "333"
roles = ["eng-manager"]

[people.dave]
console = "dave"
roles = ["support"]
"#;

pub fn config(extra: &str) -> Config {
    Config::parse(
        Path::new("config/opsbot.toml"),
        &format!("{PEOPLE}\n{extra}"),
        &HashMap::new(),
    )
    .expect("test config")
}

/// `config(extra)` with `profile` enabled too (the shared people enable only
/// queue and chat, so other tests keep their meaning of unbound channels).
pub fn config_enabling(extra: &str, profile: &str) -> Config {
    let mut c = config(extra);
    c.profiles.push(profile.to_string());
    c
}

/// `config(extra)` with each of `profiles` enabled too.
pub fn config_enabling_each(extra: &str, profiles: &[&str]) -> Config {
    let mut c = config(extra);
    c.profiles.extend(profiles.iter().map(|p| p.to_string()));
    c
}

/// Owned copies of `v` (argv to compare with recorded calls).
pub fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The shipped catalog with the queue API pointed at `target`.
pub fn shipped_catalog(config: &Config, target: &str) -> Catalog {
    shipped_catalog_env(config, &[("OPSBOT_TARGET_QUEUE_API", target)])
}

/// The shipped catalog with `OPSBOT_TARGET_*` overrides from `env`.
pub fn shipped_catalog_env(config: &Config, env: &[(&str, &str)]) -> Catalog {
    let env: HashMap<String, String> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let roles = Roles::new(&config.roles).names();
    catalog::load_dir(
        Path::new("commands"),
        &catalog::Context {
            roles: &roles,
            env: &env,
        },
    )
    .expect("shipped catalog")
}

/// A pipeline over `store` exactly as `serve` builds it, on `clock`.
pub fn pipeline_with(config: &Config, store: Store, target: &str, clock: Arc<ManualClock>) -> Pipeline {
    pipeline_for(config, shipped_catalog(config, target), store, clock)
}

/// A pipeline over `store` running `catalog`, on `clock`.
pub fn pipeline_for(config: &Config, catalog: Catalog, store: Store, clock: Arc<ManualClock>) -> Pipeline {
    pipeline_env(config, catalog, store, clock, &bot_env(&[]))
}

/// [`pipeline_for`] with the bot's environment `env` (see [`bot_env`]).
pub fn pipeline_env(
    config: &Config,
    catalog: Catalog,
    store: Store,
    clock: Arc<ManualClock>,
    env: &HashMap<String, String>,
) -> Pipeline {
    let directory = Directory::new(&config.people, &Roles::new(&config.roles)).expect("people");
    let clock: SharedClock = clock;
    app::assemble(config, catalog, directory, store, env, clock)
}

/// The bot's environment as `main` collects it (the test process's, read
/// once, never changed) plus `extra`: a test hands its secrets to the
/// executor through this map, never by setting process variables, which
/// would race with the tests running beside it.
pub fn bot_env(extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut env: HashMap<String, String> = std::env::vars().collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    env
}

pub fn pipeline(store: Store, target: &str, clock: Arc<ManualClock>) -> Pipeline {
    pipeline_with(&config(""), store, target, clock)
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000_000))
}

/// Runs `text` as `identity` in channel C_QUEUE.
pub async fn say(p: &Pipeline, identity: &str, text: &str) -> Reply {
    say_in(p, "C_QUEUE", identity, text).await
}

/// Runs `text` as `identity` in `channel`.
pub async fn say_in(p: &Pipeline, channel: &str, identity: &str, text: &str) -> Reply {
    let inv = Invocation::console(identity, Some(channel.into()), text, p.clock.now_ms());
    p.handle(&inv).await
}

/// The origin of a slash command typed by Slack user `user` in C_QUEUE.
pub fn slack_origin(user: &str) -> Origin {
    let data = serde_json::json!({
        "user": user, "channel": "C_QUEUE", "thread_ts": null, "kind": "command", "response_url": null
    });
    Origin::new("slack", data.to_string())
}

/// Runs `text` as `identity` in C_QUEUE, answered at `origin`.
pub async fn say_from(p: &Pipeline, identity: &str, text: &str, origin: Origin) -> Reply {
    let mut inv = Invocation::console(identity, Some("C_QUEUE".into()), text, p.clock.now_ms());
    inv.origin = origin;
    p.handle(&inv).await
}

pub const SLACK_SECRET: &str = "test-signing-secret";

/// The real app (router, writer, worker, outbox sender) on a random port,
/// with a fake Slack Web API and a fake queue service (zero2prod's `spawn_app`).
pub struct TestApp {
    pub url: String,
    pub client: reqwest::Client,
    pub pipeline: Pipeline,
    pub slack: crate::fake_slack::FakeSlack,
    pub discord: crate::fake_discord::FakeDiscord,
    pub target: FakeTarget,
    services: Option<app::Services>,
    server: tokio::task::JoinHandle<()>,
}

/// How a [`TestApp`] is started beyond its store.
struct Setup {
    slack_on: bool,
    edge: app::Edge,
    /// `SLACK_TEAM_ID`, `SLACK_APP_ID`.
    ids: (Option<String>, Option<String>),
    /// Config text beyond the shared people (policies, rotations, …).
    extra: String,
    /// Sends per second per channel (default 50).
    per_channel_per_sec: u32,
}

impl Setup {
    fn new(slack_on: bool) -> Setup {
        Setup {
            slack_on,
            edge: test_edge(),
            ids: (None, None),
            extra: String::new(),
            per_channel_per_sec: 50,
        }
    }
}

/// The edge as `serve` sets it up by default, with gauges refreshed often.
pub fn test_edge() -> app::Edge {
    app::Edge {
        limits: opsbot::config::HttpLimits {
            metrics_refresh: std::time::Duration::from_millis(50),
            ..Default::default()
        },
        metrics_apart: false,
        alerts: Default::default(),
    }
}

impl TestApp {
    pub async fn spawn(store: Store) -> TestApp {
        Self::start(store, Setup::new(true), |_| {}).await
    }

    pub async fn spawn_without_slack(store: Store) -> TestApp {
        Self::start(store, Setup::new(false), |_| {}).await
    }

    /// With the shipped catalog changed by `tweak` first.
    pub async fn spawn_with(store: Store, tweak: impl FnOnce(&mut Catalog)) -> TestApp {
        Self::start(store, Setup::new(true), tweak).await
    }

    /// With the HTTP edge set up as `edge` says.
    pub async fn spawn_with_edge(store: Store, edge: app::Edge) -> TestApp {
        let setup = Setup {
            edge,
            ..Setup::new(true)
        };
        Self::start(store, setup, |_| {}).await
    }

    /// With the HTTP edge set up as `edge` says and `extra` config.
    pub async fn spawn_with_edge_and_config(store: Store, edge: app::Edge, extra: &str) -> TestApp {
        let setup = Setup {
            edge,
            extra: extra.into(),
            ..Setup::new(true)
        };
        Self::start(store, setup, |_| {}).await
    }

    /// With the HTTP edge set up as `edge` says, `extra` config, and the
    /// outbox pacing each channel at `per_sec` sends per second.
    pub async fn spawn_paced(store: Store, edge: app::Edge, extra: &str, per_sec: u32) -> TestApp {
        let setup = Setup {
            edge,
            extra: extra.into(),
            per_channel_per_sec: per_sec,
            ..Setup::new(true)
        };
        Self::start(store, setup, |_| {}).await
    }

    /// With `extra` config (policies, rotations, …) beyond the shared people.
    pub async fn spawn_with_config(store: Store, extra: &str) -> TestApp {
        let setup = Setup {
            extra: extra.into(),
            ..Setup::new(true)
        };
        Self::start(store, setup, |_| {}).await
    }

    /// Accepting only workspace `team` and app `app` (`SLACK_TEAM_ID`, `SLACK_APP_ID`).
    pub async fn spawn_for(store: Store, team: &str, app: &str) -> TestApp {
        let setup = Setup {
            ids: (Some(team.into()), Some(app.into())),
            ..Setup::new(true)
        };
        Self::start(store, setup, |_| {}).await
    }

    async fn start(store: Store, setup: Setup, tweak: impl FnOnce(&mut Catalog)) -> TestApp {
        let Setup {
            slack_on,
            edge,
            ids,
            extra,
            per_channel_per_sec,
        } = setup;
        let slack = crate::fake_slack::FakeSlack::start().await;
        let discord = crate::fake_discord::FakeDiscord::start().await;
        let target = FakeTarget::start().await;
        let cfg = config(&extra);
        let directory = Directory::new(&cfg.people, &Roles::new(&cfg.roles)).expect("people");
        let clock: SharedClock = Arc::new(opsbot::clock::SystemClock);
        let mut catalog = shipped_catalog(&cfg, &target.url);
        tweak(&mut catalog);
        let pipeline = app::assemble(&cfg, catalog, directory, store, &bot_env(&[]), clock);
        let slack_cfg = opsbot::config::SlackConfig {
            signing_secret: SLACK_SECRET.to_string().into(),
            bot_token: "xoxb-test-token".to_string().into(),
            app_token: None,
            api_url: slack.url(),
            team_id: ids.0,
            app_id: ids.1,
        };
        let pacing = opsbot::engine::outbox::Pacing {
            per_channel_per_sec,
            global_per_sec: 500,
        };
        let discord_cfg = opsbot::config::DiscordConfig {
            public_key: hex::encode(discord_key().verifying_key().to_bytes()),
            bot_token: crate::fake_discord::BOT_TOKEN.to_string().into(),
            application_id: crate::fake_discord::APPLICATION_ID.into(),
            api_url: discord.url(),
        };
        // "Without Slack" is without any chat: both platforms' routes answer 404.
        let chats = app::Chats {
            slack: slack_on.then_some(&slack_cfg),
            discord: slack_on.then_some(&discord_cfg),
        };
        let services = app::start(pipeline.clone(), chats, pacing, &edge).expect("start");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let router = services.router.clone();
        let header_timeout = edge.limits.header_timeout;
        let server = tokio::spawn(async move {
            let forever = std::future::pending::<()>();
            opsbot::server::edge::serve(listener, router, header_timeout, forever)
                .await
                .ok();
        });
        TestApp {
            url,
            client: reqwest::Client::new(),
            pipeline,
            slack,
            discord,
            target,
            services: Some(services),
            server,
        }
    }

    /// Waits (at most 10 s) until everything stored has run and every queued
    /// message was delivered: after that nothing more can happen, so a test
    /// can assert what did not.
    pub async fn settle(&self) {
        settle(&self.pipeline.store).await;
    }

    /// Stops the app; fails the test if any background task panicked.
    pub async fn stop(mut self) {
        let panicked = match self.services.take() {
            Some(s) => s.stop().await,
            None => 0,
        };
        self.server.abort();
        assert_eq!(panicked, 0, "background tasks panicked");
        assert_eq!(self.pipeline.metrics.panics(), 0, "request tasks panicked");
    }

    pub fn now_secs(&self) -> i64 {
        self.pipeline.clock.now_ms() / 1000
    }

    pub fn sign(&self, ts: &str, body: &str) -> String {
        opsbot::chat::slack::verify::sign(SLACK_SECRET.as_bytes(), ts, body.as_bytes())
    }

    pub fn command_body(&self, user: &str, command: &str, text: &str) -> String {
        self.command_body_from("T1", "A1", user, command, text)
    }

    /// A slash command's form as workspace `team`'s app `app` sends it.
    pub fn command_body_from(&self, team: &str, app: &str, user: &str, command: &str, text: &str) -> String {
        serde_urlencoded::to_string([
            ("token", "x"),
            ("team_id", team),
            ("api_app_id", app),
            ("team_domain", "t"),
            ("channel_id", "C_QUEUE"),
            ("channel_name", "queue-ops"),
            ("user_id", user),
            ("user_name", "u"),
            ("command", command),
            ("text", text),
            ("response_url", &format!("{}response_url.cmd", self.slack.url())),
            ("trigger_id", &unique("trig")),
        ])
        .expect("form")
    }

    pub async fn post_signed(
        &self,
        path: &str,
        body: &str,
        ts: &str,
        sig: &str,
        ctype: &str,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .header("content-type", ctype)
            .header("x-slack-request-timestamp", ts)
            .header("x-slack-signature", sig)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// A signed POST of `body` to `path`, timestamped now.
    pub async fn signed(&self, path: &str, body: &str, ctype: &str, retry: Option<u32>) -> reqwest::Response {
        let ts = self.now_secs().to_string();
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", ctype)
            .header("x-slack-request-timestamp", &ts)
            .header("x-slack-signature", self.sign(&ts, body))
            .body(body.to_string());
        if let Some(n) = retry {
            req = req
                .header("x-slack-retry-num", n.to_string())
                .header("x-slack-retry-reason", "http_timeout");
        }
        req.send().await.expect("request")
    }

    /// A signed slash command from `user` in channel C_QUEUE.
    pub async fn slash(&self, user: &str, command: &str, text: &str) -> reqwest::Response {
        let body = self.command_body(user, command, text);
        self.signed(
            "/slack/commands",
            &body,
            "application/x-www-form-urlencoded",
            None,
        )
        .await
    }

    /// A signed click on an approval card's button.
    pub async fn click(&self, user: &str, action: &str, label: &str, action_ts: &str) -> reqwest::Response {
        let payload = serde_json::json!({
            "type": "block_actions",
            "team": {"id": "T1", "domain": "t"},
            "user": {"id": user, "username": "u", "team_id": "T1"},
            "api_app_id": "A1",
            "token": "x",
            "trigger_id": format!("trig.{action_ts}"),
            "container": {"type": "message", "message_ts": "1.0", "channel_id": "C_QUEUE", "is_ephemeral": false},
            "channel": {"id": "C_QUEUE", "name": "queue-ops"},
            "message": {"type": "message", "ts": "1.0", "text": "card"},
            "response_url": "http://127.0.0.1:9/r",
            "actions": [{"type": "button", "action_id": action, "block_id": "b", "value": label,
                         "text": {"type": "plain_text", "text": "Approve"}, "action_ts": action_ts}],
        });
        let body = serde_urlencoded::to_string([("payload", payload.to_string())]).expect("form");
        self.signed(
            "/slack/interactions",
            &body,
            "application/x-www-form-urlencoded",
            None,
        )
        .await
    }

    /// A signed Events API delivery (optionally marked as Slack's retry number `retry`).
    pub async fn event(&self, event: &serde_json::Value, retry: Option<u32>) -> reqwest::Response {
        self.signed("/slack/events", &event.to_string(), "application/json", retry)
            .await
    }
}

/// The key the test Discord application signs with.
pub fn discord_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&[7; 32])
}

/// `X-Signature-Ed25519` for `body` at `ts`, as Discord signs it with `key`.
pub fn discord_sign(key: &ed25519_dalek::SigningKey, ts: &str, body: &str) -> String {
    use ed25519_dalek::Signer;
    hex::encode(key.sign(format!("{ts}{body}").as_bytes()).to_bytes())
}

impl TestApp {
    /// Posts `body` to `/discord/interactions` with the given signature headers.
    pub async fn discord_post(&self, body: &str, ts: &str, sig: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/discord/interactions", self.url))
            .header("content-type", "application/json")
            .header("x-signature-timestamp", ts)
            .header("x-signature-ed25519", sig)
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }

    /// An interaction signed now with the application's key.
    pub async fn discord(&self, interaction: &serde_json::Value) -> reqwest::Response {
        let ts = self.now_secs().to_string();
        let body = interaction.to_string();
        self.discord_post(&body, &ts, &discord_sign(&discord_key(), &ts, &body))
            .await
    }

    /// `/{name} {sub} option:value…` typed by Discord user `user` in channel C_QUEUE.
    pub fn discord_command(user: &str, name: &str, options: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "id": unique("i"), "application_id": crate::fake_discord::APPLICATION_ID, "type": 2,
            "token": unique("tok"), "version": 1, "channel_id": "C_QUEUE", "guild_id": "G1",
            "channel": {"id": "C_QUEUE", "type": 0},
            "member": {"user": {"id": user, "username": "u"}, "roles": []},
            "data": {"id": "1", "name": name, "type": 1, "options": options},
        })
    }

    /// A click on a card's button (`approve:a1`) by Discord user `user`.
    pub fn discord_click(user: &str, custom_id: &str) -> serde_json::Value {
        serde_json::json!({
            "id": unique("i"), "application_id": crate::fake_discord::APPLICATION_ID, "type": 3,
            "token": unique("tok"), "version": 1, "channel_id": "C_QUEUE", "guild_id": "G1",
            "member": {"user": {"id": user, "username": "u"}, "roles": []},
            "message": {"id": "M1", "channel_id": "C_QUEUE"},
            "data": {"custom_id": custom_id, "component_type": 2},
        })
    }
}

/// Parses `text` for `identity` in a channel bound to `profile`, authorizes
/// it against `config`'s people and renders its action, as one block of text
/// (the catalog tests' snapshots).
pub fn parse_authorize_render(
    catalog: &Catalog,
    config: &Config,
    profile: &str,
    identity: &str,
    text: &str,
) -> String {
    use opsbot::command::{self, Parsed, Scope};
    let directory = Directory::new(&config.people, &Roles::new(&config.roles)).expect("people");
    let scope = Scope {
        enabled_profiles: &config.profiles,
        channel_profile: Some(profile),
    };
    let req = match command::parse(catalog, &scope, text) {
        Ok(Parsed::Run(r)) => r,
        Ok(other) => return format!("not a catalog command: {other:?}"),
        Err(e) => return format!("usage error: {}", e.message.escape_debug()),
    };
    let cmd = req.command;
    // A variant's own policy, else the command's.
    let approval = cmd
        .approval(&req.args)
        .map(|a| format!(", approval {}", a.roles.join("/")))
        .unwrap_or_default();
    let head = format!(
        "{}:{} {:?} ({}, {}{approval})",
        cmd.profile,
        cmd.name,
        req.args,
        cmd.risk.as_str(),
        cmd.roles.join("/")
    );
    if let Err(denied) = opsbot::auth::may_request(&directory.resolve(identity), cmd) {
        return format!("{head}\n{denied}");
    }
    // A preview is rendered first; the action then shows what it binds as
    // `<preview.…>` (the values come from the preview at run time).
    let mut a = req.args.clone();
    let preview = match &cmd.preview {
        None => String::new(),
        Some(p) => {
            for tpl in cmd.action.templates() {
                for name in opsbot::template::placeholders(tpl) {
                    if name.starts_with("preview.") {
                        a.insert(name.to_string(), format!("<{name}>"));
                    }
                }
            }
            match opsbot::exec::render(&p.action, &catalog.targets, &req.args) {
                Ok(r) => format!("\npreview ({}): {r}\nthen:", p.what),
                Err(e) => return format!("{head}\npreview refused: {e}"),
            }
        }
    };
    match opsbot::exec::render(&cmd.action, &catalog.targets, &a) {
        Ok(r) => format!("{head}{preview}\n{r}"),
        Err(e) => format!("{head}{preview}\nrender refused: {e}"),
    }
}

/// Parses and renders each `(identity, text)` of `cases` as one snapshot text.
pub fn render_cases(catalog: &Catalog, config: &Config, profile: &str, cases: &[(&str, &str)]) -> String {
    cases
        .iter()
        .map(|(who, text)| {
            format!(
                "> {who}: {}\n{}",
                text.escape_debug(),
                parse_authorize_render(catalog, config, profile, who, text)
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// [`render_cases`] of several profiles, each under a `## <profile>` heading.
pub fn render_sections(catalog: &Catalog, config: &Config, sections: &[(&str, &[(&str, &str)])]) -> String {
    sections
        .iter()
        .map(|(profile, cases)| {
            format!(
                "## {profile}\n\n{}",
                render_cases(catalog, config, profile, cases)
            )
        })
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Runs the shipped command `name` of `profile` with `args` (as the parser
/// would hand them over), with default limits and no extra secrets.
pub async fn run_shipped(
    catalog: &Catalog,
    profile: &str,
    name: &str,
    a: &[(&str, &str)],
) -> Result<opsbot::exec::ExecOutput, opsbot::exec::ExecError> {
    run_shipped_env(catalog, profile, name, a, &bot_env(&[])).await
}

/// [`run_shipped`] with the bot's environment `env`.
pub async fn run_shipped_env(
    catalog: &Catalog,
    profile: &str,
    name: &str,
    a: &[(&str, &str)],
    env: &HashMap<String, String>,
) -> Result<opsbot::exec::ExecOutput, opsbot::exec::ExecError> {
    let cmd = catalog.get(profile, name).expect("shipped command");
    opsbot::exec::Executor::new(opsbot::exec::Limits::default(), vec![], env.clone())
        .execute(&cmd.action, &catalog.targets, &args(a))
        .await
}

/// The values of `key` in every row of `rows` (an sql output's
/// `fields["rows"]`), as text: strings as they are, other values as JSON.
pub fn column(rows: &serde_json::Value, key: &str) -> Vec<String> {
    let text = |v: &serde_json::Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    rows.as_array()
        .map(|a| a.iter().map(|r| text(&r[key])).collect())
        .unwrap_or_default()
}

/// A private Postgres schema, a DSN whose search_path is that schema, and a
/// pool to arrange data in it.
pub struct PgSchema {
    pub name: String,
    pub url: String,
    pub pool: sqlx::PgPool,
}

impl PgSchema {
    pub async fn new() -> PgSchema {
        let base = pg_url();
        let name = unique("q");
        let pool = sqlx::PgPool::connect(&base).await.expect("postgres");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        PgSchema { name, url, pool }
    }

    /// Runs `sql` with `SCHEMA` replaced by the schema's name.
    pub async fn exec(&self, sql: &str) {
        sqlx::query(&sql.replace("SCHEMA", &self.name))
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn drop(self) {
        sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.pool)
            .await
            .expect("drop schema");
        self.pool.close().await;
    }
}

/// A private Postgres database, its DSN and a pool to arrange data in it, for
/// catalogs whose queries name schemas of their own (Supabase's `auth` and
/// `storage`), which a private schema cannot hold apart from other tests.
pub struct PgDatabase {
    pub name: String,
    pub url: String,
    pub pool: sqlx::PgPool,
}

impl PgDatabase {
    pub async fn new() -> PgDatabase {
        let name = unique("db");
        let admin = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create database");
        admin.close().await;
        let url = database_url(&pg_url(), &name);
        let pool = sqlx::PgPool::connect(&url).await.expect("private database");
        PgDatabase { name, url, pool }
    }

    pub async fn exec(&self, sql: &str) {
        sqlx::query(sql)
            .execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Drops the database, ending connections the executors left open.
    pub async fn drop(self) {
        self.pool.close().await;
        let admin = sqlx::PgPool::connect(&pg_url()).await.expect("postgres");
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&admin)
            .await
            .expect("drop database");
        admin.close().await;
    }
}

/// `base` (a Postgres DSN) with its database replaced by `name`.
fn database_url(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let server = head.rsplit_once('/').map_or(head, |(s, _)| s);
    format!("{server}/{name}{query}")
}

// ---------------------------------------------------------------- process stand-ins

/// One recorded call of a stand-in program: its working directory and argv
/// (without the program's own name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub cwd: String,
    pub argv: Vec<String>,
}

/// A temporary directory of stand-in programs. `ssh` records its argv and
/// runs its last argument (the remote command) with `sh -c`, as sshd hands
/// it to the remote user's shell, with the stand-ins first on PATH; each
/// other stand-in records its argv and working directory and prints its
/// canned output.
pub struct StandIns {
    pub dir: tempfile::TempDir,
}

impl StandIns {
    /// Stand-ins for `programs`, each `(name, stdout)`.
    pub fn new(programs: &[(&str, &str)]) -> StandIns {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().display().to_string();
        for sub in ["bin", "log", "out"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        let record = |log: &str| {
            format!(
                "{{ printf '%s\\037' \"$PWD\"; for a in \"$@\"; do printf '%s\\037' \"$a\"; done; printf '\\036'; }} >> '{log}'\n"
            )
        };
        let ssh = format!(
            "#!/bin/sh\necho $$ > '{root}/ssh.pid'\n{}eval \"last=\\${{$#}}\"\nPATH='{root}/bin':\"$PATH\"; export PATH\nexec sh -c \"$last\"\n",
            record(&format!("{root}/log/ssh"))
        );
        write_script(&dir.path().join("ssh"), &ssh);
        let s = StandIns { dir };
        for (name, out) in programs {
            s.add(name, out);
        }
        s
    }

    /// Adds (or replaces) the stand-in `name` printing `stdout`; a `name`
    /// with a `/` is written at that path relative to the directory.
    pub fn add(&self, name: &str, stdout: &str) {
        self.write_stand_in(name, stdout, "");
    }

    /// Adds (or replaces) the stand-in `name` that records its call like
    /// the others, prints `stderr` there and exits 1.
    pub fn add_failing(&self, name: &str, stderr: &str) {
        self.write_stand_in(name, stderr, " >&2; exit 1");
    }

    /// A stand-in recording its argv and environment, then printing `out`
    /// followed by the shell text `then`.
    fn write_stand_in(&self, name: &str, out: &str, then: &str) {
        let root = self.dir.path().display().to_string();
        let file = name.replace('/', "_");
        std::fs::write(self.dir.path().join("out").join(&file), out).unwrap();
        let script = format!(
            "#!/bin/sh\n{{ printf '%s\\037' \"$PWD\"; for a in \"$@\"; do printf '%s\\037' \"$a\"; done; printf '\\036'; }} >> '{root}/log/{file}'\n{{ env; printf '\\036'; }} >> '{root}/log/{file}.env'\ncat '{root}/out/{file}'{then}\n"
        );
        let path = if name.contains('/') {
            self.dir.path().join(name)
        } else {
            self.dir.path().join("bin").join(name)
        };
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        write_script(&path, &script);
    }

    /// The stand-in ssh's path.
    pub fn ssh(&self) -> String {
        self.dir.path().join("ssh").display().to_string()
    }

    /// A directory inside the stand-ins' (for `{app.dir}`).
    pub fn path(&self, rel: &str) -> String {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p.display().to_string()
    }

    /// Every recorded call of `name` (`ssh` included), in order.
    pub fn calls(&self, name: &str) -> Vec<Call> {
        let file = self.dir.path().join("log").join(name.replace('/', "_"));
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.split('\u{1e}')
            .filter(|c| !c.is_empty())
            .map(|c| {
                let mut fields: Vec<String> = c.split('\u{1f}').map(str::to_string).collect();
                fields.pop(); // after the last separator
                let cwd = fields.remove(0);
                Call { cwd, argv: fields }
            })
            .collect()
    }

    /// The environment of every call of `name` (not `ssh`), in order.
    pub fn envs(&self, name: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        let file = self
            .dir
            .path()
            .join("log")
            .join(format!("{}.env", name.replace('/', "_")));
        let text = std::fs::read_to_string(file).unwrap_or_default();
        text.split('\u{1e}')
            .filter(|c| !c.trim().is_empty())
            .map(|c| {
                c.lines()
                    .filter_map(|l| l.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .collect()
    }

    /// The argv of the only call of `name`.
    pub fn only_call(&self, name: &str) -> Vec<String> {
        let calls = self.calls(name);
        assert_eq!(calls.len(), 1, "calls of {name}: {calls:?}");
        calls[0].argv.clone()
    }

    /// An executor running `allow` (and ssh as this stand-in).
    pub fn executor(&self, allow: &[&str]) -> opsbot::exec::Executor {
        self.executor_env(allow, &[])
    }

    /// [`StandIns::executor`] with `extra` in the bot's environment.
    pub fn executor_env(&self, allow: &[&str], extra: &[(&str, &str)]) -> opsbot::exec::Executor {
        opsbot::exec::Executor::new(
            opsbot::exec::Limits {
                process_allow: allow.iter().map(|s| s.to_string()).collect(),
                ssh_program: self.ssh(),
                default_timeout: std::time::Duration::from_secs(10),
                ..opsbot::exec::Limits::default()
            },
            vec![],
            bot_env(extra),
        )
    }

    /// The pid the stand-in ssh last ran as.
    pub fn ssh_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("ssh.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Whether process `pid` is running (not gone, not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Keys under `gemini:<tag>:` (inside the shipped allow-list, apart from every
/// other test), removed at the end.
pub struct Keys {
    pub prefix: String,
    pub conn: redis::aio::MultiplexedConnection,
}

impl Keys {
    pub async fn new() -> Keys {
        let client = redis::Client::open(redis_url()).expect("redis url");
        Keys {
            prefix: format!("gemini:{}:", unique("t")),
            conn: client.get_multiplexed_async_connection().await.expect("redis"),
        }
    }

    pub async fn cmd(&mut self, c: &mut redis::Cmd) {
        let _: () = c.query_async(&mut self.conn).await.expect("redis command");
    }

    pub async fn cleanup(mut self, extra: &[String]) {
        let (_, mut keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(0)
            .arg("MATCH")
            .arg(format!("{}*", self.prefix))
            .arg("COUNT")
            .arg(100_000)
            .query_async(&mut self.conn)
            .await
            .expect("scan");
        keys.extend(extra.iter().cloned());
        if !keys.is_empty() {
            self.cmd(redis::cmd("UNLINK").arg(&keys)).await;
        }
    }
}

/// Every key matching `pattern` (a SCAN loop), in the order found.
pub async fn scan_all(conn: &mut redis::aio::MultiplexedConnection, pattern: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        out.extend(page);
        if next == 0 {
            return out;
        }
        cursor = next;
    }
}

/// A stored `/queue stats` request (inbox tests).
pub fn inbox_item(id: i64, received_at: i64, key: Option<&str>) -> opsbot::store::InboxItem {
    opsbot::store::InboxItem {
        id,
        received_at,
        source: "slack".into(),
        actor: "slack:U1".into(),
        channel: Some("C1".into()),
        thread: None,
        text: "/queue stats".into(),
        origin: "{}".into(),
        dedupe_key: key.map(String::from),
    }
}
