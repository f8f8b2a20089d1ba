//! One consumer per phase, on its own channel with its own prefetch and
//! concurrency, so a post-call backlog or a bulk replay never delays a
//! during-call job. Separate lanes still share the CPU and the broker, so while
//! live jobs run the post-call lane also runs no more jobs at once than
//! [`LiveFirst`] allows, and re-subscribes with a shallower prefetch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lapin::Connection;
use lapin::message::Delivery;
use lapin::types::FieldTable;
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::subscription::Subscription;
use super::{WorkerContext, delivery};
use crate::job::Phase;
use crate::metrics::Consumer;
use crate::queue::publisher::Publisher;
use crate::traffic::live_first::{LiveFirst, is_live};

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
    #[error("the {0} lane could not change its prefetch in time (is the queue without a leader?)")]
    ResubscribeTimedOut(Phase),
}

/// How long a lane that just acked its last jobs waits before closing its channel on shutdown.
const ACK_SETTLE_PAUSE: Duration = Duration::from_millis(500);

/// How long changing a lane's prefetch may take: a consume and a cancel, each
/// through the quorum queue's log, which can stall while the queue has no leader.
const RESUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(10);

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
    let live = is_live(phase);
    // A background lane that starts while live work runs starts shallow.
    let prefetch = if live { policy.prefetch } else { ctx.live_first.prefetch(policy.prefetch) };
    let subscribe = Subscription::open(connection, &queue, phase, prefetch);
    // A connection lost mid-subscribe may leave a call unanswered: stopping wins.
    let Some(subscribed) = stop.run_until_cancelled(subscribe).await else { return Ok(()) };
    let mut subscription = subscribed.map_err(amqp)?;
    ctx.metrics.consumer_starts(Consumer::Lane(phase)).inc();
    on_started();
    tracing::info!(lane = %phase, queue = %queue, prefetch, concurrency = policy.concurrency, "consuming");
    let prefetch_gauge = ctx.metrics.lane_prefetch(phase);
    prefetch_gauge.set(i64::from(prefetch));

    if live {
        ctx.metrics.lane_concurrency(phase).set(i64::try_from(policy.concurrency).unwrap_or(i64::MAX));
    } else {
        ctx.live_first.show();
    }
    let slots = Arc::new(Semaphore::new(policy.concurrency));
    // Wakes a throttled background lane when one of its jobs ends.
    let finished = Arc::new(Notify::new());
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
        if !live {
            let in_use = || policy.concurrency - slots.available_permits();
            if !room_for_background(&ctx.live_first, in_use, &finished, &stop).await {
                break Ok(());
            }
            // Reach less deep into the queue while live work runs (see LiveFirst::prefetch).
            // One atomic read per job; the broker is asked only when it changes.
            let prefetch = ctx.live_first.prefetch(policy.prefetch);
            if subscription.can_move_to(prefetch) {
                match tokio::time::timeout(RESUBSCRIBE_TIMEOUT, subscription.resubscribe(prefetch)).await {
                    Err(_) => break Err(LaneError::ResubscribeTimedOut(phase)),
                    Ok(Err(source)) => break Err(amqp(source)),
                    Ok(Ok(())) => {
                        prefetch_gauge.set(i64::from(prefetch));
                        tracing::debug!(lane = %phase, prefetch, "re-subscribed");
                    }
                }
            }
        }
        let wake = loop {
            tokio::select! {
                _ = stop.cancelled() => break Wake::Stop,
                next = subscription.next() => break Wake::Delivery(next.map(|d| d.map(Box::new))),
                // An idle background lane still counts its way back up after live
                // work, so that its gauge tells the truth (only while it is throttled).
                _ = tokio::time::sleep(ctx.live_first.grow_every()), if !live && ctx.live_first.is_throttled() => {
                    ctx.live_first.background_limit();
                }
                _ = watchdog.tick() => {
                    // Nothing unacked and nothing arriving: if the queue has ready
                    // messages all the same, the consumer is stuck.
                    reap(&mut in_flight, phase);
                    if in_flight.is_empty()
                        && last_delivery.elapsed() >= WATCHDOG_PERIOD
                        && ready_messages(subscription.channel(), &queue).await > 0
                    {
                        ctx.metrics.consumer_stalls(phase).inc();
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
                let live_job = live.then(|| ctx.live_first.live_job());
                let (ctx, publisher, finished) = (ctx.clone(), publisher.clone(), finished.clone());
                in_flight.spawn(async move {
                    delivery::handle(&ctx, &publisher, phase, &delivery).await;
                    drop(live_job);
                    drop(slot);
                    finished.notify_one();
                });
            }
            Wake::Delivery(Some(Err(source))) => break Err(amqp(source)),
            Wake::Delivery(None) => break Err(LaneError::ConsumerEnded(phase)),
        }
        // Reap finished tasks so the set does not grow.
        reap(&mut in_flight, phase);
    };

    let quick = Duration::from_secs(1);
    if subscription.channel().status().connected() {
        let _ = tokio::time::timeout(quick, subscription.cancel()).await;
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
    crate::queue::close_channel(subscription.channel(), "authrelay lane stopped").await;
    prefetch_gauge.set(0);
    ended
}

/// Waits until the background lane may start one more job: its jobs in flight
/// (`in_use`, the slot just taken included) within what live work leaves it.
/// False when told to stop meanwhile.
async fn room_for_background(
    live_first: &LiveFirst,
    in_use: impl Fn() -> usize,
    finished: &Notify,
    stop: &CancellationToken,
) -> bool {
    while in_use() > live_first.background_limit() {
        // The limit grows only with time, one step per `grow_every`; jobs end any time.
        tokio::select! {
            _ = stop.cancelled() => return false,
            _ = finished.notified() => {}
            _ = tokio::time::sleep(live_first.grow_every()) => {}
        }
    }
    true
}

/// Takes finished job tasks out of the set. A task that ended other than by
/// finishing is a bug worth a log line: each one settles its own delivery and
/// catches its panics, so only an abort (shutdown, a lost connection) is expected.
fn reap(in_flight: &mut JoinSet<()>, phase: Phase) {
    while let Some(joined) = in_flight.try_join_next() {
        if let Err(e) = joined
            && !e.is_cancelled()
        {
            tracing::error!(lane = %phase, error = %e, "a job task ended abnormally");
        }
    }
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
