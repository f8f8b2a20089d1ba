//! The shapes of a profile's `config` (contract §5 and §8) as written: on
//! create, and in a job's `inline_auth`. How they read back is `masked`.
//!
//! These types only describe JSON: `profile::auth_config` reads and masks it
//! by hand. They derive both `ToSchema` (the OpenAPI document) and
//! `JsonSchema` (the job schema's `inline_auth`), so both contracts show one
//! description; tests validate real reads and jobs against them.
//!
//! Written shapes do not forbid unknown fields (`inline_auth` is tagged with
//! `type` beside them); the API and the worker refuse unknown fields with a
//! 422 naming the field.

#![allow(dead_code)] // Only described, never built.

use schemars::JsonSchema;
use utoipa::ToSchema;

/// A PEM certificate chain (leaf first) and its private key, presented in
/// the TLS handshake (contract §8.3). `private_key` is secret.
#[derive(ToSchema, JsonSchema)]
pub struct ClientCertificateInput {
    /// PEM certificate chain, leaf first.
    pub certificate: String,
    /// PEM private key of the certificate (secret; omitted in a PATCH keeps the stored one).
    pub private_key: String,
    /// PEM certificates to trust for this target beside the platform store.
    pub ca_certificate: Option<String>,
}

/// `bearer`: `Authorization: Bearer <token>`.
#[derive(ToSchema, JsonSchema)]
pub struct BearerInput {
    /// Secret.
    pub token: String,
    pub client_certificate: Option<ClientCertificateInput>,
}

/// Where an API key's pairs go.
#[derive(ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyMethod {
    Header,
    Query,
    Body,
}

/// One pair of an API key; `value` is secret.
#[derive(ToSchema, JsonSchema)]
pub struct ApiKeyPairInput {
    #[schema(min_length = 1, max_length = 256)]
    #[schemars(length(min = 1, max = 256))]
    pub key: String,
    /// Secret. Omitted in a PATCH: the stored value of the same key is kept.
    pub value: String,
}

/// `api_key`: each pair as a header, a query parameter or a body field.
#[derive(ToSchema, JsonSchema)]
pub struct ApiKeyInput {
    pub method: ApiKeyMethod,
    #[schema(min_items = 1, max_items = 20)]
    #[schemars(length(min = 1, max = 20))]
    pub pairs: Vec<ApiKeyPairInput>,
    pub client_certificate: Option<ClientCertificateInput>,
}

/// `basic`: `Authorization: Basic base64(username:password)`.
#[derive(ToSchema, JsonSchema)]
pub struct BasicInput {
    /// Without `:` (RFC 7617).
    pub username: String,
    /// Secret; may be empty.
    pub password: String,
    pub client_certificate: Option<ClientCertificateInput>,
}

/// How a client authenticates to the token endpoint (contract §8.1).
#[derive(ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `client_secret_basic` (the default).
    Basic,
    /// `client_secret_post`.
    Post,
    /// RFC 8705: the `client_certificate` is the credential.
    TlsClientAuth,
    /// RFC 7523 §2.2: a JWT signed with `private_key`.
    PrivateKeyJwt,
}

/// The JWS algorithm of a signed assertion (default: from the key).
#[derive(ToSchema, JsonSchema)]
pub enum SigningAlg {
    #[serde(rename = "RS256")]
    Rs256,
    #[serde(rename = "ES256")]
    Es256,
}

/// An extra form field or header of the token request.
#[derive(ToSchema, JsonSchema)]
pub struct TokenParamInput {
    pub key: String,
    /// Secret when `secret` is true.
    pub value: String,
    /// Encrypt the value at rest and mask it on read.
    pub secret: Option<bool>,
}

/// Dot paths into a JSON token reply (`data.token`); defaults are the RFC 6749 names.
#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenResponsePaths {
    pub access_token: Option<String>,
    pub expires_in: Option<String>,
    pub token_type: Option<String>,
}

/// The header a token is sent in (default `Authorization`, prefix `Bearer `).
#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendAs {
    pub header: String,
    pub prefix: Option<String>,
}

