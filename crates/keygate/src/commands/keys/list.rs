//! `keygate keys list`: one page, or every page with `--all`.

use keygate_api::keys::{KeyPage, ListKeys};
use serde_json::{json, Value};

use super::show::{scope_text, status_text};
use super::Context;
use crate::cli::ListKeysArgs;
use crate::error::CliError;
use crate::output::{relative, relative_time, Tone};

pub async fn list(ctx: &Context, args: &ListKeysArgs) -> Result<(), CliError> {
    let mut query = ListKeys {
        status: args.status.clone(),
        environment: args.environment.clone(),
        project: args.project.clone(),
        search: args.search.clone(),
        identity: match &args.identity {
            Some(given) => Some(crate::commands::flags::identity(ctx, given).await?.id),
            None => None,
        },
        limit: args.limit,
        ..ListKeys::default()
    };
    // The keys as the server sent them (for `--json`), and read.
    let (mut answers, mut items) = (Vec::<Value>::new(), Vec::new());
    let next_cursor = loop {
        let answer = ctx.client.get_raw("/v1/keys", &query).await?;
        let page: KeyPage = ctx.client.decode(&answer)?;
        if let Some(list) = answer.get("items").and_then(Value::as_array) {
            answers.extend(list.iter().cloned());
        }
        items.extend(page.items);
        match page.next_cursor {
            Some(next) if args.all => query.cursor = Some(next),
            other => break other,
        }
    };
    if ctx.out.json {
        ctx.out
            .print_json(&json!({"items": answers, "next_cursor": next_cursor}));
        return Ok(());
    }
    if items.is_empty() {
        println!("No keys. Create one with `keygate keys create --name NAME`.");
        return Ok(());
    }
    let out = &ctx.out;
    let mut table = out.table(&[
        "ID",
        "NAME",
        "KEY",
        "STATUS",
        "ENV",
        "LAST USED",
        "CREATED",
        "EXPIRES",
        "SCOPE",
    ]);
    let now = chrono::Utc::now();
    for key in &items {
        table.add_row(vec![
            key.id.clone(),
            key.name.clone(),
            key.display.clone(),
            status_text(out, key),
            key.environment.to_string(),
            relative(key.last_used_at, "never"),
            relative_time(key.created_at, now),
            relative(key.expires_at, "never"),
            scope_text(&key.scope),
        ]);
    }
    println!("{table}");
    if next_cursor.is_some() {
        println!(
            "{}",
            out.paint(
                Tone::Dim,
                "More keys than shown: add --all to list every page, or narrow with --search/--status."
            )
        );
    }
    Ok(())
}
