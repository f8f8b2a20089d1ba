//! What the process writes (JSON logs on stderr, stdout) never holds a secret,
//! whatever happens to the jobs that carry one. The real binary runs as a child
//! process so that its log output can be captured.

use std::time::Duration;

use authrelay::job::Phase;
use authrelay_testkit::{JobExt as _, TestBroker, TestEnv, job};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::authrelay;

const SECRETS: [&str; 9] = [
    "log-bearer-secret-AAAA",
    "log-pair-secret-BBBB",
    "log-basic-secret-CCCC",
    "log-client-secret-DDDD",
    "log-access-token-EEEE",
    "log-inline-secret-FFFF",
    "log-hmac-secret-GGGG",
    "log-aws-secret-access-key-HHHH",
    "log-aws-session-token-IIII",
];

#[tokio::test]
async fn logs_never_contain_a_secret_whatever_the_jobs_do() {
    let env = TestEnv::new();
    let broker = TestBroker::new(env.names()).await;
    let tap = broker.tap().await;
    let mut process =
        authrelay(&env).env("AUTHRELAY_LOG_FORMAT", "json").env("AUTHRELAY_LOG", "info").serve(&["run"]).await;

    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["client".into()]).unwrap().self_signed(&key).unwrap();
    // A line from the middle of the key's PEM: no part of a key may appear.
    let key_pem = key.serialize_pem();
    let key_line = key_pem.lines().nth(1).unwrap().to_owned();

    // Targets: one that echoes nothing useful, one that fails, a token endpoint.
    let target = MockServer::start().await;
    Mock::given(path("/ok")).respond_with(ResponseTemplate::new(200)).mount(&target).await;
    Mock::given(path("/fail")).respond_with(ResponseTemplate::new(500)).mount(&target).await;
    Mock::given(path("/unauthorized")).respond_with(ResponseTemplate::new(401)).mount(&target).await;
    Mock::given(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"access_token": SECRETS[4], "expires_in": 3600})))
        .mount(&target)
        .await;
    let profiles = [
        json!({"name": "b", "type": "bearer", "config": {"token": SECRETS[0]}}),
        json!({"name": "k", "type": "api_key", "config": {"method": "query", "pairs": [{"key": "api_key", "value": SECRETS[1]}]}}),
        json!({"name": "u", "type": "basic", "config": {"username": "svc", "password": SECRETS[2]}}),
        json!({"name": "o", "type": "oauth2_client_credentials", "config": {
            "client_id": "cid", "client_secret": SECRETS[3], "token_endpoint": format!("{}/token", target.uri())}}),
        json!({"name": "h", "type": "hmac", "config": {"secret": SECRETS[6], "scheme": "standard_webhooks"}}),
        json!({"name": "a", "type": "aws_sigv4", "config": {"access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": SECRETS[7], "session_token": SECRETS[8], "region": "eu-west-1", "service": "lambda"}}),
        // Over plain HTTP the certificate is never used, but its key passes through everything else.
        json!({"name": "c", "type": "bearer", "config": {"token": SECRETS[0], "client_certificate": {
            "certificate": certificate.pem(), "private_key": key.serialize_pem()}}}),
    ];
    let mut ids = Vec::new();
    for body in profiles {
        ids.push(process.create_profile("acme", body).await);
    }
    // Every profile against a succeeding, a failing and a 401 target, plus inline
    // auth with a bad URL (rejected) and a blocked destination.
    let mut n = 0;
    for id in &ids {
        for p in ["/ok", "/fail", "/unauthorized"] {
            let j = job(&format!("j{n}"), Phase::PreCall)
                .to(&format!("{}{p}", target.uri()))
                .with(json!({"auth_profile_id": id, "max_attempts": 1}));
            broker.publish_job(&j).await;
            n += 1;
        }
    }
    let inline = json!({"type": "bearer", "token": SECRETS[5]});
    for url in [format!("{}/fail", target.uri()), "http://127.0.0.2:9/".to_owned(), "ftp://x/".to_owned()] {
        let j = job(&format!("j{n}"), Phase::PreCall).to(&url).with(json!({"inline_auth": inline, "max_attempts": 1}));
        broker.publish_job(&j).await;
        n += 1;
    }
    tap.take(n, Duration::from_secs(30)).await;
    // Reads and a PATCH through the API are logged too.
    for id in &ids {
        process.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    }

    process.terminate();
    let status = process.exit_within(Duration::from_secs(40)).await;
    assert!(status.success(), "exit code 0 on SIGTERM");
    let (out, err) = (process.stdout(), process.stderr());
    let settled = err.lines().filter(|l| l.contains("job settled")).count();
    assert_eq!(settled, n, "one line per settled job: {err}");
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
    for secret in SECRETS.iter().copied().chain([key_line.as_str()]) {
        assert!(!err.contains(secret) && !out.contains(secret), "{secret} leaked into the output");
    }
}

#[test]
fn a_text_log_written_to_a_pipe_has_no_colour_codes() {
    let env = TestEnv::new();
    // An unreachable database makes `migrate` log its retries (WARN) before it gives up.
    let out = authrelay(&env)
        .env("AUTHRELAY_DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .env("AUTHRELAY_STARTUP_TIMEOUT_SECS", "1")
        .env("AUTHRELAY_LOG", "info")
        .output(&["migrate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);

    assert!(stderr.contains("WARN") && stderr.contains("retrying"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "terminal escape codes in a piped log: {stderr:?}");
}
