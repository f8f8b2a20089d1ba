//! `authrelay profiles …`: the same rules as the HTTP API, JSON on stdout.

use clap::{Args, Subcommand};
use serde_json::{Value, json};
use uuid::Uuid;

use super::secrets::{ConfigInput, prompt_missing_secrets, prompt_replacement, read_config};
use crate::profile::health::parse_states;
use crate::profile::{Actor, AuthType, ListQuery, NewProfile, ProfilePatch, ProfileStore, StoreError};

#[derive(Debug, Args)]
pub struct Workspace {
    /// The workspace (tenant) that owns the profiles.
    #[arg(long, short = 'w')]
    pub workspace: String,
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
        /// Only profiles in this health state: unused, ok, failing, deauthorized (several: comma-separated).
        #[arg(long)]
        state: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one profile (secrets masked) and its health.
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
        /// bearer | api_key | basic | oauth2_client_credentials | oauth2_jwt_bearer | hmac | aws_sigv4 | mtls
        #[arg(long = "type")]
        auth_type: String,
        #[command(flatten)]
        input: ConfigInput,
        /// Traffic limits for the whole fleet, as JSON: '{"rate_per_s": 10, "burst": 5, "max_concurrency": 4}'.
        #[arg(long, value_name = "JSON")]
        limits: Option<String>,
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
        /// New traffic limits as JSON (they replace the old ones); `null` removes them.
        #[arg(long, value_name = "JSON")]
        limits: Option<String>,
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

pub async fn run(cmd: ProfilesCommand, store: &ProfileStore) -> anyhow::Result<i32> {
    let actor = Actor::cli();
    let result = match cmd {
        ProfilesCommand::List { ws, q, auth_type, state, limit, cursor } => {
            let auth_type = auth_type.map(|t| crate::profile::parse_auth_type(&t)).transpose()?;
            let states = match state {
                Some(raw) => parse_states(&raw).map_err(|reason| anyhow::anyhow!("--state {reason}"))?,
                None => Vec::new(),
            };
            let page = store.list(&ws.workspace, &ListQuery { q, auth_type, states, limit, cursor }).await;
            page.map(|p| serde_json::to_value(p).expect("page serializes"))
        }
        ProfilesCommand::Show { ws, id } => store.get_view(&ws.workspace, id).await.map(|p| json!(p)),
        ProfilesCommand::Create { ws, name, auth_type, input, limits } => {
            let limits = read_limits(limits.as_deref())?.unwrap_or(Value::Null);
            let mut config = read_config(&input)?.unwrap_or_else(|| json!({}));
            if let Some(t) = AuthType::parse(&auth_type) {
                prompt_missing_secrets(t, &mut config)?;
            }
            let new = NewProfile { name, auth_type, config, limits };
            store.create(&actor, &ws.workspace, new).await.map(|p| json!(p.view()))
        }
        ProfilesCommand::Update { ws, id, name, auth_type, input, replace, limits } => {
            let limits = read_limits(limits.as_deref())?;
            let mut config = read_config(&input)?;
            if !replace.is_empty() {
                let current = store.get(&ws.workspace, id).await?;
                let target = auth_type.as_deref().and_then(AuthType::parse).unwrap_or(current.config.auth_type());
                let config = config.get_or_insert_with(|| json!({}));
                for field in &replace {
                    prompt_replacement(target, &current.config, config, field)?;
                }
            }
            match store.update(&actor, &ws.workspace, id, ProfilePatch { name, auth_type, config, limits }).await {
                Ok(profile) => store.view_of(&profile).await.map(|v| json!(v)),
                Err(e) => Err(e),
            }
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

/// `--limits`: JSON text (an object, or `null` to remove them); the store checks the members.
fn read_limits(raw: Option<&str>) -> anyhow::Result<Option<Value>> {
    raw.map(|text| {
        serde_json::from_str(text)
            .map_err(|e| anyhow::anyhow!("--limits is not JSON ({e}); e.g. '{{\"rate_per_s\": 10, \"burst\": 5}}'"))
    })
    .transpose()
}
