//! Per-kind behaviour kube-apiserver builds into its registry strategies: defaulting, the
//! validation that matters to clients (immutable fields, selector/label agreement, names),
//! selectable fields, deletion defaults, and the work done right after a write (CRDs become
//! served types; token Secrets get tokens).

use std::sync::Arc;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::{
    api::{ApiError, ApiResult, objects::Op},
    cluster::Cluster,
    registry::ResourceType,
    store::{Key, Write, Written},
};

fn is(rt: &ResourceType, group: &str, plural: &str) -> bool {
    !rt.custom && rt.group == group && rt.plural == plural
}

/// Fields `fieldSelector` may use on a type.
pub fn selectable_fields(rt: &ResourceType) -> Vec<String> {
    let mut fields = vec!["metadata.name".to_owned()];
    if rt.namespaced {
        fields.push("metadata.namespace".to_owned());
    }
    let extra: &[&str] = match (rt.group.as_str(), rt.plural.as_str()) {
        _ if rt.custom => &[],
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("batch", "jobs") => &["status.successful"],
        ("apps", "replicasets") => &["status.replicas"],
        _ => &[],
    };
    fields.extend(extra.iter().map(|s| (*s).to_owned()));
    fields.extend(
        rt.selectable_fields
            .iter()
            .map(|p| p.trim_start_matches('.').to_owned()),
    );
    fields
}

/// The string value of a dotted field path, as field selectors compare it.
pub fn field_value(object: &Value, field: &str) -> Option<String> {
    let mut v = object;
    for part in field.split('.') {
        v = v.get(part)?;
    }
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `Background`, or what the type's API defaults to.
pub fn default_propagation(rt: &ResourceType) -> &'static str {
    // batch/v1 Jobs still orphan their Pods unless told otherwise, as in kube-apiserver.
    if is(rt, "batch", "jobs") {
        "Orphan"
    } else {
        "Background"
    }
}

/// Whether DELETE answers with the deleted object rather than a Success Status.
pub fn returns_deleted_object(rt: &ResourceType) -> bool {
    rt.custom
        || matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("", "pods" | "namespaces")
        )
}

/// Whether PUT of a missing object creates it.
pub fn allow_create_on_update(rt: &ResourceType) -> bool {
    !rt.custom
        && matches!(
            (rt.group.as_str(), rt.plural.as_str()),
            ("", "events" | "endpoints")
                | ("coordination.k8s.io", "leases")
                | ("events.k8s.io", "events")
                | ("rbac.authorization.k8s.io", _)
        )
}

fn invalid(rt: &ResourceType, name: &str, field: &str, reason: &str, detail: &str) -> ApiError {
    ApiError::invalid(
        rt,
        name,
        &format!("{field}: {detail}"),
        json!([{"reason": reason, "message": detail, "field": field}]),
    )
}

const DNS1123_LABEL: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DNS1123_SUBDOMAIN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

fn matches(pattern: &str, s: &str) -> bool {
    // Compiled once: every create checks a name, and compiling the pattern costs far more than
    // matching it.
    static COMPILED: std::sync::LazyLock<[(&str, Option<regex::Regex>); 2]> =
        std::sync::LazyLock::new(|| {
            [DNS1123_LABEL, DNS1123_SUBDOMAIN].map(|p| (p, regex::Regex::new(p).ok()))
        });
    match COMPILED.iter().find(|(p, _)| *p == pattern) {
        Some((_, compiled)) => compiled.as_ref().is_some_and(|r| r.is_match(s)),
        None => regex::Regex::new(pattern).is_ok_and(|r| r.is_match(s)),
    }
}

/// Checks an object name the way the type's apiserver validation does.
pub fn validate_name(rt: &ResourceType, name: &str) -> ApiResult<()> {
    let path_segment = is(rt, "rbac.authorization.k8s.io", &rt.plural);
    if path_segment {
        if name == "." || name == ".." || name.contains('/') || name.contains('%') {
            return Err(invalid(
                rt,
                name,
                "metadata.name",
                "FieldValueInvalid",
                &format!("Invalid value: \"{name}\": may not contain '/' or '%'"),
            ));
        }
        return Ok(());
    }
    let label = is(rt, "", "namespaces") || is(rt, "", "services");
    let (ok, max, what, pattern) = if label {
        (
            matches(DNS1123_LABEL, name),
            63,
            "RFC 1123 label",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
        )
    } else {
        (
            matches(DNS1123_SUBDOMAIN, name),
            253,
            "RFC 1123 subdomain",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
        )
    };
    if name.len() > max {
        return Err(invalid(
            rt,
            name,
            "metadata.name",
            "FieldValueInvalid",
            &format!("Invalid value: \"{name}\": must be no more than {max} characters"),
        ));
    }
    if !ok {
        let example = if label {
            "'my-name',  or '123-abc'"
        } else {
            "'example.com'"
        };
        return Err(invalid(
            rt,
            name,
            "metadata.name",
            "FieldValueInvalid",
            &format!(
                "Invalid value: \"{name}\": a lowercase {what} must consist of lower case alphanumeric characters, '-'{} and must start and end with an alphanumeric character (e.g. {example}, regex used for validation is '{pattern}')",
                if label { "" } else { " or '.'" }
            ),
        ));
    }
    Ok(())
}

