//! The `keygate` CLI end to end: the real binary against a real server on a fresh SQLite
//! database, one server per test. Interactive prompts run through a pseudo-terminal.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod identities;
mod leaks;
mod newer_server;
mod webhooks;

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

/// A `keygate serve` process, killed when the test ends, with its address and owner token.
struct TestServer {
    child: Child,
    url: String,
    token: String,
    _data: TempDir,
}

impl TestServer {
    fn start() -> Self {
        let data = TempDir::new().expect("tempdir");
        let db = format!("sqlite://{}/k.db", data.path().display());
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("keygate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--database-url", &db])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn keygate serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut url, mut token) = (None, None);
        while url.is_none() || token.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("server printed its address and owner token");
            if let Some(rest) = line.strip_prefix("Keygate is listening on ") {
                url = Some(rest.trim().to_string());
            } else if line.trim_start().starts_with("kgm_") && line.starts_with(' ') {
                token = Some(line.trim().to_string());
            }
        }
        TestServer {
            child,
            url: url.unwrap_or_default(),
            token: token.unwrap_or_default(),
            _data: data,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A person's machine: their own HOME, config location and working directory.
struct Desk {
    home: TempDir,
    work: TempDir,
}

impl Desk {
    fn new() -> Self {
        Desk {
            home: TempDir::new().expect("home"),
            work: TempDir::new().expect("work"),
        }
    }

    fn config_path(&self) -> PathBuf {
        self.home.path().join("config/keygate/config.toml")
    }

    /// `keygate ARGS` with nothing inherited from the developer's own setup.
    fn cmd(&self) -> Command {
        let mut cmd = Command::cargo_bin("keygate").expect("binary");
        self.isolate(cmd.env_clear_keygate());
        cmd
    }

    fn std_cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("keygate"));
        for var in [
            "KEYGATE_API_KEY",
            "KEYGATE_URL",
            "KEYGATE_CONFIG",
            "XDG_CONFIG_HOME",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("NO_COLOR", "1")
            .env("TERM", "xterm")
            .current_dir(self.work.path());
        cmd
    }

    fn isolate<'a>(&self, cmd: &'a mut Command) -> &'a mut Command {
        cmd.env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("NO_COLOR", "1")
            .current_dir(self.work.path())
    }

    /// A command authenticated through the environment, the way CI would run it.
    fn as_owner(&self, server: &TestServer) -> Command {
        let mut cmd = self.cmd();
        cmd.env("KEYGATE_URL", &server.url)
            .env("KEYGATE_API_KEY", &server.token);
        cmd
    }
}

trait ClearKeygate {
    fn env_clear_keygate(&mut self) -> &mut Self;
}

