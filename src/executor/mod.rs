//! Runs one job to a result: the deadline budget, the attempts, retry
//! classification and backoff. Broker-side work (publishing, acking, delay
//! queues) belongs to `queue`; this module only decides.
//!
//! Every attempt's timeout is `min(request timeout, time left before the
//! deadline − the margin kept to publish the result)`, and no attempt starts
//! that could not finish in time.

pub mod response;
pub mod retry;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::credentials::apply::{OutgoingRequest, Redactor};
use crate::credentials::oauth2::AccessToken;
use crate::credentials::token_cache::{Lookup, TokenCache};
use crate::egress::{EgressPolicy, find_egress_error};
use crate::job::{ErrorKind, Job, JobError, JobResult, Outcome, ResponseSummary};
use crate::metrics::Metrics;
use crate::profile::AuthConfig;

/// An attempt is not started with less time than this left.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(20);

/// Credentials to apply: a stored profile's (with its id and version), or the job's inline ones.
#[derive(Debug, Clone)]
pub struct ResolvedAuth {
    pub config: Arc<AuthConfig>,
    pub profile: Option<(Uuid, i64)>,
}

/// What the executor decided for a job.
#[derive(Debug)]
pub enum Execution {
    Finished(Box<JobResult>),
    /// Try again after `delay`, through the broker: too long to hold the delivery.
    RetryLater {
        delay: Duration,
        attempts: u32,
        error: JobError,
    },
}

/// One job to run.
pub struct Run<'a> {
    pub job: &'a Job,
    pub auth: Option<&'a ResolvedAuth>,
    pub deadline: DateTime<Utc>,
    /// Attempts made by earlier deliveries of this job (delayed retries).
    pub attempts_before: u32,
    pub started_at: DateTime<Utc>,
}

#[derive(Clone)]
pub struct Executor {
    http: reqwest::Client,
    egress: EgressPolicy,
    tokens: Arc<TokenCache>,
    settings: Arc<WorkerConfig>,
    metrics: Metrics,
}

enum NextStep {
    Retry,
    Defer(Duration),
    /// The delay would cross the deadline.
    GiveUp,
}

/// How one attempt ended.
enum AttemptEnd {
    Response(ResponseSummary),
    Failed { error: JobError, response: Option<ResponseSummary>, retry_after: Option<Duration> },
    Unauthorized { response: ResponseSummary },
}

impl Executor {
    pub fn new(
        http: reqwest::Client,
        egress: EgressPolicy,
        tokens: Arc<TokenCache>,
        settings: Arc<WorkerConfig>,
        metrics: Metrics,
    ) -> Self {
        Self { http, egress, tokens, settings, metrics }
    }

