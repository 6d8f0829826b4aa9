//! `/v3/processes` and `/v3/apps/{guid}/processes`: get, list, PATCH, scale, stats, sidecars,
//! instance restarts.
//!
//! Instances are the app's Pods (labels app GUID and process type) from the façade's Pod
//! cache. Deployment Pods have no ordinal, so an instance's index is its rank among the live
//! Pods ordered by creation; wanted instances without a Pod are shown `DOWN`. There is no
//! metrics API behind the façade, so usage figures are zeros.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get, post},
};
use k8s_openapi::{api::core::v1::Pod, jiff::Timestamp};
use kube::{Api, ResourceExt, api::DeleteParams, runtime::reflector::Store};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};

use super::{
    apps::find_app,
    metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        body::{MetadataBody, parse},
        error::from_kube,
        pagination::{PageParams, page},
        query::Query,
    },
    crd::{AppState, CFApp, CFProcess, HealthCheck, HealthCheckType},
    labels::{APP_GUID, PROCESS_TYPE},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/processes", get(list))
        .route("/v3/processes/{guid}", get(show).patch(update))
        .route("/v3/processes/{guid}/actions/scale", post(scale))
        .route("/v3/processes/{guid}/stats", get(stats))
        .route("/v3/processes/{guid}/sidecars", get(sidecars))
        .route("/v3/processes/{guid}/instances/{index}", delete(kill_instance))
        .route("/v3/apps/{guid}/processes", get(list_of_app))
        .route(
            "/v3/apps/{guid}/processes/{type}",
            get(show_of_app).patch(update_of_app),
        )
        .route(
            "/v3/apps/{guid}/processes/{type}/actions/scale",
            post(scale_of_app),
        )
        .route("/v3/apps/{guid}/processes/{type}/stats", get(stats_of_app))
        .route(
            "/v3/apps/{guid}/processes/{type}/instances/{index}",
            delete(kill_instance_of_app),
        )
}

fn check_type(t: HealthCheckType) -> &'static str {
    match t {
        HealthCheckType::Port => "port",
        HealthCheckType::Process => "process",
        HealthCheckType::Http => "http",
    }
}

/// The v3 `health_check` (liveness) or `readiness_health_check` object.
fn health_check_json(check: &HealthCheck, liveness: bool) -> Value {
    let mut data = json!({
        "invocation_timeout": check.invocation_timeout,
        "interval": check.interval,
    });
    if liveness {
        data["timeout"] = json!(check.timeout);
    }
    if check.type_ == HealthCheckType::Http {
        data["endpoint"] = json!(check.endpoint.as_deref().unwrap_or("/"));
    }
    json!({"type": check_type(check.type_), "data": data})
}

/// The app of a process, from the cache.
fn app_of(caches: &Caches, process: &CFProcess) -> Option<Arc<CFApp>> {
    caches.apps.find(|a| {
        a.metadata.name.as_deref() == Some(&process.spec.app_guid) && a.namespace() == process.namespace()
    })
}

impl CfKind for CFProcess {
    const KIND: &'static str = "Process";
    const FILTERS: &'static [&'static str] =
        &["types", "app_guids", "space_guids", "organization_guids", "embed"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.processes
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let space = self.namespace().unwrap_or_default();
        let app = &self.spec.app_guid;
        let (created_at, updated_at) = timestamps(&self.metadata);
        let readiness = self
            .spec
            .readiness_health_check
            .clone()
            .unwrap_or_else(|| HealthCheck {
                type_: self.spec.health_check.type_,
                endpoint: self.spec.health_check.endpoint.clone(),
                ..HealthCheck::default()
            });
        let mut scale = cx.link(&format!("/v3/processes/{guid}/actions/scale"));
        scale["method"] = json!("POST");
        let mut v = json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "type": self.spec.process_type,
            "command": command(self, cx),
            "user": "vcap",
            "instances": self.spec.instances,
            "memory_in_mb": self.spec.memory_in_mb,
            "disk_in_mb": self.spec.disk_in_mb,
            "log_rate_limit_in_bytes_per_second": self.spec.log_rate_limit_in_bytes_per_second.unwrap_or(-1),
            "health_check": health_check_json(&self.spec.health_check, true),
            "readiness_health_check": health_check_json(&readiness, false),
            "relationships": {
                "app": to_one(Some(app)),
                "revision": to_one(None),
            },
            "metadata": metadata(&self.metadata),
            "links": {
                "self": cx.link(&format!("/v3/processes/{guid}")),
                "scale": scale,
                "app": cx.link(&format!("/v3/apps/{app}")),
                "space": cx.link(&format!("/v3/spaces/{space}")),
                "stats": cx.link(&format!("/v3/processes/{guid}/stats")),
            },
            "version": self.metadata.uid.clone().unwrap_or_default(),
        });
        if cx
            .query
            .and_then(|q| q.list("embed"))
            .is_some_and(|e| e.iter().any(|e| e == "process_instances"))
        {
            let now = Timestamp::now();
            let instances: Vec<Value> = instances(cx.caches, self, now)
                .iter()
                .map(|i| json!({"index": i.index, "state": i.state.as_str(), "since": i.since}))
                .collect();
            v["process_instances"] = json!(instances);
        }
        v
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = self.namespace().unwrap_or_default();
        match key {
            "types" => values.contains(&self.spec.process_type),
            "app_guids" => values.contains(&self.spec.app_guid),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "embed" => true,
            _ => true,
        }
    }
}

