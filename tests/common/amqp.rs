//! A test's own corner of the shared RabbitMQ: every name behind a random
//! prefix, deleted when the guard goes.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::Value;

use authrelay::job::Phase;
use authrelay::queue::{Names, topology};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub struct TestBroker {
    pub names: Names,
    pub conn: Connection,
    pub channel: Channel,
    results: Consumer,
    results_queue: String,
}

/// A message taken from a queue.
#[derive(Debug, Clone)]
pub struct Taken {
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl Taken {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn header(&self, name: &str) -> Option<String> {
        match self.properties.headers().as_ref()?.inner().get(name)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            AMQPValue::LongLongInt(n) => Some(n.to_string()),
            AMQPValue::LongInt(n) => Some(n.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

impl TestBroker {
    pub async fn new(prefix: &str) -> Self {
        super::watchdog();
        let names = Names::new(prefix);
        let conn = Connection::connect(AMQP_URL, ConnectionProperties::default()).await.expect("RabbitMQ is up");
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        topology::declare(&channel, &names).await.unwrap();
        let results_queue = format!("{prefix}.test-results");
        channel
            .queue_declare(results_queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .unwrap();
        channel
            .queue_bind(
                results_queue.as_str().into(),
                names.results_exchange().as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let results = channel
            .basic_consume(
                results_queue.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        Self { names, conn, channel, results, results_queue }
    }

    /// A server-named, exclusive, auto-delete queue on `channel`, bound to
    /// `exchange` with `routing_key` when given (it goes with the connection,
    /// so a test leaves nothing behind). Returns its name.
    pub async fn private_queue(channel: &Channel, bind: Option<(&str, &str)>) -> ShortString {
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        let queue = channel.queue_declare("".into(), options, FieldTable::default()).await.unwrap();
        if let Some((exchange, routing_key)) = bind {
            channel
                .queue_bind(
                    queue.name().clone(),
                    exchange.into(),
                    routing_key.into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
        }
        queue.name().clone()
    }

    /// Publishes a job to the actions exchange with its phase as routing key.
    pub async fn publish_job(&self, job: &Value) {
        let phase = job["phase"].as_str().unwrap_or("post_call").to_owned();
        self.publish(&self.names.actions_exchange(), &phase, &serde_json::to_vec(job).unwrap(), json_props()).await;
    }

    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(exchange.into(), routing_key.into(), BasicPublishOptions::default(), body, properties)
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(confirm.is_ack());
    }

    /// The next result, or a panic after `wait`.
    pub async fn next_result(&mut self, wait: Duration) -> Value {
        let delivery = tokio::time::timeout(wait, self.results.next())
            .await
            .unwrap_or_else(|_| panic!("no result within {wait:?}"))
            .expect("consumer open")
            .expect("delivery");
        serde_json::from_slice(&delivery.data).expect("result is JSON")
    }

    /// `n` results (in arrival order).
    pub async fn results(&mut self, n: usize, wait: Duration) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            out.push(self.next_result(left).await);
        }
        out
    }

    /// Asserts that no further result arrives within `wait`.
    pub async fn no_more_results(&mut self, wait: Duration) {
        if let Ok(Some(Ok(d))) = tokio::time::timeout(wait, self.results.next()).await {
            panic!("unexpected result: {}", String::from_utf8_lossy(&d.data));
        }
    }

    /// Takes every message now on a queue.
    pub async fn drain(&self, queue: &str) -> Vec<Taken> {
        let mut taken = Vec::new();
        while let Some(message) = self.channel.basic_get(queue.into(), BasicGetOptions::default()).await.unwrap() {
            let delivery = message.delivery;
            delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
            taken.push(Taken { body: delivery.data.clone(), properties: delivery.properties.clone() });
        }
        taken
    }

    /// Waits until `queue` holds `n` messages (parked jobs are published just before the ack).
    pub async fn wait_for_messages(&self, queue: &str, n: u32, wait: Duration) -> Vec<Taken> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let count = self.message_count(queue).await;
            if count >= n {
                return self.drain(queue).await;
            }
            assert!(tokio::time::Instant::now() < deadline, "{queue} holds {count} messages, expected {n}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn message_count(&self, queue: &str) -> u32 {
        let ch = self.conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                queue.into(),
                QueueDeclareOptions { passive: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let _ = ch.close(200, "".into()).await;
        q.message_count()
    }
}

pub fn json_props() -> BasicProperties {
    BasicProperties::default().with_content_type(ShortString::from("application/json")).with_delivery_mode(2)
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let names = self.names.clone();
        let results_queue = self.results_queue.clone();
        super::cleanup_on_own_runtime(async move {
            // Retried: a busy broker must not make a test leave its queues behind.
            let mut conn = None;
            for _ in 0..5 {
                match Connection::connect(AMQP_URL, ConnectionProperties::default()).await {
                    Ok(c) => {
                        conn = Some(c);
                        break;
                    }
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            }
            let Some(conn) = conn else { return };
            let mut queues = vec![results_queue, names.failed_queue()];
            for phase in Phase::ALL {
                queues.push(names.phase_queue(phase));
                for (tier, _) in topology::DELAY_TIERS {
                    queues.push(names.delay_queue(phase, tier));
                }
            }
            // A missing queue closes the channel; use one channel per delete.
            for queue in queues {
                if let Ok(ch) = conn.create_channel().await {
                    let _ = ch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await;
                    let _ = ch.close(200, "".into()).await;
                }
            }
            for exchange in [names.actions_exchange(), names.results_exchange(), names.events_exchange()] {
                if let Ok(ch) = conn.create_channel().await {
                    let _ = ch.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
                    let _ = ch.close(200, "".into()).await;
                }
            }
            let _ = conn.close(200, "".into()).await;
        });
    }
}
