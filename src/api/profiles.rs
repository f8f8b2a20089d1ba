//! Handlers for profiles, their usage, the references that make up usage,
//! and the audit trail.

use std::collections::HashMap;

use axum::Extension;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uuid::Uuid;

use super::{ApiError, ApiJson, ApiState};
use crate::metrics::ProfileChange;
use crate::profile::audit::AuditQuery;
use crate::profile::health::parse_states;
use crate::profile::{Actor, FieldErrors, ListQuery, NewProfile, ProfilePatch, ReferenceKind, parse_auth_type};

/// Ids are UUIDs; anything else cannot name a profile, so it is a 404 like any unknown id.
fn profile_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::not_found("profile"))
}

#[utoipa::path(post, path = "/v1/workspaces/{ws}/auth-profiles", summary = "Create a profile", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id")),
    request_body = super::openapi::types::NewProfile,
    responses(
        (status = 201, description = "created; secrets masked", body = super::openapi::types::Profile),
        (status = 400, description = "not JSON", body = super::openapi::types::Error),
        (status = 409, description = "`name_taken`: the name is used in this workspace", body = super::openapi::types::Error),
        (status = 422, description = "invalid input; nothing stored", body = super::openapi::types::Unprocessable),
    ))]
pub async fn create(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path(ws): Path<String>,
    ApiJson(input): ApiJson<NewProfile>,
) -> Result<Response, ApiError> {
    let profile = state.store.create(&actor, &ws, input).await?;
    state.metrics.profile_changed(ProfileChange::Created);
    tracing::info!(workspace_id = %ws, profile_id = %profile.id, actor = %actor.0, "profile created");
    Ok((StatusCode::CREATED, Json(profile.view())).into_response())
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/auth-profiles", summary = "List and search profiles", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id"),
        ("q" = Option<String>, Query, description = "case-insensitive substring of the name"),
        ("type" = Option<super::openapi::types::AuthType>, Query, description = "only profiles of this type"),
        ("state" = Option<String>, Query, description = "only profiles in these health states, comma-separated (`failing,deauthorized`)"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "a page of profiles", body = super::openapi::types::ProfilePage),
        (status = 422, description = "an unknown parameter or an invalid value", body = super::openapi::types::ValidationError),
    ))]
pub async fn list(
    State(state): State<ApiState>,
    Path(ws): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let mut query = ListQuery { limit: 50, ..Default::default() };
    for (key, value) in params {
        match key.as_str() {
            "q" => query.q = Some(value),
            "type" if value.is_empty() => {}
            "type" => query.auth_type = parse_auth_type(&value).map_err(|e| errors.0.extend(e.0)).ok(),
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=200).contains(&n) => query.limit = n,
                _ => errors.add("limit", "must be an integer from 1 to 200"),
            },
            "state" => query.states = parse_states(&value).map_err(|e| errors.add("state", e)).unwrap_or_default(),
            "cursor" if value.is_empty() => {}
            "cursor" => query.cursor = Some(value),
            other => errors.add(other, "is not a known parameter (q, type, state, limit, cursor)"),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    let page = state.store.list(&ws, &query).await?;
    Ok(Json(page).into_response())
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/auth-profiles/{id}", summary = "Read one profile (masked)", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id"), ("id" = Uuid, Path, description = "the profile id")),
    responses(
        (status = 200, description = "the profile, secrets masked", body = super::openapi::types::Profile),
        (status = 404, description = "no such profile in this workspace", body = super::openapi::types::Error),
    ))]
pub async fn show(State(state): State<ApiState>, Path((ws, id)): Path<(String, String)>) -> Result<Response, ApiError> {
    let view = state.store.get_view(&ws, profile_id(&id)?).await?;
    Ok(Json(view).into_response())
}

#[utoipa::path(patch, path = "/v1/workspaces/{ws}/auth-profiles/{id}", summary = "Change a profile", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id"), ("id" = Uuid, Path, description = "the profile id")),
    request_body = super::openapi::types::ProfilePatch,
    responses(
        (status = 200, description = "updated (`version` + 1); emits `profile.updated`", body = super::openapi::types::Profile),
        (status = 400, description = "not JSON", body = super::openapi::types::Error),
        (status = 404, description = "no such profile in this workspace", body = super::openapi::types::Error),
        (status = 409, description = "`name_taken`", body = super::openapi::types::Error),
        (status = 422, description = "invalid input; nothing stored", body = super::openapi::types::Unprocessable),
    ))]