impl ClearKeygate for Command {
    fn env_clear_keygate(&mut self) -> &mut Self {
        for var in [
            "KEYGATE_API_KEY",
            "KEYGATE_URL",
            "KEYGATE_CONFIG",
            "XDG_CONFIG_HOME",
        ] {
            self.env_remove(var);
        }
        self
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

fn run(cmd: &mut Command, args: &[&str]) -> Run {
    let output = cmd.args(args).output().expect("run keygate");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn ok(cmd: &mut Command, args: &[&str]) -> Run {
    let r = run(cmd, args);
    assert_eq!(r.code, 0, "{args:?} failed:\n{}\n{}", r.stdout, r.stderr);
    r
}

/// Creates a key and returns (id, secret).
fn create_key(desk: &Desk, server: &TestServer, name: &str) -> (String, String) {
    let created = ok(
        &mut desk.as_owner(server),
        &["keys", "create", "--name", name, "--json"],
    )
    .json();
    (
        created["id"].as_str().expect("id").to_string(),
        created["secret"].as_str().expect("secret").to_string(),
    )
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn create_shows_the_secret_once_and_nothing_else_does() {
    let server = TestServer::start();
    let desk = Desk::new();
    let r = ok(
        &mut desk.as_owner(&server),
        &[
            "keys",
            "create",
            "--name",
            "checkout",
            "--description",
            "the checkout service",
            "--env",
            "test",
            "--permission",
            "results:read",
            "--expires",
            "90d",
            "--rpm",
            "60",
            "--token-limit",
            "1000",
            "--cost-limit",
            "1.5",
            "--reset",
            "daily",
            "--spend-cap",
            "5",
        ],
    );
    let secret = r
        .stdout
        .split_whitespace()
        .find(|w| w.starts_with("kg_test_"))
        .expect("the secret is printed")
        .to_string();
    assert!(r.stdout.contains("will not be shown again"), "{}", r.stdout);

    let list = ok(&mut desk.as_owner(&server), &["keys", "list"]);
    assert!(list.stdout.contains("checkout"), "{}", list.stdout);
    assert!(
        list.stdout.contains("never"),
        "last used: never\n{}",
        list.stdout
    );
    assert!(list.stdout.contains("in 3 months"), "{}", list.stdout);
    assert!(!list.stdout.contains(&secret));

    let show = ok(&mut desk.as_owner(&server), &["keys", "show", "checkout"]);
    assert!(show.stdout.contains("60 requests / 1m"), "{}", show.stdout);
    assert!(show.stdout.contains("$1.50 daily"), "{}", show.stdout);
    assert!(show.stdout.contains("$5.00 per day"), "{}", show.stdout);
    assert!(!show.stdout.contains(&secret));

    let shown = ok(
        &mut desk.as_owner(&server),
        &["keys", "show", "checkout", "--json"],
    )
    .json();
    assert_eq!(shown["limits"]["rate_limits"][0]["limit"], 60);
    assert_eq!(shown["limits"]["token_limit"]["reset"], "daily");
    assert_eq!(shown["limits"]["daily_spend_cap"], "5.00");
    assert_eq!(shown["environment"], "test");
    assert!(!shown.to_string().contains(&secret));
    let listed = ok(&mut desk.as_owner(&server), &["keys", "list", "--json"]).json();
    assert_eq!(listed["items"].as_array().map(Vec::len), Some(1));
    assert!(!listed.to_string().contains(&secret));
}

#[test]
fn lifecycle_commands_change_the_key_and_exit_zero() {
    let server = TestServer::start();
    let desk = Desk::new();
    let project = ok(
        &mut desk.as_owner(&server),
        &["projects", "create", "--name", "web", "--json"],
    )
    .json();
    let project_id = project["id"].as_str().expect("project id");
    let (id, secret) = create_key(&desk, &server, "svc");

    // Scope by project name; the CLI looks up the id.
    let updated = ok(
        &mut desk.as_owner(&server),
        &[
            "keys",
            "update",
            &id,
            "--scope",
            "web",
            "--rpm",
            "5",
            "--expires",
            "2099-01-01",
            "--json",
        ],
    )
    .json();
    assert_eq!(updated["scope"][0], project_id);
    assert_eq!(updated["limits"]["rate_limits"][0]["limit"], 5);
    assert_eq!(
        updated["expires_at"].as_str().map(|s| &s[..10]),
        Some("2099-01-01")
    );

    let r = ok(&mut desk.as_owner(&server), &["keys", "disable", "svc"]);
    assert!(r.stdout.contains("Disabled key svc"), "{}", r.stdout);
    let v = run(&mut desk.as_owner(&server), &["keys", "verify", &secret]);
    assert_eq!(v.code, 1);
    assert!(v.stdout.contains("disabled"), "{}", v.stdout);
    ok(&mut desk.as_owner(&server), &["keys", "enable", &id]);
    let v = ok(
        &mut desk.as_owner(&server),
        &["keys", "verify", &secret, "--json"],
    )
    .json();
    assert_eq!(v["valid"], true);

    let rotated = ok(
        &mut desk.as_owner(&server),
        &["keys", "rotate", &id, "--grace", "1h", "--json"],
    )
    .json();
    let new_secret = rotated["secret"].as_str().expect("secret").to_string();
    assert!(rotated["old_secret_expires_at"].is_string());
    // Both work during the grace period.
    ok(&mut desk.as_owner(&server), &["keys", "verify", &secret]);
    ok(
        &mut desk.as_owner(&server),
        &["keys", "verify", &new_secret],
    );

    let regenerated = ok(
        &mut desk.as_owner(&server),
        &["keys", "regenerate", &id, "--yes", "--json"],
    )
    .json();
    let newest = regenerated["secret"].as_str().expect("secret").to_string();
    assert_eq!(
        run(
            &mut desk.as_owner(&server),
            &["keys", "verify", &new_secret]
        )
        .code,
        1
    );
    ok(&mut desk.as_owner(&server), &["keys", "verify", &newest]);

    let r = ok(
        &mut desk.as_owner(&server),
        &["keys", "revoke", &id, "--yes"],
    );
    assert!(r.stdout.contains("Revoked"), "{}", r.stdout);
    let v = run(
        &mut desk.as_owner(&server),
        &["keys", "verify", &newest, "--json"],
    );
    assert_eq!(v.code, 1);
    assert_eq!(v.json()["code"], "revoked");
    let r = run(&mut desk.as_owner(&server), &["keys", "enable", &id]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("key_revoked"), "{}", r.stderr);

    ok(
        &mut desk.as_owner(&server),
        &["keys", "delete", &id, "--yes"],
    );
    let r = run(&mut desk.as_owner(&server), &["keys", "show", &id]);
    assert_eq!(r.code, 1);
}

#[test]
fn env_file_gets_the_secret_and_the_terminal_does_not() {
    let server = TestServer::start();
    let desk = Desk::new();
    let env_file = desk.work.path().join("app.env");
    std::fs::write(&env_file, "OTHER=1").expect("seed");
    let r = ok(
        &mut desk.as_owner(&server),
        &["keys", "create", "--name", "ci", "--env-file", "app.env"],
    );
    let content = std::fs::read_to_string(&env_file).expect("env file");
    let line = content
        .lines()
        .find(|l| l.starts_with("KEYGATE_KEY="))
        .expect("KEYGATE_KEY line");
    let secret = line.trim_start_matches("KEYGATE_KEY=");
    assert!(secret.starts_with("kg_live_"), "{content}");
    assert!(content.starts_with("OTHER=1\n"), "{content}");
    assert!(!r.stdout.contains(secret) && !r.stderr.contains(secret));
    #[cfg(unix)]
    assert_eq!(mode(&env_file), 0o600);

    // The same variable again would shadow or lose a secret: refused before anything is created.
    let again = run(
        &mut desk.as_owner(&server),
        &["keys", "create", "--name", "ci2", "--env-file", "app.env"],
    );
    assert_eq!(again.code, 2, "{}", again.stderr);
    let r = run(&mut desk.as_owner(&server), &["keys", "show", "ci2"]);
    assert_eq!(r.code, 1, "ci2 must not have been created");

    let j = ok(
        &mut desk.as_owner(&server),
        &[
            "keys",
            "create",
            "--name",
            "ci3",
            "--env-file",
            "new.env",
            "--env-var",
            "API_KEY",
            "--json",
        ],
    );
    let fresh = std::fs::read_to_string(desk.work.path().join("new.env")).expect("new.env");
    let secret = fresh.trim().trim_start_matches("API_KEY=");
    assert!(!j.stdout.contains(secret));
    assert_eq!(j.json()["env_var"], "API_KEY");
    #[cfg(unix)]
    assert_eq!(mode(&desk.work.path().join("new.env")), 0o600);
}

#[test]
fn list_follows_pagination_with_all() {
    let server = TestServer::start();
    let desk = Desk::new();
    for name in ["a", "b", "c"] {
        create_key(&desk, &server, name);
    }
    let page = ok(
        &mut desk.as_owner(&server),
        &["keys", "list", "--limit", "1", "--json"],
    )
    .json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1));
    assert!(page["next_cursor"].is_string());
    let all = ok(
        &mut desk.as_owner(&server),
        &["keys", "list", "--limit", "1", "--all", "--json"],
    )
    .json();
    assert_eq!(all["items"].as_array().map(Vec::len), Some(3));
    let text = ok(
        &mut desk.as_owner(&server),
        &["keys", "list", "--limit", "1"],
    );
    assert!(text.stdout.contains("--all"), "{}", text.stdout);
}

#[test]
fn exit_codes_tell_scripts_what_happened() {
    let server = TestServer::start();
    let desk = Desk::new();
    // Usage errors: clap's and ours.
    assert_eq!(
        run(&mut desk.as_owner(&server), &["keys", "create"]).code,
        2
    );
    assert_eq!(
        run(
            &mut desk.as_owner(&server),
            &["keys", "create", "--name", "x", "--expires", "someday"]
        )
        .code,
        2
    );
    assert_eq!(
        run(&mut desk.as_owner(&server), &["keys", "frobnicate"]).code,
        2
    );
    // No credentials anywhere.
    let r = run(&mut desk.cmd(), &["keys", "list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("keygate login"), "{}", r.stderr);
    // Revoke and delete refuse to run unconfirmed without a terminal.
    let (id, _) = create_key(&desk, &server, "k");
    assert_eq!(
        run(&mut desk.as_owner(&server), &["keys", "revoke", &id]).code,
        2
    );
    assert_eq!(
        run(&mut desk.as_owner(&server), &["keys", "delete", &id]).code,
        2
    );
    // The server says no.
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "show", "key_doesnotexist0000000"],
    );
    assert_eq!(r.code, 1);
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "list", "--api-key", "kgm_mgmt_wrong"],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("unauthenticated"), "{}", r.stderr);
    assert!(r.stderr.contains("request id req_"), "{}", r.stderr);
    assert!(r.stderr.contains("keygate login"), "{}", r.stderr);
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "list", "--api-key", "kgm_mgmt_wrong", "--json"],
    );
    let err: Value = serde_json::from_str(r.stderr.trim()).expect("JSON error on stderr");
    assert_eq!(err["error"]["code"], "unauthenticated");
    // Nobody home.
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "list", "--url", "http://127.0.0.1:1"],
    );
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);
}

