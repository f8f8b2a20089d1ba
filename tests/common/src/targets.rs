//! HTTP targets on 127.0.0.1: one that is slow and counts what it is asked,
//! ones that misbehave (silent, dripping, endless body or headers, hanging
//! up), and a token endpoint that counts the tokens it issues.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use futures_util::StreamExt as _;
use serde_json::json;
use tokio::io::AsyncWriteExt as _;
use tokio::sync::watch;

use crate::{eventually, lazy};

/// Serves `router` on 127.0.0.1 (a port of its own) until the test ends.
pub async fn serve(router: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A TCP server on 127.0.0.1 that treats every connection with `behave`.
pub async fn raw_server<F, Fut>(behave: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(behave(socket));
        }
    });
    addr
}

/// Accepts and never says a word (holds the connection for a minute).
pub async fn silent_server() -> SocketAddr {
    raw_server(|socket| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        drop(socket);
    })
    .await
}

/// Accepts and hangs up at once.
pub async fn hang_up_server() -> SocketAddr {
    raw_server(|socket| async move { drop(socket) }).await
}

/// Sends a status line and then header lines forever.
pub async fn endless_headers_server() -> SocketAddr {
    raw_server(|mut socket| async move {
        let _ = socket.write_all(b"HTTP/1.1 200 OK\r\n").await;
        let line = format!("X-Pad: {}\r\n", "h".repeat(1000));
        while socket.write_all(line.as_bytes()).await.is_ok() {}
    })
    .await
}

/// An address on 127.0.0.1 that nothing listens on any more.
pub fn closed_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
}

/// A target that answers 200 after a delay (changeable while it runs), can
/// hold every request at a gate, counts requests per job (by
/// `Idempotency-Key`) and the requests it is answering at once.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    state: Arc<TargetState>,
}

struct TargetState {
    delay_ms: AtomicU64,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    hits: Mutex<HashMap<String, u32>>,
    gate: watch::Sender<bool>,
}

async fn slow_answer(State(state): State<Arc<TargetState>>, headers: HeaderMap) -> StatusCode {
    let id = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    *state.hits.lock().unwrap().entry(id).or_default() += 1;
    let _counted = InFlight::enter(&state);
    let mut gate = state.gate.subscribe();
    let _ = gate.wait_for(|open| *open).await;
    tokio::time::sleep(Duration::from_millis(state.delay_ms.load(Ordering::SeqCst))).await;
    StatusCode::OK
}

/// Counts a request in flight until it is answered or dropped (the client hung up).
struct InFlight(Arc<TargetState>);

