//! `authrelay run`: builds every part from a [`Config`] and runs them until
//! the shutdown token is cancelled.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState, Readiness};
use crate::config::Config;
use crate::credentials::oauth2::{TokenClient, TokenClientSettings};
use crate::credentials::probe::Prober;
use crate::credentials::token_cache::{TokenCache, TokenCacheSettings};
use crate::db::Database;
use crate::egress::EgressPolicy;
use crate::executor::Executor;
use crate::job::JobLimits;
use crate::metrics::Metrics;
use crate::outbox::{Relay, RelaySettings};
use crate::profile::ProfileStore;
use crate::profile::cache::ProfileCache;
use crate::queue::{Names, broker};
use crate::worker::WorkerContext;

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub worker: bool,
    pub api: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { worker: true, api: true };
}

impl FromStr for Roles {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut roles = Roles { worker: false, api: false };
        for role in s.split(',').map(str::trim).filter(|r| !r.is_empty()) {
            match role {
                "worker" => roles.worker = true,
                "api" => roles.api = true,
                other => return Err(format!("unknown role `{other}` (roles: worker, api)")),
            }
        }
        if !roles.worker && !roles.api {
            return Err("name at least one role: worker, api".into());
        }
        Ok(roles)
    }
}

pub struct App {
    config: Config,
    roles: Roles,
    db: Database,
    pool: Pool,
    store: ProfileStore,
    metrics: Metrics,
    readiness: Readiness,
    listener: TcpListener,
    worker: Option<(Arc<WorkerContext>, lapin::Connection)>,
}

impl App {
    /// Prepares the database (create, migrate), checks that every stored secret
    /// can be opened by the key ring, and binds the HTTP listener (port 0 picks one).
    pub async fn build(config: Config, roles: Roles) -> anyhow::Result<Self> {
        let (db, pool) = Database::prepare(&config.database).await?;
        let store = ProfileStore::new(pool.clone(), config.key_ring.clone());
        ensure_keys_cover_store(&store).await?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on AUTHRELAY_HTTP_ADDR={}", config.http_addr))?;
        let readiness = Readiness::new(pool.clone());
        let metrics = Metrics::new();
        // Every role needs the broker (the outbox relay runs everywhere), so an
        // unreachable broker is a start-up error whatever the roles.
        let connection = broker::connect_with_wait(&config.amqp_url, config.database.connect_timeout).await?;
        broker::declare_topology(&connection, &Names::new(&config.amqp_prefix)).await?;
        let worker = if roles.worker {
            let ctx = Arc::new(worker_context(&config, store.clone(), metrics.clone())?);
            Some((ctx, connection))
        } else {
            crate::queue::close_connection(&connection, "topology declared").await;
            None
        };
        Ok(Self { config, roles, db, pool, store, metrics, readiness, listener, worker })
    }