/// The command the process runs: its own, else its app's current droplet's for its type.
fn command(process: &CFProcess, cx: &Cx<'_>) -> Option<String> {
    if process.spec.command.is_some() {
        return process.spec.command.clone();
    }
    let app = app_of(cx.caches, process)?;
    let droplet_guid = app.spec.current_droplet_guid.clone()?;
    let droplet = cx
        .caches
        .droplets
        .find(|d| d.metadata.name.as_deref() == Some(&droplet_guid))?;
    let types = droplet
        .status
        .as_ref()
        .map(|s| &s.process_types)
        .filter(|t| !t.is_empty())
        .unwrap_or(&droplet.spec.process_types);
    types
        .get(&process.spec.process_type)
        .cloned()
        .filter(|c| !c.is_empty())
}

/// The state of one instance, in CF's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceState {
    /// Ready.
    Running,
    /// Not ready yet.
    Starting,
    /// Failing and not going to become ready by itself.
    Crashed,
    /// Wanted, but there is no Pod for it.
    Down,
}

impl InstanceState {
    /// CF's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Starting => "STARTING",
            Self::Crashed => "CRASHED",
            Self::Down => "DOWN",
        }
    }
}

/// One instance of a process.
#[derive(Debug, Clone)]
pub struct Instance {
    /// Its index.
    pub index: usize,
    /// Its state.
    pub state: InstanceState,
    /// Unix seconds since it is in this state (0 for DOWN).
    pub since: i64,
    /// Seconds it has been running (0 unless running).
    pub uptime: i64,
    /// Why it is crashed, when it is.
    pub details: Option<String>,
    /// Its Pod, when it has one.
    pub pod: Option<Arc<Pod>>,
}

/// Waiting reasons that mean a container will not become ready by itself.
const CRASH_REASONS: &[&str] = &[
    "CrashLoopBackOff",
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The CF state of a Pod, when it happened, and the crash details if any.
pub fn pod_state(pod: &Pod) -> (InstanceState, Option<Timestamp>, Option<String>) {
    let created = pod.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let Some(status) = pod.status.as_ref() else {
        return (InstanceState::Starting, created, None);
    };
    let since_start = status.start_time.as_ref().map(|t| t.0).or(created);
    if status.phase.as_deref() == Some("Failed") {
        let reason = status.reason.clone().or_else(|| status.message.clone());
        return (
            InstanceState::Crashed,
            since_start,
            reason.or(Some("Failed".into())),
        );
    }
    let containers = status.container_statuses.as_deref().unwrap_or_default();
    let app = containers
        .iter()
        .find(|c| c.name == "app")
        .or_else(|| containers.first());
    if let Some(c) = app {
        let state = c.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            if CRASH_REASONS.contains(&reason.as_str()) || c.restart_count > 0 {
                let details = match w.message.as_deref() {
                    Some(m) if !m.is_empty() => format!("{reason}: {m}"),
                    _ => reason,
                };
                let at = c
                    .last_state
                    .as_ref()
                    .and_then(|l| l.terminated.as_ref())
                    .and_then(|t| t.finished_at.as_ref())
                    .map(|t| t.0)
                    .or(since_start);
                return (InstanceState::Crashed, at, Some(details));
            }
        }
        if let Some(t) = state.and_then(|s| s.terminated.as_ref()) {
            let reason = t
                .reason
                .clone()
                .unwrap_or_else(|| format!("exit code {}", t.exit_code));
            return (
                InstanceState::Crashed,
                t.finished_at.as_ref().map(|t| t.0).or(since_start),
                Some(reason),
            );
        }
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        if ready {
            let started = state
                .and_then(|s| s.running.as_ref())
                .and_then(|r| r.started_at.as_ref())
                .map(|t| t.0)
                .or(since_start);
            return (InstanceState::Running, started, None);
        }
    }
    (InstanceState::Starting, since_start, None)
}

