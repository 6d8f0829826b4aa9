//! CFProcess → Deployment `names::deployment(app, type)`, plus a Service
//! `names::service(app, type)` while a route destination targets the process. Resolves the
//! app, its current droplet, its space, routes and bindings from the caches, builds both
//! objects purely ([`build`]), applies them, and reports instances from the Deployment and
//! its pods.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use kube::{
    Api, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{
    Caches, Context, Error, Result, names,
    podspec::{self, AppRuntime, Binding, Space},
};
use crate::{
    crd::{BindingType, CFApp, CFDroplet, CFProcess, CFRoute, DropletState},
    labels::{APP_GUID, DISPLAY_NAME, ORG_GUID, PROCESS_TYPE},
};

type Ref = ObjectRef<DeserializeGuard<CFProcess>>;

/// The processes in `namespace` that `keep` selects, as reconcile requests.
fn refs(caches: &Caches, namespace: Option<&str>, keep: impl Fn(&CFProcess) -> bool) -> Vec<Ref> {
    caches
        .processes
        .in_namespace(namespace.unwrap_or_default())
        .into_iter()
        .filter(|p| keep(p))
        .map(|p| ObjectRef::new(&p.name_any()).within(&p.namespace().unwrap_or_default()))
        .collect()
}

/// The processes of `app` in `namespace`.
fn processes_of(caches: &Caches, namespace: Option<&str>, app: &str) -> Vec<Ref> {
    refs(caches, namespace, |p| p.spec.app_guid == app)
}

/// The app whose workloads read Secret `name`: its `VCAP_SERVICES` Secret or a binding's.
fn app_of_secret(caches: &Caches, secret: &Secret) -> Option<String> {
    let name = secret.name_any();
    let namespace = secret.namespace();
    if let Some(app) = secret.labels().get(APP_GUID) {
        return Some(app.clone());
    }
    let apps = caches.apps.in_namespace(namespace.as_deref().unwrap_or_default());
    if let Some(app) = apps.iter().find(|a| names::vcap_services(&a.name_any()) == name) {
        return Some(app.name_any());
    }
    caches
        .service_bindings
        .in_namespace(namespace.as_deref().unwrap_or_default())
        .into_iter()
        .find(|b| b.status.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(name.as_str()))
        .and_then(|b| b.spec.app_guid.clone())
}

