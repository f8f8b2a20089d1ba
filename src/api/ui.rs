//! The admin web page (Manage → Auth Profiles), served at `/ui/` from assets
//! compiled into the binary.
//!
//! The page is plain HTML, CSS and JavaScript from `ui/` (no build step). It
//! loads without a token; it asks for the admin token itself, keeps it in the
//! tab's `sessionStorage` and sends it as `Authorization: Bearer` on every
//! `/v1` call. Every response here carries a strict Content-Security-Policy:
//! nothing inline, nothing from another origin.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use sha2::{Digest as _, Sha256};

use super::{ApiError, ApiState};

const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const ASSETS: &[Asset] = &[
    Asset { name: "index.html", content_type: "text/html; charset=utf-8", body: include_bytes!("../../ui/index.html") },
    Asset { name: "app.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../../ui/app.js") },
    Asset { name: "api.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../../ui/api.js") },
    Asset { name: "dom.js", content_type: "text/javascript; charset=utf-8", body: include_bytes!("../../ui/dom.js") },
    Asset {
        name: "health.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/health.js"),
    },
    Asset {
        name: "profile-form.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/profile-form.js"),
    },
    Asset {
        name: "profile-body.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/profile-body.js"),
    },
    Asset {
        name: "stored-fields.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/stored-fields.js"),
    },
    Asset {
        name: "token-options.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/token-options.js"),
    },
    Asset {
        name: "client-certificate.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/client-certificate.js"),
    },
    Asset {
        name: "limits.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/limits.js"),
    },
    Asset {
        name: "service-account.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../ui/service-account.js"),
    },
    Asset { name: "app.css", content_type: "text/css; charset=utf-8", body: include_bytes!("../../ui/app.css") },
    Asset { name: "favicon.svg", content_type: "image/svg+xml", body: include_bytes!("../../ui/favicon.svg") },
];

/// Strong validators, so a browser revalidates an asset cheaply after an upgrade.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let digest = format!("{:x}", Sha256::digest(a.body));
            format!("\"{}\"", &digest[..32])
        })
        .collect()
});

pub fn router() -> Router<ApiState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(|headers: HeaderMap| async move { serve("index.html", &headers) }))
        .route("/ui/{file}", get(|Path(file): Path<String>, headers: HeaderMap| async move { serve(&file, &headers) }))
        .layer(middleware::map_response(security_headers))
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|a| a.name == name) else {
        return ApiError::not_found("page asset").into_response();
    };
    let asset = &ASSETS[index];
    let etag = ETAGS[index].as_str();
    // The page itself is never stored: it is what decides which script runs.
    let cache = if asset.name == "index.html" { "no-store" } else { "no-cache" };
    let not_modified = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag));
    let headers = [(header::CACHE_CONTROL, cache), (header::ETAG, etag)];
    if not_modified && asset.name != "index.html" {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, [(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
}

/// Added to every `/ui` response, errors and redirects included.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::HeaderName::from_static("cross-origin-opener-policy"), "same-origin"),
        (header::HeaderName::from_static("cross-origin-resource-policy"), "same-origin"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_etag() {
        let names: std::collections::HashSet<_> = ASSETS.iter().map(|a| a.name).collect();
        assert_eq!(names.len(), ASSETS.len());
        assert!(ETAGS.iter().all(|e| e.len() == 34 && e.starts_with('"') && e.ends_with('"')), "{:?}", *ETAGS);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let index = ASSETS.iter().find(|a| a.name == "index.html").expect("the page is an asset");
        let html = std::str::from_utf8(index.body).unwrap();
        assert!(!html.contains("<script>"), "inline script would be refused by the CSP");
        assert!(!html.contains("style="), "inline style would be refused by the CSP");
        assert!(!html.contains("<style"), "inline style would be refused by the CSP");
        for attribute in ["src=\"http", "href=\"http", "src=\"//", "href=\"//"] {
            assert!(!html.contains(attribute), "the page loads nothing from elsewhere ({attribute})");
        }
    }

    #[test]
    fn scripts_build_the_page_from_text_never_from_html_strings() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            let js = std::str::from_utf8(asset.body).unwrap();
            for sink in ["innerHTML", "outerHTML =", "insertAdjacentHTML", "document.write", "eval("] {
                assert!(!js.contains(sink), "{} uses {sink}", asset.name);
            }
        }
    }
}
