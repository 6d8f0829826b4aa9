//! `kubefoundry controller`: every reconciler, run against whichever cluster the kubeconfig (or
//! in-cluster config) points at. Each reconciler follows one pipeline:
//! resolve (from caches) → build (pure) → apply (server-side apply, prune by label) → status.

pub mod adopt;
pub mod app;
pub mod apply;
pub mod build;
pub mod domain;
pub mod droplet;
pub mod error;
pub mod events;
pub mod feed;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod namespaces;
pub mod org;
pub mod package;
pub mod podspec;
pub mod process;
pub mod role;
pub mod route;
pub mod service_binding;
pub mod service_instance;
pub mod space;
pub mod status;
pub mod task;
pub mod unique;

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, future::BoxFuture};
use k8s_openapi::api::{
    apps::v1::Deployment,
    batch::v1::Job,
    core::v1::{Namespace, Pod, Secret, Service},
    networking::v1::Ingress,
    rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding},
};
use kube::{
    Api, Client, ResourceExt,
    runtime::{WatchStreamExt, controller::Action, reflector, watcher},
};

pub use error::{Error, Result};
pub use feed::{Cached, Feed, NamespaceIndex};

use crate::{
    labels::{MANAGED_BY, MANAGED_BY_VALUE},
    watch::Cacheable,
};

/// How the controller is configured.
#[derive(Clone, Debug)]
pub struct Config {
    /// The root namespace: CFOrgs, CFDomains and global CFRoles live here.
    pub root_namespace: String,
    /// How often converged objects are looked at again.
    pub resync: Duration,
    /// Lease name for leader election.
    pub lease_name: String,
    /// Namespace of the Lease.
    pub lease_namespace: String,
    /// This replica's identity in the Lease.
    pub identity: String,
    /// Prefix for CF user and group names in RBAC subjects (how the API maps identities).
    pub user_prefix: String,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; none to skip.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The IngressClass route Ingresses name; unset means the cluster's default class.
    pub ingress_class: Option<String>,
    /// First retry delay after a transient failure; it doubles per failure up to 5 minutes.
    pub backoff_base: Duration,
    /// Apply the CF ClusterRoles at start-up (and repair them when they drift). Off when a
    /// deployment tool ships them (the Helm chart): the controller then needs only `bind` on
    /// them, never `escalate`, which would let it write any rule into a role it can bind.
    pub manage_cluster_roles: bool,
    /// Reconciles each reconciler runs at once. kube-runtime's default is unbounded, which
    /// at thousands of objects opens thousands of concurrent requests and starves everything.
    pub concurrency: u16,
    /// Limits of processes and tasks nobody set limits for.
    pub app_defaults: podspec::AppDefaults,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            root_namespace: "cf".to_owned(),
            resync: Duration::from_secs(300),
            lease_name: "kubefoundry-controller".to_owned(),
            lease_namespace: "cf".to_owned(),
            identity: format!("kubefoundry-{}", std::process::id()),
            user_prefix: String::new(),
            metrics_addr: None,
            ingress_class: None,
            backoff_base: Duration::from_secs(5),
            manage_cluster_roles: true,
            concurrency: 16,
            app_defaults: podspec::AppDefaults::default(),
        }
    }
}

/// The kube-runtime settings every reconciler runs with: bounded concurrency, and a short
/// debounce so a burst of events for one object (a status write, then its children's) costs
/// one reconcile.
pub fn runtime_config(ctx: &Context) -> kube::runtime::controller::Config {
    kube::runtime::controller::Config::default()
        .concurrency(ctx.config.concurrency)
        .debounce(Duration::from_millis(100))
}

/// Caches of the children reconcilers read, so resolving never calls the API server.
#[derive(Clone)]
pub struct Caches {
    /// Namespaces kubefoundry manages.
    pub namespaces: Cached<Namespace>,
    /// RoleBindings kubefoundry manages.
    pub role_bindings: Cached<RoleBinding>,
    /// ClusterRoleBindings kubefoundry manages.
    pub cluster_role_bindings: Cached<ClusterRoleBinding>,
    /// Roles kubefoundry manages (the org and space reader Roles).
    pub roles: Cached<Role>,
    /// Deployments kubefoundry manages (one per app process).
    pub deployments: Cached<Deployment>,
    /// Services kubefoundry manages (one per routed process).
    pub services: Cached<Service>,
    /// Ingresses kubefoundry manages (one per route).
    pub ingresses: Cached<Ingress>,
    /// Jobs kubefoundry manages (one per task).
    pub jobs: Cached<Job>,
    /// Secrets kubefoundry manages (image pull, VCAP_SERVICES, bindings).
    pub secrets: Cached<Secret>,
    /// Pods of kubefoundry workloads, for process and task status.
    pub pods: Cached<Pod>,
    /// Every CFOrg, for name uniqueness.
    pub orgs: Cached<crate::crd::CFOrg>,
    /// Every CFSpace, for name uniqueness.
    pub spaces: Cached<crate::crd::CFSpace>,
    /// Every CFApp, for resolving references.
    pub apps: Cached<crate::crd::CFApp>,
    /// Every CFProcess.
    pub processes: Cached<crate::crd::CFProcess>,
    /// Every CFPackage.
    pub packages: Cached<crate::crd::CFPackage>,
    /// Every CFBuild.
    pub builds: Cached<crate::crd::CFBuild>,
    /// Every CFDroplet.
    pub droplets: Cached<crate::crd::CFDroplet>,
    /// Every CFRoute.
    pub routes: Cached<crate::crd::CFRoute>,
    /// Every CFDomain.
    pub domains: Cached<crate::crd::CFDomain>,
    /// Every CFServiceInstance.
    pub service_instances: Cached<crate::crd::CFServiceInstance>,
    /// Every CFServiceBinding.
    pub service_bindings: Cached<crate::crd::CFServiceBinding>,
    /// Every CFTask.
    pub tasks: Cached<crate::crd::CFTask>,
}

