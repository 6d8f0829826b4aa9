//! CFServiceBinding: a service instance bound to an app (or a service key). Lives in the space
//! namespace; produces a servicebinding.io-style Secret and a `VCAP_SERVICES` entry.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{common::CommonStatus, service_instance::LastOperation};

/// What a binding binds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BindingType {
    /// An app binding: credentials reach the app's environment.
    #[default]
    App,
    /// A service key: credentials for use outside the platform.
    Key,
}

/// A service credential binding.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFServiceBinding",
    namespaced,
    status = "CFServiceBindingStatus",
    shortname = "sb",
    category = "cf",
    doc = "A service instance bound to an app (or a service key). Produces a servicebinding.io Secret and a VCAP_SERVICES entry.",
    printcolumn(name = "Display Name", type_ = "string", json_path = ".spec.displayName"),
    printcolumn(name = "Instance", type_ = "string", json_path = ".spec.serviceInstanceGuid"),
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appGuid"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.appGuid",
    selectable = ".spec.serviceInstanceGuid"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self.type == 'app' ? has(self.appGuid) : (!has(self.appGuid) && has(self.displayName))").message("app bindings need an appGuid; service keys need a displayName and no appGuid"))]
pub struct CFServiceBindingSpec {
    /// The binding's name; required for service keys, optional for app bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub display_name: Option<String>,
    /// `app` or `key`.
    #[serde(rename = "type", default)]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub type_: BindingType,
    /// GUID of the bound CFServiceInstance.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub service_instance_guid: String,
    /// GUID of the bound CFApp, for app bindings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub app_guid: Option<String>,
}

/// What the controller observed about a binding.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFServiceBindingStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// The Secret with the binding's credentials in servicebinding.io layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// The last operation on the binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_operation: Option<LastOperation>,
}
