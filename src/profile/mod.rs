//! Auth profiles: named, versioned credentials of a workspace.
//!
//! `auth_config` holds the four credential types and their rules,
//! `validation` the field errors, `store` the PostgreSQL side (CRUD, search,
//! references and usage, outbox and audit rows written in one transaction),
//! `health` the credential health of each profile and its state rules,
//! `audit` the audit trail as the API shows it.

pub mod audit;
pub mod auth_config;
pub mod cache;
pub mod health;
pub mod limits;
pub mod store;
pub mod validation;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

pub use auth_config::{AuthConfig, AuthType};
pub use health::{Health, HealthState};
pub use limits::ProfileLimits;
pub use store::{ProfileStore, StoreError};
pub use validation::{FieldError, FieldErrors, has_control_chars};

/// A profile with its credentials decrypted.
#[derive(Debug, Clone)]
pub struct AuthProfile {
    pub id: Uuid,
    pub workspace_id: String,
    pub name: String,
    pub config: AuthConfig,
    /// Traffic limits for the whole fleet (contract §9), if any.
    pub limits: Option<ProfileLimits>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A profile as every reader sees it: secrets masked.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    pub id: Uuid,
    pub workspace_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub auth_type: AuthType,
    pub config: Value,
    /// `null` when the profile has no limits.
    pub limits: Option<ProfileLimits>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub health: Health,
}

impl AuthProfile {
    /// The profile as readers see it, with `health` unknown (`unused`): see [`Self::view_with`].
    pub fn view(&self) -> ProfileView {
        self.view_with(Health::unused())
    }

    pub fn view_with(&self, health: Health) -> ProfileView {
        ProfileView {
            id: self.id,
            workspace_id: self.workspace_id.clone(),
            name: self.name.clone(),
            auth_type: self.config.auth_type(),
            config: self.config.masked(),
            limits: self.limits,
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
            health,
        }
    }
}

/// Input of a create, as sent by the API or the CLI.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewProfile {
    pub name: String,
    #[serde(rename = "type")]
    pub auth_type: String,
    #[serde(default)]
    pub config: Value,
    /// Traffic limits (contract §9); absent or `null` for none.
    #[serde(default)]
    pub limits: Value,
}

/// Input of a partial update; omitted parts are kept.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub name: Option<String>,
    #[serde(rename = "type")]
    pub auth_type: Option<String>,
    pub config: Option<Value>,
    /// Absent: kept; `null`: removed; an object: replaces the limits.
    #[serde(default, deserialize_with = "present")]
    pub limits: Option<Value>,
}

/// A member that is present, `null` included (which plain `Option` would read as absent).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// Who made a change, for the audit log: the admin token's label, or "cli".
#[derive(Debug, Clone)]
pub struct Actor(pub String);

impl Actor {
    pub fn cli() -> Self {
        Self("cli".into())
    }
}

pub const MAX_NAME_CHARS: usize = 200;

pub fn validate_name(name: &str) -> Result<String, FieldErrors> {
    let trimmed = name.trim();
    let count = trimmed.chars().count();
    if count == 0 || count > MAX_NAME_CHARS {
        return Err(FieldErrors::single("name", format!("must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if has_control_chars(trimmed) {
        return Err(FieldErrors::single("name", "must not contain control characters or line breaks"));
    }
    Ok(trimmed.to_owned())
}

pub fn parse_auth_type(raw: &str) -> Result<AuthType, FieldErrors> {
    AuthType::parse(raw).ok_or_else(|| FieldErrors::single("type", format!("must be one of {}", AuthType::list())))
}

/// Workspace ids come from the platform; we only refuse what cannot be one.
pub fn validate_workspace_id(ws: &str) -> Result<(), FieldErrors> {
    if ws.is_empty() || ws.len() > 128 || has_control_chars(ws) || ws.contains('/') {
        return Err(FieldErrors::single(
            "workspace_id",
            "must be 1 to 128 characters, without `/` or control characters",
        ));
    }
    Ok(())
}

/// What may reference a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    PreCallAction,
    DuringCallAction,
    PostCallAction,
    FlowNode,
}

impl ReferenceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreCallAction => "pre_call_action",
            Self::DuringCallAction => "during_call_action",
            Self::PostCallAction => "post_call_action",
            Self::FlowNode => "flow_node",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::PreCallAction, Self::DuringCallAction, Self::PostCallAction, Self::FlowNode]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageItem {
    pub id: String,
    pub name: String,
}

/// Which actions and flow nodes use a profile, grouped as the contract shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub in_use: bool,
    pub pre_call_actions: Vec<UsageItem>,
    pub during_call_actions: Vec<UsageItem>,
    pub post_call_actions: Vec<UsageItem>,
    pub flow_nodes: Vec<UsageItem>,
}

impl Usage {
    pub fn push(&mut self, kind: ReferenceKind, item: UsageItem) {
        self.in_use = true;
        match kind {
            ReferenceKind::PreCallAction => self.pre_call_actions.push(item),
            ReferenceKind::DuringCallAction => self.during_call_actions.push(item),
            ReferenceKind::PostCallAction => self.post_call_actions.push(item),
            ReferenceKind::FlowNode => self.flow_nodes.push(item),
        }
    }

    pub fn total(&self) -> usize {
        self.pre_call_actions.len()
            + self.during_call_actions.len()
            + self.post_call_actions.len()
            + self.flow_nodes.len()
    }
}

/// One reference as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Reference {
    pub workspace_id: String,
    pub kind: ReferenceKind,
    pub ref_id: String,
    pub name: String,
    pub profile_id: Uuid,
}

/// List/search parameters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub q: Option<String>,
    pub auth_type: Option<AuthType>,
    /// Only profiles in one of these health states (none: any).
    pub states: Vec<HealthState>,
    pub limit: u32,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Page {
    pub items: Vec<ProfileView>,
    pub next_cursor: Option<String>,
}

/// The body of a profile event (contract section 7).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct ProfileEvent {
    /// What happened: a change (§7) or a change of health state to or from `deauthorized` (§10).
    #[serde(rename = "type")]
    #[schemars(extend("enum" = ["profile.created", "profile.updated", "profile.deleted", "profile.deauthorized", "profile.authorized"]))]
    pub event_type: String,
    pub workspace_id: String,
    pub profile_id: Uuid,
    pub version: i64,
    pub occurred_at: DateTime<Utc>,
}
