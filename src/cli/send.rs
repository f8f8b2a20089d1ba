//! `authrelay send [--phase P] [--timeout D] FILE|-`: publish one job and
//! print its result (contract §11). The waiting is
//! [`queue::rpc::call`](crate::queue::rpc::call); this file reads the job,
//! fills in what may be missing and turns the answer into an exit code.
//!
//! Exit codes: 0 the job `succeeded`; 1 it has a result with any other
//! outcome; 2 there is no result: none came within `--timeout`, or the job
//! could not be sent (unreadable, no usable phase or `job_id`, the broker
//! unreachable, the topology missing). Errors are one line on stderr.

use std::io::Read as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use crate::config::{BrokerConfig, EnvSource, parse_duration};
use crate::job::{Outcome, Phase};
use crate::queue::rpc::{Answer, call};
use crate::queue::{Names, close_connection, connect};

/// How long `send` waits for a result unless `--timeout` says otherwise:
/// past the default deadlines of live-call jobs (5 s during-call, 10 s
/// pre-call) with their retries, and short enough for a person to wait.
pub const DEFAULT_TIMEOUT: &str = "30s";

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The phase to send a job that names none to (pre_call | during_call | post_call).
    /// A job that names its phase must name this one.
    #[arg(long)]
    pub phase: Option<String>,
    /// How long to wait for the result, connecting and publishing included (e.g. 500ms, 30s, 2m).
    #[arg(long, default_value = DEFAULT_TIMEOUT, value_parser = parse_duration)]
    pub timeout: Duration,
    /// The job as JSON (contract section 3); `-` reads standard input. A missing `job_id` is generated.
    pub file: PathBuf,
}

