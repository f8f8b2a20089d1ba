//! Credential health (contract section 10): what readers see of a profile's
//! use by jobs, what one worker saw between two flushes ([`HealthDelta`]), and
//! the rules that fold a delta into the stored health ([`fold`]).
//!
//! The state rules, in one place:
//! - `unused`: no job has used the profile (it has no health row);
//! - `deauthorized`: the credentials themselves were refused. Conclusively (the
//!   token endpoint rejected the client, or a target answered 401/403 to a token
//!   fetched for the job) at once; static credentials after 401/403 on 3 jobs in
//!   a row, counted over every worker. Cleared by the next job whose request
//!   the target accepted (2xx), or by a profile update;
//! - `failing`: otherwise, when the most recent job failed (no job succeeded
//!   after it, nor was the profile updated since);
//! - `ok`: otherwise.
//!
//! Evidence is ordered by time, never by which worker flushed first: a refusal
//! older than a stored success does not deauthorize, an acceptance older than
//! the deauthorization does not clear it, and evidence about an older version
//! of the profile (before an update) counts for nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Static credentials refused on this many jobs in a row are deauthorized.
pub const REFUSALS_TO_DEAUTHORIZE: u32 = 3;

/// Messages are capped to this many characters.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// Hour buckets kept in memory per profile; older ones no longer count in `last_24h`.
const MAX_HOURS: i64 = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthState {
    Unused,
    Ok,
    Failing,
    Deauthorized,
}

impl HealthState {
    pub const ALL: [HealthState; 4] =
        [HealthState::Unused, HealthState::Ok, HealthState::Failing, HealthState::Deauthorized];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unused => "unused",
            Self::Ok => "ok",
            Self::Failing => "failing",
            Self::Deauthorized => "deauthorized",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == s)
    }
}

/// `state=` of a list: one state or several, comma-separated (`failing,deauthorized`).
pub fn parse_states(raw: &str) -> Result<Vec<HealthState>, String> {
    let mut states = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let state = HealthState::parse(part)
            .ok_or_else(|| "must be unused, ok, failing or deauthorized (several separated by commas)".to_owned())?;
        if !states.contains(&state) {
            states.push(state);
        }
    }
    Ok(states)
}

/// A message capped to [`MAX_MESSAGE_CHARS`] characters.
pub fn truncate(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE_CHARS {
        return message.to_owned();
    }
    let mut cut: String = message.chars().take(MAX_MESSAGE_CHARS - 1).collect();
    cut.push('…');
    cut
}

/// The `health` of a profile read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Health {
    pub state: HealthState,
    /// When the profile entered `state` (null while `unused`).
    pub since: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<LastFailure>,
    pub last_24h: Counts,
}

impl Health {
    pub fn unused() -> Self {
        Self {
            state: HealthState::Unused,
            since: None,
            last_used_at: None,
            last_success_at: None,
            last_failure: None,
            last_24h: Counts::default(),
        }
    }
}

impl Default for Health {
    fn default() -> Self {
        Self::unused()
    }
}

/// The most recent failure. `message` is built from the error kind, the status
/// and the target's host; it never holds a response body or a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastFailure {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub status: Option<u16>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub succeeded: u64,
    pub failed: u64,
}

/// What a job showed about the credentials themselves (not the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The target accepted the request (2xx).
    Accepted,
    /// Refused beyond doubt: the token endpoint rejected the client, or a
    /// freshly fetched token got 401/403.
    Refused,
    /// Static credentials got 401/403: deauthorizing after a few in a row.
    StaticRefused,
}

/// A failure as a worker records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: &'static str,
    pub status: Option<u16>,
    pub message: String,
}

/// One settled job that used a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct JobUse {
    /// The profile version the job used.
    pub version: i64,
    pub at: DateTime<Utc>,
    /// None: the job succeeded.
    pub failure: Option<Failure>,
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourCount {
    /// Hours since the Unix epoch.
    pub hour: i64,
    pub succeeded: u64,
    pub failed: u64,
}

impl HourCount {
    pub fn start(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.hour * 3600, 0).unwrap_or_default()
    }
}

fn hour_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(3600)
}

/// The trailing run of jobs with the same outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    pub failed: bool,
    /// When its first job settled.
    pub since: DateTime<Utc>,
    /// It spans every job of the delta.
    pub whole: bool,
}

