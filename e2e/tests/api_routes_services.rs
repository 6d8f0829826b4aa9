//! e2e: domains, routes, user-provided service instances and credential bindings over real
//! HTTP against a whole kubefoundry (simulated cluster, controller, façade): the cf CLI's
//! create-route, map-route, unmap-route, routes, cups, bind-service and services request
//! sequences, the Ingress the controller makes for a mapped route, race-free route uniqueness,
//! and what a developer of another space sees (404s).

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use k8s_openapi::api::{core::v1::Secret, networking::v1::Ingress};
use kube::Api;
use kubefoundry::controller::names;
use kubefoundry_e2e::{
    cf::{CfStack, DEFAULT_DOMAIN, Resp},
    eventually,
};
use serde_json::{Value, json};

/// Grants `user` a role (the cf CLI's body: the user by username).
async fn grant(s: &CfStack, type_: &str, user: &str, scope: &str, scope_guid: &str) {
    let r = s
        .call(
            "POST",
            "/v3/roles",
            Some(&s.admin()),
            Some(json!({
                "type": type_,
                "relationships": {
                    scope: {"data": {"guid": scope_guid}},
                    "user": {"data": {"username": user}},
                },
            })),
        )
        .await;
    assert_eq!(r.status, 201, "grant {type_} to {user}: {:?}", r.body);
}

/// Makes `user` a space developer of `space` in `org`.
async fn developer(s: &CfStack, user: &str, org: &str, space: &str) {
    grant(s, "organization_user", user, "organization", org).await;
    grant(s, "space_developer", user, "space", space).await;
}

/// Sends a write until Kubernetes RBAC lets it through: a role's RoleBindings come from the
/// controller, moments after the role.
async fn allowed(s: &CfStack, method: &str, path: &str, token: &str, body: Value) -> Resp {
    eventually(
        &format!("{method} {path} allowed"),
        Duration::from_secs(30),
        || {
            let body = body.clone();
            async move {
                let r = s.call(method, path, Some(token), Some(body)).await;
                (r.status != 403).then_some(r)
            }
        },
    )
    .await
}

/// A docker app in `space` (no staging needed), created by the admin.
async fn app(s: &CfStack, space: &str, name: &str) -> String {
    let r = s
        .call(
            "POST",
            "/v3/apps",
            Some(&s.admin()),
            Some(json!({
                "name": name,
                "relationships": {"space": {"data": {"guid": space}}},
                "lifecycle": {"type": "docker", "data": {}},
            })),
        )
        .await;
    assert_eq!(r.status, 201, "create app {name}: {:?}", r.body);
    r.guid()
}

fn route_body(host: &str, space: &str, domain: &str) -> Value {
    json!({
        "host": host,
        "path": "",
        "relationships": {
            "space": {"data": {"guid": space}},
            "domain": {"data": {"guid": domain}},
        },
    })
}

