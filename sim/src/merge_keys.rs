//! How lists and maps merge: the list types that strategic merge patch and server-side apply
//! share, and the table of them for built-in kinds (which have no CRD schema to read them from).
//!
//! The table was derived from the Go types of k8s.io/api, k8s.io/apimachinery and
//! k8s.io/apiextensions-apiserver at v0.35.7 (Kubernetes 1.35): the `patchStrategy` /
//! `patchMergeKey` struct tags, which become `x-kubernetes-patch-strategy` /
//! `x-kubernetes-patch-merge-key` in the OpenAPI, give strategic merge patch its semantics; the
//! `+listType` / `+listMapKey` markers, which become `x-kubernetes-list-type` /
//! `x-kubernetes-list-map-keys`, give server-side apply its semantics, falling back to the patch
//! strategy where a list has no marker (as kube-openapi's schema conversion does). The two differ
//! in places: container and Service ports are keyed by port alone for strategic merge patch but
//! by port and protocol for apply, `Job` conditions merge by type for strategic merge patch but
//! are atomic for apply, and several lists are atomic for one and a set or map for the other.
//!
//! Lists that are atomic for both are not in the table, since atomic is the answer for anything
//! the table does not know (tolerations, RBAC rules and subjects, Ingress rules, EndpointSlice
//! endpoints and ports, `metadata.managedFields`, ...).

use serde_json::Value;

/// How a list field merges, as `x-kubernetes-list-type` / `x-kubernetes-patch-merge-key` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced whole by whoever writes it.
    Atomic,
    /// A list of scalars merged as a set.
    Set,
    /// A list of objects merged item by item, items identified by these keys.
    Map(Vec<String>),
}

impl ListType {
    /// A map list keyed by the given fields.
    pub fn map<S: AsRef<str>>(keys: &[S]) -> Self {
        ListType::Map(keys.iter().map(|k| k.as_ref().to_string()).collect())
    }

    /// The item keys of a map list; empty for the other kinds.
    pub fn keys(&self) -> &[String] {
        match self {
            ListType::Map(keys) => keys,
            ListType::Atomic | ListType::Set => &[],
        }
    }

    /// Whether the list is merged rather than replaced.
    pub fn merges(&self) -> bool {
        !matches!(self, ListType::Atomic)
    }

    /// The list type server-side apply reads from an OpenAPI / CRD structural schema node: an
    /// explicit `x-kubernetes-list-type` wins, else `x-kubernetes-patch-strategy: merge` makes a
    /// map keyed by `x-kubernetes-patch-merge-key` (a set without one), else the list is atomic.
    pub fn from_schema(schema: &Value) -> Self {
        match schema.get("x-kubernetes-list-type").and_then(Value::as_str) {
            Some("set") => return ListType::Set,
            Some("map") => {
                let keys = schema
                    .get("x-kubernetes-list-map-keys")
                    .and_then(Value::as_array)
                    .map(|ks| ks.iter().filter_map(Value::as_str).map(str::to_string).collect())
                    .unwrap_or_default();
                return ListType::Map(keys);
            }
            Some(_) => return ListType::Atomic,
            None => {}
        }
        if schema.get("x-kubernetes-patch-strategy").and_then(Value::as_str) == Some("merge") {
            return match schema.get("x-kubernetes-patch-merge-key").and_then(Value::as_str) {
                Some(key) => ListType::Map(vec![key.to_string()]),
                None => ListType::Set,
            };
        }
        ListType::Atomic
    }
}

/// The list type of the field at `path` (field names from the object root, list items skipped,
/// e.g. `["spec", "template", "spec", "containers", "ports"]`) of a built-in kind.
///
/// With `for_apply == false` this is the strategic-merge-patch view
/// (`x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key`, always a single key); with
/// `for_apply == true` it is the server-side-apply view (`x-kubernetes-list-type` /
/// `x-kubernetes-list-map-keys`, possibly several keys: container ports are keyed by
/// `containerPort` alone for the first and by `containerPort` and `protocol` for the second).
///
/// Unknown kinds and fields, and fields that are not lists, give [`ListType::Atomic`];
/// `metadata` is understood for every kind, custom ones included.
pub fn builtin_list_type(api_group: &str, kind: &str, path: &[&str], for_apply: bool) -> ListType {
    lookup(api_group, kind, path, for_apply)
}

