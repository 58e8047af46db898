//! Usage rollups, the request log and failed-authentication aggregates: counters add up across
//! batches, reads stay inside their workspace, old rows are purged.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use keygate_core::{ids, Micros};
use keygate_store::{
    AuthFailure, AuthFailureFilter, PageRequest, RequestLogEntry, UsageBatch, UsageDimension,
    UsageQuery, UsageRollup,
};

use crate::fixtures::{at, bootstrap, OTHER_WS, WS};
use crate::harness::TestDb;

conformance!(
    rollups_add_up_across_batches,
    the_request_log_finds_a_request_in_its_workspace_only,
    the_request_log_finds_time_ordered_ids_across_segments,
    auth_failures_aggregate_and_page,
    counters_saturate_at_the_largest_bigint,
);

fn day(n: i64) -> NaiveDate {
    at(n * 86_400).date_naive()
}

fn rollup(key: &str, d: i64, op: &str, project: Option<&str>, outcome: &str) -> UsageRollup {
    UsageRollup {
        workspace_id: WS.into(),
        key_id: key.into(),
        day: day(d),
        operation: op.into(),
        project: project.map(Into::into),
        outcome: outcome.into(),
        requests: 2,
        tokens: 10,
        cost: Micros(1_500),
    }
}

async fn rollups_add_up_across_batches(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let first = UsageBatch {
        rollups: vec![
            rollup("key_a", 0, "verify", None, "valid"),
            rollup("key_a", 0, "verify", Some("prj_x"), "valid"),
            rollup("key_a", 1, "chat", None, "rate_limited"),
            rollup("key_b", 1, "verify", None, "valid"),
        ],
        ..UsageBatch::default()
    };
    store.record_usage(&first).await.expect("first batch");
    // The same counters again plus one in the other workspace: added, not replaced.
    let mut second = first.clone();
    let mut elsewhere = rollup("key_c", 0, "verify", None, "valid");
    elsewhere.workspace_id = OTHER_WS.into();
    second.rollups.push(elsewhere);
    store.record_usage(&second).await.expect("second batch");
    store
        .record_usage(&UsageBatch::default())
        .await
        .expect("an empty batch is a no-op");

    let key_a = store
        .usage_rollups(
            WS,
            &UsageQuery {
                key_id: Some("key_a".into()),
                identity_id: None,
                from: day(0),
                to: day(1),
            },
        )
        .await
        .expect("rollups");
    assert_eq!(key_a.len(), 3);
    assert!(key_a
        .iter()
        .all(|r| r.requests == 4 && r.tokens == 20 && r.cost == Micros(3_000)));
    assert_eq!(key_a[0].day, day(0));
    assert!(key_a.iter().any(|r| r.project.as_deref() == Some("prj_x")));
    assert!(key_a.iter().any(|r| r.project.is_none()));

    let only_day_1 = store
        .usage_rollups(
            WS,
            &UsageQuery {
                key_id: None,
                identity_id: None,
                from: day(1),
                to: day(1),
            },
        )
        .await
        .expect("rollups");
    assert_eq!(only_day_1.len(), 2, "days outside the range are left out");

    let range = UsageQuery {
        key_id: None,
        identity_id: None,
        from: day(0),
        to: day(30),
    };
    let by_key = store
        .usage_totals(WS, &range, UsageDimension::Key)
        .await
        .expect("totals");
    assert_eq!(
        by_key
            .iter()
            .map(|t| (t.group.clone(), t.outcome.clone(), t.requests, t.cost))
            .collect::<Vec<_>>(),
        [
            (
                Some("key_a".into()),
                "rate_limited".into(),
                4,
                Micros(3_000)
            ),
            (Some("key_a".into()), "valid".into(), 8, Micros(6_000)),
            (Some("key_b".into()), "valid".into(), 4, Micros(3_000)),
        ]
    );
    let by_project = store
        .usage_totals(WS, &range, UsageDimension::Project)
        .await
        .expect("totals");
    assert_eq!(by_project.len(), 3);
    assert_eq!(by_project[0].group, None, "no project sorts first");
    let by_operation = store
        .usage_totals(WS, &range, UsageDimension::Operation)
        .await
        .expect("totals");
    assert_eq!(by_operation[0].group.as_deref(), Some("chat"));
    assert_eq!(by_operation[1].tokens, 60);
    let other = store
        .usage_totals(OTHER_WS, &range, UsageDimension::Day)
        .await
        .expect("totals");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].group.as_deref(), Some(day(0).to_string().as_str()));
    assert_eq!(other[0].requests, 2);
}

