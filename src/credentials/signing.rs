//! Signing an attempt (contract §8.2): the `hmac` and `aws_sigv4` types sign
//! the request as it is about to be sent — its final method, URL, headers and
//! exact body bytes, after every other credential and encoding change — and
//! afresh for every attempt, so each carries its own timestamp.

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings, UriPathNormalizationMode,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use secrecy::ExposeSecret as _;

use crate::profile::auth_config::signed::{CustomSignature, HmacAlgorithm, HmacScheme, Piece, SignatureEncoding};
use crate::profile::auth_config::{Credential, HmacConfig, SigV4Config};

/// A request that could not be signed (never because of the secret: it is not quoted).
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("header `{0}` is not valid UTF-8 text, which AWS Signature Version 4 needs to sign it")]
    HeaderNotText(String),
    #[error("AWS Signature Version 4: {0}")]
    SigV4(String),
    #[error("the signature header `{0}` is not a valid header name")]
    HeaderName(String),
}

/// Signs `request` if the credential is one that signs; any other is left alone.
/// `job_id` is the Standard Webhooks `webhook-id`; `at` is the attempt's start.
pub fn sign(
    request: &mut reqwest::Request,
    credential: &Credential,
    job_id: &str,
    at: SystemTime,
) -> Result<(), SigningError> {
    match credential {
        Credential::Hmac(hmac) => sign_hmac(request, hmac, job_id, at),
        Credential::AwsSigV4(aws) => sign_sigv4(request, aws, at),
        _ => Ok(()),
    }
}

fn unix_seconds(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn body_bytes(request: &reqwest::Request) -> &[u8] {
    // Bodies are built from bytes in memory (never streamed), so they are always readable here.
    request.body().and_then(reqwest::Body::as_bytes).unwrap_or_default()
}

fn set(headers: &mut HeaderMap, name: &str, value: &str) -> Result<(), SigningError> {
    let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| SigningError::HeaderName(name.to_owned()))?;
    // Signatures, timestamps and ids are ASCII by construction.
    let value = HeaderValue::from_str(value).map_err(|_| SigningError::HeaderName(name.to_string()))?;
    headers.insert(name, value);
    Ok(())
}

fn sign_hmac(
    request: &mut reqwest::Request,
    config: &HmacConfig,
    job_id: &str,
    at: SystemTime,
) -> Result<(), SigningError> {
    let timestamp = unix_seconds(at).to_string();
    let key = config.key();
    match &config.scheme {
        HmacScheme::StandardWebhooks => {
            // standardwebhooks.com: HMAC-SHA256 over `id.timestamp.body`, base64, versioned `v1,`.
            let mut context = hmac::Context::with_key(&hmac::Key::new(hmac::HMAC_SHA256, &key));
            context.update(job_id.as_bytes());
            context.update(b".");
            context.update(timestamp.as_bytes());
            context.update(b".");
            context.update(body_bytes(request));
            let signature = BASE64.encode(context.sign().as_ref());
            let headers = request.headers_mut();
            set(headers, "webhook-id", job_id)?;
            set(headers, "webhook-timestamp", &timestamp)?;
            set(headers, "webhook-signature", &format!("v1,{signature}"))
        }
        HmacScheme::Custom(custom) => {
            let signature = custom_signature(request, custom, &key, job_id, &timestamp);
            let headers = request.headers_mut();
            if let Some(name) = &custom.timestamp_header {
                set(headers, name, &timestamp)?;
            }
            set(headers, &custom.header, &format!("{}{signature}", custom.prefix.as_deref().unwrap_or_default()))
        }
    }
}

