//! e2e: `kubefoundry controller` against the simulated cluster. GitOps-style YAML applied with
//! kubectl becomes Namespaces and RoleBindings; CF roles grant exactly their CF rights through
//! kubectl; deleting a space then its org leaves nothing behind; a restarted controller makes
//! zero writes for converged objects; of two replicas only the Lease holder works.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use k8s_openapi::api::{core::v1::Namespace, rbac::v1::RoleBinding};
use kube::{Api, ResourceExt};
use kubefoundry::crd::{CFOrg, CFRole, CFSpace};
use kubefoundry_e2e::{TestCluster, controller_config, eventually};

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
kind: CFRole
metadata: {name: role-dev, namespace: space-1}
spec: {type: space_developer, subject: {kind: User, name: alice}}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFRole
metadata: {name: role-aud, namespace: space-1}
spec: {type: space_auditor, subject: {kind: User, name: eve}}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFRole
metadata: {name: role-mgr, namespace: org-1}
spec: {type: organization_manager, subject: {kind: User, name: bob}}
"#;

async fn setup() -> TestCluster {
    TestCluster::with_cf(kubefoundry_sim::Options {
        config: kubefoundry_e2e::fast_config(),
        ..kubefoundry_sim::Options::default()
    })
    .await
}

fn ready<K: kube::Resource>(
    status_conditions: Option<&Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>>,
    obj: &K,
) -> bool {
    status_conditions.is_some_and(|cs| {
        cs.iter().any(|c| {
            c.type_ == "Ready" && c.status == "True" && c.observed_generation == obj.meta().generation
        })
    })
}

async fn wait_ready(tc: &TestCluster) {
    let orgs: Api<CFOrg> = Api::namespaced(tc.client.clone(), "cf");
    let spaces: Api<CFSpace> = Api::namespaced(tc.client.clone(), "org-1");
    let roles: Api<CFRole> = Api::all(tc.client.clone());
    eventually(
        "every CF object Ready for its generation",
        Duration::from_secs(20),
        || async {
            let org = orgs.get("org-1").await.ok()?;
            let space = spaces.get("space-1").await.ok()?;
            let roles = roles.list(&Default::default()).await.ok()?;
            let all = ready(org.status.as_ref().map(|s| &s.common.conditions), &org)
                && ready(space.status.as_ref().map(|s| &s.common.conditions), &space)
                && roles.items.len() == 3
                && roles
                    .items
                    .iter()
                    .all(|r| ready(r.status.as_ref().map(|s| &s.common.conditions), r));
            all.then_some(())
        },
    )
    .await;
}

