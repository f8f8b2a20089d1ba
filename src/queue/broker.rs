//! The broker connection and its supervisor: connect (with a bounded wait at
//! start), declare the topology, run the lanes and the event consumer, and on
//! any loss reconnect with backoff, dropping every cached profile and token
//! because events may have been missed meanwhile.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use lapin::{Connection, ConnectionProperties, Event};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::publisher::Publisher;
use super::{Names, events, lane, topology};
use crate::api::Readiness;
use crate::job::Phase;
use crate::worker::WorkerContext;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(
        "cannot reach RabbitMQ at {target} after {waited:?}: {source}; check AUTHRELAY_AMQP_URL and that the broker is up"
    )]
    Unreachable {
        target: String,
        waited: Duration,
        #[source]
        source: lapin::Error,
    },
    #[error("cannot declare the AMQP topology: {0}")]
    Topology(#[source] lapin::Error),
}

/// The broker address without credentials, for messages.
pub fn describe(url: &SecretString) -> String {
    match url::Url::parse(url.expose_secret()) {
        Ok(u) => format!("{}:{}{}", u.host_str().unwrap_or("?"), u.port().unwrap_or(5672), u.path()),
        Err(_) => "the configured URL".into(),
    }
}

/// The largest frame we accept (RabbitMQ's default). A message's headers must
/// fit in one frame, so this also bounds how deeply a header table can nest.
const FRAME_MAX: u32 = 128 * 1024;

/// How long the TCP connect plus the AMQP handshake may take. A peer that
/// accepts the connection but never speaks AMQP would otherwise hold the
/// caller (start-up, a reconnect, the outbox relay) forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn connect(url: &SecretString) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name("authrelay".into());
    let url = with_frame_max(url.expose_secret());
    let connecting = Connection::connect(&url, properties);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting).await {
        Ok(result) => result,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no AMQP handshake within {HANDSHAKE_TIMEOUT:?}"),
        )
        .into()),
    }
}

