//! `/v3/deployments`: rolling restarts as the cf CLI drives them.
//!
//! There is no deployment CRD. A deployment is a short record kept in the annotation
//! [`RECORDS`] on its CFApp (a JSON list, newest last, at most [`KEEP`] entries): its GUID,
//! creation time, the droplet it rolls to and the one it replaced, and how it ended when that
//! is not derivable any more. Creating one writes the record together with what it does (the
//! current droplet, a fresh `restartedAt`, desired state STARTED) in one optimistic-locked
//! patch, so the record exists exactly when the roll was asked for, and survives restarts of
//! the façade like any CFApp field.
//!
//! The status of the newest record is derived from the web process's Pods: `ACTIVE`
//! (`DEPLOYING`, or `CANCELING` after a cancel) while some live Pod still runs another droplet
//! or `restartedAt` than the app's, or fewer new Pods are ready than the process wants;
//! `FINALIZED` (`DEPLOYED` or `CANCELED`) once the roll is through. When a newer deployment is
//! created, the previous newest's outcome (`DEPLOYED`, or `SUPERSEDED` if still rolling) is
//! written into its record, since nothing observable could tell afterwards.

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use kube::ResourceExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    apps::{check_droplet, now_precise, wait_for_droplet},
    processes::{InstanceState, ScaleBody, pod_state, pods, scale_process},
    resource::{self, Caller, CfKind, Cx, to_one},
};
use crate::{
    api::{
        ApiState, Caches, CfError, CfResult,
        body::{MetadataBody, ToOne, parse},
        pagination::{PageParams, order, page},
        query::{Query, timestamp_filter},
    },
    crd::{AppState, CFApp, CFProcess},
    labels::{DROPLET_GUID, RESTARTED_AT},
};

/// The CFApp annotation holding the app's deployment records.
pub const RECORDS: &str = "kubefoundry.dev/deployments";
/// How many records an app keeps.
pub const KEEP: usize = 10;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v3/deployments", get(list).post(create))
        .route("/v3/deployments/{guid}", get(show).patch(update))
        .route("/v3/deployments/{guid}/actions/cancel", post(cancel))
}

/// One deployment, as kept on its app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    /// The deployment GUID.
    pub guid: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
    /// When it last changed (RFC 3339).
    pub updated_at: String,
    /// The droplet it deploys.
    pub droplet: Option<String>,
    /// The droplet the app ran before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_droplet: Option<String>,
    /// `max_in_flight` as asked.
    #[serde(default = "one")]
    pub max_in_flight: i64,
    /// Set when it was cancelled.
    #[serde(default)]
    pub canceled: bool,
    /// How it ended, once a newer deployment replaced it: `DEPLOYED`, `SUPERSEDED` or `CANCELED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_reason: Option<String>,
}

fn one() -> i64 {
    1
}

/// An app's records (oldest first); malformed annotations read as none.
pub fn records(app: &CFApp) -> Vec<Record> {
    app.annotations()
        .get(RECORDS)
        .and_then(|r| serde_json::from_str(r).ok())
        .unwrap_or_default()
}

/// Whether the web process of `app` has rolled to the app's droplet and `restartedAt`: every
/// live Pod is of that template, and as many as wanted are ready.
pub fn rolled(caches: &Caches, app: &CFApp) -> bool {
    if app.spec.desired_state != AppState::Started {
        return true;
    }
    let Some(web) = web_process(caches, app) else {
        return true;
    };
    let pods = pods(caches, &web);
    let current = |p: &k8s_openapi::api::core::v1::Pod| {
        let a = p.annotations();
        a.get(DROPLET_GUID) == app.spec.current_droplet_guid.as_ref()
            && a.get(RESTARTED_AT) == app.spec.restarted_at.as_ref()
    };
    if !pods.iter().all(|p| current(p)) {
        return false;
    }
    let ready = pods
        .iter()
        .filter(|p| pod_state(p).0 == InstanceState::Running)
        .count();
    ready >= usize::try_from(web.spec.instances).unwrap_or(0)
}

