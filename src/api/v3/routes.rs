//! `/v3/routes`: CRUD with a race-free (host, domain, path, port) claim, destinations (insert,
//! replace, remove, update protocol), `/v3/apps/{guid}/routes` and
//! `DELETE /v3/spaces/{guid}/routes?unmapped=true`.
//!
//! A route becomes one Ingress path with one backend, so the façade refuses destinations the
//! controller could not serve (unequal weights, or several app processes or ports) with a 422
//! up front: accepting them would take the route off the Ingress, silently. Route `options`
//! accept only `loadbalancing: round-robin`, which is what an Ingress controller does anyway.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{delete, get},
};
use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
    runtime::reflector::Store,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    domains::{is_shared, usable_by},
    jobs, metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        body::{MetadataBody, ToOne, parse},
        claims::Claim,
        error::from_kube,
        query::Query,
    },
    controller::route::build::{DEFAULT_PORT, backend, url},
    crd::{CFApp, CFDomain, CFOrg, CFRoute, CFRouteSpec, CFSpace, Destination, RouteProtocol},
    labels::FIELD_MANAGER,
};

/// Where a route's `options` are kept (the CRD has no field for them).
const OPTIONS: &str = "kubefoundry.dev/route-options";

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/routes", get(list).post(create))
        .route("/v3/routes/{guid}", get(show).patch(update).delete(destroy))
        .route(
            "/v3/routes/{guid}/destinations",
            get(destinations)
                .post(insert_destinations)
                .patch(replace_destinations),
        )
        .route(
            "/v3/routes/{guid}/destinations/{dest}",
            delete(remove_destination).patch(update_destination),
        )
        .route("/v3/apps/{guid}/routes", get(list_for_app))
        .route("/v3/spaces/{guid}/routes", delete(delete_unmapped))
}

fn protocol_name(p: RouteProtocol) -> &'static str {
    match p {
        RouteProtocol::Http1 => "http1",
        RouteProtocol::Http2 => "http2",
        RouteProtocol::Tcp => "tcp",
    }
}

/// One destination as v3 presents it.
pub fn present_destination(d: &Destination) -> Value {
    json!({
        "guid": d.guid,
        "app": {"guid": d.app_guid, "process": {"type": d.process_type}},
        "weight": d.weight,
        "port": d.port.unwrap_or(DEFAULT_PORT),
        "protocol": protocol_name(d.protocol.unwrap_or(RouteProtocol::Http1)),
    })
}

fn options_of(route: &CFRoute) -> Map<String, Value> {
    route
        .annotations()
        .get(OPTIONS)
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default()
}

fn domain_name(cx: &Cx<'_>, route: &CFRoute) -> Option<String> {
    resource::lookup::<CFDomain>(cx.caches, &route.spec.domain_guid).map(|d| d.spec.name.clone())
}

