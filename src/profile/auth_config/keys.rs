//! Private keys that sign JWTs (`private_key_jwt` client assertions and the
//! JWT-bearer grant): read from PEM, checked when a profile is saved, shown
//! only as the SHA-256 fingerprint of their public key, and used to sign.
//!
//! Accepted: RSA (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`, 2048 to
//! 8192 bits) for RS256, and EC P-256 (SEC1 `EC PRIVATE KEY` or PKCS#8) for
//! ES256. Parsing and the public-key fingerprint use aws-lc-rs (the crypto
//! under rustls here); signing uses `jsonwebtoken` on the same backend.

use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair};
use aws_lc_rs::signature::{KeyPair as _, RsaKeyPair};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject as _;
use secrecy::SecretString;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

/// The JWS algorithms a profile can sign with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SigningAlg {
    Rs256,
    Es256,
}

impl SigningAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::Rs256 => "RS256",
            SigningAlg::Es256 => "ES256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "RS256" => Some(SigningAlg::Rs256),
            "ES256" => Some(SigningAlg::Es256),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            SigningAlg::Rs256 => jsonwebtoken::Algorithm::RS256,
            SigningAlg::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// What kind of key a PEM held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa { bits: usize },
    EcP256,
}

impl KeyKind {
    /// The algorithm this key signs with unless a profile says otherwise.
    pub fn default_alg(self) -> SigningAlg {
        match self {
            KeyKind::Rsa { .. } => SigningAlg::Rs256,
            KeyKind::EcP256 => SigningAlg::Es256,
        }
    }

    fn describe(self) -> String {
        match self {
            KeyKind::Rsa { bits } => format!("an RSA key ({bits} bits)"),
            KeyKind::EcP256 => "an EC P-256 key".into(),
        }
    }
}

/// A private key as a profile holds it: the PEM (the secret, sealed at rest),
/// what kind of key it is, its public fingerprint, and a signer. `Debug`
/// shows only the kind and the fingerprint.
#[derive(Clone)]
pub struct PrivateKey {
    pem: SecretString,
    kind: KeyKind,
    /// The public key, DER (SubjectPublicKeyInfo).
    public_der: Vec<u8>,
    fingerprint: String,
    signer: Arc<jsonwebtoken::EncodingKey>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey").field("kind", &self.kind).field("fingerprint", &self.fingerprint).finish()
    }
}

/// How a private key reads back: never the PEM.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct KeyView {
    pub fingerprint_sha256: String,
}

impl PrivateKey {
    /// Reads and checks a PEM private key; the error says what is wrong in
    /// words fit for a field error (it never quotes the key).
    pub fn parse(pem: &str) -> Result<Self, String> {
        let der = match PrivateKeyDer::from_pem_slice(pem.as_bytes()) {
            Ok(der) => der,
            Err(_) => return Err(not_a_private_key(pem)),
        };
        let (kind, public_der, signer) = match &der {
            PrivateKeyDer::Pkcs1(rsa) => rsa_key(RsaKeyPair::from_der(rsa.secret_pkcs1_der()), pem)?,
            PrivateKeyDer::Sec1(ec) => ec_key(ec.secret_sec1_der())?,
            PrivateKeyDer::Pkcs8(pkcs8) => match RsaKeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()) {
                Ok(rsa) => rsa_key(Ok(rsa), pem)?,
                Err(_) => ec_key(pkcs8.secret_pkcs8_der())?,
            },
            _ => return Err("is not an RSA or EC P-256 private key".into()),
        };
        let fingerprint = hex(&Sha256::digest(&public_der));
        Ok(Self { pem: SecretString::from(pem.to_owned()), kind, public_der, fingerprint, signer: Arc::new(signer) })
    }

    pub fn pem(&self) -> &SecretString {
        &self.pem
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The public key as DER (SubjectPublicKeyInfo).
    pub fn public_key_der(&self) -> &[u8] {
        &self.public_der
    }

    /// SHA-256 of the DER public key (SubjectPublicKeyInfo), hex: what
    /// `openssl pkey -pubout -outform DER | sha256sum` prints.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Whether `certificate`'s leaf certifies this key's public half.
    pub fn is_certified_by(&self, certificate: &super::certs::Certificate) -> bool {
        certificate.public_key_der() == self.public_key_der()
    }

    pub fn view(&self) -> KeyView {
        KeyView { fingerprint_sha256: self.fingerprint.clone() }
    }

    /// Whether this key can sign with `alg`; the error names both.
    pub fn check_alg(&self, alg: SigningAlg) -> Result<(), String> {
        if self.kind.default_alg() == alg {
            return Ok(());
        }
        Err(format!(
            "{} needs {}, but the private key is {}",
            alg.as_str(),
            match alg {
                SigningAlg::Rs256 => "an RSA key",
                SigningAlg::Es256 => "an EC P-256 key",
            },
            self.kind.describe()
        ))
    }

    /// A compact JWS of `claims`, signed with `alg` (checked against the key
    /// when the profile was saved), with `kid` in the header when given.
    pub fn sign_jwt<T: Serialize>(
        &self,
        alg: SigningAlg,
        headers: JwtHeaders<'_>,
        claims: &T,
    ) -> Result<String, SignError> {
        let mut header = jsonwebtoken::Header::new(alg.jsonwebtoken());
        header.kid = headers.kid.map(str::to_owned);
        if let Some(certificate) = headers.certificate {
            header.x5t = Some(certificate.x5t_sha1());
            header.x5t_s256 = Some(certificate.x5t_s256());
        }
        jsonwebtoken::encode(&header, claims, &self.signer).map_err(SignError)
    }
}

