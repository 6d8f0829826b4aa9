//! What app Deployments and task Jobs share, as pure functions: the CF environment
//! (`VCAP_APPLICATION`, `VCAP_SERVICES`, `CF_INSTANCE_*`), the restricted security context,
//! resource limits, and the servicebinding.io volumes of the app's bindings.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::{
    api::core::v1::{
        Capabilities, EnvVar, EnvVarSource, LocalObjectReference, ObjectFieldSelector, PodSecurityContext,
        ProjectedVolumeSource, ResourceRequirements, SeccompProfile, SecretKeySelector, SecretProjection,
        SecurityContext, Volume, VolumeMount, VolumeProjection,
    },
    apimachinery::pkg::api::resource::Quantity,
};
use kube::ResourceExt;
use serde_json::json;

use crate::{
    controller::names,
    crd::{CFApp, CFDroplet},
    labels::{APP_GUID, SPACE_GUID},
};

/// Memory per instance when a process or task sets none, in MB (Cloud Controller's default).
pub const DEFAULT_MEMORY_MB: i64 = 1024;
/// Ephemeral disk per instance when a process or task sets none, in MB.
pub const DEFAULT_DISK_MB: i64 = 1024;
/// The port apps listen on when the droplet exposes none.
pub const DEFAULT_PORT: i32 = 8080;
/// Where binding Secrets are mounted (servicebinding.io's `SERVICE_BINDING_ROOT`).
pub const BINDING_ROOT: &str = "/bindings";
/// File descriptor limit reported in `VCAP_APPLICATION`, as Diego sets it.
const FDS: i64 = 16384;

/// The org and space an app runs in, as `VCAP_APPLICATION` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Space {
    /// Space GUID (its namespace).
    pub guid: String,
    /// Space display name.
    pub name: String,
    /// Org GUID.
    pub org_guid: String,
    /// Org display name.
    pub org_name: String,
}

/// One app binding whose credentials Secret exists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Binding {
    /// Binding GUID.
    pub guid: String,
    /// The directory name under [`BINDING_ROOT`]: the binding's name, else its instance's name.
    pub name: String,
    /// The servicebinding.io Secret.
    pub secret_name: String,
}

/// Everything about an app that its workloads' pods are made from.
#[derive(Clone, Debug)]
pub struct AppRuntime<'a> {
    /// The app.
    pub app: &'a CFApp,
    /// The droplet to run.
    pub droplet: &'a CFDroplet,
    /// Where the app lives.
    pub space: Space,
    /// URLs of routes with a destination on the app, sorted.
    pub uris: Vec<String>,
    /// App bindings whose Secrets exist, sorted by name.
    pub bindings: Vec<Binding>,
    /// A hash of the binding and `VCAP_SERVICES` Secrets' contents; rolls pods when credentials change.
    pub secrets_hash: Option<String>,
}

/// What a process or task gets when nobody set its limits: the operator's choice (chart
/// `appDefaults`), shared by the controller and the API so both agree on what they present.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppDefaults {
    /// Memory per instance, in MB.
    pub memory_mb: i64,
    /// Ephemeral disk per instance, in MB.
    pub disk_mb: i64,
    /// Log rate limit in bytes per second; -1 is unlimited.
    pub log_rate_limit: i64,
}

impl Default for AppDefaults {
    fn default() -> Self {
        Self {
            memory_mb: DEFAULT_MEMORY_MB,
            disk_mb: DEFAULT_DISK_MB,
            log_rate_limit: -1,
        }
    }
}

/// Memory and disk of one instance, in MB.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Memory limit in MB.
    pub memory_mb: i64,
    /// Ephemeral disk limit in MB.
    pub disk_mb: i64,
}

impl Limits {
    /// Limits with platform defaults for unset values.
    pub fn new(memory_mb: Option<i64>, disk_mb: Option<i64>) -> Self {
        Self {
            memory_mb: memory_mb.unwrap_or(DEFAULT_MEMORY_MB),
            disk_mb: disk_mb.unwrap_or(DEFAULT_DISK_MB),
        }
    }
}

