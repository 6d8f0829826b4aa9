//! CFPackage: a docker package is READY as soon as it exists; a bits package is AWAITING_UPLOAD
//! until the API stores its bits, and whatever state the API sets is left alone. Every package is
//! adopted by its CFApp (owner reference and app label, see [`super::adopt`]) so deleting the app
//! deletes it, as in Korifi.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use kube::{
    Api, Resource, ResourceExt,
    api::{Patch, PatchParams},
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{Cached, Context, Error, Result, adopt};
use crate::{
    crd::{CFApp, CFPackage, CFPackageStatus},
    labels::FIELD_MANAGER,
};

/// Runs the CFPackage reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<DeserializeGuard<CFPackage>> = Api::all(ctx.client.clone());
    let packages = ctx.caches.packages.clone();
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // A package applied before its app is adopted as soon as the app appears.
        .reconcile_on(
            ctx.caches
                .apps
                .feed
                .triggers(move |app: &CFApp| of_app(&packages, app)),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFPackage", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The packages of `app`.
fn of_app(packages: &Cached<CFPackage>, app: &CFApp) -> Vec<ObjectRef<DeserializeGuard<CFPackage>>> {
    packages
        .in_namespace(&app.namespace().unwrap_or_default())
        .iter()
        .filter(|p| p.spec.app_guid == app.name_any())
        .map(|p| ObjectRef::new(&p.name_any()).within(&p.namespace().unwrap_or_default()))
        .collect()
}

async fn reconcile(object: Arc<DeserializeGuard<CFPackage>>, ctx: Arc<Context>) -> Result<Action> {
    let package = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let namespace = package.namespace().unwrap_or_default();
    let api: Api<CFPackage> = Api::namespaced(ctx.client.clone(), &namespace);
    // resolve, then adopt into the app
    let adopted = async {
        let app = adopt::cached_or_live(
            &ctx.client,
            &ctx.caches.apps,
            &namespace,
            &package.spec.app_guid,
            |_| true,
        )
        .await?
        .ok_or_else(|| Error::Waiting {
            reason: "AppNotFound",
            message: format!("CFApp {:?} does not exist in this space", package.spec.app_guid),
        })?;
        adopt::adopt(&api, package, &app, &build::labels(package)).await
    }
    .await;
    // The freshest view: the adoption's answer when it wrote, for its resourceVersion.
    let (fresh, outcome) = match adopted {
        Ok(Some(written)) => (written, Ok(())),
        Ok(None) => (package.clone(), Ok(())),
        Err(e) => (package.clone(), Err(e)),
    };
    // build (pure), then status
    let next = build::status(&fresh, &outcome);
    write_status(&api, &fresh, next.clone()).await?;
    let before = fresh.status.clone().unwrap_or_default();
    super::events::transition(&ctx, &fresh, &before.common, &next.common).await;
    // Upload states are waited out by watching the package, not by retrying; only a missing app
    // (or a failed write) retries.
    super::requeue(&ctx, &fresh, outcome)
}

/// Writes the status unless unchanged, on the condition that the package is still the version
/// it was computed from: the API writes this status too (upload states, checksum), and a
/// status computed before its write must not undo it. A conflict is retried with a fresh view.
async fn write_status(api: &Api<CFPackage>, package: &CFPackage, next: CFPackageStatus) -> Result<()> {
    if package.status.as_ref() == Some(&next) {
        return Ok(());
    }
    let body = serde_json::json!({
        "apiVersion": CFPackage::api_version(&()),
        "kind": CFPackage::kind(&()),
        "metadata": {"name": package.name_any(), "resourceVersion": package.resource_version()},
        "status": next,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(&package.name_any(), &params, &Patch::Apply(&body))
        .await?;
    Ok(())
}
