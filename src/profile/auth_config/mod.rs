//! The kinds of credentials a profile (or a job's `inline_auth`) holds, how
//! they are read from JSON and validated (`read`, `read_oauth2`), masked for
//! display, and split into the public part and the secret fields that are
//! sealed at rest. The OAuth 2.0 types live in `oauth2`, signing keys in
//! `keys`, the signing types in `signed`, client certificates in `tls`.
//!
//! An [`AuthConfig`] is one [`Credential`] (what the `type` names) plus,
//! optionally, a client certificate presented in the TLS handshake on top.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub mod certs;
pub mod keys;
pub mod oauth2;
mod read;
mod read_oauth2;
mod reader;
pub mod signed;
pub mod tls;

pub use oauth2::{
    ClientAuth, JwtBearerConfig, JwtSigning, OAuth2Config, ParamValue, ResponsePaths, SendAs, TokenGrant, TokenOptions,
    TokenParam,
};
pub use reader::parse_http_url;
pub use signed::{HmacConfig, HmacScheme, SigV4Config};
pub use tls::ClientCertificate;

/// What a masked secret starts with. Input carrying it is refused, so a masked
/// value read from the API can never be saved over the real secret.
pub const MASK: &str = "••••";
const MAX_SECRET_LEN: usize = 8 * 1024;
const MAX_TEXT_LEN: usize = 2 * 1024;
pub const MAX_PAIRS: usize = 20;
/// Where a client certificate sits in every type but `mtls`.
const CLIENT_CERTIFICATE: &str = "client_certificate";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    Bearer,
    ApiKey,
    Basic,
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials,
    #[serde(rename = "oauth2_jwt_bearer")]
    OAuth2JwtBearer,
    Hmac,
    AwsSigv4,
    Mtls,
}

impl AuthType {
    pub const ALL: [AuthType; 8] = [
        Self::Bearer,
        Self::ApiKey,
        Self::Basic,
        Self::OAuth2ClientCredentials,
        Self::OAuth2JwtBearer,
        Self::Hmac,
        Self::AwsSigv4,
        Self::Mtls,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::ApiKey => "api_key",
            Self::Basic => "basic",
            Self::OAuth2ClientCredentials => "oauth2_client_credentials",
            Self::OAuth2JwtBearer => "oauth2_jwt_bearer",
            Self::Hmac => "hmac",
            Self::AwsSigv4 => "aws_sigv4",
            Self::Mtls => "mtls",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// `bearer, api_key, …`, for messages.
    pub fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
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

#[derive(Debug, Clone)]
pub struct ApiKeyPair {
    pub key: String,
    pub value: SecretString,
}

/// The credential a profile's `type` names. `Debug` shows no secret.
#[derive(Debug, Clone)]
pub enum Credential {
    Bearer {
        token: SecretString,
    },
    ApiKey {
        method: ApiKeyMethod,
        pairs: Vec<ApiKeyPair>,
    },
    Basic {
        username: String,
        password: SecretString,
    },
    OAuth2ClientCredentials(OAuth2Config),
    OAuth2JwtBearer(JwtBearerConfig),
    Hmac(HmacConfig),
    AwsSigV4(SigV4Config),
    /// The client certificate is the credential.
    Mtls(ClientCertificate),
}

/// Decrypted credentials: the credential, and a client certificate presented
/// on top of it (never set for `mtls`, whose credential is one).
#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub credential: Credential,
    pub client_certificate: Option<ClientCertificate>,
}

impl From<Credential> for AuthConfig {
    fn from(credential: Credential) -> Self {
        Self { credential, client_certificate: None }
    }
}

/// Which rendering of a config: for readers (secrets masked, keys as
/// fingerprints) or for the `config` column (secrets left out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    Masked,
    Stored,
}

impl Credential {
    pub fn auth_type(&self) -> AuthType {
        match self {
            Self::Bearer { .. } => AuthType::Bearer,
            Self::ApiKey { .. } => AuthType::ApiKey,
            Self::Basic { .. } => AuthType::Basic,
            Self::OAuth2ClientCredentials(_) => AuthType::OAuth2ClientCredentials,
            Self::OAuth2JwtBearer(_) => AuthType::OAuth2JwtBearer,
            Self::Hmac(_) => AuthType::Hmac,
            Self::AwsSigV4(_) => AuthType::AwsSigv4,
            Self::Mtls(_) => AuthType::Mtls,
        }
    }

