//! e2e: the controller converges through the faults the simulated cluster injects: 500s on
//! writes and lists, every watch dropped, and history compacted so watches get 410 Gone.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kubefoundry::{
    controller::{self, Config},
    crd::{CFOrg, CFRole, CFSpace},
};
use kubefoundry_e2e::{TestCluster, eventually};
use kubefoundry_sim::Fault;

const TREE: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFOrg
metadata: {name: org-f, namespace: cf}
spec: {displayName: Faulty}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFSpace
metadata: {name: space-f, namespace: org-f}
spec: {displayName: dev}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFRole
metadata: {name: role-f, namespace: space-f}
spec: {type: space_developer, subject: {kind: User, name: alice}}
"#;

fn fault(verb: &str, resource: &str, remaining: u32, code: u16) -> Fault {
    Fault {
        verb: verb.to_owned(),
        resource: resource.to_owned(),
        remaining,
        code,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn converges_through_500s_dropped_watches_and_410s() {
    let tc = TestCluster::start().await;
    tc.install_crds().await;
    tc.kubectl_ok(&["create", "namespace", "cf"]);
    let cluster = tc.sim.cluster.clone();

    // Writes and status updates fail a few times before the controller even starts.
    cluster.faults.inject(fault("patch", "namespaces", 3, 500));
    cluster.faults.inject(fault("patch", "cforgs", 2, 503));
    cluster.faults.inject(fault("patch", "rolebindings", 3, 500));
    cluster.faults.inject(fault("list", "cfspaces", 2, 500));

    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let client = tc.client.clone();
    // A short first backoff keeps the test quick; the doubling is what is under test.
    let config = Config {
        identity: "faulty".to_owned(),
        backoff_base: Duration::from_millis(200),
        ..Config::default()
    };
    let task = tokio::spawn(async move {
        controller::run(client, config, async {
            let _ = rx.await;
        })
        .await
        .expect("controller runs");
    });

    // Meanwhile watches are cut and history compacted, over and over.
    let chaos_cluster = cluster.clone();
    let chaos = tokio::spawn(async move {
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            chaos_cluster.store.compact();
            chaos_cluster.drop_watches();
        }
    });

    eventually("the tree to be accepted", Duration::from_secs(30), || async {
        tc.apply(TREE, &[]).status.success().then_some(())
    })
    .await;
    chaos.await.unwrap();

    let ready = |conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>| {
        conditions.is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
    };
    eventually(
        "everything Ready despite the faults",
        Duration::from_secs(60),
        || async {
            let org = Api::<CFOrg>::namespaced(tc.client.clone(), "cf")
                .get("org-f")
                .await
                .ok()?;
            let space = Api::<CFSpace>::namespaced(tc.client.clone(), "org-f")
                .get("space-f")
                .await
                .ok()?;
            let role = Api::<CFRole>::namespaced(tc.client.clone(), "space-f")
                .get("role-f")
                .await
                .ok()?;
            let binding = Api::<RoleBinding>::namespaced(tc.client.clone(), "space-f")
                .list(&kube::api::ListParams::default().labels("kubefoundry.dev/owner=CFRole.space-f.role-f"))
                .await
                .ok()?;
            let ok = ready(org.status.as_ref().map(|s| &s.common.conditions))
                && ready(space.status.as_ref().map(|s| &s.common.conditions))
                && ready(role.status.as_ref().map(|s| &s.common.conditions))
                && binding.items.len() == 1;
            ok.then_some(())
        },
    )
    .await;
    let out = tc.kubectl(&[
        "auth",
        "can-i",
        "create",
        "cfapps.kubefoundry.dev",
        "-n",
        "space-f",
        "--as",
        "alice",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");

    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
}
