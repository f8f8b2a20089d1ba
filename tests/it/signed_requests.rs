//! Signed requests (contract §8.2) as the receiver checks them: Standard
//! Webhooks verified with the reference library (`standardwebhooks`), custom
//! HMAC headers recomputed here from the bytes that arrived, and AWS
//! Signature Version 4 recomputed by an independent verifier
//! (`authrelay_testkit::sigv4`). Jobs go through the real RabbitMQ, profiles
//! live in the real PostgreSQL, targets are servers on 127.0.0.1.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use authrelay::job::Phase;
use authrelay_testkit::app::{TestApp, spawn_api, spawn_worker};
use authrelay_testkit::sigv4::{AwsKey, SigV4Target};
use authrelay_testkit::{JobExt as _, TestEnv, job};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::{Sha256, Sha512};

use crate::WAIT;

/// One request as a target received it.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    uri: Uri,
    body: Bytes,
    at: SystemTime,
}

/// A target that records every request and answers the statuses given in turn (then 200).
async fn recording_target(statuses: Vec<u16>) -> (String, Arc<Mutex<Vec<Received>>>) {
    let received = Arc::new(Mutex::new(Vec::new()));
    let record = received.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
        let (record, statuses) = (record.clone(), statuses.clone());
        async move {
            let mut all = record.lock().unwrap();
            all.push(Received { headers, uri, body, at: SystemTime::now() });
            let status = statuses.get(all.len() - 1).copied().unwrap_or(200);
            StatusCode::from_u16(status).unwrap()
        }
    });
    let addr = authrelay_testkit::targets::serve(app).await;
    (format!("http://{addr}"), received)
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn header(r: &Received, name: &str) -> String {
    r.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap().to_owned()
}

// ---------------------------------------------------------------------------
// Standard Webhooks
// ---------------------------------------------------------------------------

#[tokio::test]
async fn standard_webhooks_signatures_verify_with_the_reference_library_on_every_attempt_with_fresh_timestamps() {
    let mut env = TestEnv::new();
    // Far enough apart that the second attempt is signed in another second.
    env.set("AUTHRELAY_DURING_CALL_RETRY_DELAYS", "1200ms");
    let h = TestApp::start(env, authrelay::app::Roles::ALL).await;
    let (url, received) = recording_target(vec![503]).await;
    let secret = format!("whsec_{}", BASE64.encode(b"a 24-byte shared key....."));
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Webhooks", "type": "hmac", "config": {"secret": secret, "scheme": "standard_webhooks"}}),
        )
        .await;
    let request = json!({"method": "POST", "url": format!("{url}/hooks/call-ended"),
                         "body": {"call_id": "c-1", "summary": "Caller asked for a refund — “urgent”"}});
    h.broker
        .publish_job(
            &job("call-ended-1", Phase::DuringCall)
                .request(request)
                .profile(&profile)
                .deadline_in(Duration::from_secs(15)),
        )
        .await;

    let result = h.results.next(WAIT).await;
    assert_eq!(result["outcome"], "succeeded", "{result}");
    assert_eq!(result["attempts"], 2, "{result}");
    let received = received.lock().unwrap().clone();
    assert_eq!(received.len(), 2);
    let webhook = standardwebhooks::Webhook::new(&secret).unwrap();
    for attempt in &received {
        webhook.verify(&attempt.body, &attempt.headers).expect("the reference verifier accepts the signature");
        assert_eq!(header(attempt, "webhook-id"), "call-ended-1", "webhook-id is the job id on every attempt");
        let timestamp: i64 = header(attempt, "webhook-timestamp").parse().unwrap();
        assert!((unix(attempt.at) - timestamp).abs() <= 1, "signed when sent, not when first tried");
        assert!(header(attempt, "webhook-signature").starts_with("v1,"));
    }
    let (first, second) = (&received[0], &received[1]);
    assert_ne!(header(first, "webhook-timestamp"), header(second, "webhook-timestamp"), "a retry is signed afresh");
    assert_ne!(header(first, "webhook-signature"), header(second, "webhook-signature"));
    // A body changed in transit no longer verifies.
    let mut tampered = second.body.to_vec();
    tampered[2] ^= 1;
    assert!(webhook.verify(&tampered, &second.headers).is_err());
    h.stop().await;
}

