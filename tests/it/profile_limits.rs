//! `limits` on a profile (contract §9) through the API and the CLI: set on
//! create, shown on every read, replaced or removed by PATCH (a new version
//! and a `profile.updated` event, so workers pick them up), refused with a
//! 422 naming the field when they are not limits, and nothing stored then.

use authrelay_testkit::app::spawn_api;
use serde_json::{Value, json};

use crate::authrelay;

fn bearer(name: &str, limits: Value) -> Value {
    json!({"name": name, "type": "bearer", "config": {"token": "limits-token-0123456789"}, "limits": limits})
}

#[tokio::test]
async fn limits_are_set_shown_replaced_and_removed() {
    let app = spawn_api().await;
    let base = app.profiles_url("acme");
    let path = |id: &str| format!("/v1/workspaces/acme/auth-profiles/{id}");

    let (status, created) =
        app.post("/v1/workspaces/acme/auth-profiles", bearer("CRM", json!({"rate_per_s": 10, "burst": 5}))).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["limits"], json!({"rate_per_s": 10.0, "burst": 5}));
    let id = created["id"].as_str().unwrap().to_owned();
    let (_, read) = app.get(&path(&id)).await;
    assert_eq!(read["limits"], created["limits"]);
    let listed: Value = app.http.get(&base).bearer_auth(&app.token).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["items"][0]["limits"], created["limits"], "list items show limits too");

    // A PATCH without limits keeps them; with an object replaces them whole.
    let (_, renamed) = app.patch(&path(&id), json!({"name": "CRM v2"})).await;
    assert_eq!(renamed["limits"], created["limits"]);
    let (status, replaced) = app.patch(&path(&id), json!({"limits": {"max_concurrency": 4}})).await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["limits"], json!({"max_concurrency": 4}));
    assert_eq!(replaced["version"], 3, "a change of limits is a new version (workers reload it)");
    let (_, removed) = app.patch(&path(&id), json!({"limits": null})).await;
    assert_eq!(removed["limits"], Value::Null);
    assert_eq!(removed["version"], 4);

    // The audit names the field, never more.
    let (_, audit) = app.get(&format!("/v1/workspaces/acme/audit?profile_id={id}")).await;
    let changes: Vec<&Value> = audit["items"].as_array().unwrap().iter().map(|i| &i["fields"]).collect();
    assert!(changes.iter().filter(|f| f.as_array().unwrap().contains(&json!("limits"))).count() >= 3, "{audit}");

    // An unlimited profile reads limits: null.
    let (_, open) = app.post("/v1/workspaces/acme/auth-profiles", bearer("Open", Value::Null)).await;
    assert_eq!(open["limits"], Value::Null);
    let (_, open) = app
        .post(
            "/v1/workspaces/acme/auth-profiles",
            json!({"name": "Plain", "type": "bearer", "config": {"token": "t-0123456789"}}),
        )
        .await;
    assert_eq!(open["limits"], Value::Null);
    app.stop().await;
}

#[tokio::test]
async fn what_is_not_a_limit_is_a_422_naming_the_field_and_nothing_is_stored() {
    let app = spawn_api().await;
    let cases = [
        (json!({"rate_per_s": 0}), "limits.rate_per_s"),
        (json!({"rate_per_s": -5}), "limits.rate_per_s"),
        (json!({"rate_per_s": "10"}), "limits.rate_per_s"),
        (json!({"rate_per_s": 1e9}), "limits.rate_per_s"),
        (json!({"rate_per_s": 10, "burst": 0}), "limits.burst"),
        (json!({"rate_per_s": 10, "burst": 2.5}), "limits.burst"),
        (json!({"burst": 3}), "limits.burst"),
        (json!({"max_concurrency": 0}), "limits.max_concurrency"),
        (json!({"max_concurrency": -1}), "limits.max_concurrency"),
        (json!({"rate_per_s": 10, "per_minute": 5}), "limits.per_minute"),
        (json!([10]), "limits"),
        (json!("fast"), "limits"),
    ];
    for (limits, field) in &cases {
        let (status, body) = app.post("/v1/workspaces/acme/auth-profiles", bearer("Bad", limits.clone())).await;
        assert_eq!(status, 422, "{limits}: {body}");
        assert_eq!(body["error"], "validation_failed");
        let fields: Vec<&str> =
            body["details"].as_array().unwrap().iter().filter_map(|d| d["field"].as_str()).collect();
        assert_eq!(fields, [*field], "{limits}: {body}");
    }
    let (_, page) = app.get("/v1/workspaces/acme/auth-profiles").await;
    assert_eq!(page["items"], json!([]), "nothing stored");

    let (_, created) = app.post("/v1/workspaces/acme/auth-profiles", bearer("Good", json!({"rate_per_s": 2}))).await;
    let path = format!("/v1/workspaces/acme/auth-profiles/{}", created["id"].as_str().unwrap());
    let (status, body) = app.patch(&path, json!({"limits": {"max_concurrency": 0}})).await;
    assert_eq!((status, body["details"][0]["field"].as_str()), (422, Some("limits.max_concurrency")), "{body}");
    let (_, kept) = app.get(&path).await;
    assert_eq!((kept["limits"].clone(), kept["version"].as_i64()), (json!({"rate_per_s": 2.0}), Some(1)));
    app.stop().await;
}

#[test]
fn the_cli_sets_and_removes_limits() {
    let env = authrelay_testkit::TestEnv::new();
    let bin = authrelay(&env);
    let file = env.state_dir.0.join("bearer.json");
    std::fs::write(&file, r#"{"token": "cli-limits-token-0123"}"#).unwrap();
    let file = file.display().to_string();
    let run = |args: &[&str]| {
        let out = bin.output(args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = run(&[
        "profiles",
        "create",
        "-w",
        "acme",
        "--name",
        "CRM",
        "--type",
        "bearer",
        "--config-file",
        &file,
        "--limits",
        r#"{"rate_per_s": 10, "max_concurrency": 2}"#,
    ]);
    assert!(ok, "{stderr}");
    let created: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(created["limits"], json!({"rate_per_s": 10.0, "max_concurrency": 2}));
    let id = created["id"].as_str().unwrap().to_owned();

    let (ok, _, stderr) = run(&["profiles", "update", "-w", "acme", &id, "--limits", r#"{"burst": 0}"#]);
    assert!(!ok);
    assert!(stderr.contains("limits.burst"), "{stderr}");
    let (ok, _, stderr) = run(&["profiles", "update", "-w", "acme", &id, "--limits", "ten per second"]);
    assert!(!ok && stderr.contains("--limits"), "{stderr}");

    let (ok, stdout, stderr) = run(&["profiles", "update", "-w", "acme", &id, "--limits", "null"]);
    assert!(ok, "{stderr}");
    let updated: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(updated["limits"], Value::Null);
}
