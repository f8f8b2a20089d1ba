//! Maps a [`Disposition`] to broker actions: publish (confirmed), then ack.
//! A delivery is acked only after everything published for it is confirmed,
//! so a crash at any point before that redelivers the job (at-least-once).

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::try_join_all;
use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};

use super::headers::{self, set as set_header, text};
use super::publisher::{PublishError, Publisher, Routed};
use crate::job::{ErrorKind, JobResult, Phase};
use crate::metrics::{DeferReason, Metrics};

/// Why a job is parked, for the parked copy's headers.
#[derive(Debug, Clone, PartialEq)]
pub struct ParkReason {
    pub kind: ErrorKind,
    pub message: String,
    pub attempts: u32,
    pub phase: Phase,
}

/// What the broker must do with a delivery.
#[derive(Debug)]
pub enum Disposition {
    /// Publish the result (also to `reply_to`), park a copy when failed or
    /// rejected, and ack once every publish is confirmed.
    Done { result: Box<JobResult>, park: Option<ParkReason> },
    /// A message nobody can be answered for: park it, then ack.
    ParkOnly(ParkReason),
    /// Republish to a delay queue (attempts and deadline in headers), then ack.
    Delay {
        phase: Phase,
        delay: Duration,
        attempts: u32,
        deadline: DateTime<Utc>,
        reason: DeferReason,
        /// A rate-limit turn the job reserved for when it comes back.
        turn: Option<DateTime<Utc>>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the parked copy could not be routed: is the `{0}` queue missing?")]
    ParkUnroutable(String),
    #[error("could not serialize the result")]
    Serialize(#[from] serde_json::Error),
    #[error("the ack failed")]
    Ack(#[from] lapin::Error),
}

/// Persistent JSON, as the contract asks of every message.
fn json_properties() -> BasicProperties {
    BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_app_id(ShortString::from("authrelay"))
}

/// The AMQP properties of a job's result (also of its `reply_to` copy).
pub fn result_properties(job_id: &str) -> BasicProperties {
    json_properties()
        .with_message_id(ShortString::from(job_id))
        .with_timestamp(Utc::now().timestamp() as u64)
        .with_type(ShortString::from("authrelay.result"))
}

/// Publishes what the disposition calls for, then acks the delivery.
pub async fn settle(
    publisher: &Publisher,
    metrics: &Metrics,
    delivery: &Delivery,
    disposition: &Disposition,
) -> Result<(), SettleError> {
    let names = publisher.names();
    match disposition {
        Disposition::Done { result, park } => {
            let body = serde_json::to_vec(result.as_ref())?;
            let mut publishes = Vec::new();
            let properties = result_properties(&result.job_id);
            let results_exchange = names.results_exchange();
            let routing_key = result.routing_key();
            publishes.push(Box::pin(publish_result(
                publisher,
                metrics,
                results_exchange,
                routing_key,
                &body,
                properties.clone(),
                result,
            )));
            if let Some(reply_to) = delivery.properties.reply_to() {
                let mut reply = properties.clone();
                if let Some(correlation_id) = delivery.properties.correlation_id() {
                    reply = reply.with_correlation_id(correlation_id.clone());
                }
                publishes.push(Box::pin(publish_result(
                    publisher,
                    metrics,
                    String::new(),
                    reply_to.to_string(),
                    &body,
                    reply,
                    result,
                )));
            }
            let park = async {
                match park {
                    Some(reason) => park_copy(publisher, metrics, delivery, reason).await,
                    None => Ok(()),
                }
            };
            let (published, parked) = tokio::join!(try_join_all(publishes), park);
            published?;
            parked?;
        }
        Disposition::ParkOnly(reason) => park_copy(publisher, metrics, delivery, reason).await?,
        Disposition::Delay { phase, delay, attempts, deadline, reason, turn } => {
            let phase = *phase;
            let queue = publisher.delay_queue(phase, *delay).await.map_err(PublishError::from)?;
            // A turn is only good for the delay it was reserved for.
            let mut table = headers::copy_without(delivery.properties.headers().as_ref(), &[headers::TURN]);
            set_header(&mut table, headers::ATTEMPTS, AMQPValue::LongLongInt(i64::from(*attempts)));
            set_header(&mut table, headers::DEADLINE, text(deadline.to_rfc3339()));
            if let Some(turn) = turn {
                set_header(&mut table, headers::TURN, text(turn.to_rfc3339()));
            }
            let properties = delivery
                .properties
                .clone()
                .with_headers(table)
                .with_delivery_mode(2)
                .with_expiration(ShortString::from(delay.as_millis().max(1).to_string()));
            match publisher.publish("", &queue, &delivery.data, properties).await? {
                Routed::Yes => metrics.deferred(phase, *reason),
                Routed::Unroutable => return Err(SettleError::ParkUnroutable(queue)),
            }
        }
    }
    ack(delivery).await
}

async fn publish_result(
    publisher: &Publisher,
    metrics: &Metrics,
    exchange: String,
    routing_key: String,
    body: &[u8],
    properties: BasicProperties,
    result: &JobResult,
) -> Result<(), SettleError> {
    if publisher.publish(&exchange, &routing_key, body, properties).await? == Routed::Unroutable {
        // The job ran; publishing again would not help and re-running it would
        // repeat its side effects. Make it visible instead.
        metrics.results_unroutable.inc();
        tracing::warn!(
            job_id = %result.job_id,
            exchange = %exchange,
            routing_key = %routing_key,
            "result was unroutable: no queue is bound for it"
        );
    }
    Ok(())
}

/// Parks the message unchanged, with the contract's headers added.
async fn park_copy(
    publisher: &Publisher,
    metrics: &Metrics,
    delivery: &Delivery,
    reason: &ParkReason,
) -> Result<(), SettleError> {
    let mut table: FieldTable = delivery.properties.headers().clone().unwrap_or_default();
    set_header(&mut table, headers::ERROR_KIND, text(reason.kind.as_str()));
    set_header(&mut table, headers::ERROR, text(truncate(&reason.message, 1000)));
    set_header(&mut table, headers::ATTEMPTS, AMQPValue::LongLongInt(i64::from(reason.attempts)));
    set_header(&mut table, headers::FAILED_AT, text(Utc::now().to_rfc3339()));
    set_header(&mut table, headers::PHASE, text(reason.phase.as_str()));
    let properties = delivery.properties.clone().with_headers(table).with_delivery_mode(2);
    let queue = publisher.names().failed_queue();
    match publisher.publish("", &queue, &delivery.data, properties).await? {
        Routed::Yes => {
            metrics.parked(reason.phase, reason.kind);
            Ok(())
        }
        Routed::Unroutable => Err(SettleError::ParkUnroutable(queue)),
    }
}

async fn ack(delivery: &Delivery) -> Result<(), SettleError> {
    if !delivery.acker.ack(BasicAckOptions::default()).await? {
        // The channel failed since the delivery: the broker will redeliver it.
        tracing::warn!("ack not sent: the channel closed; the job will be redelivered");
    }
    Ok(())
}

/// Returns a delivery to its queue (settling failed): it will be tried again.
pub async fn requeue(delivery: &Delivery) {
    if let Err(e) = delivery.acker.nack(BasicNackOptions { requeue: true, multiple: false }).await {
        tracing::warn!(error = %crate::error_text::Chain(&e), "nack failed; the broker will redeliver when the channel closes");
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
