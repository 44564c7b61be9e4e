//! The store: every SQL statement of opsbot lives under this module. One
//! `AnyPool` serves SQLite (default, a file) and PostgreSQL with the same SQL
//! text (`$n` placeholders work in both); only migrations differ per backend.
//! Time values are integer milliseconds since the epoch.

/// `Store` versions of `Tx` methods: each runs alone in its own transaction.
macro_rules! on_tx {
    ($($(#[$m:meta])* fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        impl Store {
            $($(#[$m])*
            pub async fn $name(&self, $($arg: $ty),*) -> Result<$ret> {
                let mut tx = self.begin().await?;
                let out = tx.$name($($arg),*).await?;
                tx.commit().await?;
                Ok(out)
            })*
        }
    };
}
pub(crate) use on_tx;

mod alerts;
mod approvals;
mod audit;
mod inbox;
mod incidents;
mod outbox;
mod replay;
mod silences;
mod storms;
mod timers;

pub use alerts::{AlertGroup, AlertRecord, NewAlert, StoredAlert};
pub use inbox::InboxItem;
pub use incidents::{card_key, OverrideRow, INCIDENT_REMINDER, INCIDENT_STEP};
pub use outbox::{KeyLookup, OutMessage, OutOp, OutboxFailure, OutboxRow, OutboxState, Thread};
pub use silences::{OpenAlert, SilenceRow, SILENCE_END, SILENCE_START};
pub use storms::{Storm, StormCount};
pub use timers::{Claimed, Timer, TimerRow, APPROVAL_EXPIRY, GUIDED, SCHEDULED};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyConnection, AnyPool, Executor, Row};
use std::time::Duration;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Read-only connections beside SQLite's one writer (see `Store::reads`).
const READERS: u32 = 2;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Failures of the store. These are internal errors: logged with context,
/// shown to users only as "something went wrong (ref …)".
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database URL (use sqlite:// or postgres://)")]
    UnsupportedUrl,
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    /// Long reads that need no transaction of an engine step (a storm's
    /// counts, a large group's members): on a SQLite file, connections of
    /// their own (WAL readers run beside the one writer, so a count over a
    /// storm's million alerts never holds up a commit); otherwise `pool`.
    reads: AnyPool,
    backend: Backend,
    /// This process's name on its claims (inbox rows, executions); see
    /// [`Store::heartbeat`].
    instance: std::sync::Arc<str>,
    /// SQLite only: the inbox's replay filter, loaded from the recent rows
    /// at the first write (see [`replay`]).
    recent: std::sync::Arc<tokio::sync::OnceCell<std::sync::Mutex<replay::Recent>>>,
}

impl Store {
    /// Connects to `url` (`sqlite://…` or `postgres://…`).
    pub async fn connect(url: &str) -> Result<Store> {
        Self::connect_in_schema(url, None).await
    }

    /// Connects with every Postgres session confined to `schema` (created if
    /// needed). Tests use this to run in parallel on one database.
    pub async fn connect_in_schema(url: &str, schema: Option<&str>) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        if let (Backend::Postgres, Some(s)) = (backend, schema) {
            let setup = AnyPoolOptions::new().max_connections(1).connect(url).await?;
            setup
                .execute(format!("CREATE SCHEMA IF NOT EXISTS \"{}\"", ident(s)).as_str())
                .await?;
            setup.close().await;
        }
        let init = match (backend, schema) {
            (Backend::Sqlite, _) => {
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;".to_string()
            }
            (Backend::Postgres, Some(s)) => format!("SET search_path TO \"{}\"", ident(s)),
            (Backend::Postgres, None) => String::new(),
        };
        let max = match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .test_before_acquire(backend != Backend::Sqlite)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                let init = init.clone();
                Box::pin(async move {
                    if !init.is_empty() {
                        conn.execute(init.as_str()).await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let reads = match backend {
            Backend::Sqlite if crate::instance::sqlite_file(url).is_some() => AnyPoolOptions::new()
                .max_connections(READERS)
                .acquire_timeout(Duration::from_secs(10))
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA busy_timeout = 10000; PRAGMA query_only = ON;")
                            .await?;
                        Ok(())
                    })
                })
                .connect_lazy(url)?,
            _ => pool.clone(),
        };
        let instance = format!("{:016x}", rand::random::<u64>()).into();
        Ok(Store {
            pool,
            reads,
            backend,
            instance,
            recent: Default::default(),
        })
    }

    /// This process's instance id (a new one per connect).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Declares this instance alive until `until` (recovery leaves its
    /// claims alone until then).
    pub async fn heartbeat(&self, now: crate::clock::Millis, until: crate::clock::Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO instances (id, started_at, alive_until) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET alive_until = excluded.alive_until",
        )
        .bind(&*self.instance)
        .bind(now)
        .bind(until)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM instances WHERE alive_until < $1")
            .bind(now - 86_400_000)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the backend's migrations.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => {
                // Each migration commits separately; at synchronous=FULL that
                // is an fsync each (most of a fresh start). In WAL mode NORMAL
                // stays consistent: a power cut can only undo the newest
                // migrations together with their rows in _sqlx_migrations, so
                // they run again at the next start. The first commit at FULL
                // afterwards makes them durable.
                sqlx::query("PRAGMA synchronous = NORMAL")
                    .execute(&self.pool)
                    .await?;
                let ran = SQLITE_MIGRATIONS.run(&self.pool).await;
                sqlx::query("PRAGMA synchronous = FULL")
                    .execute(&self.pool)
                    .await?;
                ran?
            }
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// Is the database reachable? (`/readyz`)
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }

    /// Starts a transaction: an engine step applies its state change, audit
    /// entries, outgoing messages and timers through it, all or nothing.
    pub async fn begin(&self) -> Result<Tx> {
        Ok(Tx {
            inner: self.pool.begin().await?,
            instance: self.instance.clone(),
            backend: self.backend,
        })
    }
}

