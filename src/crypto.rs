//! Encryption at rest: a ring of AES-256-GCM master keys.
//!
//! Every secret field is sealed on its own with a fresh random 96-bit nonce.
//! The associated data binds the ciphertext to its workspace, profile and
//! field, so a ciphertext copied into another row or field fails to open
//! instead of silently decrypting as someone else's secret. Each sealed value
//! records the id of the key that sealed it; the first key of the ring seals,
//! every key of the ring opens, and `keys rotate` re-seals values still under
//! older keys so those keys can then be retired.

use std::fmt;

use aes_gcm::aead::{Aead, Generate, Payload};
use aes_gcm::{Aes256Gcm, Key, KeyInit, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use uuid::Uuid;
use zeroize::Zeroizing;

pub const NONCE_LEN: usize = 12;
const KEY_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the key ring is empty: set AUTHRELAY_MASTER_KEYS to `id:base64(32 bytes)`")]
    EmptyRing,
    #[error("master key entry #{position} is not `id:base64(32 bytes)`: {reason}")]
    MalformedKey { position: usize, reason: String },
    #[error("master key id `{0}` appears twice in the key ring")]
    DuplicateKeyId(String),
    #[error("a stored secret was sealed with master key `{0}`, which is not in AUTHRELAY_MASTER_KEYS")]
    UnknownKey(String),
    #[error("a stored secret failed authentication (tampered, moved, or sealed under another key)")]
    Tampered,
    #[error("a stored secret has a malformed nonce")]
    BadNonce,
    #[error("encryption failed")]
    Seal,
}

/// Where a secret lives; it becomes the AEAD associated data.
#[derive(Debug, Clone, Copy)]
pub struct SecretSlot<'a> {
    pub workspace_id: &'a str,
    pub profile_id: Uuid,
    pub field: &'a str,
}

impl SecretSlot<'_> {
    fn associated_data(&self) -> Vec<u8> {
        // Length-prefixed so that no two different slots share an encoding.
        format!(
            "authrelay/v1|{}:{}|{}|{}:{}",
            self.workspace_id.len(),
            self.workspace_id,
            self.profile_id,
            self.field.len(),
            self.field
        )
        .into_bytes()
    }
}

/// A sealed secret as stored: key id, nonce and ciphertext-with-tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed").field("key_id", &self.key_id).field("len", &self.ciphertext.len()).finish()
    }
}

struct MasterKey {
    id: String,
    cipher: Aes256Gcm,
}

/// The master keys, in order: the first seals, all open.
pub struct KeyRing {
    keys: Vec<MasterKey>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing").field("ids", &self.key_ids()).finish()
    }
}

impl KeyRing {
    /// Parses `id:base64,id:base64,…` (the format of `AUTHRELAY_MASTER_KEYS`).
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut keys: Vec<MasterKey> = Vec::new();
        for (index, entry) in spec.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let position = index + 1;
            let malformed = |reason: &str| CryptoError::MalformedKey { position, reason: reason.to_owned() };
            let (id, encoded) = entry.split_once(':').ok_or_else(|| malformed("missing `:` between id and key"))?;
            validate_key_id(id).map_err(malformed)?;
            let bytes =
                Zeroizing::new(BASE64.decode(encoded.trim()).map_err(|_| malformed("the key is not valid base64"))?);
            if bytes.len() != KEY_LEN {
                return Err(malformed(&format!("the key decodes to {} bytes, expected {KEY_LEN}", bytes.len())));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(CryptoError::DuplicateKeyId(id.to_owned()));
            }
            let key = Key::<Aes256Gcm>::try_from(&bytes[..]).map_err(|_| malformed("wrong key length"))?;
            keys.push(MasterKey { id: id.to_owned(), cipher: Aes256Gcm::new(&key) });
        }
        if keys.is_empty() {
            return Err(CryptoError::EmptyRing);
        }
        Ok(Self { keys })
    }

    /// A new random key in the ring's text format, `id:base64`.
    pub fn generate_key_spec(id: &str) -> Result<String, CryptoError> {
        validate_key_id(id).map_err(|reason| CryptoError::MalformedKey { position: 1, reason: reason.to_owned() })?;
        let key = Key::<Aes256Gcm>::generate();
        Ok(format!("{id}:{}", BASE64.encode(key.as_slice())))
    }

    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    pub fn contains(&self, key_id: &str) -> bool {
        self.keys.iter().any(|k| k.id == key_id)
    }

    /// Seals `plaintext` for `slot` under the current key with a fresh nonce.
    pub fn seal(&self, slot: &SecretSlot<'_>, plaintext: &[u8]) -> Result<Sealed, CryptoError> {
        let key = &self.keys[0];
        let nonce = Nonce::generate();
        let aad = slot.associated_data();
        let ciphertext =
            key.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &aad }).map_err(|_| CryptoError::Seal)?;
        Ok(Sealed { key_id: key.id.clone(), nonce: nonce.to_vec(), ciphertext })
    }

    /// Opens a sealed value; fails closed on any mismatch.
    pub fn open(&self, slot: &SecretSlot<'_>, sealed: &Sealed) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = self
            .keys
            .iter()
            .find(|k| k.id == sealed.key_id)
            .ok_or_else(|| CryptoError::UnknownKey(sealed.key_id.clone()))?;
        let nonce = Nonce::try_from(&sealed.nonce[..]).map_err(|_| CryptoError::BadNonce)?;
        let aad = slot.associated_data();
        key.cipher
            .decrypt(&nonce, Payload { msg: &sealed.ciphertext, aad: &aad })
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Tampered)
    }
}

