//! The `authrelay` command line. Each command is a thin call into the library.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::app::{self, App, Roles};
use crate::config::{Config, DatabaseConfig, EnvSource};
use crate::crypto::KeyRing;
use crate::db::Database;
use crate::profile::{Actor, AuthType, ListQuery, NewProfile, ProfilePatch, ProfileStore, StoreError};

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
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// pre_call | during_call | post_call
    #[arg(long)]
    pub phase: Option<String>,
    #[arg(long)]
    pub workspace: Option<String>,
    /// e.g. http_status, token_request_failed, profile_unusable
    #[arg(long)]
    pub error_kind: Option<String>,
    #[arg(long)]
    pub job_id: Option<String>,
    /// Only jobs parked at least this long ago (e.g. 10m, 2h).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Move at most this many jobs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Republish at most this many jobs per second, so live traffic keeps its share.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also replay jobs whose deadline or call is over (they get a fresh deadline).
    #[arg(long)]
    pub include_expired: bool,
    /// Print the job ids that would move, and move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl ReplayArgs {
    pub fn into_request(self) -> anyhow::Result<crate::replay::ReplayRequest> {
        let phase = self
            .phase
            .map(|p| {
                crate::job::Phase::parse(&p)
                    .with_context(|| format!("--phase `{p}`: use pre_call, during_call or post_call"))
            })
            .transpose()?;
        let error_kind = self
            .error_kind
            .map(|k| {
                crate::job::ErrorKind::parse(&k).with_context(|| format!("--error-kind `{k}` is not an error kind"))
            })
            .transpose()?;
        Ok(crate::replay::ReplayRequest {
            phase,
            workspace: self.workspace,
            error_kind,
            job_id: self.job_id,
            older_than: self.older_than,
            limit: self.limit,
            rate: self.rate,
            include_expired: self.include_expired,
            dry_run: self.dry_run,
        })
    }
}

#[derive(Debug, Args)]
pub struct Workspace {
    /// The workspace (tenant) that owns the profiles.
    #[arg(long, short = 'w')]
    pub workspace: String,
}

