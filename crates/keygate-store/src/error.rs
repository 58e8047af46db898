//! The store's one error type. `RowNotFound` becomes [`StoreError::NotFound`]; unique-index
//! violations become [`StoreError::Conflict`] with what collided; everything else is
//! `Database`, which keeps the `sqlx::Error` as its source and whose text is for logs only (the
//! server never shows it to a client).

/// What collided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictKind {
    /// A name that must be unique in its workspace (key or project name).
    Name,
    /// The workspace allows one active key per environment and there already is one.
    ActiveKey,
    /// Deleting the last owner would leave the workspace unmanageable.
    LastOwner,
    /// An id that already exists.
    Id,
    /// An identity's external id, unique in its workspace.
    ExternalId,
    /// The record is still referred to (an identity that keys still name).
    InUse,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("conflict: {0:?}")]
    Conflict(ConflictKind),
    #[error("the record was changed by another request")]
    VersionConflict,
    /// The database failed: connection, I/O, a statement.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
    /// A file of the SQLite store could not be created or made private.
    #[error("database error: cannot {action} {path}: {source}")]
    File {
        action: &'static str,
        path: String,
        source: std::io::Error,
    },
    /// A value could not be encoded as JSON for storage.
    #[error("database error: could not encode a value as JSON: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    #[error("migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
    #[error("unsupported database URL: {0}")]
    UnsupportedUrl(String),
    /// A pagination cursor that this store did not hand out (the server answers 400).
    #[error("the page cursor is not valid")]
    BadCursor,
    /// The record names another that does not exist in its workspace (a key's identity).
    #[error("the {0} referred to does not exist")]
    UnknownReference(&'static str),
}

impl StoreError {
    /// The database could not be reached or is not taking connections (refused, reset, the
    /// pool gave up waiting, the server shutting down): the server answers 503
    /// `store_unavailable` and the client may retry. Anything else about the database is a
    /// failure of ours (500).
    pub fn is_unavailable(&self) -> bool {
        let StoreError::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLSTATE class 08 (connection exception), 57P01-57P03 (shutting down, cannot
            // connect now), 53300 (too many connections).
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                code.starts_with("08") || matches!(&*code, "57P01" | "57P02" | "57P03" | "53300")
            }),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