/// Runs the CFProcess reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let api: Api<DeserializeGuard<CFProcess>> = Api::all(client.clone());
    let (c1, c2, c3, c4, c5, c6) = (
        ctx.caches.clone(),
        ctx.caches.clone(),
        ctx.caches.clone(),
        ctx.caches.clone(),
        ctx.caches.clone(),
        ctx.caches.clone(),
    );
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        .reconcile_on(ctx.caches.deployments.feed.owners())
        .reconcile_on(ctx.caches.services.feed.owners())
        // Desired state, the droplet, bindings and routes all feed the pod template or Service.
        .reconcile_on(
            ctx.caches
                .apps
                .feed
                .triggers(move |app: &CFApp| processes_of(&c1, app.namespace().as_deref(), &app.name_any())),
        )
        .reconcile_on(
            ctx.caches
                .droplets
                .feed
                .triggers(move |d: &CFDroplet| processes_of(&c2, d.namespace().as_deref(), &d.spec.app_guid)),
        )
        // A route change can remove a destination, which the new route no longer names.
        .reconcile_on(
            ctx.caches
                .routes
                .feed
                .triggers(move |r: &CFRoute| refs(&c3, r.namespace().as_deref(), |_| true)),
        )
        .reconcile_on(
            ctx.caches
                .service_bindings
                .feed
                .triggers(move |b: &crate::crd::CFServiceBinding| {
                    b.spec
                        .app_guid
                        .as_deref()
                        .map(|app| processes_of(&c4, b.namespace().as_deref(), app))
                        .unwrap_or_default()
                }),
        )
        .reconcile_on(ctx.caches.secrets.feed.triggers(move |s: &Secret| {
            app_of_secret(&c5, s)
                .map(|app| processes_of(&c5, s.namespace().as_deref(), &app))
                .unwrap_or_default()
        }))
        // Pods only change `instances` and failure conditions.
        .reconcile_on(ctx.caches.pods.feed.triggers(move |p: &Pod| {
            let (app, process_type) = (p.labels().get(APP_GUID), p.labels().get(PROCESS_TYPE));
            if process_type.is_none() {
                return Vec::new();
            }
            refs(&c6, p.namespace().as_deref(), |proc| {
                Some(&proc.spec.app_guid) == app && Some(&proc.spec.process_type) == process_type
            })
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFProcess", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(object: Arc<DeserializeGuard<CFProcess>>, ctx: Arc<Context>) -> Result<Action> {
    let process = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    if process.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = process.namespace().unwrap_or_default();
    let outcome = apply(process, &ctx, &namespace).await;
    // status, from the caches: every change of the Deployment or a Pod wakes us through their
    // feeds once the caches hold it, so the last wake sees the final count.
    let name = names::deployment(&process.spec.app_guid, &process.spec.process_type);
    let deployment = ctx
        .caches
        .deployments
        .get(&ObjectRef::new(&name).within(&namespace));
    let pods = super::pods_labelled(
        &ctx.caches,
        &namespace,
        &[
            (APP_GUID, &process.spec.app_guid),
            (PROCESS_TYPE, &process.spec.process_type),
        ],
    );
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    let status = build::status(process, deployment.as_deref(), &pods, &outcome);
    let api: Api<CFProcess> = Api::namespaced(ctx.client.clone(), &namespace);
    super::apply::status(&api, process, process.status.as_ref(), status).await?;
    super::requeue(&ctx, process, outcome)
}

async fn apply(process: &CFProcess, ctx: &Context, namespace: &str) -> Result<()> {
    // resolve
    let app = resolve_app(ctx, namespace, &process.spec.app_guid)?;
    let droplet = resolve_droplet(ctx, &app, app.spec.current_droplet_guid.as_deref())?;
    let runtime = resolve_runtime(ctx, &app, &droplet);
    // build (pure)
    let desired = build::deployment(process, &runtime);
    // apply
    let cached = ctx.caches.deployments.get(&ObjectRef::from_obj(&desired));
    if let Some(owner) = cached
        .as_ref()
        .and_then(|d| d.owner_references().iter().find(|o| o.controller == Some(true)))
        && Some(&owner.uid) != process.uid().as_ref()
    {
        return Err(Error::Invalid {
            reason: "DuplicateProcessType",
            message: format!(
                "Deployment {} already runs process type {:?} of app {} for CFProcess {}",
                desired.name_any(),
                process.spec.process_type,
                process.spec.app_guid,
                owner.name
            ),
        });
    }
    super::apply::apply(
        &Api::namespaced(ctx.client.clone(), namespace),
        &desired,
        cached.as_deref(),
    )
    .await?;
    let routes: Vec<Arc<CFRoute>> = ctx.caches.routes.in_namespace(namespace);
    let routes: Vec<&CFRoute> = routes.iter().map(AsRef::as_ref).collect();
    let service_name = names::service(&process.spec.app_guid, &process.spec.process_type);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), namespace);
    let existing: Vec<Arc<Service>> = ctx
        .caches
        .services
        .get(&ObjectRef::new(&service_name).within(namespace))
        .into_iter()
        .collect();
    let keep = match build::service(process, &routes, podspec::port(&droplet)) {
        Some(service) => {
            super::apply::apply(&services, &service, existing.first().map(AsRef::as_ref)).await?;
            vec![service_name]
        }
        None => Vec::new(),
    };
    super::apply::prune(|_| services.clone(), &existing, &keep).await?;
    Ok(())
}

/// The CFApp `guid` in `namespace`.
pub fn resolve_app(ctx: &Context, namespace: &str, guid: &str) -> Result<Arc<CFApp>> {
    ctx.caches
        .apps
        .get(&ObjectRef::new(guid).within(namespace))
        .ok_or_else(|| Error::Waiting {
            reason: "AppNotFound",
            message: format!("CFApp {guid} does not exist in namespace {namespace}"),
        })
}

