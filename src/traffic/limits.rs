//! Per-profile limits held for the whole fleet (contract §9).
//!
//! Each process enforces its *share* of a profile's limits: with N live
//! worker processes (counted by [`super::fleet`]), a rate of R per second
//! becomes R/N here, and a concurrency of C is split so that the shares add
//! up to C (every process keeps at least one). The broker spreads a profile's
//! jobs over the consumers, so the shares add up to the limit without a
//! database round trip per request; when a process joins or leaves, the
//! others see it at their next beat and resize their shares.
//!
//! - rates: GCRA (a token bucket written as one "theoretical arrival time"),
//!   burst 1 unless set;
//! - concurrency: a count of requests in flight, woken one waiter per release;
//! - pauses: a `429` with `Retry-After` stops every job of the profile until
//!   then, in this process at once and in the others at their next beat.
//!
//! A job with no limits and no pause on its profile pays one atomic load.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::time::Instant;
use uuid::Uuid;

use crate::lock::lock;
use crate::profile::ProfileLimits;

/// This process's place in the fleet: how many worker processes share the
/// limits, and which of them this one is (for the remainder of a split).
#[derive(Debug)]
pub struct FleetShare {
    size: AtomicU32,
    rank: AtomicU32,
}

impl Default for FleetShare {
    fn default() -> Self {
        Self { size: AtomicU32::new(1), rank: AtomicU32::new(0) }
    }
}

impl FleetShare {
    /// Records the fleet as last seen: `size` live processes, this one at `rank` (from 0).
    pub fn set(&self, size: u32, rank: u32) {
        let size = size.max(1);
        self.rank.store(rank.min(size - 1), Ordering::Relaxed);
        self.size.store(size, Ordering::Relaxed);
    }

    pub fn size(&self) -> u32 {
        self.size.load(Ordering::Relaxed).max(1)
    }

    /// This process's part of a fleet-wide count: the counts of all ranks add
    /// up to `total`, but no process gets less than one.
    pub fn split(&self, total: u32) -> u32 {
        let size = self.size();
        let rank = self.rank.load(Ordering::Relaxed);
        let extra = u32::from(rank < total % size);
        (total / size + extra).max(1)
    }

    /// The time between two requests of this process at a fleet-wide `rate_per_s`.
    pub fn interval(&self, rate_per_s: f64) -> Duration {
        // Profiles keep rates of at least MIN_RATE_PER_S; the fallback only guards arithmetic.
        Duration::try_from_secs_f64(f64::from(self.size()) / rate_per_s).unwrap_or(Duration::from_secs(86_400))
    }

    /// How far ahead of its spacing a request may go: this process's share of
    /// the burst, less the one request every rate allows.
    fn tolerance(&self, limits: &ProfileLimits, interval: Duration) -> Duration {
        let share = f64::from(limits.burst_or_default()) / f64::from(self.size());
        interval.mul_f64((share - 1.0).max(0.0))
    }
}

/// Why a job may not send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its turn would come after it must have started.
    NoTurn,
    /// Its turn is further away than a job should wait holding a lane slot:
    /// it should come back `after` this long. When `reserved`, the rate's turn
    /// at that time is its own (the job comes back *prepaid*, see [`ProfileGates::admit`]).
    Later { after: Duration, reserved: bool },
}

/// Until when a job may wait, and how long it may wait in process.
#[derive(Debug, Clone, Copy)]
pub struct Patience {
    /// The last instant the request may start.
    pub start_by: Instant,
    /// Longer waits are refused with [`Refusal::Later`] (a post-call job then
    /// waits in a delay queue, not in a lane slot).
    pub max_wait: Duration,
    /// Reserve the rate's turn of a job refused with `Later`, so that a
    /// backlog comes back spread over the turns instead of all at once.
    pub reserve: bool,
}

