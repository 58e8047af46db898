//! Events no audited change causes, queued once per mark; the scan for keys whose expiry
//! notice is due; endpoints disabled after failing for long enough.

use keygate_core::events::{key_expiring_mark, EventType, ExpiryNotice};
use keygate_core::ids::new_id;
use keygate_core::model::KeyStatus;
use keygate_store::{
    Attempt, Delivery, DeliveryState, MarkedEvent, PageRequest, SecretChange, Store,
    WebhookEndpoint,
};

use crate::fixtures::{at, audit, audit_trail, bootstrap, hash, key, WS};
use crate::harness::TestDb;

conformance!(
    a_marked_event_is_queued_once,
    the_expiry_scan_skips_keys_already_warned_of,
    an_endpoint_failing_long_enough_is_disabled_once,
);

fn endpoint(types: Vec<EventType>) -> WebhookEndpoint {
    WebhookEndpoint {
        id: new_id("wh"),
        workspace_id: WS.into(),
        url: "https://hooks.example.com/x".into(),
        description: None,
        event_types: types,
        enabled: true,
        sealed_secret: vec![1, 2, 3],
        failing_since: None,
        disabled_reason: None,
        created_at: at(0),
        updated_at: at(0),
    }
}

fn event(mark: &str) -> MarkedEvent {
    MarkedEvent {
        workspace_id: WS.into(),
        mark: mark.into(),
        event_id: new_id("evt"),
        event_type: EventType::LimitThreshold,
        payload: "{}".into(),
        at: at(10),
    }
}

async fn deliveries(store: &dyn Store, endpoint_id: &str) -> Vec<Delivery> {
    store
        .list_deliveries(WS, endpoint_id, &PageRequest::default())
        .await
        .expect("deliveries")
        .items
}

async fn a_marked_event_is_queued_once(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let all = endpoint(Vec::new());
    let other = endpoint(vec![EventType::KeyRevoked]);
    for e in [&all, &other] {
        store
            .create_webhook(e, &audit(WS, "webhook.create", &e.id, 0))
            .await
            .expect("endpoint");
    }
    let first = event("limit.threshold:key:key_a:tokens:0:100:80");
    assert!(store.queue_marked_event(&first).await.expect("queue"));
    // The same mark again, as another node would try: nothing more.
    assert!(!store
        .queue_marked_event(&event(&first.mark))
        .await
        .expect("again"));
    let queued = deliveries(store, &all.id).await;
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].event_id, first.event_id);
    assert_eq!(queued[0].event_type, EventType::LimitThreshold);
    assert_eq!(queued[0].state, DeliveryState::Pending);
    assert!(
        deliveries(store, &other.id).await.is_empty(),
        "not subscribed"
    );
    // The mark is per workspace.
    let elsewhere = MarkedEvent {
        workspace_id: crate::fixtures::OTHER_WS.into(),
        ..event(&first.mark)
    };
    assert!(store.queue_marked_event(&elsewhere).await.expect("other"));
}

