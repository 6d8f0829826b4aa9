//! The v3 endpoints, one module per resource family.

pub mod jobs;
pub mod orgs;
pub mod resource;
pub mod root;

use std::sync::Arc;

use axum::Router;

use super::ApiState;

/// Every v3 family's routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().merge(orgs::routes()).merge(jobs::routes())
}

use serde_json::{Value, json};

/// An absolute link object.
pub fn link(base: &str, path: &str) -> Value {
    json!({"href": format!("{base}{path}")})
}

/// CF metadata from Kubernetes labels and annotations (kubefoundry's own keys left out).
pub fn metadata(meta: &kube::api::ObjectMeta) -> Value {
    let user = |m: &Option<std::collections::BTreeMap<String, String>>| -> Value {
        let map: serde_json::Map<String, Value> = m
            .iter()
            .flatten()
            .filter(|(k, _)| {
                !k.starts_with("kubefoundry.dev/")
                    && !k.starts_with("app.kubernetes.io/")
                    && !k.starts_with("kubectl.kubernetes.io/")
            })
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect();
        Value::Object(map)
    };
    json!({"labels": user(&meta.labels), "annotations": user(&meta.annotations)})
}

/// `created_at` and `updated_at`: creation, and the newest managedFields time.
pub fn timestamps(meta: &kube::api::ObjectMeta) -> (String, String) {
    let fmt = |t: &k8s_openapi::jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let created = meta
        .creation_timestamp
        .as_ref()
        .map(|t| fmt(&t.0))
        .unwrap_or_default();
    let updated = meta
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.time.as_ref())
        .map(|t| fmt(&t.0))
        .max()
        .unwrap_or_else(|| created.clone());
    (created, updated)
}