/// The droplet `guid` of `app`, which must be staged: its absence is reported, never guessed.
pub fn resolve_droplet(ctx: &Context, app: &CFApp, guid: Option<&str>) -> Result<Arc<CFDroplet>> {
    let namespace = app.namespace().unwrap_or_default();
    let Some(guid) = guid else {
        return Err(Error::Invalid {
            reason: "NoDroplet",
            message: "the app has no current droplet".to_owned(),
        });
    };
    let droplet = ctx
        .caches
        .droplets
        .get(&ObjectRef::new(guid).within(&namespace))
        .ok_or_else(|| Error::Waiting {
            reason: "DropletNotFound",
            message: format!("CFDroplet {guid} does not exist in namespace {namespace}"),
        })?;
    if droplet.spec.app_guid != app.name_any() {
        return Err(Error::Invalid {
            reason: "DropletOfAnotherApp",
            message: format!(
                "CFDroplet {guid} belongs to app {}, not {}",
                droplet.spec.app_guid,
                app.name_any()
            ),
        });
    }
    let status = droplet.status.as_ref();
    match status.and_then(|s| s.state) {
        Some(DropletState::Staged) if !podspec::image(&droplet).is_empty() => Ok(droplet),
        Some(DropletState::Failed | DropletState::Expired) => Err(Error::Invalid {
            reason: "DropletFailed",
            message: format!(
                "CFDroplet {guid} cannot run: {}",
                status
                    .and_then(|s| s.error.clone())
                    .unwrap_or_else(|| "it failed or expired".to_owned())
            ),
        }),
        _ => Err(Error::Waiting {
            reason: "DropletNotStaged",
            message: format!("CFDroplet {guid} is not staged yet"),
        }),
    }
}

/// The org and space of namespace `namespace`, from the namespace cache.
pub fn resolve_space(ctx: &Context, namespace: &str) -> Space {
    let ns = ctx.caches.namespaces.get(&ObjectRef::new(namespace));
    let org_guid = ns
        .as_ref()
        .and_then(|ns| ns.labels().get(ORG_GUID).cloned())
        .unwrap_or_default();
    let display = |ns: Option<Arc<k8s_openapi::api::core::v1::Namespace>>| {
        ns.and_then(|ns| ns.annotations().get(DISPLAY_NAME).cloned())
            .unwrap_or_default()
    };
    let org_name = display(ctx.caches.namespaces.get(&ObjectRef::new(&org_guid)));
    Space {
        guid: namespace.to_owned(),
        name: display(ns),
        org_guid,
        org_name,
    }
}

/// The URL of a route: its reported URL, else `host.domain/path` from the domain cache.
fn route_url(ctx: &Context, route: &CFRoute) -> Option<String> {
    if let Some(url) = route.status.as_ref().and_then(|s| s.url.clone()) {
        return Some(url);
    }
    let domain = ctx
        .caches
        .domains
        .state()
        .into_iter()
        .find(|d| d.name_any() == route.spec.domain_guid)
        .map(|d| d.spec.name.clone())?;
    let host = if route.spec.host.is_empty() {
        domain
    } else {
        format!("{}.{domain}", route.spec.host)
    };
    Some(format!("{host}{}", route.spec.path))
}

/// Everything beyond the app and droplet that the app's pods are made from.
pub fn resolve_runtime<'a>(ctx: &Context, app: &'a CFApp, droplet: &'a CFDroplet) -> AppRuntime<'a> {
    let namespace = app.namespace().unwrap_or_default();
    let guid = app.name_any();
    let mut uris: Vec<String> = ctx
        .caches
        .routes
        .in_namespace(&namespace)
        .iter()
        .filter(|r| r.spec.destinations.iter().any(|d| d.app_guid == guid))
        .filter_map(|r| route_url(ctx, r))
        .collect();
    uris.sort();
    uris.dedup();
    let secret = |name: &str| ctx.caches.secrets.get(&ObjectRef::new(name).within(&namespace));
    let mut secrets = Vec::new();
    let bindings: Vec<Binding> = ctx
        .caches
        .service_bindings
        .in_namespace(&namespace)
        .iter()
        .filter(|b| b.meta().deletion_timestamp.is_none())
        .filter(|b| b.spec.type_ == BindingType::App && b.spec.app_guid.as_deref() == Some(guid.as_str()))
        .filter_map(|b| {
            let secret_name = b.status.as_ref()?.secret_name.clone()?;
            // Mounting a Secret that does not exist yet would keep pods from starting.
            secrets.push(secret(&secret_name)?);
            let instance = ctx
                .caches
                .service_instances
                .get(&ObjectRef::new(&b.spec.service_instance_guid).within(&namespace))
                .map(|i| i.spec.display_name.clone());
            let name = b
                .spec
                .display_name
                .clone()
                .or(instance)
                .unwrap_or_else(|| b.name_any());
            Some(Binding {
                guid: b.name_any(),
                name,
                secret_name,
            })
        })
        .collect();
    secrets.extend(secret(&names::vcap_services(&guid)));
    AppRuntime {
        app,
        droplet,
        space: resolve_space(ctx, &namespace),
        uris,
        bindings: podspec::binding_dir_names(bindings),
        secrets_hash: podspec::secrets_hash(secrets.iter().map(AsRef::as_ref)),
    }
}
