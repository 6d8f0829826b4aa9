//! `/v3/domains`, `/v3/organizations/{guid}/domains[/default]` and route reservations: shared
//! domains are visible to every authenticated caller, private ones to the viewers of their org
//! (and of the orgs they are shared with). Writes go to the root namespace as the caller, so
//! Kubernetes RBAC decides who may create or delete a domain.

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
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        body::{Guid, MetadataBody, ToOne, parse},
        claims::Claim,
        query::Query,
    },
    crd::{CFDomain, CFDomainSpec, CFOrg, CFRoute},
};

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/domains", get(list).post(create))
        .route(
            "/v3/domains/{guid}",
            get(resource::show::<CFDomain>)
                .patch(resource::update_metadata::<CFDomain>)
                .delete(destroy),
        )
        .route("/v3/domains/{guid}/route_reservations", get(reservations))
        .route(
            "/v3/domains/{guid}/relationships/shared_organizations",
            axum::routing::post(share),
        )
        .route(
            "/v3/domains/{guid}/relationships/shared_organizations/{org}",
            axum::routing::delete(unshare),
        )
        .route("/v3/organizations/{guid}/domains", get(list_for_org))
        .route("/v3/organizations/{guid}/domains/default", get(default_for_org))
}

impl CfKind for CFDomain {
    const KIND: &'static str = "Domain";
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at", "name"];
    const FILTERS: &'static [&'static str] = &["names", "organization_guids"];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.domains
    }

    fn visible(&self, access: &Access, cx: &Cx<'_>) -> bool {
        self.namespace().as_deref() == Some(cx.root) && usable_by(self, |org| access.org(org), true)
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let (created_at, updated_at) = timestamps(&self.metadata);
        let shared: Vec<Value> = self
            .spec
            .shared_organization_guids
            .iter()
            .map(|g| json!({"guid": g}))
            .collect();
        let mut links = json!({
            "self": cx.link(&format!("/v3/domains/{guid}")),
            "route_reservations": cx.link(&format!("/v3/domains/{guid}/route_reservations")),
        });
        if let Some(org) = &self.spec.organization_guid {
            links["organization"] = cx.link(&format!("/v3/organizations/{org}"));
            links["shared_organizations"] =
                cx.link(&format!("/v3/domains/{guid}/relationships/shared_organizations"));
        }
        json!({
            "guid": guid,
            "created_at": created_at,
            "updated_at": updated_at,
            "name": self.spec.name,
            "internal": self.spec.internal,
            "router_group": null,
            "supported_protocols": ["http"],
            "metadata": metadata(&self.metadata),
            "relationships": {
                "organization": to_one(self.spec.organization_guid.as_deref()),
                "shared_organizations": {"data": shared},
            },
            "links": links,
        })
    }

    fn filter(&self, key: &str, values: &[String], _cx: &Cx<'_>) -> bool {
        match key {
            "names" => values.iter().any(|v| v.eq_ignore_ascii_case(&self.spec.name)),
            "organization_guids" => self
                .spec
                .organization_guid
                .as_ref()
                .is_some_and(|o| values.contains(o)),
            _ => true,
        }
    }
}

/// Whether routes of an org passing `org` may use the domain: shared domains (when `shared`
/// counts), or a private one owned by or shared with such an org.
pub fn usable_by(domain: &CFDomain, org: impl Fn(&str) -> bool, shared: bool) -> bool {
    match &domain.spec.organization_guid {
        None => shared,
        Some(owner) => org(owner) || domain.spec.shared_organization_guids.iter().any(|s| org(s)),
    }
}

/// Whether a domain is shared (not scoped to an org).
pub fn is_shared(domain: &CFDomain) -> bool {
    domain.spec.organization_guid.is_none()
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFDomain>(&state, &caller, raw.as_deref(), "/v3/domains", |_| true)
}