/// The strategic-merge-patch list types of one built-in kind, in the shape
/// [`crate::patch::strategic_merge_patch`] takes.
pub fn strategic_lists<'a>(api_group: &'a str, kind: &'a str) -> impl Fn(&[&str]) -> ListType + 'a {
    move |path| builtin_list_type(api_group, kind, path, false)
}

// One row of the table: a field of a type, the type of its value (or of its items, for lists)
// when that type has rows of its own, and its list semantics for patch and for apply.
struct F(&'static str, &'static str, L, L);

#[derive(Clone, Copy)]
enum L {
    // Not a list: a struct on the way to one.
    Field,
    Atomic,
    Set,
    Map(&'static [&'static str]),
}

impl L {
    fn list_type(self) -> ListType {
        match self {
            L::Field | L::Atomic => ListType::Atomic,
            L::Set => ListType::Set,
            L::Map(keys) => ListType::map(keys),
        }
    }
}

const OBJECT_META: &str = "meta/v1.ObjectMeta";

fn lookup(api_group: &str, kind: &str, path: &[&str], apply: bool) -> ListType {
    let root = KINDS
        .iter()
        .find(|(g, k, _)| *g == api_group && *k == kind)
        .map(|(_, _, t)| *t);
    let mut current = root;
    for (depth, segment) in path.iter().enumerate() {
        let row = if depth == 0 && *segment == "metadata" {
            None
        } else {
            let Some(fields) = current.and_then(|t| TYPES.iter().find(|(name, _)| *name == t)) else {
                return ListType::Atomic;
            };
            match fields.1.iter().find(|f| f.0 == *segment) {
                Some(row) => Some(row),
                None => return ListType::Atomic,
            }
        };
        let (child, smp, ssa) = match row {
            Some(F(_, child, smp, ssa)) => (*child, *smp, *ssa),
            // Every object's metadata is an ObjectMeta, whatever the kind.
            None => (OBJECT_META, L::Field, L::Field),
        };
        if depth + 1 == path.len() {
            return if apply { ssa.list_type() } else { smp.list_type() };
        }
        if child.is_empty() {
            return ListType::Atomic;
        }
        current = Some(child);
    }
    ListType::Atomic
}

