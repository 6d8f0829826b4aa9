//! The unauthenticated documents (`/`, `/v3`, `/v3/info`) and `/whoami`. `/` tells the cf CLI
//! how to log in: `cf_on_k8s: true` (Kubernetes credentials from a kubeconfig) in Kubernetes
//! mode, otherwise `login`/`uaa` links to the token issuer (the façade itself, or an external
//! OIDC/UAA issuer).

use std::sync::Arc;

use axum::{Json, extract::State, http::HeaderMap};
use serde_json::{Value, json};

use super::link;
use crate::api::{ApiState, CfResult};

/// The API version reported to the cf CLI: a valid semver at or above 3.211.0, so `cf apps`
/// takes its modern path.
pub const CC_VERSION: &str = "3.211.0";

/// `GET /`.
pub async fn root(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let base = &state.config.base_url;
    let login = state.auth.login_url(base);
    let login_link = login
        .as_ref()
        .map_or_else(|| link(base, ""), |url| json!({"href": url}));
    let uaa_link = login.as_ref().map_or(Value::Null, |url| json!({"href": url}));
    Json(json!({
        "links": {
            "self": link(base, ""),
            "cloud_controller_v2": null,
            "cloud_controller_v3": {"href": format!("{base}/v3"), "meta": {"version": CC_VERSION}},
            "network_policy_v0": null,
            "network_policy_v1": null,
            "login": login_link,
            "uaa": uaa_link,
            "credhub": null,
            "routing": null,
            "logging": null,
            "log_cache": link(base, ""),
            "log_stream": null,
            "app_ssh": null,
            "bits_service": null,
        },
        "cf_on_k8s": login.is_none(),
    }))
}

/// `GET /v3`.
pub async fn v3(State(state): State<Arc<ApiState>>) -> Json<Value> {
    Json(json!({"links": {"self": link(&state.config.base_url, "/v3")}}))
}

/// `GET /v3/info`.
pub async fn info(State(state): State<Arc<ApiState>>) -> Json<Value> {
    let base = &state.config.base_url;
    Json(json!({
        "build": env!("CARGO_PKG_VERSION"),
        "cli_version": {"minimum": "8.5.0", "recommended": "8.5.0"},
        "custom": {},
        "description": "kubefoundry: Cloud Foundry on Kubernetes",
        "name": "kubefoundry",
        "version": 0,
        "osbapi_version": "2.15",
        "links": {"self": link(base, "/v3/info"), "support": {"href": "https://github.com/kubefoundry/kubefoundry"}},
    }))
}

/// `GET /whoami`: the caller as Kubernetes knows them.
pub async fn whoami(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> CfResult<Json<Value>> {
    let me = state.auth.identify(&headers).await?;
    Ok(Json(json!({"name": me.name, "kind": me.kind})))
}
