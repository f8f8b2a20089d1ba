//! Prometheus metrics on a registry of our own (no global state, so tests can
//! build many apps in one process).
//!
//! Labelled series are reached only through typed methods whose label values
//! come from [`labels`] (or are a phase, an outcome or an error kind), so the
//! set of series stays small and fixed. Label-free metrics are public fields.

pub mod labels;

use std::sync::Arc;

use prometheus::core::Collector;
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

use crate::job::{ErrorKind, Outcome, Phase};
pub use labels::{
    CircuitState, Consumer, DeferReason, EventOutcome, HttpMethod, ProfileChange, ProfileLookup, RetryReason,
    TokenLookup,
};

const JOB_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    profile_changes: IntCounterVec,
    retries: IntCounterVec,
    deferred: IntCounterVec,
    parked: IntCounterVec,
    token_lookups: IntCounterVec,
    profile_lookups: IntCounterVec,
    consumer_starts: IntCounterVec,
    consumer_stalls: IntCounterVec,
    events: IntCounterVec,
    replayed: IntCounterVec,
    throttled: IntCounterVec,
    circuit_transitions: IntCounterVec,
    lane_concurrency: IntGaugeVec,
    lane_prefetch: IntGaugeVec,
    /// The per-job series of each lane, resolved once (a label lookup per job
    /// would hash and lock on the hot path).
    lanes: Arc<[LaneMetrics; 3]>,
    /// `profile_lookups{result="hit"}`, the common case, resolved once.
    profile_hits: IntCounter,
    pub destinations_blocked: IntCounter,
    pub bodies_truncated: IntCounter,
    /// Results the broker could not route (no queue bound for that routing key).
    pub results_unroutable: IntCounter,
    /// Jobs delayed because the database was unreachable.
    pub database_unavailable: IntCounter,
    pub broker_connects: IntCounter,
    pub outbox_published: IntCounter,
    /// Events committed but not yet published.
    pub outbox_backlog: IntGauge,
    /// From commit to confirmed publish.
    pub outbox_publish_latency: Histogram,
    /// Profiles whose credentials are refused, over every workspace (read from the database).
    pub profiles_deauthorized: IntGauge,
    /// Client certificates of all profiles that expire within 14 days (or have expired).
    pub certificates_expiring: IntGauge,
    /// Health facts a worker could not keep while its flushes failed (memory bound reached).
    pub health_facts_dropped: IntCounter,
    /// Worker processes sharing profile limits, as this process last saw them.
    pub fleet_workers: IntGauge,
    /// Destinations whose circuit is open or half-open in this process.
    pub circuits_open: IntGauge,
}

/// One lane's per-job series.
pub struct LaneMetrics {
    pub in_flight: IntGauge,
    pub attempt_duration: Histogram,
    jobs: [IntCounter; 4],
    job_duration: [Histogram; 4],
}

impl LaneMetrics {
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
        match outcome {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Expired => 2,
            Outcome::Rejected => 3,
        }
    }
}

/// Creates metrics and registers them in one step, so none is forgotten.
struct Builder {
    registry: Registry,
}

impl Builder {
    fn register<C: Collector + Clone + 'static>(&self, collector: C) -> C {
        self.registry.register(Box::new(collector.clone())).expect("metric names are unique");
        collector
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.register(IntCounter::new(name, help).expect("valid metric"))
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.register(IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"))
    }

    fn histograms(&self, name: &str, help: &str, buckets: &[f64], labels: &[&str]) -> HistogramVec {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.register(HistogramVec::new(opts, labels).expect("valid metric"))
    }
}

