//! CFServiceInstance: a service an app can bind to. Lives in the space namespace; a
//! user-provided instance keeps its credentials in a Secret.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, SecretRef};

/// Who provides a service instance.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ServiceInstanceType {
    /// Credentials supplied by the user (`cf cups`).
    #[default]
    UserProvided,
    /// Provisioned by a service broker.
    Managed,
}

/// A CF service instance.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFServiceInstance",
    namespaced,
    status = "CFServiceInstanceStatus",
    shortname = "si",
    category = "cf",
    doc = "A Cloud Foundry service instance. User-provided instances keep their credentials in a Secret.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.lastOperation.state"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.displayName",
    selectable = ".spec.type"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self.type == 'managed' ? has(self.servicePlanGuid) : !has(self.servicePlanGuid)").message("managed instances need a servicePlanGuid; user-provided instances take none"))]
pub struct CFServiceInstanceSpec {
    /// The instance's name as CF users see it; unique within its space.
    #[schemars(length(min = 1, max = 255))]
    pub display_name: String,
    /// `user-provided` or `managed`.
    #[serde(rename = "type")]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub type_: ServiceInstanceType,
    /// The Secret holding the credentials (one key, `credentials`, with a JSON object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretRef>,
    /// URL logs of bound apps are drained to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub syslog_drain_url: Option<String>,
    /// URL of a route service that proxies traffic of bound routes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048), regex(pattern = r"^https://"))]
    pub route_service_url: Option<String>,
    /// Free-form tags, exposed to apps in `VCAP_SERVICES`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub tags: Vec<String>,
    /// For managed instances: the GUID of the service plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_plan_guid: Option<String>,
}

/// What a service operation is doing.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperationType {
    /// Creation.
    Create,
    /// Update.
    Update,
    /// Deletion.
    Delete,
}

/// How a service operation stands, spelled as the v3 API spells it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum OperationState {
    /// Accepted, not started.
    #[serde(rename = "initial")]
    Initial,
    /// Under way.
    #[serde(rename = "in progress")]
    InProgress,
    /// Done.
    #[serde(rename = "succeeded")]
    Succeeded,
    /// Failed; `description` says why.
    #[serde(rename = "failed")]
    Failed,
}

/// The last operation on a service instance or binding, as the v3 API reports it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastOperation {
    /// `create`, `update` or `delete`.
    #[serde(rename = "type")]
    pub type_: OperationType,
    /// `initial`, `in progress`, `succeeded` or `failed`.
    pub state: OperationState,
    /// Details, such as the reason for a failure.
    #[serde(default)]
    pub description: String,
    /// When the operation last changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub updated_at: Option<String>,
}

/// What the controller observed about a service instance.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFServiceInstanceStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The last operation on the instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<LastOperation>,
}
