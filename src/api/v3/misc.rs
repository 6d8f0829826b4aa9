//! Static and near-static lists: `/v3/resource_matches`, `/v3/stacks`, `/v3/buildpacks`,
//! `/v3/feature_flags`. They answer honestly for what kubefoundry is: no resource cache (so
//! nothing ever matches), no buildpack staging yet (so no stacks or buildpacks), and a fixed set
//! of feature flags.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::resource::{Caller, Cx};
use crate::api::{
    ApiState, CfError, CfResult,
    body::parse,
    pagination::{PageParams, order, page},
    query::Query,
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        // CC's path, and the singular one clients have been seen to use.
        .route("/v3/resource_matches", post(resource_match))
        .route("/v3/resource_match", post(resource_match))
        .route("/v3/stacks", get(stacks))
        .route("/v3/stacks/{guid}", get(stack))
        .route("/v3/buildpacks", get(buildpacks))
        .route("/v3/buildpacks/{guid}", get(buildpack))
        .route("/v3/feature_flags", get(feature_flags))
        .route(
            "/v3/feature_flags/{name}",
            get(feature_flag).patch(update_feature_flag),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResourceMatchBody {
    #[allow(dead_code)]
    resources: Vec<Value>,
}

/// Nothing is cached, so nothing matches: the client uploads every file (the cf CLI sends
/// everything unmatched in the zip, which is the safe answer).
async fn resource_match(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Bytes,
) -> CfResult<Response> {
    Caller::of(&state, &headers).await?;
    let _: ResourceMatchBody = parse(&body)?;
    Ok((StatusCode::CREATED, Json(json!({"resources": []}))).into_response())
}

/// An empty list of a kind there is none of, with paging checked and presented as for any list.
fn empty_list(
    state: &ApiState,
    raw: Option<&str>,
    path: &str,
    filters: &[&str],
    orders: &[&str],
) -> CfResult<Value> {
    let q = Query::parse(raw.unwrap_or(""))?;
    let mut allowed = vec!["guids"];
    allowed.extend(filters);
    q.allow(&allowed)?;
    let params = PageParams::from_query(&q, orders)?;
    Ok(page(&state.config.base_url, path, &q, &params, Vec::new()))
}

/// Buildpack staging is not supported yet, so there are no stacks to stage on.
async fn stacks(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    Ok(Json(empty_list(
        &state,
        raw.as_deref(),
        "/v3/stacks",
        &["names", "default"],
        &["created_at", "updated_at", "name"],
    )?))
}

async fn stack(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(_guid): Path<String>,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    Err(CfError::NotFound("Stack"))
}

/// Buildpack staging is not supported yet, so there are no buildpacks.
async fn buildpacks(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    Ok(Json(empty_list(
        &state,
        raw.as_deref(),
        "/v3/buildpacks",
        &["names", "stacks", "lifecycle"],
        &["position", "created_at", "updated_at", "name"],
    )?))
}

async fn buildpack(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(_guid): Path<String>,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    Err(CfError::NotFound("Buildpack"))
}

/// CC's feature flags and their defaults, except where kubefoundry differs in fact: docker
/// images are what it runs (`diego_docker` on), and resource matching never matches
/// (`resource_matching` off).
pub const FEATURE_FLAGS: &[(&str, bool)] = &[
    ("app_bits_upload", true),
    ("app_scaling", true),
    ("diego_cnb", false),
    ("diego_docker", true),
    ("env_var_visibility", true),
    ("hide_marketplace_from_unauthenticated_users", false),
    ("private_domain_creation", true),
    ("resource_matching", false),
    ("route_creation", true),
    ("route_sharing", false),
    ("service_instance_creation", true),
    ("service_instance_sharing", false),
    ("set_roles_by_username", true),
    ("space_developer_env_var_visibility", true),
    ("space_scoped_private_broker_creation", true),
    ("task_creation", true),
    ("unset_roles_by_username", true),
    ("user_org_creation", false),
];

fn present_flag(name: &str, enabled: bool, cx: &Cx<'_>) -> Value {
    json!({
        "name": name,
        "enabled": enabled,
        "updated_at": null,
        "custom_error_message": null,
        "links": {"self": cx.link(&format!("/v3/feature_flags/{name}"))},
    })
}

async fn feature_flags(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&[])?;
    let params = PageParams::from_query(&q, &["name"])?;
    let cx = Cx::new(&state);
    let mut flags: Vec<Value> = FEATURE_FLAGS
        .iter()
        .map(|(name, enabled)| present_flag(name, *enabled, &cx))
        .collect();
    order(&mut flags, &params);
    Ok(Json(page(
        &state.config.base_url,
        "/v3/feature_flags",
        &q,
        &params,
        flags,
    )))
}

async fn feature_flag(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    let (name, enabled) = FEATURE_FLAGS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or(CfError::NotFound("Feature flag"))?;
    Ok(Json(present_flag(name, *enabled, &Cx::new(&state))))
}

/// The flags describe what kubefoundry does; they are not switches.
async fn update_feature_flag(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    if !FEATURE_FLAGS.iter().any(|(n, _)| *n == name) {
        return Err(CfError::NotFound("Feature flag"));
    }
    Err(CfError::Unprocessable(format!(
        "Feature flag '{name}' cannot be changed: kubefoundry's feature flags describe what it supports"
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::api::v3::packages::testing;

    #[test]
    fn flags_are_cc_shaped_and_sorted() {
        let caches = testing::caches(vec![], vec![], vec![], vec![]);
        let v = testing::with_cx(&caches, |cx| present_flag("task_creation", true, cx));
        assert_eq!(
            v,
            json!({
                "name": "task_creation",
                "enabled": true,
                "updated_at": null,
                "custom_error_message": null,
                "links": {"self": {"href": "https://api.example.org/v3/feature_flags/task_creation"}},
            })
        );
        let names: Vec<&str> = FEATURE_FLAGS.iter().map(|(n, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(FEATURE_FLAGS.contains(&("user_org_creation", false)));
    }
}
