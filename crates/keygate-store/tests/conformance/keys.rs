//! Keys: create, read, list, save, delete, the single-active policy and `last_used_at`.

use keygate_core::model::{KeyStatus, Scope};
use keygate_core::EnvTag;
use keygate_store::{ConflictKind, KeyFilter, PageRequest, SecretChange, StoreError};

use crate::fixtures::{at, audit, bootstrap, create, full_key, hash, key, OTHER_WS, WS};
use crate::harness::TestDb;

conformance!(
    keys_round_trip_every_field,
    key_names_are_unique_per_workspace,
    keys_are_invisible_across_workspaces,
    list_filters_combine,
    list_pages_newest_first_without_gaps,
    one_active_key_per_environment_when_asked,
    save_checks_the_version,
    delete_removes_the_key_and_its_secrets,
    touch_never_moves_last_used_backwards,
    concurrent_writes_wait_instead_of_failing,
    security_a_legacy_hash_is_unique_per_workspace_only,
);

async fn keys_round_trip_every_field(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let full = full_key(WS, "full", 10);
    create(store, &full, 10).await;
    assert_eq!(store.key(WS, &full.id).await.expect("get"), full);
    let plain = key(WS, "plain", 11);
    create(store, &plain, 11).await;
    assert_eq!(store.key(WS, &plain.id).await.expect("get"), plain);

    let found = store
        .key_by_hash(&hash(10))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.key, full);
    assert_eq!(found.secret_expires_at, None);
    assert_eq!(store.key_by_hash(&hash(99)).await.expect("lookup"), None);

    assert!(!store.has_legacy_keys(WS).await.expect("legacy"));
    let mut legacy = key(WS, "imported", 12);
    legacy.legacy = true;
    create(store, &legacy, 12).await;
    assert!(store.has_legacy_keys(WS).await.expect("legacy"));
    assert!(!store.has_legacy_keys(OTHER_WS).await.expect("legacy"));
}

