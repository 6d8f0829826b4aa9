//! `/v3/users`: the users CF roles name. A user's GUID is its Kubernetes user name (as in
//! Korifi); Kubernetes keeps no user objects, so a user exists for the API when a CFRole names
//! it, and the caller always exists for themself. Creating a user stores nothing; deleting one
//! revokes the roles the caller can see.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use kube::ResourceExt;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    jobs,
    resource::{self, Caller, CfKind, Cx},
    roles::{is_admin, user_guid},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        body::{MetadataBody, parse},
        pagination::{PageParams, order, page},
        query::{Query, timestamp_filter},
    },
    crd::CFRole,
};

const ORDERS: &[&str] = &["created_at", "updated_at"];

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/users", get(list).post(create))
        .route("/v3/users/{guid}", get(show).patch(update).delete(destroy))
}

/// A user as the roles naming it describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    /// The Kubernetes user name.
    pub guid: String,
    /// The identity provider a role recorded for it, or "".
    pub origin: String,
    /// When the first of its roles was granted.
    pub created_at: String,
    /// When one of its roles last changed.
    pub updated_at: String,
}

/// The users `roles` name, by GUID.
pub fn views<'a>(roles: impl IntoIterator<Item = &'a Arc<CFRole>>) -> BTreeMap<String, UserView> {
    let mut users: BTreeMap<String, UserView> = BTreeMap::new();
    for role in roles {
        let Some(guid) = user_guid(role) else { continue };
        let (created, updated) = timestamps(&role.metadata);
        let origin = role.spec.subject.origin.clone().unwrap_or_default();
        users
            .entry(guid.clone())
            .and_modify(|u| {
                if u.created_at.is_empty() || (!created.is_empty() && created < u.created_at) {
                    u.created_at.clone_from(&created);
                }
                if updated > u.updated_at {
                    u.updated_at.clone_from(&updated);
                }
                if u.origin.is_empty() {
                    u.origin.clone_from(&origin);
                }
            })
            .or_insert(UserView {
                guid,
                origin,
                created_at: created,
                updated_at: updated,
            });
    }
    users
}

/// The CF metadata of a user with none.
pub fn no_metadata() -> Value {
    json!({"labels": {}, "annotations": {}})
}

/// The v3 representation of a user.
pub fn present(cx: &Cx<'_>, user: &UserView, metadata: &Value) -> Value {
    json!({
        "guid": user.guid,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "username": user.guid,
        "presentation_name": user.guid,
        "origin": user.origin,
        "metadata": metadata,
        "links": {"self": cx.link(&format!("/v3/users/{}", user.guid))},
    })
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// A user no role names yet (the caller themself, or one just created).
fn bare(guid: &str, origin: &str) -> UserView {
    let at = now();
    UserView {
        guid: guid.to_owned(),
        origin: origin.to_owned(),
        created_at: at.clone(),
        updated_at: at,
    }
}

/// Every user the caller may see: those named by roles they see, and themself.
fn visible(state: &ApiState, caller: &Caller) -> BTreeMap<String, UserView> {
    let cx = Cx::new(state);
    let roles = state.caches.roles.state();
    let mut users = views(
        roles
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none() && r.visible(&caller.access, &cx)),
    );
    users
        .entry(caller.who.name.clone())
        .or_insert_with(|| bare(&caller.who.name, ""));
    users
}

