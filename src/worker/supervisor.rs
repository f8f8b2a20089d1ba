//! The supervisor: keeps one broker connection alive for the lanes and the
//! profile-event consumer. Each connection's life is a *session*; when any
//! part of a session fails, the whole session ends, and the supervisor
//! reconnects with backoff, dropping every cached profile and token because
//! events may have been missed meanwhile.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::{Connection, Event};
use secrecy::SecretString;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{WorkerContext, events, lane};
use crate::config::LaneSelection;
use crate::job::Phase;
use crate::queue::connect::{self, HANDSHAKE_TIMEOUT, connect};
use crate::queue::publisher::Publisher;
use crate::queue::{Names, close_connection};
use crate::readiness::{Latch, Readiness};
use crate::reconnect::Backoff;
use crate::traffic::live_first::is_live;

/// How long lanes and the event consumer may take to stop once told to, beyond
/// the shutdown grace period: a lane closes its channel within [`crate::queue::CLOSE_WAIT`].
pub const WIND_DOWN: Duration = Duration::from_secs(5);

/// Between reconnect attempts.
const RECONNECT: Backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));

/// Why a session ended before shutdown.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("could not declare the topology")]
    Topology(#[source] connect::BrokerError),
    #[error("could not open the publishing channel")]
    Publisher(#[source] lapin::Error),
    #[error("the broker did not answer the topology declarations within {0:?}")]
    SetupTimedOut(Duration),
    #[error("the connection failed")]
    Connection(#[source] lapin::Error),
    #[error("a lane stopped")]
    Lane(#[source] lane::LaneError),
    #[error("the profile-event consumer stopped")]
    Events(#[source] events::EventsError),
    #[error("a consumer task failed")]
    Task(#[source] tokio::task::JoinError),
}

/// The readiness of everything a session runs.
#[derive(Clone)]
struct Latches {
    broker: Latch,
    /// Only the lanes this process runs (`--lanes`) count toward readiness.
    lanes: [Option<Latch>; 3],
    events: Latch,
}

impl Latches {
    fn register(readiness: &Readiness, lanes: LaneSelection) -> Self {
        Self {
            broker: readiness.latch("broker"),
            lanes: Phase::ALL.map(|phase| {
                lanes.contains(phase).then(|| {
                    readiness.latch(match phase {
                        Phase::PreCall => "consumer.pre_call",
                        Phase::DuringCall => "consumer.during_call",
                        Phase::PostCall => "consumer.post_call",
                    })
                })
            }),
            events: readiness.latch("consumer.profile_events"),
        }
    }

    fn lane(&self, phase: Phase) -> Option<&Latch> {
        self.lanes[phase.index()].as_ref()
    }

    /// Not ready from the moment anything fails, not only once everything stopped.
    fn all_unready(&self) {
        self.broker.set(false);
        self.lanes.iter().flatten().for_each(|latch| latch.set(false));
        self.events.set(false);
    }
}

/// Runs the workers until `shutdown`, reconnecting as often as needed.
pub async fn supervise(
    ctx: Arc<WorkerContext>,
    first: Connection,
    url: SecretString,
    names: Names,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let latches = Latches::register(&readiness, ctx.settings.lanes);
    let mut connection = Some(Arc::new(first));
    let mut delays = RECONNECT.delays();
    loop {
        let conn = match connection.take() {
            Some(c) => c,
            None => {
                let Some(attempt) = shutdown.run_until_cancelled(connect(&url)).await else { return };
                match attempt {
                    Ok(c) => {
                        // We may have missed profile events while away.
                        ctx.clear_caches();
                        tracing::info!(target = %connect::describe(&url), "reconnected to the broker; caches dropped");
                        Arc::new(c)
                    }
                    Err(e) => {
                        let delay = delays.next().unwrap_or(RECONNECT.max);
                        tracing::warn!(error = %crate::error_text::Chain(&e), retry_in_ms = delay.as_millis() as u64, "broker unreachable");
                        if shutdown.run_until_cancelled(tokio::time::sleep(delay)).await.is_none() {
                            return;
                        }
                        continue;
                    }
                }
            }
        };
        ctx.metrics.broker_connects.inc();
        delays = RECONNECT.delays();
        let ended = session(&ctx, &conn, &names, &latches, &shutdown).await;
        latches.all_unready();
        close_connection(&conn, "authrelay stopping").await;
        match ended {
            Ok(()) => return,
            Err(e) => tracing::error!(error = %crate::error_text::Chain(&e), "lost the broker; reconnecting"),
        }
    }
}

/// One connection's life: every lane and the event consumer. Ends when
/// `shutdown` is cancelled (Ok) or when any of them fails (Err).
async fn session(
    ctx: &Arc<WorkerContext>,
    conn: &Arc<Connection>,
    names: &Names,
    latches: &Latches,
    shutdown: &CancellationToken,
) -> Result<(), SessionError> {
    let setup = async {
        connect::declare_topology(conn, names).await.map_err(SessionError::Topology)?;
        let background = Publisher::open(conn, names.clone()).await.map_err(SessionError::Publisher)?;
        let live = Publisher::open(conn, names.clone()).await.map_err(SessionError::Publisher)?;
        Ok((background, live))
    };
    // Bounded: a connection lost mid-declare may leave a call unanswered.
    let Some(opened) = shutdown.run_until_cancelled(tokio::time::timeout(HANDSHAKE_TIMEOUT, setup)).await else {
        return Ok(());
    };
    let (publisher, live_publisher) = opened.map_err(|_| SessionError::SetupTimedOut(HANDSHAKE_TIMEOUT))??;
    // Live lanes publish on a channel of their own: the broker runs each channel
    // as one process, in order, so a live result would otherwise queue behind
    // the post-call lane's publishes and wait for their confirms.
    let (publisher, live_publisher) = (Arc::new(publisher), Arc::new(live_publisher));
    latches.broker.set(true);

    let stop = shutdown.child_token();
    // A connection-level error ends the session at once, before any consumer notices.
    let mut events_listener = conn.events_listener();
    let mut tasks: JoinSet<Result<(), SessionError>> = JoinSet::new();
    // Only the selected lanes consume; the topology above was declared in full.
    for phase in ctx.settings.lanes.phases() {
        let Some(latch) = latches.lane(phase).cloned() else { continue };
        let publisher = if is_live(phase) { live_publisher.clone() } else { publisher.clone() };
        let (ctx, conn, stop, shutdown) = (ctx.clone(), conn.clone(), stop.clone(), shutdown.clone());
        tasks.spawn(async move {
            let result = lane::run(ctx, publisher, &conn, phase, stop, shutdown, || latch.set(true)).await;
            latch.set(false);
            result.map_err(SessionError::Lane)
        });
    }
    {
        let (ctx, conn, names, stop, latch) =
            (ctx.clone(), conn.clone(), names.clone(), stop.clone(), latches.events.clone());
        tasks.spawn(async move {
            let result = events::run(ctx, &conn, &names, stop, || latch.set(true)).await;
            latch.set(false);
            result.map_err(SessionError::Events)
        });
    }

    let mut failure: Option<SessionError> = None;
    let mut listening = true;
    // Once stopping, the tasks get a bounded time to wind down (the grace period
    // on shutdown): an AMQP call that was in flight when the connection broke
    // may never be answered, and must not keep the session from ending.
    let mut stopping_since: Option<tokio::time::Instant> = None;
    let mut abandoned = false;
    // A shutdown that arrives after stopping began still gets its grace period.
    let allowance = || if shutdown.is_cancelled() { ctx.settings.shutdown_grace + WIND_DOWN } else { WIND_DOWN };
    let fail = |error: SessionError, failure: &mut Option<SessionError>| {
        failure.get_or_insert(error);
        latches.all_unready();
        stop.cancel();
    };
    loop {
        tokio::select! {
            _ = stop.cancelled(), if stopping_since.is_none() && !abandoned => {
                stopping_since = Some(tokio::time::Instant::now());
            }
            _ = tokio::time::sleep_until(stopping_since.unwrap_or_else(tokio::time::Instant::now) + allowance()),
                if stopping_since.is_some() =>
            {
                // Re-checked: the allowance grows if shutdown began while we slept.
                if stopping_since.is_some_and(|since| since.elapsed() >= allowance()) {
                    tracing::warn!(unfinished = tasks.len(), "consumers did not stop in time; abandoning them");
                    tasks.abort_all();
                    (stopping_since, abandoned) = (None, true);
                }
            }
            event = events_listener.next(), if listening => match event {
                Some(Event::Error(e)) => fail(SessionError::Connection(e), &mut failure),
                Some(_) => {}
                None => listening = false,
            },
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                // Ending during shutdown is stopping, not failing.
                Some(Ok(Err(_))) if shutdown.is_cancelled() => stop.cancel(),
                Some(Ok(Err(e))) => fail(e, &mut failure),
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => fail(SessionError::Task(e), &mut failure),
            },
        }
    }
    publisher.close().await;
    live_publisher.close().await;
    failure.map_or(Ok(()), Err)
}
