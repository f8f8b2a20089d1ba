//! Reading the two OAuth 2.0 types from JSON: their fields, the signing key,
//! the extra token-request fields and headers, the reply's paths and how the
//! token is sent. Errors name the field; a patch keeps what it omits.

use secrecy::SecretString;
use serde_json::Value;

use super::certs::Certificate;
use super::keys::{PrivateKey, SigningAlg};
use super::oauth2::{
    ClientAuth, JwtBearerConfig, JwtSigning, OAuth2Config, ParamValue, ResponsePaths, SendAs, TokenOptions, TokenParam,
};
use super::reader::{RESERVED_HEADERS, Reader, check_secret, parse_http_url};
use super::{MAX_PAIRS, MAX_TEXT_LEN};
use crate::profile::validation::has_control_chars;

/// The longest `token_response` path.
const MAX_PATH_LEN: usize = 256;

/// Form fields authrelay sets itself in a client credentials token request.
const CLIENT_CREDENTIALS_FIELDS: &[&str] =
    &["grant_type", "client_id", "client_secret", "client_assertion", "client_assertion_type", "scope", "audience"];
/// Form fields authrelay sets itself in a JWT-bearer token request.
const JWT_BEARER_FIELDS: &[&str] = &["grant_type", "assertion"];
/// Headers of the token request that are authrelay's to set.
const TOKEN_REQUEST_HEADERS: &[&str] = &["authorization", "content-type", "accept"];

pub(super) fn client_credentials(r: &mut Reader<'_>, kept: Option<&OAuth2Config>) -> Option<OAuth2Config> {
    r.allow_only(&[
        "client_id",
        "client_secret",
        "token_endpoint",
        "scope",
        "audience",
        "client_auth",
        "private_key",
        "key_id",
        "signing_alg",
        "certificate",
        "token_params",
        "token_headers",
        "token_response",
        "send_as",
    ]);
    let client_id = r.text("client_id", kept.map(|c| c.client_id.as_str()), false);
    let client_secret = optional_secret(r, "client_secret", kept.and_then(|c| c.client_secret.as_ref()));
    let token_endpoint = endpoint(r, kept.map(|c| c.token_endpoint.as_str()));
    let scope = r.optional_text("scope", kept.and_then(|c| c.scope.as_deref()));
    let audience = r.optional_text("audience", kept.and_then(|c| c.audience.as_deref()));
    let client_auth = match r.obj.get("client_auth") {
        None => kept.map(|c| c.client_auth).unwrap_or_default(),
        Some(Value::Null) => ClientAuth::default(),
        Some(Value::String(s)) => ClientAuth::parse(s).unwrap_or_else(|| {
            r.err("client_auth", "must be one of basic, post, tls_client_auth, private_key_jwt");
            ClientAuth::default()
        }),
        Some(_) => {
            r.err("client_auth", "must be one of basic, post, tls_client_auth, private_key_jwt");
            ClientAuth::default()
        }
    };
    let signing = signing(r, kept.and_then(|c| c.signing.as_ref()));
    let options = options(r, kept.map(|c| &c.options), CLIENT_CREDENTIALS_FIELDS);
    match client_auth {
        a if a.uses_secret() && client_secret.is_none() => {
            r.err("client_secret", format!("is required with client_auth {}", a.as_str()));
        }
        ClientAuth::PrivateKeyJwt if matches!(signing, Some(None)) => {
            r.err("private_key", "is required with client_auth private_key_jwt");
        }
        _ => {}
    }
    Some(OAuth2Config {
        client_id: client_id?,
        client_secret,
        token_endpoint: token_endpoint?,
        scope,
        audience,
        client_auth,
        signing: signing?,
        options: options?,
    })
}