/// Whether a user's revocation (job `user.delete`) is done: none of its roles is still being
/// deleted.
pub fn deleted(caches: &Caches, user: &str) -> bool {
    !caches
        .roles
        .state()
        .iter()
        .any(|r| r.metadata.deletion_timestamp.is_some() && user_guid(r).as_deref() == Some(user))
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&["guids", "usernames", "origins"])?;
    let params = PageParams::from_query(&q, ORDERS)?;
    if let Some(s) = q.get("label_selector") {
        let selector = kubefoundry_sim::selector::LabelSelector::parse(s)
            .map_err(|e| CfError::BadQuery(format!("Invalid label_selector value: {}", e.message())))?;
        // Users carry no stored labels, so a selector keeps them only if it asks for nothing.
        if !selector.matches(&BTreeMap::new()) {
            return Ok(Json(page(
                &state.config.base_url,
                "/v3/users",
                &q,
                &params,
                vec![],
            )));
        }
    }
    let mut time_filters = Vec::new();
    for (field, key) in [("created_ats", "created_at"), ("updated_ats", "updated_at")] {
        for (op, values) in q.timestamps(field) {
            time_filters.push((key, timestamp_filter(&op, &values)?));
        }
    }
    let guids = q.list("guids");
    let usernames = q.list("usernames");
    let origins = q.list("origins");
    let among = |list: &Option<Vec<String>>, v: &str| list.as_ref().is_none_or(|l| l.iter().any(|x| x == v));
    let cx = Cx::new(&state);
    let mut resources: Vec<Value> = visible(&state, &caller)
        .values()
        .filter(|u| among(&guids, &u.guid) && among(&usernames, &u.guid) && among(&origins, &u.origin))
        .map(|u| present(&cx, u, &no_metadata()))
        .filter(|v| {
            time_filters
                .iter()
                .all(|(key, f)| f(v[*key].as_str().unwrap_or_default()))
        })
        .collect();
    order(&mut resources, &params);
    Ok(Json(page(
        &state.config.base_url,
        "/v3/users",
        &q,
        &params,
        resources,
    )))
}

