//! `keygate workspace show|update`: the workspace's name and policies.

use keygate_api::workspace::UpdateWorkspace;
use keygate_api::{LeakPolicy, Micros, RateWindow, Workspace};
use keygate_core::limits::WindowLength;

use super::Context;
use crate::cli::{LeakPolicyArg, WorkspaceCommand};
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::Tone;

pub async fn run(ctx: &Context, command: WorkspaceCommand) -> Result<(), CliError> {
    let answer = match command {
        WorkspaceCommand::Show => ctx.client.get_raw("/v1/workspace", NO_QUERY).await?,
        WorkspaceCommand::Update {
            name,
            single_active_key,
            default_rpm,
            credit_balance,
            credits_low_threshold,
            leak_policy,
            key_prefix,
        } => {
            let credit_balance = optional_dollars("--credit-balance", credit_balance.as_deref())?;
            let credits_low_threshold =
                optional_dollars("--credits-low-threshold", credits_low_threshold.as_deref())?;
            let body = UpdateWorkspace {
                name,
                single_active_key,
                default_rate_limits: default_rpm.map(|limit| {
                    vec![RateWindow {
                        limit,
                        window: WindowLength(60),
                    }]
                }),
                rate_limit_policies: None,
                credit_balance,
                credits_low_threshold,
                leak_policy: leak_policy.map(|policy| match policy {
                    LeakPolicyArg::Revoke => LeakPolicy::Revoke,
                    LeakPolicyArg::Disable => LeakPolicy::Disable,
                    LeakPolicyArg::Notify => LeakPolicy::Notify,
                }),
                key_prefix,
            };
            let nothing = body.name.is_none()
                && body.single_active_key.is_none()
                && body.default_rate_limits.is_none()
                && body.credit_balance.is_none()
                && body.leak_policy.is_none()
                && body.key_prefix.is_none();
            if nothing {
                return Err(CliError::usage(
                    "nothing to change: give --name, --single-active-key, --default-rpm, --credit-balance, --leak-policy or --key-prefix",
                ));
            }
            let saved = ctx.client.patch_raw("/v1/workspace", &body).await?;
            if !ctx.out.json {
                ctx.out.done("Updated the workspace.");
            }
            saved
        }
    };
    let workspace: Workspace = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
        return Ok(());
    }
    let out = &ctx.out;
    let row = |label: &str, value: String| println!("{:<19}{value}", out.paint(Tone::Dim, label));
    row("ID", workspace.id.clone());
    row("Name", workspace.name.clone());
    row("Key prefix", workspace.key_prefix.to_string());
    row(
        "Single active key",
        if workspace.single_active_key {
            "yes"
        } else {
            "no"
        }
        .into(),
    );
    row("Leak policy", workspace.leak_policy.as_str().into());
    let windows = |ws: &[RateWindow]| {
        if ws.is_empty() {
            return "none".to_string();
        }
        ws.iter()
            .map(|w| format!("{}/{}", w.limit, w.window))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row(
        "Default rate limit",
        windows(&workspace.default_rate_limits),
    );
    for (name, ws) in &workspace.rate_limit_policies {
        row("Policy", format!("{name}: {}", windows(ws)));
    }
    row(
        "Credit balance",
        match workspace.credit_balance {
            Some(b) => format!("${b}"),
            None => "not credit-limited".into(),
        },
    );
    Ok(())
}

/// A dollar amount flag: absent (leave it), `none` (clear it), or an amount.
fn optional_dollars(flag: &str, text: Option<&str>) -> Result<Option<Option<Micros>>, CliError> {
    Ok(match text {
        None => None,
        Some("none") => Some(None),
        Some(usd) => {
            Some(Some(Micros::parse_dollars(usd).map_err(|e| {
                CliError::usage(format!("{flag} {usd:?}: {e}"))
            })?))
        }
    })
}
