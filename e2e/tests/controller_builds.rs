//! e2e: packages, builds and droplets under `kubefoundry controller` against the simulated
//! cluster. kubectl-applied docker packages and builds become STAGED droplets (with an image
//! pull Secret when the package has credentials); a bits build fails at once in CF's words;
//! waiting builds and droplets resume when what they wait for appears; kubectl apply, client- or
//! server-side, keeps the app's adoption of its objects; deleting the app collects them all; and
//! re-applying converged YAML causes zero writes.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt};
use kubefoundry::{
    controller::Config,
    crd::{BuildState, CFApp, CFBuild, CFDroplet, CFPackage, DropletState, PackageState},
};
use kubefoundry_e2e::{RunningController, TestCluster, eventually, fast_config};
use kubefoundry_sim::Options;
use serde_json::json;

const NS: &str = "space-1";

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
apiVersion: v1
kind: Secret
metadata: {name: registry-creds, namespace: space-1}
type: Opaque
data: {username: YWxpY2U=, password: czNjcmV0}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFApp
metadata: {name: app-1, namespace: space-1}
spec: {displayName: web, lifecycle: {type: docker}}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFPackage
metadata: {name: pkg-public, namespace: space-1}
spec: {appGuid: app-1, type: docker, image: "nginx:1.27"}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFPackage
metadata: {name: pkg-private, namespace: space-1}
spec:
  appGuid: app-1
  type: docker
  image: registry.example.com:5000/team/app:v2
  credentials: {name: registry-creds}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFPackage
metadata: {name: pkg-bits, namespace: space-1}
spec: {appGuid: app-1, type: bits}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFBuild
metadata: {name: build-public, namespace: space-1}
spec: {appGuid: app-1, packageGuid: pkg-public}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFBuild
metadata: {name: build-private, namespace: space-1}
spec: {appGuid: app-1, packageGuid: pkg-private}
---
apiVersion: kubefoundry.dev/v1alpha1
kind: CFBuild
metadata: {name: build-bits, namespace: space-1}
spec: {appGuid: app-1, packageGuid: pkg-bits}
"#;

const BITS_ERROR: &str =
    "StagingError - buildpack staging is not supported yet: push a docker image (cf push --docker-image)";

fn start_controller(tc: &TestCluster) -> RunningController {
    tc.start_controller(Config {
        resync: Duration::from_secs(3600),
        ..Config::default()
    })
}

async fn setup() -> TestCluster {
    TestCluster::with_cf(Options {
        config: fast_config(),
        ..Options::default()
    })
    .await
}

fn api<K>(tc: &TestCluster) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    Api::namespaced(tc.client.clone(), NS)
}

