//! `authrelay replay`: move parked jobs back to their queues.

use anyhow::Context as _;
use clap::Args;

use crate::config::{Config, EnvSource};
use crate::job::{ErrorKind, Phase};
use crate::queue::replay::{ReplayRequest, replay};
use crate::queue::{Names, close_connection, connect};

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// pre_call | during_call | post_call
    #[arg(long)]
    pub phase: Option<String>,
    #[arg(long)]
    pub workspace: Option<String>,
    /// e.g. http_status, token_request_failed, profile_unusable
    #[arg(long)]
    pub error_kind: Option<String>,
    #[arg(long)]
    pub job_id: Option<String>,
    /// Only jobs parked at least this long ago (e.g. 10m, 2h).
    #[arg(long, value_parser = crate::config::parse_duration)]
    pub older_than: Option<std::time::Duration>,
    /// Move at most this many jobs.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Republish at most this many jobs per second, so live traffic keeps its share.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Also replay jobs whose deadline or call is over (they get a fresh deadline).
    #[arg(long)]
    pub include_expired: bool,
    /// Print the job ids that would move, and move nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl ReplayArgs {
    pub fn into_request(self) -> anyhow::Result<ReplayRequest> {
        let phase = self
            .phase
            .map(|p| Phase::parse(&p).with_context(|| format!("--phase `{p}`: use pre_call, during_call or post_call")))
            .transpose()?;
        let error_kind = self
            .error_kind
            .map(|k| ErrorKind::parse(&k).with_context(|| format!("--error-kind `{k}` is not an error kind")))
            .transpose()?;
        Ok(ReplayRequest {
            phase,
            workspace: self.workspace,
            error_kind,
            job_id: self.job_id,
            older_than: self.older_than,
            limit: self.limit,
            rate: self.rate,
            include_expired: self.include_expired,
            dry_run: self.dry_run,
        })
    }
}

/// Runs a replay in this process and prints what moved.
pub async fn run(args: ReplayArgs, env: &dyn EnvSource) -> anyhow::Result<i32> {
    let request = args.into_request()?;
    let config = Config::load(env)?;
    let connection = connect::connect_with_wait(&config.amqp_url, config.database.connect_timeout).await?;
    let names = Names::new(&config.amqp_prefix);
    let report = replay(&connection, &names, &config.worker, &request).await;
    close_connection(&connection, "replay done").await;
    let report = report?;
    // Replay runs in its own process here; its metrics live with the workers'
    // job counters (a replayed job is counted again when it settles).
    for id in &report.job_ids {
        println!("{id}");
    }
    if report.dry_run {
        println!("would move {} job(s); moved nothing (dry run)", report.moved);
    } else {
        println!("moved {} job(s)", report.moved);
    }
    if report.skipped_expired > 0 {
        eprintln!(
            "{} matching job(s) are past their deadline and stay parked (--include-expired to move them)",
            report.skipped_expired
        );
    }
    Ok(0)
}
