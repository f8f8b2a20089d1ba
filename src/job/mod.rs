//! Wire types of the action pipeline (contract sections 3 and 4): the job a
//! producer publishes and what identifies it. `parse` reads and validates a
//! message into a [`Job`]; `result` is what authrelay publishes back.

mod parse;
mod result;

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;
use uuid::Uuid;

pub use crate::phase::Phase;
pub use parse::{identify, parse_job};
pub use result::{JobResult, ResponseSummary};

use crate::profile::AuthConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx response.
    Succeeded,
    /// Attempted, and the attempts failed.
    Failed,
    /// The deadline passed before the first attempt: nothing was sent.
    Expired,
    /// Not attempted: the job or its credentials cannot be used as they are.
    Rejected,
}

impl Outcome {
    pub const ALL: [Outcome; 4] = [Outcome::Succeeded, Outcome::Failed, Outcome::Expired, Outcome::Rejected];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Expired => "expired",
            Outcome::Rejected => "rejected",
        }
    }

    /// Failed and rejected jobs are parked for replay.
    pub fn is_parked(self) -> bool {
        matches!(self, Outcome::Failed | Outcome::Rejected)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    InvalidJob,
    ProfileNotFound,
    ProfileUnusable,
    TokenRequestFailed,
    DestinationBlocked,
    Connect,
    Timeout,
    HttpStatus,
    DeadlineExceeded,
    ResponseTooLarge,
    /// A bug caught while processing (a panic): the job is parked for a look.
    Internal,
    /// The profile's rate or concurrency limit left no turn before the deadline.
    RateLimited,
    /// The destination's circuit is open: it failed too often in a row.
    CircuitOpen,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::InvalidJob,
        ErrorKind::ProfileNotFound,
        ErrorKind::ProfileUnusable,
        ErrorKind::TokenRequestFailed,
        ErrorKind::DestinationBlocked,
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::HttpStatus,
        ErrorKind::DeadlineExceeded,
        ErrorKind::ResponseTooLarge,
        ErrorKind::Internal,
        ErrorKind::RateLimited,
        ErrorKind::CircuitOpen,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidJob => "invalid_job",
            ErrorKind::ProfileNotFound => "profile_not_found",
            ErrorKind::ProfileUnusable => "profile_unusable",
            ErrorKind::TokenRequestFailed => "token_request_failed",
            ErrorKind::DestinationBlocked => "destination_blocked",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::HttpStatus => "http_status",
            ErrorKind::DeadlineExceeded => "deadline_exceeded",
            ErrorKind::ResponseTooLarge => "response_too_large",
            ErrorKind::Internal => "internal",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::CircuitOpen => "circuit_open",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The outcome a job ends with when this is its final error.
    pub fn outcome(self) -> Outcome {
        match self {
            ErrorKind::InvalidJob
            | ErrorKind::ProfileNotFound
            | ErrorKind::ProfileUnusable
            | ErrorKind::DestinationBlocked => Outcome::Rejected,
            _ => Outcome::Failed,
        }
    }
}

/// The `error` object of a result. The message never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(transform = maybe_sent_schema)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
    /// The request may have reached the target (contract §9): set on the final
    /// failure of a job with `request.idempotent: false`, absent otherwise.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub maybe_sent: bool,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Self { kind, message: message.into(), retryable, maybe_sent: false }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidJob, message, false)
    }
}

/// Describes `maybe_sent` in the result schema (contract §9): `true` when a
/// failure came after the request may have reached the target, so it was not
/// retried; absent otherwise.
fn maybe_sent_schema(schema: &mut schemars::Schema) {
    if let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        properties.entry("maybe_sent").or_insert_with(|| {
            serde_json::json!({
                "description": "Present (true) when the request may have reached the target before the failure (a non-idempotent request is then not retried).",
                "type": "boolean"
            })
        });
    }
}

/// The request part of a job, validated.
#[derive(Debug, Clone)]
pub struct JobRequest {
    pub method: Method,
    pub url: Url,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    pub form: Option<Vec<(String, String)>>,
    pub timeout: Option<Duration>,
    /// `false`: a failure after the request may have reached the target is
    /// final, not retried (contract §9). Default `true`.
    pub idempotent: bool,
}

/// A validated job.
#[derive(Debug, Clone)]
pub struct Job {
    pub job_id: String,
    pub workspace_id: String,
    pub phase: Phase,
    pub action_id: String,
    pub call_id: Option<String>,
    pub request: JobRequest,
    pub auth_profile_id: Option<Uuid>,
    pub inline_auth: Option<AuthConfig>,
    pub deadline: Option<DateTime<Utc>>,
    pub max_attempts: Option<u32>,
}

/// What identifies a job in its result, even when the rest of it is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobIdentity {
    pub job_id: String,
    pub workspace_id: Option<String>,
    pub phase: Phase,
    pub action_id: Option<String>,
    pub call_id: Option<String>,
    pub auth_profile_id: Option<Uuid>,
}

impl Job {
    pub fn identity(&self) -> JobIdentity {
        JobIdentity {
            job_id: self.job_id.clone(),
            workspace_id: Some(self.workspace_id.clone()),
            phase: self.phase,
            action_id: Some(self.action_id.clone()),
            call_id: self.call_id.clone(),
            auth_profile_id: self.auth_profile_id,
        }
    }
}

/// Why a message is not a usable job.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JobParseError {
    /// Not JSON, or no usable `job_id`: it can only be parked (no result).
    #[error("{0}")]
    Unidentifiable(String),
    /// Identifiable but invalid: a `rejected` result is published, and it is parked.
    #[error("{message}")]
    Invalid { identity: Box<JobIdentity>, message: String },
}

/// Limits a job must respect.
#[derive(Debug, Clone)]
pub struct JobLimits {
    pub max_message_bytes: usize,
    pub max_timeout: Duration,
    pub max_attempts: u32,
}

impl Default for JobLimits {
    fn default() -> Self {
        Self { max_message_bytes: 1024 * 1024, max_timeout: Duration::from_secs(300), max_attempts: 20 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_kinds_map_to_outcomes() {
        assert_eq!(ErrorKind::InvalidJob.outcome(), Outcome::Rejected);
        assert_eq!(ErrorKind::DestinationBlocked.outcome(), Outcome::Rejected);
        assert_eq!(ErrorKind::HttpStatus.outcome(), Outcome::Failed);
        for kind in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
        }
    }

    #[test]
    fn maybe_sent_is_written_only_when_true() {
        let mut error = JobError::new(ErrorKind::Timeout, "no response within 300 ms", true);
        assert_eq!(serde_json::to_value(&error).unwrap().get("maybe_sent"), None);
        error.maybe_sent = true;
        assert_eq!(serde_json::to_value(&error).unwrap()["maybe_sent"], json!(true));
        let read: JobError =
            serde_json::from_value(json!({"kind": "timeout", "message": "m", "retryable": false})).unwrap();
        assert!(!read.maybe_sent);
    }
}
