//! Live calls first: background lanes yield to live work (issue 15 §3).
//!
//! Separate lanes keep a post-call backlog from *queueing ahead* of a
//! during-call job, but on a small machine they still share the CPU: the
//! post-call lane's tasks, the broker's deliveries, acks and result publishes
//! for them, and the tokio worker threads a during-call task waits for. So the
//! background lane's concurrency is controlled AIMD style:
//! - **decrease**: each live job that starts halves the background lane's limit,
//!   not below a floor (`AUTHRELAY_LIVE_FIRST_FLOOR`), so a backlog keeps draining;
//! - **increase**: while no live job is in flight, the limit grows by one slot per
//!   `AUTHRELAY_LIVE_FIRST_GROW_EVERY`, back to the lane's configured concurrency.
//!
//! Fewer post-call jobs in flight means fewer of everything above competing
//! with the live job, and the broker works less for the background lane too.
//! Pre-call jobs count as live: someone waits for the call to connect.
//!
//! [`Controller`] is the rule, with time passed in (tests drive it with made-up
//! instants); [`LiveFirst`] is the handle the lanes share. Without live work the
//! background lane reads one atomic per job and takes no lock.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::config::LiveFirstConfig;
use crate::lock::lock;
use crate::phase::Phase;

/// Whether someone waits for `phase`'s jobs as they run (pre-call: the call
/// connects after them; during-call: the caller is on the line).
pub fn is_live(phase: Phase) -> bool {
    match phase {
        Phase::PreCall | Phase::DuringCall => true,
        Phase::PostCall => false,
    }
}

/// The background lane's concurrency limit, as a function of live work over time.
#[derive(Debug)]
pub struct Controller {
    max: usize,
    floor: usize,
    grow_every: Duration,
    limit: usize,
    /// Live jobs started and not finished.
    live: usize,
    /// Growth is counted from here (the last live job's end, advanced by whole steps).
    quiet_since: Instant,
}

impl Controller {
    /// A background lane of `max` slots that never goes below `floor` (at most `max`).
    pub fn new(max: usize, floor: usize, grow_every: Duration, now: Instant) -> Self {
        let max = max.max(1);
        Self {
            max,
            floor: floor.clamp(1, max),
            grow_every: grow_every.max(Duration::from_micros(1)),
            limit: max,
            live: 0,
            quiet_since: now,
        }
    }

    /// A live job arrived: multiplicative decrease. Returns the new limit.
    pub fn live_started(&mut self, now: Instant) -> usize {
        self.grow(now);
        self.live += 1;
        self.limit = (self.limit / 2).max(self.floor);
        self.limit
    }

    /// A live job ended; once none is left, growth starts counting. Returns the limit.
    pub fn live_finished(&mut self, now: Instant) -> usize {
        self.grow(now);
        self.live = self.live.saturating_sub(1);
        if self.live == 0 {
            self.quiet_since = now;
        }
        self.limit
    }

    /// Background jobs that may run at `now`.
    pub fn limit(&mut self, now: Instant) -> usize {
        self.grow(now);
        self.limit
    }

    /// Additive increase: one slot per whole `grow_every` of quiet.
    fn grow(&mut self, now: Instant) {
        if self.live > 0 || self.limit >= self.max {
            return;
        }
        let quiet = now.saturating_duration_since(self.quiet_since);
        let steps = quiet.as_nanos() / self.grow_every.as_nanos();
        if steps == 0 {
            return;
        }
        let steps = usize::try_from(steps).unwrap_or(usize::MAX);
        self.limit = self.limit.saturating_add(steps).min(self.max);
        // Whole steps only, so that the remainder counts toward the next one.
        let whole = u32::try_from(steps).ok().and_then(|s| self.grow_every.checked_mul(s));
        self.quiet_since = whole.map_or(now, |d| self.quiet_since + d);
    }
}

