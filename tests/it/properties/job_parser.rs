//! The job parser never panics and only lets through what it promises.

use std::time::Duration;

use authrelay::credentials::apply::OutgoingRequest;
use authrelay::job::{Job, JobLimits, JobParseError, Phase, parse_job};
use authrelay_testkit::set_path;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};

use super::{CASES, config};

fn any_phase() -> impl Strategy<Value = Phase> {
    prop::sample::select(Phase::ALL.to_vec())
}

/// Any JSON value, a few levels deep.
pub(super) fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        ".{0,24}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(".{0,10}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Values a hostile producer would try in a job field.
fn hostile_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => any_json(),
        1 => prop::sample::select(vec![
            json!(""),
            json!("x".repeat(129)),
            json!("é".repeat(128)),
            json!("a\r\nb"),
            json!("a\u{0}b"),
            json!(u64::MAX),
            json!(-1),
            json!(0),
            json!(1e300),
            json!("mid_call"),
            json!("post_call"),
            json!("pre_call"),
            json!("during_call"),
            json!("file:///etc/passwd"),
            json!("gopher://127.0.0.1:70/_x"),
            json!("javascript:alert(1)"),
            json!("data:text/plain,hi"),
            json!("http://user:pw@127.0.0.1/"),
            json!("http://127.0.0.1:99999/"),
            json!("http:///no-host"),
            json!("https://127.0.0.1/a#frag"),
            json!({"X-A\r\nInjected": "v"}),
            json!({"X-A": "v\r\nInjected: 1"}),
            json!({"Host": "evil"}),
            json!({"type": "bearer"}),
            json!({"type": "bearer", "token": "t"}),
            json!({"type": "api_key", "method": "header", "pairs": [{"key": "X K", "value": "v"}]}),
            json!("2026-11-29T10:00:05Z"),
            json!("7d1e2f3a-0000-4000-8000-000000000000"),
        ]),
    ]
}

const FIELD_PATHS: &[&[&str]] = &[
    &["job_id"],
    &["workspace_id"],
    &["phase"],
    &["action_id"],
    &["call_id"],
    &["request"],
    &["request", "method"],
    &["request", "url"],
    &["request", "headers"],
    &["request", "query"],
    &["request", "body"],
    &["request", "form"],
    &["request", "timeout_ms"],
    &["auth_profile_id"],
    &["inline_auth"],
    &["deadline"],
    &["max_attempts"],
];

fn base_job(phase: Phase) -> Value {
    json!({
        "job_id": "job-1", "workspace_id": "acme", "phase": phase.as_str(), "action_id": "crm",
        "request": {"method": "POST", "url": "https://api.example.com/v1?source=voice",
                    "headers": {"x-trace": "1"}, "query": {"limit": "10"}, "body": {"a": 1}, "timeout_ms": 3000},
        "inline_auth": {"type": "bearer", "token": "tok-123"},
        "deadline": "2026-11-29T10:00:05Z", "max_attempts": 3
    })
}

/// A valid job with some fields replaced by hostile values (`None` removes the field).
fn mutated_job() -> impl Strategy<Value = (Phase, Value)> {
    let mutation = (0..FIELD_PATHS.len(), prop::option::weighted(0.85, hostile_value()));
    (any_phase(), prop::collection::vec(mutation, 1..5)).prop_map(|(phase, mutations)| {
        let mut job = base_job(phase);
        for (path, value) in mutations {
            set_path(&mut job, FIELD_PATHS[path], value);
        }
        (phase, job)
    })
}

// ---------------------------------------------------------------------------
// The job parser
// ---------------------------------------------------------------------------

fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control)
}

/// What a job that passed validation is guaranteed to be.
fn check_parsed(
    bytes: &[u8],
    lane: Phase,
    limits: &JobLimits,
    parsed: &Result<Job, JobParseError>,
) -> Result<(), TestCaseError> {
    match parsed {
        Ok(job) => {
            prop_assert!(bytes.len() <= limits.max_message_bytes);
            prop_assert!(valid_id(&job.job_id, 128), "job_id {:?}", job.job_id);
            prop_assert!(valid_id(&job.workspace_id, 128));
            prop_assert_eq!(job.phase, lane);
            let url = &job.request.url;
            prop_assert!(matches!(url.scheme(), "http" | "https"), "{}", url);
            prop_assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{}", url);
            prop_assert!(url.username().is_empty() && url.password().is_none(), "{}", url);
            prop_assert!(url.fragment().is_none(), "{}", url);
            for (name, value) in &job.request.headers {
                prop_assert!(
                    !["host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"]
                        .contains(&name.as_str()),
                    "framing header {} let through",
                    name
                );
                prop_assert!(!value.as_bytes().iter().any(|b| matches!(b, b'\r' | b'\n' | 0)), "{:?}", value);
            }
            prop_assert!(!(job.request.body.is_some() && job.request.form.is_some()));
            prop_assert!(job.request.timeout.is_none_or(|t| t >= Duration::from_millis(1) && t <= limits.max_timeout));
            prop_assert!(job.max_attempts.is_none_or(|n| n >= 1 && n <= limits.max_attempts));
            // Building the outgoing request from any accepted job is total.
            let request = OutgoingRequest::from_job(job);
            prop_assert!(matches!(request.url.scheme(), "http" | "https"));
        }
        Err(JobParseError::Invalid { identity, message }) => {
            prop_assert!(valid_id(&identity.job_id, 128), "identity {:?}", identity);
            prop_assert!(!message.is_empty());
        }
        Err(JobParseError::Unidentifiable(message)) => prop_assert!(!message.is_empty()),
    }
    Ok(())
}

fn small_limits() -> impl Strategy<Value = JobLimits> {
    (0usize..6000).prop_map(|max| JobLimits { max_message_bytes: max, ..JobLimits::default() })
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn the_job_parser_never_panics_on_arbitrary_bytes(
        bytes in prop::collection::vec(any::<u8>(), 0..4096),
        lane in any_phase(),
        limits in small_limits(),
    ) {
        let parsed = parse_job(&bytes, lane, &limits);
        check_parsed(&bytes, lane, &limits, &parsed)?;
    }

    #[test]
    fn the_job_parser_never_panics_on_arbitrary_json(value in any_json(), lane in any_phase()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        let limits = JobLimits::default();
        let parsed = parse_job(&bytes, lane, &limits);
        check_parsed(&bytes, lane, &limits, &parsed)?;
    }

    #[test]
    fn a_job_with_hostile_fields_is_either_valid_or_refused_with_its_identity((_base_phase, job) in mutated_job(), lane in any_phase()) {
        let bytes = serde_json::to_vec(&job).unwrap();
        let limits = JobLimits::default();
        let parsed = parse_job(&bytes, lane, &limits);
        check_parsed(&bytes, lane, &limits, &parsed)?;
        // A usable job_id is always echoed, whatever else is wrong.
        if let Some(id) = job.get("job_id").and_then(Value::as_str).filter(|id| valid_id(id, 128)) {
            match &parsed {
                Ok(parsed) => prop_assert_eq!(&parsed.job_id, id),
                Err(JobParseError::Invalid { identity, .. }) => prop_assert_eq!(&identity.job_id, id),
                Err(JobParseError::Unidentifiable(m)) => prop_assert!(false, "job_id {id:?} was usable: {m}"),
            }
        }
        if parsed.is_ok() {
            prop_assert_eq!(job["phase"].as_str(), Some(lane.as_str()), "a job is accepted only on its own phase's queue");
        }
    }
}
