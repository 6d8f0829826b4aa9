//! CFDomain: a DNS domain routes can use. Lives in the root namespace; shared by default,
//! private to one org when `organizationGuid` is set.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// A DNS domain for routes.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFDomain",
    namespaced,
    status = "CFDomainStatus",
    shortname = "domain",
    category = "cf",
    doc = "A DNS domain that routes can use. Lives in the root namespace; private to one org when organizationGuid is set.",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Internal", type_ = "boolean", json_path = ".spec.internal"),
    printcolumn(
        name = "Org",
        type_ = "string",
        json_path = ".spec.organizationGuid",
        priority = 1
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.name"
)]
#[serde(rename_all = "camelCase")]
pub struct CFDomainSpec {
    /// The domain name, such as `apps.example.com`.
    #[schemars(
        length(min = 3, max = 253),
        regex(pattern = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("a domain's name cannot change"))]
    pub name: String,
    /// Internal domains are reachable only from other apps (container-to-container).
    #[serde(default)]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub internal: bool,
    /// The owning org's GUID for a private domain; unset for a shared domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub organization_guid: Option<String>,
    /// Further orgs a private domain is shared with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub shared_organization_guids: Vec<String>,
    /// Name of a Secret of type `kubernetes.io/tls` in the root namespace serving `*.name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub tls_secret_name: Option<String>,
}

/// What the controller observed about a domain.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFDomainStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
}
