//! Certificates made at test time and a TLS server that demands client
//! certificates (mutual TLS), as a customer's API behind mTLS would.
//!
//! [`TestCa`] is a certificate authority generated with `rcgen`; it issues the
//! server's certificate (for 127.0.0.1) and client certificates. [`MtlsServer`]
//! is a rustls server that verifies client certificates against that CA and
//! records, per request, the subject it was presented and the Authorization
//! header; `/token` is an OAuth 2.0 token endpoint that authenticates the
//! client by its certificate alone (RFC 8705 `tls_client_auth`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use serde_json::json;
use tokio::net::TcpListener;
use x509_cert::der::Decode as _;

/// A certificate and its private key, both PEM.
#[derive(Debug, Clone)]
pub struct Issued {
    pub certificate: String,
    pub private_key: String,
}

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub certificate: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a CA key");
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let certificate = params.self_signed(&key).expect("the CA certificate").pem();
        Self { issuer: Issuer::new(params, key), certificate }
    }

    /// A server certificate for 127.0.0.1 and `localhost`.
    pub fn server(&self) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).expect("names");
        params.distinguished_name = dn("authrelay test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params, &rcgen::PKCS_ECDSA_P256_SHA256)
    }

    /// A client certificate whose subject is `CN=<common_name>`, valid for a year.
    pub fn client(&self, common_name: &str) -> Issued {
        self.client_until(common_name, time::OffsetDateTime::now_utc() + time::Duration::days(365))
    }

    /// A client certificate that expires at `not_after`.
    pub fn client_until(&self, common_name: &str, not_after: time::OffsetDateTime) -> Issued {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(common_name);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        params.not_after = not_after;
        // RSA would be slower to make; P-384 shows another key kind than the CA's.
        self.issue(params, &rcgen::PKCS_ECDSA_P384_SHA384)
    }

    fn issue(&self, params: CertificateParams, alg: &'static rcgen::SignatureAlgorithm) -> Issued {
        let key = KeyPair::generate_for(alg).expect("a key");
        let certificate = params.signed_by(&key, &self.issuer).expect("a certificate").pem();
        Issued { certificate, private_key: key.serialize_pem() }
    }
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// What the server saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The subject of the client certificate (`CN=…`).
    pub subject: String,
    pub path: String,
    pub authorization: Option<String>,
    pub body: String,
}

/// A TLS server that accepts only clients with a certificate from its CA.
pub struct MtlsServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    refused: Arc<Mutex<Vec<String>>>,
}

impl MtlsServer {
    /// Serves with a certificate from `ca`, demanding client certificates issued by `ca`.
    pub async fn start(ca: &TestCa) -> Self {
        let server = ca.server();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(server.certificate.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server certificate");
        let key = PrivateKeyDer::from_pem_slice(server.private_key.as_bytes()).expect("server key");
        let mut roots = RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(ca.certificate.as_bytes()) {
            roots.add(ca.expect("CA certificate")).expect("CA certificate added");
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().expect("verifier");
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .expect("server config");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let refused = Arc::new(Mutex::new(Vec::new()));
        let (seen_by_server, refused_by_server) = (seen.clone(), refused.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, seen, refused) = (acceptor.clone(), seen_by_server.clone(), refused_by_server.clone());
                tokio::spawn(async move {
                    let tls = match acceptor.accept(tcp).await {
                        Ok(tls) => tls,
                        Err(e) => {
                            refused.lock().unwrap().push(e.to_string());
                            return;
                        }
                    };
                    let subject = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .and_then(|leaf| x509_cert::Certificate::from_der(leaf.as_ref()).ok())
                        .map(|leaf| leaf.tbs_certificate.subject.to_string())
                        .unwrap_or_default();
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (seen, subject) = (seen.clone(), subject.clone());
                        async move { Ok::<_, hyper::Error>(answer(request, subject, &seen).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, seen, refused }
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// Every request served so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Why handshakes failed (a client without a certificate, say).
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().unwrap().clone()
    }
}

/// `/token` issues a token to a client that presented a certificate and named
/// itself (`tls_client_auth`); any other path answers 200 with the subject.
async fn answer(request: Request<Incoming>, subject: String, seen: &Mutex<Vec<Seen>>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let authorization =
        request.headers().get("authorization").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let body = String::from_utf8_lossy(&body).into_owned();
    seen.lock().unwrap().push(Seen { subject: subject.clone(), path: path.clone(), authorization, body: body.clone() });
    let reply = if path == "/token" {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
        let has = |k: &str, v: &str| form.iter().any(|(fk, fv)| fk == k && fv == v);
        if has("grant_type", "client_credentials") && form.iter().any(|(k, _)| k == "client_id") {
            json!({"access_token": format!("mtls-token-for-{subject}"), "token_type": "Bearer", "expires_in": 3600})
        } else {
            return json_response(400, json!({"error": "invalid_request"}));
        }
    } else {
        json!({"subject": subject})
    };
    json_response(200, reply)
}

fn json_response(status: u16, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a response")
}
