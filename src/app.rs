//! `authrelay run`: builds every part from a [`Config`] and runs them until
//! the shutdown token is cancelled.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context as _;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::Config;
use crate::credentials::http_clients::HttpClients;
use crate::credentials::oauth2::{TokenClient, TokenClientSettings};
use crate::credentials::probe::Prober;
use crate::db::Database;
use crate::egress::EgressPolicy;
use crate::metrics::Metrics;
use crate::outbox::{Relay, RelaySettings};
use crate::profile::ProfileStore;
use crate::queue::{Names, connect};
use crate::readiness::Readiness;
use crate::traffic::fleet::Fleet;
use crate::worker::WorkerContext;
use crate::worker::health::HealthTask;
use crate::worker::supervisor::{self, WIND_DOWN};

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub worker: bool,
    pub api: bool,
}

impl Roles {
    pub const ALL: Roles = Roles { worker: true, api: true };
}

/// As given on the command line: `worker,api`.
impl std::fmt::Display for Roles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = [(self.worker, "worker"), (self.api, "api")]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
        f.write_str(&names.join(","))
    }
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
        store.ensure_keys_cover_store().await?;
        let listener = TcpListener::bind(config.http_addr)
            .await
            .with_context(|| format!("cannot listen on AUTHRELAY_HTTP_ADDR={}", config.http_addr))?;
        let readiness = Readiness::new(pool.clone());
        let metrics = Metrics::new();
        // Every role needs the broker (the outbox relay runs everywhere), so an
        // unreachable broker is a start-up error whatever the roles.
        let connection = connect::connect_with_wait(&config.amqp_url, config.database.connect_timeout).await?;
        connect::declare_topology(&connection, &Names::new(&config.amqp_prefix)).await?;
        let worker = if roles.worker {
            let ctx = Arc::new(WorkerContext::build(&config, store.clone(), metrics.clone())?);
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
        // Health is written by workers and the deauthorized gauge read by every role. It stops
        // after the lanes, so that the last flush holds every job they settled.
        let health_stop = CancellationToken::new();
        let health = HealthTask {
            recorder: self.worker.as_ref().map(|(ctx, _)| ctx.health.clone()),
            store: self.store.clone(),
            metrics: self.metrics.clone(),
            interval: self.config.worker.health_flush_interval,
        };
        let health = tokio::spawn(health.run(health_stop.clone()));
        // Workers share profile limits with the rest of the fleet: known before the first job.
        let fleet_stop = CancellationToken::new();
        let fleet = match &self.worker {
            Some((ctx, _)) => {
                let fleet = Fleet {
                    id: uuid::Uuid::new_v4(),
                    pool: self.pool.clone(),
                    gates: ctx.executor.gates().clone(),
                    metrics: self.metrics.clone(),
                };
                fleet.join().await;
                Some(tokio::spawn(fleet.run(fleet_stop.clone())))
            }
            None => None,
        };
        let workers = self.worker.map(|(ctx, connection)| {
            let names = Names::new(&self.config.amqp_prefix);
            tokio::spawn(supervisor::supervise(
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
        tracing::info!(%addr, roles = %self.roles, lanes = %self.config.worker.lanes, "authrelay is running");
        let server = axum::serve(self.listener, router).with_graceful_shutdown(shutdown.clone().cancelled_owned());
        // Requests in progress (a long replay, say) get the grace period, not forever.
        let drain_limit = async {
            shutdown.cancelled().await;
            tokio::time::sleep(self.config.worker.shutdown_grace + WIND_DOWN).await;
        };
        tokio::select! {
            served = server.into_future() => served.context("HTTP server failed")?,
            _ = drain_limit => tracing::warn!("admin API requests still running after the grace period; dropping them"),
        }
        if let Some(workers) = workers {
            // The lanes finish in-flight jobs within the grace period, then close.
            let _ = workers.await;
        }
        fleet_stop.cancel();
        if let Some(fleet) = fleet {
            let _ = fleet.await;
        }
        health_stop.cancel();
        let _ = health.await;
        let _ = relay.await;
        tracing::info!("authrelay stopped");
        Ok(())
    }
}

/// The clients of the profile test endpoint, behind the same egress guard as the workers.
fn prober(config: &Config) -> anyhow::Result<Prober> {
    let settings = &config.worker;
    let egress = EgressPolicy::new(config.allow_private_destinations.clone());
    let clients =
        HttpClients::new(egress.clone(), settings.connect_timeout).context("cannot build the HTTP clients")?;
    let tokens = TokenClient::with_clients(clients.clone(), TokenClientSettings::default());
    Ok(Prober { clients, tokens, egress, timeout: settings.request_timeout })
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
pub async fn shutdown_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; stop with SIGINT instead");
            let _ = ctrl_c.await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested; finishing in-flight work");
    shutdown.cancel();
}
