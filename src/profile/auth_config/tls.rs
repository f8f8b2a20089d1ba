//! Client certificates (contract §8.3): the certificate chain and private key
//! a profile presents in the TLS handshake with the target (type `mtls`, or
//! the `client_certificate` of any other type), and an extra CA trusted for
//! that target. Checked when saved: the PEMs read, the key is one rustls can
//! sign with, it belongs to the certificate, and the certificate has not
//! expired.

use chrono::Utc;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::certs::Certificate;
use super::keys::KeyView;
use super::reader::Reader;
use super::{Secrets, View};

/// A private key for the TLS handshake: any kind rustls signs with (RSA,
/// ECDSA P-256/P-384, Ed25519). Sealed at rest; reads back as its fingerprint.
#[derive(Clone)]
pub struct TlsKey {
    pem: SecretString,
    public_der: Vec<u8>,
}

impl std::fmt::Debug for TlsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsKey").field("fingerprint", &self.fingerprint()).finish()
    }
}

impl TlsKey {
    pub fn parse(pem: &str) -> Result<Self, String> {
        let der = PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            if pem.contains("-----BEGIN CERTIFICATE-----") && !pem.contains("PRIVATE KEY") {
                "is a certificate; the private key belongs here".to_owned()
            } else if pem.contains("ENCRYPTED PRIVATE KEY") {
                "is an encrypted private key; give it unencrypted (authrelay seals it at rest)".to_owned()
            } else {
                "is not a PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)".to_owned()
            }
        })?;
        let signer = rustls::crypto::aws_lc_rs::sign::any_supported_type(&der)
            .map_err(|_| "is not a private key TLS can use (RSA, ECDSA P-256/P-384 or Ed25519)".to_owned())?;
        let public = signer.public_key().ok_or("has no public key TLS can name")?;
        Ok(Self { pem: SecretString::from(pem.to_owned()), public_der: public.as_ref().to_vec() })
    }

    pub fn pem(&self) -> &SecretString {
        &self.pem
    }

    pub fn fingerprint(&self) -> String {
        Sha256::digest(&self.public_der).iter().map(|b| format!("{b:02x}")).collect()
    }

    fn view(&self) -> KeyView {
        KeyView { fingerprint_sha256: self.fingerprint() }
    }
}

/// A client certificate chain, its key, and an extra CA for the target.
#[derive(Debug, Clone)]
pub struct ClientCertificate {
    pub certificate: Certificate,
    pub key: TlsKey,
    pub ca_certificate: Option<Certificate>,
}

impl ClientCertificate {
    /// Checks a chain and key that were each read: the key must belong to the
    /// leaf, and the leaf must not have expired. Errors name the field.
    pub fn check(certificate: &Certificate, key: &TlsKey) -> Result<(), (&'static str, String)> {
        if certificate.public_key_der() != key.public_der.as_slice() {
            return Err(("private_key", "does not belong to the certificate (their public keys differ)".into()));
        }
        if certificate.not_after() <= Utc::now() {
            return Err(("certificate", format!("expired at {}", certificate.not_after().to_rfc3339())));
        }
        Ok(())
    }

    /// The chain and key as one PEM, for the TLS client.
    pub fn identity_pem(&self) -> SecretString {
        SecretString::from(format!("{}\n{}", self.certificate.pem().trim_end(), self.key.pem().expose_secret()))
    }

