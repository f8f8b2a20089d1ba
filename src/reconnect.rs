//! The one way authrelay waits between attempts to reach a dependency (the
//! database at start, the broker at start and after a loss, the outbox
//! relay's broker): delays that double from a first step up to a cap, built on
//! `backon`.
//!
//! Two shapes of use: [`retry_within`] for start-up, which gives up after a
//! bounded wait so a missing dependency is a clear error rather than a hang,
//! and [`Backoff::delays`] for loops that reconnect until shutdown (they race
//! each sleep against the shutdown signal themselves).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use backon::{BackoffBuilder as _, ExponentialBuilder, Retryable as _};

/// Doubling delays from `first` to `max`. No jitter: the waits stay exactly
/// predictable (start-up bounds, how soon a lane resumes after an outage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration) -> Self {
        Self { first, max }
    }

    fn builder(self) -> ExponentialBuilder {
        ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(2.0)
            .without_max_times()
    }

    /// The delays, without end: start again from `first` by calling this again.
    pub fn delays(self) -> impl Iterator<Item = Duration> + Send {
        self.builder().build()
    }
}

/// Runs `attempt` until it succeeds, fails in a way `retryable` calls final,
/// or about `wait` has passed; `on_retry` hears each failure that is retried
/// and the delay before the next attempt. Returns the last error otherwise.
pub async fn retry_within<T, E, Fut>(
    backoff: Backoff,
    wait: Duration,
    attempt: impl FnMut() -> Fut,
    retryable: impl Fn(&E) -> bool,
    mut on_retry: impl FnMut(&E, Duration),
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let started = Instant::now();
    attempt
        .retry(backoff.builder().with_total_delay(Some(wait)))
        .sleep(tokio::time::sleep)
        .when(|e| retryable(e) && started.elapsed() < wait)
        .notify(|e, delay| on_retry(e, delay))
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn delays_double_up_to_the_cap() {
        let seen: Vec<u64> = Backoff::new(Duration::from_millis(100), Duration::from_millis(500))
            .delays()
            .take(5)
            .map(|d| d.as_millis() as u64)
            .collect();
        assert_eq!(seen, [100, 200, 400, 500, 500]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_retryable_failure_is_retried_until_the_wait_is_over() {
        let tries = AtomicU32::new(0);
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let result: Result<(), &str> = retry_within(
            backoff,
            Duration::from_secs(1),
            || async {
                tries.fetch_add(1, Ordering::SeqCst);
                Err("down")
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert_eq!(result, Err("down"));
        // 100 + 200 + 400 ms fit in one second; the next 800 would not.
        assert_eq!(tries.load(Ordering::SeqCst), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_final_failure_is_not_retried_and_a_success_ends_the_wait() {
        let tries = AtomicU32::new(0);
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let refused: Result<(), &str> =
            retry_within(backoff, Duration::from_secs(30), || async { Err("bad password") }, |_| false, |_, _| {})
                .await;
        assert_eq!(refused, Err("bad password"));
        let up = retry_within(
            backoff,
            Duration::from_secs(30),
            || async {
                match tries.fetch_add(1, Ordering::SeqCst) {
                    0 | 1 => Err("starting"),
                    _ => Ok("up"),
                }
            },
            |_| true,
            |_, _| {},
        )
        .await;
        assert_eq!(up, Ok("up"));
    }
}
