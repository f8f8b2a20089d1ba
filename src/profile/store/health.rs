//! Credential health in PostgreSQL: reading it for profile reads, and the
//! batched write of what workers saw ([`ProfileStore::flush_health`]).
//!
//! A flush is one transaction for all the profiles a worker touched since its
//! last one: per profile, one update of its health row, one upsert of the
//! current hour's counts, and, when the state crossed into or out of
//! `deauthorized`, the event in the outbox. Rows are locked profile first,
//! then health, in id order — the order of updates and deletes too — so
//! flushes and admin writes never deadlock; and the health row's lock makes
//! the transition conditional: of several workers flushing the same evidence,
//! only the first sees the state change and writes the event.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;
use uuid::Uuid;

use super::changes::{event_json, insert_outbox};
use super::{ProfileStore, StoreError};
use crate::profile::AuthProfile;
use crate::profile::health::{
    Counts, Health, HealthDelta, HealthState, LastFailure, StoredHealth, Transition, fold, truncate,
};

/// What one flush wrote.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct FlushReport {
    /// Profiles whose health was written.
    pub written: usize,
    /// Profiles deleted meanwhile: what was seen of them is dropped.
    pub gone: usize,
    pub transitions: Vec<(Uuid, Transition)>,
}

const HEALTH_COLUMNS: &str = "h.profile_id, h.state, h.state_since, h.last_used_at, h.last_success_at, \
     h.last_failure_at, h.last_failure_kind, h.last_failure_status, h.last_failure_message, \
     h.consecutive_refusals, h.cleared_at";

impl ProfileStore {
    /// The health of profiles of `workspace_id`; those no job used yet are `unused`.
    pub async fn health(&self, workspace_id: &str, ids: &[Uuid]) -> Result<HashMap<Uuid, Health>, StoreError> {
        let client = self.pool.get().await?;
        health_of(&client, workspace_id, ids).await
    }

    /// Writes what a worker saw since its last flush, in one transaction.
    pub async fn flush_health(&self, batch: &[(Uuid, HealthDelta)]) -> Result<FlushReport, StoreError> {
        let mut batch: Vec<&(Uuid, HealthDelta)> = batch.iter().collect();
        batch.sort_by_key(|(id, _)| *id);
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let profiles: HashMap<Uuid, (String, i64)> = tx
            .query(
                "SELECT id, workspace_id, version FROM auth_profiles WHERE id = ANY($1) ORDER BY id FOR KEY SHARE",
                &[&ids],
            )
            .await?
            .iter()
            .map(|r| (r.get("id"), (r.get("workspace_id"), r.get("version"))))
            .collect();
        let present: Vec<Uuid> = ids.iter().copied().filter(|id| profiles.contains_key(id)).collect();
        // A row for every profile first, so that the lock below covers profiles used for
        // the first time too; the rows this flush created were `unused` until now.
        let created: Vec<Uuid> = tx
            .query(
                "INSERT INTO profile_health (profile_id, state, state_since, last_used_at)
                 SELECT id, 'ok', now(), now() FROM unnest($1::uuid[]) AS id
                 ON CONFLICT (profile_id) DO NOTHING RETURNING profile_id",
                &[&present],
            )
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut stored: HashMap<Uuid, StoredHealth> = tx
            .query(
                &format!(
                    "SELECT {HEALTH_COLUMNS} FROM profile_health h WHERE h.profile_id = ANY($1)
                     ORDER BY h.profile_id FOR UPDATE"
                ),
                &[&present],
            )
            .await?
            .iter()
            .map(|r| (r.get("profile_id"), stored_from_row(r)))
            .collect();
        let mut report = FlushReport::default();
        for (id, delta) in batch {
            let Some((workspace_id, version)) = profiles.get(id) else {
                report.gone += 1;
                continue;
            };
            let before = if created.contains(id) { None } else { stored.remove(id) };
            let (after, transition) = fold(before.as_ref(), *version, delta);
            write_health(&tx, *id, &after).await?;
            for bucket in &delta.hours {
                tx.execute(
                    "INSERT INTO profile_health_hourly AS c (profile_id, hour, succeeded, failed) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (profile_id, hour)
                     DO UPDATE SET succeeded = c.succeeded + excluded.succeeded, failed = c.failed + excluded.failed",
                    &[id, &bucket.start(), &(bucket.succeeded as i64), &(bucket.failed as i64)],
                )
                .await?;
            }
            if let Some(transition) = transition {
                insert_outbox(&tx, &event_json(transition.event_type(), workspace_id, *id, *version)).await?;
                report.transitions.push((*id, transition));
            }
            report.written += 1;
        }
        tx.commit().await?;
        Ok(report)
    }

