//! CFServiceInstance: user-provided instances are checked (their credentials Secret exists and
//! holds a JSON object) and report `lastOperation` create/succeeded and `Ready`; managed
//! instances report `Ready=False` reason `NotSupported`. Instances have no children: bindings
//! read the credentials themselves.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, ResourceExt,
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use serde_json::{Map, Value};

use super::{Context, Error, Result, unique};
use crate::crd::{CFServiceInstance, CFServiceInstanceStatus};

type Guarded = DeserializeGuard<CFServiceInstance>;

/// Runs the CFServiceInstance reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let api: Api<Guarded> = Api::all(ctx.client.clone());
    let (on_secret, on_instance) = (ctx.clone(), ctx.clone());
    Controller::new(api.clone(), watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // Credentials Secrets are the user's (unlabelled), so every Secret is watched; the
        // mapper keeps only those an instance names.
        .reconcile_on(ctx.every_secret.triggers(move |secret: &Secret| {
            instances_using(
                &on_secret,
                &secret.namespace().unwrap_or_default(),
                &secret.name_any(),
            )
        }))
        // Another instance in the space taking, dropping or renaming a name can flip this
        // one's UniqueName.
        .reconcile_on(
            ctx.caches
                .service_instances
                .feed
                .triggers(move |instance: &CFServiceInstance| {
                    unique::siblings(
                        instance,
                        &on_instance.caches.service_instances,
                        &on_instance.woken,
                    )
                }),
        )
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFServiceInstance", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// The instances in `namespace` whose credentials live in Secret `secret`.
pub fn instances_using(ctx: &Context, namespace: &str, secret: &str) -> Vec<ObjectRef<Guarded>> {
    ctx.caches
        .service_instances
        .in_namespace(namespace)
        .iter()
        .filter(|i| i.spec.credentials.as_ref().is_some_and(|c| c.name == secret))
        .map(|i| ObjectRef::new(&i.name_any()).within(namespace))
        .collect()
}

/// Reads and parses a user-provided instance's credentials; no Secret named means `{}`.
pub async fn credentials(ctx: &Context, instance: &CFServiceInstance) -> Result<Map<String, Value>> {
    let Some(secret_ref) = &instance.spec.credentials else {
        return Ok(Map::new());
    };
    // The user's Secret carries no kubefoundry label, so it is not in the Secret cache.
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &instance.namespace().unwrap_or_default());
    let secret = secrets
        .get_opt(&secret_ref.name)
        .await?
        .ok_or_else(|| Error::Waiting {
            reason: "CredentialsSecretNotFound",
            message: format!("credentials Secret {:?} does not exist", secret_ref.name),
        })?;
    build::parse_credentials(&secret)
}

async fn reconcile(object: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    let instance = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    if instance.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let older = unique::resolve(instance, &ctx.caches.service_instances);
    let outcome = match build::check(instance) {
        Ok(()) => credentials(&ctx, instance).await.map(|_| ()),
        Err(e) => Err(e),
    };
    let status = instance.status.clone().unwrap_or_default();
    let generation = instance.metadata.generation;
    let common = super::ready_status(&status.common, generation, &outcome, "CredentialsReady");
    let spec_changed = status.common.observed_generation != generation;
    let last_operation = build::last_operation(
        status.last_operation.as_ref(),
        spec_changed,
        &outcome,
        &build::now(),
    );
    let next = CFServiceInstanceStatus {
        common: unique::with_condition(common, instance, older.as_ref()),
        last_operation: Some(last_operation),
    };
    let api: Api<CFServiceInstance> =
        Api::namespaced(ctx.client.clone(), &instance.namespace().unwrap_or_default());
    super::apply::status(&api, instance, instance.status.as_ref(), next.clone()).await?;
    super::events::transition(&ctx, instance, &status.common, &next.common).await;
    super::requeue(&ctx, instance, outcome).map(|action| ctx.woken.settle(instance, action))
}
