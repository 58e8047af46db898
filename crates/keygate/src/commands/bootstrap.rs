//! `keygate bootstrap`: the first workspace and owner, for scripted installs that want the
//! token on stdout (`--json`) rather than from the server's first start.

use anyhow::Context;
use keygate_core::KeyPrefix;
use keygate_server::{bootstrap::create_workspace, secret, system_clock};

use crate::cli::BootstrapArgs;

pub async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let settings = args.database.settings()?;
    let prefix = KeyPrefix::parse(&args.prefix).map_err(|e| anyhow::anyhow!("--prefix: {e}"))?;
    let store = keygate_store::connect(&settings.database_url)
        .await
        .context("opening the database")?;
    let secret = secret::load_or_create(settings.secret_hex.as_deref(), &settings.secret_file)?;
    let clock = system_clock();
    let created = create_workspace(store.as_ref(), &secret, clock.as_ref(), &args.name, prefix)
        .await
        .context("creating the workspace")?;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "workspace_id": created.workspace.id,
                "token": created.token.expose(),
            })
        );
    } else {
        println!(
            "Created workspace {} ({}).",
            created.workspace.id, args.name
        );
        println!("Owner management token (shown once, store it now):");
        println!("    {}", created.token.expose());
    }
    Ok(())
}
