//! Simulated workloads, kwok-style: Deployments get ReplicaSets, ReplicaSets get Pods, Jobs get
//! Pods that finish, and Pods become Running and Ready after a configurable delay, all with the
//! status fields and conditions real controllers and the kubelet write. No container runs.
//!
//! Failure paths are driven by the pod-template annotation [`FAIL_ANNOTATION`]:
//! `crashloop` (containers restart in CrashLoopBackOff), `image-pull` (ErrImagePull, the Pod
//! stays Pending) and `exit` (the container exits 1; Job Pods fail). [`LOG_ANNOTATION`] sets
//! the lines a container logs.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{
    api::{ApiError, ApiResult, Ctx, objects::create_as},
    cluster::Cluster,
    controllers::{Index, Requeue},
    store::{Key, Write},
    time,
};

/// Pod-template annotation selecting a simulated failure: `crashloop`, `image-pull` or `exit`.
pub const FAIL_ANNOTATION: &str = "sim.kubefoundry.dev/fail";
/// Pod-template annotation with the lines the simulated container logs (newline separated).
pub const LOG_ANNOTATION: &str = "sim.kubefoundry.dev/log";

const MANAGER: &str = "kube-controller-manager";

/// The finalizer the Job controller keeps on a Job's Pods until it has counted them.
const JOB_TRACKING: &str = "batch.kubernetes.io/job-tracking";

/// Reconciles the workload concern of `key`, if it has one.
pub fn reconcile(
    cluster: &Cluster,
    key: &Key,
    object: Option<&Value>,
    index: &Index,
    requeue: &Requeue,
    follow: &mut Vec<Key>,
) {
    let Some(object) = object else { return };
    if object.pointer("/metadata/deletionTimestamp").is_some() && key.resource != "/pods" {
        return;
    }
    match key.resource.as_str() {
        "apps/deployments" => deployment(cluster, key, object, index),
        "apps/replicasets" => replica_set(cluster, key, object, index),
        "batch/jobs" => job(cluster, key, object, index),
        "/pods" => pod(cluster, key, object, requeue),
        _ => {}
    }
    let _ = follow;
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn i(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn owner_ref(kind: &str, api_version: &str, owner: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

fn controlled_by(object: &Value, uid: &str) -> bool {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == json!(true))
        })
}

fn children(cluster: &Cluster, index: &Index, owner: &Value, resource: &str) -> Vec<Arc<Value>> {
    let uid = s(owner, "/metadata/uid");
    let mut out: Vec<Arc<Value>> = index
        .dependents_of(uid)
        .into_iter()
        .filter(|k| k.resource == resource)
        .filter_map(|k| cluster.store.get(&k))
        .filter(|o| controlled_by(o, uid))
        .collect();
    out.sort_by(|a, b| {
        s(a, "/metadata/creationTimestamp")
            .cmp(s(b, "/metadata/creationTimestamp"))
            .then(s(a, "/metadata/name").cmp(s(b, "/metadata/name")))
    });
    out
}

/// A stable 10-character hash of a pod template, like `pod-template-hash`.
fn template_hash(template: &Value) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let text = serde_json::to_string(template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|n| ALPHABET[usize::try_from((h >> (n * 6)) % ALPHABET.len() as u64).unwrap_or(0)] as char)
        .collect()
}

fn rt(cluster: &Cluster, group: &str, plural: &str) -> Option<Arc<crate::registry::ResourceType>> {
    let version = "v1";
    cluster.registry.get(group, version, plural)
}

/// Writes status (and only status) when it differs, as a controller's status update.
fn write_status(cluster: &Cluster, key: &Key, status: Value) {
    let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
        let Some(current) = current else {
            return Ok(Write::Unchanged);
        };
        if current.get("status") == Some(&status) {
            return Ok(Write::Unchanged);
        }
        let mut next = current.clone();
        next["status"] = status;
        Ok(Write::Put(next))
    });
}

