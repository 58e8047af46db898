//! `keygate keys …`: the key lifecycle from the terminal.
//!
//! A secret is printed only by the commands that mint one (create, regenerate, rotate) and
//! only when the user did not ask for it to go to a file; lists and details show the display
//! form. Every command that takes a key accepts its id or its (unique) name.

use std::fmt::Write as _;
use std::io::{IsTerminal, Read, Write};
use std::path::Path;

use serde_json::{json, Map, Value};

use super::Context;
use crate::cli::{
    CreateKeyArgs, Expiry, ImportArgs, KeysCommand, LimitArgs, ListKeysArgs, RegenerateArgs,
    RotateArgs, SecretDestination, UpdateKeyArgs, UsageArgs, VerifyArgs,
};
use crate::client::is_missing_route;
use crate::error::CliError;
use crate::output::{self, bar, relative_field, thousands, Output, Tone};

pub async fn run(ctx: &Context, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Create(args) => create(ctx, args).await,
        KeysCommand::List(args) => list(ctx, &args).await,
        KeysCommand::Show(r) => show(ctx, &r.key).await,
        KeysCommand::Update(args) => update(ctx, args).await,
        KeysCommand::Disable(r) => toggle(ctx, &r.key, false).await,
        KeysCommand::Enable(r) => toggle(ctx, &r.key, true).await,
        KeysCommand::Revoke(r) => revoke(ctx, &r.key, r.yes).await,
        KeysCommand::Delete(r) => delete(ctx, &r.key, r.yes).await,
        KeysCommand::Regenerate(args) => regenerate(ctx, args).await,
        KeysCommand::Rotate(args) => rotate(ctx, args).await,
        KeysCommand::Usage(args) => usage(ctx, &args).await,
        KeysCommand::Verify(args) => verify(ctx, args).await,
        KeysCommand::Import(args) => import(ctx, args).await,
    }
}

async fn create(ctx: &Context, args: CreateKeyArgs) -> Result<(), CliError> {
    check_destination(&args.destination, false)?;
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    if let Some(d) = &args.description {
        body.insert("description".into(), json!(d));
    }
    if let Some(env) = &args.environment {
        body.insert("environment".into(), json!(env));
    }
    if !args.scopes.is_empty() {
        body.insert("scope".into(), scope_json(ctx, &args.scopes).await?);
    }
    if !args.permissions.is_empty() {
        body.insert("permissions".into(), json!(args.permissions));
    }
    insert_expiry(&mut body, args.expires.as_ref());
    if !args.metadata.is_empty() {
        let metadata: Map<String, Value> = args
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        body.insert("metadata".into(), Value::Object(metadata));
    }
    if let Some(limits) = limits_json(None, &args.limits) {
        body.insert("limits".into(), limits);
    }
    let issued = ctx.client.post("/v1/keys", &Value::Object(body)).await?;
    deliver_secret(&ctx.out, &issued, &args.destination, "Created")
}

