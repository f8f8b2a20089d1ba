//! The two OAuth 2.0 types (contract §5 and §8.1): the client credentials
//! grant with its four ways of client authentication, and the JWT-bearer
//! grant (RFC 7523 §2.1). Both share how the token request may be bent
//! (extra form fields and headers, where the reply keeps the token) and how
//! the token is sent.

use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use url::Url;

use super::certs::Certificate;
use super::keys::{PrivateKey, SigningAlg};
use super::{Secrets, View, mask, secret_json};

/// How a client authenticates to the token endpoint in the client credentials grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_secret_basic`: id and secret in an `Authorization: Basic` header.
    #[default]
    Basic,
    /// `client_secret_post`: id and secret as form fields of the token request.
    Post,
    /// RFC 8705: the client certificate is the credential; `client_id` in the form.
    TlsClientAuth,
    /// RFC 7523 §2.2: a JWT signed with the profile's private key.
    PrivateKeyJwt,
}

impl ClientAuth {
    pub const ALL: [ClientAuth; 4] = [Self::Basic, Self::Post, Self::TlsClientAuth, Self::PrivateKeyJwt];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Basic => "basic",
            Self::Post => "post",
            Self::TlsClientAuth => "tls_client_auth",
            Self::PrivateKeyJwt => "private_key_jwt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether this method authenticates with the client secret.
    pub fn uses_secret(self) -> bool {
        matches!(self, Self::Basic | Self::Post)
    }
}

/// The value of an extra form field or header: shown as is, or a secret.
#[derive(Debug, Clone)]
pub enum ParamValue {
    Plain(String),
    Secret(SecretString),
}

impl ParamValue {
    pub fn expose(&self) -> &str {
        match self {
            ParamValue::Plain(v) => v,
            ParamValue::Secret(v) => v.expose_secret(),
        }
    }

    pub fn is_secret(&self) -> bool {
        matches!(self, ParamValue::Secret(_))
    }
}

/// An extra form field (`token_params`) or header (`token_headers`) of the token request.
#[derive(Debug, Clone)]
pub struct TokenParam {
    pub key: String,
    pub value: ParamValue,
}

/// Where a token reply keeps its fields: dot paths into a JSON reply
/// (`data.token`); `None` is the RFC 6749 name at the top level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponsePaths {
    pub access_token: Option<String>,
    pub expires_in: Option<String>,
    pub token_type: Option<String>,
}

impl ResponsePaths {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The header a token is sent in, and what precedes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendAs {
    pub header: String,
    pub prefix: String,
}

impl Default for SendAs {
    fn default() -> Self {
        Self { header: "Authorization".into(), prefix: "Bearer ".into() }
    }
}

/// What both OAuth types share: how the token request may be bent, and how the token is sent.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    pub params: Vec<TokenParam>,
    pub headers: Vec<TokenParam>,
    pub response: ResponsePaths,
    pub send_as: SendAs,
}

/// The key a JWT is signed with, its `kid`, the algorithm if the profile
/// chose one, and the key's certificate if given (its thumbprints go in the
/// header as `x5t` and `x5t#S256`, as Microsoft Entra asks).
#[derive(Debug, Clone)]
pub struct JwtSigning {
    pub key: PrivateKey,
    pub key_id: Option<String>,
    /// As configured; the key's own algorithm when `None`.
    pub alg: Option<SigningAlg>,
    pub certificate: Option<Certificate>,
}

impl JwtSigning {
    pub fn alg(&self) -> SigningAlg {
        self.alg.unwrap_or_else(|| self.key.kind().default_alg())
    }
}

/// `oauth2_client_credentials`.
#[derive(Debug, Clone)]
pub struct OAuth2Config {
    pub client_id: String,
    /// Required by `basic` and `post`; not by `private_key_jwt` or `tls_client_auth`.
    pub client_secret: Option<SecretString>,
    pub token_endpoint: Url,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
    /// Required by `private_key_jwt`.
    pub signing: Option<JwtSigning>,
    pub options: TokenOptions,
}

/// `oauth2_jwt_bearer`: the assertion is the grant (Google service accounts,
/// Salesforce's JWT bearer flow).
#[derive(Debug, Clone)]
pub struct JwtBearerConfig {
    pub token_endpoint: Url,
    pub issuer: String,
    pub subject: Option<String>,
    /// The assertion's `aud`; the token endpoint when `None`.
    pub audience: Option<String>,
    /// Sent as a claim of the assertion (Google's form).
    pub scope: Option<String>,
    pub signing: JwtSigning,
    pub options: TokenOptions,
}

