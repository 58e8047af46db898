//! `keygate keys show`: one key in detail; and how a key's parts read in lists and details.

use chrono::{DateTime, Utc};
use keygate_api::{ApiKey, KeyLimits, Scope};
use serde_json::Value;

use super::{resolve_key, Context};
use crate::error::CliError;
use crate::output::{self, limit_parts, Output, Tone};

pub async fn show(ctx: &Context, reference: &str) -> Result<(), CliError> {
    let found = resolve_key(ctx, reference).await?;
    if ctx.out.json {
        ctx.out.print_json(&found.json);
    } else {
        print_key(&ctx.out, &found.key);
    }
    Ok(())
}

pub fn print_key(out: &Output, key: &ApiKey) {
    let row = |label: &str, value: String| {
        println!("{:<13}{value}", out.paint(Tone::Dim, label));
    };
    row("ID", key.id.clone());
    row("Name", out.paint(Tone::Bold, &key.name));
    row("Key", key.display.clone());
    row("Status", status_text(out, key));
    row("Environment", key.environment.to_string());
    if let Some(d) = &key.description {
        row("Description", d.clone());
    }
    row("Scope", scope_text(&key.scope));
    let permissions = if key.permissions.is_empty() {
        "none".into()
    } else {
        key.permissions.join(", ")
    };
    row("Permissions", permissions);
    row("Limits", limits_text(&key.limits, key.legacy));
    if let Some(identity) = &key.identity_id {
        row("Identity", identity.clone());
    }
    row("Expires", time_text(key.expires_at, "never"));
    row("Last used", time_text(key.last_used_at, "never"));
    row(
        "Created",
        format!(
            "{} by {}",
            time_text(Some(key.created_at), ""),
            key.created_by
        ),
    );
    if key.legacy {
        row("Legacy", "imported; carries no limits".into());
    }
    if !key.metadata.is_empty() {
        row("Metadata", Value::Object(key.metadata.clone()).to_string());
    }
}

/// The status, with an active key past its expiry shown as `expired`.
pub fn status_text(out: &Output, key: &ApiKey) -> String {
    let status = key.status.as_str();
    let expired = key.is_expired(Utc::now());
    match status {
        "active" if expired => out.paint(Tone::Warn, "expired"),
        "active" => out.paint(Tone::Good, status),
        "disabled" => out.paint(Tone::Warn, status),
        _ => out.paint(Tone::Bad, status),
    }
}

pub fn scope_text(scope: &Scope) -> String {
    match scope {
        Scope::All => "all".into(),
        Scope::Projects(ids) => ids.join(", "),
    }
}

fn time_text(time: Option<DateTime<Utc>>, fallback: &str) -> String {
    match time {
        Some(t) => format!(
            "{} ({})",
            t.format("%Y-%m-%d %H:%M UTC"),
            output::relative_time(t, Utc::now())
        ),
        None => fallback.to_string(),
    }
}

fn limits_text(limits: &KeyLimits, legacy: bool) -> String {
    let parts = limit_parts(limits);
    if parts.is_empty() {
        if legacy {
            "none (legacy key)".into()
        } else {
            "workspace default rate limit".into()
        }
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_read_as_before() {
        let limits: KeyLimits = serde_json::from_value(json!({
            "rate_limits": [{"limit": 100, "window": "1m"}, {"limit": 5000, "window": "1d"}],
            "token_limit": {"limit": 1000, "reset": "daily"},
            "cost_limit": {"limit": "1.50", "reset": "monthly"},
            "daily_spend_cap": "5.00",
        }))
        .expect("limits");
        assert_eq!(
            limits_text(&limits, false),
            "100 requests / 1m; 5000 requests / 1d; 1000 tokens daily; $1.50 monthly; \
             $5.00 per day spend cap"
        );
        assert_eq!(
            limits_text(&KeyLimits::default(), true),
            "none (legacy key)"
        );
        assert_eq!(
            scope_text(&Scope::Projects(vec!["proj_a".into(), "proj_b".into()])),
            "proj_a, proj_b"
        );
    }
}
