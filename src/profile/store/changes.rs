//! The rows every profile write adds in its own transaction: the outbox event
//! (contract section 7, published by the relay) and the audit row. Neither
//! ever holds a secret value, only field names.

use chrono::Utc;
use deadpool_postgres::{GenericClient, Transaction};
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use crate::profile::{Actor, AuthConfig, AuthProfile, ProfileEvent};

/// The names of the fields a config sets (`config.method`, `config.token`,
/// `config.pairs.0.value`), for the audit row of a create: never a value.
pub(super) fn set_fields(config: &AuthConfig) -> Vec<String> {
    let public = config.public();
    let mut fields: Vec<String> =
        public.as_object().into_iter().flat_map(|o| o.keys()).map(|k| format!("config.{k}")).collect();
    fields.extend(config.secrets().into_iter().map(|(field, _)| format!("config.{}", field.replace('/', "."))));
    fields
}

pub(super) fn event_json(event_type: &str, workspace_id: &str, profile_id: Uuid, version: i64) -> ProfileEvent {
    ProfileEvent {
        event_type: event_type.to_owned(),
        workspace_id: workspace_id.to_owned(),
        profile_id,
        version,
        occurred_at: Utc::now(),
    }
}

pub(super) async fn record_change(
    tx: &Transaction<'_>,
    actor: &Actor,
    event_type: &str,
    profile: &AuthProfile,
    details: Value,
) -> Result<(), StoreError> {
    let event = event_json(event_type, &profile.workspace_id, profile.id, profile.version);
    insert_outbox(tx, &event).await?;
    insert_audit(tx, actor, event_type, &profile.workspace_id, Some(profile.id), Some(profile.version), details).await
}

pub(super) async fn insert_outbox(tx: &Transaction<'_>, event: &ProfileEvent) -> Result<(), StoreError> {
    let payload = serde_json::to_value(event).expect("events serialize");
    tx.execute(
        "INSERT INTO profile_events_outbox (event_type, workspace_id, profile_id, version, payload) VALUES ($1, $2, $3, $4, $5)",
        &[&event.event_type, &event.workspace_id, &event.profile_id, &event.version, &payload],
    )
    .await?;
    Ok(())
}

pub(super) async fn insert_audit(
    tx: &impl GenericClient,
    actor: &Actor,
    action: &str,
    workspace_id: &str,
    profile_id: Option<Uuid>,
    version: Option<i64>,
    details: Value,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO audit_log (actor, action, workspace_id, profile_id, version, details) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&actor.0, &action, &workspace_id, &profile_id, &version, &details],
    )
    .await?;
    Ok(())
}
