//! Credential health, the worker's part. Every settled job that used a stored
//! profile is added to an in-memory tally ([`HealthRecorder::record`]: one
//! short lock and a few counter bumps, no I/O); a task ([`HealthTask`])
//! writes the tallies every `AUTHRELAY_HEALTH_FLUSH_INTERVAL`, one
//! transaction per flush with one update per profile touched, and once more
//! on shutdown. When the database cannot be reached the tallies are kept and
//! merged with the newer ones until a flush succeeds, within a bound on the
//! number of profiles; jobs never wait for any of it.
//!
//! The same task refreshes `authrelay_profiles_deauthorized` and
//! `authrelay_certificates_expiring` from the database after each flush, in
//! every process (the API role too).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::error_text::Chain;
use crate::executor::{Refusal, Verdict};
use crate::job::{ErrorKind, Job, JobError, JobResult, Outcome};
use crate::lock::lock;
use crate::metrics::Metrics;
use crate::profile::ProfileStore;
use crate::profile::health::{Evidence, Failure, HealthDelta, JobUse, Transition};

/// A certificate expiring sooner than this is counted as expiring.
pub const CERTIFICATE_WARNING: chrono::TimeDelta = chrono::TimeDelta::days(14);

/// Profiles tallied at most while flushes fail; facts about more are dropped (and counted).
const MAX_PROFILES: usize = 10_000;

/// The flush on shutdown gives up after this (the database may be what is down).
const FINAL_FLUSH_LIMIT: Duration = Duration::from_secs(10);

/// Old hourly counts are deleted this often (by every process; the work is tiny).
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// What workers saw of each profile since the last successful flush.
pub struct HealthRecorder {
    pending: Mutex<HashMap<Uuid, HealthDelta>>,
    max_profiles: usize,
    dropped: prometheus::IntCounter,
}

impl HealthRecorder {
    pub fn new(metrics: &Metrics) -> Self {
        Self::with_limit(metrics, MAX_PROFILES)
    }

    fn with_limit(metrics: &Metrics, max_profiles: usize) -> Self {
        Self { pending: Mutex::default(), max_profiles, dropped: metrics.health_facts_dropped.clone() }
    }

    /// Adds one settled job: the hot path, so a map lookup and counter bumps only.
    pub fn record(&self, profile_id: Uuid, job: JobUse) {
        let mut pending = lock(&self.pending);
        if let Some(delta) = pending.get_mut(&profile_id) {
            delta.add(job);
        } else if pending.len() < self.max_profiles {
            pending.insert(profile_id, HealthDelta::new(job));
        } else {
            self.dropped.inc();
        }
    }

    /// Profiles with facts not yet written.
    pub fn pending(&self) -> usize {
        lock(&self.pending).len()
    }

    fn take(&self) -> HashMap<Uuid, HealthDelta> {
        std::mem::take(&mut *lock(&self.pending))
    }

    /// Puts back a batch that could not be written, before what came since.
    fn give_back(&self, batch: Vec<(Uuid, HealthDelta)>) {
        let mut pending = lock(&self.pending);
        for (id, older) in batch {
            match pending.remove(&id) {
                Some(newer) => {
                    pending.insert(id, older.merge(newer));
                }
                None if pending.len() < self.max_profiles => {
                    pending.insert(id, older);
                }
                None => self.dropped.inc(),
            }
        }
    }
}

/// What a settled job says about the health of the profile it used; `None`
/// for jobs that used no stored profile or never reached the credentials
/// (expired before the first attempt).
pub fn job_use(job: &Job, result: &JobResult, verdict: Verdict) -> Option<(Uuid, JobUse)> {
    let profile_id = result.auth_profile_id?;
    let version = result.auth_profile_version?;
    let failure = match result.outcome {
        Outcome::Succeeded => None,
        Outcome::Expired => return None,
        Outcome::Failed | Outcome::Rejected => {
            let kind = result.error.as_ref().map_or(ErrorKind::HttpStatus, |e| e.kind);
            let status = result.response.as_ref().map(|r| r.status);
            Some(failure(kind, status, job.request.url.host_str(), verdict))
        }
    };
    let evidence = match verdict {
        Verdict::Unknown => None,
        Verdict::Accepted => Some(Evidence::Accepted),
        Verdict::Refused(Refusal::StaticCredentials) => Some(Evidence::StaticRefused),
        Verdict::Refused(_) => Some(Evidence::Refused),
    };
    Some((profile_id, JobUse { version, at: result.finished_at, failure, evidence }))
}

