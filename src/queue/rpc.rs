//! Publish and await: the RabbitMQ RPC pattern, for a caller that waits for
//! the answer to one message (`authrelay send`, tests, scripts).
//!
//! A server-named, exclusive, auto-delete reply queue is declared and consumed
//! *before* the message goes out, so no reply can be missed; the message is
//! published to the actions exchange with the phase as routing key
//! (persistent JSON, `mandatory`, confirmed) with `reply_to` naming that queue
//! and a fresh `correlation_id`; the first reply carrying that id is the
//! answer. Like the rest of `queue`, this never looks inside the message.

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Connection};
use tokio::time::Instant;

use super::publisher::{PublishError, Publisher, Routed};
use super::{Names, close_channel};
use crate::job::Phase;

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("cannot open a channel to RabbitMQ")]
    Channel(#[source] lapin::Error),
    #[error("cannot declare or consume the reply queue")]
    ReplyQueue(#[source] lapin::Error),
    #[error(
        "the exchange `{exchange}` does not exist: start `authrelay run` once (it declares the topology) or check AUTHRELAY_AMQP_PREFIX"
    )]
    NoExchange { exchange: String },
    #[error(
        "no queue is bound to `{exchange}` for `{routing_key}`, so the broker returned the message: start `authrelay run` once (it declares the topology) or check AUTHRELAY_AMQP_PREFIX"
    )]
    Unroutable { exchange: String, routing_key: String },
    #[error("the message could not be published")]
    Publish(#[source] PublishError),
    #[error("waiting on the reply queue failed")]
    ReplyLost(#[source] lapin::Error),
    #[error("the reply queue's consumer was cancelled before an answer came")]
    ReplyQueueClosed,
}

/// What became of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The body of the reply that carried the call's `correlation_id`.
    Reply(Vec<u8>),
    /// Nothing came within the time given (the message may still be queued).
    TimedOut,
}

/// Publishes `body` for `phase` and waits, `within` in all (publishing
/// included), for the reply to it.
pub async fn call(
    connection: &Connection,
    names: &Names,
    phase: Phase,
    body: &[u8],
    within: Duration,
) -> Result<Answer, CallError> {
    let deadline = Instant::now() + within;
    let channel = connection.create_channel().await.map_err(CallError::Channel)?;
    let answer = tokio::time::timeout_at(deadline, publish_and_await(connection, &channel, names, phase, body)).await;
    close_channel(&channel, "reply received").await;
    match answer {
        Ok(Ok(reply)) => Ok(Answer::Reply(reply)),
        Ok(Err(e)) => Err(e),
        Err(_) => Ok(Answer::TimedOut),
    }
}

async fn publish_and_await(
    connection: &Connection,
    channel: &lapin::Channel,
    names: &Names,
    phase: Phase,
    body: &[u8],
) -> Result<Vec<u8>, CallError> {
    let private = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let queue =
        channel.queue_declare("".into(), private, FieldTable::default()).await.map_err(CallError::ReplyQueue)?;
    let no_ack = BasicConsumeOptions { no_ack: true, exclusive: true, ..Default::default() };
    let mut replies = channel
        .basic_consume(queue.name().clone(), "".into(), no_ack, FieldTable::default())
        .await
        .map_err(CallError::ReplyQueue)?;

    let correlation_id = uuid::Uuid::new_v4().to_string();
    let properties = BasicProperties::default()
        .with_content_type(ShortString::from("application/json"))
        .with_delivery_mode(2)
        .with_reply_to(queue.name().clone())
        .with_correlation_id(ShortString::from(correlation_id.clone()));
    let exchange = names.actions_exchange();
    let routing_key = phase.as_str();
    // A channel of its own: a publish to a missing exchange closes its channel.
    let publisher = Publisher::open(connection, names.clone()).await.map_err(CallError::Channel)?;
    let published = publisher.publish(&exchange, routing_key, body, properties).await;
    publisher.close().await;
    match published {
        Ok(Routed::Yes) => {}
        Ok(Routed::Unroutable) => return Err(CallError::Unroutable { exchange, routing_key: routing_key.to_owned() }),
        // The broker's 404 says no more than this error does.
        Err(source) if is_not_found(&source) => return Err(CallError::NoExchange { exchange }),
        Err(source) => return Err(CallError::Publish(source)),
    }

    while let Some(delivery) = replies.next().await {
        let delivery = delivery.map_err(CallError::ReplyLost)?;
        if delivery.properties.correlation_id().as_ref().is_some_and(|id| id.as_str() == correlation_id) {
            return Ok(delivery.data);
        }
        // Someone else's reply (a stray publish to our queue): not ours to read.
    }
    Err(CallError::ReplyQueueClosed)
}

/// The broker closed the channel with 404: the exchange does not exist.
fn is_not_found(error: &PublishError) -> bool {
    match error {
        PublishError::Amqp(e) => matches!(
            e.kind(),
            lapin::ErrorKind::ProtocolError(amqp) if *amqp.kind() == AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)
        ),
        _ => false,
    }
}