async fn list_for_org(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(org): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::find::<CFOrg>(&state, &caller, &org)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    resource::list_with::<CFDomain>(
        &state,
        &caller,
        &q,
        &format!("/v3/organizations/{org}/domains"),
        |d| usable_by(d, |o| o == org, true),
        &["names"],
    )
}

/// The oldest shared, external domain (CC's default for every org).
pub fn default_domain(state: &ApiState) -> Option<Arc<CFDomain>> {
    state
        .caches
        .domains
        .state()
        .into_iter()
        .filter(|d| {
            d.namespace().as_deref() == Some(state.config.root_namespace.as_str())
                && d.metadata.deletion_timestamp.is_none()
                && is_shared(d)
                && !d.spec.internal
        })
        .min_by(|a, b| {
            let at = |d: &CFDomain| d.metadata.creation_timestamp.as_ref().map(|t| t.0);
            at(a).cmp(&at(b)).then_with(|| a.name_any().cmp(&b.name_any()))
        })
}

async fn default_for_org(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(org): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    resource::find::<CFOrg>(&state, &caller, &org)?;
    let domain = default_domain(&state).ok_or(CfError::NotFound("Domain"))?;
    Ok(Json(domain.present(&Cx::new(&state))))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Relationships {
    #[serde(default)]
    organization: Option<ToOne>,
    #[serde(default)]
    shared_organizations: Option<ToMany>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ToMany {
    data: Vec<Guid>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    internal: Option<bool>,
    #[serde(default)]
    router_group: Option<Value>,
    #[serde(default)]
    relationships: Option<Relationships>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// CC's domain name rules, with the lowercase DNS names an Ingress host needs.
pub fn check_domain_name(name: &str) -> CfResult<String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let bad = |why: &str| Err(CfError::Unprocessable(format!("Name {why}")));
    if name.len() < 3 {
        return bad("is too short (minimum is 3 characters)");
    }
    if name.len() > 253 {
        return bad("is too long (maximum is 253 characters)");
    }
    if !name.contains('.') {
        return bad("must contain at least one \".\"");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if !name.split('.').all(label_ok) {
        return bad("does not comply with RFC 1035 standards");
    }
    Ok(name)
}

fn org_missing(guid: &str) -> CfError {
    CfError::Unprocessable(format!(
        "Organization with guid '{guid}' does not exist or you do not have access to it."
    ))
}

fn claim(state: &ApiState, name: &str) -> Claim {
    Claim::new("domain", &state.config.root_namespace, name)
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    let name = check_domain_name(&body.name)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    if body.router_group.as_ref().is_some_and(|r| !r.is_null()) {
        return Err(CfError::Unprocessable(
            "Router groups are not supported: kubefoundry serves HTTP routes through an Ingress, not TCP routes"
                .into(),
        ));
    }
    let rel = body.relationships.unwrap_or_default();
    let owner = match &rel.organization {
        Some(o) => Some(o.required("organization")?),
        None => None,
    };
    let shared: Vec<String> = rel
        .shared_organizations
        .map(|s| s.data.into_iter().map(|g| g.guid).collect())
        .unwrap_or_default();
    let internal = body.internal.unwrap_or(false);
    if internal && owner.is_some() {
        return Err(CfError::Unprocessable(
            "Cannot associate an internal domain with an organization".into(),
        ));
    }
    if owner.is_none() && !shared.is_empty() {
        return Err(CfError::Unprocessable(
            "Domains cannot be shared with other organizations unless they are scoped to an organization."
                .into(),
        ));
    }
    for org in owner.iter().chain(&shared) {
        let exists = resource::lookup::<CFOrg>(&state.caches, org)
            .is_some_and(|o| o.metadata.deletion_timestamp.is_none());
        if !exists || !caller.access.org(org) {
            return Err(org_missing(org));
        }
    }
    if owner.as_ref().is_some_and(|o| shared.contains(o)) {
        return Err(CfError::Unprocessable(
            "Domain cannot be shared with owning organization.".into(),
        ));
    }
    let guid = resource::new_guid();
    let claim = claim(&state, &name);
    claim
        .take(
            &state,
            &guid,
            |g| resource::lookup::<CFDomain>(&state.caches, g).is_some(),
            || CfError::Unprocessable(format!("The domain name \"{name}\" is already in use")),
        )
        .await?;
    let mut domain = CFDomain::new(
        &guid,
        CFDomainSpec {
            name: name.clone(),
            internal,
            organization_guid: owner,
            shared_organization_guids: shared,
            tls_secret_name: None,
        },
    );
    domain.metadata.namespace = Some(state.config.root_namespace.clone());
    if let Some(m) = &body.metadata {
        m.apply_to(&mut domain.metadata);
    }
    let created = match resource::create(&state, &caller, &domain).await {
        Ok(d) => d,
        Err(e) => {
            claim.release(&state).await;
            return Err(e);
        }
    };
    Ok((StatusCode::CREATED, Json(created.present(&Cx::new(&state)))).into_response())
}

/// The routes on a domain that are not being deleted.
fn routes_on(caches: &Caches, domain: &str) -> Vec<Arc<CFRoute>> {
    caches
        .routes
        .state()
        .into_iter()
        .filter(|r| r.spec.domain_guid == domain && r.metadata.deletion_timestamp.is_none())
        .collect()
}

async fn destroy(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFDomain>(&state, &caller, &guid)?;
    if !current.spec.shared_organization_guids.is_empty() {
        return Err(CfError::Unprocessable(
            "This domain is shared with other organizations. Unshare before deleting.".into(),
        ));
    }
    let used = routes_on(&state.caches, &guid).len();
    if used > 0 {
        return Err(CfError::Unprocessable(format!(
            "Domain '{}' is in use by {used} route(s). Delete the routes before deleting the domain.",
            current.spec.name
        )));
    }
    resource::delete(&state, &caller, &*current).await?;
    claim(&state, &current.spec.name).release(&state).await;
    Ok(jobs::accepted(&state, "domain.delete", &guid))
}

fn shared_body(cx: &Cx<'_>, domain: &CFDomain) -> Value {
    let guid = domain.name_any();
    json!({
        "data": domain
            .spec
            .shared_organization_guids
            .iter()
            .map(|g| json!({"guid": g}))
            .collect::<Vec<_>>(),
        "links": {"self": cx.link(&format!("/v3/domains/{guid}/relationships/shared_organizations"))},
    })
}

/// `cf share-private-domain`: adds orgs to a private domain's shared orgs (as the caller).
async fn share(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: ToMany = parse(&body)?;
    let current = resource::find::<CFDomain>(&state, &caller, &guid)?;
    let Some(owner) = &current.spec.organization_guid else {
        return Err(CfError::Unprocessable(
            "Domains cannot be shared with other organizations unless they are scoped to an organization."
                .into(),
        ));
    };
    let mut shared = current.spec.shared_organization_guids.clone();
    for org in body.data.into_iter().map(|g| g.guid) {
        let exists = resource::lookup::<CFOrg>(&state.caches, &org)
            .is_some_and(|o| o.metadata.deletion_timestamp.is_none());
        if !exists || !caller.access.org(&org) {
            return Err(org_missing(&org));
        }
        if &org == owner {
            return Err(CfError::Unprocessable(
                "Domain cannot be shared with owning organization.".into(),
            ));
        }
        if !shared.contains(&org) {
            shared.push(org);
        }
    }
    let patch = json!({"spec": {"sharedOrganizationGuids": shared}});
    let updated = resource::patch(&state, &caller, &*current, &patch).await?;
    Ok(Json(shared_body(&Cx::new(&state), &updated)))
}

/// `cf unshare-private-domain`: removes one org, unless its routes use the domain.
async fn unshare(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path((guid, org)): Path<(String, String)>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFDomain>(&state, &caller, &guid)?;
    let org_name = resource::lookup::<CFOrg>(&state.caches, &org)
        .filter(|_| caller.access.org(&org))
        .map(|o| o.spec.display_name.clone())
        .ok_or_else(|| org_missing(&org))?;
    if !current.spec.shared_organization_guids.contains(&org) {
        return Err(CfError::Unprocessable(format!(
            "Unable to unshare domain from organization with name '{org_name}'. Ensure the domain is shared to this organization."
        )));
    }
    let cx = Cx::new(&state);
    let used = routes_on(&state.caches, &guid)
        .iter()
        .any(|r| r.namespace().and_then(|s| cx.org_of_space(&s)).as_deref() == Some(org.as_str()));
    if used {
        return Err(CfError::Unprocessable(
            "This domain has associated routes in this organization. Delete the routes before unsharing."
                .into(),
        ));
    }
    let shared: Vec<&String> = current
        .spec
        .shared_organization_guids
        .iter()
        .filter(|g| **g != org)
        .collect();
    let patch = json!({"spec": {"sharedOrganizationGuids": shared}});
    resource::patch(&state, &caller, &*current, &patch).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v3/domains/{guid}/route_reservations?host=&path=&port=`: whether a route with these
/// attributes exists anywhere (as CC answers, whoever owns it), so `cf check-route` works.
async fn reservations(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(&["host", "path", "port"])?;
    resource::find::<CFDomain>(&state, &caller, &guid)?;
    let host = q.get("host").unwrap_or("").to_ascii_lowercase();
    let path = q.get("path").unwrap_or("");
    let port = match q.get("port") {
        Some(p) if !p.is_empty() => Some(
            p.parse::<i32>()
                .map_err(|_| CfError::BadQuery(format!("Port must be an integer, not '{p}'")))?,
        ),
        _ => None,
    };
    let matching = routes_on(&state.caches, &guid)
        .iter()
        .any(|r| r.spec.host == host && r.spec.path == path && r.spec.port == port);
    Ok(Json(json!({"matching_route": matching})))
}

/// Caches filled by hand, for the presenters' unit tests in this and the sibling families.
#[cfg(test)]
pub(crate) mod testing {
    use kube::runtime::{reflector, watcher};

    use crate::api::Caches;

    /// Writers for every cache, so a test can put objects in.
    pub struct Filled {
        /// The caches the writers fill.
        pub caches: Caches,
        domains: reflector::store::Writer<crate::crd::CFDomain>,
        apps: reflector::store::Writer<crate::crd::CFApp>,
        routes: reflector::store::Writer<crate::crd::CFRoute>,
        instances: reflector::store::Writer<crate::crd::CFServiceInstance>,
    }

    impl Filled {
        /// Empty caches.
        pub fn new() -> Self {
            let (domains_r, domains) = reflector::store();
            let (apps_r, apps) = reflector::store();
            let (routes_r, routes) = reflector::store();
            let (instances_r, instances) = reflector::store();
            let caches = Caches {
                orgs: reflector::store().0,
                spaces: reflector::store().0,
                roles: reflector::store().0,
                apps: apps_r,
                processes: reflector::store().0,
                packages: reflector::store().0,
                builds: reflector::store().0,
                droplets: reflector::store().0,
                routes: routes_r,
                domains: domains_r,
                tasks: reflector::store().0,
                service_instances: instances_r,
                service_bindings: reflector::store().0,
                pods: reflector::store().0,
                access: Default::default(),
            };
            Self {
                caches,
                domains,
                apps,
                routes,
                instances,
            }
        }

        /// Adds a domain.
        pub fn domain(mut self, d: crate::crd::CFDomain) -> Self {
            self.domains.apply_watcher_event(&watcher::Event::Apply(d));
            self
        }

        /// Adds an app.
        pub fn app(mut self, a: crate::crd::CFApp) -> Self {
            self.apps.apply_watcher_event(&watcher::Event::Apply(a));
            self
        }

        /// Adds a route.
        pub fn route(mut self, r: crate::crd::CFRoute) -> Self {
            self.routes.apply_watcher_event(&watcher::Event::Apply(r));
            self
        }

        /// Adds a service instance.
        pub fn instance(mut self, i: crate::crd::CFServiceInstance) -> Self {
            self.instances.apply_watcher_event(&watcher::Event::Apply(i));
            self
        }
    }

    /// A presenting context over `caches`.
    pub fn cx(caches: &Caches) -> super::Cx<'_> {
        super::Cx {
            base: "https://api.example.com",
            caches,
            root: "cf",
            query: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;

    use super::{testing::cx, *};
    use crate::fixtures;

    #[test]
    fn a_private_domain_presents_its_org_and_shares() {
        let caches = testing::Filled::new().caches;
        let mut domain = fixtures::domain("d1", "private.example.com");
        domain.spec.organization_guid = Some("org-a".to_owned());
        domain.spec.shared_organization_guids = vec!["org-b".to_owned()];
        let v = domain.present(&cx(&caches));
        assert_eq!(v["name"], "private.example.com");
        assert_eq!(v["router_group"], Value::Null);
        assert_eq!(v["supported_protocols"], json!(["http"]));
        assert_eq!(
            v["relationships"]["organization"],
            json!({"data": {"guid": "org-a"}})
        );
        assert_eq!(
            v["relationships"]["shared_organizations"],
            json!({"data": [{"guid": "org-b"}]})
        );
        assert_eq!(
            v["links"]["self"]["href"],
            "https://api.example.com/v3/domains/d1"
        );
        assert_eq!(
            v["links"]["organization"]["href"],
            "https://api.example.com/v3/organizations/org-a"
        );
    }

    #[test]
    fn a_shared_domain_has_no_org() {
        let caches = testing::Filled::new().caches;
        let v = fixtures::domain("d1", "apps.example.com").present(&cx(&caches));
        assert_eq!(v["relationships"]["organization"], json!({"data": null}));
        assert_eq!(v["relationships"]["shared_organizations"], json!({"data": []}));
        assert!(v["links"].get("organization").is_none());
    }

    #[test]
    fn visibility_follows_the_owning_and_shared_orgs() {
        let caches = testing::Filled::new().caches;
        let shared = fixtures::domain("d1", "apps.example.com");
        let mut private = fixtures::domain("d2", "private.example.com");
        private.spec.organization_guid = Some("org-a".to_owned());
        private.spec.shared_organization_guids = vec!["org-b".to_owned()];
        let nobody = Access::default();
        let in_b = Access {
            orgs: ["org-b".to_owned()].into(),
            ..Access::default()
        };
        assert!(shared.visible(&nobody, &cx(&caches)));
        assert!(!private.visible(&nobody, &cx(&caches)));
        assert!(private.visible(&in_b, &cx(&caches)));
    }

    #[test]
    fn routes_on_a_domain_block_its_deletion() {
        let filled = testing::Filled::new()
            .route(fixtures::route("r1", "a", "d1"))
            .route(fixtures::route("r2", "b", "d2"));
        let on: Vec<String> = routes_on(&filled.caches, "d1")
            .iter()
            .map(|r| r.name_any())
            .collect();
        assert_eq!(on, vec!["r1".to_owned()]);
        assert!(routes_on(&filled.caches, "d3").is_empty());
    }

    #[test]
    fn domain_names_follow_cc_and_dns() {
        assert_eq!(check_domain_name("Apps.Example.COM").unwrap(), "apps.example.com");
        assert!(check_domain_name("localhost").is_err());
        assert!(check_domain_name("a_b.example.com").is_err());
        assert!(check_domain_name("-a.example.com").is_err());
        assert!(check_domain_name("a..example.com").is_err());
        assert_eq!(
            check_domain_name("ab").unwrap_err().to_string(),
            "Name is too short (minimum is 3 characters)"
        );
    }
}
