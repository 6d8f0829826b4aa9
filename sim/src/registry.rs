//! The resource types the simulated cluster serves: the built-in kinds, and the custom kinds
//! that Established CRDs add at run time. Discovery, routing and storage all read from here.

use std::{
    collections::BTreeMap,
    sync::{Arc, RwLock},
};

use serde_json::{Value, json};

use crate::schema::CompiledSchema;

/// One served resource: `deployments` in `apps/v1`, or `cfapps` in `kubefoundry.dev/v1alpha1`.
#[derive(Clone)]
pub struct ResourceType {
    /// API group; empty for the core group.
    pub group: String,
    /// The served version.
    pub version: String,
    /// Kind, such as `Deployment`.
    pub kind: String,
    /// Plural resource name, used in paths.
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Categories, such as `all` or `cf`.
    pub categories: Vec<String>,
    /// Subresources served: `status`, `scale`, `log`, `finalize`, `token`.
    pub subresources: Vec<&'static str>,
    /// Verbs served on the collection and objects.
    pub verbs: Vec<&'static str>,
    /// Whether `metadata.generation` is tracked (moves on spec changes).
    pub has_generation: bool,
    /// Whether the main resource's writes leave `status` alone (a status subresource exists).
    pub status_subresource: bool,
    /// Only POSTed, never stored (TokenReview, access reviews).
    pub virtual_create_only: bool,
    /// For custom resources: the schema that validates, defaults and prunes them.
    pub schema: Option<Arc<CompiledSchema>>,
    /// For custom resources: the raw `openAPIV3Schema`, for OpenAPI documents.
    pub openapi: Option<Value>,
    /// For custom resources: the CRD's `additionalPrinterColumns`.
    pub printer_columns: Vec<Value>,
    /// For custom resources: the CRD's `selectableFields` JSON paths.
    pub selectable_fields: Vec<String>,
    /// For custom resources: the scale subresource's paths.
    pub scale: Option<Value>,
    /// Whether this is a custom resource (items in lists carry apiVersion and kind).
    pub custom: bool,
}

const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

