//! Properties of the code that reads hostile input: the job parser never
//! panics and only lets through what it promises; credentials land only where
//! their type says; the redactor removes every form of a secret it knows; the
//! token-response reader neither panics nor quotes a secret.
//!
//! The token-response reader is private to `credentials::oauth2`, so it is
//! driven through `TokenClient::fetch` against a server on 127.0.0.1 whose
//! reply each case sets.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authrelay::credentials::apply::{OutgoingBody, OutgoingRequest, REDACTED, Redactor};
use authrelay::credentials::oauth2::{TokenClient, TokenClientSettings, TokenError};
use authrelay::job::{ErrorKind, Job, JobLimits, JobParseError, Phase, parse_job};
use authrelay::profile::auth_config::{ApiKeyMethod, ClientAuth, OAuth2Config};
use authrelay::profile::{AuthConfig, AuthType};
use authrelay_testkit::set_path;
use authrelay_testkit::targets::serve;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence, TestCaseError, TestRunner};
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};

const CASES: u32 = 256;
/// Each token case is a real HTTP exchange on 127.0.0.1, so fewer of them.
const TOKEN_CASES: u32 = 96;

fn config(cases: u32) -> ProptestConfig {
    // No regression files: this crate's tests write nothing into the source tree.
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::Off)),
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

fn any_phase() -> impl Strategy<Value = Phase> {
    prop::sample::select(Phase::ALL.to_vec())
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
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

// ---------------------------------------------------------------------------
// Credentials land only where their type says
// ---------------------------------------------------------------------------

/// Job content is lowercase; every secret starts with `ZQ` and every access token
/// with `ZX`, so no secret can be found in a job by accident.
fn secret() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "ZQ[ -~]{1,24}",
        1 => "ZQ[a-z ü€/+=%&]{1,16}",
    ]
    .prop_filter("no masked marker", |s| !s.contains("••••"))
}

fn access_token() -> impl Strategy<Value = String> {
    "ZX[A-Za-z0-9._~+/-]{8,24}"
}

const HEADER_NAMES: &[&str] = &["authorization", "x-api-key", "x-tenant", "accept", "api_key"];
const FIELD_NAMES: &[&str] = &["api_key", "token", "q", "key with space", "a&b=c", "ünï"];

#[derive(Debug, Clone)]
enum JobBody {
    None,
    Object(BTreeMap<String, String>),
    Array,
    Text,
    Form(BTreeMap<String, String>),
}

fn lowercase_map(names: &'static [&'static str]) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(prop::sample::select(names).prop_map(str::to_owned), "[a-z0-9]{0,10}", 0..4)
}

fn any_job() -> impl Strategy<Value = Job> {
    let url = (
        prop::sample::select(vec!["https://api.example.com", "http://127.0.0.1:8080"]),
        "(/[a-z]{0,6}){0,2}",
        lowercase_map(FIELD_NAMES),
    );
    let body = prop_oneof![
        Just(JobBody::None),
        lowercase_map(FIELD_NAMES).prop_map(JobBody::Object),
        Just(JobBody::Array),
        Just(JobBody::Text),
        lowercase_map(FIELD_NAMES).prop_map(JobBody::Form),
    ];
    (url, lowercase_map(HEADER_NAMES), lowercase_map(FIELD_NAMES), body).prop_map(
        |((base, path, own_query), headers, query, body)| {
            let mut url = url::Url::parse(&format!("{base}{path}")).unwrap();
            if !own_query.is_empty() {
                url.query_pairs_mut().extend_pairs(own_query.iter());
            }
            let mut request = json!({"method": "POST", "url": url.as_str(), "headers": headers, "query": query});
            match body {
                JobBody::None => {}
                JobBody::Object(fields) => request["body"] = json!(fields),
                JobBody::Array => request["body"] = json!(["a", 1]),
                JobBody::Text => request["body"] = json!("plain"),
                JobBody::Form(fields) => request["form"] = json!(fields),
            }
            let job =
                json!({"job_id": "j", "workspace_id": "w", "phase": "post_call", "action_id": "a", "request": request});
            parse_job(&serde_json::to_vec(&job).unwrap(), Phase::PostCall, &JobLimits::default())
                .expect("the generated job is valid")
        },
    )
}

