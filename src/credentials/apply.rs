//! Turning a job's request into the outgoing request, with credentials
//! applied exactly as contract section 5 says.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use url::Url;

use crate::job::{Job, JobError};
use crate::profile::AuthConfig;
use crate::profile::auth_config::{ApiKeyMethod, Credential};

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
        match &auth.credential {
            Credential::Bearer { token } => self.set_authorization(&format!("Bearer {}", token.expose_secret()))?,
            Credential::Basic { username, password } => {
                let encoded = BASE64.encode(format!("{username}:{}", password.expose_secret()));
                self.set_authorization(&format!("Basic {encoded}"))?;
            }
            Credential::OAuth2ClientCredentials(_) | Credential::OAuth2JwtBearer(_) => {
                let token = access_token.ok_or_else(|| JobError::invalid("no access token to apply"))?;
                let send_as = &auth.token_grant().expect("an OAuth config has a grant").options().send_as;
                let name = HeaderName::from_bytes(send_as.header.as_bytes())
                    .map_err(|_| JobError::invalid("the profile's send_as header is not a valid header name"))?;
                self.set_header(name, &format!("{}{}", send_as.prefix, token.expose_secret()))?;
            }
            // Signed per attempt, over the finished request (`credentials::signing`);
            // a certificate goes in the TLS handshake.
            Credential::Hmac(_) | Credential::AwsSigV4(_) | Credential::Mtls(_) => {}
            Credential::ApiKey { method, pairs } => match method {
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
        self.set_header(AUTHORIZATION, value)
    }

    /// Sets a credential header, replacing any the request carried under that name.
    fn set_header(&mut self, name: HeaderName, value: &str) -> Result<(), JobError> {
        let mut value = HeaderValue::from_str(value)
            .map_err(|_| JobError::invalid("the credential is not a valid header value"))?;
        value.set_sensitive(true);
        self.headers.insert(name, value);
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
}
