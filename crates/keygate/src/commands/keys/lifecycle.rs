//! A key's lifecycle after creation: disable/enable, revoke, delete, and a new secret
//! (regenerate at once, rotate with a grace period).

use keygate_api::keys::{IssuedKey, RotateKey};
use keygate_api::ApiKey;
use serde_json::json;

use super::secret::{check_destination, deliver_secret};
use super::{resolve_key, Context};
use crate::cli::{RegenerateArgs, RotateArgs};
use crate::client::NoBody;
use crate::commands::require_terminal;
use crate::error::CliError;
use crate::output;

pub async fn toggle(ctx: &Context, reference: &str, enable: bool) -> Result<(), CliError> {
    let key = resolve_key(ctx, reference).await?.key;
    let id = &key.id;
    let verb = if enable { "enable" } else { "disable" };
    let answer = ctx
        .client
        .post_raw(&format!("/v1/keys/{id}/{verb}"), &NoBody {})
        .await?;
    let saved: ApiKey = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else {
        let done = if enable { "Enabled" } else { "Disabled" };
        ctx.out.done(&format!("{done} key {} ({id}).", saved.name));
    }
    Ok(())
}

pub async fn revoke(ctx: &Context, reference: &str, yes: bool) -> Result<(), CliError> {
    if !yes {
        require_terminal("revoke a key")?;
    }
    let key = resolve_key(ctx, reference).await?.key;
    let (id, name) = (&key.id, &key.name);
    if !yes {
        let question = format!(
            "Revoke key {name} ({id})? It stops working at once and this cannot be undone."
        );
        if !output::confirm(&question)? {
            return Err(CliError::failed("not confirmed; the key was not revoked"));
        }
    }
    let answer = ctx
        .client
        .post_raw(&format!("/v1/keys/{id}/revoke"), &NoBody {})
        .await?;
    let _: ApiKey = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else {
        ctx.out.done(&format!("Revoked key {name} ({id})."));
    }
    Ok(())
}

pub async fn delete(ctx: &Context, reference: &str, yes: bool) -> Result<(), CliError> {
    if !yes {
        require_terminal("delete a key")?;
    }
    let key = resolve_key(ctx, reference).await?.key;
    let (id, name) = (&key.id, &key.name);
    if !yes {
        ctx.out.warn(&format!(
            "This deletes key {name} ({id}) permanently: it stops working and its record is gone."
        ));
        let typed = output::prompt(&format!("Type the key's name ({name}) to confirm: "))?;
        if typed != *name {
            return Err(CliError::failed(
                "the name did not match; the key was not deleted",
            ));
        }
    }
    ctx.client.delete(&format!("/v1/keys/{id}")).await?;
    if ctx.out.json {
        ctx.out
            .print_json(&json!({"deleted": true, "id": id, "name": name}));
    } else {
        ctx.out.done(&format!("Deleted key {name} ({id})."));
    }
    Ok(())
}

pub async fn regenerate(ctx: &Context, args: RegenerateArgs) -> Result<(), CliError> {
    check_destination(&args.destination, true)?;
    if !args.yes {
        require_terminal("regenerate a key")?;
    }
    let key = resolve_key(ctx, &args.key).await?.key;
    let (id, name) = (&key.id, &key.name);
    if !args.yes {
        let question = format!(
            "Give key {name} ({id}) a new secret? The current secret stops working at once \
             (use `keygate keys rotate` for a grace period)."
        );
        if !output::confirm(&question)? {
            return Err(CliError::failed("not confirmed; the key was not changed"));
        }
    }
    let answer = ctx
        .client
        .post_raw(&format!("/v1/keys/{id}/regenerate"), &NoBody {})
        .await?;
    let issued: IssuedKey = ctx.client.decode(&answer)?;
    deliver_secret(&ctx.out, &answer, &issued, &args.destination, "Regenerated")
}

pub async fn rotate(ctx: &Context, args: RotateArgs) -> Result<(), CliError> {
    check_destination(&args.destination, true)?;
    let key = resolve_key(ctx, &args.key).await?.key;
    let body = RotateKey {
        grace: Some(args.grace),
    };
    let answer = ctx
        .client
        .post_raw(&format!("/v1/keys/{}/rotate", key.id), &body)
        .await?;
    let issued: IssuedKey = ctx.client.decode(&answer)?;
    deliver_secret(&ctx.out, &answer, &issued, &args.destination, "Rotated")?;
    if !ctx.out.json {
        if let Some(t) = issued.old_secret_expires_at {
            println!(
                "  The old secret keeps working until {} ({}).",
                t.format("%Y-%m-%d %H:%M UTC"),
                output::relative_time(t, chrono::Utc::now())
            );
        }
    }
    Ok(())
}
