//! The audit trail (contract section 10): `GET /v1/workspaces/{ws}/audit`
//! shows who created, changed, referenced, tested, rotated and deleted which
//! profile and which fields — never a value — newest first, in stable pages,
//! and only the workspace's own.

use std::collections::BTreeSet;
use std::sync::Arc;

use authrelay::crypto::KeyRing;
use authrelay::profile::ProfileStore;
use authrelay_testkit::app::{Admin, spawn_api};
use authrelay_testkit::new_key;
use serde_json::{Value, json};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Every item of `ws`'s audit trail (of one profile, with `filter`), page by page.
async fn all_pages(admin: &Admin, ws: &str, filter: &str, limit: u32) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut cursor) = (Vec::new(), 0, None::<String>);
    loop {
        let after = cursor.as_deref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let (status, page) = admin.get(&format!("/v1/workspaces/{ws}/audit?limit={limit}{filter}{after}")).await;
        assert_eq!(status, 200, "{page}");
        let got = page["items"].as_array().unwrap();
        assert!(got.len() <= limit as usize);
        items.extend(got.iter().cloned());
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return (items, pages),
        }
    }
}

fn actions(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["action"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first_names_fields_and_never_a_value() {
    let h = spawn_api().await;
    let me = MockServer::start().await;
    Mock::given(path("/me")).respond_with(ResponseTemplate::new(200)).mount(&me).await;
    let secrets = ["first-token-0123456789", "second-token-0123456789", "other-token-0123456789"];
    let base = "/v1/workspaces/acme";
    let id = h.create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": secrets[0]}})).await;
    let profile = format!("{base}/auth-profiles/{id}");
    assert_eq!(h.patch(&profile, json!({"config": {"token": secrets[1]}})).await.0, 200);
    assert_eq!(h.patch(&profile, json!({"name": "CRM (prod)"})).await.0, 200);
    let reference = format!("{base}/references/during_call_action/book-slot");
    assert_eq!(h.put(&reference, json!({"profile_id": id, "name": "Book a slot"})).await.0, 201);
    assert_eq!(h.delete(&reference).await.0, 204);
    let (status, report) = h.post(&format!("{profile}/test"), json!({"url": format!("{}/me", me.uri())})).await;
    assert_eq!((status, report["ok"].as_bool()), (200, Some(true)), "{report}");
    // `keys rotate` under a new current key (the CLI's actor).
    let ring = format!("{},{}", new_key("k2"), h.env.vars["AUTHRELAY_MASTER_KEYS"]);
    let rotating = ProfileStore::new(h.store.pool().clone(), Arc::new(KeyRing::parse(&ring).unwrap()));
    assert_eq!(rotating.rotate_keys().await.unwrap().secrets, 1);
    let other = h
        .create_profile(
            "acme",
            json!({"name": "Other", "type": "basic", "config": {"username": "u", "password": secrets[2]}}),
        )
        .await;
    assert_eq!(h.delete(&format!("{base}/auth-profiles/{other}")).await.0, 204);

    let (items, pages) = all_pages(&h, "acme", "", 2).await;
    assert_eq!(
        actions(&items),
        ["deleted", "created", "rotated", "tested", "unreferenced", "referenced", "updated", "updated", "created"],
        "newest first"
    );
    assert_eq!(pages, 5);
    let by = |i: usize| &items[i];
    assert_eq!(by(8)["fields"], json!(["name", "type", "config.token"]));
    assert_eq!(by(8)["actor"], "test-admin");
    assert_eq!(by(8)["profile_id"], id.as_str());
    assert_eq!(by(7)["fields"], json!(["config.token"]));
    assert_eq!(by(6)["fields"], json!(["name"]));
    assert_eq!(by(5)["reference"], json!({"kind": "during_call_action", "id": "book-slot", "name": "Book a slot"}));
    assert_eq!(by(4)["reference"]["id"], "book-slot");
    assert_eq!((by(3)["ok"].as_bool(), by(3)["actor"].as_str()), (Some(true), Some("test-admin")));
    assert_eq!((by(2)["fields"].clone(), by(2)["actor"].as_str()), (json!(["config.token"]), Some("cli")));
    assert_eq!((by(0)["fields"].clone(), by(0)["profile_id"].as_str()), (json!([]), Some(other.as_str())));
    for item in &items {
        let keys: BTreeSet<&str> = item.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(["at", "actor", "action", "profile_id", "fields"].iter().all(|k| keys.contains(k)), "{item}");
        assert!(item["at"].as_str().unwrap().parse::<chrono::DateTime<chrono::Utc>>().is_ok(), "{item}");
    }
    let text = serde_json::to_string(&items).unwrap();
    for secret in secrets {
        assert!(!text.contains(&secret[..12]), "{secret}: {text}");
    }

    // One profile's history.
    let (mine, _) = all_pages(&h, "acme", &format!("&profile_id={id}"), 50).await;
    assert_eq!(actions(&mine), ["rotated", "tested", "unreferenced", "referenced", "updated", "updated", "created"]);

    // Stable pages: what happens after the first page was read does not shift the next ones.
    let (status, first) = h.get(&format!("{base}/audit?limit=3")).await;
    assert_eq!(status, 200);
    // (The rotated profile is sealed under a key this app lacks: a new profile it is.)
    let third =
        h.create_profile("acme", json!({"name": "Third", "type": "bearer", "config": {"token": secrets[2]}})).await;
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = h.get(&format!("{base}/audit?limit=3&cursor={cursor}")).await;
    assert_eq!(actions(second["items"].as_array().unwrap()), ["tested", "unreferenced", "referenced"]);
    let (_, fresh) = h.get(&format!("{base}/audit?limit=1")).await;
    assert_eq!(fresh["items"][0]["profile_id"], third.as_str(), "the newest change comes first on a new first page");
    h.stop().await;
}

#[tokio::test]
async fn another_workspaces_audit_is_empty_and_bad_parameters_name_their_field() {
    let h = spawn_api().await;
    let id =
        h.create_profile("acme", json!({"name": "CRM", "type": "bearer", "config": {"token": "t-0123456789ab"}})).await;
    let (status, page) = h.get("/v1/workspaces/acme/audit").await;
    assert_eq!((status, page["items"].as_array().map(Vec::len)), (200, Some(1)));

    for query in ["", &format!("?profile_id={id}")] {
        let (status, page) = h.get(&format!("/v1/workspaces/globex/audit{query}")).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page, json!({"items": [], "next_cursor": null}), "another workspace sees nothing of acme");
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("profile_id=42", "profile_id"),
        ("action=created", "action"),
    ] {
        let (status, error) = h.get(&format!("/v1/workspaces/acme/audit?{query}")).await;
        assert_eq!(status, 422, "{query}: {error}");
        assert_eq!(error["error"], "validation_failed");
        assert_eq!(error["details"][0]["field"], field, "{query}: {error}");
    }
    let anonymous = h.http.get(h.url("/v1/workspaces/acme/audit")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    h.stop().await;
}
