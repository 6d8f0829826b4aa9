//! The machinery every resource family shares, so a family only says what is particular to it
//! (how it presents, which filters it knows): listing from the cache with visibility, common
//! filters, ordering, paging and `include`; finding one by GUID (404 when invisible); and writes
//! made as the caller that wait until the cache has seen them, so a GET right after a write
//! reads it back.

use std::{collections::HashSet, sync::Arc, time::Duration};

use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    core::NamespaceResourceScope,
    runtime::reflector::Store,
};
use serde_json::Value;

use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        access::Access,
        auth::Identity,
        error::from_kube,
        pagination::{PageParams, order_key, page_of},
        query::{Query, timestamp_filter},
    },
    labels::FIELD_MANAGER,
};

/// What presenting and filtering may consult: the external URL, the caches and the request.
pub struct Cx<'a> {
    /// The external base URL (links are absolute).
    pub base: &'a str,
    /// Every cache.
    pub caches: &'a Caches,
    /// The root namespace.
    pub root: &'a str,
    /// The request's query (for `embed`, `fields`), when there is one.
    pub query: Option<&'a Query>,
}

impl<'a> Cx<'a> {
    /// The context of `state` with no query.
    pub fn new(state: &'a ApiState) -> Self {
        Self {
            base: &state.config.base_url,
            caches: &state.caches,
            root: &state.config.root_namespace,
            query: None,
        }
    }

    /// An absolute link `{href}`.
    pub fn link(&self, path: &str) -> Value {
        super::link(self.base, path)
    }

    /// The org GUID of a space (its CFSpace's namespace).
    pub fn org_of_space(&self, space: &str) -> Option<String> {
        self.caches
            .spaces
            .find(|s| s.metadata.name.as_deref() == Some(space))
            .and_then(|s| s.namespace())
    }
}

/// A CF resource backed by one namespaced kubefoundry kind.
pub trait CfKind:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// CF's name for the kind, as in "App not found".
    const KIND: &'static str;
    /// Fields `order_by` accepts; the first is the default.
    const ORDERS: &'static [&'static str] = &["created_at", "updated_at"];
    /// Filters its lists accept besides `guids`, `label_selector`, `created_ats`, `updated_ats`
    /// and paging (and `include`, when [`CfKind::INCLUDES`] is not empty).
    const FILTERS: &'static [&'static str] = &[];
    /// What `include=` may name.
    const INCLUDES: &'static [&'static str] = &[];

    /// The cache of this kind.
    fn store(caches: &Caches) -> &Store<Self>;

    /// Whether the caller may read it; by default, when it lives in a space they may see.
    fn visible(&self, access: &Access, _cx: &Cx<'_>) -> bool {
        self.meta()
            .namespace
            .as_deref()
            .is_some_and(|ns| access.space(ns))
    }

    /// The v3 representation.
    fn present(&self, cx: &Cx<'_>) -> Value;

    /// What `order_by=field` compares (the presented field as a string), when it can be told
    /// without presenting; `None` presents the object to find it.
    fn order_key(&self, _field: &str) -> Option<String> {
        None
    }

    /// Whether it passes filter `key` (one of [`CfKind::FILTERS`]) holding `values`.
    fn filter(&self, _key: &str, _values: &[String], _cx: &Cx<'_>) -> bool {
        true
    }

    /// The resources `include=what` adds for this page, under their `included` key.
    fn include(
        _what: &str,
        _page: &[Value],
        _cx: &Cx<'_>,
        _access: &Access,
    ) -> Option<(&'static str, Vec<Value>)> {
        None
    }
}

/// The caller, resolved once per request: identity and read access.
pub struct Caller {
    /// Who.
    pub who: Identity,
    /// What they may read.
    pub access: Arc<Access>,
}

impl Caller {
    /// Authenticates the request and looks up the caller's access.
    pub async fn of(state: &ApiState, headers: &axum::http::HeaderMap) -> CfResult<Self> {
        let who = state.auth.identify(headers).await?;
        let access = state.caches.access.get(&state.caches, &who);
        Ok(Self { who, access })
    }
}