/// Either OAuth type, as the token client and cache see it.
#[derive(Debug, Clone, Copy)]
pub enum TokenGrant<'a> {
    ClientCredentials(&'a OAuth2Config),
    JwtBearer(&'a JwtBearerConfig),
}

impl<'a> TokenGrant<'a> {
    pub fn token_endpoint(self) -> &'a Url {
        match self {
            TokenGrant::ClientCredentials(c) => &c.token_endpoint,
            TokenGrant::JwtBearer(c) => &c.token_endpoint,
        }
    }

    pub fn options(self) -> &'a TokenOptions {
        match self {
            TokenGrant::ClientCredentials(c) => &c.options,
            TokenGrant::JwtBearer(c) => &c.options,
        }
    }
}

impl OAuth2Config {
    pub(super) fn json(&self, view: View) -> Value {
        let mut value = json!({
            "client_id": self.client_id,
            "client_secret": self.client_secret.as_ref().map(|s| secret_json(s, view)),
            "token_endpoint": self.token_endpoint.as_str(),
            "scope": self.scope,
            "audience": self.audience,
            "client_auth": self.client_auth,
        });
        if let Some(signing) = &self.signing {
            signing_json(signing, view, &mut value);
        }
        options_json(&self.options, view, &mut value);
        value
    }

    pub(super) fn secrets(&self) -> Vec<(String, &SecretString)> {
        let mut secrets: Vec<(String, &SecretString)> =
            self.client_secret.iter().map(|s| ("client_secret".to_owned(), s)).collect();
        if let Some(signing) = &self.signing {
            secrets.push(("private_key".into(), signing.key.pem()));
        }
        secrets.extend(options_secrets(&self.options));
        secrets
    }

    pub(super) fn assemble(stored: &Map<String, Value>, secrets: &mut Secrets) -> Result<Self, String> {
        let client_auth = match stored.get("client_auth") {
            None | Some(Value::Null) => ClientAuth::default(),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("stored client_auth: {e}"))?,
        };
        Ok(Self {
            client_id: text(stored, "client_id").ok_or("stored client_id is missing")?,
            client_secret: secrets.take_optional("client_secret"),
            token_endpoint: url(stored, "token_endpoint")?,
            scope: text(stored, "scope"),
            audience: text(stored, "audience"),
            client_auth,
            signing: match secrets.take_optional("private_key") {
                Some(pem) => Some(signing_from_stored(stored, &pem)?),
                None => None,
            },
            options: options_from_stored(stored, secrets)?,
        })
    }
}

impl JwtBearerConfig {
    pub(super) fn json(&self, view: View) -> Value {
        let mut value = json!({
            "token_endpoint": self.token_endpoint.as_str(),
            "issuer": self.issuer,
            "subject": self.subject,
            "audience": self.audience,
            "scope": self.scope,
        });
        signing_json(&self.signing, view, &mut value);
        options_json(&self.options, view, &mut value);
        value
    }

    pub(super) fn secrets(&self) -> Vec<(String, &SecretString)> {
        let mut secrets = vec![("private_key".to_owned(), self.signing.key.pem())];
        secrets.extend(options_secrets(&self.options));
        secrets
    }

    pub(super) fn assemble(stored: &Map<String, Value>, secrets: &mut Secrets) -> Result<Self, String> {
        let pem = secrets.take("private_key")?;
        Ok(Self {
            token_endpoint: url(stored, "token_endpoint")?,
            issuer: text(stored, "issuer").ok_or("stored issuer is missing")?,
            subject: text(stored, "subject"),
            audience: text(stored, "audience"),
            scope: text(stored, "scope"),
            signing: signing_from_stored(stored, &pem)?,
            options: options_from_stored(stored, secrets)?,
        })
    }
}

fn signing_json(signing: &JwtSigning, view: View, value: &mut Value) {
    if view == View::Masked {
        value["private_key"] = serde_json::to_value(signing.key.view()).expect("a key view serializes");
    }
    value["key_id"] = json!(signing.key_id);
    value["signing_alg"] = json!(signing.alg.map(SigningAlg::as_str));
    if let Some(certificate) = &signing.certificate {
        value["certificate"] = match view {
            View::Masked => serde_json::to_value(certificate.view()).expect("a certificate view serializes"),
            View::Stored => json!(certificate.pem()),
        };
    }
}

