//! What outlives a connection: data across reopen, migrations applied once, URL handling.

use keygate_store::{connect, sqlite_path, StoreError};

use crate::fixtures::{audit_trail, bootstrap, create, hash, key, WS};
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

/// Issue #15: a database made before migration 0005 held legacy display forms that showed
/// most of the key, and a global unique hash. After the upgrade the key and its audit rows
/// show two characters, and a second workspace may hold the same legacy hash.
#[tokio::test]
async fn security_upgrading_scrubs_old_legacy_display_forms() {
    use sqlx::{Connection, Executor, SqliteConnection};

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("keygate.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut migrator = sqlx::migrate::Migrator::new(source)
        .await
        .expect("migrations");
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 4)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    let mut conn = SqliteConnection::connect(&url).await.expect("open");
    migrator.run(&mut conn).await.expect("migrate to 0004");
    let leaked = "acme_S3cr3tP4ssw0rdXYZ0123456_…";
    conn.execute(
        format!(
            "INSERT INTO workspaces VALUES ('{WS}', 'w', 'kg', 0, '[]', '{{}}', NULL, 0);
             INSERT INTO api_keys (id, workspace_id, name, name_lower, environment, scope_all,
                 scope, permissions, status, metadata, limits, display, legacy, created_by,
                 created_at, updated_at, version)
             VALUES ('key_old', '{WS}', 'old', 'old', 'live', 1, '[]', '[]', 'active', '{{}}',
                 '{{}}', '{leaked}', 1, 'mem_owner', 0, 0, 1);
             INSERT INTO key_secrets VALUES (x'01', 'key_old', '{WS}', NULL, 0);
             INSERT INTO audit_log VALUES ('aud_1', '{WS}', 'mem_owner', 'key.import', 'key',
                 'key_old', '{{\"display\":{{\"after\":\"{leaked}\"}}}}', NULL, NULL, 'req_1', 0);"
        )
        .as_str(),
    )
    .await
    .expect("old rows");
    conn.close().await.ok();

    let store = connect(&url).await.expect("upgrade");
    let upgraded = store.key(WS, "key_old").await.expect("key");
    assert_eq!(upgraded.display, "ac…");
    let trail = audit_trail(store.as_ref(), WS, None).await;
    let text = serde_json::to_string(&trail.items).expect("json");
    assert!(!text.contains("S3cr3t"), "{text}");
    assert!(text.contains("ac…"), "{text}");
}
