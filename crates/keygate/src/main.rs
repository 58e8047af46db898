//! The `keygate` binary: the server (`serve`, `bootstrap`) and the CLI, one clap enum.
//! Library crates do the work; this crate parses arguments, reads the environment and prints.

mod cli;
mod client;
mod commands;
mod config;
mod error;
mod output;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    runtime.block_on(commands::run(cli))
}
