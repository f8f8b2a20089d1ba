//! Turning a job's request into the outgoing request, with credentials
//! applied exactly as contract section 5 says, and a [`Redactor`] that keeps
//! those credentials out of everything we echo back (results, logs).

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use url::Url;
use zeroize::Zeroizing;

use crate::job::{Job, JobError};
use crate::profile::AuthConfig;
use crate::profile::auth_config::ApiKeyMethod;

#[derive(Debug, Clone, PartialEq)]
pub enum OutgoingBody {
    None,
    Json(Value),
    Form(Vec<(String, String)>),
}

/// The request as it will be sent (before the per-attempt parts).
#[derive(Debug, Clone)]
pub struct OutgoingRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: OutgoingBody,
}

impl OutgoingRequest {
    /// The job's request: its query appended to the URL's own, its headers, its body or form.
    pub fn from_job(job: &Job) -> Self {
        let request = &job.request;
        let mut url = request.url.clone();
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(request.query.iter());
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &request.headers {
            headers.append(name.clone(), value.clone());
        }
        let body = match (&request.body, &request.form) {
            (Some(json), _) => OutgoingBody::Json(json.clone()),
            (None, Some(form)) => OutgoingBody::Form(form.clone()),
            (None, None) => OutgoingBody::None,
        };
        Self { method: request.method.clone(), url, headers, body }
    }

    /// Applies credentials; they replace any header, query parameter or body
    /// field of the same name that the request carried. `access_token` is the
    /// OAuth 2.0 token for an `oauth2_client_credentials` config.
    pub fn apply(&mut self, auth: &AuthConfig, access_token: Option<&SecretString>) -> Result<(), JobError> {
        match auth {
            AuthConfig::Bearer { token } => self.set_authorization(&format!("Bearer {}", token.expose_secret()))?,
            AuthConfig::Basic { username, password } => {
                let encoded = BASE64.encode(format!("{username}:{}", password.expose_secret()));
                self.set_authorization(&format!("Basic {encoded}"))?;
            }
            AuthConfig::OAuth2ClientCredentials(_) => {
                let token = access_token.ok_or_else(|| JobError::invalid("no access token to apply"))?;
                self.set_authorization(&format!("Bearer {}", token.expose_secret()))?;
            }
            AuthConfig::ApiKey { method, pairs } => match method {
                ApiKeyMethod::Header => {
                    for pair in pairs {
                        let name = HeaderName::from_bytes(pair.key.as_bytes()).map_err(|_| {
                            JobError::invalid(format!("API key `{}` is not a valid header name", pair.key))
                        })?;
                        let mut value = HeaderValue::from_str(pair.value.expose_secret()).map_err(|_| {
                            JobError::invalid(format!(
                                "the value of API key `{}` is not a valid header value",
                                pair.key
                            ))
                        })?;
                        value.set_sensitive(true);
                        self.headers.insert(name, value);
                    }
                }
                ApiKeyMethod::Query => {
                    let keys: Vec<&str> = pairs.iter().map(|p| p.key.as_str()).collect();
                    let kept: Vec<(String, String)> = self
                        .url
                        .query_pairs()
                        .filter(|(k, _)| !keys.contains(&k.as_ref()))
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect();
                    let mut query = self.url.query_pairs_mut();
                    query.clear().extend_pairs(kept);
                    for pair in pairs {
                        query.append_pair(&pair.key, pair.value.expose_secret());
                    }
                }
                ApiKeyMethod::Body => match &mut self.body {
                    OutgoingBody::Form(form) => {
                        form.retain(|(k, _)| !pairs.iter().any(|p| &p.key == k));
                        form.extend(pairs.iter().map(|p| (p.key.clone(), p.value.expose_secret().to_owned())));
                    }
                    OutgoingBody::Json(Value::Object(obj)) => {
                        for pair in pairs {
                            obj.insert(pair.key.clone(), Value::String(pair.value.expose_secret().to_owned()));
                        }
                    }
                    OutgoingBody::Json(_) => {
                        return Err(JobError::invalid(
                            "API keys sent in the body need a JSON object or a form body, but `request.body` is not an object",
                        ));
                    }
                    OutgoingBody::None => {
                        let obj = pairs
                            .iter()
                            .map(|p| (p.key.clone(), Value::String(p.value.expose_secret().to_owned())))
                            .collect();
                        self.body = OutgoingBody::Json(Value::Object(obj));
                    }
                },
            },
        }
        Ok(())
    }

