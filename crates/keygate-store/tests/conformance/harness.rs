//! A fresh, isolated store per test.

use std::sync::Arc;

use keygate_store::{connect, Store};
use sqlx::{Connection, Executor, PgConnection};

pub const PG_URL_VAR: &str = "KEYGATE_TEST_DATABASE_URL";

pub struct TestDb {
    pub store: Arc<dyn Store>,
    /// The URL the store was opened from; connecting to it again reaches the same data.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PgDatabase>,
}

struct PgDatabase {
    admin_url: String,
    name: String,
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("keygate.db").display());
        let store = connect(&url).await.expect("open SQLite store");
        Self {
            store,
            url,
            _dir: Some(dir),
            postgres: None,
        }
    }

    /// `None` (and a note on stderr) when no PostgreSQL server is configured.
    pub async fn postgres() -> Option<Self> {
        let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
            eprintln!("skipping PostgreSQL store tests: {PG_URL_VAR} is unset");
            return None;
        };
        let name = format!("kg_test_{}", keygate_core::ids::new_id("db").to_lowercase());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        let store = connect(&url).await.expect("open PostgreSQL store");
        Some(Self {
            store,
            url,
            _dir: None,
            postgres: Some(PgDatabase { admin_url, name }),
        })
    }

    pub fn store(&self) -> &dyn Store {
        &*self.store
    }

    /// Drops a PostgreSQL test database. Not run when a test panics, so a failure leaves its
    /// database behind to look at.
    pub async fn finish(self) {
        let Self {
            store, postgres, ..
        } = self;
        drop(store);
        if let Some(pg) = postgres {
            let mut admin = PgConnection::connect(&pg.admin_url)
                .await
                .expect("connect to the PostgreSQL admin database");
            admin
                .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", pg.name).as_str())
                .await
                .expect("drop the test database");
        }
    }
}

/// The admin URL with its database name replaced.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[test]
fn database_names_are_swapped_in_urls() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "kg_x"),
        "postgres://postgres@127.0.0.1:5432/kg_x"
    );
    assert_eq!(
        with_database("postgres://u:p@h/db?sslmode=disable", "kg_x"),
        "postgres://u:p@h/kg_x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://h", "kg_x"), "postgres://h/kg_x");
}
