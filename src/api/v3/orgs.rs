//! `/v3/organizations`: list and get from the cache (filtered to the orgs the caller holds a
//! role in), create with a race-free name claim, update, and delete as an async job.

use std::{collections::HashSet, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use k8s_openapi::api::coordination::v1::Lease;
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{link, metadata, timestamps};
use crate::{
    api::{
        ApiState, CfError, CfResult,
        auth::Identity,
        error::from_kube,
        pagination::{PageParams, order, page},
        query::{Query, timestamp_filter},
    },
    crd::{CFOrg, CFOrgSpec, RoleScope},
    labels::FIELD_MANAGER,
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/organizations", get(list).post(create))
        .route(
            "/v3/organizations/{guid}",
            get(show).patch(update).delete(destroy),
        )
        .route("/v3/jobs/{guid}", get(job))
}

/// An org as the v3 API presents it.
pub fn present(base: &str, org: &CFOrg) -> Value {
    let guid = org.name_any();
    let (created_at, updated_at) = timestamps(&org.metadata);
    json!({
        "guid": guid,
        "created_at": created_at,
        "updated_at": updated_at,
        "name": org.spec.display_name,
        "suspended": org.spec.suspended,
        "relationships": {"quota": {"data": null}},
        "metadata": metadata(&org.metadata),
        "links": {
            "self": link(base, &format!("/v3/organizations/{guid}")),
            "domains": link(base, &format!("/v3/organizations/{guid}/domains")),
            "default_domain": link(base, &format!("/v3/organizations/{guid}/domains/default")),
            "quota": link(base, "/v3/organization_quotas/default"),
        },
    })
}

/// The orgs `who` may see: `None` for everything (admins), else the org GUIDs where they hold
/// a role directly or through one of the org's spaces.
pub fn visible_orgs(state: &ApiState, who: &Identity) -> Option<HashSet<String>> {
    if who.groups.iter().any(|g| g == "system:masters") {
        return None;
    }
    let mut orgs = HashSet::new();
    for role in state.caches.roles.state() {
        if !holds(who, &role) {
            continue;
        }
        let namespace = role.namespace().unwrap_or_default();
        match role.spec.type_.scope() {
            RoleScope::Global => return None,
            RoleScope::Organization => {
                orgs.insert(namespace);
            }
            RoleScope::Space => {
                let space = state
                    .caches
                    .spaces
                    .state()
                    .into_iter()
                    .find(|s| s.name_any() == namespace);
                if let Some(org) = space.and_then(|s| s.namespace()) {
                    orgs.insert(org);
                }
            }
        }
    }
    Some(orgs)
}

/// Whether a CFRole names this caller.
pub fn holds(who: &Identity, role: &crate::crd::CFRole) -> bool {
    let s = &role.spec.subject;
    match s.kind {
        crate::crd::SubjectKind::User => s.name == who.name,
        crate::crd::SubjectKind::Group => who.groups.contains(&s.name),
        crate::crd::SubjectKind::ServiceAccount => {
            who.name
                == format!(
                    "system:serviceaccount:{}:{}",
                    s.namespace.as_deref().unwrap_or_default(),
                    s.name
                )
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let who = state.auth.identify(&headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&["names", "guids"])?;
    let params = PageParams::from_query(&q, &["created_at", "updated_at", "name"])?;
    let names = q.list("names");
    let guids = q.list("guids");
    let selector = match q.get("label_selector") {
        Some(s) => Some(
            kubefoundry_sim::selector::LabelSelector::parse(s)
                .map_err(|e| CfError::BadQuery(e.message().to_owned()))?,
        ),
        None => None,
    };
    let mut time_filters = Vec::new();
    for field in ["created_ats", "updated_ats"] {
        for (op, values) in q.timestamps(field) {
            time_filters.push((field, timestamp_filter(&op, &values)?));
        }
    }
    let visible = visible_orgs(&state, &who);
    let base = &state.config.base_url;
    let mut resources: Vec<Value> = state
        .caches
        .orgs
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(state.config.root_namespace.as_str()))
        .filter(|o| visible.as_ref().is_none_or(|v| v.contains(&o.name_any())))
        .filter(|o| names.as_ref().is_none_or(|n| n.contains(&o.spec.display_name)))
        .filter(|o| guids.as_ref().is_none_or(|g| g.contains(&o.name_any())))
        .filter(|o| selector.as_ref().is_none_or(|s| s.matches(o.labels())))
        .map(|o| present(base, o))
        .filter(|v| {
            time_filters.iter().all(|(field, f)| {
                let key = if *field == "created_ats" {
                    "created_at"
                } else {
                    "updated_at"
                };
                f(v[key].as_str().unwrap_or_default())
            })
        })
        .collect();
    order(&mut resources, &params);
    Ok(Json(page(base, "/v3/organizations", &q, &params, resources)))
}

fn find(state: &ApiState, who: &Identity, guid: &str) -> CfResult<Arc<CFOrg>> {
    let org = state
        .caches
        .orgs
        .get(&kube::runtime::reflector::ObjectRef::new(guid).within(&state.config.root_namespace))
        .ok_or(CfError::NotFound("Organization"))?;
    match visible_orgs(state, who) {
        Some(v) if !v.contains(guid) => Err(CfError::NotFound("Organization")),
        _ => Ok(org),
    }
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let who = state.auth.identify(&headers).await?;
    Ok(Json(present(
        &state.config.base_url,
        &*find(&state, &who, &guid)?,
    )))
}

/// CF metadata in a request body.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct MetadataBody {
    /// Labels to set (null removes).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, Option<String>>,
    /// Annotations to set (null removes).
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// Parses a JSON body CF's way: 400 CF-MessageParseError for bad JSON, 422 naming the field
/// for wrong types and unknown keys.
pub fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> CfResult<T> {
    let value: Value = serde_json::from_slice(body).map_err(|e| CfError::MessageParse(e.to_string()))?;
    if !value.is_object() {
        return Err(CfError::MessageParse(
            "the request body must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        let text = e.to_string();
        match text
            .strip_prefix("unknown field `")
            .and_then(|r| r.split_once('`'))
        {
            Some((field, _)) => CfError::Unprocessable(format!("Unknown field(s): '{field}'")),
            None => CfError::Unprocessable(text),
        }
    })
}

fn check_name(name: &str) -> CfResult<()> {
    if name.is_empty() {
        return Err(CfError::Unprocessable("Name can't be blank".into()));
    }
    if name.chars().count() > 255 {
        return Err(CfError::Unprocessable(
            "Name is too long (maximum is 255 characters)".into(),
        ));
    }
    Ok(())
}

fn name_claim(name: &str) -> String {
    let h = name
        .to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    format!("kf-org-name-{h:016x}")
}

fn apply_metadata(meta: &mut ObjectMeta, body: Option<MetadataBody>) {
    let Some(body) = body else { return };
    for (k, v) in body.labels {
        match v {
            Some(v) => meta.labels.get_or_insert_default().insert(k, v),
            None => meta.labels.get_or_insert_default().remove(&k),
        };
    }
    for (k, v) in body.annotations {
        match v {
            Some(v) => meta.annotations.get_or_insert_default().insert(k, v),
            None => meta.annotations.get_or_insert_default().remove(&k),
        };
    }
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let who = state.auth.identify(&headers).await?;
    let body: CreateBody = parse_body(&body)?;
    check_name(&body.name)?;
    let ns = state.config.root_namespace.clone();
    let guid = uuid::Uuid::new_v4().to_string();
    // The claim makes names unique without a webhook: of N concurrent creates, exactly one
    // creates the claim object; the rest get 409 and answer 422.
    let claims: Api<Lease> = Api::namespaced(state.client.clone(), &ns);
    let claim = Lease {
        metadata: ObjectMeta {
            name: Some(name_claim(&body.name)),
            annotations: Some([("kubefoundry.dev/org-guid".to_owned(), guid.clone())].into()),
            ..ObjectMeta::default()
        },
        spec: None,
    };
    if state
        .caches
        .orgs
        .state()
        .iter()
        .any(|o| o.spec.display_name.eq_ignore_ascii_case(&body.name))
    {
        return Err(CfError::Unprocessable(format!(
            "Organization '{}' already exists.",
            body.name
        )));
    }
    match claims.create(&PostParams::default(), &claim).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 409 => {
            return Err(CfError::Unprocessable(format!(
                "Organization '{}' already exists.",
                body.name
            )));
        }
        Err(e) => return Err(CfError::internal(e)),
    }
    let mut org = CFOrg::new(
        &guid,
        CFOrgSpec {
            display_name: body.name.clone(),
            suspended: body.suspended,
        },
    );
    org.metadata.namespace = Some(ns.clone());
    apply_metadata(&mut org.metadata, body.metadata);
    let orgs: Api<CFOrg> = Api::namespaced(state.client_for(&who)?, &ns);
    let created = match orgs.create(&PostParams::default(), &org).await {
        Ok(o) => o,
        Err(e) => {
            // Nothing half-written: release the claim when the org itself was refused.
            let _ = claims
                .delete(&name_claim(&body.name), &DeleteParams::default())
                .await;
            return Err(from_kube(e, "Organization", false));
        }
    };
    Ok((
        StatusCode::CREATED,
        Json(present(&state.config.base_url, &created)),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    suspended: Option<bool>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

async fn update(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let who = state.auth.identify(&headers).await?;
    let body: UpdateBody = parse_body(&body)?;
    let current = find(&state, &who, &guid)?;
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let mut patch = json!({"spec": {}});
    if let Some(name) = &body.name {
        patch["spec"]["displayName"] = json!(name);
    }
    if let Some(s) = body.suspended {
        patch["spec"]["suspended"] = json!(s);
    }
    if let Some(m) = body.metadata {
        patch["metadata"] = json!({"labels": m.labels, "annotations": m.annotations});
    }
    let orgs: Api<CFOrg> = Api::namespaced(state.client_for(&who)?, &current.namespace().unwrap_or_default());
    let updated = orgs
        .patch(
            &guid,
            &PatchParams {
                field_manager: Some(FIELD_MANAGER.to_owned()),
                ..PatchParams::default()
            },
            &Patch::Merge(&patch),
        )
        .await
        .map_err(|e| from_kube(e, "Organization", false))?;
    Ok(Json(present(&state.config.base_url, &updated)))
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let who = state.auth.identify(&headers).await?;
    let current = find(&state, &who, &guid)?;
    let orgs: Api<CFOrg> = Api::namespaced(state.client_for(&who)?, &current.namespace().unwrap_or_default());
    orgs.delete(&guid, &DeleteParams::background())
        .await
        .map_err(|e| from_kube(e, "Organization", false))?;
    let claims: Api<Lease> = Api::namespaced(state.client.clone(), &state.config.root_namespace);
    let _ = claims
        .delete(&name_claim(&current.spec.display_name), &DeleteParams::default())
        .await;
    let job = format!("org.delete~{guid}");
    let location = format!("{}/v3/jobs/{job}", state.config.base_url);
    let mut response = StatusCode::ACCEPTED.into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

/// `GET /v3/jobs/{guid}`: jobs are derived from state, so they survive API restarts.
async fn job(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    state.auth.identify(&headers).await?;
    let (operation, target) = guid.split_once('~').ok_or(CfError::NotFound("Job"))?;
    let done = match operation {
        "org.delete" => state
            .caches
            .orgs
            .get(&kube::runtime::reflector::ObjectRef::new(target).within(&state.config.root_namespace))
            .is_none(),
        _ => return Err(CfError::NotFound("Job")),
    };
    let base = &state.config.base_url;
    Ok(Json(json!({
        "guid": guid,
        "operation": operation,
        "state": if done { "COMPLETE" } else { "PROCESSING" },
        "errors": [],
        "warnings": [],
        "created_at": "",
        "updated_at": "",
        "links": {"self": link(base, &format!("/v3/jobs/{guid}"))},
    })))
}
