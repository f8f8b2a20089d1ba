//! Connecting to RabbitMQ: a bounded handshake that never leaves a socket or
//! lapin's I/O thread behind, a bounded wait for the broker at start, and the
//! topology declared on a short-lived channel.

use std::sync::Arc;
use std::time::Duration;

use lapin::tcp::{AsyncTcpStream, OwnedTLSConfig};
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret as _, SecretString};

use super::{Names, topology};
use crate::reconnect::{Backoff, retry_within};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot reach RabbitMQ at {target} after {waited:?} (check AUTHRELAY_AMQP_URL and that the broker is up)")]
    Unreachable {
        target: String,
        waited: Duration,
        #[source]
        source: lapin::Error,
    },
    #[error("cannot declare the AMQP topology")]
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
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

pub async fn connect(url: &SecretString) -> Result<Connection, lapin::Error> {
    connect_within(url, HANDSHAKE_TIMEOUT).await
}

async fn connect_within(url: &SecretString, limit: Duration) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name("authrelay".into());
    let uri: AMQPUri = with_frame_max(url.expose_secret()).parse().map_err(std::io::Error::other)?;
    let runtime = lapin::runtime::default_runtime()?;
    let dial = Arc::new(Dial::default());
    // Given up unless it finished: on the timeout below, and also when this
    // future is dropped (a shutdown, an API client gone).
    let _give_up = GiveUpOnDrop(dial.clone());
    let dialer = dial.clone();
    // The same TCP (and TLS) connect as lapin's own, bounded, keeping a handle on the socket.
    let open_stream = async move |uri: AMQPUri, runtime| {
        let tcp = async {
            let addrs: Vec<_> =
                tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port)).await?.collect();
            AsyncTcpStream::connect(&runtime, addrs).await
        };
        let stream: AsyncTcpStream<async_compat::Compat<tokio::net::TcpStream>> = tokio::time::timeout(limit, tcp)
            .await
            .map_err(|_| timed_out(format!("no TCP connection within {limit:?}")))??;
        if let AsyncTcpStream::Plain(tcp) = &stream {
            dialer.opened(socket2::SockRef::from(tcp.get_ref()).try_clone()?)?;
        }
        match uri.scheme {
            AMQPScheme::AMQP => Ok(stream),
            AMQPScheme::AMQPS => Ok(stream.into_tls(&uri.authority.host, OwnedTLSConfig::default().as_ref()).await?),
        }
    };
    let connecting = Connection::connector(uri, runtime, open_stream, properties);
    match tokio::time::timeout(limit, connecting).await {
        Ok(result) => {
            dial.finish();
            result
        }
        // `_give_up` hangs up the socket.
        Err(_) => Err(timed_out(format!("no AMQP handshake within {limit:?}")).into()),
    }
}

fn timed_out(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::TimedOut, message)
}

/// The socket of a connection being opened. lapin's I/O thread owns the stream
/// and outlives a connect future that is dropped, so a handshake that times out
/// (a peer that accepts TCP but never speaks AMQP) would leave the thread and the
/// socket behind for good; shutting the socket down ends both.
#[derive(Default)]
struct Dial(std::sync::Mutex<DialState>);

#[derive(Default)]
enum DialState {
    #[default]
    Dialing,
    /// A duplicate of the socket's descriptor (not the stream lapin reads).
    Opened(socket2::Socket),
    /// The handshake ended (connected or refused): no handle is kept.
    Finished,
    /// Given up: the socket was hung up, and nothing more is opened.
    Abandoned,
}

impl Dial {
    fn state(&self) -> std::sync::MutexGuard<'_, DialState> {
        crate::lock::lock(&self.0)
    }

    fn opened(&self, socket: socket2::Socket) -> std::io::Result<()> {
        let mut state = self.state();
        match *state {
            DialState::Abandoned => {
                let _ = socket.shutdown(std::net::Shutdown::Both);
                Err(std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "the connection attempt was given up"))
            }
            // A reconnect by lapin after the handshake: nothing to keep.
            DialState::Finished => Ok(()),
            _ => {
                *state = DialState::Opened(socket);
                Ok(())
            }
        }
    }

    /// The handshake ended (connected or refused): drop the duplicate, which
    /// would keep the socket open after lapin closes it.
    fn finish(&self) {
        *self.state() = DialState::Finished;
    }

    /// Hangs up a socket still in its handshake (lapin's I/O thread then
    /// ends) and refuses to open another; nothing once the handshake ended.
    fn give_up(&self) {
        let mut state = self.state();
        if matches!(*state, DialState::Finished) {
            return;
        }
        if let DialState::Opened(socket) = std::mem::replace(&mut *state, DialState::Abandoned) {
            let _ = socket.shutdown(std::net::Shutdown::Both);
        }
    }
}