fn options_json(options: &TokenOptions, view: View, value: &mut Value) {
    let params = |list: &[TokenParam]| -> Value {
        list.iter()
            .map(|p| match &p.value {
                ParamValue::Plain(v) => json!({"key": p.key, "value": v}),
                ParamValue::Secret(s) => match view {
                    View::Masked => json!({"key": p.key, "value": mask(s), "secret": true}),
                    View::Stored => json!({"key": p.key, "secret": true}),
                },
            })
            .collect()
    };
    if !options.params.is_empty() {
        value["token_params"] = params(&options.params);
    }
    if !options.headers.is_empty() {
        value["token_headers"] = params(&options.headers);
    }
    if !options.response.is_default() {
        let r = &options.response;
        value["token_response"] =
            json!({"access_token": r.access_token, "expires_in": r.expires_in, "token_type": r.token_type});
        if let Some(obj) = value["token_response"].as_object_mut() {
            obj.retain(|_, v| !v.is_null());
        }
    }
    if options.send_as != SendAs::default() {
        value["send_as"] = json!({"header": options.send_as.header, "prefix": options.send_as.prefix});
    }
}

fn options_secrets(options: &TokenOptions) -> Vec<(String, &SecretString)> {
    let mut secrets = secret_entries("token_params", &options.params);
    secrets.extend(secret_entries("token_headers", &options.headers));
    secrets
}

fn secret_entries<'a>(name: &str, list: &'a [TokenParam]) -> Vec<(String, &'a SecretString)> {
    list.iter()
        .enumerate()
        .filter_map(|(i, p)| match &p.value {
            ParamValue::Secret(s) => Some((format!("{name}/{i}/value"), s)),
            ParamValue::Plain(_) => None,
        })
        .collect()
}

fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn url(obj: &Map<String, Value>, key: &str) -> Result<Url, String> {
    text(obj, key).and_then(|u| Url::parse(&u).ok()).ok_or_else(|| format!("stored {key} is missing or invalid"))
}

fn signing_from_stored(stored: &Map<String, Value>, pem: &SecretString) -> Result<JwtSigning, String> {
    let key = PrivateKey::parse(pem.expose_secret()).map_err(|e| format!("stored private_key {e}"))?;
    let alg = match text(stored, "signing_alg") {
        None => None,
        Some(a) => Some(SigningAlg::parse(&a).ok_or_else(|| format!("stored signing_alg `{a}` is unknown"))?),
    };
    let certificate = match text(stored, "certificate") {
        None => None,
        Some(pem) => Some(Certificate::parse(&pem).map_err(|e| format!("stored certificate {e}"))?),
    };
    Ok(JwtSigning { key, key_id: text(stored, "key_id"), alg, certificate })
}

fn options_from_stored(stored: &Map<String, Value>, secrets: &mut Secrets) -> Result<TokenOptions, String> {
    let mut params_of = |name: &str| -> Result<Vec<TokenParam>, String> {
        let Some(items) = stored.get(name).and_then(Value::as_array) else { return Ok(Vec::new()) };
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let key = item.get("key").and_then(Value::as_str).ok_or_else(|| format!("stored {name} key is missing"))?;
            let value = if item.get("secret").and_then(Value::as_bool).unwrap_or(false) {
                ParamValue::Secret(secrets.take(&format!("{name}/{i}/value"))?)
            } else {
                ParamValue::Plain(item.get("value").and_then(Value::as_str).unwrap_or_default().to_owned())
            };
            list.push(TokenParam { key: key.to_owned(), value });
        }
        Ok(list)
    };
    let params = params_of("token_params")?;
    let headers = params_of("token_headers")?;
    let response = match stored.get("token_response").and_then(Value::as_object) {
        None => ResponsePaths::default(),
        Some(r) => ResponsePaths {
            access_token: text(r, "access_token"),
            expires_in: text(r, "expires_in"),
            token_type: text(r, "token_type"),
        },
    };
    let send_as = match stored.get("send_as").and_then(Value::as_object) {
        None => SendAs::default(),
        Some(s) => SendAs {
            header: text(s, "header").ok_or("stored send_as header is missing")?,
            prefix: text(s, "prefix").unwrap_or_default(),
        },
    };
    Ok(TokenOptions { params, headers, response, send_as })
}
