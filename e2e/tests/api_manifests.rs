//! e2e: manifests through the façade over real HTTP, as `cf push` drives them (cf-cli-wire
//! §4.1): apply_manifest creates and updates apps, processes, routes and bindings; re-applying
//! changes nothing; invalid manifests are refused whole with CC's 422s; manifest_diff and the
//! app manifest read back what was applied.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use kube::{Api, ResourceExt, api::ListParams};
use kubefoundry::crd::{CFApp, CFProcess, CFRoute, CFServiceBinding, HealthCheckType, LifecycleType};
use kubefoundry_e2e::cf::{CfStack, Resp};
use serde_json::Value;

async fn apply(s: &CfStack, token: &str, space: &str, yaml: &str) -> Resp {
    s.raw(
        "POST",
        &format!("/v3/spaces/{space}/actions/apply_manifest"),
        Some(token),
        "application/x-yaml",
        yaml.as_bytes().to_vec(),
    )
    .await
}

/// Applies and waits for the job; returns the finished job.
async fn apply_ok(s: &CfStack, token: &str, space: &str, yaml: &str) -> Value {
    let r = apply(s, token, space, yaml).await;
    assert_eq!(r.status, 202, "apply_manifest: {:?}", r.body);
    let location = r.location().expect("a job Location");
    assert!(location.starts_with("http"), "absolute Location: {location}");
    assert!(
        location.contains(&format!("/v3/jobs/space.apply_manifest~{space}~")),
        "{location}"
    );
    s.wait_job(&location, token).await
}

async fn apps(s: &CfStack, space: &str) -> Vec<CFApp> {
    Api::<CFApp>::namespaced(s.tc.client.clone(), space)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

async fn processes(s: &CfStack, space: &str) -> Vec<CFProcess> {
    Api::<CFProcess>::namespaced(s.tc.client.clone(), space)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

async fn routes(s: &CfStack, space: &str) -> Vec<CFRoute> {
    Api::<CFRoute>::namespaced(s.tc.client.clone(), space)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
}

/// `cf push app --docker-image I`: /whoami, apply_manifest with the YAML the CLI generates,
/// the job, then the apps query the CLI makes next (which must find the app as docker).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_push_docker_image_prefix() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (_, space) = s.org_and_space("o", "s").await;
    let who = s.call("GET", "/whoami", Some(&admin), None).await;
    assert_eq!(who.status, 200);
    let job = apply_ok(
        &s,
        &admin,
        &space,
        "applications:\n- name: app\n  default-route: true\n  docker:\n    image: nginx:1.27\n",
    )
    .await;
    assert_eq!(job["state"], "COMPLETE", "{job}");
    assert_eq!(job["operation"], "space.apply_manifest");

    let r = s
        .call(
            "GET",
            &format!("/v3/apps?names=app&space_guids={space}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 1, "{:?}", r.body);
    assert_eq!(r.body["resources"][0]["lifecycle"]["type"], "docker");
    let guid = r.body["resources"][0]["guid"].as_str().unwrap().to_owned();

    let all = apps(&s, &space).await;
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].spec.lifecycle.type_, LifecycleType::Docker);
    assert_eq!(all[0].spec.display_name, "app");
    let web: Vec<CFProcess> = processes(&s, &space)
        .await
        .into_iter()
        .filter(|p| p.spec.app_guid == guid)
        .collect();
    assert_eq!(web.len(), 1);
    assert_eq!(web[0].spec.process_type, "web");

    // The default route <name>.<default domain>, mapped to the app's web process.
    let rs = routes(&s, &space).await;
    assert_eq!(rs.len(), 1, "{rs:?}");
    assert_eq!(rs[0].spec.host, "app");
    assert_eq!(rs[0].spec.domain_guid, "default-domain");
    assert_eq!(rs[0].spec.destinations.len(), 1);
    assert_eq!(rs[0].spec.destinations[0].app_guid, guid);
    assert_eq!(rs[0].spec.destinations[0].process_type, "web");

    // A second push of the same app changes nothing (the route exists and stays mapped once).
    let job = apply_ok(
        &s,
        &admin,
        &space,
        "applications:\n- name: app\n  default-route: true\n  docker:\n    image: nginx:1.27\n",
    )
    .await;
    assert_eq!(job["state"], "COMPLETE", "{job}");
    let rs = routes(&s, &space).await;
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].spec.destinations.len(), 1);
    assert_eq!(apps(&s, &space).await.len(), 1);

    // The app's manifest as YAML.
    let m = s
        .call("GET", &format!("/v3/apps/{guid}/manifest"), Some(&admin), None)
        .await;
    assert_eq!(m.status, 200);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .contains("application/x-yaml"),
        "{:?}",
        m.headers
    );
    let yaml = m.body.as_str().unwrap();
    assert!(yaml.starts_with("---\napplications:\n- "), "{yaml}");
    for line in [
        "name: app\n",
        "route: app.apps.example.com\n",
        "protocol: http1\n",
        "type: web\n",
        "memory: 1024M\n",
        "disk_quota: 1024M\n",
        "health-check-type: port\n",
    ] {
        assert!(yaml.contains(line), "{line:?} in:\n{yaml}");
    }
}

