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
use opsbot::engine::{Invocation, Pipeline, Reply, Source};
use opsbot::store::Store;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub fn pg_url() -> String {
    std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
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
}

impl FakeTarget {
    pub async fn start() -> FakeTarget {
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let app = Router::new()
            .route("/health", get(|State(h): State<Arc<Mutex<Vec<Hit>>>>| async move {
                rec("GET", "/health".into(), &h);
                Json(serde_json::json!({"status": "ok"}))
            }))
            .route("/api/queue/stats", get(|State(h): State<Arc<Mutex<Vec<Hit>>>>| async move {
                rec("GET", "/api/queue/stats".into(), &h);
                Json(serde_json::json!({"ai-analysis": {"waiting": 12, "active": 3, "completed": 900, "failed": 37}}))
            }))
            .route("/api/queue/{q}/{op}", post(|State(h): State<Arc<Mutex<Vec<Hit>>>>, UrlPath((q, op)): UrlPath<(String, String)>| async move {
                rec("POST", format!("/api/queue/{q}/{op}"), &h);
                // Slow enough that racing approvers overlap with the execution.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Json(serde_json::json!({"retried": 37, "queue": q}))
            }))
            .with_state(hits.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await.ok() });
        FakeTarget { url, hits }
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

fn rec(m: &str, p: String, h: &Arc<Mutex<Vec<Hit>>>) {
    h.lock().expect("lock").push(Hit {
        method: m.into(),
        path: p,
    });
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
roles = ["sre"]

[people.carol]
console = "carol"
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
    let env: HashMap<String, String> = [("OPSBOT_TARGET_QUEUE_API".to_string(), target.to_string())].into();
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
    let inv = Invocation {
        actor: identity.into(),
        channel: Some("C_QUEUE".into()),
        thread: None,
        text: text.into(),
        source: Source::Console,
        received_at: p.clock.now_ms(),
    };
    p.handle(&inv).await
}