pub async fn update(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((ws, id)): Path<(String, String)>,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Response, ApiError> {
    let profile = state.store.update(&actor, &ws, profile_id(&id)?, patch).await?;
    state.metrics.profile_changed(ProfileChange::Updated);
    tracing::info!(workspace_id = %ws, profile_id = %profile.id, version = profile.version, actor = %actor.0, "profile updated");
    Ok(Json(state.store.view_of(&profile).await?).into_response())
}

#[utoipa::path(delete, path = "/v1/workspaces/{ws}/auth-profiles/{id}", summary = "Delete an unused profile", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id"), ("id" = Uuid, Path, description = "the profile id")),
    responses(
        (status = 204, description = "deleted; emits `profile.deleted`"),
        (status = 404, description = "no such profile in this workspace", body = super::openapi::types::Error),
        (status = 409, description = "`profile_in_use`: still referenced", body = super::openapi::types::ProfileInUse),
    ))]
pub async fn delete(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let id = profile_id(&id)?;
    state.store.delete(&actor, &ws, id).await?;
    state.metrics.profile_changed(ProfileChange::Deleted);
    tracing::info!(workspace_id = %ws, profile_id = %id, actor = %actor.0, "profile deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(get, path = "/v1/workspaces/{ws}/auth-profiles/{id}/usage", summary = "Which actions and flow nodes use a profile", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id"), ("id" = Uuid, Path, description = "the profile id")),
    responses(
        (status = 200, description = "the actions and flow nodes that use the profile", body = super::openapi::types::Usage),
        (status = 404, description = "no such profile in this workspace", body = super::openapi::types::Error),
    ))]
pub async fn usage(
    State(state): State<ApiState>,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let usage = state.store.usage(&ws, profile_id(&id)?).await?;
    Ok(Json(usage).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceBody {
    profile_id: String,
    name: String,
}

fn reference_kind(raw: &str) -> Result<ReferenceKind, ApiError> {
    ReferenceKind::parse(raw).ok_or_else(|| {
        ApiError::invalid(FieldErrors::single(
            "kind",
            "must be one of pre_call_action, during_call_action, post_call_action, flow_node",
        ))
    })
}

#[utoipa::path(put, path = "/v1/workspaces/{ws}/references/{kind}/{ref_id}", summary = "Record that an action or flow node uses a profile", tag = "references",
    params(("ws" = String, Path, description = "the workspace (tenant) id"),
        ("kind" = super::openapi::types::ReferenceKind, Path, description = "what references the profile"),
        ("ref_id" = String, Path, description = "the action's or flow node's id"),
    ),
    request_body = super::openapi::types::ReferenceBody,
    responses(
        (status = 201, description = "the reference was created", body = super::openapi::types::Reference),
        (status = 200, description = "the reference was replaced", body = super::openapi::types::Reference),
        (status = 404, description = "no such profile in this workspace", body = super::openapi::types::Error),
        (status = 422, description = "invalid kind or profile id", body = super::openapi::types::Unprocessable),
    ))]
pub async fn put_reference(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((ws, kind, ref_id)): Path<(String, String, String)>,
    ApiJson(body): ApiJson<ReferenceBody>,
) -> Result<Response, ApiError> {
    let kind = reference_kind(&kind)?;
    let profile_id = Uuid::try_parse(&body.profile_id)
        .map_err(|_| ApiError::invalid(FieldErrors::single("profile_id", "must be a profile id (UUID)")))?;
    let (reference, created) = state.store.put_reference(&actor, &ws, kind, &ref_id, profile_id, &body.name).await?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((status, Json(reference)).into_response())
}

#[utoipa::path(delete, path = "/v1/workspaces/{ws}/references/{kind}/{ref_id}", summary = "Record that it no longer does", tag = "references",
    params(("ws" = String, Path, description = "the workspace (tenant) id"),
        ("kind" = super::openapi::types::ReferenceKind, Path, description = "what references the profile"),
        ("ref_id" = String, Path, description = "the action's or flow node's id"),
    ),
    responses(
        (status = 204, description = "the reference is gone"),
        (status = 404, description = "no such reference", body = super::openapi::types::Error),
        (status = 422, description = "invalid kind", body = super::openapi::types::ValidationError),
    ))]
