//! CFRoute → Ingress `names::ingress(route)` (plus a copy of the domain's TLS Secret, since an
//! Ingress reads TLS Secrets only from its own namespace). Both are owned by the route, so
//! garbage collection removes them with it; no finalizer is needed. Routes an Ingress cannot
//! express (TCP, weighted or split destinations, internal domains) report `Ready=False` and
//! have no Ingress at all: see [`build`] for why.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::{core::v1::Secret, networking::v1::Ingress};
use kube::{
    Api, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{Context, Error, Result, unique};
use crate::{
    crd::{CFApp, CFDomain, CFProcess, CFRoute, CFRouteStatus},
    labels::{ORG_GUID, ROUTE_GUID},
};

type Guarded = DeserializeGuard<CFRoute>;

/// Runs the CFRoute reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let api: Api<Guarded> = Api::all(client.clone());
    let (on_domain, on_tls, on_app, on_process, on_route) =
        (ctx.clone(), ctx.clone(), ctx.clone(), ctx.clone(), ctx.clone());
    Controller::new(api.clone(), watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        .reconcile_on(ctx.caches.ingresses.feed.owners())
        .reconcile_on(ctx.caches.secrets.feed.owners())
        // A domain appearing, vanishing or changing its TLS Secret changes its routes.
        .reconcile_on(
            ctx.caches
                .domains
                .feed
                .triggers(move |d: &CFDomain| routes_on_domain(&on_domain, &d.name_any())),
        )
        // Rotating a domain's certificate re-copies it into every route's namespace.
        .reconcile_on(ctx.every_secret.triggers(move |secret: &Secret| {
            if secret.namespace().as_deref() != Some(on_tls.config.root_namespace.as_str()) {
                return Vec::new();
            }
            let name = secret.name_any();
            on_tls
                .caches
                .domains
                .state()
                .iter()
                .filter(|d| d.spec.tls_secret_name.as_deref() == Some(name.as_str()))
                .flat_map(|d| routes_on_domain(&on_tls, &d.name_any()))
                .collect::<Vec<_>>()
        }))
        // Destination status follows the target app and process.
        .reconcile_on(ctx.caches.apps.feed.triggers(move |app: &CFApp| {
            routes_to_app(&on_app, &app.namespace().unwrap_or_default(), &app.name_any())
        }))
        .reconcile_on(ctx.caches.processes.feed.triggers(move |p: &CFProcess| {
            routes_to_app(&on_process, &p.namespace().unwrap_or_default(), &p.spec.app_guid)
        }))
        // Another route taking or dropping this one's address can flip its UniqueName.
        .reconcile_on(ctx.caches.routes.feed.triggers(move |route: &CFRoute| {
            unique::siblings(route, &on_route.caches.routes, &on_route.woken)
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFRoute", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn routes_on_domain(ctx: &Context, domain: &str) -> Vec<ObjectRef<Guarded>> {
    ctx.caches
        .routes
        .state()
        .iter()
        .filter(|r| r.spec.domain_guid == domain)
        .map(|r| ObjectRef::new(&r.name_any()).within(&r.namespace().unwrap_or_default()))
        .collect()
}

fn routes_to_app(ctx: &Context, namespace: &str, app: &str) -> Vec<ObjectRef<Guarded>> {
    ctx.caches
        .routes
        .in_namespace(namespace)
        .iter()
        .filter(|r| r.spec.destinations.iter().any(|d| d.app_guid == app))
        .map(|r| ObjectRef::new(&r.name_any()).within(namespace))
        .collect()
}

async fn reconcile(object: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    let route = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    if route.meta().deletion_timestamp.is_some() {
        // Owner references take the Ingress and TLS copy with the route.
        return Ok(Action::await_change());
    }
    apply(route, &ctx).await
}

/// Where a destination's app and process stand in the caches.
fn target(ctx: &Context, namespace: &str, app: &str, process_type: &str) -> build::Target {
    if ctx
        .caches
        .apps
        .get(&ObjectRef::new(app).within(namespace))
        .is_none()
    {
        return build::Target::NoApp;
    }
    let matches = |p: &CFProcess| p.spec.app_guid == app && p.spec.process_type == process_type;
    // Processes are conventionally named `<app>-<type>`; scan only when that misses.
    let conventional = ctx
        .caches
        .processes
        .get(&ObjectRef::new(&format!("{app}-{process_type}")).within(namespace));
    let found = conventional.is_some_and(|p| matches(&p))
        || ctx
            .caches
            .processes
            .in_namespace(namespace)
            .iter()
            .any(|p| matches(p));
    if found {
        build::Target::Found
    } else {
        build::Target::NoProcess
    }
}

/// The children a route should have, and whether it is Ready once they are in place.
struct Plan {
    ingress: Option<Ingress>,
    tls: Option<Secret>,
    /// Why the route is not Ready even though its children are applied.
    pending: Option<Error>,
    ok_reason: &'static str,
}

async fn plan(
    route: &CFRoute,
    ctx: &Context,
    domain: Option<&CFDomain>,
    destinations_ready: bool,
) -> Result<Plan> {
    let namespace = route.namespace().unwrap_or_default();
    let domain = domain.ok_or_else(|| Error::Waiting {
        reason: "DomainNotFound",
        message: format!(
            "no CFDomain {:?} in the root namespace {:?}",
            route.spec.domain_guid, ctx.config.root_namespace
        ),
    })?;
    let org = ctx
        .caches
        .namespaces
        .get(&ObjectRef::new(&namespace))
        .and_then(|ns| ns.labels().get(ORG_GUID).cloned());
    build::check_domain(domain, org.as_deref())?;
    let Some(backend) = build::backend(route)? else {
        return Ok(Plan {
            ingress: None,
            tls: None,
            pending: None,
            ok_reason: "NoDestinations",
        });
    };
    let mut pending = None;
    let tls = match &domain.spec.tls_secret_name {
        None => None,
        Some(name) => {
            // The domain's Secret is the user's, outside the managed-Secret cache: read it.
            let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.config.root_namespace);
            match secrets.get_opt(name).await? {
                None => {
                    pending = Some(Error::Waiting {
                        reason: "TLSSecretNotFound",
                        message: format!(
                            "domain {:?} names TLS Secret {name:?}, which is not in the root namespace; serving without TLS until it is",
                            domain.spec.name
                        ),
                    });
                    None
                }
                Some(source) => match build::check_tls_secret(&source) {
                    Ok(()) => Some(build::tls_secret(route, &source)),
                    Err(e) => {
                        pending = Some(e);
                        None
                    }
                },
            }
        }
    };
    let tls_name = tls.as_ref().map(ResourceExt::name_any);
    let ingress = build::ingress(
        route,
        domain,
        &backend,
        ctx.config.ingress_class.as_deref(),
        tls_name.as_deref(),
    );
    if pending.is_none() && !destinations_ready {
        pending = Some(Error::Waiting {
            reason: "DestinationsNotReady",
            message: "some destinations' app or process does not exist; see status.destinations".to_owned(),
        });
    }
    Ok(Plan {
        ingress: Some(ingress),
        tls,
        pending,
        ok_reason: "IngressReady",
    })
}

/// Deletes the route's Ingresses and TLS copies other than `keep`.
async fn prune(ctx: &Context, route: &CFRoute, keep: &[String]) -> Result<()> {
    let namespace = route.namespace().unwrap_or_default();
    let name = route.name_any();
    let ours =
        |meta: &kube::api::ObjectMeta| meta.labels.as_ref().and_then(|l| l.get(ROUTE_GUID)) == Some(&name);
    let ingresses: Vec<_> = ctx
        .caches
        .ingresses
        .in_namespace(&namespace)
        .into_iter()
        .filter(|i| ours(&i.metadata))
        .collect();
    let client = ctx.client.clone();
    super::apply::prune(
        |ns| Api::namespaced(client.clone(), ns.unwrap_or_default()),
        &ingresses,
        keep,
    )
    .await?;
    let secrets: Vec<_> = ctx
        .caches
        .secrets
        .in_namespace(&namespace)
        .into_iter()
        .filter(|s| ours(&s.metadata))
        .collect();
    super::apply::prune(
        |ns| Api::namespaced(client.clone(), ns.unwrap_or_default()),
        &secrets,
        keep,
    )
    .await?;
    Ok(())
}

async fn apply(route: &CFRoute, ctx: &Context) -> Result<Action> {
    let namespace = route.namespace().unwrap_or_default();
    // resolve
    let older = unique::resolve(route, &ctx.caches.routes);
    let domain = ctx
        .caches
        .domains
        .get(&ObjectRef::new(&route.spec.domain_guid).within(&ctx.config.root_namespace));
    let destinations = build::destination_statuses(route, |app, process_type| {
        target(ctx, &namespace, app, process_type)
    });
    let destinations_ready = destinations.iter().all(|d| d.state == "Ready");
    let outcome = async {
        // build (pure, apart from reading the domain's TLS Secret)
        match plan(route, ctx, domain.as_deref(), destinations_ready).await {
            // A failed read says nothing about the route: leave its children alone.
            Err(e @ Error::Kube(_)) => Err(e),
            Err(e) => {
                // No misleading Ingress for a route that cannot be served as specified.
                prune(ctx, route, &[]).await?;
                Err(e)
            }
            Ok(plan) => {
                // apply
                let mut keep = Vec::new();
                if let Some(tls) = &plan.tls {
                    let cached = ctx.caches.secrets.get(&ObjectRef::from_obj(tls));
                    super::apply::apply(
                        &Api::namespaced(ctx.client.clone(), &namespace),
                        tls,
                        cached.as_deref(),
                    )
                    .await?;
                    keep.push(tls.name_any());
                }
                if let Some(ingress) = &plan.ingress {
                    let cached = ctx.caches.ingresses.get(&ObjectRef::from_obj(ingress));
                    super::apply::apply(
                        &Api::namespaced(ctx.client.clone(), &namespace),
                        ingress,
                        cached.as_deref(),
                    )
                    .await?;
                    keep.push(ingress.name_any());
                }
                prune(ctx, route, &keep).await?;
                plan.pending.map_or(Ok(plan.ok_reason), Err)
            }
        }
    }
    .await;
    let (ok_reason, outcome) = match outcome {
        Ok(reason) => (reason, Ok(())),
        Err(e) => ("", Err(e)),
    };
    // status
    let status = route.status.clone().unwrap_or_default();
    let common = super::ready_status(&status.common, route.metadata.generation, &outcome, ok_reason);
    let domain_name = domain.as_ref().map(|d| d.spec.name.as_str());
    let next = CFRouteStatus {
        common: unique::with_condition(common, route, older.as_ref()),
        url: domain_name.map(|d| build::url(route, d)),
        fqdn: domain_name.map(|d| build::fqdn(route, d)),
        destinations,
    };
    let api: Api<CFRoute> = Api::namespaced(ctx.client.clone(), &namespace);
    super::apply::status(&api, route, route.status.as_ref(), next.clone()).await?;
    super::events::transition(ctx, route, &status.common, &next.common).await;
    super::requeue(ctx, route, outcome).map(|action| ctx.woken.settle(route, action))
}
