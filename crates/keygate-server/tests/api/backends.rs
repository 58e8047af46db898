//! Running a scenario on both backends: SQLite always, PostgreSQL when
//! `KEYGATE_TEST_DATABASE_URL` names a server (each test gets a database of its own, dropped
//! when the test passes; a failing test leaves it behind to look at).
//!
//! `both_backends!(a, b)` turns `async fn a(app: &TestApp)` into `sqlite::a` and `postgres::a`
//! tests, like the store's conformance suite.

use std::sync::Arc;

use keygate_store::test_support::PgTestDatabase;

use crate::helpers::{Spawn, TestApp};

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

impl TestApp {
    /// A server on a fresh PostgreSQL database (its HMAC secret in a temporary directory);
    /// `None` when PostgreSQL is not configured. Drop the database with
    /// [`PgTestDatabase::drop_database`] after stopping the app.
    pub async fn spawn_postgres() -> Option<(TestApp, PgTestDatabase)> {
        let db = PgTestDatabase::create("api").await?;
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
