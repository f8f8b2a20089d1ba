//! The four kinds of credentials a profile (or a job's `inline_auth`) holds,
//! how they are read from JSON and validated, masked for display, and split
//! into the public part and the secret fields that are sealed at rest.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use url::Url;

mod read;

pub use read::parse_http_url;

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

/// Drops unset optional fields (nulls), in pairs too, so readers see only what is set.
fn strip_nulls(value: &mut Value) {
    if let Value::Object(obj) = value {
        obj.retain(|_, v| !v.is_null());
        for pair in obj.get_mut("pairs").and_then(Value::as_array_mut).into_iter().flatten() {
            strip_nulls(pair);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::validation::FieldErrors;

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
