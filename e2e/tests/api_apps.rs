//! e2e: apps, processes and deployments over real HTTP against a whole kubefoundry (simulated
//! cluster, controller, façade): the docker push flow request by request as the cf CLI drives
//! it (create, package, build, current droplet, restart, poll stats until RUNNING, scale, env,
//! rolling deployment, stop, delete with job polling), CF's exact errors, race-free app names
//! and visibility by role.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use kubefoundry_e2e::{
    cf::{CfStack, Resp},
    eventually,
};
use serde_json::{Value, json};

async fn create_app(s: &CfStack, token: &str, space: &str, name: &str) -> Resp {
    s.call(
        "POST",
        "/v3/apps",
        Some(token),
        Some(json!({
            "name": name,
            "relationships": {"space": {"data": {"guid": space}}},
            "lifecycle": {"type": "docker", "data": {}},
            "environment_variables": {"GREETING": "hello"},
            "metadata": {"labels": {"tier": "web"}},
        })),
    )
    .await
}

/// A docker package and build for `app` through the API, polled until the droplet is STAGED
/// (cf-cli-wire §4.3 and §4.4), returning the droplet GUID.
async fn stage_docker(s: &CfStack, token: &str, app: &str, image: &str) -> String {
    let r = s
        .call(
            "POST",
            "/v3/packages",
            Some(token),
            Some(json!({"type": "docker", "relationships": {"app": {"data": {"guid": app}}}, "data": {"image": image}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let package = r.guid();
    let r = s
        .call(
            "POST",
            "/v3/builds",
            Some(token),
            Some(json!({"package": {"guid": package}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let build = r.guid();
    eventually("the build to stage", Duration::from_secs(30), || async {
        let r = s
            .call("GET", &format!("/v3/builds/{build}"), Some(token), None)
            .await;
        assert_ne!(r.body["state"], "FAILED", "{:?}", r.body);
        (r.body["state"] == "STAGED")
            .then(|| r.body["droplet"]["guid"].as_str().map(str::to_owned))
            .flatten()
    })
    .await
}

/// Polls `/v3/processes/{process}/stats` until `running` instances are RUNNING.
async fn wait_running(s: &CfStack, token: &str, process: &str, running: usize) -> Vec<Value> {
    wait_running_unlike(s, token, process, running, &[]).await
}

/// As [`wait_running`], but the instances' addresses must differ from those of `before`: the
/// API's Pod cache may still show a deleted instance right after its DELETE.
async fn wait_running_unlike(
    s: &CfStack,
    token: &str,
    process: &str,
    running: usize,
    before: &[Value],
) -> Vec<Value> {
    let ips =
        |items: &[Value]| -> Vec<Value> { items.iter().map(|i| i["instance_internal_ip"].clone()).collect() };
    eventually(
        &format!("{running} running instances"),
        Duration::from_secs(60),
        || async {
            let r = s
                .call(
                    "GET",
                    &format!("/v3/processes/{process}/stats"),
                    Some(token),
                    None,
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let items = r.resources();
            let n = items.iter().filter(|i| i["state"] == "RUNNING").count();
            let replaced = before.is_empty() || ips(&items) != ips(before);
            (n == running && items.len() == running && replaced).then_some(items)
        },
    )
    .await
}

/// The whole docker flow through the façade, as `cf push --docker-image`, `cf scale`,
/// `cf set-env`, `cf restart --strategy rolling`, `cf stop` and `cf delete` drive it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn docker_app_lifecycle_through_the_api() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (org, space) = s.org_and_space("o", "s").await;

    let r = create_app(&s, &admin, &space, "web-app").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let app = r.guid();
    assert_eq!(r.body["state"], "STOPPED");
    assert_eq!(r.body["lifecycle"], json!({"type": "docker", "data": {}}));
    assert_eq!(r.body["relationships"]["space"]["data"]["guid"], space);
    assert_eq!(r.body["relationships"]["current_droplet"], json!({"data": null}));
    assert_eq!(r.body["metadata"]["labels"]["tier"], "web");
    assert_eq!(r.body["links"]["start"]["method"], "POST");
    assert!(
        r.body["links"]["self"]["href"]
            .as_str()
            .unwrap()
            .starts_with("http://")
    );

    // cf push's by-name lookup, and cf apps' listing with its includes.
    let r = s
        .call(
            "GET",
            &format!("/v3/apps?names=web-app&space_guids={space}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.resources().len(), 1);
    let r = s
        .call(
            "GET",
            &format!("/v3/apps?order_by=name&per_page=5000&organization_guids={org}&lifecycle_type=docker&include=space,space.organization"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.resources()[0]["guid"], app);
    assert_eq!(r.body["included"]["spaces"][0]["guid"], space);
    assert_eq!(r.body["included"]["organizations"][0]["guid"], org);
    let r = s
        .call("GET", "/v3/apps?lifecycle_type=buildpack", Some(&admin), None)
        .await;
    assert!(r.resources().is_empty());

    // No droplet yet: the summary's droplet lookup and start fail with CC's exact words.
    let r = s
        .call(
            "GET",
            &format!("/v3/apps/{app}/droplets/current"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.detail()), (404, "Droplet not found".to_owned()));
    let r = s
        .call(
            "POST",
            &format!("/v3/apps/{app}/actions/start"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (422, "Assign a droplet before starting this app.".to_owned())
    );

    // The web process exists from creation, with CC's defaults.
    let r = s
        .call("GET", &format!("/v3/apps/{app}/processes"), Some(&admin), None)
        .await;
    let procs = r.resources();
    assert_eq!(procs.len(), 1, "{procs:?}");
    assert_eq!(procs[0]["type"], "web");
    assert_eq!(procs[0]["instances"], 1);
    assert_eq!(procs[0]["memory_in_mb"], 1024);
    assert_eq!(procs[0]["health_check"]["type"], "port");
    assert_eq!(procs[0]["relationships"]["app"]["data"]["guid"], app);
    let process = procs[0]["guid"].as_str().unwrap().to_owned();
    let r = s
        .call(
            "GET",
            &format!("/v3/apps/{app}/processes/worker"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.detail()), (404, "Process not found".to_owned()));
    let r = s
        .call(
            "GET",
            &format!("/v3/processes/{process}/sidecars"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.resources().is_empty());
    let r = s
        .call(
            "GET",
            &format!("/v3/processes/{process}/stats"),
            Some(&admin),
            None,
        )
        .await;
    assert!(r.resources().is_empty(), "a stopped app shows no instances");

    // Stage, assign the droplet, restart (cf-cli-wire §4.4).
    let droplet = stage_docker(&s, &admin, &app, "nginx:1.27").await;
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/relationships/current_droplet"),
            Some(&admin),
            Some(json!({"data": {"guid": "no-such-droplet"}})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/relationships/current_droplet"),
            Some(&admin),
            Some(json!({"data": {"guid": droplet}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["guid"], droplet);
    let r = s
        .call(
            "GET",
            &format!("/v3/apps/{app}/droplets/current"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["guid"].clone()), (200, json!(droplet)));
    let r = s
        .call(
            "POST",
            &format!("/v3/apps/{app}/actions/restart"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["state"], "STARTED");
    assert_eq!(
        r.body["relationships"]["current_droplet"]["data"]["guid"],
        droplet
    );

    let stats = wait_running(&s, &admin, &process, 1).await;
    assert_eq!(stats[0]["type"], "web");
    assert_eq!(stats[0]["index"], 0);
    assert_eq!(stats[0]["mem_quota"], 1024 * 1024 * 1024_u64);
    assert_eq!(stats[0]["disk_quota"], 1024 * 1024 * 1024_u64);
    assert!(stats[0]["uptime"].as_i64().unwrap() >= 0);
    assert_eq!(stats[0]["usage"]["mem"], 0);
    assert!(stats[0]["host"].is_string());

    // The summary's deployment query is a list (empty: nothing rolls).
    let r = s
        .call(
            "GET",
            &format!(
                "/v3/deployments?app_guids={app}&order_by=-created_at&page=1&per_page=1&status_values=ACTIVE"
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(r.resources().is_empty());

    // cf scale -i 2: answers the process, then two instances run; cf apps embeds them.
    let r = s
        .call(
            "POST",
            &format!("/v3/apps/{app}/processes/web/actions/scale"),
            Some(&admin),
            Some(json!({"instances": 2})),
        )
        .await;
    assert!(r.status < 300, "{:?}", r.body);
    assert_eq!(
        (r.body["guid"].clone(), r.body["instances"].clone()),
        (json!(process), json!(2))
    );
    let r = s
        .call(
            "POST",
            &format!("/v3/processes/{process}/actions/scale"),
            Some(&admin),
            Some(json!({"instances": -1})),
        )
        .await;
    assert_eq!(r.status, 422);
    wait_running(&s, &admin, &process, 2).await;
    let r = s
        .call(
            "GET",
            &format!("/v3/processes?embed=process_instances&space_guids={space}"),
            Some(&admin),
            None,
        )
        .await;
    let embedded = r.resources()[0]["process_instances"].as_array().unwrap().clone();
    assert_eq!(embedded.len(), 2, "{embedded:?}");
    assert!(
        embedded
            .iter()
            .all(|i| i["state"] == "RUNNING" && i["since"].is_i64())
    );

    // PATCH the process: an http health check, then back to port (endpoint dropped).
    let r = s
        .call(
            "PATCH",
            &format!("/v3/processes/{process}"),
            Some(&admin),
            Some(json!({"health_check": {"type": "http", "data": {"endpoint": "/healthz", "timeout": 30}}, "command": "nginx -g 'daemon off;'"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["health_check"]["data"]["endpoint"], "/healthz");
    assert_eq!(r.body["health_check"]["data"]["timeout"], 30);
    assert_eq!(r.body["command"], "nginx -g 'daemon off;'");
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/processes/web"),
            Some(&admin),
            Some(json!({"health_check": {"type": "port"}, "command": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["health_check"]["type"], "port");
    assert!(r.body["health_check"]["data"].get("endpoint").is_none());
    assert_eq!(r.body["command"], Value::Null);

    // cf set-env / cf env / cf unset-env.
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/environment_variables"),
            Some(&admin),
            Some(json!({"var": {"FOO": "bar"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["var"], json!({"FOO": "bar", "GREETING": "hello"}));
    let r = s
        .call("GET", &format!("/v3/apps/{app}/env"), Some(&admin), None)
        .await;
    assert_eq!(r.body["environment_variables"]["FOO"], "bar");
    assert_eq!(
        r.body["application_env_json"]["VCAP_APPLICATION"]["application_name"],
        "web-app"
    );
    assert_eq!(
        r.body["application_env_json"]["VCAP_APPLICATION"]["space_name"],
        "s"
    );
    assert!(r.body["system_env_json"]["VCAP_SERVICES"].is_object());
    assert!(r.body["staging_env_json"].is_object() && r.body["running_env_json"].is_object());
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/environment_variables"),
            Some(&admin),
            Some(json!({"var": {"FOO": null}})),
        )
        .await;
    assert_eq!(r.body["var"], json!({"GREETING": "hello"}));
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/environment_variables"),
            Some(&admin),
            Some(json!({"var": {"VCAP_X": "no"}})),
        )
        .await;
    assert_eq!(r.status, 422);

    // Features.
    let r = s
        .call("GET", &format!("/v3/apps/{app}/features"), Some(&admin), None)
        .await;
    assert_eq!(r.resources().len(), 2);
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{app}/features/ssh"),
            Some(&admin),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"name": "ssh", "description": "Enable SSHing into the app.", "enabled": true})
    );
    let r = s
        .call(
            "GET",
            &format!("/v3/apps/{app}/features/bogus"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("GET", &format!("/v3/apps/{app}/ssh_enabled"), Some(&admin), None)
        .await;
    assert_eq!(r.body["enabled"], false);

    // cf restart --strategy rolling: a deployment, ACTIVE until the web pods have rolled.
    let r = s
        .call(
            "POST",
            "/v3/deployments",
            Some(&admin),
            Some(json!({"relationships": {"app": {"data": {"guid": app}}}, "strategy": "rolling"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let deployment = r.guid();
    assert_eq!(r.body["droplet"]["guid"], droplet);
    assert_eq!(r.body["relationships"]["app"]["data"]["guid"], app);
    let done = eventually("the deployment to finish", Duration::from_secs(60), || async {
        let r = s
            .call(
                "GET",
                &format!("/v3/deployments/{deployment}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        (r.body["status"]["value"] == "FINALIZED").then_some(r.body)
    })
    .await;
    assert_eq!(done["status"]["reason"], "DEPLOYED");
    let r = s
        .call(
            "GET",
            &format!("/v3/deployments?app_guids={app}&status_values=FINALIZED"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.resources().len(), 1);
    let r = s
        .call(
            "POST",
            &format!("/v3/deployments/{deployment}/actions/cancel"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 422, "a finished deployment cannot be cancelled");
    let before = wait_running(&s, &admin, &process, 2).await;

    // cf restart-app-instance: the instance's Pod goes, its Deployment replaces it.
    let r = s
        .call(
            "DELETE",
            &format!("/v3/apps/{app}/processes/web/instances/0"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = s
        .call(
            "DELETE",
            &format!("/v3/processes/{process}/instances/7"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.detail()), (404, "Instance not found".to_owned()));
    // A new Pod replaces the deleted one (or this times out).
    wait_running_unlike(&s, &admin, &process, 2, &before).await;

    // cf stop: no instances; the deleted instance of a running app comes back.
    let r = s
        .call(
            "POST",
            &format!("/v3/apps/{app}/actions/stop"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["state"].clone()), (200, json!("STOPPED")));
    let r = s
        .call(
            "GET",
            &format!("/v3/processes/{process}/stats"),
            Some(&admin),
            None,
        )
        .await;
    assert!(r.resources().is_empty());

    // cf delete: a job, then the app is gone and its name is free again.
    let r = s
        .call("DELETE", &format!("/v3/apps/{app}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 202);
    let job = s.wait_job(&r.location().unwrap(), &admin).await;
    assert_eq!(job["state"], "COMPLETE");
    let r = s
        .call("GET", &format!("/v3/apps/{app}"), Some(&admin), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "App not found".to_owned()));
    let r = create_app(&s, &admin, &space, "web-app").await;
    assert_eq!(r.status, 201, "the name is free after delete: {:?}", r.body);
}

/// App names are unique per space under concurrency; renames move the claim; users without a
/// role see nothing; a space developer works as the admin does, a visible space is required.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn app_names_visibility_and_errors() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let (org, space) = s.org_and_space("o", "s").await;

    // N concurrent creates of one name: exactly one 201, the rest CC's uniqueness error.
    let results = futures::future::join_all((0..8).map(|_| create_app(&s, &admin, &space, "race"))).await;
    let created = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(created, 1, "{results:?}");
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!(
            (r.status, r.detail()),
            (422, "App with the name 'race' already exists.".to_owned())
        );
    }
    let r = create_app(&s, &admin, &space, "RACE").await;
    assert_eq!(r.status, 422, "names compare case-insensitively");
    let race = results.iter().find(|r| r.status == 201).unwrap().guid();

    // Rename: the new name is claimed, the old one freed.
    let other = create_app(&s, &admin, &space, "other").await.guid();
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{other}"),
            Some(&admin),
            Some(json!({"name": "race"})),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (422, "App with the name 'race' already exists.".to_owned())
    );
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{race}"),
            Some(&admin),
            Some(json!({"name": "renamed", "metadata": {"annotations": {"note": "x"}}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (
            r.body["name"].clone(),
            r.body["metadata"]["annotations"]["note"].clone()
        ),
        (json!("renamed"), json!("x"))
    );
    assert_eq!(create_app(&s, &admin, &space, "race").await.status, 201);

    // Bad input.
    let r = s
        .call(
            "POST",
            "/v3/apps",
            Some(&admin),
            Some(json!({"name": "x", "relationships": {"space": {"data": {"guid": "nope"}}}})),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            422,
            "Invalid space. Ensure that the space exists and you have access to it.".to_owned()
        )
    );
    let r = s
        .call(
            "POST",
            "/v3/apps",
            Some(&admin),
            Some(json!({"name": "x", "relationships": {"space": {"data": {"guid": space}}}, "colour": 1})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .call(
            "POST",
            "/v3/apps",
            Some(&admin),
            Some(json!({"name": "x", "relationships": {"space": {"data": {"guid": space}}}, "environment_variables": {"PORT": "1"}})),
        )
        .await;
    assert_eq!(r.status, 422);
    let r = s
        .call("GET", "/v3/apps?order_by=colour", Some(&admin), None)
        .await;
    assert_eq!(r.status, 400);

    // bob holds no role: the app does not exist for him.
    let bob = CfStack::token("bob");
    let r = s
        .call("GET", &format!("/v3/apps/{other}"), Some(&bob), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "App not found".to_owned()));
    let r = s.call("GET", "/v3/apps", Some(&bob), None).await;
    assert!(r.resources().is_empty());
    let r = s.call("GET", "/v3/processes", Some(&bob), None).await;
    assert!(r.resources().is_empty());
    let r = create_app(&s, &bob, &space, "bobs").await;
    assert_eq!(r.status, 422, "{:?}", r.body);

    // alice, a space developer, creates and changes apps as herself (RBAC from her role).
    for (type_, scope, scope_guid) in [
        ("organization_user", "organization", &org),
        ("space_developer", "space", &space),
    ] {
        let r = s
            .call(
                "POST",
                "/v3/roles",
                Some(&admin),
                Some(json!({"type": type_, "relationships": {scope: {"data": {"guid": scope_guid}}, "user": {"data": {"username": "alice"}}}})),
            )
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let alice = CfStack::token("alice");
    let mine = eventually("alice may create apps", Duration::from_secs(30), || async {
        let r = create_app(&s, &alice, &space, "alices").await;
        (r.status == 201).then(|| r.guid())
    })
    .await;
    let r = s
        .call(
            "PATCH",
            &format!("/v3/apps/{mine}/environment_variables"),
            Some(&alice),
            Some(json!({"var": {"A": "1"}})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .call("GET", &format!("/v3/apps/{other}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 200);
    let r = s
        .call("DELETE", &format!("/v3/apps/{mine}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 202);
    s.wait_job(&r.location().unwrap(), &alice).await;
}