/// What a signed JWT's header names besides its algorithm.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwtHeaders<'a> {
    /// `kid`.
    pub kid: Option<&'a str>,
    /// The signing key's certificate: `x5t` and `x5t#S256` (Microsoft Entra wants them).
    pub certificate: Option<&'a super::certs::Certificate>,
}

/// Signing failed (a key the crypto library turned down after all).
#[derive(Debug, thiserror::Error)]
#[error("could not sign the JWT")]
pub struct SignError(#[source] jsonwebtoken::errors::Error);

type Parsed = (KeyKind, Vec<u8>, jsonwebtoken::EncodingKey);

fn rsa_key(pair: Result<RsaKeyPair, aws_lc_rs::error::KeyRejected>, pem: &str) -> Result<Parsed, String> {
    let pair = pair.map_err(|e| format!("is not a usable RSA private key ({e}); 2048 to 8192 bits are accepted"))?;
    let public = pair.public_key().as_der().map_err(|_| "has an RSA public key that cannot be encoded")?;
    // jsonwebtoken reads both PKCS#1 and PKCS#8 RSA PEM itself.
    let signer =
        jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| format!("cannot be used to sign ({e})"))?;
    Ok((KeyKind::Rsa { bits: pair.public_modulus_len() * 8 }, public.as_ref().to_vec(), signer))
}

fn ec_key(der: &[u8]) -> Result<Parsed, String> {
    let pair = match EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
        Ok(pair) => pair,
        Err(_) if EcdsaKeyPair::from_private_key_der(&ECDSA_P384_SHA384_FIXED_SIGNING, der).is_ok() => {
            return Err("is an EC P-384 key; only P-256 (ES256) and RSA (RS256) keys are supported".into());
        }
        Err(_) => return Err("is not an RSA or EC P-256 private key".into()),
    };
    let public = pair.public_key().as_der().map_err(|_| "has an EC public key that cannot be encoded")?;
    // jsonwebtoken signs EC keys from PKCS#8 only; a SEC1 key is converted.
    let pkcs8 = pair.to_pkcs8v1().map_err(|_| "cannot be converted to PKCS#8")?;
    let signer = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    Ok((KeyKind::EcP256, public.as_ref().to_vec(), signer))
}

/// Why a text held no private key, as precisely as its PEM labels tell.
fn not_a_private_key(pem: &str) -> String {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        "is an encrypted private key; give it unencrypted (authrelay seals it at rest)".into()
    } else if pem.contains("PUBLIC KEY-----") {
        "is a public key; the private key belongs here (PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
            .into()
    } else if pem.contains("-----BEGIN CERTIFICATE-----") {
        "is a certificate; the private key belongs here (PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)"
            .into()
    } else {
        "is not a PEM private key (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)".into()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Test keys, generated once per test run (no key material in the repository).
#[cfg(test)]
pub(crate) mod test_keys {
    use std::sync::LazyLock;

    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::rsa::KeySize;
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RsaKeyPair};
    use base64::Engine as _;

    pub fn pem(label: &str, der: &[u8]) -> String {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
        format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
    }

    /// An RSA 2048 key as PKCS#8 PEM.
    pub static RSA_PKCS8: LazyLock<String> = LazyLock::new(|| {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = aws_lc_rs::encoding::AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(&pair).unwrap();
        pem("PRIVATE KEY", der.as_ref())
    });

    /// An EC P-256 key as PKCS#8 PEM.
    pub static EC_PKCS8: LazyLock<String> = LazyLock::new(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        pem("PRIVATE KEY", pkcs8.as_ref())
    });

    /// The same kind of EC P-256 key as SEC1 (`EC PRIVATE KEY`) PEM.
    pub static EC_SEC1: LazyLock<String> = LazyLock::new(|| {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
        let sec1 = pair.private_key().as_der().unwrap();
        pem("EC PRIVATE KEY", sec1.as_ref())
    });
}

#[cfg(test)]
mod tests {
    use super::test_keys::*;
    use super::*;

    #[test]
    fn a_key_is_certified_only_by_its_own_certificate() {
        use crate::profile::auth_config::certs::{Certificate, tests::self_signed};
        let (pem, key) = self_signed();
        let certificate = Certificate::parse(&pem).unwrap();
        assert!(PrivateKey::parse(&key).unwrap().is_certified_by(&certificate));
        let (_, other) = self_signed();
        assert!(!PrivateKey::parse(&other).unwrap().is_certified_by(&certificate));
    }