fn web_process(caches: &Caches, app: &CFApp) -> Option<Arc<CFProcess>> {
    caches.processes.find(|p| {
        p.spec.app_guid == app.name_any()
            && p.spec.process_type == "web"
            && p.namespace() == app.namespace()
            && p.metadata.deletion_timestamp.is_none()
    })
}

/// `(status.value, status.reason)` of `record`, the `newest` of its app or not.
pub fn status_of(record: &Record, newest: bool, rolled: bool) -> (&'static str, &'static str) {
    if !newest || record.final_reason.is_some() {
        let reason = match record.final_reason.as_deref() {
            Some("SUPERSEDED") => "SUPERSEDED",
            Some("CANCELED") => "CANCELED",
            _ if record.canceled => "CANCELED",
            _ => "DEPLOYED",
        };
        return ("FINALIZED", reason);
    }
    match (record.canceled, rolled) {
        (false, false) => ("ACTIVE", "DEPLOYING"),
        (false, true) => ("FINALIZED", "DEPLOYED"),
        (true, false) => ("ACTIVE", "CANCELING"),
        (true, true) => ("FINALIZED", "CANCELED"),
    }
}

/// The legacy `state` field, from the status reason.
fn legacy_state(reason: &str) -> &'static str {
    match reason {
        "DEPLOYING" => "DEPLOYING",
        "CANCELING" => "CANCELING",
        "CANCELED" => "CANCELED",
        _ => "DEPLOYED",
    }
}

/// The v3 representation of `record` of `app`.
pub fn present(cx: &Cx<'_>, app: &CFApp, record: &Record, newest: bool) -> Value {
    let rolled = newest && record.final_reason.is_none() && rolled(cx.caches, app);
    let (value, reason) = status_of(record, newest, rolled);
    let guid = &record.guid;
    let app_guid = app.name_any();
    let mut cancel = cx.link(&format!("/v3/deployments/{guid}/actions/cancel"));
    cancel["method"] = json!("POST");
    let web = web_process(cx.caches, app);
    let new_processes: Vec<Value> = web
        .iter()
        .map(|p| json!({"guid": p.name_any(), "type": p.spec.process_type}))
        .collect();
    let droplet = |g: &Option<String>| match g {
        Some(g) => json!({"guid": g}),
        None => Value::Null,
    };
    json!({
        "guid": guid,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "state": legacy_state(reason),
        "status": {
            "value": value,
            "reason": reason,
            "details": {
                "last_successful_healthcheck": record.updated_at,
                "last_status_change": record.updated_at,
            },
        },
        "strategy": "rolling",
        "options": {"max_in_flight": record.max_in_flight},
        "droplet": droplet(&record.droplet),
        "previous_droplet": droplet(&record.previous_droplet),
        "new_processes": new_processes,
        "revision": null,
        "relationships": {"app": to_one(Some(&app_guid))},
        "metadata": {"labels": {}, "annotations": {}},
        "links": {
            "self": cx.link(&format!("/v3/deployments/{guid}")),
            "app": cx.link(&format!("/v3/apps/{app_guid}")),
            "cancel": cancel,
        },
    })
}

