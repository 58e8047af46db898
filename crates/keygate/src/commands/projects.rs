//! `keygate projects …`: the projects a key's scope can name.

use serde_json::{json, Value};

use super::Context;
use crate::cli::ProjectsCommand;
use crate::error::CliError;
use crate::output::relative_field;

pub async fn run(ctx: &Context, command: ProjectsCommand) -> Result<(), CliError> {
    match command {
        ProjectsCommand::Create { name } => {
            let project = ctx
                .client
                .post("/v1/projects", &json!({"name": name}))
                .await?;
            if ctx.out.json {
                ctx.out.print_json(&project);
            } else {
                ctx.out.done(&format!(
                    "Created project {} ({}). Scope a key to it with `keygate keys create --scope {}`.",
                    field(&project, "name"),
                    field(&project, "id"),
                    field(&project, "id"),
                ));
            }
        }
        ProjectsCommand::List => {
            let list = ctx.client.get("/v1/projects", &[]).await?;
            if ctx.out.json {
                ctx.out.print_json(&list);
                return Ok(());
            }
            let items = list["items"].as_array().cloned().unwrap_or_default();
            if items.is_empty() {
                println!("No projects. Create one with `keygate projects create --name NAME`.");
                return Ok(());
            }
            let mut table = ctx.out.table(&["ID", "NAME", "CREATED"]);
            for p in &items {
                table.add_row(vec![
                    field(p, "id").to_string(),
                    field(p, "name").to_string(),
                    relative_field(&p["created_at"], ""),
                ]);
            }
            println!("{table}");
        }
        ProjectsCommand::Show { project } => {
            let found = if keygate_core::ids::looks_like("proj", &project) {
                ctx.client
                    .get(&format!("/v1/projects/{project}"), &[])
                    .await?
            } else {
                let list = ctx.client.get("/v1/projects", &[]).await?;
                list["items"]
                    .as_array()
                    .and_then(|items| items.iter().find(|p| p["name"] == project.as_str()))
                    .cloned()
                    .ok_or_else(|| {
                        CliError::failed_hint(
                            format!("no project with the id or name {project:?}"),
                            "`keygate projects list` shows them.",
                        )
                    })?
            };
            if ctx.out.json {
                ctx.out.print_json(&found);
            } else {
                println!("ID       {}", field(&found, "id"));
                println!("Name     {}", field(&found, "name"));
                println!("Created  {}", relative_field(&found["created_at"], ""));
            }
        }
    }
    Ok(())
}

fn field<'a>(value: &'a Value, name: &str) -> &'a str {
    value[name].as_str().unwrap_or("")
}
