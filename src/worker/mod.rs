//! The worker runtime: everything that turns job messages into results.
//!
//! - [`step`]: one delivery in, one [`Disposition`](crate::queue::settle::Disposition)
//!   out (parse, resolve credentials, execute). No broker calls.
//! - [`lane`]: one consumer per phase, bounded concurrency, each delivery in
//!   a task of its own;
//! - [`delivery`]: that task: process, settle, record; errors and panics
//!   included, every delivery is settled.
//! - [`events`]: the profile-event consumer that drops cached profiles and tokens.
//! - [`health`]: credential health, tallied per job in memory and written in batches.
//! - [`supervisor`]: the broker connection that lanes and events share, and
//!   reconnecting when it is lost.
//!
//! [`WorkerContext`] holds what all of them share.

mod delivery;
pub mod events;
pub mod health;
pub mod lane;
pub mod step;
mod subscription;
pub mod supervisor;

use std::sync::Arc;

use crate::config::{Config, LiveFirstConfig, TokenSharing, WorkerConfig};
use crate::credentials::http_clients::HttpClients;
use crate::credentials::oauth2::{TokenClient, TokenClientSettings};
use crate::credentials::token_cache::{TokenCache, TokenCacheSettings};
use crate::credentials::token_store::SharedTokens;
use crate::egress::EgressPolicy;
use crate::executor::Executor;
use crate::job::JobLimits;
use crate::metrics::Metrics;
use crate::profile::ProfileStore;
use crate::profile::cache::ProfileCache;
use crate::traffic::limits::{FleetShare, ProfileGates};
use crate::traffic::live_first::LiveFirst;

/// Everything a worker needs, shared by all lanes.
pub struct WorkerContext {
    pub store: ProfileStore,
    pub profiles: ProfileCache,
    pub executor: Executor,
    pub settings: Arc<WorkerConfig>,
    pub limits: JobLimits,
    pub metrics: Metrics,
    /// What settled jobs said about their profiles' health, until the next flush.
    pub health: Arc<health::HealthRecorder>,
    /// Shrinks the post-call lane while live jobs run.
    pub live_first: Arc<LiveFirst>,
}

/// A client for target APIs or token endpoints could not be built (the TLS
/// configuration of the platform, say).
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client")]
pub struct ClientError(#[from] reqwest::Error);

impl WorkerContext {
    /// The worker's shared parts: HTTP clients behind the egress guard, the
    /// token cache, the profile cache and the executor.
    pub fn build(config: &Config, store: ProfileStore, metrics: Metrics) -> Result<Self, ClientError> {
        let settings = Arc::new(config.worker.clone());
        let egress = EgressPolicy::new(config.allow_private_destinations.clone());
        let clients = HttpClients::new(egress.clone(), settings.connect_timeout)?;
        let token_client = TokenClient::with_clients(
            clients.clone(),
            TokenClientSettings { default_lifetime: settings.token_default_lifetime, ..Default::default() },
        );
        let shared = match settings.token_sharing {
            TokenSharing::Fleet => Some(SharedTokens::new(store.pool().clone(), config.key_ring.clone())),
            TokenSharing::Process => None,
        };
        let tokens = Arc::new(TokenCache::new(
            token_client,
            TokenCacheSettings { failure_ttl: settings.token_failure_ttl, ..Default::default() },
            shared,
        ));
        let gates = Arc::new(ProfileGates::new(Arc::new(FleetShare::default())));
        let executor = Executor::new(clients, egress, tokens, gates, settings.clone(), metrics.clone());
        let limits = JobLimits { max_message_bytes: settings.max_job_bytes, ..Default::default() };
        let health = Arc::new(health::HealthRecorder::new(&metrics));
        let profiles = ProfileCache::new(settings.profile_cache_ttl);
        // A process without the post-call lane (`--lanes`) has nothing to hold back.
        let runs_background = settings.lanes.contains(crate::phase::Phase::PostCall);
        let live_first =
            LiveFirstConfig { enabled: settings.live_first.enabled && runs_background, ..settings.live_first.clone() };
        let live_first = Arc::new(LiveFirst::new(
            &live_first,
            settings.post_call.concurrency,
            metrics.lane_concurrency(crate::phase::Phase::PostCall),
        ));
        Ok(Self { store, profiles, executor, settings, limits, metrics, health, live_first })
    }

    /// Drops every cached profile and token (after a reconnect: events may have been missed).
    pub fn clear_caches(&self) {
        self.profiles.clear();
        self.executor.tokens().clear();
        self.executor.clients().clear();
    }

    /// Drops what is cached for one profile (a profile event).
    pub fn invalidate_profile(&self, id: uuid::Uuid) {
        self.profiles.invalidate(id);
        self.executor.tokens().invalidate_profile(id);
        self.executor.clients().invalidate_profile(id);
    }
}
