//! CFTask: a one-off command run with an app's droplet and environment. Lives in the space
//! namespace and becomes a Job.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// Where a task is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaskState {
    /// Waiting to be scheduled.
    Pending,
    /// Its container runs.
    Running,
    /// Exited zero.
    Succeeded,
    /// Exited non-zero, could not start, or was cancelled.
    Failed,
    /// Cancellation is under way.
    Canceling,
}

/// A one-off command of an app.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFTask",
    namespaced,
    status = "CFTaskStatus",
    shortname = "cftask",
    category = "cf",
    doc = "A one-off command run with an app's droplet and environment, as a Job. Set spec.canceled to cancel it.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appGuid"),
    printcolumn(name = "Sequence", type_ = "integer", json_path = ".status.sequenceId"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.appGuid",
    selectable = ".spec.displayName"
)]
#[serde(rename_all = "camelCase")]
pub struct CFTaskSpec {
    /// GUID of the CFApp whose droplet and environment the task uses.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub app_guid: String,
    /// The task's name as CF users see it.
    #[schemars(length(min = 1, max = 255))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub display_name: String,
    /// The command to run.
    #[schemars(length(min = 1, max = 4096))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub command: String,
    /// GUID of the CFDroplet to run; unset means the app's current droplet at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub droplet_guid: Option<String>,
    /// Memory limit in MB; unset means the platform default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub memory_in_mb: Option<i64>,
    /// Ephemeral disk limit in MB; unset means the platform default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub disk_in_mb: Option<i64>,
    /// Log rate limit in bytes per second; -1 means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub log_rate_limit_in_bytes_per_second: Option<i64>,
    /// Set to cancel the task: its Job is deleted and the task ends FAILED.
    #[serde(default)]
    #[x_kube(validation = kube::core::cel::Rule::new("oldSelf == false || self == true").message("a cancelled task cannot be resumed"))]
    pub canceled: bool,
}

/// What the controller observed about a task.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFTaskStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// `PENDING`, `RUNNING`, `SUCCEEDED`, `FAILED` or `CANCELING`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<TaskState>,
    /// The task's number within its app, starting at 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub sequence_id: Option<i64>,
    /// The droplet the task runs, resolved at creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub droplet_guid: Option<String>,
    /// Why the task failed, such as `task was cancelled` or `Exited with status 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}
