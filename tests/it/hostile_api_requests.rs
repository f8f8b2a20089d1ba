//! Hostile admin-API requests: requests no client should make. Each is
//! refused with a clear 4xx and the JSON error shape, nothing is stored, and
//! no path is normalised into another route.

use std::collections::BTreeSet;

use authrelay_testkit::TestApp;
use authrelay_testkit::app::spawn_api;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::WAIT;

/// A request with any body and content type; the JSON error (or body) back.
async fn raw(app: &TestApp, method: &str, path: &str, content_type: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.http.request(method, app.url(path)).bearer_auth(&app.token).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.expect("the app answers");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Rows in every table a request could write to.
async fn stored(app: &TestApp) -> [i64; 4] {
    let db = app.env.db.client().await;
    let mut counts = [0; 4];
    for (i, table) in
        ["auth_profiles", "auth_profile_references", "profile_events_outbox", "audit_log"].iter().enumerate()
    {
        counts[i] = db.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0);
    }
    counts
}

async fn one_profile(app: &TestApp) -> String {
    app.create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "tok-0123456789abcdef"}}))
        .await
}

fn assert_error_shape(status: u16, body: &Value, what: &str) {
    assert!(body["error"].is_string() && body["message"].is_string(), "{what}: HTTP {status} with {body}");
}

#[tokio::test]
async fn bodies_over_256_kib_are_413_on_every_route_and_store_nothing() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let pad = "x".repeat(300 * 1024);
    let routes = [
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": pad}}),
        ),
        ("PATCH", format!("/v1/workspaces/acme/auth-profiles/{id}"), json!({"config": {"token": pad}})),
        ("PUT", "/v1/workspaces/acme/references/flow_node/n1".to_owned(), json!({"profile_id": id, "name": pad})),
        ("POST", "/v1/replay".to_owned(), json!({"workspace": pad, "dry_run": true})),
    ];

    for (method, path, body) in &routes {
        let (status, error) =
            raw(&app, method, path, Some("application/json"), serde_json::to_vec(body).unwrap()).await;
        assert_eq!(status, 413, "{method} {path}: {error}");
        assert_error_shape(status, &error, path);
        assert_eq!(error["error"], "payload_too_large");
    }
    // Without a Content-Length: a chunked body of 1 MiB is cut off all the same.
    let chunks = futures_util::stream::iter((0..64).map(|_| Ok::<_, std::io::Error>(vec![b' '; 16 * 1024])));
    let response = app
        .http
        .post(app.profiles_url("acme"))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    assert_eq!(stored(&app).await, before, "nothing was stored");
    let (_, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
    assert_eq!(shown["version"], 1, "the profile was not changed");
    app.stop().await;
}

