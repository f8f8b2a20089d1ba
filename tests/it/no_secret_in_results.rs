//! No secret in anything authrelay echoes: results, parked messages and
//! `/metrics`, even when the target echoes the request back in every form.
//! Jobs go through the real RabbitMQ; targets are wiremock servers on 127.0.0.1.

use authrelay::job::Phase;
use authrelay_testkit::app::spawn_worker;
use authrelay_testkit::{JobExt as _, Taken, job};
use base64::Engine as _;
use serde_json::{Map, Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

use crate::WAIT;
use crate::oauth_tokens::oauth_config;

/// Echoes the request back: its headers, URI, query and body in a JSON body, each
/// header again as an `x-echo-<name>` response header, and the Authorization
/// value in `x-echo-auth` (what a debug endpoint or a chatty error page does).
struct Echo {
    status: u16,
}

impl Respond for Echo {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
        let mut headers = Map::new();
        let mut response = ResponseTemplate::new(self.status);
        for (name, value) in &request.headers {
            headers.insert(name.to_string(), Value::String(text(value.as_bytes())));
            response = response.append_header(format!("x-echo-{name}").as_str(), value.clone());
        }
        let auth = request.headers.get("authorization").map(|v| text(v.as_bytes())).unwrap_or_default();
        response
            .insert_header("x-echo-auth", auth.as_str())
            .insert_header("x-echo-query", request.url.query().unwrap_or(""))
            .set_body_json(json!({
                "headers": headers,
                "uri": request.url.as_str(),
                "query": request.url.query(),
                "body": text(&request.body),
            }))
    }
}

/// The forms a secret can come back in: as is, form- and percent-encoded, JSON-escaped.
fn leak_forms(secret: &str) -> Vec<String> {
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        secret.replace(' ', "%20"),
        json[1..json.len() - 1].to_owned(),
    ]
}

/// Every key and string value in a JSON document, decoded.
fn strings_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_in(v, out)),
        Value::Object(obj) => {
            for (k, v) in obj {
                out.push(k.clone());
                strings_in(v, out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------
// No secret in results, parked messages or metrics
// ---------------------------------------------------------------------------

#[tokio::test]
async fn no_secret_reaches_results_or_parked_messages_even_when_the_target_echoes_the_request() {
    let h = spawn_worker().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"access_token": "at-echo-secret-0123456789", "expires_in": 3600})),
        )
        .expect(1)
        .mount(&idp)
        .await;
    let echo = MockServer::start().await;
    Mock::given(path("/echo")).respond_with(Echo { status: 500 }).expect(6).mount(&echo).await;

    let basic_b64 = base64::engine::general_purpose::STANDARD.encode("echo-user:basic-pw-secret-0123456789");
    let cases: Vec<(&str, Value, Vec<String>)> = vec![
        ("bearer", json!({"token": "bearer-secret-0123456789"}), vec!["bearer-secret-0123456789".into()]),
        (
            "basic",
            json!({"username": "echo-user", "password": "basic-pw-secret-0123456789"}),
            vec!["basic-pw-secret-0123456789".into(), basic_b64],
        ),
        (
            "api_key",
            json!({"method": "header", "pairs": [{"key": "X-Api-Key", "value": "hdr-secret-0123456789"}]}),
            vec!["hdr-secret-0123456789".into()],
        ),
        (
            "api_key",
            json!({"method": "query", "pairs": [{"key": "api_key", "value": "query-secret-0123456789"}]}),
            vec!["query-secret-0123456789".into()],
        ),
        (
            "api_key",
            json!({"method": "body", "pairs": [{"key": "api_key", "value": "body-secret-0123456789"}]}),
            vec!["body-secret-0123456789".into()],
        ),
        (
            "oauth2_client_credentials",
            oauth_config(&idp, "client-secret-0123456789"),
            vec!["client-secret-0123456789".into(), "at-echo-secret-0123456789".into()],
        ),
    ];
    let mut secrets = Vec::new();
    for (i, (auth_type, config, case_secrets)) in cases.into_iter().enumerate() {
        let profile =
            h.create_profile("acme", json!({"name": format!("echo-{i}"), "type": auth_type, "config": config})).await;
        let request = json!({"method": "POST", "url": format!("{}/echo?source=voice", echo.uri()), "body": {"phone": "+15550100"}});
        h.broker
            .publish_job(
                &job(&format!("echo-{i}"), Phase::DuringCall).request(request).profile(&profile).max_attempts(1),
            )
            .await;
        secrets.extend(case_secrets);
    }

    let results = h.results.take(6, WAIT).await;
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 6, WAIT).await;
    let (_, metrics) = h.get("/metrics").await;

    for result in &results {
        assert_eq!(result["outcome"], "failed", "{result}");
        assert_eq!(result["response"]["status"], 500, "{result}");
        assert!(result["response"]["body"]["uri"].is_string(), "the echo made it into the result: {result}");
    }
    let results_text = serde_json::to_string(&results).unwrap();
    let parked_texts: Vec<String> = parked.iter().map(Taken::text).collect();
    for secret in &secrets {
        assert!(!results_text.contains(secret.as_str()), "a result carries `{secret}`: {results_text}");
        for text in &parked_texts {
            assert!(!text.contains(secret.as_str()), "a parked message carries `{secret}`: {text}");
        }
        assert!(!metrics.to_string().contains(secret.as_str()), "/metrics carries `{secret}`");
    }
    h.stop().await;
}

