//! e2e acceptance: the real cf CLI v8's conversations with the façade, replayed request by
//! request (cf-cli-wire §0–§8) with the CLI's own headers and query encoding, and every response
//! decoded the way the CLI decodes it (§9: field types, `resources` present, relationship
//! shapes, absolute links and job URLs, the exact error strings of §0).

// Tests fail loudly: a broken precondition must stop the test, not be handled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use kubefoundry_e2e::cf::{CfStack, DEFAULT_DOMAIN};
use serde_json::{Map, Value, json};
use tokio::time::{Instant, sleep};

/// Go's zero time in nanoseconds: the `start_time` of `cf logs --recent`.
const GO_ZERO_TIME_NS: &str = "-6795364578871345152";
/// The image `cf push --docker-image` is given throughout.
const IMAGE: &str = "nginxinc/nginx-unprivileged:1.27";
/// How long a replay waits for something the CLI would poll for (it waits far longer).
const PATIENCE: Duration = Duration::from_secs(60);

type Http =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

// ---------------------------------------------------------------------------------------------
// The wire: the CLI's headers, its query encoding, its success and error handling.
// ---------------------------------------------------------------------------------------------

/// One response, as the CLI's connection sees it.
#[derive(Debug)]
struct Reply {
    status: u16,
    body: Value,
    raw: Bytes,
    location: Option<String>,
}

/// A CC error as the CLI decodes it.
#[derive(Debug, PartialEq, Eq)]
struct CcError {
    status: u16,
    title: String,
    detail: String,
}

/// The cf CLI in Kubernetes mode, logged in as one kubeconfig user (a bearer token).
struct Cli<'a> {
    s: &'a CfStack,
    token: Option<String>,
    http: Http,
}

/// `url.Values.Encode()` after `FormatQueryParameters`: keys sorted, values already joined with
/// `,`, everything but unreserved characters percent-escaped (Go's `QueryEscape`).
fn q(pairs: &[(&str, &str)]) -> String {
    fn esc(s: &str) -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect()
    }
    let mut pairs = pairs.to_vec();
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> Cli<'a> {
    fn new(s: &'a CfStack, token: Option<String>) -> Self {
        Self {
            s,
            token,
            http: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http(),
        }
    }

    fn as_user(s: &'a CfStack, user: &str) -> Self {
        Self::new(s, Some(CfStack::token(user)))
    }

    /// One request with exactly the headers the CLI sends (§0): its User-Agent, JSON Accept,
    /// the given Content-Type even on bodiless requests, B3 trace ids and client-go's bearer.
    async fn send(&self, method: &str, url: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let uri = if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.s.base)
        };
        let trace = uuid::Uuid::new_v4().simple().to_string();
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(&uri)
            .header(
                "user-agent",
                "cf/8.18.0+5883401.2026-08-01 (go1.24.6; amd64 linux)",
            )
            .header("accept", "application/json")
            .header("content-type", content_type)
            .header("x-b3-traceid", &trace)
            .header("x-b3-spanid", &trace[..16]);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let response = self
            .http
            .request(req.body(Full::new(Bytes::from(body))).unwrap())
            .await
            .unwrap_or_else(|e| panic!("{method} {uri}: {e}"));
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let raw = response.into_body().collect().await.unwrap().to_bytes();
        let body = if raw.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&raw)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
        };
        Reply {
            status,
            body,
            raw,
            location,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.send(method, path, "application/json", bytes).await
    }

    /// A request the CLI expects to succeed and decodes: below 400, a 204 reads as `{}`, any
    /// other success must carry a JSON object (an empty body is the CLI's `EOF`).
    async fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Reply {
        let mut r = self.call(method, path, body).await;
        expect_success(method, path, &mut r);
        r
    }

    async fn ok_yaml(&self, method: &str, path: &str, yaml: &str) -> Reply {
        let mut r = self
            .send(method, path, "application/x-yaml", yaml.as_bytes().to_vec())
            .await;
        assert!(r.status < 400, "{method} {path}: {} {}", r.status, r.body);
        if r.status != 204 && !r.raw.is_empty() {
            expect_success(method, path, &mut r);
        }
        r
    }

    async fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None).await.body
    }

    /// A paginated GET as `ccv3/paginate.go` does it: `resources` must be present, `included`
    /// is merged, and `next.href` is followed (absolute) unless the query itself set `page`.
    async fn list(&self, path: &str) -> (Vec<Value>, Map<String, Value>) {
        let follow = !path
            .split_once('?')
            .map(|(_, query)| query.split('&').any(|p| p.starts_with("page=")))
            .unwrap_or(false);
        let mut url = path.to_owned();
        let mut resources = Vec::new();
        let mut included = Map::new();
        for _ in 0..100 {
            let page = self.get(&url).await;
            let items = page
                .get("resources")
                .unwrap_or_else(|| panic!("GET {url}: no `resources` key: {page}"));
            match items {
                Value::Array(a) => resources.extend(a.iter().cloned()),
                Value::Null => {}
                other => panic!("GET {url}: resources is {other}"),
            }
            if let Some(inc) = page.get("included").and_then(Value::as_object) {
                for (k, v) in inc {
                    let merged = included.entry(k.clone()).or_insert_with(|| json!([]));
                    merged.as_array_mut().unwrap().extend(
                        v.as_array()
                            .unwrap_or_else(|| panic!("included.{k}: {v}"))
                            .iter()
                            .cloned(),
                    );
                }
            }
            let next = &page["pagination"]["next"];
            if next.is_null() || !follow {
                return (resources, included);
            }
            let href = s(next, "/href");
            assert!(
                href.starts_with("http://") || href.starts_with("https://"),
                "relative next.href {href}"
            );
            url = href.to_owned();
        }
        panic!("GET {path}: more than 100 pages")
    }

    async fn resources(&self, path: &str) -> Vec<Value> {
        self.list(path).await.0
    }

    /// A failing request, decoded as `ccv3/errors.go` does.
    async fn fail(&self, method: &str, path: &str, body: Option<Value>) -> CcError {
        let r = self.call(method, path, body).await;
        cc_error(method, path, &r)
    }

    /// `PollJob`: GET the `Location` verbatim (it must be absolute) until COMPLETE or FAILED;
    /// no `Location` means the operation is done.
    async fn poll_job(&self, r: &Reply) -> Option<Value> {
        let location = r.location.as_deref()?;
        assert!(
            location.starts_with("http://") || location.starts_with("https://"),
            "relative job URL {location}"
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let job = self.get(location).await;
            let state = s(&job, "/state");
            assert!(
                ["COMPLETE", "FAILED", "PROCESSING", "POLLING"].contains(&state),
                "job state {state}: {job}"
            );
            opt_s(&job, "/guid");
            for w in job["warnings"].as_array().into_iter().flatten() {
                s(w, "/detail");
            }
            if state == "COMPLETE" || state == "FAILED" {
                if state == "FAILED" {
                    let first = &job["errors"][0];
                    assert!(first.is_object(), "FAILED job without errors: {job}");
                    s(first, "/detail");
                    s(first, "/title");
                }
                return Some(job);
            }
            assert!(Instant::now() < deadline, "job {location} still {state}");
            sleep(Duration::from_millis(200)).await;
        }
    }

    /// A job-producing request that must finish COMPLETE.
    async fn job_ok(&self, r: &Reply) {
        if let Some(job) = self.poll_job(r).await {
            assert_eq!(job["state"], "COMPLETE", "{job}");
        }
    }

    /// `GetCurrentUser` in Kubernetes mode: `GET /whoami`.
    async fn whoami(&self) -> String {
        let me = self.get("/whoami").await;
        s(&me, "/kind");
        s(&me, "/name").to_owned()
    }
}

fn expect_success(method: &str, path: &str, r: &mut Reply) {
    assert!(r.status < 400, "{method} {path}: {} {}", r.status, r.body);
    // DELETEs decode no body (only the job `Location`); a 204 reads as `{}`.
    if r.status == 204 || (method == "DELETE" && r.raw.is_empty()) {
        r.body = json!({});
        return;
    }
    assert!(
        !r.raw.is_empty(),
        "{method} {path}: {} with an empty body (the CLI fails with EOF)",
        r.status
    );
    assert!(
        r.body.is_object(),
        "{method} {path}: not a JSON object: {}",
        r.body
    );
}

fn cc_error(method: &str, path: &str, r: &Reply) -> CcError {
    assert!(
        r.status >= 400,
        "{method} {path} should fail: {} {}",
        r.status,
        r.body
    );
    let errors = r.body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path}: not a CC error body: {}", r.body));
    assert_eq!(errors.len(), 1, "{method} {path}: {}", r.body);
    assert!(errors[0]["code"].is_u64(), "numeric code: {}", r.body);
    CcError {
        status: r.status,
        title: s(&errors[0], "/title").to_owned(),
        detail: s(&errors[0], "/detail").to_owned(),
    }
}

fn err(status: u16, title: &str, detail: &str) -> CcError {
    CcError {
        status,
        title: title.to_owned(),
        detail: detail.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// §9: the fields the CLI decodes, with Go's type strictness.
// ---------------------------------------------------------------------------------------------

fn at<'v>(v: &'v Value, ptr: &str) -> &'v Value {
    v.pointer(ptr).unwrap_or(&Value::Null)
}

/// A required string.
fn s<'v>(v: &'v Value, ptr: &str) -> &'v str {
    at(v, ptr)
        .as_str()
        .unwrap_or_else(|| panic!("{ptr} must be a string in {v}"))
}