    fn json(&self, view: View) -> Value {
        match self {
            Self::Bearer { token } => json!({ "token": secret_json(token, view) }),
            Self::ApiKey { method, pairs } => json!({
                "method": method,
                "pairs": pairs.iter().map(|p| json!({"key": p.key, "value": secret_json(&p.value, view)})).collect::<Vec<_>>(),
            }),
            Self::Basic { username, password } => {
                json!({"username": username, "password": secret_json(password, view)})
            }
            Self::OAuth2ClientCredentials(c) => c.json(view),
            Self::OAuth2JwtBearer(c) => c.json(view),
            Self::Hmac(c) => c.json(view),
            Self::AwsSigV4(c) => c.json(view),
            Self::Mtls(c) => c.json(view),
        }
    }

    fn secrets(&self) -> Vec<(String, &SecretString)> {
        match self {
            Self::Bearer { token } => vec![("token".into(), token)],
            Self::ApiKey { pairs, .. } => {
                pairs.iter().enumerate().map(|(i, p)| (format!("pairs/{i}/value"), &p.value)).collect()
            }
            Self::Basic { password, .. } => vec![("password".into(), password)],
            Self::OAuth2ClientCredentials(c) => c.secrets(),
            Self::OAuth2JwtBearer(c) => c.secrets(),
            Self::Hmac(c) => c.secrets(),
            Self::AwsSigV4(c) => c.secrets(),
            Self::Mtls(c) => vec![("private_key".into(), c.key.pem())],
        }
    }

    fn assemble(
        auth_type: AuthType,
        obj: &serde_json::Map<String, Value>,
        secrets: &mut Secrets,
    ) -> Result<Self, String> {
        Ok(match auth_type {
            AuthType::Bearer => Self::Bearer { token: secrets.take("token")? },
            AuthType::Basic => Self::Basic {
                username: obj.get("username").and_then(Value::as_str).ok_or("stored username is missing")?.to_owned(),
                password: secrets.take("password")?,
            },
            AuthType::ApiKey => {
                let method: ApiKeyMethod = serde_json::from_value(obj.get("method").cloned().unwrap_or_default())
                    .map_err(|e| format!("stored api_key method: {e}"))?;
                let stored_pairs = obj.get("pairs").and_then(Value::as_array).ok_or("stored pairs are missing")?;
                let mut pairs = Vec::with_capacity(stored_pairs.len());
                for (i, pair) in stored_pairs.iter().enumerate() {
                    let key = pair.get("key").and_then(Value::as_str).ok_or("stored pair key is missing")?;
                    pairs.push(ApiKeyPair { key: key.to_owned(), value: secrets.take(&format!("pairs/{i}/value"))? });
                }
                Self::ApiKey { method, pairs }
            }
            AuthType::OAuth2ClientCredentials => Self::OAuth2ClientCredentials(OAuth2Config::assemble(obj, secrets)?),
            AuthType::OAuth2JwtBearer => Self::OAuth2JwtBearer(JwtBearerConfig::assemble(obj, secrets)?),
            AuthType::Hmac => Self::Hmac(HmacConfig::assemble(obj, secrets)?),
            AuthType::AwsSigv4 => Self::AwsSigV4(SigV4Config::assemble(obj, secrets)?),
            AuthType::Mtls => Self::Mtls(ClientCertificate::assemble(obj, secrets, "private_key")?),
        })
    }
}

impl AuthConfig {
    pub fn auth_type(&self) -> AuthType {
        self.credential.auth_type()
    }

