//! A fresh, isolated store per test: a temporary SQLite file, or a PostgreSQL database of its
//! own (see `keygate_store::test_support`).

use std::sync::Arc;

use keygate_store::test_support::PgTestDatabase;
use keygate_store::{connect, Store};

pub struct TestDb {
    pub store: Arc<dyn Store>,
    /// The URL the store was opened from; connecting to it again reaches the same data.
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PgTestDatabase>,
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

    /// A fresh database on the PostgreSQL server tests use (a panic when none is set).
    pub async fn postgres() -> Self {
        let db = PgTestDatabase::create("test").await;
        let store = connect(&db.url).await.expect("open PostgreSQL store");
        Self {
            store,
            url: db.url.clone(),
            _dir: None,
            postgres: Some(db),
        }
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
        if let Some(db) = postgres {
            db.drop_database().await;
        }
    }
}