async fn list(ctx: &Context, args: &ListKeysArgs) -> Result<(), CliError> {
    let mut query: Vec<(&str, String)> = Vec::new();
    let mut push = |name, value: &Option<String>| {
        if let Some(v) = value {
            query.push((name, v.clone()));
        }
    };
    push("status", &args.status);
    push("environment", &args.environment);
    push("project", &args.project);
    push("search", &args.search);
    if let Some(limit) = args.limit {
        query.push(("limit", limit.to_string()));
    }
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    let next_cursor = loop {
        let mut page_query = query.clone();
        if let Some(c) = &cursor {
            page_query.push(("cursor", c.clone()));
        }
        let page = ctx.client.get("/v1/keys", &page_query).await?;
        if let Some(list) = page.get("items").and_then(Value::as_array) {
            items.extend(list.iter().cloned());
        }
        let next = page
            .get("next_cursor")
            .and_then(Value::as_str)
            .map(str::to_string);
        match next {
            Some(next) if args.all => cursor = Some(next),
            other => break other,
        }
    };
    if ctx.out.json {
        ctx.out
            .print_json(&json!({"items": items, "next_cursor": next_cursor}));
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
    for key in &items {
        table.add_row(vec![
            text(key, "id").to_string(),
            text(key, "name").to_string(),
            text(key, "display").to_string(),
            status_text(out, key),
            text(key, "environment").to_string(),
            relative_field(&key["last_used_at"], "never"),
            relative_field(&key["created_at"], ""),
            relative_field(&key["expires_at"], "never"),
            scope_text(&key["scope"]),
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

async fn show(ctx: &Context, reference: &str) -> Result<(), CliError> {
    let key = resolve_key(ctx, reference).await?;
    if ctx.out.json {
        ctx.out.print_json(&key);
    } else {
        print_key(&ctx.out, &key);
    }
    Ok(())
}

async fn update(ctx: &Context, args: UpdateKeyArgs) -> Result<(), CliError> {
    let key = resolve_key(ctx, &args.key).await?;
    let mut body = Map::new();
    if let Some(name) = &args.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(d) = &args.description {
        let value = if d.trim().is_empty() {
            Value::Null
        } else {
            json!(d)
        };
        body.insert("description".into(), value);
    }
    if !args.scopes.is_empty() {
        body.insert("scope".into(), scope_json(ctx, &args.scopes).await?);
    }
    if args.clear_permissions {
        body.insert("permissions".into(), json!([]));
    } else if !args.permissions.is_empty() {
        body.insert("permissions".into(), json!(args.permissions));
    }
    insert_expiry(&mut body, args.expires.as_ref());
    // The API replaces limits as a whole; start from the key's so unnamed limits survive.
    let base = if args.clear_limits {
        Some(json!({}))
    } else {
        Some(key["limits"].clone())
    };
    if let Some(limits) = limits_json(base.clone(), &args.limits) {
        body.insert("limits".into(), limits);
    } else if args.clear_limits {
        body.insert("limits".into(), json!({}));
    }
    if body.is_empty() {
        return Err(CliError::usage_hint(
            "nothing to change",
            "Give at least one of --name, --description, --scope, --permission, --expires or a limit.",
        ));
    }
    let id = text(&key, "id");
    let saved = ctx
        .client
        .patch(&format!("/v1/keys/{id}"), &Value::Object(body))
        .await?;
    if ctx.out.json {
        ctx.out.print_json(&saved);
    } else {
        ctx.out
            .done(&format!("Updated key {} ({id}).", text(&saved, "name")));
        print_key(&ctx.out, &saved);
    }
    Ok(())
}

async fn toggle(ctx: &Context, reference: &str, enable: bool) -> Result<(), CliError> {
    let key = resolve_key(ctx, reference).await?;
    let id = text(&key, "id");
    let verb = if enable { "enable" } else { "disable" };
    let saved = ctx
        .client
        .post(&format!("/v1/keys/{id}/{verb}"), &json!({}))
        .await?;
    if ctx.out.json {
        ctx.out.print_json(&saved);
    } else {
        let done = if enable { "Enabled" } else { "Disabled" };
        ctx.out
            .done(&format!("{done} key {} ({id}).", text(&saved, "name")));
    }
    Ok(())
}

async fn revoke(ctx: &Context, reference: &str, yes: bool) -> Result<(), CliError> {
    if !yes {
        super::require_terminal("revoke a key")?;
    }
    let key = resolve_key(ctx, reference).await?;
    let (id, name) = (text(&key, "id"), text(&key, "name"));
    if !yes {
        let question = format!(
            "Revoke key {name} ({id})? It stops working at once and this cannot be undone."
        );
        if !output::confirm(&question)? {
            return Err(CliError::failed("not confirmed; the key was not revoked"));
        }
    }
    let saved = ctx
        .client
        .post(&format!("/v1/keys/{id}/revoke"), &json!({}))
        .await?;
    if ctx.out.json {
        ctx.out.print_json(&saved);
    } else {
        ctx.out.done(&format!("Revoked key {name} ({id})."));
    }
    Ok(())
}

async fn delete(ctx: &Context, reference: &str, yes: bool) -> Result<(), CliError> {
    if !yes {
        super::require_terminal("delete a key")?;
    }
    let key = resolve_key(ctx, reference).await?;
    let (id, name) = (text(&key, "id"), text(&key, "name"));
    if !yes {
        ctx.out.warn(&format!(
            "This deletes key {name} ({id}) permanently: it stops working and its record is gone."
        ));
        let typed = output::prompt(&format!("Type the key's name ({name}) to confirm: "))?;
        if typed != name {
            return Err(CliError::failed(
                "the name did not match; the key was not deleted",
            ));
        }
    }
    ctx.client.delete(&format!("/v1/keys/{id}")).await?;
    if ctx.out.json {
        ctx.out
            .print_json(&json!({"deleted": true, "id": id, "name": name}));
    } else {
        ctx.out.done(&format!("Deleted key {name} ({id})."));
    }
    Ok(())
}

async fn regenerate(ctx: &Context, args: RegenerateArgs) -> Result<(), CliError> {
    check_destination(&args.destination, true)?;
    if !args.yes {
        super::require_terminal("regenerate a key")?;
    }
    let key = resolve_key(ctx, &args.key).await?;
    let (id, name) = (text(&key, "id"), text(&key, "name"));
    if !args.yes {
        let question = format!(
            "Give key {name} ({id}) a new secret? The current secret stops working at once \
             (use `keygate keys rotate` for a grace period)."
        );
        if !output::confirm(&question)? {
            return Err(CliError::failed("not confirmed; the key was not changed"));
        }
    }
    let issued = ctx
        .client
        .post(&format!("/v1/keys/{id}/regenerate"), &json!({}))
        .await?;
    deliver_secret(&ctx.out, &issued, &args.destination, "Regenerated")
}

async fn rotate(ctx: &Context, args: RotateArgs) -> Result<(), CliError> {
    check_destination(&args.destination, true)?;
    let key = resolve_key(ctx, &args.key).await?;
    let id = text(&key, "id");
    let issued = ctx
        .client
        .post(
            &format!("/v1/keys/{id}/rotate"),
            &json!({"grace": args.grace}),
        )
        .await?;
    deliver_secret(&ctx.out, &issued, &args.destination, "Rotated")?;
    if !ctx.out.json {
        if let Some(t) = output::parse_time(&issued["old_secret_expires_at"]) {
            println!(
                "  The old secret keeps working until {} ({}).",
                t.format("%Y-%m-%d %H:%M UTC"),
                output::relative_time(t, chrono::Utc::now())
            );
        }
    }
    Ok(())
}

async fn usage(ctx: &Context, args: &UsageArgs) -> Result<(), CliError> {
    let key = resolve_key(ctx, &args.key).await?;
    let id = text(&key, "id");
    let report = ctx
        .client
        .get(
            &format!("/v1/keys/{id}/usage"),
            &[("days", args.days.to_string())],
        )
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
    if ctx.out.json {
        ctx.out.print_json(&report);
        return Ok(());
    }
    print!("{}", render_usage(&ctx.out, &key, &report, args.days));
    Ok(())
}

async fn verify(ctx: &Context, args: VerifyArgs) -> Result<(), CliError> {
    let key = read_secret_arg(&args.key)?;
    let mut body = json!({"key": key});
    if let Some(p) = &args.project {
        body["project"] = json!(p);
    }
    if !args.permissions.is_empty() {
        body["permissions"] = json!(args.permissions);
    }
    let answer = ctx.client.post("/v1/keys/verify", &body).await?;
    let valid = answer["valid"].as_bool().unwrap_or(false);
    if ctx.out.json {
        ctx.out.print_json(&answer);
    } else if valid {
        let k = &answer["key"];
        ctx.out.done(&format!(
            "valid — key {} ({}), {}",
            text(k, "name"),
            text(k, "id"),
            text(k, "environment")
        ));
    } else {
        println!(
            "{} {} (HTTP {}): {}",
            ctx.out.paint(Tone::Bad, "✗ invalid:"),
            text(&answer, "code"),
            answer["status"].as_u64().unwrap_or(0),
            text(&answer, "message"),
        );
        if let Some(secs) = answer["retry_after"].as_u64() {
            println!("  Retry in {secs} seconds.");
        }
    }
    if valid {
        Ok(())
    } else {
        Err(CliError::Reported(1))
    }
}

async fn import(ctx: &Context, args: ImportArgs) -> Result<(), CliError> {
    let mut body = Map::new();
    body.insert("name".into(), json!(args.name));
    if let Some(k) = &args.key {
        body.insert("key".into(), json!(read_secret_arg(k)?));
    }
    if let Some(h) = &args.sha256 {
        body.insert("sha256".into(), json!(h));
    }
    if let Some(d) = &args.description {
        body.insert("description".into(), json!(d));
    }
    if let Some(env) = &args.environment {
        body.insert("environment".into(), json!(env));
    }
    if !args.scopes.is_empty() {
        body.insert("scope".into(), scope_json(ctx, &args.scopes).await?);
    }
    if !args.permissions.is_empty() {
        body.insert("permissions".into(), json!(args.permissions));
    }
    insert_expiry(&mut body, args.expires.as_ref());
    let key = ctx
        .client
        .post("/v1/keys/import", &Value::Object(body))
        .await?;
    if ctx.out.json {
        ctx.out.print_json(&key);
    } else {
        ctx.out.done(&format!(
            "Imported legacy key {} ({}) as {}.",
            text(&key, "name"),
            text(&key, "id"),
            text(&key, "display")
        ));
        println!("  It authenticates as before but carries no limits; replace it with a new key when you can.");
    }
    Ok(())
}

/// A key by id, or by exact name when the argument is not an id (or no key has that id).
async fn resolve_key(ctx: &Context, reference: &str) -> Result<Value, CliError> {
    if keygate_core::ids::looks_like("key", reference) {
        match ctx.client.get(&format!("/v1/keys/{reference}"), &[]).await {
            Ok(key) => return Ok(key),
            Err(CliError::Api(f)) if f.status == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let mut cursor: Option<String> = None;
    loop {
        let mut query = vec![("search", reference.to_string()), ("limit", "500".into())];
        if let Some(c) = &cursor {
            query.push(("cursor", c.clone()));
        }
        let page = ctx.client.get("/v1/keys", &query).await?;
        let found = page["items"]
            .as_array()
            .and_then(|items| items.iter().find(|k| k["name"] == reference));
        if let Some(key) = found {
            return Ok(key.clone());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    Err(CliError::failed_hint(
        format!("no key with the id or name {reference:?}"),
        "`keygate keys list` shows your keys.",
    ))
}

/// `"all"`, or project ids; names are looked up so people can type what they see.
async fn scope_json(ctx: &Context, projects: &[String]) -> Result<Value, CliError> {
    if projects.iter().any(|p| p == "all") {
        return Ok(json!("all"));
    }
    let mut listed: Option<Value> = None;
    let mut ids = Vec::new();
    for p in projects {
        if keygate_core::ids::looks_like("proj", p) {
            ids.push(p.clone());
            continue;
        }
        if listed.is_none() {
            listed = Some(ctx.client.get("/v1/projects", &[]).await?);
        }
        let id = listed
            .as_ref()
            .and_then(|l| l["items"].as_array())
            .and_then(|items| items.iter().find(|x| x["name"] == p.as_str()))
            .and_then(|x| x["id"].as_str())
            .ok_or_else(|| {
                CliError::usage_hint(
                    format!("no project with the id or name {p:?}"),
                    "`keygate projects list` shows them; `keygate projects create --name …` adds one.",
                )
            })?;
        ids.push(id.to_string());
    }
    Ok(json!(ids))
}

fn insert_expiry(body: &mut Map<String, Value>, expiry: Option<&Expiry>) {
    match expiry {
        Some(Expiry::In(text)) => {
            body.insert("expires_in".into(), json!(text));
        }
        Some(Expiry::At(at)) => {
            body.insert("expires_at".into(), json!(at));
        }
        None => {}
    }
}

/// The `limits` object for the flags given on top of `base`, or `None` when no limit flag
/// was given.
fn limits_json(base: Option<Value>, args: &LimitArgs) -> Option<Value> {
    let any = args.rpm.is_some()
        || !args.rate_limits.is_empty()
        || args.token_limit.is_some()
        || args.cost_limit.is_some()
        || args.spend_cap.is_some();
    if !any {
        return None;
    }
    let mut limits = match base {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    if args.rpm.is_some() || !args.rate_limits.is_empty() {
        let mut windows: Vec<Value> = Vec::new();
        if let Some(rpm) = args.rpm {
            windows.push(json!({"limit": rpm, "window": "1m"}));
        }
        for (limit, window) in &args.rate_limits {
            windows.push(json!({"limit": limit, "window": window}));
        }
        limits.insert("rate_limits".into(), Value::Array(windows));
    }
    let reset = args.reset.as_str();
    if let Some(n) = args.token_limit {
        limits.insert("token_limit".into(), json!({"limit": n, "reset": reset}));
    }
    if let Some(usd) = &args.cost_limit {
        limits.insert("cost_limit".into(), json!({"limit": usd, "reset": reset}));
    }
    if let Some(usd) = &args.spend_cap {
        limits.insert("daily_spend_cap".into(), json!(usd));
    }
    Some(Value::Object(limits))
}

/// Refuses before anything is created if the secret could not be written where asked:
/// a key whose only copy of the secret was lost is worse than no key.
fn check_destination(dest: &SecretDestination, replace: bool) -> Result<(), CliError> {
    let Some(path) = &dest.env_file else {
        return Ok(());
    };
    let var = &dest.env_var;
    let valid_name = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid_name {
        return Err(CliError::usage(format!(
            "--env-var {var:?} is not a variable name (letters, digits and _)"
        )));
    }
    if path.is_dir() {
        return Err(CliError::usage(format!(
            "--env-file {} is a directory",
            path.display()
        )));
    }
    if !replace {
        let existing = std::fs::read_to_string(path).unwrap_or_default();
        if find_assignment(&existing, var).is_some() {
            return Err(CliError::usage_hint(
                format!("{} already sets {var}", path.display()),
                "Choose another name with --env-var, or remove that line first.",
            ));
        }
    }
    Ok(())
}

fn find_assignment(content: &str, var: &str) -> Option<usize> {
    content.lines().position(|line| {
        let line = line.trim_start();
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        line.strip_prefix(var)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

/// Appends `VAR=secret` (or replaces the line that sets VAR) in a file only the owner can read.
fn write_env_file(path: &Path, var: &str, secret: &str) -> std::io::Result<bool> {
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let line = format!("{var}={secret}");
    let (content, replaced) = match find_assignment(&existing, var) {
        Some(index) => {
            let mut lines: Vec<&str> = existing.lines().collect();
            lines[index] = &line;
            (format!("{}\n", lines.join("\n")), true)
        }
        None if existing.is_empty() || existing.ends_with('\n') => {
            (format!("{existing}{line}\n"), false)
        }
        None => (format!("{existing}\n{line}\n"), false),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        // An existing file keeps its mode on open; tighten it before the secret goes in.
        if path.exists() {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let mut file = options.open(path)?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(replaced)
}

/// Shows the new secret once, or writes it to the file the user named and does not show it.
fn deliver_secret(
    out: &Output,
    issued: &Value,
    dest: &SecretDestination,
    verb: &str,
) -> Result<(), CliError> {
    let secret = issued["secret"].as_str().unwrap_or_default();
    let (id, name) = (text(issued, "id"), text(issued, "name"));
    if let Some(path) = &dest.env_file {
        let written = write_env_file(path, &dest.env_var, secret);
        let replaced = match written {
            Ok(replaced) => replaced,
            Err(e) => {
                // The key exists now; losing its only copy of the secret would be worse than
                // showing it.
                out.warn(&format!(
                    "Could not write {}: {e}. Here is the secret instead; store it now, it \
                     will not be shown again:",
                    path.display()
                ));
                println!("{secret}");
                return Err(CliError::Reported(1));
            }
        };
        if out.json {
            let mut shown = issued.clone();
            if let Some(map) = shown.as_object_mut() {
                map.remove("secret");
                map.insert("env_file".into(), json!(path));
                map.insert("env_var".into(), json!(dest.env_var));
            }
            out.print_json(&shown);
        } else {
            out.done(&format!("{verb} key {name} ({id})."));
            let how = if replaced { "replaced" } else { "wrote" };
            println!(
                "  The secret was {how} as {} in {} (mode 0600); it is not shown here.",
                dest.env_var,
                path.display()
            );
        }
        return Ok(());
    }
    if out.json {
        out.print_json(issued);
        return Ok(());
    }
    out.done(&format!(
        "{verb} key {} ({id}), environment {}.",
        out.paint(Tone::Bold, name),
        text(issued, "environment")
    ));
    println!();
    println!("    {}", out.paint(Tone::Bold, secret));
    println!();
    println!(
        "{} Copy this secret now: it will not be shown again. Keygate stores only its hash.",
        out.paint(Tone::Warn, "!")
    );
    Ok(())
}

fn read_secret_arg(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_string());
    }
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password("Key (input hidden): ")
            .map(|s| s.trim().to_string())
            .map_err(|e| CliError::failed(format!("cannot read the key: {e}")));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    Ok(text.trim().to_string())
}

fn print_key(out: &Output, key: &Value) {
    let row = |label: &str, value: String| {
        println!("{:<13}{value}", out.paint(Tone::Dim, label));
    };
    row("ID", text(key, "id").into());
    row("Name", out.paint(Tone::Bold, text(key, "name")));
    row("Key", text(key, "display").into());
    row("Status", status_text(out, key));
    row("Environment", text(key, "environment").into());
    if let Some(d) = key["description"].as_str() {
        row("Description", d.into());
    }
    row("Scope", scope_text(&key["scope"]));
    let permissions = key["permissions"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "none".into());
    row("Permissions", permissions);
    row("Limits", limits_text(&key["limits"], key["legacy"] == true));
    row("Expires", time_text(&key["expires_at"], "never"));
    row("Last used", time_text(&key["last_used_at"], "never"));
    row(
        "Created",
        format!(
            "{} by {}",
            time_text(&key["created_at"], ""),
            text(key, "created_by")
        ),
    );
    if key["legacy"] == true {
        row("Legacy", "imported; carries no limits".into());
    }
    if let Some(m) = key["metadata"].as_object().filter(|m| !m.is_empty()) {
        row("Metadata", Value::Object(m.clone()).to_string());
    }
}

/// The usage report as text: a bar per day, then by operation and by project.
fn render_usage(out: &Output, key: &Value, report: &Value, days: u32) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "Usage of key {} ({}), last {days} day{}",
        out.paint(Tone::Bold, text(key, "name")),
        text(key, "id"),
        if days == 1 { "" } else { "s" }
    );
    let _ = writeln!(s);
    let rows = report["days"].as_array().cloned().unwrap_or_default();
    let max = rows
        .iter()
        .filter_map(|d| d["requests"].as_u64())
        .max()
        .unwrap_or(0);
    if rows.is_empty() || max == 0 {
        let _ = writeln!(s, "  No requests in this period.");
    }
    if max > 0 {
        for day in &rows {
            let requests = day["requests"].as_u64().unwrap_or(0);
            let mut line = format!(
                "  {}  {:<30} {:>9} req",
                text(day, "date"),
                out.paint(Tone::Good, &bar(requests, max, 30)),
                thousands(requests)
            );
            if let Some(tokens) = day["tokens"].as_u64().filter(|t| *t > 0) {
                line.push_str(&format!("  {:>11} tok", thousands(tokens)));
            }
            if let Some(cost) = money(&day["cost"]).filter(|c| c != "0.00") {
                line.push_str(&format!("  ${cost}"));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    for (title, list, field) in [
        ("By operation", &report["by_operation"], "operation"),
        ("By project", &report["by_project"], "project"),
    ] {
        let Some(items) = list.as_array().filter(|l| !l.is_empty()) else {
            continue;
        };
        let _ = writeln!(s);
        let _ = writeln!(s, "{}", out.paint(Tone::Bold, title));
        let max = items
            .iter()
            .filter_map(|i| i["requests"].as_u64())
            .max()
            .unwrap_or(0);
        let width = items
            .iter()
            .map(|i| label(&i[field]).chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for item in items {
            let requests = item["requests"].as_u64().unwrap_or(0);
            let _ = writeln!(
                s,
                "  {:<width$}  {:<20} {:>9}",
                label(&item[field]),
                out.paint(Tone::Good, &bar(requests, max, 20)),
                thousands(requests)
            );
        }
    }
    for (title, value) in [
        ("Totals", &report["totals"]),
        ("Daily average", &report["daily_average"]),
    ] {
        if let Some(map) = value.as_object().filter(|m| !m.is_empty()) {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) if k == "cost" => format!("{k} ${s}"),
                    Value::String(s) => format!("{k} {s}"),
                    Value::Number(n) => match n.as_u64() {
                        Some(n) => format!("{k} {}", thousands(n)),
                        None => format!("{k} {n}"),
                    },
                    other => format!("{k} {other}"),
                })
                .collect();
            let _ = writeln!(s);
            let _ = writeln!(s, "{}  {}", out.paint(Tone::Bold, title), parts.join(" · "));
        }
    }
    s
}

fn label(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "(none)".into(),
        other => other.to_string(),
    }
}

fn money(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field].as_str().unwrap_or("")
}

fn status_text(out: &Output, key: &Value) -> String {
    let status = text(key, "status");
    let expired = output::parse_time(&key["expires_at"]).is_some_and(|t| t <= chrono::Utc::now());
    match status {
        "active" if expired => out.paint(Tone::Warn, "expired"),
        "active" => out.paint(Tone::Good, status),
        "disabled" => out.paint(Tone::Warn, status),
        _ => out.paint(Tone::Bad, status),
    }
}

fn scope_text(scope: &Value) -> String {
    match scope {
        Value::Array(ids) => ids
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        Value::String(s) => s.clone(),
        _ => "all".into(),
    }
}

fn time_text(value: &Value, fallback: &str) -> String {
    match output::parse_time(value) {
        Some(t) => format!(
            "{} ({})",
            t.format("%Y-%m-%d %H:%M UTC"),
            output::relative_time(t, chrono::Utc::now())
        ),
        None => fallback.to_string(),
    }
}

fn limits_text(limits: &Value, legacy: bool) -> String {
    let mut parts = Vec::new();
    if let Some(windows) = limits["rate_limits"].as_array() {
        for w in windows {
            parts.push(format!("{} requests / {}", w["limit"], label(&w["window"])));
        }
    }
    if let Some(t) = limits.get("token_limit").filter(|t| !t.is_null()) {
        parts.push(format!("{} tokens {}", t["limit"], label(&t["reset"])));
    }
    if let Some(c) = limits.get("cost_limit").filter(|c| !c.is_null()) {
        parts.push(format!(
            "${} {}",
            money(&c["limit"]).unwrap_or_default(),
            label(&c["reset"])
        ));
    }
    if let Some(cap) = limits.get("daily_spend_cap").and_then(money) {
        parts.push(format!("${cap} per day spend cap"));
    }
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
    use crate::cli::ResetArg;

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

    #[test]
    fn limits_map_to_the_api_shape() {
        assert_eq!(limits_json(None, &limit_args()), None);
        let mut args = limit_args();
        args.rpm = Some(60);
        args.token_limit = Some(1000);
        args.cost_limit = Some("1.50".into());
        args.spend_cap = Some("5.00".into());
        args.reset = ResetArg::Daily;
        assert_eq!(
            limits_json(None, &args),
            Some(json!({
                "rate_limits": [{"limit": 60, "window": "1m"}],
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
        let base = json!({"rate_limits": [], "daily_spend_cap": "2.00"});
        assert_eq!(
            limits_json(Some(base), &args),
            Some(
                json!({"rate_limits": [{"limit": 10, "window": "1m"}], "daily_spend_cap": "2.00"})
            )
        );
    }

    #[test]
    fn usage_renders_bars_per_day_operation_and_project() {
        let report = json!({
            "days": [
                {"date": "2026-11-20", "requests": 100, "tokens": 5000, "cost": "0.10"},
                {"date": "2026-11-21", "requests": 50, "tokens": 0, "cost": "0.00"},
            ],
            "by_operation": [{"operation": "POST /v1/chat", "requests": 150}],
            "by_project": [{"project": "proj_x", "requests": 150}],
            "totals": {"requests": 150, "tokens": 5000, "cost": "0.10"},
            "daily_average": {"requests": 75},
        });
        let key = json!({"id": "key_a", "name": "svc"});
        let text = render_usage(&Output::plain(), &key, &report, 2);
        assert!(text.contains("last 2 days"), "{text}");
        assert!(
            text.contains("2026-11-20  ██████████████████████████████"),
            "{text}"
        );
        assert!(text.contains("5,000 tok  $0.10"), "{text}");
        assert!(text.contains("POST /v1/chat"), "{text}");
        assert!(text.contains("proj_x"), "{text}");
        assert!(text.contains("cost $0.10"), "{text}");
    }

    #[test]
    fn env_file_assignments_are_found() {
        assert_eq!(
            find_assignment("A=1\nKEYGATE_KEY=x\n", "KEYGATE_KEY"),
            Some(1)
        );
        assert_eq!(
            find_assignment("export KEYGATE_KEY = x", "KEYGATE_KEY"),
            Some(0)
        );
        assert_eq!(find_assignment("KEYGATE_KEY_OLD=x", "KEYGATE_KEY"), None);
    }
}
