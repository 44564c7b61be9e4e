//! What the benchmarks share: a store (a temp SQLite file, or a private
//! Postgres schema with DB=postgres) and the shipped config and catalog wired
//! into a pipeline exactly as `serve` does.

use opsbot::app;
use opsbot::auth::{Directory, Roles};
use opsbot::clock::{SharedClock, SystemClock};
use opsbot::config::Config;
use opsbot::engine::Pipeline;
use opsbot::store::Store;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

pub struct Bench {
    pub store: Store,
    pub pipeline: Pipeline,
    /// `sqlite` or `postgres`.
    pub db: String,
    schema: Option<String>,
    _dir: tempfile::TempDir,
}

impl Bench {
    /// `queue_api`: the base URL the shipped queue commands call.
    pub async fn start(queue_api: &str) -> Bench {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = std::env::var("DB").unwrap_or_else(|_| "sqlite".into());
        let (store, schema) = if db == "postgres" {
            let url =
                std::env::var("PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let schema = format!("bench_{}", std::process::id());
            let store = Store::connect_in_schema(&url, Some(&schema))
                .await
                .expect("postgres");
            (store, Some(schema))
        } else {
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("bench.db").display());
            (Store::connect(&url).await.expect("sqlite"), None)
        };
        store.migrate().await.expect("migrate");
        let env: HashMap<String, String> =
            [("OPSBOT_TARGET_QUEUE_API".to_string(), queue_api.to_string())].into();
        let text = std::fs::read_to_string("config/opsbot.toml").expect("config/opsbot.toml");
        let config = Config::parse(Path::new("config/opsbot.toml"), &text, &env).expect("config");
        let (catalog, _) = app::validate(&config, &env).expect("catalog");
        let directory = Directory::new(&config.people, &Roles::new(&config.roles)).expect("people");
        let clock: SharedClock = Arc::new(SystemClock);
        let pipeline = app::assemble(&config, catalog, directory, store.clone(), &env, clock);
        Bench {
            store,
            pipeline,
            db,
            schema,
            _dir: dir,
        }
    }

    pub async fn finish(self) {
        if let Some(s) = &self.schema {
            self.store.drop_schema_for_tests(s).await.ok();
        }
        self.store.close().await;
    }
}

/// Serves `services`' router on a free port of 127.0.0.1 through the real
/// edge; answers its base URL (`http://addr`) and the server task.
#[allow(dead_code)] // only the benches over HTTP serve
pub async fn serve(services: &opsbot::app::Services) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = services.router.clone();
    let server = tokio::spawn(async move {
        let forever = std::future::pending::<()>();
        opsbot::server::edge::serve(listener, router, std::time::Duration::from_secs(10), forever)
            .await
            .ok();
    });
    (url, server)
}

/// Stores `n` deadlines a day from now or later (approval expiries that
/// never come due during a run); answers how long that took.
#[allow(dead_code)] // not every bench stores far deadlines
pub async fn far_deadlines(store: &Store, n: usize) -> std::time::Duration {
    use opsbot::clock::Clock;
    let far = SystemClock.now_ms() + 86_400_000;
    let started = std::time::Instant::now();
    let all: Vec<(String, i64)> = (0..n).map(|i| (format!("far-{i}"), far + i as i64)).collect();
    for chunk in all.chunks(100_000) {
        store
            .schedule_many(opsbot::store::APPROVAL_EXPIRY, chunk)
            .await
            .expect("schedule");
    }
    started.elapsed()
}

#[allow(dead_code)] // only the benches with a fake chat wait for its calls
#[path = "../../tests/it/wait.rs"]
mod wait;
#[allow(unused_imports)]
pub use wait::wait_for_calls;