/// The right to send one request; frees its concurrency slot when dropped.
#[derive(Debug)]
pub struct Permit {
    gate: Option<Arc<Gate>>,
    /// Whether the job had to wait for it (a pause, a turn, a free slot).
    pub waited: bool,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if let Some(gate) = &self.gate {
            lock(&gate.state).in_flight -= 1;
            gate.freed.notify_one();
        }
    }
}

/// One profile's limits in this process.
#[derive(Debug)]
struct Gate {
    state: std::sync::Mutex<GateState>,
    freed: Notify,
}

#[derive(Debug)]
struct GateState {
    in_flight: u32,
    /// The plan (GCRA): when the next turn falls if every turn handed out,
    /// reserved ones included, is used exactly on time.
    due: Instant,
    /// What really went (GCRA over the requests sent): a job back late from a
    /// delay queue uses its turn late, and must not bunch with the next ones.
    sent_due: Instant,
    last_used: Instant,
}

/// The limits of every profile in this process.
pub struct ProfileGates {
    gates: std::sync::Mutex<HashMap<Uuid, Arc<Gate>>>,
    pauses: std::sync::Mutex<HashMap<Uuid, Instant>>,
    /// Entries in `pauses`, read without the lock: the common case is none.
    paused_profiles: AtomicUsize,
    fleet: Arc<FleetShare>,
    /// Pauses heard here, for [`super::fleet`] to pass on to the rest of the fleet.
    pause_news: std::sync::Mutex<HashMap<Uuid, DateTime<Utc>>>,
    news: Notify,
}

/// The longest pause a `Retry-After` can impose (the value comes from the target).
pub const MAX_PAUSE: Duration = Duration::from_secs(24 * 3600);

impl ProfileGates {
    pub fn new(fleet: Arc<FleetShare>) -> Self {
        Self {
            gates: Default::default(),
            pauses: Default::default(),
            paused_profiles: AtomicUsize::new(0),
            fleet,
            pause_news: Default::default(),
            news: Notify::new(),
        }
    }

    pub fn fleet(&self) -> &Arc<FleetShare> {
        &self.fleet
    }

    /// Waits for the turn of one request of `profile` under `limits`, within
    /// `patience`. A `prepaid` job holds a rate turn reserved earlier (it was
    /// refused `Later` with `reserved`), so it takes no turn in the plan.
    pub async fn admit(
        &self,
        profile: Uuid,
        limits: Option<&ProfileLimits>,
        patience: Patience,
        prepaid: bool,
    ) -> Result<Permit, Refusal> {
        let started = Instant::now();
        let mut waited = self.wait_out_pause(profile, patience).await?;
        let Some(limits) = limits else { return Ok(Permit { gate: None, waited }) };
        let gate = self.gate(profile);
        loop {
            // Registered before the check, so a release between the check and the wait is not missed.
            let freed = gate.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let wait = {
                let now = Instant::now();
                let mut state = lock(&gate.state);
                state.last_used = now;
                let full = limits.max_concurrency.is_some_and(|c| state.in_flight >= self.fleet.split(c));
                if full {
                    None
                } else {
                    let wait = match limits.rate_per_s {
                        Some(rate) => {
                            self.schedule(&mut state, limits, rate, now, patience, prepaid).inspect_err(|_| {
                                // This job leaves the free slot alone: a release that woke it
                                // goes on to the next waiter.
                                gate.freed.notify_one();
                            })?
                        }
                        None => Duration::ZERO,
                    };
                    state.in_flight += 1;
                    Some(wait)
                }
            };
            match wait {
                Some(wait) => {
                    let mut permit = Permit { gate: Some(gate.clone()), waited: waited || !wait.is_zero() };
                    // The slot is held while waiting for the rate's turn (a request sent
                    // later than its turn could otherwise bunch with the next ones).
                    tokio::time::sleep(wait).await;
                    // A 429 heard meanwhile pauses this request too (the permit frees its slot if refused).
                    permit.waited |= self.wait_out_pause(profile, patience).await?;
                    return Ok(permit);
                }
                None => {
                    // Every concurrency slot is taken: wait for a release, as long as patience lasts.
                    waited = true;
                    let give_up = patience.start_by.min(started + patience.max_wait);
                    tokio::select! {
                        _ = freed => {}
                        _ = tokio::time::sleep_until(give_up) => {
                            return Err(if give_up >= patience.start_by {
                                Refusal::NoTurn
                            } else {
                                Refusal::Later { after: patience.max_wait, reserved: false }
                            });
                        }
                    }
                }
            }
        }
    }

