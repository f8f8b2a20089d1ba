//! Before each attempt: the turn its profile's limits give it (contract §9).
//! Waiting uses no attempt. A job whose turn comes after it must have started
//! fails `rate_limited`; a post-call job whose turn is further away than a
//! lane slot should be held waits in a delay queue instead, with its turn
//! reserved when the rate was what held it.

use std::time::Duration;

use chrono::Utc;
use tokio::time::Instant;

use super::{Execution, JobRun, MIN_ATTEMPT_BUDGET};
use crate::job::{ErrorKind, JobError, Outcome, Phase};
use crate::metrics::DeferReason;
use crate::traffic::limits::{Patience, Permit, Refusal};

/// A post-call job held back by a concurrency limit or a pause comes back
/// after at least this long (a concurrency slot has no time to reserve).
const UNRESERVED_DELAY: Duration = Duration::from_secs(5);

impl JobRun<'_> {
    /// The permit for the next attempt, or how the job ends (or is delayed) for want of one.
    pub(super) async fn take_turn(&mut self, budget: Duration) -> Result<Option<Permit>, Execution> {
        let Some(auth) = self.run.auth else { return Ok(None) };
        let Some((profile, _)) = auth.profile else { return Ok(None) };
        let executor = self.executor;
        let phase = self.run.job.phase;
        // A post-call job waits in a delay queue rather than in a lane slot; a live
        // job waits here, as long as its deadline allows.
        let background = phase == Phase::PostCall;
        let patience = Patience {
            // A margin for a late wake-up: a turn at the very end would leave no time to send.
            start_by: Instant::now() + budget.saturating_sub(2 * MIN_ATTEMPT_BUDGET),
            max_wait: if background { executor.settings.max_in_process_delay } else { budget },
            reserve: background,
        };
        // A turn reserved by an earlier delivery is used once, when it has come.
        let prepaid = match self.run.turn.take() {
            Some(turn) => {
                let early = (turn - Utc::now()).to_std().unwrap_or(Duration::ZERO);
                if early > patience.max_wait {
                    // The delay queue let it out early: back until its turn, keeping the turn.
                    return Err(self.delay(early - patience.max_wait, Some(turn)));
                }
                tokio::time::sleep(early).await;
                true
            }
            None => false,
        };
        match executor.gates.admit(profile, auth.limits.as_ref(), patience, prepaid).await {
            Ok(permit) => {
                if permit.waited {
                    self.count_throttled();
                }
                Ok(Some(permit))
            }
            Err(refusal) => {
                self.count_throttled();
                Err(match refusal {
                    Refusal::NoTurn => self.no_turn(),
                    Refusal::Later { after, reserved: true } => {
                        let turn = Utc::now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::zero());
                        // Back a little early, to wait out the rest here: a delay queue
                        // expires messages in the order they were queued, so one queued
                        // a moment out of turn would hold back those behind it and
                        // they would all go at once, late.
                        self.delay(after.saturating_sub(patience.max_wait), Some(turn))
                    }
                    // After the pause or a while for a slot, spread over half as long again.
                    Refusal::Later { after, reserved: false } => {
                        self.delay(after.max(UNRESERVED_DELAY).mul_f64(1.0 + 0.5 * fastrand::f64()), None)
                    }
                })
            }
        }
    }

    /// The job's turn would come after it must have started (or its wait ran past it).
    pub(super) fn no_turn(&mut self) -> Execution {
        let error = JobError::new(
            ErrorKind::RateLimited,
            "the profile's limits (or a 429's pause) left no turn before the deadline",
            false,
        );
        let response = self.last.take().and_then(|(_, response)| response);
        self.finish(Outcome::Failed, response, Some(error))
    }

    /// `authrelay_jobs_throttled_total`: once per delivery, however often it waits.
    fn count_throttled(&mut self) {
        if !std::mem::replace(&mut self.throttled, true) {
            self.executor.metrics.throttled(self.run.job.phase).inc();
        }
    }

    /// Back through a delay queue, as many attempts made as before.
    fn delay(&self, delay: Duration, turn: Option<chrono::DateTime<Utc>>) -> Execution {
        let error = JobError::new(ErrorKind::RateLimited, "waiting for the profile's turn", false);
        Execution::RetryLater { delay, attempts: self.attempts, error, reason: DeferReason::RateLimited, turn }
    }
}
