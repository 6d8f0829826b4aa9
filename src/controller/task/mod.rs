//! CFTask → Job `names::job(task)`. On first sight a task gets its droplet (the one named,
//! else the app's current droplet) and a sequence number unique within its app: a counter
//! annotation on the CFApp, advanced under a resourceVersion precondition so concurrent
//! tasks never share a number. Then the Job is created once and the task's state follows it;
//! `spec.canceled` deletes the Job. Finished tasks are never looked at again.

pub mod build;

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::{batch::v1::Job, core::v1::Pod};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams},
    core::DeserializeGuard,
    runtime::{Controller, controller::Action, reflector::ObjectRef, watcher},
};
use serde_json::json;

use super::{
    Caches, Context, Error, Result, names,
    process::{resolve_app, resolve_droplet, resolve_runtime},
    status::{Want, merge},
};
use crate::{
    crd::{CFApp, CFDroplet, CFTask, CFTaskStatus, CommonStatus, TaskState},
    labels::{FIELD_MANAGER, TASK_GUID, TASK_SEQUENCE},
};

/// How often the sequence counter is retried against concurrent writers before backing off.
const SEQUENCE_ATTEMPTS: usize = 10;

/// Tasks of `app` still waiting for a droplet, as reconcile requests.
fn waiting(
    caches: &Caches,
    namespace: Option<String>,
    app: &str,
) -> Vec<ObjectRef<DeserializeGuard<CFTask>>> {
    caches
        .tasks
        .in_namespace(namespace.as_deref().unwrap_or_default())
        .into_iter()
        .filter(|t| t.spec.app_guid == app)
        .filter(|t| t.status.as_ref().and_then(|s| s.sequence_id).is_none())
        .map(|t| ObjectRef::new(&t.name_any()).within(&t.namespace().unwrap_or_default()))
        .collect()
}

/// Runs the CFTask reconciler until `shutdown`.
pub async fn run(ctx: Arc<Context>, shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static) {
    let client = ctx.client.clone();
    let api: Api<DeserializeGuard<CFTask>> = Api::all(client.clone());
    let (c1, c2) = (ctx.caches.clone(), ctx.caches.clone());
    Controller::new(api, watcher::Config::default())
        .with_config(super::runtime_config(&ctx))
        .reconcile_on(ctx.caches.jobs.feed.owners())
        // A task waiting for its droplet starts as soon as the app has a staged one.
        .reconcile_on(
            ctx.caches
                .apps
                .feed
                .triggers(move |a: &CFApp| waiting(&c1, a.namespace(), &a.name_any())),
        )
        .reconcile_on(
            ctx.caches
                .droplets
                .feed
                .triggers(move |d: &CFDroplet| waiting(&c2, d.namespace(), &d.spec.app_guid)),
        )
        // The Pod says when the task runs and how it exited.
        .reconcile_on(ctx.caches.pods.feed.triggers(|p: &Pod| {
            let task = p.labels().get(TASK_GUID).cloned();
            task.zip(p.namespace())
                .map(|(t, ns)| ObjectRef::<DeserializeGuard<CFTask>>::new(&t).within(&ns))
        }))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, super::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn reconcile(object: Arc<DeserializeGuard<CFTask>>, ctx: Arc<Context>) -> Result<Action> {
    let task = object.0.as_ref().map_err(|e| Error::Deserialize(e.to_string()))?;
    let current = task.status.clone().unwrap_or_default();
    // Finished tasks keep their status and cost nothing from now on.
    if task.meta().deletion_timestamp.is_some() || build::finished(current.state) {
        return Ok(Action::await_change());
    }
    let namespace = task.namespace().unwrap_or_default();
    let api: Api<CFTask> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut next = current.clone();
    let outcome = progress(task, &ctx, &api, &namespace, &mut next).await;
    let status = status(task, &current, next, &outcome);
    let finished = build::finished(status.state);
    super::apply::status(&api, task, task.status.as_ref(), status).await?;
    if finished {
        return Ok(Action::await_change());
    }
    super::requeue(&ctx, task, outcome)
}

/// The status to write: the progressed fields, `Ready` from the outcome, and `Succeeded`
/// once the task is finished.
fn status(task: &CFTask, current: &CFTaskStatus, next: CFTaskStatus, outcome: &Result<()>) -> CFTaskStatus {
    let generation = task.metadata.generation;
    let common = super::ready_status(&current.common, generation, outcome, "JobCreated");
    let conditions = match next.state {
        Some(TaskState::Succeeded) => {
            let want = Want {
                type_: "Succeeded",
                ok: true,
                reason: "Completed",
                message: String::new(),
            };
            merge(&common.conditions, &[want], generation)
        }
        Some(TaskState::Failed) => {
            let message = next.failure_reason.clone().unwrap_or_default();
            let reason = if task.spec.canceled { "Cancelled" } else { "Failed" };
            merge(
                &common.conditions,
                &[Want {
                    type_: "Succeeded",
                    ok: false,
                    reason,
                    message,
                }],
                generation,
            )
        }
        _ => common.conditions,
    };
    CFTaskStatus {
        common: CommonStatus {
            observed_generation: generation,
            conditions,
        },
        ..next
    }
}

/// Moves the task one step: cancel, initialise (droplet and sequence number), create the
/// Job, or read its state back. `next` holds whatever was decided, even on error.
async fn progress(
    task: &CFTask,
    ctx: &Context,
    api: &Api<CFTask>,
    namespace: &str,
    next: &mut CFTaskStatus,
) -> Result<()> {
    let job_name = names::job(&task.name_any());
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), namespace);
    if task.spec.canceled {
        match jobs.delete(&job_name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        next.state = Some(TaskState::Failed);
        next.failure_reason = Some(build::CANCELLED.to_owned());
        return Ok(());
    }
    // resolve
    let app = resolve_app(ctx, namespace, &task.spec.app_guid)?;
    if next.sequence_id.is_none() {
        initialise(task, ctx, api, &app, next).await?;
    }
    super::adopt::adopt(
        api,
        task,
        &app,
        &super::app::build::relationship_labels(&app, None),
    )
    .await?;
    // The Job and Pod from the caches: their changes wake us through the caches' feeds, so a
    // RUNNING or an exit is never missed. A Job created by an earlier reconcile but not cached
    // yet is created again, a harmless 409.
    let Some(job) = ctx.caches.jobs.get(&ObjectRef::new(&job_name).within(namespace)) else {
        if next.state == Some(TaskState::Running) {
            next.state = Some(TaskState::Failed);
            next.failure_reason = Some("the task's Job was deleted".to_owned());
            return Ok(());
        }
        let droplet = resolve_droplet(ctx, &app, next.droplet_guid.as_deref())?;
        // build (pure)
        let desired = build::job(
            task,
            &resolve_runtime(ctx, &app, &droplet),
            &ctx.config.app_defaults,
        );
        // apply: create once; a Job's template cannot change anyway
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_owned()),
            ..PostParams::default()
        };
        match jobs.create(&params, &desired).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        next.state = Some(TaskState::Pending);
        return Ok(());
    };
    let pods = super::pods_labelled(&ctx.caches, namespace, &[(TASK_GUID, &task.name_any())]);
    let pods: Vec<&Pod> = pods.iter().map(AsRef::as_ref).collect();
    let (state, failure) = build::observe(&job, &pods);
    next.state = Some(state);
    next.failure_reason = failure;
    Ok(())
}