/// The latest evidence, when it was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub evidence: Evidence,
    pub at: DateTime<Utc>,
}

/// What one worker saw of a profile since its last flush. Adding a job is a
/// few comparisons and counter bumps (this runs for every job); merging keeps
/// what a failed flush could not write, within a bounded size.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthDelta {
    /// The newest profile version the jobs used; evidence is about this version.
    pub version: i64,
    pub last_used_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<(DateTime<Utc>, Failure)>,
    pub run: Run,
    /// Counts per hour, oldest first.
    pub hours: Vec<HourCount>,
    pub latest: Option<Seen>,
    /// Static refusals since the latest acceptance (or since the delta began).
    pub refusals_in_a_row: u32,
    /// An acceptance came in this delta: the stored count of refusals restarts from `refusals_in_a_row`.
    pub refusals_reset: bool,
}

impl HealthDelta {
    pub fn new(first: JobUse) -> Self {
        let mut delta = Self {
            version: first.version,
            last_used_at: first.at,
            last_success_at: None,
            last_failure: None,
            run: Run { failed: first.failure.is_some(), since: first.at, whole: true },
            hours: Vec::with_capacity(1),
            latest: None,
            refusals_in_a_row: 0,
            refusals_reset: false,
        };
        delta.add(first);
        delta
    }

    pub fn add(&mut self, job: JobUse) {
        if job.version > self.version {
            self.forget_evidence();
            self.version = job.version;
        }
        self.last_used_at = self.last_used_at.max(job.at);
        let failed = job.failure.is_some();
        if self.run.failed != failed {
            self.run = Run { failed, since: job.at, whole: false };
        }
        match job.failure {
            None => self.last_success_at = Some(self.last_success_at.map_or(job.at, |t| t.max(job.at))),
            Some(failure) => {
                if self.last_failure.as_ref().is_none_or(|(at, _)| *at <= job.at) {
                    self.last_failure = Some((job.at, failure));
                }
            }
        }
        self.count(hour_of(job.at), u64::from(!failed), u64::from(failed));
        if job.version == self.version
            && let Some(evidence) = job.evidence
        {
            match evidence {
                Evidence::Accepted => {
                    self.refusals_in_a_row = 0;
                    self.refusals_reset = true;
                }
                Evidence::StaticRefused => self.refusals_in_a_row = self.refusals_in_a_row.saturating_add(1),
                Evidence::Refused => {}
            }
            self.latest = Some(Seen { evidence, at: job.at });
        }
    }

    fn count(&mut self, hour: i64, succeeded: u64, failed: u64) {
        // Nearly always the last bucket (the current hour).
        match self.hours.iter_mut().rev().find(|h| h.hour == hour) {
            Some(bucket) => {
                bucket.succeeded += succeeded;
                bucket.failed += failed;
            }
            None => {
                let at = self.hours.partition_point(|h| h.hour < hour);
                self.hours.insert(at, HourCount { hour, succeeded, failed });
                // Buckets past the last 24 hours no longer count.
                let newest = self.hours.last().map_or(hour, |h| h.hour);
                self.hours.retain(|h| h.hour > newest - MAX_HOURS);
            }
        }
    }

    /// The profile changed: what was seen of the older version says nothing of
    /// the newer one, and refusals of the newer one are counted from zero.
    fn forget_evidence(&mut self) {
        if self.latest.is_some() {
            self.latest = None;
            self.refusals_in_a_row = 0;
            self.refusals_reset = true;
        }
    }

    /// `self` (older, a batch that could not be written) followed by `newer`.
    pub fn merge(mut self, newer: HealthDelta) -> HealthDelta {
        if newer.version > self.version {
            self.forget_evidence();
        }
        self.version = self.version.max(newer.version);
        self.last_used_at = self.last_used_at.max(newer.last_used_at);
        self.last_success_at = self.last_success_at.max(newer.last_success_at);
        if let Some((at, failure)) = newer.last_failure
            && self.last_failure.as_ref().is_none_or(|(older, _)| *older <= at)
        {
            self.last_failure = Some((at, failure));
        }
        self.run = if newer.run.whole && newer.run.failed == self.run.failed { self.run } else { newer.run };
        for bucket in newer.hours {
            self.count(bucket.hour, bucket.succeeded, bucket.failed);
        }
        if newer.latest.is_some() {
            self.latest = newer.latest;
        }
        if newer.refusals_reset {
            self.refusals_in_a_row = newer.refusals_in_a_row;
            self.refusals_reset = true;
        } else {
            self.refusals_in_a_row = self.refusals_in_a_row.saturating_add(newer.refusals_in_a_row);
        }
        self
    }
}

