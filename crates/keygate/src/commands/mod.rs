//! One module per command; `run` dispatches and turns errors into exit codes.
//!
//! The server commands (`serve`, `bootstrap`) fail with `anyhow` and exit 1. The client
//! commands fail with [`CliError`], whose exit code tells a script what kind of failure it
//! was (see `crate::error`).

mod audit;
mod bootstrap;
mod flags;
mod identities;
mod keys;
mod login;
mod members;
mod projects;
mod scan;
mod serve;
mod webhooks;
mod workspace;

use std::process::ExitCode;

use crate::cli::{Cli, ClientArgs, Command};
use crate::client::Client;
use crate::config;
use crate::error::CliError;
use crate::output::Output;

pub async fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Serve(args) => serve::run(args).await,
        Command::Bootstrap(args) => bootstrap::run(args).await,
        Command::Scan(args) => return scan::run(args),
        client_command => return run_client(client_command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run_client(command: Command) -> ExitCode {
    let json = match &command {
        Command::Login(a) => a.client.json,
        Command::Logout(a) => a.json,
        Command::Whoami(a) => a.json,
        Command::Keys(a) => a.client.json,
        Command::Projects(a) => a.client.json,
        Command::Identities(a) => a.client.json,
        Command::Members(a) => a.client.json,
        Command::Audit(a) => a.client.json,
        Command::Workspace(a) => a.client.json,
        Command::Webhooks(a) => a.client.json,
        Command::Serve(_) | Command::Bootstrap(_) | Command::Scan(_) => false,
    };
    let out = Output::new(json);
    let result = match command {
        Command::Login(args) => login::login(&out, args).await,
        Command::Logout(_) => login::logout(&out),
        Command::Whoami(args) => login::whoami(&out, &args).await,
        Command::Keys(args) => match Context::new(out, &args.client) {
            Ok(ctx) => keys::run(&ctx, args.command).await,
            Err(e) => Err(e),
        },
        Command::Projects(args) => match Context::new(out, &args.client) {
            Ok(ctx) => projects::run(&ctx, args.command).await,
            Err(e) => Err(e),
        },
        Command::Identities(args) => match Context::new(out, &args.client) {
            Ok(ctx) => identities::run(&ctx, args.command).await,
            Err(e) => Err(e),
        },
        Command::Members(args) => match Context::new(out, &args.client) {
            Ok(ctx) => members::run(&ctx, args.command).await,
            Err(e) => Err(e),
        },
        Command::Audit(args) => match Context::new(out, &args.client) {
            Ok(ctx) => audit::run(&ctx, &args).await,
            Err(e) => Err(e),
        },
        Command::Workspace(args) => match Context::new(out, &args.client) {
            Ok(ctx) => workspace::run(&ctx, args.command).await,
            Err(e) => Err(e),
        },
        Command::Webhooks(args) => match Context::new(out, &args.client) {
            Ok(ctx) => webhooks::run(&ctx, args.command).await,
            Err(e) => Err(e),
        },
        Command::Serve(_) | Command::Bootstrap(_) | Command::Scan(_) => Ok(()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            out.error(&e);
            e.exit_code()
        }
    }
}

/// What every client command needs: a client for the resolved server and how to print.
pub struct Context {
    pub client: Client,
    pub out: Output,
}

impl Context {
    fn new(out: Output, args: &ClientArgs) -> Result<Self, CliError> {
        let credentials = config::resolve(args.url.as_deref(), args.api_key.as_deref())?;
        Ok(Context {
            client: Client::new(&credentials)?,
            out,
        })
    }
}

/// Questions need a terminal. Without one, a destructive command must be told `--yes`
/// explicitly, so a script never hangs on a prompt or destroys something by accident.
pub fn require_terminal(what: &str) -> Result<(), CliError> {
    if crate::output::interactive() {
        return Ok(());
    }
    Err(CliError::usage_hint(
        format!("refusing to {what} without confirmation: there is no terminal to ask on"),
        "Pass --yes to confirm from a script.",
    ))
}