impl InFlight {
    fn enter(state: &Arc<TargetState>) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.most_in_flight.fetch_max(now, Ordering::SeqCst);
        Self(state.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Target {
    pub async fn start(delay: Duration) -> Self {
        let state = Arc::new(TargetState {
            delay_ms: AtomicU64::new(delay.as_millis() as u64),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
            hits: Mutex::default(),
            gate: watch::Sender::new(true),
        });
        let router = axum::Router::new().fallback(slow_answer).with_state(state.clone());
        Self { addr: serve(router).await, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}/work", self.addr)
    }

    /// Requests being answered now.
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// The most requests it was answering at once.
    pub fn most_in_flight(&self) -> usize {
        self.state.most_in_flight.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, delay: Duration) {
        self.state.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Holds every request (arrived or arriving) until `release`.
    pub fn hold(&self) {
        self.state.gate.send_replace(false);
    }

    pub fn release(&self) {
        self.state.gate.send_replace(true);
    }

    /// Requests beyond the first, over all jobs.
    pub fn repeated_requests(&self) -> u32 {
        self.state.hits.lock().unwrap().values().map(|n| n - 1).sum()
    }

    /// Waits until no request is open at the target.
    pub async fn drained(&self, within: Duration) {
        let what = lazy(|| format!("no request is open at the target ({} are)", self.in_flight()));
        eventually(within, what, async || (self.in_flight() == 0).then_some(())).await;
    }

    /// Waits until `n` requests are open at the target at once.
    pub async fn in_flight_reaches(&self, n: usize, within: Duration) {
        let what = lazy(|| format!("{n} requests are open at the target (only {} are)", self.in_flight()));
        eventually(within, what, async || (self.in_flight() >= n).then_some(())).await;
    }
}

/// Targets that misbehave at the HTTP level — `/endless` (200) and
/// `/endless-503` bodies that never end, `/drip` that sends a byte every
/// 100 ms — and how many body bytes they managed to send.
pub struct BadTargets {
    pub addr: SocketAddr,
    streamed: Arc<AtomicU64>,
}

impl BadTargets {
    pub async fn start() -> Self {
        let streamed = Arc::new(AtomicU64::new(0));
        let endless = |status: StatusCode, streamed: Arc<AtomicU64>| {
            move || async move {
                let chunk = Bytes::from(vec![b'a'; 16 * 1024]);
                let body = futures_util::stream::repeat(()).map(move |()| {
                    streamed.fetch_add(chunk.len() as u64, Ordering::SeqCst);
                    Ok::<_, Infallible>(chunk.clone())
                });
                (status, Body::from_stream(body))
            }
        };
        let drip = || async {
            let body = futures_util::stream::unfold((), |()| async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Some((Ok::<_, Infallible>(Bytes::from_static(b"a")), ()))
            });
            Body::from_stream(body)
        };
        let router = axum::Router::new()
            .route("/endless", axum::routing::get(endless(StatusCode::OK, streamed.clone())))
            .route("/endless-503", axum::routing::get(endless(StatusCode::SERVICE_UNAVAILABLE, streamed.clone())))
            .route("/drip", axum::routing::get(drip));
        Self { addr: serve(router).await, streamed }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits until the targets stop sending (nobody reads any more: no byte
    /// for 300 ms); returns the bytes sent.
    pub async fn settled_bytes(&self, within: Duration) -> u64 {
        eventually(within, "the endless bodies are no longer read", async || {
            let before = self.streamed.load(Ordering::SeqCst);
            // The window in which no byte may go out.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let now = self.streamed.load(Ordering::SeqCst);
            (now == before).then_some(now)
        })
        .await
    }
}

/// A token endpoint (a wiremock responder) that answers `<prefix>-1`,
/// `<prefix>-2`, … so tests can tell token fetches apart, and counts them.
#[derive(Clone)]
pub struct Tokens {
    prefix: &'static str,
    expires_in: u64,
    issued: Arc<AtomicUsize>,
}

impl Tokens {
    pub fn new(prefix: &'static str, expires_in: u64) -> Self {
        Self { prefix, expires_in, issued: Arc::default() }
    }

    /// Tokens issued so far.
    pub fn issued(&self) -> usize {
        self.issued.load(Ordering::SeqCst)
    }
}

impl wiremock::Respond for Tokens {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        wiremock::ResponseTemplate::new(200).set_body_json(json!({
            "access_token": format!("{}-{n}", self.prefix), "token_type": "Bearer", "expires_in": self.expires_in
        }))
    }
}

/// A wiremock responder that answers the n-th request with the n-th response
/// (the last one repeats) and records when each request arrived.
pub struct Sequence {
    responses: Vec<wiremock::ResponseTemplate>,
    arrivals: Arrivals,
}

/// When each request to a [`Sequence`] arrived.
#[derive(Clone, Default)]
pub struct Arrivals(Arc<Mutex<Vec<tokio::time::Instant>>>);

impl Arrivals {
    /// The time between the two requests that arrived (there must be exactly two).
    pub fn gap(&self) -> Duration {
        let arrivals = self.0.lock().unwrap();
        assert_eq!(arrivals.len(), 2, "expected exactly two requests");
        arrivals[1] - arrivals[0]
    }
}

impl Sequence {
    pub fn new(responses: Vec<wiremock::ResponseTemplate>) -> Self {
        Self { responses, arrivals: Arrivals::default() }
    }

    /// When each request arrived, still readable once the responder is mounted.
    pub fn arrivals(&self) -> Arrivals {
        self.arrivals.clone()
    }
}

impl wiremock::Respond for Sequence {
    fn respond(&self, _: &wiremock::Request) -> wiremock::ResponseTemplate {
        let mut arrivals = self.arrivals.0.lock().unwrap();
        arrivals.push(tokio::time::Instant::now());
        self.responses[(arrivals.len() - 1).min(self.responses.len() - 1)].clone()
    }
}
