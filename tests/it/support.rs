//! Test harness: real stores (a temp SQLite file and a private Postgres
//! schema), a fake HTTP target that records what it was sent, and a pipeline
//! wired exactly as `opsbot serve` wires it, on a manual clock.

use axum::extract::{Path as UrlPath, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use opsbot::app;
use opsbot::auth::{Directory, Roles};
use opsbot::catalog::{self, Catalog};
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
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
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
roles = ["sre"]

[people.carol]
console = "carol"
slack = "U0CAROL"
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
    let directory = Directory::new(&config.people, &Roles::new(&config.roles)).expect("people");
    let clock: SharedClock = clock;
    app::assemble(config, shipped_catalog(config, target), directory, store, clock)
}

pub fn pipeline(store: Store, target: &str, clock: Arc<ManualClock>) -> Pipeline {
    pipeline_with(&config(""), store, target, clock)
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(1_700_000_000_000))
}

/// Runs `text` as `identity` in channel C_QUEUE.
pub async fn say(p: &Pipeline, identity: &str, text: &str) -> Reply {
    let inv = Invocation::console(identity, Some("C_QUEUE".into()), text, p.clock.now_ms());
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
}

impl Setup {
    fn new(slack_on: bool) -> Setup {
        Setup {
            slack_on,
            edge: test_edge(),
            ids: (None, None),
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

    /// Accepting only workspace `team` and app `app` (`SLACK_TEAM_ID`, `SLACK_APP_ID`).
    pub async fn spawn_for(store: Store, team: &str, app: &str) -> TestApp {
        let setup = Setup {
            ids: (Some(team.into()), Some(app.into())),
            ..Setup::new(true)
        };
        Self::start(store, setup, |_| {}).await
    }

    async fn start(store: Store, setup: Setup, tweak: impl FnOnce(&mut Catalog)) -> TestApp {
        let Setup { slack_on, edge, ids } = setup;
        let slack = crate::fake_slack::FakeSlack::start().await;
        let target = FakeTarget::start().await;
        let cfg = config("");
        let directory = Directory::new(&cfg.people, &Roles::new(&cfg.roles)).expect("people");
        let clock: SharedClock = Arc::new(opsbot::clock::SystemClock);
        let mut catalog = shipped_catalog(&cfg, &target.url);
        tweak(&mut catalog);
        let pipeline = app::assemble(&cfg, catalog, directory, store, clock);
        let slack_cfg = opsbot::config::SlackConfig {
            signing_secret: SLACK_SECRET.to_string().into(),
            bot_token: "xoxb-test-token".to_string().into(),
            app_token: None,
            api_url: slack.url(),
            team_id: ids.0,
            app_id: ids.1,
        };
        let pacing = opsbot::engine::outbox::Pacing {
            per_channel_per_sec: 50,
            global_per_sec: 500,
        };
        let services =
            app::start(pipeline.clone(), slack_on.then_some(&slack_cfg), pacing, &edge).expect("start");
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
            target,
            services: Some(services),
            server,
        }
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.services.take() {
            s.stop().await;
        }
        self.server.abort();
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
            ("trigger_id", "1.2.3"),
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
