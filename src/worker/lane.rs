//! One consumer per phase, on its own channel with its own prefetch and
//! concurrency, so a post-call backlog or a bulk replay never delays a
//! during-call job.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{FutureExt as _, StreamExt as _};
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::WorkerContext;
use crate::job::{ErrorKind, Outcome, Phase};
use crate::queue::publisher::Publisher;
use crate::queue::settle::{Disposition, ParkReason, requeue, settle};

#[derive(Debug, thiserror::Error)]
pub enum LaneError {
    #[error("the {lane} lane's channel failed")]
    Amqp {
        lane: Phase,
        #[source]
        source: lapin::Error,
    },
    #[error("the broker ended the {0} lane's consumer")]
    ConsumerEnded(Phase),
    #[error("the {0} lane's queue has ready messages but none arrived for a while; resubscribing")]
    Stalled(Phase),
}

/// How long a lane that just acked its last jobs waits before closing its channel on shutdown.
const ACK_SETTLE_PAUSE: Duration = Duration::from_millis(500);

/// How often an idle lane checks that it is not missing ready messages.
const WATCHDOG_PERIOD: std::time::Duration = std::time::Duration::from_secs(15);

/// Consumes `phase`'s queue until `stop` is cancelled or the consumer fails.
/// On stop, in-flight jobs get `grace` to finish and settle; deliveries not
/// settled by then return to the queue when the channel closes.
pub async fn run(
    ctx: Arc<WorkerContext>,
    publisher: Arc<Publisher>,
    connection: &Connection,
    phase: Phase,
    stop: CancellationToken,
    shutdown: CancellationToken,
    on_started: impl FnOnce(),
) -> Result<(), LaneError> {
    let amqp = |source| LaneError::Amqp { lane: phase, source };
    let policy = ctx.settings.phase(phase).clone();
    let queue = publisher.names().phase_queue(phase);
    let subscribe = async {
        let channel = connection.create_channel().await?;
        channel.basic_qos(policy.prefetch, BasicQosOptions::default()).await?;
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("authrelay-{}-{}", phase.as_str(), uuid::Uuid::new_v4().simple()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((channel, consumer))
    };
    // A connection lost mid-subscribe may leave a call unanswered: stopping wins.
    let Some(subscribed) = stop.run_until_cancelled(subscribe).await else { return Ok(()) };
    let (channel, mut consumer) = subscribed.map_err(amqp)?;
    ctx.metrics.consumer_starts.with_label_values(&[phase.as_str()]).inc();
    on_started();
    tracing::info!(lane = %phase, queue = %queue, prefetch = policy.prefetch, concurrency = policy.concurrency, "consuming");

    let slots = Arc::new(Semaphore::new(policy.concurrency));
    let mut in_flight = JoinSet::new();
    let mut last_delivery = Instant::now();
    let mut watchdog = tokio::time::interval(WATCHDOG_PERIOD);
    watchdog.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    watchdog.tick().await;
    let ended = loop {
        // Take a slot first: with every slot busy, deliveries wait in the
        // prefetch buffer (bounded by the broker) instead of piling up here.
        let slot = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let wake = loop {
            tokio::select! {
                _ = stop.cancelled() => break Wake::Stop,
                next = consumer.next() => break Wake::Delivery(next.map(|d| d.map(Box::new))),
                _ = watchdog.tick() => {
                    // Nothing unacked and nothing arriving: if the queue has ready
                    // messages all the same, the consumer is stuck.
                    while in_flight.try_join_next().is_some() {}
                    if in_flight.is_empty()
                        && last_delivery.elapsed() >= WATCHDOG_PERIOD
                        && ready_messages(&channel, &queue).await > 0
                    {
                        ctx.metrics.consumer_stalls.with_label_values(&[phase.as_str()]).inc();
                        break Wake::Stalled;
                    }
                }
            }
        };
        match wake {
            Wake::Stop => break Ok(()),
            Wake::Stalled => break Err(LaneError::Stalled(phase)),
            Wake::Delivery(Some(Ok(delivery))) => {
                last_delivery = Instant::now();
                let (ctx, publisher) = (ctx.clone(), publisher.clone());
                in_flight.spawn(async move {
                    handle(&ctx, &publisher, phase, &delivery).await;
                    drop(slot);
                });
            }
            Wake::Delivery(Some(Err(source))) => break Err(amqp(source)),
            Wake::Delivery(None) => break Err(LaneError::ConsumerEnded(phase)),
        }
        // Reap finished tasks so the set does not grow.
        while in_flight.try_join_next().is_some() {}
    };

    let quick = Duration::from_secs(1);
    if channel.status().connected() {
        let _ = tokio::time::timeout(quick, channel.basic_cancel(consumer.tag(), BasicCancelOptions::default())).await;
    }
    // On shutdown, in-flight jobs get the grace period to finish and settle. When
    // the connection failed instead, they cannot settle on it: stop them now (the
    // broker returns their deliveries) so the supervisor can reconnect at once.
    let graceful = ended.is_ok() && shutdown.is_cancelled();
    if graceful {
        let grace = ctx.settings.shutdown_grace;
        let settling = !in_flight.is_empty();
        let drained = tokio::time::timeout(grace, async { while in_flight.join_next().await.is_some() {} }).await;
        if drained.is_err() {
            tracing::warn!(lane = %phase, unfinished = in_flight.len(), "grace period over; unfinished jobs return to the queue");
        } else if settling {
            // RabbitMQ may drop acks that reach a quorum queue just before their
            // channel closes (rabbitmq-server#10327), returning finished jobs to
            // the queue to run again. Give the last acks a moment to be applied.
            tokio::time::sleep(ACK_SETTLE_PAUSE).await;
        }
    } else if !in_flight.is_empty() {
        tracing::warn!(lane = %phase, unfinished = in_flight.len(), "connection lost; unsettled jobs return to the queue");
    }
    in_flight.abort_all();
    while in_flight.join_next().await.is_some() {}
    crate::queue::close_channel(&channel, "authrelay lane stopped").await;
    ended
}

enum Wake {
    Stop,
    Delivery(Option<Result<Box<Delivery>, lapin::Error>>),
    Stalled,
}

/// Messages ready on `queue` (0 when it cannot be told).
async fn ready_messages(channel: &lapin::Channel, queue: &str) -> u32 {
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    match channel.queue_declare(queue.into(), passive, FieldTable::default()).await {
        Ok(q) => q.message_count(),
        Err(_) => 0,
    }
}

/// Processes and settles one delivery. Never panics outward: a panic while
/// processing parks the message (a bug to look at), it does not lose it.
/// The delivery stays boxed where the lane put it: it is a few hundred bytes,
/// and moving it into this future would copy it once more per job.
async fn handle(ctx: &WorkerContext, publisher: &Publisher, phase: Phase, delivery: &Delivery) {
    let _in_flight = InFlight::enter(&ctx.metrics.lane(phase).in_flight);
    let started = Instant::now();
    // Boxed: the job's future is a few KiB, and moving it through the wrappers
    // below (and into the spawned task) would copy it each time.
    let processing = Box::pin(ctx.process(phase, &delivery.data, delivery.properties.headers().as_ref()));
    let disposition = AssertUnwindSafe(processing).catch_unwind().await.unwrap_or_else(|_| {
        tracing::error!(lane = %phase, "processing a job panicked; the message is parked for inspection");
        Disposition::ParkOnly(ParkReason {
            kind: ErrorKind::InvalidJob,
            message: "authrelay failed while processing this message (internal error); see the log".into(),
            attempts: 0,
            phase,
        })
    });
    match settle(publisher, &ctx.metrics, delivery, &disposition).await {
        Ok(()) => record(ctx, phase, &disposition, started),
        Err(e) => {
            tracing::error!(lane = %phase, error = %e, "could not settle a job; it returns to the queue");
            requeue(delivery).await;
        }
    }
}

/// Counts a job in flight for as long as it lives, also when its task is
/// aborted (a lost connection, the end of the grace period).
struct InFlight<'a>(&'a prometheus::IntGauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// One log line and the metrics for each settled job.
fn record(ctx: &WorkerContext, phase: Phase, disposition: &Disposition, started: Instant) {
    let elapsed = started.elapsed();
    match disposition {
        Disposition::Done { result, .. } => {
            let outcome = result.outcome.as_str();
            ctx.metrics.lane(phase).settled(result.outcome, elapsed.as_secs_f64());
            let error_kind = result.error.as_ref().map(|e| e.kind.as_str());
            if result.outcome == Outcome::Succeeded || result.outcome == Outcome::Expired {
                tracing::info!(
                    job_id = %result.job_id, workspace_id = result.workspace_id.as_deref().unwrap_or(""),
                    phase = %phase, outcome, attempts = result.attempts, duration_ms = elapsed.as_millis() as u64,
                    "job settled"
                );
            } else {
                tracing::warn!(
                    job_id = %result.job_id, workspace_id = result.workspace_id.as_deref().unwrap_or(""),
                    phase = %phase, outcome, attempts = result.attempts, duration_ms = elapsed.as_millis() as u64,
                    error_kind, "job settled"
                );
            }
        }
        Disposition::ParkOnly(reason) => {
            ctx.metrics.lane(phase).count(Outcome::Rejected);
            tracing::warn!(phase = %phase, error_kind = reason.kind.as_str(), "unidentifiable message parked");
        }
        Disposition::Delay { attempts, delay, reason, .. } => {
            tracing::info!(
                phase = %phase, attempts, delay_ms = delay.as_millis() as u64, reason = reason.as_str(),
                "job deferred to a delay queue"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    #[test]
    fn a_job_leaves_the_in_flight_gauge_however_its_task_ends() {
        let gauge = prometheus::IntGauge::new("g", "g").unwrap();
        let task = async {
            let _in_flight = InFlight::enter(&gauge);
            std::future::pending::<()>().await;
        };
        let mut task = Box::pin(task);
        let waker = std::task::Waker::noop();
        assert!(task.as_mut().poll(&mut std::task::Context::from_waker(waker)).is_pending());
        assert_eq!(gauge.get(), 1);
        drop(task); // what aborting its task does
        assert_eq!(gauge.get(), 0);
    }
}
