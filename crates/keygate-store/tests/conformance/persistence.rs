//! What outlives a connection: data across reopen, migrations applied once, URL handling.

use keygate_store::{connect, sqlite_path, StoreError};

use crate::fixtures::{bootstrap, create, hash, key, WS};
use crate::harness::TestDb;

conformance!(data_survives_reconnecting_and_migrations_are_idempotent,);

async fn data_survives_reconnecting_and_migrations_are_idempotent(db: &TestDb) {
    bootstrap(db.store()).await;
    let k = key(WS, "durable", 1);
    create(db.store(), &k, 1).await;
    // Two more stores over the same database, one opened while the other is live.
    let again = connect(&db.url).await.expect("reconnect");
    let third = connect(&db.url).await.expect("reconnect twice");
    assert_eq!(again.workspace_count().await.expect("count"), 2);
    assert_eq!(third.key(WS, &k.id).await.expect("key"), k);
    assert_eq!(
        again
            .key_by_hash(&hash(1))
            .await
            .expect("lookup")
            .map(|m| m.key),
        Some(k)
    );
    assert_eq!(again.backend(), db.store().backend());
}

#[tokio::test]
async fn an_sqlite_file_keeps_its_data_after_the_store_is_dropped() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("nested/dir/keygate.db");
    let url = path.display().to_string();
    assert_eq!(sqlite_path(&url), Some(path.clone()));
    let k = key(WS, "kept", 1);
    {
        let store = connect(&url)
            .await
            .expect("create the file and its directories");
        assert_eq!(store.backend(), "sqlite");
        bootstrap(&*store).await;
        create(&*store, &k, 1).await;
    }
    assert!(path.exists());
    let store = connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("reopen");
    assert_eq!(store.key(WS, &k.id).await.expect("key"), k);
}

#[tokio::test]
async fn in_memory_sqlite_works_for_trials() {
    let store = connect("sqlite::memory:").await.expect("memory");
    bootstrap(&*store).await;
    let k = key(WS, "ephemeral", 1);
    create(&*store, &k, 1).await;
    assert_eq!(store.key(WS, &k.id).await.expect("key"), k);
    assert_eq!(sqlite_path("sqlite::memory:"), None);
}

#[tokio::test]
async fn unknown_urls_are_refused() {
    assert!(matches!(
        connect("mysql://root:pw@localhost/x").await.err(),
        Some(StoreError::UnsupportedUrl(_))
    ));
    assert_eq!(sqlite_path("postgres://h/db"), None);
}
