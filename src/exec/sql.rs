//! SQL actions: fixed query text with `$1..$n`, parameters always bound.
//!
//! Parameters are bound as text (NULL when a parameter is exactly the
//! placeholder of an absent argument); cast in SQL (`$1::int`) where another
//! type is needed. The `any` driver decodes integers, floats, booleans, text
//! and blobs; cast other column types (timestamps, numeric, uuid, json) to
//! text in the query. On Postgres each query runs in a transaction with
//! `SET LOCAL statement_timeout`; every backend also gets a client-side timeout.
//!
//! An action with `transaction = false` runs on a connection of its own,
//! outside any transaction (`SET statement_timeout` for that session), which
//! is closed afterwards; VACUUM, `REINDEX … CONCURRENTLY` and `CREATE INDEX
//! CONCURRENTLY` need that. Such statements take no `$n` parameters: the
//! table or index they name is an enum argument listed in `identifiers`,
//! written into the text as a quoted identifier ([`quote_ident`]).
//!
//! Rows are streamed (`fetch`, never `fetch_all`): reading stops after
//! [`READ_ITEMS`] rows or once the values read pass [`READ_BYTES`], and the
//! output then says `first N rows of more` (`fields.complete` is false). The
//! statement itself still runs to its end; the rest of its rows are discarded
//! unread.

use super::{address, render_optional, ExecError, ExecOutput, Executor, READ_BYTES, READ_ITEMS};
use crate::catalog::{SqlAction, Target, TargetKind, DSN_DATABASE};
use futures::TryStreamExt;
use serde_json::{json, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Column, Connection, Row};
use std::collections::BTreeMap;
use std::sync::Once;
use std::time::Duration;

static DRIVERS: Once = Once::new();

/// Widest cell in the text table.
const CELL_CHARS: usize = 40;

impl Executor {
    /// Runs a SQL action; `fields` is `{"rows": [{column: value}], "row_count": n,
    /// "complete": bool}` (`complete` is false when reading stopped at a cap).
    pub(super) async fn run_sql(
        &self,
        a: &SqlAction,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
    ) -> Result<ExecOutput, ExecError> {
        self.run_sql_as(a, targets, args, false).await
    }

    /// [`Executor::run_sql`]; `read_only` makes the transaction read-only on
    /// Postgres (previews: a write in the query is refused by the server).
    pub(super) async fn run_sql_as(
        &self,
        a: &SqlAction,
        targets: &BTreeMap<String, Target>,
        args: &BTreeMap<String, String>,
        read_only: bool,
    ) -> Result<ExecOutput, ExecError> {
        let t = self.target(targets, &a.target, TargetKind::Sql)?;
        let params = params(a, args)?;
        let limit = a.timeout.unwrap_or_else(|| t.timeout());
        let pool = self.sql_pool(t).await?;
        let pg = is_postgres(&t.url);
        // On Postgres the server cancels first; the client timeout is the backstop.
        let backstop = if pg {
            limit + Duration::from_millis(500)
        } else {
            limit
        };
        let text = statement(a, t, args)?;
        let run = async {
            if a.transaction {
                query(&pool, &text, params, pg, limit, read_only).await
            } else {
                outside_transaction(&t.url, &text, params, pg, limit).await
            }
        };
        let read = match tokio::time::timeout(backstop, run).await {
            Ok(r) => r.map_err(|e| sql_error(t, e, limit))?,
            Err(_) => return Err(timeout(t, limit)),
        };
        let n = read.rows.len();
        let count = rows_label(n, read.cut);
        let mut text = table(&read.columns, &read.rows);
        if read.cut {
            // First, so that cutting the text to chat size keeps it.
            text = format!("{count} (the rest was not read)\n{text}");
        }
        Ok(ExecOutput {
            summary: format!("sql: {count}"),
            text,
            fields: json!({
                "rows": objects(&read.columns, read.rows),
                "row_count": n,
                "complete": !read.cut,
            }),
            effects: Vec::new(),
        })
    }