/// The `Ready` condition's (status, reason, message).
fn ready_of(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> Option<(String, String, String)> {
    conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// Polls `name` until `check` holds; on timeout, fails showing the object as last seen.
async fn when<K>(tc: &TestCluster, name: &str, what: &str, check: impl Fn(&K) -> bool) -> K
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned,
{
    let objects: Api<K> = api(tc);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    while Instant::now() < deadline {
        last = objects.get_opt(name).await.ok().flatten();
        if let Some(object) = last.as_ref().filter(|o| check(o)) {
            return object.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}; last seen: {last:#?}");
}

async fn droplet_when(
    tc: &TestCluster,
    name: &str,
    what: &str,
    check: impl Fn(&CFDroplet) -> bool,
) -> CFDroplet {
    when(tc, name, what, check).await
}

async fn build_when(tc: &TestCluster, name: &str, what: &str, check: impl Fn(&CFBuild) -> bool) -> CFBuild {
    when(tc, name, what, check).await
}

async fn package_when(
    tc: &TestCluster,
    name: &str,
    what: &str,
    check: impl Fn(&CFPackage) -> bool,
) -> CFPackage {
    when(tc, name, what, check).await
}

fn build_state(b: &CFBuild) -> Option<BuildState> {
    b.status.as_ref().and_then(|s| s.state)
}

fn droplet_staged(d: &CFDroplet) -> bool {
    d.status
        .as_ref()
        .is_some_and(|s| s.state == Some(DropletState::Staged) && s.common.is_ready(d.metadata.generation))
}

/// Whether `object` is owned by the CFApp `app` (by uid) and carries its label.
fn adopted_by<K: kube::Resource>(object: &K, app: &CFApp) -> bool {
    let uid = app.uid().unwrap_or_default();
    object
        .meta()
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == uid && r.kind == "CFApp")
        && object
            .meta()
            .labels
            .as_ref()
            .and_then(|l| l.get("kubefoundry.dev/app-guid"))
            .map(String::as_str)
            == Some("app-1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_builds_stage_droplets_and_bits_builds_fail_at_once() {
    let tc = setup().await;
    let ctl = start_controller(&tc);
    tc.apply_until_accepted(TREE, &[]).await;
    let accepted = Instant::now();

    // A bits build fails promptly, in CF's words, instead of hanging in STAGING.
    let bits = build_when(&tc, "build-bits", "the bits build to fail", |b| {
        build_state(b) == Some(BuildState::Failed)
    })
    .await;
    assert!(
        accepted.elapsed() < Duration::from_secs(5),
        "took {:?}",
        accepted.elapsed()
    );
    let status = bits.status.unwrap();
    assert_eq!(status.error.as_deref(), Some(BITS_ERROR));
    assert_eq!(
        ready_of(&status.common.conditions),
        Some((
            "False".to_owned(),
            "StagingNotSupported".to_owned(),
            BITS_ERROR.to_owned()
        ))
    );
    assert_eq!(
        status.common.condition("Succeeded").map(|c| c.status.as_str()),
        Some("False")
    );
    assert_eq!(status.droplet_guid, None);
    assert!(
        Api::<CFDroplet>::namespaced(tc.client.clone(), NS)
            .get_opt("build-bits")
            .await
            .unwrap()
            .is_none()
    );
    let bits_package = package_when(&tc, "pkg-bits", "the bits package to await its upload", |p| {
        p.status.is_some()
    })
    .await;
    assert_eq!(
        bits_package.status.unwrap().state,
        Some(PackageState::AwaitingUpload)
    );

    // A public docker image: a droplet with the image, `web` and port 8080, and no pull Secret.
    let public = droplet_when(
        &tc,
        "build-public",
        "the public droplet to be STAGED",
        droplet_staged,
    )
    .await;
    let app: CFApp = api(&tc).get("app-1").await.unwrap();
    assert_eq!(
        serde_json::to_value(&public.spec).unwrap(),
        json!({
            "appGuid": "app-1",
            "buildGuid": "build-public",
            "packageGuid": "pkg-public",
            "lifecycle": "docker",
            "image": "nginx:1.27",
        })
    );
    let labels = public.labels();
    assert_eq!(
        labels.get("kubefoundry.dev/build-guid").map(String::as_str),
        Some("build-public")
    );
    assert_eq!(
        labels.get("kubefoundry.dev/package-guid").map(String::as_str),
        Some("pkg-public")
    );
    assert!(adopted_by(&public, &app));
    let status = public.status.unwrap();
    assert_eq!(status.image.as_deref(), Some("nginx:1.27"));
    assert_eq!(status.process_types, [("web".to_owned(), String::new())].into());
    assert_eq!(status.ports, vec![8080]);
    assert_eq!(status.stack, None);
    assert_eq!(status.image_pull_secret_name, None);
    let build = build_when(&tc, "build-public", "the public build to be STAGED", |b| {
        build_state(b) == Some(BuildState::Staged)
    })
    .await;
    let status = build.status.unwrap();
    assert_eq!(status.droplet_guid.as_deref(), Some("build-public"));
    assert!(status.common.is_ready(build.metadata.generation));
    assert_eq!(
        status.common.condition("Succeeded").map(|c| c.status.as_str()),
        Some("True")
    );

    // A private image: the droplet pulls with a Secret made from the package's credentials.
    let private = droplet_when(
        &tc,
        "build-private",
        "the private droplet to be STAGED",
        droplet_staged,
    )
    .await;
    assert_eq!(
        private.status.as_ref().unwrap().image_pull_secret_name.as_deref(),
        Some("build-private-image-pull")
    );
    assert_eq!(
        private.spec.credentials.as_ref().map(|c| c.name.as_str()),
        Some("registry-creds")
    );
    let secret: Secret = api(&tc).get("build-private-image-pull").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/dockerconfigjson"));
    assert_eq!(secret.owner_references()[0].name, "build-private");
    let config: serde_json::Value =
        serde_json::from_slice(&secret.data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
    assert_eq!(
        config,
        json!({"auths": {"registry.example.com:5000": {
            "username": "alice",
            "password": "s3cret",
            "auth": "YWxpY2U6czNjcmV0",
        }}})
    );

    // Packages: docker ones READY at once, every one adopted by its app.
    for name in ["pkg-public", "pkg-private"] {
        let package = package_when(&tc, name, "a docker package to be READY", |p| {
            p.status
                .as_ref()
                .is_some_and(|s| s.common.is_ready(p.metadata.generation))
        })
        .await;
        assert_eq!(package.status.as_ref().unwrap().state, Some(PackageState::Ready));
    }
    for name in ["pkg-public", "pkg-private", "pkg-bits"] {
        package_when(&tc, name, "a package to be adopted by its app", |p| {
            adopted_by(p, &app)
        })
        .await;
    }
    build_when(&tc, "build-bits", "a build to be adopted by its app", |b| {
        adopted_by(b, &app)
    })
    .await;

    // Re-applying the converged YAML changes nothing: no write at all but the leader Lease's.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let writes = Arc::new(AtomicUsize::new(0));
    let mut events = tc.sim.cluster.store.subscribe();
    let counter = writes.clone();
    let watcher = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if event.key.resource != "coordination.k8s.io/leases" {
                eprintln!("write after re-apply: {:?} {:?}", event.kind, event.key);
                counter.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    let out = tc.apply(TREE, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        writes.load(Ordering::SeqCst),
        0,
        "re-applying converged YAML must cause no writes"
    );
    watcher.abort();
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn waiting_builds_and_droplets_resume_when_what_they_wait_for_appears() {
    let tc = setup().await;
    let ctl = start_controller(&tc);
    let head: String = TREE
        .split("\n---\napiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage")
        .next()
        .unwrap()
        .to_owned();
    let head = head.replace("name: registry-creds", "name: unrelated");
    let build = "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFBuild\nmetadata: {name: build-later, namespace: space-1}\nspec: {appGuid: app-1, packageGuid: pkg-later}\n";
    tc.apply_until_accepted(&format!("{head}\n---\n{build}"), &[])
        .await;

    // No package yet: the build waits, STAGING, saying for what.
    let waiting = build_when(&tc, "build-later", "the build to wait for its package", |b| {
        b.status
            .as_ref()
            .is_some_and(|s| ready_of(&s.common.conditions).is_some())
    })
    .await;
    let status = waiting.status.unwrap();
    assert_eq!(status.state, Some(BuildState::Staging));
    assert_eq!(
        ready_of(&status.common.conditions),
        Some((
            "False".to_owned(),
            "PackageNotFound".to_owned(),
            "CFPackage \"pkg-later\" does not exist in this space; staging starts when it does".to_owned()
        ))
    );

    // The package arrives, naming credentials that do not exist yet: the build makes its
    // droplet, which waits for the credentials, and the build stays STAGING until the droplet is
    // STAGED (the cf CLI assigns the droplet as soon as the build says STAGED).
    let package = "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage\nmetadata: {name: pkg-later, namespace: space-1}\nspec: {appGuid: app-1, type: docker, image: ghcr.io/org/app, credentials: {name: later-creds}}\n";
    tc.apply(package, &[]);
    build_when(&tc, "build-later", "the build to wait for its droplet", |b| {
        b.status
            .as_ref()
            .and_then(|s| ready_of(&s.common.conditions))
            .is_some_and(|r| r.1 == "DropletStaging")
    })
    .await;
    let droplet = droplet_when(
        &tc,
        "build-later",
        "the droplet to wait for its credentials",
        |d| {
            d.status
                .as_ref()
                .and_then(|s| ready_of(&s.common.conditions))
                .is_some_and(|r| r.1 == "CredentialsNotFound")
        },
    )
    .await;
    assert_eq!(
        droplet.status.unwrap().state,
        None,
        "without its pull Secret the droplet is not runnable yet"
    );

    let secret = "apiVersion: v1\nkind: Secret\nmetadata: {name: later-creds, namespace: space-1}\ndata: {username: Ym9i, password: aHVudGVyMg==}\n";
    tc.apply(secret, &[]);
    let droplet = droplet_when(&tc, "build-later", "the droplet to be STAGED", droplet_staged).await;
    build_when(&tc, "build-later", "the build to stage", |b| {
        build_state(b) == Some(BuildState::Staged)
    })
    .await;
    assert_eq!(
        droplet.status.unwrap().image_pull_secret_name.as_deref(),
        Some("build-later-image-pull")
    );
    let pull: Secret = api(&tc).get("build-later-image-pull").await.unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&pull.data.as_ref().unwrap()[".dockerconfigjson"].0).unwrap();
    assert_eq!(
        config,
        json!({"auths": {"ghcr.io": {"username": "bob", "password": "hunter2", "auth": "Ym9iOmh1bnRlcjI="}}})
    );

    // Rotating the credentials rewrites the pull Secret.
    tc.apply(&secret.replace("aHVudGVyMg==", "aHVudGVyMw=="), &[]);
    eventually(
        "the pull Secret to follow the credentials",
        Duration::from_secs(20),
        || async {
            let pull: Secret = api(&tc).get("build-later-image-pull").await.ok()?;
            let config: serde_json::Value =
                serde_json::from_slice(&pull.data?[".dockerconfigjson"].0).ok()?;
            (config["auths"]["ghcr.io"]["password"] == "hunter3").then_some(())
        },
    )
    .await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kubectl_apply_keeps_adoption_and_deleting_the_app_collects_everything() {
    let tc = setup().await;
    let ctl = start_controller(&tc);
    tc.apply_until_accepted(TREE, &[]).await;
    let app: CFApp = eventually("the app", Duration::from_secs(20), || async {
        api::<CFApp>(&tc).get("app-1").await.ok()
    })
    .await;
    package_when(&tc, "pkg-public", "the package to be adopted", |p| {
        adopted_by(p, &app)
    })
    .await;

    // Client-side apply of a changed package (a label of the author's own): the three-way
    // patch keeps the app's owner reference and label.
    let public = "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage\nmetadata: {name: pkg-public, namespace: space-1, labels: {team: blue}}\nspec: {appGuid: app-1, type: docker, image: \"nginx:1.27\"}\n";
    tc.kubectl_stdin(&["apply", "-f", "-"], Some(public));
    let changed: CFPackage = api(&tc).get("pkg-public").await.unwrap();
    assert_eq!(changed.labels().get("team").map(String::as_str), Some("blue"));
    assert!(
        adopted_by(&changed, &app),
        "client-side apply removed the adoption: {:?}",
        changed.metadata
    );

    // Server-side apply of the same object, by kubectl's own field manager: no conflict, and
    // the adoption stays.
    let out = tc.apply(public, &["--server-side"]);
    assert!(
        out.status.success(),
        "server-side apply conflicted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: CFPackage = api(&tc).get("pkg-public").await.unwrap();
    assert!(
        adopted_by(&after, &app),
        "server-side apply removed the adoption: {:?}",
        after.metadata
    );

    // A package created server-side is adopted, and re-applying it server-side keeps that.
    let ssa = "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFPackage\nmetadata: {name: pkg-ssa, namespace: space-1}\nspec: {appGuid: app-1, type: docker, image: busybox}\n";
    let out = tc.apply(ssa, &["--server-side"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    package_when(&tc, "pkg-ssa", "the server-side package to be adopted", |p| {
        adopted_by(p, &app)
    })
    .await;
    let out = tc.apply(ssa, &["--server-side"]);
    assert!(
        out.status.success(),
        "re-apply conflicted: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after: CFPackage = api(&tc).get("pkg-ssa").await.unwrap();
    assert!(
        adopted_by(&after, &app),
        "server-side re-apply removed the adoption: {:?}",
        after.metadata
    );

    // Deleting the app collects its packages, builds, droplets and their pull Secrets.
    droplet_when(
        &tc,
        "build-private",
        "the private droplet to be STAGED",
        droplet_staged,
    )
    .await;
    build_when(&tc, "build-bits", "the bits build to be adopted", |b| {
        adopted_by(b, &app)
    })
    .await;
    tc.kubectl_ok(&["delete", "cfapp", "app-1", "-n", NS, "--wait=false"]);
    eventually(
        "everything of the app to be collected",
        Duration::from_secs(30),
        || async {
            let packages = api::<CFPackage>(&tc)
                .list(&Default::default())
                .await
                .ok()?
                .items
                .len();
            let builds = api::<CFBuild>(&tc)
                .list(&Default::default())
                .await
                .ok()?
                .items
                .len();
            let droplets = api::<CFDroplet>(&tc)
                .list(&Default::default())
                .await
                .ok()?
                .items
                .len();
            let pull = api::<Secret>(&tc)
                .get_opt("build-private-image-pull")
                .await
                .ok()?;
            (packages == 0 && builds == 0 && droplets == 0 && pull.is_none()).then_some(())
        },
    )
    .await;
    ctl.stop().await;
}
