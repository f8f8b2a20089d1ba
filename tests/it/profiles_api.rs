//! The admin API for Auth Profiles, against the real PostgreSQL and HTTP server.

use std::collections::HashSet;

use authrelay::app::{App, Roles};
use authrelay::profile::ProfileStore;
use authrelay::profile::auth_config::Credential;
use authrelay_testkit::app::spawn_api;
use authrelay_testkit::{TestApp, TestEnv, new_key};
use secrecy::ExposeSecret as _;
use serde_json::{Value, json};

const BEARER_SECRET: &str = "bearer-secret-AAAA-1f2e";
const PAIR_SECRET: &str = "pair-secret-BBBB-9c8d";
const BASIC_SECRET: &str = "basic-secret-CCCC-7a6b";
const CLIENT_SECRET: &str = "client-secret-DDDD-5e4f";

fn all_types() -> Vec<(Value, &'static str)> {
    vec![
        (json!({"name": "CRM bearer", "type": "bearer", "config": {"token": BEARER_SECRET}}), BEARER_SECRET),
        (
            json!({"name": "Keys", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "X-Api-Key", "value": PAIR_SECRET}]}}),
            PAIR_SECRET,
        ),
        (
            json!({"name": "Basic", "type": "basic", "config": {"username": "svc", "password": BASIC_SECRET}}),
            BASIC_SECRET,
        ),
        (
            json!({"name": "OAuth", "type": "oauth2_client_credentials", "config": {
                "client_id": "cid", "client_secret": CLIENT_SECRET, "token_endpoint": "https://auth.example.com/token",
                "scope": "read", "client_auth": "post"}}),
            CLIENT_SECRET,
        ),
    ]
}