#[tokio::test]
async fn a_secret_without_the_whsec_prefix_is_used_as_its_bytes() {
    let h = spawn_worker().await;
    let (url, received) = recording_target(vec![]).await;
    let profile = h
        .create_profile(
            "acme",
            json!({"name": "Raw", "type": "hmac", "config": {"secret": "plain-shared-secret-1234", "scheme": "standard_webhooks"}}),
        )
        .await;
    h.broker.publish_job(&job("raw-1", Phase::PostCall).to(&format!("{url}/in")).profile(&profile)).await;
    assert_eq!(h.results.next(WAIT).await["outcome"], "succeeded");
    let r = received.lock().unwrap()[0].clone();
    standardwebhooks::Webhook::from_bytes(b"plain-shared-secret-1234".to_vec())
        .unwrap()
        .verify(&r.body, &r.headers)
        .expect("verifies with the secret's bytes as the key");
    h.stop().await;
}

// ---------------------------------------------------------------------------
// Custom HMAC headers
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_github_style_signature_is_the_hex_hmac_of_the_exact_bytes_sent_after_form_encoding() {
    let h = spawn_worker().await;
    let (url, received) = recording_target(vec![]).await;
    let config = json!({"secret": "It's a Secret to Everybody", "scheme": "custom", "header": "X-Hub-Signature-256",
                        "algorithm": "sha256", "encoding": "hex", "prefix": "sha256="});
    let profile = h.create_profile("acme", json!({"name": "GitHub", "type": "hmac", "config": config})).await;
    // A form body: the signature covers its encoding, not the JSON the job carried.
    let request = json!({"method": "POST", "url": format!("{url}/github"), "form": {"text": "a b&c=d", "name": "Zoë"}});
    h.broker.publish_job(&job("gh-1", Phase::PostCall).request(request).profile(&profile)).await;

    assert_eq!(h.results.next(WAIT).await["outcome"], "succeeded");
    let r = received.lock().unwrap()[0].clone();
    assert_eq!(header(&r, "content-type"), "application/x-www-form-urlencoded");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"It's a Secret to Everybody").unwrap();
    mac.update(&r.body);
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(header(&r, "x-hub-signature-256"), format!("sha256={expected}"));
    h.stop().await;
}

#[tokio::test]
async fn a_timestamp_dot_body_template_signs_both_and_sends_the_timestamp_in_its_header() {
    let h = spawn_worker().await;
    let (url, received) = recording_target(vec![]).await;
    let config = json!({"secret": "template-secret-0123456789", "scheme": "custom", "header": "X-Signature",
                        "algorithm": "sha512", "encoding": "base64", "prefix": "v1=",
                        "template": "{timestamp}.{body}", "timestamp_header": "X-Signature-Timestamp"});
    let profile = h.create_profile("acme", json!({"name": "Template", "type": "hmac", "config": config})).await;
    let request = json!({"method": "PUT", "url": format!("{url}/crm/contacts/42?source=voice"), "body": {"a": [1, 2]}});
    h.broker.publish_job(&job("tpl-1", Phase::PreCall).request(request).profile(&profile)).await;

    assert_eq!(h.results.next(WAIT).await["outcome"], "succeeded");
    let r = received.lock().unwrap()[0].clone();
    assert_eq!(r.uri.query(), Some("source=voice"));
    let timestamp = header(&r, "x-signature-timestamp");
    assert!((unix(r.at) - timestamp.parse::<i64>().unwrap()).abs() <= 1);
    let mut mac = Hmac::<Sha512>::new_from_slice(b"template-secret-0123456789").unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(&r.body);
    assert_eq!(header(&r, "x-signature"), format!("v1={}", BASE64.encode(mac.finalize().into_bytes())));
    h.stop().await;
}

// ---------------------------------------------------------------------------
// AWS Signature Version 4
// ---------------------------------------------------------------------------

fn aws_key(secret: &str, session_token: Option<&str>) -> AwsKey {
    AwsKey {
        access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_access_key: secret.into(),
        session_token: session_token.map(str::to_owned),
        region: "eu-west-1".into(),
        service: "execute-api".into(),
    }
}