/// Shared by every reconcile.
pub struct Context {
    /// The client (the controller's own identity).
    pub client: Client,
    /// Settings.
    pub config: Config,
    /// Child caches.
    pub caches: Caches,
    /// Consecutive failures per object uid, for backoff.
    pub failures: std::sync::Mutex<std::collections::HashMap<String, u32>>,
    /// Prometheus metrics.
    pub metrics: Arc<metrics::Metrics>,
    /// Publishes Kubernetes Events.
    pub recorder: kube::runtime::events::Recorder,
    /// Objects a sibling's change woke, for a second look at their `UniqueName`.
    pub woken: unique::Woken,
    /// Changes of every Secret: credentials and TLS Secrets are the users', unlabelled, so
    /// this one watch is shared, not cached.
    pub every_secret: Feed<Secret>,
}

impl Context {
    /// Wakes for every Secret `mapper` relates: managed ones from the managed-Secret cache's
    /// feed, so the reconcile reads a cache that holds the change (a deleted binding Secret is
    /// then re-created, not skipped as still cached), the users' from the watch of every Secret.
    pub fn secret_triggers<P, I>(
        &self,
        mapper: impl Fn(&Secret) -> I + Send + Sync + 'static,
    ) -> impl futures::Stream<Item = kube::runtime::reflector::ObjectRef<P>> + Send + 'static
    where
        P: kube::Resource + 'static,
        P::DynamicType: Send,
        I: IntoIterator<Item = kube::runtime::reflector::ObjectRef<P>>,
    {
        let mapper = Arc::new(mapper);
        let on_managed = mapper.clone();
        let managed = self
            .caches
            .secrets
            .feed
            .triggers(move |s: &Secret| on_managed(s).into_iter().collect::<Vec<_>>());
        let users = self.every_secret.triggers(move |s: &Secret| {
            if is_managed(s) {
                Vec::new()
            } else {
                mapper(s).into_iter().collect()
            }
        });
        futures::stream::select(managed, users)
    }
}