#[test]
fn a_viewer_is_told_to_ask_an_owner() {
    let server = TestServer::start();
    let desk = Desk::new();
    let member = ok(
        &mut desk.as_owner(&server),
        &[
            "members", "add", "--name", "vic", "--role", "viewer", "--json",
        ],
    )
    .json();
    let token = member["token"].as_str().expect("token");
    let list = ok(&mut desk.as_owner(&server), &["members", "list", "--json"]).json();
    assert_eq!(list["items"].as_array().map(Vec::len), Some(2));
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "create", "--name", "x", "--api-key", token],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("insufficient_role"), "{}", r.stderr);
    assert!(r.stderr.contains("owner"), "{}", r.stderr);
    let id = member["id"].as_str().expect("id");
    ok(
        &mut desk.as_owner(&server),
        &["members", "remove", id, "--yes"],
    );
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "list", "--api-key", token],
    );
    assert_eq!(r.code, 1);
}

#[test]
fn routes_the_server_lacks_fail_gracefully() {
    let server = TestServer::start();
    let desk = Desk::new();
    create_key(&desk, &server, "k");
    let r = run(
        &mut desk.as_owner(&server),
        &["keys", "usage", "k", "--days", "3"],
    );
    if r.code != 0 {
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("does not support usage"), "{}", r.stderr);
    }
    let r = run(&mut desk.as_owner(&server), &["audit", "--since", "1d"]);
    if r.code != 0 {
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("audit trail"), "{}", r.stderr);
    }
}