fn validate_key_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() || id.len() > 64 {
        return Err("the key id must be 1-64 characters");
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return Err("the key id may only hold letters, digits, `-`, `_` and `.`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec_ids: &[&str]) -> (KeyRing, String) {
        let spec = spec_ids.iter().map(|id| KeyRing::generate_key_spec(id).unwrap()).collect::<Vec<_>>().join(",");
        (KeyRing::parse(&spec).unwrap(), spec)
    }

    fn slot<'a>(ws: &'a str, id: Uuid, field: &'a str) -> SecretSlot<'a> {
        SecretSlot { workspace_id: ws, profile_id: id, field }
    }

    #[test]
    fn sealed_value_opens_with_the_same_slot() {
        let (ring, _) = ring(&["k1"]);
        let id = Uuid::new_v4();
        let sealed = ring.seal(&slot("acme", id, "token"), b"s3cret").unwrap();
        assert_eq!(sealed.key_id, "k1");
        assert_eq!(sealed.nonce.len(), NONCE_LEN);
        assert_ne!(&sealed.ciphertext[..6], b"s3cret");
        assert_eq!(&ring.open(&slot("acme", id, "token"), &sealed).unwrap()[..], b"s3cret");
    }

    #[test]
    fn every_seal_uses_a_fresh_nonce() {
        let (ring, _) = ring(&["k1"]);
        let id = Uuid::new_v4();
        let a = ring.seal(&slot("acme", id, "token"), b"same").unwrap();
        let b = ring.seal(&slot("acme", id, "token"), b"same").unwrap();
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.ciphertext, b.ciphertext);
    }

    #[test]
    fn ciphertext_moved_to_another_field_profile_or_workspace_fails_to_open() {
        let (ring, _) = ring(&["k1"]);
        let id = Uuid::new_v4();
        let sealed = ring.seal(&slot("acme", id, "token"), b"s3cret").unwrap();
        for other in [slot("acme", id, "password"), slot("acme", Uuid::new_v4(), "token"), slot("other", id, "token")] {
            assert!(matches!(ring.open(&other, &sealed), Err(CryptoError::Tampered)));
        }
    }

    #[test]
    fn tampered_ciphertext_fails_to_open() {
        let (ring, _) = ring(&["k1"]);
        let id = Uuid::new_v4();
        let mut sealed = ring.seal(&slot("acme", id, "token"), b"s3cret").unwrap();
        sealed.ciphertext[0] ^= 1;
        assert!(matches!(ring.open(&slot("acme", id, "token"), &sealed), Err(CryptoError::Tampered)));
    }

    #[test]
    fn older_keys_open_and_the_first_key_seals() {
        let (old_ring, old_spec) = ring(&["old"]);
        let id = Uuid::new_v4();
        let sealed = old_ring.seal(&slot("acme", id, "token"), b"s3cret").unwrap();
        let new_spec = format!("{},{}", KeyRing::generate_key_spec("new").unwrap(), old_spec);
        let ring = KeyRing::parse(&new_spec).unwrap();
        assert_eq!(&ring.open(&slot("acme", id, "token"), &sealed).unwrap()[..], b"s3cret");
        assert_eq!(ring.seal(&slot("acme", id, "token"), b"x").unwrap().key_id, "new");
    }

    #[test]
    fn a_missing_key_is_named_in_the_error() {
        let (old_ring, _) = ring(&["old"]);
        let (ring, _) = ring(&["new"]);
        let id = Uuid::new_v4();
        let sealed = old_ring.seal(&slot("acme", id, "token"), b"s3cret").unwrap();
        let err = ring.open(&slot("acme", id, "token"), &sealed).unwrap_err();
        assert!(err.to_string().contains("`old`"), "{err}");
    }

    #[test]
    fn malformed_rings_are_rejected_with_a_reason() {
        for (spec, needle) in [
            ("", "empty"),
            ("nokey", "missing `:`"),
            ("k1:not-base64!", "base64"),
            ("k1:AAAA", "expected 32"),
            ("bad id:AAAA", "key id"),
        ] {
            let err = KeyRing::parse(spec).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
        let key = KeyRing::generate_key_spec("k1").unwrap();
        let err = KeyRing::parse(&format!("{key},{key}")).unwrap_err();
        assert!(matches!(err, CryptoError::DuplicateKeyId(_)));
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let (ring, spec) = ring(&["k1"]);
        let shown = format!("{ring:?}");
        assert!(shown.contains("k1"));
        assert!(!shown.contains(spec.split(':').nth(1).unwrap()));
    }
}