    #[test]
    fn rsa_and_ec_keys_in_every_accepted_form_are_read_with_their_kind() {
        assert!(matches!(PrivateKey::parse(&RSA_PKCS8).unwrap().kind(), KeyKind::Rsa { bits: 2048 }));
        assert_eq!(PrivateKey::parse(&EC_PKCS8).unwrap().kind(), KeyKind::EcP256);
        assert_eq!(PrivateKey::parse(&EC_SEC1).unwrap().kind(), KeyKind::EcP256);
    }

    #[test]
    fn a_pkcs1_rsa_key_is_read_too() {
        // PKCS#1 is the inner RSAPrivateKey of the PKCS#8 key: re-wrap it under the old label.
        let der = PrivateKeyDer::from_pem_slice(RSA_PKCS8.as_bytes()).unwrap();
        let PrivateKeyDer::Pkcs8(pkcs8) = der else { panic!() };
        // PrivateKeyInfo: SEQUENCE (4 bytes of header), version (3), the fixed 15-byte
        // rsaEncryption AlgorithmIdentifier, then an OCTET STRING (4 bytes of header)
        // holding the RSAPrivateKey.
        let bytes = pkcs8.secret_pkcs8_der();
        assert_eq!((bytes[22], bytes[26]), (0x04, 0x30), "the layout of a 2048-bit RSA PKCS#8 key");
        let pkcs1 = pem("RSA PRIVATE KEY", &bytes[26..]);
        let key = PrivateKey::parse(&pkcs1).unwrap();
        assert_eq!(key.fingerprint(), PrivateKey::parse(&RSA_PKCS8).unwrap().fingerprint());
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_public_key_and_debug_shows_no_key() {
        let key = PrivateKey::parse(&EC_PKCS8).unwrap();
        assert_eq!(key.fingerprint().len(), 64);
        assert!(key.fingerprint().chars().all(|c| c.is_ascii_hexdigit()));
        let debug = format!("{key:?}");
        assert!(!debug.contains("BEGIN") && debug.contains(key.fingerprint()), "{debug}");
    }

    #[test]
    fn public_keys_certificates_encrypted_keys_and_junk_are_refused_in_words() {
        let cases = [
            ("-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n", "public key"),
            ("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "certificate"),
            ("-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n", "encrypted"),
            ("not a key", "not a PEM private key"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not an RSA or EC P-256"),
        ];
        for (pem, expected) in cases {
            let error = PrivateKey::parse(pem).unwrap_err();
            assert!(error.contains(expected), "{pem}: {error}");
        }
    }

    #[test]
    fn the_algorithm_must_fit_the_key() {
        let ec = PrivateKey::parse(&EC_PKCS8).unwrap();
        assert!(ec.check_alg(SigningAlg::Es256).is_ok());
        let error = ec.check_alg(SigningAlg::Rs256).unwrap_err();
        assert!(error.contains("RS256") && error.contains("EC P-256"), "{error}");
    }

    #[test]
    fn a_signed_jwt_verifies_with_the_public_key_and_carries_the_kid() {
        for (pem, alg) in [(&*RSA_PKCS8, SigningAlg::Rs256), (&*EC_SEC1, SigningAlg::Es256)] {
            let key = PrivateKey::parse(pem).unwrap();
            let jwt = key
                .sign_jwt(
                    alg,
                    JwtHeaders { kid: Some("k-1"), certificate: None },
                    &serde_json::json!({"sub": "me", "exp": 4_000_000_000u64}),
                )
                .unwrap();
            let header = jsonwebtoken::decode_header(&jwt).unwrap();
            assert_eq!((header.alg, header.kid.as_deref()), (alg.jsonwebtoken(), Some("k-1")));
            let public = public_pem(pem);
            let decoding = match alg {
                SigningAlg::Rs256 => jsonwebtoken::DecodingKey::from_rsa_pem(public.as_bytes()).unwrap(),
                SigningAlg::Es256 => jsonwebtoken::DecodingKey::from_ec_pem(public.as_bytes()).unwrap(),
            };
            let mut validation = jsonwebtoken::Validation::new(alg.jsonwebtoken());
            validation.validate_aud = false;
            validation.required_spec_claims.clear();
            jsonwebtoken::decode::<serde_json::Value>(&jwt, &decoding, &validation).unwrap();
        }
    }

    /// The public key of a private key PEM, as a `PUBLIC KEY` PEM.
    fn public_pem(private: &str) -> String {
        let der = PrivateKeyDer::from_pem_slice(private.as_bytes()).unwrap();
        let spki = match &der {
            PrivateKeyDer::Pkcs8(p) => match RsaKeyPair::from_pkcs8(p.secret_pkcs8_der()) {
                Ok(rsa) => rsa.public_key().as_der().unwrap().as_ref().to_vec(),
                Err(_) => EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, p.secret_pkcs8_der())
                    .unwrap()
                    .public_key()
                    .as_der()
                    .unwrap()
                    .as_ref()
                    .to_vec(),
            },
            PrivateKeyDer::Sec1(s) => {
                EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, s.secret_sec1_der())
                    .unwrap()
                    .public_key()
                    .as_der()
                    .unwrap()
                    .as_ref()
                    .to_vec()
            }
            _ => unreachable!(),
        };
        pem("PUBLIC KEY", &spki)
    }
}