async fn key_names_are_unique_per_workspace(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let first = key(WS, "deploy", 1);
    create(store, &first, 1).await;
    let clash = key(WS, "deploy", 2);
    assert!(matches!(
        store
            .create_key(
                &clash,
                &hash(2),
                false,
                &audit(WS, "key.create", &clash.id, 2)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::Name))
    ));
    // The failed insert left nothing behind: its secret does not authenticate.
    assert_eq!(store.key_by_hash(&hash(2)).await.expect("lookup"), None);
    create(store, &key(OTHER_WS, "deploy", 2), 3).await;
    let mut same_id = key(WS, "other", 3);
    same_id.id = first.id.clone();
    assert!(matches!(
        store
            .create_key(
                &same_id,
                &hash(4),
                false,
                &audit(WS, "key.create", &same_id.id, 3)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::Id))
    ));
    let same_secret = key(WS, "third", 4);
    assert!(matches!(
        store
            .create_key(
                &same_secret,
                &hash(1),
                false,
                &audit(WS, "key.create", "k", 4)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::Id))
    ));
    let homeless = key("ws_missing", "x", 4);
    assert!(matches!(
        store
            .create_key(
                &homeless,
                &hash(5),
                false,
                &audit("ws_missing", "key.create", "k", 4)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    // Renaming onto a taken name is a conflict too.
    let mut second = key(WS, "second", 5);
    create(store, &second, 6).await;
    second.name = "deploy".into();
    assert!(matches!(
        store
            .save_key(
                &second,
                &SecretChange::None,
                false,
                &audit(WS, "key.update", &second.id, 6)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::Name))
    ));
}

async fn keys_are_invisible_across_workspaces(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let mine = key(WS, "mine", 1);
    create(store, &mine, 1).await;
    assert!(matches!(
        store.key(OTHER_WS, &mine.id).await,
        Err(StoreError::NotFound)
    ));
    let page = store
        .list_keys(OTHER_WS, &KeyFilter::default(), &PageRequest::default())
        .await
        .expect("list");
    assert!(page.items.is_empty());
    let mut theirs = mine.clone();
    theirs.workspace_id = OTHER_WS.into();
    assert!(matches!(
        store
            .save_key(
                &theirs,
                &SecretChange::None,
                false,
                &audit(OTHER_WS, "key.update", &mine.id, 2)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .delete_key(
                OTHER_WS,
                &mine.id,
                &audit(OTHER_WS, "key.delete", &mine.id, 2)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.key(WS, &mine.id).await.expect("still there"), mine);
}

async fn list_filters_combine(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let mut all_live = key(WS, "Prod_Main", 1);
    all_live.scope = Scope::All;
    let mut a_test = key(WS, "staging 100%", 2);
    a_test.environment = EnvTag::parse("test").expect("env");
    a_test.scope = Scope::Projects(vec!["prj_a".into()]);
    let mut b_disabled = key(WS, "prod-backup", 3);
    b_disabled.scope = Scope::Projects(vec!["prj_b".into(), "prj_c".into()]);
    b_disabled.status = KeyStatus::Disabled;
    let mut legacy = key(WS, "old system", 4);
    legacy.legacy = true;
    legacy.status = KeyStatus::Revoked;
    legacy.scope = Scope::Projects(vec!["prj_a".into(), "prj_b".into()]);
    for (n, k) in [&all_live, &a_test, &b_disabled, &legacy]
        .into_iter()
        .enumerate()
    {
        create(store, k, 10 + n as u8).await;
    }
    create(store, &key(OTHER_WS, "prod-elsewhere", 5), 20).await;

    let names = |filter: KeyFilter| async move {
        store
            .list_keys(WS, &filter, &PageRequest::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|k| k.name)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        names(KeyFilter::default()).await,
        ["old system", "prod-backup", "staging 100%", "Prod_Main"]
    );
    let status = |s| KeyFilter {
        status: Some(s),
        ..KeyFilter::default()
    };
    assert_eq!(
        names(status(KeyStatus::Active)).await,
        ["staging 100%", "Prod_Main"]
    );
    assert_eq!(names(status(KeyStatus::Disabled)).await, ["prod-backup"]);
    assert_eq!(names(status(KeyStatus::Revoked)).await, ["old system"]);
    let env = KeyFilter {
        environment: Some("test".into()),
        ..KeyFilter::default()
    };
    assert_eq!(names(env).await, ["staging 100%"]);
    let project = |p: &str| KeyFilter {
        project: Some(p.into()),
        ..KeyFilter::default()
    };
    assert_eq!(
        names(project("prj_a")).await,
        ["old system", "staging 100%", "Prod_Main"]
    );
    assert_eq!(names(project("prj_c")).await, ["prod-backup", "Prod_Main"]);
    assert_eq!(names(project("prj_zzz")).await, ["Prod_Main"]);
    let search = |s: &str| KeyFilter {
        search: Some(s.into()),
        ..KeyFilter::default()
    };
    assert_eq!(names(search("PROD")).await, ["prod-backup", "Prod_Main"]);
    assert_eq!(
        names(search("_")).await,
        ["Prod_Main"],
        "_ is literal, not a wildcard"
    );
    assert_eq!(names(search("100%")).await, ["staging 100%"]);
    assert_eq!(names(search("%")).await, ["staging 100%"], "% is literal");
    assert_eq!(names(search("nothing")).await, Vec::<String>::new());
    let legacy_only = KeyFilter {
        legacy: Some(true),
        ..KeyFilter::default()
    };
    assert_eq!(names(legacy_only).await, ["old system"]);
    let not_legacy = KeyFilter {
        legacy: Some(false),
        ..KeyFilter::default()
    };
    assert_eq!(names(not_legacy).await.len(), 3);
    let combined = KeyFilter {
        status: Some(KeyStatus::Active),
        environment: Some("live".into()),
        project: Some("prj_b".into()),
        search: Some("main".into()),
        legacy: Some(false),
        identity: None,
    };
    assert_eq!(names(combined).await, ["Prod_Main"]);
}

async fn list_pages_newest_first_without_gaps(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    // Seven keys, three of them created in the same millisecond: ties are broken by id.
    let mut created = Vec::new();
    for n in 0..7u8 {
        let secs = if n < 3 { 100 } else { i64::from(n) * 10 };
        let k = key(WS, &format!("k{n}"), secs);
        create(store, &k, 10 + n).await;
        created.push(k);
    }
    // Every other key scoped to a project, so paging through a filter crosses skipped rows.
    let mut expected: Vec<_> = created.clone();
    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store
            .list_keys(WS, &KeyFilter::default(), &PageRequest { after, limit: 3 })
            .await
            .expect("page");
        pages += 1;
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, expected);

    // Exactly one full page: no cursor to an empty page.
    let page = store
        .list_keys(
            WS,
            &KeyFilter::default(),
            &PageRequest {
                after: None,
                limit: 7,
            },
        )
        .await
        .expect("page");
    assert_eq!((page.items.len(), page.next_cursor), (7, None));
    // Limits are clamped, not refused.
    let page = store
        .list_keys(
            WS,
            &KeyFilter::default(),
            &PageRequest {
                after: None,
                limit: 0,
            },
        )
        .await
        .expect("page");
    assert_eq!(page.items.len(), 1);
    let page = store
        .list_keys(
            WS,
            &KeyFilter::default(),
            &PageRequest {
                after: None,
                limit: 100_000,
            },
        )
        .await
        .expect("page");
    assert_eq!(page.items.len(), 7);
    for bad in ["garbage", "12", "x.key_1"] {
        let result = store
            .list_keys(
                WS,
                &KeyFilter::default(),
                &PageRequest {
                    after: Some(bad.into()),
                    limit: 3,
                },
            )
            .await;
        assert!(matches!(result, Err(StoreError::BadCursor)), "{bad}");
    }
}

async fn one_active_key_per_environment_when_asked(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let create_single = |k: keygate_core::model::ApiKey, secret: u8| async move {
        store
            .create_key(&k, &hash(secret), true, &audit(WS, "key.create", &k.id, 1))
            .await
            .map(|()| k)
    };
    let first = create_single(key(WS, "first", 1), 1).await.expect("first");
    let second = create_single(key(WS, "second", 2), 2).await;
    assert!(matches!(
        second,
        Err(StoreError::Conflict(ConflictKind::ActiveKey))
    ));
    let mut other_env = key(WS, "test env", 3);
    other_env.environment = EnvTag::parse("test").expect("env");
    create_single(other_env, 3)
        .await
        .expect("another environment has its own slot");
    create_single(key(OTHER_WS, "elsewhere", 3), 4)
        .await
        .expect("another workspace has its own slot");
    // Without the policy a key takes no slot.
    create(store, &key(WS, "unpolicied", 4), 5).await;

    // Disabling the active key frees the slot; enabling it again collides.
    let mut disabled = first.clone();
    disabled.set_enabled(false).expect("disable");
    let disabled = store
        .save_key(
            &disabled,
            &SecretChange::None,
            true,
            &audit(WS, "key.disable", &first.id, 5),
        )
        .await
        .expect("disable");
    let second = create_single(key(WS, "second", 6), 6)
        .await
        .expect("slot is free");
    let mut enabled = disabled.clone();
    enabled.set_enabled(true).expect("enable");
    assert!(matches!(
        store
            .save_key(
                &enabled,
                &SecretChange::None,
                true,
                &audit(WS, "key.enable", &first.id, 7)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::ActiveKey))
    ));
    // Revoking the holder frees it again.
    let mut revoked = second.clone();
    revoked.revoke();
    store
        .save_key(
            &revoked,
            &SecretChange::None,
            true,
            &audit(WS, "key.revoke", &second.id, 8),
        )
        .await
        .expect("revoke");
    let enabled = store
        .save_key(
            &enabled,
            &SecretChange::None,
            true,
            &audit(WS, "key.enable", &first.id, 9),
        )
        .await
        .expect("enable now");
    assert_eq!(enabled.status, KeyStatus::Active);
}

async fn save_checks_the_version(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let original = full_key(WS, "versioned", 1);
    create(store, &original, 1).await;

    let mut change = original.clone();
    change.name = "renamed".into();
    change.description = None;
    change.scope = Scope::Projects(vec!["prj_z".into()]);
    change.expires_at = None;
    change.updated_at = at(50);
    let saved = store
        .save_key(
            &change,
            &SecretChange::None,
            false,
            &audit(WS, "key.update", &change.id, 50),
        )
        .await
        .expect("save");
    assert_eq!(saved.version, original.version + 1);
    assert_eq!(
        saved,
        keygate_core::model::ApiKey {
            version: saved.version,
            ..change.clone()
        }
    );
    assert_eq!(store.key(WS, &original.id).await.expect("get"), saved);
    let in_z = store
        .list_keys(
            WS,
            &KeyFilter {
                project: Some("prj_z".into()),
                ..KeyFilter::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("list");
    assert_eq!(
        in_z.items.len(),
        1,
        "the scope index follows the saved scope"
    );
    let in_a = store
        .list_keys(
            WS,
            &KeyFilter {
                project: Some("prj_a".into()),
                ..KeyFilter::default()
            },
            &PageRequest::default(),
        )
        .await
        .expect("list");
    assert!(in_a.items.is_empty());

    // Someone saving from the old copy loses.
    let mut stale = original.clone();
    stale.name = "lost update".into();
    assert!(matches!(
        store
            .save_key(
                &stale,
                &SecretChange::Replace(hash(9)),
                false,
                &audit(WS, "key.update", &stale.id, 51)
            )
            .await,
        Err(StoreError::VersionConflict)
    ));
    assert_eq!(store.key(WS, &original.id).await.expect("get"), saved);
    assert!(store.key_by_hash(&hash(9)).await.expect("lookup").is_none());

    // A save does not undo a use recorded since the caller read the key.
    store
        .touch_keys(&[(original.id.clone(), at(60))])
        .await
        .expect("touch");
    let mut again = saved.clone();
    again.permissions.push("results:write".into());
    let saved_again = store
        .save_key(
            &again,
            &SecretChange::None,
            false,
            &audit(WS, "key.update", &again.id, 61),
        )
        .await
        .expect("save");
    assert_eq!(saved_again.last_used_at, Some(at(60)));
    assert_eq!(saved_again.version, saved.version + 1);

    store
        .delete_key(WS, &original.id, &audit(WS, "key.delete", &original.id, 62))
        .await
        .expect("delete");
    assert!(matches!(
        store
            .save_key(
                &saved_again,
                &SecretChange::None,
                false,
                &audit(WS, "key.update", &original.id, 63)
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn delete_removes_the_key_and_its_secrets(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let doomed = key(WS, "doomed", 1);
    create(store, &doomed, 1).await;
    let mut rotating = doomed.clone();
    rotating.updated_at = at(2);
    store
        .save_key(
            &rotating,
            &SecretChange::Rotate {
                new: hash(2),
                old_until: at(3600),
            },
            false,
            &audit(WS, "key.rotate", &doomed.id, 2),
        )
        .await
        .expect("rotate");
    store
        .delete_key(WS, &doomed.id, &audit(WS, "key.delete", &doomed.id, 3))
        .await
        .expect("delete");
    assert!(matches!(
        store.key(WS, &doomed.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.key_by_hash(&hash(1)).await.expect("lookup"), None);
    assert_eq!(store.key_by_hash(&hash(2)).await.expect("lookup"), None);
    assert!(matches!(
        store
            .delete_key(WS, &doomed.id, &audit(WS, "key.delete", &doomed.id, 4))
            .await,
        Err(StoreError::NotFound)
    ));
    // Name and secrets are free for reuse.
    let reborn = key(WS, "doomed", 5);
    create(store, &reborn, 1).await;
    assert_eq!(
        store
            .key_by_hash(&hash(1))
            .await
            .expect("lookup")
            .map(|m| m.key.id),
        Some(reborn.id)
    );
}

async fn touch_never_moves_last_used_backwards(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let a = key(WS, "a", 1);
    let b = key(OTHER_WS, "b", 1);
    create(store, &a, 1).await;
    create(store, &b, 2).await;
    store.touch_keys(&[]).await.expect("nothing to do");
    store
        .touch_keys(&[
            (a.id.clone(), at(100)),
            (b.id.clone(), at(50)),
            ("key_gone".into(), at(1)),
        ])
        .await
        .expect("touch");
    let last_used = |ws: &'static str, id: String| async move {
        store.key(ws, &id).await.expect("get").last_used_at
    };
    assert_eq!(last_used(WS, a.id.clone()).await, Some(at(100)));
    assert_eq!(last_used(OTHER_WS, b.id.clone()).await, Some(at(50)));
    // Older news does nothing; within one batch the latest use wins whatever its position.
    store
        .touch_keys(&[
            (a.id.clone(), at(90)),
            (b.id.clone(), at(70)),
            (b.id.clone(), at(60)),
        ])
        .await
        .expect("touch");
    assert_eq!(last_used(WS, a.id.clone()).await, Some(at(100)));
    assert_eq!(last_used(OTHER_WS, b.id.clone()).await, Some(at(70)));
    // A batch larger than one statement's chunk.
    let mut many: Vec<_> = (0..1000)
        .map(|n| (format!("key_missing{n}"), at(5)))
        .collect();
    many.push((a.id.clone(), at(200)));
    store.touch_keys(&many).await.expect("touch many");
    assert_eq!(last_used(WS, a.id.clone()).await, Some(at(200)));
    // Touching changes neither the version nor updated_at.
    let after = store.key(WS, &a.id).await.expect("get");
    assert_eq!((after.version, after.updated_at), (a.version, a.updated_at));
}

async fn concurrent_writes_wait_instead_of_failing(db: &TestDb) {
    bootstrap(db.store()).await;
    // A second store on the same database stands in for a second process or node.
    let second = keygate_store::connect(&db.url)
        .await
        .expect("second connection");
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..24u8 {
        let store = if n % 2 == 0 {
            db.store.clone()
        } else {
            second.clone()
        };
        tasks.spawn(async move {
            let k = key(WS, &format!("parallel-{n}"), i64::from(n));
            store
                .create_key(
                    &k,
                    &hash(100 + n),
                    false,
                    &audit(WS, "key.create", &k.id, 1),
                )
                .await?;
            store
                .touch_keys(&[(k.id.clone(), at(1000 + i64::from(n)))])
                .await?;
            let mut k = store.key(WS, &k.id).await?;
            k.description = Some("edited".into());
            store
                .save_key(
                    &k,
                    &SecretChange::Replace(hash(200 + n)),
                    false,
                    &audit(WS, "key.update", &k.id, 2),
                )
                .await
        });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("write under contention");
    }
    let page = db
        .store()
        .list_keys(
            WS,
            &KeyFilter::default(),
            &PageRequest {
                after: None,
                limit: 100,
            },
        )
        .await
        .expect("list");
    assert_eq!(page.items.len(), 24);
    assert!(page
        .items
        .iter()
        .all(|k| k.description.as_deref() == Some("edited")));
}

/// Issue #15: importing a legacy key another workspace holds must succeed exactly like a new
/// import (no cross-tenant oracle); the same hash twice in one workspace is still a conflict,
/// and a lookup returns every holder so the caller picks by workspace.
async fn security_a_legacy_hash_is_unique_per_workspace_only(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let mut theirs = key(OTHER_WS, "theirs", 1);
    theirs.legacy = true;
    create(store, &theirs, 40).await;
    let mut ours = key(WS, "ours", 2);
    ours.legacy = true;
    create(store, &ours, 40).await;

    let mut holders: Vec<String> = store
        .keys_by_hash(&hash(40))
        .await
        .expect("lookup")
        .into_iter()
        .map(|m| m.key.id)
        .collect();
    holders.sort();
    let mut expected = vec![theirs.id.clone(), ours.id.clone()];
    expected.sort();
    assert_eq!(holders, expected);
    assert_eq!(
        store.key_by_hash(&hash(40)).await.expect("lookup"),
        None,
        "ambiguous without a workspace"
    );

    let mut again = key(WS, "again", 3);
    again.legacy = true;
    assert!(matches!(
        store
            .create_key(
                &again,
                &hash(40),
                false,
                &audit(WS, "key.import", &again.id, 3)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::Id))
    ));

    store
        .delete_key(WS, &ours.id, &audit(WS, "key.delete", &ours.id, 4))
        .await
        .expect("delete");
    let left = store
        .key_by_hash(&hash(40))
        .await
        .expect("lookup")
        .expect("theirs is left");
    assert_eq!(left.key.id, theirs.id);
}