/// `oauth2_client_credentials` (contract §5 and §8.1).
#[derive(ToSchema, JsonSchema)]
pub struct OAuth2ClientCredentialsInput {
    pub client_id: String,
    /// Secret; required with `client_auth` `basic` and `post`.
    pub client_secret: Option<String>,
    /// `https` URL (or an allow-listed private destination).
    pub token_endpoint: String,
    pub scope: Option<String>,
    pub audience: Option<String>,
    pub client_auth: Option<ClientAuth>,
    /// PEM private key (secret); required with `client_auth` `private_key_jwt`.
    pub private_key: Option<String>,
    /// The JWT header's `kid`.
    pub key_id: Option<String>,
    pub signing_alg: Option<SigningAlg>,
    /// PEM certificate of the signing key (its thumbprints go in `x5t`, `x5t#S256`).
    pub certificate: Option<String>,
    pub token_params: Option<Vec<TokenParamInput>>,
    pub token_headers: Option<Vec<TokenParamInput>>,
    pub token_response: Option<TokenResponsePaths>,
    pub send_as: Option<SendAs>,
    /// Required with `client_auth` `tls_client_auth`.
    pub client_certificate: Option<ClientCertificateInput>,
}

/// `oauth2_jwt_bearer` (RFC 7523 §2.1, contract §8.1).
#[derive(ToSchema, JsonSchema)]
pub struct OAuth2JwtBearerInput {
    pub token_endpoint: String,
    pub issuer: String,
    pub subject: Option<String>,
    pub audience: Option<String>,
    pub scope: Option<String>,
    /// PEM private key that signs the assertion (secret).
    pub private_key: String,
    pub key_id: Option<String>,
    pub signing_alg: Option<SigningAlg>,
    pub certificate: Option<String>,
    pub token_params: Option<Vec<TokenParamInput>>,
    pub token_headers: Option<Vec<TokenParamInput>>,
    pub token_response: Option<TokenResponsePaths>,
    pub send_as: Option<SendAs>,
    pub client_certificate: Option<ClientCertificateInput>,
}

/// Which HMAC signature (contract §8.2).
#[derive(ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HmacScheme {
    StandardWebhooks,
    Custom,
}

#[derive(ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    Sha256,
    Sha512,
}

#[derive(ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// `hmac`: Standard Webhooks, or a custom signature header (`header`,
/// `algorithm` and `encoding` required with `custom`).
#[derive(ToSchema, JsonSchema)]
pub struct HmacInput {
    /// Secret; `whsec_<base64>` is decoded to the key.
    pub secret: String,
    pub scheme: HmacScheme,
    pub header: Option<String>,
    pub algorithm: Option<HmacAlgorithm>,
    pub encoding: Option<SignatureEncoding>,
    pub prefix: Option<String>,
    /// Default `{body}`; may use `{body}`, `{timestamp}`, `{method}`, `{path}`, `{query}`, `{id}`.
    pub template: Option<String>,
    pub timestamp_header: Option<String>,
    pub client_certificate: Option<ClientCertificateInput>,
}

/// `aws_sigv4`: AWS Signature Version 4 in headers.
#[derive(ToSchema, JsonSchema)]
pub struct AwsSigv4Input {
    pub access_key_id: String,
    /// Secret.
    pub secret_access_key: String,
    /// Secret.
    pub session_token: Option<String>,
    pub region: String,
    pub service: String,
    pub client_certificate: Option<ClientCertificateInput>,
}

/// A job's `inline_auth`: a config of any type, with its `type` beside its fields.
#[derive(ToSchema, JsonSchema)]
#[serde(tag = "type")]
pub enum InlineAuth {
    #[serde(rename = "bearer")]
    Bearer(BearerInput),
    #[serde(rename = "api_key")]
    ApiKey(ApiKeyInput),
    #[serde(rename = "basic")]
    Basic(BasicInput),
    #[serde(rename = "oauth2_client_credentials")]
    OAuth2ClientCredentials(OAuth2ClientCredentialsInput),
    #[serde(rename = "oauth2_jwt_bearer")]
    OAuth2JwtBearer(OAuth2JwtBearerInput),
    #[serde(rename = "hmac")]
    Hmac(HmacInput),
    #[serde(rename = "aws_sigv4")]
    AwsSigv4(AwsSigv4Input),
    #[serde(rename = "mtls")]
    Mtls(ClientCertificateInput),
}
