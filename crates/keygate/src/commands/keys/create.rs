//! `keygate keys create`: a new key, its secret shown once or written to a file.

use keygate_api::keys::{CreateKey, IssuedKey};
use keygate_api::KeyLimits;
use serde_json::Value;

use super::secret::{check_destination, deliver_secret};
use super::Context;
use crate::cli::CreateKeyArgs;
use crate::commands::flags;
use crate::error::CliError;

pub async fn create(ctx: &Context, args: CreateKeyArgs) -> Result<(), CliError> {
    check_destination(&args.destination, false)?;
    let scope = if args.scopes.is_empty() {
        None
    } else {
        Some(flags::scope(ctx, &args.scopes).await?)
    };
    let (expires_in, expires_at) = flags::expiry(args.expires.as_ref());
    let body = CreateKey {
        name: args.name,
        description: args.description,
        environment: flags::environment(args.environment.as_ref())?,
        scope,
        permissions: args.permissions,
        expires_in,
        expires_at,
        metadata: args
            .metadata
            .into_iter()
            .map(|(k, v)| (k, Value::String(v)))
            .collect(),
        limits: flags::limits(KeyLimits::default(), &args.limits)?.unwrap_or_default(),
        routing_rule_id: None,
        identity_id: match &args.identity {
            Some(given) => Some(flags::identity(ctx, given).await?.id),
            None => None,
        },
    };
    let answer = ctx.client.post_raw("/v1/keys", &body).await?;
    let issued: IssuedKey = ctx.client.decode(&answer)?;
    deliver_secret(&ctx.out, &answer, &issued, &args.destination, "Created")
}
