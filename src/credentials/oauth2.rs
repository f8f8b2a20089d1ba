//! The OAuth 2.0 client credentials grant (RFC 6749 §4.4): one POST to the
//! token endpoint, and a tolerant reading of what comes back.
//!
//! Token endpoints in the wild bend the RFC in small ways, so the reply may be
//! JSON or form-encoded whatever its content type claims, `expires_in` may be a
//! number or a string, and `token_type` may be missing. What would only break
//! later is refused here: a 2xx body carrying `error`, an empty token, a token
//! type other than bearer.
//!
//! Neither the client secret nor a token ever reaches an error text or a log
//! line. Everything the server says (error codes, descriptions, an excerpt of a
//! junk body) is scrubbed of the secret in each form we sent it in and capped
//! in length, because a hostile or buggy endpoint may echo the request back.
//!
//! The reply is read as a stream up to a byte budget and the whole exchange
//! runs under one timeout, so a slow or endless endpoint costs bounded time and
//! memory.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use tokio::time::Instant;
use url::form_urlencoded;

use crate::profile::auth_config::{ClientAuth, OAuth2Config};

/// A lifetime above this is treated as this, so `fetched_at + lifetime` can
/// never overflow an `Instant` whatever number a server sends.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
const MAX_DESCRIPTION_CHARS: usize = 200;
const MAX_CODE_CHARS: usize = 80;
const MAX_EXCERPT_CHARS: usize = 40;
const REDACTED: &str = "[REDACTED]";

/// An access token and how long it may be used.
#[derive(Clone)]
pub struct AccessToken {
    pub value: SecretString,
    pub token_type: String,
    pub scope: Option<String>,
    /// The lifetime as the server stated it, if it did.
    pub expires_in: Option<Duration>,
    /// Taken just before the request was sent, so the token is never thought
    /// to live longer than the server meant.
    pub fetched_at: Instant,
    /// `expires_in`, or the configured default when the server gave none.
    pub lifetime: Duration,
}

impl AccessToken {
    pub fn expires_at(&self) -> Instant {
        self.fetched_at + self.lifetime
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &REDACTED)
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .field("expires_in", &self.expires_in)
            .field("fetched_at", &self.fetched_at)
            .field("lifetime", &self.lifetime)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct TokenClientSettings {
    /// The lifetime assumed when a reply has no `expires_in`.
    pub default_lifetime: Duration,
    /// The largest reply body read; a longer one is refused.
    pub max_body_bytes: usize,
}

impl Default for TokenClientSettings {
    fn default() -> Self {
        Self { default_lifetime: Duration::from_secs(3600), max_body_bytes: 64 * 1024 }
    }
}

/// Why a token could not be fetched. Every text in it is safe to show and log:
/// server-provided parts are redacted and capped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TokenError {
    #[error("could not connect to the token endpoint: {0}")]
    Connect(String),
    #[error("the token endpoint did not answer in time")]
    Timeout,
    #[error("the token endpoint answered HTTP {status}{}", detail(.error.as_deref(), .description.as_deref()))]
    Status { status: u16, error: Option<String>, description: Option<String> },
    #[error("the token endpoint refused the request{}", detail(Some(.error), .description.as_deref()))]
    ErrorResponse { error: String, description: Option<String> },
    #[error("the token response is malformed: {0}")]
    Malformed(String),
    #[error("the token response carries no access token")]
    EmptyToken,
    #[error("the token type `{0}` is not supported (only bearer is)")]
    UnsupportedTokenType(String),
    #[error("the token response is larger than allowed")]
    BodyTooLarge,
    #[error("the token request failed: {0}")]
    Request(String),
}

fn detail(error: Option<&str>, description: Option<&str>) -> String {
    match (error, description) {
        (Some(e), Some(d)) => format!(" ({e}: {d})"),
        (Some(e), None) => format!(" ({e})"),
        (None, Some(d)) => format!(" ({d})"),
        (None, None) => String::new(),
    }
}