fn find(state: &ApiState, caller: &Caller, guid: &str) -> CfResult<UserView> {
    visible(state, caller)
        .remove(guid)
        .ok_or(CfError::NotFound("User"))
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let user = find(&state, &caller, &guid)?;
    Ok(Json(present(&Cx::new(&state), &user, &no_metadata())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    guid: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// The metadata a request sets, as CF presents it (keys set to null are left out).
fn requested_metadata(m: Option<&MetadataBody>) -> Value {
    let set = |map: &BTreeMap<String, Option<String>>| -> Value {
        map.iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k.clone(), Value::String(v.clone()))))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    m.map_or_else(
        no_metadata,
        |m| json!({"labels": set(&m.labels), "annotations": set(&m.annotations)}),
    )
}

/// CC lets only admins create users. In Kubernetes mode users live in the identity provider,
/// so there is nothing to store: the answer describes the user the GUID names.
async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    if !is_admin(&state.caches, &state.config.root_namespace, &caller.who) {
        return Err(CfError::NotAuthorized);
    }
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let guid = match (&body.guid, &body.username) {
        (Some(g), None) => g.clone(),
        (None, Some(u)) => u.clone(),
        (Some(_), Some(_)) => {
            return Err(CfError::Unprocessable(
                "Guid cannot be provided with username or origin".into(),
            ));
        }
        (None, None) => return Err(CfError::Unprocessable("Guid can't be blank".into())),
    };
    if guid.trim().is_empty() || guid.len() > 253 {
        return Err(CfError::Unprocessable(
            "Guid must be between 1 and 253 characters".into(),
        ));
    }
    let named = views(
        state
            .caches
            .roles
            .state()
            .iter()
            .filter(|r| r.metadata.deletion_timestamp.is_none()),
    );
    if named.contains_key(&guid) {
        return Err(CfError::Unprocessable(format!(
            "User with guid '{guid}' already exists."
        )));
    }
    let user = bare(&guid, body.origin.as_deref().unwrap_or_default());
    let metadata = requested_metadata(body.metadata.as_ref());
    Ok((
        StatusCode::CREATED,
        Json(present(&Cx::new(&state), &user, &metadata)),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// CC lets only admins update users, and only their metadata. Nothing stores user metadata in
/// Kubernetes mode, so the answer reflects the request without keeping it.
async fn update(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: UpdateBody = parse(&body)?;
    let user = find(&state, &caller, &guid)?;
    if !is_admin(&state.caches, &state.config.root_namespace, &caller.who) {
        return Err(CfError::NotAuthorized);
    }
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    Ok(Json(present(
        &Cx::new(&state),
        &user,
        &requested_metadata(body.metadata.as_ref()),
    )))
}

/// Revokes every role of the user the caller can see, as the caller (so RBAC decides each):
/// space roles first, so org roles never outlive nothing.
async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    find(&state, &caller, &guid)?;
    let cx = Cx::new(&state);
    let mut roles: Vec<Arc<CFRole>> = state
        .caches
        .roles
        .state()
        .into_iter()
        .filter(|r| {
            r.metadata.deletion_timestamp.is_none()
                && user_guid(r).as_deref() == Some(guid.as_str())
                && r.visible(&caller.access, &cx)
        })
        .collect();
    roles.sort_by_key(|r| (r.spec.type_.scope() != crate::crd::RoleScope::Space, r.name_any()));
    for role in &roles {
        resource::delete(&state, &caller, &**role).await?;
    }
    Ok(jobs::accepted(&state, "user.delete", &guid))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::{
        api::v3::roles::testing,
        crd::RoleType,
        fixtures::{self, ORG, ROOT_NS, SPACE},
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(role: &mut CFRole, t: &str) {
        role.metadata.creation_timestamp = Some(Time(t.parse().unwrap()));
    }

    #[test]
    fn users_are_the_distinct_subjects_of_roles() {
        let mut a1 = fixtures::user_role("r1", ORG, RoleType::OrganizationUser, "alice");
        at(&mut a1, "2026-01-02T00:00:00Z");
        let mut a2 = fixtures::user_role("r2", SPACE, RoleType::SpaceDeveloper, "alice");
        at(&mut a2, "2026-01-01T00:00:00Z");
        a2.spec.subject.origin = Some("uaa".into());
        let b = fixtures::user_role("r3", SPACE, RoleType::SpaceAuditor, "bob");
        let mut g = fixtures::user_role("r4", SPACE, RoleType::SpaceAuditor, "devs");
        g.spec.subject.kind = crate::crd::SubjectKind::Group;
        let roles: Vec<Arc<CFRole>> = [a1, a2, b, g].into_iter().map(Arc::new).collect();
        let users = views(roles.iter());
        assert_eq!(users.keys().collect::<Vec<_>>(), vec!["alice", "bob"]);
        let alice = &users["alice"];
        assert_eq!(alice.created_at, "2026-01-01T00:00:00Z");
        assert_eq!(alice.updated_at, "2026-01-02T00:00:00Z");
        assert_eq!(alice.origin, "uaa");
        assert_eq!(users["bob"].origin, "");
    }

    #[test]
    fn a_user_presents_its_name_everywhere_cf_expects_it() {
        let caches = testing::caches(vec![], vec![], vec![]);
        let cx = Cx {
            base: "https://api.test",
            caches: &caches,
            root: ROOT_NS,
            query: None,
        };
        let user = bare("alice", "");
        let v = present(&cx, &user, &no_metadata());
        assert_eq!(v["guid"], "alice");
        assert_eq!(v["username"], "alice");
        assert_eq!(v["presentation_name"], "alice");
        assert_eq!(v["origin"], "");
        assert_eq!(v["links"]["self"]["href"], "https://api.test/v3/users/alice");
        assert_eq!(v["metadata"], json!({"labels": {}, "annotations": {}}));
        assert_eq!(v["created_at"].as_str().unwrap().len(), 20);
    }

    #[test]
    fn requested_metadata_leaves_out_removed_keys() {
        let m = MetadataBody {
            labels: [
                ("team".to_owned(), Some("a".to_owned())),
                ("gone".to_owned(), None),
            ]
            .into(),
            annotations: BTreeMap::new(),
        };
        assert_eq!(
            requested_metadata(Some(&m)),
            json!({"labels": {"team": "a"}, "annotations": {}})
        );
        assert_eq!(requested_metadata(None), no_metadata());
    }

    #[test]
    fn a_user_delete_is_done_when_no_role_of_it_is_going() {
        let mut going = fixtures::user_role("r1", SPACE, RoleType::SpaceDeveloper, "alice");
        going.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let staying = fixtures::user_role("r2", ORG, RoleType::OrganizationUser, "bob");
        let caches = testing::caches(vec![], vec![], vec![going, staying]);
        assert!(!deleted(&caches, "alice"));
        assert!(deleted(&caches, "bob"));
    }
}
