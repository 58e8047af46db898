//! An older CLI against a newer server: every answer carries fields this CLI has never heard
//! of, and every command still works, prints the same text, and prints under `--json`
//! exactly what the server sent.
//!
//! The newer server is the real one behind a proxy that adds a field to every object of
//! every JSON answer (error bodies included), except where an answer nests one of the
//! contract's strict types (a key's `limits`, rate windows) or user data the CLI prints as it
//! is (`metadata`, `changes`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

use assert_cmd::Command;
use serde_json::{json, Value};

use super::{ok, run, Desk, TestServer};

const ADDED: &str = "added_in_a_newer_version";

const CLOSED: [&str; 5] = [
    "limits",
    "metadata",
    "changes",
    "default_rate_limits",
    "rate_limit_policies",
];

/// Starts the proxy in front of `upstream` and returns its URL.
fn newer_server(upstream: &str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let upstream = upstream.trim_start_matches("http://").to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().map_while(Result::ok) {
            let upstream = upstream.clone();
            std::thread::spawn(move || forward(client, &upstream));
        }
    });
    url
}

fn forward(mut client: TcpStream, upstream: &str) {
    let Some((head, body)) = read_message(&mut client, false) else {
        return;
    };
    let mut server = TcpStream::connect(upstream).expect("connect upstream");
    server
        .write_all(&message(&head, &body))
        .expect("forward request");
    let (head, mut body) = read_message(&mut server, true).expect("an answer");
    let is_json = header(&head, "content-type").is_some_and(|t| t.contains("json"));
    if is_json && !body.is_empty() {
        let mut answer: Value = serde_json::from_slice(&body).expect("a JSON answer");
        add_fields(&mut answer);
        body = serde_json::to_vec(&answer).expect("serialise");
    }
    let _ = client.write_all(&message(&head, &body));
}

/// Every object gains a field; closed parts are left as they are.
fn add_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (name, inner) in map.iter_mut() {
                if !CLOSED.contains(&name.as_str()) {
                    add_fields(inner);
                }
            }
            map.insert(ADDED.into(), json!({"nested": [1, "two", null]}));
        }
        Value::Array(items) => items.iter_mut().for_each(add_fields),
        _ => {}
    }
}

/// The start line and headers, and the body (de-chunked). An answer is read to its end (the
/// proxy asks for `Connection: close`); a request only as far as its `Content-Length`.
fn read_message(stream: &mut TcpStream, answer: bool) -> Option<(Vec<String>, Vec<u8>)> {
    let mut data = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&chunk[..n]);
    };
    let head: Vec<String> = String::from_utf8_lossy(&data[..end])
        .split("\r\n")
        .map(String::from)
        .collect();
    let mut body = data[end + 4..].to_vec();
    let length = header(&head, "content-length").and_then(|v| v.parse::<usize>().ok());
    match length {
        Some(length) => {
            while body.len() < length {
                let n = stream.read(&mut chunk).ok()?;
                if n == 0 {
                    break;
                }
                body.extend_from_slice(&chunk[..n]);
            }
        }
        None if answer => {
            stream.read_to_end(&mut body).ok()?;
        }
        None => {}
    }
    if header(&head, "transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        body = dechunk(&body);
    }
    Some((head, body))
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(i) = data.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&data[..i]);
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = i + 2;
        body.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    body
}

fn header(head: &[String], name: &str) -> Option<String> {
    head.iter().skip(1).find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().to_string())
    })
}

/// The message with its framing redone: one body of known length, then the connection closes.
fn message(head: &[String], body: &[u8]) -> Vec<u8> {
    let framing = ["content-length", "transfer-encoding", "connection"];
    let mut text = head[0].clone() + "\r\n";
    for line in &head[1..] {
        let name = line.split(':').next().unwrap_or("").trim();
        if !framing.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            text.push_str(line);
            text.push_str("\r\n");
        }
    }
    text.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn at(desk: &Desk, url: &str, token: &str) -> Command {
    let mut cmd = desk.cmd();
    cmd.env("KEYGATE_URL", url).env("KEYGATE_API_KEY", token);
    cmd
}

