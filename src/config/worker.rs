//! Worker settings: per-phase deadlines, attempts, retry delays, prefetch and
//! concurrency, and the limits every job runs within.

use std::time::Duration;

use super::{CircuitConfig, ConfigError, EnvSource, duration_var, non_empty, parse_duration, parse_var};

/// How retries of one phase are spaced.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryDelays {
    /// `base × 2ⁿ⁻¹` before attempt n+1.
    Exponential { base: Duration },
    /// The n-th entry before attempt n+1; the last one repeats.
    Schedule(Vec<Duration>),
}

impl RetryDelays {
    fn parse(raw: &str) -> Result<Self, String> {
        if let Some(base) = raw.strip_prefix("exp:") {
            return Ok(Self::Exponential { base: parse_duration(base)? });
        }
        let list = raw.split(',').map(|d| parse_duration(d.trim())).collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err("give `exp:<base>` or a list such as `5s,30s,2m`".into());
        }
        Ok(Self::Schedule(list))
    }
}

/// Who shares an OAuth 2.0 token (`AUTHRELAY_TOKEN_SHARING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSharing {
    /// Every worker process of the fleet, through PostgreSQL: one token request per lifetime.
    Fleet,
    /// Each process keeps its own tokens.
    Process,
}

/// Settings of one phase's lane.
#[derive(Debug, Clone)]
pub struct PhaseConfig {
    /// Deadline of a job that sets none, counted from its first receipt.
    pub deadline: Duration,
    pub max_attempts: u32,
    pub retry_delays: RetryDelays,
    /// Unacked deliveries the broker may push to this lane.
    pub prefetch: u16,
    /// Jobs this lane runs at once.
    pub concurrency: usize,
}

#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub pre_call: PhaseConfig,
    pub during_call: PhaseConfig,
    pub post_call: PhaseConfig,
    /// ±fraction applied to every retry delay (0.2 = ±20 %).
    pub jitter: f64,
    /// Per-attempt timeout of a job that sets no `timeout_ms`.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Response bodies are cut (and flagged) past this many bytes.
    pub max_response_bytes: usize,
    /// Jobs larger than this are `invalid_job`.
    pub max_job_bytes: usize,
    /// Time kept free before a deadline to publish the result.
    pub publish_margin: Duration,
    /// Retry delays up to this are waited in process; longer ones go through a delay queue.
    pub max_in_process_delay: Duration,
    /// How long in-flight jobs may take to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Lifetime of an OAuth 2.0 token whose response has no `expires_in`.
    pub token_default_lifetime: Duration,
    /// How long a failed token fetch is remembered before the endpoint is asked again.
    pub token_failure_ttl: Duration,
    /// Whether OAuth 2.0 tokens are shared by the fleet (through PostgreSQL) or kept per process.
    pub token_sharing: TokenSharing,
    /// Decrypted profiles are kept this long at most (events drop them sooner).
    pub profile_cache_ttl: Duration,
    /// Delay before a job is tried again when the database is unreachable.
    pub database_retry_delay: Duration,
    /// How often what jobs said about their profiles' health is written.
    pub health_flush_interval: Duration,
    /// When a destination's circuit opens, and for how long.
    pub circuit: CircuitConfig,
    /// The phases whose queues this process consumes (`AUTHRELAY_LANES`, `--lanes`).
    pub lanes: super::LaneSelection,
    /// How the post-call lane yields to live work.
    pub live_first: super::LiveFirstConfig,
}