/// A string, null or absent.
fn opt_s<'v>(v: &'v Value, ptr: &str) -> Option<&'v str> {
    match at(v, ptr) {
        Value::Null => None,
        Value::String(x) => Some(x),
        other => panic!("{ptr} must be a string or null, not {other} in {v}"),
    }
}

/// A required integer (Go `int`).
fn int(v: &Value, ptr: &str) -> i64 {
    at(v, ptr)
        .as_i64()
        .unwrap_or_else(|| panic!("{ptr} must be an integer in {v}"))
}

/// An integer, null or absent.
fn opt_int(v: &Value, ptr: &str) -> Option<i64> {
    match at(v, ptr) {
        Value::Null => None,
        n => Some(
            n.as_i64()
                .unwrap_or_else(|| panic!("{ptr} must be an integer or null, not {n} in {v}")),
        ),
    }
}

/// A non-negative integer (Go `uint64`), null or absent.
fn opt_uint(v: &Value, ptr: &str) -> Option<u64> {
    match at(v, ptr) {
        Value::Null => None,
        n => Some(
            n.as_u64()
                .unwrap_or_else(|| panic!("{ptr} must be a uint or null, not {n} in {v}")),
        ),
    }
}

fn opt_bool(v: &Value, ptr: &str) -> Option<bool> {
    match at(v, ptr) {
        Value::Null => None,
        b => Some(
            b.as_bool()
                .unwrap_or_else(|| panic!("{ptr} must be a bool, not {b} in {v}")),
        ),
    }
}

/// RFC 3339 (`2026-11-27T15:41:36Z`).
fn time(v: &Value, ptr: &str) {
    let t = s(v, ptr);
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.clone().all(|i| b.get(i).is_some_and(u8::is_ascii_digit));
    assert!(
        b.len() >= 20
            && digits(0..4)
            && b[4] == b'-'
            && digits(5..7)
            && b[7] == b'-'
            && digits(8..10)
            && b[10] == b'T'
            && digits(11..13)
            && b[13] == b':'
            && digits(14..16)
            && b[16] == b':'
            && digits(17..19)
            && (t.ends_with('Z') || t[19..].contains(['+', '-'])),
        "{ptr} is not RFC 3339: {t}"
    );
}

/// A to-one relationship: `{"data":{"guid":…}}` or `{"data":null}`; absent is tolerated.
fn rel<'v>(v: &'v Value, ptr: &str) -> Option<&'v str> {
    let r = at(v, ptr);
    if r.is_null() {
        return None;
    }
    assert!(
        r.is_object() && r.get("data").is_some(),
        "{ptr} must be {{data: …}}, not {r}"
    );
    match &r["data"] {
        Value::Null => None,
        d => Some(s(d, "/guid")),
    }
}

/// A required to-one relationship with a GUID.
fn rel_guid<'v>(v: &'v Value, ptr: &str) -> &'v str {
    rel(v, ptr).unwrap_or_else(|| panic!("{ptr} must name a guid in {v}"))
}

/// Links: each an object with an absolute `href` (and a string `method` when present).
fn links(v: &Value) {
    let Some(links) = v.get("links") else { return };
    for (name, l) in links.as_object().unwrap_or_else(|| panic!("links: {links}")) {
        if l.is_null() {
            continue;
        }
        let href = s(l, "/href");
        assert!(href.starts_with("http"), "links.{name} is relative: {href}");
        opt_s(l, "/method");
    }
}

fn metadata(v: &Value) {
    for part in ["/metadata/labels", "/metadata/annotations"] {
        let m = at(v, part);
        assert!(m.is_null() || m.is_object(), "{part}: {m}");
    }
}

fn check_org(v: &Value) -> String {
    s(v, "/name");
    opt_bool(v, "/suspended");
    rel(v, "/relationships/quota");
    time(v, "/created_at");
    links(v);
    s(v, "/guid").to_owned()
}

fn check_space(v: &Value) -> String {
    s(v, "/name");
    rel_guid(v, "/relationships/organization");
    links(v);
    s(v, "/guid").to_owned()
}

fn check_app(v: &Value) -> String {
    s(v, "/name");
    let state = s(v, "/state");
    assert!(state == "STARTED" || state == "STOPPED", "app state {state}");
    let lifecycle = s(v, "/lifecycle/type");
    assert!(
        ["buildpack", "docker", "cnb"].contains(&lifecycle),
        "lifecycle {lifecycle}"
    );
    if let Some(bps) = at(v, "/lifecycle/data/buildpacks").as_array() {
        bps.iter().for_each(|b| assert!(b.is_string(), "buildpack {b}"));
    }
    opt_s(v, "/lifecycle/data/stack");
    rel_guid(v, "/relationships/space");
    rel(v, "/relationships/current_droplet");
    metadata(v);
    time(v, "/created_at");
    links(v);
    s(v, "/guid").to_owned()
}

fn health_check(v: &Value, ptr: &str) {
    let hc = at(v, ptr);
    if hc.is_null() {
        return;
    }
    s(hc, "/type");
    opt_s(hc, "/data/endpoint");
    opt_int(hc, "/data/invocation_timeout");
    opt_int(hc, "/data/timeout");
    opt_int(hc, "/data/interval");
}

fn check_process(v: &Value) -> String {
    s(v, "/type");
    opt_s(v, "/command");
    int(v, "/instances");
    int(v, "/memory_in_mb");
    int(v, "/disk_in_mb");
    opt_int(v, "/log_rate_limit_in_bytes_per_second");
    health_check(v, "/health_check");
    health_check(v, "/readiness_health_check");
    rel_guid(v, "/relationships/app");
    if let Some(instances) = v.get("process_instances") {
        for i in instances
            .as_array()
            .unwrap_or_else(|| panic!("process_instances: {instances}"))
        {
            int(i, "/index");
            instance_state(s(i, "/state"));
            opt_int(i, "/since");
        }
    }
    metadata(v);
    links(v);
    s(v, "/guid").to_owned()
}

fn instance_state(state: &str) {
    assert!(
        ["RUNNING", "STARTING", "CRASHED", "DOWN"].contains(&state),
        "instance state {state}"
    );
}

fn check_stat(v: &Value) -> String {
    s(v, "/type");
    int(v, "/index");
    let state = s(v, "/state").to_owned();
    instance_state(&state);
    opt_int(v, "/uptime");
    opt_uint(v, "/mem_quota");
    opt_uint(v, "/disk_quota");
    opt_int(v, "/log_rate_limit");
    opt_s(v, "/details");
    opt_s(v, "/isolation_segment");
    opt_bool(v, "/routable");
    let usage = at(v, "/usage");
    if usage.is_object() {
        for f in ["/cpu", "/cpu_entitlement"] {
            let n = at(usage, f);
            assert!(n.is_null() || n.is_number(), "usage{f}: {n}");
        }
        for f in ["/mem", "/disk", "/log_rate"] {
            opt_uint(usage, f);
        }
        if !at(usage, "/time").is_null() {
            time(usage, "/time");
        }
    } else {
        assert!(usage.is_null(), "usage: {usage}");
    }
    state
}

fn check_package(v: &Value) -> String {
    let state = s(v, "/state");
    assert!(
        [
            "AWAITING_UPLOAD",
            "PROCESSING_UPLOAD",
            "READY",
            "FAILED",
            "COPYING",
            "EXPIRED"
        ]
        .contains(&state),
        "package state {state}"
    );
    s(v, "/type");
    time(v, "/created_at");
    links(v);
    s(v, "/guid").to_owned()
}

fn check_build(v: &Value) -> String {
    let state = s(v, "/state");
    assert!(
        ["STAGING", "STAGED", "FAILED"].contains(&state),
        "build state {state}"
    );
    opt_s(v, "/error");
    s(v, "/package/guid");
    let droplet = at(v, "/droplet");
    if !droplet.is_null() {
        s(droplet, "/guid");
    }
    time(v, "/created_at");
    links(v);
    s(v, "/guid").to_owned()
}

fn check_droplet(v: &Value) -> String {
    let state = s(v, "/state");
    assert!(
        [
            "STAGING",
            "AWAITING_UPLOAD",
            "PROCESSING_UPLOAD",
            "STAGED",
            "COPYING",
            "FAILED",
            "EXPIRED"
        ]
        .contains(&state),
        "droplet state {state}"
    );
    time(v, "/created_at");
    opt_s(v, "/image");
    s(v, "/lifecycle/type");
    if let Some(bps) = v.get("buildpacks").filter(|b| !b.is_null()) {
        assert!(bps.is_array(), "buildpacks: {bps}");
    }
    opt_s(v, "/stack");
    links(v);
    s(v, "/guid").to_owned()
}

fn check_route(v: &Value) -> String {
    s(v, "/host");
    s(v, "/path");
    s(v, "/url");
    opt_s(v, "/protocol");
    opt_int(v, "/port");
    let destinations = v["destinations"]
        .as_array()
        .unwrap_or_else(|| panic!("destinations must be a list: {v}"));
    for d in destinations {
        check_destination(d);
    }
    rel_guid(v, "/relationships/space");
    rel_guid(v, "/relationships/domain");
    if let Some(options) = v.get("options").filter(|o| !o.is_null()) {
        for (k, o) in options
            .as_object()
            .unwrap_or_else(|| panic!("options: {options}"))
        {
            assert!(o.is_string() || o.is_null(), "options.{k}: {o}");
        }
    }
    metadata(v);
    links(v);
    s(v, "/guid").to_owned()
}