fn can_i(tc: &TestCluster, user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let out = tc.kubectl(&["auth", "can-i", verb, resource, "-n", namespace, "--as", user]);
    String::from_utf8_lossy(&out.stdout).trim() == "yes"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gitops_tree_becomes_namespaces_and_bindings() {
    let tc = setup().await;
    let ctl = tc.start_controller(controller_config("replica-a"));
    tc.apply_until_accepted(TREE, &[]).await;
    wait_ready(&tc).await;

    let namespaces: Api<Namespace> = Api::all(tc.client.clone());
    let space_ns = namespaces.get("space-1").await.unwrap();
    assert_eq!(
        space_ns
            .labels()
            .get("kubefoundry.dev/org-guid")
            .map(String::as_str),
        Some("org-1")
    );
    assert_eq!(
        space_ns
            .labels()
            .get("kubefoundry.dev/space-guid")
            .map(String::as_str),
        Some("space-1")
    );
    assert_eq!(
        space_ns
            .annotations()
            .get("kubefoundry.dev/display-name")
            .map(String::as_str),
        Some("dev")
    );

    // Each role binds where CF says it reaches, and nowhere else.
    let bindings: Api<RoleBinding> = Api::all(tc.client.clone());
    let mut placed: Vec<(String, String, String)> = bindings
        .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=kubefoundry"))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|b| {
            let subject = b
                .subjects
                .as_ref()
                .and_then(|s| s.first())
                .map(|s| s.name.clone())
                .unwrap_or_default();
            (
                b.namespace().unwrap_or_default(),
                b.role_ref.name.clone(),
                subject,
            )
        })
        .collect();
    placed.sort();
    let expected: Vec<(String, String, String)> = [
        ("cf", "kubefoundry-org-org-1", "alice"),
        ("cf", "kubefoundry-org-org-1", "bob"),
        ("cf", "kubefoundry-org-org-1", "eve"),
        ("org-1", "kubefoundry-space-space-1", "alice"),
        ("org-1", "kubefoundry-space-space-1", "eve"),
        ("org-1", "kubefoundry:organization_manager", "bob"),
        ("space-1", "kubefoundry:organization_manager", "bob"),
        ("space-1", "kubefoundry:space_auditor", "eve"),
        ("space-1", "kubefoundry:space_developer", "alice"),
    ]
    .iter()
    .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
    .collect();
    assert_eq!(placed, expected);

    // The Ready transition is recorded as an Event on the object, once.
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(tc.client.clone(), "cf");
    let org_events: Vec<_> = events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("org-1"))
        .collect();
    assert_eq!(
        org_events.len(),
        1,
        "one Event for the org's Ready transition: {org_events:?}"
    );
    assert_eq!(org_events[0].reason.as_deref(), Some("NamespaceReady"));

    // Through kubectl, each role can do what CF lets it do, and no more.
    assert!(can_i(&tc, "alice", "create", "cfapps.kubefoundry.dev", "space-1"));
    assert!(can_i(&tc, "alice", "get", "secrets", "space-1"));
    assert!(can_i(
        &tc,
        "alice",
        "get",
        "cfspaces.kubefoundry.dev/space-1",
        "org-1"
    ));
    assert!(can_i(&tc, "alice", "get", "cforgs.kubefoundry.dev/org-1", "cf"));
    assert!(!can_i(
        &tc,
        "alice",
        "get",
        "cforgs.kubefoundry.dev/other-org",
        "cf"
    ));
    assert!(!can_i(
        &tc,
        "alice",
        "create",
        "cfspaces.kubefoundry.dev",
        "org-1"
    ));
    assert!(can_i(&tc, "eve", "list", "cfroutes.kubefoundry.dev", "space-1"));
    assert!(!can_i(&tc, "eve", "get", "secrets", "space-1"));
    assert!(!can_i(&tc, "eve", "update", "cfapps.kubefoundry.dev", "space-1"));
    assert!(can_i(&tc, "bob", "create", "cfspaces.kubefoundry.dev", "org-1"));
    assert!(can_i(&tc, "bob", "delete", "cfroles.kubefoundry.dev", "space-1"));
    assert!(!can_i(&tc, "bob", "create", "cfapps.kubefoundry.dev", "space-1"));
    assert!(!can_i(
        &tc,
        "mallory",
        "list",
        "cfapps.kubefoundry.dev",
        "space-1"
    ));

    // A new space of the org receives the org manager's reach.
    tc.apply(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFSpace\nmetadata: {name: space-2, namespace: org-1}\nspec: {displayName: prod}\n",
        &[],
    );
    eventually(
        "the org manager to reach the new space",
        Duration::from_secs(20),
        || async { can_i(&tc, "bob", "delete", "cfroles.kubefoundry.dev", "space-2").then_some(()) },
    )
    .await;

    // Delete the space, then the org: nothing is left behind.
    tc.kubectl_ok(&["delete", "cfspace", "space-1", "-n", "org-1", "--wait=false"]);
    eventually(
        "space-1 and its namespace to go",
        Duration::from_secs(30),
        || async {
            let gone = namespaces.get_opt("space-1").await.ok()?.is_none()
                && Api::<CFSpace>::namespaced(tc.client.clone(), "org-1")
                    .get_opt("space-1")
                    .await
                    .ok()?
                    .is_none();
            gone.then_some(())
        },
    )
    .await;
    tc.kubectl_ok(&["delete", "cforg", "org-1", "-n", "cf", "--wait=false"]);
    eventually(
        "the org and everything beneath it to go",
        Duration::from_secs(30),
        || async {
            let orgs_left = Api::<CFOrg>::namespaced(tc.client.clone(), "cf")
                .list(&Default::default())
                .await
                .ok()?
                .items
                .len();
            let ns_left: Vec<String> = namespaces
                .list(&Default::default())
                .await
                .ok()?
                .items
                .iter()
                .map(ResourceExt::name_any)
                .filter(|n| n.starts_with("org-") || n.starts_with("space-"))
                .collect();
            let bindings_left = bindings
                .list(&kube::api::ListParams::default().labels("app.kubernetes.io/managed-by=kubefoundry"))
                .await
                .ok()?
                .items
                .len();
            (orgs_left == 0 && ns_left.is_empty() && bindings_left == 0).then_some(())
        },
    )
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_controller_makes_zero_writes_for_converged_objects() {
    let tc = setup().await;
    let ctl = tc.start_controller(controller_config("replica-a"));
    tc.apply_until_accepted(TREE, &[]).await;
    wait_ready(&tc).await;
    // Let the last status writes and cache updates land: wait for a quiet second (a fixed
    // pause was too short on a loaded machine).
    tc.quiesce().await;
    ctl.stop().await;

    // Count writes at the simulated API server, leaving out the leader Lease's own renewals.
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
    let write_requests = || {
        tc.sim
            .cluster
            .requests
            .writes_except(|resource| resource == "leases")
    };
    let requests_before = write_requests();
    let ctl = tc.start_controller(controller_config("replica-b"));
    // Long enough for every reconciler to have looked at every object again.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "a converged tree must cause no stored changes"
    );
    assert_eq!(
        write_requests(),
        requests_before,
        "nor any write request: {:?}",
        tc.sim.cluster.requests.snapshot()
    );
    ctl.stop().await;
    watcher.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_lease_holder_reconciles() {
    let tc = setup().await;
    let a = tc.start_controller(controller_config("replica-a"));
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(tc.client.clone(), "cf");
    let holder = || async {
        leases
            .get_opt("kubefoundry-controller")
            .await
            .ok()
            .flatten()?
            .spec?
            .holder_identity
    };
    eventually("replica-a to lead", Duration::from_secs(10), || async {
        (holder().await? == "replica-a").then_some(())
    })
    .await;
    let b = tc.start_controller(controller_config("replica-b"));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        holder().await.as_deref(),
        Some("replica-a"),
        "a second replica must not take a held lease"
    );

    // With replica-a stopped (and its lease released), replica-b takes over and does the work.
    a.stop().await;
    eventually("replica-b to lead", Duration::from_secs(15), || async {
        (holder().await? == "replica-b").then_some(())
    })
    .await;
    tc.apply_until_accepted(TREE, &[]).await;
    wait_ready(&tc).await;
    b.stop().await;
}
