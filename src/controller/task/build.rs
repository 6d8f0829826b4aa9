//! The pure half of the CFTask reconciler: the Job running a task, and the task state read
//! back from the Job and its Pod.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    batch::v1::{Job, JobSpec},
    core::v1::{Container, Pod, PodSpec, PodTemplateSpec},
};
use kube::{Resource, ResourceExt, api::ObjectMeta};

use crate::{
    controller::{
        names,
        podspec::{self, AppDefaults, AppRuntime, Limits},
    },
    crd::{CFTask, TaskState},
    labels::{DROPLET_GUID, MANAGED_BY, MANAGED_BY_VALUE, TASK_GUID},
};

/// Why a cancelled task failed, as Cloud Foundry words it.
pub const CANCELLED: &str = "task was cancelled";

/// The task's memory and disk, the operator's defaults where it sets none.
pub fn limits(task: &CFTask, defaults: &AppDefaults) -> Limits {
    Limits::new(
        task.spec.memory_in_mb.or(Some(defaults.memory_mb)),
        task.spec.disk_in_mb.or(Some(defaults.disk_mb)),
    )
}

/// The Job running `task` once with the app's droplet, environment and bindings. Jobs are
/// immutable, so it is made once, from the app as it was when the task started.
pub fn job(task: &CFTask, rt: &AppRuntime<'_>, defaults: &AppDefaults) -> Job {
    let limits = limits(task, defaults);
    let vcap = podspec::vcap_application(rt, limits, None);
    let (volumes, mounts) = podspec::binding_volumes(&rt.bindings);
    let mut pod_labels = podspec::pod_labels(rt.app);
    pod_labels.insert(TASK_GUID.to_owned(), task.name_any());
    let mut labels = pod_labels.clone();
    labels.insert(MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned());
    let container = Container {
        name: "task".to_owned(),
        image: Some(podspec::image(rt.droplet)),
        command: Some(podspec::shell(&task.spec.command)),
        env: Some(podspec::env(rt, vcap, limits, None)),
        resources: Some(podspec::resources(limits)),
        security_context: Some(podspec::container_security_context()),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        ..Container::default()
    };
    Job {
        metadata: ObjectMeta {
            name: Some(names::job(&task.name_any())),
            namespace: task.namespace(),
            labels: Some(labels),
            owner_references: task.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            // A CF task runs once: a failure is the task's result, not a reason to retry.
            backoff_limit: Some(0),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(BTreeMap::from([(DROPLET_GUID.to_owned(), rt.droplet.name_any())])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    restart_policy: Some("Never".to_owned()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    image_pull_secrets: podspec::image_pull_secrets(rt.droplet),
                    security_context: Some(podspec::pod_security_context()),
                    volumes: Some(volumes).filter(|v| !v.is_empty()),
                    ..PodSpec::default()
                }),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Whether a task has reached its final state.
pub fn finished(state: Option<TaskState>) -> bool {
    matches!(state, Some(TaskState::Succeeded | TaskState::Failed))
}

fn job_condition(job: &Job, type_: &str) -> Option<String> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    let c = conditions
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")?;
    Some(c.message.clone().or_else(|| c.reason.clone()).unwrap_or_default())
}

/// The exit of the task's container, as CF reports a failed task.
fn exit_reason(pods: &[&Pod]) -> Option<String> {
    pods.iter()
        .flat_map(|p| {
            p.status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
        })
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref())
        .find(|t| t.exit_code != 0)
        .map(|t| format!("Exited with status {}", t.exit_code))
}

/// The task's state and failure reason from its Job and Pod.
pub fn observe(job: &Job, pods: &[&Pod]) -> (TaskState, Option<String>) {
    if job_condition(job, "Complete").is_some() {
        return (TaskState::Succeeded, None);
    }
    if let Some(message) = job_condition(job, "Failed") {
        return (TaskState::Failed, Some(exit_reason(pods).unwrap_or(message)));
    }
    let running = pods
        .iter()
        .any(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
        || job.status.as_ref().and_then(|s| s.ready).unwrap_or(0) > 0;
    (
        if running {
            TaskState::Running
        } else {
            TaskState::Pending
        },
        None,
    )
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;
    use crate::{
        controller::podspec::Space,
        crd::{CFDropletStatus, DropletState},
        fixtures,
    };

    /// The whole Job: the droplet image, the command in a shell, the app's env with
    /// VCAP_APPLICATION, limits, no retries, and labels the pod cache and task watch read.
    #[test]
    fn task_becomes_a_run_once_job() {
        let app = fixtures::app("a1", "my-app")
            .started()
            .droplet("d1")
            .env("FOO", "bar");
        let mut droplet = fixtures::droplet("d1", "a1", "busybox");
        droplet.status = Some(CFDropletStatus {
            state: Some(DropletState::Staged),
            image: Some("busybox".into()),
            ..CFDropletStatus::default()
        });
        let rt = AppRuntime {
            app: &app,
            droplet: &droplet,
            space: Space {
                guid: "space-1".into(),
                name: "dev".into(),
                org_guid: "org-1".into(),
                org_name: "o".into(),
            },
            uris: vec![],
            bindings: vec![],
            secrets_hash: None,
        };
        let mut task = fixtures::task("t1", "a1", "rake db:migrate");
        task.spec.memory_in_mb = Some(512);
        let vcap = podspec::vcap_application(&rt, Limits::new(Some(512), None), None);
        let field = |path: &str| json!({"fieldRef": {"fieldPath": path}});
        assert_eq!(
            serde_json::to_value(job(&task, &rt, &AppDefaults::default())).unwrap(),
            json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": "task-t1",
                    "namespace": "space-1",
                    "labels": {
                        "app.kubernetes.io/managed-by": "kubefoundry",
                        "kubefoundry.dev/app-guid": "a1",
                        "kubefoundry.dev/space-guid": "space-1",
                        "kubefoundry.dev/task-guid": "t1",
                    },
                },
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {
                            "labels": {
                                "kubefoundry.dev/app-guid": "a1",
                                "kubefoundry.dev/space-guid": "space-1",
                                "kubefoundry.dev/task-guid": "t1",
                            },
                            "annotations": {"kubefoundry.dev/droplet-guid": "d1"},
                        },
                        "spec": {
                            "restartPolicy": "Never",
                            "automountServiceAccountToken": false,
                            "enableServiceLinks": false,
                            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                            "containers": [{
                                "name": "task",
                                "image": "busybox",
                                "command": ["/bin/sh", "-c", "rake db:migrate"],
                                "env": [
                                    {"name": "CF_INSTANCE_GUID", "valueFrom": field("metadata.uid")},
                                    {"name": "CF_INSTANCE_INDEX", "valueFrom": field("metadata.labels['apps.kubernetes.io/pod-index']")},
                                    {"name": "CF_INSTANCE_INTERNAL_IP", "valueFrom": field("status.podIP")},
                                    {"name": "CF_INSTANCE_IP", "valueFrom": field("status.podIP")},
                                    {"name": "MEMORY_LIMIT", "value": "512m"},
                                    {"name": "SERVICE_BINDING_ROOT", "value": "/bindings"},
                                    {"name": "VCAP_APPLICATION", "value": vcap},
                                    {"name": "VCAP_SERVICES", "valueFrom": {"secretKeyRef": {"name": "a1-vcap-services", "key": "VCAP_SERVICES", "optional": true}}},
                                    {"name": "FOO", "value": "bar"},
                                ],
                                "resources": {
                                    "limits": {"ephemeral-storage": "1024Mi", "memory": "512Mi"},
                                    "requests": {"cpu": "50m", "memory": "512Mi"},
                                },
                                "securityContext": {
                                    "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]},
                                    "runAsNonRoot": true,
                                    "seccompProfile": {"type": "RuntimeDefault"},
                                },
                            }],
                        },
                    },
                },
            })
        );
    }

    fn job_with(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({"spec": {"template": {}}, "status": {"conditions": conditions}}))
            .unwrap()
    }

    fn pod(phase: &str, exit: Option<i32>) -> Pod {
        let state = exit.map_or(json!({"running": {}}), |c| json!({"terminated": {"exitCode": c}}));
        serde_json::from_value(json!({"status": {"phase": phase, "containerStatuses": [{"name": "task", "image": "i", "imageID": "", "ready": false, "restartCount": 0, "state": state}]}})).unwrap()
    }

    #[test]
    fn state_follows_the_job_and_its_pod() {
        let pending = job_with(json!([]));
        assert_eq!(observe(&pending, &[]), (TaskState::Pending, None));
        assert_eq!(
            observe(&pending, &[&pod("Running", None)]),
            (TaskState::Running, None)
        );
        let done = job_with(json!([{"type": "Complete", "status": "True"}]));
        assert_eq!(
            observe(&done, &[&pod("Succeeded", Some(0))]),
            (TaskState::Succeeded, None)
        );
        let failed = job_with(
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]),
        );
        assert_eq!(
            observe(&failed, &[&pod("Failed", Some(3))]),
            (TaskState::Failed, Some("Exited with status 3".into()))
        );
        assert_eq!(
            observe(&failed, &[]),
            (
                TaskState::Failed,
                Some("Job has reached the specified backoff limit".into())
            )
        );
    }
}
