//! The pure half of the CFProcess reconciler: the desired Deployment and Service, and the
//! process status read back from them.

use std::collections::BTreeMap;

use k8s_openapi::{
    api::{
        apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment},
        core::v1::{
            Container, ContainerPort, HTTPGetAction, Pod, PodSpec, PodTemplateSpec, Probe, Service,
            ServicePort, ServiceSpec, TCPSocketAction,
        },
    },
    apimachinery::pkg::{apis::meta::v1::LabelSelector, util::intstr::IntOrString},
};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    controller::{
        Result,
        apply::stamp,
        names,
        podspec::{self, AppRuntime, Limits},
        status::{Want, merge},
    },
    crd::{
        AppState, CFProcess, CFProcessStatus, CFRoute, CommonStatus, HealthCheck, HealthCheckType,
        RouteProtocol,
    },
    labels::{
        APP_GUID, DROPLET_GUID, MANAGED_BY, MANAGED_BY_VALUE, PROCESS_TYPE, RESTARTED_AT, SECRETS_HASH,
        SPACE_GUID,
    },
};

/// Startup probes check this often, so an app that starts fast is ready fast.
const STARTUP_PERIOD_SECONDS: i32 = 2;
/// The Service port a route destination without a port reaches (what the route reconciler uses).
const DEFAULT_SERVICE_PORT: i32 = 8080;

/// The labels selecting a process's pods.
pub fn selector(app: &str, process_type: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_GUID.to_owned(), app.to_owned()),
        (PROCESS_TYPE.to_owned(), process_type.to_owned()),
    ])
}

fn labels(process: &CFProcess) -> BTreeMap<String, String> {
    let mut labels = selector(&process.spec.app_guid, &process.spec.process_type);
    labels.insert(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    labels.insert(SPACE_GUID.to_owned(), process.namespace().unwrap_or_default());
    labels
}

fn meta(process: &CFProcess, name: String) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: process.namespace(),
        labels: Some(labels(process)),
        owner_references: process.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// The command a process runs: its own, else the droplet's for its type; `None` (an empty
/// droplet command) runs the image's entrypoint.
pub fn command(process: &CFProcess, rt: &AppRuntime<'_>) -> Option<String> {
    let droplet = rt
        .droplet
        .status
        .as_ref()
        .map(|s| &s.process_types)
        .filter(|t| !t.is_empty());
    let from_droplet = droplet
        .unwrap_or(&rt.droplet.spec.process_types)
        .get(&process.spec.process_type);
    process
        .spec
        .command
        .clone()
        .or_else(|| from_droplet.cloned())
        .filter(|c| !c.trim().is_empty())
}

/// The probe action of a health check on `port`; `process` checks have none.
fn probe(check: &HealthCheck, port: i32) -> Option<Probe> {
    let mut probe = Probe {
        timeout_seconds: check.invocation_timeout,
        ..Probe::default()
    };
    match check.type_ {
        HealthCheckType::Process => return None,
        HealthCheckType::Port => {
            probe.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(port),
                host: None,
            })
        }
        HealthCheckType::Http => {
            probe.http_get = Some(HTTPGetAction {
                path: Some(check.endpoint.clone().unwrap_or_else(|| "/".to_owned())),
                port: IntOrString::Int(port),
                ..HTTPGetAction::default()
            });
        }
    }
    Some(probe)
}

/// Liveness, readiness and startup probes from the CF health checks. Readiness uses the
/// readiness check when set, else the liveness check; `timeout` gives the app that long to
/// pass its first check, as a startup probe.
pub fn probes(process: &CFProcess, port: i32) -> (Option<Probe>, Option<Probe>, Option<Probe>) {
    let check = &process.spec.health_check;
    let liveness = probe(check, port).map(|p| Probe {
        period_seconds: check.interval,
        ..p
    });
    let readiness = match &process.spec.readiness_health_check {
        Some(r) => probe(r, port).map(|p| Probe {
            period_seconds: r.interval,
            ..p
        }),
        None => liveness.clone(),
    };
    let startup = check.timeout.and_then(|timeout| {
        probe(check, port).map(|p| Probe {
            period_seconds: Some(STARTUP_PERIOD_SECONDS),
            failure_threshold: Some(((timeout + STARTUP_PERIOD_SECONDS - 1) / STARTUP_PERIOD_SECONDS).max(1)),
            ..p
        })
    });
    (liveness, readiness, startup)
}

