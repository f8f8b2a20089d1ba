//! Reading a config object from JSON: the client certificate any type may
//! carry, then the fields of the type (the static types here, the others in
//! `read_oauth2`, `signed` and `tls`), validated and reported by path, with a
//! patch keeping what it omits.

use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Map, Value};

use super::reader::{RESERVED_HEADERS, Reader, check_secret};
use super::{
    ApiKeyMethod, ApiKeyPair, AuthConfig, AuthType, CLIENT_CERTIFICATE, ClientAuth, ClientCertificate, Credential,
    MAX_PAIRS,
};
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
        let mut own = match input {
            Value::Object(obj) => obj.clone(),
            Value::Null => Map::new(),
            _ => return Err(FieldErrors::single(prefix, "must be a JSON object")),
        };
        let stored = stored.filter(|s| s.auth_type() == auth_type);
        // Every type but `mtls` may carry a client certificate beside its own fields.
        let certificate_input = match auth_type {
            AuthType::Mtls => None,
            _ => own.remove(CLIENT_CERTIFICATE),
        };
        let client_certificate = match certificate_input {
            None => Some(stored.and_then(|s| s.client_certificate.clone())),
            Some(Value::Null) => Some(None),
            Some(Value::Object(obj)) => {
                let at = format!("{prefix}.{CLIENT_CERTIFICATE}");
                let mut r = Reader { obj: &obj, prefix: &at, errors: &mut errors };
                ClientCertificate::read(&mut r, stored.and_then(|s| s.client_certificate.as_ref())).map(Some)
            }
            Some(_) => {
                errors.add(
                    format!("{prefix}.{CLIENT_CERTIFICATE}"),
                    "must be an object: {\"certificate\", \"private_key\", \"ca_certificate\"?}",
                );
                None
            }
        };
        let mut r = Reader { obj: &own, prefix, errors: &mut errors };
        let credential = read_credential(&mut r, auth_type, stored.map(|s| &s.credential));
        if let Some(Credential::OAuth2ClientCredentials(c)) = &credential
            && c.client_auth == ClientAuth::TlsClientAuth
            && matches!(client_certificate, Some(None))
        {
            r.err(
                CLIENT_CERTIFICATE,
                "is required with client_auth tls_client_auth: the certificate is the client's credential",
            );
        }
        match (credential, client_certificate) {
            (Some(credential), Some(client_certificate)) if errors.is_empty() => {
                Ok(AuthConfig { credential, client_certificate })
            }
            _ => Err(errors),
        }
    }
}

/// The fields of one type; `kept` is the stored credential of a patched profile (same type).
fn read_credential(r: &mut Reader<'_>, auth_type: AuthType, kept: Option<&Credential>) -> Option<Credential> {
    match auth_type {
        AuthType::Bearer => {
            r.allow_only(&["token"]);
            let kept = match kept {
                Some(Credential::Bearer { token }) => Some(token),
                _ => None,
            };
            r.secret("token", kept, false).map(|token| Credential::Bearer { token })
        }
        AuthType::Basic => {
            r.allow_only(&["username", "password"]);
            let (kept_user, kept_pass) = match kept {
                Some(Credential::Basic { username, password }) => (Some(username.as_str()), Some(password)),
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
            Some(Credential::Basic { username: username?, password: password? })
        }
        AuthType::ApiKey => {
            r.allow_only(&["method", "pairs"]);
            let (kept_method, kept_pairs) = match kept {
                Some(Credential::ApiKey { method, pairs }) => (Some(*method), Some(pairs.as_slice())),
                _ => (None, None),
            };
            let method = match r.obj.get("method") {
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
            let pairs = match r.obj.get("pairs") {
                None | Some(Value::Null) => match kept_pairs {
                    Some(p) => Some(p.to_vec()),
                    None => {
                        r.err("pairs", "is required: 1 to 20 {\"key\", \"value\"} pairs");
                        None
                    }
                },
                Some(value) => read_pairs(r, value, kept_pairs.unwrap_or_default()),
            };
            let (method, pairs) = (method?, pairs?);
            validate_pairs(method, &pairs, r.prefix, r.errors);
            Some(Credential::ApiKey { method, pairs })
        }
        AuthType::OAuth2ClientCredentials => {
            let kept = match kept {
                Some(Credential::OAuth2ClientCredentials(c)) => Some(c),
                _ => None,
            };
            super::read_oauth2::client_credentials(r, kept).map(Credential::OAuth2ClientCredentials)
        }
        AuthType::OAuth2JwtBearer => {
            let kept = match kept {
                Some(Credential::OAuth2JwtBearer(c)) => Some(c),
                _ => None,
            };
            super::read_oauth2::jwt_bearer(r, kept).map(Credential::OAuth2JwtBearer)
        }
        AuthType::Hmac => {
            let kept = match kept {
                Some(Credential::Hmac(c)) => Some(c),
                _ => None,
            };
            super::signed::read_hmac(r, kept).map(Credential::Hmac)
        }
        AuthType::AwsSigv4 => {
            let kept = match kept {
                Some(Credential::AwsSigV4(c)) => Some(c),
                _ => None,
            };
            super::signed::read_sigv4(r, kept).map(Credential::AwsSigV4)
        }
        AuthType::Mtls => {
            let kept = match kept {
                Some(Credential::Mtls(c)) => Some(c),
                _ => None,
            };
            ClientCertificate::read(r, kept).map(Credential::Mtls)
        }
    }
}

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
                    "must be a valid header value (no control characters or line breaks)",
                );
            }
        }
    }
}

/// The `pairs` of an API key; a pair without `value` keeps the stored one of its key.
fn read_pairs(r: &mut Reader<'_>, value: &Value, kept: &[ApiKeyPair]) -> Option<Vec<ApiKeyPair>> {
    let Some(items) = value.as_array() else {
        r.err("pairs", "must be an array of {\"key\", \"value\"} objects");
        return None;
    };
    let mut pairs = Vec::with_capacity(items.len());
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let field = format!("pairs[{i}]");
        let Some(obj) = item.as_object() else {
            r.err(&field, "must be an object with `key` and `value`");
            ok = false;
            continue;
        };
        if let Some(extra) = obj.keys().find(|k| *k != "key" && *k != "value") {
            r.err(&format!("{field}.{extra}"), "is not a field of a pair (expected: key, value)");
            ok = false;
        }
        let key = match obj.get("key") {
            Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 && !has_control_chars(k) => k.clone(),
            _ => {
                r.err(&format!("{field}.key"), "is required: a non-empty string of at most 256 characters");
                ok = false;
                continue;
            }
        };
        let value = match obj.get("value") {
            None | Some(Value::Null) => match kept.iter().find(|p| p.key == key) {
                Some(p) => p.value.clone(),
                None => {
                    r.err(&format!("{field}.value"), "is required (no stored value for this key)");
                    ok = false;
                    continue;
                }
            },
            Some(Value::String(v)) => match check_secret(v, false) {
                Ok(()) => SecretString::from(v.clone()),
                Err(msg) => {
                    r.err(&format!("{field}.value"), msg);
                    ok = false;
                    continue;
                }
            },
            Some(_) => {
                r.err(&format!("{field}.value"), "must be a string");
                ok = false;
                continue;
            }
        };
        pairs.push(ApiKeyPair { key, value });
    }
    ok.then_some(pairs)
}
