//! Identities: stored whole, unique external ids, a key names only an identity of its own
//! workspace, an identity with keys is not deleted, and usage reads by identity.

use keygate_core::limits::{KeyLimits, ResetPeriod, TokenLimit};
use keygate_core::model::Identity;
use keygate_core::Micros;
use keygate_store::{
    ConflictKind, KeyFilter, PageRequest, StoreError, UsageBatch, UsageDimension, UsageQuery,
    UsageRollup,
};

use crate::fixtures::{at, audit, bootstrap, hash, key, OTHER_WS, WS};
use crate::harness::TestDb;

conformance!(
    identities_round_trip_and_keep_external_ids_unique,
    keys_name_identities_of_their_workspace_only,
    usage_reads_by_identity,
);

fn identity(workspace_id: &str, id: &str, external_id: &str, created_secs: i64) -> Identity {
    Identity {
        id: id.into(),
        workspace_id: workspace_id.into(),
        external_id: external_id.into(),
        name: Some(format!("Customer {external_id}")),
        metadata: serde_json::json!({"plan": "pro"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        limits: KeyLimits {
            token_limit: Some(TokenLimit {
                limit: 1000,
                reset: ResetPeriod::Monthly,
            }),
            ..KeyLimits::default()
        },
        created_at: at(created_secs),
        updated_at: at(created_secs),
        version: 1,
    }
}

async fn identities_round_trip_and_keep_external_ids_unique(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let first = identity(WS, "idt_a", "cus_1", 1);
    store
        .create_identity(&first, &audit(WS, "identity.create", "idt_a", 1))
        .await
        .expect("create");
    assert_eq!(store.identity(WS, "idt_a").await.expect("read"), first);
    assert_eq!(
        store
            .identity_by_external_id(WS, "cus_1")
            .await
            .expect("by external id"),
        first
    );
    // The same external id is free in another workspace, taken in this one.
    store
        .create_identity(
            &identity(OTHER_WS, "idt_o", "cus_1", 1),
            &audit(OTHER_WS, "identity.create", "idt_o", 1),
        )
        .await
        .expect("other workspace");
    let taken = store
        .create_identity(
            &identity(WS, "idt_b", "cus_1", 2),
            &audit(WS, "identity.create", "idt_b", 2),
        )
        .await;
    assert!(
        matches!(taken, Err(StoreError::Conflict(ConflictKind::ExternalId))),
        "{taken:?}"
    );
    assert!(matches!(
        store.identity(OTHER_WS, "idt_a").await,
        Err(StoreError::NotFound)
    ));

    for (n, id) in ["idt_b", "idt_c", "idt_d"].into_iter().enumerate() {
        let n = i64::try_from(n).expect("small") + 2;
        store
            .create_identity(
                &identity(WS, id, &format!("cus_{n}"), n),
                &audit(WS, "identity.create", id, n),
            )
            .await
            .expect("create");
    }
    let page = store
        .list_identities(
            WS,
            &PageRequest {
                after: None,
                limit: 3,
            },
        )
        .await
        .expect("page");
    let ids: Vec<&str> = page.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["idt_d", "idt_c", "idt_b"]);
    let rest = store
        .list_identities(
            WS,
            &PageRequest {
                after: page.next_cursor.clone(),
                limit: 3,
            },
        )
        .await
        .expect("rest");
    let ids: Vec<&str> = rest.items.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["idt_a"]);
    assert_eq!(rest.next_cursor, None);

    // Saved with optimistic concurrency: a stale version is refused.
    let mut changed = first.clone();
    changed.name = None;
    changed.updated_at = at(10);
    let saved = store
        .save_identity(&changed, &audit(WS, "identity.update", "idt_a", 10))
        .await
        .expect("save");
    assert_eq!(saved.version, 2);
    assert_eq!(store.identity(WS, "idt_a").await.expect("read"), saved);
    let stale = store
        .save_identity(&changed, &audit(WS, "identity.update", "idt_a", 11))
        .await;
    assert!(
        matches!(stale, Err(StoreError::VersionConflict)),
        "{stale:?}"
    );
    let mut elsewhere = saved.clone();
    elsewhere.workspace_id = OTHER_WS.into();
    let foreign = store
        .save_identity(&elsewhere, &audit(OTHER_WS, "identity.update", "idt_a", 12))
        .await;
    assert!(matches!(foreign, Err(StoreError::NotFound)), "{foreign:?}");
}