/// The process's memory and disk.
pub fn limits(process: &CFProcess) -> Limits {
    Limits::new(process.spec.memory_in_mb, process.spec.disk_in_mb)
}

/// The Deployment running the process: `instances` replicas while the app is started, zero
/// while it is stopped. The pod template changes (and so rolls) with the droplet, the
/// environment, the process settings, the bindings' credentials and `restartedAt`.
pub fn deployment(process: &CFProcess, rt: &AppRuntime<'_>) -> Deployment {
    let app = &process.spec.app_guid;
    let process_type = &process.spec.process_type;
    let port = podspec::port(rt.droplet);
    let limits = limits(process);
    let vcap = podspec::vcap_application(rt, limits, Some((&process.name_any(), process_type)));
    let (liveness, readiness, startup) = probes(process, port);
    let (volumes, mounts) = podspec::binding_volumes(&rt.bindings);
    let container = Container {
        name: "app".to_owned(),
        image: Some(podspec::image(rt.droplet)),
        command: command(process, rt).map(|c| podspec::shell(&c)),
        env: Some(podspec::env(rt, vcap, limits, Some(port))),
        ports: Some(
            podspec::ports(rt.droplet)
                .into_iter()
                .map(|p| ContainerPort {
                    container_port: p,
                    protocol: Some("TCP".to_owned()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        resources: Some(podspec::resources(limits)),
        liveness_probe: liveness,
        readiness_probe: readiness,
        startup_probe: startup,
        security_context: Some(podspec::container_security_context()),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        ..Container::default()
    };
    let mut pod_labels = podspec::pod_labels(rt.app);
    pod_labels.insert(PROCESS_TYPE.to_owned(), process_type.clone());
    let mut annotations = BTreeMap::from([(DROPLET_GUID.to_owned(), rt.droplet.name_any())]);
    if let Some(at) = &rt.app.spec.restarted_at {
        annotations.insert(RESTARTED_AT.to_owned(), at.clone());
    }
    if let Some(hash) = &rt.secrets_hash {
        annotations.insert(SECRETS_HASH.to_owned(), hash.clone());
    }
    let replicas = if rt.app.spec.desired_state == AppState::Started {
        process.spec.instances
    } else {
        0
    };
    stamp(Deployment {
        metadata: meta(process, names::deployment(app, process_type)),
        spec: DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(selector(app, process_type)),
                match_expressions: None,
            },
            // New instances must be healthy before old ones go, as in CF rolling deployments.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::String("25%".to_owned())),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Apps talk to the CF API, not Kubernetes; nor should every Service become env.
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    image_pull_secrets: podspec::image_pull_secrets(rt.droplet),
                    security_context: Some(podspec::pod_security_context()),
                    volumes: Some(volumes).filter(|v| !v.is_empty()),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        },
        status: None,
    })
}

/// The Service ports routes need: one per distinct destination port. A destination without a
/// port reaches Service port 8080 (what the route's Ingress uses), forwarded to the app port.
fn service_ports(process: &CFProcess, routes: &[&CFRoute], app_port: i32) -> Vec<ServicePort> {
    let mut ports: BTreeMap<i32, ServicePort> = BTreeMap::new();
    let destinations = routes
        .iter()
        .flat_map(|r| r.spec.destinations.iter().map(move |d| (r, d)));
    let ours = destinations
        .filter(|(_, d)| d.app_guid == process.spec.app_guid && d.process_type == process.spec.process_type);
    for (route, dest) in ours {
        let (port, target) = dest.port.map_or((DEFAULT_SERVICE_PORT, app_port), |p| (p, p));
        let http2 = dest.protocol.unwrap_or(route.spec.protocol) == RouteProtocol::Http2;
        let entry = ServicePort {
            name: Some(format!("port-{port}")),
            port,
            target_port: Some(IntOrString::Int(target)),
            protocol: Some("TCP".to_owned()),
            app_protocol: http2.then(|| "kubernetes.io/h2c".to_owned()),
            ..ServicePort::default()
        };
        // An explicit port wins over the defaulted one when both land on the same Service port.
        if dest.port.is_some() || !ports.contains_key(&port) {
            ports.insert(port, entry);
        }
    }
    ports.into_values().collect()
}

/// The Service in front of the process, while some route destination targets it.
pub fn service(process: &CFProcess, routes: &[&CFRoute], app_port: i32) -> Option<Service> {
    let ports = service_ports(process, routes, app_port);
    if ports.is_empty() {
        return None;
    }
    Some(stamp(Service {
        metadata: meta(
            process,
            names::service(&process.spec.app_guid, &process.spec.process_type),
        ),
        spec: Some(ServiceSpec {
            selector: Some(selector(&process.spec.app_guid, &process.spec.process_type)),
            ports: Some(ports),
            type_: Some("ClusterIP".to_owned()),
            ..ServiceSpec::default()
        }),
        status: None,
    }))
}

/// Container waiting reasons that mean an instance will not become ready by itself.
const FAILING: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
];

fn failing(pods: &[&Pod]) -> Option<(String, String)> {
    pods.iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .find_map(|c| {
            let waiting = c.state.as_ref()?.waiting.as_ref()?;
            let reason = waiting.reason.clone()?;
            FAILING
                .contains(&reason.as_str())
                .then(|| (reason, waiting.message.clone().unwrap_or_default()))
        })
}

/// Pods that count as instances: not being deleted and not finished.
pub fn live(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && !matches!(
            pod.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Succeeded" | "Failed")
        )
}

/// The process status: instances from its pods, ready instances from the Deployment, `Ready`
/// from the reconcile outcome and `InstancesReady` from the rollout.
pub fn status(
    process: &CFProcess,
    deployment: Option<&Deployment>,
    pods: &[&Pod],
    outcome: &Result<()>,
) -> CFProcessStatus {
    let current = process.status.clone().unwrap_or_default();
    let generation = process.metadata.generation;
    let common = crate::controller::ready_status(&current.common, generation, outcome, "DeploymentApplied");
    let instances = i32::try_from(pods.iter().filter(|p| live(p)).count()).unwrap_or(i32::MAX);
    let ready = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    let conditions = match deployment {
        None => common.conditions,
        Some(d) => {
            let desired = d.spec.replicas.unwrap_or(0);
            let status = d.status.clone().unwrap_or_default();
            // Ready instances of an older template do not count as done: the rollout is not.
            let current = status.observed_generation >= d.metadata.generation;
            let rolled_out = current && status.updated_replicas.unwrap_or(0) >= desired;
            let failure = failing(pods);
            let message = format!("{ready}/{desired} instances ready");
            let want = match failure {
                _ if desired == 0 => Want {
                    type_: "InstancesReady",
                    ok: true,
                    reason: "Stopped",
                    message,
                },
                _ if ready >= desired && rolled_out => Want {
                    type_: "InstancesReady",
                    ok: true,
                    reason: "InstancesReady",
                    message,
                },
                Some((ref reason, ref detail)) => Want {
                    type_: "InstancesReady",
                    ok: false,
                    reason,
                    message: format!("{message}: {detail}"),
                },
                None => Want {
                    type_: "InstancesReady",
                    ok: false,
                    reason: if ready >= desired {
                        "RollingOut"
                    } else {
                        "InstancesStarting"
                    },
                    message,
                },
            };
            merge(&common.conditions, &[want], generation)
        }
    };
    CFProcessStatus {
        common: CommonStatus {
            observed_generation: common.observed_generation,
            conditions,
        },
        instances,
        ready_instances: ready,
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::{
        controller::podspec::{Binding, Space},
        crd::{CFApp, CFDroplet, CFDropletStatus, DropletState},
        fixtures,
    };

    fn staged(mut droplet: CFDroplet) -> CFDroplet {
        droplet.status = Some(CFDropletStatus {
            state: Some(DropletState::Staged),
            image: droplet.spec.image.clone(),
            process_types: [
                ("web".to_owned(), String::new()),
                ("worker".to_owned(), "bin/work".to_owned()),
            ]
            .into(),
            ports: vec![8080],
            image_pull_secret_name: Some("d1-image-pull".to_owned()),
            ..CFDropletStatus::default()
        });
        droplet
    }

    fn runtime<'a>(app: &'a CFApp, droplet: &'a CFDroplet) -> AppRuntime<'a> {
        AppRuntime {
            app,
            droplet,
            space: Space {
                guid: "space-1".into(),
                name: "dev".into(),
                org_guid: "org-1".into(),
                org_name: "o".into(),
            },
            uris: vec!["app.example.com".into()],
            bindings: vec![Binding {
                guid: "b1".into(),
                name: "db".into(),
                secret_name: "b1-binding".into(),
            }],
            secrets_hash: Some("abc".into()),
        }
    }

    fn without_hash(value: &mut serde_json::Value) {
        value["metadata"]["annotations"]
            .as_object_mut()
            .unwrap()
            .remove("kubefoundry.dev/applied-hash");
    }

    /// The whole Deployment: image and command from the droplet, CF env, probes, limits, the
    /// restricted security context and the labels the pod cache and Services select on.
    #[test]
    fn web_process_becomes_a_restricted_deployment() {
        let app = fixtures::app("a1", "my-app")
            .started()
            .docker()
            .droplet("d1")
            .env("FOO", "bar");
        let droplet = staged(fixtures::droplet("d1", "a1", "nginx:1.27"));
        let mut process = fixtures::process("a1-web", "a1", "web").instances(2);
        process.spec.health_check.type_ = HealthCheckType::Http;
        process.spec.health_check.endpoint = Some("/healthz".into());
        process.spec.health_check.invocation_timeout = Some(3);
        process.spec.health_check.interval = Some(15);
        process.spec.health_check.timeout = Some(61);
        let rt = runtime(&app, &droplet);
        let mut value = serde_json::to_value(deployment(&process, &rt)).unwrap();
        without_hash(&mut value);
        let vcap =
            podspec::vcap_application(&rt, Limits::new(Some(256), Some(1024)), Some(("a1-web", "web")));
        let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
        let probe =
            json!({"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": 3, "periodSeconds": 15});
        assert_eq!(
            value,
            json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {
                    "name": "a1-web",
                    "namespace": "space-1",
                    "annotations": {},
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "a1",
                        "kubefoundry.dev/process-type": "web",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                },
                "spec": {
                    "replicas": 2,
                    "selector": {"matchLabels": {"kubefoundry.dev/app-guid": "a1", "kubefoundry.dev/process-type": "web"}},
                    "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
                    "template": {
                        "metadata": {
                            "labels": {
                                "kubefoundry.dev/app-guid": "a1",
                                "kubefoundry.dev/process-type": "web",
                                "kubefoundry.dev/space-guid": "space-1",
                            },
                            "annotations": {
                                "kubefoundry.dev/droplet-guid": "d1",
                                "kubefoundry.dev/secrets-hash": "abc",
                            },
                        },
                        "spec": {
                            "automountServiceAccountToken": false,
                            "enableServiceLinks": false,
                            "imagePullSecrets": [{"name": "d1-image-pull"}],
                            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                            "volumes": [{"name": "binding-0", "projected": {"sources": [{"secret": {"name": "b1-binding"}}]}}],
                            "containers": [{
                                "name": "app",
                                "image": "nginx:1.27",
                                "env": [
                                    {"name": "CF_INSTANCE_GUID", "valueFrom": field("metadata.uid")},
                                    {"name": "CF_INSTANCE_INDEX", "valueFrom": field("metadata.labels['apps.kubernetes.io/pod-index']")},
                                    {"name": "CF_INSTANCE_INTERNAL_IP", "valueFrom": field("status.podIP")},
                                    {"name": "CF_INSTANCE_IP", "valueFrom": field("status.podIP")},
                                    {"name": "MEMORY_LIMIT", "value": "256m"},
                                    {"name": "PORT", "value": "8080"},
                                    {"name": "SERVICE_BINDING_ROOT", "value": "/bindings"},
                                    {"name": "VCAP_APPLICATION", "value": vcap},
                                    {"name": "VCAP_APP_HOST", "value": "0.0.0.0"},
                                    {"name": "VCAP_APP_PORT", "value": "8080"},
                                    {"name": "VCAP_SERVICES", "valueFrom": {"secretKeyRef": {"name": "a1-vcap-services", "key": "VCAP_SERVICES", "optional": true}}},
                                    {"name": "FOO", "value": "bar"},
                                ],
                                "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                                "resources": {
                                    "limits": {"ephemeral-storage": "1024Mi", "memory": "256Mi"},
                                    "requests": {"cpu": "25m", "memory": "256Mi"},
                                },
                                "livenessProbe": probe,
                                "readinessProbe": probe,
                                "startupProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": 3, "periodSeconds": 2, "failureThreshold": 31},
                                "securityContext": {
                                    "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": true,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                                "volumeMounts": [{"name": "binding-0", "mountPath": "/bindings/db", "readOnly": true}],
                            }],
                        },
                    },
                },
            })
        );
    }

    /// A stopped app keeps its Deployment (and its history) but runs nothing.
    #[test]
    fn stopped_app_scales_to_zero() {
        let app = fixtures::app("a1", "my-app").droplet("d1");
        let droplet = staged(fixtures::droplet("d1", "a1", "nginx"));
        let d = deployment(
            &fixtures::process("a1-web", "a1", "web").instances(3),
            &runtime(&app, &droplet),
        );
        assert_eq!(d.spec.replicas, Some(0));
    }

    /// Restarts, droplet switches and env changes roll; scaling does not.
    #[test]
    fn pod_template_changes_exactly_when_pods_must_roll() {
        let droplet = staged(fixtures::droplet("d1", "a1", "nginx"));
        let template = |app: &CFApp, instances| {
            let d = deployment(
                &fixtures::process("a1-web", "a1", "web").instances(instances),
                &runtime(app, &droplet),
            );
            d.spec.template
        };
        let app = fixtures::app("a1", "my-app").started().droplet("d1");
        let base = template(&app, 1);
        assert_eq!(base, template(&app, 5));
        assert_ne!(base, template(&app.clone().env("A", "b"), 1));
        let mut restarted = app.clone();
        restarted.spec.restarted_at = Some("2026-01-01T00:00:00Z".into());
        let t = template(&restarted, 1);
        assert_eq!(
            t.metadata.unwrap().annotations.unwrap()["kubefoundry.dev/restarted-at"],
            "2026-01-01T00:00:00Z"
        );
    }

    #[test]
    fn commands_come_from_the_process_then_the_droplet() {
        let app = fixtures::app("a1", "my-app").started().droplet("d1");
        let droplet = staged(fixtures::droplet("d1", "a1", "nginx"));
        let rt = runtime(&app, &droplet);
        let container = |p: &CFProcess| deployment(p, &rt).spec.template.spec.unwrap().containers[0].clone();
        assert_eq!(container(&fixtures::process("a1-web", "a1", "web")).command, None);
        assert_eq!(
            container(&fixtures::process("a1-worker", "a1", "worker")).command,
            Some(vec!["/bin/sh".into(), "-c".into(), "bin/work".into()])
        );
        let mut custom = fixtures::process("a1-web", "a1", "web");
        custom.spec.command = Some("./run --fast".into());
        assert_eq!(container(&custom).command.unwrap()[2], "./run --fast");
    }

    #[test]
    fn health_check_types_become_probes() {
        let mut p = fixtures::process("a1-web", "a1", "web");
        let (live, ready, startup) = probes(&p, 9000);
        assert_eq!(
            serde_json::to_value(&live).unwrap(),
            json!({"tcpSocket": {"port": 9000}})
        );
        assert_eq!(live, ready);
        assert_eq!(startup, None);
        p.spec.health_check.type_ = HealthCheckType::Process;
        p.spec.readiness_health_check = Some(HealthCheck {
            type_: HealthCheckType::Http,
            interval: Some(5),
            ..HealthCheck::default()
        });
        let (live, ready, _) = probes(&p, 9000);
        assert_eq!(live, None);
        assert_eq!(
            serde_json::to_value(&ready).unwrap(),
            json!({"httpGet": {"path": "/", "port": 9000}, "periodSeconds": 5})
        );
    }

    /// Route reconcilers point Ingress backends at port 8080 (or the destination's port) of
    /// this Service; an unported destination must still reach the app's own port.
    #[test]
    fn service_exposes_each_destination_port() {
        let process = fixtures::process("a1-web", "a1", "web");
        let mut r1 = fixtures::route("r1", "app", "dom").to_app("dest-1", "a1");
        r1.spec.destinations[0].protocol = Some(RouteProtocol::Http2);
        let mut r2 = fixtures::route("r2", "other", "dom").to_app("dest-2", "a1");
        r2.spec.destinations[0].port = Some(9090);
        let r3 = fixtures::route("r3", "x", "dom").to_app("dest-3", "someone-else");
        let mut value = serde_json::to_value(service(&process, &[&r1, &r2, &r3], 3000)).unwrap();
        without_hash(&mut value);
        assert_eq!(
            value,
            json!({
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "s-a1-web",
                    "namespace": "space-1",
                    "annotations": {},
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "a1",
                        "kubefoundry.dev/process-type": "web",
                        "kubefoundry.dev/space-guid": "space-1",
                    },
                },
                "spec": {
                    "type": "ClusterIP",
                    "selector": {"kubefoundry.dev/app-guid": "a1", "kubefoundry.dev/process-type": "web"},
                    "ports": [
                        {"name": "port-8080", "port": 8080, "targetPort": 3000, "protocol": "TCP", "appProtocol": "kubernetes.io/h2c"},
                        {"name": "port-9090", "port": 9090, "targetPort": 9090, "protocol": "TCP"},
                    ],
                },
            })
        );
        assert_eq!(service(&process, &[&r3], 3000), None);
    }

    #[test]
    fn status_reports_instances_and_failures() {
        let process = fixtures::process("a1-web", "a1", "web");
        let d: Deployment = serde_json::from_value(json!({
            "spec": {"replicas": 2, "selector": {}, "template": {}},
            "status": {"readyReplicas": 1},
        }))
        .unwrap();
        let pod = |waiting: Option<&str>| -> Pod {
            let state = waiting.map_or(
                json!({"running": {}}),
                |r| json!({"waiting": {"reason": r, "message": "boom"}}),
            );
            serde_json::from_value(json!({"status": {"phase": "Running", "containerStatuses": [{"name": "app", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}]}})).unwrap()
        };
        let (ok, bad) = (pod(None), pod(Some("CrashLoopBackOff")));
        let status = status(&process, Some(&d), &[&ok, &bad], &Ok(()));
        assert_eq!((status.instances, status.ready_instances), (2, 1));
        let cond = status.common.condition("InstancesReady").unwrap();
        assert_eq!(
            (cond.status.as_str(), cond.reason.as_str()),
            ("False", "CrashLoopBackOff")
        );
        assert_eq!(cond.message, "1/2 instances ready: boom");
        assert_eq!(status.common.condition("Ready").unwrap().status, "True");

        // Enough ready instances, but of the old template: the rollout is not done.
        let rolling: Deployment = serde_json::from_value(json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "readyReplicas": 1, "updatedReplicas": 0},
        }))
        .unwrap();
        let s = super::status(&process, Some(&rolling), &[&ok], &Ok(()));
        assert_eq!(s.common.condition("InstancesReady").unwrap().reason, "RollingOut");
        let mut done = rolling.clone();
        done.status.as_mut().unwrap().updated_replicas = Some(1);
        let s = super::status(&process, Some(&done), &[&ok], &Ok(()));
        assert_eq!(
            s.common.condition("InstancesReady").unwrap().reason,
            "InstancesReady"
        );
    }
}