    /// How many profiles are deauthorized, over every workspace.
    pub async fn count_deauthorized(&self) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client.query_one("SELECT count(*) FROM profile_health WHERE state = 'deauthorized'", &[]).await?;
        Ok(row.get(0))
    }

    /// Client certificates (of `mtls` profiles, and `client_certificate`s of
    /// any other) that expire before `horizon`, over every workspace; expired
    /// ones count too.
    pub async fn count_certificates_expiring(&self, horizon: DateTime<Utc>) -> Result<i64, StoreError> {
        let client = self.pool.get().await?;
        let row = client
            .query_one("SELECT count(*) FROM auth_profiles WHERE certificate_not_after < $1", &[&horizon])
            .await?;
        Ok(row.get(0))
    }

    /// Deletes hourly counts too old to be part of any `last_24h`.
    pub async fn prune_health_hours(&self) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        Ok(client.execute("DELETE FROM profile_health_hourly WHERE hour < now() - interval '25 hours'", &[]).await?)
    }
}

/// A profile update starts its health afresh (`ok`, no refusals counted, and
/// failures before it no longer make it `failing`); one that was
/// `deauthorized` announces `profile.authorized` in the same transaction.
pub(super) async fn clear_health(tx: &Transaction<'_>, profile: &AuthProfile) -> Result<(), StoreError> {
    let Some(row) =
        tx.query_opt("SELECT state FROM profile_health WHERE profile_id = $1 FOR UPDATE", &[&profile.id]).await?
    else {
        return Ok(());
    };
    tx.execute(
        "UPDATE profile_health SET state = 'ok', state_since = now(), consecutive_refusals = 0, cleared_at = now(),
                updated_at = now()
         WHERE profile_id = $1",
        &[&profile.id],
    )
    .await?;
    if row.get::<_, &str>("state") == HealthState::Deauthorized.as_str() {
        let event = event_json(Transition::Authorized.event_type(), &profile.workspace_id, profile.id, profile.version);
        insert_outbox(tx, &event).await?;
    }
    Ok(())
}

pub(super) async fn health_of(
    client: &impl GenericClient,
    workspace_id: &str,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Health>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {HEALTH_COLUMNS}, coalesce(c.succeeded, 0) AS succeeded_24h, coalesce(c.failed, 0) AS failed_24h
                 FROM profile_health h
                 JOIN auth_profiles p ON p.id = h.profile_id AND p.workspace_id = $1
                 LEFT JOIN LATERAL (
                     SELECT sum(succeeded)::bigint AS succeeded, sum(failed)::bigint AS failed
                     FROM profile_health_hourly WHERE profile_id = h.profile_id AND hour > now() - interval '24 hours'
                 ) c ON true
                 WHERE h.profile_id = ANY($2)"
            ),
            &[&workspace_id, &ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let stored = stored_from_row(row);
            let health = Health {
                state: stored.state,
                since: Some(stored.state_since),
                last_used_at: Some(stored.last_used_at),
                last_success_at: stored.last_success_at,
                last_failure: stored.last_failure,
                last_24h: Counts {
                    succeeded: row.get::<_, i64>("succeeded_24h").max(0) as u64,
                    failed: row.get::<_, i64>("failed_24h").max(0) as u64,
                },
            };
            (row.get("profile_id"), health)
        })
        .collect())
}

fn stored_from_row(row: &Row) -> StoredHealth {
    let last_failure = row.get::<_, Option<DateTime<Utc>>>("last_failure_at").map(|at| LastFailure {
        at,
        kind: row.get::<_, Option<String>>("last_failure_kind").unwrap_or_default(),
        status: row.get::<_, Option<i32>>("last_failure_status").and_then(|s| u16::try_from(s).ok()),
        message: row.get::<_, Option<String>>("last_failure_message").unwrap_or_default(),
    });
    StoredHealth {
        state: HealthState::parse(row.get("state")).unwrap_or(HealthState::Ok),
        state_since: row.get("state_since"),
        last_used_at: row.get("last_used_at"),
        last_success_at: row.get("last_success_at"),
        last_failure,
        consecutive_refusals: u32::try_from(row.get::<_, i32>("consecutive_refusals")).unwrap_or(0),
        cleared_at: row.get("cleared_at"),
    }
}

async fn write_health(tx: &Transaction<'_>, id: Uuid, health: &StoredHealth) -> Result<(), StoreError> {
    let failure = health.last_failure.as_ref();
    let message = failure.map(|f| truncate(&f.message));
    tx.execute(
        "UPDATE profile_health SET state = $2, state_since = $3, last_used_at = $4, last_success_at = $5,
                last_failure_at = $6, last_failure_kind = $7, last_failure_status = $8, last_failure_message = $9,
                consecutive_refusals = $10, updated_at = now()
         WHERE profile_id = $1",
        &[
            &id,
            &health.state.as_str(),
            &health.state_since,
            &health.last_used_at,
            &health.last_success_at,
            &failure.map(|f| f.at),
            &failure.map(|f| f.kind.as_str()),
            &failure.and_then(|f| f.status).map(i32::from),
            &message,
            &(health.consecutive_refusals.min(i32::MAX as u32) as i32),
        ],
    )
    .await?;
    Ok(())
}
