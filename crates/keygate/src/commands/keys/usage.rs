//! `keygate keys usage`: a key's usage report, a bar per day, by operation and by project.

use std::fmt::Write as _;

use keygate_api::usage::{Counts, DailyAverage, KeyUsage, KeyUsageParams};
use keygate_api::ApiKey;
use serde_json::Number;

use super::{resolve_key, Context};
use crate::cli::UsageArgs;
use crate::client::is_missing_route;
use crate::error::CliError;
use crate::output::{bar, thousands, Output, Tone};

pub async fn usage(ctx: &Context, args: &UsageArgs) -> Result<(), CliError> {
    let key = resolve_key(ctx, &args.key).await?.key;
    let query = KeyUsageParams {
        days: Some(args.days),
    };
    let answer = ctx
        .client
        .get_raw(&format!("/v1/keys/{}/usage", key.id), &query)
        .await
        .map_err(|e| {
            if is_missing_route(&e) {
                CliError::failed_hint(
                    "this Keygate server does not support usage reports yet",
                    "Upgrade the server; `keygate keys show` still shows when the key was last used.",
                )
            } else {
                e
            }
        })?;
    let report: KeyUsage = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
        return Ok(());
    }
    print!("{}", render_usage(&ctx.out, &key, &report, args.days));
    Ok(())
}

/// The usage report as text: a bar per day, then by operation and by project, then the
/// totals and the daily average.
fn render_usage(out: &Output, key: &ApiKey, report: &KeyUsage, days: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Usage of key {} ({}), last {days} day{}",
        out.paint(Tone::Bold, &key.name),
        key.id,
        if days == 1 { "" } else { "s" }
    );
    let _ = writeln!(s);
    let max = report
        .days
        .iter()
        .map(|d| d.counts.requests)
        .max()
        .unwrap_or(0);
    if max == 0 {
        let _ = writeln!(s, "  No requests in this period.");
    } else {
        for day in &report.days {
            let counts = &day.counts;
            let mut line = format!(
                "  {}  {:<30} {:>9} req",
                day.date,
                out.paint(Tone::Good, &bar(counts.requests, max, 30)),
                thousands(counts.requests)
            );
            if counts.tokens > 0 {
                line.push_str(&format!("  {:>11} tok", thousands(counts.tokens)));
            }
            let cost = counts.cost.to_string();
            if cost != "0.00" {
                line.push_str(&format!("  ${cost}"));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    let by_operation: Vec<(String, u64)> = report
        .by_operation
        .iter()
        .map(|o| (o.operation.clone(), o.counts.requests))
        .collect();
    let by_project: Vec<(String, u64)> = report
        .by_project
        .iter()
        .map(|p| {
            let name = p.project.clone().unwrap_or_else(|| "(none)".into());
            (name, p.counts.requests)
        })
        .collect();
    for (title, items) in [("By operation", by_operation), ("By project", by_project)] {
        if items.is_empty() {
            continue;
        }
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", out.paint(Tone::Bold, title));
        let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0);
        let width = items
            .iter()
            .map(|(label, _)| label.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for (label, requests) in &items {
            let _ = writeln!(
                s,
                "  {label:<width$}  {:<20} {:>9}",
                out.paint(Tone::Good, &bar(*requests, max, 20)),
                thousands(*requests)
            );
        }
    }
    for (title, parts) in [
        ("Totals", totals(&report.totals)),
        ("Daily average", average(&report.daily_average)),
    ] {
        let _ = writeln!(s);
        let _ = writeln!(s, "{}  {}", out.paint(Tone::Bold, title), parts.join(" · "));
    }
    s
}

/// The totals, field by field in the order of their names.
fn totals(c: &Counts) -> Vec<String> {
    vec![
        format!("cost ${}", c.cost),
        format!("denied {}", thousands(c.denied)),
        format!("requests {}", thousands(c.requests)),
        format!("tokens {}", thousands(c.tokens)),
        format!("valid {}", thousands(c.valid)),
    ]
}

/// The daily average, field by field in the order of their names.
fn average(a: &DailyAverage) -> Vec<String> {
    let number = |n: &Number| n.as_u64().map_or_else(|| n.to_string(), thousands);
    vec![
        format!("cost ${}", a.cost),
        format!("requests {}", number(&a.requests)),
        format!("tokens {}", number(&a.tokens)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn usage_renders_bars_per_day_operation_and_project() {
        let counts = |requests: u64, tokens: u64, cost: &str| json!({"requests": requests, "valid": requests, "denied": 0, "tokens": tokens, "cost": cost});
        let mut report = json!({
            "key_id": "key_a", "from": "2026-11-20", "to": "2026-11-21",
            "days": [
                {"date": "2026-11-20", "requests": 100, "valid": 100, "denied": 0, "tokens": 5000, "cost": "0.10"},
                {"date": "2026-11-21", "requests": 50, "valid": 50, "denied": 0, "tokens": 0, "cost": "0.00"},
            ],
            "by_operation": [{"operation": "POST /v1/chat", "requests": 150, "valid": 150, "denied": 0, "tokens": 5000, "cost": "0.10"}],
            "by_project": [{"project": "proj_x", "requests": 150, "valid": 150, "denied": 0, "tokens": 5000, "cost": "0.10"}],
            "by_outcome": [],
            "totals": counts(150, 5000, "0.10"),
            "daily_average": {"requests": 75, "tokens": 2500.5, "cost": "0.05"},
        });
        // Fields a newer server may add are ignored.
        report["by_region"] = json!([]);
        let report: KeyUsage = serde_json::from_value(report).expect("a report");
        let key: ApiKey = serde_json::from_value(json!({
            "id": "key_a", "workspace_id": "ws_a", "name": "svc", "description": null,
            "environment": "live", "scope": "all", "permissions": [], "expires_at": null,
            "status": "active", "metadata": {}, "limits": {"rate_limits": []},
            "routing_rule_id": null, "display": "kg_live_ab12…mn34", "legacy": false,
            "created_by": "mem_a", "created_at": "2026-11-20T00:00:00Z",
            "updated_at": "2026-11-20T00:00:00Z", "last_used_at": null, "version": 1
        }))
        .expect("a key");
        let text = render_usage(&Output::plain(), &key, &report, 2);
        assert!(text.contains("last 2 days"), "{text}");
        assert!(
            text.contains("2026-11-20  ██████████████████████████████"),
            "{text}"
        );
        assert!(text.contains("5,000 tok  $0.10"), "{text}");
        assert!(!text.contains("$0.00"), "{text}");
        assert!(text.contains("POST /v1/chat"), "{text}");
        assert!(text.contains("proj_x"), "{text}");
        assert!(
            text.contains(
                "Totals  cost $0.10 · denied 0 · requests 150 · tokens 5,000 · valid 150"
            ),
            "{text}"
        );
        assert!(
            text.contains("Daily average  cost $0.05 · requests 75 · tokens 2500.5"),
            "{text}"
        );
    }
}
