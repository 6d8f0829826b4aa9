//! `/v3/apps`: CRUD, lifecycle actions, env, features, current droplet; and [`create_app`],
//! the one way an app comes into being (POST /v3/apps and manifests alike).
//!
//! App features (`ssh`, `revisions`) are kept as `kubefoundry.dev/feature-*` annotations on the
//! CFApp (hidden from CF metadata, refused in user metadata), so they survive restarts without
//! a schema change.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, ResourceExt, runtime::reflector::Store};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    jobs, metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        body::{MetadataBody, ToOne, check_name, parse},
        claims::Claim,
    },
    controller::{app::build::new_process, names},
    crd::{AppState, CFApp, CFAppSpec, CFDroplet, CFOrg, CFSpace, DropletState, Lifecycle, LifecycleType},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/apps", get(list).post(create))
        .route("/v3/apps/{guid}", get(show).patch(update).delete(destroy))
        .route("/v3/apps/{guid}/actions/start", post(start))
        .route("/v3/apps/{guid}/actions/stop", post(stop))
        .route("/v3/apps/{guid}/actions/restart", post(restart))
        .route("/v3/apps/{guid}/env", get(env))
        .route(
            "/v3/apps/{guid}/environment_variables",
            get(env_vars).patch(update_env_vars),
        )
        .route("/v3/apps/{guid}/features", get(features))
        .route(
            "/v3/apps/{guid}/features/{name}",
            get(feature).patch(update_feature),
        )
        .route("/v3/apps/{guid}/ssh_enabled", get(ssh_enabled))
        .route(
            "/v3/apps/{guid}/relationships/current_droplet",
            get(current_droplet_relationship).patch(set_current_droplet),
        )
        .route("/v3/apps/{guid}/droplets/current", get(current_droplet))
}

/// The stack CF reports for buildpack apps that name none.
const DEFAULT_STACK: &str = "cflinuxfs4";

/// The space of an app: its namespace.
pub fn space_of(app: &CFApp) -> String {
    app.namespace().unwrap_or_default()
}

/// The v3 `lifecycle` object.
pub fn lifecycle_json(lifecycle: &Lifecycle) -> Value {
    match lifecycle.type_ {
        LifecycleType::Docker => json!({"type": "docker", "data": {}}),
        LifecycleType::Buildpack => json!({
            "type": "buildpack",
            "data": {
                "buildpacks": lifecycle.buildpacks,
                "stack": lifecycle.stack.as_deref().unwrap_or(DEFAULT_STACK),
            },
        }),
        LifecycleType::Cnb => json!({
            "type": "cnb",
            "data": {
                "buildpacks": lifecycle.buildpacks,
                "stack": lifecycle.stack.as_deref().unwrap_or(DEFAULT_STACK),
            },
        }),
    }
}

fn state_name(s: AppState) -> &'static str {
    match s {
        AppState::Started => "STARTED",
        AppState::Stopped => "STOPPED",
    }
}

