//! Routing rules: round trip, names per workspace, one default per workspace, versions, and
//! deletion clearing the rule from the keys that used it.

use std::collections::BTreeMap;

use keygate_core::ids::new_id;
use keygate_core::routing::{RoutingMode, RoutingRule, RoutingTarget};
use keygate_store::{ConflictKind, StoreError};

use crate::fixtures::{at, audit, audit_trail, bootstrap, create, key, OTHER_WS, WS};
use crate::harness::TestDb;

conformance!(
    routing_rules_round_trip_and_stay_in_their_workspace,
    routing_rule_names_are_unique_per_workspace,
    one_default_rule_per_workspace,
    saving_a_rule_checks_its_version,
    deleting_a_rule_clears_it_from_keys,
);

fn rule(workspace_id: &str, name: &str, secs: i64) -> RoutingRule {
    RoutingRule {
        id: new_id("rr"),
        workspace_id: workspace_id.into(),
        name: name.into(),
        description: Some("primary then backup".into()),
        mode: RoutingMode::Fallback,
        targets: vec![
            RoutingTarget {
                provider: "primary".into(),
                weight: 1,
                models: BTreeMap::from([("gpt-4o".to_string(), "gpt-4o-2024".to_string())]),
            },
            RoutingTarget {
                provider: "backup".into(),
                weight: 1,
                models: BTreeMap::new(),
            },
        ],
        is_default: false,
        created_at: at(secs),
        updated_at: at(secs),
        version: 1,
    }
}

async fn routing_rules_round_trip_and_stay_in_their_workspace(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let r = rule(WS, "chain", 10);
    store
        .create_routing_rule(&r, &audit(WS, "routing_rule.create", &r.id, 10))
        .await
        .expect("create");
    assert_eq!(store.routing_rule(WS, &r.id).await.expect("get"), r);
    assert!(matches!(
        store.routing_rule(OTHER_WS, &r.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store.list_routing_rules(WS).await.expect("list"),
        vec![r.clone()]
    );
    assert!(store
        .list_routing_rules(OTHER_WS)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(store.default_routing_rule(WS).await.expect("default"), None);
    let trail = audit_trail(store, WS, Some(&r.id)).await;
    assert_eq!(trail.items.len(), 1);
    assert_eq!(trail.items[0].action, "routing_rule.create");
}

async fn routing_rule_names_are_unique_per_workspace(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let a = rule(WS, "same", 1);
    store
        .create_routing_rule(&a, &audit(WS, "routing_rule.create", &a.id, 1))
        .await
        .expect("create");
    let b = rule(WS, "same", 2);
    assert!(matches!(
        store
            .create_routing_rule(&b, &audit(WS, "routing_rule.create", &b.id, 2))
            .await,
        Err(StoreError::Conflict(ConflictKind::Name))
    ));
    let c = rule(OTHER_WS, "same", 3);
    store
        .create_routing_rule(&c, &audit(OTHER_WS, "routing_rule.create", &c.id, 3))
        .await
        .expect("same name in another workspace");
}

async fn one_default_rule_per_workspace(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let mut first = rule(WS, "first", 1);
    first.is_default = true;
    store
        .create_routing_rule(&first, &audit(WS, "routing_rule.create", &first.id, 1))
        .await
        .expect("create");
    assert_eq!(
        store.default_routing_rule(WS).await.expect("default"),
        Some(first.clone())
    );
    let mut second = rule(WS, "second", 2);
    second.is_default = true;
    store
        .create_routing_rule(&second, &audit(WS, "routing_rule.create", &second.id, 2))
        .await
        .expect("create");
    let default = store.default_routing_rule(WS).await.expect("default");
    assert_eq!(default.map(|r| r.id), Some(second.id.clone()));
    let first_now = store.routing_rule(WS, &first.id).await.expect("get");
    assert!(!first_now.is_default);
    assert_eq!(store.default_routing_rule(OTHER_WS).await.expect("d"), None);

    // Making the first the default again by saving it moves the flag back.
    let mut again = first_now.clone();
    again.is_default = true;
    store
        .save_routing_rule(&again, &audit(WS, "routing_rule.update", &first.id, 3))
        .await
        .expect("save");
    let default = store.default_routing_rule(WS).await.expect("default");
    assert_eq!(default.map(|r| r.id), Some(first.id.clone()));
}

async fn saving_a_rule_checks_its_version(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let r = rule(WS, "versioned", 1);
    store
        .create_routing_rule(&r, &audit(WS, "routing_rule.create", &r.id, 1))
        .await
        .expect("create");
    let mut changed = r.clone();
    changed.mode = RoutingMode::Split;
    changed.targets[0].weight = 70;
    changed.targets[1].weight = 30;
    changed.updated_at = at(5);
    let saved = store
        .save_routing_rule(&changed, &audit(WS, "routing_rule.update", &r.id, 5))
        .await
        .expect("save");
    assert_eq!(saved.version, 2);
    assert_eq!(store.routing_rule(WS, &r.id).await.expect("get"), saved);
    assert!(matches!(
        store
            .save_routing_rule(&changed, &audit(WS, "routing_rule.update", &r.id, 6))
            .await,
        Err(StoreError::VersionConflict)
    ));
    let mut elsewhere = saved.clone();
    elsewhere.workspace_id = OTHER_WS.into();
    assert!(matches!(
        store
            .save_routing_rule(
                &elsewhere,
                &audit(OTHER_WS, "routing_rule.update", &r.id, 7)
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn deleting_a_rule_clears_it_from_keys(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let r = rule(WS, "doomed", 1);
    store
        .create_routing_rule(&r, &audit(WS, "routing_rule.create", &r.id, 1))
        .await
        .expect("create");
    let mut k = key(WS, "routed", 2);
    k.routing_rule_id = Some(r.id.clone());
    create(store, &k, 2).await;
    let other = key(WS, "unrouted", 3);
    create(store, &other, 3).await;

    assert!(matches!(
        store
            .delete_routing_rule(
                OTHER_WS,
                &r.id,
                &audit(OTHER_WS, "routing_rule.delete", &r.id, 4)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let cleared = store
        .delete_routing_rule(WS, &r.id, &audit(WS, "routing_rule.delete", &r.id, 4))
        .await
        .expect("delete");
    assert_eq!(cleared, vec![k.id.clone()]);
    let after = store.key(WS, &k.id).await.expect("key");
    assert_eq!(after.routing_rule_id, None);
    assert_eq!(after.version, k.version + 1);
    assert!(matches!(
        store.routing_rule(WS, &r.id).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.key(WS, &other.id).await.expect("key").version, 1);
}