/// A config of any type, its secrets (each distinct), and an access token for OAuth 2.0.
#[derive(Debug, Clone)]
struct Credential {
    config: AuthConfig,
    access_token: Option<SecretString>,
}

fn any_credential() -> impl Strategy<Value = Credential> {
    let pair_keys = |names: Vec<&'static str>| prop::sample::subsequence(names, 1..4);
    let api_key = prop_oneof![
        pair_keys(vec!["X-Api-Key", "x-tenant", "Authorization", "api_key"]).prop_map(|k| ("header", k)),
        pair_keys(FIELD_NAMES.to_vec()).prop_map(|k| ("query", k)),
        pair_keys(FIELD_NAMES.to_vec()).prop_map(|k| ("body", k)),
    ];
    (0..4usize, secret(), "[a-z]{1,8}", api_key, access_token(), any::<bool>()).prop_filter_map(
        "the config is valid",
        |(kind, secret, user, (method, keys), token, post)| {
            let (auth_type, input) = match kind {
                0 => (AuthType::Bearer, json!({"token": secret})),
                1 => (AuthType::Basic, json!({"username": user, "password": secret})),
                2 => {
                    // Each pair's value is the secret plus its index: all distinct, none inside another.
                    let pairs: Vec<Value> =
                        keys.iter().enumerate().map(|(i, k)| json!({"key": k, "value": format!("{secret}{i}")})).collect();
                    (AuthType::ApiKey, json!({"method": method, "pairs": pairs}))
                }
                _ => (
                    AuthType::OAuth2ClientCredentials,
                    json!({"client_id": user, "client_secret": secret, "token_endpoint": "https://auth.example.com/token",
                           "client_auth": if post { "post" } else { "basic" }}),
                ),
            };
            let config = AuthConfig::parse(auth_type, &input, None, "config").ok()?;
            let access_token = (kind == 3).then(|| SecretString::from(token));
            Some(Credential { config, access_token })
        },
    )
}

/// Every form in which `secret` could be carried by a request.
fn forms(secret: &str) -> Vec<String> {
    let json_escaped = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret.replace(' ', "%20"),
        json_escaped[1..json_escaped.len() - 1].to_owned(),
    ]
}

/// Where any of `needles` appears: `url`, `header:<name>` or `body`.
fn places(request: &OutgoingRequest, needles: &[String]) -> BTreeSet<String> {
    let found = |text: &str| needles.iter().any(|n| text.contains(n.as_str()));
    let mut places = BTreeSet::new();
    if found(request.url.as_str()) {
        places.insert("url".to_owned());
    }
    for (name, value) in &request.headers {
        if found(&String::from_utf8_lossy(value.as_bytes())) || found(name.as_str()) {
            places.insert(format!("header:{name}"));
        }
    }
    if let Some((bytes, _)) = request.encoded_body()
        && found(&String::from_utf8_lossy(&bytes))
    {
        places.insert("body".to_owned());
    }
    places
}

