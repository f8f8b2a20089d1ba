//! Publishing with publisher confirms. A publish counts only once the broker
//! confirmed it; `mandatory` makes an unroutable message visible instead of
//! silently dropped.

use std::collections::HashSet;
use std::sync::Mutex;

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};

use super::Names;
use super::topology;
use crate::job::Phase;
use crate::lock::lock;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("the publish failed")]
    Amqp(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker did not confirm the message within {0:?}")]
    Timeout(std::time::Duration),
}

/// A confirm that takes longer than this means the connection is gone in a way
/// the client has not noticed yet: give up, so the caller can retry elsewhere.
const CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// Whether a confirmed message reached at least one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    Yes,
    Unroutable,
}

pub struct Publisher {
    channel: Channel,
    names: Names,
    declared_delay_queues: Mutex<HashSet<String>>,
}

impl Publisher {
    /// Opens a channel in confirm mode.
    pub async fn open(connection: &Connection, names: Names) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self { channel, names, declared_delay_queues: Mutex::default() })
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    /// Closes the channel (before its connection, so the broker sees a clean close).
    pub async fn close(&self) {
        super::close_channel(&self.channel, "authrelay stopping").await;
    }

    /// Publishes and waits for the broker's confirm; a message no queue takes
    /// comes back as [`Routed::Unroutable`].
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<Routed, PublishError> {
        self.publish_with(exchange, routing_key, body, properties, true).await
    }

    /// Publishes and waits for the broker's confirm, for messages that may
    /// reach no queue at all (a profile event while no worker listens): the
    /// broker drops those instead of returning them.
    pub async fn publish_broadcast(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish_with(exchange, routing_key, body, properties, false).await.map(|_| ())
    }

    async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<Routed, PublishError> {
        let publish = async {
            self.channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    BasicPublishOptions { mandatory, ..Default::default() },
                    body,
                    properties,
                )
                .await?
                .await
        };
        let confirm = tokio::time::timeout(CONFIRM_TIMEOUT, publish)
            .await
            .map_err(|_| PublishError::Timeout(CONFIRM_TIMEOUT))??;
        match confirm {
            Confirmation::Ack(returned) if returned.is_none() => Ok(Routed::Yes),
            Confirmation::Ack(_) => Ok(Routed::Unroutable),
            // Confirm mode is on, so NotRequested cannot happen; treat it as a refusal.
            Confirmation::Nack(_) | Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }

    /// The delay queue for `phase` and `delay`, declared on first use.
    pub async fn delay_queue(&self, phase: Phase, delay: std::time::Duration) -> Result<String, lapin::Error> {
        let tier = topology::delay_tier(delay);
        let name = self.names.delay_queue(phase, tier);
        if lock(&self.declared_delay_queues).contains(&name) {
            return Ok(name);
        }
        let name = topology::declare_delay_queue(&self.channel, &self.names, phase, tier).await?;
        lock(&self.declared_delay_queues).insert(name.clone());
        Ok(name)
    }
}
