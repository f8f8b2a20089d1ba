//! Wire types of the action pipeline (contract sections 3 and 4): the job a
//! producer publishes, its validation, and the result authrelay publishes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use url::Url;
use uuid::Uuid;

use crate::profile::auth_config::parse_http_url;
use crate::profile::{AuthConfig, AuthType, has_control_chars};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreCall,
    DuringCall,
    PostCall,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::PreCall, Phase::DuringCall, Phase::PostCall];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreCall => "pre_call",
            Phase::DuringCall => "during_call",
            Phase::PostCall => "post_call",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobError {
    pub kind: ErrorKind,
    pub message: String,
    pub retryable: bool,
}

impl JobError {
    pub fn new(kind: ErrorKind, message: impl Into<String>, retryable: bool) -> Self {
        Self { kind, message: message.into(), retryable }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidJob, message, false)
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

const FORBIDDEN_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"];

/// Parses and validates one message body. `lane` is the phase of the queue it
/// came from: a job must name the phase of its queue.
pub fn parse_job(bytes: &[u8], lane: Phase, limits: &JobLimits) -> Result<Job, JobParseError> {
    if bytes.len() > limits.max_message_bytes {
        // Too large to trust any of it, but try to name it in the result. Only the
        // identity fields are kept: the rest is skipped, never built in memory.
        let identity = serde_json::from_slice::<IdentityFields>(bytes).ok().and_then(|fields| {
            let object: Map<String, Value> = [
                ("job_id", fields.job_id),
                ("workspace_id", fields.workspace_id),
                ("phase", fields.phase),
                ("action_id", fields.action_id),
                ("call_id", fields.call_id),
                ("auth_profile_id", fields.auth_profile_id),
            ]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
            identity_of(&Value::Object(object), lane)
        });
        let message = format!("the message is {} bytes; the limit is {}", bytes.len(), limits.max_message_bytes);
        return Err(match identity {
            Some(identity) => JobParseError::Invalid { identity: Box::new(identity), message },
            None => JobParseError::Unidentifiable(message),
        });
    }
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| JobParseError::Unidentifiable(format!("the message is not valid JSON: {e}")))?;
    let Some(identity) = identity_of(&value, lane) else {
        return Err(JobParseError::Unidentifiable(
            "the message has no `job_id` (a string of 1 to 128 characters), so it cannot be answered".into(),
        ));
    };
    validate(&value, lane, limits).map_err(|message| JobParseError::Invalid { identity: Box::new(identity), message })
}

/// The fields that identify a job; every other field is skipped unread.
#[derive(Deserialize)]
struct IdentityFields {
    job_id: Option<Value>,
    workspace_id: Option<Value>,
    phase: Option<Value>,
    action_id: Option<Value>,
    call_id: Option<Value>,
    auth_profile_id: Option<Value>,
}

fn identity_of(value: &Value, lane: Phase) -> Option<JobIdentity> {
    let obj = value.as_object()?;
    let job_id = obj.get("job_id")?.as_str().filter(|id| valid_id(id, 128))?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).filter(|s| valid_id(s, 200)).map(str::to_owned);
    Some(JobIdentity {
        job_id: job_id.to_owned(),
        workspace_id: text("workspace_id"),
        phase: obj.get("phase").and_then(Value::as_str).and_then(Phase::parse).unwrap_or(lane),
        action_id: text("action_id"),
        call_id: text("call_id"),
        auth_profile_id: obj.get("auth_profile_id").and_then(Value::as_str).and_then(|s| Uuid::try_parse(s).ok()),
    })
}

fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !has_control_chars(s)
}

