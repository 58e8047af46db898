//! `keygate identities …` and `keygate keys … --identity`: a customer made with limits, given
//! keys by its external id, shown, changed, refused deletion while it has keys, then deleted.

use crate::{ok, run, Desk, TestServer};

#[test]
fn identities_are_managed_from_the_command_line() {
    let server = TestServer::start();
    let desk = Desk::new();
    let created = ok(
        &mut desk.as_owner(&server),
        &[
            "identities",
            "create",
            "--external-id",
            "cus_8812",
            "--name",
            "Acme",
            "--rpm",
            "600",
            "--json",
        ],
    )
    .json();
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(
        created["limits"]["rate_limits"][0]["limit"], 600,
        "{created}"
    );

    // A key joins it by the external id; listing keys by identity finds it.
    let key = ok(
        &mut desk.as_owner(&server),
        &[
            "keys",
            "create",
            "--name",
            "acme ci",
            "--identity",
            "cus_8812",
            "--json",
        ],
    )
    .json();
    assert_eq!(key["identity_id"], id.as_str(), "{key}");
    let listed = ok(
        &mut desk.as_owner(&server),
        &["keys", "list", "--identity", &id],
    );
    assert!(listed.stdout.contains("acme ci"), "{}", listed.stdout);

    let shown = ok(
        &mut desk.as_owner(&server),
        &["identities", "show", "cus_8812"],
    );
    assert!(
        shown.stdout.contains(&id) && shown.stdout.contains("600 requests / 1m"),
        "{}",
        shown.stdout
    );
    let table = ok(&mut desk.as_owner(&server), &["identities", "list"]);
    assert!(table.stdout.contains("cus_8812"), "{}", table.stdout);

    let updated = ok(
        &mut desk.as_owner(&server),
        &[
            "identities",
            "update",
            &id,
            "--token-limit",
            "5000",
            "--json",
        ],
    )
    .json();
    assert_eq!(updated["limits"]["token_limit"]["limit"], 5000, "{updated}");
    assert_eq!(
        updated["limits"]["rate_limits"][0]["limit"], 600,
        "limits not named survive: {updated}"
    );

    let usage = ok(
        &mut desk.as_owner(&server),
        &["identities", "usage", "cus_8812", "--json"],
    )
    .json();
    assert_eq!(usage["group_by"], "key", "{usage}");

    // Refused while the key belongs to it (exit 1, the server said no), then deleted.
    let refused = run(&mut desk.as_owner(&server), &["identities", "delete", &id]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("identity_has_keys"),
        "{}",
        refused.stderr
    );
    let key_id = key["id"].as_str().expect("key id");
    ok(
        &mut desk.as_owner(&server),
        &["keys", "update", key_id, "--no-identity"],
    );
    ok(
        &mut desk.as_owner(&server),
        &["identities", "delete", "cus_8812"],
    );
    let gone = run(&mut desk.as_owner(&server), &["identities", "show", &id]);
    assert_eq!(gone.code, 2, "{}", gone.stderr);
}
