//! The audit trail: one row per change, written with it, listed newest first.

use keygate_core::model::KeyStatus;
use keygate_store::{AuditEntry, AuditFilter, PageRequest, SecretChange, StoreError};

use crate::fixtures::{at, audit, audit_trail, bootstrap, hash, key, OTHER_WS, WS};
use crate::harness::TestDb;

conformance!(every_change_writes_its_audit_row, audit_filters_and_pages,);

async fn every_change_writes_its_audit_row(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let k = key(WS, "audited", 1);
    let create = audit(WS, "key.create", &k.id, 1);
    store
        .create_key(&k, &hash(1), false, &create)
        .await
        .expect("create");
    let mut disabled = k.clone();
    disabled.status = KeyStatus::Disabled;
    let disable = audit(WS, "key.disable", &k.id, 2);
    let k = store
        .save_key(&disabled, &SecretChange::None, false, &disable)
        .await
        .expect("disable");
    // A change that fails leaves no audit row.
    let failed = audit(WS, "key.update", &k.id, 3);
    let stale = disabled.clone();
    assert!(matches!(
        store
            .save_key(&stale, &SecretChange::None, false, &failed)
            .await,
        Err(StoreError::VersionConflict)
    ));
    let delete = audit(WS, "key.delete", &k.id, 4);
    store.delete_key(WS, &k.id, &delete).await.expect("delete");

    let trail = audit_trail(store, WS, Some(&k.id)).await;
    assert_eq!(trail.items, [delete, disable, create]);
    assert_eq!(trail.next_cursor, None);
}

async fn audit_filters_and_pages(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    // Eleven more rows through key creations, with two actors and two targets.
    let mut written: Vec<AuditEntry> = Vec::new();
    for n in 0..11u8 {
        let k = key(WS, &format!("k{n}"), 10);
        let mut entry = audit(WS, "key.create", &k.id, 10 + i64::from(n / 2));
        if n % 3 == 0 {
            entry.actor = "mem_editor".into();
        }
        store
            .create_key(&k, &hash(10 + n), false, &entry)
            .await
            .expect("create");
        written.push(entry);
    }
    let all = |filter: AuditFilter| async move {
        let mut items = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .list_audit(WS, &filter, &PageRequest { after, limit: 4 })
                .await
                .expect("page");
            assert!(page.items.len() <= 4);
            items.extend(page.items);
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => return items,
            }
        }
    };
    let everything = all(AuditFilter::default()).await;
    assert_eq!(everything.len(), 12, "11 key rows + the workspace's");
    let mut expected = written.clone();
    expected.sort_by(|a, b| (b.at, &b.id).cmp(&(a.at, &a.id)));
    assert_eq!(everything[..11], expected[..]);
    assert_eq!(everything[11].action, "workspace.create");

    let by_editor = all(AuditFilter {
        actor: Some("mem_editor".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(by_editor.len(), 4);
    let creates = all(AuditFilter {
        action: Some("key.create".into()),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(creates.len(), 11);
    let window = all(AuditFilter {
        since: Some(at(11)),
        until: Some(at(12)),
        ..AuditFilter::default()
    })
    .await;
    assert_eq!(window.len(), 4, "both ends inclusive");
    assert!(window.iter().all(|a| a.at >= at(11) && a.at <= at(12)));
    let other = audit_trail(store, OTHER_WS, None).await;
    assert_eq!(other.items.len(), 1);
    assert!(matches!(
        store
            .list_audit(
                WS,
                &AuditFilter::default(),
                &PageRequest {
                    after: Some("nope".into()),
                    limit: 4
                }
            )
            .await,
        Err(StoreError::BadCursor)
    ));
}
