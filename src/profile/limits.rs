//! A profile's traffic limits (contract §9): `{"rate_per_s"?, "burst"?,
//! "max_concurrency"?}`, held for the whole fleet of workers by
//! `traffic::limits`. This module only reads, checks and shows them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::FieldErrors;

/// The lowest rate a profile may declare: one request in about 17 minutes.
pub const MIN_RATE_PER_S: f64 = 0.001;
/// The highest rate a profile may declare: far above what one customer API
/// allows, low enough that the spacing between requests stays above a microsecond.
pub const MAX_RATE_PER_S: f64 = 100_000.0;
/// The largest burst and concurrency a profile may declare.
pub const MAX_COUNT: u32 = 100_000;

/// Limits on the requests every job of a profile sends, for the whole fleet.
/// At least one member is set (no limits at all is `None` on the profile).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ProfileLimits {
    /// Requests per second (may be fractional: 0.5 is one every two seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_s: Option<f64>,
    /// Requests that may go at once after a quiet period; 1 (evenly spaced) when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Requests in flight at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<u32>,
}

impl ProfileLimits {
    /// The burst the rate limit allows: 1 unless set.
    pub fn burst_or_default(&self) -> u32 {
        self.burst.unwrap_or(1)
    }

    /// Reads `limits` as an API body carries it: an object, or `null` for none.
    /// `field` is where it sits (`limits`), for the errors.
    pub fn parse(value: &Value, field: &str) -> Result<Option<Self>, FieldErrors> {
        let object = match value {
            Value::Null => return Ok(None),
            Value::Object(object) => object,
            _ => {
                return Err(FieldErrors::single(
                    field,
                    "must be an object (rate_per_s, burst, max_concurrency) or null",
                ));
            }
        };
        let mut errors = FieldErrors::default();
        for key in object.keys() {
            if !matches!(key.as_str(), "rate_per_s" | "burst" | "max_concurrency") {
                errors.add(
                    format!("{field}.{key}"),
                    "is not a limit; the limits are rate_per_s, burst and max_concurrency",
                );
            }
        }
        let rate_per_s = match object.get("rate_per_s") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_f64() {
                Some(rate) if (MIN_RATE_PER_S..=MAX_RATE_PER_S).contains(&rate) => Some(rate),
                _ => {
                    errors.add(
                        format!("{field}.rate_per_s"),
                        format!("must be a number from {MIN_RATE_PER_S} to {MAX_RATE_PER_S} (requests per second)"),
                    );
                    None
                }
            },
        };
        let mut count = |name: &str, what: &str| match object.get(name) {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 && n <= u64::from(MAX_COUNT) => Some(n as u32),
                _ => {
                    errors.add(
                        format!("{field}.{name}"),
                        format!("must be a whole number from 1 to {MAX_COUNT} ({what})"),
                    );
                    None
                }
            },
        };
        let burst = count("burst", "requests that may go at once");
        let max_concurrency = count("max_concurrency", "requests in flight at once");
        // (A rate_per_s given but refused has its own error already.)
        if burst.is_some() && object.get("rate_per_s").is_none_or(Value::is_null) {
            errors.add(format!("{field}.burst"), "applies to a rate: set rate_per_s too");
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let limits = Self { rate_per_s, burst, max_concurrency };
        Ok((rate_per_s.is_some() || max_concurrency.is_some()).then_some(limits))
    }

    /// The limits as stored and shown (no secret in them).
    pub fn to_json(self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Limits as stored by [`Self::to_json`]; anything else reads as none.
    pub fn from_stored(value: Option<Value>) -> Option<Self> {
        value.and_then(|v| serde_json::from_value(v).ok())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(value: Value) -> Vec<String> {
        ProfileLimits::parse(&value, "limits").unwrap_err().0.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn reads_each_limit() {
        let limits = ProfileLimits::parse(&json!({"rate_per_s": 2.5, "burst": 5, "max_concurrency": 3}), "limits");
        assert_eq!(
            limits.unwrap(),
            Some(ProfileLimits { rate_per_s: Some(2.5), burst: Some(5), max_concurrency: Some(3) })
        );
        let only = ProfileLimits::parse(&json!({"max_concurrency": 1}), "limits").unwrap().unwrap();
        assert_eq!((only.rate_per_s, only.max_concurrency), (None, Some(1)));
    }

    #[test]
    fn null_and_empty_mean_no_limits() {
        assert_eq!(ProfileLimits::parse(&Value::Null, "limits").unwrap(), None);
        assert_eq!(ProfileLimits::parse(&json!({}), "limits").unwrap(), None);
    }

    #[test]
    fn refuses_what_is_not_a_limit_naming_the_field() {
        assert_eq!(fields(json!({"rate_per_s": 0})), ["limits.rate_per_s"]);
        assert_eq!(fields(json!({"rate_per_s": -1})), ["limits.rate_per_s"]);
        assert_eq!(fields(json!({"burst": 3})), ["limits.burst"]);
        assert_eq!(fields(json!({"rate_per_s": null, "burst": 3, "max_concurrency": 2})), ["limits.burst"]);
        assert_eq!(fields(json!({"rate_per_s": 1e-300})), ["limits.rate_per_s"]);
        assert_eq!(fields(json!({"rate_per_s": "10"})), ["limits.rate_per_s"]);
        assert_eq!(fields(json!({"rate_per_s": 1, "burst": 0})), ["limits.burst"]);
        assert_eq!(fields(json!({"rate_per_s": 1, "burst": 1.5})), ["limits.burst"]);
        assert_eq!(fields(json!({"max_concurrency": -2})), ["limits.max_concurrency"]);
        assert_eq!(fields(json!({"max_concurrency": 0})), ["limits.max_concurrency"]);
        assert_eq!(fields(json!({"rate": 5})), ["limits.rate"]);
        assert_eq!(fields(json!({"burst": 3})), ["limits.burst"]);
        assert_eq!(fields(json!([1])), ["limits"]);
    }

    #[test]
    fn round_trips_through_storage() {
        let limits = ProfileLimits { rate_per_s: Some(0.5), burst: None, max_concurrency: Some(4) };
        assert_eq!(limits.to_json(), json!({"rate_per_s": 0.5, "max_concurrency": 4}));
        assert_eq!(ProfileLimits::from_stored(Some(limits.to_json())), Some(limits));
    }
}
