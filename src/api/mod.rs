//! `kubefoundry api`: the Cloud Foundry v3 façade. Handlers extract, call, present: reads come
//! from watch caches filtered by the caller's CF roles, writes are CRD writes made as the caller
//! (impersonated), so Kubernetes RBAC decides. Errors are Cloud Controller's.

pub mod access;
pub mod auth;
pub mod body;
pub mod claims;
pub mod error;
pub mod issuer;
pub mod logcache;
pub mod pagination;
pub mod query;
pub mod request;
pub mod v3;

use std::{collections::HashMap, sync::Arc, time::Duration};

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use futures::{StreamExt, TryStreamExt};
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, reflector, reflector::Store, watcher},
};

pub use error::{CfError, CfResult};

use k8s_openapi::api::core::v1::Pod;

use crate::crd::{
    CFApp, CFBuild, CFDomain, CFDroplet, CFOrg, CFPackage, CFProcess, CFRole, CFRoute, CFServiceBinding,
    CFServiceInstance, CFSpace, CFTask,
};
use crate::watch::Cacheable;

/// Largest JSON body accepted (CF answers 413 beyond it).
pub const MAX_JSON_BODY: usize = 1024 * 1024;

/// Settings of the façade.
#[derive(Clone, Debug)]
pub struct Config {
    /// The external URL clients use; every link is absolute under it.
    pub base_url: String,
    /// The root namespace (CFOrgs live here).
    pub root_namespace: String,
    /// How long an identity stays cached after a TokenReview.
    pub identity_ttl: Duration,
    /// How callers authenticate (Kubernetes credentials, the built-in issuer, an OIDC issuer).
    pub auth: auth::AuthConfig,
    /// Where uploaded package bits are kept (one file per package GUID).
    pub package_dir: std::path::PathBuf,
    /// The largest package upload accepted, in bytes.
    pub max_upload_bytes: u64,
    /// How long one request may take before it is answered with a CF error (CC's is 900 s).
    pub request_timeout: Duration,
    /// Limits of new processes and of tasks that set none.
    pub app_defaults: crate::controller::podspec::AppDefaults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:9000".to_owned(),
            root_namespace: "cf".to_owned(),
            identity_ttl: Duration::from_secs(60),
            auth: auth::AuthConfig::default(),
            package_dir: std::env::temp_dir().join("kubefoundry-packages"),
            max_upload_bytes: 1024 * 1024 * 1024,
            request_timeout: Duration::from_secs(900),
            app_defaults: crate::controller::podspec::AppDefaults::default(),
        }
    }
}

/// Reflector stores the façade reads from: every CF kind, plus the Pods of apps (for stats).
#[derive(Clone)]
pub struct Caches {
    /// Every CFOrg.
    pub orgs: Store<CFOrg>,
    /// Every CFSpace.
    pub spaces: Store<CFSpace>,
    /// Every CFRole, for deciding what a caller may see.
    pub roles: Store<CFRole>,
    /// Every CFApp.
    pub apps: Store<CFApp>,
    /// Every CFProcess.
    pub processes: Store<CFProcess>,
    /// Every CFPackage.
    pub packages: Store<CFPackage>,
    /// Every CFBuild.
    pub builds: Store<CFBuild>,
    /// Every CFDroplet.
    pub droplets: Store<CFDroplet>,
    /// Every CFRoute.
    pub routes: Store<CFRoute>,
    /// Every CFDomain.
    pub domains: Store<CFDomain>,
    /// Every CFTask.
    pub tasks: Store<CFTask>,
    /// Every CFServiceInstance.
    pub service_instances: Store<CFServiceInstance>,
    /// Every CFServiceBinding.
    pub service_bindings: Store<CFServiceBinding>,
    /// Pods of apps and tasks (those carrying the app GUID label).
    pub pods: Store<Pod>,
    /// Each caller's access; `orgs`, `spaces` and `roles` must be written through its
    /// [`access::Generation`] or it serves stale access.
    pub access: Arc<access::AccessCache>,
}

/// Everything handlers share.
pub struct ApiState {
    /// Settings.
    pub config: Config,
    /// The façade's own client (reads, TokenReviews).
    pub client: Client,
    /// Caches.
    pub caches: Caches,
    /// Resolves callers.
    pub auth: auth::Authenticator,
    /// Failures of jobs finished within their request.
    pub job_failures: v3::jobs::Failures,
    clients: std::sync::Mutex<HashMap<auth::Identity, Client>>,
}

impl ApiState {
    /// A client that acts as `identity` (Kubernetes impersonation), cached per identity.
    pub fn client_for(&self, identity: &auth::Identity) -> CfResult<Client> {
        let mut clients = self
            .clients
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(c) = clients.get(identity) {
            return Ok(c.clone());
        }
        let client = impersonating(&self.client, identity);
        clients.insert(identity.clone(), client.clone());
        Ok(client)
    }
}