    pub fn worker(&self) -> Option<&Arc<WorkerContext>> {
        self.worker.as_ref().map(|(ctx, _)| ctx)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn store(&self) -> &ProfileStore {
        &self.store
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Serves until `shutdown` is cancelled, then drains and returns.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = ApiState {
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            admin_token: self.config.admin_token.clone(),
            readiness: self.readiness.clone(),
            prober: prober(&self.config)?,
            replay: api::replay::ReplayTarget {
                amqp_url: self.config.amqp_url.clone(),
                names: Names::new(&self.config.amqp_prefix),
                settings: Arc::new(self.config.worker.clone()),
            },
        };
        let addr = self.http_addr();
        // Without the api role the port still serves health and metrics, so a
        // worker-only process can be probed and scraped.
        let router = if self.roles.api { api::router(state) } else { api::ops_router(state) };
        let workers = self.worker.map(|(ctx, connection)| {
            let names = Names::new(&self.config.amqp_prefix);
            tokio::spawn(broker::supervise(
                ctx,
                connection,
                self.config.amqp_url.clone(),
                names,
                self.readiness.clone(),
                shutdown.clone(),
            ))
        });
        // Every process relays the outbox: rows are claimed with SKIP LOCKED, so
        // any number of relays share the work, and events flow as long as one runs.
        let relay = Relay {
            pool: self.pool.clone(),
            db: self.db.clone(),
            amqp_url: self.config.amqp_url.clone(),
            names: Names::new(&self.config.amqp_prefix),
            metrics: self.metrics.clone(),
            settings: RelaySettings::default(),
        };
        let relay = tokio::spawn(relay.run(shutdown.clone()));
        tracing::info!(%addr, roles = ?self.roles, "authrelay is running");
        let server = axum::serve(self.listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        // Requests in progress (a long replay, say) get the grace period, not forever.
        let drain_limit = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.config.worker.shutdown_grace + broker::WIND_DOWN).await;
        };
        tokio::select! {
            served = server.into_future() => served.context("HTTP server failed")?,
            _ = drain_limit => tracing::warn!("admin API requests still running after the grace period; dropping them"),
        }
        if let Some(workers) = workers {
            // The lanes finish in-flight jobs within the grace period, then close.
            let _ = workers.await;
        }
        let _ = relay.await;
        tracing::info!("authrelay stopped");
        Ok(())
    }
}

/// The clients of the profile test endpoint, behind the same egress guard as the workers.
fn prober(config: &Config) -> anyhow::Result<Prober> {
    let settings = &config.worker;
    let egress = EgressPolicy::new(config.allow_private_destinations.clone());
    let http = Executor::http_client(settings, &egress).context("cannot build the HTTP client")?;
    let tokens = TokenClient::new(token_http_client(settings, &egress)?, TokenClientSettings::default());
    Ok(Prober { http, tokens, egress, timeout: settings.request_timeout })
}

fn token_http_client(settings: &crate::config::WorkerConfig, egress: &EgressPolicy) -> anyhow::Result<reqwest::Client> {
    // Token endpoints get no redirects: a token request is never re-sent elsewhere.
    egress
        .configure(reqwest::Client::builder())
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.connect_timeout)
        .build()
        .context("cannot build the token HTTP client")
}

/// The worker's shared parts: HTTP clients behind the egress guard, the
/// token cache, the profile cache and the executor.
pub fn worker_context(config: &Config, store: ProfileStore, metrics: Metrics) -> anyhow::Result<WorkerContext> {
    let settings = Arc::new(config.worker.clone());
    let egress = EgressPolicy::new(config.allow_private_destinations.clone());
    let http = Executor::http_client(&settings, &egress).context("cannot build the HTTP client")?;
    let token_http = token_http_client(&settings, &egress)?;
    let token_client = TokenClient::new(
        token_http,
        TokenClientSettings { default_lifetime: settings.token_default_lifetime, ..Default::default() },
    );
    let tokens = Arc::new(TokenCache::new(
        token_client,
        TokenCacheSettings { failure_ttl: settings.token_failure_ttl, ..Default::default() },
    ));
    let executor = Executor::new(http, egress, tokens, settings.clone(), metrics.clone());
    let limits = JobLimits { max_message_bytes: settings.max_job_bytes, ..Default::default() };
    Ok(WorkerContext {
        store,
        profiles: ProfileCache::new(settings.profile_cache_ttl),
        executor,
        settings,
        limits,
        metrics,
    })
}

/// Refuses to start when a stored secret was sealed under a key the ring lacks:
/// every job using it would fail, and the fix is a configuration change.
pub async fn ensure_keys_cover_store(store: &ProfileStore) -> anyhow::Result<()> {
    let missing = store.missing_key_ids().await?;
    if !missing.is_empty() {
        anyhow::bail!(
            "stored secrets are sealed with master key(s) {} missing from AUTHRELAY_MASTER_KEYS; add them back after the current key (then `authrelay keys rotate` can retire them)",
            missing.join(", ")
        );
    }
    Ok(())
}
