//! What the process writes (JSON logs on stderr, stdout) never holds a secret,
//! whatever happens to the jobs that carry one. The real binary runs as a child
//! process so that its log output can be captured.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TempDir;
use common::amqp::TestBroker;
use common::worker::{job, with};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRETS: [&str; 6] = [
    "log-bearer-secret-AAAA",
    "log-pair-secret-BBBB",
    "log-basic-secret-CCCC",
    "log-client-secret-DDDD",
    "log-access-token-EEEE",
    "log-inline-secret-FFFF",
];

#[tokio::test]
async fn logs_never_contain_a_secret_whatever_the_jobs_do() {
    let db = common::TestDb::new();
    let state = TempDir::new();
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let mut broker = TestBroker::new(&prefix).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let token = "logs-admin-token-0123456789";
    let mut child = Command::new(env!("CARGO_BIN_EXE_authrelay"))
        .arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AUTHRELAY_DATABASE_URL", db.url())
        .env("AUTHRELAY_MASTER_KEYS", common::new_key("k1"))
        .env("AUTHRELAY_ADMIN_TOKEN", token)
        .env("AUTHRELAY_AMQP_PREFIX", &prefix)
        .env("AUTHRELAY_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS", "127.0.0.1/32")
        .env("AUTHRELAY_STATE_DIR", &state.0)
        .env("AUTHRELAY_LOG_FORMAT", "json")
        .env("AUTHRELAY_LOG", "info")
        .current_dir(&state.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes while the process runs: a full pipe would block its logging.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.unwrap().read_to_end(&mut bytes).unwrap();
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let mut child = KillOnDrop(child);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http.get(format!("{base}/readyz")).send().await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(tokio::time::Instant::now() < deadline, "the process never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

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
    ];
    let mut ids = Vec::new();
    for body in profiles {
        let resp = http
            .post(format!("{base}/v1/workspaces/acme/auth-profiles"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        ids.push(resp.json::<serde_json::Value>().await.unwrap()["id"].as_str().unwrap().to_owned());
    }
    // Every profile against a succeeding, a failing and a 401 target, plus inline
    // auth with a bad URL (rejected) and a blocked destination.
    let mut n = 0;
    for id in &ids {
        for p in ["/ok", "/fail", "/unauthorized"] {
            let j = with(
                job(&format!("j{n}"), "pre_call", json!({"url": format!("{}{p}", target.uri())})),
                json!({"auth_profile_id": id, "max_attempts": 1}),
            );
            broker.publish_job(&j).await;
            n += 1;
        }
    }
    let inline = json!({"type": "bearer", "token": SECRETS[5]});
    for url in [format!("{}/fail", target.uri()), "http://127.0.0.2:9/".to_owned(), "ftp://x/".to_owned()] {
        let j = with(
            job(&format!("j{n}"), "pre_call", json!({"url": url})),
            json!({"inline_auth": inline, "max_attempts": 1}),
        );
        broker.publish_job(&j).await;
        n += 1;
    }
    broker.results(n, Duration::from_secs(30)).await;
    // Reads and a PATCH through the API are logged too.
    for id in &ids {
        http.get(format!("{base}/v1/workspaces/acme/auth-profiles/{id}")).bearer_auth(token).send().await.unwrap();
    }

    let _ = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "the process did not exit after SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "exit code 0 on SIGTERM");
    let (out, err) = (stdout.join().unwrap(), stderr.join().unwrap());
    let settled = err.lines().filter(|l| l.contains("job settled")).count();
    assert_eq!(settled, n, "one line per settled job: {err}");
    for line in err.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
    }
    for secret in SECRETS {
        assert!(!err.contains(secret) && !out.contains(secret), "{secret} leaked into the output");
    }
}

/// The child process, killed if the test ends early.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
