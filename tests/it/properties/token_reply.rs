//! The token-response reader neither panics nor quotes a secret, driven
//! through `TokenClient::fetch` against a server on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use authrelay::credentials::oauth2::{TokenClient, TokenClientSettings, TokenError};
use authrelay::profile::auth_config::{ClientAuth, OAuth2Config, TokenGrant};
use authrelay_testkit::targets::serve;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value, json};

use super::{TOKEN_CASES, config};

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
            client_secret: Some(SecretString::from(reply.secret.clone())),
            token_endpoint: format!("http://{addr}/token").parse().unwrap(),
            scope: None,
            audience: None,
            client_auth: if post { ClientAuth::Post } else { ClientAuth::Basic },
            signing: None,
            options: Default::default(),
        };
        let fetched = runtime.block_on(client.fetch(TokenGrant::ClientCredentials(&oauth), Duration::from_secs(5)));
        check_token_reply(&reply, &body, &fetched, &forms, default_lifetime)
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
