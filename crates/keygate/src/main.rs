//! The `keygate` binary: the server (`serve`, `bootstrap`) and the CLI, one clap enum.
//! Library crates do the work; this crate parses arguments, reads the environment and prints.
//!
//! The decisions a reader must know:
//!
//! * **The server crate never reads the environment**: `serve` fills one `ServerSettings` from
//!   flags, then `KEYGATE_…` variables, then defaults (clap does the layering). The HMAC secret
//!   is never a flag, because `ps` shows flags.
//! * **The client commands speak the HTTP API**, never the database: they can do what the
//!   member's token may do and nothing more. The URL and token come from flags, environment,
//!   a `.env` read literally, then the config file `keygate login` writes 0600.
//! * **Exit codes are an interface** (`error.rs`): 0 ok, 1 refused, 2 bad command line, 3 the
//!   server could not be reached; server commands fail with `anyhow` and exit 1.

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