    fn set_authorization(&mut self, value: &str) -> Result<(), JobError> {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| JobError::invalid("the credential is not a valid header value"))?;
        value.set_sensitive(true);
        self.headers.insert(AUTHORIZATION, value);
        Ok(())
    }

    /// The body bytes and the content type they need.
    pub fn encoded_body(&self) -> Option<(Vec<u8>, &'static str)> {
        match &self.body {
            OutgoingBody::None => None,
            OutgoingBody::Json(v) => Some((serde_json::to_vec(v).expect("JSON values serialize"), "application/json")),
            OutgoingBody::Form(pairs) => {
                let encoded = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
                Some((encoded.into_bytes(), "application/x-www-form-urlencoded"))
            }
        }
    }

    /// Sets the content type of the body unless the request chose one (forms always say so).
    pub fn content_type(&self) -> Option<HeaderValue> {
        match &self.body {
            OutgoingBody::None => None,
            OutgoingBody::Form(_) => Some(HeaderValue::from_static("application/x-www-form-urlencoded")),
            OutgoingBody::Json(_) => match self.headers.get(CONTENT_TYPE) {
                Some(own) => Some(own.clone()),
                None => Some(HeaderValue::from_static("application/json")),
            },
        }
    }
}

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
        match auth {
            AuthConfig::Bearer { token } => redactor.add(token.expose_secret()),
            AuthConfig::Basic { username, password } => {
                redactor.add(password.expose_secret());
                redactor.add(&BASE64.encode(format!("{username}:{}", password.expose_secret())));
            }
            AuthConfig::ApiKey { method, pairs } => {
                for pair in pairs {
                    redactor.add(pair.value.expose_secret());
                    if *method == ApiKeyMethod::Header {
                        redactor.header_names.push(pair.key.to_ascii_lowercase());
                    }
                }
            }
            AuthConfig::OAuth2ClientCredentials(c) => redactor.add(c.client_secret.expose_secret()),
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
    use crate::job::{JobLimits, Phase, parse_job};
    use crate::profile::AuthType;
    use serde_json::json;

    fn job(request: Value) -> Job {
        let v = json!({"job_id": "j", "workspace_id": "w", "phase": "post_call", "action_id": "a", "request": request});
        parse_job(&serde_json::to_vec(&v).unwrap(), Phase::PostCall, &JobLimits::default()).unwrap()
    }

    fn config(t: AuthType, v: Value) -> AuthConfig {
        AuthConfig::parse(t, &v, None, "config").unwrap()
    }

    #[test]
    fn query_is_appended_to_the_urls_own() {
        let req = OutgoingRequest::from_job(&job(json!({"url": "https://x/p?source=voice", "query": {"limit": "10"}})));
        assert_eq!(req.url.as_str(), "https://x/p?source=voice&limit=10");
    }

    #[test]
    fn bearer_and_basic_replace_any_authorization_the_request_carried() {
        let mut req = OutgoingRequest::from_job(&job(
            json!({"url": "https://x/", "headers": {"authorization": "Bearer inline"}}),
        ));
        req.apply(&config(AuthType::Bearer, json!({"token": "tok"})), None).unwrap();
        assert_eq!(req.headers.get_all(AUTHORIZATION).iter().count(), 1);
        assert_eq!(req.headers[AUTHORIZATION], "Bearer tok");
        req.apply(&config(AuthType::Basic, json!({"username": "Aladdin", "password": "open sesame"})), None).unwrap();
        assert_eq!(req.headers[AUTHORIZATION], "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn api_key_pairs_go_where_the_method_says_and_override() {
        let pairs = json!([{"key": "api_key", "value": "k1"}, {"key": "X-Tenant", "value": "t1"}]);
        let mut header = OutgoingRequest::from_job(&job(json!({"url": "https://x/", "headers": {"x-tenant": "mine"}})));
        header.apply(&config(AuthType::ApiKey, json!({"method": "header", "pairs": pairs})), None).unwrap();
        assert_eq!(header.headers["api_key"], "k1");
        assert_eq!(header.headers.get_all("x-tenant").iter().collect::<Vec<_>>(), ["t1"]);

        let mut query =
            OutgoingRequest::from_job(&job(json!({"url": "https://x/?api_key=mine&a=1", "query": {"b": "2"}})));
        query.apply(&config(AuthType::ApiKey, json!({"method": "query", "pairs": pairs})), None).unwrap();
        assert_eq!(query.url.query(), Some("a=1&b=2&api_key=k1&X-Tenant=t1"));

        let mut json_body =
            OutgoingRequest::from_job(&job(json!({"url": "https://x/", "body": {"api_key": "mine", "q": 1}})));
        json_body.apply(&config(AuthType::ApiKey, json!({"method": "body", "pairs": pairs})), None).unwrap();
        assert_eq!(json_body.body, OutgoingBody::Json(json!({"api_key": "k1", "q": 1, "X-Tenant": "t1"})));

        let mut form =
            OutgoingRequest::from_job(&job(json!({"url": "https://x/", "form": {"api_key": "mine", "q": "1"}})));
        form.apply(&config(AuthType::ApiKey, json!({"method": "body", "pairs": pairs})), None).unwrap();
        let (bytes, ct) = form.encoded_body().unwrap();
        assert_eq!(
            (String::from_utf8(bytes).unwrap().as_str(), ct),
            ("q=1&api_key=k1&X-Tenant=t1", "application/x-www-form-urlencoded")
        );

        let mut empty = OutgoingRequest::from_job(&job(json!({"url": "https://x/"})));
        empty.apply(&config(AuthType::ApiKey, json!({"method": "body", "pairs": pairs})), None).unwrap();
        assert_eq!(empty.body, OutgoingBody::Json(json!({"api_key": "k1", "X-Tenant": "t1"})));

        let mut array = OutgoingRequest::from_job(&job(json!({"url": "https://x/", "body": [1, 2]})));
        let err = array.apply(&config(AuthType::ApiKey, json!({"method": "body", "pairs": pairs})), None).unwrap_err();
        assert_eq!(err.kind, crate::job::ErrorKind::InvalidJob);
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
