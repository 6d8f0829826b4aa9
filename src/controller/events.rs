//! Kubernetes Events on state transitions: one Event when an object's `Ready` condition flips
//! (or is first set), never on every reconcile, so `kubectl describe` shows history, not noise.

use kube::{
    Resource,
    runtime::events::{Event, EventType},
};

use super::Context;
use crate::crd::{CommonStatus, READY};

/// Publishes an Event when `Ready` changed between `before` and `after`.
pub async fn transition<K>(ctx: &Context, object: &K, before: &CommonStatus, after: &CommonStatus)
where
    K: Resource<DynamicType = ()>,
{
    let was = before
        .condition(READY)
        .map(|c| (c.status.clone(), c.reason.clone()));
    let Some(now) = after.condition(READY) else { return };
    if was.as_ref() == Some(&(now.status.clone(), now.reason.clone())) {
        return;
    }
    let event = Event {
        type_: if now.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: now.reason.clone(),
        note: (!now.message.is_empty()).then(|| now.message.chars().take(1000).collect()),
        action: "Reconcile".to_owned(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        // Events are best effort: a failure to record one must not fail the reconcile.
        tracing::debug!(error = %e, "publishing an event failed");
    }
}
