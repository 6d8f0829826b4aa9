//! `/v3/service_credential_bindings` (app bindings of user-provided instances, unique per app
//! and instance through a claim; synchronous, as Cloud Controller is for user-provided
//! instances) and `/v3/service_route_bindings` (route services are not supported: the list is
//! always empty, so `cf routes` works, and creating one is a clear 422).

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use kube::{Resource, ResourceExt, runtime::reflector::Store};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    service_instances::{last_operation, read_credentials},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        body::{MetadataBody, ToOne, check_name, parse},
        claims::Claim,
        pagination::{PageParams, page},
        query::Query,
    },
    crd::{
        BindingType, CFApp, CFServiceBinding, CFServiceBindingSpec, CFServiceInstance,
        service_instance::ServiceInstanceType,
    },
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/service_credential_bindings", get(list).post(create))
        .route(
            "/v3/service_credential_bindings/{guid}",
            get(resource::show::<CFServiceBinding>)
                .patch(resource::update_metadata::<CFServiceBinding>)
                .delete(destroy),
        )
        .route("/v3/service_credential_bindings/{guid}/details", get(details))
        .route(
            "/v3/service_route_bindings",
            get(list_route_bindings).post(create_route_binding),
        )
        .route(
            "/v3/service_route_bindings/{guid}",
            get(no_route_binding)
                .patch(no_route_binding)
                .delete(no_route_binding),
        )
}

fn type_name(t: BindingType) -> &'static str {
    match t {
        BindingType::App => "app",
        BindingType::Key => "key",
    }
}

