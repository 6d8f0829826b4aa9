//! CFDroplet: resolves what runs. A droplet with an image is STAGED with it, its process types
//! (docker: `web` runs the image's entrypoint), port 8080 and, when it has registry
//! credentials, a `kubernetes.io/dockerconfigjson` Secret `names::image_pull_secret(droplet)`
//! made from the credentials Secret and owned by the droplet. A droplet without an image waits
//! for its build. Droplets are adopted by their app like packages (build-made ones already are).

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{Cached, Context, Error, Result, adopt};
use crate::crd::{CFApp, CFBuild, CFDroplet, CFDropletStatus};

/// Runs the CFDroplet reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<DeserializeGuard<CFDroplet>> = Api::all(ctx.client.clone());
    let (by_secret, by_build, by_app) = (
        ctx.caches.droplets.clone(),
        ctx.caches.droplets.clone(),
        ctx.caches.droplets.clone(),
    );
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // Every Secret, not only managed ones: credentials Secrets are the user's and unlabelled.
        // A change to one (or to a pull Secret the droplet owns) rebuilds the pull Secret.
        .reconcile_on(ctx.secret_triggers(move |s: &Secret| {
            let name = s.name_any();
            let owner = s
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true) && r.kind == "CFDroplet");
            let owner = owner.map(|r| r.name.clone());
            matching(&by_secret, s.namespace(), |d| {
                owner.as_deref() == Some(d.name_any().as_str())
                    || d.spec.credentials.as_ref().is_some_and(|c| c.name == name)
            })
        }))
        .reconcile_on(ctx.caches.builds.feed.triggers(move |b: &CFBuild| {
            matching(&by_build, b.namespace(), |d| {
                d.spec.image.is_none() && d.spec.build_guid == Some(b.name_any())
            })
        }))
        // A droplet made before its app is adopted once the app appears.
        .reconcile_on(
            ctx.caches.apps.feed.triggers(move |a: &CFApp| {
                matching(&by_app, a.namespace(), |d| d.spec.app_guid == a.name_any())
            }),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFDroplet", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Droplets in `namespace` for which `keep` holds.
fn matching(
    droplets: &Cached<CFDroplet>,
    namespace: Option<String>,
    keep: impl Fn(&CFDroplet) -> bool,
) -> Vec<ObjectRef<DeserializeGuard<CFDroplet>>> {
    droplets
        .in_namespace(namespace.as_deref().unwrap_or_default())
        .iter()
        .filter(|d| keep(d))
        .map(|d| ObjectRef::new(&d.name_any()).within(&d.namespace().unwrap_or_default()))
        .collect()
}

async fn reconcile(object: Arc<DeserializeGuard<CFDroplet>>, ctx: Arc<Context>) -> Result<Action> {
    let droplet = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    if droplet.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let namespace = droplet.namespace().unwrap_or_default();
    let api: Api<CFDroplet> = Api::namespaced(ctx.client.clone(), &namespace);
    // resolve: the app, which adopts the droplet
    let adoption = async {
        let app = adopt::cached_or_live(
            &ctx.client,
            &ctx.caches.apps,
            &namespace,
            &droplet.spec.app_guid,
            |_| true,
        )
        .await?
        .ok_or_else(|| Error::Waiting {
            reason: "AppNotFound",
            message: format!("CFApp {:?} does not exist in this space", droplet.spec.app_guid),
        })?;
        adopt::adopt(&api, droplet, &app, &build::labels(droplet))
            .await
            .map(|_| ())
    }
    .await;
    let staged = stage(droplet, &namespace, &ctx).await;
    // status
    let before = droplet.status.clone().unwrap_or_default();
    let next: CFDropletStatus = build::status(droplet, &staged, &adoption);
    super::apply::status(&api, droplet, droplet.status.as_ref(), next.clone()).await?;
    super::events::transition(&ctx, droplet, &before.common, &next.common).await;
    super::requeue(&ctx, droplet, staged.map(|_| ()).and(adoption))
}

/// Resolves the image and puts the pull Secret in place.
async fn stage(droplet: &CFDroplet, namespace: &str, ctx: &Context) -> Result<build::Outcome> {
    let build_of = droplet
        .spec
        .build_guid
        .as_ref()
        .and_then(|b| ctx.caches.builds.get(&ObjectRef::new(b).within(namespace)));
    let image = match build::source(droplet, build_of.as_deref())? {
        build::Source::Failed { reason, error } => return Ok(build::Outcome::Failed { reason, error }),
        build::Source::Image(image) => image,
    };
    let Some(credentials) = &droplet.spec.credentials else {
        return Ok(build::Outcome::Staged {
            image,
            pull_secret: None,
        });
    };
    // The credentials Secret is the user's (unlabelled, so not cached): read it directly.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = secrets
        .get_opt(&credentials.name)
        .await?
        .ok_or_else(|| Error::Waiting {
            reason: "CredentialsNotFound",
            message: format!(
                "Secret {:?} with the registry credentials does not exist in this space",
                credentials.name
            ),
        })?;
    let (username, password) = build::credentials(&secret)?;
    // build (pure), apply
    let desired = build::pull_secret(droplet, &image, &username, &password);
    let cached = ctx.caches.secrets.get(&ObjectRef::from_obj(&desired));
    super::apply::apply(&secrets, &desired, cached.as_deref()).await?;
    Ok(build::Outcome::Staged {
        image,
        pull_secret: Some(desired.name_any()),
    })
}