/// A list of `K` as the caller sees it, at `path`, narrowed further by `scope` (for nested lists
/// such as `/v3/apps/{guid}/processes`).
pub fn list<K: CfKind>(
    state: &ApiState,
    caller: &Caller,
    raw_query: Option<&str>,
    path: &str,
    scope: impl Fn(&K) -> bool,
) -> CfResult<ListBody> {
    let q = Query::parse(raw_query.unwrap_or(""))?;
    list_with(state, caller, &q, path, scope, K::FILTERS)
}

/// [`list`] with an already parsed query and an explicit filter set (nested lists accept fewer).
pub fn list_with<K: CfKind>(
    state: &ApiState,
    caller: &Caller,
    q: &Query,
    path: &str,
    scope: impl Fn(&K) -> bool,
    filters: &[&str],
) -> CfResult<ListBody> {
    select(state, caller, q, path, scope, filters)?.body()
}

/// [`list_with`] as a JSON value, for lists that add to the envelope.
pub fn list_value<K: CfKind>(
    state: &ApiState,
    caller: &Caller,
    q: &Query,
    path: &str,
    scope: impl Fn(&K) -> bool,
    filters: &[&str],
) -> CfResult<Value> {
    Ok(select(state, caller, q, path, scope, filters)?.value())
}

/// A list's response body, serialized as it was presented.
#[derive(Debug)]
pub struct ListBody(Vec<u8>);

impl ListBody {
    /// The body as a JSON value.
    pub fn value(&self) -> CfResult<Value> {
        serde_json::from_slice(&self.0).map_err(|e| CfError::Internal(Box::new(e)))
    }
}

impl axum::response::IntoResponse for ListBody {
    fn into_response(self) -> axum::response::Response {
        ([(axum::http::header::CONTENT_TYPE, "application/json")], self.0).into_response()
    }
}

/// One page of a list, chosen from the cache but not yet presented.
struct Selected<'a, K> {
    cx: Cx<'a>,
    access: &'a Access,
    query: &'a Query,
    path: &'a str,
    params: PageParams,
    includes: Vec<String>,
    total: usize,
    page: Vec<Arc<K>>,
}

