//! Circuit breaker settings (contract §9): how many failing attempts in a
//! row open a destination's circuit, and how long it stays open.

use std::time::Duration;

use super::{ConfigError, EnvSource, duration_var, parse_var};

/// `AUTHRELAY_CIRCUIT_*`.
#[derive(Debug, Clone, PartialEq)]
pub struct CircuitConfig {
    /// Failing attempts in a row that open a circuit.
    pub failures: u32,
    /// The first open period; it doubles while probes fail.
    pub open_for: Duration,
    /// The open period never grows past this.
    pub max_open: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self { failures: 10, open_for: Duration::from_secs(5), max_open: Duration::from_secs(300) }
    }
}

impl CircuitConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let config = Self {
            failures: parse_var(env, "AUTHRELAY_CIRCUIT_FAILURES", defaults.failures)?,
            open_for: duration_var(env, "AUTHRELAY_CIRCUIT_OPEN_FOR", defaults.open_for)?,
            max_open: duration_var(env, "AUTHRELAY_CIRCUIT_MAX_OPEN", defaults.max_open)?,
        };
        let invalid = |var: &str, reason: &str| ConfigError::Invalid { var: var.to_owned(), reason: reason.to_owned() };
        if config.failures == 0 {
            return Err(invalid("AUTHRELAY_CIRCUIT_FAILURES", "use at least 1"));
        }
        if config.open_for.is_zero() {
            return Err(invalid("AUTHRELAY_CIRCUIT_OPEN_FOR", "use a duration above 0"));
        }
        if config.max_open < config.open_for {
            return Err(invalid("AUTHRELAY_CIRCUIT_MAX_OPEN", "use at least AUTHRELAY_CIRCUIT_OPEN_FOR"));
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn defaults_follow_the_contract_and_values_parse() {
        assert_eq!(CircuitConfig::from_env(&env(&[])).unwrap(), CircuitConfig::default());
        let c = CircuitConfig::from_env(&env(&[
            ("AUTHRELAY_CIRCUIT_FAILURES", "3"),
            ("AUTHRELAY_CIRCUIT_OPEN_FOR", "200ms"),
            ("AUTHRELAY_CIRCUIT_MAX_OPEN", "1s"),
        ]))
        .unwrap();
        assert_eq!((c.failures, c.open_for, c.max_open), (3, Duration::from_millis(200), Duration::from_secs(1)));
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("AUTHRELAY_CIRCUIT_FAILURES", "0"),
            ("AUTHRELAY_CIRCUIT_FAILURES", "many"),
            ("AUTHRELAY_CIRCUIT_OPEN_FOR", "0s"),
            ("AUTHRELAY_CIRCUIT_OPEN_FOR", "soon"),
            ("AUTHRELAY_CIRCUIT_MAX_OPEN", "1s"),
        ] {
            let err = CircuitConfig::from_env(&env(&[(var, value)])).unwrap_err().to_string();
            assert!(err.starts_with(var) && !err.contains('\n'), "{var}={value}: {err}");
        }
    }
}
