//! A lane's consumer on its channel, at a prefetch that can change.
//!
//! RabbitMQ applies `basic.qos` only to consumers created after it (per-consumer
//! prefetch, the only kind quorum queues support). So to change how deep a
//! lane reaches into its queue, [`Subscription::resubscribe`] sets the new
//! prefetch, starts a new consumer and cancels the old one. Nothing is lost or
//! run twice: deliveries the old consumer already received stay unacked on the
//! same channel, [`Subscription::next`] hands them out first (lapin ends the old
//! stream after them, once the broker confirms the cancel), and they are acked
//! on that channel like any other.

use futures_util::StreamExt as _;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, Consumer};

use crate::phase::Phase;

pub struct Subscription {
    channel: Channel,
    queue: String,
    phase: Phase,
    consumer: Consumer,
    prefetch: u16,
    /// A consumer cancelled by a re-subscription whose deliveries are still being handed out.
    retiring: Option<Consumer>,
}

impl Subscription {
    /// A new channel on `connection` consuming `queue` with `prefetch`.
    pub async fn open(connection: &Connection, queue: &str, phase: Phase, prefetch: u16) -> Result<Self, lapin::Error> {
        let channel = connection.create_channel().await?;
        let consumer = consume(&channel, queue, phase, prefetch).await?;
        Ok(Self { channel, queue: queue.to_owned(), phase, consumer, prefetch, retiring: None })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// The next delivery: the retiring consumer's first, then the current one's.
    /// `None` when the current consumer ended (the broker cancelled it).
    /// Cancel-safe, like the streams it reads.
    pub async fn next(&mut self) -> Option<Result<Delivery, lapin::Error>> {
        loop {
            let Some(retiring) = &mut self.retiring else { return self.consumer.next().await };
            tokio::select! {
                biased;
                earlier = retiring.next() => match earlier {
                    Some(delivery) => return Some(delivery),
                    // Cancelled and emptied: the current consumer alone from now on.
                    None => self.retiring = None,
                },
                delivery = self.consumer.next() => return delivery,
            }
        }
    }

    /// Whether [`Self::resubscribe`] may move to `prefetch` now: not when that is
    /// the current prefetch, nor while an earlier re-subscription's deliveries
    /// are still being handed out (so at most two consumers exist, and a lane
    /// that flips quickly does not pile up buffers).
    pub fn can_move_to(&self, prefetch: u16) -> bool {
        prefetch != self.prefetch && self.retiring.is_none()
    }

    /// Consumes at `prefetch` from now on (when [`Self::can_move_to`] it).
    ///
    /// Not to be cut short (the consumer being created would be left
    /// unowned, taking deliveries nobody reads): bound it with a timeout that
    /// ends the lane instead, which closes the channel.
    pub async fn resubscribe(&mut self, prefetch: u16) -> Result<(), lapin::Error> {
        // The new consumer first, so that the queue is never without one.
        let consumer = consume(&self.channel, &self.queue, self.phase, prefetch).await?;
        let old = std::mem::replace(&mut self.consumer, consumer);
        self.prefetch = prefetch;
        let old = self.retiring.insert(old);
        self.channel.basic_cancel(old.tag(), BasicCancelOptions::default()).await
    }

    /// Cancels the consumer (on stop; a retiring one is cancelled already): the
    /// broker sends nothing more, and what was delivered stays unacked until it
    /// is settled or the channel closes.
    pub async fn cancel(&self) -> Result<(), lapin::Error> {
        self.channel.basic_cancel(self.consumer.tag(), BasicCancelOptions::default()).await
    }
}

async fn consume(channel: &Channel, queue: &str, phase: Phase, prefetch: u16) -> Result<Consumer, lapin::Error> {
    channel.basic_qos(prefetch, BasicQosOptions::default()).await?;
    channel
        .basic_consume(
            queue.into(),
            format!("authrelay-{}-{}", phase.as_str(), uuid::Uuid::new_v4().simple()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}
