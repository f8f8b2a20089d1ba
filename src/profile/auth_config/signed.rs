//! The two types that sign each request rather than attach a credential
//! (contract §8.2): `hmac` (the Standard Webhooks scheme, or a header of the
//! customer's choosing over a template of the request) and `aws_sigv4`. This
//! module holds their settings, how they read from JSON and back; the
//! signing itself is `credentials::signing`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Serialize;
use serde_json::{Map, Value, json};
use zeroize::Zeroizing;

use super::reader::{RESERVED_HEADERS, Reader};
use super::{Secrets, View, secret_json};

/// The prefix of a Standard Webhooks secret whose rest is the base64 key.
pub const WHSEC_PREFIX: &str = "whsec_";
const MAX_TEMPLATE_LEN: usize = 1024;
const MAX_PREFIX_LEN: usize = 64;

/// `hmac`: a shared secret and how the signature is laid out.
#[derive(Debug, Clone)]
pub struct HmacConfig {
    pub secret: SecretString,
    pub scheme: HmacScheme,
}

#[derive(Debug, Clone)]
pub enum HmacScheme {
    /// standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks,
    /// One header: `prefix + encode(HMAC(secret, template))`.
    Custom(CustomSignature),
}

#[derive(Debug, Clone)]
pub struct CustomSignature {
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: SignatureEncoding,
    pub prefix: Option<String>,
    /// `None` signs the body alone (`{body}`).
    pub template: Option<Template>,
    pub timestamp_header: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HmacAlgorithm {
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    Hex,
    Base64,
}

/// What a custom signature covers: text with placeholders for parts of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    pieces: Vec<Piece>,
}

/// One part of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// The exact body bytes sent (nothing when there is no body).
    Body,
    /// Unix seconds when the attempt is signed.
    Timestamp,
    /// The HTTP method, upper case.
    Method,
    /// The URL path as sent (percent-encoded).
    Path,
    /// The query string as sent, without `?` (empty when there is none).
    Query,
    /// The job's `job_id`.
    Id,
}

const PLACEHOLDERS: [(&str, Piece); 6] = [
    ("body", Piece::Body),
    ("timestamp", Piece::Timestamp),
    ("method", Piece::Method),
    ("path", Piece::Path),
    ("query", Piece::Query),
    ("id", Piece::Id),
];

impl Template {
    /// Reads a template; `{` must open one of the placeholders.
    pub fn parse(source: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = source;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or("has a `{` that is never closed")?;
            let name = &after[..close];
            let piece = PLACEHOLDERS.iter().find(|(n, _)| *n == name).map(|(_, p)| p.clone()).ok_or_else(|| {
                format!("uses `{{{name}}}`; the placeholders are {{body}}, {{timestamp}}, {{method}}, {{path}}, {{query}}, {{id}}")
            })?;
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err("has a `}` without its `{`".into());
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Self { source: source.to_owned(), pieces })
    }

    pub fn pieces(&self) -> &[Piece] {
        &self.pieces
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn uses(&self, piece: &Piece) -> bool {
        self.pieces.contains(piece)
    }
}

impl HmacConfig {
    /// The HMAC key: for Standard Webhooks a `whsec_` secret is base64-decoded
    /// (checked when saved), any other secret is used as its bytes.
    pub fn key(&self) -> Zeroizing<Vec<u8>> {
        let secret = self.secret.expose_secret();
        if let (HmacScheme::StandardWebhooks, Some(encoded)) = (&self.scheme, secret.strip_prefix(WHSEC_PREFIX))
            && let Ok(key) = BASE64.decode(encoded)
        {
            return Zeroizing::new(key);
        }
        Zeroizing::new(secret.as_bytes().to_vec())
    }

    pub(super) fn json(&self, view: View) -> Value {
        let mut value = json!({"secret": secret_json(&self.secret, view)});
        match &self.scheme {
            HmacScheme::StandardWebhooks => value["scheme"] = json!("standard_webhooks"),
            HmacScheme::Custom(c) => {
                value["scheme"] = json!("custom");
                value["header"] = json!(c.header);
                value["algorithm"] = json!(c.algorithm);
                value["encoding"] = json!(c.encoding);
                value["prefix"] = json!(c.prefix);
                value["template"] = json!(c.template.as_ref().map(Template::source));
                value["timestamp_header"] = json!(c.timestamp_header);
            }
        }
        value
    }

