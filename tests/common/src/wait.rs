//! The one bounded wait: ask again until the answer is there or time is up.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

/// How often [`eventually`] asks again.
const POLL: Duration = Duration::from_millis(20);

/// Calls `probe` until it returns `Some`, every 20 ms, and returns that value;
/// panics naming `what` was awaited once `within` has passed. The probe runs at
/// least once, and once more at the very end, so a slow probe still gets its say.
///
/// ```ignore
/// let ready = eventually(WAIT, "the app is ready", async || (app.ready().await == Some(200)).then_some(())).await;
/// ```
pub async fn eventually<T>(within: Duration, what: impl fmt::Display, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {within:?} waiting until {what}");
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

/// A message for [`eventually`] that is only written when the wait fails, so it
/// can show the state at that moment: `lazy(|| format!("{} results", tap.len()))`.
pub fn lazy<F: Fn() -> String>(describe: F) -> Lazy<F> {
    Lazy(describe)
}

pub struct Lazy<F>(F);

impl<F: Fn() -> String> fmt::Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&(self.0)())
    }
}