/// Wraps the façade's client so every request carries the caller's identity as
/// `Impersonate-User`/`Impersonate-Group` headers.
fn impersonating(client: &Client, identity: &auth::Identity) -> Client {
    let user = axum::http::HeaderValue::from_str(&identity.name).ok();
    let groups: Vec<axum::http::HeaderValue> = identity
        .groups
        .iter()
        .filter_map(|g| axum::http::HeaderValue::from_str(g).ok())
        .collect();
    let inner = client.clone();
    let service = tower::service_fn(move |mut req: axum::http::Request<kube::client::Body>| {
        let inner = inner.clone();
        if let Some(u) = &user {
            req.headers_mut().insert("impersonate-user", u.clone());
        }
        for g in &groups {
            req.headers_mut().append("impersonate-group", g.clone());
        }
        async move { inner.send(req).await.map_err(Box::new) }
    });
    Client::new(service, client.default_namespace())
}

/// Starts the caches; resolves once they hold a first view.
pub async fn caches(client: &Client) -> Caches {
    fn run<K: Cacheable>(
        client: &Client,
        config: watcher::Config,
    ) -> (Store<K>, futures::future::BoxFuture<'static, ()>) {
        start(client, config, None)
    }
    fn counted<K: Cacheable>(
        client: &Client,
        config: watcher::Config,
        generation: Arc<access::Generation>,
    ) -> (Store<K>, futures::future::BoxFuture<'static, ()>) {
        start(client, config, Some(generation))
    }
    fn start<K: Cacheable>(
        client: &Client,
        config: watcher::Config,
        counted: Option<Arc<access::Generation>>,
    ) -> (Store<K>, futures::future::BoxFuture<'static, ()>) {
        let (reader, mut writer) = reflector::store();
        // What `reflector::reflector` does, counting the writes that change access.
        let stream = watcher(Api::<K>::all(client.clone()), config)
            .default_backoff()
            .inspect_ok(move |event| match &counted {
                Some(generation) => generation.apply(&mut writer, event),
                None => writer.apply_watcher_event(event),
            })
            .applied_objects()
            .for_each(|_| futures::future::ready(()));
        tokio::spawn(stream);
        let ready = reader.clone();
        (
            reader,
            Box::pin(async move {
                let _ = ready.wait_until_ready().await;
            }),
        )
    }
    let all = watcher::Config::default;
    fn keep<K>(
        waits: &mut Vec<futures::future::BoxFuture<'static, ()>>,
        (store, wait): (Store<K>, futures::future::BoxFuture<'static, ()>),
    ) -> Store<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone,
    {
        waits.push(wait);
        store
    }
    let mut waits = Vec::new();
    let access = Arc::new(access::AccessCache::default());
    let caches = Caches {
        orgs: keep(&mut waits, counted(client, all(), access.generation())),
        spaces: keep(&mut waits, counted(client, all(), access.generation())),
        roles: keep(&mut waits, counted(client, all(), access.generation())),
        apps: keep(&mut waits, run(client, all())),
        processes: keep(&mut waits, run(client, all())),
        packages: keep(&mut waits, run(client, all())),
        builds: keep(&mut waits, run(client, all())),
        droplets: keep(&mut waits, run(client, all())),
        routes: keep(&mut waits, run(client, all())),
        domains: keep(&mut waits, run(client, all())),
        tasks: keep(&mut waits, run(client, all())),
        service_instances: keep(&mut waits, run(client, all())),
        service_bindings: keep(&mut waits, run(client, all())),
        pods: keep(&mut waits, run(client, all().labels(crate::labels::APP_GUID))),
        access,
    };
    futures::future::join_all(waits).await;
    caches
}

/// Builds the state for `client` with `config`, starting its caches.
pub async fn state(client: Client, config: Config) -> Arc<ApiState> {
    let caches = caches(&client).await;
    Arc::new(ApiState {
        auth: auth::Authenticator::new(client.clone(), &config),
        config,
        client,
        caches,
        job_failures: v3::jobs::Failures::default(),
        clients: std::sync::Mutex::new(HashMap::new()),
    })
}

/// The whole façade.
pub fn router(state: Arc<ApiState>) -> Router {
    let deadline = state.config.request_timeout;
    Router::new()
        .route("/", get(v3::root::root))
        .route("/v3", get(v3::root::v3))
        .route("/v3/info", get(v3::root::info))
        .route("/whoami", get(v3::root::whoami))
        .merge(v3::routes())
        .merge(logcache::routes())
        .merge(issuer::routes())
        .fallback(|| async { CfError::UnknownRequest })
        // Cloud Controller answers a known path with an unsupported method as an unknown request.
        .method_not_allowed_fallback(|| async { CfError::UnknownRequest })
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .layer(axum::middleware::from_fn(move |req, next| {
            request::context(deadline, req, next)
        }))
        .with_state(state)
}
