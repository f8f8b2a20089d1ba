//! Traffic control (contract §9): what protects the APIs authrelay calls and
//! the callers who wait.
//!
//! - [`limits`]: a profile's `limits` (rate, burst, concurrency) held for the
//!   whole fleet, and the pause a `429` with `Retry-After` imposes;
//! - [`breaker`]: circuit breakers per destination origin;
//! - [`live_first`]: background lanes yield the CPU to live (during-call) work.

use std::time::Duration;

pub mod breaker;
pub mod fleet;
pub mod limits;
pub mod live_first;

/// `delay` ± `jitter` (a fraction of it), at random: so that retries and probes
/// that became due together do not arrive together.
pub fn with_jitter(delay: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return delay;
    }
    let factor = 1.0 + jitter * (2.0 * fastrand::f64() - 1.0);
    delay.mul_f64(factor.max(0.0))
}