/// The live Pods of a process, oldest first.
pub fn pods(caches: &Caches, process: &CFProcess) -> Vec<Arc<Pod>> {
    let ns = process.namespace();
    let mut pods: Vec<Arc<Pod>> = caches
        .pods
        .state()
        .into_iter()
        .filter(|p| p.metadata.namespace == ns && p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            let l = p.labels();
            l.get(APP_GUID) == Some(&process.spec.app_guid)
                && l.get(PROCESS_TYPE) == Some(&process.spec.process_type)
        })
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Succeeded"))
        .collect();
    pods.sort_by(|a, b| {
        let key = |p: &Pod| (p.metadata.creation_timestamp.as_ref().map(|t| t.0), p.name_any());
        key(a).cmp(&key(b))
    });
    pods
}

/// The instances of a process at `now`: none while its app is stopped; one per live Pod, then
/// `DOWN` ones up to the wanted count.
pub fn instances(caches: &Caches, process: &CFProcess, now: Timestamp) -> Vec<Instance> {
    let started = app_of(caches, process).is_some_and(|a| a.spec.desired_state == AppState::Started);
    if !started {
        return Vec::new();
    }
    instances_of(&pods(caches, process), process.spec.instances, now)
}

/// Instances from `pods` (oldest first), padded with `DOWN` up to `wanted`.
pub fn instances_of(pods: &[Arc<Pod>], wanted: i32, now: Timestamp) -> Vec<Instance> {
    let mut out: Vec<Instance> = pods
        .iter()
        .enumerate()
        .map(|(index, pod)| {
            let (state, at, details) = pod_state(pod);
            let since = at.map_or(0, |t| t.as_second());
            let uptime = match (state, at) {
                (InstanceState::Running, Some(t)) => (now.as_second() - t.as_second()).max(0),
                _ => 0,
            };
            Instance {
                index,
                state,
                since,
                uptime,
                details,
                pod: Some(pod.clone()),
            }
        })
        .collect();
    let wanted = usize::try_from(wanted).unwrap_or(0);
    for index in out.len()..wanted {
        out.push(Instance {
            index,
            state: InstanceState::Down,
            since: 0,
            uptime: 0,
            details: None,
            pod: None,
        });
    }
    out
}

const MIB: u64 = 1024 * 1024;

