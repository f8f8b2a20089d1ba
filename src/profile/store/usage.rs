//! Which actions and flow nodes use a profile: the reference rows whose
//! foreign key makes PostgreSQL refuse to delete a profile still in use.

use deadpool_postgres::GenericClient;
use serde_json::json;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::changes::insert_audit;
use super::{ProfileStore, StoreError};
use crate::profile::{
    Actor, FieldErrors, Reference, ReferenceKind, Usage, UsageItem, has_control_chars, validate_name,
};

impl ProfileStore {
    pub async fn usage(&self, workspace_id: &str, id: Uuid) -> Result<Usage, StoreError> {
        let client = self.pool.get().await?;
        let exists = client
            .query_opt("SELECT 1 FROM auth_profiles WHERE workspace_id = $1 AND id = $2", &[&workspace_id, &id])
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound);
        }
        self.usage_with(&client, workspace_id, id).await
    }

    pub(super) async fn usage_with(
        &self,
        client: &impl GenericClient,
        workspace_id: &str,
        id: Uuid,
    ) -> Result<Usage, StoreError> {
        let rows = client
            .query(
                "SELECT kind, ref_id, name FROM auth_profile_references
                 WHERE workspace_id = $1 AND profile_id = $2 ORDER BY kind, lower(name), ref_id",
                &[&workspace_id, &id],
            )
            .await?;
        let mut usage = Usage::default();
        for row in rows {
            if let Some(kind) = ReferenceKind::parse(row.get("kind")) {
                usage.push(kind, UsageItem { id: row.get("ref_id"), name: row.get("name") });
            }
        }
        Ok(usage)
    }

    /// Records that an action or flow node uses a profile (insert or replace).
    /// Returns the reference and whether it was newly created.
    pub async fn put_reference(
        &self,
        actor: &Actor,
        workspace_id: &str,
        kind: ReferenceKind,
        ref_id: &str,
        profile_id: Uuid,
        name: &str,
    ) -> Result<(Reference, bool), StoreError> {
        let mut errors = FieldErrors::default();
        if ref_id.is_empty() || ref_id.chars().count() > 200 || has_control_chars(ref_id) {
            errors.add("ref_id", "must be 1 to 200 characters without control characters");
        }
        let name = validate_name(name).map_err(|e| errors.0.extend(e.0)).ok();
        let Some(name) = name.filter(|_| errors.is_empty()) else {
            return Err(StoreError::Invalid(errors));
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_one(
                "INSERT INTO auth_profile_references (workspace_id, kind, ref_id, name, profile_id) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (workspace_id, kind, ref_id)
                 DO UPDATE SET name = excluded.name, profile_id = excluded.profile_id, updated_at = now()
                 RETURNING (xmax = 0) AS inserted",
                &[&workspace_id, &kind.as_str(), &ref_id, &name, &profile_id],
            )
            .await
            .map_err(|e| match e.code() {
                Some(c) if *c == SqlState::FOREIGN_KEY_VIOLATION => StoreError::NotFound,
                _ => e.into(),
            })?;
        let inserted: bool = row.get("inserted");
        insert_audit(
            &tx,
            actor,
            "reference.put",
            workspace_id,
            Some(profile_id),
            None,
            json!({"kind": kind, "ref_id": ref_id, "name": name}),
        )
        .await?;
        tx.commit().await?;
        let reference =
            Reference { workspace_id: workspace_id.to_owned(), kind, ref_id: ref_id.to_owned(), name, profile_id };
        Ok((reference, inserted))
    }

    pub async fn delete_reference(
        &self,
        actor: &Actor,
        workspace_id: &str,
        kind: ReferenceKind,
        ref_id: &str,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let row = tx
            .query_opt(
                "DELETE FROM auth_profile_references WHERE workspace_id = $1 AND kind = $2 AND ref_id = $3 RETURNING profile_id",
                &[&workspace_id, &kind.as_str(), &ref_id],
            )
            .await?
            .ok_or(StoreError::NotFound)?;
        let profile_id: Uuid = row.get("profile_id");
        insert_audit(
            &tx,
            actor,
            "reference.deleted",
            workspace_id,
            Some(profile_id),
            None,
            json!({"kind": kind, "ref_id": ref_id}),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