fn deployment(cluster: &Cluster, key: &Key, d: &Value, index: &Index) {
    let Some(rs_type) = rt(cluster, "apps", "replicasets") else {
        return;
    };
    let template = d.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let hash = template_hash(&template);
    let name = s(d, "/metadata/name");
    let new_name = format!("{name}-{hash}");
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let sets = children(cluster, index, d, "apps/replicasets");
    let revision = sets
        .iter()
        .filter_map(|r| {
            s(r, "/metadata/annotations/deployment.kubernetes.io~1revision")
                .parse::<i64>()
                .ok()
        })
        .max()
        .unwrap_or(0);
    let current = sets.iter().find(|r| s(r, "/metadata/name") == new_name).cloned();
    if current.is_none() {
        let mut labels = template.pointer("/metadata/labels").cloned().unwrap_or(json!({}));
        labels["pod-template-hash"] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or(json!({}));
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut pod_template = template.clone();
        pod_template["metadata"]["labels"] = labels.clone();
        let rs = json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": new_name,
                "namespace": key.namespace,
                "labels": labels,
                "annotations": {
                    "deployment.kubernetes.io/revision": (revision + 1).to_string(),
                    "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                },
                "ownerReferences": [owner_ref("Deployment", "apps/v1", d)],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": pod_template},
        });
        if let Err(e) = create_as(cluster, &rs_type, &key.namespace, rs, MANAGER)
            && e.code != 409
        {
            tracing::warn!(message = e.message, "creating a ReplicaSet failed");
        }
    }
    // Rolling update, simplified: the new ReplicaSet takes the replicas, old ones drop to zero.
    for rs in &sets {
        let want = if s(rs, "/metadata/name") == new_name {
            replicas
        } else {
            0
        };
        if i(rs, "/spec/replicas") != want || (want == 0 && rs.pointer("/spec/replicas").is_none()) {
            let k = Key::new("apps/replicasets", &key.namespace, s(rs, "/metadata/name"));
            let _ = cluster.store.write(&k, |cur| -> Result<Write, ()> {
                let Some(cur) = cur else {
                    return Ok(Write::Unchanged);
                };
                let mut next = cur.clone();
                next["spec"]["replicas"] = json!(want);
                next["metadata"]["generation"] = json!(i(cur, "/metadata/generation") + 1);
                next["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                    json!(replicas.to_string());
                Ok(Write::Put(next))
            });
        }
    }
    let sets = children(cluster, index, d, "apps/replicasets");
    let total: i64 = sets.iter().map(|r| i(r, "/status/replicas")).sum();
    let ready: i64 = sets.iter().map(|r| i(r, "/status/readyReplicas")).sum();
    let available: i64 = sets.iter().map(|r| i(r, "/status/availableReplicas")).sum();
    let updated = sets
        .iter()
        .find(|r| s(r, "/metadata/name") == new_name)
        .map_or(0, |r| i(r, "/status/replicas"));
    let new_ready = sets
        .iter()
        .find(|r| s(r, "/metadata/name") == new_name)
        .map_or(0, |r| i(r, "/status/availableReplicas"));
    let now = time::now_rfc3339();
    let old_conditions = d
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        let st = if status { "True" } else { "False" };
        let prev = old_conditions.iter().find(|c| c["type"] == type_);
        let transition = prev
            .filter(|c| c["status"] == st)
            .map_or(json!(now), |c| c["lastTransitionTime"].clone());
        let update = prev
            .filter(|c| c["status"] == st && c["reason"] == reason)
            .map_or(json!(now), |c| c["lastUpdateTime"].clone());
        json!({"type": type_, "status": st, "lastUpdateTime": update, "lastTransitionTime": transition, "reason": reason, "message": message})
    };
    let complete = updated == replicas && new_ready == replicas && total == replicas;
    let status = json!({
        "observedGeneration": i(d, "/metadata/generation"),
        "replicas": total,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (replicas - available).max(0),
        "conditions": [
            condition("Available", available >= replicas, if available >= replicas { "MinimumReplicasAvailable" } else { "MinimumReplicasUnavailable" },
                if available >= replicas { "Deployment has minimum availability.".to_owned() } else { "Deployment does not have minimum availability.".to_owned() }),
            condition("Progressing", true, if complete { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" },
                if complete { format!("ReplicaSet \"{new_name}\" has successfully progressed.") } else { format!("ReplicaSet \"{new_name}\" is progressing.") }),
        ],
    });
    let mut status = status;
    for field in [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
        "unavailableReplicas",
    ] {
        if status[field] == json!(0)
            && let Some(m) = status.as_object_mut()
        {
            m.remove(field);
        }
    }
    write_status(cluster, key, status);
}