#[tokio::test]
async fn each_type_is_created_and_read_back_masked() {
    let app = spawn_api().await;
    for (body, secret) in all_types() {
        let (status, created) = app.post("/v1/workspaces/acme/auth-profiles", body.clone()).await;
        assert_eq!(status, 201, "{created}");
        assert_eq!(created["version"], 1);
        assert_eq!(created["type"], body["type"]);
        assert!(created["created_at"].is_string() && created["updated_at"].is_string());
        let id = created["id"].as_str().unwrap();
        let (status, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
        assert_eq!(status, 200);
        let text = shown.to_string();
        assert!(!text.contains(secret), "secret leaked: {text}");
        let last4 = &secret[secret.len() - 4..];
        assert!(text.contains(&format!("••••{last4}")), "masked hint missing: {text}");
    }
    let (_, list) = app.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    for (_, secret) in all_types() {
        assert!(!list.to_string().contains(secret));
    }
    app.stop().await;
}

#[tokio::test]
async fn secret_bytes_appear_nowhere_in_a_pg_dump() {
    let app = spawn_api().await;
    for (body, _) in all_types() {
        app.create_profile("acme", body).await;
    }
    let output = std::process::Command::new("pg_dump")
        .args(["-h", "127.0.0.1", "-U", "postgres", "--data-only", &app.env.db.name])
        .output()
        .expect("pg_dump runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let dump = String::from_utf8_lossy(&output.stdout);
    assert!(dump.contains("auth_profile_secrets"), "the dump has the data");
    for (_, secret) in all_types() {
        assert!(!dump.contains(secret), "{secret} found in pg_dump");
        // not even the distinctive middle part
        assert!(!dump.contains(&secret[secret.len() - 9..]), "part of {secret} found in pg_dump");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_tampered_ciphertext_fails_closed_with_a_clear_error() {
    let app = spawn_api().await;
    let id = app.create_profile("acme", all_types()[0].0.clone()).await;
    let db = app.env.db.client().await;
    db.execute(
        "UPDATE auth_profile_secrets SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)",
        &[],
    )
    .await
    .unwrap();
    let (status, body) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "profile_unusable");
    assert!(body["message"].as_str().unwrap().contains("failed authentication"), "{body}");
    assert!(!body.to_string().contains(BEARER_SECRET));
    app.stop().await;
}

#[tokio::test]
async fn ciphertexts_swapped_between_profiles_fail_to_open() {
    let app = spawn_api().await;
    let a = app
        .create_profile("acme", json!({"name": "a", "type": "bearer", "config": {"token": "token-of-a-123456"}}))
        .await;
    let b = app
        .create_profile("acme", json!({"name": "b", "type": "bearer", "config": {"token": "token-of-b-123456"}}))
        .await;
    let db = app.env.db.client().await;
    // Give a's row b's ciphertext and nonce: a valid ciphertext in the wrong row.
    db.execute(
        "UPDATE auth_profile_secrets s SET nonce = o.nonce, ciphertext = o.ciphertext
         FROM auth_profile_secrets o WHERE s.profile_id = $1::text::uuid AND o.profile_id = $2::text::uuid",
        &[&a, &b],
    )
    .await
    .unwrap();
    let (status, body) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{a}")).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"], "profile_unusable");
    let (status, _) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{b}")).await;
    assert_eq!(status, 200, "the untouched profile still opens");
    app.stop().await;
}

#[tokio::test]
async fn start_fails_when_a_stored_secret_is_under_a_key_missing_from_the_ring() {
    let app = spawn_api().await;
    app.create_profile("acme", all_types()[0].0.clone()).await;
    let mut env = TestEnv::new();
    env.set("AUTHRELAY_DATABASE_URL", app.env.db.url()).set("AUTHRELAY_MASTER_KEYS", new_key("other"));
    let err = App::build(env.config(), Roles::ALL).await.err().expect("start is refused");
    let message = format!("{err:#}");
    assert!(message.contains("k1") && message.contains("AUTHRELAY_MASTER_KEYS"), "{message}");
    app.stop().await;
}

#[tokio::test]
async fn rotation_reencrypts_everything_and_old_keys_can_then_be_dropped() {
    let app = spawn_api().await;
    let old_key = app.env.vars["AUTHRELAY_MASTER_KEYS"].clone();
    let mut ids = Vec::new();
    for (body, _) in all_types() {
        ids.push(app.create_profile("acme", body).await);
    }
    let new = new_key("k2");
    let pool = app.store.pool().clone();
    let both = ProfileStore::new(
        pool.clone(),
        std::sync::Arc::new(authrelay::crypto::KeyRing::parse(&format!("{new},{old_key}")).unwrap()),
    );
    let report = both.rotate_keys().await.unwrap();
    assert_eq!((report.profiles, report.secrets), (4, 4));
    let again = both.rotate_keys().await.unwrap();
    assert_eq!((again.profiles, again.secrets), (0, 0), "rotation is idempotent");

    let only_new = ProfileStore::new(pool, std::sync::Arc::new(authrelay::crypto::KeyRing::parse(&new).unwrap()));
    assert!(only_new.missing_key_ids().await.unwrap().is_empty());
    let profile = only_new.get("acme", ids[0].parse().unwrap()).await.unwrap();
    let Credential::Bearer { token } = profile.config.credential else { panic!("bearer") };
    assert_eq!(token.expose_secret(), BEARER_SECRET);
    app.stop().await;
}

#[tokio::test]
async fn duplicate_names_are_a_conflict_ignoring_case() {
    let app = spawn_api().await;
    app.create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "t-123"}})).await;
    let (status, body) = app
        .post("/v1/workspaces/acme/auth-profiles", json!({"name": "crm", "type": "bearer", "config": {"token": "t"}}))
        .await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "name_taken");
    // the same name in another workspace is fine
    app.create_profile("other", json!({"name": "CRM", "type": "bearer", "config": {"token": "t-123"}})).await;
    // renaming onto a taken name is a conflict too
    let id = app.create_profile("acme", json!({"name": "Second", "type": "bearer", "config": {"token": "t"}})).await;
    let (status, _) = app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"name": "Crm"})).await;
    assert_eq!(status, 409);
    app.stop().await;
}

