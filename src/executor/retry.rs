//! Which failures are retried, and how long to wait before the next attempt.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use chrono::{DateTime, Utc};
use reqwest::StatusCode;

use crate::config::RetryDelays;
use crate::job::JobError;
use crate::traffic::with_jitter;

/// Statuses the contract retries: 408, 425, 429, 500, 502, 503, 504.
pub fn is_retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 425 | 429 | 500 | 502 | 503 | 504)
}

/// The delay before attempt `attempts + 1`, after `attempts` attempts, with
/// ±`jitter` applied, so that many jobs failing together do not retry together.
pub fn delay_before_next(delays: &RetryDelays, attempts: u32, jitter: f64) -> Duration {
    let base = match delays {
        RetryDelays::Exponential { base } => ExponentialBuilder::new()
            .with_min_delay(*base)
            .with_factor(2.0)
            .without_max_delay()
            .with_max_times(attempts.max(1) as usize)
            .build()
            .nth(attempts.saturating_sub(1) as usize)
            .unwrap_or(*base),
        RetryDelays::Schedule(list) => {
            let index = (attempts.saturating_sub(1) as usize).min(list.len().saturating_sub(1));
            list.get(index).copied().unwrap_or(Duration::from_secs(1))
        }
    };
    with_jitter(base, jitter)
}

/// A failed attempt's error as the job's rules make it (contract §9): for a
/// job with `request.idempotent: false`, a failure that may have reached the
/// target is final (`retryable: false`, `maybe_sent: true`); otherwise
/// `maybe_sent` is left out and retries are as before. HTTP statuses never
/// carry `maybe_sent`: the target answered, and its answer says what it did.
pub fn under_idempotency(mut error: JobError, idempotent: bool) -> JobError {
    if !error.maybe_sent || idempotent {
        error.maybe_sent = false;
        return error;
    }
    if error.retryable {
        error.retryable = false;
        error.message.push_str("; not retried: the request may have reached the target and the job is not idempotent");
    }
    error
}

/// The longest `Retry-After` taken from a target (the longest delay queue): the
/// value is the target's to choose, and a century would pause a profile for good.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `Retry-After` as seconds or an HTTP date (RFC 9110 §10.2.3), at most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    let after = match value.parse::<u64>() {
        Ok(seconds) => Duration::from_secs(seconds),
        Err(_) => {
            let when = DateTime::parse_from_rfc2822(value).ok()?.with_timezone(&Utc);
            (when - now).to_std().unwrap_or(Duration::ZERO)
        }
    };
    Some(after.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delays_double_from_the_base() {
        let d = RetryDelays::Exponential { base: Duration::from_millis(200) };
        let seen: Vec<u128> = (1..=4).map(|n| delay_before_next(&d, n, 0.0).as_millis()).collect();
        assert_eq!(seen, [200, 400, 800, 1600]);
    }

    #[test]
    fn schedules_repeat_their_last_entry() {
        let d = RetryDelays::Schedule(vec![Duration::from_secs(5), Duration::from_secs(30)]);
        let seen: Vec<u64> = (1..=4).map(|n| delay_before_next(&d, n, 0.0).as_secs()).collect();
        assert_eq!(seen, [5, 30, 30, 30]);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let d = RetryDelays::Exponential { base: Duration::from_millis(1000) };
        let samples: Vec<Duration> = (0..500).map(|_| delay_before_next(&d, 1, 0.2)).collect();
        assert!(samples.iter().all(|s| *s >= Duration::from_millis(800) && *s <= Duration::from_millis(1200)));
        assert!(
            samples.iter().any(|s| *s < Duration::from_millis(950))
                && samples.iter().any(|s| *s > Duration::from_millis(1050))
        );
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = DateTime::parse_from_rfc3339("2026-11-29T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Sun, 29 Nov 2026 10:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("18446744073709551615", now),
            Some(MAX_RETRY_AFTER),
            "a target cannot pause forever"
        );
    }

    #[test]
    fn maybe_sent_failures_are_final_only_for_jobs_that_are_not_idempotent() {
        use crate::job::ErrorKind;
        let mut timeout = JobError::new(ErrorKind::Timeout, "no response within 300 ms", true);
        timeout.maybe_sent = true;
        let booking = under_idempotency(timeout.clone(), false);
        assert!(booking.maybe_sent && !booking.retryable, "{booking:?}");
        let lookup = under_idempotency(timeout, true);
        assert!(!lookup.maybe_sent && lookup.retryable, "{lookup:?}");
        let refused = JobError::new(ErrorKind::Connect, "connection refused", true);
        let refused = under_idempotency(refused, false);
        assert!(!refused.maybe_sent && refused.retryable, "never sent: retried as before");
    }

    #[test]
    fn only_the_contracts_statuses_are_retried() {
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 422, 501, 505] {
            assert!(!is_retryable_status(StatusCode::from_u16(s).unwrap()), "{s}");
        }
    }
}