/// A profile's health row as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHealth {
    pub state: HealthState,
    pub state_since: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure: Option<LastFailure>,
    pub consecutive_refusals: u32,
    pub cleared_at: Option<DateTime<Utc>>,
}

/// A change of state to or from `deauthorized`, announced as an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Deauthorized,
    Authorized,
}

impl Transition {
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Deauthorized => "profile.deauthorized",
            Self::Authorized => "profile.authorized",
        }
    }
}

/// Folds what a worker saw (`delta`) into the stored health (`None`: unused)
/// of a profile now at `profile_version`; says whether it crossed into or out
/// of `deauthorized`. The caller holds the row's lock, so of several workers
/// flushing the same evidence, only the first sees a transition.
pub fn fold(
    stored: Option<&StoredHealth>,
    profile_version: i64,
    delta: &HealthDelta,
) -> (StoredHealth, Option<Transition>) {
    let old_state = stored.map_or(HealthState::Unused, |s| s.state);
    let cleared_at = stored.and_then(|s| s.cleared_at);
    let stored_success = stored.and_then(|s| s.last_success_at);
    let last_success_at = stored_success.max(delta.last_success_at);
    let last_failure = newest_failure(stored.and_then(|s| s.last_failure.clone()), delta.last_failure.as_ref());

    // Evidence about an older version of the profile counts for nothing.
    let current = delta.version >= profile_version;
    let stored_refusals = stored.map_or(0, |s| s.consecutive_refusals);
    let refusals = match (current, delta.refusals_reset) {
        (false, _) => stored_refusals,
        (true, true) => delta.refusals_in_a_row,
        (true, false) => stored_refusals.saturating_add(delta.refusals_in_a_row),
    };
    let mut deauthorized = old_state == HealthState::Deauthorized;
    let mut transition = None;
    // Set when this delta deauthorizes.
    let mut deauthorized_at = None;
    if let Some(seen) = delta.latest.filter(|_| current) {
        let after = |t: Option<DateTime<Utc>>| t.is_none_or(|t| seen.at > t);
        match seen.evidence {
            Evidence::Refused | Evidence::StaticRefused
                if !deauthorized
                    && (seen.evidence == Evidence::Refused || refusals >= REFUSALS_TO_DEAUTHORIZE)
                    && after(stored_success)
                    && after(cleared_at) =>
            {
                deauthorized = true;
                deauthorized_at = Some(seen.at);
                transition = Some(Transition::Deauthorized);
            }
            Evidence::Accepted if deauthorized && after(stored.map(|s| s.state_since)) => {
                deauthorized = false;
                transition = Some(Transition::Authorized);
            }
            _ => {}
        }
    }

    let success_mark = last_success_at.max(cleared_at);
    let failing = last_failure.as_ref().is_some_and(|f| success_mark.is_none_or(|s| f.at > s));
    let state = if deauthorized {
        HealthState::Deauthorized
    } else if failing {
        HealthState::Failing
    } else {
        HealthState::Ok
    };
    // When the state began. It carries on from before the delta unless the delta began a new
    // run of it (a success between failures, say); a new state began with the delta's run of
    // that kind, or else with the newest job of that kind (seen by another worker).
    let new_run = |failed: bool| delta.run.failed == failed && !delta.run.whole;
    let carried_on = stored.filter(|s| s.state == state).map(|s| s.state_since);
    let since = match state {
        HealthState::Deauthorized => match (deauthorized_at, carried_on) {
            (Some(at), _) => at,
            (None, carried_on) => carried_on.unwrap_or(delta.last_used_at),
        },
        HealthState::Failing => match carried_on.filter(|_| !new_run(true)) {
            Some(since) => since,
            None if delta.run.failed => delta.run.since,
            None => last_failure.as_ref().map_or(delta.last_used_at, |f| f.at),
        },
        HealthState::Ok | HealthState::Unused => match carried_on.filter(|_| !new_run(false)) {
            Some(since) => since,
            None if !delta.run.failed => delta.run.since,
            None => last_success_at.unwrap_or(delta.last_used_at),
        },
    };
    let folded = StoredHealth {
        state,
        state_since: since,
        last_used_at: stored.map_or(delta.last_used_at, |s| s.last_used_at.max(delta.last_used_at)),
        last_success_at,
        last_failure,
        consecutive_refusals: refusals,
        cleared_at,
    };
    (folded, transition)
}