#[tokio::test]
async fn an_oversized_profile_test_body_is_413_with_the_json_error_shape() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let body = serde_json::to_vec(&json!({"url": format!("http://127.0.0.1:9/{}", "x".repeat(300 * 1024))})).unwrap();

    let (status, error) =
        raw(&app, "POST", &format!("/v1/workspaces/acme/auth-profiles/{id}/test"), Some("application/json"), body)
            .await;

    assert_eq!(status, 413);
    assert_error_shape(status, &error, "profile test");
    app.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_json_are_415_and_store_nothing() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let profile = br#"{"name": "n", "type": "bearer", "config": {"token": "t-123"}}"#.to_vec();
    let content_types = [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        Some("application/xml"),
        Some("application/json-seq"),
        Some("text/json"),
        None,
    ];
    let routes = [
        ("POST", "/v1/workspaces/acme/auth-profiles".to_owned(), profile.clone()),
        ("PATCH", format!("/v1/workspaces/acme/auth-profiles/{id}"), br#"{"name": "renamed"}"#.to_vec()),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            format!(r#"{{"profile_id": "{id}", "name": "n"}}"#).into_bytes(),
        ),
        ("POST", "/v1/replay".to_owned(), br#"{"dry_run": true}"#.to_vec()),
    ];

    for (method, path, body) in &routes {
        for content_type in content_types {
            let (status, error) = raw(&app, method, path, content_type, body.clone()).await;
            assert_eq!(status, 415, "{method} {path} as {content_type:?}: {error}");
            assert_eq!(error["error"], "unsupported_media_type", "{error}");
        }
    }

    assert_eq!(stored(&app).await, before, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn unknown_fields_and_wrong_types_are_a_4xx_and_change_nothing() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let profile_path = format!("/v1/workspaces/acme/auth-profiles/{id}");
    let cases = [
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}, "id": id}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}, "version": 9}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": {"token": "t-1", "extra": 1}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "api_key", "config": {"method": "header", "pairs": [{"key": "k", "value": "v", "extra": 1}]}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": 7, "type": "bearer", "config": {"token": "t-1"}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": ["bearer"], "config": {"token": "t-1"}}),
        ),
        (
            "POST",
            "/v1/workspaces/acme/auth-profiles".to_owned(),
            json!({"name": "n", "type": "bearer", "config": "token=t-1"}),
        ),
        ("POST", "/v1/workspaces/acme/auth-profiles".to_owned(), json!(["name", "n"])),
        ("PATCH", profile_path.clone(), json!({"name": "renamed", "extra": 1})),
        ("PATCH", profile_path.clone(), json!({"version": 7})),
        ("PATCH", profile_path.clone(), json!({"workspace_id": "globex"})),
        ("PATCH", profile_path.clone(), json!({"config": {"token": "t-new", "extra": 1}})),
        ("PATCH", profile_path.clone(), json!({"config": {"token": 5}})),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            json!({"profile_id": id, "name": "n", "extra": 1}),
        ),
        ("PUT", "/v1/workspaces/acme/references/flow_node/n1".to_owned(), json!({"profile_id": 5, "name": "n"})),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            json!({"profile_id": "../../etc/passwd", "name": "n"}),
        ),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n1".to_owned(),
            json!({"profile_id": "00000000-0000-4000-8000-000000000000", "name": "n"}),
        ),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "extra": 1})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "limit": -1})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "rate": 0})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "phase": "mid_call"})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "older_than": "a while"})),
        ("POST", "/v1/replay".to_owned(), json!({"dry_run": true, "error_kind": "oops"})),
        ("POST", format!("{profile_path}/test"), json!({"url": "file:///etc/passwd"})),
        ("POST", format!("{profile_path}/test"), json!({"url": "http://127.0.0.1:9/", "extra": 1})),
    ];

    for (method, path, body) in &cases {
        let (status, error) =
            raw(&app, method, path, Some("application/json"), serde_json::to_vec(body).unwrap()).await;
        assert!((400..500).contains(&status), "{method} {path} {body} → HTTP {status} {error}");
        assert_error_shape(status, &error, &format!("{method} {path} {body}"));
    }

    assert_eq!(stored(&app).await, before, "nothing was stored");
    let (_, shown) = app.get(&profile_path).await;
    assert_eq!((shown["name"].as_str(), shown["version"].as_i64()), (Some("CRM"), Some(1)));
    app.stop().await;
}

