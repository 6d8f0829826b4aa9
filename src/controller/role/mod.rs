//! CFRole → RoleBindings (and ClusterRoleBindings for global roles) to the ClusterRoles in
//! [`cluster_roles`]. Bindings land wherever CF semantics say a role reaches: the role's own
//! namespace, read access to the org (and space) objects above it, and for org managers every
//! space of the org. A finalizer removes bindings in other namespaces, which owner references
//! cannot reach.

pub mod build;
pub mod cluster_roles;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::{
    core::v1::Namespace,
    rbac::v1::{ClusterRoleBinding, RoleBinding},
};
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::Action,
        finalizer::{Event, finalizer},
        reflector::{ObjectRef, Store},
        watcher,
    },
};

use super::{Context, Error, Result};
use crate::{
    crd::{CFRole, CFRoleStatus, RoleScope},
    labels::{ORG_GUID, OWNER, ROLE_FINALIZER, SPACE_GUID},
};

/// Runs the CFRole reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<DeserializeGuard<CFRole>> = Api::all(ctx.client.clone());
    let controller =
        Controller::new(api, watcher::Config::default()).with_config(super::runtime_config(&ctx));
    let roles: Store<DeserializeGuard<CFRole>> = controller.store();
    // A new space namespace must receive the org roles that reach into it.
    controller
        .reconcile_on(ctx.caches.namespaces.feed.triggers(move |ns: &Namespace| {
            let org = ns.labels().get(ORG_GUID).cloned();
            let is_space = ns.labels().contains_key(SPACE_GUID);
            roles
                .state()
                .into_iter()
                .filter(|r| is_space && org.is_some() && r.namespace() == org)
                .map(|r| ObjectRef::from_obj(&*r))
                .collect::<Vec<_>>()
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFRole", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(object: Arc<DeserializeGuard<CFRole>>, ctx: Arc<Context>) -> Result<Action> {
    let role = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let api: Api<CFRole> = Api::namespaced(ctx.client.clone(), &role.namespace().unwrap_or_default());
    finalizer(&api, ROLE_FINALIZER, Arc::new(role.clone()), |event| async {
        match event {
            Event::Apply(role) => apply(&role, &ctx).await,
            Event::Cleanup(role) => cleanup(&role, &ctx).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn namespace_labels(ctx: &Context, name: &str) -> Option<std::collections::BTreeMap<String, String>> {
    ctx.caches
        .namespaces
        .get(&ObjectRef::new(name))
        .map(|ns| ns.labels().clone())
}

/// Where the role sits in the org/space tree, from the namespace cache.
fn resolve(role: &CFRole, ctx: &Context) -> Result<build::Resolved> {
    let namespace = role.namespace().unwrap_or_default();
    let scope = role.spec.type_.scope();
    let wrong = |what: &str| Error::Invalid {
        reason: "WrongNamespace",
        message: format!(
            "a {} role lives in {what}, not in namespace {namespace:?}",
            role.spec.type_.as_str()
        ),
    };
    match scope {
        RoleScope::Global if namespace == ctx.config.root_namespace => Ok(build::Resolved::default()),
        RoleScope::Global => Err(wrong("the root namespace")),
        RoleScope::Organization => {
            let labels = namespace_labels(ctx, &namespace).ok_or_else(|| Error::Waiting {
                reason: "OrgNotReady",
                message: format!("namespace {namespace:?} does not exist yet"),
            })?;
            if labels.get(ORG_GUID) != Some(&namespace) || labels.contains_key(SPACE_GUID) {
                return Err(wrong("an org namespace"));
            }
            let mut org_spaces: Vec<String> = ctx
                .caches
                .namespaces
                .state()
                .iter()
                .filter(|ns| {
                    ns.labels().get(ORG_GUID) == Some(&namespace) && ns.labels().contains_key(SPACE_GUID)
                })
                .filter(|ns| ns.metadata.deletion_timestamp.is_none())
                .map(|ns| ns.name_any())
                .collect();
            org_spaces.sort();
            Ok(build::Resolved {
                org: Some(namespace),
                space: None,
                org_spaces,
            })
        }
        RoleScope::Space => {
            let labels = namespace_labels(ctx, &namespace).ok_or_else(|| Error::Waiting {
                reason: "SpaceNotReady",
                message: format!("namespace {namespace:?} does not exist yet"),
            })?;
            if labels.get(SPACE_GUID) != Some(&namespace) {
                return Err(wrong("a space namespace"));
            }
            Ok(build::Resolved {
                org: labels.get(ORG_GUID).cloned(),
                space: Some(namespace),
                org_spaces: vec![],
            })
        }
    }
}

fn owned<K: kube::Resource<DynamicType = ()> + Clone>(store: &Store<K>, owner: &str) -> Vec<Arc<K>> {
    store
        .state()
        .into_iter()
        .filter(|o| o.labels().get(OWNER).map(String::as_str) == Some(owner))
        .collect()
}

async fn apply(role: &CFRole, ctx: &Context) -> Result<Action> {
    let outcome = async {
        // resolve
        let resolved = resolve(role, ctx)?;
        // build (pure)
        let desired = build::desired(
            role,
            &resolved,
            &ctx.config.root_namespace,
            &ctx.config.user_prefix,
        );
        // apply, then prune what is no longer desired
        let owner = build::owner(role);
        let existing_rb = owned(&ctx.caches.role_bindings, &owner);
        for rb in &desired.role_bindings {
            let cached = existing_rb
                .iter()
                .find(|c| c.namespace() == rb.namespace() && c.name_any() == rb.name_any());
            super::apply::apply(&rb_api(ctx, rb.namespace().as_deref()), rb, cached.map(|c| &**c)).await?;
        }
        let stale: Vec<Arc<RoleBinding>> = existing_rb
            .into_iter()
            .filter(|c| {
                !desired
                    .role_bindings
                    .iter()
                    .any(|d| d.namespace() == c.namespace() && d.name_any() == c.name_any())
            })
            .collect();
        super::apply::prune(|ns| rb_api(ctx, ns), &stale, &[]).await?;
        let existing_crb = owned(&ctx.caches.cluster_role_bindings, &owner);
        for crb in &desired.cluster_role_bindings {
            let cached = existing_crb.iter().find(|c| c.name_any() == crb.name_any());
            super::apply::apply(&Api::all(ctx.client.clone()), crb, cached.map(|c| &**c)).await?;
        }
        let keep: Vec<String> = desired
            .cluster_role_bindings
            .iter()
            .map(ResourceExt::name_any)
            .collect();
        super::apply::prune::<ClusterRoleBinding>(|_| Api::all(ctx.client.clone()), &existing_crb, &keep)
            .await?;
        Ok(())
    }
    .await;
    // status
    let status = role.status.clone().unwrap_or_default();
    let common = super::ready_status(
        &status.common,
        role.metadata.generation,
        &outcome,
        "BindingsReady",
    );
    let api: Api<CFRole> = Api::namespaced(ctx.client.clone(), &role.namespace().unwrap_or_default());
    let next = CFRoleStatus { common };
    super::apply::status(&api, role, role.status.as_ref(), next.clone()).await?;
    super::events::transition(ctx, role, &status.common, &next.common).await;
    super::requeue(ctx, role, outcome)
}

async fn cleanup(role: &CFRole, ctx: &Context) -> Result<Action> {
    let owner = build::owner(role);
    super::apply::prune(
        |ns| rb_api(ctx, ns),
        &owned(&ctx.caches.role_bindings, &owner),
        &[],
    )
    .await?;
    super::apply::prune(
        |_| Api::all(ctx.client.clone()),
        &owned(&ctx.caches.cluster_role_bindings, &owner),
        &[],
    )
    .await?;
    Ok(Action::await_change())
}

fn rb_api(ctx: &Context, namespace: Option<&str>) -> Api<RoleBinding> {
    Api::namespaced(ctx.client.clone(), namespace.unwrap_or_default())
}