pub(super) fn jwt_bearer(r: &mut Reader<'_>, kept: Option<&JwtBearerConfig>) -> Option<JwtBearerConfig> {
    r.allow_only(&[
        "token_endpoint",
        "issuer",
        "subject",
        "audience",
        "scope",
        "private_key",
        "key_id",
        "signing_alg",
        "certificate",
        "token_params",
        "token_headers",
        "token_response",
        "send_as",
    ]);
    let token_endpoint = endpoint(r, kept.map(|c| c.token_endpoint.as_str()));
    let issuer = r.text("issuer", kept.map(|c| c.issuer.as_str()), false);
    let subject = r.optional_text("subject", kept.and_then(|c| c.subject.as_deref()));
    let audience = r.optional_text("audience", kept.and_then(|c| c.audience.as_deref()));
    let scope = r.optional_text("scope", kept.and_then(|c| c.scope.as_deref()));
    let signing = signing(r, kept.map(|c| &c.signing));
    if matches!(signing, Some(None)) {
        r.err("private_key", "is required: the PEM private key that signs the assertion");
    }
    let options = options(r, kept.map(|c| &c.options), JWT_BEARER_FIELDS);
    Some(JwtBearerConfig {
        token_endpoint: token_endpoint?,
        issuer: issuer?,
        subject,
        audience,
        scope,
        signing: signing??,
        options: options?,
    })
}

fn endpoint(r: &mut Reader<'_>, kept: Option<&str>) -> Option<url::Url> {
    let raw = r.text("token_endpoint", kept, false)?;
    match parse_http_url(&raw) {
        Ok(url) => Some(url),
        Err(message) => {
            r.err("token_endpoint", message);
            None
        }
    }
}

/// An optional secret: omitted keeps `kept`, `null` removes it.
fn optional_secret(r: &mut Reader<'_>, field: &str, kept: Option<&SecretString>) -> Option<SecretString> {
    match r.obj.get(field) {
        None => kept.cloned(),
        Some(Value::Null) => None,
        Some(_) => r.secret(field, None, false),
    }
}

/// The signing key, its `kid` and algorithm. `None` when a field is invalid
/// (reported); `Some(None)` when no key is set.
fn signing(r: &mut Reader<'_>, kept: Option<&JwtSigning>) -> Option<Option<JwtSigning>> {
    let key = r
        .pem("private_key", "the PEM private key", PrivateKey::parse)
        .map(|given| given.or_kept(kept.map(|s| s.key.clone())));
    let key_id = r.optional_text("key_id", kept.and_then(|s| s.key_id.as_deref()));
    let alg = match r.obj.get("signing_alg") {
        None => Some(kept.and_then(|s| s.alg)),
        Some(Value::Null) => Some(None),
        Some(Value::String(a)) if SigningAlg::parse(a).is_some() => Some(SigningAlg::parse(a)),
        Some(_) => {
            r.err("signing_alg", "must be RS256 or ES256");
            None
        }
    };
    let certificate = r
        .pem("certificate", "the PEM certificate of the private key", Certificate::parse)
        .map(|given| given.or_kept(kept.and_then(|s| s.certificate.clone())));
    let (key, alg, certificate) = (key?, alg?, certificate?);
    let Some(key) = key else {
        if alg.is_some() || key_id.is_some() || certificate.is_some() {
            r.err("private_key", "is required when key_id, signing_alg or certificate is set");
            return None;
        }
        return Some(None);
    };
    if let Some(alg) = alg
        && let Err(message) = key.check_alg(alg)
    {
        r.err("signing_alg", message);
        return None;
    }
    if let Some(certificate) = &certificate
        && !key.is_certified_by(certificate)
    {
        r.err("certificate", "does not certify the private key (their public keys differ)");
        return None;
    }
    Some(Some(JwtSigning { key, key_id, alg, certificate }))
}

fn options(r: &mut Reader<'_>, kept: Option<&TokenOptions>, reserved_fields: &[&str]) -> Option<TokenOptions> {
    let params = params(r, "token_params", kept.map(|o| o.params.as_slice()), Target::FormField(reserved_fields));
    let headers = params_headers(r, kept);
    let response = response_paths(r, kept.map(|o| &o.response));
    let send_as = send_as(r, kept.map(|o| &o.send_as));
    Some(TokenOptions { params: params?, headers: headers?, response: response?, send_as: send_as? })
}