const SHOP: &str = r#"
applications:
- name: shop
  path: /home/me/shop
  instances: 2
  memory: 256M
  disk_quota: 512M
  command: ./web --port $PORT
  health-check-type: http
  health-check-http-endpoint: /healthz
  timeout: 60
  env:
    GREETING: hello
    COUNT: 3
  metadata:
    labels: {tier: frontend}
  routes:
  - route: shop.apps.example.com
  - route: shop.apps.example.com/api
    protocol: http2
  processes:
  - type: worker
    instances: 3
    memory: 1G
    command: ./worker
    health-check-type: process
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifests_with_processes_routes_and_env_apply_idempotently() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (_, space) = s.org_and_space("o", "s").await;
    let job = apply_ok(&s, &admin, &space, SHOP).await;
    assert_eq!(job["state"], "COMPLETE", "{job}");

    let all = apps(&s, &space).await;
    assert_eq!(all.len(), 1);
    let app = &all[0];
    let guid = app.name_any();
    assert_eq!(app.spec.env["GREETING"], "hello");
    assert_eq!(app.spec.env["COUNT"], "3");
    assert_eq!(app.labels()["tier"], "frontend");
    assert_eq!(app.spec.lifecycle.type_, LifecycleType::Buildpack);

    let ps = processes(&s, &space).await;
    let web = ps.iter().find(|p| p.spec.process_type == "web").unwrap();
    assert_eq!(web.spec.instances, 2);
    assert_eq!(web.spec.memory_in_mb, Some(256));
    assert_eq!(web.spec.disk_in_mb, Some(512));
    assert_eq!(web.spec.command.as_deref(), Some("./web --port $PORT"));
    assert_eq!(web.spec.health_check.type_, HealthCheckType::Http);
    assert_eq!(web.spec.health_check.endpoint.as_deref(), Some("/healthz"));
    assert_eq!(web.spec.health_check.timeout, Some(60));
    let worker = ps.iter().find(|p| p.spec.process_type == "worker").unwrap();
    assert_eq!(worker.spec.app_guid, guid);
    assert_eq!(worker.spec.instances, 3);
    assert_eq!(worker.spec.memory_in_mb, Some(1024));
    assert_eq!(worker.spec.command.as_deref(), Some("./worker"));
    assert_eq!(worker.spec.health_check.type_, HealthCheckType::Process);

    let mut rs = routes(&s, &space).await;
    rs.sort_by(|a, b| a.spec.path.cmp(&b.spec.path));
    assert_eq!(rs.len(), 2, "{rs:?}");
    assert_eq!((rs[0].spec.host.as_str(), rs[0].spec.path.as_str()), ("shop", ""));
    assert_eq!(rs[1].spec.path, "/api");
    assert!(
        rs.iter()
            .all(|r| r.spec.destinations.len() == 1 && r.spec.destinations[0].app_guid == guid)
    );
    assert_eq!(
        rs[1].spec.destinations[0].protocol,
        Some(kubefoundry::crd::RouteProtocol::Http2)
    );

    // The diff of the applied manifest against the space is empty.
    let d = s
        .raw(
            "POST",
            &format!("/v3/spaces/{space}/manifest_diff"),
            Some(&admin),
            "application/x-yaml",
            SHOP.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    assert_eq!(d.body["diff"], serde_json::json!([]), "{:?}", d.body);

    // Re-applying writes nothing: every object keeps its generation and labels (the controller
    // keeps writing status, so resourceVersions move on their own).
    let version = |objs: Vec<(String, Option<String>)>| {
        let mut v = objs;
        v.sort();
        v
    };
    let before = version(
        apps(&s, &space)
            .await
            .iter()
            .map(|a| {
                (
                    a.name_any(),
                    Some(format!("{:?} {:?}", a.metadata.generation, a.metadata.labels)),
                )
            })
            .chain(processes(&s, &space).await.iter().map(|p| {
                (
                    p.name_any(),
                    Some(format!("{:?} {:?}", p.metadata.generation, p.metadata.labels)),
                )
            }))
            .chain(routes(&s, &space).await.iter().map(|r| {
                (
                    r.name_any(),
                    Some(format!("{:?} {:?}", r.metadata.generation, r.metadata.labels)),
                )
            }))
            .collect(),
    );
    let job = apply_ok(&s, &admin, &space, SHOP).await;
    assert_eq!(job["state"], "COMPLETE", "{job}");
    let after = version(
        apps(&s, &space)
            .await
            .iter()
            .map(|a| {
                (
                    a.name_any(),
                    Some(format!("{:?} {:?}", a.metadata.generation, a.metadata.labels)),
                )
            })
            .chain(processes(&s, &space).await.iter().map(|p| {
                (
                    p.name_any(),
                    Some(format!("{:?} {:?}", p.metadata.generation, p.metadata.labels)),
                )
            }))
            .chain(routes(&s, &space).await.iter().map(|r| {
                (
                    r.name_any(),
                    Some(format!("{:?} {:?}", r.metadata.generation, r.metadata.labels)),
                )
            }))
            .collect(),
    );
    assert_eq!(before, after);

    // A change shows in the diff as CC words it, then applies.
    let scaled = SHOP.replace("instances: 2", "instances: 4");
    let d = s
        .raw(
            "POST",
            &format!("/v3/spaces/{space}/manifest_diff"),
            Some(&admin),
            "application/x-yaml",
            scaled.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(
        d.body["diff"],
        serde_json::json!([{"op": "replace", "path": "/applications/0/instances", "was": 2, "value": 4}])
    );
    assert_eq!(apply_ok(&s, &admin, &space, &scaled).await["state"], "COMPLETE");
    let ps = processes(&s, &space).await;
    assert_eq!(
        ps.iter()
            .find(|p| p.spec.process_type == "web")
            .unwrap()
            .spec
            .instances,
        4
    );

    // no-route unmaps the app from every route (the routes stay, as in CF).
    let job = apply_ok(
        &s,
        &admin,
        &space,
        "applications:\n- name: shop\n  no-route: true\n",
    )
    .await;
    assert_eq!(job["state"], "COMPLETE", "{job}");
    let rs = routes(&s, &space).await;
    assert_eq!(rs.len(), 2);
    assert!(rs.iter().all(|r| r.spec.destinations.is_empty()), "{rs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_manifests_and_invisible_spaces_change_nothing() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (_, space) = s.org_and_space("o", "s").await;

    // Invalid values: 422 with every CC message, nothing created.
    let r = apply(
        &s,
        &admin,
        &space,
        "applications:\n- name: good\n- name: bad\n  memory: 1024\n  instances: -2\n",
    )
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let details: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .collect();
    assert_eq!(
        details,
        [
            "For application 'bad': Process \"web\": Instances must be greater than or equal to 0",
            "For application 'bad': Process \"web\": Memory must use a supported unit: B, K, KB, M, MB, G, GB, T, or TB",
        ]
    );
    assert!(
        r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["title"] == "CF-UnprocessableEntity")
    );
    assert!(r.location().is_none());

    // A service instance that does not exist: refused before anything is written.
    let r = apply(
        &s,
        &admin,
        &space,
        "applications:\n- name: app\n  services: [db]\n",
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "For application 'app': Service instance 'db' not found"
    );
    // A route on no known domain.
    let r = apply(
        &s,
        &admin,
        &space,
        "applications:\n- name: app\n  routes:\n  - route: app.nowhere.test\n",
    )
    .await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "For application 'app': No domains exist for route app.nowhere.test"
    );
    // No applications, bad YAML, wrong content type.
    let r = apply(&s, &admin, &space, "applications: []\n").await;
    assert_eq!(r.status, 422);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "Cannot parse manifest with no 'applications' field."
    );
    let r = apply(&s, &admin, &space, "applications: [\n").await;
    assert_eq!(r.status, 400);
    let r = s
        .call(
            "POST",
            &format!("/v3/spaces/{space}/actions/apply_manifest"),
            Some(&admin),
            Some(serde_json::json!({"applications": [{"name": "x"}]})),
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(apps(&s, &space).await.is_empty());
    assert!(routes(&s, &space).await.is_empty());

    // A space bob cannot see: 404, for apply and diff alike; nothing created.
    let bob = CfStack::token("bob");
    let r = apply(&s, &bob, &space, "applications:\n- name: app\n").await;
    assert_eq!(r.status, 404, "{:?}", r.body);
    assert_eq!(r.body["errors"][0]["detail"], "Space not found");
    let r = s
        .raw(
            "POST",
            &format!("/v3/spaces/{space}/manifest_diff"),
            Some(&bob),
            "application/x-yaml",
            b"applications:\n- name: app\n".to_vec(),
        )
        .await;
    assert_eq!(r.status, 404);
    assert!(apps(&s, &space).await.is_empty());
    // Unknown space.
    let r = apply(&s, &admin, "no-such-space", "applications:\n- name: app\n").await;
    assert_eq!(r.status, 404);
}

