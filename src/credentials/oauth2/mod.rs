//! OAuth 2.0 token requests: the client credentials grant (RFC 6749 §4.4)
//! with `client_secret_basic`, `client_secret_post`, `tls_client_auth` or
//! `private_key_jwt` (RFC 7523 §2.2), and the JWT-bearer grant (RFC 7523
//! §2.1): one POST to the token endpoint, and a tolerant reading of what
//! comes back, where the profile may say which fields hold the token.
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
use tokio::time::Instant;
use url::form_urlencoded;

use crate::credentials::http_clients::HttpClients;
use crate::credentials::redact::{REDACTED, Redactor, truncate_chars};
use crate::profile::auth_config::keys::JwtHeaders;
use crate::profile::auth_config::{ClientAuth, ClientCertificate, JwtSigning, ResponsePaths, TokenGrant, TokenOptions};
use reply::{junk_message, parse_fields, parse_seconds, path_of, redactor_for};

mod rejection;
mod reply;
#[cfg(test)]
mod tests;

pub use rejection::ClientRejection;

/// A lifetime above this is treated as this, so `fetched_at + lifetime` can
/// never overflow an `Instant` whatever number a server sends.
const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);
const MAX_DESCRIPTION_CHARS: usize = 200;
const MAX_CODE_CHARS: usize = 80;
const MAX_EXCERPT_CHARS: usize = 40;

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

    /// Until when the token is sent. Never in its last second, nor in the
    /// last 10 s of a lifetime of 100 s or more: `expires_in` is whole
    /// seconds, the server started counting before we did, and the request
    /// still has to travel. (A token shorter-lived than 2 s keeps half.)
    pub fn usable_until(&self) -> Instant {
        let guard = if self.lifetime >= Duration::from_secs(100) {
            Duration::from_secs(10)
        } else {
            Duration::from_secs(1).min(self.lifetime / 2)
        };
        self.expires_at() - guard
    }

    /// When a renewal starts: ahead of [`usable_until`](Self::usable_until) by
    /// a tenth of the lifetime, at most `max_margin`, so that jobs do not wait
    /// at a normal expiry.
    pub fn refresh_at(&self, max_margin: Duration) -> Instant {
        self.usable_until() - max_margin.min(self.lifetime / 10)
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

/// Fetches tokens with either grant. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenClient {
    http: reqwest::Client,
    /// Clients that present a profile's client certificate (RFC 8705), when
    /// this token client serves profiles that may have one.
    certificates: Option<HttpClients>,
    settings: TokenClientSettings,
}

/// How long a signed assertion (a client assertion or a JWT-bearer grant) is valid.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// The claims of a signed assertion (RFC 7523 §3).
#[derive(serde::Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    aud: &'a str,
    iat: u64,
    exp: u64,
    /// Fresh per token request, so a server can refuse a replay.
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

impl<'a> Assertion<'a> {
    fn new(iss: &'a str, sub: Option<&'a str>, aud: &'a str, scope: Option<&'a str>) -> Self {
        let iat = chrono::Utc::now().timestamp().max(0) as u64;
        Self {
            iss,
            sub,
            aud,
            iat,
            exp: iat + ASSERTION_LIFETIME.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            scope,
        }
    }
}

impl TokenClient {
    /// `http` is built by the caller (it carries the egress guard and a no-redirect policy).
    pub fn new(http: reqwest::Client, settings: TokenClientSettings) -> Self {
        Self { http, certificates: None, settings }
    }

    /// A token client on `clients`: the shared token endpoint client, or one
    /// that presents the profile's client certificate.
    pub fn with_clients(clients: HttpClients, settings: TokenClientSettings) -> Self {
        let http = clients.token_endpoint(None, None).expect("the shared client needs no certificate");
        Self { http, certificates: Some(clients), settings }
    }

    /// Requests a new token; `timeout` bounds the whole exchange, body included.
    pub async fn fetch(&self, grant: TokenGrant<'_>, timeout: Duration) -> Result<AccessToken, TokenError> {
        self.fetch_presenting(grant, None, timeout).await
    }

