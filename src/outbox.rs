//! The outbox relay: publishes profile events committed to
//! `profile_events_outbox` to the fanout exchange, with confirms, and marks
//! them sent. Woken by LISTEN/NOTIFY, with a periodic sweep as a backstop.
//!
//! Several processes may relay at once: a batch is claimed with
//! `FOR UPDATE SKIP LOCKED` inside the transaction that marks it sent, so a row
//! is published by one relay at a time, and at least once (a crash between
//! the confirm and the commit publishes it again, which invalidation tolerates).
//! A broker outage delays events; it never loses them.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use lapin::BasicProperties;
use lapin::types::ShortString;
use secrecy::SecretString;
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::db::Database;
use crate::error_text::Chain;
use crate::metrics::Metrics;
use crate::queue::Names;
use crate::queue::connect::connect;
use crate::queue::publisher::Publisher;
use crate::reconnect::Backoff;

const BATCH: i64 = 100;

#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Sweep even without a notification this often.
    pub poll_interval: Duration,
    /// Sent rows older than this are deleted.
    pub retention: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self { poll_interval: Duration::from_secs(5), retention: Duration::from_secs(7 * 24 * 3600) }
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("a database query failed")]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Publish(#[from] crate::queue::publisher::PublishError),
    #[error("the broker failed")]
    Amqp(#[from] lapin::Error),
    #[error("cannot listen for new outbox rows")]
    Listen(#[from] crate::db::DbError),
    #[error("the LISTEN connection ended")]
    ListenEnded,
    #[error("the broker did not answer within {0:?}")]
    Unanswered(Duration),
}

/// Between attempts to resume relaying after a failure.
const RETRY: Backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
const HEALTHY_SESSION: Duration = Duration::from_secs(60);

/// How long connecting and opening the confirm channel may take.
const OPEN_TIMEOUT: Duration = Duration::from_secs(20);

pub struct Relay {
    pub pool: Pool,
    pub db: Database,
    pub amqp_url: SecretString,
    pub names: Names,
    pub metrics: Metrics,
    pub settings: RelaySettings,
}

impl Relay {
    /// Relays until `shutdown`; every failure is retried with backoff.
    pub async fn run(self, shutdown: CancellationToken) {
        let notify = Arc::new(Notify::new());
        let mut delays = RETRY.delays();
        while !shutdown.is_cancelled() {
            let began = tokio::time::Instant::now();
            match self.session(&notify, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    // A session that ran well for a while starts the delays afresh.
                    if began.elapsed() > HEALTHY_SESSION {
                        delays = RETRY.delays();
                    }
                    let delay = delays.next().unwrap_or(RETRY.max);
                    tracing::warn!(error = %Chain(&e), retry_in_ms = delay.as_millis() as u64, "outbox relay interrupted; events wait in the outbox");
                    if shutdown.run_until_cancelled(tokio::time::sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
    }

    async fn session(&self, notify: &Arc<Notify>, shutdown: &CancellationToken) -> Result<(), RelayError> {
        // Listen first: a row committed after the first sweep still wakes us.
        let (_listener, listening) = self.db.listen("authrelay_outbox", notify.clone()).await?;
        let open = async {
            let connection = connect(&self.amqp_url).await?;
            let publisher = Publisher::open(&connection, self.names.clone()).await?;
            Ok::<_, RelayError>((connection, publisher))
        };
        // Bounded: a connection lost mid-handshake may leave a call unanswered.
        let Some(opened) = shutdown.run_until_cancelled(tokio::time::timeout(OPEN_TIMEOUT, open)).await else {
            return Ok(());
        };
        let (connection, publisher) = opened.map_err(|_| RelayError::Unanswered(OPEN_TIMEOUT))??;
        tokio::pin!(listening);
        let mut last_prune = tokio::time::Instant::now() - Duration::from_secs(3600);
        loop {
            // A publish may wait for a confirm from a broker that stopped
            // answering; stopping wins (the batch rolls back and is sent again later).
            let relayed = async {
                while self.relay_batch(&publisher).await? == BATCH as usize {}
                Ok::<_, RelayError>(())
            };
            let Some(relayed) = shutdown.run_until_cancelled(relayed).await else { return Ok(()) };
            relayed?;
            if last_prune.elapsed() >= Duration::from_secs(3600) {
                self.prune().await?;
                last_prune = tokio::time::Instant::now();
            }
            self.record_backlog().await;
            tokio::select! {
                _ = shutdown.cancelled() => {
                    publisher.close().await;
                    crate::queue::close_connection(&connection, "authrelay stopping").await;
                    return Ok(());
                }
                _ = notify.notified() => {}
                _ = tokio::time::sleep(self.settings.poll_interval) => {}
                _ = &mut listening => return Err(RelayError::ListenEnded),
            }
        }
    }

    /// Publishes one claimed batch and marks it sent; returns its size.
    async fn relay_batch(&self, publisher: &Publisher) -> Result<usize, RelayError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let rows = tx
            .query(
                "SELECT id, event_type, payload, created_at FROM profile_events_outbox
                 WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
                &[&BATCH],
            )
            .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let exchange = self.names.events_exchange();
        let publishes = rows.iter().map(|row| {
            let id: i64 = row.get("id");
            let event_type: String = row.get("event_type");
            let payload: Value = row.get("payload");
            let properties = BasicProperties::default()
                .with_content_type(ShortString::from("application/json"))
                .with_delivery_mode(2)
                .with_message_id(ShortString::from(format!("outbox-{id}")))
                .with_type(ShortString::from(event_type));
            let body = serde_json::to_vec(&payload).expect("JSON values serialize");
            let exchange = exchange.clone();
            async move {
                // No queue bound only means no instance is listening right now: nothing to invalidate.
                publisher.publish_broadcast(&exchange, "", &body, properties).await
            }
        });
        futures_util::future::try_join_all(publishes).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.get("id")).collect();
        tx.execute("UPDATE profile_events_outbox SET published_at = now() WHERE id = ANY($1)", &[&ids]).await?;
        tx.commit().await?;
        let now = Utc::now();
        for row in &rows {
            let created: DateTime<Utc> = row.get("created_at");
            self.metrics.outbox_publish_latency.observe((now - created).to_std().unwrap_or_default().as_secs_f64());
        }
        self.metrics.outbox_published.inc_by(rows.len() as u64);
        Ok(rows.len())
    }

    async fn prune(&self) -> Result<(), RelayError> {
        let client = self.pool.get().await?;
        let seconds = self.settings.retention.as_secs_f64();
        let deleted = client
            .execute(
                "DELETE FROM profile_events_outbox WHERE published_at < now() - make_interval(secs => $1)",
                &[&seconds],
            )
            .await?;
        if deleted > 0 {
            tracing::info!(deleted, "pruned sent outbox rows");
        }
        Ok(())
    }

    async fn record_backlog(&self) {
        if let Ok(client) = self.pool.get().await
            && let Ok(row) =
                client.query_one("SELECT count(*) FROM profile_events_outbox WHERE published_at IS NULL", &[]).await
        {
            self.metrics.outbox_backlog.set(row.get::<_, i64>(0));
        }
    }
}