fn params_headers(r: &mut Reader<'_>, kept: Option<&TokenOptions>) -> Option<Vec<TokenParam>> {
    params(r, "token_headers", kept.map(|o| o.headers.as_slice()), Target::Header)
}

/// Where the entries of a list go, for their rules.
#[derive(Clone, Copy)]
enum Target<'a> {
    /// A form field of the token request; these names are authrelay's own.
    FormField(&'a [&'a str]),
    Header,
}

/// `[{"key", "value", "secret"?}]`: omitted keeps the stored list, `null`
/// empties it; a secret entry without a value keeps its stored value.
fn params(r: &mut Reader<'_>, field: &str, kept: Option<&[TokenParam]>, target: Target<'_>) -> Option<Vec<TokenParam>> {
    let items = match r.obj.get(field) {
        None => return Some(kept.map(<[TokenParam]>::to_vec).unwrap_or_default()),
        Some(Value::Null) => return Some(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => {
            r.err(field, "must be an array of {\"key\", \"value\", \"secret\"?} objects");
            return None;
        }
    };
    if items.len() > MAX_PAIRS {
        r.err(field, format!("must hold at most {MAX_PAIRS} entries"));
        return None;
    }
    let mut list = Vec::with_capacity(items.len());
    let mut ok = true;
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let at = format!("{field}[{i}]");
        match param(r, &at, item, kept.unwrap_or_default(), target) {
            Some(p) => {
                let name = match target {
                    Target::Header => p.key.to_ascii_lowercase(),
                    Target::FormField(_) => p.key.clone(),
                };
                if !seen.insert(name) {
                    r.err(&format!("{at}.key"), format!("`{}` appears more than once", p.key));
                    ok = false;
                }
                list.push(p);
            }
            None => ok = false,
        }
    }
    ok.then_some(list)
}

fn param(r: &mut Reader<'_>, at: &str, item: &Value, kept: &[TokenParam], target: Target<'_>) -> Option<TokenParam> {
    let Some(obj) = item.as_object() else {
        r.err(at, "must be an object with `key`, `value` and optionally `secret`");
        return None;
    };
    if let Some(extra) = obj.keys().find(|k| !["key", "value", "secret"].contains(&k.as_str())) {
        r.err(&format!("{at}.{extra}"), "is not a field of an entry (expected: key, value, secret)");
        return None;
    }
    let key = match obj.get("key") {
        Some(Value::String(k)) if !k.is_empty() && k.len() <= 256 && !has_control_chars(k) => k.clone(),
        _ => {
            r.err(&format!("{at}.key"), "is required: a non-empty string of at most 256 characters");
            return None;
        }
    };
    let key_problem = match target {
        Target::FormField(reserved) if reserved.contains(&key.as_str()) => {
            Some(format!("`{key}` is set by authrelay itself in this token request"))
        }
        Target::Header if reqwest::header::HeaderName::from_bytes(key.as_bytes()).is_err() => {
            Some("must be a valid HTTP header name (letters, digits and !#$%&'*+-.^_`|~)".into())
        }
        Target::Header
            if RESERVED_HEADERS.contains(&key.to_ascii_lowercase().as_str())
                || TOKEN_REQUEST_HEADERS.contains(&key.to_ascii_lowercase().as_str()) =>
        {
            Some(format!("`{key}` is set by authrelay or HTTP itself in the token request"))
        }
        _ => None,
    };
    if let Some(message) = key_problem {
        r.err(&format!("{at}.key"), message);
        return None;
    }
    let secret = match obj.get("secret") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            r.err(&format!("{at}.secret"), "must be true or false");
            return None;
        }
    };
    let value_at = format!("{at}.value");
    let value = match (obj.get("value"), secret) {
        (None | Some(Value::Null), true) => match kept.iter().find(|p| p.key == key && p.value.is_secret()) {
            Some(stored) => stored.value.clone(),
            None => {
                r.err(&value_at, "is required (no stored secret value for this key)");
                return None;
            }
        },
        (None | Some(Value::Null), false) => {
            r.err(&value_at, "is required");
            return None;
        }
        (Some(Value::String(v)), true) => match check_secret(v, false) {
            Ok(()) => ParamValue::Secret(SecretString::from(v.clone())),
            Err(message) => {
                r.err(&value_at, message);
                return None;
            }
        },
        (Some(Value::String(v)), false) => {
            if v.chars().count() > MAX_TEXT_LEN || has_control_chars(v) {
                r.err(&value_at, format!("must be at most {MAX_TEXT_LEN} characters, without control characters"));
                return None;
            }
            ParamValue::Plain(v.clone())
        }
        (Some(_), _) => {
            r.err(&value_at, "must be a string");
            return None;
        }
    };
    if matches!(target, Target::Header) && reqwest::header::HeaderValue::from_str(value.expose()).is_err() {
        r.err(&value_at, "must be a valid header value (no control characters or line breaks)");
        return None;
    }
    Some(TokenParam { key, value })
}

