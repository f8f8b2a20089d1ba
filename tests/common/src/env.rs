//! A test's own corner of the shared servers, removed when the test ends.

use std::collections::HashMap;
use std::path::PathBuf;

use authrelay::config::Config;
use authrelay::crypto::KeyRing;
use authrelay::queue::Names;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
use lapin::{Connection, ConnectionProperties};

use crate::proxy::TcpProxy;
use crate::{AMQP_URL, PG_ADMIN_URL, cleanup_on_own_runtime, retried, watchdog};

/// A database of its own for one test; dropped (forcibly) when the guard goes.
/// Created lazily by the app: create-database-if-missing is part of what we test.
pub struct TestDb {
    pub name: String,
}

impl TestDb {
    fn new() -> Self {
        Self { name: format!("authrelay_test_{}", uuid::Uuid::new_v4().simple()) }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) =
            tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await.expect("connect test db");
        tokio::spawn(conn);
        client
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        cleanup_on_own_runtime(async move {
            let sql = &sql;
            retried(|| async move {
                let (client, conn) = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls).await.ok()?;
                tokio::spawn(conn);
                client.batch_execute(sql).await.ok()
            })
            .await;
        });
    }
}

/// Deletes every queue and exchange behind a prefix when it goes.
struct BrokerNames(Names);

impl Drop for BrokerNames {
    fn drop(&mut self) {
        let names = self.0.clone();
        cleanup_on_own_runtime(async move {
            let connect = || async { Connection::connect(AMQP_URL, ConnectionProperties::default()).await.ok() };
            let Some(conn) = retried(connect).await else { return };
            // A missing queue closes the channel; use one channel per delete.
            for queue in names.every_queue() {
                if let Ok(ch) = conn.create_channel().await {
                    let _ = ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                    let _ = ch.close(200, "".into()).await;
                }
            }
            for exchange in names.every_exchange() {
                if let Ok(ch) = conn.create_channel().await {
                    let _ = ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
                    let _ = ch.close(200, "".into()).await;
                }
            }
            let _ = conn.close(200, "".into()).await;
        });
    }
}

/// A directory of its own, removed when the guard goes.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("authrelay-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Default for TempDir {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A fresh master-key spec (`id:base64`).
pub fn new_key(id: &str) -> String {
    KeyRing::generate_key_spec(id).unwrap()
}

/// The environment a test runs the app with — its own database, AMQP prefix
/// and state directory, all removed when it is dropped — as the variables
/// the app reads. Tweak with [`TestEnv::set`] before starting anything.
pub struct TestEnv {
    pub vars: HashMap<String, String>,
    pub db: TestDb,
    pub state_dir: TempDir,
    broker: BrokerNames,
}

impl TestEnv {
    /// A new environment; starts the binary's [watchdog](crate::watchdog).
    pub fn new() -> Self {
        watchdog();
        Self::without_watchdog()
    }

    /// A new environment for a run that may rightly take longer than a test
    /// binary's 15 minutes (the benchmark).
    pub fn without_watchdog() -> Self {
        let db = TestDb::new();
        let state_dir = TempDir::new();
        let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut vars = HashMap::new();
        vars.insert("AUTHRELAY_DATABASE_URL".into(), db.url());
        vars.insert("AUTHRELAY_MASTER_KEYS".into(), new_key("k1"));
        vars.insert("AUTHRELAY_ADMIN_TOKEN".into(), format!("test-token-{}", uuid::Uuid::new_v4().simple()));
        vars.insert("AUTHRELAY_ADMIN_TOKEN_LABEL".into(), "test-admin".into());
        vars.insert("AUTHRELAY_HTTP_ADDR".into(), "127.0.0.1:0".into());
        vars.insert("AUTHRELAY_STATE_DIR".into(), state_dir.0.display().to_string());
        vars.insert("AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS".into(), "127.0.0.1/32".into());
        vars.insert("AUTHRELAY_AMQP_PREFIX".into(), prefix.clone());
        // Retries without jitter, so that their timings are exact.
        vars.insert("AUTHRELAY_RETRY_JITTER".into(), "0".into());
        Self { vars, db, state_dir, broker: BrokerNames(Names::new(prefix)) }
    }

    /// A second instance's environment: the same database, keys, admin token
    /// and AMQP names as `first`, its own state directory and HTTP port.
    pub fn sibling_of(first: &TestEnv) -> Self {
        let mut env = Self::new();
        for key in ["AUTHRELAY_DATABASE_URL", "AUTHRELAY_MASTER_KEYS", "AUTHRELAY_ADMIN_TOKEN", "AUTHRELAY_AMQP_PREFIX"]
        {
            env.set(key, first.vars[key].clone());
        }
        env.broker = BrokerNames(first.names());
        env
    }

    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    /// The app reaches RabbitMQ through `proxy` (which must lead to it).
    pub fn broker_through(&mut self, proxy: &TcpProxy) -> &mut Self {
        self.set("AUTHRELAY_AMQP_URL", format!("amqp://guest:guest@{}/%2f", proxy.addr))
    }

    /// The app reaches its database through `proxy` (which must lead to PostgreSQL).
    pub fn database_through(&mut self, proxy: &TcpProxy) -> &mut Self {
        let url = format!("postgres://postgres@{}/{}", proxy.addr, self.db.name);
        self.set("AUTHRELAY_DATABASE_URL", url)
    }

    /// The exchange and queue names behind this environment's prefix.
    pub fn names(&self) -> Names {
        Names::new(self.vars["AUTHRELAY_AMQP_PREFIX"].clone())
    }

    pub fn admin_token(&self) -> &str {
        &self.vars["AUTHRELAY_ADMIN_TOKEN"]
    }

    pub fn config(&self) -> Config {
        Config::load(&self.vars).expect("test config loads")
    }
}

impl Default for TestEnv {
    fn default() -> Self {
        Self::new()
    }
}