impl Metrics {
    pub fn new() -> Self {
        let b = Builder { registry: Registry::new() };
        let jobs = b.counters("authrelay_jobs_total", "Jobs settled, by phase and outcome", &["phase", "outcome"]);
        let job_duration = b.histograms(
            "authrelay_job_duration_seconds",
            "Time from receipt to settlement of a job",
            JOB_BUCKETS,
            &["phase", "outcome"],
        );
        let attempt_duration = b.histograms(
            "authrelay_attempt_duration_seconds",
            "Duration of one HTTP attempt, body included",
            JOB_BUCKETS,
            &["phase"],
        );
        let in_flight = b.register(
            IntGaugeVec::new(Opts::new("authrelay_jobs_in_flight", "Jobs being worked on"), &["phase"])
                .expect("valid metric"),
        );
        let lanes = Arc::new(Phase::ALL.map(|phase| {
            let p = phase.as_str();
            LaneMetrics {
                in_flight: in_flight.with_label_values(&[p]),
                attempt_duration: attempt_duration.with_label_values(&[p]),
                jobs: Outcome::ALL.map(|o| jobs.with_label_values(&[p, o.as_str()])),
                job_duration: Outcome::ALL.map(|o| job_duration.with_label_values(&[p, o.as_str()])),
            }
        }));
        let profile_lookups = b.counters("authrelay_profile_lookups_total", "Profile lookups by workers", &["result"]);
        let metrics = Self {
            http_requests: b.counters(
                "authrelay_http_requests_total",
                "Admin API requests by route template, method and status class",
                &["route", "method", "status"],
            ),
            http_duration: b.histograms(
                "authrelay_http_request_duration_seconds",
                "Admin API request latency",
                &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
                &["route"],
            ),
            profile_changes: b.counters(
                "authrelay_profile_changes_total",
                "Profile creates, updates and deletes committed",
                &["change"],
            ),
            retries: b.counters("authrelay_retries_total", "Attempts beyond the first", &["phase", "reason"]),
            deferred: b.counters("authrelay_jobs_deferred_total", "Jobs sent to a delay queue", &["phase", "reason"]),
            parked: b.counters(
                "authrelay_jobs_parked_total",
                "Jobs parked on the failed queue",
                &["phase", "error_kind"],
            ),
            token_lookups: b.counters("authrelay_token_lookups_total", "OAuth 2.0 token lookups", &["result"]),
            profile_hits: profile_lookups.with_label_values(&[ProfileLookup::Hit.as_str()]),
            profile_lookups,
            consumer_starts: b.counters("authrelay_consumer_starts_total", "Consumers started or restarted", &["lane"]),
            consumer_stalls: b.counters(
                "authrelay_consumer_stalls_total",
                "Lanes idle while their queue had ready messages",
                &["lane"],
            ),
            events: b.counters("authrelay_profile_events_total", "Profile events consumed", &["result"]),
            replayed: b.counters("authrelay_jobs_replayed_total", "Parked jobs moved back to their queue", &["phase"]),
            throttled: b.counters(
                "authrelay_jobs_throttled_total",
                "Times a job waited for its profile's limits or pause (or was delayed, or ran out of time, for them)",
                &["phase"],
            ),
            circuit_transitions: b.counters(
                "authrelay_circuit_transitions_total",
                "Changes of a destination's circuit, by the state it moved to",
                &["to"],
            ),
            circuits_open: b.register(
                IntGauge::new(
                    "authrelay_circuits_open",
                    "Destinations whose circuit is open or half-open (this process)",
                )
                .expect("valid metric"),
            ),
            lane_concurrency: b.register(
                IntGaugeVec::new(
                    Opts::new(
                        "authrelay_lane_concurrency",
                        "Jobs a lane may run at once now (post_call shrinks while live work runs)",
                    ),
                    &["phase"],
                )
                .expect("valid metric"),
            ),
            lane_prefetch: b.register(
                IntGaugeVec::new(
                    Opts::new(
                        "authrelay_lane_prefetch",
                        "The prefetch of the consumer a lane receives new deliveries on (post_call reaches less deep while live work runs)",
                    ),
                    &["phase"],
                )
                .expect("valid metric"),
            ),
            lanes,
            destinations_blocked: b
                .counter("authrelay_destinations_blocked_total", "Requests refused by the egress guard"),
            bodies_truncated: b
                .counter("authrelay_response_bodies_truncated_total", "Response bodies cut at the size cap"),
            results_unroutable: b
                .counter("authrelay_results_unroutable_total", "Results no queue was bound to receive"),
            database_unavailable: b.counter(
                "authrelay_jobs_delayed_database_unavailable_total",
                "Jobs delayed because the database was unreachable",
            ),
            broker_connects: b.counter("authrelay_broker_connects_total", "Connections made to the broker"),
            outbox_published: b.counter("authrelay_outbox_published_total", "Profile events published"),
            outbox_backlog: b.register(
                IntGauge::new("authrelay_outbox_backlog", "Profile events waiting to be published")
                    .expect("valid metric"),
            ),
            outbox_publish_latency: b.register(
                Histogram::with_opts(
                    HistogramOpts::new(
                        "authrelay_outbox_publish_latency_seconds",
                        "Time from commit to confirmed publish",
                    )
                    .buckets(vec![0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 300.0]),
                )
                .expect("valid metric"),
            ),
            profiles_deauthorized: b.register(
                IntGauge::new("authrelay_profiles_deauthorized", "Profiles whose credentials are refused (fleet-wide)")
                    .expect("valid metric"),
            ),
            certificates_expiring: b.register(
                IntGauge::new(
                    "authrelay_certificates_expiring",
                    "Client certificates of all profiles that expire within 14 days (expired ones included)",
                )
                .expect("valid metric"),
            ),
            health_facts_dropped: b.counter(
                "authrelay_health_facts_dropped_total",
                "Job outcomes left out of profile health because unwritten ones filled the memory bound",
            ),
            fleet_workers: b.register(
                IntGauge::new("authrelay_fleet_workers", "Worker processes that share profile limits, as last seen")
                    .expect("valid metric"),
            ),
            registry: b.registry,
        };
        metrics.start_at_zero();
        metrics
    }