impl CfKind for CFServiceBinding {
    const KIND: &'static str = "Service credential binding";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name"];
    const FILTERS: &'static [&'static str] = &[
        "names",
        "app_guids",
        "app_names",
        "service_instance_guids",
        "service_instance_names",
        "type",
    ];
    const INCLUDES: &'static [&'static str] = &["app", "service_instance"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.service_bindings
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let instance = &self.spec.service_instance_guid;
        let (created_at, updated_at) = timestamps(&self.metadata);
        let op = self.status.as_ref().and_then(|s| s.last_operation.as_ref());
        let mut v = json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.display_name,
            "type": type_name(self.spec.type_),
            "last_operation": last_operation(op, &created_at, &updated_at),
            "metadata": metadata(&self.metadata),
            "relationships": {"service_instance": to_one(Some(instance))},
            "links": {
                "self": cx.link(&format!("/v3/service_credential_bindings/{guid}")),
                "details": cx.link(&format!("/v3/service_credential_bindings/{guid}/details")),
                "service_instance": cx.link(&format!("/v3/service_instances/{instance}")),
            },
        });
        if let Some(app) = &self.spec.app_guid {
            v["relationships"]["app"] = to_one(Some(app));
            v["links"]["app"] = cx.link(&format!("/v3/apps/{app}"));
        }
        v
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let ns = self.namespace();
        match key {
            "names" => self
                .spec
                .display_name
                .as_ref()
                .is_some_and(|n| values.contains(n)),
            "app_guids" => self.spec.app_guid.as_ref().is_some_and(|a| values.contains(a)),
            "app_names" => self.spec.app_guid.as_ref().is_some_and(|a| {
                resource::lookup::<CFApp>(cx.caches, a)
                    .is_some_and(|app| app.namespace() == ns && values.contains(&app.spec.display_name))
            }),
            "service_instance_guids" => values.contains(&self.spec.service_instance_guid),
            "service_instance_names" => {
                resource::lookup::<CFServiceInstance>(cx.caches, &self.spec.service_instance_guid)
                    .is_some_and(|i| i.namespace() == ns && values.contains(&i.spec.display_name))
            }
            "type" => values.iter().any(|v| v == type_name(self.spec.type_)),
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
            "app" => Some((
                "apps",
                related("app")
                    .iter()
                    .filter_map(|g| resource::lookup::<CFApp>(cx.caches, g))
                    .filter(|a| a.visible(access, cx))
                    .map(|a| a.present(cx))
                    .collect(),
            )),
            "service_instance" => Some((
                "service_instances",
                related("service_instance")
                    .iter()
                    .filter_map(|g| resource::lookup::<CFServiceInstance>(cx.caches, g))
                    .filter(|i| i.visible(access, cx))
                    .map(|i| i.present(cx))
                    .collect(),
            )),
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
    resource::list::<CFServiceBinding>(
        &state,
        &caller,
        raw.as_deref(),
        "/v3/service_credential_bindings",
        |_| true,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRelationships {
    service_instance: ToOne,
    #[serde(default)]
    app: Option<ToOne>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type")]
    type_: String,
    #[serde(default)]
    name: Option<String>,
    relationships: CreateRelationships,
    #[serde(default)]
    parameters: Option<Map<String, Value>>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// The claim that makes an app's binding to an instance unique.
pub fn claim(space: &str, app: &str, instance: &str) -> Claim {
    Claim::new("service-binding", space, &format!("{app}|{instance}"))
}

/// CC's words for a second binding of an app to an instance (the cf CLI matches them).
pub const ALREADY_BOUND: &str = "The app is already bound to the service instance";

fn already_bound() -> CfError {
    CfError::Unprocessable(ALREADY_BOUND.into())
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    let cx = Cx::new(&state);
    let instance_guid = body.relationships.service_instance.required("service_instance")?;
    let instance = resource::lookup::<CFServiceInstance>(&state.caches, &instance_guid)
        .filter(|i| i.meta().deletion_timestamp.is_none() && i.visible(&caller.access, &cx))
        .ok_or_else(|| {
            CfError::Unprocessable(format!(
                "The service instance could not be found: {instance_guid}"
            ))
        })?;
    if instance.spec.type_ != ServiceInstanceType::UserProvided {
        return Err(CfError::Unprocessable(
            "Bindings of managed service instances are not supported: kubefoundry serves user-provided service instances only".into(),
        ));
    }
    match body.type_.as_str() {
        "app" => {}
        "key" => {
            return Err(CfError::Unprocessable(
                "Service credential bindings of type 'key' are not supported for user-provided service instances."
                    .into(),
            ));
        }
        _ => return Err(CfError::Unprocessable("Type must be 'app' or 'key'".into())),
    }
    if body.parameters.is_some() {
        return Err(CfError::Unprocessable(
            "Binding parameters are not supported for user-provided service instances".into(),
        ));
    }
    if let Some(n) = &body.name {
        check_name(n)?;
    }
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let app_guid = match &body.relationships.app {
        Some(a) => a.required("app")?,
        None => return Err(CfError::Unprocessable("No app was specified".into())),
    };
    let app = resource::lookup::<CFApp>(&state.caches, &app_guid)
        .filter(|a| a.meta().deletion_timestamp.is_none() && a.visible(&caller.access, &cx))
        .ok_or_else(|| CfError::Unprocessable(format!("The app could not be found: {app_guid}")))?;
    let space = instance.namespace().unwrap_or_default();
    if app.namespace().as_deref() != Some(space.as_str()) {
        return Err(CfError::Unprocessable(
            "The service instance and the app are in different spaces".into(),
        ));
    }
    let bound = state.caches.service_bindings.find(|b| {
        b.namespace().as_deref() == Some(space.as_str())
            && b.meta().deletion_timestamp.is_none()
            && b.spec.app_guid.as_deref() == Some(app_guid.as_str())
            && b.spec.service_instance_guid == instance_guid
    });
    if bound.is_some() {
        return Err(already_bound());
    }
    let guid = resource::new_guid();
    let claim = claim(&space, &app_guid, &instance_guid);
    claim
        .take(
            &state,
            &guid,
            |g| {
                resource::lookup::<CFServiceBinding>(&state.caches, g)
                    .is_some_and(|b| b.meta().deletion_timestamp.is_none())
            },
            already_bound,
        )
        .await?;
    let mut binding = CFServiceBinding::new(
        &guid,
        CFServiceBindingSpec {
            display_name: body.name.clone(),
            type_: BindingType::App,
            service_instance_guid: instance_guid,
            app_guid: Some(app_guid),
        },
    );
    binding.metadata.namespace = Some(space);
    if let Some(m) = &body.metadata {
        m.apply_to(&mut binding.metadata);
    }
    let created = match resource::create(&state, &caller, &binding).await {
        Ok(b) => b,
        Err(e) => {
            claim.release(&state).await;
            return Err(e);
        }
    };
    Ok((StatusCode::CREATED, Json(created.present(&cx))).into_response())
}

/// Deletes a binding as the caller and frees its (app, instance) claim.
pub async fn delete_binding(state: &ApiState, caller: &Caller, binding: &CFServiceBinding) -> CfResult<()> {
    resource::delete(state, caller, binding).await?;
    if let Some(app) = &binding.spec.app_guid {
        claim(
            &binding.namespace().unwrap_or_default(),
            app,
            &binding.spec.service_instance_guid,
        )
        .release(state)
        .await;
    }
    Ok(())
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFServiceBinding>(&state, &caller, &guid)?;
    delete_binding(&state, &caller, &current).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn details(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let binding = resource::find::<CFServiceBinding>(&state, &caller, &guid)?;
    let instance = resource::lookup::<CFServiceInstance>(&state.caches, &binding.spec.service_instance_guid)
        .filter(|i| i.namespace() == binding.namespace())
        .ok_or(CfError::NotFound("Service instance"))?;
    let credentials = read_credentials(&state, &caller, &instance).await?;
    Ok(Json(json!({
        "credentials": credentials,
        "syslog_drain_url": instance.spec.syslog_drain_url,
        "volume_mounts": [],
    })))
}

// ---- route bindings: route services are not supported ----

const ROUTE_BINDING_FILTERS: &[&str] = &[
    "guids",
    "route_guids",
    "service_instance_guids",
    "service_instance_names",
    "include",
];

/// Route services are not supported, so this list is always empty; it answers the filters and
/// `include` the cf CLI sends (`cf routes`), as CC would for a foundation without any.
async fn list_route_bindings(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(ROUTE_BINDING_FILTERS)?;
    let params = PageParams::from_query(&q, &["created_at", "updated_at"])?;
    let mut body = page(
        &state.config.base_url,
        "/v3/service_route_bindings",
        &q,
        &params,
        Vec::new(),
    );
    if let Some(what) = q.list("include") {
        let mut included = Map::new();
        for w in what {
            let key = match w.as_str() {
                "service_instance" => "service_instances",
                "route" => "routes",
                other => {
                    return Err(CfError::BadQuery(format!(
                        "Invalid included resource: '{other}'. Valid included resources are: 'route', 'service_instance'"
                    )));
                }
            };
            included.insert(key.to_owned(), json!([]));
        }
        body["included"] = Value::Object(included);
    }
    Ok(Json(body))
}

async fn create_route_binding(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> CfResult<Response> {
    Caller::of(&state, &headers).await?;
    Err(CfError::Unprocessable(
        "Route services are not supported: routes are served by an Ingress, which cannot send traffic through a route service, so a route cannot be bound to a service instance.".into(),
    ))
}

async fn no_route_binding(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> CfResult<Response> {
    Caller::of(&state, &headers).await?;
    Err(CfError::NotFound("Service route binding"))
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{api::v3::domains::testing, fixtures};

    #[test]
    fn an_app_binding_presents_both_relationships() {
        let filled = testing::Filled::new();
        let cx = testing::cx(&filled.caches);
        let v = fixtures::binding("b1", "si1", "a1").present(&cx);
        assert_eq!(v["type"], "app");
        assert_eq!(v["name"], Value::Null);
        assert_eq!(
            v["relationships"],
            json!({"app": {"data": {"guid": "a1"}}, "service_instance": {"data": {"guid": "si1"}}})
        );
        assert_eq!(
            v["links"]["details"]["href"],
            "https://api.example.com/v3/service_credential_bindings/b1/details"
        );
        assert_eq!(v["last_operation"]["state"], "succeeded");
    }

    #[test]
    fn bindings_filter_by_names_of_apps_and_instances() {
        let filled = testing::Filled::new()
            .app(fixtures::app("a1", "web-app"))
            .instance(fixtures::user_provided_service("si1", "db", "creds"));
        let cx = testing::cx(&filled.caches);
        let b = fixtures::binding("b1", "si1", "a1");
        assert!(b.filter("app_names", &["web-app".to_owned()], &cx));
        assert!(!b.filter("app_names", &["other".to_owned()], &cx));
        assert!(b.filter("service_instance_names", &["db".to_owned()], &cx));
        assert!(b.filter("type", &["app".to_owned()], &cx));
        assert!(!b.filter("type", &["key".to_owned()], &cx));
        assert!(!b.filter("names", &["x".to_owned()], &cx));
    }

    #[test]
    fn the_already_bound_detail_is_the_one_the_cli_matches() {
        assert!(
            already_bound()
                .to_string()
                .starts_with("The app is already bound to the service instance")
        );
    }
}
