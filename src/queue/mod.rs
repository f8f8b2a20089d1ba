//! RabbitMQ: topology (contract section 2), the confirmed publisher, the
//! per-phase consumer lanes, settling each delivery (ack after confirm), and
//! the supervisor that (re)connects.
//!
//! Headers authrelay keeps on job messages it republishes (delayed retries):
//! `x-authrelay-attempts` (attempts made so far) and `x-authrelay-deadline`
//! (the effective deadline, fixed at first receipt). Parked copies carry the
//! contract's `x-authrelay-error-kind`, `x-authrelay-error`,
//! `x-authrelay-attempts`, `x-authrelay-failed-at` and `x-authrelay-phase`.

pub mod broker;
pub mod events;
pub mod lane;
pub mod publisher;
pub mod settle;
pub mod topology;

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection};

use crate::job::Phase;

pub const HEADER_ATTEMPTS: &str = "x-authrelay-attempts";
pub const HEADER_DEADLINE: &str = "x-authrelay-deadline";
pub const HEADER_ERROR_KIND: &str = "x-authrelay-error-kind";
pub const HEADER_ERROR: &str = "x-authrelay-error";
pub const HEADER_FAILED_AT: &str = "x-authrelay-failed-at";
pub const HEADER_PHASE: &str = "x-authrelay-phase";

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
}

/// Reads an integer header however the publisher typed it.
pub fn header_u32(headers: Option<&FieldTable>, name: &str) -> Option<u32> {
    let value = headers?.inner().get(name)?;
    let n: i64 = match value {
        AMQPValue::ShortShortInt(v) => (*v).into(),
        AMQPValue::ShortShortUInt(v) => (*v).into(),
        AMQPValue::ShortInt(v) => (*v).into(),
        AMQPValue::ShortUInt(v) => (*v).into(),
        AMQPValue::LongInt(v) => (*v).into(),
        AMQPValue::LongUInt(v) => (*v).into(),
        AMQPValue::LongLongInt(v) => *v,
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok()?.trim().parse().ok()?,
        AMQPValue::ShortString(s) => s.as_str().trim().parse().ok()?,
        _ => return None,
    };
    u32::try_from(n).ok()
}

pub fn header_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

pub fn header_bool(headers: Option<&FieldTable>, name: &str) -> bool {
    matches!(headers.and_then(|h| h.inner().get(name)), Some(AMQPValue::Boolean(true)))
}

pub fn header_time(headers: Option<&FieldTable>, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&header_str(headers, name)?).ok().map(|t| t.with_timezone(&Utc))
}

pub fn set_header(table: &mut FieldTable, name: &str, value: AMQPValue) {
    table.insert(ShortString::from(name), value);
}

pub fn text(value: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(value.into().into())
}
