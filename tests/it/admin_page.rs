//! The admin page (`/ui/`): how it is served, and the page itself in a real
//! browser — headless Chromium (Debian's `chromium`) driven by
//! `ui-tests/admin_page.mjs` (playwright-core) against the real app, with a
//! workspace whose profiles real jobs made healthy, failing and deauthorized,
//! and keys and certificates made here for the profiles the page creates.

use std::path::Path;
use std::time::{Duration, Instant};

use authrelay::app::Roles;
use authrelay::job::Phase;
use authrelay_testkit::app::spawn_api;
use authrelay_testkit::idp::TestKey;
use authrelay_testkit::tls::TestCa;
use authrelay_testkit::{JobExt as _, TestApp, TestEnv, eventually, job};
use serde_json::json;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::WAIT;

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// The script stops itself after 240 s; this is the backstop.
const BROWSER_TESTS_BUDGET: Duration = Duration::from_secs(300);

#[tokio::test]
async fn the_page_loads_without_a_token_under_a_strict_policy() {
    let app = spawn_api().await;
    for (path, content_type, cache) in [
        ("/ui/", "text/html; charset=utf-8", "no-store"),
        ("/ui/index.html", "text/html; charset=utf-8", "no-store"),
        ("/ui/app.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/ui/limits.js", "text/javascript; charset=utf-8", "no-cache"),
        ("/ui/app.css", "text/css; charset=utf-8", "no-cache"),
        ("/ui/favicon.svg", "image/svg+xml", "no-cache"),
    ] {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(header("content-type"), content_type, "{path}");
        assert_eq!(header("content-security-policy"), CSP, "{path}");
        assert_eq!(header("x-frame-options"), "DENY", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("cache-control"), cache, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_assets_are_404_and_unchanged_ones_revalidate() {
    let app = spawn_api().await;
    let missing = app.http.get(app.url("/ui/secrets.txt")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-security-policy"], CSP);

    let first = app.http.get(app.url("/ui/app.js")).send().await.unwrap();
    let etag = first.headers()["etag"].clone();
    let again = app.http.get(app.url("/ui/app.js")).header("If-None-Match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);

    let bare = reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let redirect = bare.get(app.url("/ui")).send().await.unwrap();
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/ui/");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_admin_page_works_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(
        root.join("ui-tests/node_modules/playwright-core").is_dir(),
        "the browser tests need playwright-core: run `npm ci --prefix ui-tests`"
    );
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(Path::new(&chromium).exists(), "the browser tests need Chromium at {chromium}: `apt-get install chromium`");
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_HEALTH_FLUSH_INTERVAL", "200ms");
    let app = TestApp::start(env, Roles::ALL).await;
    let (target, health_ws) = profiles_in_every_state(&app).await;

    let started = Instant::now();
    let run = tokio::process::Command::new("node")
        .arg(root.join("ui-tests/admin_page.mjs"))
        .current_dir(root)
        .env("AUTHRELAY_UI_URL", app.url("/ui/"))
        .env("AUTHRELAY_UI_TOKEN", &app.token)
        .env("AUTHRELAY_UI_HEALTH_WS", &health_ws)
        .env("AUTHRELAY_UI_KEYS", keys_and_certificates().to_string())
        .env("CHROMIUM", &chromium)
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(BROWSER_TESTS_BUDGET, run)
        .await
        .expect("the browser tests finish in time")
        .expect("node runs (is Node.js installed?)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "the browser tests failed ({}):\n{stdout}\n{stderr}", output.status);
    eprintln!("browser tests passed in {:.1} s", started.elapsed().as_secs_f64());
    drop(target);
    app.stop().await;
}

/// PEMs for the profiles the page creates (`AUTHRELAY_UI_KEYS`): client
/// certificates issued by a test CA (one that expires in 5 days, to be
/// flagged), a key that belongs to none of them (a 422), and signing keys in
/// PKCS#8: EC P-256 for `private_key_jwt`, RSA for a Google service account.
fn keys_and_certificates() -> serde_json::Value {
    let ca = TestCa::new("authrelay UI test CA");
    let client = ca.client("ui-client.example");
    let expiring = ca.client_until("ui-expiring.example", time::OffsetDateTime::now_utc() + time::Duration::days(5));
    let stranger = ca.client("ui-stranger.example");
    let (ec, rsa) = (TestKey::ec(), TestKey::rsa());
    json!({
        "ca_certificate": ca.certificate,
        "client": {"certificate": client.certificate, "private_key": client.private_key},
        "expiring": {"certificate": expiring.certificate, "private_key": expiring.private_key},
        "stranger_key": stranger.private_key,
        "ec_key": ec.private_pem,
        "rsa_key": rsa.private_pem,
    })
}

/// A workspace whose profiles real jobs made `ok` (and one in use by an
/// action), `failing` and `deauthorized`, and one no job used; the browser
/// test reads it (`AUTHRELAY_UI_HEALTH_WS`). Returns the target and the workspace.
async fn profiles_in_every_state(app: &TestApp) -> (MockServer, String) {
    let ws = format!("ui-health-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let target = MockServer::start().await;
    for (route, status) in [("/ok", 200), ("/refuses", 401), ("/down", 503)] {
        Mock::given(path(route)).respond_with(ResponseTemplate::new(status)).mount(&target).await;
    }
    let bearer =
        |name: &str| json!({"name": name, "type": "bearer", "config": {"token": format!("{name}-token-0123456789")}});
    let mut expected = Vec::new();
    for (name, route, jobs, state) in [
        ("Healthy CRM", "/ok", 2, "ok"),
        ("Refused key", "/refuses", 3, "deauthorized"),
        ("Flaky webhook", "/down", 1, "failing"),
        ("Idle", "", 0, "unused"),
    ] {
        let id = app.create_profile(&ws, bearer(name)).await;
        for n in 0..jobs {
            let to = format!("{}{route}", target.uri());
            let one = job(&format!("{ws}-{name}-{n}"), Phase::PostCall).to(&to).profile(&id).max_attempts(1);
            app.broker.publish_job(&one.with(json!({"workspace_id": ws}))).await;
            // One at a time: refusals count when they come in a row.
            app.results.next(WAIT).await;
        }
        if name == "Healthy CRM" {
            let reference = format!("/v1/workspaces/{ws}/references/during_call_action/book-slot");
            let (status, body) = app.put(&reference, json!({"profile_id": id, "name": "Book a slot"})).await;
            assert_eq!(status, 201, "{body}");
        }
        expected.push((id, state));
    }
    for (id, state) in expected {
        eventually(WAIT, format!("profile {id} is {state}"), async || {
            let (_, profile) = app.get(&format!("/v1/workspaces/{ws}/auth-profiles/{id}")).await;
            (profile["health"]["state"] == state).then_some(())
        })
        .await;
    }
    (target, ws)
}
