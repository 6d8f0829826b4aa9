//! `/v3/organizations`: list and get from the cache (filtered to the orgs the caller holds a
//! role in), create with a race-free name claim, update, and delete as an async job.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use kube::{ResourceExt, runtime::reflector::Store};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    jobs, metadata,
    resource::{self, Caller, CfKind, Cx},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        body::{MetadataBody, check_name, parse},
        claims::Claim,
    },
    crd::{CFOrg, CFOrgSpec},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/organizations", get(list).post(create))
        .route(
            "/v3/organizations/{guid}",
            get(show).patch(update).delete(destroy),
        )
}

impl CfKind for CFOrg {
    const KIND: &'static str = "Organization";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name"];
    const FILTERS: &'static [&'static str] = &["names"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.orgs
    }

    fn visible(&self, access: &Access, cx: &Cx<'_>) -> bool {
        self.namespace().as_deref() == Some(cx.root) && access.org(&self.name_any())
    }

    fn order_key(&self, field: &str) -> Option<String> {
        (field == "name").then(|| self.spec.display_name.clone())
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let (created_at, updated_at) = timestamps(&self.metadata);
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.display_name,
            "suspended": self.spec.suspended,
            "relationships": {"quota": {"data": null}},
            "metadata": metadata(&self.metadata),
            "links": {
                "self": cx.link(&format!("/v3/organizations/{guid}")),
                "domains": cx.link(&format!("/v3/organizations/{guid}/domains")),
                "default_domain": cx.link(&format!("/v3/organizations/{guid}/domains/default")),
                "quota": cx.link("/v3/organization_quotas/default"),
            },
        })
    }

    fn filter(&self, key: &str, values: &[String], _cx: &Cx<'_>) -> bool {
        match key {
            "names" => values.contains(&self.spec.display_name),
            _ => true,
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFOrg>(&state, &caller, raw.as_deref(), "/v3/organizations", |_| true)
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let org = resource::find::<CFOrg>(&state, &caller, &guid)?;
    Ok(Json(org.present(&Cx::new(&state))))
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

fn exists(state: &ApiState) -> impl Fn(&str) -> bool + '_ {
    |guid| resource::lookup::<CFOrg>(&state.caches, guid).is_some()
}

fn taken(name: &str) -> impl Fn() -> CfError + '_ {
    move || CfError::Unprocessable(format!("Organization '{name}' already exists."))
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    check_name(&body.name)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let ns = state.config.root_namespace.clone();
    let guid = resource::new_guid();
    let claim = Claim::new("org", &ns, &body.name);
    claim
        .take(&state, &guid, exists(&state), taken(&body.name))
        .await?;
    let mut org = CFOrg::new(
        &guid,
        CFOrgSpec {
            display_name: body.name.clone(),
            suspended: body.suspended,
        },
    );
    org.metadata.namespace = Some(ns);
    if let Some(m) = &body.metadata {
        m.apply_to(&mut org.metadata);
    }
    let created = match resource::create(&state, &caller, &org).await {
        Ok(o) => o,
        Err(e) => {
            // Nothing half-written: release the claim when the org itself was refused.
            claim.release(&state).await;
            return Err(e);
        }
    };
    // The next request (create-space) needs the org's Namespace, which the controller makes.
    super::spaces::wait_until(|| org_ready(&state.caches, &guid), super::spaces::NAMESPACE_WAIT).await;
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

/// Whether the controller has made the org's Namespace (it reports Ready only after).
fn org_ready(caches: &Caches, guid: &str) -> bool {
    resource::lookup::<CFOrg>(caches, guid).is_some_and(|o| {
        o.status
            .as_ref()
            .is_some_and(|s| s.common.is_ready(o.metadata.generation))
    })
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
    let caller = Caller::of(&state, &headers).await?;
    let body: UpdateBody = parse(&body)?;
    let current = resource::find::<CFOrg>(&state, &caller, &guid)?;
    let mut patch = json!({"spec": {}});
    let mut new_claim = None;
    if let Some(name) = &body.name {
        check_name(name)?;
        patch["spec"]["displayName"] = json!(name);
        if !name.eq_ignore_ascii_case(&current.spec.display_name) {
            let claim = Claim::new("org", &state.config.root_namespace, name);
            claim.take(&state, &guid, exists(&state), taken(name)).await?;
            new_claim = Some(claim);
        }
    }
    if let Some(s) = body.suspended {
        patch["spec"]["suspended"] = json!(s);
    }
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    match resource::patch(&state, &caller, &*current, &patch).await {
        Ok(updated) => {
            if new_claim.is_some() {
                Claim::new("org", &state.config.root_namespace, &current.spec.display_name)
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

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFOrg>(&state, &caller, &guid)?;
    resource::delete(&state, &caller, &*current).await?;
    Claim::new("org", &state.config.root_namespace, &current.spec.display_name)
        .release(&state)
        .await;
    Ok(jobs::accepted(&state, "org.delete", &guid))
}
