//! What `/readyz` reports: the database (queried on each probe) and one
//! [`Latch`] per part that keeps its own state (the broker connection, each
//! consumer). A latch is registered once, by name, by the part it describes,
//! and that part alone sets it; the endpoint only reads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::Pool;

/// One part's readiness, set by that part. Starts unready.
#[derive(Clone, Debug, Default)]
pub struct Latch(Arc<AtomicBool>);

impl Latch {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Clone)]
pub struct Readiness {
    pool: Pool,
    latches: Arc<std::sync::Mutex<BTreeMap<&'static str, Latch>>>,
}

/// The answer of one probe: ready or not, and each check by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub ready: bool,
    pub checks: BTreeMap<&'static str, &'static str>,
}

impl Readiness {
    pub fn new(pool: Pool) -> Self {
        Self { pool, latches: Arc::default() }
    }

    /// The latch named `name`, registered (unready) on first use; `/readyz`
    /// is 503 while any registered latch is unready.
    pub fn latch(&self, name: &'static str) -> Latch {
        crate::lock::lock(&self.latches).entry(name).or_default().clone()
    }

    pub async fn check(&self) -> Report {
        let db_ok = tokio::time::timeout(Duration::from_secs(2), async {
            let client = self.pool.get().await.ok()?;
            client.simple_query("SELECT 1").await.ok()
        })
        .await
        .ok()
        .flatten()
        .is_some();
        let mut checks = BTreeMap::from([("database", state(db_ok))]);
        let mut ready = db_ok;
        for (name, latch) in crate::lock::lock(&self.latches).iter() {
            checks.insert(*name, state(latch.is_ready()));
            ready &= latch.is_ready();
        }
        Report { ready, checks }
    }
}

fn state(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}