/// Whether kubefoundry manages `object` (the label the managed caches select on).
pub fn is_managed(object: &impl kube::Resource) -> bool {
    object
        .meta()
        .labels
        .as_ref()
        .and_then(|l| l.get(MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY_VALUE)
}

/// The cached Pods in `namespace` carrying every label of `labels`.
pub fn pods_labelled(caches: &Caches, namespace: &str, labels: &[(&str, &str)]) -> Vec<Arc<Pod>> {
    caches
        .pods
        .in_namespace(namespace)
        .into_iter()
        .filter(|p| {
            let have = p.metadata.labels.as_ref();
            labels
                .iter()
                .all(|(k, v)| have.and_then(|l| l.get(*k)).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// kubectl's record of the object it last applied (client-side apply).
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Watches only objects kubefoundry manages.
pub fn managed() -> watcher::Config {
    watcher::Config::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"))
}

/// Starts reflectors: each cache's task runs it, and its readiness future resolves once it
/// holds a first view.
struct Starter {
    client: Client,
    tasks: Vec<BoxFuture<'static, ()>>,
    ready: Vec<BoxFuture<'static, ()>>,
}

impl Starter {
    fn new(client: &Client) -> Self {
        Self {
            client: client.clone(),
            tasks: Vec::new(),
            ready: Vec::new(),
        }
    }

    /// A cache of the objects of kind `K` that `config` selects, with its feed.
    fn cache<K: Cacheable>(&mut self, config: watcher::Config) -> Cached<K> {
        let (reader, writer) = reflector::store();
        let api: Api<K> = Api::all(self.client.clone());
        // Trimmed before caching: no reconciler reads managed fields or kubectl's copy of the
        // last applied object, and at scale they are a large share of each object.
        let events = watcher(api, config).default_backoff().modify(|o| {
            o.managed_fields_mut().clear();
            o.annotations_mut().remove(LAST_APPLIED);
        });
        let index = NamespaceIndex::default();
        let feed = self.publish(
            reflector::reflector(writer, events),
            Some((reader.clone(), index.clone())),
        );
        let ready = reader.clone();
        self.ready.push(Box::pin(async move {
            let _ = ready.wait_until_ready().await;
        }));
        Cached {
            store: reader,
            feed,
            index,
        }
    }

    /// A feed of the objects of kind `K` that `config` selects, with no cache behind it.
    fn feed<K: Cacheable>(&mut self, config: watcher::Config) -> Feed<K> {
        let api: Api<K> = Api::all(self.client.clone());
        self.publish(watcher(api, config).default_backoff(), None)
    }

    /// Runs `events` as a task, publishing each to the feed it returns. With a cache (whose
    /// store the events have already been applied to), its index follows the store, and a
    /// relist is indexed and published once it is done: the store takes a relist in whole at
    /// its end, so an object published earlier would wake a reconcile that reads the store
    /// from before the relist.
    fn publish<K: Cacheable>(
        &mut self,
        events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
        cache: Option<(reflector::Store<K>, NamespaceIndex)>,
    ) -> Feed<K> {
        let feed = Feed::default();
        let publisher = feed.clone();
        let kind = K::kind(&());
        self.tasks.push(Box::pin(events.for_each(move |event| {
            match (event, &cache) {
                (Ok(watcher::Event::Init | watcher::Event::InitApply(_)), Some(_)) => {}
                (Ok(watcher::Event::InitDone), Some((store, index))) => {
                    let objects = store.state();
                    index.replace(&objects);
                    if publisher.has_subscribers() {
                        objects.into_iter().for_each(|o| publisher.publish_object(o));
                    }
                }
                (Ok(event), cache) => {
                    if let Some((_, index)) = cache {
                        index.apply(&event);
                    }
                    publisher.publish(&event);
                }
                // The watcher retries with backoff; until then nothing of this kind wakes anyone.
                (Err(e), _) => tracing::warn!(kind = %kind, error = %e, "watch failed"),
            }
            futures::future::ready(())
        })));
        feed
    }
}

/// Runs every reconciler until `shutdown` resolves, once this replica holds the leader Lease.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let shutdown = futures::future::FutureExt::shared(Box::pin(shutdown));
    // Served before leader election, so a standby replica answers its probes too.
    let metrics = Arc::new(metrics::Metrics::default());
    if let Some(addr) = config.metrics_addr {
        let router = metrics::router(metrics.clone());
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tokio::spawn(async move {
                    let _ = axum::serve(listener, router).await;
                });
            }
            Err(e) => tracing::error!(%addr, error = %e, "cannot serve metrics"),
        }
    }
    let lease = leader::Lease::new(
        client.clone(),
        &config.lease_namespace,
        &config.lease_name,
        &config.identity,
    );
    let leadership = lease.acquire(shutdown.clone()).await?;
    let mut starter = Starter::new(&client);
    let all = watcher::Config::default;
    let caches = Caches {
        namespaces: starter.cache(managed()),
        role_bindings: starter.cache(managed()),
        cluster_role_bindings: starter.cache(managed()),
        roles: starter.cache(managed()),
        deployments: starter.cache(managed()),
        services: starter.cache(managed()),
        ingresses: starter.cache(managed()),
        jobs: starter.cache(managed()),
        secrets: starter.cache(managed()),
        pods: starter.cache(all().labels(crate::labels::APP_GUID)),
        // CF kinds: kubectl-made ones carry no managed-by label.
        orgs: starter.cache(all()),
        spaces: starter.cache(all()),
        apps: starter.cache(all()),
        processes: starter.cache(all()),
        packages: starter.cache(all()),
        builds: starter.cache(all()),
        droplets: starter.cache(all()),
        routes: starter.cache(all()),
        domains: starter.cache(all()),
        service_instances: starter.cache(all()),
        service_bindings: starter.cache(all()),
        tasks: starter.cache(all()),
    };
    if config.manage_cluster_roles {
        ensure_cluster_roles(&client).await?;
    }
    let reporter = kube::runtime::events::Reporter {
        controller: "kubefoundry".into(),
        instance: Some(config.identity.clone()),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        config,
        caches: caches.clone(),
        failures: Default::default(),
        metrics,
        recorder: kube::runtime::events::Recorder::new(client.clone(), reporter),
        woken: unique::Woken::default(),
        every_secret: starter.feed(all()),
    });
    let Starter { tasks, ready, .. } = starter;
    let tasks = futures::future::join_all(tasks);
    // Reconcilers start once caches hold a first view, so resolve never sees a false absence.
    let ready = futures::future::join_all(ready);
    let controllers = async {
        ready.await;
        // One line per reconciler.
        let reconcilers: Vec<BoxFuture<'static, ()>> = vec![
            Box::pin(org::run(ctx.clone(), shutdown.clone())),
            Box::pin(space::run(ctx.clone(), shutdown.clone())),
            Box::pin(role::run(ctx.clone(), shutdown.clone())),
            Box::pin(app::run(ctx.clone(), shutdown.clone())),
            Box::pin(process::run(ctx.clone(), shutdown.clone())),
            Box::pin(task::run(ctx.clone(), shutdown.clone())),
            Box::pin(package::run(ctx.clone(), shutdown.clone())),
            Box::pin(build::run(ctx.clone(), shutdown.clone())),
            Box::pin(droplet::run(ctx.clone(), shutdown.clone())),
            Box::pin(domain::run(ctx.clone(), shutdown.clone())),
            Box::pin(route::run(ctx.clone(), shutdown.clone())),
            Box::pin(service_instance::run(ctx.clone(), shutdown.clone())),
            Box::pin(service_binding::run(ctx.clone(), shutdown.clone())),
        ];
        futures::future::join_all(reconcilers).await;
    };
    tokio::select! {
        () = controllers => {},
        _ = tasks => {},
        () = shutdown.clone() => {},
        () = leadership.lost() => {
            tracing::error!("lost the leader lease; stopping so another replica takes over");
        }
    }
    lease.release().await;
    Ok(())
}

