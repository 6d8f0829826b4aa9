//! `/v3/processes` and `/v3/apps/{guid}/processes`: get, list, PATCH, scale, stats, sidecars,
//! instance restarts.

use std::sync::Arc;

use axum::Router;
use kube::{ResourceExt, runtime::reflector::Store};
use serde_json::{Value, json};

use super::{
    metadata,
    resource::{CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{ApiState, Caches},
    crd::{CFProcess, HealthCheck, HealthCheckType},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}

fn check_type(t: HealthCheckType) -> &'static str {
    match t {
        HealthCheckType::Port => "port",
        HealthCheckType::Process => "process",
        HealthCheckType::Http => "http",
    }
}

/// The v3 `health_check` object.
fn health_check_json(check: &HealthCheck, liveness: bool) -> Value {
    let mut data = json!({
        "invocation_timeout": check.invocation_timeout,
        "interval": check.interval,
    });
    if liveness {
        data["timeout"] = json!(check.timeout);
    }
    if check.type_ == HealthCheckType::Http {
        data["endpoint"] = json!(check.endpoint.as_deref().unwrap_or("/"));
    }
    json!({"type": check_type(check.type_), "data": data})
}

impl CfKind for CFProcess {
    const KIND: &'static str = "Process";
    const FILTERS: &'static [&'static str] =
        &["types", "app_guids", "space_guids", "organization_guids", "embed"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.processes
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let space = self.namespace().unwrap_or_default();
        let app = &self.spec.app_guid;
        let (created_at, updated_at) = timestamps(&self.metadata);
        let readiness = self
            .spec
            .readiness_health_check
            .clone()
            .unwrap_or_else(|| HealthCheck {
                type_: self.spec.health_check.type_,
                endpoint: self.spec.health_check.endpoint.clone(),
                ..HealthCheck::default()
            });
        let mut scale = cx.link(&format!("/v3/processes/{guid}/actions/scale"));
        scale["method"] = json!("POST");
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "type": self.spec.process_type,
            "command": command(self, cx),
            "user": "vcap",
            "instances": self.spec.instances,
            "memory_in_mb": self.spec.memory_in_mb,
            "disk_in_mb": self.spec.disk_in_mb,
            "log_rate_limit_in_bytes_per_second": self.spec.log_rate_limit_in_bytes_per_second.unwrap_or(-1),
            "health_check": health_check_json(&self.spec.health_check, true),
            "readiness_health_check": health_check_json(&readiness, false),
            "relationships": {
                "app": to_one(Some(app)),
                "revision": to_one(None),
            },
            "metadata": metadata(&self.metadata),
            "links": {
                "self": cx.link(&format!("/v3/processes/{guid}")),
                "scale": scale,
                "app": cx.link(&format!("/v3/apps/{app}")),
                "space": cx.link(&format!("/v3/spaces/{space}")),
                "stats": cx.link(&format!("/v3/processes/{guid}/stats")),
            },
            "version": self.metadata.uid.clone().unwrap_or_default(),
        })
    }
}

/// The command the process runs: its own, else its app's current droplet's for its type.
fn command(process: &CFProcess, cx: &Cx<'_>) -> Option<String> {
    if process.spec.command.is_some() {
        return process.spec.command.clone();
    }
    let app = cx.caches.apps.find(|a| {
        a.metadata.name.as_deref() == Some(&process.spec.app_guid) && a.namespace() == process.namespace()
    })?;
    let droplet_guid = app.spec.current_droplet_guid.clone()?;
    let droplet = cx
        .caches
        .droplets
        .find(|d| d.metadata.name.as_deref() == Some(&droplet_guid))?;
    let types = droplet
        .status
        .as_ref()
        .map(|s| &s.process_types)
        .filter(|t| !t.is_empty())
        .unwrap_or(&droplet.spec.process_types);
    types
        .get(&process.spec.process_type)
        .cloned()
        .filter(|c| !c.is_empty())
}
