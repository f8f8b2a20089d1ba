//! One delivery's task: process it, settle it (publish what it calls for,
//! then ack), record it (log, metrics, profile health). Whatever goes wrong on the way is logged and the
//! delivery is still settled, so a bug never leaves a message unacked until
//! its channel dies:
//! - settling fails (the broker refused or went away): the delivery returns to
//!   its queue, to run again;
//! - processing or settling panics: a bug. The message is answered and parked
//!   with error kind `internal` (a caller waiting on `reply_to` hears at once,
//!   and replay can tell a bug from bad input), then acked.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Instant;

use chrono::Utc;
use futures_util::FutureExt as _;
use lapin::message::Delivery;

use super::WorkerContext;
use super::health::HealthRecorder;
use super::step::Processed;
use crate::error_text::Chain;
use crate::job::{self, ErrorKind, JobError, JobResult, Outcome, Phase};
use crate::metrics::Metrics;
use crate::queue::headers;
use crate::queue::publisher::Publisher;
use crate::queue::settle::{Disposition, ParkReason, requeue, settle};

/// What a result and a parked copy say about a bug.
const INTERNAL_MESSAGE: &str = "authrelay failed while processing this message (internal error); see its log";

/// Processes and settles one delivery; never panics outward.
pub async fn handle(ctx: &WorkerContext, publisher: &Publisher, phase: Phase, delivery: &Delivery) {
    // Boxed: the job's future is a few KiB, and moving it through the wrappers
    // below (and into the spawned task) would copy it each time. The delivery
    // stays boxed where the lane put it for the same reason.
    let processing = Box::pin(ctx.process(phase, &delivery.data, delivery.properties.headers().as_ref()));
    run(&ctx.metrics, &ctx.health, publisher, phase, delivery, processing).await;
}

/// The steps of [`handle`], for any way of processing (tests pass their own).
async fn run(
    metrics: &Metrics,
    health: &HealthRecorder,
    publisher: &Publisher,
    phase: Phase,
    delivery: &Delivery,
    processing: impl Future<Output = Processed>,
) {
    let _in_flight = InFlight::enter(&metrics.lane(phase).in_flight);
    let started = Instant::now();
    let Processed { disposition, used } = match AssertUnwindSafe(processing).catch_unwind().await {
        Ok(processed) => processed,
        Err(_) => {
            tracing::error!(lane = %phase, "processing a job panicked; it is answered and parked as `internal`");
            internal(phase, delivery).into()
        }
    };
    match AssertUnwindSafe(settle(publisher, metrics, delivery, &disposition)).catch_unwind().await {
        Ok(Ok(())) => {
            let recorded = std::panic::catch_unwind(AssertUnwindSafe(|| {
                record(metrics, phase, &disposition, started);
                // Only a settled job counts: one that returns to its queue will run (and count) again.
                if let Some((profile_id, job_use)) = used {
                    health.record(profile_id, job_use);
                }
            }));
            if recorded.is_err() {
                tracing::error!(lane = %phase, "recording a settled job panicked");
            }
        }
        Ok(Err(e)) => {
            tracing::error!(lane = %phase, error = %Chain(&e), "could not settle a job; it returns to the queue");
            requeue(delivery).await;
        }
        Err(_) => {
            // Something may have been published already; the ack was not sent
            // (or, if it was, the acker ignores a second one).
            tracing::error!(lane = %phase, "settling a job panicked; it is answered and parked as `internal`");
            let fallback = internal(phase, delivery);
            match AssertUnwindSafe(settle(publisher, metrics, delivery, &fallback)).catch_unwind().await {
                Ok(Ok(())) => record(metrics, phase, &fallback, started),
                _ => {
                    tracing::error!(lane = %phase, "could not park a job that failed internally; it returns to the queue");
                    requeue(delivery).await;
                }
            }
        }
    }
}