fn set_default(object: &mut Value, pointer: &str, value: Value) {
    if object.pointer(pointer).is_none() {
        let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
        let Some(last) = parts.pop() else { return };
        let mut cursor = &mut *object;
        for p in parts {
            if !cursor.get(p).is_some_and(Value::is_object) {
                if cursor.is_object() {
                    cursor[p] = json!({});
                } else {
                    return;
                }
            }
            let Some(next) = cursor.get_mut(p) else { return };
            cursor = next;
        }
        if cursor.is_object() {
            cursor[last] = value;
        }
    }
}

fn default_pod_spec(spec: &mut Value) {
    set_default(spec, "/restartPolicy", json!("Always"));
    set_default(spec, "/terminationGracePeriodSeconds", json!(30));
    set_default(spec, "/dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "/schedulerName", json!("default-scheduler"));
    set_default(spec, "/securityContext", json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                set_default(c, "/terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "/terminationMessagePolicy", json!("File"));
                let image = c["image"].as_str().unwrap_or("");
                let latest = !image.contains('@')
                    && (image.ends_with(":latest") || !image.rsplit('/').next().unwrap_or("").contains(':'));
                set_default(
                    c,
                    "/imagePullPolicy",
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                set_default(c, "/resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, "/protocol", json!("TCP"));
                    }
                }
            }
        }
    }
}

fn cluster_ip(name: &str, namespace: &str) -> String {
    let h = name
        .bytes()
        .chain(namespace.bytes())
        .fold(2_166_136_261u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(16_777_619)
        });
    format!("10.96.{}.{}", (h >> 8) % 256, (h % 254) + 1)
}

