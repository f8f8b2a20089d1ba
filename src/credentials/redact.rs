//! The [`Redactor`]: keeps credentials out of everything authrelay echoes
//! back (results, parked headers, error texts, logs), in every encoding they
//! may come back in.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use zeroize::Zeroizing;

use crate::profile::AuthConfig;
use crate::profile::auth_config::signed::WHSEC_PREFIX;
use crate::profile::auth_config::{ApiKeyMethod, Credential};

/// Removes credentials from text we echo back: a target that echoes the
/// request (an echo server, a debug endpoint, an error page) must not make a
/// result carry the secret.
#[derive(Debug, Default, Clone)]
pub struct Redactor {
    /// Secrets in each encoding; wiped from memory when the redactor goes.
    needles: Vec<Zeroizing<String>>,
    header_names: Vec<String>,
}

pub const REDACTED: &str = "[REDACTED]";

/// At most `max_chars` characters, with `…` when something was cut.
pub fn truncate_chars(text: String, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Secrets shorter than this are not redacted: replacing every "a" in a body
/// would destroy it, and such a value protects nothing.
const MIN_REDACTED_LEN: usize = 3;

impl Redactor {
    pub fn for_config(auth: &AuthConfig, access_token: Option<&SecretString>) -> Self {
        let mut redactor = Self::default();
        match &auth.credential {
            Credential::Bearer { token } => redactor.add(token.expose_secret()),
            Credential::Basic { username, password } => {
                redactor.add(password.expose_secret());
                redactor.add(&BASE64.encode(format!("{username}:{}", password.expose_secret())));
            }
            Credential::ApiKey { method, pairs } => {
                for pair in pairs {
                    redactor.add(pair.value.expose_secret());
                    if *method == ApiKeyMethod::Header {
                        redactor.header_names.push(pair.key.to_ascii_lowercase());
                    }
                }
            }
            Credential::OAuth2ClientCredentials(_) | Credential::OAuth2JwtBearer(_) => {
                // Every secret a token request carries (client secret, secret fields and headers).
                // (The private key is never sent anywhere; it needs no needle.)
                for (_, secret) in auth.secrets().into_iter().filter(|(field, _)| !field.ends_with("private_key")) {
                    redactor.add(secret.expose_secret());
                }
                let send_as = &auth.token_grant().expect("an OAuth config has a grant").options().send_as;
                if !send_as.header.eq_ignore_ascii_case("authorization") {
                    redactor.header_names.push(send_as.header.to_ascii_lowercase());
                }
            }
            // The key never travels, but a target that echoes it (or an error
            // that quotes it) must not make a result carry it; the signature is no secret.
            Credential::Hmac(hmac) => {
                let secret = hmac.secret.expose_secret();
                redactor.add(secret);
                if let Some(encoded) = secret.strip_prefix(WHSEC_PREFIX) {
                    redactor.add(encoded);
                }
            }
            Credential::AwsSigV4(aws) => {
                redactor.add(aws.secret_access_key.expose_secret());
                if let Some(token) = &aws.session_token {
                    redactor.add(token.expose_secret());
                    redactor.header_names.push("x-amz-security-token".into());
                }
            }
            // A private key is never sent; nothing of it can come back.
            Credential::Mtls(_) => {}
        }
        if let Some(token) = access_token {
            redactor.add(token.expose_secret());
        }
        redactor
    }

    /// Adds a secret and the encodings it may come back in (URL-encoded, form-encoded).
    pub fn add(&mut self, secret: &str) {
        self.add_forms(secret, MIN_REDACTED_LEN);
    }

    /// Like [`Redactor::add`], whatever the secret's length: for short texts
    /// such as what a token endpoint says, where even a 1-character client
    /// secret must not appear.
    pub fn add_any_length(&mut self, secret: &str) {
        self.add_forms(secret, 1);
    }

    fn add_forms(&mut self, secret: &str, min_len: usize) {
        if secret.len() < min_len {
            return;
        }
        let forms = [
            secret.to_owned(),
            url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>(),
            secret.replace(' ', "%20"),
            serde_json::to_string(secret).map(|s| s[1..s.len() - 1].to_owned()).unwrap_or_default(),
        ];
        for form in forms {
            if form.len() >= min_len && !self.needles.iter().any(|n| **n == form) {
                self.needles.push(Zeroizing::new(form));
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        self.needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.needles.is_empty()
    }

    /// Server-provided text made safe for one line of an error: redacted, then
    /// control characters flattened (no forged log lines), then capped. Redacting
    /// before capping matters: a cap could cut a secret so it no longer matches.
    pub fn scrub_line(&self, text: &str, max_chars: usize) -> String {
        let text: String = self.redact(text).chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        truncate_chars(text, max_chars)
    }

    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(text);
        for needle in &self.needles {
            if out.contains(needle.as_str()) {
                out = Cow::Owned(out.replace(needle.as_str(), REDACTED));
            }
        }
        out
    }

    pub fn redact_json(&self, value: &mut Value) {
        if self.needles.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(r) = self.redact(s) {
                    *s = r;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(obj) => {
                let renamed: Vec<String> =
                    obj.keys().filter(|k| matches!(self.redact(k), Cow::Owned(_))).cloned().collect();
                for key in renamed {
                    if let Some(v) = obj.remove(&key) {
                        obj.insert(self.redact(&key).into_owned(), v);
                    }
                }
                obj.values_mut().for_each(|v| self.redact_json(v));
            }
            _ => {}
        }
    }

    /// Whether a response header may be echoed in a result at all.
    pub fn keeps_header(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        !matches!(name.as_str(), "authorization" | "proxy-authorization" | "set-cookie" | "cookie" | "www-authenticate")
            && !self.header_names.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::AuthType;
    use serde_json::json;

    fn config(t: AuthType, v: Value) -> AuthConfig {
        AuthConfig::parse(t, &v, None, "config").unwrap()
    }

    #[test]
    fn short_secrets_are_redacted_only_where_asked() {
        let mut everywhere = Redactor::default();
        everywhere.add("k9");
        assert_eq!(everywhere.redact("key k9"), "key k9", "a 2-character value is left in bodies");
        let mut short_text = Redactor::default();
        short_text.add_any_length("k9");
        assert_eq!(short_text.scrub_line("invalid k9\nforged", 100), "invalid [REDACTED] forged");
        assert_eq!(short_text.scrub_line("abcdef", 3), "abc…");
    }

    #[test]
    fn the_redactor_removes_secrets_in_every_encoding() {
        let auth = config(AuthType::Basic, json!({"username": "u", "password": "p@ss word/1"}));
        let r = Redactor::for_config(&auth, None);
        let echoed = "raw p@ss word/1 form p%40ss+word%2F1 path p@ss%20word/1 basic dTpwQHNzIHdvcmQvMQ==";
        let clean = r.redact(echoed);
        assert!(!clean.contains("ss word") && !clean.contains("ss+word") && !clean.contains("dTpw"), "{clean}");
        let mut v = json!({"headers": {"authorization": "Basic dTpwQHNzIHdvcmQvMQ=="}, "list": ["p@ss word/1"]});
        r.redact_json(&mut v);
        assert!(!v.to_string().contains("dTpw") && !v.to_string().contains("ss word"), "{v}");
    }

    #[test]
    fn credential_headers_are_not_echoed() {
        let auth =
            config(AuthType::ApiKey, json!({"method": "header", "pairs": [{"key": "X-Api-Key", "value": "secret"}]}));
        let r = Redactor::for_config(&auth, None);
        assert!(!r.keeps_header("x-api-key") && !r.keeps_header("Authorization") && !r.keeps_header("set-cookie"));
        assert!(r.keeps_header("content-type"));
    }
}
