//! One HTTP attempt: send the request, read the answer within a byte budget
//! and a timeout, and classify how it ended.

use std::time::{Duration, SystemTime};

use chrono::Utc;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};

use super::{Executor, response, retry};
use crate::credentials::apply::OutgoingRequest;
use crate::credentials::redact::Redactor;
use crate::credentials::signing;
use crate::egress::find_egress_error;
use crate::job::{ErrorKind, JobError, ResponseSummary};
use crate::profile::auth_config::Credential;

/// What one attempt sends, and within what time.
pub(super) struct Attempt<'a> {
    /// The shared client, or the one that presents the profile's client certificate.
    pub client: &'a reqwest::Client,
    pub request: &'a OutgoingRequest,
    /// Signs the finished request when it is a signing type (`hmac`, `aws_sigv4`).
    pub credential: Option<&'a Credential>,
    /// Sent as `Idempotency-Key`, the same on every attempt.
    pub job_id: &'a str,
    pub timeout: Duration,
    /// The timeout is what was left before the deadline (so running out of it
    /// is `deadline_exceeded`, not a retryable `timeout`).
    pub cut_by_deadline: bool,
    pub redactor: &'a Redactor,
}

/// How one attempt ended.
pub(super) enum AttemptEnd {
    Response(ResponseSummary),
    Failed { error: JobError, response: Option<ResponseSummary>, retry_after: Option<Duration> },
    Unauthorized { response: ResponseSummary },
}

impl Executor {
    /// Sends `attempt.request` once and reads its answer within the attempt's timeout.
    pub(super) async fn attempt(&self, attempt: Attempt<'_>) -> AttemptEnd {
        let Attempt { client, request, credential, job_id, timeout, cut_by_deadline, redactor } = attempt;
        let mut builder = client.request(request.method.clone(), request.url.clone()).headers(request.headers.clone());
        if let Some((bytes, _)) = request.encoded_body() {
            builder = builder.body(bytes);
            if let Some(content_type) = request.content_type() {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
        }
        if let Ok(key) = HeaderValue::from_str(job_id) {
            builder = builder.header("idempotency-key", key);
        }
        let max_body = self.settings.max_response_bytes;
        let signed_at = SystemTime::now();
        let exchange = async {
            let mut outgoing = builder.build()?;
            if let Some(credential) = credential {
                // Last: over the exact bytes and headers that go out, with this attempt's time.
                signing::sign(&mut outgoing, credential, job_id, signed_at).map_err(AttemptError::Signing)?;
            }
            let mut response = client.execute(outgoing).await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response::read_bounded(&mut response, max_body).await?;
            Ok::<_, AttemptError>((status, headers, body))
        };
        match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                let (kind, message) = if cut_by_deadline {
                    (
                        ErrorKind::DeadlineExceeded,
                        format!("no response within the {} ms left before the deadline", timeout.as_millis()),
                    )
                } else {
                    (ErrorKind::Timeout, format!("no response within {} ms", timeout.as_millis()))
                };
                // The connection may have been made and the request written: without a
                // signal of how far the exchange got, a timeout counts as maybe sent.
                let mut error = JobError::new(kind, message, !cut_by_deadline);
                error.maybe_sent = true;
                AttemptEnd::Failed { error, response: None, retry_after: None }
            }
            Ok(Err(AttemptError::Signing(e))) => AttemptEnd::Failed {
                error: JobError::new(ErrorKind::InvalidJob, e.to_string(), false),
                response: None,
                retry_after: None,
            },
            Ok(Err(AttemptError::Transport(e))) => {
                AttemptEnd::Failed { error: classify_transport_error(&e, redactor), response: None, retry_after: None }
            }
            Ok(Ok((status, headers, body))) => {
                if body.truncated {
                    self.metrics.bodies_truncated.inc();
                }
                let summary = response::summarize(status.as_u16(), &headers, body, max_body, redactor);
                if status.is_success() {
                    AttemptEnd::Response(summary)
                } else if status == StatusCode::UNAUTHORIZED {
                    AttemptEnd::Unauthorized { response: summary }
                } else {
                    let retryable = retry::is_retryable_status(status);
                    let retry_after = headers
                        .get(RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| retry::parse_retry_after(v, Utc::now()));
                    let reason = status.canonical_reason().map(|r| format!(" {r}")).unwrap_or_default();
                    let error =
                        JobError::new(ErrorKind::HttpStatus, format!("HTTP {}{reason}", status.as_u16()), retryable);
                    AttemptEnd::Failed { error, response: Some(summary), retry_after }
                }
            }
        }
    }
}

/// Why an attempt got no response.
#[derive(Debug, thiserror::Error)]
enum AttemptError {
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
    #[error(transparent)]
    Signing(signing::SigningError),
}

/// Connect errors never reached the server, so they are always safe to retry;
/// other transport errors are retried as the contract says (with the job id as
/// the idempotency key), and are marked `maybe_sent` for jobs that forbid that.
/// Messages are redacted: reqwest errors include the URL, which may carry an
/// API key in its query.
fn classify_transport_error(e: &reqwest::Error, redactor: &Redactor) -> JobError {
    if let Some(blocked) = find_egress_error(e) {
        return JobError::new(ErrorKind::DestinationBlocked, blocked.to_string(), false);
    }
    let message = redactor.redact(&crate::error_text::chain(e)).into_owned();
    let mut error = if e.is_timeout() {
        JobError::new(ErrorKind::Timeout, message, true)
    } else {
        JobError::new(ErrorKind::Connect, message, true)
    };
    error.maybe_sent = maybe_sent(e);
    error
}

/// Whether the request may have reached the target. Errors of the connector
/// (DNS, refused, the TLS handshake, the connect timeout) and of building the
/// request prove it did not; anything later (a reset or a connection closed
/// after the request was written, a body cut short) may have come after the
/// target read it.
fn maybe_sent(e: &reqwest::Error) -> bool {
    !(e.is_connect() || e.is_builder())
}