/// One `/stats` item.
pub fn stat_json(process: &CFProcess, instance: &Instance, now: Timestamp) -> Value {
    let quota = |mb: Option<i64>| {
        mb.and_then(|m| u64::try_from(m).ok())
            .map(|m| m.saturating_mul(MIB))
    };
    let status = instance.pod.as_ref().and_then(|p| p.status.as_ref());
    let ports: Vec<Value> = instance
        .pod
        .as_ref()
        .and_then(|p| p.spec.as_ref())
        .map(|s| {
            s.containers
                .iter()
                .flat_map(|c| c.ports.iter().flatten())
                .map(|p| {
                    json!({
                        "external": p.container_port,
                        "internal": p.container_port,
                        "external_tls_proxy_port": null,
                        "internal_tls_proxy_port": null,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "type": process.spec.process_type,
        "index": instance.index,
        "state": instance.state.as_str(),
        "routable": instance.state == InstanceState::Running,
        "usage": {
            "time": now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            "cpu": 0,
            "cpu_entitlement": 0,
            "mem": 0,
            "disk": 0,
            "log_rate": 0,
        },
        "host": status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
        "instance_internal_ip": status.and_then(|s| s.pod_ip.clone()),
        "instance_ports": ports,
        "uptime": instance.uptime,
        "mem_quota": quota(process.spec.memory_in_mb),
        "disk_quota": quota(process.spec.disk_in_mb),
        "log_rate_limit": process.spec.log_rate_limit_in_bytes_per_second.unwrap_or(-1),
        "fds_quota": 16384,
        "isolation_segment": null,
        "details": instance.details,
    })
}

fn stats_json(caches: &Caches, process: &CFProcess) -> Value {
    let now = Timestamp::now();
    let items: Vec<Value> = instances(caches, process, now)
        .iter()
        .map(|i| stat_json(process, i, now))
        .collect();
    json!({"resources": items})
}

/// The process of type `type_` of a visible app, or 404 "Process not found".
fn process_of_app(state: &ApiState, caller: &Caller, app: &str, type_: &str) -> CfResult<Arc<CFProcess>> {
    let app = find_app(state, caller, app)?;
    state
        .caches
        .processes
        .find(|p| {
            p.spec.app_guid == app.name_any()
                && p.spec.process_type == type_
                && p.namespace() == app.namespace()
                && p.metadata.deletion_timestamp.is_none()
        })
        .ok_or(CfError::NotFound("Process"))
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFProcess>(&state, &caller, raw.as_deref(), "/v3/processes", |_| true)
}

async fn list_of_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    resource::list_with::<CFProcess>(
        &state,
        &caller,
        &q,
        &format!("/v3/apps/{guid}/processes"),
        |p| p.spec.app_guid == guid && p.namespace() == app.namespace(),
        &["types", "embed"],
    )
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let process = resource::find::<CFProcess>(&state, &caller, &guid)?;
    Ok(Json(process.present(&Cx::new(&state))))
}

async fn show_of_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, type_)): Path<(String, String)>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let process = process_of_app(&state, &caller, &guid, &type_)?;
    Ok(Json(process.present(&Cx::new(&state))))
}

/// Distinguishes a field left out (`None`) from one set to null (`Some(None)`).
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct CheckData {
    #[serde(default, deserialize_with = "nullable")]
    timeout: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    invocation_timeout: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    interval: Option<Option<i32>>,
    #[serde(default, deserialize_with = "nullable")]
    endpoint: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckBody {
    #[serde(rename = "type", default)]
    type_: Option<String>,
    #[serde(default)]
    data: Option<CheckData>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default, deserialize_with = "nullable")]
    command: Option<Option<String>>,
    #[serde(default)]
    health_check: Option<CheckBody>,
    #[serde(default)]
    readiness_health_check: Option<CheckBody>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

fn parse_check_type(t: &str, readiness: bool) -> CfResult<HealthCheckType> {
    match t {
        "port" => Ok(HealthCheckType::Port),
        "process" => Ok(HealthCheckType::Process),
        // CC's old name for `process`.
        "none" if !readiness => Ok(HealthCheckType::Process),
        "http" => Ok(HealthCheckType::Http),
        other => Err(CfError::Unprocessable(format!(
            "Health check type must be \"port\", \"process\", or \"http\", not \"{other}\""
        ))),
    }
}

fn check_range(what: &str, v: Option<i32>, max: i32) -> CfResult<()> {
    match v {
        Some(n) if !(1..=max).contains(&n) => Err(CfError::Unprocessable(format!(
            "{what} must be between 1 and {max}"
        ))),
        _ => Ok(()),
    }
}