/// The ports the droplet's image listens on, [`DEFAULT_PORT`] when it declares none.
pub fn ports(droplet: &CFDroplet) -> Vec<i32> {
    let ports = droplet
        .status
        .as_ref()
        .map(|s| s.ports.clone())
        .unwrap_or_default();
    if ports.is_empty() {
        vec![DEFAULT_PORT]
    } else {
        ports
    }
}

/// The app port: `PORT`, health checks and unported route destinations use it.
pub fn port(droplet: &CFDroplet) -> i32 {
    ports(droplet).first().copied().unwrap_or(DEFAULT_PORT)
}

/// The droplet's image; the resolver only hands over staged droplets, which have one.
pub fn image(droplet: &CFDroplet) -> String {
    droplet
        .status
        .as_ref()
        .and_then(|s| s.image.clone())
        .or_else(|| droplet.spec.image.clone())
        .unwrap_or_default()
}

/// A shell command as a container command: CF commands are shell lines.
pub fn shell(command: &str) -> Vec<String> {
    vec!["/bin/sh".to_owned(), "-c".to_owned(), command.to_owned()]
}

/// Labels every pod of the app carries; the pod cache and process Services select on them.
pub fn pod_labels(app: &CFApp) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_GUID.to_owned(), app.name_any()),
        (SPACE_GUID.to_owned(), app.namespace().unwrap_or_default()),
    ])
}

/// `VCAP_APPLICATION`, as Cloud Foundry's JSON; `process` is (GUID, type) for app instances.
pub fn vcap_application(rt: &AppRuntime<'_>, limits: Limits, process: Option<(&str, &str)>) -> String {
    let mut value = json!({
        "application_id": rt.app.name_any(),
        "application_name": rt.app.spec.display_name,
        "application_uris": rt.uris,
        "limits": {"disk": limits.disk_mb, "fds": FDS, "mem": limits.memory_mb},
        "name": rt.app.spec.display_name,
        "organization_id": rt.space.org_guid,
        "organization_name": rt.space.org_name,
        "space_id": rt.space.guid,
        "space_name": rt.space.name,
        "uris": rt.uris,
    });
    if let (Some((guid, type_)), Some(map)) = (process, value.as_object_mut()) {
        map.insert("process_id".to_owned(), json!(guid));
        map.insert("process_type".to_owned(), json!(type_));
    }
    value.to_string()
}

fn plain(name: &str, value: impl Into<String>) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: Some(value.into()),
        value_from: None,
    }
}

fn field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                api_version: None,
                field_path: path.to_owned(),
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// The container environment: platform variables first, then the app's own (which cannot
/// shadow them: duplicate names would break server-side apply of the env list-map).
/// `port` is set for app instances, which listen; tasks do not.
pub fn env(rt: &AppRuntime<'_>, vcap_application: String, limits: Limits, port: Option<i32>) -> Vec<EnvVar> {
    let mut vars = vec![
        field("CF_INSTANCE_GUID", "metadata.uid"),
        // Deployment pods have no ordinal; the label exists if the runner moves to StatefulSets.
        field(
            "CF_INSTANCE_INDEX",
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
        field("CF_INSTANCE_INTERNAL_IP", "status.podIP"),
        field("CF_INSTANCE_IP", "status.podIP"),
        plain("MEMORY_LIMIT", format!("{}m", limits.memory_mb)),
    ];
    if let Some(port) = port {
        vars.push(plain("PORT", port.to_string()));
    }
    vars.push(plain("SERVICE_BINDING_ROOT", BINDING_ROOT));
    vars.push(plain("VCAP_APPLICATION", vcap_application));
    if let Some(port) = port {
        vars.push(plain("VCAP_APP_HOST", "0.0.0.0"));
        vars.push(plain("VCAP_APP_PORT", port.to_string()));
    }
    vars.push(EnvVar {
        name: "VCAP_SERVICES".to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: names::vcap_services(&rt.app.name_any()),
                key: "VCAP_SERVICES".to_owned(),
                optional: Some(true),
            }),
            ..EnvVarSource::default()
        }),
    });
    let platform: BTreeSet<String> = vars.iter().map(|v| v.name.clone()).collect();
    vars.extend(
        rt.app
            .spec
            .env
            .iter()
            .filter(|(k, _)| !platform.contains(*k))
            .map(|(k, v)| plain(k, v.clone())),
    );
    vars
}

