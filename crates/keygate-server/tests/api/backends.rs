//! Running a scenario on several kinds of server: SQLite always; PostgreSQL (each test gets a
//! database of its own, dropped when the test passes; a failing test leaves it behind to look
//! at) and Redis when asked.
//!
//! A test that needs a service is `#[ignore]`d and has the service's name (`postgres`,
//! `redis`) in its path: `scripts/test` runs the ignored tests and skips by name those whose
//! service does not answer. Run without its service, such a test panics saying how to get it.
//!
//! `both_backends!(a, b)` turns `async fn a(app: &TestApp)` into `sqlite::a` and `postgres::a`
//! tests, like the store's conformance suite.

use std::sync::Arc;

use keygate_store::test_support::PgTestDatabase;

use crate::helpers::{Spawn, TestApp};

/// Declares a `#[tokio::test]` per kind of server for each listed scenario of the calling
/// module: `on_servers!(sqlite: Served::sqlite, #[ignore = "…"] postgres: Served::postgres
/// => [a, b])` makes `sqlite::a`, `postgres::a`, `sqlite::b` and `postgres::b`, the attributes
/// given before a kind on each of its tests.
macro_rules! on_servers {
    ($($(#[$attr:meta])* $module:ident: $spawn:path),+ => $scenarios:tt) => {
        $( on_servers!(@module [$(#[$attr])*] $module $spawn $scenarios); )+
    };
    (@module $attrs:tt $module:ident $spawn:path [$($name:ident),* $(,)?]) => {
        mod $module {
            $( on_servers!(@test $attrs $name $spawn); )*
        }
    };
    (@test [$(#[$attr:meta])*] $name:ident $spawn:path) => {
        $(#[$attr])*
        #[tokio::test]
        async fn $name() {
            let server = $spawn().await;
            super::$name(&server.app).await;
            server.finish().await;
        }
    };
}

/// Declares a `#[tokio::test]` per backend for each listed scenario of the calling module.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        on_servers!(
            sqlite: crate::backends::Served::sqlite,
            #[ignore = "needs PostgreSQL: KEYGATE_TEST_DATABASE_URL (scripts/test sets it when PostgreSQL answers)"]
            postgres: crate::backends::Served::postgres
            => [$($name),*]
        );
    };
}

/// The Redis server tests keep their limits in: `KEYGATE_TEST_REDIS_URL`, or a panic saying
/// how to set it. Each test uses fresh keys, so tests can share the server.
pub fn redis_url() -> String {
    match std::env::var("KEYGATE_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "this test needs Redis: set KEYGATE_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379), \
             or run scripts/test, which sets it when Redis answers there"
        ),
    }
}

/// A server a scenario runs on, and the database to drop once it has stopped.
pub struct Served {
    pub app: TestApp,
    database: Option<PgTestDatabase>,
}

impl Served {
    /// A server on a fresh SQLite file, limits in process.
    pub async fn sqlite() -> Served {
        Self::sqlite_with(Spawn::default()).await
    }

    /// A server on a fresh SQLite file, with these options.
    pub async fn sqlite_with(options: Spawn) -> Served {
        Served {
            app: TestApp::spawn_with(options).await,
            database: None,
        }
    }

    /// A server on a fresh PostgreSQL database (its HMAC secret in a temporary directory).
    pub async fn postgres() -> Served {
        Self::postgres_with(Spawn::default()).await
    }

    /// A server on a fresh PostgreSQL database, with these options (its own directory and
    /// database whatever they say).
    pub async fn postgres_with(options: Spawn) -> Served {
        let db = PgTestDatabase::create("api").await;
        let app = TestApp::spawn_with(Spawn {
            dir: Some(Arc::new(tempfile::tempdir().expect("tempdir"))),
            database_url: Some(db.url.clone()),
            ..options
        })
        .await;
        Served {
            app,
            database: Some(db),
        }
    }

    /// A server on a fresh SQLite file with its limits in Redis.
    pub async fn redis() -> Served {
        Served {
            app: TestApp::spawn_with(Spawn::with_redis(redis_url())).await,
            database: None,
        }
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
