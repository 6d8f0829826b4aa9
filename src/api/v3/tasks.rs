//! `/v3/tasks` and `/v3/apps/{guid}/tasks`: one-off commands, with cancel. A task is a CFTask
//! the controller numbers (its `sequence_id` within the app) and runs as a Job; cancelling sets
//! `spec.canceled`, and the controller ends it FAILED with "task was cancelled".

use std::{sync::Arc, time::Duration};

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use kube::{ResourceExt, runtime::reflector::Store};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    metadata,
    resource::{self, Caller, CfKind, Cx, to_one},
    timestamps,
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        body::{Guid, MetadataBody, check_name, parse},
        query::Query,
    },
    controller::podspec::{DEFAULT_DISK_MB, DEFAULT_MEMORY_MB},
    crd::{CFApp, CFDroplet, CFProcess, CFTask, CFTaskSpec, TaskState},
};

/// How long creating a task waits for the controller to number it (the cf CLI prints the
/// number it gets back).
const NUMBERING_WAIT: Duration = Duration::from_secs(5);

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/tasks", get(list))
        .route(
            "/v3/tasks/{guid}",
            get(resource::show::<CFTask>).patch(resource::update_metadata::<CFTask>),
        )
        .route("/v3/tasks/{guid}/actions/cancel", post(cancel))
        .route("/v3/tasks/{guid}/cancel", put(cancel))
        .route("/v3/apps/{guid}/tasks", get(app_tasks).post(create))
}

fn state_name(task: &CFTask) -> &'static str {
    let state = task.status.as_ref().and_then(|s| s.state);
    match state {
        Some(TaskState::Succeeded) => "SUCCEEDED",
        Some(TaskState::Failed) => "FAILED",
        // Asked to stop and not yet stopped.
        _ if task.spec.canceled => "CANCELING",
        Some(TaskState::Canceling) => "CANCELING",
        Some(TaskState::Running) => "RUNNING",
        Some(TaskState::Pending) | None => "PENDING",
    }
}

impl CfKind for CFTask {
    const KIND: &'static str = "Task";
    const FILTERS: &'static [&'static str] = &[
        "names",
        "states",
        "app_guids",
        "space_guids",
        "organization_guids",
        "sequence_ids",
    ];

    fn store(caches: &Caches) -> &Store<Self> {
        &caches.tasks
    }

    fn present(&self, cx: &Cx<'_>) -> Value {
        let guid = self.name_any();
        let (created_at, updated_at) = timestamps(&self.metadata);
        let status = self.status.clone().unwrap_or_default();
        let app = &self.spec.app_guid;
        let droplet = status
            .droplet_guid
            .clone()
            .or_else(|| self.spec.droplet_guid.clone());
        let mut cancel = cx.link(&format!("/v3/tasks/{guid}/actions/cancel"));
        cancel["method"] = json!("POST");
        let mut links = json!({
            "self": cx.link(&format!("/v3/tasks/{guid}")),
            "app": cx.link(&format!("/v3/apps/{app}")),
            "cancel": cancel,
        });
        if let Some(d) = &droplet {
            links["droplet"] = cx.link(&format!("/v3/droplets/{d}"));
        }
        json!({
            "guid": guid,
            "sequence_id": status.sequence_id,
            "name": self.spec.display_name,
            "command": self.spec.command,
            "state": state_name(self),
            "memory_in_mb": self.spec.memory_in_mb.unwrap_or(DEFAULT_MEMORY_MB),
            "disk_in_mb": self.spec.disk_in_mb.unwrap_or(DEFAULT_DISK_MB),
            "log_rate_limit_in_bytes_per_second": self.spec.log_rate_limit_in_bytes_per_second.unwrap_or(-1),
            "result": {"failure_reason": status.failure_reason},
            "droplet_guid": droplet,
            "relationships": {"app": to_one(Some(app))},
            "metadata": metadata(&self.metadata),
            "created_at": created_at,
            "updated_at": updated_at,
            "links": links,
        })
    }

    fn filter(&self, key: &str, values: &[String], cx: &Cx<'_>) -> bool {
        let space = self.namespace().unwrap_or_default();
        match key {
            "names" => values.contains(&self.spec.display_name),
            "states" => values.iter().any(|v| v == state_name(self)),
            "app_guids" => values.contains(&self.spec.app_guid),
            "space_guids" => values.contains(&space),
            "organization_guids" => cx.org_of_space(&space).is_some_and(|o| values.contains(&o)),
            "sequence_ids" => self
                .status
                .as_ref()
                .and_then(|s| s.sequence_id)
                .is_some_and(|id| values.iter().any(|v| v.parse::<i64>().ok() == Some(id))),
            _ => true,
        }
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    resource::list::<CFTask>(&state, &caller, raw.as_deref(), "/v3/tasks", |_| true)
}

