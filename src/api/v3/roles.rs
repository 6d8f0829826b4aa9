//! `/v3/roles`: org and space roles as CFRoles. Listed and shown from the cache (roles in the
//! orgs and spaces the caller sees), created as the caller (so Kubernetes RBAC decides who may
//! grant what) under a name derived from (type, user, scope) so that concurrent duplicate
//! grants collide in the API server, and deleted as an async job.

use std::{sync::Arc, time::Duration};

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
use serde_json::{Value, json};

use super::{
    jobs,
    resource::{self, Caller, CfKind, Cx},
    spaces, timestamps, users,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::{Access, holds},
        auth::Identity,
        body::{ToOne, parse},
        query::Query,
    },
    crd::{CFOrg, CFRole, CFRoleSpec, CFSpace, RoleScope, RoleSubject, RoleType, SubjectKind},
};

/// How long a write the caller's roles allow is retried while Kubernetes still refuses it: the
/// controller turns a new CFRole (or a new space) into RoleBindings a moment after it appears.
const RBAC_LAG: Duration = Duration::from_secs(3);

/// How long creating a role waits for the controller to bind it, so the grantee can act at once.
const BINDING_WAIT: Duration = Duration::from_secs(5);

/// The prefix Kubernetes gives service-account user names.
const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/roles", get(list).post(create))
        .route("/v3/roles/{guid}", get(show).delete(destroy))
}

/// The CF user GUID a role names: the Kubernetes user name (a service account's full
/// `system:serviceaccount:NS:NAME`). Group roles name no user.
pub fn user_guid(role: &CFRole) -> Option<String> {
    let s = &role.spec.subject;
    match s.kind {
        SubjectKind::User => Some(s.name.clone()),
        SubjectKind::ServiceAccount => Some(format!(
            "{SERVICE_ACCOUNT_PREFIX}{}:{}",
            s.namespace.as_deref().unwrap_or_default(),
            s.name
        )),
        SubjectKind::Group => None,
    }
}

/// The subject for a CF user GUID (the inverse of [`user_guid`]).
fn subject_of(user: &str, origin: Option<&str>) -> RoleSubject {
    let origin = origin.filter(|o| !o.is_empty()).map(str::to_owned);
    if let Some((namespace, name)) = user
        .strip_prefix(SERVICE_ACCOUNT_PREFIX)
        .and_then(|rest| rest.split_once(':'))
        .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
    {
        return RoleSubject {
            kind: SubjectKind::ServiceAccount,
            name: name.to_owned(),
            namespace: Some(namespace.to_owned()),
            origin,
        };
    }
    RoleSubject {
        kind: SubjectKind::User,
        name: user.to_owned(),
        namespace: None,
        origin,
    }
}

/// Whether two subjects are the same identity (origin is informational).
fn same_subject(a: &RoleSubject, b: &RoleSubject) -> bool {
    a.kind == b.kind && a.name == b.name && a.namespace == b.namespace
}

/// The CFRole name for `type_` granted to `subject` in `namespace`: a GUID-shaped digest, so
/// two concurrent grants of one role create one object and the second gets a conflict.
pub fn role_name(type_: RoleType, subject: &RoleSubject, namespace: &str) -> String {
    let key = format!(
        "{}\0{:?}\0{}\0{}\0{namespace}",
        type_.as_str(),
        subject.kind,
        subject.namespace.as_deref().unwrap_or_default(),
        subject.name
    );
    let fnv = |seed: u64, salt: u8| {
        key.bytes()
            .chain(std::iter::once(salt))
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
    };
    uuid::Uuid::from_u64_pair(fnv(0xcbf2_9ce4_8422_2325, 1), fnv(0x8422_2325_cbf2_9ce4, 2)).to_string()
}

