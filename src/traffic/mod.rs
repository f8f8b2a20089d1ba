//! Traffic control (contract §9): what protects the APIs authrelay calls and
//! the callers who wait.
//!
//! - [`limits`]: a profile's `limits` (rate, burst, concurrency) held for the
//!   whole fleet, and the pause a `429` with `Retry-After` imposes;
//! - [`breaker`]: circuit breakers per destination origin;
//! - [`live_first`]: background lanes yield the CPU to live (during-call) work.

pub mod breaker;
pub mod fleet;
pub mod limits;
pub mod live_first;
