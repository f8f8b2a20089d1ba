//! The single-job step: a delivery in, a [`Disposition`] out (with what the
//! job says about its profile's health). Parsing, resolving credentials
//! (cache, then store) and running the executor happen here; what the broker
//! must do about the result is `queue::settle`'s job.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use lapin::types::FieldTable;
use tracing::Instrument as _;

use super::WorkerContext;
use super::health;
use crate::db;
use crate::error_text::{Chain, chain};
use crate::executor::{Execution, ResolvedAuth, Run};
use crate::job::{ErrorKind, Job, JobError, JobIdentity, JobParseError, JobResult, Outcome, Phase, parse_job};
use crate::metrics::{DeferReason, ProfileLookup};
use crate::profile::StoreError;
use crate::profile::cache::CachedProfile;
use crate::profile::health::JobUse;
use crate::queue::settle::{Disposition, ParkReason};
use crate::queue::{headers, topology};

/// One processed delivery.
#[derive(Debug)]
pub struct Processed {
    /// What the broker must do with it.
    pub disposition: Disposition,
    /// The profile the job used and what the job says of its health; recorded once the job is settled.
    pub used: Option<(uuid::Uuid, JobUse)>,
}

impl From<Disposition> for Processed {
    fn from(disposition: Disposition) -> Self {
        Self { disposition, used: None }
    }
}

impl WorkerContext {
    /// Runs one message of the `lane` queue to its disposition.
    pub async fn process(&self, lane: Phase, body: &[u8], amqp_headers: Option<&FieldTable>) -> Processed {
        let received_at = Utc::now();
        // A count no job could reach is somebody's nonsense: start from zero.
        let attempts_before = headers::read_u32(amqp_headers, headers::ATTEMPTS).filter(|n| *n <= 1000).unwrap_or(0);
        let job = match parse_job(body, lane, &self.limits) {
            Ok(job) => job,
            Err(JobParseError::Unidentifiable(message)) => {
                tracing::warn!(phase = %lane, error = %message, "unidentifiable message parked");
                return Disposition::ParkOnly(ParkReason {
                    kind: ErrorKind::InvalidJob,
                    message,
                    attempts: attempts_before,
                    phase: lane,
                })
                .into();
            }
            Err(JobParseError::Invalid { identity, message }) => {
                return rejected(&identity, JobError::invalid(message), attempts_before, received_at).into();
            }
        };
        let span =
            tracing::info_span!("job", job_id = %job.job_id, workspace_id = %job.workspace_id, phase = %job.phase);
        self.run_job(job, amqp_headers, attempts_before, received_at).instrument(span).await
    }

    async fn run_job(
        &self,
        job: Job,
        amqp_headers: Option<&FieldTable>,
        attempts_before: u32,
        received_at: DateTime<Utc>,
    ) -> Processed {
        let policy = self.settings.phase(job.phase);
        // A replay that included expired jobs asked for a fresh deadline instead of the job's own.
        let own_deadline =
            if headers::read_flag(amqp_headers, headers::DEADLINE_OVERRIDE) { None } else { job.deadline };
        let deadline =
            own_deadline.or_else(|| headers::read_time(amqp_headers, headers::DEADLINE)).unwrap_or_else(|| {
                received_at + chrono::Duration::from_std(policy.deadline).unwrap_or(chrono::Duration::MAX)
            });
        if deadline <= Utc::now() && attempts_before == 0 {
            let result = JobResult::unattempted(&job.identity(), Outcome::Expired, None, received_at);
            return Disposition::Done { result: Box::new(result), park: None }.into();
        }

        let auth = match self.resolve_auth(&job).await {
            Ok(auth) => auth,
            Err(AuthFailure::Rejected(error)) => {
                let used = health::unusable(&job, &error);
                return Processed { disposition: rejected(&job.identity(), error, attempts_before, received_at), used };
            }
            Err(AuthFailure::DatabaseUnavailable(reason)) => {
                self.metrics.database_unavailable.inc();
                tracing::warn!(error = %reason, "database unavailable; job delayed");
                return Disposition::Delay {
                    phase: job.phase,
                    delay: self.settings.database_retry_delay,
                    attempts: attempts_before,
                    deadline,
                    reason: DeferReason::DatabaseUnavailable,
                    turn: None,
                }
                .into();
            }
        };

        let turn = reserved_turn(amqp_headers);
        let run = Run { job: &job, auth: auth.as_ref(), deadline, attempts_before, started_at: received_at, turn };
        match self.executor.run(run).await {
            Execution::Finished(result, verdict) => {
                let park = result.outcome.is_parked().then(|| ParkReason {
                    kind: result.error.as_ref().map_or(ErrorKind::HttpStatus, |e| e.kind),
                    message: result.error.as_ref().map_or_else(String::new, |e| e.message.clone()),
                    attempts: result.attempts,
                    phase: job.phase,
                });
                let used = health::job_use(&job, &result, verdict);
                Processed { disposition: Disposition::Done { result, park }, used }
            }
            Execution::RetryLater { delay, attempts, error, reason, turn } => {
                tracing::info!(attempts, delay_ms = delay.as_millis() as u64, error = %error.message, reason = reason.as_str(), "job delayed through a delay queue");
                Disposition::Delay { phase: job.phase, delay, attempts, deadline, reason, turn }.into()
            }
        }
    }

