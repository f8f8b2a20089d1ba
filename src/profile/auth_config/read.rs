//! Reading a config object from JSON: each type's fields, validated and
//! reported by path, with a patch keeping what it omits.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};
use url::Url;

use super::{ApiKeyMethod, ApiKeyPair, AuthConfig, AuthType, MASK, MAX_PAIRS, MAX_SECRET_LEN, MAX_TEXT_LEN};
use crate::profile::validation::{FieldErrors, has_control_chars};

impl AuthConfig {
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
                let kept = match stored {
                    Some(AuthConfig::OAuth2ClientCredentials(c)) => Some(c),
                    _ => None,
                };
                super::read_oauth2::client_credentials(&mut r, kept).map(AuthConfig::OAuth2ClientCredentials)
            }
            AuthType::OAuth2JwtBearer => {
                let kept = match stored {
                    Some(AuthConfig::OAuth2JwtBearer(c)) => Some(c),
                    _ => None,
                };
                super::read_oauth2::jwt_bearer(&mut r, kept).map(AuthConfig::OAuth2JwtBearer)
            }
        };
        match config {
            Some(config) if errors.is_empty() => Ok(config),
            _ => Err(errors),
        }
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

/// Header names a credential may not set: they belong to the HTTP framing.
pub(super) const RESERVED_HEADERS: &[&str] =
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
pub(super) struct Reader<'a> {
    pub(super) obj: &'a Map<String, Value>,
    pub(super) prefix: &'a str,
    pub(super) errors: &'a mut FieldErrors,
}

impl Reader<'_> {
    pub(super) fn path(&self, field: &str) -> String {
        format!("{}.{field}", self.prefix)
    }

    pub(super) fn err(&mut self, field: &str, message: impl Into<String>) {
        let path = self.path(field);
        self.errors.add(path, message);
    }

    pub(super) fn allow_only(&mut self, allowed: &[&str]) {
        let unknown: Vec<String> = self.obj.keys().filter(|k| !allowed.contains(&k.as_str())).cloned().collect();
        for key in unknown {
            self.err(&key, format!("is not a field of this type (expected: {})", allowed.join(", ")));
        }
    }

    /// A required non-secret string; `kept` is used when the input omits it.
    pub(super) fn text(&mut self, field: &str, kept: Option<&str>, allow_spaces_only: bool) -> Option<String> {
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
    pub(super) fn optional_text(&mut self, field: &str, kept: Option<&str>) -> Option<String> {
        match self.obj.get(field) {
            None => kept.map(str::to_owned),
            Some(Value::Null) => None,
            Some(Value::String(s)) if s.trim().is_empty() => None,
            Some(_) => self.text(field, None, false),
        }
    }

    /// A secret string; omitted keeps `kept` (if any). Masked values are refused.
    pub(super) fn secret(
        &mut self,
        field: &str,
        kept: Option<&SecretString>,
        allow_empty: bool,
    ) -> Option<SecretString> {
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

pub(super) fn check_secret(s: &str, allow_empty: bool) -> Result<(), &'static str> {
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
