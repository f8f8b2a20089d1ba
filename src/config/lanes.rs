//! Which lanes a process runs (`AUTHRELAY_LANES`, `authrelay run --lanes`) and
//! how the background lane yields to live calls (`AUTHRELAY_LIVE_FIRST_*`).

use std::time::Duration;

use super::{ConfigError, EnvSource, duration_var, non_empty, parse_var};
use crate::phase::Phase;

/// The phases whose queues this process consumes; the topology is declared in full either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneSelection([bool; 3]);

impl LaneSelection {
    pub const ALL: LaneSelection = LaneSelection([true; 3]);

    pub fn contains(&self, phase: Phase) -> bool {
        self.0[phase.index()]
    }

    /// The selected phases, in [`Phase::ALL`] order.
    pub fn phases(&self) -> impl Iterator<Item = Phase> + '_ {
        Phase::ALL.into_iter().filter(|p| self.contains(*p))
    }
}

impl Default for LaneSelection {
    fn default() -> Self {
        Self::ALL
    }
}

/// As given: `during_call,pre_call`.
impl std::fmt::Display for LaneSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.phases().map(Phase::as_str).collect();
        f.write_str(&names.join(","))
    }
}

impl std::str::FromStr for LaneSelection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut selected = [false; 3];
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let phase = Phase::parse(name)
                .ok_or_else(|| format!("unknown phase `{name}` (phases: pre_call, during_call, post_call)"))?;
            selected[phase.index()] = true;
        }
        if selected == [false; 3] {
            return Err(format!("`{s}` names no phase: give one or more of pre_call, during_call, post_call"));
        }
        Ok(Self(selected))
    }
}

/// `AUTHRELAY_LIVE_FIRST_PREFETCH` unset: measured with the `backlog` bench
/// (README, Live calls first).
const DEFAULT_LIVE_FIRST_PREFETCH: u16 = 16;

/// How the background (post-call) lane yields to live (pre- and during-call) work.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveFirstConfig {
    /// Off: the background lane always runs at its configured concurrency.
    pub enabled: bool,
    /// The background lane's concurrency while live work runs (it never goes lower).
    pub floor: usize,
    /// Once live work is quiet, the background lane gets one slot back per this much time.
    pub grow_every: Duration,
    /// The background lane's prefetch while live work runs (at most its configured prefetch).
    pub prefetch: u16,
}

impl LiveFirstConfig {
    pub fn from_env(env: &dyn EnvSource) -> Result<Self, ConfigError> {
        let enabled = match non_empty(env, "AUTHRELAY_LIVE_FIRST").as_deref() {
            None | Some("on") => true,
            Some("off") => false,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    var: "AUTHRELAY_LIVE_FIRST".into(),
                    reason: format!("`{other}` is neither `on` nor `off`"),
                });
            }
        };
        let floor = parse_var(env, "AUTHRELAY_LIVE_FIRST_FLOOR", 4usize)?;
        if floor == 0 {
            return Err(ConfigError::Invalid {
                var: "AUTHRELAY_LIVE_FIRST_FLOOR".into(),
                reason: "use at least 1 (the backlog must keep draining)".into(),
            });
        }
        let var = "AUTHRELAY_LIVE_FIRST_GROW_EVERY";
        let grow_every = duration_var(env, var, Duration::from_millis(10))?;
        if grow_every.is_zero() || grow_every > Duration::from_secs(10) {
            return Err(ConfigError::Invalid {
                var: var.into(),
                reason: "use a duration above 0 and at most 10s".into(),
            });
        }
        let prefetch = parse_var(env, "AUTHRELAY_LIVE_FIRST_PREFETCH", DEFAULT_LIVE_FIRST_PREFETCH)?;
        if prefetch == 0 {
            return Err(ConfigError::Invalid {
                var: "AUTHRELAY_LIVE_FIRST_PREFETCH".into(),
                reason: "use at least 1 (the backlog must keep draining)".into(),
            });
        }
        Ok(Self { enabled, floor, grow_every, prefetch })
    }
}

/// `AUTHRELAY_LANES`: every phase when unset.
pub(super) fn lanes_from_env(env: &dyn EnvSource) -> Result<LaneSelection, ConfigError> {
    match env.var("AUTHRELAY_LANES") {
        None => Ok(LaneSelection::ALL),
        Some(raw) => raw.parse().map_err(|reason| ConfigError::Invalid { var: "AUTHRELAY_LANES".into(), reason }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::env;

    #[test]
    fn lanes_parse_in_any_order_and_default_to_all() {
        let live: LaneSelection = "during_call, pre_call".parse().unwrap();
        assert!(live.contains(Phase::DuringCall) && live.contains(Phase::PreCall));
        assert!(!live.contains(Phase::PostCall));
        assert_eq!(live.to_string(), "pre_call,during_call");
        assert_eq!(lanes_from_env(&env(&[])).unwrap(), LaneSelection::ALL);
    }

    #[test]
    fn an_unknown_or_empty_lane_list_names_the_value() {
        let err = "during_call,postcall".parse::<LaneSelection>().unwrap_err();
        assert!(err.contains("`postcall`"), "{err}");
        for empty in ["", " , "] {
            let err = empty.parse::<LaneSelection>().unwrap_err();
            assert!(err.contains("names no phase"), "{err}");
        }
        let err = lanes_from_env(&env(&[("AUTHRELAY_LANES", "")])).unwrap_err().to_string();
        assert!(err.contains("AUTHRELAY_LANES"), "{err}");
    }

    #[test]
    fn live_first_settings_have_working_defaults_and_refuse_nonsense() {
        let defaults = LiveFirstConfig::from_env(&env(&[])).unwrap();
        assert!(defaults.enabled);
        assert_eq!((defaults.floor, defaults.grow_every, defaults.prefetch), (4, Duration::from_millis(10), 16));
        for (var, bad) in [
            ("AUTHRELAY_LIVE_FIRST", "maybe"),
            ("AUTHRELAY_LIVE_FIRST_FLOOR", "0"),
            ("AUTHRELAY_LIVE_FIRST_GROW_EVERY", "0ms"),
            ("AUTHRELAY_LIVE_FIRST_PREFETCH", "0"),
            ("AUTHRELAY_LIVE_FIRST_PREFETCH", "65536"),
        ] {
            let err = LiveFirstConfig::from_env(&env(&[(var, bad)])).unwrap_err().to_string();
            assert!(err.contains(var), "{var}={bad}: {err}");
        }
    }
}