/// A job rejected because its stored profile cannot be opened: a failure of the profile.
pub fn unusable(job: &Job, error: &JobError) -> Option<(Uuid, JobUse)> {
    let profile_id = job.auth_profile_id.filter(|_| error.kind == ErrorKind::ProfileUnusable)?;
    let failure = failure(error.kind, None, None, Verdict::Unknown);
    // The version could not be read; 0 makes it evidence about no version at all.
    Some((profile_id, JobUse { version: 0, at: chrono::Utc::now(), failure: Some(failure), evidence: None }))
}

/// A failure in words built only from the error kind, the status and the
/// target's host — never from a response body or an error text that a
/// server wrote, so no secret can reach it.
fn failure(kind: ErrorKind, status: Option<u16>, host: Option<&str>, verdict: Verdict) -> Failure {
    let host = host.unwrap_or("the target");
    let message = match (kind, status, verdict) {
        (_, _, Verdict::Refused(Refusal::TokenEndpoint(rejection))) => {
            format!("the token endpoint refused the client ({})", rejection.as_str())
        }
        (ErrorKind::HttpStatus, Some(status), Verdict::Refused(Refusal::FreshToken)) => {
            format!("{status} from {host} to a freshly fetched token")
        }
        (ErrorKind::HttpStatus, Some(status), _) => format!("{status} from {host}"),
        (ErrorKind::HttpStatus, None, _) => format!("an HTTP error from {host}"),
        (ErrorKind::TokenRequestFailed, _, _) => "no access token: the token request failed".to_owned(),
        (ErrorKind::Timeout, _, _) => format!("no answer from {host} in time"),
        (ErrorKind::Connect, _, _) => format!("could not connect to {host}"),
        (ErrorKind::DeadlineExceeded, _, _) => format!("the deadline passed before {host} answered"),
        (ErrorKind::DestinationBlocked, _, _) => "a destination is not allowed by the egress policy".to_owned(),
        (ErrorKind::ResponseTooLarge, _, _) => format!("the response from {host} was too large"),
        (ErrorKind::ProfileUnusable, _, _) => {
            "the stored profile cannot be used (it cannot be decrypted or is incomplete)".to_owned()
        }
        (ErrorKind::Internal, _, _) => "an internal error (see the worker's log)".to_owned(),
        (ErrorKind::RateLimited, _, _) => "the profile's limits left no turn before the deadline".to_owned(),
        (ErrorKind::CircuitOpen, _, _) => format!("{host} failed repeatedly; its circuit is open"),
        (other, _, _) => other.as_str().replace('_', " "),
    };
    Failure { kind: kind.as_str(), status, message }
}

/// The task that writes health and refreshes the deauthorized gauge.
pub struct HealthTask {
    /// None in a process without the worker role: it only refreshes the gauge.
    pub recorder: Option<Arc<HealthRecorder>>,
    pub store: ProfileStore,
    pub metrics: Metrics,
    pub interval: Duration,
}