    pub(super) fn secrets(&self) -> Vec<(String, &SecretString)> {
        vec![("secret".into(), &self.secret)]
    }

    pub(super) fn assemble(stored: &Map<String, Value>, secrets: &mut Secrets) -> Result<Self, String> {
        let text = |name: &str| stored.get(name).and_then(Value::as_str);
        let scheme = match text("scheme") {
            Some("standard_webhooks") => HmacScheme::StandardWebhooks,
            Some("custom") => HmacScheme::Custom(CustomSignature {
                header: text("header").ok_or("stored header is missing")?.to_owned(),
                algorithm: match text("algorithm") {
                    Some("sha512") => HmacAlgorithm::Sha512,
                    Some("sha256") => HmacAlgorithm::Sha256,
                    _ => return Err("stored algorithm is missing".into()),
                },
                encoding: match text("encoding") {
                    Some("base64") => SignatureEncoding::Base64,
                    Some("hex") => SignatureEncoding::Hex,
                    _ => return Err("stored encoding is missing".into()),
                },
                prefix: text("prefix").map(str::to_owned),
                template: text("template")
                    .map(Template::parse)
                    .transpose()
                    .map_err(|e| format!("stored template {e}"))?,
                timestamp_header: text("timestamp_header").map(str::to_owned),
            }),
            _ => return Err("stored scheme is missing".into()),
        };
        Ok(Self { secret: secrets.take("secret")?, scheme })
    }
}

/// `aws_sigv4`: AWS credentials and where they are valid.
#[derive(Debug, Clone)]
pub struct SigV4Config {
    /// Not a secret: it travels in every `Authorization` header.
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
    pub region: String,
    pub service: String,
}

impl SigV4Config {
    pub(super) fn json(&self, view: View) -> Value {
        json!({
            "access_key_id": self.access_key_id,
            "secret_access_key": secret_json(&self.secret_access_key, view),
            "session_token": self.session_token.as_ref().map(|s| secret_json(s, view)),
            "region": self.region,
            "service": self.service,
        })
    }

    pub(super) fn secrets(&self) -> Vec<(String, &SecretString)> {
        let mut secrets = vec![("secret_access_key".to_owned(), &self.secret_access_key)];
        secrets.extend(self.session_token.iter().map(|s| ("session_token".to_owned(), s)));
        secrets
    }

    pub(super) fn assemble(stored: &Map<String, Value>, secrets: &mut Secrets) -> Result<Self, String> {
        let text = |name: &str| {
            stored
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("stored {name} is missing"))
        };
        Ok(Self {
            access_key_id: text("access_key_id")?,
            secret_access_key: secrets.take("secret_access_key")?,
            session_token: secrets.take_optional("session_token"),
            region: text("region")?,
            service: text("service")?,
        })
    }
}

// ---------------------------------------------------------------------------
// Reading from JSON
// ---------------------------------------------------------------------------

