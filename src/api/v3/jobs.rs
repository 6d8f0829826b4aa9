//! `/v3/jobs/{guid}`: asynchronous operations. A job's GUID is `<operation>~<target GUID>`, and
//! its state is derived from the caches (a delete is COMPLETE once the target is gone), so jobs
//! survive restarts and any replica can answer a poll. Operations the façade finishes before
//! answering 202 (apply_manifest) are COMPLETE unless a failure was recorded for them.

use std::{collections::HashMap, sync::Arc, sync::Mutex};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::{Value, json};

use kube::runtime::reflector::Store;

use super::resource::Cx;
use crate::api::{ApiState, CfError, CfResult};

/// Failures of operations finished in the request, by job GUID.
#[derive(Default)]
pub struct Failures(Mutex<HashMap<String, (String, Value)>>);

impl Failures {
    /// Records that job `guid` failed with `error` (a CF error object).
    pub fn record(&self, guid: &str, error: Value) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(guid.to_owned(), (now(), error));
    }

    fn get(&self, guid: &str) -> Option<(String, Value)> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(guid)
            .cloned()
    }
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new().route("/v3/jobs/{guid}", get(show))
}

/// The job GUID of `operation` on `target`.
pub fn guid(operation: &str, target: &str) -> String {
    format!("{operation}~{target}")
}

/// A 202 Accepted with the absolute `Location` of the job for `operation` on `target`.
pub fn accepted(state: &ApiState, operation: &str, target: &str) -> Response {
    let location = format!("{}/v3/jobs/{}", state.config.base_url, guid(operation, target));
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn gone<K: kube::Resource<DynamicType = ()> + Clone>(store: &Store<K>, guid: &str) -> bool {
    store.find(|o| o.meta().name.as_deref() == Some(guid)).is_none()
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(job): Path<String>,
) -> CfResult<Json<Value>> {
    state.auth.identify(&headers).await?;
    let (operation, target) = job.split_once('~').ok_or(CfError::NotFound("Job"))?;
    let target = target.split('~').next().unwrap_or(target);
    let done = match operation {
        "org.delete" => gone(&state.caches.orgs, target),
        "space.delete" => gone(&state.caches.spaces, target),
        "app.delete" => gone(&state.caches.apps, target),
        "route.delete" => gone(&state.caches.routes, target),
        "domain.delete" => gone(&state.caches.domains, target),
        "role.delete" => gone(&state.caches.roles, target),
        "user.delete" => super::users::deleted(&state.caches, target),
        "service_instance.delete" => gone(&state.caches.service_instances, target),
        "service_bindings.delete" => gone(&state.caches.service_bindings, target),
        "package.delete" => gone(&state.caches.packages, target),
        "droplet.delete" => gone(&state.caches.droplets, target),
        "space.apply_manifest"
        | "space.delete_unmapped_routes"
        | "service_instance.create"
        | "service_bindings.create" => true,
        _ => return Err(CfError::NotFound("Job")),
    };
    let cx = Cx::new(&state);
    let failure = state.job_failures.get(&job);
    let (job_state, errors, at) = match failure {
        Some((at, error)) => ("FAILED", vec![error], at),
        None if done => ("COMPLETE", vec![], now()),
        None => ("PROCESSING", vec![], now()),
    };
    Ok(Json(json!({
        "guid": job,
        "operation": operation,
        "state": job_state,
        "errors": errors,
        "warnings": [],
        "created_at": at,
        "updated_at": at,
        "links": {"self": cx.link(&format!("/v3/jobs/{job}"))},
    })))
}