fn pod_is_ready(p: &Value) -> bool {
    p.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn replica_set(cluster: &Cluster, key: &Key, rs: &Value, index: &Index) {
    let Some(pod_type) = rt(cluster, "", "pods") else {
        return;
    };
    let want = rs.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
    let pods: Vec<Arc<Value>> = children(cluster, index, rs, "/pods")
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|p| !matches!(s(p, "/status/phase"), "Succeeded" | "Failed"))
        .collect();
    let have = i64::try_from(pods.len()).unwrap_or(0);
    if have < want {
        let template = rs.pointer("/spec/template").cloned().unwrap_or(json!({}));
        for _ in have..want {
            let mut pod = json!({
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "generateName": format!("{}-", s(rs, "/metadata/name")),
                    "namespace": key.namespace,
                    "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                    "ownerReferences": [owner_ref("ReplicaSet", "apps/v1", rs)],
                },
                "spec": template.get("spec").cloned().unwrap_or(json!({})),
            });
            if let Some(a) = template.pointer("/metadata/annotations") {
                pod["metadata"]["annotations"] = a.clone();
            }
            if let Err(e) = create_as(cluster, &pod_type, &key.namespace, pod, MANAGER) {
                tracing::warn!(message = e.message, "creating a Pod failed");
                break;
            }
        }
    } else if have > want {
        // Newest first, as the ReplicaSet controller prefers to delete younger Pods.
        for p in pods.iter().rev().take(usize::try_from(have - want).unwrap_or(0)) {
            let k = Key::new("/pods", &key.namespace, s(p, "/metadata/name"));
            let _ = cluster.store.write(&k, |_| Ok::<_, ()>(Write::Delete));
        }
    }
    let pods: Vec<Arc<Value>> = children(cluster, index, rs, "/pods")
        .into_iter()
        .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
        .collect();
    let count = i64::try_from(pods.len())
        .unwrap_or(0)
        .min(want.max(i64::try_from(pods.len()).unwrap_or(0)));
    let ready = i64::try_from(pods.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0);
    let mut status = json!({
        "replicas": count,
        "fullyLabeledReplicas": count,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "observedGeneration": i(rs, "/metadata/generation"),
    });
    for field in ["fullyLabeledReplicas", "readyReplicas", "availableReplicas"] {
        if status[field] == json!(0)
            && let Some(m) = status.as_object_mut()
        {
            m.remove(field);
        }
    }
    write_status(cluster, key, status);
}