/// Records the task's droplet and sequence number, once. The droplet must be staged first,
/// so a number is only spent on a task that can run.
async fn initialise(
    task: &CFTask,
    ctx: &Context,
    api: &Api<CFTask>,
    app: &CFApp,
    next: &mut CFTaskStatus,
) -> Result<()> {
    let guid = task
        .spec
        .droplet_guid
        .clone()
        .or_else(|| app.spec.current_droplet_guid.clone());
    let droplet = resolve_droplet(ctx, app, guid.as_deref())?;
    // The cached task may predate our own status write; only the server knows for sure.
    let fresh = api.get_status(&task.name_any()).await?;
    if let Some(recorded) = fresh.status.filter(|s| s.sequence_id.is_some()) {
        next.sequence_id = recorded.sequence_id;
        next.droplet_guid = recorded.droplet_guid;
        next.state = recorded.state.or(next.state);
        return Ok(());
    }
    let sequence = next_sequence(ctx, app).await?;
    next.sequence_id = Some(sequence);
    next.droplet_guid = Some(droplet.name_any());
    next.state = Some(TaskState::Pending);
    // Recorded at once, so a later failure cannot make the task draw a second number.
    let recorded = status(
        task,
        &task.status.clone().unwrap_or_default(),
        next.clone(),
        &Ok(()),
    );
    super::apply::status(api, task, task.status.as_ref(), recorded).await?;
    Ok(())
}

/// Takes the app's next task number: read the counter annotation, write it back plus one
/// with the read resourceVersion as a precondition, and retry when another writer won.
async fn next_sequence(ctx: &Context, app: &CFApp) -> Result<i64> {
    let apps: Api<CFApp> = Api::namespaced(ctx.client.clone(), &app.namespace().unwrap_or_default());
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    for _ in 0..SEQUENCE_ATTEMPTS {
        let current = apps.get(&app.name_any()).await?;
        let last = current
            .annotations()
            .get(TASK_SEQUENCE)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let patch = json!({
            "metadata": {
                "resourceVersion": current.resource_version(),
                "annotations": {TASK_SEQUENCE: (last + 1).to_string()},
            },
        });
        match apps.patch(&app.name_any(), &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(last + 1),
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Waiting {
        reason: "SequenceContended",
        message: format!(
            "the task counter of app {} kept changing; retrying",
            app.name_any()
        ),
    })
}