/// The URL with `frame_max` pinned, unless it already says otherwise.
fn with_frame_max(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if !parsed.query_pairs().any(|(k, _)| k == "frame_max") => {
            parsed.query_pairs_mut().append_pair("frame_max", &FRAME_MAX.to_string());
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Connects, retrying for up to `wait`; used at start so a missing broker is
/// a clear error rather than a silent hang.
pub async fn connect_with_wait(url: &SecretString, wait: Duration) -> Result<Connection, BrokerError> {
    let started = Instant::now();
    let mut delay = Duration::from_millis(100);
    loop {
        match connect(url).await {
            Ok(connection) => return Ok(connection),
            Err(e) if started.elapsed() + delay > wait => {
                return Err(BrokerError::Unreachable { target: describe(url), waited: started.elapsed(), source: e });
            }
            Err(e) => {
                tracing::warn!(target = %describe(url), error = %e, "broker not reachable yet; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// Declares the topology on a short-lived channel.
pub async fn declare_topology(connection: &Connection, names: &Names) -> Result<(), BrokerError> {
    let channel = connection.create_channel().await.map_err(BrokerError::Topology)?;
    topology::declare(&channel, names).await.map_err(BrokerError::Topology)?;
    super::close_channel(&channel, "topology declared").await;
    Ok(())
}

/// Readiness component names.
pub const BROKER: &str = "broker";

pub fn lane_component(phase: Phase) -> String {
    format!("consumer.{}", phase.as_str())
}

pub const EVENTS_COMPONENT: &str = "consumer.profile_events";

/// How long lanes and the event consumer may take to stop once told to, beyond
/// the shutdown grace period: a lane closes its channel within [`super::CLOSE_WAIT`].
pub const WIND_DOWN: Duration = Duration::from_secs(5);

/// Runs the workers until `shutdown`, reconnecting as often as needed.
pub async fn supervise(
    ctx: Arc<WorkerContext>,
    first: Connection,
    url: SecretString,
    names: Names,
    readiness: Readiness,
    shutdown: CancellationToken,
) {
    let mut connection = Some(Arc::new(first));
    let mut backoff = Duration::from_millis(200);
    loop {
        let conn = match connection.take() {
            Some(c) => c,
            None => {
                let Some(attempt) = shutdown.run_until_cancelled(connect(&url)).await else { return };
                match attempt {
                    Ok(c) => {
                        let c = Arc::new(c);
                        // We may have missed profile events while away.
                        ctx.clear_caches();
                        tracing::info!(target = %describe(&url), "reconnected to the broker; caches dropped");
                        c
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "broker unreachable");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                        continue;
                    }
                }
            }
        };
        ctx.metrics.broker_connects.inc();
        backoff = Duration::from_millis(200);
        let ended = session(&ctx, &conn, &names, &readiness, &shutdown).await;
        readiness.set(BROKER, false);
        for phase in Phase::ALL {
            readiness.set(&lane_component(phase), false);
        }
        readiness.set(EVENTS_COMPONENT, false);
        super::close_connection(&conn, "authrelay stopping").await;
        match ended {
            Ok(()) => return,
            Err(reason) => tracing::error!(error = %reason, "lost the broker; reconnecting"),
        }
    }
}

/// One connection's life: every lane and the event consumer. Ends when
/// `shutdown` is cancelled (Ok) or when any of them fails (Err).
async fn session(
    ctx: &Arc<WorkerContext>,
    conn: &Arc<Connection>,
    names: &Names,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    let setup = async {
        declare_topology(conn, names).await.map_err(|e| e.to_string())?;
        Publisher::open(conn, names.clone()).await.map_err(|e| e.to_string())
    };
    // Bounded: a connection lost mid-declare may leave a call unanswered.
    let Some(opened) = shutdown.run_until_cancelled(tokio::time::timeout(HANDSHAKE_TIMEOUT, setup)).await else {
        return Ok(());
    };
    let publisher = match opened {
        Ok(opened) => Arc::new(opened?),
        Err(_) => {
            return Err(format!("the broker did not answer the topology declarations within {HANDSHAKE_TIMEOUT:?}"));
        }
    };
    readiness.set(BROKER, true);

    let stop = shutdown.child_token();
    // A connection-level error ends the session at once, before any consumer notices.
    let mut events_listener = conn.events_listener();
    let mut tasks: JoinSet<Result<(), String>> = JoinSet::new();
    for phase in Phase::ALL {
        let (ctx, publisher, conn, stop, readiness) =
            (ctx.clone(), publisher.clone(), conn.clone(), stop.clone(), readiness.clone());
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let component = lane_component(phase);
            let started = || readiness.set(&component, true);
            let result = lane::run(ctx, publisher, &conn, phase, stop, shutdown, started).await;
            readiness.set(&component, false);
            result.map_err(|e| e.to_string())
        });
    }
    {
        let (ctx, conn, names, stop, readiness) =
            (ctx.clone(), conn.clone(), names.clone(), stop.clone(), readiness.clone());
        tasks.spawn(async move {
            let result = events::run(ctx, &conn, &names, stop, || readiness.set(EVENTS_COMPONENT, true)).await;
            readiness.set(EVENTS_COMPONENT, false);
            result.map_err(|e| e.to_string())
        });
    }

    let mut failure: Option<String> = None;
    let mut listening = true;
    // Once stopping, the tasks get a bounded time to wind down (the grace period
    // on shutdown): an AMQP call that was in flight when the connection broke
    // may never be answered, and must not keep the session from ending.
    let mut stopping_since: Option<tokio::time::Instant> = None;
    let mut abandoned = false;
    // A shutdown that arrives after stopping began still gets its grace period.
    let allowance = || if shutdown.is_cancelled() { ctx.settings.shutdown_grace + WIND_DOWN } else { WIND_DOWN };
    // Not ready from the moment anything fails, not only once everything stopped.
    let unready = |readiness: &Readiness| {
        readiness.set(BROKER, false);
        for phase in Phase::ALL {
            readiness.set(&lane_component(phase), false);
        }
        readiness.set(EVENTS_COMPONENT, false);
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
                Some(Event::Error(e)) => {
                    failure.get_or_insert(format!("connection error: {e}"));
                    unready(readiness);
                    stop.cancel();
                }
                Some(_) => {}
                None => listening = false,
            },
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(e))) => {
                    if !shutdown.is_cancelled() {
                        failure.get_or_insert(e);
                        unready(readiness);
                    }
                    stop.cancel();
                }
                Some(Err(e)) if e.is_cancelled() => {}
                Some(Err(e)) => {
                    failure.get_or_insert(format!("a consumer task failed: {e}"));
                    unready(readiness);
                    stop.cancel();
                }
            },
        }
    }
    publisher.close().await;
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    #[test]
    fn frame_max_is_pinned_unless_the_url_sets_it() {
        assert_eq!(super::with_frame_max("amqp://g:g@h:5672/%2f"), "amqp://g:g@h:5672/%2f?frame_max=131072");
        assert_eq!(super::with_frame_max("amqp://h/%2f?frame_max=4096"), "amqp://h/%2f?frame_max=4096");
    }
}