/// Every deployment the caller may see, presented.
fn all(state: &ApiState, caller: &Caller, cx: &Cx<'_>) -> Vec<Value> {
    state
        .caches
        .apps
        .state()
        .iter()
        .filter(|a| a.metadata.deletion_timestamp.is_none() && a.visible(&caller.access, cx))
        .flat_map(|a| {
            let rs = records(a);
            let n = rs.len();
            rs.iter()
                .enumerate()
                .map(|(i, r)| present(cx, a, r, i + 1 == n))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The app holding deployment `guid` (visible to the caller), and the record.
fn find(state: &ApiState, caller: &Caller, guid: &str) -> CfResult<(Arc<CFApp>, Record, bool)> {
    let cx = Cx::new(state);
    for app in state.caches.apps.state() {
        if app.metadata.deletion_timestamp.is_some() || !app.visible(&caller.access, &cx) {
            continue;
        }
        let rs = records(&app);
        if let Some(i) = rs.iter().position(|r| r.guid == guid) {
            let newest = i + 1 == rs.len();
            return Ok((app, rs[i].clone(), newest));
        }
    }
    Err(CfError::NotFound("Deployment"))
}

const FILTERS: &[&str] = &["guids", "app_guids", "states", "status_values", "status_reasons"];

async fn list(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let q = Query::parse(raw.as_deref().unwrap_or(""))?;
    q.allow(FILTERS)?;
    let params = PageParams::from_query(&q, &["created_at", "updated_at"])?;
    let mut time_filters = Vec::new();
    for (field, key) in [("created_ats", "created_at"), ("updated_ats", "updated_at")] {
        for (op, values) in q.timestamps(field) {
            time_filters.push((key, timestamp_filter(&op, &values)?));
        }
    }
    let selector = match q.get("label_selector") {
        Some(s) => Some(
            kubefoundry_sim::selector::LabelSelector::parse(s)
                .map_err(|e| CfError::BadQuery(format!("Invalid label_selector value: {}", e.message())))?,
        ),
        None => None,
    };
    let cx = Cx::new(&state);
    let wanted = |key: &str, v: &Value| {
        q.list(key)
            .is_none_or(|l| v.as_str().is_some_and(|s| l.iter().any(|x| x == s)))
    };
    // Deployments carry no labels: a selector matches all of them or none.
    let labels_match = selector
        .as_ref()
        .is_none_or(|s| s.matches(&std::collections::BTreeMap::new()));
    let mut items: Vec<Value> = all(&state, &caller, &cx)
        .into_iter()
        .filter(|d| wanted("guids", &d["guid"]))
        .filter(|d| wanted("app_guids", &d["relationships"]["app"]["data"]["guid"]))
        .filter(|d| wanted("states", &d["state"]))
        .filter(|d| wanted("status_values", &d["status"]["value"]))
        .filter(|d| wanted("status_reasons", &d["status"]["reason"]))
        .filter(|_| labels_match)
        .filter(|d| {
            time_filters
                .iter()
                .all(|(key, f)| f(d[*key].as_str().unwrap_or_default()))
        })
        .collect();
    order(&mut items, &params);
    Ok(Json(page(
        &state.config.base_url,
        "/v3/deployments",
        &q,
        &params,
        items,
    )))
}

async fn show(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let (app, record, newest) = find(&state, &caller, &guid)?;
    Ok(Json(present(&Cx::new(&state), &app, &record, newest)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Relationships {
    app: ToOne,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Options {
    #[serde(default)]
    max_in_flight: Option<i64>,
    #[serde(default)]
    web_instances: Option<i64>,
    #[serde(default)]
    memory_in_mb: Option<i64>,
    #[serde(default)]
    disk_in_mb: Option<i64>,
    #[serde(default)]
    log_rate_limit_in_bytes_per_second: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    relationships: Relationships,
    #[serde(default)]
    droplet: Option<super::super::body::Guid>,
    #[serde(default)]
    revision: Option<super::super::body::Guid>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    options: Option<Options>,
    #[serde(default)]
    metadata: Option<MetadataBody>,
}

/// Writes `records` (trimmed to [`KEEP`]) plus `spec` onto `app`, failing with a conflict when
/// the app changed since it was read.
async fn write(
    state: &ApiState,
    caller: &Caller,
    app: &CFApp,
    mut rs: Vec<Record>,
    spec: Value,
) -> CfResult<CFApp> {
    if rs.len() > KEEP {
        rs.drain(..rs.len() - KEEP);
    }
    let encoded = serde_json::to_string(&rs).map_err(CfError::internal)?;
    let patch = json!({
        "metadata": {
            "resourceVersion": app.metadata.resource_version,
            "annotations": {RECORDS: encoded},
        },
        "spec": spec,
    });
    resource::patch(state, caller, app, &patch).await
}

/// Retries `attempt` on optimistic-lock conflicts, re-reading the app each time.
async fn with_retries<F, Fut>(state: &ApiState, guid: &str, mut attempt: F) -> CfResult<CFApp>
where
    F: FnMut(Arc<CFApp>) -> Fut,
    Fut: std::future::Future<Output = CfResult<CFApp>>,
{
    let mut last = CfError::NotFound("App");
    for _ in 0..5 {
        let app = resource::lookup::<CFApp>(&state.caches, guid).ok_or(CfError::NotFound("App"))?;
        match attempt(app).await {
            Err(CfError::Uniqueness(m)) => {
                last = CfError::Uniqueness(m);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
    Err(last)
}

async fn create(State(state): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> CfResult<Response> {
    let caller = Caller::of(&state, &headers).await?;
    let body: CreateBody = parse(&body)?;
    let unusable = || {
        CfError::Unprocessable(
            "Unable to use app. Ensure that the app exists and you have access to it.".into(),
        )
    };
    let app_guid = body
        .relationships
        .app
        .data
        .as_ref()
        .map(|d| d.guid.clone())
        .ok_or_else(unusable)?;
    let app = resource::find::<CFApp>(&state, &caller, &app_guid).map_err(|_| unusable())?;
    match body.strategy.as_deref() {
        None | Some("rolling") => {}
        Some(other) => {
            return Err(CfError::Unprocessable(format!(
                "Strategy '{other}' is not supported; kubefoundry deploys with 'rolling'"
            )));
        }
    }
    if body.revision.is_some() {
        return Err(CfError::Unprocessable(
            "Deploying a revision is not supported: app revisions are not enabled".into(),
        ));
    }
    if let Some(m) = &body.metadata {
        m.check()?;
    }
    let options = body.options.unwrap_or_default();
    let max_in_flight = options.max_in_flight.unwrap_or(1);
    if max_in_flight < 1 {
        return Err(CfError::Unprocessable(
            "Max in flight must be an integer greater than 0".into(),
        ));
    }
    let droplet = match body.droplet.map(|d| d.guid) {
        Some(d) => {
            wait_for_droplet(&state.caches, &app, &d).await;
            check_droplet(&state.caches, &app, &d)?;
            d
        }
        None => app.spec.current_droplet_guid.clone().ok_or_else(|| {
            CfError::Unprocessable(
                "Invalid droplet. Please specify a droplet in the request or set a current droplet for the app."
                    .into(),
            )
        })?,
    };
    let scale = ScaleBody {
        instances: options.web_instances,
        memory_in_mb: options.memory_in_mb,
        disk_in_mb: options.disk_in_mb,
        log_rate_limit_in_bytes_per_second: options.log_rate_limit_in_bytes_per_second,
    };
    // Validated before anything is written.
    scale.spec_patch()?;
    let guid = resource::new_guid();
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (caches, caller_ref) = (&state.caches, &caller);
    let updated = with_retries(&state, &app_guid, |app| {
        let mut rs = records(&app);
        if let Some(last) = rs.last_mut()
            && last.final_reason.is_none()
        {
            let (_, reason) = status_of(last, true, rolled(caches, &app));
            last.final_reason = Some(match reason {
                "DEPLOYING" => "SUPERSEDED".to_owned(),
                "CANCELING" => "CANCELED".to_owned(),
                other => other.to_owned(),
            });
        }
        rs.push(Record {
            guid: guid.clone(),
            created_at: now.clone(),
            updated_at: now.clone(),
            droplet: Some(droplet.clone()),
            previous_droplet: app.spec.current_droplet_guid.clone(),
            max_in_flight,
            canceled: false,
            final_reason: None,
        });
        let spec = json!({
            "currentDropletGuid": droplet,
            "restartedAt": now_precise(),
            "desiredState": "STARTED",
        });
        let state = &state;
        async move { write(state, caller_ref, &app, rs, spec).await }
    })
    .await?;
    if scale.instances.is_some()
        || scale.memory_in_mb.is_some()
        || scale.disk_in_mb.is_some()
        || scale.log_rate_limit_in_bytes_per_second.is_some()
    {
        let web = web_process(&state.caches, &updated).ok_or(CfError::NotFound("Process"))?;
        scale_process(&state, &caller, &web, &scale).await?;
    }
    let record = records(&updated)
        .into_iter()
        .find(|r| r.guid == guid)
        .ok_or_else(|| CfError::Unavailable("the deployment record was not kept".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(present(&Cx::new(&state), &updated, &record, true)),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    #[allow(dead_code)]
    metadata: Option<MetadataBody>,
}

/// Deployments carry no metadata of their own here: an update is accepted (CC allows metadata
/// only) and answers the deployment unchanged, after checking the metadata is well formed.
async fn update(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
    body: Bytes,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let body: UpdateBody = parse(&body)?;
    let (app, record, newest) = find(&state, &caller, &guid)?;
    if let Some(m) = &body.metadata
        && (!m.labels.is_empty() || !m.annotations.is_empty())
    {
        m.check()?;
        return Err(CfError::Unprocessable(
            "Deployment metadata is not supported by kubefoundry".into(),
        ));
    }
    Ok(Json(present(&Cx::new(&state), &app, &record, newest)))
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(guid): Path<String>,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let (app, record, newest) = find(&state, &caller, &guid)?;
    let rolled_now = newest && rolled(&state.caches, &app);
    let (value, reason) = status_of(&record, newest, rolled_now);
    if value != "ACTIVE" {
        return Err(CfError::Unprocessable(format!(
            "Cannot cancel a deployment with status: {value} and reason: {reason}"
        )));
    }
    if record.canceled {
        return Ok(Json(present(&Cx::new(&state), &app, &record, newest)));
    }
    let app_guid = app.name_any();
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let caller_ref = &caller;
    let updated = with_retries(&state, &app_guid, |app| {
        let mut rs = records(&app);
        let mut spec = json!({"restartedAt": now_precise()});
        if let Some(r) = rs.iter_mut().find(|r| r.guid == guid) {
            r.canceled = true;
            r.updated_at = now.clone();
            // Back to what ran before; with nothing before, the new droplet stays.
            if let Some(previous) = &r.previous_droplet {
                spec["currentDropletGuid"] = json!(previous);
            }
        }
        let state = &state;
        async move { write(state, caller_ref, &app, rs, spec).await }
    })
    .await?;
    let rs = records(&updated);
    let newest = rs.last().is_some_and(|r| r.guid == guid);
    let record = rs
        .into_iter()
        .find(|r| r.guid == guid)
        .ok_or(CfError::NotFound("Deployment"))?;
    Ok(Json(present(&Cx::new(&state), &updated, &record, newest)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(guid: &str) -> Record {
        Record {
            guid: guid.into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
            droplet: Some("d2".into()),
            previous_droplet: Some("d1".into()),
            max_in_flight: 1,
            canceled: false,
            final_reason: None,
        }
    }

    #[test]
    fn the_newest_deployment_is_active_until_rolled() {
        let r = record("x");
        assert_eq!(status_of(&r, true, false), ("ACTIVE", "DEPLOYING"));
        assert_eq!(status_of(&r, true, true), ("FINALIZED", "DEPLOYED"));
        let c = Record {
            canceled: true,
            ..record("y")
        };
        assert_eq!(status_of(&c, true, false), ("ACTIVE", "CANCELING"));
        assert_eq!(status_of(&c, true, true), ("FINALIZED", "CANCELED"));
    }

    #[test]
    fn older_deployments_keep_the_outcome_recorded_when_replaced() {
        let superseded = Record {
            final_reason: Some("SUPERSEDED".into()),
            ..record("a")
        };
        assert_eq!(status_of(&superseded, false, false), ("FINALIZED", "SUPERSEDED"));
        assert_eq!(status_of(&record("b"), false, false), ("FINALIZED", "DEPLOYED"));
        assert_eq!(legacy_state("SUPERSEDED"), "DEPLOYED");
    }

    #[test]
    fn records_round_trip_through_the_annotation() {
        let mut app = crate::fixtures::app("a1", "my-app");
        let rs = vec![record("a"), record("b")];
        app.metadata.annotations = Some([(RECORDS.to_owned(), serde_json::to_string(&rs).unwrap())].into());
        assert_eq!(records(&app), rs);
        app.metadata.annotations = Some([(RECORDS.to_owned(), "not json".to_owned())].into());
        assert!(records(&app).is_empty());
    }
}
