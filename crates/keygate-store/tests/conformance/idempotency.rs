//! Idempotency claims: a retried POST has no second effect.

use chrono::Duration;
use keygate_store::{IdempotencyBegin, IdempotencyClaim, StoreError};

use crate::fixtures::at;
use crate::harness::TestDb;

conformance!(
    a_claim_runs_once_then_replays,
    abandoned_and_stale_claims_can_be_taken_again,
    old_records_are_purged,
);

const STALE: i64 = 60;

fn claim(key: &str, fingerprint: u8, secs: i64) -> IdempotencyClaim {
    IdempotencyClaim {
        scope: "ws_main/mem_owner".into(),
        key: key.into(),
        fingerprint: [fingerprint; 32],
        now: at(secs),
    }
}

async fn a_claim_runs_once_then_replays(db: &TestDb) {
    let store = db.store();
    let begin = |c: IdempotencyClaim| async move {
        store
            .idempotency_begin(&c, Duration::seconds(STALE))
            .await
            .expect("begin")
    };
    assert_eq!(begin(claim("k1", 1, 0)).await, IdempotencyBegin::Claimed);
    assert_eq!(begin(claim("k1", 1, 1)).await, IdempotencyBegin::InProgress);
    assert_eq!(begin(claim("k1", 2, 1)).await, IdempotencyBegin::Mismatch);
    // Another caller's scope is a different record.
    let mut elsewhere = claim("k1", 2, 1);
    elsewhere.scope = "ws_other/mem_other".into();
    assert_eq!(begin(elsewhere).await, IdempotencyBegin::Claimed);

    let body = b"{\"id\":\"key_1\",\"secret\":\"\xff\x00 encrypted\"}".to_vec();
    store
        .idempotency_finish("ws_main/mem_owner", "k1", 201, &body)
        .await
        .expect("finish");
    let replay = IdempotencyBegin::Replay {
        status: 201,
        body: body.clone(),
    };
    assert_eq!(begin(claim("k1", 1, 2)).await, replay);
    // Long after, still a replay (until purged), and still a mismatch for another request.
    assert_eq!(begin(claim("k1", 1, 10 * STALE)).await, replay);
    assert_eq!(
        begin(claim("k1", 3, 10 * STALE)).await,
        IdempotencyBegin::Mismatch
    );
    // Abandoning a finished record does nothing.
    store
        .idempotency_abandon("ws_main/mem_owner", "k1")
        .await
        .expect("abandon");
    assert_eq!(begin(claim("k1", 1, 3)).await, replay);

    assert_eq!(begin(claim("empty", 1, 0)).await, IdempotencyBegin::Claimed);
    store
        .idempotency_finish("ws_main/mem_owner", "empty", 204, &[])
        .await
        .expect("finish");
    assert_eq!(
        begin(claim("empty", 1, 1)).await,
        IdempotencyBegin::Replay {
            status: 204,
            body: Vec::new()
        }
    );
    assert!(matches!(
        store
            .idempotency_finish("ws_main/mem_owner", "never-claimed", 200, b"x")
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn abandoned_and_stale_claims_can_be_taken_again(db: &TestDb) {
    let store = db.store();
    let begin = |c: IdempotencyClaim| async move {
        store
            .idempotency_begin(&c, Duration::seconds(STALE))
            .await
            .expect("begin")
    };
    assert_eq!(begin(claim("k2", 1, 0)).await, IdempotencyBegin::Claimed);
    store
        .idempotency_abandon("ws_main/mem_owner", "k2")
        .await
        .expect("abandon");
    assert_eq!(begin(claim("k2", 1, 1)).await, IdempotencyBegin::Claimed);
    // The claimant died: before `stale_after` others wait, after it one takes over.
    assert_eq!(
        begin(claim("k2", 1, STALE)).await,
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        begin(claim("k2", 1, STALE + 2)).await,
        IdempotencyBegin::Claimed
    );
    assert_eq!(
        begin(claim("k2", 1, STALE + 3)).await,
        IdempotencyBegin::InProgress
    );
    // A stale claim for a different request is still a different request.
    assert_eq!(
        begin(claim("k2", 9, 10 * STALE)).await,
        IdempotencyBegin::Mismatch
    );

    // Many racing for one key: exactly one claims it.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let store = db.store.clone();
        tasks.spawn(async move {
            store
                .idempotency_begin(&claim("race", 1, 0), Duration::seconds(STALE))
                .await
        });
    }
    let mut claimed = 0;
    while let Some(result) = tasks.join_next().await {
        match result.expect("task").expect("begin") {
            IdempotencyBegin::Claimed => claimed += 1,
            other => assert_eq!(other, IdempotencyBegin::InProgress),
        }
    }
    assert_eq!(claimed, 1);
}

async fn old_records_are_purged(db: &TestDb) {
    let store = db.store();
    for (key, secs) in [("old1", 0), ("old2", 10), ("new", 100)] {
        store
            .idempotency_begin(&claim(key, 1, secs), Duration::seconds(STALE))
            .await
            .expect("begin");
    }
    store
        .idempotency_finish("ws_main/mem_owner", "old1", 200, b"done")
        .await
        .expect("finish");
    assert_eq!(store.purge_idempotency(at(50)).await.expect("purge"), 2);
    assert_eq!(store.purge_idempotency(at(50)).await.expect("purge"), 0);
    // A purged key is new again.
    assert_eq!(
        store
            .idempotency_begin(&claim("old1", 2, 101), Duration::seconds(STALE))
            .await
            .expect("begin"),
        IdempotencyBegin::Claimed
    );
    assert_eq!(
        store
            .idempotency_begin(&claim("new", 1, 101), Duration::seconds(STALE))
            .await
            .expect("begin"),
        IdempotencyBegin::InProgress
    );
}
