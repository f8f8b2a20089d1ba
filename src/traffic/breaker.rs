//! Circuit breakers per destination origin (contract §9).
//!
//! An origin (scheme + host + port) whose attempts fail `failures` times in a
//! row (connect errors, timeouts, 5xx) is *open*: nothing is sent to it for
//! the open period (±10 % jitter). Then it is *half-open*: exactly one attempt,
//! the probe, may go; an answer closes the circuit, a failure opens it again
//! for twice the period, up to `max_open`. A success resets the run; a 4xx
//! neither counts nor resets (the origin answers; the request was wrong).
//!
//! State is per process, on purpose: the check sits on every attempt's path,
//! and a shared store there would cost a round trip per request and fail when
//! that store does; each process learns that an origin is down within
//! `failures` attempts of its own, and opening is a local protection (of the
//! target and of this process's callers), not a fleet decision.
//!
//! Memory is bounded: only origins with failures in a row (or open) are kept,
//! in an LRU of at most [`MAX_ORIGINS`]; an origin that succeeds is forgotten.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;
use tokio::time::Instant;
use url::Url;

use crate::config::CircuitConfig;
use crate::lock::lock;
use crate::metrics::{CircuitState, Metrics};

/// Origins remembered at most (those failing or open). Past it the least
/// recently failing is forgotten, and starts again from closed.
pub const MAX_ORIGINS: usize = 10_000;

/// An open period is the current period ±this fraction, so that processes
/// that opened together do not probe together.
const JITTER: f64 = 0.1;

/// `scheme://host:port` of a request: never its path or query, which may hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(Arc<str>);

impl Origin {
    pub fn of(url: &Url) -> Self {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or_default();
        Self(format!("{}://{host}:{port}", url.scheme()).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an attempt told about its origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// A 2xx (or any answer to a probe that is not a 5xx).
    Answered,
    /// A connect error, a timeout or a 5xx: counts toward opening.
    Failed,
    /// Tells nothing about the origin's health (a 4xx).
    Neutral,
    /// Nothing reached the origin (the egress guard, a request that could not
    /// be signed): a probe goes to the next job instead of closing the circuit.
    NotSent,
}

/// Whether an attempt may go to an origin.
#[derive(Debug)]
pub enum Admission {
    /// Send it, then [`Permit::record`] how it went.
    Go(Permit),
    /// The circuit is open: the probe may go in `retry_in` at the earliest.
    Open { retry_in: Duration },
}

/// The right to send one attempt. A probe's permit dropped without a report
/// (the job ended before its attempt) hands the probe to the next job.
#[derive(Debug)]
pub struct Permit {
    breakers: Option<Breakers>,
    origin: Origin,
    probe: bool,
}

impl Permit {
    /// Reports how the attempt ended.
    pub fn record(mut self, report: Report) {
        if report == Report::NotSent {
            // Dropped unreported: a probe is handed on.
            return;
        }
        if let Some(breakers) = self.breakers.take() {
            breakers.record(&self.origin, self.probe, report);
        }
    }

    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(breakers) = self.breakers.take()
            && self.probe
        {
            breakers.release_probe(&self.origin);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Circuit {
    /// `failures` in a row so far (never 0: a healthy origin is not kept).
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
        period: Duration,
    },
    HalfOpen {
        period: Duration,
        probe_out: bool,
    },
}

/// A change of a circuit's state, with the open period it starts.
#[derive(Debug, Clone, Copy)]
enum Change {
    /// From closed.
    Opened(Duration),
    /// After a failed probe.
    Reopened(Duration),
    HalfOpened,
    Closed,
}

/// The circuits of this process, one per origin that failed lately.
#[derive(Clone)]
pub struct Breakers {
    shared: Arc<Shared>,
}

struct Shared {
    settings: CircuitConfig,
    circuits: Mutex<LruCache<Origin, Circuit>>,
    /// How many circuits are kept, readable without the lock: while no origin
    /// fails (the usual case) an attempt pays one atomic load, not a lock.
    kept: AtomicUsize,
    metrics: Metrics,
}

impl fmt::Debug for Breakers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breakers").field("settings", &self.shared.settings).finish_non_exhaustive()
    }
}

impl Breakers {
    pub fn new(settings: CircuitConfig, metrics: Metrics) -> Self {
        Self::with_capacity(settings, metrics, MAX_ORIGINS)
    }

