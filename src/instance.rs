//! One `opsbot serve` per SQLite file. A second server on the same file
//! would send every outbox row twice and fight over the single writer, so
//! `serve` takes an exclusive lock on `<database file>.serve.lock` first and
//! refuses to start when another process holds it. The OS drops the lock
//! when the process dies, so a crash never leaves a stale lock behind.
//! (`opsbot run` takes no lock: console commands share the file safely.)
//! PostgreSQL needs no lock: its rows are claimed with leases.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::PathBuf;

/// Held for as long as the server runs.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another `opsbot serve` is already using {0}; stop it first (one server per SQLite file; use PostgreSQL to run two)"
    )]
    Held(String),
    #[error("cannot create the lock file {path}: {error}")]
    Io { path: String, error: std::io::Error },
}

/// The database file of a `sqlite://` URL (`None`: not SQLite, or in
/// memory, where a second connection would see another database).
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let memory = path == ":memory:" || query.split('&').any(|kv| kv == "mode=memory");
    (!path.is_empty() && !memory).then(|| PathBuf::from(path))
}

/// Takes the serve lock of `database_url` (no-op for PostgreSQL).
pub fn lock(database_url: &str) -> Result<Option<ServeLock>, LockError> {
    let Some(db) = sqlite_file(database_url) else {
        return Ok(None);
    };
    let mut name = db.clone().into_os_string();
    name.push(".serve.lock");
    let path = PathBuf::from(name);
    let shown = path.display().to_string();
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|error| LockError::Io {
            path: shown.clone(),
            error,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(Some(ServeLock { _file: file })),
        Err(TryLockError::WouldBlock) => Err(LockError::Held(db.display().to_string())),
        Err(TryLockError::Error(error)) => Err(LockError::Io { path: shown, error }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_server_on_one_file_is_refused_until_the_first_stops() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("opsbot.db").display());
        let first = lock(&url).unwrap();
        assert!(first.is_some());
        let second = lock(&url).unwrap_err();
        assert!(second.to_string().contains("another `opsbot serve`"), "{second}");
        drop(first);
        assert!(lock(&url).unwrap().is_some(), "free again once the first stops");
    }

    #[test]
    fn postgres_needs_no_lock() {
        assert!(lock("postgres://u@h/db").unwrap().is_none());
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("sqlite://shared?mode=memory&cache=shared"), None);
        assert_eq!(
            sqlite_file("sqlite://opsbot.db?mode=rwc"),
            Some(PathBuf::from("opsbot.db"))
        );
    }
}
