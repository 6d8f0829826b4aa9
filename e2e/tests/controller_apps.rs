//! e2e: apps, processes and tasks under `kubefoundry controller` against the simulated
//! cluster. A GitOps-style tree applied with kubectl (org, space, started docker app, package,
//! build, process, second droplet, task) becomes exactly the expected Deployment and Job; the
//! app then scales, stops, starts, switches droplets, changes env and restarts, each rolling
//! (or not) as CF promises; tasks get unique sequence numbers, succeed, and can be cancelled;
//! a crash-looping rollout shows in the process status; a restarted controller makes zero
//! writes for the converged tree; deleting the space leaves nothing behind.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::{
    apps::v1::{Deployment, ReplicaSet},
    batch::v1::Job,
    core::v1::{Namespace, Pod},
};
use kube::{Api, ResourceExt, api::ListParams};
use kubefoundry::crd::{AppState, CFApp, CFProcess, CFTask, TaskState};
use kubefoundry_e2e::{TestCluster, controller_config, eventually, fast_config};
use serde_json::{Value, json};

const NS: &str = "space-1";
const WAIT: Duration = Duration::from_secs(30);

const TREE: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFOrg
metadata: {name: org-1, namespace: cf}
spec: {displayName: My Org}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFSpace
metadata: {name: space-1, namespace: org-1}
spec: {displayName: dev}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFApp
metadata: {name: app-1, namespace: space-1}
spec:
  displayName: my-app
  desiredState: STARTED
  lifecycle: {type: docker}
  env: {GREETING: hello}
  currentDropletGuid: build-1
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFPackage
metadata: {name: pkg-1, namespace: space-1}
spec: {appGuid: app-1, type: docker, image: "nginxinc/nginx-unprivileged:1.27"}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFBuild
metadata: {name: build-1, namespace: space-1}
spec: {appGuid: app-1, packageGuid: pkg-1}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFProcess
metadata: {name: app-1-web, namespace: space-1}
spec:
  appGuid: app-1
  processType: web
  instances: 1
  memoryInMb: 256
  diskInMb: 512
  healthCheck: {type: http, endpoint: /healthz, invocationTimeout: 2, interval: 5, timeout: 30}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFDroplet
metadata: {name: droplet-2, namespace: space-1}
spec:
  appGuid: app-1
  lifecycle: docker
  image: "registry.example/my-app:v2"
  processTypes: {web: "./server --port $PORT", worker: "./work"}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFTask
metadata: {name: task-1, namespace: space-1}
spec: {appGuid: app-1, displayName: migrate, command: "rake db:migrate"}
"#;

/// Job Pods run for a few seconds, long enough to cancel a running task.
async fn setup() -> TestCluster {
    let options = kubefoundry_sim::Options {
        config: kubefoundry_sim::Config {
            job_run_time: Duration::from_secs(3),
            ..fast_config()
        },
        ..kubefoundry_sim::Options::default()
    };
    TestCluster::with_cf(options).await
}

struct Apis {
    apps: Api<CFApp>,
    processes: Api<CFProcess>,
    tasks: Api<CFTask>,
    deployments: Api<Deployment>,
    replica_sets: Api<ReplicaSet>,
    pods: Api<Pod>,
    jobs: Api<Job>,
}

impl Apis {
    fn new(tc: &TestCluster) -> Self {
        let c = || tc.client.clone();
        Self {
            apps: Api::namespaced(c(), NS),
            processes: Api::namespaced(c(), NS),
            tasks: Api::namespaced(c(), NS),
            deployments: Api::namespaced(c(), NS),
            replica_sets: Api::namespaced(c(), NS),
            pods: Api::namespaced(c(), NS),
            jobs: Api::namespaced(c(), NS),
        }
    }

