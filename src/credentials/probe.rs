//! "Test this profile now": fetch a fresh OAuth 2.0 token, or call a URL with
//! the credentials, and report what happened without any secret.

use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use url::Url;

use super::apply::OutgoingRequest;
use super::http_clients::HttpClients;
use super::oauth2::TokenClient;
use super::redact::Redactor;
use super::signing;
use crate::egress::{EgressPolicy, find_egress_error};
use crate::profile::AuthProfile;

/// What a probe found. Never carries a credential.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeReport {
    pub ok: bool,
    /// `token_fetched`, `url_called` or `not_called` (no URL given).
    pub check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The clients a probe uses: the same egress guard as the workers.
#[derive(Clone)]
pub struct Prober {
    pub clients: HttpClients,
    pub tokens: TokenClient,
    pub egress: EgressPolicy,
    pub timeout: Duration,
}

impl Prober {
    pub async fn probe(&self, profile: &AuthProfile, url: Option<Url>) -> ProbeReport {
        let started = Instant::now();
        let mut report = ProbeReport {
            ok: false,
            check: "not_called",
            status: None,
            token_type: None,
            expires_in: None,
            scope: None,
            error: None,
            duration_ms: 0,
        };
        let mut access_token = None;
        if let Some(grant) = profile.config.token_grant() {
            report.check = "token_fetched";
            if let Err(e) = self.egress.check_url(grant.token_endpoint()) {
                report.error = Some(format!("token endpoint: {e}"));
                return finish(report, started);
            }
            let certificate = profile.config.tls_identity().map(|c| (c, Some(profile.id)));
            match self.tokens.fetch_presenting(grant, certificate, self.timeout).await {
                Ok(token) => {
                    report.token_type = Some(token.token_type.clone());
                    report.expires_in = token.expires_in.map(|d| d.as_secs());
                    report.scope = token.scope.clone();
                    access_token = Some(token.value);
                }
                Err(e) => {
                    report.error = Some(e.to_string());
                    return finish(report, started);
                }
            }
        }
        let Some(url) = url else {
            // Without a URL, a fetched token (OAuth) or a profile that opened is the check.
            report.ok = true;
            return finish(report, started);
        };
        report.check = "url_called";
        let redactor = Redactor::for_config(&profile.config, access_token.as_ref());
        let mut request = OutgoingRequest {
            method: reqwest::Method::GET,
            url,
            headers: Default::default(),
            body: super::apply::OutgoingBody::None,
        };
        if let Err(e) = self.egress.check_url(&request.url) {
            report.error = Some(e.to_string());
            return finish(report, started);
        }
        if let Err(e) = request.apply(&profile.config, access_token.as_ref()) {
            report.error = Some(e.message);
            return finish(report, started);
        }
        let client = match self.clients.target(profile.config.tls_identity(), Some(profile.id)) {
            Ok(client) => client,
            Err(e) => {
                report.error = Some(e.to_string());
                return finish(report, started);
            }
        };
        let mut builder = client.request(request.method.clone(), request.url.clone()).headers(request.headers.clone());
        if let Some((body, content_type)) = request.encoded_body() {
            builder = builder.header(reqwest::header::CONTENT_TYPE, content_type).body(body);
        }
        let outgoing = match builder.build() {
            Ok(mut outgoing) => match signing::sign(
                &mut outgoing,
                &profile.config.credential,
                &format!("probe_{}", uuid::Uuid::new_v4()),
                SystemTime::now(),
            ) {
                Ok(()) => outgoing,
                Err(e) => {
                    report.error = Some(e.to_string());
                    return finish(report, started);
                }
            },
            Err(e) => {
                report.error = Some(redactor.redact(&e.to_string()).into_owned());
                return finish(report, started);
            }
        };
        match tokio::time::timeout(self.timeout, client.execute(outgoing)).await {
            Err(_) => report.error = Some(format!("no response within {} ms", self.timeout.as_millis())),
            Ok(Err(e)) => {
                report.error = Some(match find_egress_error(&e) {
                    Some(blocked) => blocked.to_string(),
                    None => redactor.redact(&e.to_string()).into_owned(),
                })
            }
            Ok(Ok(response)) => {
                report.status = Some(response.status().as_u16());
                report.ok = response.status().is_success();
                if !report.ok {
                    report.error = Some(format!("the URL answered HTTP {}", response.status().as_u16()));
                }
            }
        }
        finish(report, started)
    }
}

fn finish(mut report: ProbeReport, started: Instant) -> ProbeReport {
    report.duration_ms = started.elapsed().as_millis() as u64;
    report
}