fn logged(request_id: &str, workspace_id: &str, at: DateTime<Utc>) -> RequestLogEntry {
    RequestLogEntry {
        request_id: request_id.into(),
        workspace_id: workspace_id.into(),
        key_id: "key_a".into(),
        key_display: Some("kg_live_ab12…mn34".into()),
        at,
        operation: "verify".into(),
        project: None,
        outcome: "valid".into(),
        tokens: 7,
        cost: Micros(20_000),
        source_ip: Some("198.51.100.4".into()),
    }
}

async fn the_request_log_finds_a_request_in_its_workspace_only(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let old = logged("req_old", WS, at(0));
    let mut new = logged("req_new", WS, at(3600));
    new.project = Some("prj_x".into());
    new.source_ip = None;
    let theirs = logged("req_theirs", OTHER_WS, at(3600));
    // Two flushes an hour apart (the log is kept, and purged, per flush).
    let earlier = UsageBatch {
        requests: vec![old.clone()],
        ..UsageBatch::default()
    };
    let batch = UsageBatch {
        requests: vec![new.clone(), theirs],
        ..UsageBatch::default()
    };
    for batch in [&earlier, &batch] {
        store.record_usage(batch).await.expect("record");
        // A retried batch repeats request ids; they are kept once.
        store.record_usage(batch).await.expect("record again");
    }

    assert_eq!(
        store.request_log_entry(WS, "req_new").await.expect("read"),
        Some(new.clone())
    );
    assert_eq!(
        store
            .request_log_entry(WS, "req_theirs")
            .await
            .expect("read"),
        None,
        "another workspace's request is not found"
    );
    assert_eq!(
        store.request_log_entry(WS, "req_nope").await.expect("read"),
        None
    );
    assert_eq!(store.purge_request_log(at(60)).await.expect("purge"), 1);
    assert_eq!(
        store.request_log_entry(WS, "req_old").await.expect("read"),
        None
    );
    assert_eq!(
        store.request_log_entry(WS, "req_new").await.expect("read"),
        Some(new)
    );
}

async fn the_request_log_finds_time_ordered_ids_across_segments(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    // One flush holding 3 minutes of requests (a backlog after the store was down), two
    // workspaces interleaved, then a later flush.
    let start = 1_700_000_000_000u64;
    let entry = |n: u64, ws: &str| {
        let mut e = logged(
            &ids::request_id_at(start + n * 100),
            ws,
            at(i64::try_from(n / 10).expect("small")),
        );
        e.tokens = n;
        e.operation = format!("op {}", n % 3);
        e
    };
    let first: Vec<RequestLogEntry> = (0..1800)
        .map(|n| entry(n, if n % 2 == 0 { WS } else { OTHER_WS }))
        .collect();
    let second: Vec<RequestLogEntry> = (1800..1900).map(|n| entry(n, WS)).collect();
    for requests in [&first, &second] {
        let batch = UsageBatch {
            requests: requests.clone(),
            ..UsageBatch::default()
        };
        store.record_usage(&batch).await.expect("record");
    }
    for e in first.iter().chain(&second).step_by(7) {
        let found = store
            .request_log_entry(WS, &e.request_id)
            .await
            .expect("read");
        if e.workspace_id == WS {
            assert_eq!(found.as_ref(), Some(e));
        } else {
            assert_eq!(found, None, "another workspace's request is not found");
        }
    }
    let unknown = ids::request_id_at(start + 1000);
    assert_eq!(
        store.request_log_entry(WS, &unknown).await.expect("read"),
        None
    );
    // Everything before the second flush's time goes, the second flush stays.
    let purged = store.purge_request_log(at(180)).await.expect("purge");
    assert_eq!(purged, 1800);
    assert_eq!(
        store
            .request_log_entry(WS, &first[0].request_id)
            .await
            .expect("read"),
        None
    );
    assert_eq!(
        store
            .request_log_entry(WS, &second[0].request_id)
            .await
            .expect("read")
            .as_ref(),
        Some(&second[0])
    );
}

fn failure(id: &str, display: &str, first: i64, last: i64, attempts: u64) -> AuthFailure {
    AuthFailure {
        id: id.into(),
        workspace_id: WS.into(),
        hour: at(0),
        key_display: display.into(),
        source_ip: Some("203.0.113.9".into()),
        code: "invalid_api_key".into(),
        attempts,
        first_seen: at(first),
        last_seen: at(last),
    }
}