fn select<'a, K: CfKind>(
    state: &'a ApiState,
    caller: &'a Caller,
    q: &'a Query,
    path: &'a str,
    scope: impl Fn(&K) -> bool,
    filters: &[&str],
) -> CfResult<Selected<'a, K>> {
    let mut allowed: Vec<&str> = vec!["guids"];
    allowed.extend(filters);
    if !K::INCLUDES.is_empty() {
        allowed.push("include");
    }
    q.allow(&allowed)?;
    let params = PageParams::from_query(q, K::ORDERS)?;
    let includes = match q.list("include") {
        Some(what) => {
            for w in &what {
                if !K::INCLUDES.contains(&w.as_str()) {
                    return Err(CfError::BadQuery(format!(
                        "Invalid included resource: '{w}'. Valid included resources are: {}",
                        K::INCLUDES
                            .iter()
                            .map(|i| format!("'{i}'"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            what
        }
        None => Vec::new(),
    };
    let selector = match q.get("label_selector") {
        Some(s) => Some(
            kubefoundry_sim::selector::LabelSelector::parse(s)
                .map_err(|e| CfError::BadQuery(format!("Invalid label_selector value: {}", e.message())))?,
        ),
        None => None,
    };
    let mut time_filters = Vec::new();
    for (field, key) in [("created_ats", "created_at"), ("updated_ats", "updated_at")] {
        for (op, values) in q.timestamps(field) {
            time_filters.push((key, timestamp_filter(&op, &values)?));
        }
    }
    let guids: Option<HashSet<String>> = q.list("guids").map(|g| g.into_iter().collect());
    let specific: Vec<(&str, Vec<String>)> = filters
        .iter()
        .filter_map(|f| q.list(f).map(|v| (*f, v)))
        .collect();
    let cx = Cx {
        query: Some(q),
        ..Cx::new(state)
    };
    let (field, descending) = &params.order_by;
    // Filtered and ordered on the cached objects, so only the page is presented: presenting
    // every match (10k apps for a page of 50) dominated lists. Timestamps are the metadata's,
    // which is what every presenter shows.
    let mut keyed: Vec<(String, String, Arc<K>)> = K::store(&state.caches)
        .state()
        .into_iter()
        .filter(|o| o.meta().deletion_timestamp.is_none())
        .filter(|o| guids.as_ref().is_none_or(|g| g.contains(&o.name_any())))
        .filter(|o| scope(o))
        .filter(|o| o.visible(&caller.access, &cx))
        .filter(|o| selector.as_ref().is_none_or(|s| s.matches(o.labels())))
        .filter(|o| specific.iter().all(|(k, v)| o.filter(k, v, &cx)))
        .filter_map(|o| {
            let (created_at, updated_at) = super::timestamps(o.meta());
            let passes = time_filters.iter().all(|(key, f)| {
                f(if *key == "created_at" {
                    &created_at
                } else {
                    &updated_at
                })
            });
            if !passes {
                return None;
            }
            let key = match field.as_str() {
                "created_at" => created_at,
                "updated_at" => updated_at,
                other => o
                    .order_key(other)
                    .unwrap_or_else(|| order_key(&o.present(&cx), other)),
            };
            Some((key, o.name_any(), o))
        })
        .collect();
    keyed.sort_by(|a, b| {
        let ordering = (&a.0, &a.1).cmp(&(&b.0, &b.1));
        if *descending { ordering.reverse() } else { ordering }
    });
    let total = keyed.len();
    let page = keyed
        .into_iter()
        .skip((params.page - 1).saturating_mul(params.per_page))
        .take(params.per_page)
        .map(|(_, _, o)| o)
        .collect();
    Ok(Selected {
        cx,
        access: &caller.access,
        query: q,
        path,
        params,
        includes,
        total,
        page,
    })
}

impl<K: CfKind> Selected<'_, K> {
    /// The envelope with empty `resources`, and `included` (from the `presented` page) when
    /// the query asked for it.
    fn envelope(&self, presented: &[Value]) -> Value {
        let mut body = page_of(
            self.cx.base,
            self.path,
            self.query,
            &self.params,
            self.total,
            Vec::new(),
        );
        if !self.includes.is_empty() {
            let mut included = serde_json::Map::new();
            for what in &self.includes {
                if let Some((key, values)) = K::include(what, presented, &self.cx, self.access) {
                    included.insert(key.to_owned(), Value::Array(values));
                }
            }
            body["included"] = Value::Object(included);
        }
        body
    }

    fn presented(&self) -> Vec<Value> {
        self.page.iter().map(|o| o.present(&self.cx)).collect()
    }

    /// The page as one JSON value.
    fn value(self) -> Value {
        let presented = self.presented();
        let mut body = self.envelope(&presented);
        body["resources"] = Value::Array(presented);
        body
    }

    /// The page serialized, each resource presented as it is written (and then dropped) unless
    /// `include` needs the whole page presented first: a 5,000-item page of values took
    /// hundreds of MiB.
    fn body(self) -> CfResult<ListBody> {
        let presented = if self.includes.is_empty() {
            Vec::new()
        } else {
            self.presented()
        };
        let envelope = self.envelope(&presented);
        let resources = if self.includes.is_empty() {
            Resources::Lazy(&self.page, &self.cx)
        } else {
            Resources::Presented(&presented)
        };
        let mut out = Vec::with_capacity(1024 * self.page.len().max(1));
        serde_json::to_writer(
            &mut out,
            &Envelope {
                envelope: &envelope,
                resources,
            },
        )
        .map_err(|e| CfError::Internal(Box::new(e)))?;
        Ok(ListBody(out))
    }
}

/// A list envelope whose `resources` are written in place of the envelope's own.
struct Envelope<'a, K> {
    envelope: &'a Value,
    resources: Resources<'a, K>,
}

enum Resources<'a, K> {
    Presented(&'a [Value]),
    Lazy(&'a [Arc<K>], &'a Cx<'a>),
}

impl<K: CfKind> serde::Serialize for Envelope<'_, K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(fields) = self.envelope.as_object() else {
            return self.envelope.serialize(serializer);
        };
        // The envelope's own key order, so the bytes are those of the envelope as a value.
        let mut map = serializer.serialize_map(Some(fields.len()))?;
        for (key, value) in fields {
            if key == "resources" {
                map.serialize_entry(key, &self.resources)?;
            } else {
                map.serialize_entry(key, value)?;
            }
        }
        map.end()
    }
}

impl<K: CfKind> serde::Serialize for Resources<'_, K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Presented(values) => serializer.collect_seq(values.iter()),
            Self::Lazy(objects, cx) => serializer.collect_seq(objects.iter().map(|o| o.present(cx))),
        }
    }
}

