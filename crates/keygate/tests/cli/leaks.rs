//! `keygate scan` finds exactly the real keys in a tree, and `keygate keys report-leak` kills a
//! key read from standard input.

use crate::{create_key, ok, run, Desk, TestServer};

#[test]
fn scan_reports_exactly_the_real_keys_and_report_leak_revokes_one() {
    let server = TestServer::start();
    let desk = Desk::new();
    let (id, real) = create_key(&desk, &server, "committed by mistake");
    let (_, other) = create_key(&desk, &server, "in a nested config");
    let mut broken = real.clone();
    let last = broken.pop().expect("a character");
    broken.push(if last == 'a' { 'b' } else { 'a' });
    let tree = desk.work.path().join("repo");
    std::fs::create_dir_all(tree.join("config/deep")).expect("dirs");
    std::fs::create_dir_all(tree.join("node_modules/pkg")).expect("dirs");
    std::fs::write(tree.join(".env"), format!("KEYGATE_API_KEY={real}\n")).expect("write");
    std::fs::write(
        tree.join("config/deep/app.yaml"),
        format!("# keys\nold: {broken}\nfake: kg_live_abcdefghijklmnopqrstuvwxyz012345\nkey: \"{other}\"\n"),
    )
    .expect("write");
    std::fs::write(tree.join("node_modules/pkg/vendored.js"), &real).expect("write");

    let scan = run(&mut desk.cmd(), &["scan", "repo", "--json"]);
    assert_eq!(scan.code, 1, "{}\n{}", scan.stdout, scan.stderr);
    let mut found: Vec<serde_json::Value> = scan
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    found.sort_by_key(|f| f["path"].as_str().unwrap_or_default().to_owned());
    assert_eq!(found.len(), 2, "{}", scan.stdout);
    assert!(found[0]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with(".env")));
    assert_eq!(found[0]["line"], 1);
    assert!(found[1]["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("app.yaml")));
    assert_eq!(found[1]["line"], 4);
    assert!(
        !scan.stdout.contains(&real) && !scan.stdout.contains(&other),
        "only display forms are printed"
    );

    let text = run(&mut desk.cmd(), &["scan", "repo/.env"]);
    assert_eq!(text.code, 1);
    assert!(
        text.stdout.contains(".env:1:17: Keygate key kg_live_"),
        "{}",
        text.stdout
    );
    std::fs::write(tree.join(".env"), "KEYGATE_API_KEY=\n").expect("write");
    assert_eq!(run(&mut desk.cmd(), &["scan", "repo/.env"]).code, 0);
    assert_eq!(run(&mut desk.cmd(), &["scan", "no/such/path"]).code, 2);

    let reported = ok(
        desk.as_owner(&server)
            .write_stdin(format!("{real}\n"))
            .args([
                "keys",
                "report-leak",
                "--found-at",
                "https://example.com/paste/1",
            ]),
        &[],
    );
    assert!(reported.stdout.contains("revoked"), "{}", reported.stdout);
    assert!(!reported.stdout.contains(&real) && !reported.stderr.contains(&real));
    let verified = run(
        &mut desk.as_owner(&server),
        &["keys", "verify", &real, "--json"],
    );
    assert_eq!(verified.code, 1);
    assert_eq!(verified.json()["code"], "revoked");
    let shown = ok(
        &mut desk.as_owner(&server),
        &["keys", "show", &id, "--json"],
    )
    .json();
    assert_eq!(shown["status"], "revoked");
}
