//! X.509 certificates a profile holds (not secret): read from PEM, checked
//! when a profile is saved, and shown as subject, issuer, expiry and
//! fingerprint. Used for the `x5t` headers of signed assertions (Microsoft
//! Entra names the certificate of the signing key that way).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use x509_cert::Certificate as X509;
use x509_cert::der::{Decode as _, Encode as _};

/// A certificate chain as given (PEM), its leaf read.
#[derive(Debug, Clone)]
pub struct Certificate {
    pem: String,
    leaf_der: Vec<u8>,
    public_key_der: Vec<u8>,
    subject: String,
    issuer: String,
    not_after: DateTime<Utc>,
}

/// How a certificate reads back.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CertificateView {
    pub subject: String,
    pub issuer: String,
    pub not_after: DateTime<Utc>,
    pub fingerprint_sha256: String,
}

impl Certificate {
    /// Reads a PEM certificate chain (the leaf first); the error is fit for a field error.
    pub fn parse(pem: &str) -> Result<Self, String> {
        if pem.contains("PRIVATE KEY-----") {
            return Err("holds a private key; only the certificate belongs here".into());
        }
        let chain = X509::load_pem_chain(pem.as_bytes())
            .map_err(|_| "is not a PEM certificate (`-----BEGIN CERTIFICATE-----`)".to_owned())?;
        let leaf = chain.first().ok_or("holds no certificate")?;
        let leaf_der = leaf.to_der().map_err(|_| "holds a certificate that cannot be encoded")?;
        // Round trip: a certificate whose encoding is not canonical DER is refused here, not later.
        X509::from_der(&leaf_der).map_err(|_| "holds a malformed certificate")?;
        let tbs = &leaf.tbs_certificate;
        let public_key_der =
            tbs.subject_public_key_info.to_der().map_err(|_| "holds a public key that cannot be encoded")?;
        let secs = tbs.validity.not_after.to_unix_duration().as_secs();
        let not_after = DateTime::<Utc>::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Ok(Self {
            pem: pem.to_owned(),
            leaf_der,
            public_key_der,
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            not_after,
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn not_after(&self) -> DateTime<Utc> {
        self.not_after
    }

    /// SHA-256 of the leaf's DER, hex.
    pub fn fingerprint(&self) -> String {
        Sha256::digest(&self.leaf_der).iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn view(&self) -> CertificateView {
        CertificateView {
            subject: self.subject.clone(),
            issuer: self.issuer.clone(),
            not_after: self.not_after,
            fingerprint_sha256: self.fingerprint(),
        }
    }

    /// The leaf's `SubjectPublicKeyInfo`, DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_key_der
    }

    /// `x5t#S256`: base64url SHA-256 of the leaf's DER (RFC 7515 §4.1.8).
    pub fn x5t_s256(&self) -> String {
        URL_SAFE_NO_PAD.encode(Sha256::digest(&self.leaf_der))
    }

    /// `x5t`: base64url SHA-1 of the leaf's DER (RFC 7515 §4.1.7), which some
    /// identity providers still ask for.
    pub fn x5t_sha1(&self) -> String {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, &self.leaf_der);
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate for a fresh key, and the key.
    pub(crate) fn self_signed() -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let cert = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap().self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_certificate_reads_back_with_subject_issuer_expiry_and_fingerprint() {
        let (pem, key) = self_signed();
        let cert = Certificate::parse(&pem).unwrap();
        let view = cert.view();
        assert!(view.subject.contains("rcgen") || !view.subject.is_empty(), "{view:?}");
        assert_eq!(view.subject, view.issuer, "self-signed");
        assert!(view.not_after > Utc::now());
        assert_eq!(view.fingerprint_sha256.len(), 64);
        assert!(!key.is_empty());
        assert_eq!(cert.x5t_s256().len(), 43);
        assert_eq!(cert.x5t_sha1().len(), 27);
    }

    #[test]
    fn keys_and_junk_are_refused_in_words() {
        let (_, key) = self_signed();
        assert!(Certificate::parse(&key).unwrap_err().contains("private key"));
        assert!(Certificate::parse("nothing").unwrap_err().contains("PEM certificate"));
    }
}
