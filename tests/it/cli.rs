//! The `authrelay` binary, run as an operator would.

use std::process::{Command, Output, Stdio};

use authrelay_testkit::{Binary, TestEnv};
use serde_json::Value;

use crate::authrelay;

/// The binary run as an operator would, against a test environment of its own.
struct Cli {
    env: TestEnv,
    bin: Binary,
}

impl Cli {
    fn new() -> Self {
        let env = TestEnv::new();
        Self { bin: authrelay(&env), env }
    }

    fn command(&self, args: &[&str]) -> Command {
        self.bin.command(args)
    }

    fn run(&self, args: &[&str]) -> Output {
        self.bin.output(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }

    fn write(&self, name: &str, content: &str) -> String {
        let path = self.env.state_dir.0.join(name);
        std::fs::write(&path, content).unwrap();
        path.display().to_string()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn two_concurrent_migrate_runs_both_succeed() {
    let cli = Cli::new();
    let a = cli.command(&["migrate"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let b = cli.command(&["migrate"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let said = format!("{}{}", String::from_utf8_lossy(&a.stdout), String::from_utf8_lossy(&b.stdout));
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations")).unwrap().count();
    assert!(
        said.contains(&format!("applied {migrations} migration")) && said.contains("applied 0 migration"),
        "{said}"
    );
}

#[test]
fn profiles_are_managed_from_the_command_line_with_secrets_from_a_file() {
    let cli = Cli::new();
    let file = cli.write("bearer.json", r#"{"token": "cli-secret-token-9f8e"}"#);
    let created =
        cli.json(&["profiles", "create", "-w", "acme", "--name", "CRM", "--type", "bearer", "--config-file", &file]);
    assert_eq!(created["config"]["token"], "••••9f8e");
    let id = created["id"].as_str().unwrap().to_owned();

    let shown = cli.json(&["profiles", "show", "-w", "acme", &id]);
    assert_eq!(shown["name"], "CRM");
    assert!(!shown.to_string().contains("cli-secret-token"));

    let renamed = cli.json(&["profiles", "update", "-w", "acme", &id, "--name", "CRM v2"]);
    assert_eq!((renamed["name"].as_str(), renamed["version"].as_i64()), (Some("CRM v2"), Some(2)));
    assert_eq!(renamed["config"]["token"], "••••9f8e", "the secret is kept");

    let listed = cli.json(&["profiles", "list", "-w", "acme", "--q", "v2"]);
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    let usage = cli.json(&["profiles", "usage", "-w", "acme", &id]);
    assert_eq!(usage["in_use"], false);
    cli.json(&["profiles", "delete", "-w", "acme", &id]);
    let out = cli.run(&["profiles", "show", "-w", "acme", &id]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not found"));
}

#[test]
fn secrets_on_the_command_line_are_refused() {
    let cli = Cli::new();
    let out = cli.run(&[
        "profiles",
        "create",
        "-w",
        "acme",
        "--name",
        "x",
        "--type",
        "bearer",
        "--config",
        r#"{"token":"oops"}"#,
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("must not carry secrets") && !err.contains("oops"), "{err}");

    // Without a file and without a terminal to prompt on, it says how to give the secret.
    let out = cli.run(&["profiles", "create", "-w", "acme", "--name", "x", "--type", "bearer"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--config-file"), "{}", stderr(&out));

    // Secrets can come from standard input.
    let mut child = cli
        .command(&["profiles", "create", "-w", "acme", "--name", "x", "--type", "api_key", "--config-file", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"method":"query","pairs":[{"key":"api_key","value":"stdin-secret-1234"}]}"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("stdin-secret"));
}

#[test]
fn delete_of_a_profile_in_use_prints_the_usage_and_fails() {
    let cli = Cli::new();
    let file = cli.write("c.json", r#"{"token": "t-1234567890"}"#);
    let id = cli.json(&["profiles", "create", "-w", "acme", "--name", "p", "--type", "bearer", "--config-file", &file])
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        cli.env
            .db
            .client()
            .await
            .execute(
                "INSERT INTO auth_profile_references (workspace_id, kind, ref_id, name, profile_id)
                 VALUES ('acme', 'flow_node', 'n1', 'Lookup node', $1::text::uuid)",
                &[&id],
            )
            .await
            .unwrap();
    });
    let out = cli.run(&["profiles", "delete", "-w", "acme", &id]);
    assert_eq!(out.status.code(), Some(1));
    let usage: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(usage["flow_nodes"][0]["name"], "Lookup node");
}

#[test]
fn bad_configuration_ends_with_one_line_naming_what_to_fix() {
    let cli = Cli::new();
    let out =
        cli.command(&["profiles", "list", "-w", "acme"]).env("AUTHRELAY_MASTER_KEYS", "k1:tooshort").output().unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: AUTHRELAY_MASTER_KEYS"), "{err}");

    let out = cli
        .command(&["migrate"])
        .env("AUTHRELAY_DATABASE_URL", "postgres://postgres@127.0.0.1:1/nowhere")
        .env("AUTHRELAY_STARTUP_TIMEOUT_SECS", "1")
        .env("AUTHRELAY_LOG", "off")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("127.0.0.1:1/nowhere") && err.contains("AUTHRELAY_DATABASE_URL"), "{err}");
}

#[test]
fn keys_generate_and_rotate_retire_an_old_key() {
    let mut cli = Cli::new();
    let file = cli.write("c.json", r#"{"username": "u", "password": "rotate-me-123456"}"#);
    let id = cli.json(&["profiles", "create", "-w", "acme", "--name", "p", "--type", "basic", "--config-file", &file])
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let generated = cli.run(&["keys", "generate", "--id", "k2"]);
    assert!(generated.status.success());
    let new = String::from_utf8(generated.stdout).unwrap().trim().to_owned();
    assert!(new.starts_with("k2:"));

    let old = cli.env.vars["AUTHRELAY_MASTER_KEYS"].clone();
    cli.bin.set("AUTHRELAY_MASTER_KEYS", format!("{new},{old}"));
    let out = cli.run(&["keys", "rotate"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 1 secret(s) in 1 profile(s)"));
    let out = cli.run(&["keys", "rotate"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("re-encrypted 0 secret(s)"), "idempotent");

    cli.bin.set("AUTHRELAY_MASTER_KEYS", new);
    let shown = cli.json(&["profiles", "show", "-w", "acme", &id]);
    assert_eq!(shown["config"]["password"], "••••3456");
}

#[test]
fn signing_and_certificate_profiles_come_from_files_and_their_secrets_never_from_the_command_line() {
    let cli = Cli::new();
    let create = |name: &str, auth_type: &str, config: &str| {
        cli.run(&["profiles", "create", "-w", "acme", "--name", name, "--type", auth_type, "--config", config])
    };
    // Each new secret on argv is refused without being echoed.
    for (auth_type, config, secret) in [
        ("hmac", r#"{"scheme":"standard_webhooks","secret":"argv-hmac-secret"}"#, "argv-hmac-secret"),
        (
            "aws_sigv4",
            r#"{"access_key_id":"AKIAIOSFODNN7EXAMPLE","secret_access_key":"argv-aws-key","region":"eu-west-1","service":"lambda"}"#,
            "argv-aws-key",
        ),
        (
            "aws_sigv4",
            r#"{"access_key_id":"AKIAIOSFODNN7EXAMPLE","session_token":"argv-session","region":"eu-west-1","service":"lambda"}"#,
            "argv-session",
        ),
        ("mtls", r#"{"certificate":"-----BEGIN CERTIFICATE-----","private_key":"argv-pem"}"#, "argv-pem"),
        ("bearer", r#"{"client_certificate":{"certificate":"c","private_key":"argv-nested-pem"}}"#, "argv-nested-pem"),
    ] {
        let out = create("x", auth_type, config);
        assert!(!out.status.success(), "{auth_type}: {config}");
        let err = stderr(&out);
        assert!(err.contains("must not carry secrets") && !err.contains(secret), "{err}");
    }
    // Without a terminal, a missing secret is asked for by name; a key must come in a file.
    let out = create("x", "hmac", r#"{"scheme":"standard_webhooks"}"#);
    assert!(!out.status.success() && stderr(&out).contains("secret is required"), "{}", stderr(&out));
    let out = create("x", "mtls", r#"{"certificate":"-----BEGIN CERTIFICATE-----"}"#);
    assert!(!out.status.success() && stderr(&out).contains("private_key"), "{}", stderr(&out));

    // From files: created, masked, certificates shown by subject.
    let file = cli.write("hmac.json", r#"{"scheme":"custom","secret":"file-hmac-secret-1234","header":"X-Signature","algorithm":"sha256","encoding":"hex"}"#);
    let created =
        cli.json(&["profiles", "create", "-w", "acme", "--name", "Hook", "--type", "hmac", "--config-file", &file]);
    assert_eq!(created["config"]["secret"], "••••1234");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["cli-client".into()]).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, "cli-client");
    let certificate = params.self_signed(&key).unwrap();
    let config = serde_json::json!({"certificate": certificate.pem(), "private_key": key.serialize_pem()});
    let file = cli.write("mtls.json", &config.to_string());
    let created =
        cli.json(&["profiles", "create", "-w", "acme", "--name", "Cert", "--type", "mtls", "--config-file", &file]);
    assert_eq!(created["config"]["certificate"]["subject"], "CN=cli-client", "{created}");
    assert!(!created.to_string().contains("PRIVATE KEY"));
    let id = created["id"].as_str().unwrap();
    let out = cli.run(&["profiles", "update", "-w", "acme", id, "--replace-secret", "private_key"]);
    assert!(!out.status.success() && stderr(&out).contains("--config-file"), "{}", stderr(&out));
}
