//! e2e: routes and services through `kubefoundry controller` against the simulated cluster.
//! kubectl-applied CFDomain/CFApp/CFProcess/CFRoute YAML becomes an Ingress (host, path,
//! backend, TLS copied into the space); routes an Ingress cannot express report why and have
//! no Ingress; a user-provided service instance bound to an app yields the binding Secret and
//! the app's VCAP_SERVICES Secret, and unbinding removes both.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::{
    api::{core::v1::Secret, networking::v1::Ingress},
    apimachinery::pkg::apis::meta::v1::Condition,
};
use kube::Api;
use kubefoundry::{
    controller::Config,
    crd::{CFRoute, CFServiceBinding, CFServiceInstance},
};
use kubefoundry_e2e::{RunningController, TestCluster, controller_config, eventually};
use serde_json::{Value, json};

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
"#;

const APP: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFApp
metadata: {name: a1, namespace: space-1}
spec: {displayName: my-app}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFProcess
metadata: {name: a1-web, namespace: space-1}
spec: {appGuid: a1, processType: web, instances: 1}
"#;

const DOMAIN: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: apps-tls, namespace: cf}
type: kubernetes.io/tls
stringData: {tls.crt: CERT, tls.key: KEY}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFDomain
metadata: {name: d1, namespace: cf}
spec: {name: apps.example.com, tlsSecretName: apps-tls}
"#;

const ROUTE: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFRoute
metadata: {name: r1, namespace: space-1}
spec:
  host: myapp
  path: /api
  domainGuid: d1
  destinations:
  - {guid: dest-1, appGuid: a1, processType: web}
"#;

const WEIGHTED_ROUTE: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFRoute
metadata: {name: r1, namespace: space-1}
spec:
  host: myapp
  path: /api
  domainGuid: d1
  destinations:
  - {guid: dest-1, appGuid: a1, processType: web, weight: 80}
  - {guid: dest-2, appGuid: a1, processType: web, port: 9090, weight: 20}
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: db-creds, namespace: space-1}
stringData:
  credentials: '{"uri": "postgres://db.example.com:5432/app", "port": 5432}'
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFServiceInstance
metadata: {name: si1, namespace: space-1}
spec: {displayName: my-db, type: user-provided, credentials: {name: db-creds}, tags: [sql]}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFServiceBinding
metadata: {name: b1, namespace: space-1}
spec: {type: app, serviceInstanceGuid: si1, appGuid: a1}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFServiceBinding
metadata: {name: k1, namespace: space-1}
spec: {type: key, displayName: my-key, serviceInstanceGuid: si1}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFServiceInstance
metadata: {name: si-managed, namespace: space-1}
spec: {displayName: brokered, type: managed, servicePlanGuid: plan-1}
"#;

fn start_controller(tc: &TestCluster) -> RunningController {
    tc.start_controller(Config {
        ingress_class: Some("nginx".to_owned()),
        ..controller_config("replica-a")
    })
}

async fn setup() -> (TestCluster, RunningController) {
    let tc = TestCluster::with_cf(kubefoundry_sim::Options {
        config: kubefoundry_e2e::fast_config(),
        ..kubefoundry_sim::Options::default()
    })
    .await;
    let ctl = start_controller(&tc);
    tc.apply_until_accepted(TREE, &[]).await;
    // The space's namespace exists once objects in it are accepted.
    tc.apply_until_accepted(APP, &[]).await;
    (tc, ctl)
}

/// The `Ready` condition, once it is reported for the object's current generation.
fn ready(conditions: &[Condition], generation: Option<i64>) -> Option<&Condition> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready" && c.observed_generation == generation)
}

/// Restarts the controller and asserts it makes no writes to the kinds these reconcilers own
/// or write: a converged route or binding must cost nothing.
async fn restart_makes_no_writes(tc: &TestCluster, ctl: RunningController) -> RunningController {
    // Let the last status writes and cache updates land.
    tc.quiesce().await;
    ctl.stop().await;
    let mine = [
        "ingresses",
        "secrets",
        "cfroutes",
        "cfdomains",
        "cfserviceinstances",
        "cfservicebindings",
    ];
    let writes = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut events = tc.sim.cluster.store.subscribe();
    let seen = writes.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if mine.contains(&event.key.resource.rsplit('/').next().unwrap_or_default()) {
                seen.lock()
                    .unwrap()
                    .push(format!("{:?} {:?}", event.kind, event.key));
            }
        }
    });
    let ctl = start_controller(tc);
    // Long enough for every reconciler to have looked at every object again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    watcher.abort();
    let writes = writes.lock().unwrap().clone();
    assert!(
        writes.is_empty(),
        "a converged tree must cause no stored changes: {writes:?}"
    );
    ctl
}

