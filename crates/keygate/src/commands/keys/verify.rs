//! `keygate keys verify`: ask the server what verify mode would answer for a key.

use keygate_api::verify::{VerifyRequest, VerifyResponse};

use super::secret::read_secret_arg;
use super::Context;
use crate::cli::VerifyArgs;
use crate::error::CliError;
use crate::output::{wire_name, Tone};

pub async fn verify(ctx: &Context, args: VerifyArgs) -> Result<(), CliError> {
    let body = VerifyRequest {
        key: Some(read_secret_arg(&args.key)?),
        project: args.project,
        permissions: args.permissions,
        ..VerifyRequest::default()
    };
    let answer = ctx.client.post_raw("/v1/keys/verify", &body).await?;
    let verdict: VerifyResponse = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else if verdict.valid {
        let (name, id, environment) = match &verdict.key {
            Some(k) => (k.name.as_str(), k.id.as_str(), k.environment.as_str()),
            None => ("", "", ""),
        };
        ctx.out
            .done(&format!("valid — key {name} ({id}), {environment}"));
    } else {
        println!(
            "{} {} (HTTP {}): {}",
            ctx.out.paint(Tone::Bad, "✗ invalid:"),
            wire_name(&verdict.code),
            verdict.status,
            verdict.message.as_deref().unwrap_or(""),
        );
        if let Some(secs) = verdict.retry_after {
            println!("  Retry in {secs} seconds.");
        }
    }
    if verdict.valid {
        Ok(())
    } else {
        Err(CliError::Reported(1))
    }
}
