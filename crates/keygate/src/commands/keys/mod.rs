//! `keygate keys …`: the key lifecycle from the terminal.
//!
//! A secret is printed only by the commands that mint one (create, regenerate, rotate) and
//! only when the user did not ask for it to go to a file; lists and details show the display
//! form. Every command that takes a key accepts its id or its (unique) name.
//!
//! Requests are the contract's request types (`keygate_api::keys`), built from the flags in
//! `commands::flags`; answers are read into its response types, and `--json` prints the answer as
//! the server sent it.

mod create;
mod import;
mod leak;
mod lifecycle;
mod list;
mod secret;
mod show;
mod update;
mod usage;
mod verify;

use keygate_api::keys::{KeyPage, ListKeys};
use keygate_api::ApiKey;
use serde_json::Value;

use super::Context;
use crate::cli::KeysCommand;
use crate::client::NO_QUERY;
use crate::error::CliError;

pub async fn run(ctx: &Context, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Create(args) => create::create(ctx, args).await,
        KeysCommand::List(args) => list::list(ctx, &args).await,
        KeysCommand::Show(r) => show::show(ctx, &r.key).await,
        KeysCommand::Update(args) => update::update(ctx, args).await,
        KeysCommand::Disable(r) => lifecycle::toggle(ctx, &r.key, false).await,
        KeysCommand::Enable(r) => lifecycle::toggle(ctx, &r.key, true).await,
        KeysCommand::Revoke(r) => lifecycle::revoke(ctx, &r.key, r.yes).await,
        KeysCommand::Delete(r) => lifecycle::delete(ctx, &r.key, r.yes).await,
        KeysCommand::Regenerate(args) => lifecycle::regenerate(ctx, args).await,
        KeysCommand::Rotate(args) => lifecycle::rotate(ctx, args).await,
        KeysCommand::Usage(args) => usage::usage(ctx, &args).await,
        KeysCommand::Verify(args) => verify::verify(ctx, args).await,
        KeysCommand::Import(args) => import::import(ctx, args).await,
        KeysCommand::ReportLeak(args) => leak::report(ctx, args).await,
    }
}

/// A key the user named: as the server sent it (for `--json`) and read.
struct Found {
    json: Value,
    key: ApiKey,
}

/// A key by id, or by exact name when the argument is not an id (or no key has that id).
async fn resolve_key(ctx: &Context, reference: &str) -> Result<Found, CliError> {
    if keygate_core::ids::looks_like("key", reference) {
        let path = format!("/v1/keys/{reference}");
        match ctx.client.get_raw(&path, NO_QUERY).await {
            Ok(json) => {
                let key = ctx.client.decode(&json)?;
                return Ok(Found { json, key });
            }
            Err(CliError::Api(f)) if f.status == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let mut query = ListKeys {
        search: Some(reference.to_string()),
        limit: Some(500),
        ..ListKeys::default()
    };
    loop {
        let json = ctx.client.get_raw("/v1/keys", &query).await?;
        let page: KeyPage = ctx.client.decode(&json)?;
        if let Some(index) = page.items.iter().position(|k| k.name == reference) {
            let key = page.items[index].clone();
            let json = json["items"][index].clone();
            return Ok(Found { json, key });
        }
        match page.next_cursor {
            Some(next) => query.cursor = Some(next),
            None => break,
        }
    }
    Err(CliError::failed_hint(
        format!("no key with the id or name {reference:?}"),
        "`keygate keys list` shows your keys.",
    ))
}

#[cfg(test)]
mod tests {
    use crate::error::CliError;
    use keygate_api::keys::{IssuedKey, KeyPage};
    use keygate_api::ApiKey;
    use serde_json::json;

    /// A key as a server newer than this CLI might send it: every field this CLI reads, and
    /// some it has never heard of.
    fn newer_key() -> serde_json::Value {
        json!({
            "id": "key_a", "workspace_id": "ws_a", "name": "svc", "description": null,
            "environment": "live", "scope": "all", "permissions": [], "expires_at": null,
            "status": "active", "metadata": {},
            "limits": {"rate_limits": [{"limit": 5, "window": 60, "burst": 2}],
                       "token_limit": {"limit": 9, "reset": "daily", "rollover": true},
                       "concurrency": {"max": 3}},
            "routing_rule_id": null, "display": "kg_live_ab12…mn34", "legacy": false,
            "created_by": "mem_a", "created_at": "2026-01-31T12:00:00Z",
            "updated_at": "2026-01-31T12:00:00Z", "last_used_at": null, "version": 1,
            "labels": ["added", "later"], "owner": {"team": "platform"}
        })
    }

    #[test]
    fn answers_with_fields_this_cli_does_not_know_are_read() {
        let key: ApiKey = serde_json::from_value(newer_key()).expect("a key");
        assert_eq!(key.name, "svc");
        let mut issued = newer_key();
        issued["secret"] = json!("kg_live_secret");
        issued["warning"] = json!("shown once");
        issued["secret_hint"] = json!("new");
        let issued: IssuedKey = serde_json::from_value(issued).expect("an issued key");
        assert_eq!(issued.key.id, "key_a");
        let page: KeyPage = serde_json::from_value(
            json!({"items": [newer_key()], "next_cursor": null, "total": 1}),
        )
        .expect("a page");
        assert_eq!(page.items.len(), 1);
    }

    /// A value this CLI has never heard of (a newer server's key status) cannot be read into
    /// its types; the error keeps the whole answer, which is printed, so a secret in it is
    /// not lost.
    #[test]
    fn an_answer_that_does_not_fit_is_kept_whole() {
        let client =
            crate::client::Client::with_token("http://127.0.0.1:1", "t".into()).expect("a client");
        let mut issued = newer_key();
        issued["status"] = json!("quarantined");
        issued["secret"] = json!("kg_live_secret");
        issued["warning"] = json!("shown once");
        match client.decode::<IssuedKey>(&issued) {
            Err(CliError::Unreadable { answer, cause }) => {
                assert_eq!(answer["secret"], "kg_live_secret");
                assert!(cause.contains("quarantined"), "{cause}");
            }
            other => panic!("expected an unreadable answer, got {other:?}"),
        }
    }
}