fn check_destination(d: &Value) {
    s(d, "/guid");
    s(d, "/app/guid");
    s(d, "/app/process/type");
    opt_int(d, "/port");
    opt_s(d, "/protocol");
}

fn check_task(v: &Value) -> String {
    s(v, "/name");
    int(v, "/sequence_id");
    let state = s(v, "/state");
    assert!(
        ["PENDING", "RUNNING", "SUCCEEDED", "CANCELING", "FAILED"].contains(&state),
        "task state {state}"
    );
    opt_s(v, "/command");
    time(v, "/created_at");
    opt_s(v, "/result/failure_reason");
    links(v);
    s(v, "/guid").to_owned()
}

/// A semantic version `MAJOR.MINOR.PATCH[-pre][+build]` as a comparable triple.
fn semver(v: &str) -> (u64, u64, u64) {
    let core = v.split(['-', '+']).next().unwrap();
    let parts: Vec<u64> = core
        .split('.')
        .map(|p| p.parse().unwrap_or_else(|_| panic!("not semver: {v}")))
        .collect();
    assert_eq!(parts.len(), 3, "not semver: {v}");
    (parts[0], parts[1], parts[2])
}

// ---------------------------------------------------------------------------------------------
// Commands, each the CLI's request sequence.
// ---------------------------------------------------------------------------------------------

/// The targeted org and space.
struct Target {
    org: String,
    space: String,
}

/// `cf create-org O` (§3).
async fn create_org(cli: &Cli<'_>, name: &str) -> Option<String> {
    cli.whoami().await;
    let r = cli
        .call(
            "POST",
            "/v3/organizations",
            Some(json!({"name": name, "suspended": false})),
        )
        .await;
    if r.status == 422 {
        let e = cc_error("POST", "/v3/organizations", &r);
        assert_eq!(e.detail, format!("Organization '{name}' already exists."));
        return None;
    }
    assert_eq!(r.status, 201, "create-org: {}", r.body);
    Some(check_org(&r.body))
}

/// A role POST whose "already has the role" 422 the CLI tolerates.
async fn role(cli: &Cli<'_>, kind: &str, user: &str, scope: &str, guid: &str) {
    let body = json!({
        "type": kind,
        "relationships": {scope: {"data": {"guid": guid}}, "user": {"data": {"username": user}}},
    });
    let r = cli.call("POST", "/v3/roles", Some(body)).await;
    if r.status == 422 {
        let e = cc_error("POST", "/v3/roles", &r);
        assert!(
            e.detail.starts_with("User '")
                && e.detail.contains("' already has '")
                && e.detail.contains("' role"),
            "role 422 must be RoleAlreadyExists: {e:?}"
        );
        return;
    }
    assert_eq!(r.status, 201, "POST /v3/roles {kind} {user}: {}", r.body);
    s(&r.body, "/guid");
    assert_eq!(s(&r.body, "/type"), kind);
    assert_eq!(rel_guid(&r.body, "/relationships/user"), user);
    assert_eq!(rel_guid(&r.body, &format!("/relationships/{scope}")), guid);
}

/// `cf create-space S -o O` (§3): the space, then the four role POSTs for the current user.
async fn create_space(cli: &Cli<'_>, org: &str, name: &str) -> Option<String> {
    let me = cli.whoami().await;
    let r = cli
        .call(
            "POST",
            "/v3/spaces",
            Some(json!({"name": name, "relationships": {"organization": {"data": {"guid": org}}}})),
        )
        .await;
    if r.status == 422 {
        let e = cc_error("POST", "/v3/spaces", &r);
        assert!(e.detail.contains("Name must be unique per organization"), "{e:?}");
        return None;
    }
    assert_eq!(r.status, 201, "create-space: {}", r.body);
    let space = check_space(&r.body);
    role(cli, "organization_user", &me, "organization", org).await;
    role(cli, "space_manager", &me, "space", &space).await;
    role(cli, "organization_user", &me, "organization", org).await;
    role(cli, "space_developer", &me, "space", &space).await;
    Some(space)
}

/// The org lookup: `GET /v3/organizations?names=O&page=1&per_page=1`.
async fn org_by_name(cli: &Cli<'_>, name: &str) -> String {
    let orgs = cli
        .resources(&format!(
            "/v3/organizations?{}",
            q(&[("names", name), ("page", "1"), ("per_page", "1")])
        ))
        .await;
    assert_eq!(orgs.len(), 1, "org {name}: {orgs:?}");
    assert_eq!(orgs[0]["name"], name);
    check_org(&orgs[0])
}

/// The space lookup: `GET /v3/spaces?names=S&organization_guids=OG&page=1&per_page=1`.
async fn space_by_name(cli: &Cli<'_>, org: &str, name: &str) -> String {
    let spaces = cli
        .resources(&format!(
            "/v3/spaces?{}",
            q(&[
                ("names", name),
                ("organization_guids", org),
                ("page", "1"),
                ("per_page", "1")
            ])
        ))
        .await;
    assert_eq!(spaces.len(), 1, "space {name}: {spaces:?}");
    assert_eq!(spaces[0]["name"], name);
    check_space(&spaces[0])
}

/// `cf set-space-role U O S R` (§3).
async fn set_space_role(cli: &Cli<'_>, user: &str, org: &str, space: &str, kind: &str) {
    cli.whoami().await;
    let og = org_by_name(cli, org).await;
    let sg = space_by_name(cli, &og, space).await;
    role(cli, "organization_user", user, "organization", &og).await;
    role(cli, kind, user, "space", &sg).await;
}

/// `cf target -o O -s S`.
async fn target(cli: &Cli<'_>, org: &str, space: &str) -> Target {
    let og = org_by_name(cli, org).await;
    let sg = space_by_name(cli, &og, space).await;
    cli.whoami().await;
    Target { org: og, space: sg }
}

/// A fresh foundation: the admin makes org `o` and space `s`, makes `user` a space developer,
/// and `user` targets them.
async fn developer<'a>(stack: &'a CfStack, user: &str) -> (Cli<'a>, Target) {
    let admin = Cli::new(stack, Some(stack.admin()));
    let org = create_org(&admin, "o").await.unwrap();
    create_space(&admin, &org, "s").await.unwrap();
    set_space_role(&admin, user, "o", "s", "space_developer").await;
    let cli = Cli::as_user(stack, user);
    let t = target(&cli, "o", "s").await;
    assert_eq!(t.org, org);
    (cli, t)
}

/// The apps query: `GET /v3/apps?names=A&space_guids=S` (the CLI requires exactly the names).
async fn app_by_name(cli: &Cli<'_>, t: &Target, name: &str) -> Value {
    let apps = cli
        .resources(&format!(
            "/v3/apps?{}",
            q(&[("names", name), ("space_guids", &t.space)])
        ))
        .await;
    assert_eq!(apps.len(), 1, "app {name}: {apps:?}");
    assert_eq!(apps[0]["name"], name);
    check_app(&apps[0]);
    apps[0].clone()
}

/// `cf push A --docker-image I` (§4.1, §4.3, §4.4, §4.6), or with a manifest file when
/// `manifest` is given (then the YAML is diffed and applied as written).
async fn push(cli: &Cli<'_>, t: &Target, name: &str, manifest: Option<&str>) -> Summary {
    cli.whoami().await;
    let generated =
        format!("applications:\n- name: {name}\n  docker:\n    image: {IMAGE}\n  default-route: true\n");
    let yaml = manifest.unwrap_or(&generated);
    if manifest.is_some() {
        let r = cli
            .ok_yaml("POST", &format!("/v3/spaces/{}/manifest_diff", t.space), yaml)
            .await;
        for d in r.body["diff"]
            .as_array()
            .unwrap_or_else(|| panic!("manifest_diff: {}", r.body))
        {
            s(d, "/op");
            s(d, "/path");
        }
    }
    let r = cli
        .ok_yaml(
            "POST",
            &format!("/v3/spaces/{}/actions/apply_manifest", t.space),
            yaml,
        )
        .await;
    cli.job_ok(&r).await;
    let app = app_by_name(cli, t, name).await;
    assert_eq!(
        s(&app, "/lifecycle/type"),
        "docker",
        "a docker push needs a docker app: {app}"
    );
    let guid = s(&app, "/guid").to_owned();

    // §4.3: the docker package, polled until READY.
    let r = cli
        .ok(
            "POST",
            "/v3/packages",
            Some(json!({"type": "docker", "relationships": {"app": {"data": {"guid": guid}}}, "data": {"image": IMAGE}})),
        )
        .await;
    assert_eq!(r.status, 201);
    let package = check_package(&r.body);
    assert_eq!(s(&r.body, "/type"), "docker");
    assert_eq!(s(&r.body, "/data/image"), IMAGE);
    let mut state = s(&r.body, "/state").to_owned();
    let deadline = Instant::now() + PATIENCE;
    while !["READY", "FAILED", "EXPIRED"].contains(&state.as_str()) {
        assert!(Instant::now() < deadline, "package stuck in {state}");
        sleep(Duration::from_millis(200)).await;
        let p = cli.get(&format!("/v3/packages/{package}")).await;
        check_package(&p);
        state = s(&p, "/state").to_owned();
    }
    assert_eq!(state, "READY");

    let droplet = stage(cli, t, name, &guid, &package).await;
    let r = cli
        .ok(
            "PATCH",
            &format!("/v3/apps/{guid}/relationships/current_droplet"),
            Some(json!({"data": {"guid": droplet}})),
        )
        .await;
    assert_eq!(rel(&r.body, ""), Some(droplet.as_str()), "{}", r.body);
    let r = cli
        .ok("POST", &format!("/v3/apps/{guid}/actions/restart"), None)
        .await;
    check_app(&r.body);
    assert_eq!(s(&r.body, "/state"), "STARTED");
    poll_start(cli, &guid).await;
    summary(cli, t, name, true).await
}