impl WorkerConfig {
    pub fn phase(&self, phase: crate::phase::Phase) -> &PhaseConfig {
        match phase {
            crate::phase::Phase::PreCall => &self.pre_call,
            crate::phase::Phase::DuringCall => &self.during_call,
            crate::phase::Phase::PostCall => &self.post_call,
        }
    }

    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let phase = |name: &'static str,
                     deadline: Duration,
                     attempts: u32,
                     delays: RetryDelays,
                     prefetch: u16,
                     concurrency: usize|
         -> Result<PhaseConfig, ConfigError> {
            let var = |suffix: &str| format!("AUTHRELAY_{name}_{suffix}");
            let retry_var = var("RETRY_DELAYS");
            let retry_delays = match non_empty(env, &retry_var) {
                None => delays,
                Some(raw) => {
                    RetryDelays::parse(&raw).map_err(|reason| ConfigError::Invalid { var: retry_var, reason })?
                }
            };
            let config = PhaseConfig {
                deadline: duration_var(env, &var("DEADLINE"), deadline)?,
                max_attempts: parse_var(env, &var("MAX_ATTEMPTS"), attempts)?,
                retry_delays,
                prefetch: parse_var(env, &var("PREFETCH"), prefetch)?,
                concurrency: parse_var(env, &var("CONCURRENCY"), concurrency)?,
            };
            if config.max_attempts == 0 || config.concurrency == 0 || config.prefetch == 0 {
                return Err(ConfigError::Invalid {
                    var: var("MAX_ATTEMPTS"),
                    reason: "attempts, prefetch and concurrency must be at least 1".into(),
                });
            }
            Ok(config)
        };
        let secs = Duration::from_secs;
        let ms = Duration::from_millis;
        Ok(Self {
            pre_call: phase("PRE_CALL", secs(10), 3, RetryDelays::Exponential { base: ms(200) }, 64, 32)?,
            during_call: phase("DURING_CALL", secs(5), 2, RetryDelays::Exponential { base: ms(200) }, 128, 64)?,
            post_call: phase(
                "POST_CALL",
                secs(24 * 3600),
                8,
                RetryDelays::Schedule(vec![
                    secs(5),
                    secs(30),
                    secs(120),
                    secs(600),
                    secs(1800),
                    secs(3600),
                    secs(7200),
                ]),
                64,
                32,
            )?,
            jitter: parse_var(env, "AUTHRELAY_RETRY_JITTER", 0.2f64)?.clamp(0.0, 1.0),
            request_timeout: duration_var(env, "AUTHRELAY_REQUEST_TIMEOUT", secs(10))?,
            connect_timeout: duration_var(env, "AUTHRELAY_CONNECT_TIMEOUT", secs(3))?,
            max_response_bytes: parse_var(env, "AUTHRELAY_MAX_RESPONSE_BYTES", 1024 * 1024usize)?,
            max_job_bytes: parse_var(env, "AUTHRELAY_MAX_JOB_BYTES", 1024 * 1024usize)?,
            publish_margin: duration_var(env, "AUTHRELAY_PUBLISH_MARGIN", ms(250))?,
            max_in_process_delay: duration_var(env, "AUTHRELAY_MAX_IN_PROCESS_DELAY", secs(2))?,
            shutdown_grace: duration_var(env, "AUTHRELAY_SHUTDOWN_GRACE", secs(30))?,
            token_default_lifetime: duration_var(env, "AUTHRELAY_TOKEN_DEFAULT_LIFETIME", secs(3600))?,
            token_failure_ttl: duration_var(env, "AUTHRELAY_TOKEN_FAILURE_TTL", secs(5))?,
            token_sharing: match non_empty(env, "AUTHRELAY_TOKEN_SHARING").as_deref() {
                None | Some("fleet") => TokenSharing::Fleet,
                Some("process") => TokenSharing::Process,
                Some(other) => {
                    return Err(ConfigError::Invalid {
                        var: "AUTHRELAY_TOKEN_SHARING".into(),
                        reason: format!("`{other}` is neither `fleet` nor `process`"),
                    });
                }
            },
            profile_cache_ttl: duration_var(env, "AUTHRELAY_PROFILE_CACHE_TTL", secs(300))?,
            database_retry_delay: duration_var(env, "AUTHRELAY_DATABASE_RETRY_DELAY", secs(5))?,
            health_flush_interval: match duration_var(env, "AUTHRELAY_HEALTH_FLUSH_INTERVAL", secs(5))? {
                // Health must reflect every job within 30 s (contract section 10).
                interval if interval.is_zero() || interval > secs(25) => {
                    return Err(ConfigError::Invalid {
                        var: "AUTHRELAY_HEALTH_FLUSH_INTERVAL".into(),
                        reason: "use a duration above 0 and at most 25s".into(),
                    });
                }
                interval => interval,
            },
            circuit: CircuitConfig::from_env(env)?,
            lanes: super::lanes::lanes_from_env(env)?,
            live_first: super::LiveFirstConfig::from_env(env)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn durations_and_retry_schedules_parse() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1500").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert_eq!(
            RetryDelays::parse("exp:100ms").unwrap(),
            RetryDelays::Exponential { base: Duration::from_millis(100) }
        );
        assert_eq!(
            RetryDelays::parse("1s, 2s").unwrap(),
            RetryDelays::Schedule(vec![Duration::from_secs(1), Duration::from_secs(2)])
        );
    }

    #[test]
    fn phase_defaults_follow_the_contract() {
        let w = WorkerConfig::from_env(&env(&[])).unwrap();
        assert_eq!((w.during_call.deadline, w.during_call.max_attempts), (Duration::from_secs(5), 2));
        assert_eq!((w.pre_call.deadline, w.pre_call.max_attempts), (Duration::from_secs(10), 3));
        assert_eq!((w.post_call.deadline, w.post_call.max_attempts), (Duration::from_secs(86400), 8));
        let w = WorkerConfig::from_env(&env(&[
            ("AUTHRELAY_POST_CALL_RETRY_DELAYS", "1s,2s"),
            ("AUTHRELAY_DURING_CALL_MAX_ATTEMPTS", "4"),
        ]))
        .unwrap();
        assert_eq!(w.during_call.max_attempts, 4);
        assert_eq!(
            w.post_call.retry_delays,
            RetryDelays::Schedule(vec![Duration::from_secs(1), Duration::from_secs(2)])
        );
        let err = WorkerConfig::from_env(&env(&[("AUTHRELAY_PRE_CALL_DEADLINE", "soon")])).unwrap_err();
        assert!(err.to_string().contains("AUTHRELAY_PRE_CALL_DEADLINE"));
        assert_eq!(w.health_flush_interval, Duration::from_secs(5));
        for bad in ["0s", "1m"] {
            let err = WorkerConfig::from_env(&env(&[("AUTHRELAY_HEALTH_FLUSH_INTERVAL", bad)])).unwrap_err();
            assert!(err.to_string().contains("AUTHRELAY_HEALTH_FLUSH_INTERVAL"), "{bad}: {err}");
        }
    }
}