fn authorization_of(request: &OutgoingRequest) -> String {
    String::from_utf8_lossy(request.headers[AUTHORIZATION].as_bytes()).into_owned()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn query_pairs(url: &url::Url) -> Vec<(String, String)> {
    url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
}

fn headers_without(request: &OutgoingRequest, names: &[String]) -> Vec<(String, Vec<u8>)> {
    request
        .headers
        .iter()
        .filter(|(n, _)| !names.contains(&n.as_str().to_owned()))
        .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn check_application(job: &Job, credential: &Credential) -> Result<(), TestCaseError> {
    let before = OutgoingRequest::from_job(job);
    let mut after = before.clone();
    let applied = after.apply(&credential.config, credential.access_token.as_ref());
    let secrets: Vec<String> = credential.config.secrets().iter().map(|(_, s)| s.expose_secret().to_owned()).collect();
    let Err(error) = applied else { return check_placement(&before, &after, credential, &secrets) };
    // Refusing is allowed (a secret a header cannot carry, a body that is not an object),
    // but only as invalid_job and without quoting the secret.
    prop_assert_eq!(error.kind, ErrorKind::InvalidJob);
    for secret in &secrets {
        prop_assert!(!forms(secret).iter().any(|f| error.message.contains(f.as_str())), "{}", error.message);
    }
    match &credential.config {
        AuthConfig::ApiKey { method: ApiKeyMethod::Body, .. } => {
            prop_assert!(matches!(before.body, OutgoingBody::Json(ref v) if !v.is_object()), "{}", error.message);
        }
        AuthConfig::ApiKey { .. } => prop_assert!(false, "query/header API keys that parsed are always applicable"),
        _ => {
            // Authorization-header types refuse only what a header cannot carry.
            let all_visible = secrets.iter().all(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)));
            prop_assert!(!all_visible, "a visible-ASCII credential was refused: {}", error.message);
        }
    }
    Ok(())
}

