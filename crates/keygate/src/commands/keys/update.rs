//! `keygate keys update`: change a key's fields; only the ones given change.

use keygate_api::keys::UpdateKey;
use keygate_api::{ApiKey, KeyLimits};

use super::show::print_key;
use super::{resolve_key, Context};
use crate::cli::UpdateKeyArgs;
use crate::commands::flags;
use crate::error::CliError;

pub async fn update(ctx: &Context, args: UpdateKeyArgs) -> Result<(), CliError> {
    let key = resolve_key(ctx, &args.key).await?.key;
    let mut body = UpdateKey {
        name: args.name,
        // A blank description removes it.
        description: args
            .description
            .map(|d| Some(d).filter(|d| !d.trim().is_empty())),
        ..UpdateKey::default()
    };
    if !args.scopes.is_empty() {
        body.scope = Some(flags::scope(ctx, &args.scopes).await?);
    }
    if args.clear_permissions {
        body.permissions = Some(Vec::new());
    } else if !args.permissions.is_empty() {
        body.permissions = Some(args.permissions);
    }
    let (expires_in, expires_at) = flags::expiry(args.expires.as_ref());
    body.expires_in = expires_in;
    body.expires_at = expires_at.map(Some);
    // The API replaces limits as a whole; start from the key's so unnamed limits survive.
    let base = if args.clear_limits {
        KeyLimits::default()
    } else {
        key.limits.clone()
    };
    body.limits = match flags::limits(base, &args.limits)? {
        Some(limits) => Some(limits),
        None if args.clear_limits => Some(KeyLimits::default()),
        None => None,
    };
    if args.no_identity {
        body.identity_id = Some(None);
    } else if let Some(given) = &args.identity {
        body.identity_id = Some(Some(flags::identity(ctx, given).await?.id));
    }
    if is_empty(&body) {
        return Err(CliError::usage_hint(
            "nothing to change",
            "Give at least one of --name, --description, --scope, --permission, --expires, --identity or a limit.",
        ));
    }
    let id = &key.id;
    let answer = ctx
        .client
        .patch_raw(&format!("/v1/keys/{id}"), &body)
        .await?;
    let saved: ApiKey = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else {
        ctx.out.done(&format!("Updated key {} ({id}).", saved.name));
        print_key(&ctx.out, &saved);
    }
    Ok(())
}

/// Whether the change names no field at all.
fn is_empty(body: &UpdateKey) -> bool {
    serde_json::to_value(body).is_ok_and(|v| v.as_object().is_some_and(|m| m.is_empty()))
}
