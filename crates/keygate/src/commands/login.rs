//! `keygate login`, `logout` and `whoami`: the saved credentials.
//!
//! Login checks the token against the server before saving it, so a typo is caught now and
//! not at the next command. The token is read without echo, from the terminal itself.

use std::io::{IsTerminal, Read};

use keygate_api::workspace::Me;
use serde_json::json;

use crate::cli::{ClientArgs, LoginArgs};
use crate::client::{Client, NO_QUERY};
use crate::config;
use crate::error::CliError;
use crate::output::{self, Output, Tone};

pub async fn login(out: &Output, args: LoginArgs) -> Result<(), CliError> {
    let path = config_path()?;
    let current = config::resolve(None, None)?;
    let url = match &args.client.url {
        Some(url) => config::normalise_url(url)?,
        None if output::interactive() && args.client.api_key.is_none() && !args.with_token => {
            let answer = output::prompt(&format!("Keygate server URL [{}]: ", current.url))?;
            if answer.is_empty() {
                current.url.clone()
            } else {
                config::normalise_url(&answer)?
            }
        }
        None => current.url.clone(),
    };
    let token = read_token(&args)?;
    let client = Client::with_token(&url, token.clone())?;
    let answer = client.get_raw("/v1/me", NO_QUERY).await?;
    let me: Me = client.decode(&answer)?;

    let mut file = config::load(&path)?;
    file.url = Some(url.clone());
    file.api_key = Some(token);
    config::save(&path, &file)?;

    if out.json {
        out.print_json(&json!({
            "url": url,
            "config_file": path,
            "workspace": answer["workspace"],
            "member": answer["member"],
        }));
    } else {
        out.done(&format!(
            "Logged in to workspace {} ({}) at {url} as {} ({}).",
            out.paint(Tone::Bold, &me.workspace.name),
            me.workspace.id,
            me.member.name,
            me.member.role,
        ));
        println!("  Saved to {} (readable only by you).", path.display());
    }
    Ok(())
}

fn read_token(args: &LoginArgs) -> Result<String, CliError> {
    let token = if let Some(token) = &args.client.api_key {
        token.clone()
    } else if args.with_token {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Management token (input hidden): ")
            .map_err(|e| CliError::failed(format!("cannot read the token: {e}")))?
    } else {
        return Err(CliError::usage_hint(
            "login needs a terminal to ask for the token",
            "Pipe the token in with `keygate login --with-token`, or pass --api-key.",
        ));
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(CliError::usage("the token is empty"));
    }
    Ok(token)
}

pub fn logout(out: &Output) -> Result<(), CliError> {
    let path = config_path()?;
    let mut file = config::load(&path)?;
    let had_token = file.api_key.take().is_some();
    if had_token {
        if file.url.is_none() {
            std::fs::remove_file(&path)?;
        } else {
            config::save(&path, &file)?;
        }
    }
    // A token from elsewhere still wins after logout; say so rather than let it surprise.
    let remaining = config::resolve(None, None)?.api_key_source;
    if out.json {
        out.print_json(&json!({
            "logged_out": had_token,
            "config_file": path,
            "token_still_set_by": remaining.as_ref().map(ToString::to_string),
        }));
    } else {
        if had_token {
            out.done(&format!("Removed the token from {}.", path.display()));
        } else {
            println!("No token was saved in {}.", path.display());
        }
        if let Some(source) = remaining {
            out.warn(&format!(
                "A token is still set by the {source}; commands will keep using it."
            ));
        }
    }
    Ok(())
}

pub async fn whoami(out: &Output, args: &ClientArgs) -> Result<(), CliError> {
    let credentials = config::resolve(args.url.as_deref(), args.api_key.as_deref())?;
    let client = Client::new(&credentials)?;
    let answer = client.get_raw("/v1/me", NO_QUERY).await?;
    let Me { workspace, member } = client.decode(&answer)?;
    let token_display = credentials
        .api_key
        .as_deref()
        .map(keygate_core::key::display_form)
        .unwrap_or_default();
    let key_source = credentials
        .api_key_source
        .as_ref()
        .map(ToString::to_string)
        .unwrap_or_default();
    if out.json {
        out.print_json(&json!({
            "url": credentials.url,
            "url_source": credentials.url_source.to_string(),
            "token": token_display,
            "token_source": key_source,
            "workspace": answer["workspace"],
            "member": answer["member"],
        }));
        return Ok(());
    }
    println!(
        "Server     {}  {}",
        credentials.url,
        out.paint(Tone::Dim, &format!("(from {})", credentials.url_source))
    );
    println!(
        "Token      {token_display}  {}",
        out.paint(Tone::Dim, &format!("(from {key_source})"))
    );
    println!("Workspace  {} ({})", workspace.name, workspace.id);
    println!(
        "Member     {} ({}, {})",
        member.name, member.id, member.role
    );
    Ok(())
}

fn config_path() -> Result<std::path::PathBuf, CliError> {
    config::config_path().ok_or_else(|| {
        CliError::usage("cannot tell where the config file goes: set HOME or KEYGATE_CONFIG")
    })
}