    /// Ready pods of the web process.
    async fn ready_web_pods(&self) -> Option<usize> {
        let pods = self
            .pods
            .list(&ListParams::default().labels("kubefoundry.dev/process-type=web"))
            .await
            .ok()?;
        let ready = |p: &Pod| {
            p.metadata.deletion_timestamp.is_none()
                && p.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        Some(pods.items.iter().filter(|p| ready(p)).count())
    }

    /// Waits until the web Deployment wants `replicas`, that many pods are Ready, and the
    /// process and app report them.
    async fn web_settles_at(&self, replicas: i32) {
        eventually(
            &format!("web to settle at {replicas} ready instances"),
            WAIT,
            || async {
                let d = self.deployments.get("app-1-web").await.ok()?;
                let process = self.processes.get("app-1-web").await.ok()?.status?;
                let app = self.apps.get("app-1").await.ok()?.status?;
                let pods = self.ready_web_pods().await?;
                let settled = d.spec.replicas == Some(replicas)
                    && usize::try_from(replicas).ok()? == pods
                    && process.ready_instances == replicas
                    && app.ready_instances == Some(replicas);
                settled.then_some(())
            },
        )
        .await;
    }

    /// ReplicaSets of the web Deployment with replicas wanted, and all of them.
    async fn web_replica_sets(&self) -> (Vec<ReplicaSet>, usize) {
        let all = self
            .replica_sets
            .list(&ListParams::default().labels("kubefoundry.dev/process-type=web"))
            .await
            .unwrap();
        let total = all.items.len();
        let active = all
            .items
            .into_iter()
            .filter(|r| r.spec.replicas.unwrap_or(0) > 0)
            .collect();
        (active, total)
    }

    async fn task_finished(&self, name: &str) -> CFTask {
        eventually(&format!("task {name} to finish"), WAIT, || async {
            let t = self.tasks.get(name).await.ok()?;
            let state = t.status.as_ref()?.state?;
            matches!(state, TaskState::Succeeded | TaskState::Failed).then_some(t)
        })
        .await
    }
}

fn env_names(d: &Deployment) -> Vec<String> {
    let container = &d.spec.template.spec.as_ref().unwrap().containers[0];
    container
        .env
        .as_ref()
        .unwrap()
        .iter()
        .map(|e| e.name.clone())
        .collect()
}

fn env_value(containers: &[k8s_openapi::api::core::v1::Container], name: &str) -> Option<String> {
    containers[0]
        .env
        .as_ref()?
        .iter()
        .find(|e| e.name == name)?
        .value
        .clone()
}

fn patch_app(tc: &TestCluster, patch: &Value) {
    tc.kubectl_ok(&[
        "patch",
        "cfapp",
        "app-1",
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        &patch.to_string(),
    ]);
}

/// Every field of `expected` is in `actual` with the same value (the server may add defaults).
fn assert_has(actual: &Value, expected: &Value, path: &str) {
    match expected {
        Value::Object(fields) => {
            for (k, v) in fields {
                assert_has(&actual[k], v, &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(actual, expected, "at {path}"),
    }
}

/// The web Deployment exactly as a GitOps user's tree asks for it.
fn assert_web_deployment(d: &Deployment, process_uid: &str) {
    let mut value = serde_json::to_value(d).unwrap();
    let container = value["spec"]["template"]["spec"]["containers"][0].take();
    let template = value["spec"]["template"].take();
    assert_eq!(
        value["metadata"]["labels"],
        json!({
            "app.kubernetes.io/managed-by": "kubefoundry",
            "kubefoundry.dev/app-guid": "app-1",
            "kubefoundry.dev/process-type": "web",
            "kubefoundry.dev/space-guid": "space-1",
        })
    );
    let owner = &value["metadata"]["ownerReferences"][0];
    assert_eq!(
        (
            owner["kind"].as_str(),
            owner["uid"].as_str(),
            owner["controller"].as_bool()
        ),
        (Some("CFProcess"), Some(process_uid), Some(true))
    );
    assert_eq!(value["spec"]["replicas"], json!(1));
    assert_eq!(
        value["spec"]["selector"],
        json!({"matchLabels": {"kubefoundry.dev/app-guid": "app-1", "kubefoundry.dev/process-type": "web"}})
    );
    assert_eq!(
        value["spec"]["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}})
    );
    assert_eq!(
        template["metadata"]["labels"],
        json!({
            "kubefoundry.dev/app-guid": "app-1",
            "kubefoundry.dev/process-type": "web",
            "kubefoundry.dev/space-guid": "space-1",
        })
    );
    assert_eq!(
        template["metadata"]["annotations"],
        json!({"kubefoundry.dev/droplet-guid": "build-1"})
    );
    let pod = &template["spec"];
    assert_eq!(
        pod["securityContext"],
        json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
    );
    assert_eq!(
        (
            pod["automountServiceAccountToken"].as_bool(),
            pod["enableServiceLinks"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert_eq!(container["name"], "app");
    assert_eq!(container["image"], "nginxinc/nginx-unprivileged:1.27");
    assert_eq!(
        container.get("command"),
        None,
        "a docker web process runs the image's entrypoint"
    );
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(
        container["resources"],
        json!({
            "limits": {"ephemeral-storage": "512Mi", "memory": "256Mi"},
            "requests": {"cpu": "25m", "memory": "256Mi"},
        })
    );
    // The API server may default more probe fields (scheme, thresholds); check what we set.
    let http = json!({"httpGet": {"path": "/healthz", "port": 8080}, "timeoutSeconds": 2});
    assert_has(&container["livenessProbe"], &http, "livenessProbe");
    assert_has(
        &container["livenessProbe"],
        &json!({"periodSeconds": 5}),
        "livenessProbe",
    );
    assert_has(&container["readinessProbe"], &http, "readinessProbe");
    assert_has(
        &container["readinessProbe"],
        &json!({"periodSeconds": 5}),
        "readinessProbe",
    );
    assert_has(&container["startupProbe"], &http, "startupProbe");
    assert_has(
        &container["startupProbe"],
        &json!({"periodSeconds": 2, "failureThreshold": 15}),
        "startupProbe",
    );
    assert_eq!(
        container["securityContext"],
        json!({
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "runAsNonRoot": true,
            "seccompProfile": {"type": "RuntimeDefault"},
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gitops_app_runs_scales_rolls_and_runs_tasks() {
    let tc = setup().await;
    let ctl = tc.start_controller(controller_config("replica-a"));
    tc.apply_until_accepted(TREE, &[]).await;
    let apis = Apis::new(&tc);

    // The tree becomes one running instance of the droplet the build staged.
    apis.web_settles_at(1).await;
    let app = apis.apps.get("app-1").await.unwrap();
    let status = app.status.unwrap();
    assert_eq!(status.state, Some(AppState::Started));
    assert!(
        status.common.is_ready(app.metadata.generation),
        "{:?}",
        status.common
    );
    let process = apis.processes.get("app-1-web").await.unwrap();
    assert_eq!(
        process
            .labels()
            .get("kubefoundry.dev/app-guid")
            .map(String::as_str),
        Some("app-1")
    );
    assert!(
        process
            .owner_references()
            .iter()
            .any(|o| o.kind == "CFApp" && o.name == "app-1")
    );
    let deployment = apis.deployments.get("app-1-web").await.unwrap();
    assert_web_deployment(&deployment, &process.uid().unwrap());
    assert_eq!(
        env_names(&deployment),
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
            "GREETING",
        ]
    );
    let containers = &deployment.spec.template.spec.as_ref().unwrap().containers;
    let vcap: Value = serde_json::from_str(&env_value(containers, "VCAP_APPLICATION").unwrap()).unwrap();
    assert_eq!(
        vcap,
        json!({
            "application_id": "app-1",
            "application_name": "my-app",
            "application_uris": [],
            "limits": {"disk": 512, "fds": 16384, "mem": 256},
            "name": "my-app",
            "organization_id": "org-1",
            "organization_name": "My Org",
            "process_id": "app-1-web",
            "process_type": "web",
            "space_id": "space-1",
            "space_name": "dev",
            "uris": [],
        })
    );
    assert_eq!(env_value(containers, "PORT").as_deref(), Some("8080"));

    // The task runs the droplet with the app's env, once, and gets the app's first number.
    let task = apis.task_finished("task-1").await;
    let task_status = task.status.unwrap();
    assert_eq!(
        (task_status.state, task_status.sequence_id),
        (Some(TaskState::Succeeded), Some(1))
    );
    assert_eq!(task_status.droplet_guid.as_deref(), Some("build-1"));
    let job = apis.jobs.get("task-task-1").await.unwrap();
    let job_spec = job.spec.unwrap();
    assert_eq!(job_spec.backoff_limit, Some(0));
    let pod = job_spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("nginxinc/nginx-unprivileged:1.27")
    );
    assert_eq!(
        pod.containers[0].command,
        Some(vec!["/bin/sh".into(), "-c".into(), "rake db:migrate".into()])
    );
    assert_eq!(env_value(&pod.containers, "GREETING").as_deref(), Some("hello"));
    assert_eq!(job.metadata.labels.unwrap()["kubefoundry.dev/app-guid"], "app-1");

    // Scaling changes replicas only: no new ReplicaSet.
    let (_, sets_before) = apis.web_replica_sets().await;
    tc.kubectl_ok(&["scale", "cfprocess/app-1-web", "-n", NS, "--replicas=3"]);
    apis.web_settles_at(3).await;
    assert_eq!(
        apis.web_replica_sets().await.1,
        sets_before,
        "scaling must not roll"
    );

    // Stop, then start.
    patch_app(&tc, &json!({"spec": {"desiredState": "STOPPED"}}));
    eventually("the app to stop", WAIT, || async {
        let d = apis.deployments.get("app-1-web").await.ok()?;
        let app = apis.apps.get("app-1").await.ok()?.status?;
        (d.spec.replicas == Some(0)
            && app.state == Some(AppState::Stopped)
            && apis.ready_web_pods().await? == 0)
            .then_some(())
    })
    .await;
    patch_app(&tc, &json!({"spec": {"desiredState": "STARTED"}}));
    apis.web_settles_at(3).await;
    assert_eq!(
        apis.apps.get("app-1").await.unwrap().status.unwrap().state,
        Some(AppState::Started)
    );

    // Switching the droplet rolls to its image and command, and adds its worker process.
    patch_app(&tc, &json!({"spec": {"currentDropletGuid": "droplet-2"}}));
    let rolled = |image: &'static str| {
        let apis = &apis;
        async move {
            let (active, _) = apis.web_replica_sets().await;
            let [rs] = active.as_slice() else { return None };
            let spec = rs.spec.template.as_ref()?.spec.as_ref()?;
            (spec.containers[0].image.as_deref() == Some(image)).then(|| rs.name_any())
        }
    };
    let v2 = eventually("a new ReplicaSet running droplet-2", WAIT, || {
        rolled("registry.example/my-app:v2")
    })
    .await;
    apis.web_settles_at(3).await;
    let d = apis.deployments.get("app-1-web").await.unwrap();
    let container = &d.spec.template.spec.as_ref().unwrap().containers[0];
    assert_eq!(
        container.command,
        Some(vec![
            "/bin/sh".into(),
            "-c".into(),
            "./server --port $PORT".into()
        ])
    );
    let worker = eventually("the worker process and its Deployment", WAIT, || async {
        let p = apis.processes.get("app-1-worker").await.ok()?;
        let d = apis.deployments.get("app-1-worker").await.ok()?;
        Some((p, d))
    })
    .await;
    assert_eq!((worker.0.spec.instances, worker.1.spec.replicas), (0, Some(0)));

    // Env changes and restarts roll.
    patch_app(&tc, &json!({"spec": {"env": {"GREETING": "bonjour"}}}));
    let env_rs = eventually("a new ReplicaSet for the env change", WAIT, || async {
        let name = rolled("registry.example/my-app:v2").await?;
        (name != v2).then_some(name)
    })
    .await;
    patch_app(&tc, &json!({"spec": {"restartedAt": "2026-01-02T03:04:05Z"}}));
    eventually("a new ReplicaSet for the restart", WAIT, || async {
        let name = rolled("registry.example/my-app:v2").await?;
        (name != env_rs && name != v2).then_some(())
    })
    .await;
    let d = apis.deployments.get("app-1-web").await.unwrap();
    let annotations = d.spec.template.metadata.unwrap().annotations.unwrap();
    assert_eq!(
        annotations["kubefoundry.dev/restarted-at"],
        "2026-01-02T03:04:05Z"
    );
    apis.web_settles_at(3).await;

    // A second task gets the next number; a cancelled one fails and its Job goes.
    let task_yaml = |name: &str, command: &str| {
        format!(
            "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFTask\nmetadata: {{name: {name}, namespace: {NS}}}\nspec: {{appGuid: app-1, displayName: {name}, command: \"{command}\"}}\n"
        )
    };
    assert!(tc.apply(&task_yaml("task-2", "echo hi"), &[]).status.success());
    let t2 = apis.task_finished("task-2").await.status.unwrap();
    assert_eq!(
        (t2.state, t2.sequence_id, t2.droplet_guid.as_deref()),
        (Some(TaskState::Succeeded), Some(2), Some("droplet-2"))
    );
    assert!(tc.apply(&task_yaml("task-3", "sleep 100"), &[]).status.success());
    eventually("task-3 to run", WAIT, || async {
        let s = apis.tasks.get("task-3").await.ok()?.status?;
        (s.state == Some(TaskState::Running)).then_some(())
    })
    .await;
    tc.kubectl_ok(&[
        "patch",
        "cftask",
        "task-3",
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"canceled":true}}"#,
    ]);
    let t3 = apis.task_finished("task-3").await.status.unwrap();
    assert_eq!(
        (t3.state, t3.failure_reason.as_deref(), t3.sequence_id),
        (Some(TaskState::Failed), Some("task was cancelled"), Some(3))
    );
    eventually("task-3's Job to go", WAIT, || async {
        apis.jobs
            .get_opt("task-task-3")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    // Kubernetes' Job controller drops the tracking finalizer of a deleted Job's Pods; the
    // simulated one only does so for Jobs that still exist, so the test does it here.
    let orphans = apis
        .pods
        .list(&ListParams::default().labels("kubefoundry.dev/task-guid=task-3"))
        .await
        .unwrap();
    for pod in orphans.items.iter().filter(|p| {
        p.finalizers()
            .iter()
            .any(|f| f == "batch.kubernetes.io/job-tracking")
    }) {
        tc.kubectl_ok(&[
            "patch",
            "pod",
            &pod.name_any(),
            "-n",
            NS,
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
        ]);
    }

    // Tasks created together still get distinct numbers: the counter is advanced under a
    // resourceVersion precondition while their reconciles run concurrently.
    let batch: String = (4..=7)
        .map(|n| format!("---\n{}", task_yaml(&format!("task-{n}"), "true")))
        .collect();
    assert!(tc.apply(&batch, &[]).status.success());
    let mut numbers = Vec::new();
    for n in 4..=7 {
        let status = apis.task_finished(&format!("task-{n}")).await.status.unwrap();
        assert_eq!(status.state, Some(TaskState::Succeeded));
        numbers.push(status.sequence_id.unwrap());
    }
    numbers.sort_unstable();
    assert_eq!(numbers, [4, 5, 6, 7]);

    // A rollout whose instances crash shows in the process status (the simulated kubelet
    // crashes pods whose template carries its failure annotation; users cannot set it through
    // CF objects, so the test patches the Deployment as an out-of-band change would).
    tc.kubectl_ok(&[
        "patch",
        "deployment",
        "app-1-web",
        "-n",
        NS,
        "--type",
        "merge",
        "-p",
        r#"{"spec":{"template":{"metadata":{"annotations":{"sim.kubefoundry.dev/fail":"crashloop"}}}}}"#,
    ]);
    eventually("the process to report crashing instances", WAIT, || async {
        let s = apis.processes.get("app-1-web").await.ok()?.status?;
        let c = s.common.condition("InstancesReady")?;
        (s.ready_instances == 0 && c.status == "False" && c.reason == "CrashLoopBackOff").then_some(())
    })
    .await;
    eventually("the app to report no ready instance", WAIT, || async {
        let s = apis.apps.get("app-1").await.ok()?.status?;
        (s.state == Some(AppState::Stopped) && s.ready_instances == Some(0)).then_some(())
    })
    .await;

    // Deleting the space removes every workload with it.
    tc.kubectl_ok(&["delete", "cfspace", "space-1", "-n", "org-1", "--wait=false"]);
    let namespaces: Api<Namespace> = Api::all(tc.client.clone());
    eventually("the space and all its workloads to go", WAIT, || async {
        let ns_gone = namespaces.get_opt(NS).await.ok()?.is_none();
        let lp = ListParams::default().labels("kubefoundry.dev/app-guid");
        let deployments = Api::<Deployment>::all(tc.client.clone())
            .list(&lp)
            .await
            .ok()?
            .items
            .len();
        let jobs = Api::<Job>::all(tc.client.clone())
            .list(&lp)
            .await
            .ok()?
            .items
            .len();
        let pods = Api::<Pod>::all(tc.client.clone())
            .list(&lp)
            .await
            .ok()?
            .items
            .len();
        let apps = Api::<CFApp>::all(tc.client.clone())
            .list(&ListParams::default())
            .await
            .ok()?
            .items
            .len();
        (ns_gone && deployments + jobs + pods + apps == 0).then_some(())
    })
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_controller_makes_zero_writes_for_converged_apps() {
    let tc = setup().await;
    let ctl = tc.start_controller(controller_config("replica-a"));
    tc.apply_until_accepted(TREE, &[]).await;
    let apis = Apis::new(&tc);
    apis.web_settles_at(1).await;
    apis.task_finished("task-1").await;
    // Let the last status writes and cache updates land.
    tc.quiesce().await;
    ctl.stop().await;

    let writes = Arc::new(AtomicUsize::new(0));
    let mut events = tc.sim.cluster.store.subscribe();
    let counter = writes.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if event.key.resource != "coordination.k8s.io/leases" {
                eprintln!("write after restart: {:?} {:?}", event.kind, event.key);
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let ctl = tc.start_controller(controller_config("replica-b"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "a converged app tree must cause no writes"
    );
    ctl.stop().await;
    watcher.abort();
}

const ROUTE_AND_BINDING: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFDomain
metadata: {name: d1, namespace: cf}
spec: {name: apps.example.com}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFRoute
metadata: {name: r1, namespace: space-1}
spec:
  host: myapp
  domainGuid: d1
  destinations:
  - {guid: dest-1, appGuid: app-1, processType: web}
---
apiVersion: v1
kind: Secret
metadata: {name: db-creds, namespace: space-1}
stringData:
  credentials: '{"uri": "postgres://db.example.com:5432/app"}'
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFServiceInstance
metadata: {name: si1, namespace: space-1}
spec: {displayName: my-db, type: user-provided, credentials: {name: db-creds}}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFServiceBinding
metadata: {name: b1, namespace: space-1}
spec: {type: app, serviceInstanceGuid: si1, appGuid: app-1}
"#;

/// The web pod template, once `ready` holds for it.
async fn web_template_when(
    apis: &Apis,
    what: &str,
    ready: impl Fn(&k8s_openapi::api::core::v1::PodTemplateSpec) -> bool,
) -> k8s_openapi::api::core::v1::PodTemplateSpec {
    eventually(what, WAIT, || async {
        let d = apis.deployments.get("app-1-web").await.ok()?;
        ready(&d.spec.template).then_some(d.spec.template)
    })
    .await
}

fn mounts(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Vec<String> {
    let container = &t.spec.as_ref().unwrap().containers[0];
    container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| m.mount_path.clone())
        .collect()
}

fn secrets_hash(t: &k8s_openapi::api::core::v1::PodTemplateSpec) -> Option<String> {
    t.metadata
        .as_ref()?
        .annotations
        .as_ref()?
        .get("kubefoundry.dev/secrets-hash")
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_and_bindings_reach_the_process() {
    let tc = setup().await;
    let ctl = tc.start_controller(controller_config("replica-a"));
    tc.apply_until_accepted(TREE, &[]).await;
    let apis = Apis::new(&tc);
    apis.web_settles_at(1).await;
    tc.apply_until_accepted(ROUTE_AND_BINDING, &[]).await;

    // A routed process gets a Service selecting its pods on the destination port.
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(tc.client.clone(), NS);
    let service = eventually("the web Service", WAIT, || async {
        services.get_opt("s-app-1-web").await.ok()?
    })
    .await;
    let spec = serde_json::to_value(service.spec.unwrap()).unwrap();
    assert_eq!(
        spec["selector"],
        json!({"kubefoundry.dev/app-guid": "app-1", "kubefoundry.dev/process-type": "web"})
    );
    assert_eq!(
        spec["ports"],
        json!([{"name": "port-8080", "port": 8080, "targetPort": 8080, "protocol": "TCP"}])
    );
    assert_eq!(service.metadata.owner_references.unwrap()[0].name, "app-1-web");

    // The binding is mounted servicebinding.io-style, VCAP_APPLICATION lists the route.
    let template = web_template_when(&apis, "the binding mounted and the route listed", |t| {
        let containers = &t.spec.as_ref().unwrap().containers;
        let uris = env_value(containers, "VCAP_APPLICATION")
            .and_then(|v| serde_json::from_str::<Value>(&v).ok())
            .map(|v| v["uris"].clone());
        mounts(t) == ["/bindings/my-db"] && uris == Some(json!(["myapp.apps.example.com"]))
    })
    .await;
    let volumes = serde_json::to_value(&template.spec.as_ref().unwrap().volumes).unwrap();
    assert_eq!(
        volumes,
        json!([{"name": "binding-0", "projected": {"sources": [{"secret": {"name": "b1-binding"}}]}}])
    );
    let hash = secrets_hash(&template).expect("binding secrets are hashed into the template");
    apis.web_settles_at(1).await;

    // New credentials roll the pods, which read them at start.
    tc.apply(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: db-creds, namespace: space-1}\nstringData:\n  credentials: '{\"uri\": \"postgres://db2.example.com:5432/app\"}'\n",
        &[],
    );
    web_template_when(&apis, "new credentials to change the template", |t| {
        secrets_hash(t).is_some_and(|h| h != hash)
    })
    .await;

    // Unmapping the route removes the Service; unbinding removes the mount.
    tc.kubectl_ok(&["delete", "cfroute", "r1", "-n", NS]);
    eventually("the web Service to go", WAIT, || async {
        services
            .get_opt("s-app-1-web")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    tc.kubectl_ok(&["delete", "cfservicebinding", "b1", "-n", NS]);
    web_template_when(&apis, "the binding to be unmounted", |t| mounts(t).is_empty()).await;
    apis.web_settles_at(1).await;
    ctl.stop().await;
}