/// Defaulting and system-owned fields, per kind.
pub fn prepare(rt: &ResourceType, op: Op, old: Option<&Value>, new: &mut Value, sub: &str) -> ApiResult<()> {
    if !sub.is_empty() || rt.custom {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let namespace = new
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
            if op == Op::Create {
                new["spec"] = json!({"finalizers": ["kubernetes"]});
                new["status"] = json!({"phase": "Active"});
            } else if let Some(old) = old {
                new["spec"] = old.get("spec").cloned().unwrap_or(json!({}));
            }
        }
        ("", "secrets") => {
            if let Some(string_data) = new.get("stringData").and_then(Value::as_object).cloned() {
                for (k, v) in string_data {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(v.as_str().unwrap_or(""));
                    new["data"][k] = json!(encoded);
                }
                if let Some(m) = new.as_object_mut() {
                    m.remove("stringData");
                }
            }
            set_default(new, "/type", json!("Opaque"));
        }
        ("", "services") => {
            set_default(new, "/spec/type", json!("ClusterIP"));
            set_default(new, "/spec/sessionAffinity", json!("None"));
            let headless = new.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            let ip = old
                .and_then(|o| o.pointer("/spec/clusterIP").cloned())
                .unwrap_or_else(|| json!(cluster_ip(&name, &namespace)));
            if !headless && new["spec"]["type"] != "ExternalName" {
                set_default(new, "/spec/clusterIP", ip.clone());
                set_default(new, "/spec/clusterIPs", json!([new["spec"]["clusterIP"].clone()]));
                set_default(new, "/spec/ipFamilies", json!(["IPv4"]));
                set_default(new, "/spec/ipFamilyPolicy", json!("SingleStack"));
                set_default(new, "/spec/internalTrafficPolicy", json!("Cluster"));
            }
            if let Some(ports) = new.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "/protocol", json!("TCP"));
                    let port = p["port"].clone();
                    set_default(p, "/targetPort", port);
                }
            }
            set_default(new, "/status", json!({"loadBalancer": {}}));
        }
        ("", "pods") => {
            if let Some(spec) = new.get_mut("spec") {
                default_pod_spec(spec);
                set_default(spec, "/serviceAccountName", json!("default"));
                set_default(spec, "/enableServiceLinks", json!(true));
                set_default(spec, "/priority", json!(0));
            }
            if op == Op::Create {
                set_default(
                    new,
                    "/status",
                    json!({"phase": "Pending", "qosClass": "BestEffort"}),
                );
            }
        }
        ("", "serviceaccounts") | ("", "configmaps") => {}
        ("apps", "deployments") => {
            set_default(new, "/spec/replicas", json!(1));
            set_default(new, "/spec/revisionHistoryLimit", json!(10));
            set_default(new, "/spec/progressDeadlineSeconds", json!(600));
            if new.pointer("/spec/strategy/type").is_none()
                || new["spec"]["strategy"]["type"] == "RollingUpdate"
            {
                set_default(new, "/spec/strategy/type", json!("RollingUpdate"));
                set_default(new, "/spec/strategy/rollingUpdate/maxUnavailable", json!("25%"));
                set_default(new, "/spec/strategy/rollingUpdate/maxSurge", json!("25%"));
            }
            if let Some(spec) = new.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        ("apps", "replicasets") => {
            set_default(new, "/spec/replicas", json!(1));
            if let Some(spec) = new.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        ("batch", "jobs") => {
            if op == Op::Create && new.pointer("/spec/manualSelector").and_then(Value::as_bool) != Some(true)
            {
                let uid = new.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
                new["spec"]["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("batch.kubernetes.io/job-name", json!(name)),
                    ("controller-uid", uid.clone()),
                    ("job-name", json!(name)),
                ] {
                    new["spec"]["template"]["metadata"]["labels"][k] = v;
                }
            }
            set_default(new, "/spec/backoffLimit", json!(6));
            set_default(new, "/spec/completions", json!(1));
            set_default(new, "/spec/parallelism", json!(1));
            set_default(new, "/spec/completionMode", json!("NonIndexed"));
            set_default(new, "/spec/suspend", json!(false));
            set_default(new, "/spec/podReplacementPolicy", json!("TerminatingOrFailed"));
            if let Some(spec) = new.pointer_mut("/spec/template/spec") {
                default_pod_spec(spec);
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            if op == Op::Create {
                new["metadata"]["finalizers"] = json!(["customresourcecleanup.apiextensions.k8s.io"]);
            }
            if let Some(versions) = new.pointer_mut("/spec/versions").and_then(Value::as_array_mut) {
                for v in versions {
                    set_default(v, "/served", json!(true));
                }
            }
            set_default(new, "/spec/conversion", json!({"strategy": "None"}));
        }
        _ => {}
    }
    Ok(())
}

fn immutable(
    rt: &ResourceType,
    name: &str,
    field: &str,
    old: &Value,
    new: &Value,
    pointer: &str,
) -> ApiResult<()> {
    let (a, b) = (old.pointer(pointer), new.pointer(pointer));
    if a != b {
        let shown = b.map_or_else(|| "null".to_owned(), Value::to_string);
        return Err(invalid(
            rt,
            name,
            field,
            "FieldValueInvalid",
            &format!("Invalid value: {shown}: field is immutable"),
        ));
    }
    Ok(())
}

fn labels_of(v: Option<&Value>) -> std::collections::BTreeMap<String, String> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Validation that kube-apiserver's strategies do for the kinds tests and users touch.
pub fn validate(rt: &ResourceType, op: Op, old: Option<&Value>, new: &Value) -> ApiResult<()> {
    if rt.custom {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets") => {
            let selector = new
                .pointer("/spec/selector")
                .ok_or_else(|| invalid(rt, name, "spec.selector", "FieldValueRequired", "Required value"))?;
            let parsed = crate::selector::LabelSelector::from_label_selector(selector)
                .map_err(|e| invalid(rt, name, "spec.selector", "FieldValueInvalid", e.message()))?;
            let template_labels = labels_of(new.pointer("/spec/template/metadata/labels"));
            if !parsed.matches(&template_labels) {
                return Err(invalid(
                    rt,
                    name,
                    "spec.template.metadata.labels",
                    "FieldValueInvalid",
                    &format!(
                        "Invalid value: {}: `selector` does not match template `labels`",
                        json!(template_labels)
                    ),
                ));
            }
            if new
                .pointer("/spec/template/spec/containers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty)
            {
                return Err(invalid(
                    rt,
                    name,
                    "spec.template.spec.containers",
                    "FieldValueRequired",
                    "Required value",
                ));
            }
            if let (Op::Update, Some(old)) = (op, old) {
                immutable(rt, name, "spec.selector", old, new, "/spec/selector")?;
            }
        }
        ("batch", "jobs") => {
            let policy = new
                .pointer("/spec/template/spec/restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !matches!(policy, "Never" | "OnFailure") {
                return Err(invalid(
                    rt,
                    name,
                    "spec.template.spec.restartPolicy",
                    "FieldValueNotSupported",
                    &format!("Unsupported value: \"{policy}\": supported values: \"OnFailure\", \"Never\""),
                ));
            }
            if let (Op::Update, Some(old)) = (op, old) {
                immutable(rt, name, "spec.selector", old, new, "/spec/selector")?;
                immutable(rt, name, "spec.template", old, new, "/spec/template")?;
                immutable(rt, name, "spec.completions", old, new, "/spec/completions")?;
            }
        }
        ("", "services") => {
            let type_ = new
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let headless = new.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            if type_ != "ExternalName"
                && !headless
                && new
                    .pointer("/spec/ports")
                    .and_then(Value::as_array)
                    .is_none_or(Vec::is_empty)
            {
                return Err(invalid(
                    rt,
                    name,
                    "spec.ports",
                    "FieldValueRequired",
                    "Required value",
                ));
            }
            if let (Op::Update, Some(old)) = (op, old)
                && old.pointer("/spec/clusterIP") != new.pointer("/spec/clusterIP")
                && type_ != "ExternalName"
            {
                return Err(invalid(
                    rt,
                    name,
                    "spec.clusterIPs[0]",
                    "FieldValueInvalid",
                    "Invalid value: []string{}: primary clusterIP can not be unset",
                ));
            }
        }
        ("", "secrets") => {
            if let (Op::Update, Some(old)) = (op, old) {
                immutable(rt, name, "type", old, new, "/type")?;
                if old.pointer("/immutable") == Some(&json!(true)) {
                    immutable(rt, name, "data", old, new, "/data")?;
                }
            }
        }
        ("", "configmaps") => {
            if let (Op::Update, Some(old)) = (op, old)
                && old.pointer("/immutable") == Some(&json!(true))
            {
                immutable(rt, name, "data", old, new, "/data")?;
            }
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            if new.get("roleRef").is_none() {
                return Err(invalid(
                    rt,
                    name,
                    "roleRef.name",
                    "FieldValueRequired",
                    "Required value",
                ));
            }
            if let (Op::Update, Some(old)) = (op, old)
                && old.get("roleRef") != new.get("roleRef")
            {
                return Err(invalid(
                    rt,
                    name,
                    "roleRef",
                    "FieldValueInvalid",
                    &format!("Invalid value: {}: cannot change roleRef", new["roleRef"]),
                ));
            }
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => validate_crd(rt, name, op, old, new)?,
        _ => {}
    }
    Ok(())
}

fn validate_crd(rt: &ResourceType, name: &str, op: Op, old: Option<&Value>, new: &Value) -> ApiResult<()> {
    let spec = &new["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec
        .pointer("/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut causes = Vec::new();
    if name != format!("{plural}.{group}") {
        causes.push((
            "metadata.name".to_owned(),
            format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
        ));
    }
    if !matches!(spec["scope"].as_str(), Some("Namespaced" | "Cluster")) {
        causes.push((
            "spec.scope".to_owned(),
            "Unsupported value: \"\": supported values: \"Cluster\", \"Namespaced\"".to_owned(),
        ));
    }
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    if versions.is_empty() {
        causes.push((
            "spec.versions".to_owned(),
            "Invalid value: null: must have exactly one version marked as storage version".to_owned(),
        ));
    }
    if versions.iter().filter(|v| v["storage"] == json!(true)).count() != 1 && !versions.is_empty() {
        causes.push((
            "spec.versions".to_owned(),
            format!(
                "Invalid value: {}: must have exactly one version marked as storage version",
                json!(versions.iter().map(|v| &v["name"]).collect::<Vec<_>>())
            ),
        ));
    }
    for (i, v) in versions.iter().enumerate() {
        match v.pointer("/schema/openAPIV3Schema") {
            None => causes.push((
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "Required value: schemas are required".to_owned(),
            )),
            Some(schema) => {
                for err in crate::schema::structural_errors(schema) {
                    let err = err.replace(
                        "spec.validation.openAPIV3Schema",
                        &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                    );
                    let (field, detail) = err
                        .split_once(": ")
                        .map_or((err.clone(), String::new()), |(f, d)| {
                            (f.to_owned(), d.to_owned())
                        });
                    causes.push((field, detail));
                }
            }
        }
    }
    if let (Op::Update, Some(old)) = (op, old)
        && old.pointer("/spec/scope") != new.pointer("/spec/scope")
    {
        causes.push((
            "spec.scope".to_owned(),
            "Invalid value: field is immutable".to_owned(),
        ));
    }
    if causes.is_empty() {
        return Ok(());
    }
    let message = if causes.len() == 1 {
        format!("{}: {}", causes[0].0, causes[0].1)
    } else {
        format!(
            "[{}]",
            causes
                .iter()
                .map(|(f, d)| format!("{f}: {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let list: Vec<Value> = causes
        .iter()
        .map(|(f, d)| json!({"reason": if d.starts_with("Required") { "FieldValueRequired" } else { "FieldValueInvalid" }, "message": d, "field": f}))
        .collect();
    Err(ApiError::invalid(rt, name, &message, json!(list)))
}

/// Work kube-apiserver's own controllers do right after a write.
pub fn after_write(cluster: &Cluster, rt: &ResourceType, written: &Written) {
    let Written::Stored(object) = written else {
        if let (true, Written::Deleted(object)) = (
            is(rt, "apiextensions.k8s.io", "customresourcedefinitions"),
            written,
        ) {
            uninstall_crd(cluster, object);
        }
        return;
    };
    if is(rt, "apiextensions.k8s.io", "customresourcedefinitions") {
        establish_crd(cluster, object);
    } else if is(rt, "", "secrets") {
        crate::tokens::fill_token_secret(cluster, object);
    } else if is(rt, "", "namespaces") {
        ensure_default_service_account(cluster, object);
    }
}

/// Every active namespace has a `default` ServiceAccount, as the ServiceAccount controller
/// guarantees; Pods name it implicitly.
fn ensure_default_service_account(cluster: &Cluster, namespace: &Value) {
    if namespace.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let Some(ns) = namespace.pointer("/metadata/name").and_then(Value::as_str) else {
        return;
    };
    if cluster
        .store
        .get(&Key::new("/serviceaccounts", ns, "default"))
        .is_some()
    {
        return;
    }
    let Some(rt) = cluster.registry.get("", "v1", "serviceaccounts") else {
        return;
    };
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    if let Err(e) = crate::api::objects::create_as(cluster, &rt, ns, sa, "kube-controller-manager")
        && e.code != 409
    {
        tracing::warn!(message = e.message, "creating the default ServiceAccount failed");
    }
}

fn uninstall_crd(cluster: &Cluster, crd: &Value) {
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
    cluster.registry.remove(group, plural);
}

/// Serves a CRD's kind and marks it NamesAccepted and Established, as the apiextensions
/// controllers do a moment after the CRD is written.
pub fn establish_crd(cluster: &Cluster, crd: &Arc<Value>) {
    if crd.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let name = crd
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let (established, message) = match ResourceType::from_crd(crd) {
        Ok(t) => {
            cluster.registry.install(t);
            (true, "the initial names have been accepted".to_owned())
        }
        Err(e) => (false, e),
    };
    let now = crate::time::now_rfc3339();
    let key = Key::new("apiextensions.k8s.io/customresourcedefinitions", "", &name);
    let _ = cluster.store.write(&key, |current| -> Result<Write, ()> {
        let Some(current) = current else { return Ok(Write::Unchanged) };
        let mut next = current.clone();
        let names = current.pointer("/spec/names").cloned().unwrap_or(json!({}));
        let condition = |type_: &str, ok: bool, reason: &str, message: &str| {
            let previous = current
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
                .filter(|c| c["status"] == if ok { "True" } else { "False" })
                .and_then(|c| c.get("lastTransitionTime").cloned());
            json!({
                "type": type_,
                "status": if ok { "True" } else { "False" },
                "lastTransitionTime": previous.unwrap_or(json!(now)),
                "reason": reason,
                "message": message,
            })
        };
        let stored: Vec<Value> = current
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .map(|vs| vs.iter().filter(|v| v["storage"] == json!(true)).map(|v| v["name"].clone()).collect())
            .unwrap_or_default();
        next["status"] = json!({
            "acceptedNames": names,
            "conditions": [
                condition("NamesAccepted", true, "NoConflicts", "no conflicts found"),
                condition("Established", established, if established { "InitialNamesAccepted" } else { "Invalid" }, &message),
            ],
            "storedVersions": stored,
        });
        if next == *current { Ok(Write::Unchanged) } else { Ok(Write::Put(next)) }
    });
}