    /// Creates every series of the fixed label sets at zero. An alert on
    /// `increase(counter[5m]) > 0` never sees a counter's first event when its
    /// series only appears then (at 1, with no earlier sample to rise from),
    /// and a dashboard would show "no data" instead of 0. (HTTP requests are
    /// left out: their routes are only known to the API.)
    fn start_at_zero(&self) {
        for phase in Phase::ALL {
            let p = phase.as_str();
            for reason in RetryReason::ALL {
                self.retries.with_label_values(&[p, reason.as_str()]);
            }
            for reason in DeferReason::ALL {
                self.deferred.with_label_values(&[p, reason.as_str()]);
            }
            for kind in ErrorKind::ALL {
                self.parked.with_label_values(&[p, kind.as_str()]);
            }
            self.replayed.with_label_values(&[p]);
            self.throttled(phase);
            self.consumer_stalls(phase);
            self.consumer_starts(Consumer::Lane(phase));
            self.lane_concurrency(phase);
            self.lane_prefetch(phase);
        }
        self.consumer_starts(Consumer::ProfileEvents);
        for result in TokenLookup::ALL {
            self.token_lookups.with_label_values(&[result.as_str()]);
        }
        for result in ProfileLookup::ALL {
            self.profile_lookups.with_label_values(&[result.as_str()]);
        }
        for result in EventOutcome::ALL {
            self.events.with_label_values(&[result.as_str()]);
        }
        for change in ProfileChange::ALL {
            self.profile_changes.with_label_values(&[change.as_str()]);
        }
        for to in CircuitState::ALL {
            self.circuit_transitions.with_label_values(&[to.as_str()]);
        }
    }

    /// The per-job series of `phase`'s lane.
    pub fn lane(&self, phase: Phase) -> &LaneMetrics {
        &self.lanes[phase.index()]
    }

    /// An admin API request, by route template (never the concrete path: ids
    /// would make the label set unbounded), method and status class.
    pub fn http_request(&self, route: &str, method: HttpMethod, status: u16, seconds: f64) {
        self.http_requests.with_label_values(&[route, method.as_str(), labels::status_class(status)]).inc();
        self.http_duration.with_label_values(&[route]).observe(seconds);
    }

    pub fn profile_changed(&self, change: ProfileChange) {
        self.profile_changes.with_label_values(&[change.as_str()]).inc();
    }

    pub fn retried(&self, phase: Phase, reason: RetryReason) {
        self.retries.with_label_values(&[phase.as_str(), reason.as_str()]).inc();
    }

    pub fn deferred(&self, phase: Phase, reason: DeferReason) {
        self.deferred.with_label_values(&[phase.as_str(), reason.as_str()]).inc();
    }

    pub fn parked(&self, phase: Phase, kind: ErrorKind) {
        self.parked.with_label_values(&[phase.as_str(), kind.as_str()]).inc();
    }

    /// `authrelay_jobs_throttled_total{phase}`: returns the series, so that creating it at zero is one call.
    pub fn throttled(&self, phase: Phase) -> IntCounter {
        self.throttled.with_label_values(&[phase.as_str()])
    }

    /// A destination's circuit moved to `to`.
    pub fn circuit_transition(&self, to: CircuitState) {
        self.circuit_transitions.with_label_values(&[to.as_str()]).inc();
    }

    pub fn replayed(&self, phase: Phase, jobs: u64) {
        self.replayed.with_label_values(&[phase.as_str()]).inc_by(jobs);
    }

    pub fn token_lookup(&self, result: TokenLookup) {
        self.token_lookups.with_label_values(&[result.as_str()]).inc();
    }

    pub fn profile_lookup(&self, result: ProfileLookup) {
        match result {
            ProfileLookup::Hit => self.profile_hits.inc(),
            other => self.profile_lookups.with_label_values(&[other.as_str()]).inc(),
        }
    }

