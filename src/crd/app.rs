//! CFApp: a Cloud Foundry app. Lives in its space's namespace; owns its processes, packages,
//! builds, droplets and tasks, and drives one Deployment per process type.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, EnvVars, Lifecycle, env_schema};

/// Whether an app should run or is running.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub enum AppState {
    /// Instances run.
    #[serde(rename = "STARTED")]
    Started,
    /// No instance runs.
    #[default]
    #[serde(rename = "STOPPED")]
    Stopped,
}

/// A Cloud Foundry app. `metadata.name` is the app GUID; the space is the namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFApp",
    namespaced,
    status = "CFAppStatus",
    shortname = "app",
    category = "cf",
    doc = "A Cloud Foundry app. Lives in its space's namespace and runs as one Deployment per process type.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Desired",
        type_ = "string",
        json_path = ".spec.desiredState",
        priority = 1
    ),
    printcolumn(
        name = "Droplet",
        type_ = "string",
        json_path = ".spec.currentDropletGuid",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.displayName",
    selectable = ".spec.desiredState"
)]
#[serde(rename_all = "camelCase")]
pub struct CFAppSpec {
    /// The app's name as CF users see it; unique within its space.
    #[schemars(length(min = 1, max = 255))]
    pub display_name: String,
    /// `STARTED` runs the app's processes; `STOPPED` scales them to zero.
    #[serde(default)]
    pub desired_state: AppState,
    /// How the app's droplets are built.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Environment variables for every process and task of the app.
    #[serde(default, skip_serializing_if = "EnvVars::is_empty")]
    #[schemars(schema_with = "env_schema")]
    pub env: EnvVars,
    /// GUID of the CFDroplet the app runs. Unset until a build has staged one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub current_droplet_guid: Option<String>,
    /// When set or changed, every process rolls its instances; `cf restart` stamps it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub restarted_at: Option<String>,
}

/// What the controller observed about an app.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFAppStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The state the app actually is in: `STARTED` once its processes run, else `STOPPED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<AppState>,
    /// Ready instances summed over the app's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub ready_instances: Option<i32>,
}