/// The `K` with this GUID, or 404 "<Kind> not found" when it does not exist, is being deleted
/// or is invisible to the caller.
pub fn find<K: CfKind>(state: &ApiState, caller: &Caller, guid: &str) -> CfResult<Arc<K>> {
    let cx = Cx::new(state);
    K::store(&state.caches)
        .find(|o| o.meta().name.as_deref() == Some(guid) && o.meta().deletion_timestamp.is_none())
        .filter(|o| o.visible(&caller.access, &cx))
        .ok_or(CfError::NotFound(K::KIND))
}

/// The `K` with this GUID whatever the caller sees (for relationships the caller named).
pub fn lookup<K: CfKind>(caches: &Caches, guid: &str) -> Option<Arc<K>> {
    K::store(caches).find(|o| o.meta().name.as_deref() == Some(guid))
}

/// The API of `K` in `namespace`, acting as the caller (Kubernetes RBAC decides).
pub fn api_as<K: CfKind>(state: &ApiState, caller: &Caller, namespace: &str) -> CfResult<Api<K>> {
    Ok(Api::namespaced(state.client_for(&caller.who)?, namespace))
}

/// Creates `object` as the caller, and waits until the cache holds it.
pub async fn create<K: CfKind>(state: &ApiState, caller: &Caller, object: &K) -> CfResult<K> {
    let ns = object.meta().namespace.clone().unwrap_or_default();
    let created = api_as::<K>(state, caller, &ns)?
        .create(&PostParams::default(), object)
        .await
        .map_err(|e| from_kube(e, K::KIND, false))?;
    seen(K::store(&state.caches), &created).await;
    Ok(created)
}

/// Applies a JSON merge patch to `current` as the caller, and waits until the cache holds the
/// result.
pub async fn patch<K: CfKind>(state: &ApiState, caller: &Caller, current: &K, patch: &Value) -> CfResult<K> {
    let ns = current.meta().namespace.clone().unwrap_or_default();
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    let updated = api_as::<K>(state, caller, &ns)?
        .patch(&current.name_any(), &params, &Patch::Merge(patch))
        .await
        .map_err(|e| from_kube(e, K::KIND, false))?;
    seen(K::store(&state.caches), &updated).await;
    Ok(updated)
}

/// Deletes `current` as the caller (background propagation), and waits until the cache shows
/// it gone or going.
pub async fn delete<K: CfKind>(state: &ApiState, caller: &Caller, current: &K) -> CfResult<()> {
    let ns = current.meta().namespace.clone().unwrap_or_default();
    let name = current.name_any();
    match api_as::<K>(state, caller, &ns)?
        .delete(&name, &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.code == 404 => {}
        Err(e) => return Err(from_kube(e, K::KIND, false)),
    }
    let store = K::store(&state.caches);
    wait(|| {
        store
            .find(|o| o.meta().name.as_deref() == Some(&name) && o.meta().namespace.as_deref() == Some(&ns))
            .is_none_or(|o| o.meta().deletion_timestamp.is_some())
    })
    .await;
    Ok(())
}

/// Waits (briefly) until the cache holds `object` at its resourceVersion or newer.
pub async fn seen<K: CfKind>(store: &Store<K>, object: &K) {
    let name = object.name_any();
    let ns = object.meta().namespace.clone();
    let want = version(object);
    wait(|| {
        store
            .find(|o| o.meta().name.as_deref() == Some(&name) && o.meta().namespace == ns)
            .is_some_and(|o| version(&*o) >= want)
    })
    .await;
}

fn version<K: Resource>(o: &K) -> u64 {
    o.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Polls `done` until it holds or 5 s pass: watch caches lag writes by milliseconds.
pub async fn wait(done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `GET /v3/<family>/{guid}`: one `K` as the caller sees it.
pub async fn show<K: CfKind>(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(guid): axum::extract::Path<String>,
) -> CfResult<axum::Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let object = find::<K>(&state, &caller, &guid)?;
    Ok(axum::Json(object.present(&Cx::new(&state))))
}

/// A PATCH body that may change only metadata.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MetadataOnly {
    #[serde(default)]
    metadata: Option<crate::api::body::MetadataBody>,
}

