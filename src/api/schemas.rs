//! The JSON Schemas (2020-12) of the messages on the broker (contract §11):
//! the job a producer publishes, the result authrelay publishes, and the
//! profile event. Generated with `schemars`: the result and the event from
//! the very types that are serialized (`job::JobResult`,
//! `profile::ProfileEvent`); the job from [`Job`] below, which describes what
//! `job::parse_job` accepts (the worker reads jobs by hand, field by field,
//! to answer every mistake with a sentence). Committed under `schemas/`;
//! `tests/it/contracts.rs` fails when they differ from what is generated
//! (`UPDATE_CONTRACTS=1` rewrites them).

#![allow(dead_code)] // `Job` is only described, never built.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use schemars::{JsonSchema, Schema, SchemaGenerator, generate::SchemaSettings};
use serde_json::Value;
use uuid::Uuid;

use super::openapi::auth::InlineAuth;
use crate::phase::Phase;

/// The job message (contract §3): one action execution. Fields the worker
/// does not know are ignored; `null` is the same as an absent field.
#[derive(JsonSchema)]
#[schemars(title = "authrelay job", rename = "Job")]
pub struct Job {
    /// The idempotency key, echoed in the result.
    #[schemars(length(min = 1, max = 128))]
    pub job_id: String,
    /// The tenant: a job can only use its own workspace's profiles.
    #[schemars(length(min = 1, max = 128))]
    pub workspace_id: String,
    /// Must be the phase of the queue (or routing key) the job is published to.
    pub phase: Phase,
    /// The action or flow node that made the job.
    #[schemars(length(min = 1, max = 200))]
    pub action_id: String,
    #[schemars(length(min = 1, max = 200))]
    pub call_id: Option<String>,
    pub request: JobRequest,
    /// Use this stored profile; its credentials override `inline_auth` and
    /// any conflicting header, query or body key.
    pub auth_profile_id: Option<Uuid>,
    /// The action's own credentials: a profile config with its `type`.
    pub inline_auth: Option<InlineAuth>,
    /// After this the result is useless (default per phase: during_call 5 s,
    /// pre_call 10 s, post_call 24 h from receipt).
    pub deadline: Option<DateTime<Utc>>,
    /// Overrides the phase default (during_call 2, pre_call 3, post_call 8); at most 20.
    #[schemars(range(min = 1, max = 20))]
    pub max_attempts: Option<u32>,
}

/// The HTTP request to make. `body` and `form` are exclusive.
#[derive(JsonSchema)]
#[schemars(extend("not" = {
    "required": ["body", "form"],
    "properties": {"body": {"not": {"type": "null"}}, "form": {"not": {"type": "null"}}}
}))]
pub struct JobRequest {
    /// GET (the default), POST, PUT, PATCH, DELETE, HEAD or OPTIONS, in any case.
    #[schemars(regex(
        pattern = "^([Gg][Ee][Tt]|[Pp][Oo][Ss][Tt]|[Pp][Uu][Tt]|[Pp][Aa][Tt][Cc][Hh]|[Dd][Ee][Ll][Ee][Tt][Ee]|[Hh][Ee][Aa][Dd]|[Oo][Pp][Tt][Ii][Oo][Nn][Ss])$"
    ))]
    pub method: Option<String>,
    /// An absolute `http` or `https` URL; its destination must pass the egress guard.
    #[schemars(regex(pattern = "^[Hh][Tt][Tt][Pp][Ss]?://"))]
    pub url: String,
    /// Header values; `Host`, `Content-Length`, `Transfer-Encoding`,
    /// `Connection`, `TE`, `Upgrade` and `Trailer` are HTTP's own.
    pub headers: Option<BTreeMap<String, Scalar>>,
    /// Appended to the URL's own query.
    pub query: Option<BTreeMap<String, Scalar>>,
    /// Any JSON, sent as `application/json`.
    pub body: Option<Value>,
    /// Sent as `application/x-www-form-urlencoded`.
    pub form: Option<BTreeMap<String, Scalar>>,
    /// Per attempt, in milliseconds: at most 300 000 (5 min).
    #[schemars(range(min = 1, max = 300_000))]
    pub timeout_ms: Option<u64>,
    /// `false`: a failure after the request may have reached the target is
    /// not retried (contract §9); absent: retries as in §3.
    pub idempotent: Option<bool>,
}

/// A header, query or form value: numbers and booleans are sent as JSON writes them.
#[derive(JsonSchema)]
#[serde(untagged)]
pub enum Scalar {
    Text(String),
    Number(f64),
    Flag(bool),
}

fn generator() -> SchemaGenerator {
    SchemaSettings::draft2020_12().into_generator()
}

/// `schemas/job.schema.json`.
pub fn job() -> Schema {
    generator().into_root_schema_for::<Job>()
}

/// `schemas/result.schema.json`.
pub fn result() -> Schema {
    let mut schema = generator().into_root_schema_for::<crate::job::JobResult>();
    schema.insert("title".into(), "authrelay result".into());
    schema
}

/// `schemas/profile-event.schema.json`.
pub fn profile_event() -> Schema {
    let mut schema = generator().into_root_schema_for::<crate::profile::ProfileEvent>();
    schema.insert("title".into(), "authrelay profile event".into());
    schema
}

/// Each schema's file under `schemas/` and its text as committed: pretty, with a final newline.
pub fn files() -> Vec<(&'static str, String)> {
    [("job.schema.json", job()), ("result.schema.json", result()), ("profile-event.schema.json", profile_event())]
        .into_iter()
        .map(|(name, schema)| {
            let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
            text.push('\n');
            (name, text)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The committed contracts are what the code generates; with
    /// `UPDATE_CONTRACTS=1` this test rewrites them instead.
    #[test]
    fn committed_contracts_are_what_the_code_generates() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<(std::path::PathBuf, String)> =
            super::files().into_iter().map(|(name, text)| (root.join("schemas").join(name), text)).collect();
        files.push((root.join("docs/openapi.json"), crate::api::openapi::document_json().to_owned()));
        let update = std::env::var_os("UPDATE_CONTRACTS").is_some_and(|v| v == "1");
        let mut stale = Vec::new();
        for (path, text) in files {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &text).unwrap();
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(path.display().to_string());
            }
        }
        assert!(
            stale.is_empty(),
            "{stale:?} differ from what the code generates; regenerate with \
             `UPDATE_CONTRACTS=1 cargo test --lib api::schemas` and commit them"
        );
    }
}