struct GiveUpOnDrop(Arc<Dial>);

impl Drop for GiveUpOnDrop {
    fn drop(&mut self) {
        self.0.give_up();
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

/// How start-up waits for the broker between attempts.
const AT_START: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));

/// Connects, retrying for up to `wait`; used at start so a missing broker is
/// a clear error rather than a silent hang.
pub async fn connect_with_wait(url: &SecretString, wait: Duration) -> Result<Connection, BrokerError> {
    let started = tokio::time::Instant::now();
    let retry = |e: &lapin::Error, _| {
        tracing::warn!(target = %describe(url), error = %crate::error_text::Chain(e), "broker not reachable yet; retrying");
    };
    // Each attempt within what is left of `wait` (at least a moment): a peer that
    // accepts TCP but never speaks AMQP must not hold the caller for a whole handshake timeout.
    let attempt = || {
        let left = wait.saturating_sub(started.elapsed()).max(Duration::from_millis(200));
        connect_within(url, left.min(HANDSHAKE_TIMEOUT))
    };
    retry_within(AT_START, wait, attempt, |_| true, retry).await.map_err(|source| BrokerError::Unreachable {
        target: describe(url),
        waited: started.elapsed(),
        source,
    })
}

/// Declares the topology on a short-lived channel.
pub async fn declare_topology(connection: &Connection, names: &Names) -> Result<(), BrokerError> {
    let channel = connection.create_channel().await.map_err(BrokerError::Topology)?;
    topology::declare(&channel, names).await.map_err(BrokerError::Topology)?;
    super::close_channel(&channel, "topology declared").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn frame_max_is_pinned_unless_the_url_sets_it() {
        assert_eq!(super::with_frame_max("amqp://g:g@h:5672/%2f"), "amqp://g:g@h:5672/%2f?frame_max=131072");
        assert_eq!(super::with_frame_max("amqp://h/%2f?frame_max=4096"), "amqp://h/%2f?frame_max=4096");
    }

    /// A TCP listener that accepts and never answers, and an AMQP URL for it.
    async fn silent_peer() -> (tokio::net::TcpListener, secrecy::SecretString) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = secrecy::SecretString::from(format!("amqp://guest:guest@{}/%2f", listener.local_addr().unwrap()));
        (listener, url)
    }

    /// Without the hang-up, lapin's I/O thread would hold the connection for
    /// good: the silent peer must read to its end, and not be dialed again.
    async fn assert_hung_up(listener: &tokio::net::TcpListener, mut peer: tokio::net::TcpStream) {
        use tokio::io::AsyncReadExt as _;
        let mut buf = [0u8; 64];
        let hung_up = tokio::time::timeout(Duration::from_secs(5), async {
            while let Ok(n) = peer.read(&mut buf).await
                && n > 0
            {}
        })
        .await;
        assert!(hung_up.is_ok(), "the connection to the silent peer stayed open");
        let redial = tokio::time::timeout(Duration::from_secs(1), listener.accept()).await;
        assert!(redial.is_err(), "the abandoned connection attempt dialed again");
    }

    #[tokio::test]
    async fn a_peer_that_never_speaks_amqp_is_hung_up_on_when_the_handshake_times_out() {
        let (listener, url) = silent_peer().await;
        let connecting = tokio::spawn(async move { super::connect_within(&url, Duration::from_millis(300)).await });
        let (peer, _) = listener.accept().await.unwrap();
        let error = connecting.await.unwrap().unwrap_err();
        assert!(error.to_string().contains("no AMQP handshake"), "{error}");
        assert_hung_up(&listener, peer).await;
    }

    #[tokio::test]
    async fn a_connect_dropped_mid_handshake_hangs_up_too() {
        let (listener, url) = silent_peer().await;
        let connecting = tokio::spawn(async move { super::connect_within(&url, Duration::from_secs(60)).await });
        let (peer, _) = listener.accept().await.unwrap();
        connecting.abort(); // what a shutdown or a gone API client does
        assert!(connecting.await.unwrap_err().is_cancelled());
        assert_hung_up(&listener, peer).await;
    }
}
