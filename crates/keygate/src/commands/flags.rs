//! From flags to the fields of the contract's request bodies: scope, identity, expiry,
//! environment and limits. Shared by the commands for keys and identities.

use keygate_api::identities::IdentityPage;
use keygate_api::{
    CostLimit, Items, KeyLimits, Micros, RateWindow, ResetPeriod, Scope, TokenLimit,
};
use keygate_api::{Identity, Project};
use keygate_core::limits::WindowLength;
use keygate_core::EnvTag;

use super::Context;
use crate::cli::{Expiry, LimitArgs};
use crate::client::NO_QUERY;
use crate::error::CliError;

/// `"all"`, or project ids; names are looked up so people can type what they see.
pub async fn scope(ctx: &Context, projects: &[String]) -> Result<Scope, CliError> {
    if projects.iter().any(|p| p == "all") {
        return Ok(Scope::All);
    }
    let mut listed: Option<Items<Project>> = None;
    let mut ids = Vec::new();
    for p in projects {
        if keygate_core::ids::looks_like("proj", p) {
            ids.push(p.clone());
            continue;
        }
        if listed.is_none() {
            listed = Some(ctx.client.get("/v1/projects", NO_QUERY).await?);
        }
        let id = listed
            .as_ref()
            .and_then(|l| l.items.iter().find(|x| x.name == *p))
            .map(|x| x.id.clone())
            .ok_or_else(|| {
                CliError::usage_hint(
                    format!("no project with the id or name {p:?}"),
                    "`keygate projects list` shows them; `keygate projects create --name …` adds one.",
                )
            })?;
        ids.push(id);
    }
    Ok(Scope::Projects(ids))
}

/// An identity given as its id (`idt_…`) or its external id, as the identity's id. An
/// external id that looks like an id is tried as an id first.
pub async fn identity(ctx: &Context, given: &str) -> Result<Identity, CliError> {
    if keygate_core::ids::looks_like("idt", given) {
        if let Ok(found) = ctx
            .client
            .get::<_, Identity>(&format!("/v1/identities/{given}"), NO_QUERY)
            .await
        {
            return Ok(found);
        }
    }
    let page: IdentityPage = ctx
        .client
        .get("/v1/identities", &[("external_id", given)])
        .await?;
    page.items.into_iter().next().ok_or_else(|| {
        CliError::usage_hint(
            format!("no identity with the id or external id {given:?}"),
            "`keygate identities list` shows them; `keygate identities create --external-id …` adds one.",
        )
    })
}

/// `--expires` as `(expires_in, expires_at)`.
pub fn expiry(expiry: Option<&Expiry>) -> (Option<String>, Option<String>) {
    match expiry {
        Some(Expiry::In(text)) => (Some(text.clone()), None),
        Some(Expiry::At(at)) => (None, Some(at.clone())),
        None => (None, None),
    }
}

/// `--environment`, as the tag in the key.
pub fn environment(env: Option<&String>) -> Result<Option<EnvTag>, CliError> {
    env.map(|env| {
        EnvTag::parse(env).map_err(|e| CliError::usage(format!("--environment {env:?}: {e}")))
    })
    .transpose()
}

/// The limits for the flags given on top of `base`, or `None` when no limit flag was given.
pub fn limits(base: KeyLimits, args: &LimitArgs) -> Result<Option<KeyLimits>, CliError> {
    let any = args.rpm.is_some()
        || !args.rate_limits.is_empty()
        || args.token_limit.is_some()
        || args.cost_limit.is_some()
        || args.spend_cap.is_some();
    if !any {
        return Ok(None);
    }
    let mut limits = base;
    if args.rpm.is_some() || !args.rate_limits.is_empty() {
        let mut windows = Vec::new();
        if let Some(rpm) = args.rpm {
            windows.push(RateWindow {
                limit: rpm,
                window: WindowLength(60),
            });
        }
        for (limit, window) in &args.rate_limits {
            windows.push(RateWindow {
                limit: *limit,
                window: window_length(*limit, window)?,
            });
        }
        limits.rate_limits = windows;
    }
    let reset = ResetPeriod::from(args.reset);
    if let Some(limit) = args.token_limit {
        limits.token_limit = Some(TokenLimit { limit, reset });
    }
    if let Some(usd) = &args.cost_limit {
        let limit = dollars("--cost-limit", usd)?;
        limits.cost_limit = Some(CostLimit { limit, reset });
    }
    if let Some(usd) = &args.spend_cap {
        limits.daily_spend_cap = Some(dollars("--spend-cap", usd)?);
    }
    Ok(Some(limits))
}

/// A window as the API reads it (1 second to 31 days).
fn window_length(limit: u64, window: &str) -> Result<WindowLength, CliError> {
    serde_json::from_value(window.into())
        .map_err(|e| CliError::usage(format!("--rate-limit {limit}/{window}: {e}")))
}

pub fn dollars(flag: &str, usd: &str) -> Result<Micros, CliError> {
    Micros::parse_dollars(usd).map_err(|e| CliError::usage(format!("{flag} {usd:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ResetArg;
    use serde_json::json;

    fn limit_args() -> LimitArgs {
        LimitArgs {
            rpm: None,
            rate_limits: vec![],
            token_limit: None,
            cost_limit: None,
            reset: ResetArg::Monthly,
            spend_cap: None,
        }
    }

    fn wire(limits: Option<KeyLimits>) -> Option<serde_json::Value> {
        limits.map(|l| serde_json::to_value(l).expect("serialise"))
    }

    #[test]
    fn limits_map_to_the_api_shape() {
        assert_eq!(
            limits(KeyLimits::default(), &limit_args()).expect("limits"),
            None
        );
        let mut args = limit_args();
        args.rpm = Some(60);
        args.rate_limits = vec![(1000, "1h".into())];
        args.token_limit = Some(1000);
        args.cost_limit = Some("1.50".into());
        args.spend_cap = Some("5.00".into());
        args.reset = ResetArg::Daily;
        assert_eq!(
            wire(limits(KeyLimits::default(), &args).expect("limits")),
            Some(json!({
                "rate_limits": [{"limit": 60, "window": "1m"}, {"limit": 1000, "window": "1h"}],
                "token_limit": {"limit": 1000, "reset": "daily"},
                "cost_limit": {"limit": "1.50", "reset": "daily"},
                "daily_spend_cap": "5.00",
            }))
        );
    }

    #[test]
    fn update_keeps_limits_it_was_not_told_about() {
        let mut args = limit_args();
        args.rpm = Some(10);
        let base: KeyLimits =
            serde_json::from_value(json!({"rate_limits": [], "daily_spend_cap": "2.00"}))
                .expect("limits");
        assert_eq!(
            wire(limits(base, &args).expect("limits")),
            Some(
                json!({"rate_limits": [{"limit": 10, "window": "1m"}], "daily_spend_cap": "2.00"})
            )
        );
    }

    #[test]
    fn a_window_the_api_refuses_is_a_usage_error() {
        let mut args = limit_args();
        args.rate_limits = vec![(10, "1y".into())];
        let error = limits(KeyLimits::default(), &args).expect_err("more than 31 days");
        assert!(matches!(error, CliError::Usage { .. }), "{error:?}");
        assert!(environment(Some(&"LIVE".to_string())).is_err());
        assert_eq!(
            environment(Some(&"test".to_string())).expect("a tag"),
            Some(EnvTag::parse("test").expect("a tag"))
        );
    }
}