    /// When the next request of a rate-limited profile may go, or why it may
    /// not; state changes only for a request that goes or a turn reserved.
    ///
    /// Two buckets: the *plan* (`due`) hands out turns, reserved ones
    /// included, to background jobs; *what was sent* (`sent_due`) keeps every
    /// request, live or background, on time or late, at the rate. A live job
    /// goes by what was sent only, so a backlog's reserved turns never keep a
    /// caller waiting; it still takes its place in the plan.
    fn schedule(
        &self,
        state: &mut GateState,
        limits: &ProfileLimits,
        rate: f64,
        now: Instant,
        patience: Patience,
        prepaid: bool,
    ) -> Result<Duration, Refusal> {
        let interval = self.fleet.interval(rate);
        let tolerance = self.fleet.tolerance(limits, interval);
        let by_sends = |from: Instant| from.max(state.sent_due.checked_sub(tolerance).unwrap_or(from));
        let send_at = if prepaid {
            let send_at = by_sends(now);
            refuse(send_at, patience, send_at - now).map_err(|refusal| match refusal {
                // Its turn is still its own: back later with it.
                Refusal::Later { after, .. } => Refusal::Later { after, reserved: true },
                other => other,
            })?;
            send_at
        } else if !patience.reserve {
            let send_at = by_sends(now);
            refuse(send_at, patience, send_at - now)?;
            state.due = state.due.max(now) + interval;
            send_at
        } else {
            let due = state.due.max(now);
            let send_at = by_sends(due.checked_sub(tolerance).unwrap_or(now).max(now));
            if let Err(refusal) = refuse(send_at, patience, send_at - now) {
                if let Refusal::Later { after, .. } = refusal {
                    state.due = due + interval;
                    return Err(Refusal::Later { after, reserved: true });
                }
                return Err(refusal);
            }
            state.due = due + interval;
            send_at
        };
        state.sent_due = state.sent_due.max(send_at) + interval;
        Ok(send_at - now)
    }

    /// A `429` with `Retry-After`: every job of `profile` waits until `until`,
    /// here at once and in the rest of the fleet at its next beat.
    pub fn pause(&self, profile: Uuid, after: Duration) {
        let after = after.min(MAX_PAUSE);
        let now = Instant::now();
        self.pause_locally(profile, now.checked_add(after).unwrap_or(now));
        let until = chrono::Duration::from_std(after).ok().and_then(|d| Utc::now().checked_add_signed(d));
        if let Some(until) = until {
            self.pause_news(profile, until);
            // Shared now, not at the next beat: the rest of the fleet then hears it within one beat.
            self.news.notify_one();
        }
    }

    /// Resolves when a pause heard here waits to be shared with the fleet.
    pub async fn pause_heard(&self) {
        self.news.notified().await;
    }

    /// Keeps a pause for the rest of the fleet to hear at the next beat.
    pub fn pause_news(&self, profile: Uuid, until: DateTime<Utc>) {
        let mut news = lock(&self.pause_news);
        let entry = news.entry(profile).or_insert(until);
        *entry = (*entry).max(until);
    }

    /// The pauses heard here since the last call, for the rest of the fleet.
    pub fn take_pause_news(&self) -> HashMap<Uuid, DateTime<Utc>> {
        std::mem::take(&mut *lock(&self.pause_news))
    }

    /// A pause heard from the rest of the fleet.
    pub fn pause_locally(&self, profile: Uuid, until: Instant) {
        let mut pauses = lock(&self.pauses);
        let entry = pauses.entry(profile).or_insert(until);
        *entry = (*entry).max(until);
        self.paused_profiles.store(pauses.len(), Ordering::Relaxed);
    }

