//! CFApp → its CFProcesses: one per process type of the current droplet, plus `web`, each
//! created once (users scale them afterwards) and labelled with the app's relationships.
//! The app's status sums its processes: `STARTED` once an instance is ready.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    api::{ListParams, PostParams},
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{Caches, Context, Error, Result, process::resolve_droplet, unique};
use crate::{
    crd::{CFApp, CFDroplet, CFProcess},
    labels::FIELD_MANAGER,
};

fn app_ref(
    caches: &Caches,
    namespace: Option<String>,
    app: &str,
) -> Option<ObjectRef<DeserializeGuard<CFApp>>> {
    let namespace = namespace?;
    caches
        .apps
        .get(&ObjectRef::new(app).within(&namespace))
        .map(|_| ObjectRef::new(app).within(&namespace))
}

/// Runs the CFApp reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let api: Api<DeserializeGuard<CFApp>> = Api::all(client.clone());
    let (c1, c2, on_app) = (ctx.caches.clone(), ctx.caches.clone(), ctx.clone());
    Controller::new(api.clone(), watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // Processes report the ready instances the app sums; kubectl-made ones need labels.
        .reconcile_on(
            ctx.caches
                .processes
                .feed
                .triggers(move |p: &CFProcess| app_ref(&c1, p.namespace(), &p.spec.app_guid)),
        )
        // A droplet being staged (or appearing) decides the process types and the Ready reason.
        .reconcile_on(
            ctx.caches
                .droplets
                .feed
                .triggers(move |d: &CFDroplet| app_ref(&c2, d.namespace(), &d.spec.app_guid)),
        )
        // Another app in the space taking, dropping or renaming a name can flip this one's
        // UniqueName.
        .reconcile_on(
            ctx.caches
                .apps
                .feed
                .triggers(move |app: &CFApp| unique::siblings(app, &on_app.caches.apps, &on_app.woken)),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFApp", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(object: Arc<DeserializeGuard<CFApp>>, ctx: Arc<Context>) -> Result<Action> {
    let app = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    if app.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = app.namespace().unwrap_or_default();
    let older = unique::resolve(app, &ctx.caches.apps);
    let outcome = apply(app, &ctx, &namespace).await;
    // status
    let processes = processes_of(&ctx, &namespace, &app.name_any());
    let processes: Vec<&CFProcess> = processes.iter().map(AsRef::as_ref).collect();
    let mut status = build::status(app, &processes, &outcome);
    status.common = unique::with_condition(status.common, app, older.as_ref());
    let api: Api<CFApp> = Api::namespaced(ctx.client.clone(), &namespace);
    super::apply::status(&api, app, app.status.as_ref(), status).await?;
    super::requeue(&ctx, app, outcome).map(|action| ctx.woken.settle(app, action))
}

/// The app's processes, from the cache: a process's change wakes us through the cache's feed,
/// so the last wake sees the final sum of ready instances.
fn processes_of(ctx: &Context, namespace: &str, app: &str) -> Vec<Arc<CFProcess>> {
    ctx.caches
        .processes
        .in_namespace(namespace)
        .into_iter()
        .filter(|p| p.spec.app_guid == app)
        .collect()
}

async fn apply(app: &CFApp, ctx: &Context, namespace: &str) -> Result<()> {
    // resolve: without a usable droplet the app still gets its web process, and reports why
    // nothing runs
    let droplet = resolve_droplet(ctx, app, app.spec.current_droplet_guid.as_deref());
    let mut existing = processes_of(ctx, namespace, &app.name_any());
    // build (pure)
    let types = build::process_types(droplet.as_deref().ok());
    // apply
    let api: Api<CFProcess> = Api::namespaced(ctx.client.clone(), namespace);
    for process in &existing {
        let labels = build::relationship_labels(app, Some(&process.spec.process_type));
        super::adopt::adopt(&api, process, app, &labels).await?;
    }
    // Matched by type, not name: a kubectl-made process may have any name.
    let missing = |existing: &[Arc<CFProcess>]| -> Vec<&String> {
        types
            .iter()
            .filter(|t| !existing.iter().any(|p| &p.spec.process_type == *t))
            .collect()
    };
    if !missing(&existing).is_empty() {
        // Before creating, ask the API server: a process just made with another name may not be
        // cached yet, and ours would then run beside it. Only apps lacking a process pay this.
        existing = api
            .list(&ListParams::default().fields(&format!("spec.appGuid={}", app.name_any())))
            .await?
            .items
            .into_iter()
            .map(Arc::new)
            .collect();
    }
    for process_type in missing(&existing) {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match api
            .create(
                &params,
                &build::new_process(app, process_type, &ctx.config.app_defaults),
            )
            .await
        {
            Ok(_) => {}
            // Created already; the cache has not caught up.
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    droplet.map(|_| ())
}
