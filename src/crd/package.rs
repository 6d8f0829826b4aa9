//! CFPackage: an app's source, either uploaded bits or a docker image reference. Lives in the
//! space namespace; builds stage it into droplets.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, SecretRef};

/// What a package holds.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PackageType {
    /// An uploaded zip of the app's files.
    #[default]
    Bits,
    /// A reference to a prebuilt OCI image.
    Docker,
}

/// Where a package is in its life.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PackageState {
    /// Bits are expected and have not arrived.
    AwaitingUpload,
    /// Bits arrived and are being stored.
    ProcessingUpload,
    /// Ready to stage.
    Ready,
    /// The upload or copy failed.
    Failed,
    /// Bits are being copied from another package.
    Copying,
    /// The bits were removed.
    Expired,
}

/// An app's source: uploaded bits or a docker image.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFPackage",
    namespaced,
    status = "CFPackageStatus",
    shortname = "pkg",
    category = "cf",
    doc = "An app's source: uploaded bits or a docker image reference. A CFBuild stages it into a CFDroplet.",
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appGuid"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.appGuid",
    selectable = ".spec.type"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self.type != 'docker' || has(self.image)").message("a docker package needs an image").field_path(".image"))]
#[x_kube(validation = kube::core::cel::Rule::new("self.type != 'bits' || (!has(self.image) && !has(self.credentials))").message("a bits package takes no image or credentials"))]
pub struct CFPackageSpec {
    /// GUID of the CFApp this package belongs to.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub app_guid: String,
    /// `bits` for uploaded files, `docker` for an image reference.
    #[serde(rename = "type")]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("a package's type cannot change"))]
    pub type_: PackageType,
    /// For docker packages: the image reference, such as `nginx:1.27` or `registry.example/app@sha256:…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^\s]+$"))]
    #[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("is immutable"))]
    pub image: Option<String>,
    /// For docker packages from private registries: a Secret with `username` and `password` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretRef>,
}

/// The checksum of uploaded bits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Checksum {
    /// The algorithm; always `sha256`.
    #[serde(rename = "type")]
    pub type_: String,
    /// The hex digest.
    pub value: String,
}

/// What the platform observed about a package.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFPackageStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// `AWAITING_UPLOAD`, `PROCESSING_UPLOAD`, `READY`, `FAILED`, `COPYING` or `EXPIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PackageState>,
    /// Checksum of the uploaded bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checksum: Option<Checksum>,
    /// Size of the uploaded bits in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub size: Option<i64>,
    /// Why the package failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