#[tokio::test]
async fn secrets_with_special_characters_are_redacted_in_every_encoding_the_target_echoes() {
    let h = spawn_worker().await;
    let echo = MockServer::start().await;
    Mock::given(path("/echo")).respond_with(Echo { status: 500 }).expect(4).mount(&echo).await;
    let secret = r#"s3cr3t "k&y"=v/1+2% ok"#;
    let pairs = json!([{"key": "api_key", "value": secret}]);
    let cases = [
        ("api_key", json!({"method": "query", "pairs": pairs}), json!({"url": format!("{}/echo?a=1", echo.uri())})),
        (
            "api_key",
            json!({"method": "body", "pairs": pairs}),
            json!({"method": "POST", "url": format!("{}/echo", echo.uri()), "body": {"q": 1}}),
        ),
        (
            "api_key",
            json!({"method": "body", "pairs": pairs}),
            json!({"method": "POST", "url": format!("{}/echo", echo.uri()), "form": {"q": "1"}}),
        ),
        ("basic", json!({"username": "u", "password": secret}), json!({"url": format!("{}/echo", echo.uri())})),
    ];
    for (i, (auth_type, config, request)) in cases.into_iter().enumerate() {
        let profile = h
            .create_profile("acme", json!({"name": format!("special-{i}"), "type": auth_type, "config": config}))
            .await;
        h.broker
            .publish_job(
                &job(&format!("special-{i}"), Phase::DuringCall).request(request).profile(&profile).max_attempts(1),
            )
            .await;
    }

    let results = h.results.take(4, WAIT).await;
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 4, WAIT).await;

    let basic_b64 = base64::engine::general_purpose::STANDARD.encode(format!("u:{secret}"));
    let mut forms = leak_forms(secret);
    forms.push(basic_b64);
    let received = echo.received_requests().await.unwrap();
    assert!(
        received
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&forms[3])
                || r.url.query().unwrap_or("").contains(&forms[1])),
        "the target did get the secret"
    );
    for result in &results {
        assert_eq!(result["response"]["status"], 500, "{result}");
        let mut strings = Vec::new();
        strings_in(result, &mut strings);
        for text in &strings {
            for form in &forms {
                assert!(!text.contains(form.as_str()), "`{form}` in {text}");
            }
        }
    }
    for message in &parked {
        let text = message.text();
        for form in &forms {
            assert!(!text.contains(form.as_str()), "`{form}` in a parked message: {text}");
        }
    }
    h.stop().await;
}

/// The signing types and client certificates: the key never travels, but a
/// target that echoes everything (the session token it did get, say) must not
/// make a result, a parked message or `/metrics` carry a secret; the
/// signatures themselves are no secret and stay.
#[tokio::test]
async fn signing_secrets_and_session_tokens_never_come_back_though_signatures_do() {
    let h = spawn_worker().await;
    let echo = MockServer::start().await;
    Mock::given(path("/echo")).respond_with(Echo { status: 500 }).expect(4).mount(&echo).await;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["client".into()]).unwrap().self_signed(&key).unwrap();
    let whsec = format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode("echoed-webhook-key-0123456789"));
    let cases = [
        ("hmac", json!({"secret": whsec, "scheme": "standard_webhooks"})),
        (
            "hmac",
            json!({"secret": "custom-hmac-secret-0123456789", "scheme": "custom", "header": "X-Signature",
                   "algorithm": "sha256", "encoding": "hex", "template": "{method} {path} {body}"}),
        ),
        (
            "aws_sigv4",
            json!({"access_key_id": "AKIAIOSFODNN7EXAMPLE", "secret_access_key": "aws-secret-access-key-0123456789",
                   "session_token": "aws-session-token-0123456789", "region": "eu-west-1", "service": "execute-api"}),
        ),
        (
            "bearer",
            json!({"token": "cert-bearer-secret-0123456789",
                   "client_certificate": {"certificate": certificate.pem(), "private_key": key.serialize_pem()}}),
        ),
    ];
    for (i, (auth_type, config)) in cases.into_iter().enumerate() {
        let profile =
            h.create_profile("acme", json!({"name": format!("signed-{i}"), "type": auth_type, "config": config})).await;
        let request = json!({"method": "POST", "url": format!("{}/echo", echo.uri()), "body": {"call": i}});
        h.broker
            .publish_job(
                &job(&format!("signed-{i}"), Phase::PostCall).request(request).profile(&profile).max_attempts(1),
            )
            .await;
    }
    let results = h.results.take(4, WAIT).await;
    let parked = h.broker.wait_for_messages(&h.broker.names.failed_queue(), 4, WAIT).await;
    let (_, metrics) = h.get("/metrics").await;

    let key_pem = key.serialize_pem();
    let key_line = key_pem.lines().nth(1).unwrap();
    let mut secrets: Vec<String> = vec![
        whsec.clone(),
        whsec["whsec_".len()..].to_owned(),
        "custom-hmac-secret-0123456789".into(),
        "aws-secret-access-key-0123456789".into(),
        "aws-session-token-0123456789".into(),
        "cert-bearer-secret-0123456789".into(),
        key_line.to_owned(),
    ];
    secrets.extend(secrets.clone().iter().flat_map(|s| leak_forms(s)));
    let results_text = serde_json::to_string(&results).unwrap();
    for secret in &secrets {
        assert!(!results_text.contains(secret.as_str()), "a result carries `{secret}`: {results_text}");
        for message in &parked {
            assert!(!message.text().contains(secret.as_str()), "a parked message carries `{secret}`");
        }
        assert!(!metrics.to_string().contains(secret.as_str()), "/metrics carries `{secret}`");
    }
    // The echo did carry the signatures back, and they are kept: a signature is not a secret.
    let echoed = |name: &str| results.iter().any(|r| r["response"]["body"]["headers"][name].is_string());
    assert!(echoed("webhook-signature") && echoed("x-signature"), "{results_text}");
    assert!(results_text.contains("AWS4-HMAC-SHA256") || echoed("x-amz-date"), "{results_text}");
    h.stop().await;
}
