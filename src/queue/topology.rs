//! Declares the contract's topology; every declaration is idempotent.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::Names;
use super::headers::{set as set_header, text};
use crate::job::Phase;

fn quorum() -> FieldTable {
    let mut args = FieldTable::default();
    set_header(&mut args, "x-queue-type", text("quorum"));
    args
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

/// Exchanges, the three phase queues bound by phase, and the parked-jobs queue.
pub async fn declare(channel: &Channel, names: &Names) -> Result<(), lapin::Error> {
    let exchange = |name: String, kind: ExchangeKind| async move {
        channel
            .exchange_declare(
                name.as_str().into(),
                kind,
                ExchangeDeclareOptions { durable: true, ..Default::default() },
                FieldTable::default(),
            )
            .await
    };
    exchange(names.actions_exchange(), ExchangeKind::Direct).await?;
    exchange(names.results_exchange(), ExchangeKind::Topic).await?;
    exchange(names.events_exchange(), ExchangeKind::Fanout).await?;
    for phase in Phase::ALL {
        let queue = names.phase_queue(phase);
        channel.queue_declare(queue.as_str().into(), durable(), quorum()).await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                names.actions_exchange().as_str().into(),
                phase.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel.queue_declare(names.failed_queue().as_str().into(), durable(), quorum()).await?;
    Ok(())
}

/// The steps of delay queues. A delayed message goes to the smallest tier that
/// holds its delay and carries its exact delay as a per-message TTL; tiers keep
/// short delays from waiting behind long ones (RabbitMQ expires messages only
/// at the head of a queue).
pub const DELAY_TIERS: &[(&str, u64)] = &[
    ("1s", 1),
    ("5s", 5),
    ("15s", 15),
    ("30s", 30),
    ("1m", 60),
    ("2m", 120),
    ("5m", 300),
    ("10m", 600),
    ("30m", 1800),
    ("1h", 3600),
    ("2h", 7200),
    ("6h", 21600),
    ("24h", 86400),
];

pub fn delay_tier(delay: std::time::Duration) -> &'static str {
    let secs = delay.as_secs_f64();
    DELAY_TIERS.iter().find(|(_, limit)| secs <= *limit as f64).map_or("24h", |(name, _)| name)
}

/// A delay queue of one phase and tier; expired messages dead-letter to the
/// actions exchange with the phase as routing key, i.e. back to the work queue.
pub async fn declare_delay_queue(
    channel: &Channel,
    names: &Names,
    phase: Phase,
    tier: &str,
) -> Result<String, lapin::Error> {
    let queue = names.delay_queue(phase, tier);
    let mut args = FieldTable::default();
    set_header(&mut args, "x-dead-letter-exchange", text(names.actions_exchange()));
    set_header(&mut args, "x-dead-letter-routing-key", text(phase.as_str()));
    // A cap so that a message without a per-message TTL cannot wait forever.
    let tier_secs = DELAY_TIERS.iter().find(|(n, _)| *n == tier).map_or(86400, |(_, s)| *s);
    set_header(&mut args, "x-message-ttl", AMQPValue::LongLongInt((tier_secs * 1000) as i64));
    channel.queue_declare(queue.as_str().into(), durable(), args).await?;
    Ok(queue)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn delays_land_in_the_smallest_tier_that_holds_them() {
        assert_eq!(delay_tier(Duration::from_millis(300)), "1s");
        assert_eq!(delay_tier(Duration::from_secs(5)), "5s");
        assert_eq!(delay_tier(Duration::from_secs(6)), "15s");
        assert_eq!(delay_tier(Duration::from_secs(36)), "1m");
        assert_eq!(delay_tier(Duration::from_secs(7200)), "2h");
        assert_eq!(delay_tier(Duration::from_secs(999_999)), "24h");
    }
}
