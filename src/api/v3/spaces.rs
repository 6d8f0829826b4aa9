//! `/v3/spaces`: list and get from the cache (the spaces the caller's roles reach), create in a
//! visible org with a race-free name claim per org, rename, delete as an async job, and the
//! space features (`ssh`, backed by `spec.allowSsh`).

use std::{sync::Arc, time::Duration};

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
    roles, timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        body::{MetadataBody, ToOne, check_name, parse},
        claims::Claim,
    },
    crd::{CFOrg, CFSpace, CFSpaceSpec},
};

/// How long creating an org or a space waits for the controller to make its Namespace, so
/// the next request can create objects inside it. Past this the create answers anyway.
pub const NAMESPACE_WAIT: Duration = Duration::from_secs(10);

/// The one space feature CF defines.
const SSH: &str = "ssh";
const SSH_DESCRIPTION: &str = "Enable SSHing into apps in the space.";

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/spaces", get(list).post(create))
        .route("/v3/spaces/{guid}", get(show).patch(update).delete(destroy))
        .route("/v3/spaces/{guid}/features", get(features))
        .route(
            "/v3/spaces/{guid}/features/{name}",
            get(feature).patch(update_feature),
        )
}

impl CfKind for CFSpace {
    const KIND: &'static str = "Space";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name"];
    const FILTERS: &'static [&'static str] = &["names", "organization_guids"];
    const INCLUDES: &'static [&'static str] = &["organization"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.spaces
    }

    fn visible(&self, access: &Access, _cx: &Cx<'_>) -> bool {
        access.space(&self.name_any())
    }

    fn order_key(&self, field: &str) -> Option<String> {
        (field == "name").then(|| self.spec.display_name.clone())
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let org = self.namespace();
        let (created_at, updated_at) = timestamps(&self.metadata);
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.display_name,
            "relationships": {
                "organization": resource::to_one(org.as_deref()),
                "quota": {"data": null},
            },
            "metadata": metadata(&self.metadata),
            "links": {
                "self": cx.link(&format!("/v3/spaces/{guid}")),
                "organization": cx.link(&format!("/v3/organizations/{}", org.unwrap_or_default())),
                "features": cx.link(&format!("/v3/spaces/{guid}/features")),
                "apply_manifest": {
                    "href": format!("{}/v3/spaces/{guid}/actions/apply_manifest", cx.base),
                    "method": "POST",
                },
            },
        })
    }

    fn filter(&self, key: &str, values: &[String], _cx: &Cx<'_>) -> bool {
        match key {
            "names" => values.contains(&self.spec.display_name),
            "organization_guids" => self.namespace().is_some_and(|ns| values.contains(&ns)),
            _ => true,
        }
    }

    fn include(
        what: &str,
        page: &[Value],
        cx: &Cx<'_>,
        access: &Access,
    ) -> Option<(&'static str, Vec<Value>)> {
        (what == "organization").then(|| ("organizations", included_orgs(page, cx, access)))
    }
}