fn decoded(secret: &Secret) -> std::collections::BTreeMap<String, String> {
    secret
        .data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn route_becomes_an_ingress_and_unexpressible_routes_say_why() {
    let (tc, ctl) = setup().await;
    tc.apply_until_accepted(DOMAIN, &[]).await;
    tc.apply_until_accepted(ROUTE, &[]).await;

    let routes: Api<CFRoute> = Api::namespaced(tc.client.clone(), "space-1");
    let ingresses: Api<Ingress> = Api::namespaced(tc.client.clone(), "space-1");
    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), "space-1");

    let route = eventually("the route to be Ready", Duration::from_secs(20), || async {
        let route = routes.get("r1").await.ok()?;
        let status = route.status.clone()?;
        (ready(&status.common.conditions, route.metadata.generation)?.status == "True").then_some(route)
    })
    .await;
    let status = route.status.unwrap();
    assert_eq!(status.url.as_deref(), Some("myapp.apps.example.com/api"));
    assert_eq!(status.fqdn.as_deref(), Some("myapp.apps.example.com"));
    assert_eq!(
        serde_json::to_value(&status.destinations).unwrap(),
        json!([{"guid": "dest-1", "state": "Ready"}])
    );
    assert_eq!(
        ready(&status.common.conditions, route.metadata.generation)
            .unwrap()
            .reason,
        "IngressReady"
    );

    let ingress = ingresses.get("route-r1").await.unwrap();
    assert_eq!(
        serde_json::to_value(ingress.spec.as_ref().unwrap()).unwrap(),
        json!({
            "ingressClassName": "nginx",
            "rules": [{
                "host": "myapp.apps.example.com",
                "http": {"paths": [{
                    "path": "/api",
                    "pathType": "Prefix",
                    "backend": {"service": {"name": "s-a1-web", "port": {"number": 8080}}},
                }]},
            }],
            "tls": [{"hosts": ["myapp.apps.example.com"], "secretName": "route-r1-tls"}],
        })
    );
    let owner = &ingress.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("CFRoute", "r1"));
    // The domain's certificate is copied next to the Ingress, which cannot read the root namespace.
    let tls = secrets.get("route-r1-tls").await.unwrap();
    assert_eq!(tls.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(
        decoded(&tls),
        [
            ("tls.crt".to_owned(), "CERT".to_owned()),
            ("tls.key".to_owned(), "KEY".to_owned())
        ]
        .into()
    );

    let ctl = restart_makes_no_writes(&tc, ctl).await;

    // Unequal weights cannot be expressed by an Ingress: no Ingress, and a clear reason.
    tc.apply_until_accepted(WEIGHTED_ROUTE, &[]).await;
    let condition = eventually(
        "the weighted route to be refused",
        Duration::from_secs(20),
        || async {
            let route = routes.get("r1").await.ok()?;
            let status = route.status?;
            let condition = ready(&status.common.conditions, route.metadata.generation)?.clone();
            (condition.status == "False").then_some(condition)
        },
    )
    .await;
    assert_eq!(condition.reason, "UnsupportedWeights");
    assert!(
        condition.message.contains("dest-1=80, dest-2=20"),
        "{}",
        condition.message
    );
    eventually(
        "the Ingress and TLS copy to go",
        Duration::from_secs(20),
        || async {
            let gone = ingresses.get_opt("route-r1").await.ok()?.is_none()
                && secrets.get_opt("route-r1-tls").await.ok()?.is_none();
            gone.then_some(())
        },
    )
    .await;

    // Back to one destination: served again.
    tc.apply_until_accepted(ROUTE, &[]).await;
    eventually("the Ingress to return", Duration::from_secs(20), || async {
        ingresses.get_opt("route-r1").await.ok()?.map(|_| ())
    })
    .await;

    // A route on a missing domain is not served.
    tc.kubectl_ok(&["delete", "cfdomain", "d1", "-n", "cf"]);
    let condition = eventually(
        "the route to lose its domain",
        Duration::from_secs(20),
        || async {
            let route = routes.get("r1").await.ok()?;
            let status = route.status?;
            let condition = ready(&status.common.conditions, route.metadata.generation)?.clone();
            (condition.reason == "DomainNotFound" && ingresses.get_opt("route-r1").await.ok()?.is_none())
                .then_some(condition)
        },
    )
    .await;
    assert_eq!(condition.status, "False");
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binding_a_user_provided_service_fills_vcap_services_and_unbinding_empties_it() {
    let (tc, ctl) = setup().await;
    tc.apply_until_accepted(SERVICE, &[]).await;

    let instances: Api<CFServiceInstance> = Api::namespaced(tc.client.clone(), "space-1");
    let bindings: Api<CFServiceBinding> = Api::namespaced(tc.client.clone(), "space-1");
    let secrets: Api<Secret> = Api::namespaced(tc.client.clone(), "space-1");

    let instance = eventually("the instance to be Ready", Duration::from_secs(20), || async {
        let instance = instances.get("si1").await.ok()?;
        let status = instance.status.clone()?;
        (ready(&status.common.conditions, instance.metadata.generation)?.status == "True").then_some(instance)
    })
    .await;
    let operation = serde_json::to_value(instance.status.unwrap().last_operation).unwrap();
    assert_eq!(
        (&operation["type"], &operation["state"]),
        (&json!("create"), &json!("succeeded"))
    );

    let managed = eventually(
        "the managed instance to be refused",
        Duration::from_secs(20),
        || async {
            let instance = instances.get("si-managed").await.ok()?;
            let status = instance.status?;
            ready(&status.common.conditions, instance.metadata.generation).cloned()
        },
    )
    .await;
    assert_eq!(
        (
            managed.status.as_str(),
            managed.reason.as_str(),
            managed.message.as_str()
        ),
        ("False", "NotSupported", "managed services are not supported yet")
    );

    for name in ["b1", "k1"] {
        eventually("the bindings to be Ready", Duration::from_secs(20), || async {
            let binding = bindings.get(name).await.ok()?;
            let status = binding.status.clone()?;
            let ok = ready(&status.common.conditions, binding.metadata.generation)?.status == "True"
                && status.secret_name.as_deref() == Some(&format!("{name}-binding"));
            ok.then_some(())
        })
        .await;
    }
    let binding_secret = secrets.get("b1-binding").await.unwrap();
    assert_eq!(
        binding_secret.type_.as_deref(),
        Some("servicebinding.io/user-provided")
    );
    assert_eq!(
        decoded(&binding_secret),
        [
            ("port".to_owned(), "5432".to_owned()),
            ("provider".to_owned(), "user-provided".to_owned()),
            ("type".to_owned(), "user-provided".to_owned()),
            ("uri".to_owned(), "postgres://db.example.com:5432/app".to_owned()),
        ]
        .into()
    );
    assert!(
        secrets.get_opt("k1-binding").await.unwrap().is_some(),
        "a service key gets its binding Secret"
    );

    // Only the app binding reaches VCAP_SERVICES.
    let vcap = secrets.get("a1-vcap-services").await.unwrap();
    let owner = &vcap.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!((owner.kind.as_str(), owner.name.as_str()), ("CFApp", "a1"));
    let body: Value = serde_json::from_str(&decoded(&vcap)["VCAP_SERVICES"]).unwrap();
    assert_eq!(
        body,
        json!({"user-provided": [{
            "name": "my-db",
            "instance_guid": "si1",
            "instance_name": "my-db",
            "binding_guid": "b1",
            "binding_name": null,
            "credentials": {"uri": "postgres://db.example.com:5432/app", "port": 5432},
            "syslog_drain_url": null,
            "volume_mounts": [],
            "label": "user-provided",
            "tags": ["sql"],
        }]})
    );

    let ctl = restart_makes_no_writes(&tc, ctl).await;

    // A binding Secret deleted by hand comes back at once (its deletion wakes the binding once
    // the cache has dropped it, not after a resync).
    let old = binding_secret.metadata.uid.clone();
    secrets.delete("b1-binding", &Default::default()).await.unwrap();
    eventually(
        "the binding Secret to come back",
        Duration::from_secs(10),
        || async {
            let secret = secrets.get_opt("b1-binding").await.ok()??;
            (secret.metadata.uid != old).then_some(())
        },
    )
    .await;

    // Unbinding removes the binding Secret and the app's last VCAP_SERVICES entry.
    tc.kubectl_ok(&[
        "delete",
        "cfservicebinding",
        "b1",
        "-n",
        "space-1",
        "--wait=false",
    ]);
    eventually(
        "the binding and both Secrets to go",
        Duration::from_secs(20),
        || async {
            let gone = bindings.get_opt("b1").await.ok()?.is_none()
                && secrets.get_opt("b1-binding").await.ok()?.is_none()
                && secrets.get_opt("a1-vcap-services").await.ok()?.is_none();
            gone.then_some(())
        },
    )
    .await;
    assert!(
        secrets.get_opt("k1-binding").await.unwrap().is_some(),
        "the service key is untouched"
    );
    ctl.stop().await;
}