#[test]
fn workspace_and_projects_round_trip() {
    let server = TestServer::start();
    let desk = Desk::new();
    let ws = ok(
        &mut desk.as_owner(&server),
        &[
            "workspace",
            "update",
            "--single-active-key",
            "true",
            "--default-rpm",
            "100",
            "--json",
        ],
    )
    .json();
    assert_eq!(ws["single_active_key"], true);
    let shown = ok(&mut desk.as_owner(&server), &["workspace", "show"]);
    assert!(shown.stdout.contains("100/1m"), "{}", shown.stdout);
    ok(
        &mut desk.as_owner(&server),
        &["projects", "create", "--name", "api"],
    );
    let projects = ok(&mut desk.as_owner(&server), &["projects", "list", "--json"]).json();
    assert_eq!(projects["items"][0]["name"], "api");
    let shown = ok(&mut desk.as_owner(&server), &["projects", "show", "api"]);
    assert!(shown.stdout.contains("proj_"), "{}", shown.stdout);
    let legacy = ok(
        &mut desk.as_owner(&server),
        &[
            "keys",
            "import",
            "--name",
            "old",
            "--key",
            "sk_legacy_0123456789abcdef",
            "--json",
        ],
    )
    .json();
    assert_eq!(legacy["legacy"], true);
    ok(
        &mut desk.as_owner(&server),
        &["keys", "verify", "sk_legacy_0123456789abcdef"],
    );
}

