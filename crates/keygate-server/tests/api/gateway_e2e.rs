//! End to end with the official `openai` Python package (tests/e2e/openai_client.py) against a
//! running gateway and a test provider: chat, streamed chat, embeddings, models, and a bad
//! key. `#[ignore]`d with `openai_sdk` in its name: `scripts/test` runs it when python3 can
//! import `openai` (CI installs it).

use std::process::Command;

use serde_json::{json, Value};

use crate::gateway_ai::{ai_app, consumption, AiSetup};

/// Panics, saying how to install it, when python3 cannot import `openai`.
fn require_the_openai_sdk() {
    let imported = Command::new("python3")
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|out| out.status.success());
    assert!(
        imported,
        "this test needs the openai Python package: python3 -m pip install openai"
    );
}

#[tokio::test]
#[ignore = "needs the openai Python package: pip install openai (scripts/test runs it when python3 can import openai)"]
async fn the_official_openai_sdk_works_unchanged() {
    require_the_openai_sdk();
    let AiSetup { app, .. } = ai_app().await;
    let created = app
        .create_key(json!({"name": "python", "limits": {"token_limit": {"limit": 1000000, "reset": "monthly"}}}))
        .await;
    let secret = created["secret"].as_str().expect("secret").to_string();
    let key_id = created["id"].as_str().expect("id").to_string();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/e2e/openai_client.py"
    );
    let base_url = format!("{}/v1", app.base);
    // The server runs on this test's runtime, so the script runs on a blocking thread.
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args([script, &base_url, &secret])
            .output()
            .expect("run python3")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "script failed: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_str(stdout.trim()).expect("the script prints JSON");
    assert_eq!(seen["chat"], "hello from alpha");
    assert_eq!(seen["chat_usage_total"], 18);
    assert_eq!(seen["stream"], "hello from alpha");
    assert_eq!(seen["stream_usage_total"], 18);
    assert_eq!(seen["embedding"], json!([0.25, -0.5, 0.125]));
    assert_eq!(
        seen["models"],
        json!(["gpt-test", "embed-test", "instruct-test"])
    );
    assert_eq!(seen["bad_key"]["status"], 401);
    // Three chats of 18 tokens and one embedding of 11 tokens reached the key's budget.
    assert_eq!(consumption(&app, &key_id, (65, -1)).await.0, 65);
}
