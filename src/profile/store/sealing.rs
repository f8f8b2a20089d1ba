//! Sealing a profile's secret fields into `auth_profile_secrets` and opening
//! them again: one row per field, AES-256-GCM bound to (workspace, profile,
//! field), under the key ring's current key.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::{GenericClient, Transaction};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{ProfileStore, StoreError};
use crate::crypto::{CryptoError, Sealed, SecretSlot};
use crate::profile::AuthConfig;

impl ProfileStore {
    pub(super) async fn secrets_of(
        &self,
        client: &impl GenericClient,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Vec<(String, Sealed)>>, StoreError> {
        let rows = client
            .query(
                "SELECT profile_id, field, key_id, nonce, ciphertext FROM auth_profile_secrets WHERE profile_id = ANY($1)",
                &[&ids],
            )
            .await?;
        let mut by_profile: HashMap<Uuid, Vec<(String, Sealed)>> = HashMap::new();
        for row in &rows {
            by_profile.entry(row.get("profile_id")).or_default().push((row.get("field"), sealed_from_row(row)));
        }
        Ok(by_profile)
    }

    pub(super) fn open_config(&self, row: &Row, sealed: Vec<(String, Sealed)>) -> Result<AuthConfig, StoreError> {
        let id: Uuid = row.get("id");
        let workspace_id: String = row.get("workspace_id");
        let mut secrets = BTreeMap::new();
        for (field, sealed) in sealed {
            let slot = SecretSlot { workspace_id: &workspace_id, profile_id: id, field: &field };
            let plain = self.keys.open(&slot, &sealed).map_err(|e| unusable(id, e))?;
            let text = String::from_utf8(plain.to_vec()).map_err(|_| StoreError::Unusable {
                profile_id: id,
                reason: format!("stored secret `{field}` is not text"),
            })?;
            secrets.insert(field, SecretString::from(text));
        }
        let auth_type = crate::profile::AuthType::parse(row.get("auth_type"))
            .ok_or_else(|| StoreError::Unusable { profile_id: id, reason: "unknown stored type".into() })?;
        AuthConfig::assemble(auth_type, &row.get::<_, Value>("config"), secrets)
            .map_err(|reason| StoreError::Unusable { profile_id: id, reason })
    }

    pub(super) async fn write_secrets(
        &self,
        tx: &Transaction<'_>,
        workspace_id: &str,
        id: Uuid,
        config: &AuthConfig,
    ) -> Result<(), StoreError> {
        for (field, value) in config.secrets() {
            let slot = SecretSlot { workspace_id, profile_id: id, field: &field };
            let sealed = self.keys.seal(&slot, value.expose_secret().as_bytes()).map_err(|e| unusable(id, e))?;
            tx.execute(
                "INSERT INTO auth_profile_secrets (profile_id, field, key_id, nonce, ciphertext) VALUES ($1, $2, $3, $4, $5)",
                &[&id, &field, &sealed.key_id, &sealed.nonce, &sealed.ciphertext],
            )
            .await?;
        }
        Ok(())
    }
}

pub(super) fn unusable(profile_id: Uuid, e: CryptoError) -> StoreError {
    StoreError::Unusable { profile_id, reason: e.to_string() }
}

pub(super) fn sealed_from_row(row: &Row) -> Sealed {
    Sealed { key_id: row.get("key_id"), nonce: row.get("nonce"), ciphertext: row.get("ciphertext") }
}
