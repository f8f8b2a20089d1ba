//! A profile's `config` as every read shows it (contract §5 and §8): secrets
//! masked (`••••1f2e`), private keys as the SHA-256 fingerprint of their
//! public key, certificates as subject, issuer, expiry and fingerprint —
//! what `profile::auth_config` renders with `masked()`.
//!
//! These shapes forbid unknown fields, so a test that validates real reads
//! against them notices any field that is not described (a secret would be one).

#![allow(dead_code)] // Only described, never built.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use utoipa::ToSchema;

use super::auth::{
    ApiKeyMethod, ClientAuth, HmacAlgorithm, HmacScheme, SendAs, SignatureEncoding, SigningAlg, TokenResponsePaths,
};

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