/// The health check `body` asks for over `current`, as a whole object for a merge patch
/// (explicit nulls, so fields it drops are removed).
fn merged_check(current: &HealthCheck, body: &CheckBody, readiness: bool) -> CfResult<Value> {
    let type_ = match &body.type_ {
        Some(t) => parse_check_type(t, readiness)?,
        None => current.type_,
    };
    let data = body.data.as_ref();
    let pick = |given: Option<&Option<i32>>, old: Option<i32>| given.map_or(old, |g| *g);
    let timeout = if readiness {
        None
    } else {
        pick(data.and_then(|d| d.timeout.as_ref()), current.timeout)
    };
    let invocation = pick(
        data.and_then(|d| d.invocation_timeout.as_ref()),
        current.invocation_timeout,
    );
    let interval = pick(data.and_then(|d| d.interval.as_ref()), current.interval);
    check_range("Timeout", timeout, 3600)?;
    check_range("Invocation timeout", invocation, 600)?;
    check_range("Interval", interval, 600)?;
    let endpoint = match data.and_then(|d| d.endpoint.clone()) {
        Some(e) => e,
        None => current.endpoint.clone(),
    };
    // The endpoint only means something for http checks (the CRD refuses it otherwise).
    let endpoint = endpoint.filter(|_| type_ == HealthCheckType::Http);
    if let Some(e) = &endpoint
        && !e.starts_with('/')
    {
        return Err(CfError::Unprocessable(
            "Health check endpoint must be a valid URI path".into(),
        ));
    }
    Ok(json!({
        "type": check_type(type_),
        "endpoint": endpoint,
        "invocationTimeout": invocation,
        "timeout": timeout,
        "interval": interval,
    }))
}

async fn update_process(
    state: &ApiState,
    caller: &Caller,
    process: &CFProcess,
    body: &Bytes,
) -> CfResult<Json<Value>> {
    let body: UpdateBody = parse(body)?;
    let mut patch = json!({"spec": {}});
    if let Some(c) = &body.command {
        if let Some(c) = c
            && (c.is_empty() || c.len() > 4096)
        {
            return Err(CfError::Unprocessable(
                "Command must be between 1 and 4096 characters".into(),
            ));
        }
        patch["spec"]["command"] = json!(c);
    }
    if let Some(h) = &body.health_check {
        patch["spec"]["healthCheck"] = merged_check(&process.spec.health_check, h, false)?;
    }
    if let Some(r) = &body.readiness_health_check {
        let current = process
            .spec
            .readiness_health_check
            .clone()
            .unwrap_or_else(|| HealthCheck {
                type_: HealthCheckType::Process,
                ..HealthCheck::default()
            });
        patch["spec"]["readinessHealthCheck"] = merged_check(&current, r, true)?;
    }
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    let updated = resource::patch(state, caller, process, &patch).await?;
    Ok(Json(updated.present(&Cx::new(state))))
}

async fn update(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let process = resource::find::<CFProcess>(&state, &caller, &guid)?;
    update_process(&state, &caller, &process, &body).await
}

async fn update_of_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, type_)): Path<(String, String)>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let process = process_of_app(&state, &caller, &guid, &type_)?;
    update_process(&state, &caller, &process, &body).await
}

/// A scale request: every field optional, only the set ones change.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
pub struct ScaleBody {
    /// Instances.
    #[serde(default)]
    pub instances: Option<i64>,
    /// Memory per instance, MB.
    #[serde(default)]
    pub memory_in_mb: Option<i64>,
    /// Disk per instance, MB.
    #[serde(default)]
    pub disk_in_mb: Option<i64>,
    /// Log rate limit, bytes per second; -1 is unlimited.
    #[serde(default)]
    pub log_rate_limit_in_bytes_per_second: Option<i64>,
}

impl ScaleBody {
    /// The `spec` part of a merge patch, with CC's validation messages.
    pub fn spec_patch(&self) -> CfResult<Value> {
        let mut spec = json!({});
        if let Some(n) = self.instances {
            if n < 0 {
                return Err(CfError::Unprocessable(
                    "Instances must be greater than or equal to 0".into(),
                ));
            }
            if n > 2000 {
                return Err(CfError::Unprocessable(
                    "Instances must be less than or equal to 2000".into(),
                ));
            }
            spec["instances"] = json!(n);
        }
        if let Some(m) = self.memory_in_mb {
            if m < 1 {
                return Err(CfError::Unprocessable(
                    "Memory in mb must be greater than 0".into(),
                ));
            }
            spec["memoryInMb"] = json!(m);
        }
        if let Some(d) = self.disk_in_mb {
            if d < 1 {
                return Err(CfError::Unprocessable("Disk in mb must be greater than 0".into()));
            }
            spec["diskInMb"] = json!(d);
        }
        if let Some(l) = self.log_rate_limit_in_bytes_per_second {
            if l < -1 {
                return Err(CfError::Unprocessable(
                    "Log rate limit in bytes per second must be greater than or equal to -1".into(),
                ));
            }
            spec["logRateLimitInBytesPerSecond"] = json!(l);
        }
        Ok(spec)
    }
}