impl HealthTask {
    /// Flushes every `interval` until `stop`, then once more (bounded). Cancel
    /// `stop` only after the lanes have settled their last jobs.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        // A restarted process reports the fleet's number at once, not 0 for an interval.
        self.refresh_gauge().await;
        let mut failing = false;
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            let stopping = tokio::select! {
                _ = stop.cancelled() => true,
                _ = ticks.tick() => false,
            };
            if stopping {
                if tokio::time::timeout(FINAL_FLUSH_LIMIT, self.flush(&mut failing)).await.is_err() {
                    tracing::warn!("the last health flush did not finish in time; what it held is lost");
                }
                return;
            }
            self.flush(&mut failing).await;
            self.refresh_gauge().await;
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(e) = self.store.prune_health_hours().await {
                    tracing::debug!(error = %Chain(&e), "could not prune old health counts");
                }
            }
        }
    }

    /// Writes what was recorded; keeps it for the next time when that fails.
    async fn flush(&self, failing: &mut bool) {
        let Some(recorder) = &self.recorder else { return };
        let batch: Vec<(Uuid, HealthDelta)> = recorder.take().into_iter().collect();
        if batch.is_empty() {
            return;
        }
        match self.store.flush_health(&batch).await {
            Ok(report) => {
                if std::mem::take(failing) {
                    tracing::info!(profiles = report.written, "profile health written again");
                }
                for (profile_id, transition) in report.transitions {
                    match transition {
                        Transition::Deauthorized => {
                            tracing::warn!(%profile_id, "profile deauthorized: its credentials are refused")
                        }
                        Transition::Authorized => tracing::info!(%profile_id, "profile authorized again"),
                    }
                }
            }
            Err(e) => {
                let profiles = batch.len();
                recorder.give_back(batch);
                if !std::mem::replace(failing, true) {
                    tracing::warn!(error = %Chain(&e), profiles, "cannot write profile health; keeping it to try again");
                }
            }
        }
    }

    async fn refresh_gauge(&self) {
        if let Ok(count) = self.store.count_deauthorized().await {
            self.metrics.profiles_deauthorized.set(count);
        }
        self.refresh_certificates().await;
    }

    async fn refresh_certificates(&self) {
        let horizon = chrono::Utc::now() + CERTIFICATE_WARNING;
        match self.store.count_certificates_expiring(horizon).await {
            Ok(count) => self.metrics.certificates_expiring.set(count),
            Err(e) => tracing::debug!(error = %Chain(&e), "could not count expiring certificates"),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::credentials::oauth2::ClientRejection;

    fn ok() -> JobUse {
        JobUse { version: 1, at: Utc::now(), failure: None, evidence: Some(Evidence::Accepted) }
    }

    #[test]
    fn messages_are_built_from_kind_status_and_host_only() {
        let message = |kind, status, verdict| failure(kind, status, Some("api.example.com"), verdict).message;
        assert_eq!(message(ErrorKind::HttpStatus, Some(401), Verdict::Unknown), "401 from api.example.com");
        assert_eq!(
            message(ErrorKind::HttpStatus, Some(403), Verdict::Refused(Refusal::FreshToken)),
            "403 from api.example.com to a freshly fetched token"
        );
        assert_eq!(
            message(
                ErrorKind::TokenRequestFailed,
                None,
                Verdict::Refused(Refusal::TokenEndpoint(ClientRejection::InvalidClient))
            ),
            "the token endpoint refused the client (invalid_client)"
        );
        assert_eq!(message(ErrorKind::Timeout, None, Verdict::Unknown), "no answer from api.example.com in time");
    }

    #[test]
    fn a_failed_flush_is_merged_back_before_newer_facts_and_memory_stays_bounded() {
        let metrics = Metrics::new();
        let recorder = HealthRecorder::with_limit(&metrics, 2);
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        recorder.record(a, ok());
        recorder.record(b, ok());
        let batch: Vec<_> = recorder.take().into_iter().collect();
        recorder.record(a, ok());
        recorder.give_back(batch);
        let pending = recorder.take();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[&a].hours.iter().map(|h| h.succeeded).sum::<u64>(), 2, "merged, not replaced");
        recorder.record(a, ok());
        recorder.record(b, ok());
        recorder.record(c, ok());
        assert_eq!(recorder.pending(), 2);
        assert_eq!(metrics.health_facts_dropped.get(), 1);
    }
}