    async fn resolve_auth(&self, job: &Job) -> Result<Option<ResolvedAuth>, AuthFailure> {
        let Some(id) = job.auth_profile_id else {
            return Ok(job.inline_auth.clone().map(|config| ResolvedAuth::inline(config, &job.workspace_id)));
        };
        let resolved = |cached: &CachedProfile| {
            ResolvedAuth::profile(cached.config.clone(), id, cached.version, &job.workspace_id, cached.token_digest)
                .with_limits(cached.limits)
        };
        if let Some(cached) = self.profiles.get(&job.workspace_id, id) {
            self.metrics.profile_lookup(ProfileLookup::Hit);
            return Ok(Some(resolved(&cached)));
        }
        let load = self.profiles.join_load(&job.workspace_id, id, || {
            let (store, workspace_id) = (self.store.clone(), job.workspace_id.clone());
            Box::pin(async move { store.get(&workspace_id, id).await.map(Arc::new).map_err(Arc::new) })
        });
        let loaded = load.clone().await;
        if loaded.is_err() {
            self.profiles.abandon_load(&job.workspace_id, id, &load);
        }
        match loaded.as_ref().map_err(|e| e.as_ref()) {
            Ok(profile) => {
                self.metrics.profile_lookup(ProfileLookup::Miss);
                Ok(Some(resolved(&self.profiles.finish_load(&job.workspace_id, id, &load, profile))))
            }
            Err(StoreError::NotFound) => Err(AuthFailure::Rejected(JobError::new(
                ErrorKind::ProfileNotFound,
                format!("auth profile {id} does not exist in workspace {}", job.workspace_id),
                false,
            ))),
            Err(e @ StoreError::Unusable { .. }) => {
                tracing::error!(profile_id = %id, error = %Chain(e), "stored profile cannot be used");
                Err(AuthFailure::Rejected(JobError::new(ErrorKind::ProfileUnusable, chain(e), false)))
            }
            Err(StoreError::Db(e)) => {
                self.metrics.profile_lookup(ProfileLookup::Error);
                if !db::is_unavailable(e) {
                    tracing::error!(error = %Chain(e), "database error while loading a profile");
                }
                Err(AuthFailure::DatabaseUnavailable(chain(e)))
            }
            Err(e) => Err(AuthFailure::Rejected(JobError::new(ErrorKind::ProfileUnusable, chain(e), false))),
        }
    }
}

enum AuthFailure {
    Rejected(JobError),
    DatabaseUnavailable(String),
}

fn rejected(identity: &JobIdentity, error: JobError, attempts: u32, received_at: DateTime<Utc>) -> Disposition {
    let park = ParkReason { kind: error.kind, message: error.message.clone(), attempts, phase: identity.phase };
    let mut result = JobResult::unattempted(identity, Outcome::Rejected, Some(error), received_at);
    result.attempts = attempts;
    Disposition::Done { result: Box::new(result), park: Some(park) }
}

/// The rate-limit turn a delayed job reserved, when it comes back through a
/// delay queue (RabbitMQ adds `x-death` on the way) and is no further off than
/// the longest delay: a turn on a message a producer published itself is ignored.
fn reserved_turn(amqp_headers: Option<&FieldTable>) -> Option<DateTime<Utc>> {
    let dead_lettered = amqp_headers.is_some_and(|h| h.inner().contains_key("x-death"));
    let turn = headers::read_time(amqp_headers, headers::TURN).filter(|_| dead_lettered)?;
    // The longest delay tier, and an hour for clocks that disagree.
    let longest = topology::DELAY_TIERS.last().map_or(86_400, |(_, secs)| *secs);
    let furthest = chrono::Duration::seconds(i64::try_from(longest).unwrap_or(i64::MAX) + 3600);
    (turn < Utc::now() + furthest).then_some(turn)
}
