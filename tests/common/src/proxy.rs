//! A TCP proxy the test controls, to cut a connection (or make it go silent)
//! without touching the shared server behind it.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes flow.
    Open,
    /// Every connection is dropped and new ones are refused.
    Cut,
    /// Connections stay open but nothing is forwarded, either way: a broker or
    /// network that stopped answering without closing anything.
    Frozen,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl TcpProxy {
    /// A proxy in front of the shared RabbitMQ (see [`TestEnv::broker_through`](crate::TestEnv::broker_through)).
    pub async fn to_broker() -> Self {
        Self::start(crate::AMQP_ADDR.parse().unwrap()).await
    }

    /// A proxy in front of the shared PostgreSQL (see [`TestEnv::database_through`](crate::TestEnv::database_through)).
    pub async fn to_database() -> Self {
        Self::start(crate::PG_ADDR.parse().unwrap()).await
    }

    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Open);
        let modes = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else { return };
                // Subscribed before the mode is read, so no change is missed.
                let mut changes = modes.subscribe();
                let current = *changes.borrow_and_update();
                match current {
                    Mode::Cut => drop(client),
                    Mode::Frozen => {
                        tokio::spawn(async move {
                            let _held = client;
                            let _ = changes.wait_for(|m| *m != Mode::Frozen).await;
                        });
                    }
                    Mode::Open => {
                        tokio::spawn(async move {
                            let Ok(mut server) = TcpStream::connect(upstream).await else { return };
                            let mut client = client;
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                                _ = changes.wait_for(|m| *m != Mode::Open) => {}
                            }
                            // Frozen: hold both sockets, silent, until the mode changes again.
                            if *changes.borrow() == Mode::Frozen {
                                let _ = changes.wait_for(|m| *m != Mode::Frozen).await;
                            }
                        });
                    }
                }
            }
        });
        Self { addr, mode }
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Stops forwarding without closing anything; new connections are
    /// accepted and then ignored. `cut` or `restore` ends it (dropping them).
    pub fn freeze(&self) {
        self.mode.send_replace(Mode::Frozen);
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Open);
    }
}