/// `encode(HMAC(key, template))`, the template filled from the request as sent.
fn custom_signature(
    request: &reqwest::Request,
    custom: &CustomSignature,
    key: &[u8],
    job_id: &str,
    timestamp: &str,
) -> String {
    let algorithm = match custom.algorithm {
        HmacAlgorithm::Sha256 => hmac::HMAC_SHA256,
        HmacAlgorithm::Sha512 => hmac::HMAC_SHA512,
    };
    let mut context = hmac::Context::with_key(&hmac::Key::new(algorithm, key));
    let url = request.url();
    let body_only = [Piece::Body];
    let pieces = custom.template.as_ref().map_or(&body_only[..], |t| t.pieces());
    for piece in pieces {
        match piece {
            Piece::Text(text) => context.update(text.as_bytes()),
            Piece::Body => context.update(body_bytes(request)),
            Piece::Timestamp => context.update(timestamp.as_bytes()),
            Piece::Method => context.update(request.method().as_str().as_bytes()),
            Piece::Path => context.update(url.path().as_bytes()),
            Piece::Query => context.update(url.query().unwrap_or_default().as_bytes()),
            Piece::Id => context.update(job_id.as_bytes()),
        }
    }
    let tag = context.sign();
    match custom.encoding {
        SignatureEncoding::Hex => hex(tag.as_ref()),
        SignatureEncoding::Base64 => BASE64.encode(tag.as_ref()),
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// How authrelay signs for AWS: the payload hash in `X-Amz-Content-Sha256`
/// (the contract promises it, and S3 demands it); S3 alone takes the path as
/// sent, every other service wants it encoded a second time (as AWS's SDKs do).
fn settings_for(service: &str) -> SigningSettings {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    if service == "s3" {
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    settings
}

fn sign_sigv4(request: &mut reqwest::Request, aws: &SigV4Config, at: SystemTime) -> Result<(), SigningError> {
    let headers = sigv4_headers(
        request.method().as_str(),
        request.url().as_str(),
        request.headers(),
        body_bytes(request),
        aws,
        at,
        settings_for(&aws.service),
    )?;
    let target = request.headers_mut();
    for (name, mut value) in headers {
        if name == reqwest::header::AUTHORIZATION || name.as_str() == "x-amz-security-token" {
            value.set_sensitive(true);
        }
        target.insert(name, value);
    }
    Ok(())
}

/// The headers AWS Signature Version 4 adds to a request: `Authorization`,
/// `X-Amz-Date`, and per `settings` `X-Amz-Content-Sha256` and `X-Amz-Security-Token`.
fn sigv4_headers(
    method: &str,
    url: &str,
    headers: &HeaderMap,
    body: &[u8],
    aws: &SigV4Config,
    at: SystemTime,
    settings: SigningSettings,
) -> Result<Vec<(HeaderName, HeaderValue)>, SigningError> {
    let mut pairs = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let text = value.to_str().map_err(|_| SigningError::HeaderNotText(name.to_string()))?;
        pairs.push((name.as_str(), text));
    }
    let identity = aws_credential_types::Credentials::new(
        aws.access_key_id.clone(),
        aws.secret_access_key.expose_secret().to_owned(),
        aws.session_token.as_ref().map(|t| t.expose_secret().to_owned()),
        None,
        "authrelay profile",
    )
    .into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name(&aws.service)
        .time(at)
        .settings(settings)
        .build()
        .map_err(|e| SigningError::SigV4(e.to_string()))?
        .into();
    let signable = SignableRequest::new(method, url, pairs.into_iter(), SignableBody::Bytes(body))
        .map_err(|e| SigningError::SigV4(e.to_string()))?;
    let (instructions, _signature) =
        aws_sigv4::http_request::sign(signable, &params).map_err(|e| SigningError::SigV4(e.to_string()))?.into_parts();
    let (added, _query) = instructions.into_parts();
    added
        .into_iter()
        .map(|header| {
            let name = HeaderName::from_static(header.name());
            let value = HeaderValue::from_str(header.value())
                .map_err(|_| SigningError::SigV4(format!("{} is not a valid header value", header.name())))?;
            Ok((name, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;
    use std::time::Duration;

    /// AWS's Signature Version 4 test suite credentials and time (20150830T123600Z).
    fn aws_suite() -> (SigV4Config, SystemTime) {
        let config = SigV4Config {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            region: "us-east-1".into(),
            service: "service".into(),
        };
        (config, UNIX_EPOCH + Duration::from_secs(1_440_938_160))
    }

    /// The suite signs only `host` and `x-amz-date`, and takes the path as given.
    fn suite_signature(method: &str, url: &str, body: &[u8]) -> String {
        let (config, at) = aws_suite();
        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        let added = sigv4_headers(method, url, &HeaderMap::new(), body, &config, at, settings).unwrap();
        let authorization =
            added.iter().find(|(n, _)| n == reqwest::header::AUTHORIZATION).unwrap().1.to_str().unwrap();
        let date = added.iter().find(|(n, _)| n.as_str() == "x-amz-date").unwrap().1.to_str().unwrap();
        assert_eq!(date, "20150830T123600Z");
        assert!(
            authorization.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature="
            ),
            "{authorization}"
        );
        authorization.rsplit("Signature=").next().unwrap().to_owned()
    }

    #[test]
    fn the_aws_test_suite_signatures_come_out() {
        // aws-sig-v4-test-suite: get-vanilla, get-vanilla-query-order-key-case, get-utf8, post-vanilla, post-vanilla-query.
        let host = "https://example.amazonaws.com";
        let cases = [
            ("GET", "/", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
            (
                "GET",
                "/?Param2=value2&Param1=value1",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
            ),
            ("GET", "/%E1%88%B4", "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"),
            ("POST", "/", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
            ("POST", "/?Param1=value1", "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"),
        ];
        for (method, path, expected) in cases {
            assert_eq!(suite_signature(method, &format!("{host}{path}"), b""), expected, "{method} {path}");
        }
    }

    #[test]
    fn the_payload_hash_and_session_token_are_signed_headers() {
        let (mut config, at) = aws_suite();
        config.session_token = Some(SecretString::from("session-token-value"));
        let added = sigv4_headers(
            "POST",
            "https://example.amazonaws.com/x",
            &HeaderMap::new(),
            b"{}",
            &config,
            at,
            settings_for("execute-api"),
        )
        .unwrap();
        let get = |name: &str| added.iter().find(|(n, _)| n.as_str() == name).map(|(_, v)| v.to_str().unwrap());
        // SHA-256 of `{}`.
        assert_eq!(
            get("x-amz-content-sha256"),
            Some("44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a")
        );
        assert_eq!(get("x-amz-security-token"), Some("session-token-value"));
        assert!(
            get("authorization")
                .unwrap()
                .contains("SignedHeaders=host;x-amz-content-sha256;x-amz-date;x-amz-security-token,")
        );
    }

    fn request(body: &str) -> reqwest::Request {
        let mut request =
            reqwest::Request::new(reqwest::Method::POST, "https://hooks.example/in?b=2&a=1".parse().unwrap());
        *request.body_mut() = Some(body.to_owned().into());
        request
    }

    #[test]
    fn standard_webhooks_matches_the_specification_example() {
        // The example of the Standard Webhooks specification (and its reference libraries).
        let hmac = HmacConfig {
            secret: SecretString::from("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            scheme: HmacScheme::StandardWebhooks,
        };
        let mut r = request(r#"{"test": 2432232314}"#);
        sign(
            &mut r,
            &Credential::Hmac(hmac),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            UNIX_EPOCH + Duration::from_secs(1614265330),
        )
        .unwrap();
        let h = |n: &str| r.headers()[n].to_str().unwrap().to_owned();
        assert_eq!(h("webhook-id"), "msg_p5jXN8AQM9LWM0D4loKWxJek");
        assert_eq!(h("webhook-timestamp"), "1614265330");
        assert_eq!(h("webhook-signature"), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_github_style_signature_is_hex_of_the_body_with_a_prefix() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        let custom = CustomSignature {
            header: "X-Hub-Signature-256".into(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SignatureEncoding::Hex,
            prefix: Some("sha256=".into()),
            template: None,
            timestamp_header: None,
        };
        let hmac =
            HmacConfig { secret: SecretString::from("It's a Secret to Everybody"), scheme: HmacScheme::Custom(custom) };
        let mut r = request("Hello, World!");
        sign(&mut r, &Credential::Hmac(hmac), "job", SystemTime::now()).unwrap();
        assert_eq!(
            r.headers()["x-hub-signature-256"],
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn a_template_covers_the_parts_it_names_and_the_timestamp_goes_in_its_header() {
        use crate::profile::auth_config::signed::Template;
        let custom = CustomSignature {
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha512,
            encoding: SignatureEncoding::Base64,
            prefix: None,
            template: Some(Template::parse("{method} {path}?{query} {id} {timestamp}.{body}").unwrap()),
            timestamp_header: Some("X-Timestamp".into()),
        };
        let key = b"k".to_vec();
        let hmac = HmacConfig { secret: SecretString::from("k"), scheme: HmacScheme::Custom(custom) };
        let mut r = request("B");
        sign(&mut r, &Credential::Hmac(hmac), "J", UNIX_EPOCH + Duration::from_secs(7)).unwrap();
        assert_eq!(r.headers()["x-timestamp"], "7");
        let expected = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA512, &key), b"POST /in?b=2&a=1 J 7.B");
        assert_eq!(r.headers()["x-signature"].to_str().unwrap(), BASE64.encode(expected.as_ref()));
    }
}
