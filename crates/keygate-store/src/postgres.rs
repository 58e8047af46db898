//! The shared backend: PostgreSQL, for many stateless nodes.
//!
//! One pool serves reads and writes; PostgreSQL's row locks and unique indexes do the
//! serialising SQLite needs a single writer for. Migrations take PostgreSQL's advisory lock,
//! so nodes starting together apply them once.

use std::time::Duration;

use sqlx::any::AnyPoolOptions;

use crate::sql::{db_error, Backend, SqlStore};
use crate::{StoreError, StoreResult};

/// Connections per node; the server's work per request is one or two short queries.
const MAX_CONNECTIONS: u32 = 16;

pub(crate) async fn open(url: &str) -> StoreResult<SqlStore> {
    let pool = AnyPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        // How long a request waits for a connection before it is answered 503
        // `store_unavailable`: long enough for a burst, short enough that an unreachable
        // database is said promptly.
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(db_error)?;
    sqlx::migrate!("./migrations/postgres")
        .run(&pool)
        .await
        .map_err(StoreError::Migration)?;
    Ok(SqlStore {
        backend: Backend::Postgres,
        read: pool.clone(),
        write: pool,
    })
}
