//! Prometheus metrics on a registry of our own (no global state, so tests can
//! build many apps in one process). Labels only ever come from small, fixed sets.

use std::sync::Arc;

use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::job::{Outcome, Phase};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub profile_changes: IntCounterVec,
    /// Jobs settled, by phase and outcome.
    pub jobs: IntCounterVec,
    /// Wall time from receipt to settlement, by phase and outcome.
    pub job_duration: HistogramVec,
    pub attempt_duration: HistogramVec,
    /// Attempts beyond the first, by phase and reason.
    pub retries: IntCounterVec,
    /// Jobs sent to a delay queue, by phase.
    pub deferred: IntCounterVec,
    /// Jobs parked on the failed queue, by phase and error kind.
    pub parked: IntCounterVec,
    pub in_flight: IntGaugeVec,
    /// OAuth 2.0 token lookups: hit, miss (fetched), joined (waited on another fetch), error.
    pub token_lookups: IntCounterVec,
    pub destinations_blocked: IntCounter,
    pub bodies_truncated: IntCounter,
    /// Results the broker could not route (no queue bound for that routing key).
    pub results_unroutable: IntCounter,
    /// Profile lookups by the worker: hit (cache), miss (database), error.
    pub profile_lookups: IntCounterVec,
    /// Jobs delayed because the database was unreachable.
    pub database_unavailable: IntCounter,
    /// Consumers (re)started, by lane.
    pub consumer_starts: IntCounterVec,
    /// Lanes found idle while their queue had ready messages (then resubscribed).
    pub consumer_stalls: IntCounterVec,
    pub broker_connects: IntCounter,
    /// Profile events: received, applied, ignored, malformed.
    pub events: IntCounterVec,
    pub outbox_published: IntCounter,
    /// Events committed but not yet published.
    pub outbox_backlog: IntGauge,
    /// From commit to confirmed publish.
    pub outbox_publish_latency: Histogram,
    /// Parked jobs moved back to their queue by replay, by phase.
    pub replayed: IntCounterVec,
    /// The per-job series of each lane, resolved once (a label lookup per job
    /// would hash and lock on the hot path).
    lanes: Arc<[LaneMetrics; 3]>,
    /// `profile_lookups{result="hit"}`, the common case.
    pub profile_hits: IntCounter,
}

/// One lane's per-job series.
pub struct LaneMetrics {
    pub in_flight: IntGauge,
    pub attempt_duration: Histogram,
    jobs: [IntCounter; 4],
    job_duration: [Histogram; 4],
}

impl LaneMetrics {
    fn new(
        phase: Phase,
        in_flight: &IntGaugeVec,
        attempt_duration: &HistogramVec,
        jobs: &IntCounterVec,
        job_duration: &HistogramVec,
    ) -> Self {
        let p = phase.as_str();
        Self {
            in_flight: in_flight.with_label_values(&[p]),
            attempt_duration: attempt_duration.with_label_values(&[p]),
            jobs: Outcome::ALL.map(|o| jobs.with_label_values(&[p, o.as_str()])),
            job_duration: Outcome::ALL.map(|o| job_duration.with_label_values(&[p, o.as_str()])),
        }
    }

    /// Counts a settled job and its time from receipt.
    pub fn settled(&self, outcome: Outcome, seconds: f64) {
        self.count(outcome);
        self.job_duration[Self::index(outcome)].observe(seconds);
    }

    /// Counts a job without a duration (a message parked unread).
    pub fn count(&self, outcome: Outcome) {
        self.jobs[Self::index(outcome)].inc();
    }