/// Whether the caller is a CF admin: `system:masters`, or holding an `admin` CFRole.
pub fn is_admin(caches: &Caches, root: &str, who: &Identity) -> bool {
    who.groups.iter().any(|g| g == "system:masters")
        || caches.roles.state().iter().any(|r| {
            r.spec.type_ == RoleType::Admin
                && r.namespace().as_deref() == Some(root)
                && r.metadata.deletion_timestamp.is_none()
                && holds(who, r)
        })
}

/// Whether the caller's roles say they may manage `org` (its spaces and roles), so a refusal
/// from Kubernetes can only be bindings that have not landed yet.
pub fn expected_to_manage_org(state: &ApiState, caller: &Caller, org: &str) -> bool {
    caller.access.managed_orgs.contains(org)
        || is_admin(&state.caches, &state.config.root_namespace, &caller.who)
}

/// Whether the caller manages `space` as its space manager.
fn manages_space(caches: &Caches, who: &Identity, space: &str) -> bool {
    caches.roles.state().iter().any(|r| {
        r.spec.type_ == RoleType::SpaceManager
            && r.namespace().as_deref() == Some(space)
            && r.metadata.deletion_timestamp.is_none()
            && holds(who, r)
    })
}

/// [`resource::create`], retried briefly on 403 when the caller's CF roles allow the write
/// (`allowed`): their RoleBindings may still be on the way.
pub async fn create_as_caller<K: CfKind>(
    state: &ApiState,
    caller: &Caller,
    object: &K,
    allowed: bool,
) -> CfResult<K> {
    let deadline = tokio::time::Instant::now() + RBAC_LAG;
    loop {
        match resource::create(state, caller, object).await {
            Err(CfError::NotAuthorized) if allowed && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// The org and space a role belongs to (by its type's scope).
fn scope_of(role: &CFRole) -> (Option<String>, Option<String>) {
    let ns = role.namespace();
    match role.spec.type_.scope() {
        RoleScope::Organization => (ns, None),
        RoleScope::Space => (None, ns),
        RoleScope::Global => (None, None),
    }
}

impl CfKind for CFRole {
    const KIND: &'static str = "Role";
    const FILTERS: &'static [&'static str] = &["types", "organization_guids", "space_guids", "user_guids"];
    const INCLUDES: &'static [&'static str] = &["user", "space", "organization"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.roles
    }

    /// Org roles in visible orgs and space roles in visible spaces; global roles are not CF v3
    /// roles (CF keeps them outside the API) and group roles name no user.
    fn visible(&self, access: &Access, cx: &Cx<'_>) -> bool {
        if user_guid(self).is_none() {
            return false;
        }
        let ns = self.namespace().unwrap_or_default();
        match self.spec.type_.scope() {
            RoleScope::Organization => {
                access.org(&ns)
                    && (!access.global
                        || resource::lookup::<CFOrg>(cx.caches, &ns)
                            .is_some_and(|o| o.namespace().as_deref() == Some(cx.root)))
            }
            RoleScope::Space => {
                access.space(&ns) && (!access.global || resource::lookup::<CFSpace>(cx.caches, &ns).is_some())
            }
            RoleScope::Global => false,
        }
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let user = user_guid(self);
        let (org, space) = scope_of(self);
        let (created_at, updated_at) = timestamps(&self.metadata);
        let mut links = json!({
            "self": cx.link(&format!("/v3/roles/{guid}")),
            "user": cx.link(&format!("/v3/users/{}", user.as_deref().unwrap_or_default())),
        });
        if let Some(o) = &org {
            links["organization"] = cx.link(&format!("/v3/organizations/{o}"));
        }
        if let Some(s) = &space {
            links["space"] = cx.link(&format!("/v3/spaces/{s}"));
        }
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "type": self.spec.type_.as_str(),
            "relationships": {
                "user": resource::to_one(user.as_deref()),
                "organization": resource::to_one(org.as_deref()),
                "space": resource::to_one(space.as_deref()),
            },
            "links": links,
        })
    }

    fn filter(&self, key: &str, values: &[String], _cx: &Cx<'_>) -> bool {
        let (org, space) = scope_of(self);
        let within = |v: Option<String>| v.is_some_and(|v| values.contains(&v));
        match key {
            "types" => values.iter().any(|t| t == self.spec.type_.as_str()),
            "organization_guids" => within(org),
            "space_guids" => within(space),
            "user_guids" => within(user_guid(self)),
            _ => true,
        }
    }

    fn include(
        what: &str,
        page: &[Value],
        cx: &Cx<'_>,
        access: &Access,
    ) -> Option<(&'static str, Vec<Value>)> {
        let named = |relationship: &str| {
            let mut guids: Vec<String> = page
                .iter()
                .filter_map(|r| r["relationships"][relationship]["data"]["guid"].as_str())
                .map(str::to_owned)
                .collect();
            guids.sort_unstable();
            guids.dedup();
            guids
        };
        match what {
            "user" => {
                let known = users::views(cx.caches.roles.state().iter().filter(|r| r.visible(access, cx)));
                let users = named("user")
                    .iter()
                    .filter_map(|g| known.get(g))
                    .map(|v| users::present(cx, v, &users::no_metadata()))
                    .collect();
                Some(("users", users))
            }
            "space" => {
                let spaces = named("space")
                    .iter()
                    .filter_map(|g| resource::lookup::<CFSpace>(cx.caches, g))
                    .filter(|s| s.visible(access, cx))
                    .map(|s| s.present(cx))
                    .collect();
                Some(("spaces", spaces))
            }
            "organization" => Some(("organizations", spaces::included_orgs(page, cx, access))),
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
    resource::list::<CFRole>(&state, &caller, raw.as_deref(), "/v3/roles", |_| true)
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let role = resource::find::<CFRole>(&state, &caller, &guid)?;
    Ok(Json(present_one(&state, &caller, &*role, raw.as_deref())?))
}

/// One resource as `GET /v3/<kind>/{guid}` shows it, with what `include=` (the only query
/// parameter a show takes) adds under `included`.
pub fn present_one<K: CfKind>(
    state: &ApiState,
    caller: &Caller,
    object: &K,
    raw: Option<&str>,
) -> CfResult<Value> {
    let q = Query::parse(raw.unwrap_or(""))?;
    let unknown: Vec<&str> = q.pairs().map(|(k, _)| k).filter(|k| *k != "include").collect();
    if !unknown.is_empty() {
        return Err(CfError::BadQuery(format!(
            "Unknown query parameter(s): '{}'. Valid parameters are: 'include'",
            unknown.join("', '")
        )));
    }
    let cx = Cx::new(state);
    let mut body = object.present(&cx);
    if let Some(what) = q.list("include") {
        let mut included = serde_json::Map::new();
        for w in &what {
            match K::INCLUDES
                .contains(&w.as_str())
                .then(|| K::include(w, std::slice::from_ref(&body), &cx, &caller.access))
                .flatten()
            {
                Some((key, values)) => {
                    included.insert(key.to_owned(), Value::Array(values));
                }
                None => {
                    let valid: Vec<String> = K::INCLUDES.iter().map(|i| format!("'{i}'")).collect();
                    return Err(CfError::BadQuery(format!(
                        "Invalid included resource: '{w}'. Valid included resources are: {}",
                        valid.join(", ")
                    )));
                }
            }
        }
        body["included"] = Value::Object(included);
    }
    Ok(body)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(rename = "type")]
    type_: String,
    relationships: CreateRelationships,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateRelationships {
    user: UserRelationship,
    #[serde(default)]
    organization: Option<ToOne>,
    #[serde(default)]
    space: Option<ToOne>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRelationship {
    data: UserData,
}

/// The cf CLI names a user by `guid` (client users) or by `username` (and `origin`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserData {
    #[serde(default)]
    guid: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    origin: Option<String>,
}

/// The role types the v3 API grants (global roles are not v3 roles).
fn grantable(type_: &str) -> CfResult<RoleType> {
    RoleType::ALL
        .into_iter()
        .find(|t| t.as_str() == type_ && t.scope() != RoleScope::Global)
        .ok_or_else(|| {
            let allowed: Vec<&str> = RoleType::ALL
                .into_iter()
                .filter(|t| t.scope() != RoleScope::Global)
                .map(RoleType::as_str)
                .collect();
            CfError::Unprocessable(format!(
                "Type must be one of the allowed types: {}",
                allowed.join(", ")
            ))
        })
}

/// The user GUID a create body names.
fn requested_user(data: &UserData) -> CfResult<String> {
    let user = match (&data.guid, &data.username) {
        (Some(_), Some(_)) => {
            return Err(CfError::Unprocessable(
                "User cannot be identified by both guid and username".into(),
            ));
        }
        (Some(g), None) => {
            if data.origin.is_some() {
                return Err(CfError::Unprocessable(
                    "User origin can only be given with a username".into(),
                ));
            }
            g.clone()
        }
        (None, Some(u)) => u.clone(),
        (None, None) => {
            return Err(CfError::Unprocessable(
                "User must be identified by a guid or a username".into(),
            ));
        }
    };
    if user.trim().is_empty() || user.len() > 253 {
        return Err(CfError::Unprocessable(
            "Invalid user. Ensure that the user exists and you have access to it.".into(),
        ));
    }
    Ok(user)
}

/// Where a new role goes: its namespace, and CC's words for the scope in messages.
struct Target {
    namespace: String,
    /// `organization 'O'` or `space 'S'`.
    described: String,
    /// The org the role (or its space) belongs to.
    org: String,
}

fn target(state: &ApiState, caller: &Caller, type_: RoleType, rel: &CreateRelationships) -> CfResult<Target> {
    let cx = Cx::new(state);
    let given = |r: &Option<ToOne>| r.as_ref().and_then(|t| t.data.as_ref()).map(|d| d.guid.clone());
    match type_.scope() {
        RoleScope::Space => {
            if given(&rel.organization).is_some() {
                return Err(CfError::Unprocessable(
                    "Relationships cannot include an organization for a space role".into(),
                ));
            }
            let guid = given(&rel.space)
                .ok_or_else(|| CfError::Unprocessable("Relationships space must be provided".into()))?;
            let space = resource::lookup::<CFSpace>(&state.caches, &guid)
                .filter(|s| s.metadata.deletion_timestamp.is_none() && s.visible(&caller.access, &cx))
                .ok_or_else(|| {
                    CfError::Unprocessable(
                        "Invalid space. Ensure that the space exists and you have access to it.".into(),
                    )
                })?;
            Ok(Target {
                namespace: guid,
                described: format!("space '{}'", space.spec.display_name),
                org: space.namespace().unwrap_or_default(),
            })
        }
        _ => {
            if given(&rel.space).is_some() {
                return Err(CfError::Unprocessable(
                    "Relationships cannot include a space for an organization role".into(),
                ));
            }
            let guid = given(&rel.organization).ok_or_else(|| {
                CfError::Unprocessable("Relationships organization must be provided".into())
            })?;
            let org = resource::lookup::<CFOrg>(&state.caches, &guid)
                .filter(|o| o.metadata.deletion_timestamp.is_none() && o.visible(&caller.access, &cx))
                .ok_or_else(|| {
                    CfError::Unprocessable(
                        "Invalid organization. Ensure that the organization exists and you have access to it."
                            .into(),
                    )
                })?;
            Ok(Target {
                namespace: guid.clone(),
                described: format!("organization '{}'", org.spec.display_name),
                org: guid,
            })
        }
    }
}

/// A live role of `type_` for `subject` in `namespace`, whatever its name.
fn existing(caches: &Caches, type_: RoleType, subject: &RoleSubject, namespace: &str) -> Option<Arc<CFRole>> {
    caches.roles.find(|r| {
        r.spec.type_ == type_
            && r.namespace().as_deref() == Some(namespace)
            && r.metadata.deletion_timestamp.is_none()
            && same_subject(&r.spec.subject, subject)
    })
}

/// Whether `subject` holds any role in `org` (CC requires one before any space role there).
fn member_of_org(caches: &Caches, subject: &RoleSubject, org: &str) -> bool {
    caches.roles.state().iter().any(|r| {
        r.spec.type_.scope() == RoleScope::Organization
            && r.namespace().as_deref() == Some(org)
            && r.metadata.deletion_timestamp.is_none()
            && same_subject(&r.spec.subject, subject)
    })
}

fn role_ready(caches: &Caches, name: &str) -> bool {
    resource::lookup::<CFRole>(caches, name).is_some_and(|r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.common.is_ready(r.metadata.generation))
    })
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    let type_ = grantable(&body.type_)?;
    let user = requested_user(&body.relationships.user.data)?;
    let target = target(&state, &caller, type_, &body.relationships)?;
    let subject = subject_of(&user, body.relationships.user.data.origin.as_deref());
    let already = || {
        CfError::Unprocessable(format!(
            "User '{user}' already has '{}' role in {}.",
            type_.as_str(),
            target.described
        ))
    };
    if existing(&state.caches, type_, &subject, &target.namespace).is_some() {
        return Err(already());
    }
    if type_.scope() == RoleScope::Space && !member_of_org(&state.caches, &subject, &target.org) {
        return Err(CfError::Unprocessable(
            "Users cannot be assigned roles in a space if they do not have a role in that space's organization."
                .into(),
        ));
    }
    if type_.scope() == RoleScope::Space && !spaces::space_ready(&state.caches, &target.namespace) {
        // The role lives in the space's Namespace, which the controller may still be making.
        spaces::wait_until(
            || spaces::space_ready(&state.caches, &target.namespace),
            spaces::NAMESPACE_WAIT,
        )
        .await;
    }
    let name = role_name(type_, &subject, &target.namespace);
    let mut role = CFRole::new(&name, CFRoleSpec { type_, subject });
    role.meta_mut().namespace = Some(target.namespace.clone());
    let allowed = expected_to_manage_org(&state, &caller, &target.org)
        || (type_.scope() == RoleScope::Space
            && manages_space(&state.caches, &caller.who, &target.namespace));
    let mut created = create_as_caller(&state, &caller, &role, allowed).await;
    if matches!(created, Err(CfError::Uniqueness(_))) {
        // The same grant, just revoked, may still be finishing its cleanup: wait it out once.
        let going = resource::lookup::<CFRole>(&state.caches, &name)
            .is_some_and(|r| r.metadata.deletion_timestamp.is_some());
        if !going {
            return Err(already());
        }
        resource::wait(|| resource::lookup::<CFRole>(&state.caches, &name).is_none()).await;
        created = create_as_caller(&state, &caller, &role, allowed).await;
    }
    let created = match created {
        Ok(r) => r,
        Err(CfError::Uniqueness(_)) => return Err(already()),
        Err(CfError::NotFound(_)) => {
            return Err(CfError::Unprocessable(format!(
                "The {} is not ready yet; retry shortly.",
                target.described
            )));
        }
        Err(e) => return Err(e),
    };
    spaces::wait_until(|| role_ready(&state.caches, &name), BINDING_WAIT).await;
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFRole>(&state, &caller, &guid)?;
    resource::delete(&state, &caller, &*current).await?;
    Ok(jobs::accepted(&state, "role.delete", &guid))
}

