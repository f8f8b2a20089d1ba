//! Client certificates (contract §8.3) against a rustls server that demands
//! them, with a CA, server and client certificates generated at test time:
//! type `mtls`, a `client_certificate` on top of a bearer token, RFC 8705
//! `tls_client_auth` at a token endpoint, no certificate at all, and a
//! certificate that expires after it was saved. Plus the profile reads
//! (subject, issuer, expiry, fingerprints) and bad input named by field.

use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::app::{spawn_api, spawn_worker};
use authrelay_testkit::tls::{MtlsServer, TestCa};
use authrelay_testkit::{JobExt as _, TestBroker, TestEnv, job};
use serde_json::{Value, json};

use crate::{WAIT, authrelay};

fn certificate_config(issued: &authrelay_testkit::tls::Issued, ca: Option<&TestCa>) -> Value {
    let mut config = json!({"certificate": issued.certificate, "private_key": issued.private_key});
    if let Some(ca) = ca {
        config["ca_certificate"] = json!(ca.certificate);
    }
    config
}

#[tokio::test]
async fn an_mtls_profile_presents_its_certificate_and_the_server_sees_its_subject() {
    let h = spawn_worker().await;
    let ca = TestCa::new("Customer CA");
    let server = MtlsServer::start(&ca).await;
    let client = ca.client("voice-platform-client");
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "mTLS", "type": "mtls", "config": certificate_config(&client, Some(&ca))}),
        )
        .await;

    for i in 0..3 {
        h.broker
            .publish_job(&job(&format!("mtls-{i}"), Phase::DuringCall).to(&server.url("/crm")).profile(&profile))
            .await;
    }
    for result in h.results.take(3, WAIT).await {
        assert_eq!(result["outcome"], "succeeded", "{result}");
        assert_eq!(result["response"]["body"]["subject"], "CN=voice-platform-client", "{result}");
    }
    let seen = server.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(|s| s.subject == "CN=voice-platform-client" && s.authorization.is_none()));
    assert_eq!(h.worker().executor.clients().certificate_clients(), 1, "one client for the certificate, reused");
    // "Test this profile" presents the certificate too.
    let (status, report) = h
        .post(&format!("/v1/workspaces/acme/auth-profiles/{profile}/test"), json!({"url": server.url("/probe")}))
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!((report["ok"].as_bool(), report["status"].as_u64()), (Some(true), Some(200)), "{report}");
    assert_eq!(server.seen().last().unwrap().subject, "CN=voice-platform-client");

    // A profile change drops the certificate's client (its pooled connections close).
    let (status, _) =
        h.patch(&format!("/v1/workspaces/acme/auth-profiles/{profile}"), json!({"name": "mTLS renamed"})).await;
    assert_eq!(status, 200);
    authrelay_testkit::eventually(WAIT, "the certificate's client is dropped", async || {
        (h.worker().executor.clients().certificate_clients() == 0).then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test]
async fn a_bearer_profile_with_a_client_certificate_presents_both() {
    let h = spawn_worker().await;
    let ca = TestCa::new("Partner CA");
    let server = MtlsServer::start(&ca).await;
    let client = ca.client("platform-with-token");
    let config =
        json!({"token": "bearer-and-cert-0123456789", "client_certificate": certificate_config(&client, Some(&ca))});
    let profile = h.create_profile("acme", json!({"name": "Both", "type": "bearer", "config": config})).await;

    h.broker.publish_job(&job("both-1", Phase::PreCall).to(&server.url("/both")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let seen = server.seen();
    assert_eq!(seen[0].subject, "CN=platform-with-token");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer bearer-and-cert-0123456789"));
    h.stop().await;
}

#[tokio::test]
async fn tls_client_auth_presents_the_certificate_to_the_token_endpoint_and_to_the_target() {
    let h = spawn_worker().await;
    let ca = TestCa::new("IdP CA");
    let server = MtlsServer::start(&ca).await;
    let client = ca.client("oauth-client-7");
    let config = json!({"client_id": "client-7", "token_endpoint": server.url("/token"), "client_auth": "tls_client_auth",
                        "client_certificate": certificate_config(&client, Some(&ca))});
    let profile = h
        .create_profile("acme", json!({"name": "RFC 8705", "type": "oauth2_client_credentials", "config": config}))
        .await;

    h.broker.publish_job(&job("tca-1", Phase::DuringCall).to(&server.url("/api")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    let seen = server.seen();
    let token_request = seen.iter().find(|s| s.path == "/token").expect("the token endpoint was called");
    assert_eq!(token_request.subject, "CN=oauth-client-7");
    assert!(token_request.body.contains("client_id=client-7"), "{}", token_request.body);
    assert!(!token_request.body.contains("client_secret"), "the certificate is the credential");
    let api = seen.iter().find(|s| s.path == "/api").unwrap();
    assert_eq!(api.authorization.as_deref(), Some("Bearer mtls-token-for-CN=oauth-client-7"));
    assert_eq!(api.subject, "CN=oauth-client-7");

    // Without a certificate, tls_client_auth is refused when saved.
    let (status, err) = h
        .post(
            "/v1/workspaces/acme/auth-profiles",
            json!({"name": "no cert", "type": "oauth2_client_credentials",
                   "config": {"client_id": "c", "token_endpoint": server.url("/token"), "client_auth": "tls_client_auth"}}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert_eq!(err["details"][0]["field"], "config.client_certificate", "{err}");
    h.stop().await;
}

/// The server's CA is trusted through the platform store here (SSL_CERT_FILE),
/// so what fails without a certificate is the missing certificate, not trust.
#[tokio::test]
async fn without_a_client_certificate_the_handshake_fails_and_the_job_fails_connect() {
    let ca = TestCa::new("Platform-trusted CA");
    let server = MtlsServer::start(&ca).await;
    let env = TestEnv::new();
    let dir = authrelay_testkit::TempDir::new();
    let roots = dir.0.join("ca.pem");
    std::fs::write(&roots, &ca.certificate).unwrap();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let worker = authrelay(&env).env("SSL_CERT_FILE", roots.display().to_string()).serve(&["run"]).await;
    let bearer = worker
        .create_profile(
            "acme",
            json!({"name": "No cert", "type": "bearer", "config": {"token": "plain-token-0123456789"}}),
        )
        .await;
    let client = ca.client("trusted-by-the-platform");
    let mtls = worker
        .create_profile("acme", json!({"name": "Cert", "type": "mtls", "config": certificate_config(&client, None)}))
        .await;

    broker.publish_job(&job("no-cert", Phase::DuringCall).to(&server.url("/x")).profile(&bearer).max_attempts(1)).await;
    let result = tap.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "connect", "{result}");
    assert!(server.seen().is_empty(), "no request got through");
    let refused = server.refused().join("; ");
    assert!(refused.to_lowercase().contains("certificate"), "the server refused for want of a certificate: {refused}");

    // The control: the same trust, with a certificate, gets through.
    broker.publish_job(&job("with-cert", Phase::DuringCall).to(&server.url("/x")).profile(&mtls)).await;
    let result = tap.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(server.seen()[0].subject, "CN=trusted-by-the-platform");
    worker.stop(Duration::from_secs(10));
}

#[tokio::test]
async fn a_certificate_that_expires_after_it_was_saved_fails_the_job_connect_and_reads_back_its_expiry() {
    let h = spawn_worker().await;
    let ca = TestCa::new("Short-lived CA");
    let server = MtlsServer::start(&ca).await;
    let not_after = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let client = ca.client_until("short-lived", not_after);
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Short", "type": "mtls", "config": certificate_config(&client, Some(&ca))}),
        )
        .await;
    let (_, read) = h.get(&format!("/v1/workspaces/acme/auth-profiles/{profile}")).await;
    let shown: chrono::DateTime<chrono::Utc> =
        read["config"]["certificate"]["not_after"].as_str().unwrap().parse().unwrap();
    assert_eq!(shown.timestamp(), not_after.unix_timestamp(), "{read}");
    h.metric_reaches("authrelay_certificates_expiring", 1.0, WAIT).await;

    tokio::time::sleep(Duration::from_secs(4)).await;
    h.broker.publish_job(&job("expired-1", Phase::DuringCall).to(&server.url("/x")).profile(&profile)).await;
    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "failed", "{result}");
    assert_eq!(result["error"]["kind"], "connect", "{result}");
    assert_eq!(result["error"]["retryable"], false, "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("expired") && message.contains("CN=short-lived"), "{message}");
    assert!(server.seen().is_empty() && server.refused().is_empty(), "nothing was sent");
    h.stop().await;
}

#[tokio::test]
async fn certificates_read_back_as_subject_issuer_expiry_and_fingerprints_never_the_key() {
    let app = spawn_api().await;
    let ca = TestCa::new("Reading CA");
    let client = ca.client("reader");
    let id = app
        .create_profile(
            "acme",
            json!({"name": "Read", "type": "mtls", "config": certificate_config(&client, Some(&ca))}),
        )
        .await;
    let (status, read) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(status, 200);
    let config = &read["config"];
    assert_eq!(config["certificate"]["subject"], "CN=reader");
    assert_eq!(config["certificate"]["issuer"], "CN=Reading CA");
    assert!(config["certificate"]["not_after"].is_string());
    assert_eq!(config["certificate"]["fingerprint_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(config["private_key"]["fingerprint_sha256"].as_str().unwrap().len(), 64);
    assert_eq!(config["ca_certificate"]["subject"], "CN=Reading CA");
    let text = read.to_string();
    assert!(!text.contains("PRIVATE KEY") && !text.contains("BEGIN"), "{text}");

    // A nested certificate reads the same way, and a patch that omits the key keeps it.
    let nested = app
        .create_profile(
            "acme",
            json!({"name": "Nested", "type": "basic", "config": {"username": "u", "password": "p-0123456789",
                   "client_certificate": certificate_config(&client, None)}}),
        )
        .await;
    let renewed = ca.client("reader");
    let (status, patched) = app
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{nested}"),
            json!({"config": {"client_certificate": {"certificate": renewed.certificate}}}),
        )
        .await;
    assert_eq!(status, 422, "a new certificate with the old key does not match: {patched}");
    assert_eq!(patched["details"][0]["field"], "config.client_certificate.private_key", "{patched}");
    let (status, patched) = app
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{nested}"),
            json!({"config": {"client_certificate": certificate_config(&renewed, None)}}),
        )
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["config"]["password"], "••••6789", "kept and masked");
    assert_eq!(patched["config"]["client_certificate"]["certificate"]["subject"], "CN=reader");
    let (status, removed) = app
        .patch(&format!("/v1/workspaces/acme/auth-profiles/{nested}"), json!({"config": {"client_certificate": null}}))
        .await;
    assert_eq!(status, 200, "{removed}");
    assert!(removed["config"].get("client_certificate").is_none(), "{removed}");
    app.stop().await;
}

#[tokio::test]
async fn bad_certificates_and_keys_are_422_naming_the_field() {
    let app = spawn_api().await;
    let ca = TestCa::new("Bad input CA");
    let good = ca.client("good");
    let other = ca.client("other");
    let expired = ca.client_until("old", time::OffsetDateTime::now_utc() - time::Duration::days(1));
    let cases: Vec<(&str, Value, &str)> = vec![
        ("mtls", json!({"private_key": good.private_key}), "config.certificate"),
        ("mtls", json!({"certificate": good.certificate}), "config.private_key"),
        ("mtls", json!({"certificate": "not a pem", "private_key": good.private_key}), "config.certificate"),
        ("mtls", json!({"certificate": good.private_key, "private_key": good.private_key}), "config.certificate"),
        (
            "mtls",
            json!({"certificate": good.certificate, "private_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
            "config.private_key",
        ),
        ("mtls", json!({"certificate": good.certificate, "private_key": good.certificate}), "config.private_key"),
        ("mtls", json!({"certificate": good.certificate, "private_key": other.private_key}), "config.private_key"),
        ("mtls", json!({"certificate": expired.certificate, "private_key": expired.private_key}), "config.certificate"),
        (
            "mtls",
            json!({"certificate": good.certificate, "private_key": good.private_key, "ca_certificate": "junk"}),
            "config.ca_certificate",
        ),
        ("mtls", json!({"certificate": good.certificate, "private_key": "••••abcd"}), "config.private_key"),
        (
            "mtls",
            json!({"certificate": good.certificate, "private_key": good.private_key, "client_certificate": {}}),
            "config.client_certificate",
        ),
        ("bearer", json!({"token": "t", "client_certificate": "pem"}), "config.client_certificate"),
        (
            "bearer",
            json!({"token": "t", "client_certificate": {"certificate": good.certificate}}),
            "config.client_certificate.private_key",
        ),
        (
            "bearer",
            json!({"token": "t", "client_certificate": {"certificate": good.certificate, "private_key": other.private_key}}),
            "config.client_certificate.private_key",
        ),
        (
            "bearer",
            json!({"token": "t", "client_certificate": {"certificate": expired.certificate, "private_key": expired.private_key}}),
            "config.client_certificate.certificate",
        ),
        (
            "bearer",
            json!({"token": "t", "client_certificate": {"certificate": good.certificate, "private_key": good.private_key, "extra": 1}}),
            "config.client_certificate.extra",
        ),
    ];
    for (auth_type, config, field) in cases {
        let body = json!({"name": "bad", "type": auth_type, "config": config});
        let (status, err) = app.post("/v1/workspaces/acme/auth-profiles", body.clone()).await;
        assert_eq!(status, 422, "{auth_type} {field} → {err}");
        let fields: Vec<&str> =
            err["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "expected {field} in {err}");
        assert!(!err.to_string().contains("PRIVATE KEY-----\n"), "no key echoed: {err}");
    }
    let (_, list) = app.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
    app.stop().await;
}