/// Staging (§4.4 steps 1–3): the log stream's lookups, the build, its polling and the droplet.
async fn stage(cli: &Cli<'_>, t: &Target, name: &str, app: &str, package: &str) -> String {
    app_by_name(cli, t, name).await;
    let info = cli.get("/api/v1/info").await;
    assert!(semver(s(&info, "/version")) >= (2, 0, 0), "{info}");
    let first = cli
        .get(&format!(
            "/api/v1/read/{app}?{}",
            q(&[
                ("descending", "true"),
                ("limit", "1"),
                ("start_time", GO_ZERO_TIME_NS)
            ])
        ))
        .await;
    envelopes(&first, app);
    let r = cli
        .ok("POST", "/v3/builds", Some(json!({"package": {"guid": package}})))
        .await;
    assert_eq!(r.status, 201);
    let build = check_build(&r.body);
    assert_eq!(s(&r.body, "/package/guid"), package);
    let deadline = Instant::now() + PATIENCE;
    let staged = loop {
        let b = cli.get(&format!("/v3/builds/{build}")).await;
        check_build(&b);
        match s(&b, "/state") {
            "STAGED" => break b,
            "FAILED" => panic!("staging failed: {}", b["error"]),
            _ => {}
        }
        assert!(Instant::now() < deadline, "build stuck: {b}");
        sleep(Duration::from_millis(200)).await;
    };
    let droplet = s(&staged, "/droplet/guid").to_owned();
    // The CLI reads the droplet but does not look at its state.
    let d = cli.get(&format!("/v3/droplets/{droplet}")).await;
    assert_eq!(check_droplet(&d), droplet);
    droplet
}

/// `PollStart` (§4.4 step 6): the app's processes, then each one's stats until an instance
/// runs (or the process has no instances); all instances crashed is "Start unsuccessful".
async fn poll_start(cli: &Cli<'_>, app: &str) {
    let processes = cli.resources(&format!("/v3/apps/{app}/processes")).await;
    assert!(!processes.is_empty(), "an app has at least its web process");
    for p in &processes {
        let guid = check_process(p);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let stats = cli.resources(&format!("/v3/processes/{guid}/stats")).await;
            let states: Vec<String> = stats.iter().map(check_stat).collect();
            if states.is_empty() {
                assert_eq!(int(p, "/instances"), 0, "a process with instances has no stats");
                break;
            }
            if states.iter().any(|s| s == "RUNNING") {
                break;
            }
            assert!(
                !states.iter().all(|s| s == "CRASHED"),
                "Start unsuccessful: {stats:?}"
            );
            assert!(Instant::now() < deadline, "process {guid} never ran: {stats:?}");
            sleep(Duration::from_millis(200)).await;
        }
    }
}

/// What `GetDetailedAppSummary` gathered.
struct Summary {
    app: Value,
    processes: Vec<(Value, Vec<Value>)>,
    routes: Vec<Value>,
    droplet: Option<Value>,
}

/// The summary of `cf app`, push, scale, start and restart (§4.6).
async fn summary(cli: &Cli<'_>, t: &Target, name: &str, push: bool) -> Summary {
    let app = app_by_name(cli, t, name).await;
    let guid = s(&app, "/guid").to_owned();
    let mut processes = Vec::new();
    for p in cli.resources(&format!("/v3/apps/{guid}/processes")).await {
        let pg = check_process(&p);
        assert_eq!(rel_guid(&p, "/relationships/app"), guid);
        let p = if push {
            let full = cli.get(&format!("/v3/processes/{pg}")).await;
            check_process(&full);
            full
        } else {
            p
        };
        for sidecar in cli.resources(&format!("/v3/processes/{pg}/sidecars")).await {
            s(&sidecar, "/name");
        }
        let stats = cli.resources(&format!("/v3/processes/{pg}/stats")).await;
        stats.iter().for_each(|st| {
            check_stat(st);
        });
        processes.push((p, stats));
    }
    let routes = cli.resources(&format!("/v3/apps/{guid}/routes")).await;
    routes.iter().for_each(|r| {
        check_route(r);
    });
    let r = cli
        .call("GET", &format!("/v3/apps/{guid}/droplets/current"), None)
        .await;
    let droplet = if r.status == 404 {
        assert_eq!(
            cc_error("GET", "droplets/current", &r).detail,
            "Droplet not found",
            "any other 404 fails the command"
        );
        None
    } else {
        let mut r = r;
        expect_success("GET", "droplets/current", &mut r);
        check_droplet(&r.body);
        Some(r.body)
    };
    let deployments = cli
        .resources(&format!(
            "/v3/deployments?{}",
            q(&[
                ("app_guids", &guid),
                ("order_by", "-created_at"),
                ("page", "1"),
                ("per_page", "1"),
                ("status_values", "ACTIVE")
            ])
        ))
        .await;
    for d in deployments {
        s(&d, "/guid");
        s(&d, "/state");
    }
    Summary {
        app,
        processes,
        routes,
        droplet,
    }
}

impl Summary {
    fn guid(&self) -> String {
        s(&self.app, "/guid").to_owned()
    }

    fn web(&self) -> &(Value, Vec<Value>) {
        self.processes
            .iter()
            .find(|(p, _)| p["type"] == "web")
            .expect("a web process")
    }

    fn urls(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.routes.iter().map(|r| s(r, "/url").to_owned()).collect();
        urls.sort();
        urls
    }
}

/// Log-cache envelopes as protojson parses them (unknown fields rejected); returns the batch.
fn envelopes(body: &Value, source: &str) -> Vec<Value> {
    let top = body.as_object().unwrap_or_else(|| panic!("{body}"));
    assert!(
        top.keys().all(|k| k == "envelopes"),
        "unknown top-level field: {body}"
    );
    let env = &body["envelopes"];
    assert!(
        env.as_object().unwrap().keys().all(|k| k == "batch"),
        "unknown envelopes field: {env}"
    );
    let batch = env["batch"].as_array().cloned().unwrap_or_default();
    for e in &batch {
        for k in e.as_object().unwrap().keys() {
            assert!(
                [
                    "timestamp",
                    "source_id",
                    "instance_id",
                    "deprecated_tags",
                    "tags",
                    "log",
                    "counter",
                    "gauge",
                    "timer",
                    "event"
                ]
                .contains(&k.as_str()),
                "protojson rejects envelope field {k}: {e}"
            );
        }
        let ts = s(e, "/timestamp");
        assert!(ts.parse::<i64>().is_ok(), "timestamp {ts}");
        assert_eq!(s(e, "/source_id"), source);
        s(e, "/instance_id");
        for (k, v) in e["tags"].as_object().into_iter().flatten() {
            assert!(v.is_string(), "tag {k}: {v}");
        }
        if let Some(log) = e.get("log") {
            let payload = s(log, "/payload");
            assert!(
                payload.len().is_multiple_of(4)
                    && payload
                        .trim_end_matches('=')
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
                "payload not base64: {payload}"
            );
            let ty = &log["type"];
            assert!(
                ty.is_null() || ["OUT", "ERR"].contains(&ty.as_str().unwrap_or("")) || ty == 0 || ty == 1,
                "log type {ty}"
            );
            for k in log.as_object().unwrap().keys() {
                assert!(k == "payload" || k == "type", "unknown log field {k}");
            }
        }
    }
    batch
}

// ---------------------------------------------------------------------------------------------
// The flows.
// ---------------------------------------------------------------------------------------------

/// 1. `cf api URL` then `cf login`/`cf auth` in Kubernetes mode: the root document
/// (unauthenticated, link objects, semver ≥ 3.211.0, `cf_on_k8s`), then `/whoami`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_api_and_k8s_login() {
    let stack = CfStack::start().await;
    let anonymous = Cli::new(&stack, None);
    let root = anonymous.get("/").await;
    assert_eq!(root["cf_on_k8s"], json!(true), "{root}");
    let all = root["links"]
        .as_object()
        .unwrap_or_else(|| panic!("links: {root}"));
    for (name, l) in all {
        assert!(
            l.is_null() || l.is_object(),
            "link {name} must be an object or null: {l}"
        );
        if l.is_object() {
            let href = s(l, "/href");
            assert!(href.starts_with("http"), "link {name}: {href}");
        }
    }
    let version = s(&root, "/links/cloud_controller_v3/meta/version");
    assert!(semver(version) >= (3, 211, 0), "{version}");
    let log_cache = s(&root, "/links/log_cache/href").to_owned();
    for optional in [
        "login",
        "uaa",
        "logging",
        "network_policy_v1",
        "routing",
        "app_ssh",
    ] {
        let l = &root["links"][optional];
        assert!(
            l.is_null() || l.get("href").is_some_and(Value::is_string),
            "{optional}: {l}"
        );
    }

    // Kubernetes-mode login makes no HTTP call; every command then asks /whoami.
    let alice = Cli::as_user(&stack, "alice");
    assert_eq!(alice.whoami().await, "alice");
    let me = alice.get("/whoami").await;
    assert!(me["kind"].is_string(), "{me}");
    let admin = Cli::new(&stack, Some(stack.admin()));
    assert_eq!(admin.whoami().await, "admin");
    // `cf login` without -o lists the orgs; alice has none yet.
    let orgs = alice.resources("/v3/organizations?order_by=name").await;
    assert!(orgs.is_empty(), "{orgs:?}");
    // The log-cache link answers the info probe.
    let info = alice.get(&format!("{log_cache}/api/v1/info")).await;
    assert!(semver(s(&info, "/version")) >= (2, 0, 0));
}

