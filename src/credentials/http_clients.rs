//! The HTTP clients requests go out on. Most requests share two clients (one
//! for target APIs, one for token endpoints); a request that presents a client
//! certificate (contract §8.3) needs a TLS configuration of its own, so each
//! certificate gets its own pair, built once, reused while the certificate
//! is, and kept in a bounded LRU. Every client carries the same egress guard
//! and timeouts as the shared ones.

use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lru::LruCache;
use secrecy::ExposeSecret as _;
use uuid::Uuid;

use crate::egress::EgressPolicy;
use crate::profile::auth_config::ClientCertificate;

/// Clients kept for client certificates at once; the least recently used goes first.
pub const CERTIFICATE_CLIENTS: usize = 64;

/// Why no client could be had for a client certificate.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("the client certificate ({subject}) expired at {not_after}; upload a renewed certificate to the profile")]
    Expired { subject: String, not_after: DateTime<Utc> },
    #[error("the client certificate cannot be used for TLS: {0}")]
    Unusable(String),
}

/// Which kind of endpoint a client talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Target,
    TokenEndpoint,
}

/// The clients for a certificate, and the profile it came from (to drop them when it changes).
struct Entry {
    profile: Option<Uuid>,
    target: reqwest::Client,
    token_endpoint: reqwest::Client,
}

/// Shared clients and per-certificate ones. Cheap to clone.
#[derive(Clone)]
pub struct HttpClients {
    inner: Arc<Inner>,
}

struct Inner {
    egress: EgressPolicy,
    connect_timeout: Duration,
    target: reqwest::Client,
    token_endpoint: reqwest::Client,
    by_certificate: Mutex<LruCache<[u8; 32], Entry>>,
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClients").field("certificates", &self.certificate_clients()).finish()
    }
}

impl HttpClients {
    pub fn new(egress: EgressPolicy, connect_timeout: Duration) -> reqwest::Result<Self> {
        let target = egress.target_client_builder(connect_timeout).build()?;
        let token_endpoint = egress.token_endpoint_client_builder(connect_timeout).build()?;
        let capacity = NonZeroUsize::new(CERTIFICATE_CLIENTS).expect("the capacity is not zero");
        Ok(Self {
            inner: Arc::new(Inner {
                egress,
                connect_timeout,
                target,
                token_endpoint,
                by_certificate: Mutex::new(LruCache::new(capacity)),
            }),
        })
    }

    /// The client for target APIs, presenting `certificate` when there is one.
    pub fn target(
        &self,
        certificate: Option<&ClientCertificate>,
        profile: Option<Uuid>,
    ) -> Result<reqwest::Client, CertificateError> {
        self.client(Purpose::Target, certificate, profile)
    }

    /// The client for OAuth 2.0 token endpoints (no redirects), presenting `certificate` when there is one.
    pub fn token_endpoint(
        &self,
        certificate: Option<&ClientCertificate>,
        profile: Option<Uuid>,
    ) -> Result<reqwest::Client, CertificateError> {
        self.client(Purpose::TokenEndpoint, certificate, profile)
    }

    fn client(
        &self,
        purpose: Purpose,
        certificate: Option<&ClientCertificate>,
        profile: Option<Uuid>,
    ) -> Result<reqwest::Client, CertificateError> {
        let Some(certificate) = certificate else {
            return Ok(match purpose {
                Purpose::Target => self.inner.target.clone(),
                Purpose::TokenEndpoint => self.inner.token_endpoint.clone(),
            });
        };
        // Checked at every use: a certificate valid when saved expires later.
        let not_after = certificate.certificate.not_after();
        if not_after <= Utc::now() {
            return Err(CertificateError::Expired { subject: certificate.certificate.view().subject, not_after });
        }
        let digest = certificate.digest();
        let mut cache = self.inner.by_certificate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = cache.get(&digest) {
            return Ok(entry.pick(purpose));
        }
        // Built under the lock: two jobs with a new certificate build it once.
        let entry = self.build(certificate, profile)?;
        let client = entry.pick(purpose);
        cache.put(digest, entry);
        Ok(client)
    }

    fn build(&self, certificate: &ClientCertificate, profile: Option<Uuid>) -> Result<Entry, CertificateError> {
        let inner = &self.inner;
        let identity = || {
            reqwest::Identity::from_pem(certificate.identity_pem().expose_secret().as_bytes())
                .map_err(|e| CertificateError::Unusable(crate::error_text::chain(&e)))
        };
        let roots = || match &certificate.ca_certificate {
            None => Ok(Vec::new()),
            Some(ca) => reqwest::Certificate::from_pem_bundle(ca.pem().as_bytes())
                .map_err(|e| CertificateError::Unusable(format!("ca_certificate: {}", crate::error_text::chain(&e)))),
        };
        let build = |builder: reqwest::ClientBuilder| {
            builder
                .identity(identity()?)
                .tls_certs_merge(roots()?)
                .build()
                .map_err(|e| CertificateError::Unusable(crate::error_text::chain(&e)))
        };
        Ok(Entry {
            profile,
            target: build(inner.egress.target_client_builder(inner.connect_timeout))?,
            token_endpoint: build(inner.egress.token_endpoint_client_builder(inner.connect_timeout))?,
        })
    }

    /// Drops the clients of a profile's certificates (it changed or was deleted):
    /// their pooled connections close, and the next use builds afresh.
    pub fn invalidate_profile(&self, profile: Uuid) {
        let mut cache = self.inner.by_certificate.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale: Vec<[u8; 32]> =
            cache.iter().filter(|(_, entry)| entry.profile == Some(profile)).map(|(digest, _)| *digest).collect();
        for digest in stale {
            cache.pop(&digest);
        }
    }

    /// Drops every certificate's clients (the profile events were interrupted).
    pub fn clear(&self) {
        self.inner.by_certificate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clear();
    }

    /// How many certificates have clients now.
    pub fn certificate_clients(&self) -> usize {
        self.inner.by_certificate.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }
}

impl Entry {
    fn pick(&self, purpose: Purpose) -> reqwest::Client {
        match purpose {
            Purpose::Target => self.target.clone(),
            Purpose::TokenEndpoint => self.token_endpoint.clone(),
        }
    }
}
