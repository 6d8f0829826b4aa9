//! CFOrg: a Cloud Foundry organization. Lives in the root namespace; owns a Namespace of the
//! same name that holds its spaces and org-level roles.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// A Cloud Foundry organization. `metadata.name` is the org GUID and names its Namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFOrg",
    namespaced,
    status = "CFOrgStatus",
    shortname = "org",
    category = "cf",
    doc = "A Cloud Foundry organization. Lives in the root namespace; its GUID names the Namespace that holds its spaces.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Suspended", type_ = "boolean", json_path = ".spec.suspended"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.displayName"
)]
#[serde(rename_all = "camelCase")]
pub struct CFOrgSpec {
    /// The org's name as CF users see it; unique across the installation.
    #[schemars(length(min = 1, max = 255))]
    pub display_name: String,
    /// A suspended org is read-only for everyone but admins.
    #[serde(default)]
    pub suspended: bool,
}

/// What the controller observed about an org.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFOrgStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
}