    /// Forgets ended pauses and gates idle for a while (a profile not used lately costs no memory).
    pub fn prune(&self, idle_for: Duration) {
        let now = Instant::now();
        {
            let mut pauses = lock(&self.pauses);
            pauses.retain(|_, until| *until > now);
            self.paused_profiles.store(pauses.len(), Ordering::Relaxed);
        }
        lock(&self.gates).retain(|_, gate| {
            let state = lock(&gate.state);
            state.in_flight > 0 || state.due.max(state.sent_due) > now || now.duration_since(state.last_used) < idle_for
        });
    }

    /// Waits out a pause of `profile`, if any; whether it waited.
    async fn wait_out_pause(&self, profile: Uuid, patience: Patience) -> Result<bool, Refusal> {
        if self.paused_profiles.load(Ordering::Relaxed) == 0 {
            return Ok(false);
        }
        let until = lock(&self.pauses).get(&profile).copied();
        let now = Instant::now();
        let Some(until) = until.filter(|u| *u > now) else { return Ok(false) };
        refuse(until, patience, until - now)?;
        tokio::time::sleep_until(until).await;
        Ok(true)
    }

    fn gate(&self, profile: Uuid) -> Arc<Gate> {
        lock(&self.gates)
            .entry(profile)
            .or_insert_with(|| {
                let now = Instant::now();
                Arc::new(Gate {
                    state: std::sync::Mutex::new(GateState { in_flight: 0, due: now, sent_due: now, last_used: now }),
                    freed: Notify::new(),
                })
            })
            .clone()
    }
}