/// 2. `cf create-org`, `cf create-space` (with its four role POSTs; repeating them is the
/// tolerated 422), `cf set-space-role`, `cf orgs`/`cf spaces`, `cf target`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_orgs_spaces_roles_target() {
    let stack = CfStack::start().await;
    let admin = Cli::new(&stack, Some(stack.admin()));
    let org = create_org(&admin, "o").await.expect("created");
    // create-org again: "Organization 'o' already exists." is OK for the CLI.
    assert_eq!(create_org(&admin, "o").await, None);
    let space = create_space(&admin, &org, "s").await.expect("created");
    // create-space again: "Name must be unique per organization" is OK; the roles exist.
    assert_eq!(create_space(&admin, &org, "s").await, None);
    role(&admin, "space_developer", "admin", "space", &space).await;

    set_space_role(&admin, "alice", "o", "s", "space_developer").await;
    // Again: both role POSTs answer RoleAlreadyExists, which the CLI prints and accepts.
    set_space_role(&admin, "alice", "o", "s", "space_developer").await;
    let e = admin
        .fail(
            "POST",
            "/v3/roles",
            Some(json!({"type": "space_developer", "relationships": {"space": {"data": {"guid": space}}, "user": {"data": {"username": "alice"}}}})),
        )
        .await;
    assert_eq!(e.status, 422);
    assert_eq!(
        e.detail,
        "User 'alice' already has 'space_developer' role in space 's'."
    );

    let alice = Cli::as_user(&stack, "alice");
    let t = target(&alice, "o", "s").await;
    assert_eq!((t.org.as_str(), t.space.as_str()), (org.as_str(), space.as_str()));
    // cf orgs, cf spaces.
    let orgs = alice.resources("/v3/organizations?order_by=name").await;
    assert_eq!(orgs.iter().map(check_org).collect::<Vec<_>>(), vec![org.clone()]);
    let spaces = alice
        .resources(&format!(
            "/v3/spaces?{}",
            q(&[("order_by", "name"), ("organization_guids", &org)])
        ))
        .await;
    assert_eq!(
        spaces.iter().map(check_space).collect::<Vec<_>>(),
        vec![space.clone()]
    );
    // `cf target -o O` alone lists the org's spaces (one: auto-targeted).
    let spaces = alice
        .resources(&format!(
            "/v3/spaces?{}",
            q(&[("organization_guids", &org), ("order_by", "name")])
        ))
        .await;
    assert_eq!(spaces.len(), 1);
    // Role fields the CLI reads.
    let roles = admin
        .resources(&format!(
            "/v3/roles?{}",
            q(&[("space_guids", &space), ("types", "space_developer")])
        ))
        .await;
    let users: Vec<&str> = roles
        .iter()
        .map(|r| {
            assert_eq!(s(r, "/type"), "space_developer");
            assert_eq!(rel_guid(r, "/relationships/space"), space);
            rel_guid(r, "/relationships/user")
        })
        .collect();
    assert!(users.contains(&"alice") && users.contains(&"admin"), "{users:?}");
    // A lookup for a missing org is an empty list, not an error.
    let none = alice
        .resources(&format!(
            "/v3/organizations?{}",
            q(&[("names", "nope"), ("page", "1"), ("per_page", "1")])
        ))
        .await;
    assert!(none.is_empty());
}

/// 3. `cf push app --docker-image I` without a manifest file, as a space developer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_push_docker_image() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let sum = push(&cli, &t, "app", None).await;
    assert_eq!(s(&sum.app, "/state"), "STARTED");
    let (web, stats) = sum.web();
    assert_eq!(int(web, "/instances"), 1);
    assert!(stats.iter().any(|st| st["state"] == "RUNNING"), "{stats:?}");
    assert_eq!(sum.urls(), vec![format!("app.{DEFAULT_DOMAIN}")]);
    let route = &sum.routes[0];
    assert_eq!(s(route, "/host"), "app");
    assert_eq!(s(route, "/path"), "");
    let dests = route["destinations"].as_array().unwrap();
    assert_eq!(dests.len(), 1, "{route}");
    assert_eq!(s(&dests[0], "/app/guid"), sum.guid());
    assert_eq!(s(&dests[0], "/app/process/type"), "web");
    let droplet = sum.droplet.as_ref().expect("a current droplet after push");
    assert_eq!(s(droplet, "/state"), "STAGED");
    assert_eq!(s(droplet, "/lifecycle/type"), "docker");
    assert_eq!(opt_s(droplet, "/image"), Some(IMAGE));
}

/// 4. `cf push` with a manifest file: manifest_diff, then apply_manifest (2 instances of 256M,
/// env, two routes); a re-push converges to the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_push_with_manifest_and_repush() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let manifest = format!(
        "---\napplications:\n- name: web\n  docker:\n    image: {IMAGE}\n  instances: 2\n  memory: 256M\n  env:\n    GREETING: hello\n  routes:\n  - route: web.{DEFAULT_DOMAIN}\n  - route: web-alt.{DEFAULT_DOMAIN}/v1\n"
    );
    let first = push(&cli, &t, "web", Some(&manifest)).await;
    let check = |sum: &Summary| {
        let (web, _) = sum.web();
        assert_eq!(int(web, "/instances"), 2, "{web}");
        assert_eq!(int(web, "/memory_in_mb"), 256, "{web}");
        assert_eq!(
            sum.urls(),
            vec![
                format!("web-alt.{DEFAULT_DOMAIN}/v1"),
                format!("web.{DEFAULT_DOMAIN}")
            ]
        );
        for r in &sum.routes {
            assert_eq!(r["destinations"].as_array().unwrap().len(), 1, "{r}");
        }
    };
    check(&first);
    let env = cli.get(&format!("/v3/apps/{}/env", first.guid())).await;
    assert_eq!(env["environment_variables"]["GREETING"], "hello", "{env}");

    // Both instances come up.
    let web_guid = s(&first.web().0, "/guid").to_owned();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = cli.resources(&format!("/v3/processes/{web_guid}/stats")).await;
        if stats.len() == 2 && stats.iter().all(|st| check_stat(st) == "RUNNING") {
            break;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        sleep(Duration::from_millis(200)).await;
    }

    let second = push(&cli, &t, "web", Some(&manifest)).await;
    assert_eq!(second.guid(), first.guid());
    check(&second);
    assert_ne!(
        second.droplet.as_ref().map(|d| d["guid"].clone()),
        first.droplet.as_ref().map(|d| d["guid"].clone()),
        "a re-push stages a new droplet"
    );
    let apps = cli
        .resources(&format!("/v3/apps?{}", q(&[("space_guids", &t.space)])))
        .await;
    assert_eq!(apps.len(), 1);
    let routes = cli
        .resources(&format!("/v3/routes?{}", q(&[("space_guids", &t.space)])))
        .await;
    assert_eq!(routes.len(), 2, "{routes:?}");
}

/// `cf apps` (§5) for the targeted space.
async fn cf_apps(cli: &Cli<'_>, t: &Target) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    cli.whoami().await;
    let apps = cli
        .resources(&format!(
            "/v3/apps?{}",
            q(&[
                ("order_by", "name"),
                ("per_page", "5000"),
                ("space_guids", &t.space)
            ])
        ))
        .await;
    let guids: Vec<String> = apps.iter().map(check_app).collect();
    let processes = cli
        .resources(&format!(
            "/v3/processes?{}",
            q(&[("embed", "process_instances"), ("space_guids", &t.space)])
        ))
        .await;
    for p in &processes {
        check_process(p);
        assert!(p["process_instances"].is_array(), "embed=process_instances: {p}");
        assert!(guids.iter().any(|g| g == rel_guid(p, "/relationships/app")));
    }
    let routes = if guids.is_empty() {
        Vec::new()
    } else {
        cli.resources(&format!("/v3/routes?{}", q(&[("app_guids", &guids.join(","))])))
            .await
    };
    for r in &routes {
        check_route(r);
        assert!(
            r["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| guids.iter().any(|g| g == s(d, "/app/guid"))),
            "route not of these apps: {r}"
        );
    }
    (apps, processes, routes)
}

/// 5. `cf apps` and `cf app`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_apps_and_app() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let one = push(&cli, &t, "one", None).await;
    let two = push(&cli, &t, "two", None).await;
    let (apps, processes, routes) = cf_apps(&cli, &t).await;
    assert_eq!(
        apps.iter().map(|a| s(a, "/name")).collect::<Vec<_>>(),
        vec!["one", "two"],
        "order_by=name"
    );
    for guid in [one.guid(), two.guid()] {
        let web: Vec<&Value> = processes
            .iter()
            .filter(|p| rel_guid(p, "/relationships/app") == guid && p["type"] == "web")
            .collect();
        assert_eq!(web.len(), 1);
        let instances = web[0]["process_instances"].as_array().unwrap();
        assert_eq!(instances.len(), 1, "{}", web[0]);
        assert_eq!(s(&instances[0], "/state"), "RUNNING");
    }
    let mut urls: Vec<&str> = routes.iter().map(|r| s(r, "/url")).collect();
    urls.sort_unstable();
    assert_eq!(
        urls,
        vec![format!("one.{DEFAULT_DOMAIN}"), format!("two.{DEFAULT_DOMAIN}")]
    );

    // cf app one: the summary without the per-process GET.
    cli.whoami().await;
    let sum = summary(&cli, &t, "one", false).await;
    assert_eq!(sum.guid(), one.guid());
    assert_eq!(sum.urls(), vec![format!("one.{DEFAULT_DOMAIN}")]);
    assert!(sum.droplet.is_some());
    // cf app --guid.
    assert_eq!(s(&app_by_name(&cli, &t, "two").await, "/guid"), two.guid());
}

