//! The v3 endpoints, one module per resource family.

pub mod apps;
pub mod builds;
pub mod deployments;
pub mod domains;
pub mod droplets;
pub mod jobs;
pub mod manifests;
pub mod misc;
pub mod orgs;
pub mod packages;
pub mod processes;
pub mod resource;
pub mod roles;
pub mod root;
pub mod routes;
pub mod service_bindings;
pub mod service_instances;
pub mod spaces;
pub mod tasks;
pub mod users;

use std::sync::Arc;

use axum::Router;

use super::ApiState;

/// Every v3 family's routes.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .merge(orgs::routes())
        .merge(jobs::routes())
        .merge(spaces::routes())
        .merge(roles::routes())
        .merge(users::routes())
        .merge(apps::routes())
        .merge(processes::routes())
        .merge(deployments::routes())
        .merge(packages::routes())
        .merge(builds::routes())
        .merge(droplets::routes())
        .merge(tasks::routes())
        .merge(misc::routes())
        .merge(routes::routes())
        .merge(domains::routes())
        .merge(service_instances::routes())
        .merge(service_bindings::routes())
        .merge(manifests::routes())
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
