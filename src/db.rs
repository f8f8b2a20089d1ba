//! PostgreSQL: the connection pool (TLS through rustls), creating the database
//! when it is missing, and migrations applied under an advisory lock.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::ExposeSecret as _;
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::DatabaseConfig;
use crate::error_text::Chain;
use crate::reconnect::{Backoff, retry_within};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// An arbitrary constant that names "authrelay migrations" among advisory locks.
const MIGRATION_LOCK_KEY: i64 = 0x6175_7468_7265_6c79; // "authrely"

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("AUTHRELAY_DATABASE_URL is not a valid PostgreSQL URL")]
    BadUrl(#[source] tokio_postgres::Error),
    #[error("cannot set up TLS for PostgreSQL: {0}")]
    Tls(String),
    #[error(
        "cannot reach PostgreSQL at {target} after {waited:?} (check AUTHRELAY_DATABASE_URL and that the server is up)"
    )]
    Unreachable {
        target: String,
        waited: Duration,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("TLS with PostgreSQL at {target} failed (check the certificate, AUTHRELAY_DATABASE_CA_FILE, or sslmode)")]
    TlsHandshake {
        target: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("cannot create database `{name}` (create it yourself or grant CREATEDB)")]
    CreateDatabase {
        name: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("a migration failed")]
    Migration(#[source] refinery::Error),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("cannot build the database pool")]
    Build(#[from] deadpool_postgres::BuildError),
}

/// Parsed connection settings plus the TLS connector they call for.
#[derive(Clone)]
pub struct Database {
    pg: tokio_postgres::Config,
    tls: MakeRustlsConnect,
    settings: DatabaseConfig,
}

impl Database {
    pub fn new(settings: &DatabaseConfig) -> Result<Self, DbError> {
        let mut pg = tokio_postgres::Config::from_str(settings.url.expose_secret()).map_err(DbError::BadUrl)?;
        if pg.get_dbname().is_none() {
            pg.dbname("authrelay");
        }
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(Duration::from_secs(5));
        }
        if pg.get_ssl_mode() == SslMode::Prefer {
            // `prefer` would silently fall back to plaintext when TLS fails;
            // we do not pretend: say `sslmode=require` to get TLS.
            pg.ssl_mode(SslMode::Disable);
        }
        pg.application_name("authrelay");
        let tls = tls_connector(settings)?;
        Ok(Self { pg, tls, settings: settings.clone() })
    }

    pub fn name(&self) -> &str {
        self.pg.get_dbname().unwrap_or("authrelay")
    }

    /// "host:port/db", for messages; never includes the password.
    pub fn describe(&self) -> String {
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        format!("{host}:{port}/{}", self.name())
    }

    /// Connects once (outside the pool), waiting up to the configured start-up
    /// timeout for the server to come up.
    async fn connect_with_wait(&self, pg: &tokio_postgres::Config) -> Result<tokio_postgres::Client, DbError> {
        let started = tokio::time::Instant::now();
        // A server that answered with an error (bad password, missing database)
        // will not change its mind, and neither will a certificate: do not wait.
        let retryable = |e: &tokio_postgres::Error| e.as_db_error().is_none() && !is_tls_failure(e);
        let retry = |e: &tokio_postgres::Error, _| {
            tracing::warn!(target = %self.describe(), error = %Chain(e), "database not reachable yet; retrying");
        };
        let connected =
            retry_within(AT_START, self.settings.connect_timeout, || pg.connect(self.tls.clone()), retryable, retry)
                .await;
        match connected {
            Ok((client, connection)) => {
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %Chain(&e), "database connection closed");
                    }
                });
                Ok(client)
            }
            Err(e) if e.as_db_error().is_some() => Err(e.into()),
            Err(source) if is_tls_failure(&source) => Err(DbError::TlsHandshake { target: self.describe(), source }),
            Err(source) => Err(DbError::Unreachable { target: self.describe(), waited: started.elapsed(), source }),
        }
    }

    /// Creates the database named in the URL when it does not exist (and the role may).
    pub async fn ensure_exists(&self) -> Result<(), DbError> {
        let mut maintenance = self.pg.clone();
        maintenance.dbname("postgres");
        let client = match self.connect_with_wait(&maintenance).await {
            Ok(client) => client,
            // No access to the maintenance database: the target may still exist.
            Err(DbError::Postgres(e)) if e.as_db_error().is_some() => return Ok(()),
            Err(e) => return Err(e),
        };
        let exists = client.query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&self.name()]).await?.is_some();
        if exists {
            return Ok(());
        }
        let sql = format!("CREATE DATABASE \"{}\"", self.name().replace('"', "\"\""));
        match client.batch_execute(&sql).await {
            Ok(()) => {
                tracing::info!(database = %self.name(), "created database");
                Ok(())
            }
            // Another process created it at the same moment.
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE)
                    || e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) =>
            {
                Ok(())
            }
            Err(e) => Err(DbError::CreateDatabase { name: self.name().to_owned(), source: e }),
        }
    }

    /// Applies pending migrations, serialised across processes by an advisory lock.
    /// Returns the names of the migrations it applied.
    pub async fn migrate(&self) -> Result<Vec<String>, DbError> {
        let mut client = self.connect_with_wait(&self.pg).await?;
        client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await?;
        let result = embedded::migrations::runner().run_async(&mut client).await;
        // Closing the session would release the lock too; unlock explicitly anyway.
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await;
        let report = result.map_err(DbError::Migration)?;
        Ok(report.applied_migrations().iter().map(|m| m.to_string()).collect())
    }

    /// A dedicated connection that `LISTEN`s on `channel`; `notify` is woken on
    /// every notification. The returned future ends when the connection does.
    pub async fn listen(
        &self,
        channel: &str,
        notify: std::sync::Arc<tokio::sync::Notify>,
    ) -> Result<(tokio_postgres::Client, impl std::future::Future<Output = ()> + Send + 'static), DbError> {
        let (client, mut connection) = self.pg.connect(self.tls.clone()).await?;
        let driver = async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
                match message {
                    Ok(tokio_postgres::AsyncMessage::Notification(_)) => notify.notify_one(),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(error = %Chain(&e), "listen connection ended");
                        break;
                    }
                }
            }
        };
        let handle = tokio::spawn(driver);
        client.batch_execute(&format!("LISTEN {channel}")).await?;
        Ok((client, async move {
            let _ = handle.await;
        }))
    }

    /// The connection pool; fails fast if the database cannot be reached.
    pub async fn pool(&self) -> Result<Pool, DbError> {
        // Waits for the server the same bounded way as migrations do.
        drop(self.connect_with_wait(&self.pg).await?);
        let manager = Manager::from_config(
            self.pg.clone(),
            self.tls.clone(),
            ManagerConfig { recycling_method: RecyclingMethod::Verified },
        );
        let pool = Pool::builder(manager)
            .max_size(self.settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()?;
        drop(pool.get().await?);
        Ok(pool)
    }

    /// Ensure the database exists, migrate it, and open the pool: what `run` does at start.
    pub async fn prepare(settings: &DatabaseConfig) -> Result<(Self, Pool), DbError> {
        let db = Self::new(settings)?;
        db.ensure_exists().await?;
        let applied = db.migrate().await?;
        if !applied.is_empty() {
            tracing::info!(migrations = %applied.join(", "), "applied database migrations");
        }
        let pool = db.pool().await?;
        Ok((db, pool))
    }
}