#[test]
fn an_older_cli_reads_a_newer_servers_answers() {
    let server = TestServer::start();
    let newer = newer_server(&server.url);
    let desk = Desk::new();
    let older = || at(&desk, &newer, &server.token);
    let direct = || desk.as_owner(&server);

    // The proxy does what it says.
    let me = ok(&mut older(), &["whoami", "--json"]).json();
    assert!(me["workspace"][ADDED].is_object(), "{me}");

    // Changes, through the newer server.
    let created = ok(&mut older(), &["projects", "create", "--name", "web"]);
    assert!(
        created.stdout.contains("Created project web"),
        "{}",
        created.stdout
    );
    let r = ok(
        &mut older(),
        &[
            "keys",
            "create",
            "--name",
            "svc",
            "--scope",
            "web",
            "--rpm",
            "5",
            "--token-limit",
            "1000",
            "--metadata",
            "team=platform",
        ],
    );
    assert!(r.stdout.contains("Created key svc"), "{}", r.stdout);
    let issued = ok(&mut older(), &["keys", "create", "--name", "ci", "--json"]).json();
    assert!(
        issued[ADDED].is_object(),
        "--json prints what the server sent: {issued}"
    );
    let secret = issued["secret"].as_str().expect("secret").to_string();
    let r = ok(
        &mut older(),
        &[
            "keys",
            "update",
            "svc",
            "--description",
            "the service",
            "--cost-limit",
            "2",
        ],
    );
    assert!(r.stdout.contains("Updated key svc"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("5 requests / 1m; 1000 tokens monthly; $2.00 monthly"),
        "{}",
        r.stdout
    );
    let r = ok(&mut older(), &["keys", "verify", &secret]);
    assert!(r.stdout.contains("valid — key ci"), "{}", r.stdout);
    ok(&mut older(), &["keys", "disable", "ci"]);
    let r = run(&mut older(), &["keys", "verify", &secret]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stdout.contains("disabled (HTTP 401)"), "{}", r.stdout);
    ok(&mut older(), &["keys", "enable", "ci"]);
    let r = ok(&mut older(), &["keys", "rotate", "ci", "--grace", "1h"]);
    assert!(
        r.stdout.contains("The old secret keeps working until"),
        "{}",
        r.stdout
    );
    ok(&mut older(), &["keys", "regenerate", "ci", "--yes"]);
    ok(
        &mut older(),
        &[
            "keys",
            "import",
            "--name",
            "old",
            "--key",
            "sk_legacy_0123456789abcdef",
        ],
    );
    ok(
        &mut older(),
        &["members", "add", "--name", "ci job", "--role", "service"],
    );
    ok(
        &mut older(),
        &[
            "workspace",
            "update",
            "--default-rpm",
            "100",
            "--credit-balance",
            "25",
        ],
    );
    ok(&mut older(), &["keys", "revoke", "ci", "--yes"]);
    // An error body with a field this CLI does not know still reads as the error it is.
    let r = run(&mut older(), &["keys", "enable", "ci"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("(key_revoked)"), "{}", r.stderr);
    ok(&mut older(), &["keys", "delete", "ci", "--yes"]);

    // Reads print the same text as from the server this CLI was built with.
    for args in [
        &["keys", "list"][..],
        &["keys", "show", "svc"],
        &["keys", "usage", "svc"],
        &["projects", "list"],
        &["projects", "show", "web"],
        &["members", "list"],
        &["workspace", "show"],
        &["audit"],
    ] {
        let through = ok(&mut older(), args).stdout;
        let plain = ok(&mut direct(), args).stdout;
        assert_eq!(through, plain, "{args:?}");
    }
    let through = ok(&mut older(), &["whoami"]).stdout;
    let plain = ok(&mut direct(), &["whoami"]).stdout;
    assert_eq!(through.replace(&newer, &server.url), plain);

    // And `--json` prints the answer as it came.
    let shown = ok(&mut older(), &["keys", "show", "svc", "--json"]).json();
    assert!(shown[ADDED].is_object(), "{shown}");
    let listed = ok(&mut older(), &["keys", "list", "--json"]).json();
    assert!(listed["items"][0][ADDED].is_object(), "{listed}");
    let audit = ok(&mut older(), &["audit", "--json"]).json();
    assert!(audit[ADDED].is_object(), "{audit}");
}
