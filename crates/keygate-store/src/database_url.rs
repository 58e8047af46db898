//! Which backend a database URL names. Decided once, at start.
//!
//! Errors name only the URL's scheme: a PostgreSQL URL may carry a password, and the error
//! text ends up in logs.

use std::path::PathBuf;

use crate::sqlite::SqliteTarget;
use crate::StoreError;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DatabaseUrl {
    Sqlite(SqliteTarget),
    Postgres(String),
}

/// File extensions that make a bare path an SQLite database.
const SQLITE_EXTENSIONS: [&str; 3] = [".db", ".sqlite", ".sqlite3"];

impl DatabaseUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.strip_prefix("//").unwrap_or(rest);
            // Query parameters are sqlx's business, and we set the ones we need ourselves.
            let path = rest.split_once('?').map_or(rest, |(path, _)| path);
            return match path {
                ":memory:" => Ok(Self::Sqlite(SqliteTarget::Memory)),
                "" => Err(StoreError::UnsupportedUrl(
                    "sqlite: needs a file path, e.g. sqlite://data/keygate.db".into(),
                )),
                path => Ok(Self::Sqlite(SqliteTarget::File(PathBuf::from(path)))),
            };
        }
        if !url.contains("://") && SQLITE_EXTENSIONS.iter().any(|ext| url.ends_with(ext)) {
            return Ok(Self::Sqlite(SqliteTarget::File(PathBuf::from(url))));
        }
        let scheme = url
            .split_once("://")
            .map_or("a URL without a scheme", |(scheme, _)| scheme);
        Err(StoreError::UnsupportedUrl(format!(
            "{scheme} (use sqlite://path/to/file.db, a path ending in .db, or postgres://…)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> DatabaseUrl {
        DatabaseUrl::Sqlite(SqliteTarget::File(PathBuf::from(path)))
    }

    #[test]
    fn schemes_pick_the_backend() {
        let cases = [
            ("sqlite://data/keygate.db", file("data/keygate.db")),
            ("sqlite:///var/lib/keygate.db", file("/var/lib/keygate.db")),
            ("sqlite:keygate.db?mode=rwc", file("keygate.db")),
            ("keygate.db", file("keygate.db")),
            ("./x/y.sqlite3", file("./x/y.sqlite3")),
            ("sqlite::memory:", DatabaseUrl::Sqlite(SqliteTarget::Memory)),
            (
                "postgres://u:p@h/db",
                DatabaseUrl::Postgres("postgres://u:p@h/db".into()),
            ),
            (
                "postgresql://h/db",
                DatabaseUrl::Postgres("postgresql://h/db".into()),
            ),
        ];
        for (url, want) in cases {
            assert_eq!(DatabaseUrl::parse(url).expect(url), want, "{url}");
        }
    }

    #[test]
    fn unsupported_urls_never_echo_credentials() {
        for url in [
            "mysql://root:hunter2@db/x",
            "keygate",
            "sqlite:",
            "http://x",
        ] {
            let err = DatabaseUrl::parse(url).expect_err(url);
            assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{url}");
            assert!(!err.to_string().contains("hunter2"));
        }
    }
}
