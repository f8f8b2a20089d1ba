//! Credentials land only where their type says.

use std::collections::{BTreeMap, BTreeSet};

use authrelay::credentials::apply::{OutgoingBody, OutgoingRequest};
use authrelay::job::{ErrorKind, Job, JobLimits, Phase, parse_job};
use authrelay::profile::auth_config::{ApiKeyMethod, Credential as Kind};
use authrelay::profile::{AuthConfig, AuthType};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use reqwest::header::AUTHORIZATION;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};

use super::{CASES, config};

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
pub(super) struct Credential {
    pub(super) config: AuthConfig,
    pub(super) access_token: Option<SecretString>,
}

pub(super) fn any_credential() -> impl Strategy<Value = Credential> {
    let pair_keys = |names: Vec<&'static str>| prop::sample::subsequence(names, 1..4);
    let api_key = prop_oneof![
        pair_keys(vec!["X-Api-Key", "x-tenant", "Authorization", "api_key"]).prop_map(|k| ("header", k)),
        pair_keys(FIELD_NAMES.to_vec()).prop_map(|k| ("query", k)),
        pair_keys(FIELD_NAMES.to_vec()).prop_map(|k| ("body", k)),
    ];
    (0..7usize, secret(), "[a-z]{1,8}", api_key, access_token(), any::<bool>()).prop_filter_map(
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
                3 => (
                    AuthType::OAuth2ClientCredentials,
                    json!({"client_id": user, "client_secret": secret, "token_endpoint": "https://auth.example.com/token",
                           "client_auth": if post { "post" } else { "basic" }}),
                ),
                // Signing types: the secret never goes into the request, only the signature does.
                5 => (
                    AuthType::Hmac,
                    if post {
                        json!({"secret": secret, "scheme": "standard_webhooks"})
                    } else {
                        json!({"secret": secret, "scheme": "custom", "header": "X-Signature", "algorithm": "sha256", "encoding": "hex"})
                    },
                ),
                6 => (
                    AuthType::AwsSigv4,
                    json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": secret, "region": "eu-west-1", "service": "execute-api"}),
                ),
                // A token sent in another header, or with another prefix (`send_as`).
                _ => (
                    AuthType::OAuth2ClientCredentials,
                    json!({"client_id": user, "client_secret": secret, "token_endpoint": "https://auth.example.com/token",
                           "send_as": if post { json!({"header": "X-Auth-Token"}) } else { json!({"prefix": "Token "}) }}),
                ),
            };
            let config = AuthConfig::parse(auth_type, &input, None, "config").ok()?;
            let access_token = matches!(kind, 3 | 4).then(|| SecretString::from(token));
            Some(Credential { config, access_token })
        },
    )
}

/// Every form in which `secret` could be carried by a request.
pub(super) fn forms(secret: &str) -> Vec<String> {
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
    match &credential.config.credential {
        Kind::ApiKey { method: ApiKeyMethod::Body, .. } => {
            prop_assert!(matches!(before.body, OutgoingBody::Json(ref v) if !v.is_object()), "{}", error.message);
        }
        Kind::ApiKey { .. } => prop_assert!(false, "query/header API keys that parsed are always applicable"),
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
    match &credential.config.credential {
        Kind::Bearer { token } => {
            prop_assert_eq!(places(after, &forms(token.expose_secret())), set(&["header:authorization"]));
            prop_assert_eq!(after.headers.get_all(AUTHORIZATION).iter().count(), 1);
            prop_assert_eq!(authorization_of(after), format!("Bearer {}", token.expose_secret()));
        }
        Kind::Basic { username, password } => {
            prop_assert_eq!(
                places(after, &forms(password.expose_secret())),
                BTreeSet::new(),
                "the password travels only inside Basic"
            );
            let credentials = BASE64.encode(format!("{username}:{}", password.expose_secret()));
            prop_assert_eq!(places(after, &forms(&credentials)), set(&["header:authorization"]));
            prop_assert_eq!(authorization_of(after), format!("Basic {credentials}"));
        }
        // Signed per attempt, later: applying the credential leaves the request as it was.
        Kind::Hmac(_) | Kind::AwsSigV4(_) | Kind::Mtls(_) => {
            for (field, secret) in credential.config.secrets() {
                prop_assert_eq!(
                    places(after, &forms(secret.expose_secret())),
                    BTreeSet::new(),
                    "{} is never sent",
                    field
                );
            }
            prop_assert_eq!(&after.url, &before.url);
            prop_assert_eq!(&after.headers, &before.headers);
            prop_assert_eq!(&after.body, &before.body);
        }
        Kind::OAuth2ClientCredentials(_) | Kind::OAuth2JwtBearer(_) => {
            for (field, secret) in credential.config.secrets() {
                prop_assert_eq!(
                    places(after, &forms(secret.expose_secret())),
                    BTreeSet::new(),
                    "{} goes only to the token endpoint",
                    field
                );
            }
            let send_as = &credential.config.token_grant().expect("an OAuth config").options().send_as;
            let token = credential.access_token.as_ref().expect("oauth cases carry a token").expose_secret();
            let header = send_as.header.to_ascii_lowercase();
            prop_assert_eq!(places(after, &forms(token)), set(&[&format!("header:{header}")]));
            prop_assert_eq!(after.headers.get_all(header.as_str()).iter().count(), 1);
            let sent = String::from_utf8_lossy(after.headers[header.as_str()].as_bytes()).into_owned();
            prop_assert_eq!(sent, format!("{}{token}", send_as.prefix));
        }
        Kind::ApiKey { method, pairs } => {
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
    if !matches!(credential.config.credential, Kind::ApiKey { .. }) {
        let credential_header = match credential.config.token_grant() {
            Some(grant) => vec![grant.options().send_as.header.to_ascii_lowercase()],
            None => authorization,
        };
        prop_assert_eq!(&after.url, &before.url);
        prop_assert_eq!(&after.body, &before.body);
        prop_assert_eq!(headers_without(after, &credential_header), headers_without(before, &credential_header));
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
