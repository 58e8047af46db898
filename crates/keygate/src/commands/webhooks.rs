//! `keygate webhooks …`: the workspace's webhook endpoints and their delivery logs.

use keygate_api::webhooks::{
    CreateWebhook, CreatedWebhook, DeliveryPage, EventType, TestQueued, UpdateWebhook, Webhook,
};
use keygate_api::Items;

use super::Context;
use crate::cli::WebhooksCommand;
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::{relative_time, Tone};

pub async fn run(ctx: &Context, command: WebhooksCommand) -> Result<(), CliError> {
    match command {
        WebhooksCommand::Create {
            endpoint,
            description,
            events,
        } => {
            let event_types = events
                .iter()
                .map(|name| {
                    EventType::parse(name).ok_or_else(|| {
                        let known: Vec<&str> =
                            EventType::SUBSCRIBABLE.iter().map(|e| e.as_str()).collect();
                        CliError::usage(format!(
                            "--event {name:?} is not an event; one of: {}",
                            known.join(", ")
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let body = CreateWebhook {
                url: endpoint,
                description,
                event_types,
                enabled: None,
            };
            let answer = ctx.client.post_raw("/v1/webhooks", &body).await?;
            let created: CreatedWebhook = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
                return Ok(());
            }
            ctx.out.done(&format!(
                "Created webhook {} → {}",
                created.webhook.id, created.webhook.url
            ));
            println!("{}", created.secret);
            ctx.out.warn(&format!(
                "{} Verify deliveries with it (Standard Webhooks).",
                created.warning
            ));
        }
        WebhooksCommand::List => {
            let answer = ctx.client.get_raw("/v1/webhooks", NO_QUERY).await?;
            let list: Items<Webhook> = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
                return Ok(());
            }
            if list.items.is_empty() {
                println!("No webhooks. Add one with `keygate webhooks create --url URL`.");
                return Ok(());
            }
            let mut table = ctx.out.table(&["ID", "URL", "EVENTS", "ENABLED"]);
            for w in &list.items {
                let events = if w.event_types.is_empty() {
                    "all".to_owned()
                } else {
                    let names: Vec<&str> = w.event_types.iter().map(|e| e.as_str()).collect();
                    names.join(", ")
                };
                table.add_row(vec![
                    w.id.clone(),
                    w.url.clone(),
                    events,
                    if w.enabled { "yes" } else { "no" }.into(),
                ]);
            }
            println!("{table}");
        }
        WebhooksCommand::Disable { id } | WebhooksCommand::Enable { id }
            if !keygate_core::ids::looks_like("wh", &id) =>
        {
            return Err(not_an_id(&id));
        }
        WebhooksCommand::Disable { id } => set_enabled(ctx, &id, false).await?,
        WebhooksCommand::Enable { id } => set_enabled(ctx, &id, true).await?,
        WebhooksCommand::Delete { id } => {
            ctx.client.delete(&format!("/v1/webhooks/{id}")).await?;
            if !ctx.out.json {
                ctx.out.done(&format!("Deleted webhook {id}."));
            }
        }
        WebhooksCommand::Test { id } => {
            let answer = ctx
                .client
                .post_raw(&format!("/v1/webhooks/{id}/test"), &serde_json::json!({}))
                .await?;
            let queued: TestQueued = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
            } else {
                ctx.out.done(&format!(
                    "Queued a webhook.test event ({}); `keygate webhooks deliveries {id}` shows how it went.",
                    queued.event_id
                ));
            }
        }
        WebhooksCommand::Deliveries { id } => {
            let answer = ctx
                .client
                .get_raw(&format!("/v1/webhooks/{id}/deliveries"), NO_QUERY)
                .await?;
            let page: DeliveryPage = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
                return Ok(());
            }
            if page.items.is_empty() {
                println!("No deliveries yet.");
                return Ok(());
            }
            let now = chrono::Utc::now();
            let mut table = ctx
                .out
                .table(&["WHEN", "EVENT", "STATE", "ATTEMPTS", "LAST ANSWER"]);
            for d in &page.items {
                let state = serde_json::to_value(d.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default();
                let last = match (d.last_status, &d.last_error) {
                    (_, Some(error)) => error.clone(),
                    (Some(status), None) => status.to_string(),
                    (None, None) => "—".into(),
                };
                table.add_row(vec![
                    relative_time(d.created_at, now),
                    d.event_type.as_str().to_owned(),
                    ctx.out.paint(
                        if state == "failed" {
                            Tone::Bad
                        } else {
                            Tone::Dim
                        },
                        &state,
                    ),
                    d.attempts.to_string(),
                    last,
                ]);
            }
            println!("{table}");
        }
    }
    Ok(())
}

async fn set_enabled(ctx: &Context, id: &str, enabled: bool) -> Result<(), CliError> {
    let body = UpdateWebhook {
        enabled: Some(enabled),
        ..UpdateWebhook::default()
    };
    let answer = ctx
        .client
        .patch_raw(&format!("/v1/webhooks/{id}"), &body)
        .await?;
    let saved: Webhook = ctx.client.decode(&answer)?;
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else {
        ctx.out.done(&format!(
            "Webhook {} {}.",
            saved.id,
            if enabled { "enabled" } else { "disabled" }
        ));
    }
    Ok(())
}

fn not_an_id(id: &str) -> CliError {
    CliError::usage_hint(
        format!("{id:?} is not a webhook id"),
        "`keygate webhooks list` shows the ids (wh_…).",
    )
}