/// Refuses a wait until `at` (of length `wait`) that patience does not allow.
fn refuse(at: Instant, patience: Patience, wait: Duration) -> Result<(), Refusal> {
    if at > patience.start_by {
        Err(Refusal::NoTurn)
    } else if wait > patience.max_wait {
        Err(Refusal::Later { after: wait, reserved: false })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gates(size: u32, rank: u32) -> ProfileGates {
        let fleet = Arc::new(FleetShare::default());
        fleet.set(size, rank);
        ProfileGates::new(fleet)
    }

    fn patient() -> Patience {
        Patience {
            start_by: Instant::now() + Duration::from_secs(3600),
            max_wait: Duration::from_secs(3600),
            reserve: false,
        }
    }

    fn within(start_by: Duration, max_wait: Duration) -> Patience {
        Patience { start_by: Instant::now() + start_by, max_wait, reserve: false }
    }

    fn rate(rate_per_s: f64, burst: Option<u32>) -> ProfileLimits {
        ProfileLimits { rate_per_s: Some(rate_per_s), burst, max_concurrency: None }
    }

    #[test]
    fn shares_add_up_to_the_fleet_wide_count() {
        for size in 1..=7u32 {
            for total in 1..=20u32 {
                let sum: u32 = (0..size)
                    .map(|rank| {
                        let share = FleetShare::default();
                        share.set(size, rank);
                        share.split(total)
                    })
                    .sum();
                assert_eq!(sum, total.max(size), "size {size}, total {total}");
            }
        }
        let share = FleetShare::default();
        share.set(4, 0);
        assert_eq!(share.interval(10.0), Duration::from_millis(400));
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_spaces_requests_evenly() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        let limits = rate(10.0, None);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            let permit = gates.admit(id, Some(&limits), patient(), false).await.unwrap();
            at.push((Instant::now() - start).as_millis());
            drop(permit);
        }
        assert_eq!(at, [0, 100, 200, 300, 400]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_goes_at_once_then_the_rate_holds() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        let limits = rate(10.0, Some(3));
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            drop(gates.admit(id, Some(&limits), patient(), false).await.unwrap());
            at.push((Instant::now() - start).as_millis());
        }
        assert_eq!(at, [0, 0, 0, 100, 200]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_is_split_between_the_fleets_processes() {
        let gates = gates(4, 1);
        let id = Uuid::new_v4();
        let limits = rate(20.0, None);
        drop(gates.admit(id, Some(&limits), patient(), false).await.unwrap());
        let start = Instant::now();
        drop(gates.admit(id, Some(&limits), patient(), false).await.unwrap());
        // 20 per second for 4 processes: one every 200 ms here.
        assert_eq!((Instant::now() - start).as_millis(), 200);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_refused_after_a_release_passes_the_release_on() {
        let gates = Arc::new(gates(1, 0));
        let id = Uuid::new_v4();
        let limits = ProfileLimits { rate_per_s: Some(1.0), burst: None, max_concurrency: Some(1) };
        let first = gates.admit(id, Some(&limits), patient(), false).await.unwrap();
        let start = Instant::now();
        let admit = |patience: Patience| {
            let gates = gates.clone();
            tokio::spawn(async move { gates.admit(id, Some(&limits), patience, false).await.map(|_| Instant::now()) })
        };
        // Both wait for the slot; the hurried one first, and its turn would come too late.
        let hurried = admit(within(Duration::from_millis(500), Duration::from_secs(3600)));
        tokio::task::yield_now().await;
        let patient_job = admit(patient());
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(first);
        assert!(hurried.await.unwrap().is_err(), "its turn would come after its deadline");
        let admitted = tokio::time::timeout(Duration::from_secs(10), patient_job)
            .await
            .expect("the release reached the patient job")
            .unwrap()
            .unwrap();
        assert_eq!((admitted - start).as_millis(), 1000, "at its turn");
    }

    #[tokio::test(start_paused = true)]
    async fn a_turn_after_the_start_deadline_is_refused_at_once() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        let limits = rate(1.0, None);
        drop(gates.admit(id, Some(&limits), patient(), false).await.unwrap());
        let soon = within(Duration::from_millis(500), Duration::from_secs(60));
        let before = Instant::now();
        assert_eq!(gates.admit(id, Some(&limits), soon, false).await.unwrap_err(), Refusal::NoTurn);
        assert_eq!(Instant::now(), before, "refused without waiting");
        // A refused job took no turn: the next one is due when it was.
        let next = gates.admit(id, Some(&limits), patient(), false).await.unwrap();
        assert_eq!((Instant::now() - before).as_millis(), 1000);
        drop(next);
    }

    #[tokio::test(start_paused = true)]
    async fn a_long_wait_is_refused_with_its_length_when_patience_is_short() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        let limits = rate(0.1, None);
        drop(gates.admit(id, Some(&limits), patient(), false).await.unwrap());
        let short = within(Duration::from_secs(3600), Duration::from_secs(2));
        let later = |after| Refusal::Later { after: Duration::from_secs(after), reserved: false };
        assert_eq!(gates.admit(id, Some(&limits), short, false).await.unwrap_err(), later(10));
        assert_eq!(gates.admit(id, Some(&limits), short, false).await.unwrap_err(), later(10), "nothing reserved");
    }

    #[tokio::test(start_paused = true)]
    async fn a_backlog_refused_for_later_gets_one_reserved_turn_each() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        let limits = rate(0.5, None);
        drop(gates.admit(id, Some(&limits), patient(), false).await.unwrap());
        let reserve = Patience { reserve: true, ..within(Duration::from_secs(3600), Duration::from_secs(1)) };
        let turns: Vec<Refusal> = {
            let mut turns = Vec::new();
            for _ in 0..3 {
                turns.push(gates.admit(id, Some(&limits), reserve, false).await.unwrap_err());
            }
            turns
        };
        let reserved = |after| Refusal::Later { after: Duration::from_secs(after), reserved: true };
        assert_eq!(turns, [reserved(2), reserved(4), reserved(6)]);
        // Coming back prepaid, a job does not take another turn.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let start = Instant::now();
        drop(gates.admit(id, Some(&limits), patient(), true).await.unwrap());
        assert_eq!(Instant::now(), start);
        // The other two come back late, together: their turns are kept, but spaced at the rate.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..2 {
            drop(gates.admit(id, Some(&limits), patient(), true).await.unwrap());
            at.push((Instant::now() - start).as_secs());
        }
        assert_eq!(at, [0, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_live_job_is_not_kept_waiting_by_a_backlogs_reserved_turns() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        let limits = rate(1.0, None);
        let background = Patience { reserve: true, ..within(Duration::from_secs(86_400), Duration::from_millis(500)) };
        drop(gates.admit(id, Some(&limits), background, false).await.unwrap());
        for n in 2..=100u64 {
            let refusal = gates.admit(id, Some(&limits), background, false).await.unwrap_err();
            assert!(matches!(refusal, Refusal::Later { reserved: true, .. }), "{n}: {refusal:?}");
        }
        // 99 turns reserved over the next 99 s; a caller waits one interval, not 99 s.
        let start = Instant::now();
        let live = within(Duration::from_secs(5), Duration::from_secs(5));
        drop(gates.admit(id, Some(&limits), live, false).await.unwrap());
        assert_eq!((Instant::now() - start).as_millis(), 1000);
        // ... and the next background job's turn moved back by the one the caller took.
        let next = gates.admit(id, Some(&limits), background, false).await.unwrap_err();
        assert_eq!(next, Refusal::Later { after: Duration::from_secs(100), reserved: true });
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_from_the_target_cannot_overflow_or_pause_forever() {
        let gates = gates(1, 0);
        let id = Uuid::new_v4();
        gates.pause(id, Duration::MAX);
        let until = *gates.take_pause_news().get(&id).unwrap();
        assert!(until <= Utc::now() + chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_holds_and_a_release_lets_the_next_one_in() {
        let gates = Arc::new(gates(1, 0));
        let id = Uuid::new_v4();
        let limits = ProfileLimits { rate_per_s: None, burst: None, max_concurrency: Some(2) };
        let a = gates.admit(id, Some(&limits), patient(), false).await.unwrap();
        let _b = gates.admit(id, Some(&limits), patient(), false).await.unwrap();
        let third = {
            let gates = gates.clone();
            tokio::spawn(async move { gates.admit(id, Some(&limits), patient(), false).await.unwrap() })
        };
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!third.is_finished(), "a third request waits while two are in flight");
        drop(a);
        let third = third.await.unwrap();
        assert!(third.waited);
        let soon = within(Duration::from_millis(50), Duration::from_secs(1));
        assert_eq!(gates.admit(id, Some(&limits), soon, false).await.unwrap_err(), Refusal::NoTurn);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_stops_every_job_of_the_profile_and_only_it() {
        let gates = ProfileGates::new(Arc::new(FleetShare::default()));
        let (paused, other) = (Uuid::new_v4(), Uuid::new_v4());
        gates.pause(paused, Duration::from_secs(3));
        let news: Vec<Uuid> = gates.take_pause_news().into_keys().collect();
        assert_eq!(news, [paused], "the pause is passed on to the fleet");
        assert!(gates.take_pause_news().is_empty());
        let start = Instant::now();
        drop(gates.admit(other, None, patient(), false).await.unwrap());
        assert_eq!(Instant::now(), start);
        drop(gates.admit(paused, None, patient(), false).await.unwrap());
        assert_eq!((Instant::now() - start).as_secs(), 3);
        let short = within(Duration::from_secs(1), Duration::from_secs(1));
        gates.pause(paused, Duration::from_secs(5));
        assert_eq!(gates.admit(paused, None, short, false).await.unwrap_err(), Refusal::NoTurn);
        gates.prune(Duration::ZERO);
        tokio::time::sleep(Duration::from_secs(6)).await;
        gates.prune(Duration::ZERO);
        assert_eq!(gates.paused_profiles.load(Ordering::Relaxed), 0);
    }
}
