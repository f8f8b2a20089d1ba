//! Runs one job to a result: the deadline budget, the attempts, retry
//! classification and backoff. Broker-side work (publishing, acking, delay
//! queues) belongs to `queue`; this module only decides.
//!
//! Every attempt's timeout is `min(request timeout, time left before the
//! deadline − the margin kept to publish the result)`, and no attempt starts
//! that could not finish in time.
//!
//! - this file: the [`Executor`] and one job's run ([`JobRun`]): attempts,
//!   the 401 refetch, and what follows a failure;
//! - [`admission`]: the turn the profile's limits give each attempt;
//! - [`attempt`]: one HTTP attempt and how it ended;
//! - [`retry`]: which statuses are retried and the delays between attempts;
//! - [`response`]: reading a bounded body into the result's `response`;
//! - [`verdict`]: what the job tells about the credentials themselves;
//! - [`circuit`]: the destination's circuit breaker, asked before each attempt.

mod admission;
mod attempt;
mod circuit;
pub mod response;
pub mod retry;
mod verdict;

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::config::WorkerConfig;
use crate::credentials::apply::OutgoingRequest;
use crate::credentials::http_clients::HttpClients;
use crate::credentials::oauth2::AccessToken;
use crate::credentials::redact::Redactor;
use crate::credentials::token_cache::{Lookup, TokenCache, TokenSource};
use crate::egress::EgressPolicy;
use crate::job::{ErrorKind, Job, JobError, JobResult, Outcome, ResponseSummary};
use crate::metrics::{DeferReason, Metrics, RetryReason, TokenLookup};
use crate::profile::{AuthConfig, ProfileLimits};
use crate::traffic::breaker::{Breakers, Origin};
use crate::traffic::limits::ProfileGates;
use attempt::{Attempt, AttemptEnd};
use verdict::Presented;
pub use verdict::{Refusal, Verdict};

/// An attempt is not started with less time than this left.
const MIN_ATTEMPT_BUDGET: Duration = Duration::from_millis(20);

/// Credentials to apply: a stored profile's (with its id and version), or the job's inline ones.
#[derive(Debug, Clone)]
pub struct ResolvedAuth {
    pub config: Arc<AuthConfig>,
    pub profile: Option<(Uuid, i64)>,
    /// Where OAuth 2.0 tokens for these credentials come from (OAuth types only).
    pub tokens: Option<TokenSource>,
    /// The stored profile's traffic limits.
    pub limits: Option<ProfileLimits>,
}

impl ResolvedAuth {
    /// A job's own inline credentials.
    pub fn inline(config: AuthConfig, workspace_id: &str) -> Self {
        let config = Arc::new(config);
        let tokens = TokenSource::new(config.clone(), None, workspace_id, None);
        Self { config, profile: None, tokens, limits: None }
    }

    /// A stored profile's credentials; `token_digest` is the config's token
    /// request digest when the caller keeps it.
    pub fn profile(
        config: Arc<AuthConfig>,
        id: Uuid,
        version: i64,
        workspace_id: &str,
        token_digest: Option<[u8; 32]>,
    ) -> Self {
        let tokens = TokenSource::new(config.clone(), Some((id, version)), workspace_id, token_digest);
        Self { config, profile: Some((id, version)), tokens, limits: None }
    }

    /// With the profile's traffic limits.
    pub fn with_limits(mut self, limits: Option<ProfileLimits>) -> Self {
        self.limits = limits;
        self
    }
}