/// The visible orgs the presented resources in `page` name in `relationships.organization`.
pub fn included_orgs(page: &[Value], cx: &Cx<'_>, access: &Access) -> Vec<Value> {
    let mut guids: Vec<&str> = page
        .iter()
        .filter_map(|r| r["relationships"]["organization"]["data"]["guid"].as_str())
        .collect();
    guids.sort_unstable();
    guids.dedup();
    guids
        .into_iter()
        .filter_map(|g| resource::lookup::<CFOrg>(cx.caches, g))
        .filter(|o| o.visible(access, cx))
        .map(|o| o.present(cx))
        .collect()
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFSpace>(&state, &caller, raw.as_deref(), "/v3/spaces", |_| true)
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let space = resource::find::<CFSpace>(&state, &caller, &guid)?;
    Ok(Json(roles::present_one(
        &state,
        &caller,
        &*space,
        raw.as_deref(),
    )?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    relationships: CreateRelationships,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRelationships {
    organization: ToOne,
}

fn exists(state: &ApiState) -> impl Fn(&str) -> bool + '_ {
    |guid| resource::lookup::<CFSpace>(&state.caches, guid).is_some()
}

/// CC's detail; the cf CLI's create-space matches "Name must be unique per organization" to
/// treat an existing space as success.
fn taken() -> CfError {
    CfError::Unprocessable("Name must be unique per organization".into())
}

/// Whether `guid` names an org the caller may see (and so may name in a create).
fn usable_org(state: &ApiState, caller: &Caller, guid: &str) -> bool {
    let cx = Cx::new(state);
    resource::lookup::<CFOrg>(&state.caches, guid)
        .is_some_and(|o| o.metadata.deletion_timestamp.is_none() && o.visible(&caller.access, &cx))
}

/// Waits, at most `bound`, until `ready` holds; whether it did.
pub async fn wait_until(ready: impl Fn() -> bool, bound: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    while !ready() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Whether the controller has made the space's Namespace (it reports Ready only after).
pub fn space_ready(caches: &Caches, guid: &str) -> bool {
    resource::lookup::<CFSpace>(caches, guid).is_some_and(|s| {
        s.status
            .as_ref()
            .is_some_and(|st| st.common.is_ready(s.metadata.generation))
    })
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    check_name(&body.name)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let org = body.relationships.organization.required("Organization")?;
    if !usable_org(&state, &caller, &org) {
        return Err(CfError::Unprocessable(
            "Invalid organization. Ensure the organization exists and you have access to it.".into(),
        ));
    }
    let guid = resource::new_guid();
    let claim = Claim::new("space", &org, &body.name);
    claim.take(&state, &guid, exists(&state), taken).await?;
    let mut space = CFSpace::new(
        &guid,
        CFSpaceSpec {
            display_name: body.name.clone(),
            allow_ssh: true,
        },
    );
    space.metadata.namespace = Some(org.clone());
    if let Some(m) = &body.metadata {
        m.apply_to(&mut space.metadata);
    }
    let allowed = roles::expected_to_manage_org(&state, &caller, &org);
    let created = match roles::create_as_caller(&state, &caller, &space, allowed).await {
        Ok(s) => s,
        Err(e) => {
            claim.release(&state).await;
            return Err(e);
        }
    };
    wait_until(|| space_ready(&state.caches, &guid), NAMESPACE_WAIT).await;
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
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
    let current = resource::find::<CFSpace>(&state, &caller, &guid)?;
    let org = current.namespace().unwrap_or_default();
    let mut patch = json!({});
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    let mut new_claim = None;
    if let Some(name) = &body.name {
        check_name(name)?;
        patch["spec"] = json!({"displayName": name});
        if !name.eq_ignore_ascii_case(&current.spec.display_name) {
            let claim = Claim::new("space", &org, name);
            claim.take(&state, &guid, exists(&state), taken).await?;
            new_claim = Some(claim);
        }
    }
    match resource::patch(&state, &caller, &*current, &patch).await {
        Ok(updated) => {
            if new_claim.is_some() {
                Claim::new("space", &org, &current.spec.display_name)
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
    let current = resource::find::<CFSpace>(&state, &caller, &guid)?;
    resource::delete(&state, &caller, &*current).await?;
    Claim::new(
        "space",
        &current.namespace().unwrap_or_default(),
        &current.spec.display_name,
    )
    .release(&state)
    .await;
    Ok(jobs::accepted(&state, "space.delete", &guid))
}

/// The `ssh` feature of a space.
fn ssh_feature(space: &CFSpace) -> Value {
    json!({
        "name": SSH,
        "description": SSH_DESCRIPTION,
        "enabled": space.spec.allow_ssh,
    })
}

async fn features(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let space = resource::find::<CFSpace>(&state, &caller, &guid)?;
    Ok(Json(json!({"resources": [ssh_feature(&space)]})))
}

async fn feature(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, name)): Path<(String, String)>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let space = resource::find::<CFSpace>(&state, &caller, &guid)?;
    if name != SSH {
        return Err(CfError::NotFound("Feature"));
    }
    Ok(Json(ssh_feature(&space)))
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
    let space = resource::find::<CFSpace>(&state, &caller, &guid)?;
    if name != SSH {
        return Err(CfError::NotFound("Feature"));
    }
    let body: FeatureBody = parse(&body)?;
    let patch = json!({"spec": {"allowSsh": body.enabled}});
    let updated = resource::patch(&state, &caller, &*space, &patch).await?;
    Ok(Json(ssh_feature(&updated)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fixtures;

    #[test]
    fn a_space_presents_its_org_and_action_links() {
        let caches = roles::testing::caches(vec![], vec![], vec![]);
        let cx = Cx {
            base: "https://api.test",
            caches: &caches,
            root: "cf",
            query: None,
        };
        let mut space = fixtures::space("s-1", "dev");
        space.metadata.labels = Some([("tier".to_owned(), "web".to_owned())].into());
        let v = space.present(&cx);
        assert_eq!(v["guid"], "s-1");
        assert_eq!(v["name"], "dev");
        assert_eq!(v["relationships"]["organization"]["data"]["guid"], "org-1");
        assert_eq!(v["relationships"]["quota"]["data"], Value::Null);
        assert_eq!(v["metadata"]["labels"]["tier"], "web");
        assert_eq!(v["links"]["self"]["href"], "https://api.test/v3/spaces/s-1");
        assert_eq!(
            v["links"]["organization"]["href"],
            "https://api.test/v3/organizations/org-1"
        );
        assert_eq!(
            v["links"]["features"]["href"],
            "https://api.test/v3/spaces/s-1/features"
        );
        assert_eq!(v["links"]["apply_manifest"]["method"], "POST");
        assert_eq!(
            v["links"]["apply_manifest"]["href"],
            "https://api.test/v3/spaces/s-1/actions/apply_manifest"
        );
    }

    #[test]
    fn spaces_filter_by_name_and_org() {
        let caches = roles::testing::caches(vec![], vec![], vec![]);
        let cx = Cx {
            base: "https://api.test",
            caches: &caches,
            root: "cf",
            query: None,
        };
        let space = fixtures::space("s-1", "dev");
        assert!(space.filter("names", &["dev".into(), "prod".into()], &cx));
        assert!(!space.filter("names", &["Dev".into()], &cx));
        assert!(space.filter("organization_guids", &["org-1".into()], &cx));
        assert!(!space.filter("organization_guids", &["org-2".into()], &cx));
    }

    #[test]
    fn the_ssh_feature_mirrors_allow_ssh() {
        let mut space = fixtures::space("s-1", "dev");
        assert_eq!(ssh_feature(&space)["enabled"], true);
        space.spec.allow_ssh = false;
        let f = ssh_feature(&space);
        assert_eq!(f["name"], "ssh");
        assert_eq!(f["enabled"], false);
        assert_eq!(f["description"], SSH_DESCRIPTION);
    }

    #[test]
    fn only_visible_spaces_are_visible() {
        let caches = roles::testing::caches(vec![], vec![], vec![]);
        let cx = Cx {
            base: "https://api.test",
            caches: &caches,
            root: "cf",
            query: None,
        };
        let space = fixtures::space("s-1", "dev");
        let mut access = Access::default();
        assert!(!space.visible(&access, &cx));
        access.spaces.insert("s-1".into());
        assert!(space.visible(&access, &cx));
        assert!(space.visible(
            &Access {
                global: true,
                ..Access::default()
            },
            &cx
        ));
    }
}