    fn with_capacity(settings: CircuitConfig, metrics: Metrics, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        let circuits = Mutex::new(LruCache::new(capacity));
        Self { shared: Arc::new(Shared { settings, circuits, kept: AtomicUsize::new(0), metrics }) }
    }

    /// Whether an attempt may go to `origin` now. A healthy origin costs one
    /// lookup; the first caller after an open period ends gets the probe.
    pub fn admit(&self, origin: &Origin) -> Admission {
        if self.shared.kept.load(Ordering::Relaxed) == 0 {
            return self.go(origin, false);
        }
        let now = Instant::now();
        let mut circuits = lock(&self.shared.circuits);
        let Some(circuit) = circuits.peek_mut(origin) else { return self.go(origin, false) };
        match *circuit {
            Circuit::Closed { .. } => self.go(origin, false),
            Circuit::Open { until, .. } if now < until => Admission::Open { retry_in: until - now },
            Circuit::Open { period, .. } | Circuit::HalfOpen { period, probe_out: false } => {
                let was_open = matches!(*circuit, Circuit::Open { .. });
                *circuit = Circuit::HalfOpen { period, probe_out: true };
                drop(circuits);
                if was_open {
                    self.transition(origin, Change::HalfOpened);
                }
                self.go(origin, true)
            }
            // The probe is out: its answer comes within an attempt's time.
            Circuit::HalfOpen { probe_out: true, .. } => Admission::Open { retry_in: self.shared.settings.open_for },
        }
    }

    /// How long until `origin` may take an attempt, when its circuit is open
    /// (or half-open with its probe out); takes nothing.
    pub fn open_for(&self, origin: &Origin) -> Option<Duration> {
        if self.shared.kept.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let now = Instant::now();
        match lock(&self.shared.circuits).peek(origin)? {
            Circuit::Open { until, .. } if now < *until => Some(*until - now),
            Circuit::HalfOpen { probe_out: true, .. } => Some(self.shared.settings.open_for),
            _ => None,
        }
    }

