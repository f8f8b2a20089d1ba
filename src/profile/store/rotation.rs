//! Master-key rotation: every secret still sealed under an older key is
//! opened and sealed again under the current one, a profile per transaction.

use serde_json::json;
use uuid::Uuid;

use super::changes::insert_audit;
use super::sealing::{sealed_from_row, unusable};
use super::{ProfileStore, StoreError};
use crate::crypto::SecretSlot;
use crate::profile::Actor;

/// Counts reported by `keys rotate`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RotationReport {
    pub profiles: u64,
    pub secrets: u64,
    /// Shared OAuth 2.0 tokens under older keys, dropped rather than resealed.
    pub shared_tokens_dropped: u64,
}

impl ProfileStore {
    /// Key ids under which stored secrets are sealed but which the ring lacks.
    pub async fn missing_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let client = self.pool.get().await?;
        let rows = client.query("SELECT DISTINCT key_id FROM auth_profile_secrets ORDER BY key_id", &[]).await?;
        Ok(rows.iter().map(|r| r.get::<_, String>(0)).filter(|id| !self.keys.contains(id)).collect())
    }

    /// Refuses to start when a stored secret was sealed under a key the ring
    /// lacks: every job using it would fail, and the fix is a configuration change.
    pub async fn ensure_keys_cover_store(&self) -> Result<(), StoreError> {
        let missing = self.missing_key_ids().await?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(StoreError::KeysMissing(missing))
    }

    /// Re-seals every secret not under the current key. Idempotent; each
    /// profile is rewritten in its own transaction so a failure loses nothing.
    pub async fn rotate_keys(&self) -> Result<RotationReport, StoreError> {
        let current = self.keys.current_key_id().to_owned();
        let mut report = RotationReport::default();
        // Shared OAuth tokens are a cache: those under older keys are dropped, not resealed
        // (the next job fetches a fresh one, sealed under the current key).
        let client = self.pool.get().await?;
        report.shared_tokens_dropped =
            client.execute("DELETE FROM shared_tokens WHERE key_id <> $1", &[&current]).await?;
        drop(client);
        loop {
            let client = self.pool.get().await?;
            let ids: Vec<Uuid> = client
                .query("SELECT DISTINCT profile_id FROM auth_profile_secrets WHERE key_id <> $1 LIMIT 100", &[&current])
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            drop(client);
            if ids.is_empty() {
                return Ok(report);
            }
            for id in ids {
                report.secrets += self.reseal_profile(id).await?;
                report.profiles += 1;
            }
        }
    }

    async fn reseal_profile(&self, id: Uuid) -> Result<u64, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx.query_opt("SELECT workspace_id FROM auth_profiles WHERE id = $1 FOR UPDATE", &[&id]).await?
        else {
            return Ok(0);
        };
        let workspace_id: String = row.get(0);
        let rows = tx
            .query(
                "SELECT field, key_id, nonce, ciphertext FROM auth_profile_secrets WHERE profile_id = $1 AND key_id <> $2",
                &[&id, &self.keys.current_key_id()],
            )
            .await?;
        let mut old_keys = std::collections::BTreeSet::new();
        let mut fields = Vec::with_capacity(rows.len());
        for row in &rows {
            let field: String = row.get("field");
            fields.push(format!("config.{}", field.replace('/', ".")));
            let sealed = sealed_from_row(row);
            old_keys.insert(sealed.key_id.clone());
            let slot = SecretSlot { workspace_id: &workspace_id, profile_id: id, field: &field };
            let plain = self.keys.open(&slot, &sealed).map_err(|e| unusable(id, e))?;
            let resealed = self.keys.seal(&slot, &plain).map_err(|e| unusable(id, e))?;
            tx.execute(
                "UPDATE auth_profile_secrets SET key_id = $3, nonce = $4, ciphertext = $5 WHERE profile_id = $1 AND field = $2",
                &[&id, &field, &resealed.key_id, &resealed.nonce, &resealed.ciphertext],
            )
            .await?;
        }
        insert_audit(
            &tx,
            &Actor::cli(),
            "profile.reencrypted",
            &workspace_id,
            Some(id),
            None,
            json!({"from_keys": old_keys, "to_key": self.keys.current_key_id(), "secrets": rows.len(), "fields": fields}),
        )
        .await?;
        tx.commit().await?;
        Ok(rows.len() as u64)
    }
}
