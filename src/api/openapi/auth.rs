//! The shapes of a profile's `config` (contract §5 and §8), as written
//! (create, a job's `inline_auth`) and as read back (secrets masked, keys as
//! fingerprints, certificates as subject, issuer, expiry and fingerprint).
//!
//! These types only describe JSON: `profile::auth_config` reads and masks it
//! by hand. They derive both `ToSchema` (the OpenAPI document) and
//! `JsonSchema` (the job schema's `inline_auth`), so both contracts show one
//! description; tests validate real reads and jobs against them.
//!
//! Written shapes do not forbid unknown fields (`inline_auth` is tagged with
//! `type` beside them); the API and the worker refuse unknown fields with a
//! 422 naming the field. Read shapes do forbid them, so a test that
//! validates real reads notices any field that is not described (a secret
//! would be one).

#![allow(dead_code)] // Only described, never built.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use utoipa::ToSchema;

// ---------------------------------------------------------------------------
// Written
// ---------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------
// Read back
// ---------------------------------------------------------------------------

/// A secret as every read shows it: `••••` and at most its last four characters.
#[derive(ToSchema, JsonSchema)]
#[schema(value_type = String, pattern = "^••••.{0,4}$", example = "••••1f2e")]
#[schemars(transparent)]
pub struct MaskedSecret(#[schemars(regex(pattern = "^••••.{0,4}$"))] String);

/// A private key as every read shows it: the SHA-256 of its DER public key, hex.
#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyFingerprint {
    #[schema(pattern = "^[0-9a-f]{64}$")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub fingerprint_sha256: String,
}

/// A certificate as every read shows it (not secret, but never the PEM).
#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CertificateView {
    pub subject: String,
    pub issuer: String,
    pub not_after: DateTime<Utc>,
    /// SHA-256 of the leaf's DER, hex.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub fingerprint_sha256: String,
}

/// A client certificate (or the `mtls` config) as read back.
#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCertificateRead {
    pub certificate: CertificateView,
    pub private_key: KeyFingerprint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_certificate: Option<CertificateView>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BearerRead {
    pub token: MaskedSecret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyPairRead {
    pub key: String,
    pub value: MaskedSecret,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyRead {
    pub method: ApiKeyMethod,
    pub pairs: Vec<ApiKeyPairRead>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BasicRead {
    pub username: String,
    pub password: MaskedSecret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

/// A token parameter or header as read: a secret value is masked and flagged.
#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenParamRead {
    pub key: String,
    /// Masked (`••••…`) when `secret` is true.
    pub value: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<bool>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2ClientCredentialsRead {
    pub client_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<MaskedSecret>,
    pub token_endpoint: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    pub client_auth: ClientAuth,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub private_key: Option<KeyFingerprint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_alg: Option<SigningAlg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_params: Option<Vec<TokenParamRead>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_headers: Option<Vec<TokenParamRead>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_response: Option<TokenResponsePaths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_as: Option<SendAs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2JwtBearerRead {
    pub token_endpoint: String,
    pub issuer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub private_key: KeyFingerprint,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_alg: Option<SigningAlg>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_params: Option<Vec<TokenParamRead>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_headers: Option<Vec<TokenParamRead>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_response: Option<TokenResponsePaths>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_as: Option<SendAs>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HmacRead {
    pub secret: MaskedSecret,
    pub scheme: HmacScheme,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub algorithm: Option<HmacAlgorithm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<SignatureEncoding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp_header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

#[derive(ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsSigv4Read {
    pub access_key_id: String,
    pub secret_access_key: MaskedSecret,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<MaskedSecret>,
    pub region: String,
    pub service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<ClientCertificateRead>,
}

/// A profile's `config` as read: one shape per type, secrets masked.
#[derive(ToSchema, JsonSchema)]
#[serde(untagged)]
pub enum ConfigRead {
    Bearer(BearerRead),
    ApiKey(ApiKeyRead),
    Basic(BasicRead),
    OAuth2ClientCredentials(OAuth2ClientCredentialsRead),
    OAuth2JwtBearer(OAuth2JwtBearerRead),
    Hmac(HmacRead),
    AwsSigv4(AwsSigv4Read),
    /// `mtls`: the client certificate is the credential.
    Mtls(ClientCertificateRead),
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
