//! The four kinds of credentials a profile (or a job's `inline_auth`) holds,
//! how they are read from JSON and validated, masked for display, and split
//! into the public part and the secret fields that are sealed at rest.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use super::validation::{FieldErrors, has_control_chars};

/// What a masked secret starts with. Input carrying it is refused, so a masked
/// value read from the API can never be saved over the real secret.
pub const MASK: &str = "••••";
const MAX_SECRET_LEN: usize = 8 * 1024;
const MAX_TEXT_LEN: usize = 2 * 1024;
pub const MAX_PAIRS: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Bearer,
    ApiKey,
    Basic,
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
}

impl AuthType {
    pub const ALL: [AuthType; 4] = [Self::Bearer, Self::ApiKey, Self::Basic, Self::OAuth2ClientCredentials];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
            Self::OAuth2ClientCredentials => "oauth2_client_credentials",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for AuthType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyMethod {
    Header,
    Query,
    Body,
}

impl ApiKeyMethod {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "header" => Some(Self::Header),
            "query" => Some(Self::Query),
            "body" => Some(Self::Body),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_secret_basic`: id and secret in an `Authorization: Basic` header.
    #[default]
    Basic,
    /// `client_secret_post`: id and secret as form fields of the token request.
    Post,
}

#[derive(Debug, Clone)]
pub struct ApiKeyPair {
    pub key: String,
    pub value: SecretString,
}

#[derive(Debug, Clone)]
pub struct OAuth2Config {
    pub client_id: String,
    pub client_secret: SecretString,
    pub token_endpoint: Url,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
}

/// Decrypted credentials. `Debug` shows no secret (they are `SecretString`s).
#[derive(Debug, Clone)]
pub enum AuthConfig {
    Bearer { token: SecretString },
    ApiKey { method: ApiKeyMethod, pairs: Vec<ApiKeyPair> },
    Basic { username: String, password: SecretString },
    OAuth2ClientCredentials(OAuth2Config),
}

impl AuthConfig {
    pub fn auth_type(&self) -> AuthType {
        match self {
            Self::Bearer { .. } => AuthType::Bearer,
            Self::ApiKey { .. } => AuthType::ApiKey,
            Self::Basic { .. } => AuthType::Basic,
            Self::OAuth2ClientCredentials(_) => AuthType::OAuth2ClientCredentials,
        }
    }

    /// Reads and validates a config object. Fields are reported as
    /// `{prefix}.{field}`. `stored` is the current config of a profile being
    /// patched: fields the input omits keep their stored values, secrets included.
    pub fn parse(
        auth_type: AuthType,
        input: &Value,
        stored: Option<&AuthConfig>,
        prefix: &str,
    ) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::default();
        let empty = Map::new();
        let obj = match input {
            Value::Object(obj) => obj,
            Value::Null => &empty,
            _ => return Err(FieldErrors::single(prefix, "must be a JSON object")),
        };
        let stored = stored.filter(|s| s.auth_type() == auth_type);
        let mut r = Reader { obj, prefix, errors: &mut errors };
        let config = match auth_type {
            AuthType::Bearer => {
                r.allow_only(&["token"]);
                let kept = match stored {
                    Some(AuthConfig::Bearer { token }) => Some(token),
                    _ => None,
                };
                let token = r.secret("token", kept, false);
                token.map(|token| AuthConfig::Bearer { token })
            }
            AuthType::Basic => {
                r.allow_only(&["username", "password"]);
                let (kept_user, kept_pass) = match stored {
                    Some(AuthConfig::Basic { username, password }) => (Some(username.as_str()), Some(password)),
                    _ => (None, None),
                };
                let username = r.text("username", kept_user, true);
                if let Some(u) = &username
                    && u.contains(':')
                {
                    r.err("username", "must not contain `:` (RFC 7617)");
                }
                // An empty password is legitimate (e.g. an API key sent as the user name).
                let password = r.secret("password", kept_pass, true);
                match (username, password) {
                    (Some(username), Some(password)) => Some(AuthConfig::Basic { username, password }),
                    _ => None,
                }
            }
            AuthType::ApiKey => {
                r.allow_only(&["method", "pairs"]);
                let (kept_method, kept_pairs) = match stored {
                    Some(AuthConfig::ApiKey { method, pairs }) => (Some(*method), Some(pairs.as_slice())),
                    _ => (None, None),
                };
                let method = match obj.get("method") {
                    None | Some(Value::Null) => {
                        if kept_method.is_none() {
                            r.err("method", "is required: one of header, query, body");
                        }
                        kept_method
                    }
                    Some(Value::String(s)) => {
                        let m = ApiKeyMethod::parse(s);
                        if m.is_none() {
                            r.err("method", "must be one of header, query, body");
                        }
                        m
                    }
                    Some(_) => {
                        r.err("method", "must be one of header, query, body");
                        None
                    }
                };
                let pairs = match obj.get("pairs") {
                    None | Some(Value::Null) => match kept_pairs {
                        Some(p) => Some(p.to_vec()),
                        None => {
                            r.err("pairs", "is required: 1 to 20 {\"key\", \"value\"} pairs");
                            None
                        }
                    },
                    Some(value) => r.pairs(value, kept_pairs.unwrap_or_default()),
                };
                match (method, pairs) {
                    (Some(method), Some(pairs)) => {
                        validate_pairs(method, &pairs, prefix, r.errors);
                        Some(AuthConfig::ApiKey { method, pairs })
                    }
                    _ => None,
                }
            }
            AuthType::OAuth2ClientCredentials => {
                r.allow_only(&["client_id", "client_secret", "token_endpoint", "scope", "audience", "client_auth"]);
                let kept = match stored {
                    Some(AuthConfig::OAuth2ClientCredentials(c)) => Some(c),
                    _ => None,
                };
                let client_id = r.text("client_id", kept.map(|c| c.client_id.as_str()), false);
                let client_secret = r.secret("client_secret", kept.map(|c| &c.client_secret), false);
                let endpoint = r.text("token_endpoint", kept.map(|c| c.token_endpoint.as_str()), false);
                let token_endpoint = endpoint.and_then(|e| match parse_http_url(&e) {
                    Ok(url) => Some(url),
                    Err(msg) => {
                        r.err("token_endpoint", msg);
                        None
                    }
                });
                let scope = r.optional_text("scope", kept.and_then(|c| c.scope.as_deref()));
                let audience = r.optional_text("audience", kept.and_then(|c| c.audience.as_deref()));
                let client_auth = match obj.get("client_auth") {
                    None => kept.map(|c| c.client_auth).unwrap_or_default(),
                    Some(Value::Null) => ClientAuth::default(),
                    Some(Value::String(s)) if s == "basic" => ClientAuth::Basic,
                    Some(Value::String(s)) if s == "post" => ClientAuth::Post,
                    Some(_) => {
                        r.err("client_auth", "must be `basic` or `post`");
                        ClientAuth::default()
                    }
                };
                match (client_id, client_secret, token_endpoint) {
                    (Some(client_id), Some(client_secret), Some(token_endpoint)) => {
                        Some(AuthConfig::OAuth2ClientCredentials(OAuth2Config {
                            client_id,
                            client_secret,
                            token_endpoint,
                            scope,
                            audience,
                            client_auth,
                        }))
                    }
                    _ => None,
                }
            }
        };
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
    }

    /// The config as shown to readers: secrets masked.
    pub fn masked(&self) -> Value {
        self.public_json(|s| Value::String(mask(s)))
    }

    /// The config without its secrets, as stored in the `config` column.
    pub fn public(&self) -> Value {
        self.public_json(|_| Value::Null)
    }

    fn public_json(&self, secret: impl Fn(&SecretString) -> Value) -> Value {
        let mut value = match self {
            AuthConfig::Bearer { token } => json!({ "token": secret(token) }),
            AuthConfig::ApiKey { method, pairs } => json!({
                "method": method,
                "pairs": pairs.iter().map(|p| json!({"key": p.key, "value": secret(&p.value)})).collect::<Vec<_>>(),
            }),
            AuthConfig::Basic { username, password } => json!({"username": username, "password": secret(password)}),
            AuthConfig::OAuth2ClientCredentials(c) => json!({
                "client_id": c.client_id,
                "client_secret": secret(&c.client_secret),
                "token_endpoint": c.token_endpoint.as_str(),
                "scope": c.scope,
                "audience": c.audience,
                "client_auth": c.client_auth,
            }),
        };
        strip_nulls(&mut value);
        value
    }

    /// Every secret field with its storage name (`token`, `pairs/0/value`, …).
    pub fn secrets(&self) -> Vec<(String, &SecretString)> {
        match self {
            AuthConfig::Bearer { token } => vec![("token".into(), token)],
            AuthConfig::ApiKey { pairs, .. } => {
                pairs.iter().enumerate().map(|(i, p)| (format!("pairs/{i}/value"), &p.value)).collect()
            }
            AuthConfig::Basic { password, .. } => vec![("password".into(), password)],
            AuthConfig::OAuth2ClientCredentials(c) => vec![("client_secret".into(), &c.client_secret)],
        }
    }

    /// Rebuilds a config from its stored public part and its opened secrets.
    pub fn assemble(
        auth_type: AuthType,
        public: &Value,
        mut secrets: BTreeMap<String, SecretString>,
    ) -> Result<Self, String> {
        let mut value = public.clone();
        let obj = value.as_object_mut().ok_or("stored config is not an object")?;
        let mut take = |field: &str| secrets.remove(field).ok_or_else(|| format!("stored secret `{field}` is missing"));
        let config = match auth_type {
            AuthType::Bearer => AuthConfig::Bearer { token: take("token")? },
            AuthType::Basic => AuthConfig::Basic {
                username: obj.get("username").and_then(Value::as_str).ok_or("stored username is missing")?.to_owned(),
                password: take("password")?,
            },
            AuthType::ApiKey => {
                let method: ApiKeyMethod = serde_json::from_value(obj.remove("method").unwrap_or_default())
                    .map_err(|e| format!("stored api_key method: {e}"))?;
                let stored_pairs = obj.get("pairs").and_then(Value::as_array).ok_or("stored pairs are missing")?;
                let mut pairs = Vec::with_capacity(stored_pairs.len());
                for (i, pair) in stored_pairs.iter().enumerate() {
                    let key = pair.get("key").and_then(Value::as_str).ok_or("stored pair key is missing")?;
                    pairs.push(ApiKeyPair { key: key.to_owned(), value: take(&format!("pairs/{i}/value"))? });
                }
                AuthConfig::ApiKey { method, pairs }
            }
            AuthType::OAuth2ClientCredentials => {
                let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_owned);
                AuthConfig::OAuth2ClientCredentials(OAuth2Config {
                    client_id: text("client_id").ok_or("stored client_id is missing")?,
                    client_secret: take("client_secret")?,
                    token_endpoint: text("token_endpoint")
                        .and_then(|u| Url::parse(&u).ok())
                        .ok_or("stored token_endpoint is missing or invalid")?,
                    scope: text("scope"),
                    audience: text("audience"),
                    client_auth: serde_json::from_value(obj.get("client_auth").cloned().unwrap_or(json!("basic")))
                        .map_err(|e| format!("stored client_auth: {e}"))?,
                })
            }
        };
        Ok(config)
    }

    /// Names of the fields that differ from `other` (for the audit log; never values).
    pub fn changed_fields(&self, other: &AuthConfig) -> Vec<String> {
        let mut changed = Vec::new();
        let (a, b) = (self.public(), other.public());
        let keys: std::collections::BTreeSet<&String> =
            a.as_object().into_iter().chain(b.as_object()).flat_map(|o| o.keys()).collect();
        for key in keys {
            if a.get(key) != b.get(key) {
                changed.push(format!("config.{key}"));
            }
        }
        let theirs: BTreeMap<String, &SecretString> = other.secrets().into_iter().collect();
        for (field, value) in self.secrets() {
            if theirs.get(&field).is_none_or(|v| v.expose_secret() != value.expose_secret()) {
                changed.push(format!("config.{}", field.replace('/', ".")));
            }
        }
        changed
    }
}

/// `••••` plus the last four characters, only for secrets long enough that
/// four characters reveal little (12 or more); shorter ones show only `••••`.
pub fn mask(secret: &SecretString) -> String {
    let s = secret.expose_secret();
    let count = s.chars().count();
    if count >= 12 {
        let tail: String = s.chars().skip(count - 4).collect();
        format!("{MASK}{tail}")
    } else {
        MASK.to_owned()
    }
}

/// An absolute http(s) URL with a host and no credentials in it.
pub fn parse_http_url(raw: &str) -> Result<Url, &'static str> {
    let url = Url::parse(raw).map_err(|_| "must be an absolute http(s) URL")?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must use http or https");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must have a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials in the URL");
    }
    Ok(url)
}

fn strip_nulls(value: &mut Value) {
    if let Value::Object(obj) = value {
        obj.retain(|_, v| !v.is_null());
        for pair in obj.get_mut("pairs").and_then(Value::as_array_mut).into_iter().flatten() {
            strip_nulls(pair);
        }
    }
}

/// Header names a credential may not set: they belong to the HTTP framing.
const RESERVED_HEADERS: &[&str] =
    &["host", "content-length", "transfer-encoding", "connection", "te", "upgrade", "trailer"];

fn validate_pairs(method: ApiKeyMethod, pairs: &[ApiKeyPair], prefix: &str, errors: &mut FieldErrors) {
    if pairs.is_empty() || pairs.len() > MAX_PAIRS {
        errors.add(format!("{prefix}.pairs"), format!("must hold 1 to {MAX_PAIRS} pairs"));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, pair) in pairs.iter().enumerate() {
        let field = format!("{prefix}.pairs[{i}].key");
        let normalized = if method == ApiKeyMethod::Header { pair.key.to_ascii_lowercase() } else { pair.key.clone() };
        if !seen.insert(normalized.clone()) {
            errors.add(&field, format!("`{}` appears more than once", pair.key));
        }
        if method == ApiKeyMethod::Header {
            if reqwest::header::HeaderName::from_bytes(pair.key.as_bytes()).is_err() {
                errors.add(&field, "must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)");
            } else if RESERVED_HEADERS.contains(&normalized.as_str()) {
                errors.add(&field, format!("`{}` is managed by HTTP itself and cannot carry a credential", pair.key));
            }
            if reqwest::header::HeaderValue::from_str(pair.value.expose_secret()).is_err() {
                errors.add(
                    format!("{prefix}.pairs[{i}].value"),
                    "must be a valid header value (visible ASCII, no line breaks)",
                );
            }
        }
    }
}

/// Reads typed fields from a config object, collecting errors with their paths.
struct Reader<'a> {
    obj: &'a Map<String, Value>,
    prefix: &'a str,
    errors: &'a mut FieldErrors,
}

impl Reader<'_> {
    fn path(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }

    fn err(&mut self, field: &str, message: impl Into<String>) {
        let path = self.path(field);
        self.errors.add(path, message);
    }

    fn allow_only(&mut self, allowed: &[&str]) {
        let unknown: Vec<String> = self.obj.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            self.err(&key, format!("is not a field of this type (expected: {})", allowed.join(", ")));
        }
    }

    /// A required non-secret string; `kept` is used when the input omits it.
    fn text(&mut self, field: &str, kept: Option<&str>, allow_spaces_only: bool) -> Option<String> {
        match self.obj.get(field) {
            None | Some(Value::Null) => match kept {
                Some(k) => Some(k.to_owned()),
                None => {
                    self.err(field, "is required");
                    None
                }
            },
            Some(Value::String(s)) => {
                let ok_blank = allow_spaces_only && !s.is_empty();
                if s.trim().is_empty() && !ok_blank {
                    self.err(field, "must not be empty");
                    None
                } else if s.chars().count() > MAX_TEXT_LEN {
                    self.err(field, format!("must be at most {MAX_TEXT_LEN} characters"));
                    None
                } else if has_control_chars(s) {
                    self.err(field, "must not contain control characters or line breaks");
                    None
                } else {
                    Some(s.clone())
                }
            }
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    /// An optional string: omitted keeps `kept`, `null` or "" removes it.
    fn optional_text(&mut self, field: &str, kept: Option<&str>) -> Option<String> {
        match self.obj.get(field) {
            None => kept.map(str::to_owned),
            Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(_) => self.text(field, None, false),
        }
    }

    /// A secret string; omitted keeps `kept` (if any). Masked values are refused.
    fn secret(&mut self, field: &str, kept: Option<&SecretString>, allow_empty: bool) -> Option<SecretString> {
        match self.obj.get(field) {
            None | Some(Value::Null) => match kept {
                Some(k) => Some(k.clone()),
                None => {
                    self.err(field, "is required");
                    None
                }
            },
            Some(Value::String(s)) => match check_secret(s, allow_empty) {
                Ok(()) => Some(SecretString::from(s.clone())),
                Err(msg) => {
                    self.err(field, msg);
                    None
                }
            },
            Some(_) => {
                self.err(field, "must be a string");
                None
            }
        }
    }

    fn pairs(&mut self, value: &Value, kept: &[ApiKeyPair]) -> Option<Vec<ApiKeyPair>> {
        let Some(items) = value.as_array() else {
            self.err("pairs", "must be an array of {\"key\", \"value\"} objects");
            return None;
        };
        let mut pairs = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let field = format!("pairs[{i}]");
            let Some(obj) = item.as_object() else {
                self.err(&field, "must be an object with `key` and `value`");
                ok = false;
                continue;
            };
            if let Some(extra) = obj.keys().find(|k| *k != "key" && *k != "value") {
                self.err(&format!("{field}.{extra}"), "is not a field of a pair (expected: key, value)");
                ok = false;
            }
            let key = match obj.get("key") {
                Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 && !has_control_chars(k) => k.clone(),
                _ => {
                    self.err(&format!("{field}.key"), "is required: a non-empty string of at most 256 characters");
                    ok = false;
                    continue;
                }
            };
            let value = match obj.get("value") {
                None | Some(Value::Null) => match kept.iter().find(|p| p.key == key) {
                    Some(p) => p.value.clone(),
                    None => {
                        self.err(&format!("{field}.value"), "is required (no stored value for this key)");
                        ok = false;
                        continue;
                    }
                },
                Some(Value::String(v)) => match check_secret(v, false) {
                    Ok(()) => SecretString::from(v.clone()),
                    Err(msg) => {
                        self.err(&format!("{field}.value"), msg);
                        ok = false;
                        continue;
                    }
                },
                Some(_) => {
                    self.err(&format!("{field}.value"), "must be a string");
                    ok = false;
                    continue;
                }
            };
            pairs.push(ApiKeyPair { key, value });
        }
        ok.then_some(pairs)
    }
}

fn check_secret(s: &str, allow_empty: bool) -> Result<(), &'static str> {
    if s.is_empty() && !allow_empty {
        return Err("must not be empty");
    }
    if s.contains(MASK) {
        return Err("looks like a masked value; send the real secret, or omit the field to keep the stored one");
    }
    if s.len() > MAX_SECRET_LEN {
        return Err("must be at most 8 KiB");
    }
    if has_control_chars(s) {
        return Err("must not contain control characters or line breaks");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: AuthType, v: Value) -> Result<AuthConfig, FieldErrors> {
        AuthConfig::parse(t, &v, None, "config")
    }

    #[test]
    fn each_type_parses_and_masks_its_secrets() {
        let cases = [
            (AuthType::Bearer, json!({"token": "tok-0123456789abcdef"}), "tok-0123456789abcdef"),
            (AuthType::Basic, json!({"username": "u", "password": "pw-0123456789"}), "pw-0123456789"),
            (
                AuthType::ApiKey,
                json!({"method": "header", "pairs": [{"key": "X-Api-Key", "value": "key-0123456789"}]}),
                "key-0123456789",
            ),
            (
                AuthType::OAuth2ClientCredentials,
                json!({"client_id": "id", "client_secret": "cs-0123456789", "token_endpoint": "https://auth.example/token"}),
                "cs-0123456789",
            ),
        ];
        for (t, input, secret) in cases {
            let config = parse(t, input).unwrap();
            let masked = config.masked().to_string();
            assert!(!masked.contains(secret), "{masked}");
            assert!(masked.contains(MASK), "{masked}");
            assert!(!format!("{config:?}").contains(secret));
        }
    }

    #[test]
    fn short_secrets_show_no_characters() {
        assert_eq!(mask(&SecretString::from("abcdefgh")), MASK);
        assert_eq!(mask(&SecretString::from("abcdefgh1f2e")), "••••1f2e");
    }

    #[test]
    fn a_masked_value_is_never_accepted_as_a_secret() {
        let err = parse(AuthType::Bearer, json!({"token": "••••1f2e"})).unwrap_err();
        assert_eq!(err.0[0].field, "config.token");
    }

    #[test]
    fn missing_and_unknown_fields_are_reported_by_path() {
        let err = parse(AuthType::OAuth2ClientCredentials, json!({"client_id": "x", "extra": 1})).unwrap_err();
        let fields: Vec<_> = err.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"config.extra"));
        assert!(fields.contains(&"config.client_secret"));
        assert!(fields.contains(&"config.token_endpoint"));
    }

    #[test]
    fn api_key_rules_hold() {
        let bad_header =
            parse(AuthType::ApiKey, json!({"method": "header", "pairs": [{"key": "X Bad", "value": "v"}]}));
        assert_eq!(bad_header.unwrap_err().0[0].field, "config.pairs[0].key");
        let reserved = parse(AuthType::ApiKey, json!({"method": "header", "pairs": [{"key": "Host", "value": "v"}]}));
        assert!(reserved.is_err());
        let none = parse(AuthType::ApiKey, json!({"method": "query", "pairs": []}));
        assert_eq!(none.unwrap_err().0[0].field, "config.pairs");
        let many: Vec<Value> = (0..21).map(|i| json!({"key": format!("k{i}"), "value": "v"})).collect();
        assert!(parse(AuthType::ApiKey, json!({"method": "query", "pairs": many})).is_err());
        let method = parse(AuthType::ApiKey, json!({"method": "cookie", "pairs": [{"key": "k", "value": "v"}]}));
        assert_eq!(method.unwrap_err().0[0].field, "config.method");
        let dup = parse(
            AuthType::ApiKey,
            json!({"method": "header", "pairs": [{"key": "A", "value": "1"}, {"key": "a", "value": "2"}]}),
        );
        assert!(dup.is_err());
        let body = parse(AuthType::ApiKey, json!({"method": "body", "pairs": [{"key": "api key", "value": "v"}]}));
        assert!(body.is_ok(), "body keys are not header names");
    }

    #[test]
    fn token_endpoint_must_be_absolute_http() {
        for bad in ["/token", "ftp://x/token", "https://user:pw@x/token", "not a url"] {
            let err = parse(
                AuthType::OAuth2ClientCredentials,
                json!({"client_id": "i", "client_secret": "s", "token_endpoint": bad}),
            )
            .unwrap_err();
            assert_eq!(err.0[0].field, "config.token_endpoint", "{bad}");
        }
    }

    #[test]
    fn a_patch_keeps_omitted_secrets_and_fields() {
        let stored = parse(
            AuthType::OAuth2ClientCredentials,
            json!({"client_id": "i", "client_secret": "keep-me", "token_endpoint": "https://a/t", "scope": "read"}),
        )
        .unwrap();
        let patched =
            AuthConfig::parse(AuthType::OAuth2ClientCredentials, &json!({"scope": "write"}), Some(&stored), "config")
                .unwrap();
        let AuthConfig::OAuth2ClientCredentials(c) = &patched else { panic!() };
        assert_eq!(c.client_secret.expose_secret(), "keep-me");
        assert_eq!(c.scope.as_deref(), Some("write"));
        assert_eq!(patched.changed_fields(&stored), vec!["config.scope"]);
    }

    #[test]
    fn a_patch_of_pairs_keeps_values_by_key() {
        let stored =
            parse(AuthType::ApiKey, json!({"method": "header", "pairs": [{"key": "A", "value": "secret-a"}]})).unwrap();
        let patched = AuthConfig::parse(
            AuthType::ApiKey,
            &json!({"pairs": [{"key": "B", "value": "secret-b"}, {"key": "A"}]}),
            Some(&stored),
            "config",
        )
        .unwrap();
        let AuthConfig::ApiKey { pairs, .. } = patched else { panic!() };
        assert_eq!(pairs[1].value.expose_secret(), "secret-a");
        let err = AuthConfig::parse(AuthType::ApiKey, &json!({"pairs": [{"key": "C"}]}), Some(&stored), "config")
            .unwrap_err();
        assert_eq!(err.0[0].field, "config.pairs[0].value");
    }

    #[test]
    fn public_part_and_secrets_reassemble_to_the_same_config() {
        let config = parse(
            AuthType::ApiKey,
            json!({"method": "body", "pairs": [{"key": "a", "value": "1"}, {"key": "b", "value": "2"}]}),
        )
        .unwrap();
        let public = config.public();
        assert!(!public.to_string().contains("\"1\""));
        let secrets = config.secrets().into_iter().map(|(f, s)| (f, s.clone())).collect();
        let back = AuthConfig::assemble(AuthType::ApiKey, &public, secrets).unwrap();
        assert!(back.changed_fields(&config).is_empty());
    }
}
