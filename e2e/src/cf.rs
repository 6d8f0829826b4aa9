//! A whole kubefoundry for one test: a simulated cluster with named users (a token file), the
//! CRDs, the root namespace and a default shared domain, the controller running in-process, and
//! the CF façade served over real HTTP on an ephemeral port. Requests go through a real HTTP
//! client, exactly as the cf CLI's would.

use std::{sync::Arc, time::Duration};

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use kubefoundry::api::{self, ApiState};
use serde_json::{Value, json};

use crate::{TestCluster, eventually, fast_config};

/// Users in the token file: name → bearer token `<name>-token`.
pub const USERS: &[&str] = &["alice", "bob", "carol", "dave", "erin"];

/// The default shared domain every stack has (a CFDomain named `default-domain` in `cf`).
pub const DEFAULT_DOMAIN: &str = "apps.example.com";

/// A running kubefoundry.
pub struct CfStack {
    /// The cluster (admin client, kubectl).
    pub tc: TestCluster,
    /// The façade's state (caches, config).
    pub state: Arc<ApiState>,
    /// The façade's external URL, `http://127.0.0.1:PORT`.
    pub base: String,
    http: hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    controller: Option<crate::RunningController>,
    server: tokio::task::JoinHandle<()>,
}

/// One HTTP response.
#[derive(Debug)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// The body as JSON (`Null` when empty, a string when not JSON).
    pub body: Value,
    /// The response headers.
    pub headers: hyper::HeaderMap,
}

impl Resp {
    /// The `guid` of a presented resource.
    pub fn guid(&self) -> String {
        self.body["guid"]
            .as_str()
            .unwrap_or_else(|| panic!("no guid in {:?}", self.body))
            .to_owned()
    }

    /// The first CF error's `detail` (empty when there is none).
    pub fn detail(&self) -> String {
        self.body["errors"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The first CF error's `title` (empty when there is none).
    pub fn title(&self) -> String {
        self.body["errors"][0]["title"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// A list's `resources`, which must be present.
    pub fn resources(&self) -> Vec<Value> {
        self.body["resources"]
            .as_array()
            .unwrap_or_else(|| panic!("no resources in {:?}", self.body))
            .clone()
    }

    /// The GUIDs of a list's `resources`.
    pub fn guids(&self) -> Vec<String> {
        self.resources()
            .iter()
            .map(|x| x["guid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// The `Location` header.
    pub fn location(&self) -> Option<String> {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }
}

impl CfStack {
    /// Starts everything.
    pub async fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("kf-cf-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let tokens = dir.join("tokens.csv");
        let csv: String = USERS
            .iter()
            .map(|u| format!("{u}-token,{u},{u}-uid,\n"))
            .collect();
        std::fs::write(&tokens, csv).unwrap();
        let tc = TestCluster::with_cf(kubefoundry_sim::Options {
            token_file: Some(tokens),
            config: fast_config(),
            ..Default::default()
        })
        .await;
        tc.apply(
            &format!(
                "apiVersion: kubefoundry.dev/v1alpha1\nkind: CFDomain\nmetadata: {{name: default-domain, namespace: cf}}\nspec: {{name: {DEFAULT_DOMAIN}}}\n"
            ),
            &[],
        );
        let controller = tc.start_controller(kubefoundry::controller::Config {
            metrics_addr: None,
            ..crate::controller_config(&format!("e2e-{}", uuid::Uuid::new_v4().simple()))
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = api::state(
            tc.client.clone(),
            api::Config {
                base_url: base.clone(),
                root_namespace: "cf".to_owned(),
                identity_ttl: Duration::from_secs(60),
                package_dir: dir.join("packages"),
                ..api::Config::default()
            },
        )
        .await;
        let router = api::router(state.clone());
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
        Self {
            tc,
            state,
            base,
            http,
            controller: Some(controller),
            server,
        }
    }

    /// The admin's bearer token (`system:masters`).
    pub fn admin(&self) -> String {
        self.tc.sim.admin_token.clone()
    }

    /// The bearer token of a token-file user.
    pub fn token(user: &str) -> String {
        format!("{user}-token")
    }

    /// A JSON request (or bodiless, with the JSON content type the cf CLI always sends).
    pub async fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        self.raw(method, path, token, "application/json", bytes.into_bytes())
            .await
    }

    /// A request with any content type and body. `path` may be absolute (a `Location`, a
    /// `next.href`) or relative to the façade.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let uri = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header("accept", "application/json")
            .header("content-type", content_type)
            .header("user-agent", "cf/8.18.0 (go1.24; amd64 linux)");
        if let Some(t) = token {
            req = req.header("authorization", format!("bearer {t}"));
        }
        let response = self
            .http
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            body,
            headers,
        }
    }

    /// Creates an org and a space in it as the admin, waits until the space's namespace exists,
    /// and returns (org GUID, space GUID).
    pub async fn org_and_space(&self, org: &str, space: &str) -> (String, String) {
        let admin = self.admin();
        let r = self
            .call(
                "POST",
                "/v3/organizations",
                Some(&admin),
                Some(json!({"name": org})),
            )
            .await;
        assert_eq!(r.status, 201, "create org: {:?}", r.body);
        let org_guid = r.body["guid"].as_str().unwrap().to_owned();
        let r = self
            .call(
                "POST",
                "/v3/spaces",
                Some(&admin),
                Some(json!({"name": space, "relationships": {"organization": {"data": {"guid": org_guid}}}})),
            )
            .await;
        assert_eq!(r.status, 201, "create space: {:?}", r.body);
        let space_guid = r.body["guid"].as_str().unwrap().to_owned();
        self.wait_namespace(&space_guid).await;
        (org_guid, space_guid)
    }

    /// Waits until a namespace exists (the controller makes one per org and space).
    pub async fn wait_namespace(&self, name: &str) {
        let namespaces: kube::Api<k8s_openapi::api::core::v1::Namespace> =
            kube::Api::all(self.tc.client.clone());
        eventually(&format!("namespace {name}"), Duration::from_secs(30), || {
            let namespaces = namespaces.clone();
            async move { namespaces.get_opt(name).await.ok().flatten().map(|_| ()) }
        })
        .await;
    }

    /// Polls a job `Location` until it is COMPLETE or FAILED, returning the job.
    pub async fn wait_job(&self, location: &str, token: &str) -> Value {
        eventually(&format!("job {location}"), Duration::from_secs(30), || async {
            let r = self.call("GET", location, Some(token), None).await;
            let state = r.body["state"].as_str().unwrap_or_default().to_owned();
            (state == "COMPLETE" || state == "FAILED").then_some(r.body)
        })
        .await
    }
}

impl Drop for CfStack {
    fn drop(&mut self) {
        if let Some(controller) = self.controller.take() {
            // Dropping the handle would leave the task running; ask it to stop instead.
            drop(tokio::spawn(controller.stop()));
        }
        self.server.abort();
    }
}
