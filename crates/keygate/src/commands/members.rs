//! `keygate members …`: who holds a management token. The API lets only owners in here.

use keygate_api::members::{CreateMember, CreatedMember};
use keygate_api::{Items, Member, Role};
use serde_json::json;

use super::Context;
use crate::cli::{MembersCommand, RoleArg};
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::{self, relative_time, Tone};

pub async fn run(ctx: &Context, command: MembersCommand) -> Result<(), CliError> {
    match command {
        MembersCommand::Add { name, role } => {
            let role = match role {
                RoleArg::Owner => Role::Owner,
                RoleArg::Editor => Role::Editor,
                RoleArg::Viewer => Role::Viewer,
                RoleArg::Service => Role::Service,
                RoleArg::Reporter => Role::Reporter,
            };
            let answer = ctx
                .client
                .post_raw("/v1/members", &CreateMember { name, role })
                .await?;
            let created: CreatedMember = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
                return Ok(());
            }
            let out = &ctx.out;
            out.done(&format!(
                "Added {} ({}) as {role}.",
                created.member.name, created.member.id
            ));
            println!();
            println!("    {}", out.paint(Tone::Bold, &created.token));
            println!();
            println!(
                "{} Give this management token to them now: it will not be shown again. They \
                 can use it with `keygate login`.",
                out.paint(Tone::Warn, "!")
            );
        }
        MembersCommand::List => {
            let answer = ctx.client.get_raw("/v1/members", NO_QUERY).await?;
            let list: Items<Member> = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
                return Ok(());
            }
            let now = chrono::Utc::now();
            let mut table = ctx.out.table(&["ID", "NAME", "ROLE", "TOKEN", "CREATED"]);
            for m in &list.items {
                table.add_row(vec![
                    m.id.clone(),
                    m.name.clone(),
                    m.role.to_string(),
                    m.token_display.clone(),
                    relative_time(m.created_at, now),
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