#[derive(Debug, Args)]
pub struct ConfigInput {
    /// Non-secret config fields as JSON, e.g. '{"method":"header","pairs":[{"key":"X-Api-Key"}]}'.
    /// Secret fields are refused here (the command line is visible to other users); you will be
    /// prompted for them, or give them with --config-file.
    #[arg(long, value_name = "JSON")]
    pub config: Option<String>,
    /// The config as a JSON file, secrets included; `-` reads standard input.
    #[arg(long, value_name = "PATH", conflicts_with = "config")]
    pub config_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProfilesCommand {
    /// List or search profiles.
    List {
        #[command(flatten)]
        ws: Workspace,
        /// Case-insensitive substring of the name.
        #[arg(long)]
        q: Option<String>,
        #[arg(long = "type")]
        auth_type: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one profile (secrets masked).
    Show {
        #[command(flatten)]
        ws: Workspace,
        id: Uuid,
    },
    /// Create a profile; prompts for secrets that --config-file does not give.
    Create {
        #[command(flatten)]
        ws: Workspace,
        #[arg(long)]
        name: String,
        /// bearer | api_key | basic | oauth2_client_credentials
        #[arg(long = "type")]
        auth_type: String,
        #[command(flatten)]
        input: ConfigInput,
    },
    /// Change a profile's name, type or config; omitted secrets keep their stored value.
    Update {
        #[command(flatten)]
        ws: Workspace,
        id: Uuid,
        #[arg(long)]
        name: Option<String>,
        #[arg(long = "type")]
        auth_type: Option<String>,
        #[command(flatten)]
        input: ConfigInput,
        /// Prompt for a new value of this secret (`token`, `password`, `client_secret`,
        /// or an API key pair's key). Repeatable.
        #[arg(long = "replace-secret", value_name = "FIELD")]
        replace: Vec<String>,
    },
    /// Delete a profile; refused while actions or flow nodes use it.
    Delete {
        #[command(flatten)]
        ws: Workspace,
        id: Uuid,
    },
    /// Show which actions and flow nodes use a profile.
    Usage {
        #[command(flatten)]
        ws: Workspace,
        id: Uuid,
    },
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
        Command::Run { roles } => {
            let config = Config::load(env)?;
            let app = App::build(config, roles).await?;
            let shutdown = CancellationToken::new();
            tokio::spawn(signal_shutdown(shutdown.clone()));
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
        Command::Replay(args) => {
            let request = args.into_request()?;
            let config = Config::load(env)?;
            let connection =
                crate::queue::broker::connect_with_wait(&config.amqp_url, config.database.connect_timeout).await?;
            let names = crate::queue::Names::new(&config.amqp_prefix);
            let report = crate::replay::replay(&connection, &names, &config.worker, &request).await?;
            crate::queue::close_connection(&connection, "replay done").await;
            // Replay runs in its own process here; its metrics live with the workers'
            // job counters (a replayed job is counted again when it settles).
            for id in &report.job_ids {
                println!("{id}");
            }
            if report.dry_run {
                println!("would move {} job(s); moved nothing (dry run)", report.moved);
            } else {
                println!("moved {} job(s)", report.moved);
            }
            if report.skipped_expired > 0 {
                eprintln!(
                    "{} matching job(s) are past their deadline and stay parked (--include-expired to move them)",
                    report.skipped_expired
                );
            }
            Ok(0)
        }
        Command::Profiles(cmd) => {
            let store = open_store(env, true).await?;
            profiles(cmd, &store).await
        }
    }
}

async fn open_store(env: &dyn EnvSource, check_keys: bool) -> anyhow::Result<ProfileStore> {
    let config = Config::load(env)?;
    let (_db, pool) = Database::prepare(&config.database).await?;
    let store = ProfileStore::new(pool, config.key_ring.clone());
    if check_keys {
        app::ensure_keys_cover_store(&store).await?;
    }
    Ok(store)
}

async fn profiles(cmd: ProfilesCommand, store: &ProfileStore) -> anyhow::Result<i32> {
    let actor = Actor::cli();
    let result = match cmd {
        ProfilesCommand::List { ws, q, auth_type, limit, cursor } => {
            let auth_type = auth_type.map(|t| crate::profile::parse_auth_type(&t)).transpose()?;
            let page = store.list(&ws.workspace, &ListQuery { q, auth_type, limit, cursor }).await;
            page.map(|p| serde_json::to_value(p).expect("page serializes"))
        }
        ProfilesCommand::Show { ws, id } => store.get(&ws.workspace, id).await.map(|p| json!(p.view())),
        ProfilesCommand::Create { ws, name, auth_type, input } => {
            let mut config = read_config(&input)?.unwrap_or_else(|| json!({}));
            if let Some(t) = AuthType::parse(&auth_type) {
                prompt_missing_secrets(t, &mut config)?;
            }
            store.create(&actor, &ws.workspace, NewProfile { name, auth_type, config }).await.map(|p| json!(p.view()))
        }
        ProfilesCommand::Update { ws, id, name, auth_type, input, replace } => {
            let mut config = read_config(&input)?;
            if !replace.is_empty() {
                let current = store.get(&ws.workspace, id).await?;
                let target = auth_type.as_deref().and_then(AuthType::parse).unwrap_or(current.config.auth_type());
                let config = config.get_or_insert_with(|| json!({}));
                for field in &replace {
                    prompt_replacement(target, &current.config, config, field)?;
                }
            }
            store
                .update(&actor, &ws.workspace, id, ProfilePatch { name, auth_type, config })
                .await
                .map(|p| json!(p.view()))
        }
        ProfilesCommand::Delete { ws, id } => {
            store.delete(&actor, &ws.workspace, id).await.map(|()| json!({"deleted": id}))
        }
        ProfilesCommand::Usage { ws, id } => store.usage(&ws.workspace, id).await.map(|u| json!(u)),
    };
    match result {
        Ok(value) => {
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(0)
        }
        Err(StoreError::InUse(usage)) => {
            eprintln!("error: the profile is in use; remove these references first:");
            println!("{}", serde_json::to_string_pretty(&usage)?);
            Ok(1)
        }
        Err(e) => Err(e.into()),
    }
}

const SECRET_FIELDS: &[&str] = &["token", "password", "client_secret"];

/// `--config` (argv) may not carry secrets; `--config-file` (a file or stdin) may.
fn read_config(input: &ConfigInput) -> anyhow::Result<Option<Value>> {
    if let Some(inline) = &input.config {
        let value: Value = serde_json::from_str(inline).context("--config is not valid JSON")?;
        let has_secret = SECRET_FIELDS.iter().any(|f| value.get(f).is_some())
            || value.get("pairs").and_then(Value::as_array).is_some_and(|p| p.iter().any(|p| p.get("value").is_some()));
        if has_secret {
            bail!(
                "--config must not carry secrets (they would show in the process list); use --config-file or the prompt"
            );
        }
        return Ok(Some(value));
    }
    let Some(path) = &input.config_file else { return Ok(None) };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).context("cannot read the config from standard input")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    }
    let text = zeroize::Zeroizing::new(text);
    Ok(Some(serde_json::from_str(&text).context("the config file is not valid JSON")?))
}

