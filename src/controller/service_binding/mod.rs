//! CFServiceBinding → the binding Secret `names::binding_secret(binding)` (owned by the binding)
//! and, for app bindings, the app's `VCAP_SERVICES` Secret `names::vcap_services(app)` (owned
//! by the CFApp), which lists every app binding of the app and so is recomputed from the
//! binding cache on each change. A finalizer recomputes it without the binding being deleted
//! (deleting it when none remain) and deletes the binding Secret, so unbinding takes effect
//! before the binding disappears.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::{
    Api, Resource, ResourceExt,
    api::DeleteParams,
    core::DeserializeGuard,
    runtime::{
        Controller,
        controller::Action,
        finalizer::{Event, finalizer},
        reflector::ObjectRef,
        watcher,
    },
};

use super::{Context, Error, Result, names, service_instance};
use crate::{
    crd::{BindingType, CFApp, CFServiceBinding, CFServiceBindingStatus, CFServiceInstance},
    labels::{APP_GUID, MANAGED_BY, MANAGED_BY_VALUE, SERVICE_BINDING_FINALIZER},
};

type Guarded = DeserializeGuard<CFServiceBinding>;

/// Runs the CFServiceBinding reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let api: Api<Guarded> = Api::all(client.clone());
    let (on_secret, on_instance, on_app) = (ctx.clone(), ctx.clone(), ctx.clone());
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        // Three Secrets matter: a binding's own Secret, an app's VCAP_SERVICES Secret (any
        // write re-checks all the app's bindings, so two bindings computed from a lagging cache
        // converge), and a user's credentials Secret.
        .reconcile_on(ctx.secret_triggers(move |secret: &Secret| secret_to_bindings(&on_secret, secret)))
        .reconcile_on(
            ctx.caches
                .service_instances
                .feed
                .triggers(move |i: &CFServiceInstance| {
                    let (namespace, name) = (i.namespace().unwrap_or_default(), i.name_any());
                    bindings_where(&on_instance, &namespace, |b| b.spec.service_instance_guid == name)
                }),
        )
        .reconcile_on(ctx.caches.apps.feed.triggers(move |app: &CFApp| {
            let (namespace, name) = (app.namespace().unwrap_or_default(), app.name_any());
            bindings_where(&on_app, &namespace, |b| {
                b.spec.app_guid.as_deref() == Some(name.as_str())
            })
        }))
        .graceful_shutdown_on(shutdown)
        .run(
            super::metrics::instrument("CFServiceBinding", reconcile),
            super::error_policy,
            ctx,
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

fn bindings_where(
    ctx: &Context,
    namespace: &str,
    pred: impl Fn(&CFServiceBinding) -> bool,
) -> Vec<ObjectRef<Guarded>> {
    ctx.caches
        .service_bindings
        .in_namespace(namespace)
        .iter()
        .filter(|b| pred(b))
        .map(|b| ObjectRef::new(&b.name_any()).within(namespace))
        .collect()
}

fn secret_to_bindings(ctx: &Context, secret: &Secret) -> Vec<ObjectRef<Guarded>> {
    let namespace = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let mut refs: Vec<ObjectRef<Guarded>> = secret
        .owner_references()
        .iter()
        .filter(|o| o.kind == "CFServiceBinding")
        .map(|o| ObjectRef::new(&o.name).within(&namespace))
        .collect();
    let labels = secret.labels();
    if labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGED_BY_VALUE)
        && let Some(app) = labels.get(APP_GUID)
        && name == names::vcap_services(app)
    {
        refs.extend(bindings_where(ctx, &namespace, |b| {
            b.spec.app_guid.as_deref() == Some(app.as_str())
        }));
    }
    for instance in service_instance::instances_using(ctx, &namespace, &name) {
        refs.extend(bindings_where(ctx, &namespace, |b| {
            b.spec.service_instance_guid == instance.name
        }));
    }
    refs
}

