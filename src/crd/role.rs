//! CFRole: a CF role granted to a user, group or service account. A first-class kind (Korifi
//! stores roles only as RoleBindings) that the controller turns into RoleBindings to the
//! ClusterRole kubefoundry ships for the role type. Global roles live in the root namespace, org
//! roles in the org namespace and space roles in the space namespace.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::CommonStatus;

/// Every CF role type, with its v3 API spelling.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RoleType {
    /// Everything, everywhere.
    Admin,
    /// Read everything, everywhere.
    AdminReadOnly,
    /// Read everything but secrets, everywhere.
    GlobalAuditor,
    /// Manage an org, its spaces and their roles.
    OrganizationManager,
    /// Read an org.
    OrganizationAuditor,
    /// Manage an org's billing and quotas.
    OrganizationBillingManager,
    /// Be a member of an org (prerequisite of space roles).
    OrganizationUser,
    /// Manage a space and its roles.
    SpaceManager,
    /// Push and manage apps, routes and services in a space.
    SpaceDeveloper,
    /// Read a space, without secrets.
    SpaceAuditor,
    /// Operate (but not change the code of) apps in a space.
    SpaceSupporter,
}

impl RoleType {
    /// Every role type.
    pub const ALL: [RoleType; 11] = [
        Self::Admin,
        Self::AdminReadOnly,
        Self::GlobalAuditor,
        Self::OrganizationManager,
        Self::OrganizationAuditor,
        Self::OrganizationBillingManager,
        Self::OrganizationUser,
        Self::SpaceManager,
        Self::SpaceDeveloper,
        Self::SpaceAuditor,
        Self::SpaceSupporter,
    ];

    /// The v3 API spelling, such as `space_developer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::AdminReadOnly => "admin_read_only",
            Self::GlobalAuditor => "global_auditor",
            Self::OrganizationManager => "organization_manager",
            Self::OrganizationAuditor => "organization_auditor",
            Self::OrganizationBillingManager => "organization_billing_manager",
            Self::OrganizationUser => "organization_user",
            Self::SpaceManager => "space_manager",
            Self::SpaceDeveloper => "space_developer",
            Self::SpaceAuditor => "space_auditor",
            Self::SpaceSupporter => "space_supporter",
        }
    }

    /// Where a role of this type lives and what it scopes.
    pub fn scope(self) -> RoleScope {
        match self {
            Self::Admin | Self::AdminReadOnly | Self::GlobalAuditor => RoleScope::Global,
            Self::OrganizationManager
            | Self::OrganizationAuditor
            | Self::OrganizationBillingManager
            | Self::OrganizationUser => RoleScope::Organization,
            Self::SpaceManager | Self::SpaceDeveloper | Self::SpaceAuditor | Self::SpaceSupporter => {
                RoleScope::Space
            }
        }
    }
}

/// The scope a role type applies to, which fixes the namespace its CFRole lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleScope {
    /// The whole installation: the CFRole lives in the root namespace.
    Global,
    /// One org: the CFRole lives in the org's namespace.
    Organization,
    /// One space: the CFRole lives in the space's namespace.
    Space,
}

/// The kind of identity a role is granted to.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum SubjectKind {
    /// A user, by the name Kubernetes authenticates it as.
    User,
    /// A group of users.
    Group,
    /// A Kubernetes ServiceAccount.
    ServiceAccount,
}

/// Who holds a role. (`namespace` is a CEL reserved word, hence `__namespace__` in the rule.)
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)").message("namespace is required for ServiceAccount subjects and forbidden otherwise"))]
pub struct RoleSubject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// The user, group or service account name, without any identity prefix.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// The ServiceAccount's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// The identity provider the user comes from, such as `uaa`; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub origin: Option<String>,
}

/// A CF role granted to a subject. The spec is immutable, as CF roles are.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFRole",
    namespaced,
    status = "CFRoleStatus",
    shortname = "cfrole",
    category = "cf",
    doc = "A Cloud Foundry role granted to a user, group or service account, enforced through RoleBindings to kubefoundry's ClusterRoles.",
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Subject Kind", type_ = "string", json_path = ".spec.subject.kind"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.subject.name"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.type",
    selectable = ".spec.subject.name"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("a role's spec is immutable; delete it and create another"))]
pub struct CFRoleSpec {
    /// The role type, such as `space_developer`.
    #[serde(rename = "type")]
    pub type_: RoleType,
    /// Who holds the role.
    pub subject: RoleSubject,
}

/// What the controller observed about a role.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFRoleStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
}