fn check_placement(
    before: &OutgoingRequest,
    after: &OutgoingRequest,
    credential: &Credential,
    secrets: &[String],
) -> Result<(), TestCaseError> {
    let authorization = vec!["authorization".to_owned()];
    match &credential.config {
        AuthConfig::Bearer { token } => {
            prop_assert_eq!(places(after, &forms(token.expose_secret())), set(&["header:authorization"]));
            prop_assert_eq!(after.headers.get_all(AUTHORIZATION).iter().count(), 1);
            prop_assert_eq!(authorization_of(after), format!("Bearer {}", token.expose_secret()));
        }
        AuthConfig::Basic { username, password } => {
            prop_assert_eq!(
                places(after, &forms(password.expose_secret())),
                BTreeSet::new(),
                "the password travels only inside Basic"
            );
            let credentials = BASE64.encode(format!("{username}:{}", password.expose_secret()));
            prop_assert_eq!(places(after, &forms(&credentials)), set(&["header:authorization"]));
            prop_assert_eq!(authorization_of(after), format!("Basic {credentials}"));
        }
        AuthConfig::OAuth2ClientCredentials(c) => {
            prop_assert_eq!(
                places(after, &forms(c.client_secret.expose_secret())),
                BTreeSet::new(),
                "the client secret goes only to the token endpoint"
            );
            let token = credential.access_token.as_ref().expect("oauth cases carry a token").expose_secret();
            prop_assert_eq!(places(after, &forms(token)), set(&["header:authorization"]));
            prop_assert_eq!(authorization_of(after), format!("Bearer {token}"));
        }
        AuthConfig::ApiKey { method, pairs } => {
            for pair in pairs {
                let expected = match method {
                    ApiKeyMethod::Header => set(&[&format!("header:{}", pair.key.to_ascii_lowercase())]),
                    ApiKeyMethod::Query => set(&["url"]),
                    ApiKeyMethod::Body => set(&["body"]),
                };
                prop_assert_eq!(places(after, &forms(pair.value.expose_secret())), expected, "pair {}", pair.key);
            }
            let keys: Vec<String> = pairs.iter().map(|p| p.key.clone()).collect();
            match method {
                ApiKeyMethod::Header => {
                    let names: Vec<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
                    prop_assert_eq!(&after.url, &before.url);
                    prop_assert_eq!(&after.body, &before.body);
                    prop_assert_eq!(headers_without(after, &names), headers_without(before, &names));
                    for pair in pairs {
                        let values: Vec<&[u8]> =
                            after.headers.get_all(pair.key.as_str()).iter().map(|v| v.as_bytes()).collect();
                        prop_assert_eq!(values, vec![pair.value.expose_secret().as_bytes()]);
                    }
                }
                ApiKeyMethod::Query => {
                    prop_assert_eq!(headers_without(after, &[]), headers_without(before, &[]));
                    prop_assert_eq!(&after.body, &before.body);
                    prop_assert_eq!(after.url.path(), before.url.path());
                    prop_assert_eq!(after.url.host_str(), before.url.host_str());
                    let mut expected: Vec<(String, String)> =
                        query_pairs(&before.url).into_iter().filter(|(k, _)| !keys.contains(k)).collect();
                    expected.extend(pairs.iter().map(|p| (p.key.clone(), p.value.expose_secret().to_owned())));
                    prop_assert_eq!(query_pairs(&after.url), expected);
                }
                ApiKeyMethod::Body => {
                    prop_assert_eq!(&after.url, &before.url);
                    prop_assert_eq!(headers_without(after, &[]), headers_without(before, &[]));
                    let secret_of =
                        |k: &str| pairs.iter().find(|p| p.key == k).map(|p| p.value.expose_secret().to_owned());
                    match (&before.body, &after.body) {
                        (OutgoingBody::Json(Value::Object(old)), OutgoingBody::Json(Value::Object(new))) => {
                            for (k, v) in new {
                                match secret_of(k) {
                                    Some(s) => prop_assert_eq!(v, &json!(s)),
                                    None => prop_assert_eq!(Some(v), old.get(k)),
                                }
                            }
                            prop_assert!(old.keys().all(|k| new.contains_key(k)));
                        }
                        (OutgoingBody::None, OutgoingBody::Json(Value::Object(new))) => {
                            prop_assert_eq!(new.len(), pairs.len());
                        }
                        (OutgoingBody::Form(old), OutgoingBody::Form(new)) => {
                            let mut expected: Vec<(String, String)> =
                                old.iter().filter(|(k, _)| !keys.contains(k)).cloned().collect();
                            expected.extend(pairs.iter().map(|p| (p.key.clone(), p.value.expose_secret().to_owned())));
                            prop_assert_eq!(new, &expected);
                        }
                        (old, new) => prop_assert!(false, "body {:?} became {:?}", old, new),
                    }
                }
            }
        }
    }
    // Nothing but the credential changed where the credential does not go.
    if !matches!(credential.config, AuthConfig::ApiKey { .. }) {
        prop_assert_eq!(&after.url, &before.url);
        prop_assert_eq!(&after.body, &before.body);
        prop_assert_eq!(headers_without(after, &authorization), headers_without(before, &authorization));
    }
    prop_assert!(!secrets.is_empty());
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn applied_credentials_appear_only_where_their_type_sends_them(job in any_job(), credential in any_credential()) {
        check_application(&job, &credential)?;
    }
}

// ---------------------------------------------------------------------------
// The redactor
// ---------------------------------------------------------------------------

/// Whether `needle` occurs in `text` other than where it overlaps a `[REDACTED]`
/// marker (a secret sharing characters with the marker can re-form around it,
/// which reveals nothing).
fn leaks(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return false;
    }
    let markers: Vec<(usize, usize)> = text.match_indices(REDACTED).map(|(i, m)| (i, i + m.len())).collect();
    (0..text.len()).filter(|i| text.is_char_boundary(*i)).any(|start| {
        text[start..].starts_with(needle) && {
            let end = start + needle.len();
            !markers.iter().any(|(a, b)| start < *b && *a < end)
        }
    })
}