/// `{"access_token"?, "expires_in"?, "token_type"?}`: dot paths into a JSON reply.
fn response_paths(r: &mut Reader<'_>, kept: Option<&ResponsePaths>) -> Option<ResponsePaths> {
    let obj = match r.obj.get("token_response") {
        None => return Some(kept.cloned().unwrap_or_default()),
        Some(Value::Null) => return Some(ResponsePaths::default()),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            r.err("token_response", "must be an object of dot paths: access_token, expires_in, token_type");
            return None;
        }
    };
    let mut ok = true;
    if let Some(extra) = obj.keys().find(|k| !["access_token", "expires_in", "token_type"].contains(&k.as_str())) {
        r.err(
            &format!("token_response.{extra}"),
            "is not a field of token_response (expected: access_token, expires_in, token_type)",
        );
        ok = false;
    }
    let mut path = |name: &str| -> Option<String> {
        match obj.get(name) {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) if is_dot_path(p) => Some(p.clone()),
            Some(_) => {
                r.err(
                    &format!("token_response.{name}"),
                    "must be a dot path such as `data.token` (letters, digits, `_` and `-` between the dots)",
                );
                ok = false;
                None
            }
        }
    };
    let paths = ResponsePaths {
        access_token: path("access_token"),
        expires_in: path("expires_in"),
        token_type: path("token_type"),
    };
    ok.then_some(paths)
}

