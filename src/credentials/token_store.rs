//! One OAuth 2.0 token for the whole fleet (`AUTHRELAY_TOKEN_SHARING=fleet`):
//! tokens are kept in PostgreSQL, sealed with the key ring (bound by
//! associated data to profile, version and request parameters), so N worker
//! processes cost one token request per lifetime and one refetch per 401.
//!
//! A process that needs a token (its memory cache, which stays in front,
//! missed) first reads the shared row. When there is none fit to use, it takes
//! a transaction-scoped advisory lock on the token's key, reads again (another
//! process may just have stored one), and only then asks the token endpoint,
//! storing the answer before the lock goes. Processes asking at the same time
//! wait on the lock and then read the stored token.
//!
//! The database is a help, never a dependency: when it cannot be reached the
//! process asks the token endpoint itself, as with `process` sharing.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use tokio::time::Instant;
use uuid::Uuid;

use super::oauth2::{AccessToken, TokenError};
use crate::crypto::{KeyRing, Sealed, SecretSlot};
use crate::error_text::Chain;

/// Which token a row holds: the profile, its version, and a digest of every
/// parameter of the token request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey {
    pub profile_id: Uuid,
    pub version: i64,
    pub params: [u8; 32],
}

impl TokenKey {
    /// The advisory lock that serializes fetches of this key across processes.
    fn lock_id(&self) -> i64 {
        let mut hash = Sha256::new();
        hash.update(self.profile_id.as_bytes());
        hash.update(self.version.to_be_bytes());
        hash.update(self.params);
        let digest = hash.finalize();
        i64::from_be_bytes(digest[..8].try_into().expect("a SHA-256 digest has 8 bytes"))
    }

    /// The sealed value's slot: bound to profile, version and parameters.
    fn field(&self) -> String {
        let params: String = self.params.iter().map(|b| format!("{b:02x}")).collect();
        format!("shared_token/{}/{params}", self.version)
    }
}

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Obtained {
    /// Another process (or an earlier run of this one) stored it.
    Shared,
    /// This process asked the token endpoint.
    Fetched,
}

#[derive(Debug, thiserror::Error)]
enum StoreError {
    #[error("no database connection")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("a database query failed")]
    Db(#[from] tokio_postgres::Error),
    #[error("a shared token could not be sealed")]
    Seal(#[from] crate::crypto::CryptoError),
}

/// Tokens in PostgreSQL, shared by every process that uses the same database.
#[derive(Clone)]
pub struct SharedTokens {
    pool: Pool,
    keys: Arc<KeyRing>,
}

impl std::fmt::Debug for SharedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedTokens").finish_non_exhaustive()
    }
}

/// A stored token is adopted while it is not yet due for renewal, and unless
/// a target of this process refused it (its row may not be deleted yet).
fn fit_to_adopt(token: &AccessToken, max_refresh_margin: Duration, refused: &[[u8; 32]]) -> bool {
    Instant::now() < token.refresh_at(max_refresh_margin) && !refused.contains(&token_digest(&token.value))
}

impl SharedTokens {
    pub fn new(pool: Pool, keys: Arc<KeyRing>) -> Self {
        Self { pool, keys }
    }

    /// A token for `key`: a stored one not yet due for renewal and not among
    /// the `refused` (digests of tokens a target refused here), or one that
    /// `fetch` gets while this process holds the key's lock (others wait up to
    /// `wait` for it). Without the database, `fetch` runs unshared.
    pub async fn obtain<Fut>(
        &self,
        key: TokenKey,
        workspace_id: &str,
        max_refresh_margin: Duration,
        refused: &[[u8; 32]],
        wait: Duration,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<(AccessToken, Obtained), TokenError>
    where
        Fut: Future<Output = Result<AccessToken, TokenError>>,
    {
        let slot_field = key.field();
        let slot = SecretSlot { workspace_id, profile_id: key.profile_id, field: &slot_field };
        // Most processes find the token another one stored, without locking.
        match self.read(&key, &slot).await {
            Ok(Some(token)) if fit_to_adopt(&token, max_refresh_margin, refused) => {
                return Ok((token, Obtained::Shared));
            }
            Ok(_) => {}
            Err(e) => return self.unshared(&key, &e, fetch).await,
        }
        let mut client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => return self.unshared(&key, &StoreError::from(e), fetch).await,
        };
        let locked = async {
            let tx = client.transaction().await?;
            // Waiting on another process's fetch is bounded like a fetch of our own.
            tx.batch_execute(&format!("SET LOCAL lock_timeout = {}", wait.as_millis().max(1))).await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&key.lock_id()]).await?;
            Ok::<_, StoreError>(tx)
        }
        .await;
        let tx = match locked {
            Ok(tx) => tx,
            Err(e) => return self.unshared(&key, &e, fetch).await,
        };
        // Another process may have stored one while we waited for the lock.
        match read_row(&tx, &self.keys, &key, &slot).await {
            Ok(Some(token)) if fit_to_adopt(&token, max_refresh_margin, refused) => {
                return Ok((token, Obtained::Shared));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(profile_id = %key.profile_id, error = %Chain(&e), "cannot read a shared OAuth 2.0 token; fetching one")
            }
        }
        let token = fetch().await?;
        let stored = async {
            write_row(&tx, &self.keys, &key, &slot, &token).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = stored {
            tracing::warn!(profile_id = %key.profile_id, error = %Chain(&e), "cannot share an OAuth 2.0 token; it serves this process only");
        }
        Ok((token, Obtained::Fetched))
    }

    /// The target refused `token` (a 401): drop the stored row if it still
    /// holds that token, so the next fetch asks the token endpoint, once, for
    /// the whole fleet. A newer token another process stored is kept.
    pub async fn reject(&self, key: &TokenKey, token: &AccessToken) {
        let deleted = async {
            let client = self.pool.get().await?;
            client
                .execute(
                    "DELETE FROM shared_tokens
                     WHERE profile_id = $1 AND version = $2 AND params_digest = $3 AND token_digest = $4",
                    &[&key.profile_id, &key.version, &key.params.as_slice(), &token_digest(&token.value).as_slice()],
                )
                .await?;
            Ok::<_, StoreError>(())
        }
        .await;
        if let Err(e) = deleted {
            tracing::warn!(profile_id = %key.profile_id, error = %Chain(&e), "cannot drop a rejected shared OAuth 2.0 token");
        }
    }

    async fn read(&self, key: &TokenKey, slot: &SecretSlot<'_>) -> Result<Option<AccessToken>, StoreError> {
        let client = self.pool.get().await?;
        read_row(&client, &self.keys, key, slot).await
    }

    async fn unshared<Fut>(
        &self,
        key: &TokenKey,
        cause: &StoreError,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<(AccessToken, Obtained), TokenError>
    where
        Fut: Future<Output = Result<AccessToken, TokenError>>,
    {
        tracing::warn!(profile_id = %key.profile_id, error = %Chain(cause), "the shared token store is unavailable; fetching a token for this process only");
        Ok((fetch().await?, Obtained::Fetched))
    }
}

