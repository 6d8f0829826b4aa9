//! `/v3/service_instances`: user-provided service instances (`cf cups`), whose credentials live
//! in a Secret `<guid>-credentials` in the space namespace under key `credentials` (what the
//! controller reads), owned by the instance. Names are unique per space through a claim.
//! Managed instances need brokers, which kubefoundry does not have: creating one is a clear 422.
//! `fields[...]` (sent by `cf services`) is answered with `included` spaces and orgs, and empty
//! plans, offerings and brokers, since user-provided instances have none.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    runtime::reflector::Store,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    service_bindings, timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        body::{MetadataBody, ToOne, check_name, parse},
        claims::Claim,
        error::from_kube,
        query::Query,
    },
    controller::service_instance::build::CREDENTIALS_KEY,
    crd::{
        CFOrg, CFServiceBinding, CFServiceInstance, CFServiceInstanceSpec, CFSpace, SecretRef,
        service_instance::{LastOperation, ServiceInstanceType},
    },
    labels::{FIELD_MANAGER, SERVICE_INSTANCE_GUID},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/service_instances", get(list).post(create))
        .route(
            "/v3/service_instances/{guid}",
            get(show).patch(update).delete(destroy),
        )
        .route("/v3/service_instances/{guid}/credentials", get(credentials))
}

/// The v3 spelling of an instance type.
pub fn type_name(t: ServiceInstanceType) -> &'static str {
    match t {
        ServiceInstanceType::UserProvided => "user-provided",
        ServiceInstanceType::Managed => "managed",
    }
}

/// A v3 `last_operation`: the controller's, or a succeeded create before it has reported
/// (a user-provided create is complete once the objects exist, as in Cloud Controller).
pub fn last_operation(op: Option<&LastOperation>, created_at: &str, updated_at: &str) -> Value {
    match op {
        Some(op) => json!({
            "type": op.type_,
            "state": op.state,
            "description": op.description,
            "created_at": created_at,
            "updated_at": op.updated_at.as_deref().unwrap_or(updated_at),
        }),
        None => json!({
            "type": "create",
            "state": "succeeded",
            "description": "",
            "created_at": created_at,
            "updated_at": updated_at,
        }),
    }
}

impl CfKind for CFServiceInstance {
    const KIND: &'static str = "Service instance";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name"];
    const FILTERS: &'static [&'static str] = &[
        "names",
        "space_guids",
        "organization_guids",
        "type",
        "service_plan_guids",
        "service_plan_names",
        "fields",
    ];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.service_instances
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let space = self.namespace().unwrap_or_default();
        let (created_at, updated_at) = timestamps(&self.metadata);
        let op = self.status.as_ref().and_then(|s| s.last_operation.as_ref());
        let mut v = json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.display_name,
            "type": type_name(self.spec.type_),
            "tags": self.spec.tags,
            "last_operation": last_operation(op, &created_at, &updated_at),
            "relationships": {"space": to_one(Some(&space))},
            "metadata": metadata(&self.metadata),
            "links": {
                "self": cx.link(&format!("/v3/service_instances/{guid}")),
                "space": cx.link(&format!("/v3/spaces/{space}")),
                "service_credential_bindings":
                    cx.link(&format!("/v3/service_credential_bindings?service_instance_guids={guid}")),
                "service_route_bindings":
                    cx.link(&format!("/v3/service_route_bindings?service_instance_guids={guid}")),
            },
        });
        match self.spec.type_ {
            ServiceInstanceType::UserProvided => {
                v["syslog_drain_url"] = json!(self.spec.syslog_drain_url);
                v["route_service_url"] = json!(self.spec.route_service_url);
                v["links"]["credentials"] = cx.link(&format!("/v3/service_instances/{guid}/credentials"));
            }
            ServiceInstanceType::Managed => {
                v["relationships"]["service_plan"] = to_one(self.spec.service_plan_guid.as_deref());
                v["dashboard_url"] = Value::Null;
                v["upgrade_available"] = json!(false);
            }
        }
        v
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = self.namespace().unwrap_or_default();
        match key {
            "names" => values.contains(&self.spec.display_name),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "type" => values.iter().any(|v| v == type_name(self.spec.type_)),
            "service_plan_guids" => self
                .spec
                .service_plan_guid
                .as_ref()
                .is_some_and(|p| values.contains(p)),
            // No plans exist, so no instance is on a plan of any name.
            "service_plan_names" => false,
            _ => true,
        }
    }
}