    /// Circuits currently kept (failing, open or half-open).
    pub fn len(&self) -> usize {
        lock(&self.shared.circuits).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn go(&self, origin: &Origin, probe: bool) -> Admission {
        Admission::Go(Permit { breakers: Some(self.clone()), origin: origin.clone(), probe })
    }

    fn record(&self, origin: &Origin, probe: bool, report: Report) {
        if report != Report::Failed && !probe && self.shared.kept.load(Ordering::Relaxed) == 0 {
            return;
        }
        let settings = &self.shared.settings;
        let mut circuits = lock(&self.shared.circuits);
        let change = match (circuits.get_mut(origin), report) {
            (None, Report::Failed) => {
                let circuit = self.after_failures(1);
                let opened = matches!(circuit, Circuit::Open { .. });
                if let Some((_, evicted)) = circuits.push(origin.clone(), circuit)
                    && !matches!(evicted, Circuit::Closed { .. })
                {
                    // An open circuit forgotten for room: it no longer counts as open.
                    self.shared.metrics.circuits_open.dec();
                }
                opened.then_some(Change::Opened(settings.open_for))
            }
            (None, _) => None,
            (Some(circuit), report) => match (*circuit, report) {
                (Circuit::Closed { failures }, Report::Failed) => {
                    *circuit = self.after_failures(failures.saturating_add(1));
                    matches!(circuit, Circuit::Open { .. }).then_some(Change::Opened(settings.open_for))
                }
                (Circuit::Closed { .. }, Report::Answered) => {
                    circuits.pop(origin);
                    None
                }
                (Circuit::HalfOpen { period, .. }, Report::Failed) if probe => {
                    let period = period.saturating_mul(2).min(settings.max_open);
                    *circuit = Circuit::Open { until: Instant::now() + jittered(period), period };
                    Some(Change::Reopened(period))
                }
                (Circuit::HalfOpen { .. }, _) if probe => {
                    circuits.pop(origin);
                    Some(Change::Closed)
                }
                // A 4xx, or an attempt that started before the circuit opened.
                _ => None,
            },
        };
        self.shared.kept.store(circuits.len(), Ordering::Relaxed);
        drop(circuits);
        if let Some(change) = change {
            self.transition(origin, change);
        }
    }

    /// The circuit after `failures` in a row: open once they reach the threshold.
    fn after_failures(&self, failures: u32) -> Circuit {
        let settings = &self.shared.settings;
        if failures >= settings.failures {
            Circuit::Open { until: Instant::now() + jittered(settings.open_for), period: settings.open_for }
        } else {
            Circuit::Closed { failures }
        }
    }

    fn release_probe(&self, origin: &Origin) {
        if let Some(Circuit::HalfOpen { probe_out, .. }) = lock(&self.shared.circuits).peek_mut(origin) {
            *probe_out = false;
        }
    }

    /// Counts, and logs at WARN, a circuit's change of state (outside the lock).
    fn transition(&self, origin: &Origin, change: Change) {
        let metrics = &self.shared.metrics;
        match change {
            Change::Opened(period) | Change::Reopened(period) => {
                metrics.circuit_transition(CircuitState::Open);
                // Re-opening after a failed probe leaves the gauge as it is.
                if matches!(change, Change::Opened(_)) {
                    metrics.circuits_open.inc();
                }
                let open_for_ms = period.as_millis() as u64;
                tracing::warn!(origin = %origin, open_for_ms, "circuit opened: requests to this origin stop for a while");
            }
            Change::HalfOpened => {
                metrics.circuit_transition(CircuitState::HalfOpen);
                tracing::warn!(origin = %origin, "circuit half-open: one probe may go");
            }
            Change::Closed => {
                metrics.circuit_transition(CircuitState::Closed);
                metrics.circuits_open.dec();
                tracing::warn!(origin = %origin, "circuit closed: the origin answers again");
            }
        }
    }
}

/// `period` ±[`JITTER`].
fn jittered(period: Duration) -> Duration {
    super::with_jitter(period, JITTER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN_FOR: Duration = Duration::from_secs(5);

    fn breakers(failures: u32) -> (Breakers, Metrics) {
        let metrics = Metrics::new();
        let settings = CircuitConfig { failures, open_for: OPEN_FOR, max_open: Duration::from_secs(60) };
        (Breakers::new(settings, metrics.clone()), metrics)
    }

    fn origin(url: &str) -> Origin {
        Origin::of(&Url::parse(url).unwrap())
    }

    fn attempt(b: &Breakers, o: &Origin, report: Report) {
        match b.admit(o) {
            Admission::Go(permit) => permit.record(report),
            Admission::Open { .. } => panic!("{o} is open"),
        }
    }

    fn open_for(b: &Breakers, o: &Origin) -> Option<Duration> {
        match b.admit(o) {
            Admission::Open { retry_in } => Some(retry_in),
            Admission::Go(_) => None,
        }
    }

    /// The open period after failures: how long until the probe may go.
    fn assert_open_about(b: &Breakers, o: &Origin, period: Duration) {
        let left = open_for(b, o).unwrap_or_else(|| panic!("{o} should be open"));
        assert!(left >= period.mul_f64(0.9) && left <= period.mul_f64(1.1), "open for {left:?}, period {period:?}");
    }

    /// Advances past any jittered end of `period`.
    async fn past(period: Duration) {
        tokio::time::advance(period.mul_f64(1.1) + Duration::from_millis(1)).await;
    }

    fn gauge(m: &Metrics, series: &str) -> f64 {
        m.render().lines().find_map(|l| l.strip_prefix(series)?.trim().parse().ok()).unwrap()
    }

    #[test]
    fn the_origin_is_scheme_host_and_port_without_path_or_query() {
        assert_eq!(origin("https://api.example.com/v1/x?key=secret").as_str(), "https://api.example.com:443");
        assert_eq!(origin("http://127.0.0.1:8080/a").as_str(), "http://127.0.0.1:8080");
        assert_ne!(origin("http://a.example:80/"), origin("https://a.example/"));
    }

    #[tokio::test(start_paused = true)]
    async fn it_opens_after_the_threshold_of_failures_in_a_row_and_a_success_resets_the_run() {
        let (b, m) = breakers(3);
        let o = origin("http://down.example/");
        attempt(&b, &o, Report::Failed);
        attempt(&b, &o, Report::Failed);
        attempt(&b, &o, Report::Answered);
        assert!(b.is_empty(), "a success forgets the origin");
        attempt(&b, &o, Report::Failed);
        attempt(&b, &o, Report::Failed);
        assert!(open_for(&b, &o).is_none(), "two in a row after the reset stay closed");
        attempt(&b, &o, Report::Failed);
        assert_open_about(&b, &o, OPEN_FOR);
        assert_eq!(gauge(&m, "authrelay_circuits_open"), 1.0);
        assert_eq!(gauge(&m, r#"authrelay_circuit_transitions_total{to="open"}"#), 1.0);
        assert!(open_for(&b, &origin("http://other.example/")).is_none(), "other origins are not affected");
    }

    #[tokio::test(start_paused = true)]
    async fn a_4xx_neither_counts_nor_resets() {
        let (b, _) = breakers(2);
        let o = origin("http://picky.example/");
        for _ in 0..10 {
            attempt(&b, &o, Report::Neutral);
        }
        assert!(open_for(&b, &o).is_none());
        attempt(&b, &o, Report::Failed);
        attempt(&b, &o, Report::Neutral);
        attempt(&b, &o, Report::Failed);
        assert!(open_for(&b, &o).is_some(), "the 4xx between two failures did not reset the run");
    }

    #[tokio::test(start_paused = true)]
    async fn after_the_open_period_exactly_one_probe_goes_and_its_success_closes() {
        let (b, m) = breakers(1);
        let o = origin("http://down.example/");
        attempt(&b, &o, Report::Failed);
        past(OPEN_FOR).await;
        let Admission::Go(probe) = b.admit(&o) else { panic!("the probe may go") };
        assert!(probe.is_probe());
        assert_eq!(open_for(&b, &o), Some(OPEN_FOR), "others wait while the probe is out");
        assert_eq!(gauge(&m, r#"authrelay_circuit_transitions_total{to="half_open"}"#), 1.0);
        probe.record(Report::Answered);
        assert!(open_for(&b, &o).is_none(), "closed");
        assert_eq!(gauge(&m, "authrelay_circuits_open"), 0.0);
        assert_eq!(gauge(&m, r#"authrelay_circuit_transitions_total{to="closed"}"#), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_probes_double_the_open_period_up_to_the_cap() {
        let (b, m) = breakers(1);
        let o = origin("http://down.example/");
        attempt(&b, &o, Report::Failed);
        let mut period = OPEN_FOR;
        for expected in [10, 20, 40, 60, 60] {
            past(period).await;
            attempt(&b, &o, Report::Failed);
            period = Duration::from_secs(expected);
            assert_open_about(&b, &o, period);
        }
        assert_eq!(gauge(&m, "authrelay_circuits_open"), 1.0, "one origin, however often it re-opened");
        assert_eq!(gauge(&m, r#"authrelay_circuit_transitions_total{to="open"}"#), 6.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_dropped_without_a_report_hands_the_probe_on() {
        let (b, _) = breakers(1);
        let o = origin("http://down.example/");
        attempt(&b, &o, Report::Failed);
        past(OPEN_FOR).await;
        let Admission::Go(probe) = b.admit(&o) else { panic!("the probe may go") };
        drop(probe);
        let Admission::Go(next) = b.admit(&o) else { panic!("the next job probes") };
        assert!(next.is_probe());
    }

    #[tokio::test(start_paused = true)]
    async fn open_periods_are_jittered_within_ten_percent() {
        let (b, _) = breakers(1);
        let lefts: Vec<Duration> = (0..300)
            .map(|i| {
                let o = origin(&format!("http://h{i}.example/"));
                attempt(&b, &o, Report::Failed);
                open_for(&b, &o).unwrap()
            })
            .collect();
        assert!(lefts.iter().all(|d| *d >= OPEN_FOR.mul_f64(0.9) && *d <= OPEN_FOR.mul_f64(1.1)));
        assert!(lefts.iter().any(|d| *d < OPEN_FOR.mul_f64(0.97)) && lefts.iter().any(|d| *d > OPEN_FOR.mul_f64(1.03)));
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_by_the_lru_and_forgotten_open_circuits_leave_the_gauge() {
        let metrics = Metrics::new();
        let settings = CircuitConfig { failures: 1, open_for: OPEN_FOR, max_open: OPEN_FOR };
        let b = Breakers::with_capacity(settings, metrics.clone(), 3);
        for i in 0..10 {
            attempt(&b, &origin(&format!("http://h{i}.example/")), Report::Failed);
        }
        assert_eq!(b.len(), 3);
        assert_eq!(gauge(&metrics, "authrelay_circuits_open"), 3.0);
        assert!(open_for(&b, &origin("http://h0.example/")).is_none(), "the oldest was forgotten");
        assert!(open_for(&b, &origin("http://h9.example/")).is_some());
    }
}