/// SHA-256 of a token: which token it is, without keeping the token.
pub(crate) fn token_digest(value: &SecretString) -> [u8; 32] {
    Sha256::digest(value.expose_secret().as_bytes()).into()
}

async fn read_row(
    client: &impl deadpool_postgres::GenericClient,
    keys: &KeyRing,
    key: &TokenKey,
    slot: &SecretSlot<'_>,
) -> Result<Option<AccessToken>, StoreError> {
    let row = client
        .query_opt(
            "SELECT key_id, nonce, ciphertext, token_type, scope, expires_in_ms, lifetime_ms,
                    (extract(epoch FROM expires_at - now()) * 1000)::bigint AS remaining_ms
             FROM shared_tokens WHERE profile_id = $1 AND version = $2 AND params_digest = $3",
            &[&key.profile_id, &key.version, &key.params.as_slice()],
        )
        .await?;
    let Some(row) = row else { return Ok(None) };
    let sealed = Sealed { key_id: row.get("key_id"), nonce: row.get("nonce"), ciphertext: row.get("ciphertext") };
    // A row sealed under a key this process lacks (or tampered with) is no token.
    let Ok(plain) = keys.open(slot, &sealed) else { return Ok(None) };
    let Ok(value) = String::from_utf8(plain.to_vec()) else { return Ok(None) };
    let lifetime = Duration::from_millis(row.get::<_, i64>("lifetime_ms").max(0) as u64);
    let remaining = Duration::from_millis(row.get::<_, i64>("remaining_ms").max(0) as u64);
    let now = Instant::now();
    // The token's clock runs on the database's time: it expires `remaining` from now here.
    let (fetched_at, lifetime) = match now.checked_sub(lifetime.saturating_sub(remaining)) {
        Some(fetched_at) => (fetched_at, lifetime),
        None => (now, remaining),
    };
    Ok(Some(AccessToken {
        value: SecretString::from(value),
        token_type: row.get("token_type"),
        scope: row.get("scope"),
        expires_in: row.get::<_, Option<i64>>("expires_in_ms").map(|ms| Duration::from_millis(ms.max(0) as u64)),
        fetched_at,
        lifetime,
    }))
}

async fn write_row(
    client: &impl deadpool_postgres::GenericClient,
    keys: &KeyRing,
    key: &TokenKey,
    slot: &SecretSlot<'_>,
    token: &AccessToken,
) -> Result<(), StoreError> {
    let sealed = keys.seal(slot, token.value.expose_secret().as_bytes())?;
    // What is left of the token's life now, counted from now on the database's clock.
    let remaining_ms = token.expires_at().saturating_duration_since(Instant::now()).as_millis() as i64;
    let ms = |d: Duration| d.as_millis().min(i64::MAX as u128) as i64;
    client
        .execute(
            "INSERT INTO shared_tokens (profile_id, version, params_digest, token_digest, key_id, nonce, ciphertext,
                                        token_type, scope, expires_in_ms, lifetime_ms, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, now() + make_interval(secs => $12::bigint / 1000.0))
             ON CONFLICT (profile_id, version, params_digest) DO UPDATE SET
                token_digest = excluded.token_digest, key_id = excluded.key_id, nonce = excluded.nonce,
                ciphertext = excluded.ciphertext, token_type = excluded.token_type, scope = excluded.scope,
                expires_in_ms = excluded.expires_in_ms, lifetime_ms = excluded.lifetime_ms,
                expires_at = excluded.expires_at, fetched_at = now()",
            &[
                &key.profile_id,
                &key.version,
                &key.params.as_slice(),
                &token_digest(&token.value).as_slice(),
                &sealed.key_id,
                &sealed.nonce,
                &sealed.ciphertext,
                &token.token_type,
                &token.scope,
                &token.expires_in.map(ms),
                &ms(token.lifetime),
                &remaining_ms,
            ],
        )
        .await?;
    Ok(())
}
