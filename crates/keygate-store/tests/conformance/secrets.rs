//! Regenerate (replace) and rotate (overlap) change which secrets authenticate a key.

use keygate_store::SecretChange;

use crate::fixtures::{at, audit, bootstrap, create, hash, key, WS};
use crate::harness::TestDb;

conformance!(
    rotation_keeps_the_old_secret_until_its_grace_ends,
    replace_kills_every_old_secret_at_once,
);

async fn rotation_keeps_the_old_secret_until_its_grace_ends(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let k = key(WS, "rotating", 1);
    create(store, &k, 1).await;
    let expiry = |n: u8| async move {
        store
            .key_by_hash(&hash(n))
            .await
            .expect("lookup")
            .map(|m| (m.key.id, m.secret_expires_at))
    };

    let mut next = k.clone();
    next.updated_at = at(10);
    let k = store
        .save_key(
            &next,
            &SecretChange::Rotate {
                new: hash(2),
                old_until: at(3600),
            },
            false,
            &audit(WS, "key.rotate", &k.id, 10),
        )
        .await
        .expect("rotate");
    assert_eq!(expiry(1).await, Some((k.id.clone(), Some(at(3600)))));
    assert_eq!(expiry(2).await, Some((k.id.clone(), None)));
    let found = store
        .key_by_hash(&hash(2))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!(found.key, k, "the match carries the saved key");

    // A second rotation with a longer grace does not extend the first old secret's.
    let k = store
        .save_key(
            &k,
            &SecretChange::Rotate {
                new: hash(3),
                old_until: at(7200),
            },
            false,
            &audit(WS, "key.rotate", &k.id, 20),
        )
        .await
        .expect("rotate again");
    assert_eq!(expiry(1).await, Some((k.id.clone(), Some(at(3600)))));
    assert_eq!(expiry(2).await, Some((k.id.clone(), Some(at(7200)))));
    assert_eq!(expiry(3).await, Some((k.id.clone(), None)));
    // One with a shorter grace cuts both short.
    let k = store
        .save_key(
            &k,
            &SecretChange::Rotate {
                new: hash(4),
                old_until: at(60),
            },
            false,
            &audit(WS, "key.rotate", &k.id, 30),
        )
        .await
        .expect("rotate a third time");
    for n in 1..=3 {
        assert_eq!(
            expiry(n).await,
            Some((k.id.clone(), Some(at(60)))),
            "secret {n}"
        );
    }
    assert_eq!(expiry(4).await, Some((k.id, None)));
}

async fn replace_kills_every_old_secret_at_once(db: &TestDb) {
    let store = db.store();
    bootstrap(store).await;
    let k = key(WS, "regenerated", 1);
    create(store, &k, 1).await;
    let k = store
        .save_key(
            &k,
            &SecretChange::Rotate {
                new: hash(2),
                old_until: at(3600),
            },
            false,
            &audit(WS, "key.rotate", &k.id, 10),
        )
        .await
        .expect("rotate");
    let mut regenerated = k.clone();
    regenerated.display = "kg_live_zz99…yy88".into();
    let k = store
        .save_key(
            &regenerated,
            &SecretChange::Replace(hash(3)),
            false,
            &audit(WS, "key.regenerate", &k.id, 20),
        )
        .await
        .expect("replace");
    assert_eq!(k.display, "kg_live_zz99…yy88");
    assert_eq!(store.key_by_hash(&hash(1)).await.expect("lookup"), None);
    assert_eq!(store.key_by_hash(&hash(2)).await.expect("lookup"), None);
    let found = store
        .key_by_hash(&hash(3))
        .await
        .expect("lookup")
        .expect("found");
    assert_eq!((found.key, found.secret_expires_at), (k, None));
}