/// Exit codes of `authrelay send`.
pub const SUCCEEDED: i32 = 0;
pub const NOT_SUCCEEDED: i32 = 1;
pub const NO_RESULT: i32 = 2;

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("cannot read the job from {0}")]
    Read(String, #[source] std::io::Error),
    #[error("the job is not valid JSON")]
    Json(#[source] serde_json::Error),
    #[error("the job must be a JSON object")]
    NotAnObject,
    #[error("`{0}` is not a phase: use pre_call, during_call or post_call")]
    UnknownPhase(String),
    #[error("the job's phase is `{job}` but --phase says `{flag}`: drop --phase or change the job")]
    PhaseConflict { job: String, flag: String },
    #[error("the job names no phase: add `\"phase\"` to it or give --phase pre_call|during_call|post_call")]
    NoPhase,
    #[error("the job's `job_id` must be a string of 1 to 128 characters (leave it out to have one generated)")]
    BadJobId,
    #[error("the result is not valid JSON")]
    BadResult(#[source] serde_json::Error),
}

/// The job ready to send: its phase (from the job, or `--phase` when the job
/// names none) and the job with a generated `job_id` when it had none.
pub fn prepare(mut job: Value, phase_flag: Option<&str>) -> Result<(Phase, Value), SendError> {
    let flag = phase_flag.map(|p| Phase::parse(p).ok_or_else(|| SendError::UnknownPhase(p.to_owned()))).transpose()?;
    let object = job.as_object_mut().ok_or(SendError::NotAnObject)?;
    let phase = match (object.get("phase"), flag) {
        (None | Some(Value::Null), Some(flag)) => {
            object.insert("phase".into(), json!(flag.as_str()));
            flag
        }
        (None | Some(Value::Null), None) => return Err(SendError::NoPhase),
        (Some(named), flag) => {
            let text = named.as_str().map_or_else(|| named.to_string(), str::to_owned);
            let named = Phase::parse(&text).ok_or(SendError::UnknownPhase(text))?;
            match flag {
                Some(flag) if flag != named => {
                    return Err(SendError::PhaseConflict { job: named.as_str().into(), flag: flag.as_str().into() });
                }
                _ => named,
            }
        }
    };
    if object.get("job_id").is_none_or(Value::is_null) {
        object.insert("job_id".into(), json!(uuid::Uuid::now_v7().to_string()));
    }
    // Without a usable job_id the worker parks the job unanswered: say so now.
    let id_ok = object["job_id"].as_str().is_some_and(|id| (1..=128).contains(&id.chars().count()));
    if !id_ok {
        return Err(SendError::BadJobId);
    }
    Ok((phase, job))
}

/// The exit code for a result: 0 when it `succeeded`, 1 otherwise.
pub fn exit_code(result: &Value) -> i32 {
    if result["outcome"] == Outcome::Succeeded.as_str() { SUCCEEDED } else { NOT_SUCCEEDED }
}

/// Runs the command: prints the result on stdout, errors on stderr; returns the exit code.
pub async fn run(args: SendArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    match send(args, env).await {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("error: {}", crate::error_text::chain(e.as_ref()));
            Ok(NO_RESULT)
        }
    }
}

async fn send(args: SendArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let started = tokio::time::Instant::now();
    let text = read_job(&args.file)?;
    let job: Value = serde_json::from_str(&text).map_err(SendError::Json)?;
    let (phase, job) = prepare(job, args.phase.as_deref())?;
    let job_id = job["job_id"].as_str().unwrap_or_default().to_owned();
    let broker = BrokerConfig::from_env(env)?;
    let connection = connect::connect_with_wait(&broker.url, args.timeout).await?;
    let names = Names::new(&broker.prefix);
    eprintln!("sending job {job_id} to {}; waiting up to {:?} for its result", names.phase_queue(phase), args.timeout);
    let body = serde_json::to_vec(&job).expect("a JSON value serializes");
    let answer = call(&connection, &names, phase, &body, args.timeout.saturating_sub(started.elapsed())).await;
    close_connection(&connection, "send done").await;
    match answer? {
        Answer::Reply(reply) => {
            let result: Value = serde_json::from_slice(&reply).map_err(SendError::BadResult)?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(exit_code(&result))
        }
        Answer::TimedOut => {
            eprintln!(
                "error: no result for job {job_id} within {:?}: is a worker running for {phase}? The job stays queued and runs when one takes it",
                args.timeout
            );
            Ok(NO_RESULT)
        }
    }
}

fn read_job(file: &std::path::Path) -> Result<String, SendError> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| SendError::Read("standard input".into(), e))?;
    } else {
        text = std::fs::read_to_string(file).map_err(|e| SendError::Read(file.display().to_string(), e))?;
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_phase_comes_from_the_job_or_else_from_the_flag() {
        let (phase, job) = prepare(json!({"job_id": "j1", "phase": "post_call"}), None).unwrap();
        assert_eq!((phase, job["phase"].as_str()), (Phase::PostCall, Some("post_call")));
        let (phase, job) = prepare(json!({"job_id": "j1"}), Some("during_call")).unwrap();
        assert_eq!((phase, job["phase"].as_str()), (Phase::DuringCall, Some("during_call")));
        let (phase, _) = prepare(json!({"job_id": "j1", "phase": "pre_call"}), Some("pre_call")).unwrap();
        assert_eq!(phase, Phase::PreCall);
    }

    #[test]
    fn a_job_whose_phase_disagrees_with_the_flag_or_has_none_is_refused() {
        let conflict = prepare(json!({"phase": "post_call"}), Some("during_call")).unwrap_err();
        assert!(matches!(conflict, SendError::PhaseConflict { .. }), "{conflict}");
        assert!(matches!(prepare(json!({}), None), Err(SendError::NoPhase)));
        assert!(matches!(prepare(json!({"phase": "lunch"}), None), Err(SendError::UnknownPhase(_))));
        assert!(matches!(prepare(json!({}), Some("lunch")), Err(SendError::UnknownPhase(_))));
        assert!(matches!(prepare(json!([1]), Some("pre_call")), Err(SendError::NotAnObject)));
    }

    #[test]
    fn a_missing_job_id_is_generated_and_a_bad_one_refused() {
        let (_, job) = prepare(json!({"phase": "pre_call"}), None).unwrap();
        assert!(uuid::Uuid::try_parse(job["job_id"].as_str().unwrap()).is_ok(), "{job}");
        let (_, job) = prepare(json!({"phase": "pre_call", "job_id": "mine"}), None).unwrap();
        assert_eq!(job["job_id"], "mine");
        for bad in [json!(42), json!(""), json!("x".repeat(129))] {
            let refused = prepare(json!({"phase": "pre_call", "job_id": bad}), None);
            assert!(matches!(refused, Err(SendError::BadJobId)), "{refused:?}");
        }
    }

    #[test]
    fn only_a_succeeded_result_exits_0() {
        assert_eq!(exit_code(&json!({"outcome": "succeeded"})), 0);
        for outcome in ["failed", "expired", "rejected"] {
            assert_eq!(exit_code(&json!({ "outcome": outcome })), 1, "{outcome}");
        }
    }
}
