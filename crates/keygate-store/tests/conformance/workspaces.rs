//! Workspaces, members and projects.

use keygate_core::limits::RateWindow;
use keygate_core::model::{Project, Role};
use keygate_core::Micros;
use keygate_store::{ConflictKind, StoreError};

use crate::fixtures::{audit, audit_trail, bootstrap, hash, member, workspace, OTHER_WS, WS};
use crate::harness::TestDb;

conformance!(
    bootstrap_round_trips_the_workspace,
    members_are_found_by_token_and_scoped_to_their_workspace,
    the_last_owner_cannot_be_deleted,
    projects_have_unique_names_per_workspace,
);

async fn bootstrap_round_trips_the_workspace(db: &TestDb) {
    let store = db.store();
    assert_eq!(store.workspace_count().await.expect("count"), 0);
    store.ping().await.expect("ping");
    bootstrap(store).await;
    assert_eq!(store.workspace_count().await.expect("count"), 2);
    assert_eq!(store.workspace(WS).await.expect("workspace"), workspace(WS));
    assert!(matches!(
        store.workspace("ws_missing").await,
        Err(StoreError::NotFound)
    ));

    let mut ws = workspace(WS);
    ws.single_active_key = true;
    ws.credit_balance = Some(Micros(12_340_000));
    ws.rate_limit_policies.insert(
        "strict".into(),
        vec![serde_json::from_str::<RateWindow>(r#"{"limit":5,"window":"1s"}"#).expect("w")],
    );
    store
        .save_workspace(&ws, &audit(WS, "workspace.update", WS, 5))
        .await
        .expect("save");
    assert_eq!(store.workspace(WS).await.expect("workspace"), ws);

    let mut missing = workspace("ws_missing");
    missing.name = "nobody".into();
    assert!(matches!(
        store
            .save_workspace(
                &missing,
                &audit("ws_missing", "workspace.update", "ws_missing", 5)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    let trail = audit_trail(store, WS, None).await;
    let actions: Vec<&str> = trail.items.iter().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["workspace.update", "workspace.create"]);
    let none = audit_trail(store, "ws_missing", None).await;
    assert!(none.items.is_empty(), "a failed save writes no audit row");
}

async fn members_are_found_by_token_and_scoped_to_their_workspace(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let owner = store.member_by_token(&hash(1)).await.expect("lookup");
    assert_eq!(owner, Some(member(WS, "mem_owner", Role::Owner, 1).member));
    assert_eq!(
        store.member_by_token(&hash(99)).await.expect("lookup"),
        None
    );

    let editor = member(WS, "mem_editor", Role::Editor, 10);
    let viewer = member(WS, "mem_viewer", Role::Viewer, 11);
    for m in [&editor, &viewer] {
        store
            .create_member(m, &audit(WS, "member.create", &m.member.id, 10))
            .await
            .expect("create member");
    }
    let ids: Vec<String> = store
        .list_members(WS)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["mem_owner", "mem_editor", "mem_viewer"]);
    assert_eq!(
        store.member(WS, "mem_editor").await.expect("get"),
        editor.member
    );
    assert!(matches!(
        store.member(OTHER_WS, "mem_editor").await,
        Err(StoreError::NotFound)
    ));

    // The same id again, or another member's token: refused.
    let again = member(WS, "mem_editor", Role::Viewer, 12);
    assert!(matches!(
        store
            .create_member(&again, &audit(WS, "member.create", "mem_editor", 10))
            .await,
        Err(StoreError::Conflict(ConflictKind::Id))
    ));
    let same_token = member(WS, "mem_dupe", Role::Viewer, 10);
    assert!(matches!(
        store
            .create_member(&same_token, &audit(WS, "member.create", "mem_dupe", 10))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let homeless = member("ws_missing", "mem_x", Role::Viewer, 13);
    assert!(matches!(
        store
            .create_member(
                &homeless,
                &audit("ws_missing", "member.create", "mem_x", 10)
            )
            .await,
        Err(StoreError::NotFound)
    ));

    store
        .delete_member(
            WS,
            "mem_viewer",
            &audit(WS, "member.delete", "mem_viewer", 20),
        )
        .await
        .expect("delete viewer");
    assert_eq!(
        store.member_by_token(&hash(11)).await.expect("lookup"),
        None
    );
    assert!(matches!(
        store
            .delete_member(
                WS,
                "mem_viewer",
                &audit(WS, "member.delete", "mem_viewer", 20)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .delete_member(
                OTHER_WS,
                "mem_editor",
                &audit(OTHER_WS, "member.delete", "mem_editor", 20)
            )
            .await,
        Err(StoreError::NotFound)
    ));
}

async fn the_last_owner_cannot_be_deleted(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    assert!(matches!(
        store
            .delete_member(WS, "mem_owner", &audit(WS, "member.delete", "mem_owner", 5))
            .await,
        Err(StoreError::Conflict(ConflictKind::LastOwner))
    ));
    let second = member(WS, "mem_owner2", Role::Owner, 20);
    store
        .create_member(&second, &audit(WS, "member.create", "mem_owner2", 6))
        .await
        .expect("second owner");
    store
        .delete_member(WS, "mem_owner", &audit(WS, "member.delete", "mem_owner", 7))
        .await
        .expect("one of two owners may go");
    assert!(matches!(
        store
            .delete_member(
                WS,
                "mem_owner2",
                &audit(WS, "member.delete", "mem_owner2", 8)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::LastOwner))
    ));
    assert!(store
        .member_by_token(&hash(20))
        .await
        .expect("lookup")
        .is_some());

    // Two owners deleting each other at once: exactly one succeeds.
    let third = member(WS, "mem_owner3", Role::Owner, 21);
    store
        .create_member(&third, &audit(WS, "member.create", "mem_owner3", 9))
        .await
        .expect("third owner");
    let audit_a = audit(WS, "member.delete", "mem_owner2", 10);
    let audit_b = audit(WS, "member.delete", "mem_owner3", 10);
    let (a, b) = tokio::join!(
        store.delete_member(WS, "mem_owner2", &audit_a),
        store.delete_member(WS, "mem_owner3", &audit_b),
    );
    assert!(a.is_ok() != b.is_ok(), "one delete wins: {a:?} {b:?}");
    let owners = store
        .list_members(WS)
        .await
        .expect("list")
        .into_iter()
        .filter(|m| m.role == Role::Owner)
        .count();
    assert_eq!(owners, 1);
}

async fn projects_have_unique_names_per_workspace(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let project = |id: &str, ws: &str, name: &str, secs| Project {
        id: id.into(),
        workspace_id: ws.into(),
        name: name.into(),
        created_at: crate::fixtures::at(secs),
    };
    let alpha = project("prj_a", WS, "alpha", 1);
    let beta = project("prj_b", WS, "beta", 2);
    for p in [&alpha, &beta] {
        store
            .create_project(p, &audit(WS, "project.create", &p.id, 1))
            .await
            .expect("create project");
    }
    assert_eq!(
        store.list_projects(WS).await.expect("list"),
        [alpha.clone(), beta]
    );
    assert_eq!(store.project(WS, "prj_a").await.expect("get"), alpha);
    assert!(matches!(
        store.project(OTHER_WS, "prj_a").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .create_project(
                &project("prj_c", WS, "alpha", 3),
                &audit(WS, "project.create", "prj_c", 3)
            )
            .await,
        Err(StoreError::Conflict(ConflictKind::Name))
    ));
    store
        .create_project(
            &project("prj_d", OTHER_WS, "alpha", 3),
            &audit(OTHER_WS, "project.create", "prj_d", 3),
        )
        .await
        .expect("the same name in another workspace");
    assert!(store.list_projects(OTHER_WS).await.expect("list").len() == 1);
}