fn is_dot_path(path: &str) -> bool {
    path.len() <= MAX_PATH_LEN
        && path.split('.').all(|segment| {
            !segment.is_empty() && segment.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// `{"header"?, "prefix"?}`: the prefix defaults to `Bearer ` for the
/// `Authorization` header and to nothing for any other header.
fn send_as(r: &mut Reader<'_>, kept: Option<&SendAs>) -> Option<SendAs> {
    let obj = match r.obj.get("send_as") {
        None => return Some(kept.cloned().unwrap_or_default()),
        Some(Value::Null) => return Some(SendAs::default()),
        Some(Value::Object(obj)) => obj,
        Some(_) => {
            r.err("send_as", "must be an object: {\"header\", \"prefix\"}");
            return None;
        }
    };
    if let Some(extra) = obj.keys().find(|k| !["header", "prefix"].contains(&k.as_str())) {
        r.err(&format!("send_as.{extra}"), "is not a field of send_as (expected: header, prefix)");
        return None;
    }
    let header = match obj.get("header") {
        None | Some(Value::Null) => "Authorization".to_owned(),
        Some(Value::String(h))
            if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_ok()
                && !RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) =>
        {
            h.clone()
        }
        Some(_) => {
            r.err("send_as.header", "must be a valid HTTP header name that HTTP itself does not manage");
            return None;
        }
    };
    let prefix = match obj.get("prefix") {
        None | Some(Value::Null) => {
            if header.eq_ignore_ascii_case("authorization") {
                "Bearer ".to_owned()
            } else {
                String::new()
            }
        }
        Some(Value::String(p)) if p.len() <= 256 && !has_control_chars(p) && !p.contains(super::MASK) => p.clone(),
        Some(_) => {
            r.err("send_as.prefix", "must be a string of at most 256 characters without control characters");
            return None;
        }
    };
    if reqwest::header::HeaderValue::from_str(&prefix).is_err() {
        r.err("send_as.prefix", "must be a valid header value (it precedes the token in a header)");
        return None;
    }
    Some(SendAs { header, prefix })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::profile::auth_config::keys::test_keys::{EC_PKCS8, RSA_PKCS8};
    use crate::profile::auth_config::{AuthConfig, AuthType, TokenGrant};
    use crate::profile::validation::FieldErrors;

    fn parse(t: AuthType, v: serde_json::Value) -> Result<AuthConfig, FieldErrors> {
        AuthConfig::parse(t, &v, None, "config")
    }

    fn fields(err: &FieldErrors) -> Vec<&str> {
        err.0.iter().map(|e| e.field.as_str()).collect()
    }

    fn cc(extra: serde_json::Value) -> serde_json::Value {
        let mut base = json!({"client_id": "c", "token_endpoint": "https://idp.example/token"});
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        base
    }

    #[test]
    fn private_key_jwt_needs_a_key_not_a_secret_and_reads_back_as_a_fingerprint() {
        let config = parse(
            AuthType::OAuth2ClientCredentials,
            cc(json!({"client_auth": "private_key_jwt", "private_key": *RSA_PKCS8, "key_id": "k1"})),
        )
        .unwrap();
        let masked = config.masked();
        assert_eq!(masked["private_key"]["fingerprint_sha256"].as_str().unwrap().len(), 64);
        assert!(!masked.to_string().contains("BEGIN"), "{masked}");
        assert!(!config.public().to_string().contains("BEGIN"));
        let err = parse(AuthType::OAuth2ClientCredentials, cc(json!({"client_auth": "private_key_jwt"}))).unwrap_err();
        assert_eq!(fields(&err), ["config.private_key"]);
        let err = parse(AuthType::OAuth2ClientCredentials, cc(json!({"client_auth": "basic"}))).unwrap_err();
        assert_eq!(fields(&err), ["config.client_secret"]);
    }

    #[test]
    fn a_key_that_does_not_fit_the_algorithm_or_is_not_private_is_refused_by_field() {
        let err = parse(
            AuthType::OAuth2JwtBearer,
            json!({"token_endpoint": "https://t/", "issuer": "i", "private_key": *EC_PKCS8, "signing_alg": "RS256"}),
        )
        .unwrap_err();
        assert_eq!(fields(&err), ["config.signing_alg"]);
        let err = parse(
            AuthType::OAuth2JwtBearer,
            json!({"token_endpoint": "https://t/", "issuer": "i", "private_key": "-----BEGIN PUBLIC KEY-----\nMFk=\n-----END PUBLIC KEY-----"}),
        )
        .unwrap_err();
        assert_eq!(fields(&err), ["config.private_key"]);
        assert!(err.0[0].message.contains("public key"), "{err}");
    }

    #[test]
    fn extra_fields_and_headers_keep_secret_values_sealed_and_masked() {
        let config = parse(
            AuthType::OAuth2ClientCredentials,
            cc(json!({"client_secret": "s", "token_params": [{"key": "resource", "value": "https://api"},
                      {"key": "account_key", "value": "param-secret-0123456789", "secret": true}],
                      "token_headers": [{"key": "X-Api-Key", "value": "header-secret-0123456789", "secret": true}]})),
        )
        .unwrap();
        let secrets: Vec<String> = config.secrets().into_iter().map(|(f, _)| f).collect();
        assert_eq!(secrets, ["client_secret", "token_params/1/value", "token_headers/0/value"]);
        let masked = config.masked().to_string();
        assert!(!masked.contains("param-secret") && !masked.contains("header-secret"), "{masked}");
        assert!(masked.contains("https://api"), "{masked}");
        let public = config.public();
        assert_eq!(public["token_params"][1], json!({"key": "account_key", "secret": true}));
        // A patch that names a secret entry without its value keeps the stored value.
        let patched = AuthConfig::parse(
            AuthType::OAuth2ClientCredentials,
            &json!({"token_params": [{"key": "account_key", "secret": true}]}),
            Some(&config),
            "config",
        )
        .unwrap();
        let super::super::Credential::OAuth2ClientCredentials(c) = &patched.credential else { panic!() };
        assert_eq!(c.options.params[0].value.expose(), "param-secret-0123456789");
    }

    #[test]
    fn odd_token_endpoint_settings_are_checked_by_field() {
        let cases = [
            (json!({"token_params": [{"key": "grant_type", "value": "x"}]}), "config.token_params[0].key"),
            (json!({"token_params": [{"key": "a"}]}), "config.token_params[0].value"),
            (
                json!({"token_params": [{"key": "a", "value": "1"}, {"key": "a", "value": "2"}]}),
                "config.token_params[1].key",
            ),
            (json!({"token_headers": [{"key": "Bad Header", "value": "1"}]}), "config.token_headers[0].key"),
            (json!({"token_headers": [{"key": "Authorization", "value": "1"}]}), "config.token_headers[0].key"),
            (json!({"token_headers": [{"key": "X-A", "value": "a\nb"}]}), "config.token_headers[0].value"),
            (json!({"token_response": {"access_token": "data..token"}}), "config.token_response.access_token"),
            (json!({"token_response": {"token": "data"}}), "config.token_response.token"),
            (json!({"send_as": {"header": "Content-Length"}}), "config.send_as.header"),
            (json!({"send_as": {"prefix": "a\r\n"}}), "config.send_as.prefix"),
            (json!({"client_auth": "mtls"}), "config.client_auth"),
        ];
        for (extra, field) in cases {
            let mut input = cc(extra.clone());
            input["client_secret"] = json!("s");
            let err = parse(AuthType::OAuth2ClientCredentials, input).unwrap_err();
            assert!(fields(&err).contains(&field), "{extra}: {err}");
        }
    }

    #[test]
    fn send_as_defaults_its_prefix_by_header() {
        let config = parse(
            AuthType::OAuth2ClientCredentials,
            cc(json!({"client_secret": "s", "send_as": {"header": "X-Auth-Token"}})),
        )
        .unwrap();
        let Some(TokenGrant::ClientCredentials(c)) = config.token_grant() else { panic!() };
        assert_eq!((c.options.send_as.header.as_str(), c.options.send_as.prefix.as_str()), ("X-Auth-Token", ""));
    }

    #[test]
    fn a_jwt_bearer_config_round_trips_through_storage() {
        let config = parse(
            AuthType::OAuth2JwtBearer,
            json!({"token_endpoint": "https://oauth2.example/token", "issuer": "sa@example.iam", "scope": "a b",
                   "private_key": *EC_PKCS8, "key_id": "kid-1",
                   "token_response": {"access_token": "data.token"}}),
        )
        .unwrap();
        let secrets = config.secrets().into_iter().map(|(f, s)| (f, s.clone())).collect();
        let back = AuthConfig::assemble(AuthType::OAuth2JwtBearer, &config.public(), secrets).unwrap();
        assert!(back.changed_fields(&config).is_empty(), "{:?}", back.changed_fields(&config));
        assert_eq!(back.masked(), config.masked());
    }
}