/// `cf start`'s and `cf restart`'s package and droplet check (§5): the newest package and its
/// staged droplets; returns (package GUID, whether it has a staged droplet).
async fn newest_package(cli: &Cli<'_>, app: &str, ready_only: bool) -> (String, bool) {
    let mut query = vec![
        ("app_guids", app),
        ("order_by", "-created_at"),
        ("page", "1"),
        ("per_page", "1"),
    ];
    if ready_only {
        query.push(("states", "READY"));
    }
    let packages = cli.resources(&format!("/v3/packages?{}", q(&query))).await;
    assert_eq!(packages.len(), 1, "{packages:?}");
    let package = check_package(&packages[0]);
    let droplets = cli
        .resources(&format!(
            "/v3/packages/{package}/droplets?{}",
            q(&[("page", "1"), ("per_page", "1"), ("states", "STAGED")])
        ))
        .await;
    droplets.iter().for_each(|d| {
        check_droplet(d);
    });
    (package, !droplets.is_empty())
}

async fn action(cli: &Cli<'_>, app: &str, verb: &str) -> Value {
    let r = cli
        .ok("POST", &format!("/v3/apps/{app}/actions/{verb}"), None)
        .await;
    check_app(&r.body);
    r.body
}

/// 6. `cf scale -i 3 -m 512M`, `cf restart`, `cf restage`, `cf stop`, `cf start`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_scale_restart_restage_stop_start() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let pushed = push(&cli, &t, "app", None).await;
    let guid = pushed.guid();

    // cf scale app -i 3 -m 512M.
    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let r = cli
        .ok(
            "POST",
            &format!("/v3/apps/{guid}/processes/web/actions/scale"),
            Some(json!({"instances": 3, "memory_in_mb": 512})),
        )
        .await;
    check_process(&r.body);
    assert_eq!(
        (int(&r.body, "/instances"), int(&r.body, "/memory_in_mb")),
        (3, 512)
    );
    assert_eq!(s(&action(&cli, &guid, "stop").await, "/state"), "STOPPED");
    assert_eq!(s(&action(&cli, &guid, "start").await, "/state"), "STARTED");
    poll_start(&cli, &guid).await;
    let sum = summary(&cli, &t, "app", false).await;
    assert_eq!(int(&sum.web().0, "/memory_in_mb"), 512);
    let web = s(&sum.web().0, "/guid").to_owned();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stats = cli.resources(&format!("/v3/processes/{web}/stats")).await;
        if stats.len() == 3 && stats.iter().all(|st| check_stat(st) == "RUNNING") {
            assert!(
                stats
                    .iter()
                    .all(|st| opt_uint(st, "/mem_quota") == Some(512 * 1024 * 1024)),
                "{stats:?}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{stats:?}");
        sleep(Duration::from_millis(200)).await;
    }

    // cf restart app: the package/droplet check, then stop and start (not actions/restart).
    cli.whoami().await;
    let app = app_by_name(&cli, &t, "app").await;
    let (_, staged) = newest_package(&cli, &guid, false).await;
    assert!(staged, "the pushed package has a staged droplet");
    assert_eq!(s(&app, "/state"), "STARTED");
    action(&cli, &guid, "stop").await;
    action(&cli, &guid, "start").await;
    poll_start(&cli, &guid).await;
    summary(&cli, &t, "app", false).await;

    // cf restage app: the newest READY package, staged again, then stop, droplet, start.
    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let old = pushed.droplet.as_ref().map(|d| s(d, "/guid").to_owned()).unwrap();
    let (package, _) = newest_package(&cli, &guid, true).await;
    let again = cli
        .resources(&format!(
            "/v3/packages?{}",
            q(&[
                ("app_guids", &guid),
                ("guids", &package),
                ("page", "1"),
                ("per_page", "1")
            ])
        ))
        .await;
    assert_eq!(again.len(), 1);
    let droplet = stage(&cli, &t, "app", &guid, &package).await;
    assert_ne!(droplet, old);
    action(&cli, &guid, "stop").await;
    cli.ok(
        "PATCH",
        &format!("/v3/apps/{guid}/relationships/current_droplet"),
        Some(json!({"data": {"guid": droplet}})),
    )
    .await;
    action(&cli, &guid, "start").await;
    poll_start(&cli, &guid).await;
    let sum = summary(&cli, &t, "app", false).await;
    assert_eq!(
        sum.droplet.as_ref().map(|d| s(d, "/guid").to_owned()),
        Some(droplet)
    );

    // cf stop app.
    cli.whoami().await;
    let app = app_by_name(&cli, &t, "app").await;
    assert_eq!(s(&app, "/state"), "STARTED");
    assert_eq!(s(&action(&cli, &guid, "stop").await, "/state"), "STOPPED");
    assert_eq!(s(&app_by_name(&cli, &t, "app").await, "/state"), "STOPPED");
    // cf stop again: the app is STOPPED, so the CLI sends nothing more.

    // cf start app: the newest package has a droplet, so no staging.
    cli.whoami().await;
    let app = app_by_name(&cli, &t, "app").await;
    assert_eq!(s(&app, "/state"), "STOPPED");
    let (_, staged) = newest_package(&cli, &guid, false).await;
    assert!(staged);
    assert_eq!(s(&action(&cli, &guid, "start").await, "/state"), "STARTED");
    poll_start(&cli, &guid).await;
    let sum = summary(&cli, &t, "app", false).await;
    assert_eq!(s(&sum.app, "/state"), "STARTED");
    assert_eq!(int(&sum.web().0, "/instances"), 3);
}

/// 7. `cf set-env`, `cf unset-env`, `cf env`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_set_env_unset_env_env() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let guid = push(&cli, &t, "app", None).await.guid();

    // cf set-env app GREETING hello; cf set-env app OTHER x.
    for (k, v) in [("GREETING", "hello"), ("OTHER", "x")] {
        cli.whoami().await;
        app_by_name(&cli, &t, "app").await;
        let r = cli
            .ok(
                "PATCH",
                &format!("/v3/apps/{guid}/environment_variables"),
                Some(json!({"var": {k: v}})),
            )
            .await;
        assert_eq!(r.body["var"][k], v, "{}", r.body);
        for (name, value) in r.body["var"].as_object().unwrap() {
            assert!(value.is_string(), "var.{name}: {value}");
        }
    }

    // cf env app.
    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let e = app_env(&cli, &guid).await;
    assert_eq!(e["environment_variables"]["GREETING"], "hello");
    assert_eq!(e["environment_variables"]["OTHER"], "x");
    assert_eq!(
        s(&e, "/application_env_json/VCAP_APPLICATION/application_name"),
        "app"
    );

    // cf unset-env app GREETING: env first, then the null.
    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    app_env(&cli, &guid).await;
    let r = cli
        .ok(
            "PATCH",
            &format!("/v3/apps/{guid}/environment_variables"),
            Some(json!({"var": {"GREETING": null}})),
        )
        .await;
    assert!(r.body["var"].get("GREETING").is_none(), "{}", r.body);
    assert_eq!(r.body["var"]["OTHER"], "x");
    let e = app_env(&cli, &guid).await;
    assert!(e["environment_variables"].get("GREETING").is_none(), "{e}");
}

/// `GET /v3/apps/G/env` with the parts `cf env` decodes.
async fn app_env(cli: &Cli<'_>, guid: &str) -> Value {
    let env = cli.get(&format!("/v3/apps/{guid}/env")).await;
    for part in [
        "environment_variables",
        "staging_env_json",
        "running_env_json",
        "system_env_json",
        "application_env_json",
    ] {
        assert!(env[part].is_object(), "{part} must be an object: {env}");
    }
    env
}

/// 8. `cf logs app --recent`: the info probe and the descending read from Go's zero time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_logs_recent() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let guid = push(&cli, &t, "app", None).await.guid();
    let root = Cli::new(&stack, None).get("/").await;
    let lc = s(&root, "/links/log_cache/href").to_owned();

    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let info = cli.get(&format!("{lc}/api/v1/info")).await;
    assert!(semver(s(&info, "/version")) >= (2, 0, 0), "{info}");
    let read = cli
        .get(&format!(
            "{lc}/api/v1/read/{guid}?{}",
            q(&[
                ("descending", "true"),
                ("envelope_types", "LOG"),
                ("limit", "1000"),
                ("start_time", GO_ZERO_TIME_NS)
            ])
        ))
        .await;
    let batch = envelopes(&read, &guid);
    assert!(
        !batch.is_empty(),
        "a pushed app has staging or event logs: {read}"
    );
    let stamps: Vec<i64> = batch
        .iter()
        .map(|e| s(e, "/timestamp").parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] >= w[1]), "descending: {stamps:?}");
    assert!(batch.iter().all(|e| e.get("log").is_some()), "envelope_types=LOG");
}