/// The shared domain as `cf` looks it up by name.
async fn domain_by_name(s: &CfStack, token: &str, name: &str) -> Value {
    let r = s
        .call(
            "GET",
            &format!("/v3/domains?names={name}&page=1&per_page=1"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.resources().pop().unwrap_or_else(|| panic!("no domain {name}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_cli_route_and_domain_sequences() {
    let s = CfStack::start().await;
    let admin = s.admin();
    let alice = CfStack::token("alice");
    let (org, space) = s.org_and_space("org", "dev").await;
    developer(&s, "alice", &org, &space).await;
    let web = app(&s, &space, "web").await;

    // Domains: the CLI's lookup, the org's list and its default.
    let domain = domain_by_name(&s, &alice, DEFAULT_DOMAIN).await;
    let dg = domain["guid"].as_str().unwrap().to_owned();
    assert_eq!(domain["relationships"]["organization"], json!({"data": null}));
    assert_eq!(domain["supported_protocols"], json!(["http"]));
    assert_eq!(domain["internal"], json!(false));
    let r = s
        .call(
            "GET",
            &format!("/v3/organizations/{org}/domains"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![dg.clone()]);
    let r = s
        .call(
            "GET",
            &format!("/v3/organizations/{org}/domains/default"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!((r.status, r.body["name"].as_str()), (200, Some(DEFAULT_DOMAIN)));

    // cf create-route apps.example.com --hostname myapp (twice: the second is CC's 422).
    let r = allowed(&s, "POST", "/v3/routes", &alice, route_body("myapp", &space, &dg)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let route = r.guid();
    assert_eq!(r.body["url"], "myapp.apps.example.com");
    assert_eq!(r.body["port"], Value::Null);
    assert_eq!(r.body["protocol"], "http");
    assert_eq!(r.body["destinations"], json!([]));
    assert_eq!(r.body["relationships"]["space"]["data"]["guid"], json!(space));
    let r = s
        .call(
            "POST",
            "/v3/routes",
            Some(&alice),
            Some(route_body("MyApp", &space, &dg)),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            422,
            "Route already exists with host 'myapp' for domain 'apps.example.com'.".to_owned()
        )
    );
    let r = s
        .call(
            "GET",
            &format!("/v3/domains/{dg}/route_reservations?host=myapp"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body, json!({"matching_route": true}));

    // cf map-route web apps.example.com --hostname myapp: the lookup with empty `paths=`.
    let lookup = format!("/v3/routes?domain_guids={dg}&hosts=myapp&page=1&per_page=1&paths=");
    let r = s.call("GET", &lookup, Some(&alice), None).await;
    assert_eq!(r.guids(), vec![route.clone()]);
    let r = s
        .call(
            "GET",
            &format!("/v3/routes?domain_guids={dg}&hosts=myapp&paths=%2Fother"),
            Some(&alice),
            None,
        )
        .await;
    assert!(r.guids().is_empty());
    let map = json!({"destinations": [{"app": {"guid": web}}]});
    let path = format!("/v3/routes/{route}/destinations");
    let r = s.call("POST", &path, Some(&alice), Some(map.clone())).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let dests = r.body["destinations"].as_array().unwrap().clone();
    assert_eq!(dests.len(), 1);
    assert_eq!(dests[0]["app"], json!({"guid": web, "process": {"type": "web"}}));
    assert_eq!(
        (dests[0]["port"].as_i64(), dests[0]["protocol"].as_str()),
        (Some(8080), Some("http1"))
    );
    let dest = dests[0]["guid"].as_str().unwrap().to_owned();
    // Mapping again changes nothing.
    let r = s.call("POST", &path, Some(&alice), Some(map)).await;
    assert_eq!(r.body["destinations"].as_array().unwrap().len(), 1);

    // The controller serves the mapped route with an Ingress to the app's web Service.
    let ingresses: Api<Ingress> = Api::namespaced(s.tc.client.clone(), &space);
    let ing = eventually("the route's Ingress", Duration::from_secs(30), || {
        let ingresses = ingresses.clone();
        let name = names::ingress(&route);
        async move { ingresses.get_opt(&name).await.ok().flatten() }
    })
    .await;
    let rule = &ing.spec.unwrap().rules.unwrap()[0];
    assert_eq!(rule.host.as_deref(), Some("myapp.apps.example.com"));
    let backend = rule.http.as_ref().unwrap().paths[0]
        .backend
        .service
        .clone()
        .unwrap();
    assert_eq!(backend.name, names::service(&web, "web"));

    // A second app on the same route cannot be served by one Ingress path: refused up front.
    let other = app(&s, &space, "other").await;
    let r = s
        .call(
            "POST",
            &path,
            Some(&alice),
            Some(json!({"destinations": [{"app": {"guid": other}}]})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    assert!(r.detail().contains("cannot split traffic"), "{}", r.detail());
    let r = s
        .call(
            "PATCH",
            &path,
            Some(&alice),
            Some(json!({"destinations": [
                {"app": {"guid": web}, "weight": 80},
                {"app": {"guid": web}, "port": 9000, "weight": 20},
            ]})),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("unequal weights"), "{}", r.detail());

    // The app's routes, and `cf routes` with its follow-up requests.
    let r = s
        .call("GET", &format!("/v3/apps/{web}/routes"), Some(&alice), None)
        .await;
    assert_eq!(r.guids(), vec![route.clone()]);
    let r = s
        .call(
            "GET",
            &format!("/v3/routes?per_page=5000&space_guids={space}&include=domain,space,space.organization"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![route.clone()]);
    assert_eq!(r.body["included"]["domains"][0]["name"], DEFAULT_DOMAIN);
    assert_eq!(r.body["included"]["spaces"][0]["guid"], json!(space));
    assert_eq!(r.body["included"]["organizations"][0]["guid"], json!(org));
    let r = s
        .call(
            "GET",
            &format!("/v3/service_route_bindings?include=service_instance&route_guids={route}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["resources"], json!([]));
    assert_eq!(r.body["included"]["service_instances"], json!([]));

    // cf unmap-route: 204, and the Ingress goes.
    let r = s
        .call("DELETE", &format!("{path}/{dest}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    eventually("the Ingress to go", Duration::from_secs(30), || {
        let ingresses = ingresses.clone();
        let name = names::ingress(&route);
        async move {
            ingresses
                .get_opt(&name)
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await;
    let r = s
        .call("DELETE", &format!("{path}/{dest}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 422);

    // Unmapped routes go in bulk only with unmapped=true.
    let r = s
        .call(
            "DELETE",
            &format!("/v3/spaces/{space}/routes"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    let r = s
        .call(
            "DELETE",
            &format!("/v3/spaces/{space}/routes?unmapped=true"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = s.wait_job(&r.location().unwrap(), &alice).await;
    assert_eq!(job["state"], "COMPLETE");
    let r = s
        .call("GET", &format!("/v3/routes/{route}"), Some(&alice), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "Route not found".to_owned()));
    // …and its address is free again.
    let r = s
        .call(
            "POST",
            "/v3/routes",
            Some(&alice),
            Some(route_body("myapp", &space, &dg)),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let again = r.guid();
    let r = s
        .call("DELETE", &format!("/v3/routes/{again}"), Some(&alice), None)
        .await;
    assert_eq!(r.status, 202);
    let job = s.wait_job(&r.location().unwrap(), &alice).await;
    assert_eq!(job["state"], "COMPLETE");

    // Bad input, in CC's words.
    let r = s
        .call(
            "POST",
            "/v3/routes",
            Some(&alice),
            Some(route_body("a.b", &space, &dg)),
        )
        .await;
    assert_eq!(r.status, 422);
    let mut body = route_body("x", &space, &dg);
    body["path"] = json!("nope");
    let r = s.call("POST", "/v3/routes", Some(&alice), Some(body)).await;
    assert_eq!((r.status, r.detail()), (422, "Path must begin with /".to_owned()));
    let r = s
        .call(
            "POST",
            "/v3/routes",
            Some(&alice),
            Some(route_body("*", &space, &dg)),
        )
        .await;
    assert_eq!(r.status, 403, "wildcards on shared domains are for admins");

    // Domains: shared ones are the admin's; a private one is its org's.
    let r = s
        .call(
            "POST",
            "/v3/domains",
            Some(&alice),
            Some(json!({"name": "mine.example.org"})),
        )
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let private = json!({
        "name": "Private.Example.org",
        "relationships": {"organization": {"data": {"guid": org}}},
    });
    let r = s
        .call("POST", "/v3/domains", Some(&admin), Some(private.clone()))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pd = r.guid();
    assert_eq!(r.body["name"], "private.example.org");
    assert_eq!(
        r.body["relationships"]["organization"]["data"]["guid"],
        json!(org)
    );
    let r = s.call("POST", "/v3/domains", Some(&admin), Some(private)).await;
    assert_eq!(
        (r.status, r.detail()),
        (
            422,
            "The domain name \"private.example.org\" is already in use".to_owned()
        )
    );
    let r = s
        .call("GET", "/v3/domains?order_by=name", Some(&alice), None)
        .await;
    assert_eq!(r.guids(), vec![dg.clone(), pd.clone()]);
    let bob = CfStack::token("bob");
    let r = s.call("GET", "/v3/domains", Some(&bob), None).await;
    assert_eq!(r.guids(), vec![dg.clone()], "bob sees only the shared domain");
    let r = s
        .call("GET", &format!("/v3/domains/{pd}"), Some(&bob), None)
        .await;
    assert_eq!((r.status, r.detail()), (404, "Domain not found".to_owned()));
    let mut bare = route_body("", &space, &pd);
    bare["path"] = json!("/api");
    let r = s.call("POST", "/v3/routes", Some(&alice), Some(bare)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["url"], "private.example.org/api");
    let on_private = r.guid();
    let r = s
        .call("DELETE", &format!("/v3/domains/{pd}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 422, "a domain with routes stays: {:?}", r.body);
    // cf share-private-domain / unshare-private-domain: bob's org sees it while shared.
    let (other_org, _) = s.org_and_space("other", "s").await;
    grant(&s, "organization_user", "bob", "organization", &other_org).await;
    let shares = format!("/v3/domains/{pd}/relationships/shared_organizations");
    let r = s
        .call(
            "POST",
            &shares,
            Some(&admin),
            Some(json!({"data": [{"guid": other_org}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"], json!([{"guid": other_org}]));
    let r = s
        .call("GET", &format!("/v3/domains/{pd}"), Some(&bob), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = s
        .call("DELETE", &format!("/v3/domains/{pd}"), Some(&admin), None)
        .await;
    assert_eq!(
        r.detail(),
        "This domain is shared with other organizations. Unshare before deleting."
    );
    let r = s
        .call("DELETE", &format!("{shares}/{other_org}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = s
        .call("GET", &format!("/v3/domains/{pd}"), Some(&bob), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call("DELETE", &format!("/v3/routes/{on_private}"), Some(&alice), None)
        .await;
    s.wait_job(&r.location().unwrap(), &alice).await;
    let r = s
        .call("DELETE", &format!("/v3/domains/{pd}"), Some(&admin), None)
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let job = s.wait_job(&r.location().unwrap(), &admin).await;
    assert_eq!(job["state"], "COMPLETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_route_creates_make_one_route() {
    let s = CfStack::start().await;
    let (org, space) = s.org_and_space("org", "dev").await;
    developer(&s, "alice", &org, &space).await;
    let alice = CfStack::token("alice");
    let dg = domain_by_name(&s, &alice, DEFAULT_DOMAIN).await["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    // Wait for RBAC with a different host, so the race starts with alice allowed.
    let r = allowed(
        &s,
        "POST",
        "/v3/routes",
        &alice,
        route_body("warmup", &space, &dg),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let results = futures::future::join_all((0..8).map(|_| {
        s.call(
            "POST",
            "/v3/routes",
            Some(&alice),
            Some(route_body("race", &space, &dg)),
        )
    }))
    .await;
    let created = results.iter().filter(|r| r.status == 201).count();
    assert_eq!(
        created,
        1,
        "{:?}",
        results.iter().map(|r| (r.status, r.detail())).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 422);
        assert!(r.detail().contains("Route already exists"), "{}", r.detail());
    }
    let r = s
        .call(
            "GET",
            &format!("/v3/routes?hosts=race&space_guids={space}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.resources().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_cli_service_sequences() {
    let s = CfStack::start().await;
    let alice = CfStack::token("alice");
    let (org, space) = s.org_and_space("org", "dev").await;
    developer(&s, "alice", &org, &space).await;
    let web = app(&s, &space, "web").await;

    // cf cups db -p '{…}' -t sql
    let cups = json!({
        "type": "user-provided",
        "name": "db",
        "relationships": {"space": {"data": {"guid": space}}},
        "credentials": {"uri": "postgres://db.example.com/app", "password": "s3cret"},
        "tags": ["sql"],
    });
    let r = allowed(&s, "POST", "/v3/service_instances", &alice, cups.clone()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let si = r.guid();
    assert_eq!(r.body["type"], "user-provided");
    assert_eq!(r.body["last_operation"]["state"], "succeeded");
    let r = s
        .call("POST", "/v3/service_instances", Some(&alice), Some(cups))
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (422, "The service instance name is taken: db.".to_owned())
    );
    let r = s
        .call(
            "POST",
            "/v3/service_instances",
            Some(&alice),
            Some(json!({
                "type": "managed",
                "name": "pg",
                "relationships": {
                    "space": {"data": {"guid": space}},
                    "service_plan": {"data": {"guid": "plan"}},
                },
            })),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(r.detail().contains("only user-provided"), "{}", r.detail());
    let r = s
        .call(
            "GET",
            &format!("/v3/service_instances/{si}/credentials"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(
        r.body,
        json!({"uri": "postgres://db.example.com/app", "password": "s3cret"})
    );

    // cf bind-service web db
    let r = s
        .call(
            "GET",
            &format!("/v3/service_instances?names=db&page=1&per_page=1&space_guids={space}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![si.clone()]);
    let r = s
        .call(
            "GET",
            &format!("/v3/apps?names=web&page=1&per_page=1&space_guids={space}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![web.clone()]);
    let bind = json!({
        "type": "app",
        "relationships": {
            "service_instance": {"data": {"guid": si}},
            "app": {"data": {"guid": web}},
        },
    });
    let r = s
        .call(
            "POST",
            "/v3/service_credential_bindings",
            Some(&alice),
            Some(bind.clone()),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(r.location().is_none(), "synchronous: nothing to poll");
    let binding = r.guid();
    assert_eq!(r.body["relationships"]["app"]["data"]["guid"], json!(web));
    let r = s
        .call(
            "POST",
            "/v3/service_credential_bindings",
            Some(&alice),
            Some(bind.clone()),
        )
        .await;
    assert_eq!(r.status, 422);
    assert!(
        r.detail()
            .starts_with("The app is already bound to the service instance"),
        "{}",
        r.detail()
    );
    let mut key = bind.clone();
    key["type"] = json!("key");
    key["name"] = json!("k");
    let r = s
        .call("POST", "/v3/service_credential_bindings", Some(&alice), Some(key))
        .await;
    assert_eq!(r.status, 422);

    // The controller hands the credentials to the app as VCAP_SERVICES.
    let secrets: Api<Secret> = Api::namespaced(s.tc.client.clone(), &space);
    let vcap = eventually("the app's VCAP_SERVICES", Duration::from_secs(30), || {
        let secrets = secrets.clone();
        let name = names::vcap_services(&web);
        async move { secrets.get_opt(&name).await.ok().flatten() }
    })
    .await;
    let raw = &vcap.data.unwrap()["VCAP_SERVICES"].0;
    let services: Value = serde_json::from_slice(raw).unwrap();
    assert_eq!(
        services["user-provided"][0]["credentials"]["uri"],
        "postgres://db.example.com/app"
    );

    // cf services: the exact query, with `fields[...]` and empty plans, offerings and brokers.
    let r = s
        .call(
            "GET",
            &format!(
                "/v3/service_instances?fields%5Bservice_plan%5D=guid%2Cname%2Crelationships.service_offering&fields%5Bservice_plan.service_offering%5D=guid%2Cname%2Crelationships.service_broker&fields%5Bservice_plan.service_offering.service_broker%5D=guid%2Cname&order_by=name&per_page=5000&space_guids={space}"
            ),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.guids(), vec![si.clone()]);
    assert_eq!(
        r.body["included"],
        json!({"service_plans": [], "service_offerings": [], "service_brokers": []})
    );
    let op = &r.resources()[0]["last_operation"];
    assert_eq!(
        (op["type"].as_str(), op["state"].as_str()),
        (Some("create"), Some("succeeded"))
    );
    let r = s
        .call(
            "GET",
            &format!("/v3/service_credential_bindings?include=app&service_instance_guids={si}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.guids(), vec![binding.clone()]);
    assert_eq!(r.body["included"]["apps"][0]["guid"], json!(web));
    let r = s
        .call(
            "GET",
            &format!("/v3/service_credential_bindings/{binding}/details"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body["credentials"]["password"], "s3cret");

    // cf uups: new credentials and a new name.
    let r = s
        .call(
            "PATCH",
            &format!("/v3/service_instances/{si}"),
            Some(&alice),
            Some(json!({"name": "db2", "credentials": {"uri": "postgres://new"}})),
        )
        .await;
    assert_eq!(
        (r.status, r.body["name"].as_str()),
        (200, Some("db2")),
        "{:?}",
        r.body
    );
    let r = s
        .call(
            "GET",
            &format!("/v3/service_instances/{si}/credentials"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.body, json!({"uri": "postgres://new"}));

    // A space auditor sees the instance but not its credentials.
    grant(&s, "organization_user", "carol", "organization", &org).await;
    grant(&s, "space_auditor", "carol", "space", &space).await;
    let carol = CfStack::token("carol");
    let r = s
        .call("GET", &format!("/v3/service_instances/{si}"), Some(&carol), None)
        .await;
    assert_eq!(r.status, 200);
    let r = eventually("carol's RBAC", Duration::from_secs(30), || async {
        let r = s
            .call(
                "GET",
                &format!("/v3/service_instances/{si}/credentials"),
                Some(&carol),
                None,
            )
            .await;
        (r.status != 200).then_some(r)
    })
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);

    // cf unbind-service, cf delete-service: synchronous 204s; the name is free again.
    let r = s
        .call(
            "DELETE",
            &format!("/v3/service_credential_bindings/{binding}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = s
        .call(
            "GET",
            &format!("/v3/service_credential_bindings/{binding}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call(
            "POST",
            "/v3/service_credential_bindings",
            Some(&alice),
            Some(bind),
        )
        .await;
    assert_eq!(r.status, 201, "rebinding after unbind: {:?}", r.body);
    let r = s
        .call(
            "DELETE",
            &format!("/v3/service_instances/{si}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = s
        .call("GET", &format!("/v3/service_instances/{si}"), Some(&alice), None)
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (404, "Service instance not found".to_owned())
    );
    let r = s
        .call(
            "GET",
            &format!("/v3/service_credential_bindings?service_instance_guids={si}"),
            Some(&alice),
            None,
        )
        .await;
    assert!(r.guids().is_empty(), "the instance's bindings went with it");
    let r = s
        .call(
            "POST",
            "/v3/service_instances",
            Some(&alice),
            Some(json!({"type": "user-provided", "name": "db2", "relationships": {"space": {"data": {"guid": space}}}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // Route services are not supported.
    let r = s
        .call(
            "POST",
            "/v3/service_route_bindings",
            Some(&alice),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_developer_of_another_space_sees_nothing() {
    let s = CfStack::start().await;
    let (org, a) = s.org_and_space("org", "a").await;
    let r = s
        .call(
            "POST",
            "/v3/spaces",
            Some(&s.admin()),
            Some(json!({"name": "b", "relationships": {"organization": {"data": {"guid": org}}}})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let b = r.guid();
    s.wait_namespace(&b).await;
    developer(&s, "alice", &org, &a).await;
    developer(&s, "dave", &org, &b).await;
    let (alice, dave) = (CfStack::token("alice"), CfStack::token("dave"));
    let web = app(&s, &a, "web").await;
    let dg = domain_by_name(&s, &alice, DEFAULT_DOMAIN).await["guid"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = allowed(&s, "POST", "/v3/routes", &alice, route_body("secret", &a, &dg)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let route = r.guid();
    let r = s
        .call(
            "POST",
            &format!("/v3/routes/{route}/destinations"),
            Some(&alice),
            Some(json!({"destinations": [{"app": {"guid": web}}]})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = allowed(
        &s,
        "POST",
        "/v3/service_instances",
        &alice,
        json!({"type": "user-provided", "name": "db", "relationships": {"space": {"data": {"guid": a}}}}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let si = r.guid();

    for path in [
        format!("/v3/routes/{route}"),
        format!("/v3/routes/{route}/destinations"),
        format!("/v3/service_instances/{si}"),
        format!("/v3/service_instances/{si}/credentials"),
        format!("/v3/apps/{web}/routes"),
    ] {
        let r = s.call("GET", &path, Some(&dave), None).await;
        assert_eq!(r.status, 404, "{path}: {:?}", r.body);
    }
    let r = s
        .call("GET", &format!("/v3/routes/{route}"), Some(&dave), None)
        .await;
    assert_eq!(r.detail(), "Route not found");
    for path in [
        "/v3/routes",
        "/v3/service_instances",
        "/v3/service_credential_bindings",
    ] {
        let r = s.call("GET", path, Some(&dave), None).await;
        assert!(r.guids().is_empty(), "{path}: {:?}", r.body);
    }
    let r = s
        .call("DELETE", &format!("/v3/routes/{route}"), Some(&dave), None)
        .await;
    assert_eq!(r.status, 404);
    let r = s
        .call(
            "POST",
            &format!("/v3/routes/{route}/destinations"),
            Some(&dave),
            Some(json!({"destinations": [{"app": {"guid": web}}]})),
        )
        .await;
    assert_eq!(r.status, 404);
    // dave may not put routes or bindings into alice's space either.
    let r = s
        .call(
            "POST",
            "/v3/routes",
            Some(&dave),
            Some(route_body("mine", &a, &dg)),
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
            "/v3/service_credential_bindings",
            Some(&dave),
            Some(json!({"type": "app", "relationships": {
                "service_instance": {"data": {"guid": si}},
                "app": {"data": {"guid": web}},
            }})),
        )
        .await;
    assert_eq!(r.status, 422, "{:?}", r.body);
    // An app of another space cannot be a destination of alice's route.
    let theirs = app(&s, &b, "theirs").await;
    let r = s
        .call(
            "POST",
            &format!("/v3/routes/{route}/destinations"),
            Some(&s.admin()),
            Some(json!({"destinations": [{"app": {"guid": theirs}}]})),
        )
        .await;
    assert_eq!(
        (r.status, r.detail()),
        (
            422,
            "Routes cannot be mapped to destinations in different spaces.".to_owned()
        )
    );
}