/// Caches filled by hand, for the presenters' unit tests of spaces, roles and users.
#[cfg(test)]
pub(crate) mod testing {
    use kube::runtime::{reflector, watcher};

    use crate::{
        api::Caches,
        crd::{CFOrg, CFRole, CFSpace},
    };

    /// Caches holding these orgs, spaces and roles (and nothing else).
    pub fn caches(orgs: Vec<CFOrg>, spaces: Vec<CFSpace>, roles: Vec<CFRole>) -> Caches {
        fn filled<K>(objects: Vec<K>) -> reflector::Store<K>
        where
            K: kube::Resource<DynamicType = ()> + Clone + 'static,
        {
            let (reader, mut writer) = reflector::store();
            for o in objects {
                writer.apply_watcher_event(&watcher::Event::Apply(o));
            }
            reader
        }
        Caches {
            orgs: filled(orgs),
            spaces: filled(spaces),
            roles: filled(roles),
            apps: reflector::store().0,
            processes: reflector::store().0,
            packages: reflector::store().0,
            builds: reflector::store().0,
            droplets: reflector::store().0,
            routes: reflector::store().0,
            domains: reflector::store().0,
            tasks: reflector::store().0,
            service_instances: reflector::store().0,
            service_bindings: reflector::store().0,
            pods: reflector::store().0,
            access: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fixtures::{self, ORG, ROOT_NS, SPACE};

    fn cx(caches: &Caches) -> Cx<'_> {
        Cx {
            base: "https://api.test",
            caches,
            root: ROOT_NS,
            query: None,
        }
    }

    #[test]
    fn org_and_space_roles_present_their_scope_and_null_elsewhere() {
        let caches = testing::caches(vec![], vec![], vec![]);
        let org_role = fixtures::user_role("r-org", ORG, RoleType::OrganizationManager, "alice");
        let v = org_role.present(&cx(&caches));
        assert_eq!(v["guid"], "r-org");
        assert_eq!(v["type"], "organization_manager");
        assert_eq!(v["relationships"]["user"]["data"]["guid"], "alice");
        assert_eq!(v["relationships"]["organization"]["data"]["guid"], ORG);
        assert_eq!(v["relationships"]["space"]["data"], Value::Null);
        assert_eq!(v["links"]["self"]["href"], "https://api.test/v3/roles/r-org");
        assert_eq!(v["links"]["user"]["href"], "https://api.test/v3/users/alice");
        assert_eq!(
            v["links"]["organization"]["href"],
            format!("https://api.test/v3/organizations/{ORG}")
        );
        assert!(v["links"].get("space").is_none());

        let space_role = fixtures::user_role("r-sp", SPACE, RoleType::SpaceDeveloper, "bob");
        let v = space_role.present(&cx(&caches));
        assert_eq!(v["type"], "space_developer");
        assert_eq!(v["relationships"]["space"]["data"]["guid"], SPACE);
        assert_eq!(v["relationships"]["organization"]["data"], Value::Null);
        assert_eq!(
            v["links"]["space"]["href"],
            format!("https://api.test/v3/spaces/{SPACE}")
        );
    }

    #[test]
    fn roles_filter_by_type_scope_and_user() {
        let caches = testing::caches(vec![], vec![], vec![]);
        let cx = cx(&caches);
        let role = fixtures::user_role("r", SPACE, RoleType::SpaceAuditor, "carol");
        assert!(role.filter("types", &["space_auditor".into()], &cx));
        assert!(!role.filter("types", &["space_developer".into()], &cx));
        assert!(role.filter("space_guids", &[SPACE.into()], &cx));
        assert!(!role.filter("organization_guids", &[SPACE.into()], &cx));
        assert!(role.filter("user_guids", &["carol".into()], &cx));
        assert!(!role.filter("user_guids", &["alice".into()], &cx));
    }

    #[test]
    fn visibility_follows_the_orgs_and_spaces_a_caller_sees() {
        let caches = testing::caches(
            vec![fixtures::org(ORG, "o")],
            vec![fixtures::space(SPACE, "s")],
            vec![],
        );
        let cx = cx(&caches);
        let org_role = fixtures::user_role("r1", ORG, RoleType::OrganizationUser, "alice");
        let space_role = fixtures::user_role("r2", SPACE, RoleType::SpaceDeveloper, "alice");
        let other_space = fixtures::user_role("r3", "space-2", RoleType::SpaceDeveloper, "bob");
        let global = fixtures::user_role("r4", ROOT_NS, RoleType::Admin, "dave");
        let mut access = Access::default();
        access.orgs.insert(ORG.into());
        access.spaces.insert(SPACE.into());
        assert!(org_role.visible(&access, &cx));
        assert!(space_role.visible(&access, &cx));
        assert!(!other_space.visible(&access, &cx));
        assert!(!global.visible(&access, &cx));
        let admin = Access {
            global: true,
            ..Access::default()
        };
        // Even an admin sees only roles whose org or space exists, and no global roles.
        assert!(space_role.visible(&admin, &cx));
        assert!(!other_space.visible(&admin, &cx));
        assert!(!global.visible(&admin, &cx));
        let mut group = org_role.clone();
        group.spec.subject.kind = SubjectKind::Group;
        assert!(!group.visible(&admin, &cx));
    }

    #[test]
    fn role_names_are_stable_guids_distinct_per_grant() {
        let alice = subject_of("alice", None);
        let a = role_name(RoleType::SpaceDeveloper, &alice, "s1");
        assert_eq!(
            a,
            role_name(RoleType::SpaceDeveloper, &subject_of("alice", Some("uaa")), "s1")
        );
        assert!(uuid::Uuid::parse_str(&a).is_ok());
        assert_ne!(a, role_name(RoleType::SpaceManager, &alice, "s1"));
        assert_ne!(a, role_name(RoleType::SpaceDeveloper, &alice, "s2"));
        assert_ne!(
            a,
            role_name(RoleType::SpaceDeveloper, &subject_of("bob", None), "s1")
        );
    }

    #[test]
    fn service_account_users_round_trip() {
        let s = subject_of("system:serviceaccount:ci:deployer", None);
        assert_eq!(s.kind, SubjectKind::ServiceAccount);
        assert_eq!(s.namespace.as_deref(), Some("ci"));
        let mut role = fixtures::user_role("r", SPACE, RoleType::SpaceDeveloper, "x");
        role.spec.subject = s;
        assert_eq!(
            user_guid(&role).as_deref(),
            Some("system:serviceaccount:ci:deployer")
        );
        assert_eq!(subject_of("alice", Some("")).origin, None);
    }

    #[test]
    fn only_org_and_space_types_are_grantable() {
        assert_eq!(grantable("space_supporter").unwrap(), RoleType::SpaceSupporter);
        assert!(grantable("admin").is_err());
        let err = grantable("wizard").unwrap_err().to_string();
        assert!(err.contains("organization_user"), "{err}");
    }

    #[test]
    fn a_user_is_named_by_guid_or_username_not_both() {
        let data = |g: Option<&str>, u: Option<&str>, o: Option<&str>| UserData {
            guid: g.map(str::to_owned),
            username: u.map(str::to_owned),
            origin: o.map(str::to_owned),
        };
        assert_eq!(requested_user(&data(Some("alice"), None, None)).unwrap(), "alice");
        assert_eq!(
            requested_user(&data(None, Some("bob"), Some("uaa"))).unwrap(),
            "bob"
        );
        assert!(requested_user(&data(Some("a"), Some("b"), None)).is_err());
        assert!(requested_user(&data(None, None, None)).is_err());
        assert!(requested_user(&data(Some("a"), None, Some("uaa"))).is_err());
    }

    #[test]
    fn admins_are_system_masters_or_hold_an_admin_role() {
        let caches = testing::caches(
            vec![],
            vec![],
            vec![fixtures::user_role("r", ROOT_NS, RoleType::Admin, "dave")],
        );
        let who = |name: &str, groups: &[&str]| Identity {
            name: name.into(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
            kind: "user",
        };
        assert!(is_admin(&caches, ROOT_NS, &who("dave", &[])));
        assert!(is_admin(&caches, ROOT_NS, &who("root", &["system:masters"])));
        assert!(!is_admin(&caches, ROOT_NS, &who("alice", &[])));
    }
}