/// The domain lookup: `GET /v3/domains?names=D&page=1&per_page=1`.
async fn domain_by_name(cli: &Cli<'_>, name: &str) -> String {
    let domains = cli
        .resources(&format!(
            "/v3/domains?{}",
            q(&[("names", name), ("page", "1"), ("per_page", "1")])
        ))
        .await;
    assert_eq!(domains.len(), 1, "{domains:?}");
    let d = &domains[0];
    assert_eq!(s(d, "/name"), name);
    assert!(d["internal"].is_boolean(), "{d}");
    rel(d, "/relationships/organization");
    for p in d["supported_protocols"]
        .as_array()
        .unwrap_or_else(|| panic!("{d}"))
    {
        assert!(p.is_string());
    }
    if !d["router_group"].is_null() {
        s(d, "/router_group/guid");
    }
    s(d, "/guid").to_owned()
}

/// The route lookup of map-route/unmap-route, with the empty values the CLI sends.
async fn route_lookup(cli: &Cli<'_>, domain: &str, host: &str, path: &str) -> Option<Value> {
    let routes = cli
        .resources(&format!(
            "/v3/routes?{}",
            q(&[
                ("domain_guids", domain),
                ("hosts", host),
                ("page", "1"),
                ("per_page", "1"),
                ("paths", path)
            ])
        ))
        .await;
    assert!(routes.len() <= 1);
    routes.first().map(|r| {
        check_route(r);
        assert_eq!(
            (s(r, "/host"), s(r, "/path")),
            (host, path),
            "lookup ignored a filter: {r}"
        );
        r.clone()
    })
}

/// 9. `cf create-route`, `cf map-route` (new and already mapped), `cf unmap-route`, `cf routes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_routes_map_unmap() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let guid = push(&cli, &t, "app", None).await.guid();

    // cf create-route apps.example.com --hostname extra.
    cli.whoami().await;
    let domain = domain_by_name(&cli, DEFAULT_DOMAIN).await;
    let body = json!({"host": "extra", "relationships": {"space": {"data": {"guid": t.space}}, "domain": {"data": {"guid": domain}}}});
    let r = cli.ok("POST", "/v3/routes", Some(body.clone())).await;
    assert_eq!(r.status, 201);
    let extra = check_route(&r.body);
    assert_eq!(s(&r.body, "/url"), format!("extra.{DEFAULT_DOMAIN}"));
    assert_eq!(r.body["destinations"], json!([]));
    // Again: "Route already exists" is what the CLI treats as idempotent.
    let e = cli.fail("POST", "/v3/routes", Some(body)).await;
    assert_eq!(e.status, 422, "{e:?}");
    assert!(e.detail.contains("Route already exists"), "{e:?}");

    // cf map-route app apps.example.com --hostname extra.
    cli.whoami().await;
    let domain = domain_by_name(&cli, DEFAULT_DOMAIN).await;
    app_by_name(&cli, &t, "app").await;
    let route = route_lookup(&cli, &domain, "extra", "")
        .await
        .expect("extra exists");
    assert_eq!(s(&route, "/guid"), extra);
    let r = cli
        .ok(
            "POST",
            &format!("/v3/routes/{extra}/destinations"),
            Some(json!({"destinations": [{"app": {"guid": guid}}]})),
        )
        .await;
    let dests = r.body["destinations"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body));
    dests.iter().for_each(check_destination);
    assert!(
        dests
            .iter()
            .any(|d| d["app"]["guid"] == json!(guid) && d["app"]["process"]["type"] == "web")
    );

    // cf map-route again (and for the default route): already mapped, nothing is posted.
    for host in ["extra", "app"] {
        let route = route_lookup(&cli, &domain, host, "").await.expect("exists");
        assert!(
            route["destinations"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["app"]["guid"] == json!(guid) && d["app"]["process"]["type"] == "web"),
            "{route}"
        );
    }
    // `hosts=` means the empty host: no route of this domain has one.
    assert!(route_lookup(&cli, &domain, "", "").await.is_none());

    // cf map-route app apps.example.com --hostname fresh: the lookup misses, so it is created.
    assert!(route_lookup(&cli, &domain, "fresh", "").await.is_none());
    let r = cli
        .ok(
            "POST",
            "/v3/routes",
            Some(json!({"host": "fresh", "relationships": {"space": {"data": {"guid": t.space}}, "domain": {"data": {"guid": domain}}}})),
        )
        .await;
    let fresh = check_route(&r.body);
    cli.ok(
        "POST",
        &format!("/v3/routes/{fresh}/destinations"),
        Some(json!({"destinations": [{"app": {"guid": guid}}]})),
    )
    .await;

    // cf routes.
    cli.whoami().await;
    let routes = cli
        .resources(&format!(
            "/v3/routes?{}",
            q(&[("per_page", "5000"), ("space_guids", &t.space)])
        ))
        .await;
    routes.iter().for_each(|r| {
        check_route(r);
    });
    assert_eq!(routes.len(), 3, "{routes:?}");
    let spaces = cli
        .resources(&format!("/v3/spaces?{}", q(&[("guids", &t.space)])))
        .await;
    assert_eq!(spaces.len(), 1);
    let apps = cli
        .resources(&format!("/v3/apps?{}", q(&[("guids", &guid)])))
        .await;
    assert_eq!(apps.len(), 1, "every referenced app must come back");
    let route_guids: Vec<String> = routes.iter().map(|r| s(r, "/guid").to_owned()).collect();
    let (bindings, _) = cli
        .list(&format!(
            "/v3/service_route_bindings?{}",
            q(&[
                ("include", "service_instance"),
                ("route_guids", &route_guids.join(","))
            ])
        ))
        .await;
    assert!(bindings.is_empty());
    for r in &routes {
        let url = s(r, "/url");
        let host = s(r, "/host");
        assert_eq!(
            url,
            format!("{host}.{DEFAULT_DOMAIN}"),
            "the CLI derives the domain from url"
        );
    }

    // cf unmap-route app apps.example.com --hostname extra.
    cli.whoami().await;
    let domain = domain_by_name(&cli, DEFAULT_DOMAIN).await;
    app_by_name(&cli, &t, "app").await;
    let route = route_lookup(&cli, &domain, "extra", "").await.expect("exists");
    let dest = route["destinations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["app"]["guid"] == json!(guid))
        .map(|d| s(d, "/guid").to_owned())
        .expect("mapped");
    let r = cli
        .call("DELETE", &format!("/v3/routes/{extra}/destinations/{dest}"), None)
        .await;
    assert!(
        r.status == 204 || (r.status < 300 && r.body.is_object()),
        "unmap must be 204 or JSON: {} {:?}",
        r.status,
        r.raw
    );
    let after = cli.get(&format!("/v3/routes/{extra}")).await;
    assert_eq!(after["destinations"], json!([]), "{after}");
    // The app keeps its other routes.
    let mine = cli.resources(&format!("/v3/apps/{guid}/routes")).await;
    let mut urls: Vec<&str> = mine.iter().map(|r| s(r, "/url")).collect();
    urls.sort_unstable();
    assert_eq!(
        urls,
        vec![format!("app.{DEFAULT_DOMAIN}"), format!("fresh.{DEFAULT_DOMAIN}")]
    );
}

/// 10. `cf delete app -r -f`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_delete_with_routes() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let guid = push(&cli, &t, "app", None).await.guid();

    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let routes = cli.resources(&format!("/v3/apps/{guid}/routes")).await;
    assert_eq!(routes.len(), 1);
    let r = cli.ok("DELETE", &format!("/v3/apps/{guid}"), None).await;
    assert_eq!(r.status, 202);
    assert!(r.location.is_some(), "app.delete is a job");
    cli.job_ok(&r).await;
    for route in &routes {
        let rg = s(route, "/guid");
        let r = cli.call("DELETE", &format!("/v3/routes/{rg}"), None).await;
        if r.status != 404 {
            let mut r = r;
            expect_success("DELETE", "route", &mut r);
            cli.job_ok(&r).await;
        }
    }

    // The app is gone: the apps query finds nothing (the CLI warns), a GET is "App not found".
    let apps = cli
        .resources(&format!(
            "/v3/apps?{}",
            q(&[("names", "app"), ("space_guids", &t.space)])
        ))
        .await;
    assert!(apps.is_empty(), "{apps:?}");
    assert_eq!(
        cli.fail("GET", &format!("/v3/apps/{guid}"), None).await,
        err(404, "CF-ResourceNotFound", "App not found")
    );
    for route in &routes {
        let e = cli
            .fail("GET", &format!("/v3/routes/{}", s(route, "/guid")), None)
            .await;
        assert_eq!((e.status, e.detail.as_str()), (404, "Route not found"));
    }
    let left = cli
        .resources(&format!("/v3/processes?{}", q(&[("app_guids", &guid)])))
        .await;
    assert!(left.is_empty(), "{left:?}");
}