impl CfKind for CFApp {
    const KIND: &'static str = "App";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name", "state"];
    const FILTERS: &'static [&'static str] = &[
        "names",
        "space_guids",
        "organization_guids",
        "stacks",
        "lifecycle_type",
    ];
    const INCLUDES: &'static [&'static str] = &["space", "space.organization"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.apps
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let space = space_of(self);
        let (created_at, updated_at) = timestamps(&self.metadata);
        let app = |p: &str| cx.link(&format!("/v3/apps/{guid}{p}"));
        let action = |p: &str| {
            let mut l = app(p);
            l["method"] = json!("POST");
            l
        };
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.display_name,
            "state": state_name(self.spec.desired_state),
            "lifecycle": lifecycle_json(&self.spec.lifecycle),
            "relationships": {
                "space": to_one(Some(&space)),
                "current_droplet": to_one(self.spec.current_droplet_guid.as_deref()),
            },
            "metadata": metadata(&self.metadata),
            "links": {
                "self": app(""),
                "environment_variables": app("/environment_variables"),
                "space": cx.link(&format!("/v3/spaces/{space}")),
                "processes": app("/processes"),
                "packages": app("/packages"),
                "current_droplet": app("/droplets/current"),
                "droplets": app("/droplets"),
                "tasks": app("/tasks"),
                "start": action("/actions/start"),
                "stop": action("/actions/stop"),
                "revisions": app("/revisions"),
                "deployed_revisions": app("/revisions/deployed"),
                "features": app("/features"),
            },
        })
    }

    fn order_key(&self, field: &str) -> Option<String> {
        match field {
            "name" => Some(self.spec.display_name.clone()),
            "state" => Some(state_name(self.spec.desired_state).to_owned()),
            _ => None,
        }
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = space_of(self);
        match key {
            "names" => values.contains(&self.spec.display_name),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "stacks" => {
                let l = &self.spec.lifecycle;
                l.type_ != LifecycleType::Docker
                    && values
                        .iter()
                        .any(|v| v == l.stack.as_deref().unwrap_or(DEFAULT_STACK))
            }
            "lifecycle_type" => {
                let t = lifecycle_json(&self.spec.lifecycle);
                values.iter().any(|v| t["type"] == v.as_str())
            }
            _ => true,
        }
    }

    fn include(
        what: &str,
        page: &[Value],
        cx: &Cx<'_>,
        access: &Access,
    ) -> Option<(&'static str, Vec<Value>)> {
        let spaces: BTreeSet<String> = page
            .iter()
            .filter_map(|a| a["relationships"]["space"]["data"]["guid"].as_str())
            .map(str::to_owned)
            .collect();
        match what {
            "space" => Some((
                "spaces",
                spaces
                    .iter()
                    .filter_map(|s| resource::lookup::<CFSpace>(cx.caches, s))
                    .filter(|s| s.visible(access, cx))
                    .map(|s| s.present(cx))
                    .collect(),
            )),
            "space.organization" => {
                let orgs: BTreeSet<String> = spaces.iter().filter_map(|s| cx.org_of_space(s)).collect();
                Some((
                    "organizations",
                    orgs.iter()
                        .filter_map(|o| resource::lookup::<CFOrg>(cx.caches, o))
                        .filter(|o| o.visible(access, cx))
                        .map(|o| o.present(cx))
                        .collect(),
                ))
            }
            _ => None,
        }
    }
}

/// The 422 for a space the caller cannot use.
fn invalid_space() -> CfError {
    CfError::Unprocessable("Invalid space. Ensure that the space exists and you have access to it.".into())
}

/// The claim of an app name in a space.
pub fn name_claim(space_guid: &str, name: &str) -> Claim {
    Claim::new("app", space_guid, name)
}

/// The 422 the cf CLI recognises for a taken app name.
pub fn name_taken(name: &str) -> CfError {
    CfError::Uniqueness(format!("App with the name '{name}' already exists."))
}

/// Creates an app as `caller`: the name claim in the space, the CFApp (STOPPED) and its `web`
/// CFProcess with CC's defaults. On any failure the claim is released and nothing stays
/// behind, so a retry with the same name succeeds.
pub async fn create_app(
    state: &ApiState,
    caller: &Caller,
    space_guid: &str,
    name: &str,
    lifecycle: Lifecycle,
    env: BTreeMap<String, String>,
    metadata: Option<&MetadataBody>,
) -> CfResult<CFApp> {
    check_name(name)?;
    if let Some(m) = metadata {
        m.check()?;
    }
    let space_known = state
        .caches
        .spaces
        .find(|s| s.metadata.name.as_deref() == Some(space_guid) && s.metadata.deletion_timestamp.is_none())
        .is_some();
    if !space_known || !caller.access.space(space_guid) {
        return Err(invalid_space());
    }
    let guid = resource::new_guid();
    let claim = name_claim(space_guid, name);
    claim
        .take(
            state,
            &guid,
            |holder| resource::lookup::<CFApp>(&state.caches, holder).is_some(),
            || name_taken(name),
        )
        .await?;
    let mut app = CFApp::new(
        &guid,
        CFAppSpec {
            display_name: name.to_owned(),
            desired_state: AppState::Stopped,
            lifecycle,
            env,
            current_droplet_guid: None,
            restarted_at: None,
        },
    );
    app.metadata.namespace = Some(space_guid.to_owned());
    if let Some(m) = metadata {
        m.apply_to(&mut app.metadata);
    }
    let created = match resource::create(state, caller, &app).await {
        Ok(a) => a,
        Err(e) => {
            claim.release(state).await;
            return Err(e);
        }
    };
    // The process needs the created app's UID for its owner reference.
    let web = new_process(&created, "web", &state.config.app_defaults);
    if let Err(e) = resource::create(state, caller, &web).await {
        // A 409 means the controller made it first: that is the same process.
        if !matches!(e, CfError::Uniqueness(_)) {
            let _ = resource::delete(state, caller, &created).await;
            claim.release(state).await;
            return Err(e);
        }
    }
    Ok(created)
}

