//! PostgreSQL storage of profiles. Every write runs in one transaction that
//! also inserts the outbox event (contract section 7) and an audit row, so an
//! event exists exactly when its change committed.
//!
//! - this file: create, read, list, update, delete;
//! - [`sealing`]: the secret fields, sealed one row each;
//! - [`changes`]: the outbox and audit rows of each write;
//! - [`cursor`]: list pagination; [`usage`]: references and usage;
//! - [`rotation`]: re-sealing under a new master key;
//! - [`health`]: credential health, read with profiles and written in batches by workers;
//! - [`audit`]: the audit trail read back, and the row of a credentials test.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Pool};
use serde_json::{Value, json};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{
    Actor, AuthConfig, AuthProfile, FieldErrors, Health, ListQuery, NewProfile, Page, ProfileLimits, ProfilePatch,
    ProfileView, Usage, parse_auth_type, validate_name, validate_workspace_id,
};
use crate::crypto::KeyRing;
use crate::db::DbError;
use changes::{event_json, insert_audit, insert_outbox, record_change, set_fields};
use cursor::{decode_cursor, encode_cursor, like_pattern};
use health::{clear_health, health_of};

mod audit;
mod changes;
mod cursor;
mod health;
mod rotation;
mod sealing;
mod usage;

pub use health::FlushReport;
pub use rotation::RotationReport;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("profile not found")]
    NotFound,
    #[error("a profile named `{0}` already exists in this workspace")]
    NameTaken(String),
    #[error("the profile is used by {} action(s) or flow node(s)", .0.total())]
    InUse(Usage),
    #[error("invalid profile")]
    Invalid(#[from] FieldErrors),
    #[error("profile {profile_id} cannot be used: {reason}")]
    Unusable { profile_id: Uuid, reason: String },
    #[error(
        "stored secrets are sealed with master key(s) {} missing from AUTHRELAY_MASTER_KEYS; add them back after the current key (then `authrelay keys rotate` can retire them)",
        .0.join(", ")
    )]
    KeysMissing(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(DbError::Postgres(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        Self::Db(DbError::Pool(e))
    }
}

#[derive(Clone)]
pub struct ProfileStore {
    pool: Pool,
    keys: Arc<KeyRing>,
}

const PROFILE_COLUMNS: &str = "id, workspace_id, name, auth_type, config, limits, version, created_at, updated_at";

impl ProfileStore {
    pub fn new(pool: Pool, keys: Arc<KeyRing>) -> Self {
        Self { pool, keys }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn create(
        &self,
        actor: &Actor,
        workspace_id: &str,
        input: NewProfile,
    ) -> Result<AuthProfile, StoreError> {
        validate_workspace_id(workspace_id)?;
        let mut errors = FieldErrors::default();
        let name = validate_name(&input.name).map_err(|e| errors.0.extend(e.0)).ok();
        let auth_type = parse_auth_type(&input.auth_type).map_err(|e| errors.0.extend(e.0)).ok();
        let config = auth_type
            .and_then(|t| AuthConfig::parse(t, &input.config, None, "config").map_err(|e| errors.0.extend(e.0)).ok());
        let limits = ProfileLimits::parse(&input.limits, "limits").map_err(|e| errors.0.extend(e.0)).ok();
        let (Some(name), Some(config), Some(limits)) = (name, config, limits) else {
            return Err(StoreError::Invalid(errors));
        };

        let id = Uuid::now_v7();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                &format!(
                    "INSERT INTO auth_profiles (id, workspace_id, name, auth_type, config, certificate_not_after, limits)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {PROFILE_COLUMNS}"
                ),
                &[
                    &id,
                    &workspace_id,
                    &name,
                    &config.auth_type().as_str(),
                    &config.public(),
                    &certificate_not_after(&config),
                    &limits.map(ProfileLimits::to_json),
                ],
            )
            .await
            .map_err(|e| name_conflict(e, &name))?;
        self.write_secrets(&tx, workspace_id, id, &config).await?;
        let profile = profile_from_row(&row, config)?;
        let mut fields = vec!["name".to_owned(), "type".to_owned()];
        fields.extend(set_fields(&profile.config));
        if profile.limits.is_some() {
            fields.push("limits".to_owned());
        }
        record_change(
            &tx,
            actor,
            "profile.created",
            &profile,
            json!({"name": profile.name, "type": profile.config.auth_type(), "fields": fields}),
        )
        .await?;
        tx.commit().await.map_err(|e| name_conflict(e, &name))?;
        Ok(profile)
    }

    /// One profile, decrypted. Another workspace's profile is `NotFound`.
    pub async fn get(&self, workspace_id: &str, id: Uuid) -> Result<AuthProfile, StoreError> {
        let client = self.pool.get().await?;
        self.load(&client, workspace_id, id, false).await
    }

    /// One profile as readers see it: masked, with its health.
    pub async fn get_view(&self, workspace_id: &str, id: Uuid) -> Result<ProfileView, StoreError> {
        let profile = self.get(workspace_id, id).await?;
        self.view_of(&profile).await
    }

    /// `profile` as readers see it, with its health read now.
    pub async fn view_of(&self, profile: &AuthProfile) -> Result<ProfileView, StoreError> {
        let mut health = self.health(&profile.workspace_id, &[profile.id]).await?;
        Ok(profile.view_with(health.remove(&profile.id).unwrap_or_default()))
    }

    pub async fn list(&self, workspace_id: &str, query: &ListQuery) -> Result<Page, StoreError> {
        let limit = i64::from(query.limit.clamp(1, 200));
        let pattern = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty()).map(like_pattern);
        let auth_type = query.auth_type.map(|t| t.as_str());
        let states: Option<Vec<&str>> =
            (!query.states.is_empty()).then(|| query.states.iter().map(|s| s.as_str()).collect());
        let (after_key, after_id) = match &query.cursor {
            Some(c) => {
                let (k, i) = decode_cursor(c)
                    .ok_or_else(|| FieldErrors::single("cursor", "is not a cursor this API returned"))?;
                (Some(k), Some(i))
            }
            None => (None, None),
        };
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {PROFILE_COLUMNS}, lower(name) AS sort_key FROM auth_profiles
                     WHERE workspace_id = $1
                       AND ($2::text IS NULL OR name ILIKE $2 ESCAPE '\\')
                       AND ($3::text IS NULL OR auth_type = $3)
                       AND ($4::text IS NULL OR (lower(name), id) > ($4::text, $5::uuid))
                       AND ($7::text[] IS NULL OR coalesce(
                           (SELECT state FROM profile_health h WHERE h.profile_id = auth_profiles.id), 'unused'
                       ) = ANY($7))
                     ORDER BY lower(name), id
                     LIMIT $6"
                ),
                &[&workspace_id, &pattern, &auth_type, &after_key, &after_id, &(limit + 1), &states],
            )
            .await?;
        let has_more = rows.len() as i64 > limit;
        let rows = &rows[..rows.len().min(limit as usize)];
        let ids: Vec<Uuid> = rows.iter().map(|r| r.get("id")).collect();
        let mut secrets = self.secrets_of(&client, &ids).await?;
        let mut health = health_of(&client, workspace_id, &ids).await?;
        let mut items = Vec::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.get("id");
            let config = self.open_config(row, secrets.remove(&id).unwrap_or_default())?;
            items.push(profile_from_row(row, config)?.view_with(health.remove(&id).unwrap_or_else(Health::unused)));
        }
        let next_cursor =
            if has_more { rows.last().map(|r| encode_cursor(r.get("sort_key"), r.get("id"))) } else { None };
        Ok(Page { items, next_cursor })
    }

    pub async fn update(
        &self,
        actor: &Actor,
        workspace_id: &str,
        id: Uuid,
        patch: ProfilePatch,
    ) -> Result<AuthProfile, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let current = self.load(&tx, workspace_id, id, true).await?;

        let mut errors = FieldErrors::default();
        let name = match &patch.name {
            Some(n) => validate_name(n).map_err(|e| errors.0.extend(e.0)).ok(),
            None => Some(current.name.clone()),
        };
        let auth_type = match &patch.auth_type {
            Some(t) => parse_auth_type(t).map_err(|e| errors.0.extend(e.0)).ok(),
            None => Some(current.config.auth_type()),
        };
        let config = auth_type.and_then(|t| {
            let input = patch.config.clone().unwrap_or(Value::Null);
            if t != current.config.auth_type() && patch.config.is_none() {
                errors.add("config", format!("is required when changing the type to {t}"));
                return None;
            }
            AuthConfig::parse(t, &input, Some(&current.config), "config").map_err(|e| errors.0.extend(e.0)).ok()
        });
        let limits = match &patch.limits {
            Some(value) => ProfileLimits::parse(value, "limits").map_err(|e| errors.0.extend(e.0)).ok(),
            None => Some(current.limits),
        };
        let (Some(name), Some(config), Some(limits)) = (name, config, limits) else {
            return Err(StoreError::Invalid(errors));
        };

        let mut changed = config.changed_fields(&current.config);
        if config.auth_type() != current.config.auth_type() {
            changed = vec!["type".into(), "config".into()];
        }
        if name != current.name {
            changed.insert(0, "name".into());
        }
        if limits != current.limits {
            changed.push("limits".into());
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE auth_profiles SET name = $3, auth_type = $4, config = $5, certificate_not_after = $6,
                            limits = $7, version = version + 1, updated_at = now()
                     WHERE workspace_id = $1 AND id = $2 RETURNING {PROFILE_COLUMNS}"
                ),
                &[
                    &workspace_id,
                    &id,
                    &name,
                    &config.auth_type().as_str(),
                    &config.public(),
                    &certificate_not_after(&config),
                    &limits.map(ProfileLimits::to_json),
                ],
            )
            .await
            .map_err(|e| name_conflict(e, &name))?;
        tx.execute("DELETE FROM auth_profile_secrets WHERE profile_id = $1", &[&id]).await?;
        // Tokens of older versions are never used again (the version is in their key).
        tx.execute("DELETE FROM shared_tokens WHERE profile_id = $1", &[&id]).await?;
        self.write_secrets(&tx, workspace_id, id, &config).await?;
        let profile = profile_from_row(&row, config)?;
        record_change(&tx, actor, "profile.updated", &profile, json!({ "changed": changed })).await?;
        clear_health(&tx, &profile).await?;
        tx.commit().await.map_err(|e| name_conflict(e, &name))?;
        Ok(profile)
    }

    /// Deletes an unreferenced profile. The foreign key of the references table
    /// makes PostgreSQL refuse a referenced one, even under concurrent writes.
    pub async fn delete(&self, actor: &Actor, workspace_id: &str, id: Uuid) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                &format!("DELETE FROM auth_profiles WHERE workspace_id = $1 AND id = $2 RETURNING {PROFILE_COLUMNS}"),
                &[&workspace_id, &id],
            )
            .await;
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Err(StoreError::NotFound),
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                drop(tx);
                return Err(StoreError::InUse(self.usage_with(&client, workspace_id, id).await?));
            }
            Err(e) => return Err(e.into()),
        };
        let version: i64 = row.get("version");
        let event = event_json("profile.deleted", workspace_id, id, version);
        insert_outbox(&tx, &event).await?;
        insert_audit(
            &tx,
            actor,
            "profile.deleted",
            workspace_id,
            Some(id),
            Some(version),
            json!({"name": row.get::<_, String>("name")}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn load(
        &self,
        client: &impl GenericClient,
        workspace_id: &str,
        id: Uuid,
        for_update: bool,
    ) -> Result<AuthProfile, StoreError> {
        let lock = if for_update { " FOR UPDATE" } else { "" };
        let row = client
            .query_opt(
                &format!("SELECT {PROFILE_COLUMNS} FROM auth_profiles WHERE workspace_id = $1 AND id = $2{lock}"),
                &[&workspace_id, &id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut secrets = self.secrets_of(client, &[id]).await?;
        let config = self.open_config(&row, secrets.remove(&id).unwrap_or_default())?;
        profile_from_row(&row, config)
    }
}

fn profile_from_row(row: &Row, config: AuthConfig) -> Result<AuthProfile, StoreError> {
    Ok(AuthProfile {
        id: row.get("id"),
        workspace_id: row.get("workspace_id"),
        name: row.get("name"),
        config,
        limits: ProfileLimits::from_stored(row.get("limits")),
        version: row.get("version"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    })
}

fn name_conflict(e: tokio_postgres::Error, name: &str) -> StoreError {
    if e.code() == Some(&SqlState::UNIQUE_VIOLATION) { StoreError::NameTaken(name.to_owned()) } else { e.into() }
}

/// When the client certificate of `config` expires, if it has one.
fn certificate_not_after(config: &AuthConfig) -> Option<chrono::DateTime<chrono::Utc>> {
    config.tls_identity().map(|c| c.certificate.not_after())
}
