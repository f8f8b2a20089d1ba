//! The executor's side of circuit breaking (contract §9): ask the
//! destination's circuit before each attempt, tell it how the attempt ended.
//!
//! While a circuit is open, a live job (pre- or during-call) fails at once
//! with `circuit_open`: its caller is better served by a fast answer than by
//! a timeout. A post-call job is not failed: it waits through a delay queue
//! until the probe may go (plus jitter, so a backlog does not come back all at
//! once), without spending an attempt, unless its deadline is sooner.

use std::time::Duration;

use super::attempt::AttemptEnd;
use super::{Execution, JobRun, MIN_ATTEMPT_BUDGET};
use crate::job::{ErrorKind, JobError, Outcome, Phase};
use crate::metrics::DeferReason;
use crate::traffic::breaker::{Admission, Origin, Permit, Report};

impl JobRun<'_> {
    /// The right to send the next attempt to `origin`, or how the job ends
    /// (or waits) because its circuit is open. No attempt is counted.
    pub(super) fn admit_to(&mut self, origin: &Origin) -> Result<Permit, Execution> {
        match self.executor.breakers.admit(origin) {
            Admission::Go(permit) => Ok(permit),
            Admission::Open { retry_in } => Err(self.circuit_open(origin, retry_in)),
        }
    }

    /// Fails or delays the job now when `origin`'s circuit is open, without
    /// taking its probe (the job may yet wait for its profile's turn).
    pub(super) fn circuit_closed(&mut self, origin: &Origin) -> Result<(), Execution> {
        match self.executor.breakers.open_for(origin) {
            Some(retry_in) => Err(self.circuit_open(origin, retry_in)),
            None => Ok(()),
        }
    }

    fn circuit_open(&mut self, origin: &Origin, retry_in: Duration) -> Execution {
        let mut error = JobError::new(
            ErrorKind::CircuitOpen,
            format!(
                "the circuit of {origin} is open (its attempts failed too often in a row); \
                 nothing is sent to it for another {} ms",
                retry_in.as_millis()
            ),
            false,
        );
        if self.run.job.phase == Phase::PostCall {
            let spread = retry_in.mul_f64(self.executor.settings.jitter * fastrand::f64());
            let delay = retry_in + spread + Duration::from_millis(1);
            let left = self.executor.time_left(self.run.deadline).unwrap_or(Duration::ZERO);
            if delay + MIN_ATTEMPT_BUDGET <= left {
                return Execution::RetryLater {
                    delay,
                    attempts: self.attempts,
                    error,
                    reason: DeferReason::CircuitOpen,
                    turn: None,
                };
            }
            error.message.push_str("; the deadline comes sooner");
        }
        self.finish(Outcome::Failed, None, Some(error))
    }
}

/// An attempt the job's deadline cut shorter than this tells nothing about
/// its origin: jobs that start at the end of their time (after waiting for a
/// rate limit's turn, say) must not open a healthy origin's circuit.
const TELLING_TIMEOUT: Duration = Duration::from_secs(1);

/// What an attempt's end (given `timeout`) tells about its origin: connect
/// errors, timeouts and 5xx count toward opening; a 4xx (401 included) tells
/// nothing; an attempt that sent nothing (the egress guard, a request that
/// could not be signed) is not an attempt at the origin at all.
pub(super) fn report(end: &AttemptEnd, timeout: Duration) -> Report {
    match end {
        AttemptEnd::Response(_) => Report::Answered,
        AttemptEnd::Unauthorized { .. } => Report::Neutral,
        AttemptEnd::Failed { error, response, .. } => match error.kind {
            ErrorKind::Connect | ErrorKind::Timeout => Report::Failed,
            ErrorKind::DeadlineExceeded if timeout >= TELLING_TIMEOUT => Report::Failed,
            ErrorKind::DeadlineExceeded => Report::Neutral,
            ErrorKind::HttpStatus if response.as_ref().is_some_and(|r| r.status >= 500) => Report::Failed,
            ErrorKind::DestinationBlocked | ErrorKind::InvalidJob => Report::NotSent,
            _ => Report::Neutral,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::job::ResponseSummary;

    const SECOND: Duration = Duration::from_secs(1);

    fn failed(kind: ErrorKind, status: Option<u16>) -> AttemptEnd {
        let response = status.map(|status| ResponseSummary {
            status,
            headers: BTreeMap::new(),
            body: serde_json::Value::Null,
            body_truncated: false,
        });
        AttemptEnd::Failed { error: JobError::new(kind, "m", true), response, retry_after: None }
    }

    #[test]
    fn connect_errors_timeouts_and_5xx_count_and_4xx_or_nothing_sent_do_not() {
        for kind in [ErrorKind::Connect, ErrorKind::Timeout, ErrorKind::DeadlineExceeded] {
            assert_eq!(report(&failed(kind, None), SECOND), Report::Failed, "{kind:?}");
        }
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(503)), SECOND), Report::Failed);
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(500)), SECOND), Report::Failed);
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(429)), SECOND), Report::Neutral);
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(404)), SECOND), Report::Neutral);
        assert_eq!(report(&failed(ErrorKind::DestinationBlocked, None), SECOND), Report::NotSent);
        assert_eq!(report(&failed(ErrorKind::InvalidJob, None), SECOND), Report::NotSent);
        let short = Duration::from_millis(30);
        assert_eq!(report(&failed(ErrorKind::DeadlineExceeded, None), short), Report::Neutral, "cut short by the job");
    }
}