fn validate(value: &Value, lane: Phase, limits: &JobLimits) -> Result<Job, String> {
    let obj = value.as_object().ok_or("the job must be a JSON object")?;
    let required = |k: &str, max: usize| -> Result<String, String> {
        match obj.get(k) {
            Some(Value::String(s)) if valid_id(s, max) => Ok(s.clone()),
            Some(_) => Err(format!("`{k}` must be a string of 1 to {max} characters without control characters")),
            None => Err(format!("`{k}` is required")),
        }
    };
    let job_id = required("job_id", 128)?;
    let workspace_id = required("workspace_id", 128)?;
    let phase_raw = required("phase", 32)?;
    let phase = Phase::parse(&phase_raw)
        .ok_or_else(|| format!("`phase` must be pre_call, during_call or post_call, not `{phase_raw}`"))?;
    if phase != lane {
        return Err(format!("`phase` is {phase} but the job arrived on the {lane} queue"));
    }
    let action_id = required("action_id", 200)?;
    let call_id = match obj.get("call_id") {
        None | Some(Value::Null) => None,
        Some(_) => Some(required("call_id", 200)?),
    };
    let request = parse_request(obj.get("request").ok_or("`request` is required")?, limits)?;
    let auth_profile_id = match obj.get("auth_profile_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(Uuid::try_parse(s).map_err(|_| "`auth_profile_id` must be a profile id (UUID)")?)
        }
        Some(_) => return Err("`auth_profile_id` must be a string".into()),
    };
    let inline_auth = match obj.get("inline_auth") {
        None | Some(Value::Null) => None,
        Some(Value::Object(auth)) => Some(parse_inline_auth(auth)?),
        Some(_) => return Err("`inline_auth` must be an object with a `type`".into()),
    };
    let deadline = match obj.get("deadline") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(
            DateTime::parse_from_rfc3339(s)
                .map_err(|_| "`deadline` must be an RFC 3339 timestamp such as 2026-11-29T10:00:05Z")?
                .with_timezone(&Utc),
        ),
        Some(_) => return Err("`deadline` must be an RFC 3339 timestamp string".into()),
    };
    let max_attempts = match obj.get("max_attempts") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(limits.max_attempts) => Some(n as u32),
            _ => return Err(format!("`max_attempts` must be an integer from 1 to {}", limits.max_attempts)),
        },
    };
    Ok(Job {
        job_id,
        workspace_id,
        phase,
        action_id,
        call_id,
        request,
        auth_profile_id,
        inline_auth,
        deadline,
        max_attempts,
    })
}

fn parse_inline_auth(auth: &Map<String, Value>) -> Result<AuthConfig, String> {
    let auth_type = auth
        .get("type")
        .and_then(Value::as_str)
        .and_then(AuthType::parse)
        .ok_or("`inline_auth.type` must be bearer, api_key, basic or oauth2_client_credentials")?;
    let mut rest = auth.clone();
    rest.remove("type");
    AuthConfig::parse(auth_type, &Value::Object(rest), None, "inline_auth").map_err(|e| e.to_string())
}

fn parse_request(value: &Value, limits: &JobLimits) -> Result<JobRequest, String> {
    let obj = value.as_object().ok_or("`request` must be an object")?;
    let method = match obj.get("method") {
        None | Some(Value::Null) => Method::GET,
        Some(Value::String(m)) => match m.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PUT" => Method::PUT,
            "PATCH" => Method::PATCH,
            "DELETE" => Method::DELETE,
            "HEAD" => Method::HEAD,
            "OPTIONS" => Method::OPTIONS,
            _ => {
                return Err(format!(
                    "`request.method` `{m}` is not one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS"
                ));
            }
        },
        Some(_) => return Err("`request.method` must be a string".into()),
    };
    let raw_url = obj.get("url").and_then(Value::as_str).ok_or("`request.url` is required")?;
    let mut url = parse_http_url(raw_url).map_err(|e| format!("`request.url` {e}"))?;
    url.set_fragment(None);

    let mut headers = Vec::new();
    for (name, value) in string_map(obj.get("headers"), "request.headers")? {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("`request.headers`: `{}` is not a valid header name", printable(&name)))?;
        if FORBIDDEN_HEADERS.contains(&header.as_str()) {
            return Err(format!("`request.headers`: `{header}` is set by HTTP itself"));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("`request.headers.{header}` is not a valid header value (no line breaks)"))?;
        headers.push((header, value));
    }
    let query = string_map(obj.get("query"), "request.query")?;
    let body = match obj.get("body") {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.clone()),
    };
    let form = match obj.get("form") {
        None | Some(Value::Null) => None,
        Some(v) => Some(string_map(Some(v), "request.form")?),
    };
    if body.is_some() && form.is_some() {
        return Err("`request.body` and `request.form` are exclusive".into());
    }
    let timeout = match obj.get("timeout_ms") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(ms) if ms >= 1 && Duration::from_millis(ms) <= limits.max_timeout => Some(Duration::from_millis(ms)),
            _ => {
                return Err(format!(
                    "`request.timeout_ms` must be an integer from 1 to {}",
                    limits.max_timeout.as_millis()
                ));
            }
        },
    };
    Ok(JobRequest { method, url, headers, query, body, form, timeout })
}

