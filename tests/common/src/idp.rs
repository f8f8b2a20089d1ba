//! A real OAuth 2.0 authorization server on 127.0.0.1, and the API it
//! protects, for the token flows authrelay speaks:
//! - the client credentials grant with `client_secret_basic`,
//!   `client_secret_post` and `private_key_jwt` (the client assertion is
//!   verified with the client's registered public key: signature, `iss` =
//!   `sub` = client, `aud` = this token endpoint, `exp` within 5 minutes, a
//!   `jti` never seen before);
//! - the JWT-bearer grant (the assertion verified the same way, with `aud` the
//!   token endpoint or a configured audience, and `exp` within an hour).
//!
//! Tokens are opaque and short or long lived as a test sets; the API at
//! `/api/...` accepts only tokens this server issued and still valid at the
//! moment a request arrives, measured to the millisecond, and counts every
//! stale one it sees.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Form;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Value, json};

/// A signing key made for one test, with its PEM forms.
pub struct TestKey {
    pub private_pem: String,
    pub public_pem: String,
    pub alg: Algorithm,
}

impl TestKey {
    /// An EC P-256 key (ES256).
    pub fn ec() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        Self { private_pem: pair.serialize_pem(), public_pem: pair.public_key_pem(), alg: Algorithm::ES256 }
    }

    /// An RSA 2048 key (RS256).
    pub fn rsa() -> Self {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).expect("an RSA key");
        Self { private_pem: pair.serialize_pem(), public_pem: pair.public_key_pem(), alg: Algorithm::RS256 }
    }

    /// A self-signed certificate of this key (PEM), and its `x5t#S256` thumbprint.
    pub fn certificate(&self) -> (String, String) {
        let pair = rcgen::KeyPair::from_pem(&self.private_pem).expect("the key reads back");
        let cert = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap().self_signed(&pair).unwrap();
        let thumbprint = {
            use sha2::Digest as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(cert.der()))
        };
        (cert.pem(), thumbprint)
    }

    fn decoding_key(&self) -> DecodingKey {
        match self.alg {
            Algorithm::RS256 => DecodingKey::from_rsa_pem(self.public_pem.as_bytes()).expect("an RSA public key"),
            _ => DecodingKey::from_ec_pem(self.public_pem.as_bytes()).expect("an EC public key"),
        }
    }
}

/// What a client authenticates with.
enum Registered {
    Secret(String),
    Key { key: DecodingKey, alg: Algorithm, kid: Option<String>, x5t_s256: Option<String> },
}

/// How the server shapes a token reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyShape {
    /// RFC 6749: `{"access_token", "token_type", "expires_in"}`.
    Standard,
    /// `{"data": {"token", "ttl"}}`, for `token_response` paths.
    Nested,
}

struct Issued {
    client: String,
    valid_until: Instant,
    scope: Option<String>,
}

#[derive(Default)]
struct Counters {
    token_requests: AtomicUsize,
    api_calls: AtomicUsize,
    stale: AtomicUsize,
    refused: AtomicUsize,
}

struct Settings {
    lifetime: Duration,
    /// How much of its lifetime a token has already lost when it is issued
    /// (the server started its clock before the client did).
    issued_late_by: Duration,
    shape: ReplyShape,
    /// An `aud` the JWT-bearer grant accepts besides the token endpoint.
    audience: Option<String>,
    /// The header the API reads the token from, and its prefix.
    api_header: (String, String),
}

struct Server {
    clients: Mutex<HashMap<String, Registered>>,
    issued: Mutex<HashMap<String, Issued>>,
    seen_jti: Mutex<HashSet<String>>,
    /// Why requests were refused, for a failing test's message.
    refusals: Mutex<Vec<String>>,
    settings: Mutex<Settings>,
    counters: Counters,
    token_url: String,
}

/// The authorization server and its API, running until dropped with the test.
#[derive(Clone)]
pub struct AuthServer {
    pub addr: SocketAddr,
    server: Arc<Server>,
}