    /// How this config gets an OAuth 2.0 token, if it is one of the OAuth types.
    pub fn token_grant(&self) -> Option<TokenGrant<'_>> {
        match &self.credential {
            Credential::OAuth2ClientCredentials(c) => Some(TokenGrant::ClientCredentials(c)),
            Credential::OAuth2JwtBearer(c) => Some(TokenGrant::JwtBearer(c)),
            _ => None,
        }
    }

    /// The certificate to present in TLS handshakes: the `mtls` credential, or
    /// the `client_certificate` of any other type.
    pub fn tls_identity(&self) -> Option<&ClientCertificate> {
        match &self.credential {
            Credential::Mtls(certificate) => Some(certificate),
            _ => self.client_certificate.as_ref(),
        }
    }

    /// The config as shown to readers: secrets masked, keys as fingerprints.
    pub fn masked(&self) -> Value {
        self.json(View::Masked)
    }

    /// The config without its secrets, as stored in the `config` column.
    pub fn public(&self) -> Value {
        self.json(View::Stored)
    }

    fn json(&self, view: View) -> Value {
        let mut value = self.credential.json(view);
        if let Some(certificate) = &self.client_certificate {
            let mut nested = certificate.json(view);
            strip_nulls(&mut nested);
            value[CLIENT_CERTIFICATE] = nested;
        }
        strip_nulls(&mut value);
        value
    }

    /// Every secret field with its storage name (`token`, `pairs/0/value`,
    /// `token_params/1/value`, `private_key`, `client_certificate/private_key`, …).
    pub fn secrets(&self) -> Vec<(String, &SecretString)> {
        let mut secrets = self.credential.secrets();
        if let Some(certificate) = &self.client_certificate {
            secrets.push((format!("{CLIENT_CERTIFICATE}/private_key"), certificate.key.pem()));
        }
        secrets
    }

    /// Rebuilds a config from its stored public part and its opened secrets.
    pub fn assemble(
        auth_type: AuthType,
        public: &Value,
        secrets: BTreeMap<String, SecretString>,
    ) -> Result<Self, String> {
        let obj = public.as_object().ok_or("stored config is not an object")?;
        let mut secrets = Secrets(secrets);
        let credential = Credential::assemble(auth_type, obj, &mut secrets)?;
        let client_certificate = match obj.get(CLIENT_CERTIFICATE).and_then(Value::as_object) {
            Some(stored) if auth_type != AuthType::Mtls => Some(
                ClientCertificate::assemble(stored, &mut secrets, &format!("{CLIENT_CERTIFICATE}/private_key"))
                    .map_err(|e| format!("{CLIENT_CERTIFICATE}: {e}"))?,
            ),
            _ => None,
        };
        Ok(Self { credential, client_certificate })
    }

    /// SHA-256 of everything that shapes this config's token request (the
    /// public config and each secret, tagged and length-prefixed): tokens are
    /// kept per digest, so the same profile version used with different
    /// parameters never shares a token, and no secret is kept in clear.
    pub fn token_request_digest(&self) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        let mut hash = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hash.update((bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        field(self.auth_type().as_str().as_bytes());
        field(self.public().to_string().as_bytes());
        for (name, value) in self.secrets() {
            field(name.as_bytes());
            field(value.expose_secret().as_bytes());
        }
        hash.finalize().into()
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
        let ours: BTreeMap<String, &SecretString> = self.secrets().into_iter().collect();
        let theirs: BTreeMap<String, &SecretString> = other.secrets().into_iter().collect();
        let fields: std::collections::BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
        for field in fields {
            let same = match (ours.get(field), theirs.get(field)) {
                (Some(a), Some(b)) => a.expose_secret() == b.expose_secret(),
                _ => false,
            };
            let name = format!("config.{}", field.replace('/', "."));
            if !same && !changed.contains(&name) {
                changed.push(name);
            }
        }
        changed
    }
}

/// The opened secrets of a stored profile, taken one by one by field name.
pub(super) struct Secrets(pub BTreeMap<String, SecretString>);

impl Secrets {
    pub(super) fn take(&mut self, field: &str) -> Result<SecretString, String> {
        self.0.remove(field).ok_or_else(|| format!("stored secret `{field}` is missing"))
    }

    pub(super) fn take_optional(&mut self, field: &str) -> Option<SecretString> {
        self.0.remove(field)
    }
}

/// A secret as a view shows it: masked for readers, left out of storage.
fn secret_json(secret: &SecretString, view: View) -> Value {
    match view {
        View::Masked => Value::String(mask(secret)),
        View::Stored => Value::Null,
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
        let Credential::OAuth2ClientCredentials(c) = &patched.credential else { panic!() };
        assert_eq!(c.client_secret.as_ref().unwrap().expose_secret(), "keep-me");
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
        let Credential::ApiKey { pairs, .. } = patched.credential else { panic!() };
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