#[tokio::test]
async fn names_that_look_like_sql_are_stored_literally_and_harm_nothing() {
    let app = spawn_api().await;
    let names = [
        "'; DROP TABLE auth_profiles; --",
        "Robert'); DROP TABLE auth_profile_secrets;--",
        "\" OR \"1\"=\"1",
        "x' OR 'x'='x",
        "%",
        "_",
        "\\",
        "$1",
        "${jndi:ldap://127.0.0.1/a}",
        "<script>alert(1)</script>",
        "名前 🔑",
    ];
    let mut ids = Vec::new();
    for name in names {
        ids.push(app.create_profile("acme", json!({"name": name, "type": "bearer", "config": {"token": "t-1"}})).await);
    }
    let sqlish_workspace = "acme' OR '1'='1";
    let encoded: String =
        url::form_urlencoded::byte_serialize(sqlish_workspace.as_bytes()).collect::<String>().replace('+', "%20");
    let other =
        app.create_profile(&encoded, json!({"name": "other", "type": "bearer", "config": {"token": "t-1"}})).await;

    for (id, name) in ids.iter().zip(names) {
        let (status, shown) = app.get(&format!("/v1/workspaces/acme/auth-profiles/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(shown["name"], name, "stored literally");
    }
    for q in ["%", "_", "\\", "'", "--", "DROP", "🔑"] {
        let query: String = url::form_urlencoded::byte_serialize(q.as_bytes()).collect();
        let (status, page) = app.get(&format!("/v1/workspaces/acme/auth-profiles?limit=200&q={query}")).await;
        assert_eq!(status, 200, "{page}");
        let found: BTreeSet<&str> =
            page["items"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        let expected: BTreeSet<&str> =
            names.iter().copied().filter(|n| n.to_lowercase().contains(&q.to_lowercase())).collect();
        assert_eq!(found, expected, "search for {q:?} matches the literal text only");
    }
    let (_, all) = app.get("/v1/workspaces/acme/auth-profiles?limit=200").await;
    assert_eq!(all["items"].as_array().unwrap().len(), names.len(), "acme sees only its own profiles");
    let (_, theirs) = app.get(&format!("/v1/workspaces/{encoded}/auth-profiles")).await;
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    assert_eq!(theirs["items"][0]["id"], other.as_str());
    assert_eq!(theirs["items"][0]["workspace_id"], sqlish_workspace);
    assert_eq!(stored(&app).await[0], names.len() as i64 + 1, "every table is still there, holding what was stored");
    app.stop().await;
}

#[tokio::test]
async fn garbage_in_workspaces_ids_and_kinds_is_a_clear_4xx_and_stores_nothing() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let long = "a".repeat(5000);
    let traversal_after_id = format!("{id}%2F..%2F..");
    let garbage_ids = [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "'%20OR%201%3D1%20--",
        long.as_str(),
        "%C3%BCn%C3%AFc%C3%B8d%C3%A9",
        "%F0%9F%94%91",
        traversal_after_id.as_str(),
    ];
    let profile_body = json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}});
    let reference_body = json!({"profile_id": id, "name": "node"});
    let mut requests: Vec<(&str, String, Option<Value>)> = Vec::new();
    for bad in garbage_ids {
        let base = format!("/v1/workspaces/acme/auth-profiles/{bad}");
        requests.push(("GET", base.clone(), None));
        requests.push(("PATCH", base.clone(), Some(json!({"name": "x"}))));
        requests.push(("DELETE", base.clone(), None));
        requests.push(("GET", format!("{base}/usage"), None));
        requests.push(("POST", format!("{base}/test"), Some(json!({}))));
    }
    for ws in ["..%2F..%2Fetc", "acme%2F..%2Fglobex", long.as_str(), "%0d%0a"] {
        requests.push(("POST", format!("/v1/workspaces/{ws}/auth-profiles"), Some(profile_body.clone())));
        requests.push(("PUT", format!("/v1/workspaces/{ws}/references/flow_node/n1"), Some(reference_body.clone())));
        requests.push(("GET", format!("/v1/workspaces/{ws}/auth-profiles/{id}"), None));
    }
    for kind in ["..%2Fflow_node", "FLOW_NODE", "flow_node%20", "%F0%9F%94%91", long.as_str()] {
        requests.push(("PUT", format!("/v1/workspaces/acme/references/{kind}/n1"), Some(reference_body.clone())));
        requests.push(("DELETE", format!("/v1/workspaces/acme/references/{kind}/n1"), None));
    }
    let too_long_ref = "r".repeat(201);
    for ref_id in [too_long_ref.as_str(), "%0a"] {
        requests.push((
            "PUT",
            format!("/v1/workspaces/acme/references/flow_node/{ref_id}"),
            Some(reference_body.clone()),
        ));
    }
    for query in [
        "limit=-1",
        "limit=0",
        "limit=99999999999999999999",
        "type=kerberos",
        "cursor=..%2F..%2F",
        "cursor=%F0%9F%94%91",
        "limit=1&sort=name;DROP",
    ] {
        requests.push(("GET", format!("/v1/workspaces/acme/auth-profiles?{query}"), None));
    }

    for (method, path, body) in &requests {
        let body = body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let (status, error) = raw(&app, method, path, Some("application/json"), body).await;
        let shown: String = path.chars().take(120).collect();
        assert!((400..500).contains(&status), "{method} {shown} → HTTP {status} {error}");
        assert_error_shape(status, &error, &shown);
    }

    assert_eq!(stored(&app).await, before, "nothing was stored");
    app.stop().await;
}

