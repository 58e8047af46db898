//! `keygate projects …`: the projects a key's scope can name.

use keygate_api::projects::CreateProject;
use keygate_api::{Items, Project};

use super::Context;
use crate::cli::ProjectsCommand;
use crate::client::NO_QUERY;
use crate::error::CliError;
use crate::output::relative_time;

pub async fn run(ctx: &Context, command: ProjectsCommand) -> Result<(), CliError> {
    match command {
        ProjectsCommand::Create { name } => {
            let answer = ctx
                .client
                .post_raw("/v1/projects", &CreateProject { name })
                .await?;
            let project: Project = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
            } else {
                ctx.out.done(&format!(
                    "Created project {} ({}). Scope a key to it with `keygate keys create --scope {}`.",
                    project.name, project.id, project.id,
                ));
            }
        }
        ProjectsCommand::List => {
            let answer = ctx.client.get_raw("/v1/projects", NO_QUERY).await?;
            let list: Items<Project> = ctx.client.decode(&answer)?;
            if ctx.out.json {
                ctx.out.print_json(&answer);
                return Ok(());
            }
            if list.items.is_empty() {
                println!("No projects. Create one with `keygate projects create --name NAME`.");
                return Ok(());
            }
            let now = chrono::Utc::now();
            let mut table = ctx.out.table(&["ID", "NAME", "CREATED"]);
            for p in &list.items {
                table.add_row(vec![
                    p.id.clone(),
                    p.name.clone(),
                    relative_time(p.created_at, now),
                ]);
            }
            println!("{table}");
        }
        ProjectsCommand::Show { project } => {
            let (answer, found) = if keygate_core::ids::looks_like("proj", &project) {
                let answer = ctx
                    .client
                    .get_raw(&format!("/v1/projects/{project}"), NO_QUERY)
                    .await?;
                let found: Project = ctx.client.decode(&answer)?;
                (answer, found)
            } else {
                let answer = ctx.client.get_raw("/v1/projects", NO_QUERY).await?;
                let list: Items<Project> = ctx.client.decode(&answer)?;
                let index = list
                    .items
                    .iter()
                    .position(|p| p.name == project)
                    .ok_or_else(|| {
                        CliError::failed_hint(
                            format!("no project with the id or name {project:?}"),
                            "`keygate projects list` shows them.",
                        )
                    })?;
                (answer["items"][index].clone(), list.items[index].clone())
            };
            if ctx.out.json {
                ctx.out.print_json(&answer);
            } else {
                print_project(&found);
            }
        }
    }
    Ok(())
}

fn print_project(project: &Project) {
    println!("ID       {}", project.id);
    println!("Name     {}", project.name);
    println!(
        "Created  {}",
        relative_time(project.created_at, chrono::Utc::now())
    );
}
