//! CFBuild → CFDroplet. A build of a READY docker package creates the droplet
//! `names::droplet_of_build(build)` at once and is STAGED; buildpack and cnb staging is not
//! supported yet, so such a build is FAILED at once with a CF-style error instead of hanging in
//! STAGING. A build waiting for its package or app stays STAGING with `Ready=False` saying why.
//! STAGED and FAILED are final: the spec is immutable, so nothing is ever staged again (a
//! deleted droplet stays deleted). Builds are adopted by their app like packages.

// Every reconciler keeps its pure half in `build`; for the CFBuild reconciler that repeats the name.
#[allow(clippy::module_inception)]
pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{Cached, Context, Error, Result, adopt, names};
use crate::crd::{CFApp, CFBuild, CFDroplet, CFPackage, DropletState};

/// Runs the CFBuild reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<DeserializeGuard<CFBuild>> = Api::all(ctx.client.clone());
    let (by_package, by_app) = (ctx.caches.builds.clone(), ctx.caches.builds.clone());
    // Packages and droplets wake builds from their caches' feeds: the build then reads a cache
    // that already holds the READY package or the STAGED droplet.
    let on_package = ctx.caches.packages.feed.triggers(move |p: &CFPackage| {
        matching(&by_package, p.namespace(), |b| {
            b.spec.package_guid == p.name_any() && !build::is_final(b)
        })
    });
    let on_droplet = ctx.caches.droplets.feed.triggers(|d: &CFDroplet| {
        d.spec
            .build_guid
            .clone()
            .map(|b| ObjectRef::new(&b).within(&d.namespace().unwrap_or_default()))
    });
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // A waiting build stages as soon as its package is READY (or appears) ...
        .reconcile_on(on_package)
        // ... or its app appears; every build of an app is adopted once the app exists.
        .reconcile_on(
            ctx.caches.apps.feed.triggers(move |a: &CFApp| {
                matching(&by_app, a.namespace(), |b| b.spec.app_guid == a.name_any())
            }),
        )
        // ... and reports STAGED once its droplet does.
        .reconcile_on(on_droplet)
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFBuild", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Builds in `namespace` for which `keep` holds.
fn matching(
    builds: &Cached<CFBuild>,
    namespace: Option<String>,
    keep: impl Fn(&CFBuild) -> bool,
) -> Vec<ObjectRef<DeserializeGuard<CFBuild>>> {
    builds
        .in_namespace(namespace.as_deref().unwrap_or_default())
        .iter()
        .filter(|b| keep(b))
        .map(|b| ObjectRef::new(&b.name_any()).within(&b.namespace().unwrap_or_default()))
        .collect()
}

fn in_space<K: kube::Resource<DynamicType = ()>>(name: &str, namespace: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(namespace)
}

async fn reconcile(object: Arc<DeserializeGuard<CFBuild>>, ctx: Arc<Context>) -> Result<Action> {
    let build = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let namespace = build.namespace().unwrap_or_default();
    let api: Api<CFBuild> = Api::namespaced(ctx.client.clone(), &namespace);
    // resolve the app, which adopts the build whatever its state
    let client = &ctx.client;
    let adopted = async {
        let app = adopt::cached_or_live(client, &ctx.caches.apps, &namespace, &build.spec.app_guid, |_| {
            true
        })
        .await?;
        if let Some(app) = &app {
            adopt::adopt(&api, build, app, &build::labels(build)).await?;
        }
        Ok(app)
    }
    .await;
    if build::is_final(build) || build.metadata.deletion_timestamp.is_some() {
        return super::requeue(&ctx, build, adopted.map(|_| ()));
    }
    let outcome = async {
        let app = adopted?;
        // The package as its cache holds it: a package becoming READY wakes the build through
        // the cache's feed, so the cache is never older than that change.
        let package = ctx
            .caches
            .packages
            .get(&in_space(&build.spec.package_guid, &namespace));
        let droplet_name = names::droplet_of_build(&build.name_any());
        let existing = ctx.caches.droplets.get(&in_space(&droplet_name, &namespace));
        // build (pure)
        match build::plan(build, package.as_deref(), app.as_deref(), existing.as_deref())? {
            build::Plan::Fail { reason, error } => Ok(build::Outcome::Failed { reason, error }),
            build::Plan::Stage(droplet) => {
                // apply
                let droplets: Api<CFDroplet> = Api::namespaced(ctx.client.clone(), &namespace);
                super::apply::apply(&droplets, &droplet, existing.as_deref()).await?;
                // STAGED only once the droplet itself says STAGED: the cf CLI assigns the
                // droplet the moment the build is STAGED, and CC refuses a droplet that is not.
                let staged = existing
                    .as_deref()
                    .and_then(|d| d.status.as_ref())
                    .and_then(|s| s.state)
                    == Some(DropletState::Staged);
                if !staged {
                    return Err(Error::Waiting {
                        reason: "DropletStaging",
                        message: format!("CFDroplet {droplet_name:?} is not STAGED yet"),
                    });
                }
                Ok(build::Outcome::Staged {
                    droplet: droplet_name,
                })
            }
        }
    }
    .await;
    // status
    let before = build.status.clone().unwrap_or_default();
    let next = build::status(build, &outcome);
    super::apply::status(&api, build, build.status.as_ref(), next.clone()).await?;
    super::events::transition(&ctx, build, &before.common, &next.common).await;
    super::requeue(&ctx, build, outcome.map(|_| ()))
}