fn sigv4_config(key: &AwsKey) -> Value {
    let mut config = json!({"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key,
                            "region": key.region, "service": key.service});
    if let Some(token) = &key.session_token {
        config["session_token"] = json!(token);
    }
    config
}

#[tokio::test]
async fn an_independent_verifier_recomputes_the_sigv4_signature_of_what_arrived() {
    let h = spawn_worker().await;
    let key = aws_key("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Some("FwoGZXIvYXdzEBYaDH+session/token=="));
    let target = SigV4Target::start(key.clone()).await;
    let profile =
        h.create_profile("acme", json!({"name": "AWS", "type": "aws_sigv4", "config": sigv4_config(&key)})).await;
    let cases = [
        json!({"method": "POST", "url": target.url("/prod/calls/%C3%BC%20x"), "query": {"z": "1", "a": "b c", "A": "ü"},
               "body": {"call_id": "c-9", "note": "a+b=c"}}),
        json!({"method": "GET", "url": target.url("/prod/contacts?id=7&id=3")}),
        json!({"method": "POST", "url": target.url("/prod/form"), "form": {"k": "v w"}}),
    ];
    for (i, request) in cases.iter().enumerate() {
        h.broker
            .publish_job(&job(&format!("aws-{i}"), Phase::DuringCall).request(request.clone()).profile(&profile))
            .await;
    }
    for result in h.results.take(cases.len(), WAIT).await {
        assert_eq!(result["outcome"], "succeeded", "the verifier refused: {result}");
    }
    let checked = target.checked();
    assert_eq!(checked.len(), cases.len());
    for c in &checked {
        assert_eq!(c.verdict, Ok(()));
        let date = c.headers["x-amz-date"].to_str().unwrap();
        let signed_at = chrono::NaiveDateTime::parse_from_str(date, "%Y%m%dT%H%M%SZ").unwrap().and_utc();
        assert!((chrono::Utc::now() - signed_at).num_seconds().abs() < 60, "signed at the attempt, not earlier");
    }
    h.stop().await;
}

#[tokio::test]
async fn a_wrong_secret_or_region_is_refused_by_the_verifier_so_the_check_is_real() {
    let h = spawn_worker().await;
    let key = aws_key("the-real-secret-access-key-0123456789", None);
    let target = SigV4Target::start(key.clone()).await;
    let mut wrong_secret = key.clone();
    wrong_secret.secret_access_key = "not-the-secret-access-key-0123456789".into();
    let mut wrong_region = key.clone();
    wrong_region.region = "us-east-1".into();
    for (i, k) in [wrong_secret, wrong_region].iter().enumerate() {
        let profile = h
            .create_profile(
                "acme",
                json!({"name": format!("wrong-{i}"), "type": "aws_sigv4", "config": sigv4_config(k)}),
            )
            .await;
        h.broker
            .publish_job(&job(&format!("wrong-{i}"), Phase::PostCall).to(&target.url("/x")).profile(&profile))
            .await;
    }
    for result in h.results.take(2, WAIT).await {
        assert_eq!(result["outcome"], "failed", "{result}");
        assert_eq!(result["response"]["status"], 403, "{result}");
    }
    assert!(target.checked().iter().all(|c| c.verdict.is_err()));
    h.stop().await;
}

// ---------------------------------------------------------------------------
// The profiles themselves: masked reads and bad input named by field
// ---------------------------------------------------------------------------

#[tokio::test]
async fn signing_profiles_read_back_masked_and_keep_their_secrets_through_a_patch() {
    let app = spawn_api().await;
    let id = app
        .create_profile(
            "acme",
            json!({"name": "AWS", "type": "aws_sigv4", "config": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
                   "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "session_token": "session-token-0123456789",
                   "region": "eu-west-1", "service": "lambda"}}),
        )
        .await;
    let (status, read) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(status, 200);
    let config = &read["config"];
    assert_eq!(config["access_key_id"], "AKIAIOSFODNN7EXAMPLE", "an access key id is no secret");
    assert_eq!(config["secret_access_key"], "••••EKEY");
    assert_eq!(config["session_token"], "••••6789");
    assert!(!read.to_string().contains("wJalrXUtnFEMI"));
    let (status, patched) = app
        .patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"region": "eu-central-1"}}))
        .await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["config"]["secret_access_key"], "••••EKEY", "kept");
    assert_eq!(patched["config"]["region"], "eu-central-1");

    let hook = app
        .create_profile(
            "acme",
            json!({"name": "Hook", "type": "hmac", "config": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "scheme": "standard_webhooks"}}),
        )
        .await;
    let (_, read) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{hook}")).await;
    assert_eq!(read["type"], "hmac");
    assert_eq!(read["config"], json!({"secret": "••••LaSw", "scheme": "standard_webhooks"}));
    app.stop().await;
}