impl TokenError {
    /// Whether trying again later may succeed: the endpoint was unreachable,
    /// slow, overloaded, or said itself that the failure is temporary.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout => true,
            Self::Status { status, error, .. } => {
                *status == 429 || (500..600).contains(status) || error.as_deref().is_some_and(is_transient_code)
            }
            Self::ErrorResponse { error, .. } => is_transient_code(error),
            _ => false,
        }
    }

    /// A fixed name for metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Connect(_) => "connect",
            Self::Timeout => "timeout",
            Self::Status { .. } => "status",
            Self::ErrorResponse { .. } => "error_response",
            Self::Malformed(_) => "malformed",
            Self::EmptyToken => "empty_token",
            Self::UnsupportedTokenType(_) => "unsupported_token_type",
            Self::BodyTooLarge => "body_too_large",
            Self::Request(_) => "request",
        }
    }
}

/// The RFC 6749 error codes that mean "not now" rather than "never".
fn is_transient_code(code: &str) -> bool {
    matches!(code, "temporarily_unavailable" | "server_error")
}

/// Fetches tokens with the client credentials grant. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    settings: TokenClientSettings,
}

impl TokenClient {
    /// `http` is built by the caller (it carries the egress guard and a no-redirect policy).
    pub fn new(http: reqwest::Client, settings: TokenClientSettings) -> Self {
        Self { http, settings }
    }

    /// Requests a new token; `timeout` bounds the whole exchange, body included.
    pub async fn fetch(&self, config: &OAuth2Config, timeout: Duration) -> Result<AccessToken, TokenError> {
        let mut redactor = Redactor::new(config);
        let fetched_at = Instant::now();
        let result = tokio::time::timeout(timeout, self.exchange(config, &mut redactor, fetched_at))
            .await
            .unwrap_or(Err(TokenError::Timeout));
        let host = config.token_endpoint.host_str().unwrap_or_default();
        match &result {
            Ok(token) => tracing::debug!(host, lifetime_s = token.lifetime.as_secs(), "fetched an OAuth 2.0 token"),
            Err(error) => tracing::debug!(host, %error, "OAuth 2.0 token request failed"),
        }
        result
    }

    async fn exchange(
        &self,
        config: &OAuth2Config,
        redactor: &mut Redactor,
        fetched_at: Instant,
    ) -> Result<AccessToken, TokenError> {
        let response = self.request(config).send().await.map_err(transport_error)?;
        let status = response.status();
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        let body = read_body(response, self.settings.max_body_bytes).await;
        if !status.is_success() {
            // The status says it all; an unreadable or oversized error body only loses the details.
            let fields =
                body.ok().and_then(|b| String::from_utf8(b).ok()).and_then(|text| parse_fields(&text, &content_type));
            let (error, description) = match fields {
                Some(f) => (
                    f.error.map(|e| redactor.clean(&e, MAX_CODE_CHARS)),
                    f.error_description.map(|d| redactor.clean(&d, MAX_DESCRIPTION_CHARS)),
                ),
                None => (None, None),
            };
            return Err(TokenError::Status { status: status.as_u16(), error, description });
        }
        let body = String::from_utf8(body?).map_err(|_| TokenError::Malformed("the body is not UTF-8 text".into()))?;
        self.interpret(&body, &content_type, redactor, fetched_at)
    }

    fn request(&self, config: &OAuth2Config) -> reqwest::RequestBuilder {
        let mut form: Vec<(&str, &str)> = vec![("grant_type", "client_credentials")];
        if let Some(scope) = config.scope.as_deref().filter(|s| !s.is_empty()) {
            form.push(("scope", scope));
        }
        if let Some(audience) = config.audience.as_deref().filter(|a| !a.is_empty()) {
            form.push(("audience", audience));
        }
        let mut request = self.http.post(config.token_endpoint.clone()).header(ACCEPT, "application/json");
        match config.client_auth {
            ClientAuth::Basic => request = request.header(AUTHORIZATION, basic_authorization(config)),
            ClientAuth::Post => {
                form.push(("client_id", &config.client_id));
                form.push(("client_secret", config.client_secret.expose_secret()));
            }
        }
        request.form(&form)
    }

