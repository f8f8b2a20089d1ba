//! The message authrelay publishes for every job it can answer (contract section 4).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{JobError, JobIdentity, Outcome, Phase};

/// The `response` object of a result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ResponseSummary {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    /// JSON when the body parses as JSON, else the text (lossy UTF-8).
    pub body: Value,
    pub body_truncated: bool,
}

/// The message published to `authrelay.results` (contract section 4).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Result")]
pub struct JobResult {
    pub job_id: String,
    pub workspace_id: Option<String>,
    pub phase: Phase,
    pub action_id: Option<String>,
    pub call_id: Option<String>,
    pub outcome: Outcome,
    pub attempts: u32,
    pub response: Option<ResponseSummary>,
    pub error: Option<JobError>,
    pub auth_profile_id: Option<Uuid>,
    pub auth_profile_version: Option<i64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub duration_ms: u64,
}

impl JobResult {
    /// A result for a job that was never attempted.
    pub fn unattempted(
        identity: &JobIdentity,
        outcome: Outcome,
        error: Option<JobError>,
        started_at: DateTime<Utc>,
    ) -> Self {
        let finished_at = Utc::now();
        Self {
            job_id: identity.job_id.clone(),
            workspace_id: identity.workspace_id.clone(),
            phase: identity.phase,
            action_id: identity.action_id.clone(),
            call_id: identity.call_id.clone(),
            outcome,
            attempts: 0,
            response: None,
            error,
            auth_profile_id: identity.auth_profile_id,
            auth_profile_version: None,
            started_at,
            finished_at,
            duration_ms: (finished_at - started_at).num_milliseconds().max(0) as u64,
        }
    }

    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.phase.as_str(), self.outcome.as_str())
    }
}