    fn index(outcome: Outcome) -> usize {
        Outcome::ALL.iter().position(|o| *o == outcome).expect("every outcome is listed")
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let http_requests = IntCounterVec::new(
            Opts::new("authrelay_http_requests_total", "Admin API requests by route template, method and status class"),
            &["route", "method", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new("authrelay_http_request_duration_seconds", "Admin API request latency")
                .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["route"],
        )
        .expect("valid metric");
        let profile_changes = IntCounterVec::new(
            Opts::new("authrelay_profile_changes_total", "Profile creates, updates and deletes committed"),
            &["change"],
        )
        .expect("valid metric");
        let job_buckets = vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            HistogramVec::new(HistogramOpts::new(name, help).buckets(job_buckets.clone()), labels)
                .expect("valid metric")
        };
        let jobs = counter("authrelay_jobs_total", "Jobs settled, by phase and outcome", &["phase", "outcome"]);
        let job_duration = histogram(
            "authrelay_job_duration_seconds",
            "Time from receipt to settlement of a job",
            &["phase", "outcome"],
        );
        let attempt_duration =
            histogram("authrelay_attempt_duration_seconds", "Duration of one HTTP attempt, body included", &["phase"]);
        let in_flight = IntGaugeVec::new(Opts::new("authrelay_jobs_in_flight", "Jobs being worked on"), &["phase"])
            .expect("valid metric");
        let profile_lookups = counter("authrelay_profile_lookups_total", "Profile lookups by workers", &["result"]);
        let lanes = Arc::new(
            Phase::ALL.map(|phase| LaneMetrics::new(phase, &in_flight, &attempt_duration, &jobs, &job_duration)),
        );
        let metrics = Self {
            lanes,
            profile_hits: profile_lookups.with_label_values(&["hit"]),
            jobs,
            job_duration,
            attempt_duration,
            in_flight,
            profile_lookups,
            retries: counter("authrelay_retries_total", "Attempts beyond the first", &["phase", "reason"]),
            deferred: counter("authrelay_jobs_deferred_total", "Jobs sent to a delay queue", &["phase", "reason"]),
            parked: counter("authrelay_jobs_parked_total", "Jobs parked on the failed queue", &["phase", "error_kind"]),
            token_lookups: counter("authrelay_token_lookups_total", "OAuth 2.0 token lookups", &["result"]),
            destinations_blocked: IntCounter::new(
                "authrelay_destinations_blocked_total",
                "Requests refused by the egress guard",
            )
            .expect("valid metric"),
            bodies_truncated: IntCounter::new(
                "authrelay_response_bodies_truncated_total",
                "Response bodies cut at the size cap",
            )
            .expect("valid metric"),
            results_unroutable: IntCounter::new(
                "authrelay_results_unroutable_total",
                "Results no queue was bound to receive",
            )
            .expect("valid metric"),
            database_unavailable: IntCounter::new(
                "authrelay_jobs_delayed_database_unavailable_total",
                "Jobs delayed because the database was unreachable",
            )
            .expect("valid metric"),
            consumer_starts: counter("authrelay_consumer_starts_total", "Consumers started or restarted", &["lane"]),
            consumer_stalls: counter(
                "authrelay_consumer_stalls_total",
                "Lanes idle while their queue had ready messages",
                &["lane"],
            ),
            broker_connects: IntCounter::new("authrelay_broker_connects_total", "Connections made to the broker")
                .expect("valid metric"),
            outbox_published: IntCounter::new("authrelay_outbox_published_total", "Profile events published")
                .expect("valid metric"),
            outbox_backlog: IntGauge::new("authrelay_outbox_backlog", "Profile events waiting to be published")
                .expect("valid metric"),
            outbox_publish_latency: Histogram::with_opts(
                HistogramOpts::new("authrelay_outbox_publish_latency_seconds", "Time from commit to confirmed publish")
                    .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0]),
            )
            .expect("valid metric"),
            replayed: counter("authrelay_jobs_replayed_total", "Parked jobs moved back to their queue", &["phase"]),
            events: counter("authrelay_profile_events_total", "Profile events consumed", &["result"]),
            registry,
            http_requests,
            http_duration,
            profile_changes,
        };
        metrics.register_all();
        metrics
    }

    /// The per-job series of `phase`'s lane.
    pub fn lane(&self, phase: Phase) -> &LaneMetrics {
        &self.lanes[phase.index()]
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.http_requests.clone()),
            Box::new(self.http_duration.clone()),
            Box::new(self.profile_changes.clone()),
            Box::new(self.jobs.clone()),
            Box::new(self.job_duration.clone()),
            Box::new(self.attempt_duration.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.deferred.clone()),
            Box::new(self.parked.clone()),
            Box::new(self.in_flight.clone()),
            Box::new(self.token_lookups.clone()),
            Box::new(self.destinations_blocked.clone()),
            Box::new(self.bodies_truncated.clone()),
            Box::new(self.results_unroutable.clone()),
            Box::new(self.profile_lookups.clone()),
            Box::new(self.database_unavailable.clone()),
            Box::new(self.consumer_starts.clone()),
            Box::new(self.consumer_stalls.clone()),
            Box::new(self.broker_connects.clone()),
            Box::new(self.events.clone()),
            Box::new(self.outbox_published.clone()),
            Box::new(self.outbox_backlog.clone()),
            Box::new(self.outbox_publish_latency.clone()),
            Box::new(self.replayed.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding cannot fail");
        String::from_utf8(buf).expect("prometheus text is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lane_handles_count_into_their_own_labelled_series() {
        let m = Metrics::new();
        m.lane(Phase::DuringCall).settled(Outcome::Expired, 0.2);
        m.lane(Phase::PostCall).in_flight.inc();
        assert_eq!(m.jobs.with_label_values(&["during_call", "expired"]).get(), 1);
        assert_eq!(m.jobs.with_label_values(&["post_call", "expired"]).get(), 0);
        assert_eq!(m.jobs.with_label_values(&["during_call", "succeeded"]).get(), 0);
        assert_eq!(m.job_duration.with_label_values(&["during_call", "expired"]).get_sample_count(), 1);
        assert_eq!(m.in_flight.with_label_values(&["post_call"]).get(), 1);
        assert_eq!(m.in_flight.with_label_values(&["pre_call"]).get(), 0);
    }
}
