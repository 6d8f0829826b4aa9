//! CFDroplet: a runnable artifact, an OCI image plus its process types. A first-class kind
//! (Korifi folds droplets into builds) so droplets can be listed, switched and garbage-collected.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::common::{CommonStatus, LifecycleType, SecretRef};

/// Where a droplet is.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DropletState {
    /// Waiting for bits to be uploaded.
    AwaitingUpload,
    /// Uploaded bits are being processed.
    ProcessingUpload,
    /// Runnable.
    Staged,
    /// Being copied from another droplet.
    Copying,
    /// Unusable.
    Failed,
    /// Its image was removed.
    Expired,
}

/// A runnable artifact of an app. The spec is immutable, as CF droplets are.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "kubefoundry.dev",
    version = "v1alpha1",
    kind = "CFDroplet",
    namespaced,
    status = "CFDropletStatus",
    shortname = "droplet",
    category = "cf",
    doc = "A runnable artifact of a Cloud Foundry app: an image plus its process types. Made by a CFBuild, or directly with an image.",
    printcolumn(name = "App", type_ = "string", json_path = ".spec.appGuid"),
    printcolumn(name = "State", type_ = "string", json_path = ".status.state"),
    printcolumn(name = "Image", type_ = "string", json_path = ".status.image", priority = 1),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    selectable = ".spec.appGuid",
    selectable = ".spec.buildGuid"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self == oldSelf").message("a droplet's spec is immutable"))]
#[x_kube(validation = kube::core::cel::Rule::new("has(self.buildGuid) || has(self.image)").message("a droplet needs a buildGuid or an image"))]
pub struct CFDropletSpec {
    /// GUID of the CFApp this droplet runs.
    #[schemars(length(min = 1, max = 253))]
    pub app_guid: String,
    /// GUID of the CFBuild that produced it; unset for droplets made directly from an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub build_guid: Option<String>,
    /// GUID of the CFPackage it was staged from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub package_guid: Option<String>,
    /// The lifecycle that made it.
    #[serde(default)]
    pub lifecycle: LifecycleType,
    /// The image to run, when not taken from the build's result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024), regex(pattern = r"^[^\s]+$"))]
    pub image: Option<String>,
    /// Commands by process type, such as `web: bundle exec rackup`; merged over those the image declares.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub process_types: BTreeMap<String, String>,
    /// Registry credentials for pulling the image: a Secret with `username` and `password` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretRef>,
}

/// What the platform resolved about a droplet.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CFDropletStatus {
    /// Generation and conditions.
    #[serde(flatten)]
    pub common: CommonStatus,
    /// `AWAITING_UPLOAD`, `PROCESSING_UPLOAD`, `STAGED`, `COPYING`, `FAILED` or `EXPIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<DropletState>,
    /// The image Deployments and Jobs run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The resolved command for each process type.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub process_types: BTreeMap<String, String>,
    /// Ports the image exposes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<i32>,
    /// The stack it was built on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Name of the Secret of type `kubernetes.io/dockerconfigjson` made from the credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_secret_name: Option<String>,
    /// Why the droplet failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
