//! CFOrg → Namespace. The org's namespace is named by its GUID and labelled with the display
//! name; a finalizer deletes it (and so every space beneath) before the CFOrg goes away,
//! because a namespaced object cannot own a Namespace.

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
    crd::{CFOrg, CFOrgStatus},
    labels::ORG_FINALIZER,
};

/// Runs the CFOrg reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<DeserializeGuard<CFOrg>> = Api::all(ctx.client.clone());
    let on_org = ctx.clone();
    Controller::new(api.clone(), watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // The owned Namespace changing (or finishing deletion) wakes its owner at once.
        .reconcile_on(
            ctx.caches
                .namespaces
                .feed
                .triggers(|ns: &k8s_openapi::api::core::v1::Namespace| namespaces::owner_ref("CFOrg", ns)),
        )
        // Another org taking, dropping or renaming a name can flip this one's UniqueName.
        .reconcile_on(
            ctx.caches
                .orgs
                .feed
                .triggers(move |org: &CFOrg| unique::siblings(org, &on_org.caches.orgs, &on_org.woken)),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFOrg", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(object: Arc<DeserializeGuard<CFOrg>>, ctx: Arc<Context>) -> Result<Action> {
    let org = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let api: Api<CFOrg> = Api::namespaced(ctx.client.clone(), &org.namespace().unwrap_or_default());
    finalizer(&api, ORG_FINALIZER, Arc::new(org.clone()), |event| async {
        match event {
            Event::Apply(org) => apply(&org, &ctx).await,
            Event::Cleanup(org) => namespaces::cleanup(&ctx, &org.name_any()).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

async fn apply(org: &CFOrg, ctx: &Context) -> Result<Action> {
    let older = unique::resolve(org, &ctx.caches.orgs);
    // resolve: an org belongs in the root namespace, nowhere else
    let outcome = if org.namespace().as_deref() == Some(ctx.config.root_namespace.as_str()) {
        // build (pure)
        let desired = build::namespace(org);
        // apply
        let cached = ctx.caches.namespaces.get(&ObjectRef::new(&org.name_any()));
        let reader = build::reader_role(org);
        let cached_reader = ctx.caches.roles.get(&ObjectRef::from_obj(&reader));
        let applied = super::apply::apply(&Api::all(ctx.client.clone()), &desired, cached.as_deref()).await;
        match applied {
            Ok(_) => {
                let roles: Api<Role> = Api::namespaced(ctx.client.clone(), &ctx.config.root_namespace);
                super::apply::apply(&roles, &reader, cached_reader.as_deref())
                    .await
                    .map(|_| ())
            }
            Err(e) => Err(e),
        }
    } else {
        Err(Error::Invalid {
            reason: "WrongNamespace",
            message: format!(
                "CFOrgs live in the root namespace {:?}",
                ctx.config.root_namespace
            ),
        })
    };
    // status
    let status = org.status.clone().unwrap_or_default();
    let common = super::ready_status(
        &status.common,
        org.metadata.generation,
        &outcome,
        "NamespaceReady",
    );
    let next = CFOrgStatus {
        common: unique::with_condition(common, org, older.as_ref()),
    };
    super::apply::status(&api_of(ctx, org), org, org.status.as_ref(), next.clone()).await?;
    super::events::transition(ctx, org, &status.common, &next.common).await;
    super::requeue(ctx, org, outcome).map(|action| ctx.woken.settle(org, action))
}

fn api_of(ctx: &Context, org: &CFOrg) -> Api<CFOrg> {
    Api::namespaced(ctx.client.clone(), &org.namespace().unwrap_or_default())
}
