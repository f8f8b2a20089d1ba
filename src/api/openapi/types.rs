//! The bodies of the admin API as the OpenAPI document shows them: requests,
//! profile reads (with `health` and `limits`), usage, references, tests,
//! audit pages, replay, and the error shapes.
//!
//! The handlers build these bodies from the `profile` types or by hand
//! (`serde_json::Value`); these types describe what they really send, and
//! `tests/it/contracts.rs` validates real responses against the document.
//! `Limits` (contract §9) lives here alone, so the branch that adds the
//! engine for limits only has to touch this file.

#![allow(dead_code)] // Only described, never built.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{
    ApiKeyInput, AwsSigv4Input, BasicInput, BearerInput, ClientCertificateInput, HmacInput,
    OAuth2ClientCredentialsInput, OAuth2JwtBearerInput,
};
use super::masked::ConfigRead;

/// The credential types (contract §5 and §8).
#[derive(ToSchema)]
pub enum AuthType {
    #[serde(rename = "bearer")]
    Bearer,
    #[serde(rename = "api_key")]
    ApiKey,
    #[serde(rename = "basic")]
    Basic,
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
    #[serde(rename = "oauth2_jwt_bearer")]
    OAuth2JwtBearer,
    #[serde(rename = "hmac")]
    Hmac,
    #[serde(rename = "aws_sigv4")]
    AwsSigv4,
    #[serde(rename = "mtls")]
    Mtls,
}

/// Traffic limits of a profile, for the whole fleet of workers (contract §9).
/// `null` on create or PATCH removes them.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Requests per second at most (may be fractional: 0.5 is one every two seconds; at least 0.001).
    #[schema(minimum = 0.001, maximum = 100_000.0)]
    pub rate_per_s: Option<f64>,
    /// Requests that may go at once after a quiet spell (1, evenly spaced, when not set).
    #[schema(minimum = 1, maximum = 100_000)]
    pub burst: Option<u32>,
    /// Requests in flight at once, at most.
    #[schema(minimum = 1, maximum = 100_000)]
    pub max_concurrency: Option<u32>,
}

/// `POST …/auth-profiles`: a name, a type and the config of that type
/// (secrets in clear; they are encrypted at rest and never returned).
#[derive(ToSchema)]
#[serde(tag = "type")]
pub enum NewProfile {
    #[serde(rename = "bearer")]
    Bearer { name: ProfileName, config: BearerInput, limits: Option<Limits> },
    #[serde(rename = "api_key")]
    ApiKey { name: ProfileName, config: ApiKeyInput, limits: Option<Limits> },
    #[serde(rename = "basic")]
    Basic { name: ProfileName, config: BasicInput, limits: Option<Limits> },
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials { name: ProfileName, config: OAuth2ClientCredentialsInput, limits: Option<Limits> },
    #[serde(rename = "oauth2_jwt_bearer")]
    OAuth2JwtBearer { name: ProfileName, config: OAuth2JwtBearerInput, limits: Option<Limits> },
    #[serde(rename = "hmac")]
    Hmac { name: ProfileName, config: HmacInput, limits: Option<Limits> },
    #[serde(rename = "aws_sigv4")]
    AwsSigv4 { name: ProfileName, config: AwsSigv4Input, limits: Option<Limits> },
    #[serde(rename = "mtls")]
    Mtls { name: ProfileName, config: ClientCertificateInput, limits: Option<Limits> },
}

/// 1 to 200 characters, unique in the workspace, no control characters.
#[derive(ToSchema)]
#[schema(value_type = String, min_length = 1, max_length = 200)]
pub struct ProfileName(String);

/// `PATCH …/auth-profiles/{id}`: what is given changes, the rest is kept.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub name: Option<ProfileName>,
    /// A new type needs a whole config of that type.
    #[serde(rename = "type")]
    pub auth_type: Option<AuthType>,
    /// Fields of the type's config (see `NewProfile`); an omitted secret
    /// field keeps its stored value, `null` removes an optional field.
    #[schema(value_type = Option<Object>)]
    pub config: Option<serde_json::Value>,
    pub limits: Option<Limits>,
}

/// A profile as every read shows it: secrets masked, keys as fingerprints.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub id: Uuid,
    pub workspace_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub auth_type: AuthType,
    pub config: ConfigRead,
    /// 1 on create, + 1 on every update.
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub health: Health,
    /// The profile's limits; `null` (or absent) when it has none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

/// `state` of a profile's credentials (contract §10).
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Unused,
    Ok,
    Failing,
    Deauthorized,
}

/// Credential health (contract §10); never holds a secret.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub state: HealthState,
    /// When the profile entered `state` (null while `unused`).
    pub since: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<LastFailure>,
    pub last_24h: Counts,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LastFailure {
    pub at: DateTime<Utc>,
    /// A result error kind (`http_status`, `token_request_failed`, …).
    pub kind: String,
    pub status: Option<u16>,
    pub message: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub succeeded: u64,
    pub failed: u64,
}