impl CfKind for CFRoute {
    const KIND: &'static str = "Route";
    const FILTERS: &'static [&'static str] = &[
        "hosts",
        "paths",
        "ports",
        "protocols",
        "domain_guids",
        "space_guids",
        "organization_guids",
        "app_guids",
    ];
    const INCLUDES: &'static [&'static str] = &["domain", "space", "space.organization"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.routes
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let space = self.namespace().unwrap_or_default();
        let domain = &self.spec.domain_guid;
        let (created_at, updated_at) = timestamps(&self.metadata);
        let url = match domain_name(cx, self) {
            Some(name) => url(self, &name),
            None => self
                .status
                .as_ref()
                .and_then(|s| s.url.clone())
                .unwrap_or_default(),
        };
        let destinations: Vec<Value> = self.spec.destinations.iter().map(present_destination).collect();
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "protocol": if self.spec.protocol == RouteProtocol::Tcp { "tcp" } else { "http" },
            "host": self.spec.host,
            "path": self.spec.path,
            "port": self.spec.port,
            "url": url,
            "destinations": destinations,
            "options": options_of(self),
            "metadata": metadata(&self.metadata),
            "relationships": {
                "space": to_one(Some(&space)),
                "domain": to_one(Some(domain)),
            },
            "links": {
                "self": cx.link(&format!("/v3/routes/{guid}")),
                "space": cx.link(&format!("/v3/spaces/{space}")),
                "domain": cx.link(&format!("/v3/domains/{domain}")),
                "destinations": cx.link(&format!("/v3/routes/{guid}/destinations")),
            },
        })
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = self.namespace().unwrap_or_default();
        match key {
            "hosts" => values.iter().any(|v| v.eq_ignore_ascii_case(&self.spec.host)),
            "paths" => values.contains(&self.spec.path),
            "ports" => self
                .spec
                .port
                .is_some_and(|p| values.iter().any(|v| v.parse::<i32>().ok() == Some(p))),
            "protocols" => {
                let p = if self.spec.protocol == RouteProtocol::Tcp {
                    "tcp"
                } else {
                    "http"
                };
                values.iter().any(|v| v == p)
            }
            "domain_guids" => values.contains(&self.spec.domain_guid),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "app_guids" => self
                .spec
                .destinations
                .iter()
                .any(|d| values.contains(&d.app_guid)),
            _ => true,
        }
    }

    fn include(
        what: &str,
        page: &[Value],
        cx: &Cx<'_>,
        access: &Access,
    ) -> Option<(&'static str, Vec<Value>)> {
        let related = |rel: &str| -> Vec<String> {
            let mut guids: Vec<String> = page
                .iter()
                .filter_map(|r| {
                    r["relationships"][rel]["data"]["guid"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            guids.sort();
            guids.dedup();
            guids
        };
        match what {
            "domain" => Some((
                "domains",
                related("domain")
                    .iter()
                    .filter_map(|g| resource::lookup::<CFDomain>(cx.caches, g))
                    .map(|d| d.present(cx))
                    .collect(),
            )),
            "space" => Some((
                "spaces",
                related("space")
                    .iter()
                    .filter(|g| access.space(g))
                    .filter_map(|g| resource::lookup::<CFSpace>(cx.caches, g))
                    .map(|s| s.present(cx))
                    .collect(),
            )),
            "space.organization" => {
                let mut orgs: Vec<String> = related("space")
                    .iter()
                    .filter_map(|s| cx.org_of_space(s))
                    .filter(|o| access.org(o))
                    .collect();
                orgs.sort();
                orgs.dedup();
                Some((
                    "organizations",
                    orgs.iter()
                        .filter_map(|g| resource::lookup::<CFOrg>(cx.caches, g))
                        .map(|o| o.present(cx))
                        .collect(),
                ))
            }
            _ => None,
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFRoute>(&state, &caller, raw.as_deref(), "/v3/routes", |_| true)
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let route = resource::find::<CFRoute>(&state, &caller, &guid)?;
    Ok(Json(route.present(&Cx::new(&state))))
}

async fn list_for_app(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(app): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    let found = resource::find::<CFApp>(&state, &caller, &app)?;
    let space = found.namespace();
    resource::list::<CFRoute>(
        &state,
        &caller,
        raw.as_deref(),
        &format!("/v3/apps/{app}/routes"),
        |r| r.namespace() == space && r.spec.destinations.iter().any(|d| d.app_guid == app),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRelationships {
    space: ToOne,
    domain: ToOne,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    host: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    port: Option<i64>,
    relationships: CreateRelationships,
    #[serde(default)]
    options: Option<Map<String, Value>>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// A checked route address: lowercase host, path, no port (HTTP only).
#[derive(Debug, PartialEq, Eq)]
pub struct Address {
    /// The host label (may be empty or `*`).
    pub host: String,
    /// The path (empty or starting with `/`).
    pub path: String,
}

/// Cloud Controller's route checks, plus what an Ingress host needs (lowercase DNS labels).
/// `admin` may put a wildcard host on a shared domain.
pub fn check_address(
    host: Option<&str>,
    path: Option<&str>,
    port: Option<i64>,
    domain: &CFDomain,
    admin: bool,
) -> CfResult<Address> {
    let bad = |m: &str| Err(CfError::Unprocessable(m.to_owned()));
    let host = host.unwrap_or("").to_ascii_lowercase();
    let path = path.unwrap_or("").to_owned();
    if host.chars().count() > 63 {
        return bad("Host is too long (maximum is 63 characters)");
    }
    if host != "*"
        && !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return bad("Host must be either \"*\" or contain only alphanumeric characters, \"_\", or \"-\"");
    }
    if host != "*" && (host.contains('_') || host.starts_with('-') || host.ends_with('-')) {
        return Err(CfError::Unprocessable(format!(
            "Host format is invalid. '{host}' must be a DNS label: routes are served by an Ingress, whose host names allow only letters, digits and '-' (not first or last)."
        )));
    }
    if !path.is_empty() {
        if !path.starts_with('/') {
            return bad("Path must begin with /");
        }
        if path.contains('?') {
            return bad("Path cannot contain ?");
        }
        if path == "/" {
            return bad("Path cannot be exactly /");
        }
        if path.chars().count() > 128 {
            return bad("Path is too long (maximum is 128 characters)");
        }
        if path.chars().any(|c| c == '#' || c.is_whitespace()) {
            return bad("Path is invalid.");
        }
    }
    if port.is_some() {
        return bad("Routes with protocol 'http' do not support ports.");
    }
    if domain.spec.internal {
        if host == "*" {
            return bad("Wildcard hosts are not supported for internal domains.");
        }
        if !path.is_empty() {
            return bad("Paths are not supported for internal domains.");
        }
    }
    if is_shared(domain) && host.is_empty() {
        return bad("Missing host. Routes in shared domains must have a host defined.");
    }
    if is_shared(domain) && host == "*" && !admin {
        return Err(CfError::NotAuthorized);
    }
    let fqdn = if host.is_empty() {
        domain.spec.name.len()
    } else {
        host.len() + 1 + domain.spec.name.len()
    };
    if fqdn > 253 {
        return bad("Host combined with domain name must be no more than 253 characters.");
    }
    Ok(Address { host, path })
}

/// CC's words for a route that exists already (the cf CLI matches "Route already exists").
pub fn already_exists(host: &str, path: &str, domain: &str) -> String {
    match (host.is_empty(), path.is_empty()) {
        (true, true) => format!("Route already exists for domain '{domain}'."),
        (false, true) => format!("Route already exists with host '{host}' for domain '{domain}'."),
        (true, false) => format!("Route already exists with path '{path}' for domain '{domain}'."),
        (false, false) => {
            format!("Route already exists with host '{host}' and path '{path}' for domain '{domain}'.")
        }
    }
}

/// The claim on a route's address, unique across the foundation.
pub fn claim(state: &ApiState, route: &CFRouteSpec) -> Claim {
    let port = route.port.map(|p| p.to_string()).unwrap_or_default();
    Claim::new(
        "route",
        &state.config.root_namespace,
        &format!("{}|{}|{}|{port}", route.host, route.domain_guid, route.path),
    )
}

/// Checks route options: only `loadbalancing: round-robin` (null removes) can be honoured.
fn check_options(options: &Map<String, Value>) -> CfResult<()> {
    for (key, value) in options {
        match (key.as_str(), value) {
            ("loadbalancing", Value::Null) => {}
            ("loadbalancing", Value::String(v)) if v == "round-robin" => {}
            ("loadbalancing", other) => {
                return Err(CfError::Unprocessable(format!(
                    "Options Loadbalancing {other} is not supported: routes are served by an Ingress, which balances round-robin; only 'round-robin' is accepted"
                )));
            }
            (other, _) => {
                return Err(CfError::Unprocessable(format!("Unknown field(s): '{other}'")));
            }
        }
    }
    Ok(())
}

fn merged_options(current: Map<String, Value>, update: &Map<String, Value>) -> Map<String, Value> {
    let mut out = current;
    for (k, v) in update {
        if v.is_null() {
            out.remove(k);
        } else {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    if let Some(o) = &body.options {
        check_options(o)?;
    }
    let space_guid = body.relationships.space.required("space")?;
    let domain_guid = body.relationships.domain.required("domain")?;
    let cx = Cx::new(&state);
    let space = state
        .caches
        .spaces
        .find(|s| s.name_any() == space_guid && s.metadata.deletion_timestamp.is_none())
        .filter(|_| caller.access.space(&space_guid))
        .ok_or_else(|| {
            CfError::Unprocessable(
                "Invalid space. Ensure that the space exists and you have access to it.".into(),
            )
        })?;
    let org = space.namespace().unwrap_or_default();
    let domain = resource::lookup::<CFDomain>(&state.caches, &domain_guid)
        .filter(|d| d.metadata.deletion_timestamp.is_none() && d.visible(&caller.access, &cx))
        .ok_or_else(|| {
            CfError::Unprocessable(
                "Invalid domain. Ensure that the domain exists and you have access to it.".into(),
            )
        })?;
    if !usable_by(&domain, |o| o == org, true) {
        let org_name = resource::lookup::<CFOrg>(&state.caches, &org)
            .map(|o| o.spec.display_name.clone())
            .unwrap_or(org);
        return Err(CfError::Unprocessable(format!(
            "Invalid domain. Domain '{}' is not available in organization '{org_name}'.",
            domain.spec.name
        )));
    }
    let address = check_address(
        body.host.as_deref(),
        body.path.as_deref(),
        body.port,
        &domain,
        caller.access.global,
    )?;
    let guid = resource::new_guid();
    let spec = CFRouteSpec {
        host: address.host,
        path: address.path,
        port: None,
        protocol: RouteProtocol::Http1,
        domain_guid: domain_guid.clone(),
        destinations: Vec::new(),
    };
    let claim = claim(&state, &spec);
    let taken = already_exists(&spec.host, &spec.path, &domain.spec.name);
    claim
        .take(
            &state,
            &guid,
            |g| resource::lookup::<CFRoute>(&state.caches, g).is_some(),
            || CfError::Unprocessable(taken.clone()),
        )
        .await?;
    let mut route = CFRoute::new(&guid, spec);
    route.metadata.namespace = Some(space_guid);
    if let Some(m) = &body.metadata {
        m.apply_to(&mut route.metadata);
    }
    let options = merged_options(Map::new(), &body.options.unwrap_or_default());
    if !options.is_empty() {
        route
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(OPTIONS.to_owned(), Value::Object(options).to_string());
    }
    let created = match resource::create(&state, &caller, &route).await {
        Ok(r) => r,
        Err(e) => {
            claim.release(&state).await;
            return Err(e);
        }
    };
    Ok((StatusCode::CREATED, Json(created.present(&cx))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    options: Option<Map<String, Value>>,
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
    let current = resource::find::<CFRoute>(&state, &caller, &guid)?;
    let mut patch = json!({"metadata": {}});
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    if let Some(o) = &body.options {
        check_options(o)?;
        let options = merged_options(options_of(&current), o);
        patch["metadata"]["annotations"][OPTIONS] = if options.is_empty() {
            Value::Null
        } else {
            json!(Value::Object(options).to_string())
        };
    }
    let updated = resource::patch(&state, &caller, &*current, &patch).await?;
    Ok(Json(updated.present(&Cx::new(&state))))
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFRoute>(&state, &caller, &guid)?;
    resource::delete(&state, &caller, &*current).await?;
    claim(&state, &current.spec).release(&state).await;
    Ok(jobs::accepted(&state, "route.delete", &guid))
}

async fn delete_unmapped(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(space): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&["unmapped"])?;
    let visible = state
        .caches
        .spaces
        .find(|s| s.name_any() == space && s.metadata.deletion_timestamp.is_none())
        .is_some()
        && caller.access.space(&space);
    if !visible {
        return Err(CfError::NotFound("Space"));
    }
    if q.get("unmapped") != Some("true") {
        return Err(CfError::InvalidRequest(
            "Mass delete not supported for routes. Use 'unmapped=true' parameter to delete all unmapped routes."
                .into(),
        ));
    }
    let unmapped: Vec<Arc<CFRoute>> = state
        .caches
        .routes
        .state()
        .into_iter()
        .filter(|r| {
            r.namespace().as_deref() == Some(space.as_str())
                && r.metadata.deletion_timestamp.is_none()
                && r.spec.destinations.is_empty()
        })
        .collect();
    for route in unmapped {
        resource::delete(&state, &caller, &*route).await?;
        claim(&state, &route.spec).release(&state).await;
    }
    Ok(jobs::accepted(&state, "space.delete_unmapped_routes", &space))
}

// ---- destinations ----

fn destinations_body(cx: &Cx<'_>, route: &CFRoute) -> Value {
    let guid = route.name_any();
    json!({
        "destinations": route.spec.destinations.iter().map(present_destination).collect::<Vec<_>>(),
        "links": {
            "self": cx.link(&format!("/v3/routes/{guid}/destinations")),
            "route": cx.link(&format!("/v3/routes/{guid}")),
        },
    })
}

async fn destinations(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&["guids", "app_guids"])?;
    let route = resource::find::<CFRoute>(&state, &caller, &guid)?;
    let mut shown = (*route).clone();
    if let Some(g) = q.list("guids") {
        shown.spec.destinations.retain(|d| g.contains(&d.guid));
    }
    if let Some(a) = q.list("app_guids") {
        shown.spec.destinations.retain(|d| a.contains(&d.app_guid));
    }
    Ok(Json(destinations_body(&Cx::new(&state), &shown)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcessBody {
    #[serde(rename = "type")]
    type_: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppBody {
    guid: String,
    #[serde(default)]
    process: Option<ProcessBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationBody {
    app: AppBody,
    #[serde(default)]
    weight: Option<i64>,
    #[serde(default)]
    port: Option<i64>,
    #[serde(default)]
    protocol: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationsBody {
    destinations: Vec<DestinationBody>,
}

fn destination_protocol(p: Option<&str>) -> CfResult<Option<RouteProtocol>> {
    match p {
        None => Ok(None),
        Some("http1") => Ok(Some(RouteProtocol::Http1)),
        Some("http2") => Ok(Some(RouteProtocol::Http2)),
        Some(other) => Err(CfError::Unprocessable(format!(
            "Destinations[0] protocol must be 'http1' or 'http2', not '{other}'"
        ))),
    }
}

/// Turns requested destinations into CRD destinations for `route`, checking each app lives in
/// the route's space (`app_space` answers an app's space, when the caller may see the app).
fn new_destinations(
    route: &CFRoute,
    body: Vec<DestinationBody>,
    app_space: impl Fn(&str) -> Option<String>,
) -> CfResult<Vec<Destination>> {
    let space = route.namespace().unwrap_or_default();
    let mut missing = Vec::new();
    let mut out = Vec::new();
    for d in body {
        match app_space(&d.app.guid) {
            None => missing.push(d.app.guid.clone()),
            Some(s) if s != space => {
                return Err(CfError::Unprocessable(
                    "Routes cannot be mapped to destinations in different spaces.".into(),
                ));
            }
            Some(_) => {}
        }
        let port = match d.port {
            None => None,
            Some(p) if (1..=65535).contains(&p) => i32::try_from(p).ok(),
            Some(p) => {
                return Err(CfError::Unprocessable(format!(
                    "Port must be between 1 and 65535, not {p}"
                )));
            }
        };
        let weight = match d.weight {
            None => None,
            Some(w) if (1..=100).contains(&w) => i32::try_from(w).ok(),
            Some(w) => {
                return Err(CfError::Unprocessable(format!(
                    "Weight must be between 1 and 100, not {w}"
                )));
            }
        };
        out.push(Destination {
            guid: resource::new_guid(),
            app_guid: d.app.guid,
            process_type: d.app.process.map_or_else(|| "web".to_owned(), |p| p.type_),
            port,
            weight,
            protocol: destination_protocol(d.protocol.as_deref())?,
        });
    }
    if !missing.is_empty() {
        return Err(CfError::Unprocessable(format!(
            "App(s) with guid(s) \"{}\" do not exist or you do not have access.",
            missing.join("\", \"")
        )));
    }
    Ok(out)
}

/// Adds `new` to `current`, skipping any identical (app, process, port, protocol) already there.
pub fn insert(current: &[Destination], new: Vec<Destination>) -> Vec<Destination> {
    let mut out = current.to_vec();
    for d in new {
        let same = |e: &Destination| {
            e.app_guid == d.app_guid
                && e.process_type == d.process_type
                && e.port.unwrap_or(DEFAULT_PORT) == d.port.unwrap_or(DEFAULT_PORT)
                && e.protocol.unwrap_or_default() == d.protocol.unwrap_or_default()
        };
        if !out.iter().any(same) {
            out.push(d);
        }
    }
    out
}

/// Refuses destinations an Ingress cannot serve, in the controller's own words.
pub fn check_expressible(route: &CFRoute, destinations: &[Destination]) -> CfResult<()> {
    let mut candidate = route.clone();
    candidate.spec.destinations = destinations.to_vec();
    backend(&candidate).map(|_| ()).map_err(|e| {
        let (_, message) = e.condition();
        CfError::Unprocessable(format!("The destinations cannot be served: {message}"))
    })
}

/// Rewrites the destinations of route `guid` with `change`, from a fresh read and guarded by
/// its resourceVersion, retrying when a concurrent writer got there first.
async fn change_destinations(
    state: &ApiState,
    caller: &Caller,
    current: &CFRoute,
    change: impl Fn(&CFRoute) -> CfResult<Vec<Destination>>,
) -> CfResult<CFRoute> {
    let ns = current.namespace().unwrap_or_default();
    let api = resource::api_as::<CFRoute>(state, caller, &ns)?;
    let name = current.name_any();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for _ in 0..5 {
        let fresh = api.get(&name).await.map_err(|e| from_kube(e, "Route", true))?;
        let destinations = change(&fresh)?;
        check_expressible(&fresh, &destinations)?;
        let patch = json!({
            "metadata": {"resourceVersion": fresh.metadata.resource_version},
            "spec": {"destinations": destinations},
        });
        match api.patch(&name, &params, &Patch::Merge(&patch)).await {
            Ok(updated) => {
                resource::seen(&state.caches.routes, &updated).await;
                return Ok(updated);
            }
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(from_kube(e, "Route", false)),
        }
    }
    Err(CfError::Unavailable(
        "the route is being changed concurrently; retry".into(),
    ))
}

/// Removes every destination of app `app` from the routes of its space (CC deletes an app's
/// route mappings with it; an Ingress backend naming a deleted app's Service would dangle).
pub async fn unmap_app(state: &ApiState, caller: &Caller, app: &str, space: &str) -> CfResult<()> {
    let mapped: Vec<Arc<CFRoute>> = state
        .caches
        .routes
        .state()
        .into_iter()
        .filter(|r| r.namespace().as_deref() == Some(space))
        .filter(|r| r.spec.destinations.iter().any(|d| d.app_guid == app))
        .collect();
    for route in mapped {
        change_destinations(state, caller, &route, |fresh| {
            Ok(fresh
                .spec
                .destinations
                .iter()
                .filter(|d| d.app_guid != app)
                .cloned()
                .collect())
        })
        .await?;
    }
    Ok(())
}

fn app_space_for<'a>(state: &'a ApiState, caller: &'a Caller) -> impl Fn(&str) -> Option<String> + 'a {
    move |guid| {
        resource::lookup::<CFApp>(&state.caches, guid)
            .filter(|a| a.metadata.deletion_timestamp.is_none())
            .and_then(|a| a.namespace())
            .filter(|space| caller.access.space(space))
    }
}

async fn insert_destinations(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: DestinationsBody = parse(&body)?;
    let current = resource::find::<CFRoute>(&state, &caller, &guid)?;
    let new = new_destinations(&current, body.destinations, app_space_for(&state, &caller))?;
    let updated = change_destinations(&state, &caller, &current, |fresh| {
        Ok(insert(&fresh.spec.destinations, new.clone()))
    })
    .await?;
    Ok(Json(destinations_body(&Cx::new(&state), &updated)))
}

async fn replace_destinations(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: DestinationsBody = parse(&body)?;
    let current = resource::find::<CFRoute>(&state, &caller, &guid)?;
    let new = new_destinations(&current, body.destinations, app_space_for(&state, &caller))?;
    let replacement = insert(&[], new);
    let updated = change_destinations(&state, &caller, &current, |_| Ok(replacement.clone())).await?;
    Ok(Json(destinations_body(&Cx::new(&state), &updated)))
}

fn no_destination() -> CfError {
    CfError::Unprocessable(
        "Unable to unmap route from destination. Ensure the route has a destination with this guid.".into(),
    )
}

async fn remove_destination(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, dest)): Path<(String, String)>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFRoute>(&state, &caller, &guid)?;
    change_destinations(&state, &caller, &current, |fresh| {
        if !fresh.spec.destinations.iter().any(|d| d.guid == dest) {
            return Err(no_destination());
        }
        Ok(fresh
            .spec
            .destinations
            .iter()
            .filter(|d| d.guid != dest)
            .cloned()
            .collect())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationUpdate {
    #[serde(default)]
    protocol: Option<String>,
}

async fn update_destination(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, dest)): Path<(String, String)>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: DestinationUpdate = parse(&body)?;
    let protocol = destination_protocol(body.protocol.as_deref())?;
    let current = resource::find::<CFRoute>(&state, &caller, &guid)?;
    let updated = change_destinations(&state, &caller, &current, |fresh| {
        if !fresh.spec.destinations.iter().any(|d| d.guid == dest) {
            return Err(CfError::NotFound("Destination"));
        }
        Ok(fresh
            .spec
            .destinations
            .iter()
            .map(|d| {
                let mut d = d.clone();
                if d.guid == dest {
                    d.protocol = protocol;
                }
                d
            })
            .collect())
    })
    .await?;
    let shown = updated
        .spec
        .destinations
        .iter()
        .find(|d| d.guid == dest)
        .map(present_destination)
        .ok_or(CfError::NotFound("Destination"))?;
    Ok(Json(shown))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{api::v3::domains::testing, fixtures};

    #[test]
    fn a_route_presents_url_destinations_and_links() {
        let filled = testing::Filled::new().domain(fixtures::domain("d1", "apps.example.com"));
        let cx = testing::cx(&filled.caches);
        let route = fixtures::route("r1", "myapp", "d1")
            .to_app("dest-1", "a1")
            .path("/api");
        let v = route.present(&cx);
        assert_eq!(v["url"], "myapp.apps.example.com/api");
        assert_eq!(v["protocol"], "http");
        assert_eq!(v["port"], Value::Null);
        assert_eq!(
            v["destinations"],
            json!([{
                "guid": "dest-1",
                "app": {"guid": "a1", "process": {"type": "web"}},
                "weight": null,
                "port": 8080,
                "protocol": "http1",
            }])
        );
        assert_eq!(v["relationships"]["domain"], json!({"data": {"guid": "d1"}}));
        assert_eq!(v["relationships"]["space"], json!({"data": {"guid": "space-1"}}));
        assert_eq!(
            v["links"]["destinations"]["href"],
            "https://api.example.com/v3/routes/r1/destinations"
        );
        assert_eq!(v["options"], json!({}));
    }

    #[test]
    fn empty_host_and_path_filters_match_the_empty_string() {
        let filled = testing::Filled::new();
        let cx = testing::cx(&filled.caches);
        let bare = fixtures::route("r1", "", "d1");
        let named = fixtures::route("r2", "MyApp", "d1");
        let empty = vec![String::new()];
        assert!(bare.filter("hosts", &empty, &cx));
        assert!(!named.filter("hosts", &empty, &cx));
        assert!(named.filter("hosts", &["myapp".to_owned()], &cx));
        assert!(bare.filter("paths", &empty, &cx));
        assert!(!bare.filter("ports", &["8080".to_owned()], &cx));
        assert!(fixtures::route("r3", "h", "d1").to_app("x", "a1").filter(
            "app_guids",
            &["a1".to_owned()],
            &cx
        ));
    }

    #[test]
    fn addresses_are_checked_as_cc_does() {
        let shared = fixtures::domain("d1", "apps.example.com");
        let mut private = fixtures::domain("d2", "private.example.com");
        private.spec.organization_guid = Some("org".to_owned());
        let check = |h: &str, p: &str, d: &CFDomain| check_address(Some(h), Some(p), None, d, false);
        assert_eq!(
            check("MyApp", "/api", &shared).unwrap(),
            Address {
                host: "myapp".into(),
                path: "/api".into()
            }
        );
        let err = |r: CfResult<Address>| r.unwrap_err().to_string();
        assert_eq!(
            err(check("a.b", "", &shared)),
            "Host must be either \"*\" or contain only alphanumeric characters, \"_\", or \"-\""
        );
        assert!(err(check("a_b", "", &shared)).starts_with("Host format is invalid."));
        assert_eq!(err(check("h", "api", &shared)), "Path must begin with /");
        assert_eq!(err(check("h", "/", &shared)), "Path cannot be exactly /");
        assert_eq!(err(check("h", "/a?b", &shared)), "Path cannot contain ?");
        assert_eq!(
            err(check("", "", &shared)),
            "Missing host. Routes in shared domains must have a host defined."
        );
        assert!(check("", "", &private).is_ok());
        assert!(matches!(check("*", "", &shared), Err(CfError::NotAuthorized)));
        assert!(check_address(Some("*"), None, None, &shared, true).is_ok());
        assert!(check("*", "", &private).is_ok());
        assert_eq!(
            err(check_address(Some("h"), None, Some(8080), &shared, false)),
            "Routes with protocol 'http' do not support ports."
        );
    }

    #[test]
    fn uniqueness_errors_use_ccs_words() {
        assert_eq!(
            already_exists("h", "", "apps.example.com"),
            "Route already exists with host 'h' for domain 'apps.example.com'."
        );
        assert_eq!(
            already_exists("h", "/p", "d"),
            "Route already exists with host 'h' and path '/p' for domain 'd'."
        );
        assert_eq!(
            already_exists("", "", "d"),
            "Route already exists for domain 'd'."
        );
    }

    fn dest(guid: &str, app: &str, port: Option<i32>, weight: Option<i32>) -> Destination {
        Destination {
            guid: guid.to_owned(),
            app_guid: app.to_owned(),
            process_type: "web".to_owned(),
            port,
            weight,
            protocol: None,
        }
    }

    #[test]
    fn inserting_an_identical_destination_is_idempotent() {
        let current = vec![dest("x", "a1", None, None)];
        let out = insert(&current, vec![dest("y", "a1", Some(8080), None)]);
        assert_eq!(out, current);
        let out = insert(&current, vec![dest("y", "a1", Some(9000), None)]);
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn destinations_an_ingress_cannot_serve_are_refused() {
        let route = fixtures::route("r1", "h", "d1");
        assert!(check_expressible(&route, &[dest("x", "a1", None, None)]).is_ok());
        let weights = check_expressible(
            &route,
            &[dest("x", "a1", None, Some(80)), dest("y", "a1", None, Some(20))],
        )
        .unwrap_err()
        .to_string();
        assert!(weights.contains("unequal weights"), "{weights}");
        let split = check_expressible(
            &route,
            &[dest("x", "a1", None, None), dest("y", "a2", None, None)],
        )
        .unwrap_err()
        .to_string();
        assert!(split.contains("cannot split traffic"), "{split}");
    }

    #[test]
    fn requested_destinations_must_be_apps_of_the_route_space() {
        let route = fixtures::route("r1", "h", "d1");
        let body = |app: &str| {
            vec![DestinationBody {
                app: AppBody {
                    guid: app.to_owned(),
                    process: None,
                },
                weight: None,
                port: None,
                protocol: None,
            }]
        };
        let spaces = |g: &str| match g {
            "here" => Some("space-1".to_owned()),
            "there" => Some("space-2".to_owned()),
            _ => None,
        };
        let ok = new_destinations(&route, body("here"), spaces).unwrap();
        assert_eq!(
            (ok[0].app_guid.as_str(), ok[0].process_type.as_str()),
            ("here", "web")
        );
        assert_eq!(
            new_destinations(&route, body("there"), spaces)
                .unwrap_err()
                .to_string(),
            "Routes cannot be mapped to destinations in different spaces."
        );
        assert_eq!(
            new_destinations(&route, body("ghost"), spaces)
                .unwrap_err()
                .to_string(),
            "App(s) with guid(s) \"ghost\" do not exist or you do not have access."
        );
    }

    #[test]
    fn only_round_robin_is_accepted() {
        let o = |v: Value| v.as_object().unwrap().clone();
        assert!(check_options(&o(json!({"loadbalancing": "round-robin"}))).is_ok());
        assert!(check_options(&o(json!({"loadbalancing": null}))).is_ok());
        assert!(check_options(&o(json!({"loadbalancing": "least-connection"}))).is_err());
        assert!(check_options(&o(json!({"bogus": 1}))).is_err());
        assert_eq!(
            merged_options(
                o(json!({"loadbalancing": "round-robin"})),
                &o(json!({"loadbalancing": null}))
            ),
            Map::new()
        );
    }
}
