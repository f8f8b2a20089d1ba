//! RabbitMQ as transport, and nothing more: connecting, the topology
//! (contract section 2) and every name in it, the confirmed publisher,
//! settling a delivery (publish what it calls for, then ack), the
//! `x-authrelay-*` headers, replay (moving parked jobs back), and publish and
//! await (the RPC pattern, for callers that wait for a job's result).
//!
//! What a job *means* is decided above, in `worker`; this module only carries
//! messages and their [`settle::Disposition`].

pub mod connect;
pub mod headers;
pub mod publisher;
pub mod replay;
pub mod rpc;
pub mod settle;
pub mod topology;

use std::time::Duration;

use lapin::{Channel, Connection};

use crate::job::Phase;

/// How long a clean close may wait for the broker's answer. A broker that
/// stopped reading (a half-open socket, a resource alarm) must not hold up a
/// shutdown or a reconnect: after this the socket is dropped and the broker
/// cleans up on its side, returning unacked deliveries to their queues.
pub const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// Closes `channel` cleanly if it is still open, waiting at most [`CLOSE_WAIT`].
pub async fn close_channel(channel: &Channel, reason: &str) {
    if channel.status().connected() {
        let _ = tokio::time::timeout(CLOSE_WAIT, channel.close(200, reason.into())).await;
    }
}

/// Closes `connection` cleanly if it is still open, waiting at most [`CLOSE_WAIT`].
pub async fn close_connection(connection: &Connection, reason: &str) {
    if connection.status().connected() {
        let _ = tokio::time::timeout(CLOSE_WAIT, connection.close(200, reason.into())).await;
    }
}

/// Every exchange and queue name, behind one prefix (tests use their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    pub fn actions_exchange(&self) -> String {
        format!("{}.actions", self.prefix)
    }

    pub fn phase_queue(&self, phase: Phase) -> String {
        format!("{}.actions.{}", self.prefix, phase.as_str())
    }

    pub fn results_exchange(&self) -> String {
        format!("{}.results", self.prefix)
    }

    pub fn failed_queue(&self) -> String {
        format!("{}.failed", self.prefix)
    }

    pub fn events_exchange(&self) -> String {
        format!("{}.profile-events", self.prefix)
    }

    /// A delay queue: messages wait out their TTL, then dead-letter back to the phase's queue.
    pub fn delay_queue(&self, phase: Phase, tier: &str) -> String {
        format!("{}.delay.{}.{tier}", self.prefix, phase.as_str())
    }

    /// Every durable queue authrelay may declare: the phase queues, the parked
    /// queue and every delay queue (for operators and for cleaning up after tests).
    pub fn every_queue(&self) -> Vec<String> {
        let mut queues = vec![self.failed_queue()];
        for phase in Phase::ALL {
            queues.push(self.phase_queue(phase));
            queues.extend(topology::DELAY_TIERS.iter().map(|(tier, _)| self.delay_queue(phase, tier)));
        }
        queues
    }

    /// Every exchange authrelay declares.
    pub fn every_exchange(&self) -> [String; 3] {
        [self.actions_exchange(), self.results_exchange(), self.events_exchange()]
    }
}
