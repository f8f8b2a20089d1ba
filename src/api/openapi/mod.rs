//! The OpenAPI 3.1 document of the admin API (contract §11), generated from
//! the handlers' `#[utoipa::path]` attributes and the body types in
//! [`types`], [`auth`] (configs as written) and [`masked`] (as read). Served at `GET /v1/openapi.json` without a token,
//! and committed as `docs/openapi.json`: `tests/it/contracts.rs` fails when
//! the two differ (`UPDATE_CONTRACTS=1` rewrites the file).

pub mod auth;
pub mod masked;
pub mod types;

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// The name of the admin token's security scheme in the document.
const ADMIN_TOKEN: &str = "admin_token";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "authrelay admin API",
        description = "Auth Profiles (stored, encrypted credentials), their usage, health and audit trail, \
                       replay of parked jobs, and the operations endpoints. Every `/v1` route but \
                       `/v1/openapi.json` needs `Authorization: Bearer <admin token>`. Errors are \
                       `{\"error\", \"message\"}`; invalid input is a 422 `validation_failed` whose `details` \
                       name each field. A profile of another workspace is a 404. Secrets are never returned: \
                       reads show them masked (`••••1f2e`), private keys as `{\"fingerprint_sha256\"}`, \
                       certificates as subject, issuer, expiry and fingerprint.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    servers((url = "http://127.0.0.1:8080", description = "the default `AUTHRELAY_HTTP_ADDR`")),
    paths(
        super::profiles::create,
        super::profiles::list,
        super::profiles::show,
        super::profiles::update,
        super::profiles::delete,
        super::profiles::usage,
        super::profiles::test,
        super::profiles::put_reference,
        super::profiles::delete_reference,
        super::profiles::audit,
        super::replay::replay,
        serve,
        super::health::healthz,
        super::health::readyz,
        super::health::metrics,
    ),
    modifiers(&AdminToken),
    tags(
        (name = "profiles", description = "Auth Profiles: create, list and search, read (masked), update, delete, usage, test"),
        (name = "references", description = "Which actions and flow nodes use a profile"),
        (name = "audit", description = "Who changed which profile, and which fields"),
        (name = "replay", description = "Parked jobs back to their queues"),
        (name = "operations", description = "Liveness, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

/// Puts the admin token on every `/v1` operation but this document, with the
/// 401 it answers without one, the 503 of an unreachable database, and the
/// refusals of a body the common layers make; the others say they need no
/// credentials.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("`AUTHRELAY_ADMIN_TOKEN` (or the token in `.authrelay/admin.token`)"))
            .build();
        openapi.components.get_or_insert_default().add_security_scheme(ADMIN_TOKEN, SecurityScheme::Http(scheme));
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content("application/json", ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build())
                .build()
        };
        let unauthorized = error("no or a wrong admin token");
        // What the common layers answer to any request with a body (see `api::router`).
        let body_refusals = [
            ("400", error("`bad_request`: the body is not JSON")),
            ("413", error("`payload_too_large`: the body is over 256 KiB")),
            ("415", error("`unsupported_media_type`: the body is not `application/json`")),
        ];
        let unavailable = error("`database_unavailable` (or `broker_unavailable` for replay): try again");
        for (path, item) in openapi.paths.paths.iter_mut() {
            let open = !path.starts_with("/v1/") || path == OPENAPI_PATH;
            for operation in
                [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
            {
                if open {
                    // `[{}]`: said outright that no credentials are needed.
                    operation.security = Some(vec![SecurityRequirement::default()]);
                } else {
                    operation.security = Some(vec![SecurityRequirement::new(ADMIN_TOKEN, Vec::<String>::new())]);
                    let responses = &mut operation.responses.responses;
                    responses.insert("401".into(), unauthorized.clone().into());
                    responses.entry("503".into()).or_insert_with(|| unavailable.clone().into());
                    if operation.request_body.is_some() {
                        for (status, refusal) in &body_refusals {
                            responses.entry((*status).into()).or_insert_with(|| refusal.clone().into());
                        }
                    }
                }
            }
        }
    }
}

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/v1/openapi.json";

/// The document as served and committed: pretty-printed, with a final newline.
pub fn document_json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        // Serializing our own document cannot fail: every map key is a string.
        let mut text = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
        text.push('\n');
        text
    })
}

/// `GET /v1/openapi.json`: this document (no token needed).
#[utoipa::path(get, path = "/v1/openapi.json", summary = "This OpenAPI 3.1 document", tag = "operations",
    responses((status = 200, description = "this OpenAPI 3.1 document", content_type = "application/json", body = Object)))]
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}