pub(super) fn read_hmac(r: &mut Reader<'_>, kept: Option<&HmacConfig>) -> Option<HmacConfig> {
    const CUSTOM_FIELDS: [&str; 6] = ["header", "algorithm", "encoding", "prefix", "template", "timestamp_header"];
    r.allow_only(&["secret", "scheme", "header", "algorithm", "encoding", "prefix", "template", "timestamp_header"]);
    let kept_custom = kept.and_then(|k| match &k.scheme {
        HmacScheme::Custom(c) => Some(c),
        HmacScheme::StandardWebhooks => None,
    });
    let scheme_name = match r.obj.get("scheme") {
        None | Some(Value::Null) => match kept {
            Some(k) if matches!(k.scheme, HmacScheme::StandardWebhooks) => Some("standard_webhooks"),
            Some(_) => Some("custom"),
            None => {
                r.err("scheme", "is required: standard_webhooks or custom");
                None
            }
        },
        Some(Value::String(s)) if s == "standard_webhooks" || s == "custom" => Some(s.as_str()),
        Some(_) => {
            r.err("scheme", "must be standard_webhooks or custom");
            None
        }
    };
    let secret = r.secret("secret", kept.map(|k| &k.secret), false);
    let scheme = match scheme_name? {
        "standard_webhooks" => {
            for field in CUSTOM_FIELDS.into_iter().filter(|f| r.obj.get(*f).is_some_and(|v| !v.is_null())) {
                r.err(field, "belongs to the custom scheme; standard_webhooks fixes its headers and algorithm");
            }
            if let Some(encoded) = secret.as_ref().and_then(|s| s.expose_secret().strip_prefix(WHSEC_PREFIX))
                && BASE64.decode(encoded).map_or(true, |key| key.is_empty())
            {
                r.err("secret", "starts with `whsec_` but the rest is not the base64 of a key");
            }
            HmacScheme::StandardWebhooks
        }
        _ => HmacScheme::Custom(read_custom(r, kept_custom)?),
    };
    Some(HmacConfig { secret: secret?, scheme })
}

fn read_custom(r: &mut Reader<'_>, kept: Option<&CustomSignature>) -> Option<CustomSignature> {
    let header = header_name(r, "header", kept.map(|k| k.header.as_str()), true);
    let algorithm = choice(
        r,
        "algorithm",
        kept.map(|k| k.algorithm),
        &[("sha256", HmacAlgorithm::Sha256), ("sha512", HmacAlgorithm::Sha512)],
    );
    let encoding = choice(
        r,
        "encoding",
        kept.map(|k| k.encoding),
        &[("hex", SignatureEncoding::Hex), ("base64", SignatureEncoding::Base64)],
    );
    let prefix = r.optional_text("prefix", kept.and_then(|k| k.prefix.as_deref()));
    if let Some(p) = &prefix
        && (p.len() > MAX_PREFIX_LEN || !is_visible_ascii(p))
    {
        r.err("prefix", format!("must be at most {MAX_PREFIX_LEN} visible ASCII characters"));
    }
    let template_text = r.optional_text("template", kept.and_then(|k| k.template.as_ref().map(Template::source)));
    let template = match template_text {
        None => Some(None),
        Some(t) if t.len() > MAX_TEMPLATE_LEN => {
            r.err("template", format!("must be at most {MAX_TEMPLATE_LEN} bytes"));
            None
        }
        Some(t) => match Template::parse(&t) {
            Ok(template) => Some(Some(template)),
            Err(message) => {
                r.err("template", message);
                None
            }
        },
    };
    let timestamp_header = match r.obj.get("timestamp_header") {
        None => kept.and_then(|k| k.timestamp_header.clone()).map(Some),
        Some(Value::Null) => Some(None),
        Some(_) => header_name(r, "timestamp_header", None, false).map(Some),
    };
    let timestamp_header = timestamp_header.flatten();
    if let (Some(h), Some(t)) = (&header, &timestamp_header)
        && h.eq_ignore_ascii_case(t)
    {
        r.err("timestamp_header", "must differ from `header`");
    }
    let template = template?;
    if template.as_ref().is_some_and(|t| t.uses(&Piece::Timestamp)) && timestamp_header.is_none() {
        r.err("timestamp_header", "is required when the template uses {timestamp}: the receiver needs the time signed");
    }
    Some(CustomSignature {
        header: header?,
        algorithm: algorithm?,
        encoding: encoding?,
        prefix,
        template,
        timestamp_header,
    })
}

/// One of a few names; omitted keeps `kept`, and is required without it.
fn choice<T: Copy>(r: &mut Reader<'_>, field: &str, kept: Option<T>, options: &[(&str, T)]) -> Option<T> {
    let names = options.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(" or ");
    match r.obj.get(field) {
        None | Some(Value::Null) => {
            if kept.is_none() {
                r.err(field, format!("is required: {names}"));
            }
            kept
        }
        Some(Value::String(s)) if options.iter().any(|(name, _)| name == s) => {
            options.iter().find(|(name, _)| name == s).map(|(_, value)| *value)
        }
        Some(_) => {
            r.err(field, format!("must be {names}"));
            None
        }
    }
}