    /// Identifies this certificate, key and CA (for caching a TLS client per certificate).
    pub fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update(self.certificate.fingerprint().as_bytes());
        hash.update(self.key.fingerprint().as_bytes());
        if let Some(ca) = &self.ca_certificate {
            hash.update(Sha256::digest(ca.pem().as_bytes()));
        }
        hash.finalize().into()
    }

    /// The JSON fields of a certificate: `certificate`, `private_key`, `ca_certificate`.
    pub(super) fn json(&self, view: View) -> Value {
        let mut value = match view {
            View::Masked => json!({
                "certificate": self.certificate.view(),
                "private_key": self.key.view(),
            }),
            View::Stored => json!({"certificate": self.certificate.pem()}),
        };
        if let Some(ca) = &self.ca_certificate {
            value["ca_certificate"] = match view {
                View::Masked => serde_json::to_value(ca.view()).expect("a certificate view serializes"),
                View::Stored => json!(ca.pem()),
            };
        }
        value
    }

    /// Reads `certificate`, `private_key` and `ca_certificate` from `r`'s
    /// object; a patch keeps what it omits (the key too), `ca_certificate: null` removes it.
    pub(super) fn read(r: &mut Reader<'_>, kept: Option<&ClientCertificate>) -> Option<ClientCertificate> {
        r.allow_only(&["certificate", "private_key", "ca_certificate"]);
        let certificate = r.required_pem(
            "certificate",
            "the PEM certificate chain, leaf first",
            kept.map(|k| k.certificate.clone()),
            Certificate::parse,
        );
        let key = r.required_pem(
            "private_key",
            "the PEM private key of the certificate",
            kept.map(|k| k.key.clone()),
            TlsKey::parse,
        );
        let ca_certificate = r
            .pem("ca_certificate", "PEM certificates to trust", Certificate::parse)
            .map(|given| given.or_kept(kept.and_then(|k| k.ca_certificate.clone())));
        let (certificate, key, ca_certificate) = (certificate?, key?, ca_certificate?);
        if let Err((field, message)) = Self::check(&certificate, &key) {
            r.err(field, message);
            return None;
        }
        Some(Self { certificate, key, ca_certificate })
    }

    /// Rebuilds a stored certificate: its public fields and the sealed key named `key_field`.
    pub(super) fn assemble(
        stored: &serde_json::Map<String, Value>,
        secrets: &mut Secrets,
        key_field: &str,
    ) -> Result<Self, String> {
        let text = |name: &str| stored.get(name).and_then(Value::as_str);
        let certificate = Certificate::parse(text("certificate").ok_or("stored certificate is missing")?)
            .map_err(|e| format!("stored certificate {e}"))?;
        let key =
            TlsKey::parse(secrets.take(key_field)?.expose_secret()).map_err(|e| format!("stored private key {e}"))?;
        let ca_certificate = match text("ca_certificate") {
            None => None,
            Some(pem) => Some(Certificate::parse(pem).map_err(|e| format!("stored ca_certificate {e}"))?),
        };
        Ok(Self { certificate, key, ca_certificate })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate valid until `days` from now (in the past when negative), and its key.
    fn pair(days: i64) -> (String, String) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["client.example".into()]).unwrap();
        let not_after = Utc::now() + chrono::Duration::days(days);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(
            not_after.format("%Y").to_string().parse().unwrap(),
            not_after.format("%m").to_string().parse().unwrap(),
            not_after.format("%d").to_string().parse().unwrap(),
        );
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn a_key_of_the_certificate_that_has_not_expired_is_accepted() {
        let (cert, key) = pair(30);
        let (certificate, key) = (Certificate::parse(&cert).unwrap(), TlsKey::parse(&key).unwrap());
        assert!(ClientCertificate::check(&certificate, &key).is_ok());
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn another_key_or_an_expired_certificate_is_refused_naming_the_field() {
        let (cert, _) = pair(30);
        let (_, other) = pair(30);
        let certificate = Certificate::parse(&cert).unwrap();
        let (field, _) = ClientCertificate::check(&certificate, &TlsKey::parse(&other).unwrap()).unwrap_err();
        assert_eq!(field, "private_key");
        let (old_cert, old_key) = pair(-2);
        let (field, message) =
            ClientCertificate::check(&Certificate::parse(&old_cert).unwrap(), &TlsKey::parse(&old_key).unwrap())
                .unwrap_err();
        assert_eq!(field, "certificate");
        assert!(message.contains("expired"), "{message}");
    }
}