/// The controller shared by the lanes of one worker process.
pub struct LiveFirst {
    /// `None` when live-first is off: the background lane keeps its full concurrency.
    controller: Option<Mutex<Controller>>,
    max: usize,
    grow_every: Duration,
    /// The background lane's prefetch while it is throttled.
    prefetch: u16,
    /// The last limit computed, read without the lock while there is no live work.
    limit: AtomicUsize,
    /// `authrelay_lane_concurrency{phase="post_call"}`.
    gauge: prometheus::IntGauge,
}

impl LiveFirst {
    /// For a background lane of `max` slots; `gauge` shows its current limit.
    pub fn new(config: &LiveFirstConfig, max: usize, gauge: prometheus::IntGauge) -> Self {
        let controller =
            config.enabled.then(|| Mutex::new(Controller::new(max, config.floor, config.grow_every, Instant::now())));
        Self {
            controller,
            max,
            grow_every: config.grow_every,
            prefetch: config.prefetch,
            limit: AtomicUsize::new(max),
            gauge,
        }
    }

    /// Marks a live job as in flight until the returned guard is dropped.
    pub fn live_job(self: &Arc<Self>) -> LiveJob {
        if let Some(controller) = &self.controller {
            let limit = lock(controller).live_started(Instant::now());
            self.publish(limit);
        }
        LiveJob(self.clone())
    }

    /// Background jobs that may be in flight now.
    pub fn background_limit(&self) -> usize {
        let last = self.limit.load(Ordering::Relaxed);
        match &self.controller {
            // The common case, no live work lately: one atomic read.
            Some(_) if last >= self.max => last,
            None => self.max,
            Some(controller) => {
                let limit = lock(controller).limit(Instant::now());
                self.publish(limit);
                limit
            }
        }
    }

    /// Whether the background lane runs below its full concurrency (as last computed).
    pub fn is_throttled(&self) -> bool {
        self.limit.load(Ordering::Relaxed) < self.max
    }

    /// Sets the gauge to the current limit (when the background lane starts:
    /// a process that does not run it shows none).
    pub fn show(&self) {
        self.gauge.set(i64::try_from(self.limit.load(Ordering::Relaxed)).unwrap_or(i64::MAX));
    }

    /// The prefetch the background lane should consume at, of its configured
    /// `full` one: the shallow one while it is throttled.
    ///
    /// Fewer jobs in flight are not enough: measured on two cores, the wait a
    /// live job sees while a backlog drains is mostly in the broker before the
    /// worker takes it, and it follows how deep the post-call consumer reaches
    /// into its queue (prefetch 64: 3 × idle p99; 16: 1.6–1.8 ×), not the
    /// worker's own CPU. A deep prefetch pays off only when nothing else runs,
    /// so the lane goes back to it once it is no longer throttled, that is a
    /// third of a second or so after the last live job.
    pub fn prefetch(&self, full: u16) -> u16 {
        if self.is_throttled() { self.prefetch.min(full) } else { full }
    }

    /// How often a throttled background lane looks again: its limit grows no faster.
    pub fn grow_every(&self) -> Duration {
        self.grow_every
    }

    fn publish(&self, limit: usize) {
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            self.gauge.set(i64::try_from(limit).unwrap_or(i64::MAX));
        }
    }
}

/// A live job in flight; dropping it tells the controller the job ended.
pub struct LiveJob(Arc<LiveFirst>);