    /// The pool of `t` (at most 2 connections), created on first use.
    async fn sql_pool(&self, t: &Target) -> Result<AnyPool, ExecError> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let key = format!("{}\n{}", t.name, t.url);
        self.sql
            .get(&key, || async {
                // The pool retries refused connections until its timeout; one
                // direct connection first reports why a target is unreachable.
                let probe = sqlx::AnyConnection::connect(&t.url);
                match tokio::time::timeout(t.timeout(), probe).await {
                    Ok(Ok(conn)) => {
                        let _ = conn.close().await;
                    }
                    Ok(Err(e)) => return Err(sql_error(t, e, t.timeout())),
                    Err(_) => return Err(timeout(t, t.timeout())),
                }
                AnyPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(t.timeout())
                    .connect_lazy(&t.url)
                    .map_err(|e| sql_error(t, e, t.timeout()))
            })
            .await
    }
}

/// The bound parameters of `a`: `None` (NULL) where a parameter is exactly
/// the placeholder of an absent argument. No I/O.
pub(super) fn params(
    a: &SqlAction,
    args: &BTreeMap<String, String>,
) -> Result<Vec<Option<String>>, ExecError> {
    a.params.iter().map(|p| render_optional(p, args)).collect()
}

/// The query text of `a` with each of its `identifiers` written in as a
/// quoted identifier; an absent (optional) one leaves nothing. No I/O.
pub(super) fn statement(
    a: &SqlAction,
    t: &Target,
    args: &BTreeMap<String, String>,
) -> Result<String, ExecError> {
    if a.identifiers.is_empty() {
        return Ok(a.query.clone());
    }
    let mut bad = None;
    let text = crate::template::render(&a.query, |name| {
        if !a.identifiers.iter().any(|i| i == name) {
            return None;
        }
        let value = match name {
            DSN_DATABASE => Some(dsn_database(t)),
            _ => args.get(name).cloned(),
        };
        match value.map(|v| quote_ident(&v)) {
            None => Some(String::new()),
            Some(Ok(q)) => Some(q),
            Some(Err(e)) => {
                bad.get_or_insert(e);
                Some(String::new())
            }
        }
    });
    match bad {
        Some(e) => Err(e),
        None => Ok(text),
    }
}

