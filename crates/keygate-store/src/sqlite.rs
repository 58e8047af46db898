//! The embedded backend: one SQLite file, nothing else to install.
//!
//! SQLite allows one writer at a time, so this opens two pools over the same file: a single
//! write connection, on which every write transaction starts with `BEGIN IMMEDIATE`, and a
//! few read connections, which WAL journaling lets run beside the writer. Concurrent writes
//! therefore wait their turn (on the pool, then `busy_timeout` for other processes) instead of
//! failing with `SQLITE_BUSY`. `synchronous = NORMAL` is the usual WAL pairing: a power cut may
//! lose the last commits but never corrupts the file.

use std::path::Path;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Executor, Row};

use crate::sql::{db_error, Backend, SqlStore};
use crate::{StoreError, StoreResult};

/// Readers beside the one writer; a verification is one indexed read, so a few suffice.
const READ_CONNECTIONS: u32 = 4;
/// How long a write waits for the write connection before giving up.
const WRITE_WAIT: Duration = Duration::from_secs(30);

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqliteTarget {
    File(std::path::PathBuf),
    /// Gone when the store is dropped; for tests and trials.
    Memory,
}

pub(crate) async fn open(target: &SqliteTarget) -> StoreResult<SqlStore> {
    let store = match target {
        SqliteTarget::File(path) => open_file(path).await?,
        SqliteTarget::Memory => open_memory().await?,
    };
    // Persistent in the file once set; an in-memory database answers "memory" and stays so.
    let mode: String = sqlx::query("PRAGMA journal_mode = WAL")
        .fetch_one(&store.write)
        .await
        .map_err(db_error)?
        .try_get(0)
        .map_err(db_error)?;
    tracing::debug!(journal_mode = %mode, "opened SQLite store");
    sqlx::migrate!("./migrations/sqlite")
        .run(&store.write)
        .await
        .map_err(StoreError::Migration)?;
    Ok(store)
}

async fn open_file(path: &Path) -> StoreResult<SqlStore> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::File {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
    }
    make_private(path)?;
    // `Any` connects from a URL; sqlx builds one that percent-encodes odd file names and
    // asks for the file to be created if missing (`mode=rwc`). Foreign keys and the 5 s busy
    // timeout are sqlx's defaults for every SQLite connection.
    let url = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .to_url_lossy();
    let write = pool_options(1)
        .acquire_timeout(WRITE_WAIT)
        .connect(url.as_str())
        .await
        .map_err(db_error)?;
    let read = pool_options(READ_CONNECTIONS)
        .connect_lazy(url.as_str())
        .map_err(db_error)?;
    Ok(SqlStore {
        backend: Backend::Sqlite,
        read,
        write,
    })
}

/// The database holds key hashes, audit rows and encrypted idempotent answers: only the
/// server's user may read it. The file is created 0600 before SQLite opens it, and an existing
/// file (and its `-wal`/`-shm` companions, which SQLite creates with the main file's mode) is
/// narrowed to 0600 if it was wider.
#[cfg(unix)]
fn make_private(path: &Path) -> StoreResult<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let fail = |source: std::io::Error| StoreError::File {
        action: "make private",
        path: path.display().to_string(),
        source,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(fail)?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = std::path::PathBuf::from(name);
        match std::fs::metadata(&file) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(fail)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn make_private(_path: &Path) -> StoreResult<()> {
    Ok(())
}

/// Every `:memory:` connection is a separate database, so reads and writes share one
/// connection that is never closed for idleness or age.
async fn open_memory() -> StoreResult<SqlStore> {
    let pool: AnyPool = pool_options(1)
        .acquire_timeout(WRITE_WAIT)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .map_err(db_error)?;
    Ok(SqlStore {
        backend: Backend::Sqlite,
        read: pool.clone(),
        write: pool,
    })
}

fn pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        .after_connect(|conn, _meta| {
            Box::pin(async move {
                conn.execute("PRAGMA synchronous = NORMAL").await?;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                Ok(())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The settings the module docs promise, on the writer and on a reader.
    #[tokio::test]
    async fn connections_use_wal_normal_sync_foreign_keys_and_a_busy_timeout() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().expect("dir");
        let store = open(&SqliteTarget::File(dir.path().join("k.db")))
            .await
            .expect("open");
        for pool in [&store.write, &store.read] {
            let mut conn = pool.acquire().await.expect("connection");
            let mut settings = Vec::new();
            for name in [
                "journal_mode",
                "synchronous",
                "foreign_keys",
                "busy_timeout",
            ] {
                let row = sqlx::query(&format!("PRAGMA {name}"))
                    .fetch_one(&mut *conn)
                    .await
                    .expect(name);
                // journal_mode answers text, the others numbers.
                let value = row
                    .try_get::<String, _>(0)
                    .or_else(|_| row.try_get::<i64, _>(0).map(|n| n.to_string()))
                    .expect(name);
                settings.push(value);
            }
            // synchronous 1 is NORMAL.
            assert_eq!(settings, ["wal", "1", "1", "5000"]);
        }
    }
}