/// How a bug ends a message: a `failed` result with error kind `internal` when
/// the message names its job, and a parked copy either way.
fn internal(phase: Phase, delivery: &Delivery) -> Disposition {
    let attempts = headers::read_u32(delivery.properties.headers().as_ref(), headers::ATTEMPTS).unwrap_or(0);
    let park = ParkReason { kind: ErrorKind::Internal, message: INTERNAL_MESSAGE.into(), attempts, phase };
    match job::identify(&delivery.data, phase) {
        Some(identity) => {
            let error = JobError::new(ErrorKind::Internal, INTERNAL_MESSAGE, false);
            let mut result = JobResult::unattempted(&identity, Outcome::Failed, Some(error), Utc::now());
            result.attempts = attempts;
            Disposition::Done { result: Box::new(result), park: Some(park) }
        }
        None => Disposition::ParkOnly(park),
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
fn record(metrics: &Metrics, phase: Phase, disposition: &Disposition, started: Instant) {
    let elapsed = started.elapsed();
    match disposition {
        Disposition::Done { result, .. } => {
            let outcome = result.outcome.as_str();
            metrics.lane(phase).settled(result.outcome, elapsed.as_secs_f64());
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
            metrics.lane(phase).count(Outcome::Rejected);
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
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use futures_util::StreamExt as _;
    use lapin::options::{BasicConsumeOptions, BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};
    use serde_json::{Value, json};

    use super::*;
    use crate::queue::{Names, topology};

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

    /// Log lines written while a test runs, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            crate::lock::lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A job published to a phase queue of a fresh topology, taken back as a
    /// delivery, and a queue that receives every result.
    struct Fixture {
        connection: Connection,
        /// The channel deliveries are taken on: it must stay open for their acks.
        channel: lapin::Channel,
        names: Names,
        results: lapin::Consumer,
    }

    impl Fixture {
        async fn new() -> Self {
            let url = "amqp://guest:guest@127.0.0.1:5672/%2f";
            let connection = Connection::connect(url, ConnectionProperties::default()).await.expect("RabbitMQ is up");
            let names = Names::new(format!("unit{}", &uuid::Uuid::new_v4().simple().to_string()[..12]));
            let channel = connection.create_channel().await.unwrap();
            topology::declare(&channel, &names).await.unwrap();
            let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
            let results = channel.queue_declare("".into(), exclusive, FieldTable::default()).await.unwrap();
            channel
                .queue_bind(
                    results.name().clone(),
                    names.results_exchange().as_str().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
            let no_ack = BasicConsumeOptions { no_ack: true, ..Default::default() };
            let results =
                channel.basic_consume(results.name().clone(), "".into(), no_ack, FieldTable::default()).await.unwrap();
            Self { connection, channel, names, results }
        }

        async fn delivery(&self, body: &Value) -> Delivery {
            let channel = &self.channel;
            let queue = self.names.phase_queue(Phase::DuringCall);
            let properties = BasicProperties::default().with_delivery_mode(2);
            let payload = serde_json::to_vec(body).unwrap();
            channel
                .basic_publish("".into(), queue.as_str().into(), Default::default(), &payload, properties)
                .await
                .unwrap()
                .await
                .unwrap();
            for _ in 0..100 {
                if let Some(message) =
                    channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await.unwrap()
                {
                    return message.delivery;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("the job never arrived on {queue}");
        }

        async fn cleanup(self) {
            let channel = self.connection.create_channel().await.unwrap();
            for queue in self.names.every_queue() {
                let _ = channel.queue_delete(queue.as_str().into(), Default::default()).await;
            }
            for exchange in self.names.every_exchange() {
                let _ = channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
            }
            let _ = self.connection.close(200, "".into()).await;
        }
    }

    impl Captured {
        /// Captures this thread's log lines until the guard goes. (Every test
        /// here installs one, so that whichever first reaches a log call does
        /// so with a subscriber listening: tracing caches per call site.)
        fn install() -> (Self, tracing::subscriber::DefaultGuard) {
            let logs = Captured::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
            (logs, tracing::subscriber::set_default(subscriber))
        }

        fn text(&self) -> String {
            String::from_utf8(crate::lock::lock(&self.0).clone()).unwrap()
        }
    }

    #[tokio::test]
    async fn a_panic_while_processing_answers_parks_as_internal_acks_and_logs() {
        let (logs, _default) = Captured::install();
        let mut fixture = Fixture::new().await;
        let publisher = Publisher::open(&fixture.connection, fixture.names.clone()).await.unwrap();
        let metrics = Metrics::new();
        let job = json!({"job_id": "j-panic", "workspace_id": "acme", "phase": "during_call", "action_id": "a",
                         "request": {"url": "http://127.0.0.1:9/"}});
        let delivery = fixture.delivery(&job).await;

        let health = HealthRecorder::new(&metrics);
        run(&metrics, &health, &publisher, Phase::DuringCall, &delivery, async { panic!("a bug in processing") }).await;

        let result = tokio::time::timeout(Duration::from_secs(10), fixture.results.next()).await.unwrap().unwrap();
        let result: Value = serde_json::from_slice(&result.unwrap().data).unwrap();
        assert_eq!((result["job_id"].as_str(), result["outcome"].as_str()), (Some("j-panic"), Some("failed")));
        assert_eq!(result["error"]["kind"], "internal");
        let channel = fixture.connection.create_channel().await.unwrap();
        let failed = fixture.names.failed_queue();
        let parked = channel.basic_get(failed.as_str().into(), BasicGetOptions::default()).await.unwrap();
        let parked = parked.expect("the job is parked").delivery;
        let kind = headers::read_str(parked.properties.headers().as_ref(), headers::ERROR_KIND);
        assert_eq!(kind.as_deref(), Some("internal"));
        let queue = fixture.names.phase_queue(Phase::DuringCall);
        let left = channel.basic_get(queue.as_str().into(), BasicGetOptions::default()).await.unwrap();
        assert!(left.is_none(), "the delivery was acked, not returned to its queue");
        let text = logs.text();
        assert!(text.contains("ERROR") && text.contains("panicked"), "{text}");
        assert_eq!(metrics.lane(Phase::DuringCall).in_flight.get(), 0);
        publisher.close().await;
        fixture.cleanup().await;
    }

    #[tokio::test]
    async fn an_unidentifiable_message_that_panics_is_parked_as_internal() {
        let (logs, _default) = Captured::install();
        let fixture = Fixture::new().await;
        let publisher = Publisher::open(&fixture.connection, fixture.names.clone()).await.unwrap();
        let delivery = fixture.delivery(&json!(["not", "a", "job"])).await;

        let metrics = Metrics::new();
        let health = HealthRecorder::new(&metrics);
        run(&metrics, &health, &publisher, Phase::DuringCall, &delivery, async { panic!("a bug") }).await;

        let channel = fixture.connection.create_channel().await.unwrap();
        let failed = fixture.names.failed_queue();
        let parked = channel.basic_get(failed.as_str().into(), BasicGetOptions::default()).await.unwrap();
        let kind =
            headers::read_str(parked.expect("parked").delivery.properties.headers().as_ref(), headers::ERROR_KIND);
        assert_eq!(kind.as_deref(), Some("internal"));
        assert!(logs.text().contains("panicked"), "{}", logs.text());
        publisher.close().await;
        fixture.cleanup().await;
    }
}