/// One transaction of the store. Dropping it without [`Tx::commit`] rolls
/// everything back. On SQLite it holds the only connection: never await
/// anything but this transaction's own calls while it is open.
pub struct Tx {
    inner: sqlx::Transaction<'static, Any>,
    instance: std::sync::Arc<str>,
    backend: Backend,
}

/// One of the store's connections, kept by a writer between its batches
/// through a flood: giving one back to the pool costs a round
/// trip to the database (sqlx pings it on release), and on SQLite, where the
/// pool has one connection, that was a third to a half of each commit's
/// time. While it is kept nothing else gets SQLite's one connection: keep it
/// only while more work is waiting, and briefly. (The alert writer keeps
/// one only after a batch of few rows, single PagerDuty events: webhook
/// posts of many alerts commit for long, and the alert poster, starved
/// between them, then held up its batches for 120 ms.)
pub struct Conn {
    conn: sqlx::pool::PoolConnection<Any>,
    store: Store,
}

impl Store {
    /// A connection to keep between transactions (see [`Conn`]).
    pub async fn conn(&self) -> Result<Conn> {
        Ok(Conn {
            conn: self.pool.acquire().await?,
            store: self.clone(),
        })
    }
}

/// How a writer keeps a [`Conn`] through a flood: [`Keeper::take`] gives
/// the kept one while it was first taken less than [`KEEP_MAX`] ago, else (after
/// giving it back, so the rest of opsbot gets its turn) a fresh one.
#[derive(Default)]
pub struct Keeper {
    kept: Option<Conn>,
    since: Option<std::time::Instant>,
}

/// The longest a writer keeps its connection through a flood before giving
/// it back for one turn (on SQLite the pool has one: approvals, results,
/// timers and the alert poster wait meanwhile).
pub const KEEP_MAX: Duration = Duration::from_millis(20);

impl Keeper {
    /// The connection for the next batch.
    pub async fn take(&mut self, store: &Store) -> Result<Conn> {
        if self.since.is_some_and(|since| since.elapsed() >= KEEP_MAX) {
            // Given back before asking for one again: on SQLite there is one.
            self.release();
        }
        if let Some(conn) = self.kept.take() {
            return Ok(conn);
        }
        self.since = Some(std::time::Instant::now());
        store.conn().await
    }

    /// Keeps `conn` for the next batch (more work is waiting).
    pub fn keep(&mut self, conn: Conn) {
        self.kept = Some(conn);
    }

    /// Gives the connection back (nothing is waiting).
    pub fn release(&mut self) {
        self.kept = None;
        self.since = None;
    }
}

/// SQL condition: the claim `owner` of the row belongs to no live instance
/// (`$1` = now).
const ORPHANED: &str = "(owner IS NULL OR owner NOT IN (SELECT id FROM instances WHERE alive_until > $1))";

impl Tx {
    fn backend(&self) -> Backend {
        self.backend
    }

    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        Ok(())
    }

    fn conn(&mut self) -> &mut AnyConnection {
        &mut self.inner
    }
}

/// Numbered placeholders `first..first+n` for one statement, as the backend
/// binds them fastest: plain positional `?` on SQLite (sqlx looks every
/// `$n` up by name, which is quadratic in the number of parameters and
/// dominated multi-row statements), `$n` on Postgres. Bind in text order.
pub(crate) fn params(backend: Backend, first: usize, n: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| match backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${i}"),
        })
        .collect()
}

/// Schema names come from our own tests, but quote-escape them anyway.
fn ident(s: &str) -> String {
    s.replace('"', "\"\"")
}

fn text(row: &AnyRow, col: &str) -> Result<String> {
    Ok(row.try_get::<String, _>(col)?)
}

fn opt_text(row: &AnyRow, col: &str) -> Result<Option<String>> {
    Ok(row.try_get::<Option<String>, _>(col)?)
}

fn int(row: &AnyRow, col: &str) -> Result<i64> {
    Ok(row.try_get::<i64, _>(col)?)
}

impl Store {
    /// Drops a test schema (Postgres). Only the test harness calls this.
    #[doc(hidden)]
    pub async fn drop_schema_for_tests(&self, schema: &str) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", ident(schema)))
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

impl Store {
    /// Runs raw SQL. Only tests use it, to prove the audit log refuses tampering.
    #[doc(hidden)]
    pub async fn tamper_for_tests(&self, sql: &str) -> Result<u64> {
        Ok(sqlx::query(sql).execute(&self.pool).await?.rows_affected())
    }
}

impl Store {
    /// `(state, count)` rows of a table that has a `state` column, for `/metrics`.
    async fn counts_by_state(&self, table: &'static str) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(&format!(
            "SELECT state, COUNT(*) AS n FROM {table} GROUP BY state ORDER BY state"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((text(r, "state")?, int(r, "n")?)))
            .collect()
    }
}
