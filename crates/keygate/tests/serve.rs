//! The binary's server commands as an operator runs them: `bootstrap --json`, `serve` on an
//! empty store (shows the owner token and a one-time dashboard sign-in link once), a second
//! start (does not), and a graceful stop on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_keygate");

/// A running `keygate serve`, killed if the test fails before stopping it.
struct Server {
    child: Child,
    url: String,
    token: Option<String>,
    /// The owner's one-time dashboard sign-in link, printed on the first start only.
    link: Option<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(format!("sqlite://{}/keygate.db", dir.display()))
        .env_remove("KEYGATE_SECRET")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn keygate serve");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut url = None;
    let mut token = None;
    let mut link = None;
    while let Some(Ok(line)) = lines.next() {
        if let Some(rest) = line.strip_prefix("Keygate is listening on ") {
            url = Some(rest.trim().to_owned());
        }
        let trimmed = line.trim();
        if trimmed.starts_with("kgm_") {
            token = Some(trimmed.to_owned());
        }
        if trimmed.starts_with("http://") && trimmed.contains("/dashboard/sign-in/link?secret=") {
            link = Some(trimmed.to_owned());
            break;
        }
        // The last line of a banner without a link (a store that has a workspace).
        if line.starts_with("Use an owner's") {
            break;
        }
    }
    // Keep draining stdout so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Server {
        child,
        url: url.expect("listening line"),
        token,
        link,
    }
}

fn get_status(url: &str, token: &str) -> u16 {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("{url}/v1/keys"))
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

#[test]
fn serve_shows_the_owner_token_once_and_stops_gracefully_on_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = serve(dir.path());
    let token = first
        .token
        .clone()
        .expect("the first start prints the owner token");
    assert_eq!(get_status(&first.url, &token), 200);
    let secret_file = dir.path().join("keygate.secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file)
            .expect("secret file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let pid = first.child.id().to_string();
    let started = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut first = first;
    let exit = loop {
        if let Some(exit) = first.child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "a graceful stop exits 0: {exit:?}");

    let second = serve(dir.path());
    assert_eq!(
        second.token, None,
        "the token is shown once, on the first start only"
    );
    assert_eq!(
        get_status(&second.url, &token),
        200,
        "same secret file, same token"
    );
}

/// A form POST to the dashboard from its own origin; returns the status and `Set-Cookie`.
fn post_form(url: &str, path: &str, field: &str, value: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-D",
            "-",
            "-w",
            "%{http_code}",
            "-H",
        ])
        .arg(format!("Origin: {url}"))
        .arg("--data-urlencode")
        .arg(format!("{field}={value}"))
        .arg(format!("{url}{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    let cookie = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or("")
        .to_owned();
    (status, cookie)
}

#[test]
fn the_first_start_prints_a_sign_in_link_that_works_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = serve(dir.path());
    let link = first
        .link
        .clone()
        .expect("the first start prints a sign-in link");
    assert!(link.starts_with(&first.url), "the link names the server");
    let secret = link.split_once("secret=").map(|(_, s)| s).unwrap_or("");
    assert_eq!(secret.len(), 64, "32 random bytes in hex");
    let (status, cookie) = post_form(&first.url, "/dashboard/sign-in/link", "secret", secret);
    assert_eq!(status, 303, "the link signs the owner in");
    assert!(cookie.contains("keygate_session=") && cookie.contains("HttpOnly"));
    let (again, _) = post_form(&first.url, "/dashboard/sign-in/link", "secret", secret);
    assert_eq!(again, 410, "a used link is refused");
    drop(first);
    let second = serve(dir.path());
    assert_eq!(
        second.link, None,
        "the link is printed on the first start only"
    );
}

#[test]
fn bootstrap_json_prints_a_working_token_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}/keygate.db", dir.path().display());
    let out = Command::new(BIN)
        .args(["bootstrap", "--json", "--database-url", &db])
        .env_remove("KEYGATE_SECRET")
        .output()
        .expect("bootstrap");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    let token = printed["token"].as_str().expect("token");
    assert!(printed["workspace_id"]
        .as_str()
        .expect("workspace_id")
        .starts_with("ws_"));
    assert!(token.starts_with("kgm_"));

    let server = serve(dir.path());
    assert_eq!(
        server.token, None,
        "serve does not bootstrap a store that has a workspace"
    );
    assert_eq!(get_status(&server.url, token), 200);

    let bad = Command::new(BIN)
        .args([
            "bootstrap",
            "--json",
            "--prefix",
            "Not Valid",
            "--database-url",
            &db,
        ])
        .output()
        .expect("bootstrap");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("prefix"));
}

/// The database holds hashes, audit rows and sealed idempotent answers: it is created 0600,
/// with its WAL and shared-memory files, and a file found wider is narrowed on start.
#[cfg(unix)]
#[test]
fn security_the_sqlite_files_are_private_to_the_server() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| {
        std::fs::metadata(p)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keygate.db");
    {
        let server = serve(dir.path());
        let token = server.token.clone().expect("token");
        assert_eq!(get_status(&server.url, &token), 200);
        for name in ["keygate.db", "keygate.db-wal", "keygate.db-shm"] {
            assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
        }
    }
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let again = serve(dir.path());
    assert!(again.token.is_none());
    assert_eq!(mode(&db), 0o600, "narrowed on the next start");
}

/// A secret on the command line is visible to every user in `ps`: the flag is refused with a
/// message that says where the secret goes instead, and the secret is not echoed back.
#[test]
fn security_the_secret_is_never_taken_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = "ab".repeat(32);
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--secret",
            &secret,
            "--database-url",
        ])
        .arg(format!("sqlite://{}/keygate.db", dir.path().display()))
        .output()
        .expect("run keygate serve");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("KEYGATE_SECRET"), "{stderr}");
    assert!(!stderr.contains(&secret) && !String::from_utf8_lossy(&out.stdout).contains(&secret));
    assert!(
        !dir.path().join("keygate.db").exists(),
        "nothing was started"
    );

    // A secret file works, and is what the server uses.
    let file = dir.path().join("node.secret");
    std::fs::write(&file, format!("{secret}\n")).expect("write secret");
    let bootstrap = Command::new(BIN)
        .args(["bootstrap", "--json", "--secret-file"])
        .arg(&file)
        .arg("--database-url")
        .arg(format!("sqlite://{}/keygate.db", dir.path().display()))
        .env_remove("KEYGATE_SECRET")
        .output()
        .expect("run keygate bootstrap");
    assert!(
        bootstrap.status.success(),
        "{}",
        String::from_utf8_lossy(&bootstrap.stderr)
    );
    assert!(
        !dir.path().join("keygate.secret").exists(),
        "the given file was used"
    );
}