// Field rows per Go type, derived as the module documentation says.
#[rustfmt::skip]
static TYPES: &[(&str, &[F])] = &[
    ("admissionregistration/v1.MutatingWebhook", &[
        F("matchConditions", "", L::Map(&["name"]), L::Map(&["name"])),
    ]),
    ("admissionregistration/v1.MutatingWebhookConfiguration", &[
        F("webhooks", "admissionregistration/v1.MutatingWebhook", L::Map(&["name"]), L::Map(&["name"])),
    ]),
    ("admissionregistration/v1.ValidatingAdmissionPolicy", &[
        F("spec", "admissionregistration/v1.ValidatingAdmissionPolicySpec", L::Field, L::Field),
        F("status", "admissionregistration/v1.ValidatingAdmissionPolicyStatus", L::Field, L::Field),
    ]),
    ("admissionregistration/v1.ValidatingAdmissionPolicyBinding", &[
        F("spec", "admissionregistration/v1.ValidatingAdmissionPolicyBindingSpec", L::Field, L::Field),
    ]),
    ("admissionregistration/v1.ValidatingAdmissionPolicyBindingSpec", &[
        F("validationActions", "", L::Atomic, L::Set),
    ]),
    ("admissionregistration/v1.ValidatingAdmissionPolicySpec", &[
        F("matchConditions", "", L::Map(&["name"]), L::Map(&["name"])),
        F("variables", "", L::Map(&["name"]), L::Map(&["name"])),
    ]),
    ("admissionregistration/v1.ValidatingAdmissionPolicyStatus", &[
        F("conditions", "", L::Atomic, L::Map(&["type"])),
    ]),
    ("admissionregistration/v1.ValidatingWebhook", &[
        F("matchConditions", "", L::Map(&["name"]), L::Map(&["name"])),
    ]),
    ("admissionregistration/v1.ValidatingWebhookConfiguration", &[
        F("webhooks", "admissionregistration/v1.ValidatingWebhook", L::Map(&["name"]), L::Map(&["name"])),
    ]),
    ("apiextensions/v1.CustomResourceDefinition", &[
        F("status", "apiextensions/v1.CustomResourceDefinitionStatus", L::Field, L::Field),
    ]),
    ("apiextensions/v1.CustomResourceDefinitionStatus", &[
        F("conditions", "", L::Atomic, L::Map(&["type"])),
    ]),
    ("apps/v1.DaemonSet", &[
        F("spec", "apps/v1.DaemonSetSpec", L::Field, L::Field),
        F("status", "apps/v1.DaemonSetStatus", L::Field, L::Field),
    ]),
    ("apps/v1.DaemonSetSpec", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("apps/v1.DaemonSetStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("apps/v1.Deployment", &[
        F("spec", "apps/v1.DeploymentSpec", L::Field, L::Field),
        F("status", "apps/v1.DeploymentStatus", L::Field, L::Field),
    ]),
    ("apps/v1.DeploymentSpec", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("apps/v1.DeploymentStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("apps/v1.ReplicaSet", &[
        F("spec", "apps/v1.ReplicaSetSpec", L::Field, L::Field),
        F("status", "apps/v1.ReplicaSetStatus", L::Field, L::Field),
    ]),
    ("apps/v1.ReplicaSetSpec", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("apps/v1.ReplicaSetStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("apps/v1.StatefulSet", &[
        F("spec", "apps/v1.StatefulSetSpec", L::Field, L::Field),
        F("status", "apps/v1.StatefulSetStatus", L::Field, L::Field),
    ]),
    ("apps/v1.StatefulSetSpec", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("apps/v1.StatefulSetStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("autoscaling/v2.HorizontalPodAutoscaler", &[
        F("status", "autoscaling/v2.HorizontalPodAutoscalerStatus", L::Field, L::Field),
    ]),
    ("autoscaling/v2.HorizontalPodAutoscalerStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("batch/v1.CronJob", &[
        F("spec", "batch/v1.CronJobSpec", L::Field, L::Field),
    ]),
    ("batch/v1.CronJobSpec", &[
        F("jobTemplate", "batch/v1.JobTemplateSpec", L::Field, L::Field),
    ]),
    ("batch/v1.Job", &[
        F("spec", "batch/v1.JobSpec", L::Field, L::Field),
        F("status", "batch/v1.JobStatus", L::Field, L::Field),
    ]),
    ("batch/v1.JobSpec", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("batch/v1.JobStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Atomic),
        F("uncountedTerminatedPods", "batch/v1.UncountedTerminatedPods", L::Field, L::Field),
    ]),
    ("batch/v1.JobTemplateSpec", &[
        F("metadata", "meta/v1.ObjectMeta", L::Field, L::Field),
        F("spec", "batch/v1.JobSpec", L::Field, L::Field),
    ]),
    ("batch/v1.UncountedTerminatedPods", &[
        F("succeeded", "", L::Atomic, L::Set),
        F("failed", "", L::Atomic, L::Set),
    ]),
    ("certificates/v1.CertificateSigningRequest", &[
        F("status", "certificates/v1.CertificateSigningRequestStatus", L::Field, L::Field),
    ]),
    ("certificates/v1.CertificateSigningRequestStatus", &[
        F("conditions", "", L::Atomic, L::Map(&["type"])),
    ]),
    ("core/v1.ComponentStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("core/v1.Container", &[
        F("ports", "", L::Map(&["containerPort"]), L::Map(&["containerPort", "protocol"])),
        F("env", "", L::Map(&["name"]), L::Map(&["name"])),
        F("resources", "core/v1.ResourceRequirements", L::Field, L::Field),
        F("volumeMounts", "", L::Map(&["mountPath"]), L::Map(&["mountPath"])),
        F("volumeDevices", "", L::Map(&["devicePath"]), L::Map(&["devicePath"])),
    ]),
    ("core/v1.EphemeralContainer", &[
        F("ports", "", L::Map(&["containerPort"]), L::Map(&["containerPort", "protocol"])),
        F("env", "", L::Map(&["name"]), L::Map(&["name"])),
        F("resources", "core/v1.ResourceRequirements", L::Field, L::Field),
        F("volumeMounts", "", L::Map(&["mountPath"]), L::Map(&["mountPath"])),
        F("volumeDevices", "", L::Map(&["devicePath"]), L::Map(&["devicePath"])),
    ]),
    ("core/v1.EphemeralVolumeSource", &[
        F("volumeClaimTemplate", "core/v1.PersistentVolumeClaimTemplate", L::Field, L::Field),
    ]),
    ("core/v1.Namespace", &[
        F("status", "core/v1.NamespaceStatus", L::Field, L::Field),
    ]),
    ("core/v1.NamespaceStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("core/v1.Node", &[
        F("spec", "core/v1.NodeSpec", L::Field, L::Field),
        F("status", "core/v1.NodeStatus", L::Field, L::Field),
    ]),
    ("core/v1.NodeSpec", &[
        F("podCIDRs", "", L::Set, L::Set),
    ]),
    ("core/v1.NodeStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
        F("addresses", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("core/v1.PersistentVolumeClaim", &[
        F("status", "core/v1.PersistentVolumeClaimStatus", L::Field, L::Field),
    ]),
    ("core/v1.PersistentVolumeClaimStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("core/v1.PersistentVolumeClaimTemplate", &[
        F("metadata", "meta/v1.ObjectMeta", L::Field, L::Field),
    ]),
    ("core/v1.Pod", &[
        F("spec", "core/v1.PodSpec", L::Field, L::Field),
        F("status", "core/v1.PodStatus", L::Field, L::Field),
    ]),
    ("core/v1.PodSpec", &[
        F("volumes", "core/v1.Volume", L::Map(&["name"]), L::Map(&["name"])),
        F("initContainers", "core/v1.Container", L::Map(&["name"]), L::Map(&["name"])),
        F("containers", "core/v1.Container", L::Map(&["name"]), L::Map(&["name"])),
        F("ephemeralContainers", "core/v1.EphemeralContainer", L::Map(&["name"]), L::Map(&["name"])),
        F("imagePullSecrets", "", L::Map(&["name"]), L::Map(&["name"])),
        F("hostAliases", "", L::Map(&["ip"]), L::Map(&["ip"])),
        F("topologySpreadConstraints", "", L::Map(&["topologyKey"]), L::Map(&["topologyKey", "whenUnsatisfiable"])),
        F("schedulingGates", "", L::Map(&["name"]), L::Map(&["name"])),
        F("resourceClaims", "", L::Map(&["name"]), L::Map(&["name"])),
        F("resources", "core/v1.ResourceRequirements", L::Field, L::Field),
    ]),
    ("core/v1.PodStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
        F("hostIPs", "", L::Map(&["ip"]), L::Atomic),
        F("podIPs", "", L::Map(&["ip"]), L::Map(&["ip"])),
        F("resourceClaimStatuses", "", L::Map(&["name"]), L::Map(&["name"])),
        F("resources", "core/v1.ResourceRequirements", L::Field, L::Field),
    ]),
    ("core/v1.PodStatusResult", &[
        F("status", "core/v1.PodStatus", L::Field, L::Field),
    ]),
    ("core/v1.PodTemplate", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("core/v1.PodTemplateSpec", &[
        F("metadata", "meta/v1.ObjectMeta", L::Field, L::Field),
        F("spec", "core/v1.PodSpec", L::Field, L::Field),
    ]),
    ("core/v1.ReplicationController", &[
        F("spec", "core/v1.ReplicationControllerSpec", L::Field, L::Field),
        F("status", "core/v1.ReplicationControllerStatus", L::Field, L::Field),
    ]),
    ("core/v1.ReplicationControllerSpec", &[
        F("template", "core/v1.PodTemplateSpec", L::Field, L::Field),
    ]),
    ("core/v1.ReplicationControllerStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("core/v1.ResourceRequirements", &[
        F("claims", "", L::Atomic, L::Map(&["name"])),
    ]),
    ("core/v1.Service", &[
        F("spec", "core/v1.ServiceSpec", L::Field, L::Field),
        F("status", "core/v1.ServiceStatus", L::Field, L::Field),
    ]),
    ("core/v1.ServiceAccount", &[
        F("secrets", "", L::Map(&["name"]), L::Map(&["name"])),
    ]),
    ("core/v1.ServiceSpec", &[
        F("ports", "", L::Map(&["port"]), L::Map(&["port", "protocol"])),
    ]),
    ("core/v1.ServiceStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("core/v1.Volume", &[
        F("ephemeral", "core/v1.EphemeralVolumeSource", L::Field, L::Field),
    ]),
    ("flowcontrol/v1.FlowSchema", &[
        F("status", "flowcontrol/v1.FlowSchemaStatus", L::Field, L::Field),
    ]),
    ("flowcontrol/v1.FlowSchemaStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("flowcontrol/v1.PriorityLevelConfiguration", &[
        F("status", "flowcontrol/v1.PriorityLevelConfigurationStatus", L::Field, L::Field),
    ]),
    ("flowcontrol/v1.PriorityLevelConfigurationStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("meta/v1.ObjectMeta", &[
        F("ownerReferences", "", L::Map(&["uid"]), L::Map(&["uid"])),
        F("finalizers", "", L::Set, L::Set),
    ]),
    ("networking/v1.ServiceCIDR", &[
        F("status", "networking/v1.ServiceCIDRStatus", L::Field, L::Field),
    ]),
    ("networking/v1.ServiceCIDRStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("policy/v1.PodDisruptionBudget", &[
        F("status", "policy/v1.PodDisruptionBudgetStatus", L::Field, L::Field),
    ]),
    ("policy/v1.PodDisruptionBudgetStatus", &[
        F("conditions", "", L::Map(&["type"]), L::Map(&["type"])),
    ]),
    ("resource/v1.AllocatedDeviceStatus", &[
        F("conditions", "", L::Atomic, L::Map(&["type"])),
    ]),
    ("resource/v1.ResourceClaim", &[
        F("status", "resource/v1.ResourceClaimStatus", L::Field, L::Field),
    ]),
    ("resource/v1.ResourceClaimStatus", &[
        F("reservedFor", "", L::Map(&["uid"]), L::Map(&["uid"])),
        F("devices", "resource/v1.AllocatedDeviceStatus", L::Atomic, L::Map(&["driver", "device", "pool", "shareID"])),
    ]),
    ("resource/v1.ResourceClaimTemplate", &[
        F("spec", "resource/v1.ResourceClaimTemplateSpec", L::Field, L::Field),
    ]),
    ("resource/v1.ResourceClaimTemplateSpec", &[
        F("metadata", "meta/v1.ObjectMeta", L::Field, L::Field),
    ]),
    ("storage/v1.CSIDriver", &[
        F("spec", "storage/v1.CSIDriverSpec", L::Field, L::Field),
    ]),
    ("storage/v1.CSIDriverSpec", &[
        F("volumeLifecycleModes", "", L::Atomic, L::Set),
    ]),
    ("storage/v1.CSINode", &[
        F("spec", "storage/v1.CSINodeSpec", L::Field, L::Field),
    ]),
    ("storage/v1.CSINodeSpec", &[
        F("drivers", "", L::Map(&["name"]), L::Map(&["name"])),
    ]),
];
// The Go type at the root of each built-in kind, by API group and kind.
#[rustfmt::skip]
static KINDS: &[(&str, &str, &str)] = &[
    ("", "ComponentStatus", "core/v1.ComponentStatus"),
    ("", "Namespace", "core/v1.Namespace"),
    ("", "Node", "core/v1.Node"),
    ("", "PersistentVolumeClaim", "core/v1.PersistentVolumeClaim"),
    ("", "Pod", "core/v1.Pod"),
    ("", "PodStatusResult", "core/v1.PodStatusResult"),
    ("", "PodTemplate", "core/v1.PodTemplate"),
    ("", "ReplicationController", "core/v1.ReplicationController"),
    ("", "Service", "core/v1.Service"),
    ("", "ServiceAccount", "core/v1.ServiceAccount"),
    ("admissionregistration.k8s.io", "MutatingWebhookConfiguration", "admissionregistration/v1.MutatingWebhookConfiguration"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy", "admissionregistration/v1.ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding", "admissionregistration/v1.ValidatingAdmissionPolicyBinding"),
    ("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "admissionregistration/v1.ValidatingWebhookConfiguration"),
    ("apiextensions.k8s.io", "CustomResourceDefinition", "apiextensions/v1.CustomResourceDefinition"),
    ("apps", "DaemonSet", "apps/v1.DaemonSet"),
    ("apps", "Deployment", "apps/v1.Deployment"),
    ("apps", "ReplicaSet", "apps/v1.ReplicaSet"),
    ("apps", "StatefulSet", "apps/v1.StatefulSet"),
    ("autoscaling", "HorizontalPodAutoscaler", "autoscaling/v2.HorizontalPodAutoscaler"),
    ("batch", "CronJob", "batch/v1.CronJob"),
    ("batch", "Job", "batch/v1.Job"),
    ("certificates.k8s.io", "CertificateSigningRequest", "certificates/v1.CertificateSigningRequest"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema", "flowcontrol/v1.FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration", "flowcontrol/v1.PriorityLevelConfiguration"),
    ("networking.k8s.io", "ServiceCIDR", "networking/v1.ServiceCIDR"),
    ("policy", "PodDisruptionBudget", "policy/v1.PodDisruptionBudget"),
    ("resource.k8s.io", "ResourceClaim", "resource/v1.ResourceClaim"),
    ("resource.k8s.io", "ResourceClaimTemplate", "resource/v1.ResourceClaimTemplate"),
    ("storage.k8s.io", "CSIDriver", "storage/v1.CSIDriver"),
    ("storage.k8s.io", "CSINode", "storage/v1.CSINode"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn smp(group: &str, kind: &str, path: &str) -> ListType {
        builtin_list_type(group, kind, &path.split('.').collect::<Vec<_>>(), false)
    }

    fn ssa(group: &str, kind: &str, path: &str) -> ListType {
        builtin_list_type(group, kind, &path.split('.').collect::<Vec<_>>(), true)
    }

    fn map(keys: &[&str]) -> ListType {
        ListType::map(keys)
    }

    #[test]
    fn pod_spec_lists_under_every_workload() {
        let templates = [
            ("", "Pod", "spec"),
            ("", "PodTemplate", "template.spec"),
            ("", "ReplicationController", "spec.template.spec"),
            ("apps", "Deployment", "spec.template.spec"),
            ("apps", "ReplicaSet", "spec.template.spec"),
            ("apps", "StatefulSet", "spec.template.spec"),
            ("apps", "DaemonSet", "spec.template.spec"),
            ("batch", "Job", "spec.template.spec"),
            ("batch", "CronJob", "spec.jobTemplate.spec.template.spec"),
        ];
        for (group, kind, pod) in templates {
            let both = |field: &str, want: ListType| {
                let path = format!("{pod}.{field}");
                assert_eq!(smp(group, kind, &path), want, "smp {kind} {path}");
                assert_eq!(ssa(group, kind, &path), want, "ssa {kind} {path}");
            };
            both("containers", map(&["name"]));
            both("initContainers", map(&["name"]));
            both("ephemeralContainers", map(&["name"]));
            both("containers.env", map(&["name"]));
            both("initContainers.volumeMounts", map(&["mountPath"]));
            both("containers.volumeDevices", map(&["devicePath"]));
            both("volumes", map(&["name"]));
            both("imagePullSecrets", map(&["name"]));
            both("hostAliases", map(&["ip"]));
            both("resourceClaims", map(&["name"]));
            both("schedulingGates", map(&["name"]));
            both("tolerations", ListType::Atomic);
            both("containers.envFrom", ListType::Atomic);
            both("containers.command", ListType::Atomic);
            both("readinessGates", ListType::Atomic);
            let path = format!("{pod}.containers.ports");
            assert_eq!(smp(group, kind, &path), map(&["containerPort"]));
            assert_eq!(ssa(group, kind, &path), map(&["containerPort", "protocol"]));
            let path = format!("{pod}.topologySpreadConstraints");
            assert_eq!(smp(group, kind, &path), map(&["topologyKey"]));
            assert_eq!(
                ssa(group, kind, &path),
                map(&["topologyKey", "whenUnsatisfiable"])
            );
            let path = format!("{pod}.containers.resources.claims");
            assert_eq!(smp(group, kind, &path), ListType::Atomic);
            assert_eq!(ssa(group, kind, &path), map(&["name"]));
        }
    }

    #[test]
    fn services_metadata_and_conditions() {
        assert_eq!(smp("", "Service", "spec.ports"), map(&["port"]));
        assert_eq!(ssa("", "Service", "spec.ports"), map(&["port", "protocol"]));
        assert_eq!(smp("", "Service", "spec.externalIPs"), ListType::Atomic);
        for (group, kind) in [
            ("", "ConfigMap"),
            ("apps", "Deployment"),
            ("example.com", "Widget"),
            ("", "Secret"),
        ] {
            assert_eq!(smp(group, kind, "metadata.finalizers"), ListType::Set);
            assert_eq!(ssa(group, kind, "metadata.ownerReferences"), map(&["uid"]));
            assert_eq!(smp(group, kind, "metadata.managedFields"), ListType::Atomic);
            assert_eq!(smp(group, kind, "metadata.labels"), ListType::Atomic);
        }
        assert_eq!(
            smp("apps", "Deployment", "spec.template.metadata.finalizers"),
            ListType::Set
        );
        for (group, kind) in [
            ("apps", "Deployment"),
            ("apps", "StatefulSet"),
            ("", "Pod"),
            ("", "Namespace"),
            ("policy", "PodDisruptionBudget"),
            ("autoscaling", "HorizontalPodAutoscaler"),
        ] {
            assert_eq!(smp(group, kind, "status.conditions"), map(&["type"]), "{kind}");
            assert_eq!(ssa(group, kind, "status.conditions"), map(&["type"]), "{kind}");
        }
        assert_eq!(smp("batch", "Job", "status.conditions"), map(&["type"]));
        assert_eq!(ssa("batch", "Job", "status.conditions"), ListType::Atomic);
        assert_eq!(
            ssa(
                "apiextensions.k8s.io",
                "CustomResourceDefinition",
                "status.conditions"
            ),
            map(&["type"])
        );
    }

    #[test]
    fn atomic_everywhere_else() {
        for (group, kind, path) in [
            ("networking.k8s.io", "Ingress", "spec.rules"),
            ("networking.k8s.io", "Ingress", "spec.tls"),
            ("rbac.authorization.k8s.io", "Role", "rules"),
            ("rbac.authorization.k8s.io", "ClusterRole", "rules"),
            ("rbac.authorization.k8s.io", "RoleBinding", "subjects"),
            ("discovery.k8s.io", "EndpointSlice", "endpoints"),
            ("discovery.k8s.io", "EndpointSlice", "ports"),
            ("", "Endpoints", "subsets"),
            ("", "Namespace", "spec.finalizers"),
            ("apps", "Deployment", "spec.selector.matchExpressions"),
            ("apps", "Deployment", "spec.template.spec.containers.image"),
            ("apps", "Deployment", "spec.nosuchfield.containers"),
            ("example.com", "Widget", "spec.items"),
            ("apps", "Deployment", ""),
        ] {
            assert_eq!(smp(group, kind, path), ListType::Atomic, "{kind} {path}");
            assert_eq!(ssa(group, kind, path), ListType::Atomic, "{kind} {path}");
        }
        assert_eq!(
            builtin_list_type("apps", "Deployment", &[], true),
            ListType::Atomic
        );
    }

    #[test]
    fn strategic_lists_closure_and_schema_reading() {
        let lists = strategic_lists("apps", "Deployment");
        assert_eq!(lists(&["spec", "template", "spec", "containers"]), map(&["name"]));
        assert_eq!(
            ListType::from_schema(
                &json!({"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["a", "b"]})
            ),
            map(&["a", "b"])
        );
        assert_eq!(
            ListType::from_schema(&json!({"x-kubernetes-list-type": "set"})),
            ListType::Set
        );
        assert_eq!(
            ListType::from_schema(
                &json!({"x-kubernetes-list-type": "atomic", "x-kubernetes-patch-strategy": "merge"})
            ),
            ListType::Atomic
        );
        assert_eq!(
            ListType::from_schema(
                &json!({"x-kubernetes-patch-strategy": "merge", "x-kubernetes-patch-merge-key": "name"})
            ),
            map(&["name"])
        );
        assert_eq!(
            ListType::from_schema(&json!({"x-kubernetes-patch-strategy": "merge"})),
            ListType::Set
        );
        assert_eq!(ListType::from_schema(&json!({"type": "array"})), ListType::Atomic);
        assert_eq!(map(&["a"]).keys(), ["a"]);
        assert!(!ListType::Atomic.merges() && ListType::Set.merges());
    }
}