fn prompt(label: &str) -> anyhow::Result<String> {
    if !std::io::stdin().is_terminal() {
        bail!("{label} is required; give it with --config-file (standard input is not a terminal to prompt on)");
    }
    rpassword::prompt_password(format!("{label}: ")).context("cannot read from the terminal")
}

/// Prompts (without echo) for each secret the config does not give yet.
fn prompt_missing_secrets(auth_type: AuthType, config: &mut Value) -> anyhow::Result<()> {
    let Some(obj) = config.as_object_mut() else { return Ok(()) };
    let field = match auth_type {
        AuthType::Bearer => Some("token"),
        AuthType::Basic => Some("password"),
        AuthType::OAuth2ClientCredentials => Some("client_secret"),
        AuthType::ApiKey => None,
    };
    if let Some(field) = field {
        if !obj.contains_key(field) {
            obj.insert(field.into(), Value::String(prompt(field)?));
        }
        return Ok(());
    }
    for pair in obj.get_mut("pairs").and_then(Value::as_array_mut).into_iter().flatten() {
        if pair.get("value").is_none()
            && let Some(key) = pair.get("key").and_then(Value::as_str).map(str::to_owned)
        {
            pair["value"] = Value::String(prompt(&format!("value for `{key}`"))?);
        }
    }
    Ok(())
}

fn prompt_replacement(
    auth_type: AuthType,
    current: &crate::profile::AuthConfig,
    config: &mut Value,
    field: &str,
) -> anyhow::Result<()> {
    if auth_type != AuthType::ApiKey {
        if !SECRET_FIELDS.contains(&field) {
            bail!("--replace-secret {field}: not a secret field of {auth_type}");
        }
        config[field] = Value::String(prompt(field)?);
        return Ok(());
    }
    // For API keys, name the pair by its key; keep the others as they are stored.
    if config.get("pairs").is_none() {
        let crate::profile::AuthConfig::ApiKey { pairs, .. } = current else {
            bail!("--replace-secret {field}: give the new pairs with --config");
        };
        config["pairs"] = pairs.iter().map(|p| json!({"key": p.key})).collect();
    }
    let pairs = config["pairs"].as_array_mut().context("pairs must be an array")?;
    let pair = pairs
        .iter_mut()
        .find(|p| p.get("key").and_then(Value::as_str) == Some(field))
        .with_context(|| format!("--replace-secret {field}: no API key pair has that key"))?;
    pair["value"] = Value::String(prompt(&format!("new value for `{field}`"))?);
    Ok(())
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn signal_shutdown(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested; finishing in-flight work");
    shutdown.cancel();
}