/// The database named by the path of `t`'s DSN (empty when it names none).
fn dsn_database(t: &Target) -> String {
    reqwest::Url::parse(&t.url)
        .map(|u| {
            let name = u.path().trim_start_matches('/');
            percent_encoding::percent_decode_str(name)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

/// `"name"`, with every `"` doubled: SQL's quoting of an identifier. Empty
/// values and NUL characters are refused (neither can name anything).
pub fn quote_ident(name: &str) -> Result<String, ExecError> {
    if name.is_empty() || name.contains('\0') {
        return Err(ExecError::Invalid {
            target: None,
            message: format!("`{}` cannot be an SQL identifier", name.escape_debug()),
        });
    }
    Ok(format!("\"{}\"", name.replace('"', "\"\"")))
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// `3 rows`, `1 row`, or `first 200 rows of more` when reading was cut.
fn rows_label(n: usize, cut: bool) -> String {
    let s = if n == 1 { "" } else { "s" };
    if cut {
        format!("first {n} row{s} of more")
    } else {
        format!("{n} row{s}")
    }
}

/// What was read of a result: column names, decoded rows, and whether
/// reading stopped at a cap with rows left.
#[derive(Default)]
struct Read {
    columns: Vec<String>,
    rows: Vec<Vec<Value>>,
    cut: bool,
}

async fn query(
    pool: &AnyPool,
    sql: &str,
    params: Vec<Option<String>>,
    pg: bool,
    limit: Duration,
    read_only: bool,
) -> Result<Read, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if pg && read_only {
        sqlx::query("SET TRANSACTION READ ONLY").execute(&mut *tx).await?;
    }
    if pg {
        // Our own integer, never a chat value.
        let ms = limit.as_millis().max(1);
        sqlx::query(&format!("SET LOCAL statement_timeout = {ms}"))
            .execute(&mut *tx)
            .await?;
    }
    let mut q = sqlx::query(sql);
    for p in params {
        q = q.bind(p);
    }
    let read = read_capped(q.fetch(&mut *tx)).await?;
    tx.commit().await?;
    Ok(read)
}

/// Runs `sql` outside any transaction on a new connection (closed after),
/// with the session's statement timeout on Postgres.
async fn outside_transaction(
    url: &str,
    sql: &str,
    params: Vec<Option<String>>,
    pg: bool,
    limit: Duration,
) -> Result<Read, sqlx::Error> {
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    if pg {
        // Our own integer, never a chat value.
        let ms = limit.as_millis().max(1);
        sqlx::query(&format!("SET statement_timeout = {ms}"))
            .execute(&mut conn)
            .await?;
    }
    let mut q = sqlx::query(sql);
    for p in params {
        q = q.bind(p);
    }
    let read = read_capped(q.fetch(&mut conn)).await;
    let _ = conn.close().await;
    read
}

/// Decodes rows as they arrive and stops at [`READ_ITEMS`] rows or once the
/// values passed [`READ_BYTES`]; dropping the stream discards the rest.
async fn read_capped(
    mut rows: impl futures::Stream<Item = Result<AnyRow, sqlx::Error>> + Unpin,
) -> Result<Read, sqlx::Error> {
    let mut read = Read::default();
    let mut bytes = 0;
    while let Some(row) = rows.try_next().await? {
        if read.rows.len() >= READ_ITEMS || bytes >= READ_BYTES {
            read.cut = true;
            break;
        }
        if read.columns.is_empty() {
            read.columns = row.columns().iter().map(|c| c.name().to_string()).collect();
        }
        let values: Vec<Value> = (0..row.columns().len()).map(|i| cell(&row, i)).collect();
        bytes += values.iter().map(value_bytes).sum::<usize>();
        read.rows.push(values);
    }
    Ok(read)
}

/// Bytes a decoded value holds (strings by length, others a word).
fn value_bytes(v: &Value) -> usize {
    match v {
        Value::String(s) => s.len(),
        _ => 8,
    }
}

fn timeout(t: &Target, after: Duration) -> ExecError {
    ExecError::Timeout {
        target: Some(t.name.clone()),
        what: format!("querying target {}", t.name),
        after,
    }
}

fn sql_error(t: &Target, e: sqlx::Error, limit: Duration) -> ExecError {
    match &e {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("57014") => timeout(t, limit),
        sqlx::Error::PoolTimedOut => timeout(t, limit),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => ExecError::Unreachable {
            target: t.name.clone(),
            reason: super::root_cause(&e),
            address: address(&t.url),
        },
        sqlx::Error::Database(db) => ExecError::Backend {
            target: t.name.clone(),
            message: db.message().to_string(),
        },
        other => {
            let mut message = other.to_string();
            if message.contains("does not support") {
                message.push_str(" (cast the column to text in the query)");
            }
            ExecError::Backend {
                target: t.name.clone(),
                message,
            }
        }
    }
}

/// One value, tried as integer, float, bool and text in that order.
fn cell(row: &AnyRow, i: usize) -> Value {
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map_or(Value::Null, |x| json!(x));
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v.map_or(Value::Null, |x| json!(x));
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map_or(Value::Null, Value::Bool);
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.map_or(Value::Null, Value::String);
    }
    match row.try_get::<Option<Vec<u8>>, _>(i) {
        Ok(None) => Value::Null,
        _ => Value::String("<binary>".into()),
    }
}

fn objects(columns: &[String], rows: Vec<Vec<Value>>) -> Vec<Value> {
    rows.into_iter()
        .map(|r| Value::Object(columns.iter().cloned().zip(r).collect()))
        .collect()
}

fn cell_text(v: &Value) -> String {
    let s = match v {
        Value::Null => "NULL".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let s = super::one_line(&s, usize::MAX);
    match s.char_indices().nth(CELL_CHARS) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s,
    }
}

/// An aligned text table with a header line.
fn table(columns: &[String], rows: &[Vec<Value>]) -> String {
    if rows.is_empty() {
        return "(no rows)".into();
    }
    let cells: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(cell_text).collect()).collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for r in &cells {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |items: &[String]| {
        items
            .iter()
            .zip(&widths)
            .map(|(s, w)| format!("{s:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut out = vec![line(columns), rule.join("-+-")];
    out.extend(cells.iter().map(|r| line(r)));
    out.join("\n")
}