#[tokio::test]
async fn invalid_bodies_get_a_useful_4xx_and_store_nothing() {
    let app = spawn_api().await;
    let url = app.profiles_url("acme");
    let raw = |body: &'static str, content_type: &'static str| {
        app.http.post(&url).bearer_auth(&app.token).header("content-type", content_type).body(body).send()
    };
    let resp = raw("{not json", "application/json").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "bad_request");
    let resp = raw(r#"{"name":"x","type":"bearer","config":{"token":"t"}}"#, "text/plain").await.unwrap();
    assert_eq!(resp.status(), 415);

    let cases = [
        (json!({"name": "x", "type": "kerberos", "config": {}}), "type"),
        (json!({"name": "", "type": "bearer", "config": {"token": "t"}}), "name"),
        (json!({"name": "x".repeat(201), "type": "bearer", "config": {"token": "t"}}), "name"),
        (json!({"name": "x", "type": "bearer", "config": {}}), "config.token"),
        (json!({"name": "x", "type": "basic", "config": {"username": "u"}}), "config.password"),
        (
            json!({"name": "x", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "Bad Header", "value": "v"}]}}),
            "config.pairs[0].key",
        ),
        (
            json!({"name": "x", "type": "api_key", "config": {"method": "smoke", "pairs": [{"key": "k", "value": "v"}]}}),
            "config.method",
        ),
        (
            json!({"name": "x", "type": "oauth2_client_credentials", "config": {"client_id": "i", "client_secret": "s", "token_endpoint": "/relative"}}),
            "config.token_endpoint",
        ),
        (json!({"name": "x", "type": "bearer", "config": {"token": "••••1f2e"}}), "config.token"),
    ];
    for (body, field) in cases {
        let (status, err) = app.post("/v1/workspaces/acme/auth-profiles", body.clone()).await;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(err["error"], "validation_failed");
        let fields: Vec<&str> =
            err["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{body}: expected {field} in {err}");
        assert!(err["message"].as_str().unwrap().contains(field));
    }
    let (status, err) = app
        .post(
            "/v1/workspaces/acme/auth-profiles",
            json!({"name": "x", "type": "bearer", "config": {"token": "t"}, "extra": 1}),
        )
        .await;
    assert_eq!(status, 422, "{err}");
    assert!(err["message"].as_str().unwrap().contains("extra"));

    let (_, list) = app.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_or_missing_admin_token_is_401() {
    let app = spawn_api().await;
    let url = app.profiles_url("acme");
    let missing = app.http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "unauthorized");
    let wrong = app.http.get(&url).bearer_auth(format!("{}x", app.token)).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    let basic = app.http.get(&url).basic_auth("admin", Some(&app.token)).send().await.unwrap();
    assert_eq!(basic.status(), 401);
    // health endpoints need no token
    assert_eq!(app.http.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn another_workspaces_profile_is_not_found() {
    let app = spawn_api().await;
    let id = app.create_profile("acme", all_types()[0].0.clone()).await;
    let base = format!("/v1/workspaces/globex/auth-profiles/{id}");
    assert_eq!(app.get(&base).await.0, 404);
    assert_eq!(app.patch(&base, json!({"name": "stolen"})).await.0, 404);
    assert_eq!(app.delete(&base).await.0, 404);
    assert_eq!(app.get(&format!("{base}/usage")).await.0, 404);
    let (status, body) =
        app.put("/v1/workspaces/globex/references/flow_node/n1", json!({"profile_id": id, "name": "node"})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(app.get("/v1/workspaces/acme/auth-profiles/../../etc/passwd").await.0, 404);
    assert_eq!(app.get("/v1/workspaces/acme/auth-profiles/not-a-uuid").await.0, 404);
    let (status, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!((status, shown["name"].as_str()), (200, Some("CRM bearer")), "unchanged");
    app.stop().await;
}

#[tokio::test]
async fn search_and_pagination_visit_every_item_exactly_once() {
    let app = spawn_api().await;
    let mut crm = HashSet::new();
    for i in 0..23 {
        let name = if i % 3 == 0 { format!("CRM lookup {i:02}") } else { format!("Webhook {i:02}") };
        let body = if i % 2 == 0 {
            json!({"name": name, "type": "bearer", "config": {"token": "t"}})
        } else {
            json!({"name": name, "type": "basic", "config": {"username": "u", "password": "p"}})
        };
        let id = app.create_profile("acme", body).await;
        if i % 3 == 0 {
            crm.insert(id);
        }
    }
    let collect = |query: &'static str| {
        let app = &app;
        async move {
            let mut seen = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut path = format!("/v1/workspaces/acme/auth-profiles?limit=5{query}");
                if let Some(c) = &cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                let (status, page) = app.get(&path).await;
                assert_eq!(status, 200, "{page}");
                let items = page["items"].as_array().unwrap();
                assert!(items.len() <= 5);
                seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
                match page["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_owned()),
                    None => break,
                }
            }
            seen
        }
    };
    let all = collect("").await;
    assert_eq!(all.len(), 23);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 23, "no item twice");
    let found = collect("&q=crm").await;
    assert_eq!(found.into_iter().collect::<HashSet<_>>(), crm, "case-insensitive substring");
    let bearer = collect("&type=bearer").await;
    assert_eq!(bearer.len(), 12);
    assert_eq!(collect("&q=%25").await.len(), 0, "% is matched literally");

    for bad in ["limit=0", "limit=201", "limit=abc", "type=nope", "cursor=garbage"] {
        let (status, body) = app.get(&format!("/v1/workspaces/acme/auth-profiles?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn delete_is_refused_with_the_usage_summary_while_referenced_then_allowed() {
    let app = spawn_api().await;
    let id = app.create_profile("acme", all_types()[0].0.clone()).await;
    let refs = [
        ("pre_call_action", "a1", "Fetch CRM"),
        ("during_call_action", "a2", "Book slot"),
        ("post_call_action", "a3", "Send summary"),
        ("flow_node", "n1", "API node"),
    ];
    for (kind, ref_id, name) in refs {
        let (status, body) = app
            .put(&format!("/v1/workspaces/acme/references/{kind}/{ref_id}"), json!({"profile_id": id, "name": name}))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, again) =
        app.put("/v1/workspaces/acme/references/flow_node/n1", json!({"profile_id": id, "name": "API node v2"})).await;
    assert_eq!(status, 200, "replacing a reference is not a create: {again}");

    let (status, body) = app.delete(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(status, 409);
    assert_eq!(body["error"], "profile_in_use");
    let usage = &body["usage"];
    assert_eq!(usage["in_use"], true);
    assert_eq!(usage["pre_call_actions"], json!([{"id": "a1", "name": "Fetch CRM"}]));
    assert_eq!(usage["during_call_actions"], json!([{"id": "a2", "name": "Book slot"}]));
    assert_eq!(usage["post_call_actions"], json!([{"id": "a3", "name": "Send summary"}]));
    assert_eq!(usage["flow_nodes"], json!([{"id": "n1", "name": "API node v2"}]));
    let (_, usage_endpoint) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}/usage")).await;
    assert_eq!(&usage_endpoint, usage);

    // the database itself refuses, whatever the API does
    let db = app.env.db.client().await;
    let err = db.execute("DELETE FROM auth_profiles WHERE id = $1::text::uuid", &[&id]).await.unwrap_err();
    assert_eq!(err.code(), Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION));

    for (kind, ref_id, _) in refs {
        assert_eq!(app.delete(&format!("/v1/workspaces/acme/references/{kind}/{ref_id}")).await.0, 204);
    }
    assert_eq!(app.delete("/v1/workspaces/acme/references/flow_node/n1").await.0, 404);
    let (_, usage) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}/usage")).await;
    assert_eq!(usage["in_use"], false);
    assert_eq!(app.delete(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await.0, 204);
    assert_eq!(app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await.0, 404);
    app.stop().await;
}

async fn outbox(db: &tokio_postgres::Client, id: String) -> Vec<Value> {
    db.query("SELECT payload FROM profile_events_outbox WHERE profile_id = $1::text::uuid ORDER BY id", &[&id])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Value>(0))
        .collect()
}

#[tokio::test]
async fn patch_bumps_the_version_keeps_omitted_secrets_and_writes_one_outbox_row() {
    let app = spawn_api().await;
    let (body, _) = all_types().remove(3);
    let id = app.create_profile("acme", body).await;
    let db = app.env.db.client().await;
    assert_eq!(outbox(&db, id.clone()).await.len(), 1, "create wrote its event");

    let (status, patched) =
        app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"scope": "write"}})).await;
    assert_eq!(status, 200, "{patched}");
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["config"]["scope"], "write");
    assert_eq!(patched["config"]["client_id"], "cid");
    let events = outbox(&db, id.clone()).await;
    assert_eq!(events.len(), 2, "exactly one more outbox row");
    assert_eq!(events[1]["type"], "profile.updated");
    assert_eq!(events[1]["version"], 2);
    assert_eq!(events[1]["workspace_id"], "acme");
    assert_eq!(events[1]["profile_id"], id.as_str());

    let stored = app.store.get("acme", id.parse().unwrap()).await.unwrap();
    let Credential::OAuth2ClientCredentials(c) = &stored.config.credential else { panic!() };
    assert_eq!(c.client_secret.as_ref().unwrap().expose_secret(), CLIENT_SECRET, "the omitted secret is kept");

    // A masked value sent back is refused, never stored over the secret.
    let (status, _) = app
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{id}"),
            json!({"config": {"client_secret": patched["config"]["client_secret"]}}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(outbox(&db, id.clone()).await.len(), 2, "a refused patch writes no event");

    // Changing the type needs the whole new config.
    let (status, _) = app.patch(&format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"type": "bearer"})).await;
    assert_eq!(status, 422);
    let (status, changed) = app
        .patch(
            &format!("/v1/workspaces/acme/auth-profiles/{id}"),
            json!({"type": "bearer", "config": {"token": "new-token-123456"}}),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((changed["type"].as_str(), changed["version"].as_i64()), (Some("bearer"), Some(3)));

    // The audit trail names the actor and the changed fields, never a value.
    let audit = db
        .query("SELECT actor, action, details FROM audit_log WHERE profile_id = $1::text::uuid ORDER BY id", &[&id])
        .await
        .unwrap();
    let actions: Vec<String> = audit.iter().map(|r| r.get::<_, String>(1)).collect();
    assert_eq!(actions, ["profile.created", "profile.updated", "profile.updated"]);
    assert!(audit.iter().all(|r| r.get::<_, String>(0) == "test-admin"));
    let details: Vec<Value> = audit.iter().map(|r| r.get(2)).collect();
    assert_eq!(details[1]["changed"], json!(["config.scope"]));
    let all = format!("{details:?}");
    assert!(!all.contains(CLIENT_SECRET) && !all.contains("new-token-123456"));
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = spawn_api().await;
    let (status, ready) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert_eq!(ready["checks"]["database"], "ok");
    app.create_profile("acme", all_types()[0].0.clone()).await;
    let metrics = app.metrics().await;
    assert!(metrics.contains(r#"authrelay_profile_changes_total{change="created"} 1"#), "{metrics}");
    assert!(metrics.contains(r#"route="/v1/workspaces/{ws}/auth-profiles""#), "{metrics}");
    assert!(!metrics.contains("acme"), "no workspace in labels");
    app.stop().await;
}

#[tokio::test]
async fn the_database_is_created_when_missing() {
    let env = TestEnv::new();
    let name = env.db.name.clone();
    let app = TestApp::start(env, Roles { worker: false, api: true }).await;
    let db = app.env.db.client().await;
    let row = db.query_one("SELECT current_database()", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), name);
    app.stop().await;
}

#[tokio::test]
async fn testing_an_oauth_profile_fetches_a_fresh_token_and_never_shows_it() {
    use wiremock::matchers::{body_string_contains, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let app = spawn_api().await;
    let idp = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .and(body_string_contains("grant_type=client_credentials"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"access_token": "at-very-secret-123456", "token_type": "Bearer", "expires_in": 3600, "scope": "read"}),
        ))
        .expect(2)
        .mount(&idp)
        .await;
    let id = app
        .create_profile(
            "acme",
            json!({"name": "IdP", "type": "oauth2_client_credentials", "config": {
                "client_id": "cid", "client_secret": CLIENT_SECRET, "token_endpoint": format!("{}/token", idp.uri())}}),
        )
        .await;
    for _ in 0..2 {
        let (status, report) = app.post(&format!("/v1/workspaces/acme/auth-profiles/{id}/test"), json!({})).await;
        assert_eq!(status, 200, "{report}");
        assert_eq!(report["ok"], true);
        assert_eq!(report["check"], "token_fetched");
        assert_eq!(report["expires_in"], 3600);
        assert_eq!(report["scope"], "read");
        assert!(!report.to_string().contains("at-very-secret") && !report.to_string().contains(CLIENT_SECRET));
    }
    app.stop().await;
}

#[tokio::test]
async fn testing_a_profile_against_a_url_sends_its_credentials_there() {
    use wiremock::matchers::{header, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let app = spawn_api().await;
    let target = MockServer::start().await;
    Mock::given(path("/me"))
        .and(header("authorization", format!("Bearer {BEARER_SECRET}")))
        .respond_with(ResponseTemplate::new(200))
        .expect(1)
        .mount(&target)
        .await;
    let id = app.create_profile("acme", all_types()[0].0.clone()).await;
    let (status, report) = app
        .post(&format!("/v1/workspaces/acme/auth-profiles/{id}/test"), json!({"url": format!("{}/me", target.uri())}))
        .await;
    assert_eq!((status, report["ok"].as_bool(), report["status"].as_u64()), (200, Some(true), Some(200)), "{report}");

    let (_, blocked) =
        app.post(&format!("/v1/workspaces/acme/auth-profiles/{id}/test"), json!({"url": "http://127.0.0.2:9/"})).await;
    assert_eq!(blocked["ok"], false);
    assert!(blocked["error"].as_str().unwrap().contains("not allowed"), "{blocked}");
    let (status, _) =
        app.post(&format!("/v1/workspaces/acme/auth-profiles/{id}/test"), json!({"url": "ftp://x"})).await;
    assert_eq!(status, 422);
    app.stop().await;
}
