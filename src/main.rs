//! The `authrelay` binary: parse the command line, start logging, run the
//! command, and turn any error into one line on stderr with a non-zero exit.
#![forbid(unsafe_code)]

use clap::Parser as _;

use authrelay::cli::{Cli, execute};
use authrelay::config::{LogConfig, ProcessEnv};

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let env = ProcessEnv::load()?;
    authrelay::telemetry::init(&LogConfig::from_env(&env)?);
    execute(cli.command, &env).await
}