/// 11. `cf run-task`, `cf tasks`, `cf terminate-task`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_tasks() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let guid = push(&cli, &t, "app", None).await.guid();

    // cf run-task app -c "echo hi"; cf run-task app -c "sleep 600" --name long.
    let mut created = Vec::new();
    for (command, name) in [("echo hi", None), ("sleep 600", Some("long"))] {
        cli.whoami().await;
        app_by_name(&cli, &t, "app").await;
        let mut body = json!({"command": command});
        if let Some(n) = name {
            body["name"] = json!(n);
        }
        let r = cli
            .ok("POST", &format!("/v3/apps/{guid}/tasks"), Some(body))
            .await;
        check_task(&r.body);
        if let Some(n) = name {
            assert_eq!(s(&r.body, "/name"), n);
        }
        created.push(r.body);
    }
    assert_eq!(int(&created[0], "/sequence_id"), 1);
    assert_eq!(int(&created[1], "/sequence_id"), 2);

    // cf terminate-task app 2, at once (the simulated cluster runs a task's Job in 200 ms).
    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let found = cli
        .resources(&format!(
            "/v3/apps/{guid}/tasks?{}",
            q(&[("page", "1"), ("per_page", "1"), ("sequence_ids", "2")])
        ))
        .await;
    assert_eq!(found.len(), 1, "{found:?}");
    let long = check_task(&found[0]);
    assert_eq!(int(&found[0], "/sequence_id"), 2);
    let r = cli.ok("PUT", &format!("/v3/tasks/{long}/cancel"), None).await;
    check_task(&r.body);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let task = cli.get(&format!("/v3/tasks/{long}")).await;
        check_task(&task);
        if task["state"] == "FAILED" {
            break;
        }
        assert!(
            ["CANCELING", "RUNNING", "PENDING"].contains(&s(&task, "/state")),
            "{task}"
        );
        assert!(Instant::now() < deadline, "{task}");
        sleep(Duration::from_millis(200)).await;
    }

    // cf tasks app.
    cli.whoami().await;
    app_by_name(&cli, &t, "app").await;
    let tasks = cli
        .resources(&format!("/v3/apps/{guid}/tasks?{}", q(&[("per_page", "5000")])))
        .await;
    let mut seq: Vec<i64> = tasks.iter().map(|t| int(t, "/sequence_id")).collect();
    seq.sort_unstable();
    assert_eq!(seq, vec![1, 2]);
    tasks.iter().for_each(|t| {
        check_task(t);
    });
    let deadline = Instant::now() + PATIENCE;
    let first = s(&created[0], "/guid").to_owned();
    loop {
        let task = cli.get(&format!("/v3/tasks/{first}")).await;
        if check_task(&task) == first && task["state"] == "SUCCEEDED" {
            break;
        }
        assert!(Instant::now() < deadline, "{task}");
        sleep(Duration::from_millis(200)).await;
    }
}

/// 12. `cf cups`, `cf bind-service` (twice), `cf services`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_cups_bind_services() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;
    let guid = push(&cli, &t, "app", None).await.guid();

    // cf cups db -p '{"uri":"postgres://db"}', twice.
    let body = json!({
        "type": "user-provided",
        "name": "db",
        "relationships": {"space": {"data": {"guid": t.space}}},
        "credentials": {"uri": "postgres://db"},
    });
    cli.whoami().await;
    let r = cli.ok("POST", "/v3/service_instances", Some(body.clone())).await;
    assert_eq!(r.status, 201);
    let e = cli.fail("POST", "/v3/service_instances", Some(body)).await;
    assert_eq!(e.status, 422);
    assert!(e.detail.contains("The service instance name is taken"), "{e:?}");

    // cf bind-service app db, twice.
    let bind = async || {
        cli.whoami().await;
        let instances = cli
            .resources(&format!(
                "/v3/service_instances?{}",
                q(&[
                    ("names", "db"),
                    ("page", "1"),
                    ("per_page", "1"),
                    ("space_guids", &t.space)
                ])
            ))
            .await;
        assert_eq!(instances.len(), 1);
        let si = s(&instances[0], "/guid").to_owned();
        let apps = cli
            .resources(&format!(
                "/v3/apps?{}",
                q(&[
                    ("names", "app"),
                    ("page", "1"),
                    ("per_page", "1"),
                    ("space_guids", &t.space)
                ])
            ))
            .await;
        assert_eq!(apps.len(), 1);
        let r = cli
            .call(
                "POST",
                "/v3/service_credential_bindings",
                Some(json!({"type": "app", "relationships": {"service_instance": {"data": {"guid": si}}, "app": {"data": {"guid": guid}}}})),
            )
            .await;
        (si, r)
    };
    let (si, mut r) = bind().await;
    expect_success("POST", "bind", &mut r);
    cli.job_ok(&r).await;
    let (_, r) = bind().await;
    let e = cc_error("POST", "bind again", &r);
    assert_eq!(e.status, 422);
    assert!(
        e.detail
            .contains("The app is already bound to the service instance"),
        "{e:?}"
    );

    // cf services.
    cli.whoami().await;
    let (instances, _) = cli
        .list(&format!(
            "/v3/service_instances?{}",
            q(&[
                ("fields[service_plan]", "guid,name,relationships.service_offering"),
                (
                    "fields[service_plan.service_offering]",
                    "guid,name,relationships.service_broker"
                ),
                (
                    "fields[service_plan.service_offering.service_broker]",
                    "guid,name"
                ),
                ("order_by", "name"),
                ("per_page", "5000"),
                ("space_guids", &t.space)
            ])
        ))
        .await;
    assert_eq!(instances.len(), 1, "{instances:?}");
    let i = &instances[0];
    assert_eq!(
        (s(i, "/guid"), s(i, "/name"), s(i, "/type")),
        (si.as_str(), "db", "user-provided")
    );
    s(i, "/last_operation/type");
    s(i, "/last_operation/state");
    let (bindings, included) = cli
        .list(&format!(
            "/v3/service_credential_bindings?{}",
            q(&[("include", "app"), ("service_instance_guids", &si)])
        ))
        .await;
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    assert_eq!(rel_guid(&bindings[0], "/relationships/app"), guid);
    let apps = included
        .get("apps")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    assert_eq!(apps.len(), 1, "included.apps: {included:?}");
    assert_eq!(
        (s(&apps[0], "/guid"), s(&apps[0], "/name")),
        (guid.as_str(), "app")
    );

    // `cf env` shows the binding (the controller writes VCAP_SERVICES a moment after the bind).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let env = app_env(&cli, &guid).await;
        let ups = &env["system_env_json"]["VCAP_SERVICES"]["user-provided"];
        if ups[0]["name"] == "db" {
            assert_eq!(ups[0]["credentials"]["uri"], "postgres://db");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "VCAP_SERVICES never shows the binding: {env}"
        );
        sleep(Duration::from_millis(200)).await;
    }
}

/// 13. The error shapes and exact strings the CLI branches on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cf_error_shapes() {
    let stack = CfStack::start().await;
    let (cli, t) = developer(&stack, "alice").await;

    assert_eq!(
        cli.fail("GET", "/v3/no_such_thing", None).await,
        err(404, "CF-NotFound", "Unknown request")
    );
    let anonymous = Cli::new(&stack, None);
    let e = anonymous.fail("GET", "/v3/apps", None).await;
    assert_eq!(
        (e.status, e.title.as_str()),
        (401, "CF-NotAuthenticated"),
        "{e:?}"
    );
    let bad = Cli::new(&stack, Some("not-a-token".to_owned()));
    let e = bad.fail("GET", "/v3/apps", None).await;
    assert_eq!(
        (e.status, e.title.as_str()),
        (401, "CF-InvalidAuthToken"),
        "{e:?}"
    );
    let e = bad.fail("GET", "/whoami", None).await;
    assert_eq!(
        (e.status, e.title.as_str()),
        (401, "CF-InvalidAuthToken"),
        "{e:?}"
    );

    // An app without a droplet (cf push --no-start's state): the summary's droplet 404 and
    // cf start's 422.
    let r = cli
        .ok(
            "POST",
            "/v3/apps",
            Some(json!({"name": "bare", "relationships": {"space": {"data": {"guid": t.space}}}, "lifecycle": {"type": "docker", "data": {}}})),
        )
        .await;
    assert_eq!(r.status, 201);
    let guid = check_app(&r.body);
    assert_eq!(s(&r.body, "/state"), "STOPPED");
    assert_eq!(
        cli.fail("GET", &format!("/v3/apps/{guid}/droplets/current"), None)
            .await,
        err(404, "CF-ResourceNotFound", "Droplet not found")
    );
    let sum = summary(&cli, &t, "bare", false).await;
    assert!(sum.droplet.is_none());
    let e = cli
        .fail("POST", &format!("/v3/apps/{guid}/actions/start"), None)
        .await;
    assert_eq!(
        (e.status, e.detail.as_str()),
        (422, "Assign a droplet before starting this app.")
    );
    // The same name again.
    let e = cli
        .fail(
            "POST",
            "/v3/apps",
            Some(json!({"name": "bare", "relationships": {"space": {"data": {"guid": t.space}}}})),
        )
        .await;
    assert_eq!(
        (e.status, e.detail.as_str()),
        (422, "App with the name 'bare' already exists.")
    );
    // Unknown GUIDs.
    let missing = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        cli.fail("GET", &format!("/v3/apps/{missing}"), None).await,
        err(404, "CF-ResourceNotFound", "App not found")
    );
    assert_eq!(
        cli.fail("GET", &format!("/v3/droplets/{missing}"), None)
            .await
            .detail,
        "Droplet not found"
    );
    assert_eq!(
        cli.fail("GET", &format!("/v3/processes/{missing}"), None)
            .await
            .detail,
        "Process not found"
    );
    // A task without a droplet.
    let e = cli
        .fail(
            "POST",
            &format!("/v3/apps/{guid}/tasks"),
            Some(json!({"command": "true"})),
        )
        .await;
    assert_eq!(e.status, 422);
    assert!(e.detail.starts_with("Task must have a droplet"), "{e:?}");
}
