//! The dashboard in a real browser: runs `tests/browser/dashboard.mjs` (playwright-core
//! driving Debian's Chromium) against this build's `keygate` binary.
//!
//! `#[ignore]`d because it needs /usr/bin/chromium and `npm ci` in `tests/browser`;
//! `scripts/test` runs it when both are there and skips it by name (`chromium`) otherwise,
//! and `.ci/run` installs both. The script prints its steps and never a secret.

use std::path::PathBuf;
use std::process::Command;

#[test]
#[ignore = "needs chromium"]
fn chromium_signs_in_by_link_creates_a_key_disables_it_and_signs_out() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = root.join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "run `npm ci` in tests/browser first (PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1: the test uses /usr/bin/chromium)"
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let output = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&dir)
        .env("KEYGATE_BIN", assert_cmd::cargo::cargo_bin("keygate"))
        .env("SCREENSHOT_DIR", target.join("browser"))
        .output()
        .expect("run node (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the browser test failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("ok: the dashboard works in Chromium"),
        "{stdout}"
    );
}
