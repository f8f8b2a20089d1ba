//! Reading a token endpoint's reply, whatever its encoding, and saying what
//! came back when it is junk, without repeating a secret.

use secrecy::ExposeSecret as _;
use serde_json::Value;
use url::form_urlencoded;

use super::{MAX_EXCERPT_CHARS, basic_credentials};
use crate::credentials::redact::Redactor;
use crate::profile::auth_config::{ResponsePaths, TokenGrant};

/// The fields of a token or error reply, whatever its encoding.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) access_token: Option<String>,
    pub(super) token_type: Option<String>,
    pub(super) expires_in: Option<String>,
    pub(super) scope: Option<String>,
    pub(super) error: Option<String>,
    pub(super) error_description: Option<String>,
    /// Set when a field has a shape no reading can accept.
    pub(super) problem: Option<&'static str>,
}

/// Tries the encoding the content type names first, then the other one,
/// since servers mislabel their replies.
pub(super) fn parse_fields(body: &str, content_type: &str, paths: &ResponsePaths) -> Option<Fields> {
    // Paths into a nested reply only make sense in JSON.
    if content_type.contains("x-www-form-urlencoded") && paths.is_default() {
        fields_from_form(body).or_else(|| fields_from_json(body, paths))
    } else if paths.is_default() {
        fields_from_json(body, paths).or_else(|| fields_from_form(body))
    } else {
        fields_from_json(body, paths)
    }
}

/// The value at a dot path (`data.token`) of a JSON reply.
fn at_path<'a>(reply: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(reply, |value, segment| value.get(segment))
}

fn fields_from_json(body: &str, paths: &ResponsePaths) -> Option<Fields> {
    let reply: Value = serde_json::from_str(body.trim_start_matches('\u{feff}')).ok()?;
    if !reply.is_object() {
        return None;
    }
    let mut fields = Fields::default();
    let mut text = |name: &str| match at_path(&reply, path_of(paths, name)) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        // Some servers list scopes as an array.
        Some(Value::Array(items)) if name == "scope" => {
            Some(items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "))
        }
        Some(_) => {
            fields.problem.get_or_insert(match name {
                "access_token" => "the access token is not a string",
                "expires_in" => "expires_in is not a number of seconds",
                _ => "a field has an unexpected JSON type",
            });
            None
        }
    };
    let access_token = text("access_token");
    let token_type = text("token_type");
    let expires_in = text("expires_in");
    let scope = text("scope");
    let error = text("error");
    let error_description = text("error_description");
    Some(Fields { access_token, token_type, expires_in, scope, error, error_description, ..fields })
}

/// Where a field is in a JSON reply: the configured dot path, or its RFC 6749 name.
pub(super) fn path_of<'a>(paths: &'a ResponsePaths, name: &'a str) -> &'a str {
    let custom = match name {
        "access_token" => paths.access_token.as_deref(),
        "expires_in" => paths.expires_in.as_deref(),
        "token_type" => paths.token_type.as_deref(),
        _ => None,
    };
    custom.unwrap_or(name)
}

/// Any text parses as a form, so only a form naming a token or an error counts.
fn fields_from_form(body: &str) -> Option<Fields> {
    let mut fields = Fields::default();
    let mut recognised = false;
    for (name, value) in form_urlencoded::parse(body.trim().as_bytes()) {
        let slot = match name.as_ref() {
            "access_token" => &mut fields.access_token,
            "token_type" => &mut fields.token_type,
            "expires_in" => &mut fields.expires_in,
            "scope" => &mut fields.scope,
            "error" => &mut fields.error,
            "error_description" => &mut fields.error_description,
            _ => continue,
        };
        recognised |= matches!(name.as_ref(), "access_token" | "error");
        *slot = Some(value.into_owned());
    }
    recognised.then_some(fields)
}

/// Whole seconds from `3600`, `"3600"` or `3599.5`; `None` for anything negative or not a number.
pub(super) fn parse_seconds(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(secs);
    }
    let secs = raw.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0)?;
    // A float too big for u64 saturates, and the lifetime cap applies later anyway.
    Some(secs as u64)
}

/// Says what kind of junk came back, with at most a short, scrubbed excerpt.
pub(super) fn junk_message(body: &str, content_type: &str, redactor: &Redactor) -> String {
    let content_type =
        if content_type.is_empty() { "no content type".to_owned() } else { redactor.scrub_line(content_type, 60) };
    let body = body.trim();
    if body.is_empty() {
        return format!("the body is empty ({content_type})");
    }
    // A broken reply that mentions a token may hold one: show none of it.
    if body.to_ascii_lowercase().contains("access_token") {
        return format!("the body is neither a JSON object nor a form-encoded token reply ({content_type})");
    }
    let excerpt = redactor.scrub_line(body, MAX_EXCERPT_CHARS);
    format!(
        "the body is neither a JSON object nor a form-encoded token reply ({content_type}); it starts with {excerpt:?}"
    )
}

/// A redactor for what a token endpoint says: every secret the request
/// carried, in each form it carried it (raw and form-encoded, which `add`
/// covers, and inside the Basic credentials), and the signed assertion.
pub(super) fn redactor_for(grant: TokenGrant<'_>, assertion: Option<&str>) -> Redactor {
    let mut redactor = Redactor::default();
    if let TokenGrant::ClientCredentials(config) = grant
        && let Some(secret) = &config.client_secret
    {
        redactor.add_any_length(secret.expose_secret());
        redactor.add_any_length(&basic_credentials(&config.client_id, secret));
    }
    let options = grant.options();
    for param in options.params.iter().chain(&options.headers).filter(|p| p.value.is_secret()) {
        redactor.add_any_length(param.value.expose());
    }
    if let Some(assertion) = assertion {
        redactor.add(assertion);
    }
    redactor
}