async fn keys_name_identities_of_their_workspace_only(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    store
        .create_identity(
            &identity(WS, "idt_a", "cus_1", 1),
            &audit(WS, "identity.create", "idt_a", 1),
        )
        .await
        .expect("create");
    store
        .create_identity(
            &identity(OTHER_WS, "idt_o", "cus_1", 1),
            &audit(OTHER_WS, "identity.create", "idt_o", 1),
        )
        .await
        .expect("create other");

    let mut held = key(WS, "held", 2);
    held.identity_id = Some("idt_a".into());
    store
        .create_key(
            &held,
            &hash(10),
            false,
            &audit(WS, "key.create", &held.id, 2),
        )
        .await
        .expect("key of the identity");
    assert_eq!(
        store.key(WS, &held.id).await.expect("read").identity_id,
        Some("idt_a".into())
    );
    let mut stolen = key(WS, "stolen", 3);
    stolen.identity_id = Some("idt_o".into());
    let refused = store
        .create_key(
            &stolen,
            &hash(11),
            false,
            &audit(WS, "key.create", &stolen.id, 3),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::UnknownReference("identity"))),
        "{refused:?}"
    );

    let filter = KeyFilter {
        identity: Some("idt_a".into()),
        ..KeyFilter::default()
    };
    let listed = store
        .list_keys(WS, &filter, &PageRequest::default())
        .await
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, held.id);

    let in_use = store
        .delete_identity(WS, "idt_a", &audit(WS, "identity.delete", "idt_a", 4))
        .await;
    assert!(
        matches!(in_use, Err(StoreError::Conflict(ConflictKind::InUse))),
        "{in_use:?}"
    );
    assert!(store.identity(WS, "idt_a").await.is_ok(), "still there");

    let mut moved = store.key(WS, &held.id).await.expect("read");
    moved.identity_id = None;
    store
        .save_key(
            &moved,
            &keygate_store::SecretChange::None,
            false,
            &audit(WS, "key.update", &held.id, 5),
        )
        .await
        .expect("move out");
    store
        .delete_identity(WS, "idt_a", &audit(WS, "identity.delete", "idt_a", 6))
        .await
        .expect("delete");
    assert!(matches!(
        store.identity(WS, "idt_a").await,
        Err(StoreError::NotFound)
    ));
    let mut back = store.key(WS, &held.id).await.expect("read");
    back.identity_id = Some("idt_a".into());
    let gone = store
        .save_key(
            &back,
            &keygate_store::SecretChange::None,
            false,
            &audit(WS, "key.update", &held.id, 7),
        )
        .await;
    assert!(
        matches!(gone, Err(StoreError::UnknownReference("identity"))),
        "{gone:?}"
    );
}

async fn usage_reads_by_identity(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    store
        .create_identity(
            &identity(WS, "idt_a", "cus_1", 1),
            &audit(WS, "identity.create", "idt_a", 1),
        )
        .await
        .expect("create");
    let mut a = key(WS, "a", 2);
    a.identity_id = Some("idt_a".into());
    let b = key(WS, "b", 3);
    for (k, h) in [(&a, 20), (&b, 21)] {
        store
            .create_key(k, &hash(h), false, &audit(WS, "key.create", &k.id, 2))
            .await
            .expect("key");
    }
    let rollup = |key_id: &str, requests: u64| UsageRollup {
        workspace_id: WS.into(),
        key_id: key_id.into(),
        day: at(0).date_naive(),
        operation: "verify".into(),
        project: None,
        outcome: "valid".into(),
        requests,
        tokens: 0,
        cost: Micros::ZERO,
    };
    store
        .record_usage(&UsageBatch {
            rollups: vec![rollup(&a.id, 3), rollup(&b.id, 4)],
            ..UsageBatch::default()
        })
        .await
        .expect("usage");
    let query = |identity_id: Option<&str>| UsageQuery {
        key_id: None,
        identity_id: identity_id.map(Into::into),
        from: at(0).date_naive(),
        to: at(0).date_naive(),
    };
    let of_identity = store
        .usage_totals(WS, &query(Some("idt_a")), UsageDimension::Key)
        .await
        .expect("identity's usage");
    let groups: Vec<(Option<String>, u64)> = of_identity
        .iter()
        .map(|t| (t.group.clone(), t.requests))
        .collect();
    assert_eq!(groups, vec![(Some(a.id.clone()), 3)]);
    let by_identity = store
        .usage_totals(WS, &query(None), UsageDimension::Identity)
        .await
        .expect("by identity");
    let mut groups: Vec<(Option<String>, u64)> = by_identity
        .iter()
        .map(|t| (t.group.clone(), t.requests))
        .collect();
    groups.sort();
    assert_eq!(groups, vec![(None, 4), (Some("idt_a".into()), 3)]);
    let rollups = store
        .usage_rollups(WS, &query(Some("idt_a")))
        .await
        .expect("rollups");
    assert_eq!(rollups.len(), 1);
}
