//! Reading one message into a validated [`Job`]: every field checked, and
//! errors that say what to fix without echoing anything unsafe. A message too
//! broken to be answered is [`JobParseError::Unidentifiable`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Job, JobIdentity, JobLimits, JobParseError, JobRequest, Phase};
use crate::profile::auth_config::parse_http_url;
use crate::profile::{AuthConfig, AuthType, has_control_chars};

const FORBIDDEN_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"];

/// Parses and validates one message body. `lane` is the phase of the queue it
/// came from: a job must name the phase of its queue.
pub fn parse_job(bytes: &[u8], lane: Phase, limits: &JobLimits) -> Result<Job, JobParseError> {
    if bytes.len() > limits.max_message_bytes {
        // Too large to trust any of it, but try to name it in the result. Only the
        // identity fields are kept: the rest is skipped, never built in memory.
        let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let identity = if is_object { identify(bytes, lane) } else { None };
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

/// What identifies a message as a job, read without building the rest of it
/// in memory (every other field is skipped unread); `None` when it has no
/// usable `job_id`. For answering messages that cannot be processed whole.
pub fn identify(bytes: &[u8], lane: Phase) -> Option<JobIdentity> {
    let fields: IdentityFields = serde_json::from_slice(bytes).ok()?;
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
}

/// The fields that identify a job.
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
        .ok_or_else(|| format!("`inline_auth.type` must be one of {}", AuthType::list()))?;
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
    let idempotent = match obj.get("idempotent") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("`request.idempotent` must be a boolean".into()),
    };
    Ok(JobRequest { method, url, headers, query, body, form, timeout, idempotent })
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
        assert!(job.request.idempotent, "requests are idempotent unless the job says otherwise");
        let booking =
            parse(&self::job(json!({"request": {"url": "https://x/", "method": "POST", "idempotent": false}})));
        assert!(!booking.unwrap().request.idempotent);
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
        assert!(matches!(
            job.inline_auth.map(|a| a.credential),
            Some(crate::profile::auth_config::Credential::Bearer { .. })
        ));
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
            (json!({"request": {"url": "https://x/", "idempotent": "no"}}), "request.idempotent"),
            (json!({"request": {"url": "https://x/", "idempotent": 0}}), "request.idempotent"),
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
        // Only an object names a job, not an array that happens to hold the fields in order.
        let array = json!(["j1", "acme", "during_call", "crm", null, "x".repeat(2000)]);
        let err = parse_job(&serde_json::to_vec(&array).unwrap(), Phase::DuringCall, &limits).unwrap_err();
        assert!(matches!(err, JobParseError::Unidentifiable(_)), "{err:?}");
    }
}