/// The `fields[resource]` CC accepts on service instance lists, with their allowed keys.
const FIELDS: &[(&str, &str, &[&str])] = &[
    ("space", "spaces", &["guid", "name", "relationships.organization"]),
    ("space.organization", "organizations", &["guid", "name"]),
    (
        "service_plan",
        "service_plans",
        &["guid", "name", "relationships.service_offering"],
    ),
    (
        "service_plan.service_offering",
        "service_offerings",
        &[
            "guid",
            "name",
            "description",
            "documentation_url",
            "tags",
            "relationships.service_broker",
        ],
    ),
    (
        "service_plan.service_offering.service_broker",
        "service_brokers",
        &["guid", "name"],
    ),
];

/// The requested `fields[...]`, checked: (resource, its keys).
fn requested_fields(q: &Query) -> CfResult<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    for (key, value) in q.pairs() {
        let Some(resource) = key.strip_prefix("fields[").and_then(|r| r.strip_suffix(']')) else {
            if key == "fields" || key.starts_with("fields") {
                return Err(CfError::BadQuery(format!("Fields '{key}' is not valid")));
            }
            continue;
        };
        let Some((_, _, allowed)) = FIELDS.iter().find(|(r, _, _)| *r == resource) else {
            let valid: Vec<String> = FIELDS.iter().map(|(r, _, _)| format!("'{r}'")).collect();
            return Err(CfError::BadQuery(format!(
                "Fields [{resource}] valid resources are: {}",
                valid.join(", ")
            )));
        };
        let keys: Vec<String> = value.split(',').map(str::to_owned).collect();
        if let Some(bad) = keys.iter().find(|k| !allowed.contains(&k.as_str())) {
            return Err(CfError::BadQuery(format!(
                "Fields valid keys for '{resource}' are: {}; '{bad}' is not one",
                allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        out.push((resource.to_owned(), keys));
    }
    Ok(out)
}

/// Only `keys` (dotted paths) of `v`.
fn pick(v: &Value, keys: &[String]) -> Value {
    let mut out = json!({});
    for key in keys {
        let path: Vec<&str> = key.split('.').collect();
        let mut src = v;
        for p in &path {
            src = &src[*p];
        }
        let mut dst = &mut out;
        for p in &path[..path.len() - 1] {
            if dst.get(*p).is_none() {
                dst[*p] = json!({});
            }
            dst = &mut dst[*p];
        }
        dst[path[path.len() - 1]] = src.clone();
    }
    out
}

/// `included` for the requested fields over the shown instances.
fn included_fields(cx: &Cx<'_>, shown: &[Value], fields: &[(String, Vec<String>)]) -> Value {
    let mut spaces: Vec<String> = shown
        .iter()
        .filter_map(|i| {
            i["relationships"]["space"]["data"]["guid"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    spaces.sort();
    spaces.dedup();
    let mut included = Map::new();
    for (resource, keys) in fields {
        let values: Vec<Value> = match resource.as_str() {
            "space" => spaces
                .iter()
                .filter_map(|g| resource::lookup::<CFSpace>(cx.caches, g))
                .map(|s| pick(&s.present(cx), keys))
                .collect(),
            "space.organization" => {
                let mut orgs: Vec<String> = spaces.iter().filter_map(|s| cx.org_of_space(s)).collect();
                orgs.sort();
                orgs.dedup();
                orgs.iter()
                    .filter_map(|g| resource::lookup::<CFOrg>(cx.caches, g))
                    .map(|o| pick(&o.present(cx), keys))
                    .collect()
            }
            _ => Vec::new(),
        };
        if let Some((_, key, _)) = FIELDS.iter().find(|(r, _, _)| r == resource) {
            included.insert((*key).to_owned(), Value::Array(values));
        }
    }
    Value::Object(included)
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    let fields = requested_fields(&q)?;
    let mut body = resource::list_value::<CFServiceInstance>(
        &state,
        &caller,
        &q,
        "/v3/service_instances",
        |_| true,
        CFServiceInstance::FILTERS,
    )?;
    if !fields.is_empty() {
        let shown = body["resources"].as_array().cloned().unwrap_or_default();
        let cx = Cx {
            query: Some(&q),
            ..Cx::new(&state)
        };
        body["included"] = included_fields(&cx, &shown, &fields);
    }
    Ok(Json(body))
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&["fields"])?;
    let fields = requested_fields(&q)?;
    let instance = resource::find::<CFServiceInstance>(&state, &caller, &guid)?;
    let cx = Cx::new(&state);
    let mut body = instance.present(&cx);
    if !fields.is_empty() {
        body["included"] = included_fields(&cx, std::slice::from_ref(&body), &fields);
    }
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRelationships {
    space: ToOne,
    #[serde(default)]
    service_plan: Option<ToOne>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type")]
    type_: String,
    name: String,
    relationships: CreateRelationships,
    #[serde(default)]
    credentials: Option<Value>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    syslog_drain_url: Option<String>,
    #[serde(default)]
    route_service_url: Option<String>,
    #[serde(default)]
    parameters: Option<Value>,
    #[serde(default)]
    maintenance_info: Option<Value>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// Checks the user-provided fields CC checks.
fn check_fields(
    credentials: Option<&Value>,
    tags: Option<&[String]>,
    syslog: Option<&str>,
    route_service: Option<&str>,
) -> CfResult<()> {
    let bad = |m: &str| Err(CfError::Unprocessable(m.to_owned()));
    if credentials.is_some_and(|c| !c.is_object()) {
        return bad("Credentials must be an object");
    }
    if tags.is_some_and(|t| t.iter().map(String::len).sum::<usize>() > 2048) {
        return bad("Tags combined length must be 2048 characters or less");
    }
    if let Some(url) = syslog.filter(|u| !u.is_empty()) {
        let scheme = url.split_once("://").map(|(s, rest)| (s, rest.is_empty()));
        if !matches!(scheme, Some((s, false)) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        {
            return bad("Syslog drain url must be a valid URI");
        }
        if url.len() > 2048 {
            return bad("Syslog drain url is too long (maximum is 2048 characters)");
        }
    }
    if let Some(url) = route_service.filter(|u| !u.is_empty()) {
        if !url.starts_with("https://") || url.len() <= "https://".len() {
            return bad("Route service url must be https");
        }
        if url.len() > 2048 {
            return bad("Route service url is too long (maximum is 2048 characters)");
        }
    }
    Ok(())
}

/// The claim on an instance name in its space.
pub fn name_claim(space: &str, name: &str) -> Claim {
    Claim::new("service-instance", space, name)
}

fn name_taken(name: &str) -> CfError {
    CfError::Unprocessable(format!("The service instance name is taken: {name}."))
}

/// The name of the Secret holding a user-provided instance's credentials.
pub fn credentials_secret(guid: &str) -> String {
    format!("{guid}-credentials")
}

fn secret_data(credentials: &Value) -> BTreeMap<String, ByteString> {
    BTreeMap::from([(
        CREDENTIALS_KEY.to_owned(),
        ByteString(credentials.to_string().into_bytes()),
    )])
}

fn only_user_provided() -> CfError {
    CfError::Unprocessable(
        "Managed service instances are not supported: kubefoundry has no service brokers, so only user-provided service instances (cf create-user-provided-service) can be created."
            .into(),
    )
}

fn secrets_as(state: &ApiState, caller: &Caller, ns: &str) -> CfResult<Api<Secret>> {
    Ok(Api::namespaced(state.client_for(&caller.who)?, ns))
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    match body.type_.as_str() {
        "user-provided" => {}
        "managed" => return Err(only_user_provided()),
        _ => {
            return Err(CfError::Unprocessable(
                "Type must be one of 'managed', 'user-provided'".into(),
            ));
        }
    }
    if body.relationships.service_plan.is_some()
        || body.parameters.is_some()
        || body.maintenance_info.is_some()
    {
        return Err(CfError::Unprocessable(
            "User-provided service instances take no service plan, parameters or maintenance_info".into(),
        ));
    }
    check_name(&body.name)?;
    check_fields(
        body.credentials.as_ref(),
        body.tags.as_deref(),
        body.syslog_drain_url.as_deref(),
        body.route_service_url.as_deref(),
    )?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let space = body.relationships.space.required("space")?;
    let space_exists = state
        .caches
        .spaces
        .find(|s| s.name_any() == space && s.metadata.deletion_timestamp.is_none())
        .is_some();
    if !space_exists || !caller.access.space(&space) {
        return Err(CfError::Unprocessable(
            "Invalid space. Ensure that the space exists and you have access to it.".into(),
        ));
    }
    let guid = resource::new_guid();
    let claim = name_claim(&space, &body.name);
    claim
        .take(
            &state,
            &guid,
            |g| resource::lookup::<CFServiceInstance>(&state.caches, g).is_some(),
            || name_taken(&body.name),
        )
        .await?;
    let secrets = secrets_as(&state, &caller, &space)?;
    let secret_name = credentials_secret(&guid);
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(secret_name.clone()),
            namespace: Some(space.clone()),
            labels: Some(BTreeMap::from([(SERVICE_INSTANCE_GUID.to_owned(), guid.clone())])),
            ..Default::default()
        },
        data: Some(secret_data(body.credentials.as_ref().unwrap_or(&json!({})))),
        ..Default::default()
    };
    if let Err(e) = secrets.create(&PostParams::default(), &secret).await {
        claim.release(&state).await;
        return Err(from_kube(e, "Service instance", false));
    }
    let mut instance = CFServiceInstance::new(
        &guid,
        CFServiceInstanceSpec {
            display_name: body.name.clone(),
            type_: ServiceInstanceType::UserProvided,
            credentials: Some(SecretRef {
                name: secret_name.clone(),
            }),
            syslog_drain_url: body.syslog_drain_url.clone().filter(|u| !u.is_empty()),
            route_service_url: body.route_service_url.clone().filter(|u| !u.is_empty()),
            tags: body.tags.clone().unwrap_or_default(),
            service_plan_guid: None,
        },
    );
    instance.metadata.namespace = Some(space.clone());
    if let Some(m) = &body.metadata {
        m.apply_to(&mut instance.metadata);
    }
    let created = match resource::create(&state, &caller, &instance).await {
        Ok(i) => i,
        Err(e) => {
            let _ = secrets.delete(&secret_name, &DeleteParams::default()).await;
            claim.release(&state).await;
            return Err(e);
        }
    };
    // The Secret goes with its instance, however the instance is deleted.
    if let Some(owner) = created.controller_owner_ref(&()) {
        let patch = json!({"metadata": {"ownerReferences": [owner]}});
        let params = PatchParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PatchParams::default()
        };
        if let Err(e) = secrets.patch(&secret_name, &params, &Patch::Merge(&patch)).await {
            tracing::warn!(error = %e, secret = %secret_name, "could not make the instance own its credentials Secret");
        }
    }
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    credentials: Option<Value>,
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    syslog_drain_url: Option<Value>,
    #[serde(default)]
    route_service_url: Option<Value>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// A nullable string field of a PATCH: absent → unchanged, null or "" → cleared.
fn nullable(v: Option<&Value>, field: &str) -> CfResult<Option<Value>> {
    match v {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(Value::Null)),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(Value::Null)),
        Some(Value::String(s)) => Ok(Some(json!(s))),
        Some(_) => Err(CfError::Unprocessable(format!("{field} must be a string"))),
    }
}

async fn update(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: UpdateBody = parse(&body)?;
    let current = resource::find::<CFServiceInstance>(&state, &caller, &guid)?;
    if current.spec.type_ != ServiceInstanceType::UserProvided {
        return Err(only_user_provided());
    }
    let syslog = nullable(body.syslog_drain_url.as_ref(), "Syslog drain url")?;
    let route_service = nullable(body.route_service_url.as_ref(), "Route service url")?;
    check_fields(
        body.credentials.as_ref(),
        body.tags.as_deref(),
        syslog.as_ref().and_then(Value::as_str),
        route_service.as_ref().and_then(Value::as_str),
    )?;
    let space = current.namespace().unwrap_or_default();
    let mut patch = json!({"spec": {}});
    if let Some(s) = syslog {
        patch["spec"]["syslogDrainUrl"] = s;
    }
    if let Some(r) = route_service {
        patch["spec"]["routeServiceUrl"] = r;
    }
    if let Some(t) = &body.tags {
        patch["spec"]["tags"] = json!(t);
    }
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    if let Some(creds) = &body.credentials {
        let secrets = secrets_as(&state, &caller, &space)?;
        match &current.spec.credentials {
            Some(secret) => {
                let data: BTreeMap<String, ByteString> = secret_data(creds);
                let p = json!({"data": data});
                secrets
                    .patch(&secret.name, &PatchParams::default(), &Patch::Merge(&p))
                    .await
                    .map_err(|e| from_kube(e, "Service instance", false))?;
            }
            None => {
                // Made with kubectl without credentials: give it a Secret now.
                let name = credentials_secret(&guid);
                let secret = Secret {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(space.clone()),
                        labels: Some(BTreeMap::from([(SERVICE_INSTANCE_GUID.to_owned(), guid.clone())])),
                        owner_references: current.controller_owner_ref(&()).map(|o| vec![o]),
                        ..Default::default()
                    },
                    data: Some(secret_data(creds)),
                    ..Default::default()
                };
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .map_err(|e| from_kube(e, "Service instance", false))?;
                patch["spec"]["credentials"] = json!({"name": name});
            }
        }
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
                    |g| resource::lookup::<CFServiceInstance>(&state.caches, g).is_some(),
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
            Ok(Json(updated.present(&Cx::new(&state))))
        }
        Err(e) => {
            if let Some(c) = new_claim {
                c.release(&state).await;
            }
            Err(e)
        }
    }
}

/// Deletes an instance: its bindings first (as CC unbinds a user-provided instance on delete),
/// then the instance (its Secret is owned by it), then its name claim.
async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFServiceInstance>(&state, &caller, &guid)?;
    let space = current.namespace().unwrap_or_default();
    let bindings: Vec<Arc<CFServiceBinding>> = state
        .caches
        .service_bindings
        .state()
        .into_iter()
        .filter(|b| {
            b.namespace().as_deref() == Some(space.as_str())
                && b.spec.service_instance_guid == guid
                && b.meta().deletion_timestamp.is_none()
        })
        .collect();
    for binding in bindings {
        service_bindings::delete_binding(&state, &caller, &binding).await?;
    }
    resource::delete(&state, &caller, &*current).await?;
    name_claim(&space, &current.spec.display_name)
        .release(&state)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A user-provided instance's credentials, read as the caller (so only those who may read
/// the space's Secrets see them).
pub async fn read_credentials(
    state: &ApiState,
    caller: &Caller,
    instance: &CFServiceInstance,
) -> CfResult<Value> {
    let Some(secret) = &instance.spec.credentials else {
        return Ok(json!({}));
    };
    let secrets = secrets_as(state, caller, &instance.namespace().unwrap_or_default())?;
    let found = match secrets.get_opt(&secret.name).await {
        Ok(s) => s,
        Err(kube::Error::Api(e)) if e.code == 403 => return Err(CfError::NotAuthorized),
        Err(e) => return Err(from_kube(e, "Service instance", true)),
    };
    let raw = found
        .as_ref()
        .and_then(|s| s.data.as_ref())
        .and_then(|d| d.get(CREDENTIALS_KEY))
        .map(|b| b.0.clone());
    Ok(raw
        .and_then(|r| serde_json::from_slice::<Value>(&r).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({})))
}

async fn credentials(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let instance = resource::find::<CFServiceInstance>(&state, &caller, &guid)?;
    if instance.spec.type_ != ServiceInstanceType::UserProvided {
        return Err(CfError::NotFound("Service instance"));
    }
    Ok(Json(read_credentials(&state, &caller, &instance).await?))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{
        api::v3::domains::testing,
        crd::{
            CFServiceInstanceStatus,
            service_instance::{OperationState, OperationType},
        },
        fixtures,
    };

    #[test]
    fn a_user_provided_instance_presents_as_cc_does() {
        let filled = testing::Filled::new();
        let cx = testing::cx(&filled.caches);
        let mut si = fixtures::user_provided_service("si1", "db", "creds");
        si.spec.tags = vec!["sql".to_owned()];
        si.spec.syslog_drain_url = Some("syslog://logs".to_owned());
        let v = si.present(&cx);
        assert_eq!(v["name"], "db");
        assert_eq!(v["type"], "user-provided");
        assert_eq!(v["tags"], json!(["sql"]));
        assert_eq!(v["syslog_drain_url"], "syslog://logs");
        assert_eq!(v["route_service_url"], Value::Null);
        assert_eq!(v["last_operation"]["type"], "create");
        assert_eq!(v["last_operation"]["state"], "succeeded");
        assert_eq!(
            v["relationships"],
            json!({"space": {"data": {"guid": "space-1"}}})
        );
        assert_eq!(
            v["links"]["credentials"]["href"],
            "https://api.example.com/v3/service_instances/si1/credentials"
        );
        si.status = Some(CFServiceInstanceStatus {
            last_operation: Some(LastOperation {
                type_: OperationType::Update,
                state: OperationState::InProgress,
                description: "waiting".to_owned(),
                updated_at: Some("2026-01-01T00:00:00Z".to_owned()),
            }),
            ..Default::default()
        });
        let op = &si.present(&cx)["last_operation"];
        assert_eq!(
            (
                op["type"].as_str(),
                op["state"].as_str(),
                op["updated_at"].as_str()
            ),
            (Some("update"), Some("in progress"), Some("2026-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn the_cf_services_fields_are_accepted_and_checked() {
        let q = Query::parse(
            "fields%5Bservice_plan%5D=guid%2Cname%2Crelationships.service_offering&fields%5Bservice_plan.service_offering%5D=guid%2Cname%2Crelationships.service_broker&fields%5Bservice_plan.service_offering.service_broker%5D=guid%2Cname&order_by=name&per_page=5000&space_guids=S",
        )
        .unwrap();
        let fields = requested_fields(&q).unwrap();
        assert_eq!(fields.len(), 3);
        let filled = testing::Filled::new();
        let included = included_fields(&testing::cx(&filled.caches), &[], &fields);
        assert_eq!(
            included,
            json!({"service_plans": [], "service_offerings": [], "service_brokers": []})
        );
        assert!(requested_fields(&Query::parse("fields%5Bbogus%5D=guid").unwrap()).is_err());
        assert!(requested_fields(&Query::parse("fields%5Bspace%5D=secret").unwrap()).is_err());
    }

    #[test]
    fn picking_fields_keeps_nested_paths() {
        let v = json!({"guid": "g", "name": "n", "x": 1, "relationships": {"organization": {"data": {"guid": "o"}}, "quota": 2}});
        assert_eq!(
            pick(&v, &["name".to_owned(), "relationships.organization".to_owned()]),
            json!({"name": "n", "relationships": {"organization": {"data": {"guid": "o"}}}})
        );
    }

    #[test]
    fn user_provided_fields_are_checked() {
        assert!(
            check_fields(
                Some(&json!({"a": 1})),
                None,
                Some("syslog://h:514"),
                Some("https://rs")
            )
            .is_ok()
        );
        assert_eq!(
            check_fields(Some(&json!([1])), None, None, None)
                .unwrap_err()
                .to_string(),
            "Credentials must be an object"
        );
        assert!(check_fields(None, None, Some("not a url"), None).is_err());
        assert_eq!(
            check_fields(None, None, None, Some("http://rs"))
                .unwrap_err()
                .to_string(),
            "Route service url must be https"
        );
        assert_eq!(
            name_taken("db").to_string(),
            "The service instance name is taken: db."
        );
    }
}