    pub fn profile_event(&self, result: EventOutcome) {
        self.events.with_label_values(&[result.as_str()]).inc();
    }

    /// How often `consumer` was started or restarted.
    pub fn consumer_starts(&self, consumer: Consumer) -> IntCounter {
        self.consumer_starts.with_label_values(&[consumer.as_str()])
    }

    /// How many jobs `phase`'s lane may run at once now (0: the lane does not run here).
    pub fn lane_concurrency(&self, phase: Phase) -> IntGauge {
        self.lane_concurrency.with_label_values(&[phase.as_str()])
    }

    /// The prefetch `phase`'s lane consumes at now (0 for a lane this process does not run).
    pub fn lane_prefetch(&self, phase: Phase) -> IntGauge {
        self.lane_prefetch.with_label_values(&[phase.as_str()])
    }

    /// How often `phase`'s lane was found stalled and resubscribed.
    pub fn consumer_stalls(&self, phase: Phase) -> IntCounter {
        self.consumer_stalls.with_label_values(&[phase.as_str()])
    }

    /// How many profile events ended with `result`.
    pub fn profile_events(&self, result: EventOutcome) -> IntCounter {
        self.events.with_label_values(&[result.as_str()])
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

    fn value(m: &Metrics, series: &str) -> f64 {
        m.render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no series {series}"))
    }

    #[test]
    fn lane_handles_count_into_their_own_labelled_series() {
        let m = Metrics::new();
        m.lane(Phase::DuringCall).settled(Outcome::Expired, 0.2);
        m.lane(Phase::PostCall).in_flight.inc();
        assert_eq!(value(&m, r#"authrelay_jobs_total{outcome="expired",phase="during_call"}"#), 1.0);
        assert_eq!(value(&m, r#"authrelay_jobs_total{outcome="expired",phase="post_call"}"#), 0.0);
        assert_eq!(value(&m, r#"authrelay_jobs_total{outcome="succeeded",phase="during_call"}"#), 0.0);
        assert_eq!(value(&m, r#"authrelay_job_duration_seconds_count{outcome="expired",phase="during_call"}"#), 1.0);
        assert_eq!(value(&m, r#"authrelay_jobs_in_flight{phase="post_call"}"#), 1.0);
        assert_eq!(value(&m, r#"authrelay_jobs_in_flight{phase="pre_call"}"#), 0.0);
    }

    #[test]
    fn every_series_of_a_fixed_label_set_exists_at_zero_before_its_first_event() {
        let m = Metrics::new();
        for series in [
            r#"authrelay_consumer_stalls_total{lane="during_call"}"#,
            r#"authrelay_retries_total{phase="pre_call",reason="error"}"#,
            r#"authrelay_jobs_deferred_total{phase="post_call",reason="database_unavailable"}"#,
            r#"authrelay_jobs_parked_total{error_kind="profile_unusable",phase="during_call"}"#,
            r#"authrelay_token_lookups_total{result="error"}"#,
            r#"authrelay_profile_lookups_total{result="error"}"#,
            r#"authrelay_profile_events_total{result="malformed"}"#,
            r#"authrelay_consumer_starts_total{lane="profile_events"}"#,
            r#"authrelay_jobs_replayed_total{phase="post_call"}"#,
            r#"authrelay_profile_changes_total{change="deleted"}"#,
            r#"authrelay_circuit_transitions_total{to="half_open"}"#,
            r#"authrelay_jobs_deferred_total{phase="post_call",reason="circuit_open"}"#,
            "authrelay_circuits_open",
        ] {
            assert_eq!(value(&m, series), 0.0, "{series}");
        }
    }

    #[test]
    fn typed_methods_write_their_label_values() {
        let m = Metrics::new();
        m.profile_lookup(ProfileLookup::Hit);
        m.profile_lookup(ProfileLookup::Miss);
        m.token_lookup(TokenLookup::Joined);
        m.http_request("/v1/replay", HttpMethod::Post, 202, 0.01);
        assert_eq!(value(&m, r#"authrelay_profile_lookups_total{result="hit"}"#), 1.0);
        assert_eq!(value(&m, r#"authrelay_profile_lookups_total{result="miss"}"#), 1.0);
        assert_eq!(value(&m, r#"authrelay_token_lookups_total{result="joined"}"#), 1.0);
        assert_eq!(value(&m, r#"authrelay_http_requests_total{method="POST",route="/v1/replay",status="2xx"}"#), 1.0);
    }
}