impl AuthServer {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = Arc::new(Server {
            clients: Mutex::default(),
            issued: Mutex::default(),
            seen_jti: Mutex::default(),
            refusals: Mutex::default(),
            settings: Mutex::new(Settings {
                lifetime: Duration::from_secs(3600),
                issued_late_by: Duration::ZERO,
                shape: ReplyShape::Standard,
                audience: None,
                api_header: ("authorization".into(), "Bearer ".into()),
            }),
            counters: Counters::default(),
            token_url: format!("http://{addr}/token"),
        });
        let app =
            Router::new().route("/token", post(token)).route("/api/{*rest}", any(api)).with_state(Arc::clone(&server));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, server }
    }

    pub fn token_url(&self) -> String {
        self.server.token_url.clone()
    }

    /// A URL of the protected API.
    pub fn api_url(&self, path: &str) -> String {
        format!("http://{}/api/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn register_secret(&self, client: &str, secret: &str) {
        self.server.clients.lock().unwrap().insert(client.into(), Registered::Secret(secret.into()));
    }

    /// Registers `key`'s public half for `client` (a client id, or the
    /// issuer of JWT-bearer assertions); `kid`, when given, must match.
    pub fn register_key(&self, client: &str, key: &TestKey, kid: Option<&str>) {
        let registered =
            Registered::Key { key: key.decoding_key(), alg: key.alg, kid: kid.map(str::to_owned), x5t_s256: None };
        self.server.clients.lock().unwrap().insert(client.into(), registered);
    }

    /// Registers `key` for `client` by its certificate, as Microsoft Entra
    /// does: assertions must name it by `x5t#S256` (the thumbprint given).
    pub fn register_certificate(&self, client: &str, key: &TestKey, thumbprint: &str) {
        let registered =
            Registered::Key { key: key.decoding_key(), alg: key.alg, kid: None, x5t_s256: Some(thumbprint.into()) };
        self.server.clients.lock().unwrap().insert(client.into(), registered);
    }

    /// Tokens live `lifetime` (stated as `expires_in` in whole seconds), and
    /// have already lost `issued_late_by` of it when they reach the client.
    pub fn set_lifetime(&self, lifetime: Duration, issued_late_by: Duration) {
        let mut settings = self.server.settings.lock().unwrap();
        settings.lifetime = lifetime;
        settings.issued_late_by = issued_late_by;
    }

    pub fn set_shape(&self, shape: ReplyShape) {
        self.server.settings.lock().unwrap().shape = shape;
    }

    /// An `aud` JWT-bearer assertions may carry instead of the token endpoint.
    pub fn accept_audience(&self, audience: &str) {
        self.server.settings.lock().unwrap().audience = Some(audience.into());
    }

    /// The API reads its token from `header`, after `prefix`.
    pub fn api_reads(&self, header: &str, prefix: &str) {
        self.server.settings.lock().unwrap().api_header = (header.to_ascii_lowercase(), prefix.into());
    }

    /// Every token issued so far stops working (as if revoked early).
    pub fn revoke_all(&self) {
        self.server.issued.lock().unwrap().clear();
    }

    pub fn token_requests(&self) -> usize {
        self.server.counters.token_requests.load(Ordering::SeqCst)
    }

    pub fn api_calls(&self) -> usize {
        self.server.counters.api_calls.load(Ordering::SeqCst)
    }

    /// API requests that carried a token this server issued but that had expired on arrival.
    pub fn stale_tokens(&self) -> usize {
        self.server.counters.stale.load(Ordering::SeqCst)
    }

    /// Token requests refused, with why.
    pub fn refusals(&self) -> Vec<String> {
        self.server.refusals.lock().unwrap().clone()
    }
}

#[derive(Deserialize)]
struct TokenForm {
    grant_type: String,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
    assertion: Option<String>,
    scope: Option<String>,
}

fn refuse(server: &Server, status: StatusCode, error: &str, why: String) -> Response {
    server.counters.refused.fetch_add(1, Ordering::SeqCst);
    server.refusals.lock().unwrap().push(why);
    (status, Json(json!({"error": error, "error_description": "refused by the test authorization server"})))
        .into_response()
}

async fn token(State(server): State<Arc<Server>>, headers: HeaderMap, Form(form): Form<TokenForm>) -> Response {
    server.counters.token_requests.fetch_add(1, Ordering::SeqCst);
    let verified = match form.grant_type.as_str() {
        "client_credentials" => client_credentials(&server, &headers, &form).map(|c| (c, form.scope.clone())),
        "urn:ietf:params:oauth:grant-type:jwt-bearer" => jwt_bearer(&server, &form),
        other => Err((StatusCode::BAD_REQUEST, "unsupported_grant_type", format!("grant_type {other}"))),
    };
    let (client, scope) = match verified {
        Ok(ok) => ok,
        Err((status, error, why)) => return refuse(&server, status, error, why),
    };
    let (lifetime, late, shape) = {
        let s = server.settings.lock().unwrap();
        (s.lifetime, s.issued_late_by, s.shape)
    };
    let value = format!("at-{}", uuid::Uuid::new_v4().simple());
    let valid_until = Instant::now() + lifetime.saturating_sub(late);
    server.issued.lock().unwrap().insert(value.clone(), Issued { client, valid_until, scope });
    let expires_in = lifetime.as_secs();
    let body = match shape {
        ReplyShape::Standard => json!({"access_token": value, "token_type": "Bearer", "expires_in": expires_in}),
        ReplyShape::Nested => json!({"data": {"token": value, "ttl": expires_in.to_string()}}),
    };
    Json(body).into_response()
}

