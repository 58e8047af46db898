//! `keygate keys import`: a legacy key from another system, by its secret or its SHA-256.

use keygate_api::keys::ImportKey;
use keygate_api::ApiKey;

use super::secret::read_secret_arg;
use super::Context;
use crate::cli::ImportArgs;
use crate::commands::flags;
use crate::error::CliError;

pub async fn import(ctx: &Context, args: ImportArgs) -> Result<(), CliError> {
    let key = args.key.as_deref().map(read_secret_arg).transpose()?;
    let scope = if args.scopes.is_empty() {
        None
    } else {
        Some(flags::scope(ctx, &args.scopes).await?)
    };
    let (expires_in, expires_at) = flags::expiry(args.expires.as_ref());
    let body = ImportKey {
        name: args.name,
        key,
        sha256: args.sha256,
        description: args.description,
        environment: flags::environment(args.environment.as_ref())?,
        scope,
        permissions: args.permissions,
        expires_in,
        expires_at,
        ..ImportKey::default()
    };
    let answer = ctx.client.post_raw("/v1/keys/import", &body).await?;
    let imported: ApiKey = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else {
        ctx.out.done(&format!(
            "Imported legacy key {} ({}) as {}.",
            imported.name, imported.id, imported.display
        ));
        println!("  It authenticates as before but carries no limits; replace it with a new key when you can.");
    }
    Ok(())
}