impl Drop for LiveJob {
    fn drop(&mut self) {
        if let Some(controller) = &self.0.controller {
            let limit = lock(controller).live_finished(Instant::now());
            self.0.publish(limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEP: Duration = Duration::from_millis(10);

    fn controller(t0: Instant) -> Controller {
        Controller::new(32, 4, STEP, t0)
    }

    #[test]
    fn without_live_work_the_background_lane_keeps_its_full_concurrency() {
        let t0 = Instant::now();
        let mut c = controller(t0);
        assert_eq!(c.limit(t0), 32);
        assert_eq!(c.limit(t0 + Duration::from_secs(3600)), 32);
    }

    #[test]
    fn each_live_arrival_halves_the_limit_down_to_the_floor() {
        let t0 = Instant::now();
        let mut c = controller(t0);
        let limits: Vec<usize> = (0..5).map(|_| c.live_started(t0)).collect();
        assert_eq!(limits, [16, 8, 4, 4, 4]);
    }

    #[test]
    fn the_limit_does_not_grow_while_live_work_is_in_flight() {
        let t0 = Instant::now();
        let mut c = controller(t0);
        c.live_started(t0);
        c.live_started(t0);
        c.live_finished(t0 + STEP);
        assert_eq!(c.limit(t0 + STEP * 50), 8, "one live job is still in flight");
    }

    #[test]
    fn once_live_work_is_quiet_the_limit_grows_one_slot_per_step_back_to_the_maximum() {
        let t0 = Instant::now();
        let mut c = controller(t0);
        for _ in 0..3 {
            c.live_started(t0);
        }
        for _ in 0..3 {
            c.live_finished(t0 + STEP);
        }
        let end = t0 + STEP;
        assert_eq!(c.limit(end + STEP / 2), 4, "not a whole step yet");
        assert_eq!(c.limit(end + STEP), 5);
        assert_eq!(c.limit(end + STEP * 5 + STEP / 2), 9, "a half step counts toward the next one");
        assert_eq!(c.limit(end + STEP * 6), 10);
        assert_eq!(c.limit(end + STEP * 1000), 32, "never above the lane's concurrency");
    }

    #[test]
    fn live_work_at_a_steady_rate_holds_the_background_lane_near_its_floor() {
        // 100 live jobs per second, 3 ms each: 7 ms of quiet between them.
        let t0 = Instant::now();
        let mut c = controller(t0);
        let mut highest_after_warmup = 0;
        for i in 0..100u32 {
            let start = t0 + Duration::from_millis(10) * i;
            let limit = c.live_started(start);
            c.live_finished(start + Duration::from_millis(3));
            if i >= 3 {
                highest_after_warmup = highest_after_warmup.max(limit);
            }
        }
        assert_eq!(highest_after_warmup, 4);
        // A second of quiet afterwards gives it all back.
        assert_eq!(c.limit(t0 + Duration::from_secs(2)), 32);
    }

    #[test]
    fn the_floor_never_exceeds_the_lane_and_is_at_least_one() {
        let t0 = Instant::now();
        let mut small = Controller::new(2, 4, STEP, t0);
        assert_eq!(small.live_started(t0), 2);
        let mut zero = Controller::new(8, 0, STEP, t0);
        for _ in 0..10 {
            zero.live_started(t0);
        }
        assert_eq!(zero.limit(t0), 1);
    }

    #[test]
    fn the_shared_handle_throttles_while_a_live_job_is_held_and_reports_the_gauge() {
        let config = LiveFirstConfig { enabled: true, floor: 2, grow_every: Duration::from_secs(3600), prefetch: 4 };
        let gauge = prometheus::IntGauge::new("g", "g").unwrap();
        let live_first = Arc::new(LiveFirst::new(&config, 16, gauge.clone()));
        live_first.show();
        assert_eq!((live_first.background_limit(), gauge.get()), (16, 16));
        assert_eq!(live_first.prefetch(64), 64, "not throttled: the lane's own prefetch");
        let job = live_first.live_job();
        assert_eq!((live_first.background_limit(), gauge.get()), (8, 8));
        assert_eq!(
            (live_first.prefetch(64), live_first.prefetch(2)),
            (4, 2),
            "throttled: the shallow one, at most the lane's"
        );
        drop(job);
        assert_eq!(live_first.background_limit(), 8, "growth takes an hour per slot here");
        assert_eq!(live_first.prefetch(64), 4, "still throttled");

        let off = LiveFirstConfig { enabled: false, ..config };
        let live_first = Arc::new(LiveFirst::new(&off, 16, prometheus::IntGauge::new("h", "h").unwrap()));
        let _job = live_first.live_job();
        assert_eq!(live_first.background_limit(), 16);
        assert_eq!(live_first.prefetch(64), 64);
    }
}
