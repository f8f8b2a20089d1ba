//! The three phases of a call that actions run in, each with its own queue,
//! lane and defaults: before the call connects, while the caller waits, after
//! the call.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    PreCall,
    DuringCall,
    PostCall,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::PreCall, Phase::DuringCall, Phase::PostCall];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::PreCall => "pre_call",
            Phase::DuringCall => "during_call",
            Phase::PostCall => "post_call",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The phase's place in [`Phase::ALL`], for per-phase arrays.
    pub fn index(self) -> usize {
        match self {
            Phase::PreCall => 0,
            Phase::DuringCall => 1,
            Phase::PostCall => 2,
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phase_index_is_its_place_in_all() {
        for (i, phase) in Phase::ALL.into_iter().enumerate() {
            assert_eq!(phase.index(), i);
        }
    }
}