/// What the executor decided for a job: the result, and what the job told
/// about the credentials (for their health); or to try again later.
#[derive(Debug)]
pub enum Execution {
    Finished(Box<JobResult>, Verdict),
    /// Try again after `delay`, through the broker: too long to hold the delivery.
    RetryLater {
        delay: Duration,
        attempts: u32,
        /// Why it is not finished yet (for the log).
        error: JobError,
        /// A retry, a wait for the destination's circuit or for the profile's turn (no attempt made).
        reason: DeferReason,
        /// A rate-limit turn reserved for when it comes back.
        turn: Option<DateTime<Utc>>,
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
    /// The rate-limit turn an earlier delivery reserved for this one.
    pub turn: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct Executor {
    clients: HttpClients,
    gates: Arc<ProfileGates>,
    egress: EgressPolicy,
    tokens: Arc<TokenCache>,
    settings: Arc<WorkerConfig>,
    metrics: Metrics,
    /// This process's circuit breakers, one per failing destination origin.
    breakers: Breakers,
}

enum NextStep {
    Retry,
    Defer(Duration),
    /// The delay would cross the deadline.
    GiveUp,
}

impl Executor {
    pub fn new(
        clients: HttpClients,
        egress: EgressPolicy,
        tokens: Arc<TokenCache>,
        gates: Arc<ProfileGates>,
        settings: Arc<WorkerConfig>,
        metrics: Metrics,
    ) -> Self {
        let breakers = Breakers::new(settings.circuit.clone(), metrics.clone());
        Self { clients, gates, egress, tokens, settings, metrics, breakers }
    }

    /// Every profile's limits and pauses in this process.
    pub fn gates(&self) -> &Arc<ProfileGates> {
        &self.gates
    }

    pub fn tokens(&self) -> &Arc<TokenCache> {
        &self.tokens
    }

    pub fn clients(&self) -> &HttpClients {
        &self.clients
    }

    pub async fn run(&self, run: Run<'_>) -> Execution {
        let max_attempts = run.job.max_attempts.unwrap_or(self.settings.phase(run.job.phase).max_attempts);
        JobRun {
            executor: self,
            max_attempts,
            attempts: run.attempts_before,
            last: None,
            verdict: Verdict::Unknown,
            throttled: false,
            run,
        }
        .execute()
        .await
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
        self.metrics.retried(job.phase, RetryReason::Error);
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

    /// An OAuth token for the attempt, and how the cache served it. A failure
    /// comes with what it says about the credentials (the endpoint may have rejected the client).
    async fn access_token(
        &self,
        auth: Option<&ResolvedAuth>,
        budget: Duration,
    ) -> Result<Option<(Arc<AccessToken>, Lookup)>, (JobError, Option<Verdict>)> {
        let Some(source) = auth.and_then(|a| a.tokens.as_ref()) else { return Ok(None) };
        if let Err(e) = self.egress.check_url(source.grant().token_endpoint()) {
            self.metrics.destinations_blocked.inc();
            return Err((JobError::new(ErrorKind::DestinationBlocked, format!("token endpoint: {e}"), false), None));
        }
        let timeout = budget.min(self.settings.request_timeout);
        match self.tokens.get(source, timeout).await {
            Ok((token, lookup)) => {
                self.metrics.token_lookup(match lookup {
                    Lookup::Hit => TokenLookup::Hit,
                    Lookup::Miss => TokenLookup::Miss,
                    Lookup::Shared => TokenLookup::Shared,
                    Lookup::Joined => TokenLookup::Joined,
                });
                Ok(Some((token, lookup)))
            }
            Err(e) => {
                self.metrics.token_lookup(TokenLookup::Error);
                let error = JobError::new(ErrorKind::TokenRequestFailed, e.to_string(), e.is_retryable());
                Err((error, Verdict::of_token_error(&e)))
            }
        }
    }

    async fn reject_token(&self, auth: &ResolvedAuth, token: &Arc<AccessToken>) {
        if let Some(source) = &auth.tokens {
            self.tokens.reject(source, token).await;
        }
    }
}

/// One job's run: its attempts so far, and the last failure, which is what
/// the result reports when no later attempt can start.
struct JobRun<'a> {
    executor: &'a Executor,
    run: Run<'a>,
    max_attempts: u32,
    attempts: u32,
    last: Option<(JobError, Option<ResponseSummary>)>,
    verdict: Verdict,
    /// Counted in `authrelay_jobs_throttled_total` already.
    throttled: bool,
}

impl JobRun<'_> {
    async fn execute(mut self) -> Execution {
        let (job, auth) = (self.run.job, self.run.auth);
        let executor = self.executor;
        let mut request = OutgoingRequest::from_job(job);
        if let Err(e) = executor.egress.check_url(&request.url) {
            executor.metrics.destinations_blocked.inc();
            let error = JobError::new(ErrorKind::DestinationBlocked, e.to_string(), false);
            return self.finish(Outcome::Rejected, None, Some(error));
        }
        // A client certificate is presented by a client of its own (and refused once expired).
        let client = match executor
            .clients
            .target(auth.and_then(|a| a.config.tls_identity()), auth.and_then(|a| a.profile).map(|(id, _)| id))
        {
            Ok(client) => client,
            Err(e) => {
                let error = JobError::new(ErrorKind::Connect, e.to_string(), false);
                return self.finish(Outcome::Failed, None, Some(error));
            }
        };
        // Static credentials are applied once; only an OAuth token changes between
        // attempts (and signatures, made in each attempt).
        let static_auth = auth.filter(|a| a.config.token_grant().is_none());
        if let Some(a) = static_auth
            && let Err(e) = request.apply(&a.config, None)
        {
            return self.finish(Outcome::Rejected, None, Some(e));
        }
        let mut redactor = auth.map(|a| Redactor::for_config(&a.config, None)).unwrap_or_default();
        let mut refetched_after_401 = false;
        let origin = Origin::of(&request.url);

        loop {
            let Some(budget) = executor.time_left(self.run.deadline) else { return self.out_of_time() };
            // An open circuit fails a live job at once, before it waits for a turn.
            if let Err(done) = self.circuit_closed(&origin) {
                return done;
            }
            // The profile's limits: held through the attempt (it is one of the requests in flight).
            let turn = match self.take_turn(budget).await {
                Ok(turn) => turn,
                Err(done) => return done,
            };
            let Some(budget) = executor.time_left(self.run.deadline) else {
                // The wait for the turn ran into the deadline.
                return if turn.is_some_and(|t| t.waited) { self.no_turn() } else { self.out_of_time() };
            };
            // Taken after the turn, so that a probe is not held while waiting for one.
            let permit = match self.admit_to(&origin) {
                Ok(permit) => permit,
                Err(done) => return done,
            };

            // OAuth 2.0: a token for this attempt (cached, fetched once for all waiters).
            let (token, lookup) = match executor.access_token(auth, budget).await {
                Ok(token) => token.unzip(),
                // Nothing was sent: not an attempt.
                Err((error, _)) if error.kind == ErrorKind::DestinationBlocked => {
                    return self.finish(Outcome::Rejected, None, Some(error));
                }
                Err((error, verdict)) => {
                    self.verdict = verdict.unwrap_or(self.verdict);
                    self.attempts = self.attempts.saturating_add(1);
                    // Nothing reached the origin: a probe goes to the next job, the slot is free
                    // while this one waits to retry.
                    drop((turn, permit));
                    match self.after_failure(error, None, None).await {
                        ControlFlow::Continue(()) => continue,
                        ControlFlow::Break(done) => return done,
                    }
                }
            };
            let with_token;
            let attempt_request = match (auth, &token) {
                (Some(a), Some(token)) => {
                    let mut request = request.clone();
                    if let Err(e) = request.apply(&a.config, Some(&token.value)) {
                        return self.finish(Outcome::Rejected, None, Some(e));
                    }
                    redactor = Redactor::for_config(&a.config, Some(&token.value));
                    with_token = request;
                    &with_token
                }
                _ => &request,
            };

            self.attempts = self.attempts.saturating_add(1);
            let by_request = job.request.timeout.unwrap_or(executor.settings.request_timeout);
            let cut_by_deadline = budget < by_request;
            let attempt = Attempt {
                client: &client,
                request: attempt_request,
                credential: auth.map(|a| &a.config.credential),
                job_id: &job.job_id,
                timeout: budget.min(by_request),
                cut_by_deadline,
                redactor: &redactor,
            };
            let started = tokio::time::Instant::now();
            let end = executor.attempt(attempt).await;
            // The request is over: its concurrency slot is free while the job decides or waits to retry.
            drop(turn);
            executor.metrics.lane(job.phase).attempt_duration.observe(started.elapsed().as_secs_f64());
            permit.record(circuit::report(&end, budget.min(by_request)));
            let presented = match (lookup, static_auth) {
                (Some(lookup), _) => Presented::token(lookup, refetched_after_401),
                (None, Some(_)) => Presented::Static,
                (None, None) => Presented::Nothing,
            };
            self.verdict = Verdict::of_attempt(&end, presented).unwrap_or(self.verdict);

            match end {
                AttemptEnd::Response(response) => return self.finish(Outcome::Succeeded, Some(response), None),
                AttemptEnd::Unauthorized { response } => match (auth, &token) {
                    // The token may have been revoked early: drop it (only if it is still the
                    // cached one) and try once more with a fresh token, whatever max_attempts says.
                    (Some(a), Some(token)) if !refetched_after_401 => {
                        refetched_after_401 = true;
                        executor.reject_token(a, token).await;
                        executor.metrics.retried(job.phase, RetryReason::Unauthorized);
                        self.last = Some((JobError::new(ErrorKind::HttpStatus, "HTTP 401", false), Some(response)));
                    }
                    _ => {
                        let error = JobError::new(ErrorKind::HttpStatus, "HTTP 401 Unauthorized", false);
                        return self.finish(Outcome::Failed, Some(response), Some(error));
                    }
                },
                AttemptEnd::Failed { error, response, .. } if error.kind == ErrorKind::DestinationBlocked => {
                    executor.metrics.destinations_blocked.inc();
                    return self.finish(Outcome::Rejected, response, Some(error));
                }
                AttemptEnd::Failed { error, response, retry_after } => {
                    self.pause_on_429(response.as_ref(), retry_after);
                    let error = retry::under_idempotency(error, job.request.idempotent);
                    if let ControlFlow::Break(done) = self.after_failure(error, response, retry_after).await {
                        return done;
                    }
                }
            }
        }
    }

    /// After a failed attempt: a retryable failure is tried again, in process
    /// or through a delay queue, while attempts and time allow; anything else
    /// ends the run with this failure.
    async fn after_failure(
        &mut self,
        error: JobError,
        response: Option<ResponseSummary>,
        retry_after: Option<Duration>,
    ) -> ControlFlow<Execution> {
        if !error.retryable || self.attempts >= self.max_attempts {
            return ControlFlow::Break(self.finish(error.kind.outcome(), response, Some(error)));
        }
        let next = self.executor.next_step(self.run.job, self.attempts, retry_after, self.run.deadline).await;
        match next {
            NextStep::Retry => {
                self.last = Some((error, response));
                ControlFlow::Continue(())
            }
            NextStep::Defer(delay) => ControlFlow::Break(Execution::RetryLater {
                delay,
                attempts: self.attempts,
                error,
                reason: DeferReason::Retry,
                turn: None,
            }),
            NextStep::GiveUp => {
                let mut error = error;
                error.message =
                    format!("{}; no time left before the deadline for attempt {}", error.message, self.attempts + 1);
                ControlFlow::Break(self.finish(Outcome::Failed, response, Some(error)))
            }
        }
    }

    /// A `429` with `Retry-After` pauses every job of the profile until then, not only this one.
    fn pause_on_429(&self, response: Option<&ResponseSummary>, retry_after: Option<Duration>) {
        let profile = self.run.auth.and_then(|a| a.profile).map(|(id, _)| id);
        if let (Some(profile), Some(429), Some(after)) = (profile, response.map(|r| r.status), retry_after)
            && !after.is_zero()
        {
            tracing::debug!(%profile, pause_ms = after.as_millis() as u64, "429 with Retry-After: the profile's jobs pause");
            self.executor.gates.pause(profile, after);
        }
    }

    /// No time is left for another attempt.
    fn out_of_time(&mut self) -> Execution {
        match self.last.take() {
            None if self.attempts == 0 => self.finish(Outcome::Expired, None, None),
            None => {
                let error =
                    JobError::new(ErrorKind::DeadlineExceeded, "the deadline passed before the next attempt", false);
                self.finish(Outcome::Failed, None, Some(error))
            }
            Some((error, response)) => self.finish(Outcome::Failed, response, Some(error)),
        }
    }

    fn finish(&self, outcome: Outcome, response: Option<ResponseSummary>, error: Option<JobError>) -> Execution {
        let mut result = JobResult::unattempted(&self.run.job.identity(), outcome, error, self.run.started_at);
        result.attempts = self.attempts;
        result.response = response;
        if let Some((id, version)) = self.run.auth.and_then(|a| a.profile) {
            result.auth_profile_id = Some(id);
            result.auth_profile_version = Some(version);
        }
        Execution::Finished(Box::new(result), self.verdict)
    }
}
