//! CFSpace → Namespace. The space lives in its org's namespace; its own namespace is named by
//! its GUID and labelled with both GUIDs. A finalizer deletes the namespace (and every app,
//! route and service in it) before the CFSpace goes away.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::Role;
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::Action,
        finalizer::{Event, finalizer},
        reflector::ObjectRef,
        watcher,
    },
};

use super::{Context, Error, Result, namespaces, unique};
use crate::{
    crd::{CFSpace, CFSpaceStatus},
    labels::{ORG_GUID, SPACE_FINALIZER},
};

/// Runs the CFSpace reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<DeserializeGuard<CFSpace>> = Api::all(ctx.client.clone());
    let on_space = ctx.clone();
    Controller::new(api.clone(), watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // The owned Namespace changing (or finishing deletion) wakes its owner at once.
        .reconcile_on(
            ctx.caches
                .namespaces
                .feed
                .triggers(|ns: &k8s_openapi::api::core::v1::Namespace| namespaces::owner_ref("CFSpace", ns)),
        )
        // Another space in the org taking, dropping or renaming a name can flip this one's
        // UniqueName.
        .reconcile_on(ctx.caches.spaces.feed.triggers(move |space: &CFSpace| {
            unique::siblings(space, &on_space.caches.spaces, &on_space.woken)
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFSpace", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(object: Arc<DeserializeGuard<CFSpace>>, ctx: Arc<Context>) -> Result<Action> {
    let space = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let api: Api<CFSpace> = Api::namespaced(ctx.client.clone(), &space.namespace().unwrap_or_default());
    finalizer(&api, SPACE_FINALIZER, Arc::new(space.clone()), |event| async {
        match event {
            Event::Apply(space) => apply(&space, &ctx).await,
            Event::Cleanup(space) => namespaces::cleanup(&ctx, &space.name_any()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The org a space belongs to: its namespace, which must be an org's namespace.
pub fn resolve_org(ctx: &Context, namespace: &str) -> Result<String> {
    let ns = ctx.caches.namespaces.get(&ObjectRef::new(namespace));
    match ns.as_ref().and_then(|ns| ns.labels().get(ORG_GUID).cloned()) {
        Some(org) if org == namespace => Ok(org),
        _ => Err(Error::Waiting {
            reason: "OrgNotReady",
            message: format!("namespace {namespace:?} is not the namespace of a ready CFOrg"),
        }),
    }
}

async fn apply(space: &CFSpace, ctx: &Context) -> Result<Action> {
    let namespace = space.namespace().unwrap_or_default();
    let older = unique::resolve(space, &ctx.caches.spaces);
    let outcome = async {
        // resolve
        let org = resolve_org(ctx, &namespace)?;
        // build (pure)
        let desired = build::namespace(space, &org);
        // apply
        let cached = ctx.caches.namespaces.get(&ObjectRef::new(&space.name_any()));
        super::apply::apply(&Api::all(ctx.client.clone()), &desired, cached.as_deref()).await?;
        let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &namespace);
        for role in build::space_roles(space) {
            let cached = ctx.caches.roles.get(&ObjectRef::from_obj(&role));
            super::apply::apply(&roles, &role, cached.as_deref()).await?;
        }
        Ok(())
    }
    .await;
    // status
    let status = space.status.clone().unwrap_or_default();
    let common = super::ready_status(
        &status.common,
        space.metadata.generation,
        &outcome,
        "NamespaceReady",
    );
    let api: Api<CFSpace> = Api::namespaced(ctx.client.clone(), &namespace);
    let next = CFSpaceStatus {
        common: unique::with_condition(common, space, older.as_ref()),
    };
    super::apply::status(&api, space, space.status.as_ref(), next.clone()).await?;
    super::events::transition(ctx, space, &status.common, &next.common).await;
    super::requeue(ctx, space, outcome).map(|action| ctx.woken.settle(space, action))
}
