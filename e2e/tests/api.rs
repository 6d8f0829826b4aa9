//! e2e: the CF façade's router against the simulated cluster, requests made as different
//! Kubernetes users (tokens from a token file): authentication errors, the org lifecycle,
//! visibility by CF role, query validation and a race-free uniqueness check.

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use axum::{body::Body, http::Request};
use kubefoundry::api::{self, ApiState};
use kubefoundry_e2e::{TestCluster, eventually, fast_config};
use serde_json::{Value, json};
use tower::ServiceExt as _;

const BASE: &str = "https://api.example.test";

async fn setup() -> (TestCluster, Arc<ApiState>) {
    let dir = std::env::temp_dir().join(format!("kf-api-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let tokens = dir.join("tokens.csv");
    std::fs::write(&tokens, "alice-token,alice,alice-uid,\nbob-token,bob,bob-uid,\n").unwrap();
    let tc = TestCluster::start_with(kubefoundry_sim::Options {
        token_file: Some(tokens),
        config: fast_config(),
        ..Default::default()
    })
    .await;
    tc.install_crds().await;
    tc.kubectl_ok(&["create", "namespace", "cf"]);
    let state = api::state(
        tc.client.clone(),
        api::Config {
            base_url: BASE.to_owned(),
            root_namespace: "cf".to_owned(),
            identity_ttl: Duration::from_secs(60),
            ..api::Config::default()
        },
    )
    .await;
    (tc, state)
}

async fn call(
    state: &Arc<ApiState>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value, Option<String>) {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(t) = token {
        req = req.header("authorization", format!("bearer {t}"));
    }
    let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let response = api::router(state.clone())
        .oneshot(req.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, json, location)
}

fn admin(tc: &TestCluster) -> String {
    tc.sim.admin_token.clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn root_documents_and_authentication_errors() {
    let (_tc, state) = setup().await;
    let (status, root, _) = call(&state, "GET", "/", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(root["links"]["cloud_controller_v3"]["href"], format!("{BASE}/v3"));
    assert_eq!(root["cf_on_k8s"], true);
    // Every link is an object or null: a string would break the cf CLI's decoding.
    assert!(
        root["links"]
            .as_object()
            .unwrap()
            .values()
            .all(|l| l.is_object() || l.is_null())
    );

    let (status, body, _) = call(&state, "GET", "/v3/organizations", None, None).await;
    assert_eq!(
        (status, body["errors"][0]["title"].as_str()),
        (401, Some("CF-NotAuthenticated"))
    );
    let (status, body, _) = call(&state, "GET", "/v3/organizations", Some("forged"), None).await;
    assert_eq!(
        (status, body["errors"][0]["title"].as_str()),
        (401, Some("CF-InvalidAuthToken"))
    );
    let (status, body, _) = call(&state, "GET", "/v3/no-such-thing", None, None).await;
    assert_eq!(
        (status, body["errors"][0]["detail"].as_str()),
        (404, Some("Unknown request"))
    );
    let (status, body, _) = call(&state, "GET", "/whoami", Some("alice-token"), None).await;
    assert_eq!((status, body), (200, json!({"name": "alice", "kind": "user"})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn org_lifecycle_visibility_and_bad_input() {
    let (tc, state) = setup().await;
    let admin = admin(&tc);

    // Bad input gets CF errors and writes nothing.
    let (status, body, _) = call(
        &state,
        "POST",
        "/v3/organizations",
        Some(&admin),
        Some(json!({"name": "x", "colour": "red"})),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["detail"].as_str()),
        (422, Some("Unknown field(s): 'colour'"))
    );
    let (status, body, _) = call(
        &state,
        "POST",
        "/v3/organizations",
        Some(&admin),
        Some(json!({"name": 7})),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["title"].as_str()),
        (422, Some("CF-UnprocessableEntity"))
    );
    let (status, body, _) = call(
        &state,
        "POST",
        "/v3/organizations",
        Some(&admin),
        Some(json!({"name": ""})),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["detail"].as_str()),
        (422, Some("Name can't be blank"))
    );
    let req = Request::builder()
        .method("POST")
        .uri("/v3/organizations")
        .header("authorization", format!("bearer {admin}"))
        .body(Body::from("{not json"))
        .unwrap();
    let response = api::router(state.clone()).oneshot(req).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let (status, body, _) = call(&state, "GET", "/v3/organizations?per_page=0", Some(&admin), None).await;
    assert_eq!(
        (status, body["errors"][0]["title"].as_str()),
        (400, Some("CF-BadQueryParameter"))
    );
    assert_eq!(
        tc.kubectl_ok(&["get", "cforgs", "-n", "cf", "-o", "name"]).trim(),
        "",
        "nothing half-written"
    );

    // Alice may not create orgs (CF: admins only); the refusal leaves no name claim behind.
    let (status, body, _) = call(
        &state,
        "POST",
        "/v3/organizations",
        Some("alice-token"),
        Some(json!({"name": "mine"})),
    )
    .await;
    assert_eq!(
        (status, body["errors"][0]["title"].as_str()),
        (403, Some("CF-NotAuthorized"))
    );

    // Admin creates; the org is readable at once and listed with absolute links.
    let (status, org, _) = call(
        &state,
        "POST",
        "/v3/organizations",
        Some(&admin),
        Some(json!({"name": "mine", "metadata": {"labels": {"env": "dev"}}})),
    )
    .await;
    assert_eq!(status, 201, "{org}");
    let guid = org["guid"].as_str().unwrap().to_owned();
    assert_eq!(
        org["links"]["self"]["href"],
        format!("{BASE}/v3/organizations/{guid}")
    );
    assert_eq!(org["metadata"]["labels"], json!({"env": "dev"}));
    let listed = eventually("the org in the cache", Duration::from_secs(5), || async {
        let (_, list, _) = call(
            &state,
            "GET",
            "/v3/organizations?names=mine&label_selector=env%3Ddev",
            Some(&admin),
            None,
        )
        .await;
        (list["pagination"]["total_results"] == 1).then_some(list)
    })
    .await;
    assert_eq!(listed["resources"][0]["guid"], guid.as_str());

    // Alice holds no role in it: the org does not exist for her (404, never 403).
    let (_, list, _) = call(&state, "GET", "/v3/organizations", Some("alice-token"), None).await;
    assert_eq!(list["pagination"]["total_results"], 0);
    let (status, _, _) = call(
        &state,
        "GET",
        &format!("/v3/organizations/{guid}"),
        Some("alice-token"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    // With an org role she sees it.
    tc.apply(
        "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFRole\nmetadata: {name: alice-user, namespace: cf}\nspec: {type: global_auditor, subject: {kind: User, name: alice}}\n",
        &[],
    );
    eventually("alice to see the org", Duration::from_secs(5), || async {
        let (status, _, _) = call(
            &state,
            "GET",
            &format!("/v3/organizations/{guid}"),
            Some("alice-token"),
            None,
        )
        .await;
        (status == 200).then_some(())
    })
    .await;

    // Delete is an async job whose Location is absolute and completes.
    let (status, _, location) = call(
        &state,
        "DELETE",
        &format!("/v3/organizations/{guid}"),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(status, 202);
    let location = location.unwrap();
    assert!(location.starts_with(&format!("{BASE}/v3/jobs/")), "{location}");
    let job_path = location.trim_start_matches(BASE).to_owned();
    eventually("the delete job to complete", Duration::from_secs(5), || async {
        let (_, job, _) = call(&state, "GET", &job_path, Some(&admin), None).await;
        (job["state"] == "COMPLETE").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name_yield_exactly_one_org() {
    let (tc, state) = setup().await;
    let admin = admin(&tc);
    let attempts = (0..8).map(|_| {
        let state = state.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            call(
                &state,
                "POST",
                "/v3/organizations",
                Some(&admin),
                Some(json!({"name": "race"})),
            )
            .await
        })
    });
    let mut created = 0;
    let mut refused = 0;
    for a in attempts {
        let (status, body, _) = a.await.unwrap();
        match status {
            201 => created += 1,
            422 => {
                assert_eq!(body["errors"][0]["detail"], "Organization 'race' already exists.");
                refused += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (1, 7));
    let names = tc.kubectl_ok(&[
        "get",
        "cforgs",
        "-n",
        "cf",
        "-o",
        "jsonpath={.items[*].spec.displayName}",
    ]);
    assert_eq!(names.trim(), "race");
}

/// Every answer of the whole router carries a request id: the caller's own, or a fresh one (it is
/// what the logs of a 5xx are found by). The deadline is tested in `api::request`'s unit test.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_ids() {
    let (tc, state) = setup().await;
    let send = |id: Option<&str>| {
        let mut req = Request::builder().uri("/v3/organizations");
        req = req.header("authorization", format!("bearer {}", admin(&tc)));
        if let Some(id) = id {
            req = req.header("x-vcap-request-id", id);
        }
        api::router(state.clone()).oneshot(req.body(Body::empty()).unwrap())
    };
    let given = send(Some("trace-123")).await.unwrap();
    assert_eq!(given.headers()["x-vcap-request-id"], "trace-123");
    let fresh = send(None).await.unwrap();
    let id = fresh.headers()["x-vcap-request-id"].to_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
}