async fn the_expiry_scan_skips_keys_already_warned_of(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let now = at(1_000);
    let mut keys = Vec::new();
    for (name, expires_in) in [
        ("in-6-days", 6 * 86_400),
        ("in-20-hours", 20 * 3_600),
        ("in-20-days", 20 * 86_400),
        ("expired", -60),
    ] {
        let mut k = key(WS, name, 0);
        k.expires_at = Some(now + chrono::Duration::seconds(expires_in));
        store
            .create_key(
                &k,
                &hash(keys.len() as u8 + 10),
                false,
                &audit(WS, "key.create", &k.id, 0),
            )
            .await
            .expect("key");
        keys.push(k);
    }
    // Nobody listens yet: nothing to warn.
    assert!(store
        .keys_to_warn_of_expiry(now, 100)
        .await
        .expect("scan")
        .is_empty());
    let hook = endpoint(vec![EventType::KeyExpiring]);
    store
        .create_webhook(&hook, &audit(WS, "webhook.create", &hook.id, 0))
        .await
        .expect("endpoint");
    let due = store.keys_to_warn_of_expiry(now, 100).await.expect("scan");
    let names: Vec<&str> = due.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["in-20-hours", "in-6-days"], "soonest first");
    assert_eq!(due[0].display, keys[1].display);
    // Each notice's mark, as keygate-core builds it, takes the key off the list.
    for k in &due {
        let notice = ExpiryNotice::due(k.expires_at - now).expect("due");
        let mut warned = event(&key_expiring_mark(&k.key_id, k.expires_at, notice));
        warned.event_type = EventType::KeyExpiring;
        assert!(store.queue_marked_event(&warned).await.expect("queue"));
    }
    assert!(store
        .keys_to_warn_of_expiry(now, 100)
        .await
        .expect("scan")
        .is_empty());
    assert_eq!(deliveries(store, &hook.id).await.len(), 2);
    // Five days on, the 6-day key is within a day: its 1-day notice is due.
    let later = now + chrono::Duration::days(5) + chrono::Duration::hours(1);
    let due = store
        .keys_to_warn_of_expiry(later, 100)
        .await
        .expect("scan");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].key_id, keys[0].id);
    // A new expiry earns its own notices; a revoked key earns none.
    let mut moved = store.key(WS, &keys[1].id).await.expect("key");
    moved.expires_at = Some(now + chrono::Duration::hours(10));
    let moved = store
        .save_key(
            &moved,
            &SecretChange::None,
            false,
            &audit(WS, "key.update", &moved.id, 1),
        )
        .await
        .expect("save");
    let due = store.keys_to_warn_of_expiry(now, 100).await.expect("scan");
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].expires_at, moved.expires_at.expect("expiry"));
    let mut revoked = moved.clone();
    revoked.status = KeyStatus::Revoked;
    store
        .save_key(
            &revoked,
            &SecretChange::None,
            false,
            &audit(WS, "key.revoke", &moved.id, 2),
        )
        .await
        .expect("revoke");
    assert!(store
        .keys_to_warn_of_expiry(now, 100)
        .await
        .expect("scan")
        .is_empty());
}

async fn an_endpoint_failing_long_enough_is_disabled_once(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let hook = endpoint(Vec::new());
    store
        .create_webhook(&hook, &audit(WS, "webhook.create", &hook.id, 0))
        .await
        .expect("endpoint");
    assert!(store
        .queue_marked_event(&event("credits.low:25000000"))
        .await
        .expect("queue"));
    let delivery = deliveries(store, &hook.id).await.remove(0);
    let attempt = |state, secs| Attempt {
        state,
        next_attempt_at: at(secs + 5),
        status: Some(503),
        error: Some("answered 503".into()),
        duration_ms: 3,
        at: at(secs),
    };
    let system_audit = |secs| {
        let mut entry = audit(WS, "webhook.disabled", &hook.id, secs);
        entry.actor = "system".into();
        entry
    };
    store
        .record_attempt(&delivery.id, &attempt(DeliveryState::Pending, 100))
        .await
        .expect("fail");
    store
        .record_attempt(&delivery.id, &attempt(DeliveryState::Pending, 200))
        .await
        .expect("fail again");
    let failing = store.webhook(WS, &hook.id).await.expect("endpoint");
    assert_eq!(
        failing.failing_since,
        Some(at(100)),
        "the first failure starts the run"
    );
    // Not failing since long enough yet.
    assert!(!store
        .disable_failing_webhook(&hook.id, at(99), "why", &system_audit(200))
        .await
        .expect("not yet"));
    // A success ends the run.
    store
        .record_attempt(&delivery.id, &attempt(DeliveryState::Delivered, 300))
        .await
        .expect("success");
    assert_eq!(
        store
            .webhook(WS, &hook.id)
            .await
            .expect("endpoint")
            .failing_since,
        None
    );
    store
        .record_attempt(&delivery.id, &attempt(DeliveryState::Pending, 400))
        .await
        .expect("fail");
    assert!(store
        .disable_failing_webhook(
            &hook.id,
            at(400),
            "every attempt failed",
            &system_audit(500)
        )
        .await
        .expect("disable"));
    // Once: a second node finds it disabled already.
    assert!(!store
        .disable_failing_webhook(
            &hook.id,
            at(400),
            "every attempt failed",
            &system_audit(501)
        )
        .await
        .expect("again"));
    let disabled = store.webhook(WS, &hook.id).await.expect("endpoint");
    assert!(!disabled.enabled);
    assert_eq!(
        disabled.disabled_reason.as_deref(),
        Some("every attempt failed")
    );
    let trail = audit_trail(store, WS, Some(&hook.id)).await;
    let disables: Vec<_> = trail
        .items
        .iter()
        .filter(|e| e.action == "webhook.disabled")
        .collect();
    assert_eq!(disables.len(), 1);
    assert_eq!(disables[0].actor, "system");
}
