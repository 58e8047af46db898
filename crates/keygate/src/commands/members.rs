//! `keygate members …`: who holds a management token. The API lets only owners in here.

use serde_json::{json, Value};

use super::Context;
use crate::cli::{MembersCommand, RoleArg};
use crate::error::CliError;
use crate::output::{self, relative_field, Tone};

pub async fn run(ctx: &Context, command: MembersCommand) -> Result<(), CliError> {
    match command {
        MembersCommand::Add { name, role } => {
            let role = match role {
                RoleArg::Owner => "owner",
                RoleArg::Editor => "editor",
                RoleArg::Viewer => "viewer",
                RoleArg::Service => "service",
            };
            let created = ctx
                .client
                .post("/v1/members", &json!({"name": name, "role": role}))
                .await?;
            if ctx.out.json {
                ctx.out.print_json(&created);
                return Ok(());
            }
            let out = &ctx.out;
            out.done(&format!(
                "Added {} ({}) as {role}.",
                field(&created, "name"),
                field(&created, "id")
            ));
            println!();
            println!("    {}", out.paint(Tone::Bold, field(&created, "token")));
            println!();
            println!(
                "{} Give this management token to them now: it will not be shown again. They \
                 can use it with `keygate login`.",
                out.paint(Tone::Warn, "!")
            );
        }
        MembersCommand::List => {
            let list = ctx.client.get("/v1/members", &[]).await?;
            if ctx.out.json {
                ctx.out.print_json(&list);
                return Ok(());
            }
            let mut table = ctx.out.table(&["ID", "NAME", "ROLE", "TOKEN", "CREATED"]);
            for m in list["items"].as_array().into_iter().flatten() {
                table.add_row(vec![
                    field(m, "id").to_string(),
                    field(m, "name").to_string(),
                    field(m, "role").to_string(),
                    field(m, "token_display").to_string(),
                    relative_field(&m["created_at"], ""),
                ]);
            }
            println!("{table}");
        }
        MembersCommand::Remove { member, yes } => {
            if !yes {
                super::require_terminal("remove a member")?;
                let question =
                    format!("Remove member {member}? Their token stops working at once.");
                if !output::confirm(&question)? {
                    return Err(CliError::failed("not confirmed; nobody was removed"));
                }
            }
            ctx.client.delete(&format!("/v1/members/{member}")).await?;
            if ctx.out.json {
                ctx.out.print_json(&json!({"deleted": true, "id": member}));
            } else {
                ctx.out.done(&format!("Removed member {member}."));
            }
        }
    }
    Ok(())
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or("")
}