    fn interpret(
        &self,
        body: &str,
        content_type: &str,
        redactor: &mut Redactor,
        fetched_at: Instant,
    ) -> Result<AccessToken, TokenError> {
        let Some(fields) = parse_fields(body, content_type) else {
            return Err(TokenError::Malformed(junk_message(body, content_type, redactor)));
        };
        if let Some(token) = fields.access_token.as_deref().filter(|t| !t.is_empty()) {
            // A server may echo its own token in an error description too.
            redactor.add(token);
        }
        if let Some(error) = fields.error.filter(|e| !e.is_empty()) {
            return Err(TokenError::ErrorResponse {
                error: redactor.clean(&error, MAX_CODE_CHARS),
                description: fields.error_description.map(|d| redactor.clean(&d, MAX_DESCRIPTION_CHARS)),
            });
        }
        if let Some(problem) = fields.problem {
            return Err(TokenError::Malformed(problem.into()));
        }
        let value = fields.access_token.filter(|t| !t.trim().is_empty()).ok_or(TokenError::EmptyToken)?;
        if HeaderValue::from_str(&value).is_err() {
            return Err(TokenError::Malformed("the access token has characters an HTTP header cannot carry".into()));
        }
        let token_type = match fields.token_type.filter(|t| !t.is_empty()) {
            None => "Bearer".to_owned(),
            Some(t) if t.eq_ignore_ascii_case("bearer") => t,
            Some(t) => return Err(TokenError::UnsupportedTokenType(redactor.clean(&t, MAX_CODE_CHARS))),
        };
        let expires_in =
            match fields.expires_in {
                None => None,
                Some(raw) => Some(Duration::from_secs(parse_seconds(&raw).ok_or_else(|| {
                    TokenError::Malformed("expires_in is not a non-negative number of seconds".into())
                })?)),
            };
        let lifetime = expires_in.unwrap_or(self.settings.default_lifetime).min(MAX_LIFETIME);
        Ok(AccessToken {
            value: SecretString::from(value),
            token_type,
            scope: fields.scope.filter(|s| !s.is_empty()),
            expires_in,
            fetched_at,
            lifetime,
        })
    }
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 wants it: id and secret are
/// form-urlencoded *before* base64, so a `:` in the id cannot split it.
fn basic_authorization(config: &OAuth2Config) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Basic {}", basic_credentials(config)))
        .expect("base64 text is a valid header value");
    value.set_sensitive(true);
    value
}

fn basic_credentials(config: &OAuth2Config) -> String {
    let id = form_encode(&config.client_id);
    let secret = form_encode(config.client_secret.expose_secret());
    BASE64.encode(format!("{id}:{secret}"))
}

fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn read_body(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, TokenError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(TokenError::BodyTooLarge);
    }
    let mut body = Vec::new();
    // Content-Length may be absent or lie; the budget is enforced on what actually arrives.
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > limit {
            return Err(TokenError::BodyTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn transport_error(error: reqwest::Error) -> TokenError {
    if error.is_timeout() {
        return TokenError::Timeout;
    }
    let is_connect = error.is_connect();
    // The URL stays out: only the endpoint's host is ours to log, and the chain of causes
    // (refused by the egress guard, connection refused, TLS) is what an operator needs.
    let error = error.without_url();
    let message = truncate(crate::error_text::chain(&error), 300);
    if is_connect { TokenError::Connect(message) } else { TokenError::Request(message) }
}

/// The fields of a token or error reply, whatever its encoding.
#[derive(Default)]
struct Fields {
    access_token: Option<String>,
    token_type: Option<String>,
    expires_in: Option<String>,
    scope: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
    /// Set when a field has a shape no reading can accept.
    problem: Option<&'static str>,
}

/// Tries the encoding the content type names first, then the other one,
/// since servers mislabel their replies.
fn parse_fields(body: &str, content_type: &str) -> Option<Fields> {
    if content_type.contains("x-www-form-urlencoded") {
        fields_from_form(body).or_else(|| fields_from_json(body))
    } else {
        fields_from_json(body).or_else(|| fields_from_form(body))
    }
}

fn fields_from_json(body: &str) -> Option<Fields> {
    let Value::Object(obj) = serde_json::from_str(body.trim_start_matches('\u{feff}')).ok()? else {
        return None;
    };
    let mut fields = Fields::default();
    let mut text = |name: &str| match obj.get(name) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        // Some servers list scopes as an array.
        Some(Value::Array(items)) if name == "scope" => {
            Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        }
        Some(_) => {
            fields.problem.get_or_insert(match name {
                "access_token" => "access_token is not a string",
                "expires_in" => "expires_in is not a number of seconds",
                _ => "a field has an unexpected JSON type",
            });
            None
        }
    };
    let access_token = text("access_token");
    let token_type = text("token_type");
    let expires_in = text("expires_in");
    let scope = text("scope");
    let error = text("error");
    let error_description = text("error_description");
    Some(Fields { access_token, token_type, expires_in, scope, error, error_description, ..fields })
}

/// Any text parses as a form, so only a form naming a token or an error counts.
fn fields_from_form(body: &str) -> Option<Fields> {
    let mut fields = Fields::default();
    let mut recognised = false;
    for (name, value) in form_urlencoded::parse(body.trim().as_bytes()) {
        let slot = match name.as_ref() {
            "access_token" => &mut fields.access_token,
            "token_type" => &mut fields.token_type,
            "expires_in" => &mut fields.expires_in,
            "scope" => &mut fields.scope,
            "error" => &mut fields.error,
            "error_description" => &mut fields.error_description,
            _ => continue,
        };
        recognised |= matches!(name.as_ref(), "access_token" | "error");
        *slot = Some(value.into_owned());
    }
    recognised.then_some(fields)
}

/// Whole seconds from `3600`, `"3600"` or `3599.5`; `None` for anything negative or not a number.
fn parse_seconds(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(secs);
    }
    let secs = raw.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
    // A float too big for u64 saturates, and the lifetime cap applies later anyway.
    Some(secs as u64)
}

/// Says what kind of junk came back, with at most a short, scrubbed excerpt.
fn junk_message(body: &str, content_type: &str, redactor: &Redactor) -> String {
    let content_type =
        if content_type.is_empty() { "no content type".to_owned() } else { redactor.clean(content_type, 60) };
    let body = body.trim();
    if body.is_empty() {
        return format!("the body is empty ({content_type})");
    }
    // A broken reply that mentions a token may hold one: show none of it.
    if body.to_ascii_lowercase().contains("access_token") {
        return format!("the body is neither a JSON object nor a form-encoded token reply ({content_type})");
    }
    let excerpt = redactor.clean(body, MAX_EXCERPT_CHARS);
    format!(
        "the body is neither a JSON object nor a form-encoded token reply ({content_type}); it starts with {excerpt:?}"
    )
}

/// Removes secrets from server-provided text before it enters an error.
struct Redactor {
    needles: Vec<SecretString>,
}

impl Redactor {
    /// The secret in each form the request carried it: raw (a form field),
    /// form-urlencoded (the wire), and the whole Basic credentials.
    fn new(config: &OAuth2Config) -> Self {
        let secret = config.client_secret.expose_secret();
        let mut redactor = Self { needles: Vec::new() };
        redactor.add(secret);
        redactor.add(&form_encode(secret));
        redactor.add(&basic_credentials(config));
        redactor
    }

    fn add(&mut self, needle: &str) {
        if !needle.is_empty() && !self.needles.iter().any(|n| n.expose_secret() == needle) {
            self.needles.push(SecretString::from(needle));
            // Longer first, so a needle containing another is removed whole.
            self.needles.sort_by_key(|n| std::cmp::Reverse(n.expose_secret().len()));
        }
    }

    /// Redacts, then flattens control characters (no forged log lines), then caps.
    /// Redacting before capping matters: a cap could cut a secret so it no longer matches.
    fn clean(&self, text: &str, max_chars: usize) -> String {
        let mut text = text.to_owned();
        for needle in &self.needles {
            if text.contains(needle.expose_secret()) {
                text = text.replace(needle.expose_secret(), REDACTED);
            }
        }
        let text: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        truncate(text, max_chars)
    }
}