/// A header name authrelay may set: valid, and not one of HTTP's own.
fn header_name(r: &mut Reader<'_>, field: &str, kept: Option<&str>, required: bool) -> Option<String> {
    let name = if required { r.text(field, kept, false)? } else { r.optional_text(field, kept)? };
    let lower = name.to_ascii_lowercase();
    if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
        r.err(field, "must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)");
        return None;
    }
    if RESERVED_HEADERS.contains(&lower.as_str()) || lower == "content-type" {
        r.err(field, format!("`{name}` is managed by HTTP itself and cannot carry a signature"));
        return None;
    }
    Some(name)
}

pub(super) fn read_sigv4(r: &mut Reader<'_>, kept: Option<&SigV4Config>) -> Option<SigV4Config> {
    r.allow_only(&["access_key_id", "secret_access_key", "session_token", "region", "service"]);
    let access_key_id = r.text("access_key_id", kept.map(|k| k.access_key_id.as_str()), false);
    if let Some(id) = &access_key_id
        && !(id.chars().all(|c| c.is_ascii_alphanumeric()) && (16..=128).contains(&id.len()))
    {
        r.err("access_key_id", "must be 16 to 128 letters and digits (like AKIAIOSFODNN7EXAMPLE)");
    }
    let secret_access_key = r.secret("secret_access_key", kept.map(|k| &k.secret_access_key), false);
    let session_token = match r.obj.get("session_token") {
        None => kept.and_then(|k| k.session_token.clone()),
        Some(Value::Null) => None,
        Some(_) => r.secret("session_token", None, false),
    };
    let region = aws_name(r, "region", kept.map(|k| k.region.as_str()), "eu-west-1");
    let service = aws_name(r, "service", kept.map(|k| k.service.as_str()), "execute-api or lambda");
    if let Some(token) = &session_token
        && !is_visible_ascii(token.expose_secret())
    {
        r.err("session_token", "must be visible ASCII (it travels in the X-Amz-Security-Token header)");
    }
    Some(SigV4Config {
        access_key_id: access_key_id?,
        secret_access_key: secret_access_key?,
        session_token,
        region: region?,
        service: service?,
    })
}

/// Printable ASCII and spaces only: what a signing header carries verbatim.
fn is_visible_ascii(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// A region or service name: it goes into the credential scope as is.
fn aws_name(r: &mut Reader<'_>, field: &str, kept: Option<&str>, example: &str) -> Option<String> {
    let value = r.text(field, kept, false)?;
    let ok = value.len() <= 64
        && value.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-');
    if !ok {
        r.err(field, format!("must be lower-case letters, digits and `-` (like {example})"));
        return None;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_template_splits_into_text_and_placeholders() {
        let t = Template::parse("v0:{timestamp}:{body}").unwrap();
        assert_eq!(t.pieces(), [Piece::Text("v0:".into()), Piece::Timestamp, Piece::Text(":".into()), Piece::Body]);
        assert_eq!(Template::parse("{method} {path}?{query}#{id}").unwrap().pieces().len(), 7);
        assert!(Template::parse("{bdy}").unwrap_err().contains("{bdy}"));
        assert!(Template::parse("{body").unwrap_err().contains("never closed"));
        assert!(Template::parse("body}").unwrap_err().contains("without"));
    }

    #[test]
    fn a_whsec_secret_is_decoded_and_any_other_is_used_as_bytes() {
        let sw = HmacConfig { secret: SecretString::from("whsec_AQID"), scheme: HmacScheme::StandardWebhooks };
        assert_eq!(*sw.key(), vec![1, 2, 3]);
        let plain = HmacConfig { secret: SecretString::from("shh"), scheme: HmacScheme::StandardWebhooks };
        assert_eq!(*plain.key(), b"shh".to_vec());
    }
}