/// The secrets a redactor for `credential` must remove, each with the forms it may come back in.
fn needles(credential: &Credential) -> Vec<String> {
    let mut raw: Vec<String> = credential.config.secrets().iter().map(|(_, s)| s.expose_secret().to_owned()).collect();
    if let AuthConfig::Basic { username, password } = &credential.config {
        raw.push(BASE64.encode(format!("{username}:{}", password.expose_secret())));
    }
    if let Some(token) = &credential.access_token {
        raw.push(token.expose_secret().to_owned());
    }
    raw.iter().flat_map(|s| forms(s)).filter(|f| f.len() >= 3).collect()
}

/// Text made of filler and, between the filler, the secrets in their forms.
fn text_with(pieces: &[(String, usize)], needles: &[String]) -> String {
    pieces.iter().map(|(filler, pick)| format!("{filler}{}", needles[pick % needles.len()])).collect()
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn the_redactor_removes_every_form_of_every_secret_from_any_text(
        credential in any_credential(),
        pieces in prop::collection::vec((".{0,12}", any::<usize>()), 1..6),
        tail in ".{0,12}",
    ) {
        let redactor = Redactor::for_config(&credential.config, credential.access_token.as_ref());
        let needles = needles(&credential);
        let text = format!("{}{tail}", text_with(&pieces, &needles));
        let clean = redactor.redact(&text);
        for needle in &needles {
            prop_assert!(!leaks(&clean, needle), "{needle:?} survives in {clean:?}");
        }
    }

    #[test]
    fn the_redactor_removes_secrets_from_every_string_and_key_of_a_json_document(
        credential in any_credential(),
        document in any_json(),
        pieces in prop::collection::vec((".{0,8}", any::<usize>()), 1..4),
    ) {
        let redactor = Redactor::for_config(&credential.config, credential.access_token.as_ref());
        let needles = needles(&credential);
        let echoed = text_with(&pieces, &needles);
        let mut value = json!({"echo": echoed, "list": [document, echoed.clone()], echoed.clone(): {"nested": echoed}});
        redactor.redact_json(&mut value);
        let mut strings = Vec::new();
        collect_strings(&value, &mut strings);
        for needle in &needles {
            for s in &strings {
                prop_assert!(!leaks(s, needle), "{needle:?} survives in {s:?}");
            }
        }
    }
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(obj) => {
            for (k, v) in obj {
                out.push(k.clone());
                collect_strings(v, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// The token-response reader, through a token endpoint on 127.0.0.1
// ---------------------------------------------------------------------------

/// How a field of a token reply is filled.
#[derive(Debug, Clone)]
enum Filler {
    Text(String),
    /// The client secret in one of the forms the request carried it, inside text.
    Echo {
        form: usize,
        before: String,
        after: String,
    },
    Int(i64),
    Big(u64),
    Float(f64),
    Bool(bool),
    Null,
    List(Vec<String>),
    Object,
}

fn filler() -> impl Strategy<Value = Filler> {
    prop_oneof![
        3 => "[ -~]{0,16}".prop_map(Filler::Text),
        3 => (0..3usize, "[ -~]{0,8}", "[ -~]{0,8}").prop_map(|(form, before, after)| Filler::Echo { form, before, after }),
        1 => any::<i64>().prop_map(Filler::Int),
        1 => any::<u64>().prop_map(Filler::Big),
        1 => any::<f64>().prop_map(Filler::Float),
        1 => any::<bool>().prop_map(Filler::Bool),
        1 => Just(Filler::Null),
        1 => prop::collection::vec("[a-z]{0,6}", 0..3).prop_map(Filler::List),
        1 => Just(Filler::Object),
    ]
}

const TOKEN_FIELDS: &[&str] =
    &["access_token", "token_type", "expires_in", "scope", "error", "error_description", "extra"];

#[derive(Debug, Clone)]
enum ReplyBody {
    Json(Vec<(usize, Filler)>),
    Form(Vec<(usize, Filler)>),
    Junk(Vec<(String, Option<usize>)>),
    Bytes(Vec<u8>),
    /// A well-formed token without `expires_in`: it must work with the default lifetime.
    TokenWithoutExpiry(String),
}

#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    content_type: Option<&'static str>,
    body: ReplyBody,
    secret: String,
}

fn any_reply() -> impl Strategy<Value = Reply> {
    let fields = || prop::collection::vec((0..TOKEN_FIELDS.len(), filler()), 0..6);
    let body = prop_oneof![
        4 => fields().prop_map(ReplyBody::Json),
        2 => fields().prop_map(ReplyBody::Form),
        2 => prop::collection::vec(("[ -~\n]{0,16}", prop::option::of(0..3usize)), 0..4).prop_map(ReplyBody::Junk),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(ReplyBody::Bytes),
        2 => "[A-Za-z0-9._-]{4,24}".prop_map(ReplyBody::TokenWithoutExpiry),
    ];
    let status = prop_oneof![6 => Just(200u16), 1 => Just(201), 1 => Just(400), 1 => Just(401), 1 => Just(429), 1 => Just(500), 1 => Just(503)];
    let content_type = prop::sample::select(vec![
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("application/x-www-form-urlencoded"),
        Some("text/html"),
        Some("text/plain"),
        None,
    ]);
    (status, content_type, body, "[ -~]{3,20}").prop_map(|(status, content_type, body, secret)| Reply {
        status,
        content_type,
        body,
        secret,
    })
}

/// The client secret as the token request carried it: raw (a form field),
/// form-encoded (on the wire), and inside the Basic credentials.
fn secret_forms(client_id: &str, secret: &str) -> Vec<String> {
    let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    vec![secret.to_owned(), encode(secret), BASE64.encode(format!("{}:{}", encode(client_id), encode(secret)))]
}

fn fill(filler: &Filler, forms: &[String]) -> Value {
    match filler {
        Filler::Text(s) => json!(s),
        Filler::Echo { form, before, after } => json!(format!("{before}{}{after}", forms[*form])),
        Filler::Int(n) => json!(n),
        Filler::Big(n) => json!(n),
        Filler::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Filler::Bool(b) => json!(b),
        Filler::Null => Value::Null,
        Filler::List(items) => json!(items),
        Filler::Object => json!({"nested": forms[0]}),
    }
}

fn render(reply: &Reply, forms: &[String]) -> Vec<u8> {
    let fields = |items: &[(usize, Filler)]| -> Vec<(&'static str, Value)> {
        items.iter().map(|(i, f)| (TOKEN_FIELDS[*i], fill(f, forms))).collect()
    };
    match &reply.body {
        ReplyBody::Json(items) => serde_json::to_vec(
            &fields(items).into_iter().map(|(k, v)| (k.to_owned(), v)).collect::<Map<String, Value>>(),
        )
        .unwrap(),
        ReplyBody::Form(items) => {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            for (name, value) in fields(items) {
                let text = match value {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                form.append_pair(name, &text);
            }
            form.finish().into_bytes()
        }
        ReplyBody::Junk(parts) => parts
            .iter()
            .map(|(text, echo)| format!("{text}{}", echo.map(|i| forms[i].as_str()).unwrap_or_default()))
            .collect::<String>()
            .into_bytes(),
        ReplyBody::Bytes(bytes) => bytes.clone(),
        ReplyBody::TokenWithoutExpiry(token) => {
            serde_json::to_vec(&json!({"access_token": token, "token_type": "Bearer"})).unwrap()
        }
    }
}

type Shared = Arc<Mutex<(u16, Option<&'static str>, Vec<u8>)>>;

async fn token_endpoint(reply: Shared) -> std::net::SocketAddr {
    use axum::response::IntoResponse as _;
    let app = axum::Router::new().fallback(move || {
        let reply = reply.clone();
        async move {
            let (status, content_type, body) = reply.lock().unwrap().clone();
            let mut response = (axum::http::StatusCode::from_u16(status).unwrap(), body).into_response();
            let headers = response.headers_mut();
            headers.remove(axum::http::header::CONTENT_TYPE);
            if let Some(ct) = content_type {
                headers.insert(axum::http::header::CONTENT_TYPE, axum::http::HeaderValue::from_static(ct));
            }
            response
        }
    });
    serve(app).await
}

fn check_token_reply(
    reply: &Reply,
    body: &[u8],
    fetched: &Result<authrelay::credentials::oauth2::AccessToken, TokenError>,
    forms: &[String],
    default_lifetime: Duration,
) -> Result<(), TestCaseError> {
    match fetched {
        Ok(token) => {
            prop_assert!((200..300).contains(&reply.status), "a token from HTTP {}", reply.status);
            let value = token.value.expose_secret();
            prop_assert!(!value.trim().is_empty());
            prop_assert!(reqwest::header::HeaderValue::from_str(value).is_ok(), "{value:?}");
            prop_assert!(token.token_type.eq_ignore_ascii_case("bearer"), "{}", token.token_type);
            let debug = format!("{token:?}");
            prop_assert!(debug.contains("[REDACTED]") && (value.len() < 8 || !debug.contains(value)), "{debug}");
            if let ReplyBody::Json(_) = reply.body {
                // Tolerant reading: a number is taken as its text.
                let sent: Value = serde_json::from_slice(body).unwrap();
                let as_text = match sent.get("access_token") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(n.to_string()),
                    _ => None,
                };
                prop_assert_eq!(as_text.as_deref(), Some(value));
                prop_assert!(sent.get("error").is_none_or(|e| e.is_null() || e == ""), "{sent}");
            }
        }
        Err(error) => {
            let texts = [error.to_string(), format!("{error:?}")];
            for text in &texts {
                for form in forms {
                    prop_assert!(!text.contains(form.as_str()), "{form:?} quoted in {text:?}");
                }
            }
            if !(200..300).contains(&reply.status) {
                prop_assert!(
                    matches!(error, TokenError::Status { status, .. } if *status == reply.status),
                    "{error:?}"
                );
            }
        }
    }
    if let (ReplyBody::TokenWithoutExpiry(expected), true) = (&reply.body, (200..300).contains(&reply.status)) {
        let token = fetched.as_ref().map_err(|e| TestCaseError::fail(format!("a plain token reply failed: {e}")))?;
        prop_assert_eq!(token.value.expose_secret(), expected.as_str());
        prop_assert_eq!(token.expires_in, None);
        prop_assert_eq!(token.lifetime, default_lifetime, "no expires_in means the default lifetime");
    }
    Ok(())
}

#[test]
fn the_token_reply_reader_never_panics_and_never_quotes_the_client_secret() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let shared: Shared = Arc::new(Mutex::new((200, None, Vec::new())));
    let addr = runtime.block_on(token_endpoint(shared.clone()));
    let default_lifetime = Duration::from_secs(1234);
    let client = TokenClient::new(
        reqwest::Client::builder().no_proxy().build().unwrap(),
        TokenClientSettings { default_lifetime, ..TokenClientSettings::default() },
    );
    let mut runner = TestRunner::new(config(TOKEN_CASES));
    let outcome = runner.run(&(any_reply(), any::<bool>()), |(reply, post)| {
        let client_id = "client-1";
        let forms = secret_forms(client_id, &reply.secret);
        let body = render(&reply, &forms);
        *shared.lock().unwrap() = (reply.status, reply.content_type, body.clone());
        let oauth = OAuth2Config {
            client_id: client_id.into(),
            client_secret: SecretString::from(reply.secret.clone()),
            token_endpoint: format!("http://{addr}/token").parse().unwrap(),
            scope: None,
            audience: None,
            client_auth: if post { ClientAuth::Post } else { ClientAuth::Basic },
        };
        let fetched = runtime.block_on(client.fetch(&oauth, Duration::from_secs(5)));
        check_token_reply(&reply, &body, &fetched, &forms, default_lifetime)
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
