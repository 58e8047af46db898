//! Running a scenario on both backends: SQLite always, PostgreSQL when
//! `KEYGATE_TEST_DATABASE_URL` names a server (each test gets a database of its own, dropped
//! when the test passes; a failing test leaves it behind to look at).
//!
//! `both_backends!(a, b)` turns `async fn a(app: &TestApp)` into `sqlite::a` and `postgres::a`
//! tests, like the store's conformance suite.

use std::sync::Arc;

use sqlx::{Connection, Executor, PgConnection};

use crate::helpers::{Spawn, TestApp};

pub const PG_URL_VAR: &str = "KEYGATE_TEST_DATABASE_URL";

/// Declares a `#[tokio::test]` per backend for each listed scenario of the calling module.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let app = crate::helpers::TestApp::spawn().await;
                    super::$name(&app).await;
                    app.stop().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some((app, db)) = crate::helpers::TestApp::spawn_postgres().await else {
                        return;
                    };
                    super::$name(&app).await;
                    app.stop().await;
                    db.drop_database().await;
                }
            )*
        }
    };
}

/// A PostgreSQL database made for one test.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    /// `None` (and a note on stderr) when no PostgreSQL server is configured.
    pub async fn create() -> Option<PgDatabase> {
        let Ok(admin_url) = std::env::var(PG_URL_VAR) else {
            eprintln!("skipping PostgreSQL server tests: {PG_URL_VAR} is unset");
            return None;
        };
        let name = format!("kg_api_{}", keygate_core::ids::new_id("db").to_lowercase());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create the test database");
        admin.close().await.ok();
        let url = with_database(&admin_url, &name);
        Some(PgDatabase {
            admin_url,
            name,
            url,
        })
    }

    pub async fn drop_database(self) {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .expect("connect to the PostgreSQL admin database");
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await
            .expect("drop the test database");
    }
}

impl TestApp {
    /// A server on a fresh PostgreSQL database (its HMAC secret in a temporary directory);
    /// `None` when PostgreSQL is not configured. Drop the database with
    /// [`PgDatabase::drop_database`] after stopping the app.
    pub async fn spawn_postgres() -> Option<(TestApp, PgDatabase)> {
        let db = PgDatabase::create().await?;
        let app = TestApp::spawn_with(Spawn {
            dir: Some(Arc::new(tempfile::tempdir().expect("tempdir"))),
            database_url: Some(db.url.clone()),
            redis_url: None,
            clock: None,
        })
        .await;
        Some((app, db))
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