/// The TLS connector used when the URL says `sslmode=require`: the platform's
/// trust store, or only the CA in `AUTHRELAY_DATABASE_CA_FILE` when one is given.
fn tls_connector(settings: &DatabaseConfig) -> Result<MakeRustlsConnect, DbError> {
    let config = match &settings.ca_file {
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DbError::Tls(format!("AUTHRELAY_DATABASE_CA_FILE {}: {e}", path.display())))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(DbError::Tls(format!(
                    "AUTHRELAY_DATABASE_CA_FILE {} holds no certificate",
                    path.display()
                )));
            }
            rustls::ClientConfig::builder().with_root_certificates(Arc::new(roots)).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::ConfigVerifierExt as _;
            rustls::ClientConfig::with_platform_verifier().map_err(|e| DbError::Tls(e.to_string()))?
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

/// Whether a connect failed in the TLS handshake (a certificate the trust store
/// refuses, say): rustls's error somewhere in the chain of causes.
fn is_tls_failure(error: &tokio_postgres::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = cause {
        // io::Error hides the error it wraps from `source()`; look inside.
        let inner = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .map(|i| i as &(dyn std::error::Error + 'static));
        if e.is::<rustls::Error>() || inner.is_some_and(|i| i.is::<rustls::Error>()) {
            return true;
        }
        cause = e.source();
    }
    false
}

/// How start-up waits for the database between attempts.
const AT_START: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// Whether a database error means "the database is not reachable right now"
/// (as opposed to a bad query), so callers can delay work instead of failing it.
pub fn is_unavailable(error: &DbError) -> bool {
    match error {
        DbError::Pool(_) | DbError::Unreachable { .. } => true,
        DbError::Postgres(e) => e.is_closed() || e.as_db_error().is_none(),
        _ => false,
    }
}