/// `PATCH /v3/<family>/{guid}` for families whose only writable fields are labels and
/// annotations.
pub async fn update_metadata<K: CfKind>(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    headers: axum::http::HeaderMap,
    axum::extract::Path(guid): axum::extract::Path<String>,
    body: axum::body::Bytes,
) -> CfResult<axum::Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: MetadataOnly = crate::api::body::parse(&body)?;
    let current = find::<K>(&state, &caller, &guid)?;
    let mut patch = serde_json::json!({});
    if let Some(m) = &body.metadata {
        m.check()?;
        patch["metadata"] = m.merge_patch();
    }
    let updated = self::patch(&state, &caller, &*current, &patch).await?;
    Ok(axum::Json(updated.present(&Cx::new(&state))))
}

/// A `{"data":{"guid":…}}` relationship, or `{"data":null}`.
pub fn to_one(guid: Option<&str>) -> Value {
    match guid {
        Some(g) => serde_json::json!({"data": {"guid": g}}),
        None => serde_json::json!({"data": null}),
    }
}

/// A new GUID for a CF object.
pub fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use super::*;
    use crate::{
        api::{Config, auth, v3::processes::test_caches},
        crd::{AppState, CFApp},
        fixtures,
    };

    /// State over `caches` whose client reaches no cluster (lists never call it).
    fn state(caches: Caches) -> ApiState {
        let offline = tower::service_fn(|_: axum::http::Request<kube::client::Body>| async {
            Err::<axum::http::Response<kube::client::Body>, _>(std::io::Error::other("offline"))
        });
        let client = kube::Client::new(offline, "default");
        let config = Config::default();
        ApiState {
            auth: auth::Authenticator::new(client.clone(), &config),
            config,
            client,
            caches,
            job_failures: Default::default(),
            clients: std::sync::Mutex::new(HashMap::new()),
        }
    }

    fn admin() -> Caller {
        Caller {
            who: Identity::user("admin".into(), vec!["system:masters".into()]),
            access: Arc::new(Access {
                global: true,
                ..Access::default()
            }),
        }
    }

    #[tokio::test]
    async fn a_list_body_is_the_bytes_of_its_value() {
        let mut apps: Vec<CFApp> = ["delta", "alpha", "charlie", "bravo"]
            .iter()
            .enumerate()
            .map(|(i, name)| fixtures::app(&format!("a{i}"), name))
            .collect();
        apps[2].spec.desired_state = AppState::Started;
        let state = state(test_caches::caches(apps, vec![], vec![]));
        let caller = admin();
        for raw in [
            "",
            "order_by=name&per_page=2",
            "order_by=-name&per_page=2&page=2",
            "order_by=state",
            "order_by=-updated_at&names=alpha,bravo",
            "include=space&per_page=3",
            "per_page=2&page=9",
        ] {
            let q = Query::parse(raw).unwrap();
            let body = list_with::<CFApp>(&state, &caller, &q, "/v3/apps", |_| true, CFApp::FILTERS).unwrap();
            let value =
                list_value::<CFApp>(&state, &caller, &q, "/v3/apps", |_| true, CFApp::FILTERS).unwrap();
            assert_eq!(body.0, serde_json::to_vec(&value).unwrap(), "{raw}");
            assert_eq!(body.value().unwrap(), value, "{raw}");
        }
        let names = |raw: &str| -> Vec<Value> {
            let q = Query::parse(raw).unwrap();
            list_value::<CFApp>(&state, &caller, &q, "/v3/apps", |_| true, CFApp::FILTERS).unwrap()["resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["name"].clone())
                .collect()
        };
        assert_eq!(names("order_by=name&per_page=3"), ["alpha", "bravo", "charlie"]);
        assert_eq!(names("order_by=-name&per_page=3&page=2"), ["alpha"]);
        assert_eq!(names("order_by=state&per_page=1"), ["charlie"]);
        // Ties (every other app is STOPPED) break on the GUID, reversed too.
        assert_eq!(names("order_by=-state&per_page=1"), ["bravo"]);
    }
}