impl ResourceType {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The storage key prefix: `group/plural`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.group, self.plural)
    }

    /// `plural.group`, or `plural` for the core group: how apiserver names it in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// The path prefix, `/api/v1` or `/apis/group/version`.
    pub fn path_prefix(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }

    fn builtin(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            kind: kind.to_owned(),
            plural: plural.to_owned(),
            singular: kind.to_lowercase(),
            namespaced,
            short_names: Vec::new(),
            categories: Vec::new(),
            subresources: Vec::new(),
            verbs: ALL_VERBS.to_vec(),
            has_generation: false,
            status_subresource: false,
            virtual_create_only: false,
            schema: None,
            openapi: None,
            printer_columns: Vec::new(),
            selectable_fields: Vec::new(),
            scale: None,
            custom: false,
        }
    }

    fn short(mut self, names: &[&str]) -> Self {
        self.short_names = names.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    fn all_category(mut self) -> Self {
        self.categories = vec!["all".to_owned()];
        self
    }

    fn with_status(mut self) -> Self {
        self.subresources.push("status");
        self.status_subresource = true;
        self
    }

    fn sub(mut self, name: &'static str) -> Self {
        self.subresources.push(name);
        self
    }

    fn generation(mut self) -> Self {
        self.has_generation = true;
        self
    }

    fn create_only(mut self) -> Self {
        self.verbs = vec!["create"];
        self.virtual_create_only = true;
        self
    }

    /// The type served for a CRD version, or why it cannot be served.
    pub fn from_crd(crd: &Value) -> Result<Self, String> {
        let spec = &crd["spec"];
        let names = &spec["names"];
        let str_of = |v: &Value| v.as_str().map(str::to_owned);
        let group = str_of(&spec["group"]).ok_or("spec.group is required")?;
        let kind = str_of(&names["kind"]).ok_or("spec.names.kind is required")?;
        let plural = str_of(&names["plural"]).ok_or("spec.names.plural is required")?;
        let versions = spec["versions"].as_array().ok_or("spec.versions is required")?;
        let version = versions
            .iter()
            .find(|v| v["storage"].as_bool() == Some(true))
            .or_else(|| versions.first())
            .ok_or("spec.versions must not be empty")?;
        let list = |v: &Value| -> Vec<String> {
            v.as_array()
                .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        let schema = match version.pointer("/schema/openAPIV3Schema") {
            Some(s) => Some(Arc::new(CompiledSchema::new(s).map_err(|e| e.join("; "))?)),
            None => None,
        };
        let mut subresources = Vec::new();
        let status = version.pointer("/subresources/status").is_some();
        if status {
            subresources.push("status");
        }
        let scale = version.pointer("/subresources/scale").cloned();
        if scale.is_some() {
            subresources.push("scale");
        }
        Ok(Self {
            singular: str_of(&names["singular"]).unwrap_or_else(|| kind.to_lowercase()),
            group,
            version: str_of(&version["name"]).ok_or("spec.versions[].name is required")?,
            kind,
            plural,
            namespaced: spec["scope"].as_str() != Some("Cluster"),
            short_names: list(&names["shortNames"]),
            categories: list(&names["categories"]),
            subresources,
            verbs: ALL_VERBS.to_vec(),
            has_generation: true,
            status_subresource: status,
            virtual_create_only: false,
            schema,
            openapi: version.pointer("/schema/openAPIV3Schema").cloned(),
            printer_columns: version["additionalPrinterColumns"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            selectable_fields: version["selectableFields"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|f| f["jsonPath"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            scale,
            custom: true,
        })
    }

    /// The APIResource entries for discovery: the resource and its subresources.
    pub fn discovery_entries(&self) -> Vec<Value> {
        let mut out = vec![json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs,
            "shortNames": self.short_names,
            "categories": self.categories,
        })];
        for sub in &self.subresources {
            let (kind, verbs): (&str, &[&str]) = match *sub {
                "scale" => ("Scale", &["get", "patch", "update"]),
                "log" => ("Pod", &["get"]),
                "finalize" => ("Namespace", &["update"]),
                "token" => ("TokenRequest", &["create"]),
                _ => (self.kind.as_str(), &["get", "patch", "update"]),
            };
            let mut entry = json!({
                "name": format!("{}/{}", self.plural, sub),
                "singularName": "",
                "namespaced": self.namespaced,
                "kind": kind,
                "verbs": verbs,
            });
            if *sub == "scale" {
                entry["group"] = json!("autoscaling");
                entry["version"] = json!("v1");
            }
            out.push(entry);
        }
        out
    }
}

/// The built-in kinds, as kube-apiserver serves them.
fn builtins() -> Vec<ResourceType> {
    type R = ResourceType;
    vec![
        R::builtin("", "v1", "Namespace", "namespaces", false)
            .short(&["ns"])
            .with_status()
            .sub("finalize"),
        R::builtin("", "v1", "Secret", "secrets", true),
        R::builtin("", "v1", "ConfigMap", "configmaps", true).short(&["cm"]),
        R::builtin("", "v1", "ServiceAccount", "serviceaccounts", true)
            .short(&["sa"])
            .sub("token"),
        R::builtin("", "v1", "Service", "services", true)
            .short(&["svc"])
            .all_category()
            .with_status(),
        R::builtin("", "v1", "Pod", "pods", true)
            .short(&["po"])
            .all_category()
            .with_status()
            .sub("log"),
        R::builtin("", "v1", "Event", "events", true).short(&["ev"]),
        R::builtin("", "v1", "Endpoints", "endpoints", true).short(&["ep"]),
        R::builtin("", "v1", "ResourceQuota", "resourcequotas", true)
            .short(&["quota"])
            .with_status(),
        R::builtin("", "v1", "LimitRange", "limitranges", true).short(&["limits"]),
        R::builtin("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true)
            .short(&["pvc"])
            .with_status(),
        R::builtin("apps", "v1", "Deployment", "deployments", true)
            .short(&["deploy"])
            .all_category()
            .with_status()
            .sub("scale")
            .generation(),
        R::builtin("apps", "v1", "ReplicaSet", "replicasets", true)
            .short(&["rs"])
            .all_category()
            .with_status()
            .sub("scale")
            .generation(),
        R::builtin("apps", "v1", "StatefulSet", "statefulsets", true)
            .short(&["sts"])
            .all_category()
            .with_status()
            .sub("scale")
            .generation(),
        R::builtin("apps", "v1", "DaemonSet", "daemonsets", true)
            .short(&["ds"])
            .all_category()
            .with_status()
            .generation(),
        R::builtin("batch", "v1", "Job", "jobs", true)
            .all_category()
            .with_status()
            .generation(),
        R::builtin("batch", "v1", "CronJob", "cronjobs", true)
            .short(&["cj"])
            .all_category()
            .with_status()
            .generation(),
        R::builtin("networking.k8s.io", "v1", "Ingress", "ingresses", true)
            .short(&["ing"])
            .with_status()
            .generation(),
        R::builtin("networking.k8s.io", "v1", "IngressClass", "ingressclasses", false).generation(),
        R::builtin(
            "networking.k8s.io",
            "v1",
            "NetworkPolicy",
            "networkpolicies",
            true,
        )
        .short(&["netpol"])
        .generation(),
        R::builtin(
            "policy",
            "v1",
            "PodDisruptionBudget",
            "poddisruptionbudgets",
            true,
        )
        .short(&["pdb"])
        .with_status()
        .generation(),
        R::builtin("rbac.authorization.k8s.io", "v1", "Role", "roles", true),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRole",
            "clusterroles",
            false,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "RoleBinding",
            "rolebindings",
            true,
        ),
        R::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            "ClusterRoleBinding",
            "clusterrolebindings",
            false,
        ),
        R::builtin("coordination.k8s.io", "v1", "Lease", "leases", true),
        R::builtin("events.k8s.io", "v1", "Event", "events", true).short(&["ev"]),
        R::builtin(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        )
        .short(&["crd", "crds"])
        .with_status()
        .generation(),
        R::builtin(
            "authentication.k8s.io",
            "v1",
            "TokenReview",
            "tokenreviews",
            false,
        )
        .create_only(),
        R::builtin(
            "authentication.k8s.io",
            "v1",
            "SelfSubjectReview",
            "selfsubjectreviews",
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "SubjectAccessReview",
            "subjectaccessreviews",
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectAccessReview",
            "selfsubjectaccessreviews",
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "SelfSubjectRulesReview",
            "selfsubjectrulesreviews",
            false,
        )
        .create_only(),
        R::builtin(
            "authorization.k8s.io",
            "v1",
            "LocalSubjectAccessReview",
            "localsubjectaccessreviews",
            true,
        )
        .create_only(),
    ]
}

/// Served types keyed by (group, version, plural).
type TypeMap = BTreeMap<(String, String, String), Arc<ResourceType>>;

/// Every served type, looked up by (group, version, plural).
#[derive(Clone)]
pub struct Registry {
    types: Arc<RwLock<TypeMap>>,
}

impl Default for Registry {
    fn default() -> Self {
        let types = builtins()
            .into_iter()
            .map(|t| {
                (
                    (t.group.clone(), t.version.clone(), t.plural.clone()),
                    Arc::new(t),
                )
            })
            .collect();
        Self {
            types: Arc::new(RwLock::new(types)),
        }
    }
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, TypeMap> {
        self.types
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The type served at `group/version/plural`.
    pub fn get(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .get(&(group.to_owned(), version.to_owned(), plural.to_owned()))
            .cloned()
    }

    /// The type of a kind in a group (any version), for `apiVersion`/`kind` lookups.
    pub fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        self.read()
            .values()
            .find(|t| t.group == group && t.version == version && t.kind == kind)
            .cloned()
    }

    /// Every served type.
    pub fn all(&self) -> Vec<Arc<ResourceType>> {
        self.read().values().cloned().collect()
    }

    /// Serves a CRD's type (replacing an earlier version of it).
    pub fn install(&self, t: ResourceType) {
        let mut types = self
            .types
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        types.retain(|_, v| !(v.custom && v.group == t.group && v.plural == t.plural));
        types.insert(
            (t.group.clone(), t.version.clone(), t.plural.clone()),
            Arc::new(t),
        );
    }

    /// Stops serving a CRD's type.
    pub fn remove(&self, group: &str, plural: &str) {
        let mut types = self
            .types
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        types.retain(|_, v| !(v.custom && v.group == group && v.plural == plural));
    }

    /// Groups and their versions, core group first, in discovery order.
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for t in self.read().values() {
            let versions = groups.entry(t.group.clone()).or_default();
            if !versions.contains(&t.version) {
                versions.push(t.version.clone());
            }
        }
        groups.into_iter().collect()
    }
}
