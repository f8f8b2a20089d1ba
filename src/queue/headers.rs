//! Every `x-authrelay-*` AMQP header, and reading headers however a
//! publisher typed them.
//!
//! On job messages authrelay republishes (delayed retries, replays):
//! [`ATTEMPTS`] (attempts made so far), [`DEADLINE`] (the effective deadline,
//! fixed at first receipt), [`TURN`] (a rate-limit turn it reserved),
//! [`DEADLINE_OVERRIDE`] and [`REPLAYED_AT`] (set by a replay). On parked copies, the contract's [`ERROR_KIND`], [`ERROR`],
//! [`ATTEMPTS`], [`FAILED_AT`] and [`PHASE`].

use chrono::{DateTime, Utc};
use lapin::types::{AMQPValue, FieldTable, ShortString};

pub const ATTEMPTS: &str = "x-authrelay-attempts";
pub const DEADLINE: &str = "x-authrelay-deadline";
pub const ERROR_KIND: &str = "x-authrelay-error-kind";
pub const ERROR: &str = "x-authrelay-error";
pub const FAILED_AT: &str = "x-authrelay-failed-at";
pub const PHASE: &str = "x-authrelay-phase";
/// Set by a replay with `include_expired`: the job gets a fresh deadline even
/// though its own `deadline` has passed.
pub const DEADLINE_OVERRIDE: &str = "x-authrelay-deadline-override";
pub const REPLAYED_AT: &str = "x-authrelay-replayed-at";
/// On a job delayed by its profile's rate limit: the send time it reserved
/// (RFC 3339). Coming back, it uses that turn instead of taking another.
pub const TURN: &str = "x-authrelay-turn";

/// The headers a replay removes, so the job starts afresh: attempts, the fixed
/// deadline and everything parking added. (RabbitMQ's own `x-death` too.)
pub const CLEARED_BY_REPLAY: &[&str] =
    &[ATTEMPTS, DEADLINE, ERROR, ERROR_KIND, FAILED_AT, PHASE, DEADLINE_OVERRIDE, TURN, "x-death"];

/// A copy of `headers` without the ones named in `left_out`.
pub fn copy_without(headers: Option<&FieldTable>, left_out: &[&str]) -> FieldTable {
    let mut table = FieldTable::default();
    for (name, value) in headers.iter().flat_map(|t| t.inner()) {
        if !left_out.contains(&name.as_str()) {
            table.insert(name.clone(), value.clone());
        }
    }
    table
}

/// Reads an integer header however the publisher typed it.
pub fn read_u32(headers: Option<&FieldTable>, name: &str) -> Option<u32> {
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

pub fn read_str(headers: Option<&FieldTable>, name: &str) -> Option<String> {
    match headers?.inner().get(name)? {
        AMQPValue::LongString(s) => String::from_utf8(s.as_bytes().to_vec()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

/// True only for a boolean `true`: anything else is "not set".
pub fn read_flag(headers: Option<&FieldTable>, name: &str) -> bool {
    matches!(headers.and_then(|h| h.inner().get(name)), Some(AMQPValue::Boolean(true)))
}

pub fn read_time(headers: Option<&FieldTable>, name: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(&read_str(headers, name)?).ok().map(|t| t.with_timezone(&Utc))
}

pub fn set(table: &mut FieldTable, name: &str, value: AMQPValue) {
    table.insert(ShortString::from(name), value);
}

pub fn text(value: impl Into<String>) -> AMQPValue {
    AMQPValue::LongString(value.into().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_read_whatever_their_amqp_type() {
        let mut table = FieldTable::default();
        set(&mut table, "a", AMQPValue::ShortShortUInt(7));
        set(&mut table, "b", text(" 12 "));
        set(&mut table, "c", AMQPValue::LongLongInt(-1));
        set(&mut table, "d", AMQPValue::Boolean(true));
        assert_eq!(read_u32(Some(&table), "a"), Some(7));
        assert_eq!(read_u32(Some(&table), "b"), Some(12));
        assert_eq!(read_u32(Some(&table), "c"), None, "negative counts are nonsense");
        assert_eq!(read_u32(Some(&table), "d"), None);
        assert!(read_flag(Some(&table), "d"));
        assert!(!read_flag(Some(&table), "a"));
    }
}