/// `lifecycle` in a request.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub struct LifecycleBody {
    /// `buildpack`, `cnb` or `docker`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Buildpacks and stack (buildpack lifecycles); empty for docker.
    #[serde(default)]
    pub data: Option<LifecycleData>,
}

/// `lifecycle.data` in a request.
#[derive(Deserialize, Debug, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct LifecycleData {
    /// Buildpack names or URLs; null means auto-detect.
    #[serde(default)]
    pub buildpacks: Option<Vec<String>>,
    /// The stack.
    #[serde(default)]
    pub stack: Option<String>,
}

impl LifecycleBody {
    /// The lifecycle this body asks for, over `current` (data fields left out keep theirs).
    pub fn resolve(&self, current: Option<&Lifecycle>) -> CfResult<Lifecycle> {
        let type_ = match self.type_.as_str() {
            "buildpack" => LifecycleType::Buildpack,
            "docker" => LifecycleType::Docker,
            "cnb" => LifecycleType::Cnb,
            other => {
                return Err(CfError::Unprocessable(format!(
                    "Lifecycle type must be one of 'buildpack', 'cnb' or 'docker', not '{other}'"
                )));
            }
        };
        if let Some(c) = current
            && c.type_ != type_
        {
            return Err(CfError::Unprocessable("Lifecycle type cannot be changed".into()));
        }
        let data = self.data.clone().unwrap_or_default();
        if type_ == LifecycleType::Docker {
            if data.buildpacks.as_ref().is_some_and(|b| !b.is_empty()) || data.stack.is_some() {
                return Err(CfError::Unprocessable(
                    "Lifecycle data must be empty for docker lifecycle".into(),
                ));
            }
            return Ok(Lifecycle {
                type_,
                ..Lifecycle::default()
            });
        }
        let mut lifecycle = current.cloned().unwrap_or(Lifecycle {
            type_,
            ..Lifecycle::default()
        });
        if let Some(b) = data.buildpacks {
            lifecycle.buildpacks = b;
        }
        if let Some(s) = data.stack {
            lifecycle.stack = Some(s).filter(|s| !s.is_empty());
        }
        Ok(lifecycle)
    }
}

/// Environment variable names CC refuses, and the CRD's identifier rule.
fn check_env_name(name: &str) -> CfResult<()> {
    if name.starts_with("VCAP_") {
        return Err(CfError::Unprocessable(
            "Environment variables cannot start with VCAP_".into(),
        ));
    }
    if name.starts_with("VMC_") {
        return Err(CfError::Unprocessable(
            "Environment variables cannot start with VMC_".into(),
        ));
    }
    if name == "PORT" {
        return Err(CfError::Unprocessable(
            "Environment variables cannot set PORT".into(),
        ));
    }
    let ok = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(CfError::Unprocessable(format!(
            "Environment variable name '{name}' must start with a letter or underscore and hold only letters, digits and underscores"
        )));
    }
    Ok(())
}

/// An environment variable value: strings as they are, numbers and booleans in their JSON
/// spelling (CC keeps JSON values; pods only take strings), null meaning "remove".
fn env_value(name: &str, v: &Value) -> CfResult<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(_) | Value::Bool(_) => Ok(Some(v.to_string())),
        _ => Err(CfError::Unprocessable(format!(
            "Environment variable '{name}' must be a string, number or boolean"
        ))),
    }
}

