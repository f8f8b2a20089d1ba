//! Decrypted profiles kept in memory by workers, so a job does not cost a
//! database round trip and a decryption. Entries leave on a profile event,
//! on a broker reconnect (events may have been missed), or after a TTL as a
//! last line of defence. Loads are single-flight: a burst of jobs on a cold
//! profile costs one database query, not one per job.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use tokio::time::Instant;
use uuid::Uuid;

use super::{AuthConfig, AuthProfile, StoreError};
use crate::lock::lock;

/// A load in flight, awaited by every job that needs the profile meanwhile.
pub type Load = Shared<BoxFuture<'static, Result<Arc<AuthProfile>, Arc<StoreError>>>>;

/// What a job needs of a profile, shared by every job that uses it.
#[derive(Debug)]
pub struct CachedProfile {
    pub workspace_id: String,
    pub version: i64,
    pub config: Arc<AuthConfig>,
    /// The profile's traffic limits, if any.
    pub limits: Option<super::ProfileLimits>,
    /// [`AuthConfig::token_request_digest`] of an OAuth config, worked out once.
    pub token_digest: Option<[u8; 32]>,
}

impl CachedProfile {
    fn of(profile: &AuthProfile) -> Self {
        Self {
            workspace_id: profile.workspace_id.clone(),
            version: profile.version,
            token_digest: profile.config.token_grant().map(|_| profile.config.token_request_digest()),
            config: Arc::new(profile.config.clone()),
            limits: profile.limits,
        }
    }
}

pub struct ProfileCache {
    entries: Mutex<HashMap<Uuid, (Arc<CachedProfile>, Instant)>>,
    loading: Mutex<HashMap<(String, Uuid), Load>>,
    ttl: Duration,
}

impl ProfileCache {
    pub fn new(ttl: Duration) -> Self {
        Self { entries: Mutex::default(), loading: Mutex::default(), ttl }
    }

    /// A cached profile of this workspace. Another workspace's id is a miss,
    /// and the store will answer it with "not found".
    pub fn get(&self, workspace_id: &str, id: Uuid) -> Option<Arc<CachedProfile>> {
        let mut entries = lock(&self.entries);
        let (profile, loaded) = entries.get(&id)?;
        if loaded.elapsed() > self.ttl {
            entries.remove(&id);
            return None;
        }
        (profile.workspace_id == workspace_id).then(|| profile.clone())
    }

    /// Stores a profile unless a newer version is already cached.
    pub fn insert(&self, profile: Arc<AuthProfile>) -> Arc<CachedProfile> {
        let cached = Arc::new(CachedProfile::of(&profile));
        let mut entries = lock(&self.entries);
        match entries.get(&profile.id) {
            Some((newer, _)) if newer.version > profile.version => newer.clone(),
            _ => {
                entries.insert(profile.id, (cached.clone(), Instant::now()));
                cached
            }
        }
    }

    /// The load of `id` for `workspace_id` in flight, or a new one from `start`.
    /// Every caller awaits the same result, success or error, so a burst of jobs
    /// on a cold profile costs one query, and a database outage one timeout.
    pub fn join_load(
        &self,
        workspace_id: &str,
        id: Uuid,
        start: impl FnOnce() -> BoxFuture<'static, Result<Arc<AuthProfile>, Arc<StoreError>>>,
    ) -> Load {
        let mut loading = lock(&self.loading);
        loading.entry((workspace_id.to_owned(), id)).or_insert_with(|| start().shared()).clone()
    }

    /// Caches the result of a finished load, unless an event invalidated the
    /// profile while it was loading (the result may be the old version then).
    pub fn finish_load(
        &self,
        workspace_id: &str,
        id: Uuid,
        load: &Load,
        profile: &Arc<AuthProfile>,
    ) -> Arc<CachedProfile> {
        let mut loading = lock(&self.loading);
        let key = (workspace_id.to_owned(), id);
        if loading.get(&key).is_some_and(|l| l.ptr_eq(load)) {
            loading.remove(&key);
            drop(loading);
            return self.insert(profile.clone());
        }
        Arc::new(CachedProfile::of(profile))
    }

    /// Forgets a failed load, so the next job tries again.
    pub fn abandon_load(&self, workspace_id: &str, id: Uuid, load: &Load) {
        let mut loading = lock(&self.loading);
        let key = (workspace_id.to_owned(), id);
        if loading.get(&key).is_some_and(|l| l.ptr_eq(load)) {
            loading.remove(&key);
        }
    }

    pub fn invalidate(&self, id: Uuid) {
        lock(&self.loading).retain(|(_, loading), _| *loading != id);
        lock(&self.entries).remove(&id);
    }

    pub fn clear(&self) {
        lock(&self.loading).clear();
        lock(&self.entries).clear();
    }

    pub fn len(&self) -> usize {
        lock(&self.entries).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use secrecy::SecretString;

    use super::*;

    fn profile(ws: &str, id: Uuid, version: i64) -> Arc<AuthProfile> {
        Arc::new(AuthProfile {
            id,
            workspace_id: ws.into(),
            name: "p".into(),
            config: crate::profile::auth_config::Credential::Bearer { token: SecretString::from("t") }.into(),
            limits: None,
            version,
            created_at: chrono::Utc::now(),
            updated_at: chrono::Utc::now(),
        })
    }

    #[tokio::test]
    async fn concurrent_loads_of_one_profile_run_once() {
        let cache = ProfileCache::new(Duration::from_secs(60));
        let id = Uuid::new_v4();
        let starts = Arc::new(AtomicUsize::new(0));
        let loads: Vec<Load> = (0..20)
            .map(|_| {
                let starts = starts.clone();
                cache.join_load("acme", id, move || {
                    starts.fetch_add(1, Ordering::SeqCst);
                    Box::pin(async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(profile("acme", id, 1))
                    })
                })
            })
            .collect();
        for load in &loads {
            let loaded = load.clone().await.unwrap();
            cache.finish_load("acme", id, load, &loaded);
        }
        assert_eq!(starts.load(Ordering::SeqCst), 1);
        assert_eq!(cache.get("acme", id).unwrap().version, 1);
        assert!(cache.get("globex", id).is_none(), "another workspace never sees it");
    }

    #[tokio::test]
    async fn a_profile_invalidated_while_loading_is_not_cached() {
        let cache = ProfileCache::new(Duration::from_secs(60));
        let id = Uuid::new_v4();
        let load = cache.join_load("acme", id, move || Box::pin(async move { Ok(profile("acme", id, 1)) }));
        cache.invalidate(id);
        let loaded = load.clone().await.unwrap();
        let served = cache.finish_load("acme", id, &load, &loaded);
        assert_eq!(served.version, 1, "the job that waited still runs");
        assert!(cache.get("acme", id).is_none(), "but the possibly stale version is not kept");
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let cache = ProfileCache::new(Duration::from_secs(60));
        let id = Uuid::new_v4();
        cache.insert(profile("acme", id, 3));
        cache.insert(profile("acme", id, 2));
        assert_eq!(cache.get("acme", id).unwrap().version, 3);
    }
}