fn truncate(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wiremock::matchers::{header, method, path};
    use wiremock::{Mock, MockServer, Request, ResponseTemplate};

    const SECRET: &str = "s3cr3t:with/special+chars ü";

    fn config(server: &MockServer, client_auth: ClientAuth) -> OAuth2Config {
        OAuth2Config {
            client_id: "client-1".into(),
            client_secret: SecretString::from(SECRET),
            token_endpoint: format!("{}/token", server.uri()).parse().unwrap(),
            scope: None,
            audience: None,
            client_auth,
        }
    }

    fn client() -> TokenClient {
        TokenClient::new(reqwest::Client::builder().no_proxy().build().unwrap(), TokenClientSettings::default())
    }

    fn form(request: &Request) -> Vec<(String, String)> {
        form_urlencoded::parse(&request.body).into_owned().collect()
    }

    async fn reply(template: ResponseTemplate) -> (MockServer, OAuth2Config) {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/token")).respond_with(template).expect(1).mount(&server).await;
        let config = config(&server, ClientAuth::Basic);
        (server, config)
    }

    fn json_reply(status: u16, body: serde_json::Value) -> ResponseTemplate {
        ResponseTemplate::new(status).set_body_json(body)
    }

    async fn fetch(config: &OAuth2Config) -> Result<AccessToken, TokenError> {
        client().fetch(config, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn client_secret_basic_encodes_special_characters_before_base64() {
        let server = MockServer::start().await;
        let expected = format!("Basic {}", BASE64.encode("a%3Ab+c%2Fd:s3cr3t%3Awith%2Fspecial%2Bchars+%C3%BC"));
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(header("authorization", expected.as_str()))
            .and(header("accept", "application/json"))
            .and(|r: &Request| form(r) == [("grant_type".to_owned(), "client_credentials".to_owned())])
            .respond_with(json_reply(200, json!({"access_token": "tok", "token_type": "Bearer", "expires_in": 60})))
            .expect(1)
            .mount(&server)
            .await;
        let config = OAuth2Config { client_id: "a:b c/d".into(), ..config(&server, ClientAuth::Basic) };

        let token = fetch(&config).await.unwrap();

        assert_eq!(token.value.expose_secret(), "tok");
        assert_eq!(token.expires_in, Some(Duration::from_secs(60)));
        assert_eq!(token.lifetime, Duration::from_secs(60));
    }

    #[tokio::test]
    async fn client_secret_post_sends_id_and_secret_as_form_fields_and_no_authorization_header() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/token"))
            .and(|r: &Request| !r.headers.contains_key("authorization"))
            .and(|r: &Request| {
                let mut fields = form(r);
                fields.sort();
                fields
                    == [
                        ("client_id".to_owned(), "client-1".to_owned()),
                        ("client_secret".to_owned(), SECRET.to_owned()),
                        ("grant_type".to_owned(), "client_credentials".to_owned()),
                    ]
            })
            .respond_with(json_reply(200, json!({"access_token": "tok", "token_type": "bearer"})))
            .expect(1)
            .mount(&server)
            .await;

        let token = fetch(&config(&server, ClientAuth::Post)).await.unwrap();

        assert_eq!(token.value.expose_secret(), "tok");
    }

    #[tokio::test]
    async fn scope_and_audience_are_sent_only_when_set() {
        let server = MockServer::start().await;
        let has = |name: &'static str| move |r: &Request| form(r).iter().any(|(k, _)| k == name);
        Mock::given(method("POST"))
            .and(|r: &Request| {
                let fields = form(r);
                fields.contains(&("scope".into(), "read write".into()))
                    && fields.contains(&("audience".into(), "https://api.example".into()))
            })
            .respond_with(json_reply(200, json!({"access_token": "with"})))
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(method("POST"))
            .and(move |r: &Request| !has("scope")(r) && !has("audience")(r))
            .respond_with(json_reply(200, json!({"access_token": "without"})))
            .expect(1)
            .mount(&server)
            .await;
        let plain = config(&server, ClientAuth::Basic);
        let scoped = OAuth2Config {
            scope: Some("read write".into()),
            audience: Some("https://api.example".into()),
            ..plain.clone()
        };

        assert_eq!(fetch(&scoped).await.unwrap().value.expose_secret(), "with");
        assert_eq!(fetch(&plain).await.unwrap().value.expose_secret(), "without");
    }

    #[tokio::test]
    async fn a_string_expires_in_is_read_as_seconds() {
        let (_server, config) =
            reply(json_reply(200, json!({"access_token": "tok", "token_type": "Bearer", "expires_in": "1800"}))).await;

        let token = fetch(&config).await.unwrap();

        assert_eq!(token.expires_in, Some(Duration::from_secs(1800)));
        assert_eq!(token.expires_at(), token.fetched_at + Duration::from_secs(1800));
    }

    #[tokio::test]
    async fn a_form_encoded_reply_is_accepted_and_gets_the_default_lifetime() {
        let (_server, config) = reply(ResponseTemplate::new(200).set_body_raw(
            "access_token=gho_abc&scope=repo%2Cgist&token_type=bearer",
            "application/x-www-form-urlencoded",
        ))
        .await;

        let token = fetch(&config).await.unwrap();

        assert_eq!(token.value.expose_secret(), "gho_abc");
        assert_eq!(token.scope.as_deref(), Some("repo,gist"));
        assert_eq!(token.expires_in, None);
        assert_eq!(token.lifetime, TokenClientSettings::default().default_lifetime);
    }

    #[tokio::test]
    async fn a_mislabelled_json_reply_is_still_read() {
        let (_server, config) =
            reply(ResponseTemplate::new(200).set_body_raw(r#"{"access_token":"tok","expires_in":30}"#, "text/plain"))
                .await;

        assert_eq!(fetch(&config).await.unwrap().lifetime, Duration::from_secs(30));
    }

    #[tokio::test]
    async fn a_2xx_reply_carrying_error_is_an_error_response() {
        let (_server, config) =
            reply(json_reply(200, json!({"error": "invalid_scope", "error_description": "scope x is unknown"}))).await;

        let error = fetch(&config).await.unwrap_err();

        assert!(
            matches!(&error, TokenError::ErrorResponse { error, description }
                if error == "invalid_scope" && description.as_deref() == Some("scope x is unknown")),
            "{error:?}"
        );
        assert!(!error.is_retryable());
    }

    #[tokio::test]
    async fn an_empty_access_token_is_refused() {
        let (_server, config) = reply(json_reply(200, json!({"access_token": "", "token_type": "Bearer"}))).await;

        assert!(matches!(fetch(&config).await, Err(TokenError::EmptyToken)));
    }

    #[tokio::test]
    async fn a_token_type_other_than_bearer_is_refused() {
        let (_server, config) = reply(json_reply(200, json!({"access_token": "tok", "token_type": "mac"}))).await;

        assert!(matches!(fetch(&config).await, Err(TokenError::UnsupportedTokenType(t)) if t == "mac"));
    }

    #[tokio::test]
    async fn an_html_page_with_status_200_is_malformed_and_not_quoted_in_full() {
        let page = "<html><head><title>Sign in</title></head><body>portal internals: db01.corp</body></html>";
        let (_server, config) = reply(ResponseTemplate::new(200).set_body_raw(page, "text/html")).await;

        let error = fetch(&config).await.unwrap_err();

        let TokenError::Malformed(message) = &error else { panic!("{error:?}") };
        assert!(message.contains("text/html"), "{message}");
        assert!(!message.contains("db01.corp"), "{message}");
    }

    #[tokio::test]
    async fn a_400_with_an_rfc_error_body_is_a_status_error_with_its_code() {
        let (_server, config) =
            reply(json_reply(400, json!({"error": "invalid_client", "error_description": "unknown client"}))).await;

        let error = fetch(&config).await.unwrap_err();

        assert!(
            matches!(&error, TokenError::Status { status: 400, error: Some(code), description: Some(d) }
                if code == "invalid_client" && d == "unknown client"),
            "{error:?}"
        );
        assert!(!error.is_retryable());
        assert!(error.to_string().contains("invalid_client"), "{error}");
    }

    #[tokio::test]
    async fn a_503_is_retryable() {
        let (_server, config) = reply(ResponseTemplate::new(503).set_body_string("maintenance")).await;

        let error = fetch(&config).await.unwrap_err();

        assert!(matches!(error, TokenError::Status { status: 503, error: None, .. }), "{error:?}");
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn a_description_echoing_the_client_secret_is_redacted() {
        let encoded = form_encode(SECRET);
        let echo = format!("bad secret {SECRET} (sent as {encoded})");
        let (_server, config) =
            reply(json_reply(401, json!({"error": format!("invalid_client {SECRET}"), "error_description": echo})))
                .await;

        let error = fetch(&config).await.unwrap_err();

        for text in [format!("{error}"), format!("{error:?}")] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(&encoded), "{text}");
            assert!(!text.contains("s3cr3t"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
    }

    #[tokio::test]
    async fn a_long_description_is_capped() {
        let (_server, config) =
            reply(json_reply(400, json!({"error": "invalid_request", "error_description": "x".repeat(5000)}))).await;

        let error = fetch(&config).await.unwrap_err();

        assert!(error.to_string().len() < 400, "{error}");
    }

    #[tokio::test]
    async fn a_body_larger_than_the_budget_is_refused() {
        let (_server, config) = reply(
            ResponseTemplate::new(200)
                .set_body_raw(format!(r#"{{"access_token":"{}"}}"#, "a".repeat(4096)), "application/json"),
        )
        .await;
        let client = TokenClient::new(
            reqwest::Client::builder().no_proxy().build().unwrap(),
            TokenClientSettings { max_body_bytes: 1024, ..Default::default() },
        );

        let result = client.fetch(&config, Duration::from_secs(5)).await;

        assert!(matches!(result, Err(TokenError::BodyTooLarge)), "{result:?}");
    }

    #[tokio::test]
    async fn a_chunked_body_without_length_is_cut_at_the_budget() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = socket.read(&mut request).await;
            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            for _ in 0..64 {
                let chunk = "a".repeat(512);
                if socket.write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        let config = OAuth2Config {
            client_id: "client-1".into(),
            client_secret: SecretString::from(SECRET),
            token_endpoint: format!("http://{address}/token").parse().unwrap(),
            scope: None,
            audience: None,
            client_auth: ClientAuth::Basic,
        };
        let client = TokenClient::new(
            reqwest::Client::builder().no_proxy().build().unwrap(),
            TokenClientSettings { max_body_bytes: 1024, ..Default::default() },
        );

        let result = client.fetch(&config, Duration::from_secs(5)).await;

        assert!(matches!(result, Err(TokenError::BodyTooLarge)), "{result:?}");
        server.abort();
    }

    #[tokio::test]
    async fn a_slow_endpoint_times_out_within_the_budget() {
        let (_server, config) =
            reply(json_reply(200, json!({"access_token": "late"})).set_delay(Duration::from_secs(3))).await;
        let started = std::time::Instant::now();

        let result = client().fetch(&config, Duration::from_millis(200)).await;

        assert!(matches!(result, Err(TokenError::Timeout)), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert!(TokenError::Timeout.is_retryable());
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_retryable_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let config = OAuth2Config {
            client_id: "client-1".into(),
            client_secret: SecretString::from(SECRET),
            token_endpoint: format!("http://{address}/token").parse().unwrap(),
            scope: None,
            audience: None,
            client_auth: ClientAuth::Basic,
        };

        let error = fetch(&config).await.unwrap_err();

        assert!(matches!(error, TokenError::Connect(_)), "{error:?}");
        assert!(error.is_retryable());
    }

    #[tokio::test]
    async fn debug_of_an_access_token_hides_its_value() {
        let (_server, config) = reply(json_reply(200, json!({"access_token": "very-secret-token-value"}))).await;

        let token = fetch(&config).await.unwrap();

        let debug = format!("{token:?}");
        assert!(!debug.contains("very-secret-token-value"), "{debug}");
        assert!(debug.contains(REDACTED), "{debug}");
    }

    #[test]
    fn expires_in_accepts_integers_strings_and_fractions_but_not_negatives() {
        assert_eq!(parse_seconds("3600"), Some(3600));
        assert_eq!(parse_seconds(" 60 "), Some(60));
        assert_eq!(parse_seconds("59.9"), Some(59));
        assert_eq!(parse_seconds("-1"), None);
        assert_eq!(parse_seconds("soon"), None);
    }
}