fn newest_failure(stored: Option<LastFailure>, seen: Option<&(DateTime<Utc>, Failure)>) -> Option<LastFailure> {
    match (stored, seen) {
        (Some(stored), Some((at, _))) if stored.at > *at => Some(stored),
        (_, Some((at, failure))) => Some(LastFailure {
            at: *at,
            kind: failure.kind.to_owned(),
            status: failure.status,
            message: failure.message.clone(),
        }),
        (stored, None) => stored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
    }

    fn ok(at: i64) -> JobUse {
        JobUse { version: 1, at: t(at), failure: None, evidence: Some(Evidence::Accepted) }
    }

    fn failed(at: i64, evidence: Option<Evidence>) -> JobUse {
        let failure = Failure { kind: "http_status", status: Some(401), message: "401 from api.example.com".into() };
        JobUse { version: 1, at: t(at), failure: Some(failure), evidence }
    }

    fn delta(jobs: Vec<JobUse>) -> HealthDelta {
        let mut jobs = jobs.into_iter();
        let mut delta = HealthDelta::new(jobs.next().unwrap());
        jobs.for_each(|j| delta.add(j));
        delta
    }

    fn fold_all(stored: Option<StoredHealth>, deltas: Vec<HealthDelta>) -> (StoredHealth, Vec<Transition>) {
        let mut stored = stored;
        let mut transitions = Vec::new();
        for delta in deltas {
            let (next, transition) = fold(stored.as_ref(), 1, &delta);
            transitions.extend(transition);
            stored = Some(next);
        }
        (stored.unwrap(), transitions)
    }

    #[test]
    fn a_first_success_is_ok_and_a_later_failure_is_failing_since_that_failure() {
        let (health, transitions) = fold_all(None, vec![delta(vec![ok(0), ok(1)])]);
        assert_eq!((health.state, health.state_since, transitions.len()), (HealthState::Ok, t(0), 0));
        let (health, _) = fold_all(Some(health), vec![delta(vec![ok(5), failed(6, None), failed(7, None)])]);
        assert_eq!((health.state, health.state_since), (HealthState::Failing, t(6)));
        assert_eq!(health.last_failure.as_ref().unwrap().message, "401 from api.example.com");
        // Still failing: the run carries on, so does its start.
        let (health, _) = fold_all(Some(health), vec![delta(vec![failed(9, None)])]);
        assert_eq!((health.state, health.state_since), (HealthState::Failing, t(6)));
        let (health, _) = fold_all(Some(health), vec![delta(vec![ok(12)])]);
        assert_eq!((health.state, health.state_since), (HealthState::Ok, t(12)));
    }

    #[test]
    fn a_conclusive_refusal_deauthorizes_once_and_the_next_acceptance_authorizes() {
        let refused = || delta(vec![failed(10, Some(Evidence::Refused))]);
        let (health, transitions) = fold_all(None, vec![refused(), refused()]);
        assert_eq!(health.state, HealthState::Deauthorized);
        assert_eq!(transitions, vec![Transition::Deauthorized], "the same evidence twice: one transition");
        // A failure that says nothing of the credentials (a 503) leaves it deauthorized.
        let (health, transitions) = fold_all(Some(health), vec![delta(vec![failed(11, None)])]);
        assert_eq!((health.state, transitions.len()), (HealthState::Deauthorized, 0));
        let (health, transitions) = fold_all(Some(health), vec![delta(vec![ok(12)])]);
        assert_eq!((health.state, transitions), (HealthState::Ok, vec![Transition::Authorized]));
    }

    #[test]
    fn evidence_is_ordered_by_time_not_by_which_worker_flushed_first() {
        let (health, _) = fold_all(None, vec![delta(vec![ok(20)])]);
        // A refusal older than the stored success does not deauthorize.
        let (health, transitions) = fold_all(Some(health), vec![delta(vec![failed(15, Some(Evidence::Refused))])]);
        assert_eq!((health.state, transitions.len()), (HealthState::Ok, 0));
        let (health, _) = fold_all(Some(health), vec![delta(vec![failed(30, Some(Evidence::Refused))])]);
        assert_eq!(health.state, HealthState::Deauthorized);
        // An acceptance older than the deauthorization does not clear it.
        let (health, transitions) = fold_all(Some(health), vec![delta(vec![ok(25)])]);
        assert_eq!((health.state, transitions.len()), (HealthState::Deauthorized, 0));
        assert_eq!(health.last_success_at, Some(t(25)));
    }

    #[test]
    fn static_credentials_are_deauthorized_after_three_refusals_in_a_row_over_several_flushes() {
        let refused = |at| failed(at, Some(Evidence::StaticRefused));
        let (health, transitions) =
            fold_all(None, vec![delta(vec![refused(1)]), delta(vec![refused(2)]), delta(vec![ok(3), refused(4)])]);
        assert_eq!((health.state, health.consecutive_refusals, transitions.len()), (HealthState::Failing, 1, 0));
        let (health, transitions) = fold_all(Some(health), vec![delta(vec![refused(5)]), delta(vec![refused(6)])]);
        assert_eq!((health.state, transitions), (HealthState::Deauthorized, vec![Transition::Deauthorized]));
        assert_eq!(health.state_since, t(6));
    }

    #[test]
    fn failures_that_say_nothing_of_the_credentials_neither_count_nor_reset_refusals() {
        let (health, _) = fold_all(
            None,
            vec![delta(vec![
                failed(1, Some(Evidence::StaticRefused)),
                failed(2, None),
                failed(3, Some(Evidence::StaticRefused)),
            ])],
        );
        assert_eq!(health.consecutive_refusals, 2);
        let (health, _) = fold_all(Some(health), vec![delta(vec![failed(4, Some(Evidence::StaticRefused))])]);
        assert_eq!(health.state, HealthState::Deauthorized);
    }

    #[test]
    fn evidence_about_an_older_version_counts_for_nothing() {
        let old = delta(vec![failed(5, Some(Evidence::Refused))]);
        let (health, transition) = fold(None, 2, &old);
        assert_eq!((health.state, transition), (HealthState::Failing, None));
        // Within one delta, a newer version drops what was seen of the older one.
        let mut mixed = delta(vec![failed(5, Some(Evidence::StaticRefused)), failed(6, Some(Evidence::StaticRefused))]);
        mixed.add(JobUse { version: 2, ..failed(7, Some(Evidence::StaticRefused)) });
        assert_eq!((mixed.version, mixed.refusals_in_a_row, mixed.refusals_reset), (2, 1, true));
    }

    #[test]
    fn an_update_clears_what_came_before_it() {
        let (mut health, _) = fold_all(None, vec![delta(vec![failed(5, Some(Evidence::Refused))])]);
        // What a profile update does to the row (`ProfileStore::update`).
        health.state = HealthState::Ok;
        health.cleared_at = Some(t(8));
        health.consecutive_refusals = 0;
        // A late refusal from before the update, then a job that says nothing: not failing any more.
        let (health, transitions) = fold_all(Some(health), vec![delta(vec![failed(7, Some(Evidence::Refused))])]);
        assert_eq!((health.state, transitions.len()), (HealthState::Ok, 0));
    }

    #[test]
    fn merging_an_unwritten_batch_keeps_counts_order_and_bounds() {
        let older = delta(vec![ok(0), failed(1, Some(Evidence::StaticRefused))]);
        let newer = delta(vec![failed(4000, Some(Evidence::StaticRefused)), failed(4001, None)]);
        let merged = older.merge(newer);
        let counts = merged.hours.iter().fold((0, 0), |(s, f), h| (s + h.succeeded, f + h.failed));
        assert_eq!(counts, (1, 3));
        assert_eq!(merged.hours.len(), 2);
        assert_eq!((merged.refusals_in_a_row, merged.refusals_reset), (2, true));
        assert_eq!(merged.run, Run { failed: true, since: t(1), whole: false });
        assert_eq!(merged.latest, Some(Seen { evidence: Evidence::StaticRefused, at: t(4000) }));
        // A day and more of buckets: only the last 24 hours are kept.
        let mut long = delta(vec![ok(0)]);
        for hour in 1..100 {
            long.add(ok(hour * 3600));
        }
        assert_eq!(long.hours.len(), MAX_HOURS as usize);
    }
}