type Refusal = (StatusCode, &'static str, String);

fn client_credentials(server: &Server, headers: &HeaderMap, form: &TokenForm) -> Result<String, Refusal> {
    let invalid = |why: String| (StatusCode::UNAUTHORIZED, "invalid_client", why);
    let clients = server.clients.lock().unwrap();
    if let Some(assertion) = &form.client_assertion {
        if form.client_assertion_type.as_deref() != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer") {
            return Err(invalid("client_assertion_type".into()));
        }
        let claims =
            verify(server, &clients, assertion, std::slice::from_ref(&server.token_url), Duration::from_secs(300))
                .map_err(invalid)?;
        let (iss, sub) = (claims["iss"].as_str().unwrap_or(""), claims["sub"].as_str().unwrap_or(""));
        if iss != sub || form.client_id.as_deref().is_some_and(|id| id != iss) {
            return Err(invalid(format!("iss {iss} / sub {sub} / client_id {:?}", form.client_id)));
        }
        return Ok(iss.to_owned());
    }
    let (id, secret) = match (headers.get("authorization").and_then(|v| v.to_str().ok()), &form.client_id) {
        (Some(basic), _) if basic.starts_with("Basic ") => {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(&basic[6..])
                .map_err(|_| invalid("basic credentials are not base64".into()))?;
            let text = String::from_utf8(decoded).map_err(|_| invalid("basic credentials are not text".into()))?;
            let (id, secret) = text.split_once(':').ok_or_else(|| invalid("no `:` in basic credentials".into()))?;
            let decode =
                |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().unwrap().1.into_owned();
            (decode(id), decode(secret))
        }
        (_, Some(id)) => (id.clone(), form.client_secret.clone().unwrap_or_default()),
        _ => return Err(invalid("no client authentication".into())),
    };
    match clients.get(&id) {
        Some(Registered::Secret(expected)) if *expected == secret => Ok(id),
        _ => Err(invalid(format!("client {id} failed to authenticate"))),
    }
}

fn jwt_bearer(server: &Server, form: &TokenForm) -> Result<(String, Option<String>), Refusal> {
    let invalid = |why: String| (StatusCode::BAD_REQUEST, "invalid_grant", why);
    let assertion = form.assertion.as_deref().ok_or_else(|| invalid("no assertion".into()))?;
    let mut audiences = vec![server.token_url.clone()];
    audiences.extend(server.settings.lock().unwrap().audience.clone());
    let clients = server.clients.lock().unwrap();
    let claims = verify(server, &clients, assertion, &audiences, Duration::from_secs(3600)).map_err(invalid)?;
    let issuer = claims["iss"].as_str().unwrap_or_default().to_owned();
    let scope = claims.get("scope").and_then(Value::as_str).map(str::to_owned);
    Ok((issuer, scope))
}

/// Verifies a signed assertion: the key registered for its `iss`, one of
/// `audiences`, unexpired, `exp` at most `max_lifetime` after `iat`, and a
/// `jti` never used before.
fn verify(
    server: &Server,
    clients: &HashMap<String, Registered>,
    jwt: &str,
    audiences: &[String],
    max_lifetime: Duration,
) -> Result<Value, String> {
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| format!("header: {e}"))?;
    let unverified: Value = {
        let payload = jwt.split('.').nth(1).ok_or("not a JWS")?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())?
    };
    let issuer = unverified["iss"].as_str().ok_or("no iss")?;
    let Some(Registered::Key { key, alg, kid, x5t_s256 }) = clients.get(issuer) else {
        return Err(format!("no key registered for {issuer}"));
    };
    if header.alg != *alg || header.kid != *kid {
        return Err(format!("alg {:?} / kid {:?} do not match the registration", header.alg, header.kid));
    }
    if x5t_s256.is_some() && header.x5t_s256 != *x5t_s256 {
        return Err(format!("x5t#S256 {:?} does not name the registered certificate", header.x5t_s256));
    }
    let mut validation = Validation::new(*alg);
    validation.set_audience(audiences);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "jti"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(jwt, key, &validation).map_err(|e| format!("verification: {e}"))?.claims;
    let (iat, exp) = (claims["iat"].as_u64().unwrap_or(0), claims["exp"].as_u64().unwrap_or(0));
    if exp.saturating_sub(iat) > max_lifetime.as_secs() {
        return Err(format!("exp - iat = {} s", exp - iat));
    }
    let jti = claims["jti"].as_str().ok_or("no jti")?.to_owned();
    if !server.seen_jti.lock().unwrap().insert(jti.clone()) {
        return Err(format!("jti {jti} replayed"));
    }
    Ok(claims)
}

async fn api(State(server): State<Arc<Server>>, headers: HeaderMap) -> Response {
    server.counters.api_calls.fetch_add(1, Ordering::SeqCst);
    let arrived = Instant::now();
    let (name, prefix) = server.settings.lock().unwrap().api_header.clone();
    let token = headers.get(name.as_str()).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix(prefix.as_str()));
    let Some(token) = token else {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "no token"}))).into_response();
    };
    let issued = server.issued.lock().unwrap();
    match issued.get(token) {
        Some(t) if arrived <= t.valid_until => Json(json!({"client": t.client, "scope": t.scope})).into_response(),
        Some(_) => {
            server.counters.stale.fetch_add(1, Ordering::SeqCst);
            (StatusCode::UNAUTHORIZED, Json(json!({"error": "token expired"}))).into_response()
        }
        None => (StatusCode::UNAUTHORIZED, Json(json!({"error": "unknown token"}))).into_response(),
    }
}