async fn auth_failures_aggregate_and_page(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let mut batch = UsageBatch::default();
    for n in 0..5 {
        batch.auth_failures.push(failure(
            &format!("af_{n}"),
            &format!("kg_live_{n}…"),
            n,
            n,
            1,
        ));
    }
    let mut unknown_source = failure("af_nosrc", "", 10, 10, 3);
    unknown_source.source_ip = None;
    unknown_source.code = "missing_api_key".into();
    batch.auth_failures.push(unknown_source.clone());
    store.record_usage(&batch).await.expect("record");
    // The same aggregate from another flush: counts add, the id stays, times widen.
    store
        .record_usage(&UsageBatch {
            auth_failures: vec![failure("af_later", "kg_live_0…", 30, 40, 5)],
            ..UsageBatch::default()
        })
        .await
        .expect("record");

    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_auth_failures(
                WS,
                &AuthFailureFilter::default(),
                &PageRequest { after, limit: 4 },
            )
            .await
            .expect("page");
        seen.extend(page.items);
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(
        seen[0], unknown_source,
        "newest first; '' source reads as None"
    );
    let merged = seen.iter().find(|f| f.id == "af_0").expect("merged row");
    assert_eq!(merged.attempts, 6);
    assert_eq!((merged.first_seen, merged.last_seen), (at(0), at(40)));

    let missing = store
        .list_auth_failures(
            WS,
            &AuthFailureFilter {
                code: Some("missing_api_key".into()),
                since: Some(at(5)),
                until: None,
            },
            &PageRequest::default(),
        )
        .await
        .expect("filtered");
    assert_eq!(missing.items, [unknown_source]);
    assert!(store
        .list_auth_failures(
            OTHER_WS,
            &AuthFailureFilter::default(),
            &PageRequest::default()
        )
        .await
        .expect("other")
        .items
        .is_empty());

    assert_eq!(
        store
            .purge_auth_failures(at(0) + Duration::hours(1))
            .await
            .expect("purge"),
        6
    );
}

/// Counters and sums stop at `i64::MAX` on both backends: SQLite would otherwise store the
/// float an overflowing addition makes (and reads of it fail), PostgreSQL would refuse the
/// whole batch; a sum over rows at the maximum would fail to read on both.
async fn counters_saturate_at_the_largest_bigint(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let max = i64::MAX as u64;
    let huge = |key: &str, op: &str| UsageRollup {
        requests: max,
        tokens: max,
        cost: Micros(i64::MAX),
        ..rollup(key, 0, op, None, "valid")
    };
    let mut attempts = failure("af_max", "kg_live_9…", 0, 0, max);
    for batch in 0..3 {
        store
            .record_usage(&UsageBatch {
                rollups: vec![huge("key_a", "chat"), huge("key_b", "chat")],
                auth_failures: vec![attempts.clone()],
                ..UsageBatch::default()
            })
            .await
            .unwrap_or_else(|e| panic!("batch {batch}: {e}"));
        attempts.id = format!("af_max_{batch}");
    }
    // A small amount onto a saturated counter, too.
    store
        .record_usage(&UsageBatch {
            rollups: vec![rollup("key_a", 0, "chat", None, "valid")],
            ..UsageBatch::default()
        })
        .await
        .expect("a small amount");

    let range = UsageQuery {
        key_id: None,
        identity_id: None,
        from: day(0),
        to: day(1),
    };
    let rollups = store.usage_rollups(WS, &range).await.expect("rollups");
    assert_eq!(rollups.len(), 2);
    for r in &rollups {
        assert_eq!((r.requests, r.tokens, r.cost), (max, max, Micros(i64::MAX)));
    }
    for dimension in [
        UsageDimension::Key,
        UsageDimension::Project,
        UsageDimension::Operation,
        UsageDimension::Day,
    ] {
        let totals = store
            .usage_totals(WS, &range, dimension)
            .await
            .unwrap_or_else(|e| panic!("{dimension:?}: {e}"));
        for t in &totals {
            assert_eq!(
                (t.requests, t.tokens, t.cost),
                (max, max, Micros(i64::MAX)),
                "{dimension:?}"
            );
        }
    }
    let failures = store
        .list_auth_failures(
            WS,
            &AuthFailureFilter::default(),
            &PageRequest {
                after: None,
                limit: 10,
            },
        )
        .await
        .expect("failures");
    assert_eq!(failures.items.len(), 1);
    assert_eq!(failures.items[0].attempts, max);
}
