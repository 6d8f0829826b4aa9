//! e2e: names the façade would refuse, applied with kubectl instead. Two apps in one space (or
//! two spaces in one org) with one display name, differing only in case: the controller reports
//! `UniqueName=False` on the younger, naming the older, and `True` on the older, without
//! changing `Ready`; the report clears when the older is deleted or renamed away, and a
//! converged duplicate causes no writes.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{
    Api,
    api::{Patch, PatchParams},
};
use kubefoundry::crd::{CFApp, CFSpace, CommonStatus};
use kubefoundry_e2e::{TestCluster, controller_config, eventually, fast_config};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

// `-a` sorts first, so it is the older holder even when both land in the same second.
const TREE: &str = r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFOrg
metadata: {name: org-1, namespace: cf}
spec: {displayName: My Org}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFSpace
metadata: {name: space-a, namespace: org-1}
spec: {displayName: dev}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFSpace
metadata: {name: space-b, namespace: org-1}
spec: {displayName: DEV}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFApp
metadata: {name: app-a, namespace: space-a}
spec: {displayName: web, desiredState: STOPPED, lifecycle: {type: docker}}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFApp
metadata: {name: app-b, namespace: space-a}
spec: {displayName: Web, desiredState: STOPPED, lifecycle: {type: docker}}
"#;

/// `(status, reason, message)` of a condition type, once reported for the current generation.
fn condition(common: Option<&CommonStatus>, type_: &str, generation: Option<i64>) -> Option<Condition> {
    common?
        .condition(type_)
        .filter(|c| c.observed_generation == generation)
        .cloned()
}

/// The oldest holder keeps its name; the younger reports the clash, naming the older.
fn assert_clash(older: &Condition, younger: &Condition, message: &str) {
    assert_eq!(
        (older.status.as_str(), older.reason.as_str()),
        ("True", "NameUnique")
    );
    assert_eq!(
        (
            younger.status.as_str(),
            younger.reason.as_str(),
            younger.message.as_str()
        ),
        ("False", "DuplicateName", message)
    );
}

async fn unique_name_of_app(apps: &Api<CFApp>, name: &str) -> Option<Condition> {
    let app = apps.get(name).await.ok()?;
    condition(
        app.status.as_ref().map(|s| &s.common),
        "UniqueName",
        app.metadata.generation,
    )
}

async fn unique_name_of_space(spaces: &Api<CFSpace>, name: &str) -> Option<Condition> {
    let space = spaces.get(name).await.ok()?;
    condition(
        space.status.as_ref().map(|s| &s.common),
        "UniqueName",
        space.metadata.generation,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_younger_of_two_same_named_objects_reports_it_until_the_older_goes() {
    let tc = TestCluster::with_cf(kubefoundry_sim::Options {
        config: fast_config(),
        ..kubefoundry_sim::Options::default()
    })
    .await;
    let controller = tc.start_controller(controller_config("names"));
    tc.apply_until_accepted(TREE, &[]).await;
    let apps: Api<CFApp> = Api::namespaced(tc.client.clone(), "space-a");
    let spaces: Api<CFSpace> = Api::namespaced(tc.client.clone(), "org-1");

    // Spaces: the younger names the older; both still get their namespaces (Ready).
    let (older, younger) = eventually("both spaces to report UniqueName", WAIT, || async {
        Some((
            unique_name_of_space(&spaces, "space-a").await?,
            unique_name_of_space(&spaces, "space-b").await?,
        ))
    })
    .await;
    assert_clash(
        &older,
        &younger,
        r#"space name "DEV" is also used by CFSpace org-1/space-a (created earlier)"#,
    );
    for name in ["space-a", "space-b"] {
        let space = spaces.get(name).await.unwrap();
        let ready = condition(
            space.status.as_ref().map(|s| &s.common),
            "Ready",
            space.metadata.generation,
        );
        assert_eq!(
            ready.map(|c| c.status),
            Some("True".to_owned()),
            "{name} is Ready"
        );
    }
    tc.kubectl_ok(&["get", "namespace", "space-b"]);

    // Apps: the same, and the report leaves Ready exactly as for the unique one.
    let (older, younger) = eventually("both apps to report UniqueName", WAIT, || async {
        Some((
            unique_name_of_app(&apps, "app-a").await?,
            unique_name_of_app(&apps, "app-b").await?,
        ))
    })
    .await;
    assert_clash(
        &older,
        &younger,
        r#"app name "Web" is also used by CFApp space-a/app-a (created earlier)"#,
    );
    let ready = |app: &CFApp| {
        let c = app.status.as_ref()?.common.condition("Ready")?;
        Some((c.status.clone(), c.reason.clone()))
    };
    let (a, b) = (apps.get("app-a").await.unwrap(), apps.get("app-b").await.unwrap());
    assert!(ready(&a).is_some());
    assert_eq!(ready(&a), ready(&b), "UniqueName does not touch Ready");

    // A converged duplicate is not a write loop: each side's status is stable.
    tc.quiesce().await;
    let writes = || {
        tc.sim
            .cluster
            .requests
            .writes_except(|resource| resource == "leases")
    };
    let before = writes();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(writes() - before, 0, "converged duplicates cause no writes");

    // A third app takes the name later, then renames itself away: its report clears.
    tc.apply_until_accepted(
        r#"
apiVersion: kubefoundry.dev/v1alpha1
kind: CFApp
metadata: {name: app-c, namespace: space-a}
spec: {displayName: WEB, desiredState: STOPPED, lifecycle: {type: docker}}
"#,
        &[],
    )
    .await;
    let c = eventually("app-c to yield to app-a", WAIT, || async {
        unique_name_of_app(&apps, "app-c")
            .await
            .filter(|c| c.status == "False")
    })
    .await;
    assert!(c.message.contains("CFApp space-a/app-a"), "{}", c.message);
    apps.patch(
        "app-c",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"displayName": "worker"}})),
    )
    .await
    .unwrap();
    eventually("renamed app-c to hold its own name", WAIT, || async {
        unique_name_of_app(&apps, "app-c")
            .await
            .filter(|c| c.status == "True")
    })
    .await;

    // Deleting the older holder hands the name to the younger, with no other change to wake it.
    tc.kubectl_ok(&["delete", "cfapp", "app-a", "-n", "space-a", "--wait=false"]);
    eventually("app-b to hold the name once app-a is gone", WAIT, || async {
        unique_name_of_app(&apps, "app-b")
            .await
            .filter(|c| c.status == "True" && c.reason == "NameUnique")
    })
    .await;
    tc.kubectl_ok(&["delete", "cfspace", "space-a", "-n", "org-1", "--wait=false"]);
    eventually("space-b to hold the name once space-a goes", WAIT, || async {
        unique_name_of_space(&spaces, "space-b")
            .await
            .filter(|c| c.status == "True" && c.reason == "NameUnique")
    })
    .await;

    controller.stop().await;
}
