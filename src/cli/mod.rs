//! The `authrelay` command line. Each command is a thin call into the library.
//!
//! - this file: the commands (clap) and `run`, `migrate`, `keys`;
//! - [`profiles`]: `authrelay profiles …`, with [`secrets`] reading secrets
//!   from files or a no-echo prompt, never from the command line;
//! - [`replay`]: `authrelay replay`;
//! - [`send`]: `authrelay send`, publishing one job and waiting for its result.

mod profiles;
mod replay;
mod secrets;
pub mod send;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{self, App, Roles};
use crate::config::{Config, DatabaseConfig, EnvSource, LaneSelection};
use crate::crypto::KeyRing;
use crate::db::Database;
use crate::profile::ProfileStore;
pub use profiles::ProfilesCommand;
pub use replay::ReplayArgs;
pub use send::SendArgs;

#[derive(Debug, Parser)]
#[command(name = "authrelay", version, about = "Runs call-platform HTTP actions with stored, encrypted Auth Profiles")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run workers, the profile-event consumer, the admin API and the outbox relay.
    Run {
        /// Restrict this process to some roles, e.g. `--roles worker` to scale workers apart from the API.
        #[arg(long, default_value = "worker,api")]
        roles: Roles,
        /// Consume only these phases' queues, e.g. `--lanes during_call,pre_call` for dedicated
        /// live-call workers (default: AUTHRELAY_LANES, else all three).
        #[arg(long)]
        lanes: Option<LaneSelection>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage Auth Profiles (same rules as the HTTP API).
    #[command(subcommand)]
    Profiles(ProfilesCommand),
    /// Manage master keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Move parked jobs back to their work queue.
    Replay(ReplayArgs),
    /// Publish one job, wait for its result and print it (exit 0 succeeded, 1 other outcome, 2 no result).
    Send(SendArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print a new random master key as `id:base64`, to put first in AUTHRELAY_MASTER_KEYS.
    Generate {
        /// The key id (default: k<date>).
        #[arg(long)]
        id: Option<String>,
    },
    /// Re-encrypt every stored secret still under an older key with the first (current) key.
    Rotate,
}

/// Runs a parsed command. Returns the process exit code.
pub async fn execute(command: Command, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match command {
        Command::Run { roles, lanes } => {
            let mut config = Config::load(env)?;
            if let Some(lanes) = lanes {
                config.worker.lanes = lanes;
            }
            let app = App::build(config, roles).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(app::shutdown_on_signal(shutdown.clone()));
            app.run(shutdown).await?;
            Ok(0)
        }
        Command::Migrate => {
            let db = Database::new(&DatabaseConfig::from_env(env)?)?;
            db.ensure_exists().await?;
            let applied = db.migrate().await?;
            println!(
                "applied {} migration(s){}",
                applied.len(),
                if applied.is_empty() { "; the schema is up to date" } else { "" }
            );
            Ok(0)
        }
        Command::Keys(KeysCommand::Generate { id }) => {
            let id = id.unwrap_or_else(|| format!("k{}", chrono::Utc::now().format("%Y%m%d%H%M")));
            println!("{}", KeyRing::generate_key_spec(&id)?);
            eprintln!(
                "put it first in AUTHRELAY_MASTER_KEYS, keep the older keys after it, then run `authrelay keys rotate`"
            );
            Ok(0)
        }
        Command::Keys(KeysCommand::Rotate) => {
            let store = open_store(env, false).await?;
            let report = store.rotate_keys().await?;
            println!(
                "re-encrypted {} secret(s) in {} profile(s); every secret is now under the current key",
                report.secrets, report.profiles
            );
            Ok(0)
        }
        Command::Replay(args) => replay::run(args, env).await,
        Command::Send(args) => send::run(args, env).await,
        Command::Profiles(cmd) => {
            let store = open_store(env, true).await?;
            profiles::run(cmd, &store).await
        }
    }
}

async fn open_store(env: &dyn EnvSource, check_keys: bool) -> anyhow::Result<ProfileStore> {
    let config = Config::load(env)?;
    let (_db, pool) = Database::prepare(&config.database).await?;
    let store = ProfileStore::new(pool, config.key_ring.clone());
    if check_keys {
        store.ensure_keys_cover_store().await?;
    }
    Ok(store)
}