/// Checks a whole environment from a request, keeping only set values.
pub fn environment(vars: &serde_json::Map<String, Value>) -> CfResult<BTreeMap<String, String>> {
    let mut env = BTreeMap::new();
    for (k, v) in vars {
        check_env_name(k)?;
        if let Some(v) = env_value(k, v)? {
            env.insert(k.clone(), v);
        }
    }
    Ok(env)
}

/// The app, found and visible, or 404 "App not found".
pub fn find_app(state: &ApiState, caller: &Caller, guid: &str) -> CfResult<Arc<CFApp>> {
    resource::find::<CFApp>(state, caller, guid)
}

fn present(state: &ApiState, app: &CFApp) -> Json<Value> {
    Json(app.present(&Cx::new(state)))
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFApp>(&state, &caller, raw.as_deref(), "/v3/apps", |_| true)
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    Ok(present(&state, &*find_app(&state, &caller, &guid)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Relationships {
    space: ToOne,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    relationships: Relationships,
    #[serde(default)]
    lifecycle: Option<LifecycleBody>,
    #[serde(default)]
    environment_variables: Option<serde_json::Map<String, Value>>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    let space = body
        .relationships
        .space
        .data
        .as_ref()
        .map(|d| d.guid.clone())
        .ok_or_else(invalid_space)?;
    let lifecycle = match &body.lifecycle {
        Some(l) => l.resolve(None)?,
        None => Lifecycle::default(),
    };
    let env = environment(&body.environment_variables.unwrap_or_default())?;
    let app = create_app(
        &state,
        &caller,
        &space,
        &body.name,
        lifecycle,
        env,
        body.metadata.as_ref(),
    )
    .await?;
    Ok((StatusCode::CREATED, present(&state, &app)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    lifecycle: Option<LifecycleBody>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

async fn update(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: UpdateBody = parse(&body)?;
    let current = find_app(&state, &caller, &guid)?;
    let space = space_of(&current);
    let mut patch = json!({"spec": {}});
    if let Some(l) = &body.lifecycle {
        let lifecycle = l.resolve(Some(&current.spec.lifecycle))?;
        // Replaced whole: a merge patch of the object would keep a removed stack.
        patch["spec"]["lifecycle"] = json!({
            "type": lifecycle.type_,
            "buildpacks": lifecycle.buildpacks,
            "stack": lifecycle.stack,
        });
    }
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    let mut new_claim = None;
    if let Some(name) = &body.name {
        check_name(name)?;
        patch["spec"]["displayName"] = json!(name);
        if !name.eq_ignore_ascii_case(&current.spec.display_name) {
            let claim = name_claim(&space, name);
            claim
                .take(
                    &state,
                    &guid,
                    |holder| resource::lookup::<CFApp>(&state.caches, holder).is_some(),
                    || name_taken(name),
                )
                .await?;
            new_claim = Some(claim);
        }
    }
    match resource::patch(&state, &caller, &*current, &patch).await {
        Ok(updated) => {
            if new_claim.is_some() {
                name_claim(&space, &current.spec.display_name)
                    .release(&state)
                    .await;
            }
            Ok(present(&state, &updated))
        }
        Err(e) => {
            if let Some(c) = new_claim {
                c.release(&state).await;
            }
            Err(e)
        }
    }
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = find_app(&state, &caller, &guid)?;
    super::routes::unmap_app(&state, &caller, &guid, &space_of(&current)).await?;
    resource::delete(&state, &caller, &*current).await?;
    name_claim(&space_of(&current), &current.spec.display_name)
        .release(&state)
        .await;
    Ok(jobs::accepted(&state, "app.delete", &guid))
}

/// Now, as RFC 3339 with sub-second precision, so two restarts in one second still differ.
pub fn now_precise() -> String {
    k8s_openapi::jiff::Timestamp::now().to_string()
}

fn need_droplet(app: &CFApp) -> CfResult<()> {
    if app.spec.current_droplet_guid.is_none() {
        return Err(CfError::Unprocessable(
            "Assign a droplet before starting this app.".into(),
        ));
    }
    Ok(())
}

/// Sets the app's desired state (and, for restarts, stamps `restartedAt` so every process rolls).
pub async fn set_state(
    state: &ApiState,
    caller: &Caller,
    app: &CFApp,
    desired: AppState,
    restart: bool,
) -> CfResult<CFApp> {
    let mut patch = json!({"spec": {"desiredState": state_name(desired)}});
    if restart {
        patch["spec"]["restartedAt"] = json!(now_precise());
    }
    resource::patch(state, caller, app, &patch).await
}

async fn start(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    need_droplet(&app)?;
    let app = set_state(&state, &caller, &app, AppState::Started, false).await?;
    Ok(present(&state, &app))
}

async fn stop(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    let app = set_state(&state, &caller, &app, AppState::Stopped, false).await?;
    Ok(present(&state, &app))
}

async fn restart(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    need_droplet(&app)?;
    let app = set_state(&state, &caller, &app, AppState::Started, true).await?;
    Ok(present(&state, &app))
}

/// The URLs of the routes with a destination on the app.
fn app_uris(caches: &Caches, app: &CFApp) -> Vec<String> {
    let guid = app.name_any();
    let mut uris: Vec<String> = caches
        .routes
        .state()
        .iter()
        .filter(|r| r.spec.destinations.iter().any(|d| d.app_guid == guid))
        .filter_map(|r| {
            if let Some(url) = r.status.as_ref().and_then(|s| s.url.clone()) {
                return Some(url);
            }
            let domain = caches
                .domains
                .find(|d| d.metadata.name.as_deref() == Some(&r.spec.domain_guid))?;
            let fqdn = if r.spec.host.is_empty() {
                domain.spec.name.clone()
            } else {
                format!("{}.{}", r.spec.host, domain.spec.name)
            };
            Some(format!("{fqdn}{}", r.spec.path))
        })
        .collect();
    uris.sort();
    uris.dedup();
    uris
}

/// `VCAP_APPLICATION` as the app's instances see it (without per-instance fields).
pub fn vcap_application(caches: &Caches, base_url: &str, app: &CFApp) -> Value {
    let space_guid = space_of(app);
    let space = caches
        .spaces
        .find(|s| s.metadata.name.as_deref() == Some(&space_guid));
    let org_guid = space.as_ref().and_then(|s| s.namespace()).unwrap_or_default();
    let org = caches
        .orgs
        .find(|o| o.metadata.name.as_deref() == Some(&org_guid));
    let web = caches.processes.find(|p| {
        p.spec.app_guid == app.name_any() && p.spec.process_type == "web" && p.namespace() == app.namespace()
    });
    let uris = app_uris(caches, app);
    json!({
        "application_id": app.name_any(),
        "application_name": app.spec.display_name,
        "application_uris": uris,
        "cf_api": base_url,
        "limits": {
            "disk": web.as_ref().and_then(|p| p.spec.disk_in_mb),
            "fds": 16384,
            "mem": web.as_ref().and_then(|p| p.spec.memory_in_mb),
        },
        "name": app.spec.display_name,
        "organization_id": org_guid,
        "organization_name": org.map(|o| o.spec.display_name.clone()),
        "space_id": space_guid,
        "space_name": space.map(|s| s.spec.display_name.clone()),
        "uris": uris,
        "users": Value::Null,
    })
}

/// `VCAP_SERVICES`, read as the caller from the Secret the controller keeps; `None` when the
/// caller may not read it (CC hides system env from non-developers too).
async fn vcap_services(state: &ApiState, caller: &Caller, app: &CFApp) -> CfResult<Option<Value>> {
    let api: Api<Secret> = Api::namespaced(state.client_for(&caller.who)?, &space_of(app));
    match api.get_opt(&names::vcap_services(&app.name_any())).await {
        Ok(Some(secret)) => Ok(Some(
            secret
                .data
                .as_ref()
                .and_then(|d| d.get("VCAP_SERVICES"))
                .and_then(|b| serde_json::from_slice(&b.0).ok())
                .unwrap_or_else(|| json!({})),
        )),
        Ok(None) => Ok(Some(json!({}))),
        Err(kube::Error::Api(e)) if e.code == 403 => Ok(None),
        Err(e) => Err(CfError::internal(e)),
    }
}

async fn env(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    let system = match vcap_services(&state, &caller, &app).await? {
        Some(services) => json!({"VCAP_SERVICES": services}),
        None => json!({}),
    };
    Ok(Json(json!({
        "staging_env_json": {},
        "running_env_json": {},
        "environment_variables": app.spec.env,
        "system_env_json": system,
        "application_env_json": {"VCAP_APPLICATION": vcap_application(&state.caches, &state.config.base_url, &app)},
    })))
}

fn env_vars_json(cx: &Cx<'_>, app: &CFApp) -> Value {
    let guid = app.name_any();
    json!({
        "var": app.spec.env,
        "links": {
            "self": cx.link(&format!("/v3/apps/{guid}/environment_variables")),
            "app": cx.link(&format!("/v3/apps/{guid}")),
        },
    })
}

async fn env_vars(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    Ok(Json(env_vars_json(&Cx::new(&state), &app)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvBody {
    var: serde_json::Map<String, Value>,
}

async fn update_env_vars(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: EnvBody = parse(&body)?;
    let app = find_app(&state, &caller, &guid)?;
    let mut changes = serde_json::Map::new();
    for (k, v) in &body.var {
        check_env_name(k)?;
        changes.insert(k.clone(), env_value(k, v)?.map_or(Value::Null, Value::String));
    }
    let updated = resource::patch(&state, &caller, &*app, &json!({"spec": {"env": changes}})).await?;
    Ok(Json(env_vars_json(&Cx::new(&state), &updated)))
}

/// The app features CF knows: name, description, and whether it is on by default here.
const FEATURES: &[(&str, &str, bool)] = &[
    ("ssh", "Enable SSHing into the app.", false),
    ("revisions", "Enable versioning of an application", false),
];

fn feature_annotation(name: &str) -> String {
    format!("kubefoundry.dev/feature-{name}")
}

fn feature_json(app: &CFApp, name: &str) -> CfResult<Value> {
    let (name, description, default) = FEATURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .ok_or(CfError::NotFound("Feature"))?;
    let enabled = app
        .annotations()
        .get(&feature_annotation(name))
        .map_or(*default, |v| v == "true");
    Ok(json!({"name": name, "description": description, "enabled": enabled}))
}

async fn features(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    let all = FEATURES
        .iter()
        .map(|(n, _, _)| feature_json(&app, n))
        .collect::<CfResult<Vec<_>>>()?;
    let q = crate::api::query::Query::default();
    let params = crate::api::pagination::PageParams::from_query(&q, &["name"])?;
    Ok(Json(crate::api::pagination::page(
        &state.config.base_url,
        &format!("/v3/apps/{guid}/features"),
        &q,
        &params,
        all,
    )))
}

async fn feature(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, name)): Path<(String, String)>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    Ok(Json(feature_json(&app, &name)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FeatureBody {
    enabled: bool,
}

async fn update_feature(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, name)): Path<(String, String)>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: FeatureBody = parse(&body)?;
    let app = find_app(&state, &caller, &guid)?;
    feature_json(&app, &name)?;
    let patch = json!({"metadata": {"annotations": {feature_annotation(&name): body.enabled.to_string()}}});
    let updated = resource::patch(&state, &caller, &*app, &patch).await?;
    Ok(Json(feature_json(&updated, &name)?))
}

async fn ssh_enabled(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    let on = feature_json(&app, "ssh")?["enabled"] == json!(true);
    let reason = if on {
        "SSH is not available on this platform (kubefoundry runs no SSH proxy)"
    } else {
        "Disabled for this app"
    };
    Ok(Json(json!({"enabled": false, "reason": reason})))
}

fn droplet_relationship(cx: &Cx<'_>, app: &CFApp) -> Value {
    let guid = app.name_any();
    let mut v = to_one(app.spec.current_droplet_guid.as_deref());
    v["links"] = json!({
        "self": cx.link(&format!("/v3/apps/{guid}/relationships/current_droplet")),
        "related": cx.link(&format!("/v3/apps/{guid}/droplets/current")),
    });
    v
}

async fn current_droplet_relationship(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    Ok(Json(droplet_relationship(&Cx::new(&state), &app)))
}

/// Checks that `droplet` is a STAGED droplet of `app`, CC's precondition for running it.
pub fn check_droplet(caches: &Caches, app: &CFApp, droplet: &str) -> CfResult<()> {
    let unable = || {
        CfError::Unprocessable(
            "Unable to assign current droplet. Ensure the droplet exists and belongs to this app.".into(),
        )
    };
    let d = caches
        .droplets
        .find(|d| d.metadata.name.as_deref() == Some(droplet) && d.namespace() == app.namespace())
        .filter(|d| d.metadata.deletion_timestamp.is_none())
        .ok_or_else(unable)?;
    if d.spec.app_guid != app.name_any() {
        return Err(unable());
    }
    if d.status.as_ref().and_then(|s| s.state) != Some(DropletState::Staged) {
        return Err(CfError::Unprocessable(
            "Unable to assign current droplet. The droplet must be in the STAGED state.".into(),
        ));
    }
    Ok(())
}

/// Waits (bounded) until the cache shows `droplet` usable: a client that just saw its build
/// STAGED assigns it at once, and the droplet's own status may trail the build's by a moment.
pub async fn wait_for_droplet(caches: &Caches, app: &CFApp, droplet: &str) {
    resource::wait(|| check_droplet(caches, app, droplet).is_ok()).await;
}

async fn set_current_droplet(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: ToOne = parse(&body)?;
    let app = find_app(&state, &caller, &guid)?;
    let droplet = body.data.map(|d| d.guid).ok_or_else(|| {
        CfError::Unprocessable(
            "Current droplet cannot be removed. Replace it with a preferable droplet.".into(),
        )
    })?;
    wait_for_droplet(&state.caches, &app, &droplet).await;
    check_droplet(&state.caches, &app, &droplet)?;
    let updated = resource::patch(
        &state,
        &caller,
        &*app,
        &json!({"spec": {"currentDropletGuid": droplet}}),
    )
    .await?;
    Ok(Json(droplet_relationship(&Cx::new(&state), &updated)))
}

/// The app's current droplet; "Droplet not found" (exactly: the cf CLI matches it) when it
/// has none or it is gone.
async fn current_droplet(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = find_app(&state, &caller, &guid)?;
    let droplet = app
        .spec
        .current_droplet_guid
        .as_deref()
        .and_then(|d| resource::lookup::<CFDroplet>(&state.caches, d))
        .filter(|d| d.namespace() == app.namespace() && d.metadata.deletion_timestamp.is_none())
        .ok_or(CfError::NotFound("Droplet"))?;
    Ok(Json(droplet.present(&Cx::new(&state))))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{
        api::v3::processes::test_caches::{caches, cx},
        fixtures,
    };

    #[test]
    fn apps_present_as_cc_does() {
        let caches = caches(vec![], vec![], vec![]);
        let app = fixtures::app("a1", "my-app").docker().droplet("d1");
        let v = app.present(&cx(&caches, None));
        assert_eq!(v["name"], "my-app");
        assert_eq!(v["state"], "STOPPED");
        assert_eq!(v["lifecycle"], json!({"type": "docker", "data": {}}));
        assert_eq!(
            v["relationships"]["space"],
            json!({"data": {"guid": fixtures::SPACE}})
        );
        assert_eq!(
            v["relationships"]["current_droplet"],
            json!({"data": {"guid": "d1"}})
        );
        assert_eq!(
            v["links"]["start"],
            json!({"href": "https://api.example.test/v3/apps/a1/actions/start", "method": "POST"})
        );
        assert_eq!(
            v["links"]["current_droplet"]["href"],
            "https://api.example.test/v3/apps/a1/droplets/current"
        );
        let buildpack = fixtures::app("a2", "b").started().present(&cx(&caches, None));
        assert_eq!(buildpack["state"], "STARTED");
        assert_eq!(
            buildpack["lifecycle"],
            json!({"type": "buildpack", "data": {"buildpacks": [], "stack": "cflinuxfs4"}})
        );
        assert_eq!(
            buildpack["relationships"]["current_droplet"],
            json!({"data": null})
        );
    }

    #[test]
    fn filters_know_stacks_and_lifecycle_types() {
        let caches = caches(vec![], vec![], vec![]);
        let cx = cx(&caches, None);
        let docker = fixtures::app("a1", "x").docker();
        let buildpack = fixtures::app("a2", "y");
        let v = |s: &str| vec![s.to_owned()];
        assert!(docker.filter("lifecycle_type", &v("docker"), &cx));
        assert!(!buildpack.filter("lifecycle_type", &v("docker"), &cx));
        assert!(buildpack.filter("stacks", &v("cflinuxfs4"), &cx));
        assert!(!docker.filter("stacks", &v("cflinuxfs4"), &cx));
        assert!(docker.filter("names", &v("x"), &cx));
    }

    #[test]
    fn lifecycles_resolve_against_the_current_one() {
        let body = |t: &str, data: Option<LifecycleData>| LifecycleBody {
            type_: t.to_owned(),
            data,
        };
        assert_eq!(
            body("docker", None).resolve(None).unwrap().type_,
            LifecycleType::Docker
        );
        let with_stack = body(
            "buildpack",
            Some(LifecycleData {
                buildpacks: Some(vec!["go_buildpack".into()]),
                stack: Some("cflinuxfs4".into()),
            }),
        )
        .resolve(None)
        .unwrap();
        assert_eq!(with_stack.buildpacks, ["go_buildpack"]);
        // Only the buildpacks change: the stack stays.
        let changed = body(
            "buildpack",
            Some(LifecycleData {
                buildpacks: Some(vec![]),
                stack: None,
            }),
        )
        .resolve(Some(&with_stack))
        .unwrap();
        assert_eq!(
            (changed.buildpacks.len(), changed.stack.as_deref()),
            (0, Some("cflinuxfs4"))
        );
        assert!(body("docker", None).resolve(Some(&with_stack)).is_err());
        assert!(body("kpack", None).resolve(None).is_err());
        let docker_with_stack = body(
            "docker",
            Some(LifecycleData {
                buildpacks: None,
                stack: Some("x".into()),
            }),
        );
        assert!(docker_with_stack.resolve(None).is_err());
    }

    #[test]
    fn environments_are_checked_the_cc_way() {
        let vars = |v: Value| v.as_object().unwrap().clone();
        let env = environment(&vars(json!({"A": "1", "N": 2, "B": true, "GONE": null}))).unwrap();
        assert_eq!(
            env,
            BTreeMap::from([
                ("A".to_owned(), "1".to_owned()),
                ("B".to_owned(), "true".to_owned()),
                ("N".to_owned(), "2".to_owned()),
            ])
        );
        for bad in [
            json!({"VCAP_X": "1"}),
            json!({"PORT": "1"}),
            json!({"1A": "1"}),
            json!({"A": {"x": 1}}),
        ] {
            assert!(
                matches!(environment(&vars(bad.clone())), Err(CfError::Unprocessable(_))),
                "{bad}"
            );
        }
        assert_eq!(
            name_taken("web").to_string(),
            "App with the name 'web' already exists."
        );
    }

    #[test]
    fn features_default_off_and_read_their_annotation() {
        let mut app = fixtures::app("a1", "x");
        assert_eq!(feature_json(&app, "ssh").unwrap()["enabled"], false);
        app.metadata.annotations = Some([(feature_annotation("ssh"), "true".to_owned())].into());
        assert_eq!(feature_json(&app, "ssh").unwrap()["enabled"], true);
        assert!(matches!(
            feature_json(&app, "bogus"),
            Err(CfError::NotFound("Feature"))
        ));
    }
}
