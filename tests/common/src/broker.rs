//! The shared RabbitMQ as a test sees it: the topology of its own prefix,
//! publishing jobs, and what waits on a queue. (Its names are deleted by the
//! [`TestEnv`](crate::TestEnv) that owns the prefix.)

use std::time::Duration;

use authrelay::queue::{Names, topology};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer};
use serde_json::Value;

use crate::contracts::RefusedJobs;
use crate::tap::ResultTap;
use crate::{AMQP_URL, eventually, lazy};

/// A connection to the shared RabbitMQ with the topology of `names` declared
/// and a confirming channel to publish on.
pub struct TestBroker {
    pub names: Names,
    pub conn: Connection,
    pub channel: Channel,
    /// Jobs published here that the job schema refuses (see [`RefusedJobs`]).
    pub refused_jobs: RefusedJobs,
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

    /// Everything the message carries, as one text: body and headers.
    pub fn text(&self) -> String {
        format!("{} {:?}", String::from_utf8_lossy(&self.body), self.properties.headers())
    }
}

/// A persistent JSON message, as the platform publishes jobs.
pub fn json_props() -> BasicProperties {
    BasicProperties::default().with_content_type(ShortString::from("application/json")).with_delivery_mode(2)
}

impl TestBroker {
    pub async fn new(names: Names) -> Self {
        let conn = Connection::connect(AMQP_URL, ConnectionProperties::default()).await.expect("RabbitMQ is up");
        let channel = conn.create_channel().await.unwrap();
        channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        topology::declare(&channel, &names).await.unwrap();
        Self { names, conn, channel, refused_jobs: RefusedJobs::default() }
    }

    /// A tap on every result published from now on.
    pub async fn tap(&self) -> ResultTap {
        ResultTap::open(self).await
    }

    /// A server-named, exclusive, auto-delete queue on `channel`, bound to
    /// `exchange` with `routing_key` when given (it goes with the connection,
    /// so a test leaves nothing behind). Returns its name.
    pub async fn private_queue(channel: &Channel, bind: Option<(&str, &str)>) -> ShortString {
        let options = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        let queue = channel.queue_declare("".into(), options, FieldTable::default()).await.unwrap();
        if let Some((exchange, routing_key)) = bind {
            Self::bind(channel, queue.name().as_str(), exchange, routing_key).await;
        }
        queue.name().clone()
    }

    /// Binds `queue` to `exchange` with `routing_key`.
    pub async fn bind(channel: &Channel, queue: &str, exchange: &str, routing_key: &str) {
        let (queue, exchange, routing_key) = (queue.into(), exchange.into(), routing_key.into());
        let bound =
            channel.queue_bind(queue, exchange, routing_key, QueueBindOptions::default(), FieldTable::default());
        bound.await.unwrap();
    }

    /// Consumes `queue` on `channel` without acks: each message is taken as it is delivered.
    pub async fn consume(channel: &Channel, queue: &str) -> Consumer {
        let options = BasicConsumeOptions { no_ack: true, ..Default::default() };
        channel.basic_consume(queue.into(), "".into(), options, FieldTable::default()).await.unwrap()
    }

    /// Publishes a job to the actions exchange with its phase as routing key.
    /// A job the job schema refuses must be refused by the worker too: the
    /// broker's result taps check that (a test may publish invalid jobs on purpose).
    pub async fn publish_job(&self, job: &Value) {
        self.refused_jobs.check(job);
        let phase = job["phase"].as_str().unwrap_or("post_call").to_owned();
        self.publish(&self.names.actions_exchange(), &phase, &serde_json::to_vec(job).unwrap(), json_props()).await;
    }

    /// Publishes jobs a hundred at a time, each confirmed.
    pub async fn publish_all(&self, jobs: &[Value]) {
        for chunk in jobs.chunks(100) {
            futures_util::future::join_all(chunk.iter().map(|j| self.publish_job(j))).await;
        }
    }

    /// Publishes and waits for the broker's confirm.
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

    /// Waits until `queue` holds `n` messages (parked jobs are published just
    /// before the ack), then takes them all.
    pub async fn wait_for_messages(&self, queue: &str, n: u32, wait: Duration) -> Vec<Taken> {
        let what = lazy(|| format!("{queue} holds {n} messages"));
        eventually(wait, what, async || (self.message_count(queue).await >= n).then_some(())).await;
        self.drain(queue).await
    }

    /// Messages ready on a queue (which must exist).
    pub async fn message_count(&self, queue: &str) -> u32 {
        self.depth(queue).await.unwrap_or_else(|| panic!("{queue} does not exist"))
    }

    /// Messages ready on a queue; None when it does not exist.
    async fn depth(&self, queue: &str) -> Option<u32> {
        let ch = self.conn.create_channel().await.unwrap();
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let declared = ch.queue_declare(queue.into(), passive, FieldTable::default()).await;
        let _ = ch.close(200, "".into()).await;
        declared.ok().map(|q| q.message_count())
    }

    /// Asserts that no message waits anywhere: phase queues, delay queues,
    /// parked jobs (a queue never declared holds nothing). Acks sent just
    /// before a process ended may still be on their way, so each queue has 5 s
    /// to empty.
    pub async fn assert_all_queues_empty(&self) {
        for queue in self.names.every_queue() {
            let what = lazy(|| format!("{queue} is empty"));
            eventually(Duration::from_secs(5), what, async || {
                (self.depth(&queue).await.unwrap_or(0) == 0).then_some(())
            })
            .await;
        }
    }
}
