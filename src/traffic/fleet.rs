//! The fleet of worker processes that share every profile's limits, as the
//! database knows it: each process beats every [`BEAT`] (one upsert and two
//! small reads per beat, never per job), and the processes seen within
//! [`ALIVE_FOR`] split each limit between them ([`FleetShare`]). The beat also
//! carries the pauses that `429`s imposed: written by the process that got
//! one, read by the others.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::limits::{MAX_PAUSE, ProfileGates};
use crate::db::DbError;
use crate::error_text::Chain;
use crate::metrics::Metrics;

/// How often a process says it is alive and reads the fleet.
pub const BEAT: Duration = Duration::from_secs(2);
/// A process not heard of for this long no longer takes a share.
pub const ALIVE_FOR: Duration = Duration::from_secs(7);
/// Every this many beats (about a minute), a beat also deletes the leftovers
/// of dead processes and of pauses long over: they only grow the tables slowly.
const CLEAN_UP_EVERY: u32 = 30;
/// Gates of profiles not used for this long are forgotten.
const GATE_IDLE: Duration = Duration::from_secs(600);

/// This process's membership of the fleet.
pub struct Fleet {
    pub id: Uuid,
    pub pool: Pool,
    pub gates: Arc<ProfileGates>,
    pub metrics: Metrics,
}

impl Fleet {
    /// Joins the fleet and learns its size before the first job runs (a process
    /// that started from an empty fleet would otherwise take the whole limit).
    pub async fn join(&self) {
        if let Err(e) = self.beat(true).await {
            tracing::warn!(error = %Chain(&e), "cannot register with the fleet yet; limits count this process alone");
        }
    }

    /// Beats until `stop`; then leaves, so that the others take over its
    /// share at their next beat.
    pub async fn run(self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(BEAT);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        let mut failing = false;
        let mut beats = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                // A 429's pause is written at once (the others read it at their next beat).
                _ = self.gates.pause_heard() => {
                    if let Err(e) = self.share_pauses().await {
                        tracing::debug!(error = %Chain(&e), "cannot share a pause yet; kept for the next beat");
                    }
                }
                _ = ticks.tick() => {
                    beats = beats.wrapping_add(1);
                    match self.beat(beats.is_multiple_of(CLEAN_UP_EVERY)).await {
                        Ok(()) if std::mem::take(&mut failing) => tracing::info!("fleet membership written again"),
                        Ok(()) => {}
                        // The last known size stays: shares do not jump while the database is away.
                        Err(e) if !std::mem::replace(&mut failing, true) => {
                            tracing::warn!(error = %Chain(&e), "cannot reach the fleet table; limits keep the last known size")
                        }
                        Err(_) => {}
                    }
                    self.gates.prune(GATE_IDLE);
                }
            }
        }
        if let Err(e) = self.leave().await {
            tracing::debug!(error = %Chain(&e), "could not leave the fleet; the others stop counting this process shortly");
        }
    }

    /// Says this process is alive; passes on the pauses heard here; reads who
    /// else is alive, and the fleet's pauses; with `clean_up`, deletes leftovers.
    async fn beat(&self, clean_up: bool) -> Result<(), DbError> {
        let shared = self.share_pauses().await;
        let client = self.pool.get().await?;
        client
            .execute(
                "INSERT INTO fleet_members (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET seen_at = now()",
                &[&self.id],
            )
            .await?;
        let alive = format!("{} milliseconds", ALIVE_FOR.as_millis());
        let members = client
            .query("SELECT id FROM fleet_members WHERE seen_at > now() - $1::text::interval ORDER BY id", &[&alive])
            .await?;
        let size = members.len().max(1) as u32;
        let rank = members.iter().position(|row| row.get::<_, Uuid>(0) == self.id).unwrap_or(0) as u32;
        self.gates.fleet().set(size, rank);
        self.metrics.fleet_workers.set(i64::from(size));
        let pauses = client
            .query(
                "SELECT profile_id, (extract(epoch FROM paused_until - now()) * 1000)::bigint
                 FROM profile_pauses WHERE paused_until > now()",
                &[],
            )
            .await?;
        let now = tokio::time::Instant::now();
        for row in pauses {
            let left = Duration::from_millis(row.get::<_, i64>(1).max(0) as u64).min(MAX_PAUSE);
            self.gates.pause_locally(row.get(0), now.checked_add(left).unwrap_or(now));
        }
        if clean_up {
            // Leftovers of processes that died without leaving, and of pauses long over.
            client.execute("DELETE FROM fleet_members WHERE seen_at < now() - interval '1 hour'", &[]).await?;
            client.execute("DELETE FROM profile_pauses WHERE paused_until < now() - interval '1 minute'", &[]).await?;
        }
        shared
    }

    /// Writes the pauses heard here since the last time; kept for the next try when that fails.
    async fn share_pauses(&self) -> Result<(), DbError> {
        let news = self.gates.take_pause_news();
        if news.is_empty() {
            return Ok(());
        }
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => {
                for (profile, until) in news {
                    self.gates.pause_news(profile, until);
                }
                return Err(e.into());
            }
        };
        for (profile, until) in &news {
            // The profile may be gone meanwhile: then there is nothing to pause.
            let shared = client
                .execute(
                    "INSERT INTO profile_pauses (profile_id, paused_until)
                     SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM auth_profiles WHERE id = $1)
                     ON CONFLICT (profile_id) DO UPDATE
                     SET paused_until = greatest(profile_pauses.paused_until, excluded.paused_until)",
                    &[profile, until],
                )
                .await;
            if let Err(e) = shared {
                // Kept for the next beat.
                for (profile, until) in news {
                    self.gates.pause_news(profile, until);
                }
                return Err(e.into());
            }
        }
        Ok(())
    }

    async fn leave(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client.execute("DELETE FROM fleet_members WHERE id = $1", &[&self.id]).await?;
        Ok(())
    }
}
