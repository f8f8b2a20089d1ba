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
            eprintln!("error: {}", one_line(&e));
            1
        }
    };
    std::process::exit(code);
}

/// The error and its causes on one line, each said once (many of our errors
/// already name their cause in their own message).
fn one_line(e: &anyhow::Error) -> String {
    authrelay::error_text::chain(e.as_ref())
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    let env = ProcessEnv::load()?;
    authrelay::telemetry::init(&LogConfig::from_env(&env)?);
    execute(cli.command, &env).await
}
