//! `keygate keys report-leak`: one secret, read from standard input (never argv, where every
//! user of the machine could see it), reported to `POST /v1/leaks`.

use keygate_api::leaks::{LeakAction, LeakOutcome, LeakReport};
use keygate_api::Items;

use super::secret::read_secret_arg;
use crate::cli::ReportLeakArgs;
use crate::commands::Context;
use crate::error::CliError;

pub async fn report(ctx: &Context, args: ReportLeakArgs) -> Result<(), CliError> {
    let token = read_secret_arg("-")?;
    if token.is_empty() {
        return Err(CliError::usage(
            "no secret on standard input: pipe it in, e.g. `pbpaste | keygate keys report-leak`",
        ));
    }
    let body = vec![LeakReport {
        token,
        kind: Some("keygate_api_key".into()),
        url: args.found_at,
        source: Some(args.source),
    }];
    let answer = ctx.client.post_raw("/v1/leaks", &body).await?;
    let outcomes: Items<LeakOutcome> = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
        return Ok(());
    }
    for outcome in outcomes.items {
        let key = outcome.key_id.as_deref().unwrap_or("?");
        match outcome.action {
            None => ctx.out.warn(&format!(
                "{} is not a key of this workspace; nothing was done.",
                outcome.token
            )),
            Some(LeakAction::Revoked) => ctx
                .out
                .done(&format!("{} (key {key}) revoked.", outcome.token)),
            Some(LeakAction::Disabled) => ctx.out.done(&format!(
                "{} (key {key}) disabled; enable it again with `keygate keys enable {key}`.",
                outcome.token
            )),
            Some(LeakAction::Notified) => ctx.out.warn(&format!(
                "{} (key {key}) recorded as leaked and left working (the workspace's leak policy is notify).",
                outcome.token
            )),
            Some(LeakAction::AlreadyRevoked) => ctx.out.done(&format!(
                "{} (key {key}) was already revoked; the report is recorded.",
                outcome.token
            )),
            Some(LeakAction::OldSecretEnded) => ctx.out.done(&format!(
                "{} is an old secret of key {key}, rotated away: it stopped working now; the key's current secret still works.",
                outcome.token
            )),
            Some(LeakAction::SecretExpired) => ctx.out.done(&format!(
                "{} is an old secret of key {key} that no longer works; nothing to do, the report is recorded.",
                outcome.token
            )),
        }
    }
    Ok(())
}
