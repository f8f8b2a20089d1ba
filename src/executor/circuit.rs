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

/// What an attempt's end tells about its origin: connect errors, timeouts and
/// 5xx count toward opening; a 4xx (401 included) and anything that sent
/// nothing (the egress guard, a request that could not be signed) tell nothing.
pub(super) fn report(end: &AttemptEnd) -> Report {
    match end {
        AttemptEnd::Response(_) => Report::Answered,
        AttemptEnd::Unauthorized { .. } => Report::Neutral,
        AttemptEnd::Failed { error, response, .. } => match error.kind {
            ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::DeadlineExceeded => Report::Failed,
            ErrorKind::HttpStatus if response.as_ref().is_some_and(|r| r.status >= 500) => Report::Failed,
            _ => Report::Neutral,
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::job::ResponseSummary;

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
            assert_eq!(report(&failed(kind, None)), Report::Failed, "{kind:?}");
        }
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(503))), Report::Failed);
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(500))), Report::Failed);
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(429))), Report::Neutral);
        assert_eq!(report(&failed(ErrorKind::HttpStatus, Some(404))), Report::Neutral);
        assert_eq!(report(&failed(ErrorKind::DestinationBlocked, None)), Report::Neutral);
        assert_eq!(report(&failed(ErrorKind::InvalidJob, None)), Report::Neutral);
    }
}