/// Scales `process` as the caller.
pub async fn scale_process(
    state: &ApiState,
    caller: &Caller,
    process: &CFProcess,
    body: &ScaleBody,
) -> CfResult<CFProcess> {
    let spec = body.spec_patch()?;
    resource::patch(state, caller, process, &json!({"spec": spec})).await
}

async fn scale(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: ScaleBody = parse(&body)?;
    let process = resource::find::<CFProcess>(&state, &caller, &guid)?;
    let updated = scale_process(&state, &caller, &process, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(updated.present(&Cx::new(&state)))).into_response())
}

async fn scale_of_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, type_)): Path<(String, String)>,
    body: Bytes,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: ScaleBody = parse(&body)?;
    let process = process_of_app(&state, &caller, &guid, &type_)?;
    let updated = scale_process(&state, &caller, &process, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(updated.present(&Cx::new(&state)))).into_response())
}

async fn stats(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let process = resource::find::<CFProcess>(&state, &caller, &guid)?;
    Ok(Json(stats_json(&state.caches, &process)))
}

async fn stats_of_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, type_)): Path<(String, String)>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let process = process_of_app(&state, &caller, &guid, &type_)?;
    Ok(Json(stats_json(&state.caches, &process)))
}

/// kubefoundry runs no sidecars: always an empty list, with its pagination.
async fn sidecars(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    resource::find::<CFProcess>(&state, &caller, &guid)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&[])?;
    let params = PageParams::from_query(&q, &["created_at", "updated_at"])?;
    Ok(Json(page(
        &state.config.base_url,
        &format!("/v3/processes/{guid}/sidecars"),
        &q,
        &params,
        Vec::new(),
    )))
}

/// Deletes the Pod of instance `index` as the caller; its Deployment replaces it.
async fn kill(state: &ApiState, caller: &Caller, process: &CFProcess, index: &str) -> CfResult<Response> {
    let index: usize = index.parse().map_err(|_| CfError::NotFound("Instance"))?;
    let now = Timestamp::now();
    let pod = instances(&state.caches, process, now)
        .into_iter()
        .find(|i| i.index == index)
        .and_then(|i| i.pod)
        .ok_or(CfError::NotFound("Instance"))?;
    let api: Api<Pod> = Api::namespaced(
        state.client_for(&caller.who)?,
        &process.namespace().unwrap_or_default(),
    );
    match api.delete(&pod.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(from_kube(e, "Instance", false)),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn kill_instance(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, index)): Path<(String, String)>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let process = resource::find::<CFProcess>(&state, &caller, &guid)?;
    kill(&state, &caller, &process, &index).await
}

async fn kill_instance_of_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, type_, index)): Path<(String, String, String)>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let process = process_of_app(&state, &caller, &guid, &type_)?;
    kill(&state, &caller, &process, &index).await
}

/// Caches filled with given objects, for presenter tests.
#[cfg(test)]
pub(crate) mod test_caches {
    use kube::runtime::{reflector, watcher::Event};

    use super::*;

    fn store<K>(objects: Vec<K>) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone,
    {
        let (reader, mut writer) = reflector::store();
        for o in objects {
            writer.apply_watcher_event(&Event::Apply(o));
        }
        reader
    }

    /// Caches holding `apps`, `processes` and `pods`, everything else empty.
    pub fn caches(apps: Vec<CFApp>, processes: Vec<CFProcess>, pods: Vec<Pod>) -> Caches {
        Caches {
            orgs: store(vec![]),
            spaces: store(vec![]),
            roles: store(vec![]),
            apps: store(apps),
            processes: store(processes),
            packages: store(vec![]),
            builds: store(vec![]),
            droplets: store(vec![]),
            routes: store(vec![]),
            domains: store(vec![]),
            tasks: store(vec![]),
            service_instances: store(vec![]),
            service_bindings: store(vec![]),
            pods: store(pods),
            access: Default::default(),
        }
    }