#[test]
fn credentials_precedence_is_flag_then_env_then_dotenv_then_config() {
    let server = TestServer::start();
    let desk = Desk::new();
    let config = desk.config_path();
    std::fs::create_dir_all(config.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &config,
        format!("url = \"{}\"\napi_key = \"{}\"\n", server.url, server.token),
    )
    .expect("config");
    let source = |cmd: &mut Command| {
        let who = ok(cmd.args(["whoami", "--json"]), &[]).json();
        (
            who["token_source"].as_str().unwrap_or("").to_string(),
            who["url_source"].as_str().unwrap_or("").to_string(),
        )
    };
    let (token, url) = source(&mut desk.cmd());
    assert!(token.starts_with("config file"), "{token}");
    assert!(url.starts_with("config file"), "{url}");

    // KEYGATE_CONFIG overrides the location.
    let elsewhere = desk.home.path().join("elsewhere.toml");
    std::fs::copy(&config, &elsewhere).expect("copy");
    std::fs::remove_file(&config).expect("rm");
    let (token, _) = source(desk.cmd().env("KEYGATE_CONFIG", &elsewhere));
    assert!(token.contains("elsewhere.toml"), "{token}");
    std::fs::copy(&elsewhere, &config).expect("copy back");

    std::fs::write(
        desk.work.path().join(".env"),
        format!("# local\nKEYGATE_API_KEY={}\n", server.token),
    )
    .expect(".env");
    let (token, url) = source(&mut desk.cmd());
    assert!(token.starts_with(".env"), "{token}");
    assert!(url.starts_with("config file"), "{url}");

    let (token, _) = source(desk.cmd().env("KEYGATE_API_KEY", &server.token));
    assert_eq!(token, "environment");

    let who = ok(
        desk.cmd().env("KEYGATE_API_KEY", "kgm_mgmt_wrong"),
        &["whoami", "--api-key", &server.token, "--json"],
    )
    .json();
    let token = who["token_source"].as_str().unwrap_or("");
    assert_eq!(token, "command-line flag");

    // A wrong value higher up wins over a right one below it.
    let r = run(
        desk.cmd().env("KEYGATE_API_KEY", "kgm_mgmt_wrong"),
        &["keys", "list"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    std::fs::write(
        desk.work.path().join(".env"),
        "KEYGATE_API_KEY=kgm_mgmt_wrong\n",
    )
    .expect(".env");
    assert_eq!(run(&mut desk.cmd(), &["keys", "list"]).code, 1);
    assert_eq!(
        run(
            &mut desk.cmd(),
            &["keys", "list", "--api-key", &server.token]
        )
        .code,
        0
    );
    // And the URL: the environment beats the config file.
    let r = run(
        desk.cmd().env("KEYGATE_URL", "http://127.0.0.1:1"),
        &["keys", "list", "--api-key", &server.token],
    );
    assert_eq!(r.code, 3);
}

/// A `.env` that names only a URL (say, in a cloned repository) must not receive the token
/// from the config file: the CLI refuses, and nothing reaches the `.env`'s server.
#[test]
fn security_a_dotenv_url_cannot_redirect_the_configured_token() {
    let server = TestServer::start();
    let desk = Desk::new();
    let config = desk.config_path();
    std::fs::create_dir_all(config.parent().expect("dir")).expect("mkdir");
    std::fs::write(
        &config,
        format!("url = \"{}\"\napi_key = \"{}\"\n", server.url, server.token),
    )
    .expect("config");
    let trap = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    trap.set_nonblocking(true).expect("nonblocking");
    let trap_url = format!("http://{}", trap.local_addr().expect("addr"));
    std::fs::write(
        desk.work.path().join(".env"),
        format!("KEYGATE_URL={trap_url}\n"),
    )
    .expect(".env");
    let r = run(&mut desk.cmd(), &["keys", "list"]);
    assert_eq!(r.code, 2, "refused as a usage error: {}", r.stderr);
    assert!(r.stderr.contains("KEYGATE_API_KEY"), "{}", r.stderr);
    assert!(
        trap.accept().is_err(),
        "the .env's server must not have been contacted"
    );
    assert!(!r.stderr.contains(&server.token) && !r.stdout.contains(&server.token));
}

#[test]
fn login_with_a_piped_token_saves_a_private_config_and_logout_removes_it() {
    let server = TestServer::start();
    let desk = Desk::new();
    let r = ok(
        desk.cmd().write_stdin(format!("{}\n", server.token)),
        &["login", "--with-token", "--url", &server.url],
    );
    assert!(r.stdout.contains("Logged in"), "{}", r.stdout);
    assert!(!r.stdout.contains(&server.token));
    let config = desk.config_path();
    #[cfg(unix)]
    {
        assert_eq!(mode(&config), 0o600);
        assert_eq!(mode(config.parent().expect("dir")), 0o700);
    }
    ok(&mut desk.cmd(), &["keys", "list"]);
    let bad = run(
        desk.cmd().write_stdin("kgm_mgmt_wrong\n"),
        &["login", "--with-token", "--url", &server.url],
    );
    assert_eq!(bad.code, 1, "a token the server refuses is not saved");
    ok(&mut desk.cmd(), &["keys", "list"]);
    let r = ok(&mut desk.cmd(), &["logout"]);
    assert!(r.stdout.contains("Removed"), "{}", r.stdout);
    assert_eq!(run(&mut desk.cmd(), &["keys", "list"]).code, 2);
}

#[cfg(unix)]
mod terminal {
    use super::*;
    use rexpect::process::WaitStatus;
    use rexpect::session::spawn_command;

    const TIMEOUT_MS: Option<u64> = Some(20_000);

    fn exit_code(status: WaitStatus) -> i32 {
        match status {
            WaitStatus::Exited(_, code) => code,
            other => panic!("keygate did not exit normally: {other:?}"),
        }
    }

    #[test]
    fn interactive_login_hides_the_token_and_saves_0600() {
        let server = TestServer::start();
        let desk = Desk::new();
        let mut cmd = desk.std_cmd();
        cmd.arg("login");
        let mut p = spawn_command(cmd, TIMEOUT_MS).expect("spawn");
        p.exp_string("Keygate server URL").expect("URL prompt");
        p.send_line(&server.url).expect("send url");
        p.exp_string("Management token (input hidden): ")
            .expect("token prompt");
        p.send_line(&server.token).expect("send token");
        let rest = p.exp_eof().expect("eof");
        assert!(rest.contains("Logged in"), "{rest}");
        assert!(
            !rest.contains(&server.token),
            "the token was echoed: {rest}"
        );
        assert_eq!(exit_code(p.process().wait().expect("wait")), 0);

        let config = desk.config_path();
        assert_eq!(mode(&config), 0o600);
        let text = std::fs::read_to_string(&config).expect("config");
        assert!(text.contains(&server.url) && text.contains(&server.token));
        let who = ok(&mut desk.cmd(), &["whoami"]);
        assert!(who.stdout.contains("config file"), "{}", who.stdout);
        assert!(
            who.stdout.contains("owner"),
            "whoami names the role: {}",
            who.stdout
        );
    }

    #[test]
    fn delete_asks_for_the_keys_name() {
        let server = TestServer::start();
        let desk = Desk::new();
        let (id, _) = create_key(&desk, &server, "precious");
        let spawn = || {
            let mut cmd = desk.std_cmd();
            cmd.env("KEYGATE_URL", &server.url)
                .env("KEYGATE_API_KEY", &server.token)
                .args(["keys", "delete", &id]);
            spawn_command(cmd, TIMEOUT_MS).expect("spawn")
        };

        let mut p = spawn();
        p.exp_string("Type the key's name (precious)")
            .expect("prompt");
        p.send_line("precios").expect("send");
        let rest = p.exp_eof().expect("eof");
        assert!(rest.contains("did not match"), "{rest}");
        assert_eq!(exit_code(p.process().wait().expect("wait")), 1);
        ok(&mut desk.as_owner(&server), &["keys", "show", &id]);

        let mut p = spawn();
        p.exp_string("Type the key's name (precious)")
            .expect("prompt");
        p.send_line("precious").expect("send");
        let rest = p.exp_eof().expect("eof");
        assert!(rest.contains("Deleted key precious"), "{rest}");
        assert_eq!(exit_code(p.process().wait().expect("wait")), 0);
        assert_eq!(
            run(&mut desk.as_owner(&server), &["keys", "show", &id]).code,
            1
        );
    }

    #[test]
    fn revoke_asks_yes_or_no() {
        let server = TestServer::start();
        let desk = Desk::new();
        let (id, _) = create_key(&desk, &server, "maybe");
        let mut cmd = desk.std_cmd();
        cmd.env("KEYGATE_URL", &server.url)
            .env("KEYGATE_API_KEY", &server.token)
            .args(["keys", "revoke", "maybe"]);
        let mut p = spawn_command(cmd, TIMEOUT_MS).expect("spawn");
        p.exp_string("[y/N]").expect("prompt");
        p.send_line("").expect("send");
        p.exp_eof().expect("eof");
        assert_eq!(exit_code(p.process().wait().expect("wait")), 1);
        let key = ok(
            &mut desk.as_owner(&server),
            &["keys", "show", &id, "--json"],
        )
        .json();
        assert_eq!(key["status"], "active");
    }
}
