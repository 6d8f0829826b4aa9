//! CFSpace: a Cloud Foundry space. Lives in its org's namespace; owns a Namespace of the same
//! name that holds the space's apps, routes, services and space-level roles.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// A Cloud Foundry space. `metadata.name` is the space GUID and names its Namespace; the org is
/// the namespace the CFSpace lives in.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFSpace",
    namespaced,
    status = "CFSpaceStatus",
    shortname = "space",
    category = "cf",
    doc = "A Cloud Foundry space. Lives in its org's namespace; its GUID names the Namespace that holds its apps.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.displayName"
)]
#[serde(rename_all = "camelCase")]
pub struct CFSpaceSpec {
    /// The space's name as CF users see it; unique within its org.
    #[schemars(length(min = 1, max = 255))]
    pub display_name: String,
    /// Whether `cf ssh` may reach this space's app instances.
    #[serde(default = "default_true")]
    pub allow_ssh: bool,
}

fn default_true() -> bool {
    true
}

/// What the controller observed about a space.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFSpaceStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
}