/// An object of scalar values, as ordered string pairs (numbers and booleans
/// are accepted and written as JSON writes them).
fn string_map(value: Option<&Value>, field: &str) -> Result<Vec<(String, String)>, String> {
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let obj = value.as_object().ok_or_else(|| format!("`{field}` must be an object of strings"))?;
    obj.iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(format!("`{field}.{}` must be a string", printable(k))),
            };
            Ok((k.clone(), v))
        })
        .collect()
}

/// Names from a hostile message, made safe to echo in an error.
fn printable(s: &str) -> String {
    s.chars().take(64).map(|c| if c.is_control() { '?' } else { c }).collect()
}

/// The `response` object of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponseSummary {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// JSON when the body parses as JSON, else the text (lossy UTF-8).
    pub body: Value,
    pub body_truncated: bool,
}

/// The message published to `authrelay.results` (contract section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    pub job_id: String,
    pub workspace_id: Option<String>,
    pub phase: Phase,
    pub action_id: Option<String>,
    pub call_id: Option<String>,
    pub outcome: Outcome,
    pub attempts: u32,
    pub response: Option<ResponseSummary>,
    pub error: Option<JobError>,
    pub auth_profile_id: Option<Uuid>,
    pub auth_profile_version: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
}

impl JobResult {
    /// A result for a job that was never attempted.
    pub fn unattempted(
        identity: &JobIdentity,
        outcome: Outcome,
        error: Option<JobError>,
        started_at: DateTime<Utc>,
    ) -> Self {
        let finished_at = Utc::now();
        Self {
            job_id: identity.job_id.clone(),
            workspace_id: identity.workspace_id.clone(),
            phase: identity.phase,
            action_id: identity.action_id.clone(),
            call_id: identity.call_id.clone(),
            outcome,
            attempts: 0,
            response: None,
            error,
            auth_profile_id: identity.auth_profile_id,
            auth_profile_version: None,
            started_at,
            finished_at,
            duration_ms: (finished_at - started_at).num_milliseconds().max(0) as u64,
        }
    }

    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.phase.as_str(), self.outcome.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(extra: Value) -> Value {
        let mut base = json!({
            "job_id": "j1", "workspace_id": "acme", "phase": "during_call", "action_id": "crm",
            "request": {"url": "https://api.example.com/v1?source=voice"}
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    fn parse(v: &Value) -> Result<Job, JobParseError> {
        parse_job(&serde_json::to_vec(v).unwrap(), Phase::DuringCall, &JobLimits::default())
    }

    fn invalid_message(v: Value) -> String {
        match parse(&v) {
            Err(JobParseError::Invalid { message, identity }) => {
                assert_eq!(identity.job_id, "j1");
                message
            }
            other => panic!("expected invalid, got {other:?}"),
        }
    }

    #[test]
    fn a_minimal_job_defaults_to_get() {
        let job = parse(&job(json!({}))).unwrap();
        assert_eq!(job.request.method, Method::GET);
        assert_eq!(job.phase, Phase::DuringCall);
        assert!(job.deadline.is_none() && job.auth_profile_id.is_none());
    }

    #[test]
    fn the_full_contract_example_parses() {
        let v = job(json!({
            "call_id": "call-123",
            "request": {"method": "post", "url": "https://api.example.com/v1/contacts?source=voice",
                        "headers": {"Content-Type": "application/json"}, "query": {"limit": "10"},
                        "body": {"phone": "+15550100"}, "timeout_ms": 3000},
            "auth_profile_id": "7d1e2f3a-0000-4000-8000-000000000000",
            "inline_auth": {"type": "bearer", "token": "t"},
            "deadline": "2026-11-29T10:00:05Z", "max_attempts": 3
        }));
        let job = parse(&v).unwrap();
        assert_eq!(job.request.method, Method::POST);
        assert_eq!(job.request.timeout, Some(Duration::from_secs(3)));
        assert_eq!(job.request.query, vec![("limit".to_owned(), "10".to_owned())]);
        assert!(matches!(job.inline_auth, Some(AuthConfig::Bearer { .. })));
        assert_eq!(job.max_attempts, Some(3));
    }

    #[test]
    fn messages_without_an_identity_cannot_be_answered() {
        for bytes in [&b"not json"[..], b"[]", br#"{"workspace_id":"acme"}"#, br#"{"job_id":""}"#, br#"{"job_id":7}"#] {
            assert!(matches!(
                parse_job(bytes, Phase::PostCall, &JobLimits::default()),
                Err(JobParseError::Unidentifiable(_))
            ));
        }
    }

    #[test]
    fn invalid_jobs_say_what_is_wrong() {
        let cases = [
            (json!({"phase": "mid_call"}), "phase"),
            (json!({"phase": "post_call"}), "during_call queue"),
            (json!({"workspace_id": null}), "workspace_id"),
            (json!({"request": {"url": "ftp://x/"}}), "request.url"),
            (json!({"request": {"url": "https://user:pw@x/"}}), "credentials"),
            (json!({"request": {"url": "/relative"}}), "request.url"),
            (json!({"request": {"url": "https://x/", "method": "BREW"}}), "method"),
            (json!({"request": {"url": "https://x/", "headers": {"X-A\r\nInjected": "v"}}}), "header name"),
            (json!({"request": {"url": "https://x/", "headers": {"X-A": "v\r\nInjected: 1"}}}), "header value"),
            (json!({"request": {"url": "https://x/", "headers": {"Host": "evil"}}}), "host"),
            (json!({"request": {"url": "https://x/", "body": {}, "form": {}}}), "exclusive"),
            (json!({"request": {"url": "https://x/", "timeout_ms": 0}}), "timeout_ms"),
            (json!({"request": {"url": "https://x/", "query": {"a": {"nested": 1}}}}), "request.query"),
            (json!({"auth_profile_id": "nope"}), "auth_profile_id"),
            (json!({"inline_auth": {"type": "bearer"}}), "inline_auth.token"),
            (json!({"inline_auth": {"type": "magic"}}), "inline_auth.type"),
            (json!({"deadline": "tomorrow"}), "deadline"),
            (json!({"max_attempts": 0}), "max_attempts"),
        ];
        for (extra, needle) in cases {
            let message = invalid_message(job(extra.clone()));
            assert!(message.contains(needle), "{extra}: {message}");
        }
    }

    #[test]
    fn oversized_messages_are_invalid_but_still_answered() {
        let v = job(json!({"request": {"url": "https://x/", "body": "x".repeat(2000)}}));
        let limits = JobLimits { max_message_bytes: 1000, ..Default::default() };
        let err = parse_job(&serde_json::to_vec(&v).unwrap(), Phase::DuringCall, &limits).unwrap_err();
        let JobParseError::Invalid { identity, message } = err else { panic!("{err:?}") };
        assert_eq!((identity.job_id.as_str(), identity.workspace_id.as_deref()), ("j1", Some("acme")));
        assert!(message.contains("limit is 1000"), "{message}");
        // Without a usable job_id it cannot be answered, however large.
        let nameless = json!({"job_id": 7, "padding": "x".repeat(2000)});
        let err = parse_job(&serde_json::to_vec(&nameless).unwrap(), Phase::DuringCall, &limits).unwrap_err();
        assert!(matches!(err, JobParseError::Unidentifiable(_)), "{err:?}");
    }

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
}
