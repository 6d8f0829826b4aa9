//! CFProcess: one process type of an app (web, worker, …). Lives in the space namespace and
//! becomes a Deployment, plus a Service when routes point at it.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// How the platform decides an instance is alive.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthCheckType {
    /// A TCP connection to the app's port succeeds.
    #[default]
    Port,
    /// The process is running.
    Process,
    /// An HTTP GET of `endpoint` answers 200.
    Http,
}

/// A CF health check: type plus the fields of its `data` object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("(has(self.type) && self.type == 'http') || !has(self.endpoint)").message("endpoint applies only to http health checks"))]
pub struct HealthCheck {
    /// `port`, `process` or `http`.
    #[serde(rename = "type", default)]
    pub type_: HealthCheckType,
    /// The path an `http` check requests, such as `/healthz`. Defaults to `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^/"))]
    pub endpoint: Option<String>,
    /// Seconds a single check may take before it counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub invocation_timeout: Option<i32>,
    /// Seconds a new instance has to pass its first check (becomes the startup probe).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3600))]
    pub timeout: Option<i32>,
    /// Seconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 600))]
    pub interval: Option<i32>,
}

/// One process type of a Cloud Foundry app.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFProcess",
    namespaced,
    status = "CFProcessStatus",
    shortname = "proc",
    category = "cf",
    doc = "One process type of a Cloud Foundry app. Runs as a Deployment with `instances` replicas while the app is started.",
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appGuid"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.processType"),
    printcolumn(name = "Instances", type_ = "integer", json_path = ".spec.instances"),
    printcolumn(
        name = "Ready Instances",
        type_ = "integer",
        json_path = ".status.readyInstances"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    scale(
        spec_replicas_path = ".spec.instances",
        status_replicas_path = ".status.instances"
    ),
    selectable = ".spec.appGuid",
    selectable = ".spec.processType"
)]
#[serde(rename_all = "camelCase")]
pub struct CFProcessSpec {
    /// GUID of the CFApp this process belongs to.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub app_guid: String,
    /// The process type, such as `web` or `worker`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$")
    )]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub process_type: String,
    /// The start command. Unset means the droplet's command for this process type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub command: Option<String>,
    /// How many instances run while the app is started.
    #[serde(default)]
    #[schemars(range(min = 0, max = 2000))]
    pub instances: i32,
    /// Memory limit per instance, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_in_mb: Option<i64>,
    /// Ephemeral disk limit per instance, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub disk_in_mb: Option<i64>,
    /// Log rate limit per instance in bytes per second; -1 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub log_rate_limit_in_bytes_per_second: Option<i64>,
    /// The liveness check.
    #[serde(default)]
    pub health_check: HealthCheck,
    /// The readiness check, which gates traffic; unset means the liveness check's type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_health_check: Option<HealthCheck>,
}

/// What the controller observed about a process.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFProcessStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// Instances that exist, ready or not (the scale subresource's replicas).
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub instances: i32,
    /// Instances passing their readiness check.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub ready_instances: i32,
}
