//! CFBuild: one staging of a package. Lives in the space namespace; a successful build
//! produces a CFDroplet.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, Lifecycle};

/// Where a build is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum BuildState {
    /// Staging is under way.
    Staging,
    /// Staging succeeded; `dropletGuid` names the result.
    Staged,
    /// Staging failed; `error` says why.
    Failed,
}

/// One staging of a package into a droplet. The spec is immutable, as CF builds are.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFBuild",
    namespaced,
    status = "CFBuildStatus",
    shortname = "cfbuild",
    category = "cf",
    doc = "One staging of a CFPackage. Success produces a CFDroplet; failure is reported in status.error.",
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appGuid"),
    printcolumn(
        name = "Package",
        type_ = "string",
        json_path = ".spec.packageGuid",
        priority = 1
    ),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Droplet",
        type_ = "string",
        json_path = ".status.dropletGuid",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.appGuid",
    selectable = ".spec.packageGuid"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("a build's spec is immutable"))]
pub struct CFBuildSpec {
    /// GUID of the CFApp being staged.
    #[schemars(length(min = 1, max = 253))]
    pub app_guid: String,
    /// GUID of the CFPackage to stage.
    #[schemars(length(min = 1, max = 253))]
    pub package_guid: String,
    /// The lifecycle to stage with; unset means the app's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Memory for the staging task, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub staging_memory_in_mb: Option<i64>,
    /// Disk for the staging task, in MB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub staging_disk_in_mb: Option<i64>,
    /// Log rate limit for the staging task in bytes per second; -1 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub staging_log_rate_limit_bytes_per_second: Option<i64>,
}

/// What the platform observed about a build.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFBuildStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// `STAGING`, `STAGED` or `FAILED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<BuildState>,
    /// Why staging failed, in CF's words (for example `StagingError - …`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// GUID of the CFDroplet this build produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub droplet_guid: Option<String>,
}