#[tokio::test]
async fn a_traversal_path_is_never_normalised_into_another_route() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let traversals = [
        format!("/v1/workspaces/globex/auth-profiles/../../acme/auth-profiles/{id}"),
        "/v1/workspaces/acme/auth-profiles/../../../../etc/passwd".to_owned(),
        "/v1/workspaces/acme/../../healthz".to_owned(),
        "/v1/../metrics".to_owned(),
        format!("/v1/workspaces/globex/auth-profiles/%2e%2e/%2e%2e/acme/auth-profiles/{id}"),
    ];

    for path in traversals {
        // Sent as is: an HTTP client would normalise the dots away before sending.
        let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            app.token
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.unwrap().unwrap();
        let status_line = response.lines().next().unwrap_or_default();
        assert!(status_line.contains(" 404 ") || status_line.contains(" 400 "), "{path}: {status_line}");
        assert!(!response.contains("tok-") && !response.contains("root:"), "{path}: {response}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_nul_byte_in_a_path_or_query_is_a_4xx_not_a_500() {
    let app = spawn_api().await;
    let id = one_profile(&app).await;
    let before = stored(&app).await;
    let nul_cursor = {
        use base64::Engine as _;
        let json = serde_json::to_vec(&json!(["a\u{0}", id])).unwrap();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json)
    };
    let requests = [
        ("GET", "/v1/workspaces/acme%00/auth-profiles".to_owned(), None),
        ("GET", "/v1/workspaces/acme/auth-profiles?q=%00".to_owned(), None),
        ("GET", format!("/v1/workspaces/acme/auth-profiles?cursor={nul_cursor}"), None),
        ("GET", format!("/v1/workspaces/acme%00/auth-profiles/{id}"), None),
        ("GET", format!("/v1/workspaces/acme%00/auth-profiles/{id}/usage"), None),
        ("PATCH", format!("/v1/workspaces/acme%00/auth-profiles/{id}"), Some(json!({"name": "x"}))),
        ("DELETE", format!("/v1/workspaces/acme%00/auth-profiles/{id}"), None),
        (
            "POST",
            "/v1/workspaces/acme%00/auth-profiles".to_owned(),
            Some(json!({"name": "n", "type": "bearer", "config": {"token": "t-1"}})),
        ),
        (
            "PUT",
            "/v1/workspaces/acme%00/references/flow_node/n1".to_owned(),
            Some(json!({"profile_id": id, "name": "node"})),
        ),
        ("DELETE", "/v1/workspaces/acme%00/references/flow_node/n1".to_owned(), None),
        (
            "PUT",
            "/v1/workspaces/acme/references/flow_node/n%00".to_owned(),
            Some(json!({"profile_id": id, "name": "node"})),
        ),
    ];

    let mut failures = Vec::new();
    for (method, path, body) in &requests {
        let body = body.as_ref().map(|b| serde_json::to_vec(b).unwrap()).unwrap_or_default();
        let (status, error) = raw(&app, method, path, Some("application/json"), body).await;
        if !(400..500).contains(&status) {
            failures.push(format!("{method} {path} → HTTP {status} {error}"));
        }
    }

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(stored(&app).await, before);
    app.stop().await;
}