/// Services named in a manifest are bound (once), and the app manifest lists them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn manifest_services_are_bound_once() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (_, space) = s.org_and_space("o", "s").await;
    s.tc.apply(
        &format!(
            "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFServiceInstance\nmetadata: {{name: si-1, namespace: {space}}}\nspec: {{displayName: db, type: user-provided}}\n"
        ),
        &[],
    );
    kubefoundry_e2e::eventually("instance cached", std::time::Duration::from_secs(10), || async {
        s.state
            .caches
            .service_instances
            .find(|i| i.name_any() == "si-1")
            .map(|_| ())
    })
    .await;
    // Parameters cannot reach a user-provided instance: refused before anything is written.
    let r = apply(
        &s,
        &admin,
        &space,
        "applications:\n- name: app\n  services:\n  - name: db\n    parameters: {size: small}\n",
    )
    .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert_eq!(
        r.body["errors"][0]["detail"],
        "For application 'app': For service 'db': Binding parameters are not supported for user-provided service instances"
    );
    assert!(apps(&s, &space).await.is_empty());
    let yaml = "applications:\n- name: app\n  no-route: true\n  services:\n  - db\n";
    assert_eq!(apply_ok(&s, &admin, &space, yaml).await["state"], "COMPLETE");
    assert_eq!(apply_ok(&s, &admin, &space, yaml).await["state"], "COMPLETE");
    let bindings = Api::<CFServiceBinding>::namespaced(s.tc.client.clone(), &space)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let app = apps(&s, &space).await.remove(0);
    assert_eq!(
        bindings[0].spec.app_guid.as_deref(),
        Some(app.name_any().as_str())
    );
    assert_eq!(bindings[0].spec.service_instance_guid, "si-1");
    let m = s
        .call(
            "GET",
            &format!("/v3/apps/{}/manifest", app.name_any()),
            Some(&admin),
            None,
        )
        .await;
    let yaml = m.body.as_str().unwrap();
    assert!(yaml.contains("services:\n  - db\n"), "{yaml}");
}