#[tokio::test]
async fn bad_signing_input_is_422_naming_each_field() {
    let app = spawn_api().await;
    let custom = |extra: Value| {
        let mut config = json!({"secret": "s3cret-value", "scheme": "custom", "header": "X-Sig", "algorithm": "sha256", "encoding": "hex"});
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        config
    };
    let aws = |extra: Value| {
        let mut config = json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "secret", "region": "eu-west-1", "service": "execute-api"});
        config.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        config
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        ("hmac", json!({"scheme": "standard_webhooks"}), "config.secret"),
        ("hmac", json!({"secret": "s", "scheme": "hmac-please"}), "config.scheme"),
        ("hmac", json!({"secret": "s"}), "config.scheme"),
        ("hmac", json!({"secret": "whsec_not base64!", "scheme": "standard_webhooks"}), "config.secret"),
        ("hmac", json!({"secret": "••••abcd", "scheme": "standard_webhooks"}), "config.secret"),
        ("hmac", json!({"secret": "s", "scheme": "standard_webhooks", "header": "X-Sig"}), "config.header"),
        ("hmac", json!({"secret": "s", "scheme": "standard_webhooks", "unknown": 1}), "config.unknown"),
        ("hmac", json!({"secret": "s", "scheme": "custom", "algorithm": "sha256", "encoding": "hex"}), "config.header"),
        ("hmac", custom(json!({"header": "X Sig"})), "config.header"),
        ("hmac", custom(json!({"header": "Content-Length"})), "config.header"),
        ("hmac", custom(json!({"algorithm": "md5"})), "config.algorithm"),
        ("hmac", custom(json!({"encoding": "base32"})), "config.encoding"),
        ("hmac", custom(json!({"prefix": "sha256=\n"})), "config.prefix"),
        ("hmac", custom(json!({"prefix": "sig=ü"})), "config.prefix"),
        ("hmac", custom(json!({"template": "{body}{nonce}"})), "config.template"),
        ("hmac", custom(json!({"template": "{timestamp}.{body}"})), "config.timestamp_header"),
        ("hmac", custom(json!({"timestamp_header": "x-sig"})), "config.timestamp_header"),
        ("hmac", custom(json!({"timestamp_header": "Bad Header"})), "config.timestamp_header"),
        ("aws_sigv4", aws(json!({"access_key_id": "short"})), "config.access_key_id"),
        ("aws_sigv4", aws(json!({"secret_access_key": ""})), "config.secret_access_key"),
        ("aws_sigv4", aws(json!({"session_token": "line\nbreak"})), "config.session_token"),
        ("aws_sigv4", aws(json!({"session_token": "tök-not-ascii"})), "config.session_token"),
        ("aws_sigv4", aws(json!({"region": "EU West"})), "config.region"),
        ("aws_sigv4", aws(json!({"service": "execute api"})), "config.service"),
        ("aws_sigv4", aws(json!({"endpoint": "https://x"})), "config.endpoint"),
        (
            "aws_sigv4",
            json!({"secret_access_key": "s", "region": "eu-west-1", "service": "s3"}),
            "config.access_key_id",
        ),
    ];
    for (auth_type, config, field) in cases {
        let body = json!({"name": "bad", "type": auth_type, "config": config});
        let (status, err) = app.post("/v1/workspaces/acme/auth-profiles", body.clone()).await;
        assert_eq!(status, 422, "{body} → {err}");
        let fields: Vec<&str> =
            err["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{body}: expected {field} in {err}");
        assert!(!err.to_string().contains("s3cret-value"), "no secret echoed: {err}");
    }
    let (_, list) = app.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(list["items"], json!([]), "nothing was stored");
    app.stop().await;
}
