//! Replay: moves parked jobs from the failed queue back to their phase's queue,
//! after the cause (say, a credential) was fixed.
//!
//! Each matching message is republished with a confirm *before* it is acked
//! on the parked queue, so a crash mid-replay loses nothing (at worst a job is
//! both replayed and still parked). Messages that do not match are never acked:
//! they stay unacknowledged while the scan goes on and return to the parked
//! queue, in their order, when the scan's channel closes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Names;
use super::headers::{self, read_str, read_time, set as set_header, text};
use super::publisher::{PublishError, Publisher, Routed};
use crate::config::WorkerConfig;
use crate::job::{ErrorKind, Phase};

/// Which parked jobs to move. Every given filter must match.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    pub phase: Option<Phase>,
    pub workspace: Option<String>,
    pub error_kind: Option<ErrorKind>,
    pub job_id: Option<String>,
    /// Only jobs parked at least this long ago.
    #[serde(default, with = "duration_text")]
    pub older_than: Option<Duration>,
    pub limit: Option<usize>,
    /// Republished messages per second at most.
    pub rate: Option<f64>,
    #[serde(default)]
    pub include_expired: bool,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ReplayReport {
    pub dry_run: bool,
    /// Messages looked at.
    pub examined: usize,
    /// Matching jobs moved (or, in a dry run, that would be moved).
    pub moved: usize,
    /// Matching jobs left parked because their deadline or call is over.
    pub skipped_expired: usize,
    pub job_ids: Vec<String>,
    /// Moved jobs per phase (for metrics).
    pub moved_by_phase: std::collections::BTreeMap<Phase, usize>,
}

impl ReplayReport {
    pub fn record(&self, metrics: &crate::metrics::Metrics) {
        if !self.dry_run {
            for (phase, n) in &self.moved_by_phase {
                metrics.replayed(*phase, *n as u64);
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the broker failed during the replay")]
    Amqp(#[from] lapin::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("the phase queue for {0} does not exist; has `authrelay run` declared the topology?")]
    Unroutable(Phase),
    #[error("--rate must be a positive number")]
    BadRate,
}

/// A parked message as replay sees it.
struct Parked {
    phase: Option<Phase>,
    job: Option<Value>,
    failed_at: Option<DateTime<Utc>>,
    error_kind: Option<String>,
}

impl Parked {
    fn read(body: &[u8], amqp_headers: Option<&FieldTable>) -> Self {
        let job: Option<Value> = serde_json::from_slice(body).ok();
        let phase = read_str(amqp_headers, headers::PHASE)
            .and_then(|p| Phase::parse(&p))
            .or_else(|| job.as_ref()?.get("phase")?.as_str().and_then(Phase::parse));
        Self {
            phase,
            job,
            failed_at: read_time(amqp_headers, headers::FAILED_AT),
            error_kind: read_str(amqp_headers, headers::ERROR_KIND),
        }
    }

    fn field(&self, name: &str) -> Option<&str> {
        self.job.as_ref()?.get(name)?.as_str()
    }

    fn matches(&self, request: &ReplayRequest, now: DateTime<Utc>) -> bool {
        let Some(phase) = self.phase else { return false };
        request.phase.is_none_or(|p| p == phase)
            && request.workspace.as_deref().is_none_or(|w| self.field("workspace_id") == Some(w))
            && request.job_id.as_deref().is_none_or(|j| self.field("job_id") == Some(j))
            && request.error_kind.is_none_or(|k| self.error_kind.as_deref() == Some(k.as_str()))
            && request.older_than.is_none_or(|d| {
                self.failed_at
                    .is_some_and(|t| now - t >= chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX))
            })
    }

    /// Whether replaying is pointless: the job's own deadline passed, or it
    /// belongs to a live call (pre/during-call) parked longer ago than its
    /// phase's deadline, so the call is over.
    fn is_expired(&self, settings: &WorkerConfig, now: DateTime<Utc>) -> bool {
        if let Some(deadline) = self.field("deadline").and_then(|d| DateTime::parse_from_rfc3339(d).ok()) {
            return deadline.with_timezone(&Utc) <= now;
        }
        match (self.phase, self.failed_at) {
            (Some(phase @ (Phase::PreCall | Phase::DuringCall)), Some(failed_at)) => {
                let window =
                    chrono::Duration::from_std(settings.phase(phase).deadline).unwrap_or(chrono::Duration::MAX);
                now - failed_at > window
            }
            _ => false,
        }
    }
}

pub async fn replay(
    connection: &Connection,
    names: &Names,
    settings: &WorkerConfig,
    request: &ReplayRequest,
) -> Result<ReplayReport, ReplayError> {
    let pause = match request.rate {
        Some(rate) if rate.is_finite() && rate > 0.0 => Some(Duration::from_secs_f64(1.0 / rate)),
        Some(_) => return Err(ReplayError::BadRate),
        None => None,
    };
    let scan = connection.create_channel().await?;
    scan.basic_qos(1000, BasicQosOptions::default()).await?;
    let publisher = Publisher::open(connection, names.clone()).await?;
    let now = Utc::now();
    let mut report = ReplayReport { dry_run: request.dry_run, ..Default::default() };
    let queue = names.failed_queue();
    while request.limit.is_none_or(|limit| report.moved < limit) {
        let Some(message) = scan.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false }).await? else {
            break;
        };
        let delivery = message.delivery;
        report.examined += 1;
        let parked = Parked::read(&delivery.data, delivery.properties.headers().as_ref());
        if !parked.matches(request, now) {
            continue; // left unacked: it returns to the queue, in order, when the scan ends
        }
        let expired = parked.is_expired(settings, now);
        if expired && !request.include_expired {
            report.skipped_expired += 1;
            continue;
        }
        let phase = parked.phase.expect("a matching message has a phase");
        let job_id = parked.field("job_id").unwrap_or("").to_owned();
        if !request.dry_run {
            let properties = fresh_properties(&delivery.properties, expired);
            let routed =
                publisher.publish(&names.actions_exchange(), phase.as_str(), &delivery.data, properties).await?;
            if routed == Routed::Unroutable {
                return Err(ReplayError::Unroutable(phase));
            }
            delivery.acker.ack(BasicAckOptions::default()).await?;
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
        report.moved += 1;
        *report.moved_by_phase.entry(phase).or_default() += 1;
        report.job_ids.push(job_id);
    }
    // Closing the scan channel returns every message we did not ack.
    super::close_channel(&scan, "replay done").await;
    Ok(report)
}

/// The parked message's properties with a fresh start: no attempt count, no
/// fixed deadline, no parking headers; marked as replayed.
fn fresh_properties(original: &BasicProperties, expired: bool) -> BasicProperties {
    let mut table = headers::copy_without(original.headers().as_ref(), headers::CLEARED_BY_REPLAY);
    set_header(&mut table, headers::REPLAYED_AT, text(Utc::now().to_rfc3339()));
    if expired {
        // Asked for explicitly: let the worker apply its phase deadline from now.
        set_header(&mut table, headers::DEADLINE_OVERRIDE, AMQPValue::Boolean(true));
    }
    original.clone().with_headers(table).with_delivery_mode(2)
}

mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&format!("{}ms", d.as_millis())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        raw.map(|r| crate::config::parse_duration(&r).map_err(serde::de::Error::custom)).transpose()
    }
}
