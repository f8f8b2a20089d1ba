//! The README's quick start: `docker compose up` brings up PostgreSQL,
//! RabbitMQ, authrelay, an echo target and a one-shot demo. No Docker engine
//! runs here, so what can be checked is: the compose file's wiring (the demo
//! waits for a healthy authrelay, the egress guard lets it reach the echo on
//! the compose network), the Dockerfile's health check, and the demo itself —
//! its script and its echo target run against the local servers.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use authrelay_testkit::app::spawn_worker;
use ipnet::IpNet;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::ops_kit::yaml_documents;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn compose() -> Value {
    yaml_documents("docker-compose.yml").remove(0)
}

#[test]
fn the_compose_file_runs_the_demo_once_authrelay_is_healthy_and_lets_it_reach_the_echo() {
    let compose = compose();
    let services = &compose["services"];
    for name in ["postgres", "rabbitmq", "authrelay", "echo", "demo"] {
        assert!(services[name].is_object(), "no service {name}");
    }
    let demo = &services["demo"];
    assert_eq!(demo["depends_on"]["authrelay"]["condition"], "service_healthy");
    assert_eq!(demo["entrypoint"][1], "/demo/demo.sh");
    assert!(demo["environment"]["DEMO_TARGET_URL"].as_str().unwrap().starts_with("http://echo:"));
    for service in [demo, &services["echo"]] {
        let mounts: Vec<&str> = service["volumes"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
        assert!(mounts.contains(&"./deploy/demo:/demo:ro"), "{mounts:?}");
    }
    assert!(repo().join("deploy/demo/demo.sh").is_file() && repo().join("deploy/demo/echo.py").is_file());
    // The demo seals its profile with authrelay's key: the same state volume.
    let state = services["authrelay"]["volumes"][0].as_str().unwrap();
    assert!(demo["volumes"].as_array().unwrap().iter().any(|v| v == state), "the demo mounts {state}");

    // The egress guard refuses private addresses unless allowed: the echo is
    // on the compose network, whose subnet must be allowed.
    let subnet: IpNet =
        compose["networks"]["default"]["ipam"]["config"][0]["subnet"].as_str().unwrap().parse().unwrap();
    let allowed = services["authrelay"]["environment"]["AUTHRELAY_ALLOW_PRIVATE_DESTINATIONS"].as_str().unwrap();
    let allowed: Vec<IpNet> = allowed.split(',').map(|c| c.trim().parse().unwrap()).collect();
    assert!(allowed.iter().any(|a| a.contains(&subnet)), "{subnet} is not within {allowed:?}");
}

#[test]
fn the_image_reports_healthy_only_once_readyz_answers_200() {
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let healthcheck = dockerfile.lines().find(|l| l.starts_with("HEALTHCHECK")).expect("a HEALTHCHECK");
    // /dev/tcp is bash's: Debian's /bin/sh (dash) cannot open it.
    assert!(healthcheck.contains("/bin/bash") && healthcheck.contains("GET /readyz"), "{healthcheck}");
    let compose = compose();
    assert!(compose["services"]["authrelay"].get("healthcheck").is_none(), "compose keeps the image's check");
}

/// `deploy/demo/echo.py` on a free port of 127.0.0.1; killed when dropped.
struct Echo {
    addr: String,
    _child: tokio::process::Child,
}

impl Echo {
    async fn start() -> Self {
        let mut child = tokio::process::Command::new("python3")
            .arg(repo().join("deploy/demo/echo.py"))
            .args(["0", "127.0.0.1"])
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await.unwrap().unwrap();
        let addr =
            first.and_then(|l| l.strip_prefix("echo: listening on ").map(str::to_owned)).expect("the echo listens");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { addr, _child: child }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_demo_creates_a_profile_sends_a_job_and_shows_the_header_arrived_redacted() {
    let app = spawn_worker().await;
    let echo = Echo::start().await;
    let token = "demo-token-5b1d0c9e7a";
    let binary_dir = PathBuf::from(env!("CARGO_BIN_EXE_authrelay")).parent().unwrap().to_owned();
    let run_demo = || {
        let mut command = tokio::process::Command::new("sh");
        command
            .arg(repo().join("deploy/demo/demo.sh"))
            .current_dir(&app.env.state_dir.0)
            .env_clear()
            .env("PATH", format!("{}:{}", binary_dir.display(), std::env::var("PATH").unwrap_or_default()))
            .envs(&app.env.vars)
            .env("AUTHRELAY_LOG", "warn")
            .env("DEMO_TARGET_URL", format!("http://{}/crm/contacts?phone=%2B15550100", echo.addr))
            .env("DEMO_TOKEN", token)
            .kill_on_drop(true);
        async move { tokio::time::timeout(Duration::from_secs(60), command.output()).await.expect("the demo ends").unwrap() }
    };

    let out = run_demo().await;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{said}"); // what a newcomer sees (`-- --nocapture`)
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("created the bearer profile \"Demo CRM\""), "{said}");
    assert!(said.contains(r#""authorization": "Bearer [REDACTED]""#), "the echo saw the header: {said}");
    assert!(said.contains("the target received the profile's Authorization header"), "{said}");
    assert!(said.contains(r#""outcome": "succeeded""#), "{said}");
    assert!(!said.contains(token), "the token is never printed: {said}");

    // Run again (a second `docker compose up`): the profile is reused.
    let again = run_demo().await;
    let said = String::from_utf8_lossy(&again.stdout).into_owned();
    assert_eq!(again.status.code(), Some(0), "{said}");
    assert!(said.contains("reusing the bearer profile \"Demo CRM\""), "{said}");
    app.stop().await;
}