/// The `Ready` condition for an outcome, merged into the current conditions.
pub fn ready_status(
    current: &crate::crd::CommonStatus,
    generation: Option<i64>,
    outcome: &Result<()>,
    ok_reason: &str,
) -> crate::crd::CommonStatus {
    let (ok, reason, message) = match outcome {
        Ok(()) => (true, ok_reason.to_owned(), String::new()),
        Err(e) => {
            let (reason, message) = e.condition();
            (false, reason.to_owned(), message)
        }
    };
    let want = status::Want {
        type_: crate::crd::READY,
        ok,
        reason: &reason,
        message,
    };
    crate::crd::CommonStatus {
        observed_generation: generation,
        conditions: status::merge(&current.conditions, &[want], generation),
    }
}

/// What to do after a reconcile whose status is written: resync when converged, wait for a
/// change when the object is invalid, back off when something transient failed.
pub fn requeue<K: kube::Resource>(ctx: &Context, object: &K, outcome: Result<()>) -> Result<Action> {
    match outcome {
        Ok(()) => {
            if let Some(uid) = &object.meta().uid {
                let mut failures = ctx
                    .failures
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if failures.remove(uid).is_some() {
                    ctx.metrics
                        .backing_off
                        .set(i64::try_from(failures.len()).unwrap_or(i64::MAX));
                }
            }
            Ok(Action::requeue(ctx.config.resync))
        }
        Err(e) if e.is_permanent() => Ok(Action::await_change()),
        Err(e) => Err(e),
    }
}

/// Retries transient failures with growing delays (`backoff_base`, doubling, up to 5 min); invalid objects
/// wait for a change.
pub fn error_policy<K>(object: Arc<K>, error: &Error, ctx: Arc<Context>) -> Action
where
    K: kube::Resource,
{
    tracing::warn!(error = %error, kind = error.metric_label(), "reconcile failed");
    if error.is_permanent() {
        return Action::await_change();
    }
    let key = object.meta().uid.clone().unwrap_or_default();
    let mut failures = ctx
        .failures
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let n = failures.entry(key).or_insert(0);
    *n = (*n + 1).min(7);
    let delay = (ctx.config.backoff_base * 2u32.pow(*n - 1)).min(Duration::from_secs(300));
    ctx.metrics
        .backing_off
        .set(i64::try_from(failures.len()).unwrap_or(i64::MAX));
    Action::requeue(delay)
}

/// Applies the ClusterRoles of every CF role type (the chart ships the same ones), skipping
/// those already up to date.
pub async fn ensure_cluster_roles(client: &Client) -> Result<(), RunError> {
    let api: Api<ClusterRole> = Api::all(client.clone());
    for role in role::cluster_roles::all() {
        let desired = apply::stamp(role);
        let name = desired.metadata.name.clone().unwrap_or_default();
        let current = api.get_opt(&name).await?;
        apply::apply(&api, &desired, current.as_ref())
            .await
            .map_err(|e| match e {
                Error::Kube(k) => RunError::Lease(k),
                other => RunError::Lease(kube::Error::Service(other.to_string().into())),
            })?;
    }
    Ok(())
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Kubernetes API failed during start-up (leader election, ClusterRoles).
    #[error("start-up: {0}")]
    Lease(#[from] kube::Error),
}