/// Memory and disk limits, with a memory request equal to the limit and a CPU request
/// proportional to memory (100m per GiB, at least 5m), as Cloud Foundry shares CPU by memory.
pub fn resources(limits: Limits) -> ResourceRequirements {
    let memory = Quantity(format!("{}Mi", limits.memory_mb));
    let cpu_millis = (limits.memory_mb * 100 / 1024).max(5);
    ResourceRequirements {
        limits: Some(BTreeMap::from([
            (
                "ephemeral-storage".to_owned(),
                Quantity(format!("{}Mi", limits.disk_mb)),
            ),
            ("memory".to_owned(), memory.clone()),
        ])),
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity(format!("{cpu_millis}m"))),
            ("memory".to_owned(), memory),
        ])),
        ..ResourceRequirements::default()
    }
}

/// The container half of the `restricted` Pod Security Standard, which space namespaces enforce.
pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

/// The pod half of the `restricted` Pod Security Standard.
pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        seccomp_profile: Some(runtime_default()),
        ..PodSecurityContext::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".to_owned(),
        localhost_profile: None,
    }
}

/// The image pull Secret of a droplet with registry credentials.
pub fn image_pull_secrets(droplet: &CFDroplet) -> Option<Vec<LocalObjectReference>> {
    let name = droplet.status.as_ref()?.image_pull_secret_name.clone()?;
    Some(vec![LocalObjectReference { name }])
}

/// One projected volume per binding and its read-only mount at `/bindings/<name>`.
pub fn binding_volumes(bindings: &[Binding]) -> (Vec<Volume>, Vec<VolumeMount>) {
    bindings
        .iter()
        .enumerate()
        .map(|(n, b)| {
            let volume_name = format!("binding-{n}");
            let volume = Volume {
                name: volume_name.clone(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(vec![VolumeProjection {
                        secret: Some(SecretProjection {
                            name: b.secret_name.clone(),
                            ..SecretProjection::default()
                        }),
                        ..VolumeProjection::default()
                    }]),
                    ..ProjectedVolumeSource::default()
                }),
                ..Volume::default()
            };
            let mount = VolumeMount {
                name: volume_name,
                mount_path: format!("{BINDING_ROOT}/{}", b.name),
                read_only: Some(true),
                ..VolumeMount::default()
            };
            (volume, mount)
        })
        .unzip()
}

/// A binding's directory name: a path segment, unique among the app's bindings (a clash
/// falls back to the binding GUID, which is unique).
pub fn binding_dir_names(mut bindings: Vec<Binding>) -> Vec<Binding> {
    let mut seen = BTreeSet::new();
    bindings.sort();
    for b in &mut bindings {
        let clean: String = b
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let clean = if clean.is_empty() || clean.chars().all(|c| c == '.') {
            b.guid.clone()
        } else {
            clean
        };
        b.name = if seen.contains(&clean) {
            b.guid.clone()
        } else {
            clean
        };
        seen.insert(b.name.clone());
    }
    bindings.sort_by(|a, b| a.name.cmp(&b.name));
    bindings
}