fn job(cluster: &Cluster, key: &Key, job: &Value, index: &Index) {
    let Some(pod_type) = rt(cluster, "", "pods") else {
        return;
    };
    if job.pointer("/spec/suspend") == Some(&json!(true)) {
        return;
    }
    let finished = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| matches!(c["type"].as_str(), Some("Complete" | "Failed")) && c["status"] == "True")
        });
    let pods = children(cluster, index, job, "/pods");
    let succeeded = i64::try_from(
        pods.iter()
            .filter(|p| s(p, "/status/phase") == "Succeeded")
            .count(),
    )
    .unwrap_or(0);
    let failed =
        i64::try_from(pods.iter().filter(|p| s(p, "/status/phase") == "Failed").count()).unwrap_or(0);
    let active: Vec<&Arc<Value>> = pods
        .iter()
        .filter(|p| !matches!(s(p, "/status/phase"), "Succeeded" | "Failed"))
        .collect();
    let completions = job
        .pointer("/spec/completions")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let backoff = job
        .pointer("/spec/backoffLimit")
        .and_then(Value::as_i64)
        .unwrap_or(6);
    let now = time::now_rfc3339();
    let failed_out = failed > backoff;
    let complete = succeeded >= completions;
    if !finished && !complete && !failed_out && active.is_empty() {
        let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
        let mut pod = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": format!("{}-", s(job, "/metadata/name")),
                "namespace": key.namespace,
                "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                "ownerReferences": [owner_ref("Job", "batch/v1", job)],
                "finalizers": [JOB_TRACKING],
            },
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        });
        if let Some(a) = template.pointer("/metadata/annotations") {
            pod["metadata"]["annotations"] = a.clone();
        }
        if let Err(e) = create_as(cluster, &pod_type, &key.namespace, pod, MANAGER) {
            tracing::warn!(message = e.message, "creating a Job Pod failed");
        }
    }
    // Finished Pods are tracked, so their tracking finalizer goes.
    for p in &pods {
        if matches!(s(p, "/status/phase"), "Succeeded" | "Failed") {
            crate::gc::remove_finalizer(
                cluster,
                &Key::new("/pods", &key.namespace, s(p, "/metadata/name")),
                JOB_TRACKING,
            );
        }
    }
    let ready = i64::try_from(active.iter().filter(|p| pod_is_ready(p)).count()).unwrap_or(0);
    let mut status = json!({
        "startTime": job.pointer("/status/startTime").cloned().unwrap_or(json!(now)),
        "active": i64::try_from(active.len()).unwrap_or(0),
        "ready": ready,
        "succeeded": succeeded,
        "failed": failed,
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    let previous = job.pointer("/status/conditions").cloned();
    if complete {
        status["active"] = json!(0);
        status["completionTime"] = job
            .pointer("/status/completionTime")
            .cloned()
            .unwrap_or(json!(now));
        status["conditions"] = previous.filter(|_| finished).unwrap_or(json!([
            {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
            {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
        ]));
    } else if failed_out {
        status["active"] = json!(0);
        status["conditions"] = previous.filter(|_| finished).unwrap_or(json!([
            {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
        ]));
    }
    for field in ["succeeded", "failed", "active", "ready", "terminating"] {
        if status[field] == json!(0)
            && field != "ready"
            && field != "terminating"
            && let Some(m) = status.as_object_mut()
        {
            m.remove(field);
        }
    }
    write_status(cluster, key, status);
}

fn container_names(p: &Value) -> Vec<String> {
    p.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_ip(name: &str) -> String {
    let h = name.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    format!("10.244.{}.{}", (h >> 8) % 256, (h % 253) + 2)
}

/// The kubelet: a Pod is scheduled, starts after the configured delay, and (for run-once
/// Pods) finishes after the configured run time; failure annotations bend that path.
fn pod(cluster: &Cluster, key: &Key, p: &Value, requeue: &Requeue) {
    if p.pointer("/metadata/deletionTimestamp").is_some() {
        // The kubelet stops a deleted Pod's containers, and the Job controller, having counted
        // it (or finding its Job gone), drops the tracking finalizer. Without this a Job Pod
        // deleted while running (its Job cancelled, its namespace terminating) never goes.
        if crate::api::objects::finalizers(p)
            .iter()
            .any(|f| f == JOB_TRACKING)
        {
            crate::gc::remove_finalizer(cluster, key, JOB_TRACKING);
            return;
        }
        if crate::api::objects::finalizers(p).is_empty() {
            let _ = cluster.store.write(key, |_| Ok::<_, ()>(Write::Delete));
        }
        return;
    }
    let phase = s(p, "/status/phase");
    if matches!(phase, "Succeeded" | "Failed") {
        return;
    }
    let fail = s(
        p,
        &format!("/metadata/annotations/{}", FAIL_ANNOTATION.replace('/', "~1")),
    )
    .to_owned();
    let run_once = matches!(s(p, "/spec/restartPolicy"), "Never" | "OnFailure");
    let created = s(p, "/metadata/creationTimestamp");
    let age_ms = time::seconds_since(created).unwrap_or(0) * 1000;
    let delay = cluster.config.pod_start_delay;
    let now = time::now_rfc3339();
    let containers = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastProbeTime": null, "lastTransitionTime": now});
    if phase == "Pending" || phase.is_empty() {
        if p.pointer("/spec/nodeName").is_none() {
            let _ = cluster.store.write(key, |cur| -> Result<Write, ()> {
                let Some(cur) = cur else {
                    return Ok(Write::Unchanged);
                };
                let mut next = cur.clone();
                next["spec"]["nodeName"] = json!("sim-node");
                next["status"]["conditions"] = json!([condition("PodScheduled", true)]);
                next["status"]["phase"] = json!("Pending");
                Ok(Write::Put(next))
            });
            requeue.after(key.clone(), delay);
            return;
        }
        if u128::try_from(age_ms).unwrap_or(0) < delay.as_millis()
            && !delay.is_zero()
            && p.pointer("/status/startTime").is_some()
        {
            requeue.after(key.clone(), delay);
            return;
        }
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                let name = c["name"].clone();
                let image = c["image"].clone();
                match fail.as_str() {
                    "image-pull" => json!({"name": name, "image": image, "imageID": "", "ready": false, "restartCount": 0, "started": false,
                        "state": {"waiting": {"reason": "ErrImagePull", "message": format!("failed to pull and unpack image \"{}\": simulated failure", image.as_str().unwrap_or(""))}}}),
                    "crashloop" | "exit" if !run_once => json!({"name": name, "image": image, "imageID": format!("sim://{}", image.as_str().unwrap_or("")), "ready": false, "restartCount": 1, "started": false,
                        "containerID": format!("sim://{}", uuid::Uuid::new_v4()),
                        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}}}),
                    _ => json!({"name": name, "image": image, "imageID": format!("sim://{}", image.as_str().unwrap_or("")), "ready": true, "restartCount": 0, "started": true,
                        "containerID": format!("sim://{}", uuid::Uuid::new_v4()),
                        "state": {"running": {"startedAt": now}}}),
                }
            })
            .collect();
        let ready = statuses.iter().all(|c| c["ready"] == json!(true));
        let ip = pod_ip(&key.name);
        let _ = cluster.store.write(key, |cur| -> Result<Write, ()> {
            let Some(cur) = cur else { return Ok(Write::Unchanged) };
            let mut next = cur.clone();
            let pulled = fail != "image-pull";
            next["status"] = json!({
                "phase": if pulled { "Running" } else { "Pending" },
                "conditions": [condition("PodReadyToStartContainers", pulled), condition("Initialized", true), condition("Ready", ready), condition("ContainersReady", ready), condition("PodScheduled", true)],
                "hostIP": "172.18.0.2",
                "hostIPs": [{"ip": "172.18.0.2"}],
                "podIP": ip,
                "podIPs": [{"ip": ip}],
                "startTime": cur.pointer("/status/startTime").cloned().unwrap_or(json!(now)),
                "containerStatuses": statuses,
                "qosClass": cur.pointer("/status/qosClass").cloned().unwrap_or(json!("BestEffort")),
            });
            Ok(Write::Put(next))
        });
        if run_once && fail != "image-pull" {
            requeue.after(key.clone(), cluster.config.job_run_time);
        } else if fail == "crashloop" || fail == "exit" {
            requeue.after(
                key.clone(),
                cluster.config.job_run_time.max(std::time::Duration::from_secs(1)),
            );
        }
        return;
    }
    if phase == "Running" && run_once {
        let started = s(p, "/status/startTime");
        let ran_ms = time::seconds_since(started).unwrap_or(0) * 1000;
        if u128::try_from(ran_ms).unwrap_or(0) + 1000 < cluster.config.job_run_time.as_millis() {
            requeue.after(key.clone(), cluster.config.job_run_time);
            return;
        }
        let failed = fail == "exit" || fail == "crashloop";
        let (code, reason) = if failed { (1, "Error") } else { (0, "Completed") };
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| json!({"name": c["name"], "image": c["image"], "imageID": format!("sim://{}", c["image"].as_str().unwrap_or("")), "ready": false, "restartCount": 0, "started": false,
                "containerID": format!("sim://{}", uuid::Uuid::new_v4()),
                "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now}}}))
            .collect();
        let _ = cluster.store.write(key, |cur| -> Result<Write, ()> {
            let Some(cur) = cur else {
                return Ok(Write::Unchanged);
            };
            let mut next = cur.clone();
            next["status"]["phase"] = json!(if failed { "Failed" } else { "Succeeded" });
            next["status"]["containerStatuses"] = json!(statuses);
            next["status"]["conditions"] = json!([
                condition("PodReadyToStartContainers", false),
                condition("Initialized", true),
                condition("Ready", false),
                condition("ContainersReady", false),
                condition("PodScheduled", true)
            ]);
            Ok(Write::Put(next))
        });
        return;
    }
    if phase == "Running" && (fail == "crashloop" || fail == "exit") {
        // Each back-off, the restart count grows, as a crash-looping container's does.
        let _ = cluster.store.write(key, |cur| -> Result<Write, ()> {
            let Some(cur) = cur else {
                return Ok(Write::Unchanged);
            };
            let mut next = cur.clone();
            if let Some(cs) = next
                .pointer_mut("/status/containerStatuses")
                .and_then(Value::as_array_mut)
            {
                for c in cs {
                    let n = c["restartCount"].as_i64().unwrap_or(0) + 1;
                    c["restartCount"] = json!(n);
                }
            }
            Ok(Write::Put(next))
        });
        requeue.after(key.clone(), std::time::Duration::from_secs(10));
    }
}

fn log_lines(p: &Value, container: &str) -> Vec<(String, String)> {
    let start = s(p, "/status/startTime");
    let start_ts: jiff::Timestamp = start.parse().unwrap_or_else(|_| jiff::Timestamp::now());
    let custom = s(
        p,
        &format!("/metadata/annotations/{}", LOG_ANNOTATION.replace('/', "~1")),
    );
    let image = p
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == container))
        .and_then(|c| c["image"].as_str())
        .unwrap_or("");
    // Declared output is all a container logs, as a real one logs only what it prints; the
    // synthetic banner and heartbeats stand in only when nothing was declared.
    let lines: Vec<String> = if custom.is_empty() {
        let elapsed = time::seconds_since(start).unwrap_or(0).clamp(0, 3600);
        std::iter::once(format!("Starting container {container} (image {image})"))
            .chain((1..=elapsed / 5).map(|n| format!("{container}: heartbeat {n}")))
            .collect()
    } else {
        custom.lines().map(str::to_owned).collect()
    };
    lines
        .into_iter()
        .enumerate()
        .map(|(n, line)| {
            let offset =
                jiff::SignedDuration::from_millis(i64::try_from(n).unwrap_or(0) * 5000 / 1000 * 1000);
            let ts = start_ts.checked_add(offset).unwrap_or(start_ts);
            (
                format!(
                    "{}.{:09}Z",
                    ts.strftime("%Y-%m-%dT%H:%M:%S"),
                    ts.subsec_nanosecond()
                ),
                line,
            )
        })
        .collect()
}

/// `GET /api/v1/namespaces/NS/pods/NAME/log`: synthetic, timestamped container output that
/// honours `container`, `timestamps`, `sinceTime`, `sinceSeconds`, `tailLines` and `limitBytes`.
pub fn logs(cluster: &Cluster, namespace: &str, name: &str, ctx: &Ctx) -> ApiResult<Response> {
    let Some(rt) = rt(cluster, "", "pods") else {
        return Err(ApiError::path_not_found());
    };
    let p = cluster
        .store
        .get(&Key::new("/pods", namespace, name))
        .ok_or_else(|| ApiError::not_found(&rt, name))?;
    let names = container_names(&p);
    let container = match ctx.param("container") {
        Some(c) if !names.iter().any(|n| n == c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        Some(c) => c.to_owned(),
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let state = p
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["name"] == container.as_str()))
        .cloned();
    let started = state.as_ref().is_some_and(|c| {
        c.pointer("/state/running").is_some()
            || c.pointer("/state/terminated").is_some()
            || c.pointer("/lastState/terminated").is_some()
    });
    if !started {
        let reason = state
            .as_ref()
            .and_then(|c| c.pointer("/state/waiting/reason"))
            .and_then(Value::as_str)
            .unwrap_or("ContainerCreating");
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: {reason}"
        )));
    }
    let mut lines = log_lines(&p, &container);
    if let Some(since) = ctx.param("sinceTime") {
        lines.retain(|(ts, _)| ts.as_str() >= since);
    }
    if let Some(secs) = ctx.param("sinceSeconds").and_then(|v| v.parse::<i64>().ok()) {
        let cutoff = time::rfc3339_in(-secs);
        lines.retain(|(ts, _)| ts.as_str() >= cutoff.as_str());
    }
    if let Some(tail) = ctx.param("tailLines").and_then(|v| v.parse::<usize>().ok()) {
        let skip = lines.len().saturating_sub(tail);
        lines.drain(..skip);
    }
    let timestamps = ctx.flag("timestamps");
    let mut body: String = lines
        .iter()
        .map(|(ts, line)| {
            if timestamps {
                format!("{ts} {line}\n")
            } else {
                format!("{line}\n")
            }
        })
        .collect();
    if let Some(limit) = ctx.param("limitBytes").and_then(|v| v.parse::<usize>().ok()) {
        let mut cut = limit.min(body.len());
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain")], body).into_response())
}