async fn app_tasks(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<resource::ListBody> {
    let caller = Caller::of(&state, &headers).await?;
    let app = resource::find::<CFApp>(&state, &caller, &guid)?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    let space = app.namespace();
    resource::list_with::<CFTask>(
        &state,
        &caller,
        &q,
        &format!("/v3/apps/{guid}/tasks"),
        |t| t.spec.app_guid == guid && t.namespace() == space,
        &["names", "states", "sequence_ids"],
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    memory_in_mb: Option<i64>,
    #[serde(default)]
    disk_in_mb: Option<i64>,
    #[serde(default)]
    log_rate_limit_in_bytes_per_second: Option<i64>,
    #[serde(default)]
    droplet_guid: Option<String>,
    #[serde(default)]
    template: Option<Template>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Template {
    process: Guid,
}

/// The command a process runs: its own, else the one its droplet declares for its type.
fn process_command(process: &CFProcess, droplet: &CFDroplet) -> Option<String> {
    let declared = || {
        let status = droplet.status.as_ref()?;
        status.process_types.get(&process.spec.process_type).cloned()
    };
    process
        .spec
        .command
        .clone()
        .or_else(declared)
        .or_else(|| {
            droplet
                .spec
                .process_types
                .get(&process.spec.process_type)
                .cloned()
        })
        .filter(|c| !c.trim().is_empty())
}

/// The droplet a new task runs: the one named (404 when it is not the app's), else the app's
/// current one (422 in the words the cf CLI recognises).
fn task_droplet(caches: &Caches, app: &CFApp, named: Option<&str>) -> CfResult<Arc<CFDroplet>> {
    let of_app = |guid: &str| {
        resource::lookup::<CFDroplet>(caches, guid)
            .filter(|d| d.spec.app_guid == app.name_any() && d.namespace() == app.namespace())
    };
    match named {
        Some(guid) => of_app(guid).ok_or(CfError::NotFound("Droplet")),
        None => app
            .spec
            .current_droplet_guid
            .as_deref()
            .and_then(of_app)
            .ok_or_else(|| {
                CfError::Unprocessable("Task must have a droplet. Assign current droplet to app.".into())
            }),
    }
}

/// The app's process of `type_`, from the cache.
fn app_process(caches: &Caches, app: &CFApp, type_: &str) -> Option<Arc<CFProcess>> {
    caches.processes.find(|p| {
        p.spec.app_guid == app.name_any() && p.spec.process_type == type_ && p.namespace() == app.namespace()
    })
}

/// A task name when none is given: eight hex digits, as CC makes.
fn generated_name() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

async fn create(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(app_guid): Path<String>,
    body: Bytes,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    for (value, field) in [
        (body.memory_in_mb, "Memory in mb"),
        (body.disk_in_mb, "Disk in mb"),
    ] {
        if value.is_some_and(|v| v < 1) {
            return Err(CfError::Unprocessable(format!("{field} must be greater than 0")));
        }
    }
    if body.log_rate_limit_in_bytes_per_second.is_some_and(|v| v < -1) {
        return Err(CfError::Unprocessable(
            "Log rate limit in bytes per second must be greater than or equal to -1".into(),
        ));
    }
    if let Some(name) = &body.name {
        check_name(name)?;
    }
    let app = resource::find::<CFApp>(&state, &caller, &app_guid)?;
    let droplet = task_droplet(&state.caches, &app, body.droplet_guid.as_deref())?;
    let template = match &body.template {
        Some(t) => Some(
            resource::lookup::<CFProcess>(&state.caches, &t.process.guid)
                .filter(|p| p.spec.app_guid == app_guid && p.namespace() == app.namespace())
                .ok_or_else(|| {
                    CfError::Unprocessable(format!(
                        "Template process with guid '{}' not found",
                        t.process.guid
                    ))
                })?,
        ),
        None => None,
    };
    // The command given, else the template's, else the app's task (or web) process's.
    let command = body
        .command
        .clone()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| template.as_ref().and_then(|p| process_command(p, &droplet)))
        .or_else(|| {
            if template.is_some() {
                return None;
            }
            ["task", "web"]
                .iter()
                .filter_map(|t| app_process(&state.caches, &app, t))
                .find_map(|p| process_command(&p, &droplet))
        })
        .ok_or_else(|| CfError::Unprocessable("Command can't be blank".into()))?;
    let guid = resource::new_guid();
    let defaults = state.config.app_defaults;
    let mut task = CFTask::new(
        &guid,
        CFTaskSpec {
            app_guid: app_guid.clone(),
            display_name: body.name.clone().unwrap_or_else(generated_name),
            command,
            droplet_guid: Some(droplet.name_any()),
            // Explicit, so the task shows what it runs with whatever the defaults become.
            memory_in_mb: body
                .memory_in_mb
                .or_else(|| template.as_ref().and_then(|p| p.spec.memory_in_mb))
                .or(Some(defaults.memory_mb)),
            disk_in_mb: body
                .disk_in_mb
                .or_else(|| template.as_ref().and_then(|p| p.spec.disk_in_mb))
                .or(Some(defaults.disk_mb)),
            log_rate_limit_in_bytes_per_second: body
                .log_rate_limit_in_bytes_per_second
                .or_else(|| {
                    template
                        .as_ref()
                        .and_then(|p| p.spec.log_rate_limit_in_bytes_per_second)
                })
                .or(Some(defaults.log_rate_limit)),
            canceled: false,
        },
    );
    task.metadata.namespace = app.namespace();
    if let Some(m) = &body.metadata {
        m.apply_to(&mut task.metadata);
    }
    let created = resource::create(&state, &caller, &task).await?;
    // The controller numbers the task at once (its droplet exists); answer with the number.
    let store = &state.caches.tasks;
    let numbered = || {
        store
            .find(|t| {
                t.metadata.name.as_deref() == Some(guid.as_str()) && t.namespace() == created.namespace()
            })
            .filter(|t| t.status.as_ref().is_some_and(|s| s.sequence_id.is_some()))
    };
    let deadline = tokio::time::Instant::now() + NUMBERING_WAIT;
    while numbered().is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let shown = numbered().map_or(created, |t| (*t).clone());
    Ok((StatusCode::ACCEPTED, Json(shown.present(&Cx::new(&state)))).into_response())
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let current = resource::find::<CFTask>(&state, &caller, &guid)?;
    let name = state_name(&current);
    if name == "SUCCEEDED" || name == "FAILED" {
        return Err(CfError::Unprocessable(format!(
            "Task state is {name} and therefore cannot be canceled"
        )));
    }
    let updated = if current.spec.canceled {
        (*current).clone()
    } else {
        resource::patch(&state, &caller, &*current, &json!({"spec": {"canceled": true}})).await?
    };
    Ok((StatusCode::ACCEPTED, Json(updated.present(&Cx::new(&state)))).into_response())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use pretty_assertions::assert_eq;

    use super::*;
    use crate::{
        api::v3::packages::testing,
        crd::{CFDropletStatus, CFTaskStatus},
        fixtures,
    };

    #[test]
    fn a_task_presents_as_cc_does() {
        let caches = testing::caches(vec![], vec![], vec![], vec![]);
        let mut task = fixtures::task("t-1", "app-1", "rake db:migrate");
        task.spec.display_name = "migrate".into();
        task.spec.memory_in_mb = Some(256);
        task.spec.droplet_guid = Some("d-1".into());
        let v = testing::with_cx(&caches, |cx| task.present(cx));
        assert_eq!(v["sequence_id"], Value::Null);
        assert_eq!(v["state"], "PENDING");
        assert_eq!(v["name"], "migrate");
        assert_eq!(v["command"], "rake db:migrate");
        assert_eq!(v["memory_in_mb"], 256);
        assert_eq!(v["disk_in_mb"], 1024);
        assert_eq!(v["log_rate_limit_in_bytes_per_second"], -1);
        assert_eq!(v["result"], json!({"failure_reason": null}));
        assert_eq!(v["droplet_guid"], "d-1");
        assert_eq!(
            v["links"],
            json!({
                "self": {"href": "https://api.example.org/v3/tasks/t-1"},
                "app": {"href": "https://api.example.org/v3/apps/app-1"},
                "cancel": {"href": "https://api.example.org/v3/tasks/t-1/actions/cancel", "method": "POST"},
                "droplet": {"href": "https://api.example.org/v3/droplets/d-1"},
            })
        );
        task.status = Some(CFTaskStatus {
            state: Some(TaskState::Running),
            sequence_id: Some(3),
            ..CFTaskStatus::default()
        });
        assert!(testing::with_cx(&caches, |cx| task.filter(
            "sequence_ids",
            &["1".into(), "3".into()],
            cx
        )));
        assert!(!testing::with_cx(&caches, |cx| task.filter(
            "sequence_ids",
            &["2".into()],
            cx
        )));
        task.spec.canceled = true;
        assert_eq!(state_name(&task), "CANCELING");
        task.status = Some(CFTaskStatus {
            state: Some(TaskState::Failed),
            sequence_id: Some(3),
            failure_reason: Some("task was cancelled".into()),
            ..CFTaskStatus::default()
        });
        let v = testing::with_cx(&caches, |cx| task.present(cx));
        assert_eq!(v["state"], "FAILED");
        assert_eq!(v["sequence_id"], 3);
        assert_eq!(v["result"]["failure_reason"], "task was cancelled");
    }

    #[test]
    fn the_droplet_and_command_of_a_new_task() {
        let app = fixtures::app("app-1", "web").droplet("d-1");
        let mut droplet = fixtures::droplet("d-1", "app-1", "busybox");
        droplet.status = Some(CFDropletStatus {
            process_types: [
                ("web".to_owned(), String::new()),
                ("task".to_owned(), "bin/run".to_owned()),
            ]
            .into(),
            ..CFDropletStatus::default()
        });
        let other = fixtures::droplet("d-9", "app-2", "busybox");
        let caches = testing::caches(vec![], vec![], vec![], vec![droplet.clone(), other]);
        assert_eq!(task_droplet(&caches, &app, None).unwrap().name_any(), "d-1");
        assert!(matches!(
            task_droplet(&caches, &app, Some("d-9")),
            Err(CfError::NotFound("Droplet"))
        ));
        let bare = fixtures::app("app-1", "web");
        assert_eq!(
            task_droplet(&caches, &bare, None).unwrap_err().to_string(),
            "Task must have a droplet. Assign current droplet to app."
        );
        let web = fixtures::process("p-web", "app-1", "web");
        assert_eq!(process_command(&web, &droplet), None);
        let task = fixtures::process("p-task", "app-1", "task");
        assert_eq!(process_command(&task, &droplet), Some("bin/run".into()));
        let mut custom = fixtures::process("p-web", "app-1", "web");
        custom.spec.command = Some("./serve".into());
        assert_eq!(process_command(&custom, &droplet), Some("./serve".into()));
        assert_eq!(generated_name().len(), 8);
    }
}
