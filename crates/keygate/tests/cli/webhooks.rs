//! `keygate webhooks …`: an endpoint made, listed, disabled, tested and deleted from the
//! command line, its secret shown once, and a change showing up in its delivery log.

use crate::{create_key, ok, run, Desk, TestServer};

#[test]
fn webhooks_are_managed_from_the_command_line() {
    let server = TestServer::start();
    let desk = Desk::new();
    let created = ok(
        &mut desk.as_owner(&server),
        &[
            "webhooks",
            "create",
            "https://hooks.example.com/keygate",
            "--event",
            "key.revoked",
            "--json",
        ],
    )
    .json();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(created["secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("whsec_")));

    let listed = ok(&mut desk.as_owner(&server), &["webhooks", "list"]);
    assert!(listed.stdout.contains(&id) && listed.stdout.contains("key.revoked"));
    assert!(
        !listed.stdout.contains("whsec_"),
        "the secret is shown once"
    );

    let (key_id, _) = create_key(&desk, &server, "watched");
    ok(
        &mut desk.as_owner(&server),
        &["keys", "revoke", &key_id, "--yes"],
    );
    let log = ok(
        &mut desk.as_owner(&server),
        &["webhooks", "deliveries", &id, "--json"],
    )
    .json();
    assert_eq!(log["items"][0]["event_type"], "key.revoked", "{log}");

    ok(&mut desk.as_owner(&server), &["webhooks", "disable", &id]);
    let tested = ok(&mut desk.as_owner(&server), &["webhooks", "test", &id]);
    assert!(tested.stdout.contains("webhook.test"), "{}", tested.stdout);
    ok(&mut desk.as_owner(&server), &["webhooks", "delete", &id]);
    let gone = run(
        &mut desk.as_owner(&server),
        &["webhooks", "deliveries", &id],
    );
    assert_eq!(gone.code, 1, "{}", gone.stderr);

    let typo = run(
        &mut desk.as_owner(&server),
        &[
            "webhooks",
            "create",
            "https://hooks.example.com/x",
            "--event",
            "key.revokd",
        ],
    );
    assert_eq!(typo.code, 2, "{}", typo.stderr);
    assert!(typo.stderr.contains("key.revoked"), "{}", typo.stderr);
}
