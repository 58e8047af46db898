//! The dashboard's sign-in state: a link is used once (and not after it expires), sessions
//! round-trip and are touched, purged when ended, and gone with their member.

use keygate_core::model::Role;
use keygate_store::{DashboardSession, LinkRedemption, SignInLink};

use crate::fixtures::{at, audit, bootstrap, member, WS};
use crate::harness::TestDb;

conformance!(
    a_sign_in_link_is_used_once_and_not_after_it_expires,
    sessions_round_trip_and_end_with_their_member,
);

fn link(hash: &str, expires_secs: i64) -> SignInLink {
    SignInLink {
        secret_hash: hash.into(),
        workspace_id: WS.into(),
        member_id: "mem_owner".into(),
        created_at: at(0),
        expires_at: at(expires_secs),
        used_at: None,
    }
}

fn session(hash: &str, member_id: &str) -> DashboardSession {
    DashboardSession {
        id_hash: hash.into(),
        workspace_id: WS.into(),
        member_id: member_id.into(),
        csrf_token: format!("csrf-{hash}"),
        created_at: at(10),
        last_seen_at: at(10),
        expires_at: at(1000),
    }
}

async fn a_sign_in_link_is_used_once_and_not_after_it_expires(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    store
        .create_sign_in_link(&link("h1", 900))
        .await
        .expect("create");
    store
        .create_sign_in_link(&link("h2", 900))
        .await
        .expect("create");
    assert_eq!(
        store.sign_in_link("h1").await.expect("read"),
        Some(link("h1", 900))
    );
    match store
        .redeem_sign_in_link("h1", at(100))
        .await
        .expect("redeem")
    {
        LinkRedemption::Redeemed(used) => {
            assert_eq!(used.member_id, "mem_owner");
            assert_eq!(used.used_at, Some(at(100)));
        }
        other => panic!("expected a redemption, got {other:?}"),
    }
    assert!(matches!(
        store
            .redeem_sign_in_link("h1", at(101))
            .await
            .expect("again"),
        LinkRedemption::AlreadyUsed(_)
    ));
    assert!(matches!(
        store
            .redeem_sign_in_link("h2", at(900))
            .await
            .expect("late"),
        LinkRedemption::Expired(_)
    ));
    assert_eq!(
        store
            .redeem_sign_in_link("nope", at(1))
            .await
            .expect("unknown"),
        LinkRedemption::Unknown
    );
    // Ended links go with the purge.
    assert!(store.purge_dashboard(at(901), at(0)).await.expect("purge") >= 2);
    assert_eq!(store.sign_in_link("h2").await.expect("read"), None);
}

async fn sessions_round_trip_and_end_with_their_member(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    store
        .create_member(
            &member(WS, "mem_editor", Role::Editor, 7),
            &audit(WS, "member.create", "mem_editor", 5),
        )
        .await
        .expect("member");
    store
        .create_session(&session("s1", "mem_owner"))
        .await
        .expect("s1");
    store
        .create_session(&session("s2", "mem_editor"))
        .await
        .expect("s2");
    store
        .create_session(&session("s3", "mem_owner"))
        .await
        .expect("s3");
    assert_eq!(
        store.session("s1").await.expect("read"),
        Some(session("s1", "mem_owner"))
    );
    store.touch_session("s1", at(50)).await.expect("touch");
    assert_eq!(
        store
            .session("s1")
            .await
            .expect("read")
            .map(|s| s.last_seen_at),
        Some(at(50))
    );
    store.delete_session("s3").await.expect("delete");
    assert_eq!(store.session("s3").await.expect("read"), None);

    store
        .delete_member(
            WS,
            "mem_editor",
            &audit(WS, "member.delete", "mem_editor", 60),
        )
        .await
        .expect("delete member");
    assert_eq!(store.session("s2").await.expect("read"), None);
    // Idle sessions (last seen before the bound) and ended ones are purged.
    assert_eq!(
        store.purge_dashboard(at(20), at(40)).await.expect("purge"),
        0
    );
    assert_eq!(
        store.purge_dashboard(at(20), at(51)).await.expect("purge"),
        1
    );
    assert_eq!(store.session("s1").await.expect("read"), None);
}