async fn reconcile(object: Arc<Guarded>, ctx: Arc<Context>) -> Result<Action> {
    let binding = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let api: Api<CFServiceBinding> =
        Api::namespaced(ctx.client.clone(), &binding.namespace().unwrap_or_default());
    finalizer(
        &api,
        SERVICE_BINDING_FINALIZER,
        Arc::new(binding.clone()),
        |event| async {
            match event {
                Event::Apply(binding) => apply(&binding, &ctx).await,
                Event::Cleanup(binding) => cleanup(&binding, &ctx).await,
            }
        },
    )
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

/// The binding's service instance, if kubefoundry can serve it.
fn instance_of(ctx: &Context, binding: &CFServiceBinding) -> Result<Arc<CFServiceInstance>> {
    let namespace = binding.namespace().unwrap_or_default();
    let guid = &binding.spec.service_instance_guid;
    let instance = ctx
        .caches
        .service_instances
        .get(&ObjectRef::new(guid).within(&namespace))
        .ok_or_else(|| Error::Waiting {
            reason: "InstanceNotFound",
            message: format!("no CFServiceInstance {guid:?} in this space"),
        })?;
    service_instance::build::check(&instance)?;
    Ok(instance)
}

/// Writes (or deletes, when no binding remains) the `VCAP_SERVICES` Secret of `app` in
/// `namespace`, from every app binding in the cache except `exclude`, with `include` standing
/// in for its possibly older cached copy. Bindings whose instance or credentials are not
/// usable are left out; they report that themselves.
async fn sync_vcap(
    ctx: &Context,
    namespace: &str,
    app: &str,
    include: Option<&CFServiceBinding>,
    exclude: Option<&str>,
) -> Result<()> {
    let Some(app) = ctx.caches.apps.get(&ObjectRef::new(app).within(namespace)) else {
        // Without the app there is nothing to own the Secret; the app's deletion took it.
        return Ok(());
    };
    let mut bindings: Vec<CFServiceBinding> = ctx
        .caches
        .service_bindings
        .in_namespace(namespace)
        .iter()
        .filter(|b| {
            b.spec.type_ == BindingType::App
                && b.spec.app_guid.as_deref() == Some(app.name_any().as_str())
                && b.meta().deletion_timestamp.is_none()
                && Some(b.name_any().as_str()) != exclude
                && include.is_none_or(|i| i.name_any() != b.name_any())
        })
        .map(|b| (**b).clone())
        .collect();
    bindings.extend(include.cloned());
    let mut entries = Vec::new();
    for binding in &bindings {
        let Ok(instance) = instance_of(ctx, binding) else {
            continue;
        };
        match service_instance::credentials(ctx, &instance).await {
            Ok(credentials) => entries.push(build::vcap_entry(binding, &instance, &credentials)),
            Err(e @ Error::Kube(_)) => return Err(e),
            Err(_) => {}
        }
    }
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let name = names::vcap_services(&app.name_any());
    let cached = ctx.caches.secrets.get(&ObjectRef::new(&name).within(namespace));
    match build::vcap_services(&app, entries) {
        Some(desired) => {
            super::apply::apply(&secrets, &desired, cached.as_deref()).await?;
        }
        None if cached.is_some() => delete(&secrets, &name).await?,
        None => {}
    }
    Ok(())
}

async fn delete(api: &Api<Secret>, name: &str) -> Result<()> {
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn apply(binding: &CFServiceBinding, ctx: &Context) -> Result<Action> {
    let namespace = binding.namespace().unwrap_or_default();
    let secret_name = names::binding_secret(&binding.name_any());
    let mut secret_written = false;
    let outcome = async {
        // resolve
        let instance = instance_of(ctx, binding)?;
        let credentials = service_instance::credentials(ctx, &instance).await?;
        // build
        let desired = build::binding_secret(binding, &credentials)?;
        // apply
        let cached = ctx.caches.secrets.get(&ObjectRef::from_obj(&desired));
        super::apply::apply(
            &Api::namespaced(ctx.client.clone(), &namespace),
            &desired,
            cached.as_deref(),
        )
        .await?;
        secret_written = true;
        if let (BindingType::App, Some(app)) = (binding.spec.type_, &binding.spec.app_guid) {
            if ctx
                .caches
                .apps
                .get(&ObjectRef::new(app).within(&namespace))
                .is_none()
            {
                return Err(Error::Waiting {
                    reason: "AppNotFound",
                    message: format!("no CFApp {app:?} in this space"),
                });
            }
            sync_vcap(ctx, &namespace, app, Some(binding), None).await?;
        }
        Ok(())
    }
    .await;
    // status
    let status = binding.status.clone().unwrap_or_default();
    let generation = binding.metadata.generation;
    let common = super::ready_status(&status.common, generation, &outcome, "BindingReady");
    let spec_changed = status.common.observed_generation != generation;
    let last_operation = service_instance::build::last_operation(
        status.last_operation.as_ref(),
        spec_changed,
        &outcome,
        &service_instance::build::now(),
    );
    let next = CFServiceBindingStatus {
        common,
        // The Secret, once written, stays (with the last good credentials) while a later
        // problem is reported, so apps keep what they had.
        secret_name: (secret_written || status.secret_name.is_some()).then_some(secret_name),
        last_operation: Some(last_operation),
    };
    let api: Api<CFServiceBinding> = Api::namespaced(ctx.client.clone(), &namespace);
    super::apply::status(&api, binding, binding.status.as_ref(), next.clone()).await?;
    super::events::transition(ctx, binding, &status.common, &next.common).await;
    super::requeue(ctx, binding, outcome)
}

async fn cleanup(binding: &CFServiceBinding, ctx: &Context) -> Result<Action> {
    let namespace = binding.namespace().unwrap_or_default();
    if let (BindingType::App, Some(app)) = (binding.spec.type_, &binding.spec.app_guid) {
        sync_vcap(ctx, &namespace, app, None, Some(&binding.name_any())).await?;
    }
    // Owner references would collect it too, but only after the binding is gone; deleting it
    // now makes unbinding visible at once.
    delete(
        &Api::namespaced(ctx.client.clone(), &namespace),
        &names::binding_secret(&binding.name_any()),
    )
    .await?;
    Ok(Action::await_change())
}
