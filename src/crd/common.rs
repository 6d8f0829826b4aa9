//! Types every kubefoundry CRD shares: conditions, lifecycles, Secret references and the
//! schema helpers that keep generated schemas structural.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The API group of every kubefoundry kind.
pub const GROUP: &str = "kubefoundry.dev";
/// The single served and stored version.
pub const VERSION: &str = "v1alpha1";
/// The category that makes `kubectl get cf` list every kind.
pub const CATEGORY: &str = "cf";

/// The condition type every kind reports; true when the object is fully reconciled.
pub const READY: &str = "Ready";

/// Conditions as a list-map keyed by `type`, so server-side apply merges them per type
/// instead of replacing the list, exactly like `metav1.Condition` lists in core kinds.
pub fn conditions_schema(generator: &mut SchemaGenerator) -> Schema {
    let item = generator.subschema_for::<Condition>();
    json_schema!({
        "type": "array",
        "description": "Observations of the object's state, one per condition type. `Ready` summarises them.",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": item,
    })
}

/// The status fields every kind carries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommonStatus {
    /// The `metadata.generation` the controller last acted on; status is stale while it lags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Observations of the object's state, one per condition type. `Ready` summarises them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "conditions_schema")]
    pub conditions: Vec<Condition>,
}

impl CommonStatus {
    /// The condition of this type, if reported.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// True when `Ready` is `True` for the current generation.
    pub fn is_ready(&self, generation: Option<i64>) -> bool {
        self.observed_generation == generation && self.condition(READY).is_some_and(|c| c.status == "True")
    }
}

/// How an app is staged: which lifecycle builds its droplets.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleType {
    /// Staged from uploaded bits by buildpacks.
    #[default]
    Buildpack,
    /// Run from a prebuilt OCI image.
    Docker,
    /// Staged from uploaded bits by Cloud Native Buildpacks.
    Cnb,
}

/// The lifecycle of an app or build, as in the CF v3 `lifecycle` object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::cel::Rule::new("self.type != 'docker' || ((!has(self.buildpacks) || size(self.buildpacks) == 0) && !has(self.stack))").message("a docker lifecycle takes no buildpacks or stack"))]
pub struct Lifecycle {
    /// The lifecycle type: `buildpack`, `cnb` or `docker`.
    #[serde(rename = "type")]
    pub type_: LifecycleType,
    /// Buildpack names or URLs, in detection order; empty means auto-detect.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub buildpacks: Vec<String>,
    /// The stack (root filesystem) to stage on, such as `cflinuxfs4`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub stack: Option<String>,
}

/// A reference to a Secret in the same namespace as the referring object.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// The Secret's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// A CF resource GUID, or any valid Kubernetes object name for objects made with kubectl.
pub const GUID_PATTERN: &str = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$";

/// Environment variables as CF stores them: names to string values.
pub type EnvVars = BTreeMap<String, String>;

/// Schema for environment variable maps: names must be valid and must not start with
/// `VCAP_`, `VMC_` or be `PORT`, which the platform owns (Cloud Controller rejects them too).
pub fn env_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "description": "Environment variables, name to value. Names starting with VCAP_ or VMC_, and PORT, are reserved by the platform.",
        "additionalProperties": {"type": "string"},
        "maxProperties": 1000,
        "x-kubernetes-validations": [
            {
                "rule": "self.all(k, !k.startsWith('VCAP_') && !k.startsWith('VMC_') && k != 'PORT')",
                "message": "environment variable names may not start with VCAP_ or VMC_, or be PORT"
            },
            {
                "rule": "self.all(k, k.matches('^[A-Za-z_][A-Za-z0-9_]*$'))",
                "message": "environment variable names must start with a letter or underscore and hold only letters, digits and underscores"
            }
        ]
    })
}
