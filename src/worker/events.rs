//! The profile-event consumer: each running instance binds its own exclusive,
//! auto-delete queue to the fanout exchange and drops what it cached for a
//! profile on every event, whoever published it — but for the health events:
//! `profile.deauthorized` drops only the profile's tokens (the credentials are
//! refused, so a cached token is worthless; the profile itself did not
//! change), and `profile.authorized` drops nothing (the credentials work).

use std::sync::Arc;

use futures_util::StreamExt as _;
use lapin::Connection;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::WorkerContext;
use crate::metrics::{Consumer, EventOutcome};
use crate::queue::Names;

/// The fields an event must carry for us to act on it; the rest is optional,
/// so events from other publishers are honoured too.
#[derive(Debug, Deserialize)]
struct EventRef {
    #[serde(rename = "type")]
    event_type: String,
    profile_id: Uuid,
}

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("the profile-event consumer's channel failed")]
    Amqp(#[from] lapin::Error),
    #[error("the broker ended the profile-event consumer")]
    ConsumerEnded,
}

pub async fn run(
    ctx: Arc<WorkerContext>,
    connection: &Connection,
    names: &Names,
    stop: CancellationToken,
    on_started: impl FnOnce(),
) -> Result<(), EventsError> {
    let subscribe = async {
        let channel = connection.create_channel().await?;
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.name().clone(),
                names.events_exchange().as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let consumer = channel
            .basic_consume(
                queue.name().clone(),
                "authrelay-events".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((channel, consumer))
    };
    // A connection lost mid-subscribe may leave a call unanswered: stopping wins.
    let Some(subscribed) = stop.run_until_cancelled(subscribe).await else { return Ok(()) };
    let (channel, mut consumer) = subscribed?;
    ctx.metrics.consumer_starts(Consumer::ProfileEvents).inc();
    on_started();
    loop {
        let delivery = tokio::select! {
            _ = stop.cancelled() => {
                crate::queue::close_channel(&channel, "authrelay stopping").await;
                return Ok(());
            }
            next = consumer.next() => match next {
                Some(delivery) => delivery?,
                None => return Err(EventsError::ConsumerEnded),
            },
        };
        ctx.metrics.profile_event(EventOutcome::Received);
        match serde_json::from_slice::<EventRef>(&delivery.data) {
            // A profile that was just created has nothing stale to drop; dropping would
            // only cancel the first token fetch of the jobs already using it.
            Ok(event) if event.event_type == "profile.created" || event.event_type == "profile.authorized" => {
                ctx.metrics.profile_event(EventOutcome::Ignored);
            }
            Ok(event) if event.event_type == "profile.deauthorized" => {
                ctx.executor.tokens().invalidate_profile(event.profile_id);
                ctx.metrics.profile_event(EventOutcome::Applied);
                tracing::debug!(profile_id = %event.profile_id, "dropped the tokens of a deauthorized profile");
            }
            Ok(event) if event.event_type.starts_with("profile.") => {
                ctx.invalidate_profile(event.profile_id);
                ctx.metrics.profile_event(EventOutcome::Applied);
                tracing::debug!(profile_id = %event.profile_id, event = %event.event_type, "dropped cached profile and tokens");
            }
            Ok(event) => {
                ctx.metrics.profile_event(EventOutcome::Ignored);
                tracing::debug!(event = %event.event_type, "ignored an event of an unknown type");
            }
            Err(e) => {
                ctx.metrics.profile_event(EventOutcome::Malformed);
                tracing::warn!(error = %e, "dropped a malformed profile event");
            }
        }
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
}