    /// Like [`fetch`](Self::fetch), presenting `certificate` (of the profile
    /// named, if any) in the TLS handshake with the token endpoint.
    pub async fn fetch_presenting(
        &self,
        grant: TokenGrant<'_>,
        certificate: Option<(&ClientCertificate, Option<uuid::Uuid>)>,
        timeout: Duration,
    ) -> Result<AccessToken, TokenError> {
        let fetched_at = Instant::now();
        let host = grant.token_endpoint().host_str().unwrap_or_default();
        let http = match (certificate, &self.certificates) {
            (None, _) => self.http.clone(),
            (Some((certificate, profile)), Some(clients)) => {
                clients.token_endpoint(Some(certificate), profile).map_err(|e| TokenError::Request(e.to_string()))?
            }
            (Some(_), None) => {
                return Err(TokenError::Request("this token client cannot present client certificates".into()));
            }
        };
        let (request, assertion) = match self.request(&http, grant) {
            Ok(built) => built,
            Err(error) => {
                tracing::debug!(host, %error, "could not build the OAuth 2.0 token request");
                return Err(error);
            }
        };
        let mut redactor = redactor_for(grant, assertion.as_deref());
        let result = tokio::time::timeout(timeout, self.exchange(request, grant.options(), &mut redactor, fetched_at))
            .await
            .unwrap_or(Err(TokenError::Timeout));
        match &result {
            Ok(token) => tracing::debug!(host, lifetime_s = token.lifetime.as_secs(), "fetched an OAuth 2.0 token"),
            Err(error) => tracing::debug!(host, %error, "OAuth 2.0 token request failed"),
        }
        result
    }

    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        options: &TokenOptions,
        redactor: &mut Redactor,
        fetched_at: Instant,
    ) -> Result<AccessToken, TokenError> {
        let response = request.send().await.map_err(transport_error)?;
        let status = response.status();
        let content_type =
            response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default().to_ascii_lowercase();
        let body = read_body(response, self.settings.max_body_bytes).await;
        if !status.is_success() {
            // The status says it all; an unreadable or oversized error body only loses the details.
            let fields = body
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|text| parse_fields(&text, &content_type, &ResponsePaths::default()));
            let (error, description) = match fields {
                Some(f) => (
                    f.error.map(|e| redactor.scrub_line(&e, MAX_CODE_CHARS)),
                    f.error_description.map(|d| redactor.scrub_line(&d, MAX_DESCRIPTION_CHARS)),
                ),
                None => (None, None),
            };
            return Err(TokenError::Status { status: status.as_u16(), error, description });
        }
        let body = String::from_utf8(body?).map_err(|_| TokenError::Malformed("the body is not UTF-8 text".into()))?;
        self.interpret(&body, &content_type, &options.response, redactor, fetched_at)
    }

    /// The token request of `grant`, and the signed assertion it carries (if any).
    fn request(
        &self,
        http: &reqwest::Client,
        grant: TokenGrant<'_>,
    ) -> Result<(reqwest::RequestBuilder, Option<String>), TokenError> {
        let endpoint = grant.token_endpoint();
        let mut form: Vec<(&str, &str)> = Vec::new();
        let mut request = http.post(endpoint.clone()).header(ACCEPT, "application/json");
        let assertion = match grant {
            TokenGrant::ClientCredentials(config) => {
                form.push(("grant_type", "client_credentials"));
                if let Some(scope) = config.scope.as_deref().filter(|s| !s.is_empty()) {
                    form.push(("scope", scope));
                }
                if let Some(audience) = config.audience.as_deref().filter(|a| !a.is_empty()) {
                    form.push(("audience", audience));
                }
                match (config.client_auth, &config.client_secret, &config.signing) {
                    (ClientAuth::Basic, Some(secret), _) => {
                        request = request.header(AUTHORIZATION, basic_authorization(&config.client_id, secret));
                        None
                    }
                    (ClientAuth::Post, Some(secret), _) => {
                        form.push(("client_id", &config.client_id));
                        form.push(("client_secret", secret.expose_secret()));
                        None
                    }
                    (ClientAuth::PrivateKeyJwt, _, Some(signing)) => {
                        let claims =
                            Assertion::new(&config.client_id, Some(&config.client_id), endpoint.as_str(), None);
                        Some(sign(signing, &claims)?)
                    }
                    (ClientAuth::TlsClientAuth, _, _) => {
                        form.push(("client_id", &config.client_id));
                        None
                    }
                    // Refused when the profile is saved; a stored profile cannot get here.
                    (method, _, _) => {
                        return Err(TokenError::Request(format!(
                            "client_auth {} lacks its credential in this profile",
                            method.as_str()
                        )));
                    }
                }
            }
            TokenGrant::JwtBearer(config) => {
                let audience = config.audience.as_deref().unwrap_or(endpoint.as_str());
                let claims =
                    Assertion::new(&config.issuer, config.subject.as_deref(), audience, config.scope.as_deref());
                Some(sign(&config.signing, &claims)?)
            }
        };
        let options = grant.options();
        let client_id;
        match (&assertion, grant) {
            (Some(jwt), TokenGrant::ClientCredentials(config)) => {
                client_id = config.client_id.clone();
                form.push(("client_id", &client_id));
                form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
                form.push(("client_assertion", jwt));
            }
            (Some(jwt), TokenGrant::JwtBearer(_)) => {
                form.insert(0, ("grant_type", JWT_BEARER_GRANT));
                form.push(("assertion", jwt));
            }
            (None, _) => {}
        }
        form.extend(options.params.iter().map(|p| (p.key.as_str(), p.value.expose())));
        for header in &options.headers {
            let mut value = HeaderValue::from_str(header.value.expose()).map_err(|_| {
                TokenError::Request(format!("token header `{}` is not a valid header value", header.key))
            })?;
            value.set_sensitive(header.value.is_secret());
            request = request.header(header.key.as_str(), value);
        }
        Ok((request.form(&form), assertion))
    }

    fn interpret(
        &self,
        body: &str,
        content_type: &str,
        paths: &ResponsePaths,
        redactor: &mut Redactor,
        fetched_at: Instant,
    ) -> Result<AccessToken, TokenError> {
        let Some(fields) = parse_fields(body, content_type, paths) else {
            return Err(TokenError::Malformed(junk_message(body, content_type, redactor)));
        };
        if let Some(token) = fields.access_token.as_deref().filter(|t| !t.is_empty()) {
            // A server may echo its own token in an error description too.
            redactor.add_any_length(token);
        }
        if let Some(error) = fields.error.filter(|e| !e.is_empty()) {
            return Err(TokenError::ErrorResponse {
                error: redactor.scrub_line(&error, MAX_CODE_CHARS),
                description: fields.error_description.map(|d| redactor.scrub_line(&d, MAX_DESCRIPTION_CHARS)),
            });
        }
        if let Some(problem) = fields.problem {
            return Err(TokenError::Malformed(problem.into()));
        }
        let value = match fields.access_token.filter(|t| !t.trim().is_empty()) {
            Some(value) => value,
            None if paths.access_token.is_some() => {
                return Err(TokenError::Malformed(format!(
                    "there is no access token at `{}`",
                    path_of(paths, "access_token")
                )));
            }
            None => return Err(TokenError::EmptyToken),
        };
        if HeaderValue::from_str(&value).is_err() {
            return Err(TokenError::Malformed("the access token has characters an HTTP header cannot carry".into()));
        }
        let token_type = match fields.token_type.filter(|t| !t.is_empty()) {
            None => "Bearer".to_owned(),
            Some(t) if t.eq_ignore_ascii_case("bearer") => t,
            Some(t) => return Err(TokenError::UnsupportedTokenType(redactor.scrub_line(&t, MAX_CODE_CHARS))),
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

/// RFC 7523 §2.2.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// RFC 7523 §2.1.
const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn sign(signing: &JwtSigning, claims: &Assertion<'_>) -> Result<String, TokenError> {
    let headers = JwtHeaders { kid: signing.key_id.as_deref(), certificate: signing.certificate.as_ref() };
    signing.key.sign_jwt(signing.alg(), headers, claims).map_err(|e| TokenError::Request(crate::error_text::chain(&e)))
}

/// `Authorization: Basic` as RFC 6749 §2.3.1 wants it: id and secret are
/// form-urlencoded *before* base64, so a `:` in the id cannot split it.
fn basic_authorization(client_id: &str, secret: &SecretString) -> HeaderValue {
    let mut value = HeaderValue::try_from(format!("Basic {}", basic_credentials(client_id, secret)))
        .expect("base64 text is a valid header value");
    value.set_sensitive(true);
    value
}

fn basic_credentials(client_id: &str, secret: &SecretString) -> String {
    let id = form_encode(client_id);
    let secret = form_encode(secret.expose_secret());
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
    let message = truncate_chars(crate::error_text::chain(&error), 300);
    if is_connect { TokenError::Connect(message) } else { TokenError::Request(message) }
}