/// A stable hash of Secrets' names and contents (FNV-1a, like the applied-hash annotation).
pub fn secrets_hash<'a>(
    secrets: impl IntoIterator<Item = &'a k8s_openapi::api::core::v1::Secret>,
) -> Option<String> {
    let mut parts: Vec<(String, Vec<u8>)> = secrets
        .into_iter()
        .map(|s| (s.name_any(), serde_json::to_vec(&s.data).unwrap_or_default()))
        .collect();
    if parts.is_empty() {
        return None;
    }
    parts.sort();
    Some(crate::controller::apply::desired_hash(&parts))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::fixtures;

    fn runtime<'a>(app: &'a CFApp, droplet: &'a CFDroplet) -> AppRuntime<'a> {
        AppRuntime {
            app,
            droplet,
            space: Space {
                guid: "space-1".into(),
                name: "dev".into(),
                org_guid: "org-1".into(),
                org_name: "My Org".into(),
            },
            uris: vec!["app.example.com".into()],
            bindings: vec![],
            secrets_hash: None,
        }
    }

    /// Apps parse VCAP_APPLICATION; these are the keys CF apps and libraries read.
    #[test]
    fn vcap_application_has_the_cf_keys() {
        let app = fixtures::app("a1", "my-app");
        let droplet = fixtures::droplet("d1", "a1", "nginx");
        let rt = runtime(&app, &droplet);
        let value: serde_json::Value = serde_json::from_str(&vcap_application(
            &rt,
            Limits::new(Some(256), None),
            Some(("a1-web", "web")),
        ))
        .unwrap();
        assert_eq!(
            value,
            json!({
                "application_id": "a1",
                "application_name": "my-app",
                "application_uris": ["app.example.com"],
                "limits": {"disk": 1024, "fds": 16384, "mem": 256},
                "name": "my-app",
                "organization_id": "org-1",
                "organization_name": "My Org",
                "process_id": "a1-web",
                "process_type": "web",
                "space_id": "space-1",
                "space_name": "dev",
                "uris": ["app.example.com"],
            })
        );
    }

    /// CF shares CPU by memory: 100m per GiB with a 5m floor.
    #[test]
    fn cpu_request_follows_memory() {
        let cpu = |mb| {
            resources(Limits::new(Some(mb), Some(10))).requests.unwrap()["cpu"]
                .0
                .clone()
        };
        assert_eq!(cpu(1024), "100m");
        assert_eq!(cpu(256), "25m");
        assert_eq!(cpu(32), "5m");
        assert_eq!(
            serde_json::to_value(resources(Limits::new(Some(512), Some(2048)))).unwrap(),
            json!({
                "limits": {"ephemeral-storage": "2048Mi", "memory": "512Mi"},
                "requests": {"cpu": "50m", "memory": "512Mi"},
            })
        );
    }

    /// User env can never shadow a platform variable: a duplicate name breaks SSA of the list.
    #[test]
    fn user_env_follows_platform_env_without_duplicates() {
        let app = fixtures::app("a1", "my-app")
            .env("FOO", "bar")
            .env("CF_INSTANCE_IP", "spoof");
        let droplet = fixtures::droplet("d1", "a1", "nginx");
        let rt = runtime(&app, &droplet);
        let env = env(&rt, "{}".into(), Limits::new(None, None), Some(8080));
        let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "CF_INSTANCE_GUID",
                "CF_INSTANCE_INDEX",
                "CF_INSTANCE_INTERNAL_IP",
                "CF_INSTANCE_IP",
                "MEMORY_LIMIT",
                "PORT",
                "SERVICE_BINDING_ROOT",
                "VCAP_APPLICATION",
                "VCAP_APP_HOST",
                "VCAP_APP_PORT",
                "VCAP_SERVICES",
                "FOO",
            ]
        );
        assert_eq!(
            serde_json::to_value(&env[10]).unwrap(),
            json!({"name": "VCAP_SERVICES", "valueFrom": {"secretKeyRef": {"name": "a1-vcap-services", "key": "VCAP_SERVICES", "optional": true}}})
        );
    }

    #[test]
    fn binding_names_are_unique_path_segments() {
        let b = |guid: &str, name: &str| Binding {
            guid: guid.into(),
            name: name.into(),
            secret_name: format!("{guid}-binding"),
        };
        let named = binding_dir_names(vec![b("g2", "db"), b("g1", "db"), b("g3", "a/b"), b("g4", "..")]);
        let dirs: Vec<&str> = named.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(dirs, ["a-b", "db", "g2", "g4"]);
        let (volumes, mounts) = binding_volumes(&named[..1]);
        assert_eq!(
            serde_json::to_value(&volumes).unwrap(),
            json!([{"name": "binding-0", "projected": {"sources": [{"secret": {"name": "g3-binding"}}]}}])
        );
        assert_eq!(
            serde_json::to_value(&mounts).unwrap(),
            json!([{"name": "binding-0", "mountPath": "/bindings/a-b", "readOnly": true}])
        );
    }
}
