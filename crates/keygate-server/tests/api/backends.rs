//! Running a scenario on both backends: SQLite always, PostgreSQL when
//! `KEYGATE_TEST_DATABASE_URL` names a server (each test gets a database of its own, dropped
//! when the test passes; a failing test leaves it behind to look at).
//!
//! `both_backends!(a, b)` turns `async fn a(app: &TestApp)` into `sqlite::a` and `postgres::a`
//! tests, like the store's conformance suite.

use std::sync::Arc;

use keygate_store::test_support::PgTestDatabase;

use crate::helpers::{Spawn, TestApp};

/// Declares a `#[tokio::test]` per kind of server for each listed scenario of the calling
/// module: `on_servers!(sqlite: Served::sqlite, postgres: Served::postgres => [a, b])` makes
/// `sqlite::a`, `postgres::a`, `sqlite::b` and `postgres::b`. A kind whose service is not
/// configured skips its tests.
macro_rules! on_servers {
    ($($module:ident: $spawn:path),+ => $scenarios:tt) => {
        $( on_servers!(@module $module $spawn $scenarios); )+
    };
    (@module $module:ident $spawn:path [$($name:ident),* $(,)?]) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    let Some(server) = $spawn().await else { return };
                    super::$name(&server.app).await;
                    server.finish().await;
                }
            )*
        }
    };
}

/// Declares a `#[tokio::test]` per backend for each listed scenario of the calling module.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        on_servers!(
            sqlite: crate::backends::Served::sqlite,
            postgres: crate::backends::Served::postgres
            => [$($name),*]
        );
    };
}

/// A server a scenario runs on, and the database to drop once it has stopped.
pub struct Served {
    pub app: TestApp,
    database: Option<PgTestDatabase>,
}

impl Served {
    /// A server on a fresh SQLite file, limits in process.
    pub async fn sqlite() -> Option<Served> {
        Some(Served {
            app: TestApp::spawn().await,
            database: None,
        })
    }

    /// A server on a fresh PostgreSQL database (its HMAC secret in a temporary directory);
    /// `None` when PostgreSQL is not configured.
    pub async fn postgres() -> Option<Served> {
        let db = PgTestDatabase::create("api").await?;
        let app = TestApp::spawn_with(Spawn {
            dir: Some(Arc::new(tempfile::tempdir().expect("tempdir"))),
            database_url: Some(db.url.clone()),
            ..Spawn::default()
        })
        .await;
        Some(Served {
            app,
            database: Some(db),
        })
    }

    /// A server on a fresh SQLite file with its limits in Redis; `None` when
    /// `KEYGATE_TEST_REDIS_URL` is unset.
    pub async fn redis() -> Option<Served> {
        let Ok(url) = std::env::var("KEYGATE_TEST_REDIS_URL") else {
            eprintln!("skipping a Redis limiter test: KEYGATE_TEST_REDIS_URL is unset");
            return None;
        };
        Some(Served {
            app: TestApp::spawn_with(Spawn::with_redis(url)).await,
            database: None,
        })
    }

    /// Stops the server, then drops its PostgreSQL database (a failing test never gets here,
    /// and leaves it behind to look at).
    pub async fn finish(self) {
        self.app.stop().await;
        if let Some(db) = self.database {
            db.drop_database().await;
        }
    }
}