    /// The context of `caches`, with `query`.
    pub fn cx<'a>(caches: &'a Caches, query: Option<&'a Query>) -> Cx<'a> {
        Cx {
            base: "https://api.example.test",
            caches,
            root: "cf",
            query,
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::{test_caches::*, *};
    use crate::fixtures;

    fn pod(name: &str, created: &str, status: Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "namespace": fixtures::SPACE,
                "creationTimestamp": created,
                "labels": {APP_GUID: "a1", PROCESS_TYPE: "web"},
            },
            "spec": {"containers": [{"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]}]},
            "status": status,
        }))
        .unwrap()
    }

    fn ready(started: &str) -> Value {
        json!({
            "phase": "Running",
            "hostIP": "172.18.0.2",
            "podIP": "10.0.0.5",
            "startTime": started,
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [{"name": "app", "image": "nginx", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"running": {"startedAt": started}}}],
        })
    }

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().unwrap()
    }

    #[test]
    fn pods_map_to_cf_instance_states() {
        let running = pod("p1", "2026-01-01T00:00:00Z", ready("2026-01-01T00:00:05Z"));
        let (state, since, details) = pod_state(&running);
        assert_eq!((state, details), (InstanceState::Running, None));
        assert_eq!(
            since.unwrap().as_second(),
            "2026-01-01T00:00:05Z".parse::<Timestamp>().unwrap().as_second()
        );

        let crashing = pod(
            "p2",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Running", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 3,
                "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s"}}}]}),
        );
        let (state, _, details) = pod_state(&crashing);
        assert_eq!(state, InstanceState::Crashed);
        assert_eq!(details.as_deref(), Some("CrashLoopBackOff: back-off 10s"));

        let pulling = pod(
            "p3",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Pending", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImagePull"}}}]}),
        );
        assert_eq!(pod_state(&pulling).0, InstanceState::Crashed);

        let creating = pod(
            "p4",
            "2026-01-01T00:00:00Z",
            json!({"phase": "Pending", "containerStatuses": [{"name": "app", "image": "x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
        );
        assert_eq!(pod_state(&creating).0, InstanceState::Starting);
        assert_eq!(
            pod_state(&pod(
                "p5",
                "2026-01-01T00:00:00Z",
                json!({"phase": "Failed", "reason": "Evicted"})
            ))
            .0,
            InstanceState::Crashed
        );
    }

    #[test]
    fn instances_are_ranked_by_age_and_padded_with_down() {
        let young = Arc::new(pod("young", "2026-01-01T00:05:00Z", json!({"phase": "Pending"})));
        let old = Arc::new(pod("old", "2026-01-01T00:00:00Z", ready("2026-01-01T00:00:00Z")));
        let process = fixtures::process("a1-web", "a1", "web").instances(3);
        let app = fixtures::app("a1", "my-app").started();
        let caches = caches(
            vec![app],
            vec![process.clone()],
            vec![(*young).clone(), (*old).clone()],
        );
        let got = instances(&caches, &process, now());
        let states: Vec<(usize, &str, i64)> = got
            .iter()
            .map(|i| (i.index, i.state.as_str(), i.uptime))
            .collect();
        assert_eq!(states, [(0, "RUNNING", 600), (1, "STARTING", 0), (2, "DOWN", 0)]);

        // A stopped app shows no instances, whatever Pods are still terminating.
        let stopped = test_caches::caches(vec![fixtures::app("a1", "my-app")], vec![], vec![(*old).clone()]);
        assert!(instances(&stopped, &process, now()).is_empty());
    }

    #[test]
    fn stats_carry_quotas_in_bytes_and_zero_usage() {
        let process = fixtures::process("a1-web", "a1", "web");
        let p = Arc::new(pod("p1", "2026-01-01T00:00:00Z", ready("2026-01-01T00:00:00Z")));
        let instance = &instances_of(&[p], 1, now())[0];
        let stat = stat_json(&process, instance, now());
        assert_eq!(stat["state"], "RUNNING");
        assert_eq!(stat["mem_quota"], 256 * 1024 * 1024);
        assert_eq!(stat["disk_quota"], 1024 * 1024 * 1024_u64);
        assert_eq!(stat["log_rate_limit"], -1);
        assert_eq!(stat["uptime"], 600);
        assert_eq!(stat["host"], "172.18.0.2");
        assert_eq!(stat["instance_ports"][0]["internal"], 8080);
        assert_eq!(stat["usage"]["cpu"], 0);
        assert_eq!(stat["details"], Value::Null);

        let mut unlimited = process.clone();
        unlimited.spec.memory_in_mb = None;
        unlimited.spec.disk_in_mb = Some(-5);
        let down = &instances_of(&[], 1, now())[0];
        let stat = stat_json(&unlimited, down, now());
        assert_eq!(
            (stat["mem_quota"].clone(), stat["disk_quota"].clone()),
            (Value::Null, Value::Null)
        );
        assert_eq!(
            (stat["state"].clone(), stat["host"].clone()),
            (json!("DOWN"), json!(""))
        );
    }

    #[test]
    fn processes_present_as_cc_does_and_embed_instances() {
        let app = fixtures::app("a1", "my-app").started();
        let process = fixtures::process("a1-web", "a1", "web");
        let p = pod("p1", "2026-01-01T00:00:00Z", ready("2026-01-01T00:00:00Z"));
        let caches = caches(vec![app], vec![process.clone()], vec![p]);
        let plain = process.present(&cx(&caches, None));
        assert_eq!(plain["type"], "web");
        assert_eq!(plain["command"], Value::Null);
        assert_eq!(plain["relationships"]["app"], json!({"data": {"guid": "a1"}}));
        assert_eq!(
            plain["health_check"],
            json!({"type": "port", "data": {"invocation_timeout": null, "interval": null, "timeout": null}})
        );
        assert_eq!(plain["readiness_health_check"]["type"], "port");
        assert_eq!(plain["links"]["scale"]["method"], "POST");
        assert_eq!(
            plain["links"]["stats"]["href"],
            "https://api.example.test/v3/processes/a1-web/stats"
        );
        assert!(plain.get("process_instances").is_none());
        let q = Query::parse("embed=process_instances").unwrap();
        let embedded = process.present(&cx(&caches, Some(&q)));
        let since = "2026-01-01T00:00:00Z".parse::<Timestamp>().unwrap().as_second();
        assert_eq!(
            embedded["process_instances"],
            json!([{"index": 0, "state": "RUNNING", "since": since}])
        );
    }

    #[test]
    fn scale_and_health_check_bodies_are_validated() {
        let patch = ScaleBody {
            instances: Some(3),
            memory_in_mb: Some(512),
            ..ScaleBody::default()
        }
        .spec_patch()
        .unwrap();
        assert_eq!(patch, json!({"instances": 3, "memoryInMb": 512}));
        for bad in [
            ScaleBody {
                instances: Some(-1),
                ..ScaleBody::default()
            },
            ScaleBody {
                memory_in_mb: Some(0),
                ..ScaleBody::default()
            },
            ScaleBody {
                log_rate_limit_in_bytes_per_second: Some(-2),
                ..ScaleBody::default()
            },
        ] {
            assert!(
                matches!(bad.spec_patch(), Err(CfError::Unprocessable(_))),
                "{bad:?}"
            );
        }

        let http = HealthCheck {
            type_: HealthCheckType::Http,
            endpoint: Some("/health".into()),
            timeout: Some(60),
            ..HealthCheck::default()
        };
        let to_port = CheckBody {
            type_: Some("port".into()),
            data: None,
        };
        assert_eq!(
            merged_check(&http, &to_port, false).unwrap(),
            json!({"type": "port", "endpoint": null, "invocationTimeout": null, "timeout": 60, "interval": null})
        );
        let clear_timeout = CheckBody {
            type_: None,
            data: Some(CheckData {
                timeout: Some(None),
                ..CheckData::default()
            }),
        };
        assert_eq!(
            merged_check(&http, &clear_timeout, false).unwrap()["timeout"],
            Value::Null
        );
        assert_eq!(
            merged_check(&http, &clear_timeout, false).unwrap()["endpoint"],
            "/health"
        );
        let bogus = CheckBody {
            type_: Some("tcp".into()),
            data: None,
        };
        assert!(merged_check(&http, &bogus, false).is_err());
        let none_readiness = CheckBody {
            type_: Some("none".into()),
            data: None,
        };
        assert!(merged_check(&http, &none_readiness, true).is_err());
    }
}