    /// The client for target APIs: the egress guard, no proxies, bounded connects.
    pub fn http_client(settings: &WorkerConfig, egress: &EgressPolicy) -> reqwest::Result<reqwest::Client> {
        egress
            .configure(reqwest::Client::builder())
            .connect_timeout(settings.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(256)
            .user_agent(concat!("authrelay/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    pub fn tokens(&self) -> &Arc<TokenCache> {
        &self.tokens
    }

    pub async fn run(&self, run: Run<'_>) -> Execution {
        let Run { job, auth, deadline, attempts_before, started_at } = run;
        let policy = self.settings.phase(job.phase);
        let max_attempts = job.max_attempts.unwrap_or(policy.max_attempts);
        let mut attempts = attempts_before;
        let mut refetched_after_401 = false;
        let mut last: Option<(JobError, Option<ResponseSummary>)> = None;
        let finish = |outcome, attempts, response, error: Option<JobError>| {
            Execution::Finished(Box::new(self.result(job, auth, outcome, attempts, response, error, started_at)))
        };

        let mut request = OutgoingRequest::from_job(job);
        if let Err(e) = self.egress.check_url(&request.url) {
            self.metrics.destinations_blocked.inc();
            return finish(
                Outcome::Rejected,
                attempts,
                None,
                Some(JobError::new(ErrorKind::DestinationBlocked, e.to_string(), false)),
            );
        }
        let static_auth = auth.filter(|a| !matches!(*a.config, AuthConfig::OAuth2ClientCredentials(_)));
        if let Some(a) = static_auth
            && let Err(e) = request.apply(&a.config, None)
        {
            return finish(Outcome::Rejected, attempts, None, Some(e));
        }
        let mut redactor = auth.map(|a| Redactor::for_config(&a.config, None)).unwrap_or_default();

        loop {
            let Some(budget) = self.time_left(deadline) else {
                return match last {
                    None if attempts == 0 => finish(Outcome::Expired, 0, None, None),
                    None => finish(
                        Outcome::Failed,
                        attempts,
                        None,
                        Some(JobError::new(
                            ErrorKind::DeadlineExceeded,
                            "the deadline passed before the next attempt",
                            false,
                        )),
                    ),
                    Some((error, response)) => finish(Outcome::Failed, attempts, response, Some(error)),
                };
            };

            // OAuth 2.0: a token for this attempt (cached, fetched once for all waiters).
            let token = match self.access_token(auth, budget).await {
                Ok(token) => token,
                // Nothing was sent: not an attempt.
                Err(error) if error.kind == ErrorKind::DestinationBlocked => {
                    return finish(Outcome::Rejected, attempts, None, Some(error));
                }
                Err(error) => {
                    attempts = attempts.saturating_add(1);
                    let retryable = error.retryable;
                    last = Some((error, None));
                    if retryable && attempts < max_attempts {
                        match self.next_step(job, attempts, None, deadline).await {
                            NextStep::Retry => continue,
                            NextStep::Defer(delay) => {
                                let (error, _) = last.take().expect("just set");
                                return Execution::RetryLater { delay, attempts, error };
                            }
                            NextStep::GiveUp => {}
                        }
                    }
                    let (error, _) = last.take().expect("just set");
                    return finish(
                        error.kind.outcome(),
                        attempts,
                        None,
                        Some(no_time_note(error, attempts, retryable)),
                    );
                }
            };
            // Only an OAuth token changes between attempts; other credentials were applied once.
            let oauth_request;
            let attempt_request = match (auth, &token) {
                (Some(a), Some(token)) => {
                    let mut with_token = request.clone();
                    if let Err(e) = with_token.apply(&a.config, Some(&token.value)) {
                        return finish(Outcome::Rejected, attempts, None, Some(e));
                    }
                    redactor = Redactor::for_config(&a.config, Some(&token.value));
                    oauth_request = with_token;
                    &oauth_request
                }
                _ => &request,
            };

            attempts = attempts.saturating_add(1);
            let timeout_by_request = job.request.timeout.unwrap_or(self.settings.request_timeout);
            let (timeout, cut_by_deadline) =
                if budget < timeout_by_request { (budget, true) } else { (timeout_by_request, false) };
            let started = tokio::time::Instant::now();
            let end = self.attempt(job, attempt_request, timeout, cut_by_deadline, &redactor).await;
            self.metrics.lane(job.phase).attempt_duration.observe(started.elapsed().as_secs_f64());

            match end {
                AttemptEnd::Response(response) => return finish(Outcome::Succeeded, attempts, Some(response), None),
                AttemptEnd::Unauthorized { response } => {
                    let is_oauth = token.is_some();
                    if is_oauth && !refetched_after_401 {
                        // The token may have been revoked early: drop it (only if it is still the
                        // cached one) and try once more with a fresh token, whatever max_attempts says.
                        refetched_after_401 = true;
                        if let (Some(a), Some(token)) = (auth, &token) {
                            self.reject_token(a, token);
                        }
                        self.metrics.retries.with_label_values(&[job.phase.as_str(), "unauthorized"]).inc();
                        last = Some((JobError::new(ErrorKind::HttpStatus, "HTTP 401", false), Some(response)));
                        continue;
                    }
                    let error = JobError::new(ErrorKind::HttpStatus, "HTTP 401 Unauthorized", false);
                    return finish(Outcome::Failed, attempts, Some(response), Some(error));
                }
                AttemptEnd::Failed { error, response, retry_after } => {
                    if error.kind == ErrorKind::DestinationBlocked {
                        self.metrics.destinations_blocked.inc();
                        return finish(Outcome::Rejected, attempts, response, Some(error));
                    }
                    let retryable = error.retryable;
                    last = Some((error, response));
                    if !retryable || attempts >= max_attempts {
                        let (error, response) = last.take().expect("just set");
                        return finish(Outcome::Failed, attempts, response, Some(error));
                    }
                    match self.next_step(job, attempts, retry_after, deadline).await {
                        NextStep::Retry => {}
                        NextStep::Defer(delay) => {
                            let (error, _) = last.take().expect("just set");
                            return Execution::RetryLater { delay, attempts, error };
                        }
                        NextStep::GiveUp => {
                            let (error, response) = last.take().expect("just set");
                            return finish(
                                Outcome::Failed,
                                attempts,
                                response,
                                Some(no_time_note(error, attempts, true)),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Decides what follows a retryable failure after `attempts` attempts, and
    /// waits when the next attempt runs in process.
    async fn next_step(
        &self,
        job: &Job,
        attempts: u32,
        retry_after: Option<Duration>,
        deadline: DateTime<Utc>,
    ) -> NextStep {
        let policy = self.settings.phase(job.phase);
        let computed = retry::delay_before_next(&policy.retry_delays, attempts, self.settings.jitter);
        // Retry-After replaces the computed delay when it is longer.
        let delay = retry_after.map_or(computed, |ra| ra.max(computed));
        let left = self.time_left(deadline).unwrap_or(Duration::ZERO);
        if delay + MIN_ATTEMPT_BUDGET > left {
            return NextStep::GiveUp;
        }
        self.metrics.retries.with_label_values(&[job.phase.as_str(), "error"]).inc();
        if delay > self.settings.max_in_process_delay {
            return NextStep::Defer(delay);
        }
        tokio::time::sleep(delay).await;
        NextStep::Retry
    }

    /// Time an attempt may take: before the deadline, less the publish margin.
    fn time_left(&self, deadline: DateTime<Utc>) -> Option<Duration> {
        let left = (deadline - Utc::now()).to_std().ok()?.checked_sub(self.settings.publish_margin)?;
        (left >= MIN_ATTEMPT_BUDGET).then_some(left)
    }

    async fn access_token(
        &self,
        auth: Option<&ResolvedAuth>,
        budget: Duration,
    ) -> Result<Option<Arc<AccessToken>>, JobError> {
        let Some(auth) = auth else { return Ok(None) };
        let AuthConfig::OAuth2ClientCredentials(config) = &*auth.config else { return Ok(None) };
        if let Err(e) = self.egress.check_url(&config.token_endpoint) {
            self.metrics.destinations_blocked.inc();
            return Err(JobError::new(ErrorKind::DestinationBlocked, format!("token endpoint: {e}"), false));
        }
        let (id, version) = auth.profile.unwrap_or((Uuid::nil(), 0));
        let timeout = budget.min(self.settings.request_timeout);
        match self.tokens.get(id, version, config, timeout).await {
            Ok((token, lookup)) => {
                let label = match lookup {
                    Lookup::Hit => "hit",
                    Lookup::Miss => "miss",
                    Lookup::Joined => "joined",
                };
                self.metrics.token_lookups.with_label_values(&[label]).inc();
                Ok(Some(token))
            }
            Err(e) => {
                self.metrics.token_lookups.with_label_values(&["error"]).inc();
                Err(JobError::new(ErrorKind::TokenRequestFailed, e.to_string(), e.is_retryable()))
            }
        }
    }

    fn reject_token(&self, auth: &ResolvedAuth, token: &Arc<AccessToken>) {
        if let AuthConfig::OAuth2ClientCredentials(config) = &*auth.config {
            let (id, version) = auth.profile.unwrap_or((Uuid::nil(), 0));
            self.tokens.reject(id, version, config, token);
        }
    }

    async fn attempt(
        &self,
        job: &Job,
        request: &OutgoingRequest,
        timeout: Duration,
        cut_by_deadline: bool,
        redactor: &Redactor,
    ) -> AttemptEnd {
        let mut builder =
            self.http.request(request.method.clone(), request.url.clone()).headers(request.headers.clone());
        if let Some((bytes, _)) = request.encoded_body() {
            builder = builder.body(bytes);
            if let Some(content_type) = request.content_type() {
                builder = builder.header(CONTENT_TYPE, content_type);
            }
        }
        if let Ok(key) = HeaderValue::from_str(&job.job_id) {
            builder = builder.header("idempotency-key", key);
        }
        let max_body = self.settings.max_response_bytes;
        let exchange = async {
            let mut response = builder.send().await?;
            let status = response.status();
            let headers = response.headers().clone();
            let body = response::read_bounded(&mut response, max_body).await?;
            Ok::<_, reqwest::Error>((status, headers, body))
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
                AttemptEnd::Failed {
                    error: JobError::new(kind, message, !cut_by_deadline),
                    response: None,
                    retry_after: None,
                }
            }
            Ok(Err(e)) => {
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

    #[allow(clippy::too_many_arguments)]
    fn result(
        &self,
        job: &Job,
        auth: Option<&ResolvedAuth>,
        outcome: Outcome,
        attempts: u32,
        response: Option<ResponseSummary>,
        error: Option<JobError>,
        started_at: DateTime<Utc>,
    ) -> JobResult {
        let mut result = JobResult::unattempted(&job.identity(), outcome, error, started_at);
        result.attempts = attempts;
        result.response = response;
        if let Some((id, version)) = auth.and_then(|a| a.profile) {
            result.auth_profile_id = Some(id);
            result.auth_profile_version = Some(version);
        }
        result
    }
}

/// Says why a retryable failure was final.
fn no_time_note(mut error: JobError, attempts: u32, retryable: bool) -> JobError {
    if retryable {
        error.message = format!("{}; no time left before the deadline for attempt {}", error.message, attempts + 1);
    }
    error
}

/// Connect errors never reached the server, so they are always safe to retry;
/// other transport errors are retried as the contract says (with the job id as
/// the idempotency key). Messages are redacted: reqwest errors include the URL,
/// which may carry an API key in its query.
fn classify_transport_error(e: &reqwest::Error, redactor: &Redactor) -> JobError {
    if let Some(blocked) = find_egress_error(e) {
        return JobError::new(ErrorKind::DestinationBlocked, blocked.to_string(), false);
    }
    let message = redactor.redact(&crate::error_text::chain(e)).into_owned();
    if e.is_timeout() {
        JobError::new(ErrorKind::Timeout, message, true)
    } else {
        JobError::new(ErrorKind::Connect, message, true)
    }
}