pub async fn delete_reference(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((ws, kind, ref_id)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let kind = reference_kind(&kind)?;
    state.store.delete_reference(&actor, &ws, kind, &ref_id).await.map_err(|e| match e {
        crate::profile::StoreError::NotFound => ApiError::not_found("reference"),
        other => other.into(),
    })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestBody {
    url: Option<String>,
}

/// Tries the credentials now: OAuth 2.0 fetches a fresh token; any type may
/// call a URL with them. The report never holds a secret.
#[utoipa::path(post, path = "/v1/workspaces/{ws}/auth-profiles/{id}/test", summary = "Try a profile's credentials now", tag = "profiles",
    params(("ws" = String, Path, description = "the workspace (tenant) id"), ("id" = Uuid, Path, description = "the profile id")),
    request_body(content = Option<super::openapi::types::TestBody>, description = "optional: a URL to call with the credentials"),
    responses(
        (status = 200, description = "what the test found (`ok` false is still a 200)", body = super::openapi::types::TestReport),
        (status = 400, description = "not JSON", body = super::openapi::types::Error),
        (status = 404, description = "no such profile in this workspace", body = super::openapi::types::Error),
        (status = 422, description = "invalid URL", body = super::openapi::types::ValidationError),
    ))]
pub async fn test(
    State(state): State<ApiState>,
    Extension(actor): Extension<Actor>,
    Path((ws, id)): Path<(String, String)>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|rejection| {
        let status = rejection.status();
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE { "payload_too_large" } else { "bad_request" };
        ApiError::new(status, code, rejection.body_text())
    })?;
    // The body is optional: none (or `{}`) tests without calling a URL.
    let body: TestBody = if body.iter().all(u8::is_ascii_whitespace) {
        TestBody::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.to_string()))?
    };
    let profile = state.store.get(&ws, profile_id(&id)?).await?;
    let url = match body.url.filter(|u| !u.trim().is_empty()) {
        Some(raw) => Some(
            crate::profile::auth_config::parse_http_url(&raw)
                .map_err(|e| ApiError::invalid(FieldErrors::single("url", e)))?,
        ),
        None => None,
    };
    let report = state.prober.probe(&profile, url).await;
    state.store.record_test(&actor, &profile, report.ok).await?;
    Ok(Json(report).into_response())
}

/// `GET /v1/workspaces/{ws}/audit?profile_id=&limit=&cursor=`: newest first,
/// field names only, never a value. Another workspace's trail is never shown:
/// a profile id of another workspace finds nothing.
#[utoipa::path(get, path = "/v1/workspaces/{ws}/audit", summary = "The audit trail of a workspace's profiles", tag = "audit",
    params(("ws" = String, Path, description = "the workspace (tenant) id"),
        ("profile_id" = Option<Uuid>, Query, description = "only this profile's entries"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "newest first; field names only, never a value", body = super::openapi::types::AuditPage),
        (status = 422, description = "an unknown parameter or an invalid value", body = super::openapi::types::ValidationError),
    ))]
pub async fn audit(
    State(state): State<ApiState>,
    Path(ws): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let mut errors = FieldErrors::default();
    let mut query = AuditQuery { limit: 50, ..Default::default() };
    for (key, value) in params {
        match key.as_str() {
            "profile_id" if value.is_empty() => {}
            "profile_id" => match Uuid::try_parse(&value) {
                Ok(id) => query.profile_id = Some(id),
                Err(_) => errors.add("profile_id", "must be a profile id (UUID)"),
            },
            "limit" => match value.parse::<u32>() {
                Ok(n) if (1..=200).contains(&n) => query.limit = n,
                _ => errors.add("limit", "must be an integer from 1 to 200"),
            },
            "cursor" if value.is_empty() => {}
            "cursor" => query.cursor = Some(value),
            other => errors.add(other, "is not a known parameter (profile_id, limit, cursor)"),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(errors));
    }
    crate::profile::validate_workspace_id(&ws).map_err(ApiError::invalid)?;
    let page = state.store.audit(&ws, &query).await?;
    Ok(Json(page).into_response())
}
