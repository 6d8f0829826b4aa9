//! CFDomain: validated, never materialised. A domain has no children (its routes' Ingresses
//! carry its name), so it needs no finalizer: routes reference domains by GUID and report
//! `Ready=False` while theirs is missing. The reconciler checks a private domain's orgs and the
//! TLS Secret exist, and reports `Ready`.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};

use super::{Context, Error, Result};
use crate::crd::{CFDomain, CFDomainStatus, CFOrg};

type Guarded = DeserializeGuard<CFDomain>;

/// Runs the CFDomain reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let api: Api<Guarded> = Api::all(client.clone());
    let (on_org, on_secret) = (ctx.clone(), ctx.clone());
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // A private domain waits for its org to appear.
        .reconcile_on(ctx.caches.orgs.feed.triggers(move |org: &CFOrg| {
            if org.namespace().as_deref() != Some(on_org.config.root_namespace.as_str()) {
                return Vec::new();
            }
            let org = org.name_any();
            domains_where(&on_org, |d| build::named_orgs(d).contains(&org))
        }))
        .reconcile_on(ctx.every_secret.triggers(move |secret: &Secret| {
            if secret.namespace().as_deref() != Some(on_secret.config.root_namespace.as_str()) {
                return Vec::new();
            }
            let name = secret.name_any();
            domains_where(&on_secret, |d| {
                d.spec.tls_secret_name.as_deref() == Some(name.as_str())
            })
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFDomain", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn domains_where(ctx: &Context, pred: impl Fn(&CFDomain) -> bool) -> Vec<ObjectRef<Guarded>> {
    ctx.caches
        .domains
        .state()
        .iter()
        .filter(|d| pred(d))
        .map(|d| ObjectRef::new(&d.name_any()).within(&d.namespace().unwrap_or_default()))
        .collect()
}

async fn reconcile(object: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    let domain = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    if domain.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    apply(domain, &ctx).await
}

/// Looks up what the domain names. Orgs and user Secrets are outside the caches: read them.
async fn resolve(domain: &CFDomain, ctx: &Context) -> Result<build::Resolved> {
    let root = &ctx.config.root_namespace;
    let in_root_namespace = domain.namespace().as_deref() == Some(root.as_str());
    if !in_root_namespace {
        return Ok(build::Resolved::default());
    }
    let orgs: Api<CFOrg> = Api::namespaced(ctx.client.clone(), root);
    let mut missing_orgs = Vec::new();
    for org in build::named_orgs(domain) {
        if orgs.get_metadata_opt(&org).await?.is_none() {
            missing_orgs.push(org);
        }
    }
    let tls_secret = match &domain.spec.tls_secret_name {
        Some(name) => Some(
            Api::<Secret>::namespaced(ctx.client.clone(), root)
                .get_opt(name)
                .await?,
        ),
        None => None,
    };
    Ok(build::Resolved {
        in_root_namespace,
        missing_orgs,
        tls_secret,
    })
}

async fn apply(domain: &CFDomain, ctx: &Context) -> Result<Action> {
    let outcome = match resolve(domain, ctx).await {
        Ok(resolved) => build::check(domain, &ctx.config.root_namespace, &resolved),
        Err(e) => Err(e),
    };
    let status = domain.status.clone().unwrap_or_default();
    let common = super::ready_status(&status.common, domain.metadata.generation, &outcome, "Valid");
    let next = CFDomainStatus { common };
    let api: Api<CFDomain> = Api::namespaced(ctx.client.clone(), &domain.namespace().unwrap_or_default());
    super::apply::status(&api, domain, domain.status.as_ref(), next.clone()).await?;
    super::events::transition(ctx, domain, &status.common, &next.common).await;
    super::requeue(ctx, domain, outcome)
}