/// A page of profiles, newest first; `next_cursor` is null on the last page.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfilePage {
    pub items: Vec<Profile>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UsageItem {
    pub id: String,
    pub name: String,
}

/// Which actions and flow nodes use a profile.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    pub in_use: bool,
    pub pre_call_actions: Vec<UsageItem>,
    pub during_call_actions: Vec<UsageItem>,
    pub post_call_actions: Vec<UsageItem>,
    pub flow_nodes: Vec<UsageItem>,
}

/// What may reference a profile.
#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferenceKind {
    PreCallAction,
    DuringCallAction,
    PostCallAction,
    FlowNode,
}

/// `PUT …/references/{kind}/{ref_id}`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceBody {
    pub profile_id: Uuid,
    /// The action's or flow node's name, shown in usage.
    pub name: String,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub workspace_id: String,
    pub kind: ReferenceKind,
    pub ref_id: String,
    pub name: String,
    pub profile_id: Uuid,
}

/// `POST …/test`: optionally a URL to call with the credentials.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    pub url: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TestCheck {
    TokenFetched,
    UrlCalled,
    NotCalled,
}

/// What a credential test found; never a secret (no token).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestReport {
    pub ok: bool,
    pub check: TestCheck,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    Created,
    Updated,
    Deleted,
    Referenced,
    Unreferenced,
    Tested,
    Rotated,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditReference {
    pub kind: ReferenceKind,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One audit entry: who did what to which profile, and which fields — never a value.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditItem {
    pub at: DateTime<Utc>,
    /// The admin token's label, or `cli`.
    pub actor: String,
    pub action: AuditAction,
    pub profile_id: Option<Uuid>,
    /// Names of the fields set or changed (`config.token`).
    pub fields: Vec<String>,
    /// `referenced` / `unreferenced`: which action or flow node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<AuditReference>,
    /// `tested`: whether the test passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditPage {
    pub items: Vec<AuditItem>,
    pub next_cursor: Option<String>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreCall,
    DuringCall,
    PostCall,
}

/// `POST /v1/replay`: which parked jobs to move (every given filter must match).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub phase: Option<Phase>,
    pub workspace: Option<String>,
    /// A result error kind.
    pub error_kind: Option<String>,
    pub job_id: Option<String>,
    /// Only jobs parked at least this long ago: `30s`, `10m`, `2h`, `1d`.
    pub older_than: Option<String>,
    #[schema(minimum = 0)]
    pub limit: Option<u64>,
    /// Republished messages per second at most.
    #[schema(exclusive_minimum = 0.0)]
    pub rate: Option<f64>,
    pub include_expired: Option<bool>,
    pub dry_run: Option<bool>,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayReport {
    pub dry_run: bool,
    pub examined: u64,
    pub moved: u64,
    pub skipped_expired: u64,
    pub job_ids: Vec<String>,
    /// Moved jobs per phase.
    pub moved_by_phase: BTreeMap<String, u64>,
}

/// Every error: a stable code and a sentence.
#[derive(ToSchema)]
#[schema(example = json!({"error": "not_found", "message": "profile not found"}))]
pub struct Error {
    /// `unauthorized`, `not_found`, `name_taken`, `bad_request`, `invalid_body`,
    /// `unsupported_media_type`, `payload_too_large`, `profile_unusable`,
    /// `database_unavailable`, `broker_unavailable`, `internal_error`, …
    pub error: String,
    pub message: String,
}

/// One invalid field: its path in the request (`config.private_key`) and what is wrong.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

/// 422: the input is invalid; nothing was stored.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ValidationError {
    #[schema(pattern = "^validation_failed$")]
    pub error: String,
    pub message: String,
    #[schema(min_items = 1)]
    pub details: Vec<FieldError>,
}

/// 422 before validation: the body is JSON but not of the expected shape
/// (an unknown field, a wrong JSON type); the message names the field.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvalidBody {
    #[schema(pattern = "^invalid_body$")]
    pub error: String,
    pub message: String,
}

/// 422 of a JSON body: `validation_failed` with `details`, or `invalid_body`
/// when the body is not of the expected shape at all.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum Unprocessable {
    Invalid(ValidationError),
    Shape(InvalidBody),
}

/// 409 on delete: the profile is still referenced.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileInUse {
    #[schema(pattern = "^profile_in_use$")]
    pub error: String,
    pub message: String,
    pub usage: Usage,
}

#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Liveness {
    #[schema(pattern = "^ok$")]
    pub status: String,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// Readiness: each check by name (`database`, `broker`, …) and its state.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Readiness {
    pub status: ReadyStatus,
    pub checks: BTreeMap<String, String>,
}
