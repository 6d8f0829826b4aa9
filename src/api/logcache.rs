//! Log-cache (`/api/v1/info`, `/api/v1/read/{source-id}`): an app's Pod logs, its staging and
//! the Kubernetes Events about it, as the loggregator envelopes the cf CLI parses (protojson,
//! which rejects unknown fields, so envelopes carry exactly the fields log-cache sends).

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    Json, Router,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    routing::get,
};
use base64::Engine as _;
use k8s_openapi::{
    api::{core::v1::Pod, events::v1::Event},
    jiff::Timestamp,
};
use kube::{Api, ResourceExt, api::LogParams};
use serde_json::{Value, json};

use super::{ApiState, CfError, CfResult, query::Query, v3::resource::Caller};
use crate::{
    crd::{BuildState, CFApp, CFBuild, LifecycleType},
    labels::{APP_GUID, PROCESS_TYPE, TASK_GUID},
};

/// The log-cache version reported by `/api/v1/info` (the CLI wants semver ≥ 2.0.0).
const VERSION: &str = "2.11.4";
/// Envelopes per read unless `limit` says otherwise.
const DEFAULT_LIMIT: usize = 100;
/// The most envelopes one read returns.
const MAX_LIMIT: usize = 1000;

static STARTED: OnceLock<Instant> = OnceLock::new();

/// The routes of log-cache.
pub fn routes() -> Router<Arc<ApiState>> {
    STARTED.get_or_init(Instant::now);
    Router::new()
        .route("/api/v1/info", get(info))
        .route("/api/v1/read/{source_id}", get(read))
}

async fn info() -> Json<Value> {
    let uptime = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    Json(json!({"version": VERSION, "vm_uptime": uptime.to_string()}))
}

/// Whether a line went to stdout or stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

/// One log line of an app, before rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Nanoseconds since the Unix epoch.
    pub timestamp: i64,
    /// `APP/PROC/WEB`, `APP/TASK/<name>`, `STG`, `API`, `CELL`.
    pub source_type: String,
    /// The instance index, as a string.
    pub instance_id: String,
    /// The line.
    pub payload: String,
    /// stdout or stderr.
    pub stream: Stream,
}

/// What a read asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadParams {
    /// Oldest timestamp wanted, inclusive.
    pub start_time: i64,
    /// Newest timestamp wanted, exclusive (log-cache reads `[start, end)`).
    pub end_time: i64,
    /// Most envelopes returned.
    pub limit: usize,
    /// Newest first (then the newest `limit` envelopes before `end_time` are returned).
    pub descending: bool,
    /// Whether LOG envelopes are wanted (no `envelope_types`, or LOG or ANY among them).
    pub logs: bool,
}

impl ReadParams {
    /// Parses log-cache's query parameters; `now` (ns) is the default `end_time`.
    pub fn parse(raw: &str, now: i64) -> CfResult<Self> {
        let mut params = Self {
            start_time: 0,
            end_time: now,
            limit: DEFAULT_LIMIT,
            descending: false,
            logs: true,
        };
        let mut types = Vec::new();
        // Parsed pair by pair: `envelope_types` may repeat.
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let q = Query::parse(pair)?;
            for (key, value) in q.pairs() {
                let int = || {
                    value
                        .parse::<i64>()
                        .map_err(|_| CfError::BadQuery(format!("{key} must be an integer, not '{value}'")))
                };
                match key {
                    "start_time" => params.start_time = int()?,
                    "end_time" => params.end_time = int()?,
                    "limit" => {
                        let n = int()?;
                        params.limit =
                            usize::try_from(n)
                                .ok()
                                .filter(|n| *n <= MAX_LIMIT)
                                .ok_or_else(|| {
                                    CfError::BadQuery(format!(
                                        "limit must be between 0 and {MAX_LIMIT}, not {n}"
                                    ))
                                })?;
                    }
                    "descending" => {
                        params.descending = match value {
                            "true" | "1" => true,
                            "false" | "0" | "" => false,
                            other => {
                                return Err(CfError::BadQuery(format!(
                                    "descending must be a boolean, not '{other}'"
                                )));
                            }
                        }
                    }
                    "envelope_types" => {
                        for t in value.split(',').filter(|t| !t.is_empty()) {
                            let t = t.to_ascii_uppercase();
                            if !["LOG", "COUNTER", "GAUGE", "TIMER", "EVENT", "ANY"].contains(&t.as_str()) {
                                return Err(CfError::BadQuery(format!("unknown envelope_types value '{t}'")));
                            }
                            types.push(t);
                        }
                    }
                    // Like log-cache, other parameters (`name_filter`, …) are ignored: every
                    // envelope here is a log line.
                    _ => {}
                }
            }
        }
        params.logs = types.is_empty() || types.iter().any(|t| t == "LOG" || t == "ANY");
        Ok(params)
    }
}

/// The envelopes a read returns, in the order it returns them: those in `[start, end)`,
/// the earliest `limit` ascending, or the latest `limit` newest first when descending.
pub fn select(mut envelopes: Vec<Envelope>, params: &ReadParams) -> Vec<Envelope> {
    if !params.logs {
        return Vec::new();
    }
    envelopes.retain(|e| e.timestamp >= params.start_time && e.timestamp < params.end_time);
    envelopes.sort_by(|a, b| {
        a.timestamp
            .cmp(&b.timestamp)
            .then_with(|| a.source_type.cmp(&b.source_type))
            .then_with(|| a.instance_id.cmp(&b.instance_id))
    });
    if params.descending {
        envelopes.reverse();
    }
    envelopes.truncate(params.limit);
    envelopes
}

/// The log-cache read response for `source_id`.
pub fn render(source_id: &str, envelopes: &[Envelope]) -> Value {
    let batch: Vec<Value> = envelopes
        .iter()
        .map(|e| {
            json!({
                "timestamp": e.timestamp.to_string(),
                "source_id": source_id,
                "instance_id": e.instance_id,
                "tags": {"source_type": e.source_type},
                "log": {
                    "payload": base64::engine::general_purpose::STANDARD.encode(e.payload.as_bytes()),
                    "type": match e.stream { Stream::Out => "OUT", Stream::Err => "ERR" },
                },
            })
        })
        .collect();
    json!({"envelopes": {"batch": batch}})
}

/// Nanoseconds since the epoch of a Kubernetes timestamp (saturating).
fn nanos(t: &Timestamp) -> i64 {
    i64::try_from(t.as_nanosecond()).unwrap_or(i64::MAX)
}

/// Splits `kubectl logs --timestamps` output into (ns, line) pairs; lines without a
/// parseable timestamp take the previous one (a wrapped line), or are dropped.
pub fn parse_pod_log(text: &str) -> Vec<(i64, String)> {
    let mut out: Vec<(i64, String)> = Vec::new();
    for line in text.lines() {
        let parsed = line
            .split_once(' ')
            .and_then(|(ts, rest)| ts.parse::<Timestamp>().ok().map(|t| (nanos(&t), rest)));
        match parsed {
            Some((ts, rest)) => out.push((ts, rest.to_owned())),
            None => {
                if let Some(prev) = out.last().map(|(ts, _)| *ts) {
                    out.push((prev, line.to_owned()));
                }
            }
        }
    }
    out
}

/// The source type of an app Pod: `APP/TASK/<name>` for task Pods, else `APP/PROC/<TYPE>`.
fn pod_source(pod: &Pod, task_names: &BTreeMap<String, String>) -> String {
    let labels = pod.labels();
    if let Some(task) = labels.get(TASK_GUID) {
        let name = task_names.get(task).cloned().unwrap_or_else(|| task.clone());
        return format!("APP/TASK/{name}");
    }
    let kind = labels.get(PROCESS_TYPE).map_or("WEB", String::as_str);
    format!("APP/PROC/{}", kind.to_uppercase())
}

/// The app's Pods with their instance index (per source, oldest first) and source type.
fn instances(state: &ApiState, app: &CFApp) -> Vec<(Arc<Pod>, String, usize)> {
    let guid = app.name_any();
    let task_names: BTreeMap<String, String> = state
        .caches
        .tasks
        .state()
        .iter()
        .filter(|t| t.spec.app_guid == guid)
        .map(|t| (t.name_any(), t.spec.display_name.clone()))
        .collect();
    let mut pods: Vec<(Arc<Pod>, String)> = state
        .caches
        .pods
        .state()
        .into_iter()
        .filter(|p| p.labels().get(APP_GUID) == Some(&guid) && p.namespace() == app.namespace())
        .map(|p| {
            let source = pod_source(&p, &task_names);
            (p, source)
        })
        .collect();
    pods.sort_by(|(a, sa), (b, sb)| {
        sa.cmp(sb)
            .then_with(|| a.creation_timestamp().cmp(&b.creation_timestamp()))
            .then_with(|| a.name_any().cmp(&b.name_any()))
    });
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    pods.into_iter()
        .map(|(p, source)| {
            let n = index.entry(source.clone()).or_insert(0);
            let i = *n;
            *n += 1;
            (p, source, i)
        })
        .collect()
}

/// Log lines of every Pod of the app (Pods whose container has not started have none).
async fn pod_envelopes(state: &ApiState, pods: &[(Arc<Pod>, String, usize)], since: i64) -> Vec<Envelope> {
    // sinceTime has whole seconds; a second earlier never cuts a line off (exact filtering
    // happens in `select`).
    let since_time = (since > 0)
        .then(|| Timestamp::from_second(since / 1_000_000_000 - 1).ok())
        .flatten();
    let reads = pods.iter().map(|(pod, source, index)| {
        let api: Api<Pod> = Api::namespaced(state.client.clone(), &pod.namespace().unwrap_or_default());
        let params = LogParams {
            timestamps: true,
            since_time,
            ..LogParams::default()
        };
        let name = pod.name_any();
        async move {
            match api.logs(&name, &params).await {
                Ok(text) => parse_pod_log(&text)
                    .into_iter()
                    .map(|(timestamp, payload)| Envelope {
                        timestamp,
                        source_type: source.clone(),
                        instance_id: index.to_string(),
                        payload,
                        stream: Stream::Out,
                    })
                    .collect(),
                // A container that has not started yet has no logs; that is not an error.
                // Not an expected absence: the API's own RBAC is missing something.
                Err(kube::Error::Api(e)) if e.code == 403 => {
                    tracing::warn!(pod = %name, error = %e, "pod logs forbidden");
                    Vec::new()
                }
                Err(e) => {
                    tracing::debug!(pod = %name, error = %e, "no logs");
                    Vec::new()
                }
            }
        }
    });
    futures::future::join_all(reads)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Staging output of the app's builds, as CF's `STG` lines, from the builds' and droplets'
/// recorded times (docker images need no staging beyond recording the image).
pub fn staging_envelopes(state: &ApiState, app: &CFApp) -> Vec<Envelope> {
    let guid = app.name_any();
    let mut out = Vec::new();
    for build in state.caches.builds.state() {
        if build.spec.app_guid != guid || build.namespace() != app.namespace() {
            continue;
        }
        out.extend(build_lines(state, app, &build));
    }
    out
}

fn build_lines(state: &ApiState, app: &CFApp, build: &CFBuild) -> Vec<Envelope> {
    let Some(created) = build.creation_timestamp() else {
        return Vec::new();
    };
    let start = nanos(&created.0);
    let line = |offset: i64, payload: String, stream: Stream| Envelope {
        timestamp: start.saturating_add(offset),
        source_type: "STG".to_owned(),
        instance_id: "0".to_owned(),
        payload,
        stream,
    };
    let lifecycle = build
        .spec
        .lifecycle
        .as_ref()
        .map_or(app.spec.lifecycle.type_, |l| l.type_);
    let image = state
        .caches
        .packages
        .find(|p| p.name_any() == build.spec.package_guid && p.namespace() == build.namespace())
        .and_then(|p| p.spec.image.clone());
    let mut lines = vec![match (lifecycle, &image) {
        (LifecycleType::Docker, Some(image)) => line(0, format!("Staging docker image {image}"), Stream::Out),
        _ => line(0, "Staging app".to_owned(), Stream::Out),
    }];
    let status = build.status.clone().unwrap_or_default();
    let finished = status
        .common
        .condition(crate::crd::READY)
        .map(|c| nanos(&c.last_transition_time.0))
        .filter(|t| *t > start)
        .map_or(1_000, |t| t - start);
    match status.state {
        Some(BuildState::Staged) => {
            let droplet = status.droplet_guid.as_deref().and_then(|d| {
                state
                    .caches
                    .droplets
                    .find(|x| x.name_any() == d && x.namespace() == build.namespace())
            });
            let at = droplet
                .as_ref()
                .and_then(|d| d.creation_timestamp())
                .map(|t| nanos(&t.0) - start)
                .filter(|t| *t > 0)
                .unwrap_or(finished);
            if let Some(image) = droplet.as_ref().and_then(|d| {
                d.status
                    .as_ref()
                    .and_then(|s| s.image.clone())
                    .or_else(|| d.spec.image.clone())
            }) {
                lines.push(line(at, format!("Droplet image: {image}"), Stream::Out));
            }
            lines.push(line(
                at.saturating_add(1),
                "Staging complete".to_owned(),
                Stream::Out,
            ));
        }
        Some(BuildState::Failed) => {
            let why = status.error.unwrap_or_else(|| "staging failed".to_owned());
            lines.push(line(finished, format!("Staging failed: {why}"), Stream::Err));
        }
        _ => {}
    }
    lines
}

/// Events about the app (`API`) and its Pods (`CELL`, with the instance index).
async fn event_envelopes(state: &ApiState, app: &CFApp, pods: &[(Arc<Pod>, String, usize)]) -> Vec<Envelope> {
    let api: Api<Event> = Api::namespaced(state.client.clone(), &app.namespace().unwrap_or_default());
    let events = match api.list(&kube::api::ListParams::default()).await {
        Ok(list) => list.items,
        Err(kube::Error::Api(e)) if e.code == 403 => {
            tracing::warn!(error = %e, "events forbidden");
            return Vec::new();
        }
        Err(e) => {
            tracing::debug!(error = %e, "events unavailable");
            return Vec::new();
        }
    };
    let guid = app.name_any();
    events
        .into_iter()
        .filter_map(|ev| {
            let regarding = ev.regarding.as_ref()?;
            let name = regarding.name.as_deref()?;
            let (source, instance) = match regarding.kind.as_deref() {
                Some("Pod") => {
                    let (_, _, i) = pods.iter().find(|(p, _, _)| p.name_any() == name)?;
                    ("CELL", i.to_string())
                }
                Some("CFApp") if name == guid => ("API", "0".to_owned()),
                _ => return None,
            };
            let at = ev
                .event_time
                .as_ref()
                .map(|t| nanos(&t.0))
                .or_else(|| ev.deprecated_last_timestamp.as_ref().map(|t| nanos(&t.0)))
                .or_else(|| ev.metadata.creation_timestamp.as_ref().map(|t| nanos(&t.0)))?;
            let text = match (ev.reason.as_deref(), ev.note.as_deref()) {
                (Some(r), Some(n)) => format!("{r}: {n}"),
                (Some(r), None) => r.to_owned(),
                (None, Some(n)) => n.to_owned(),
                (None, None) => return None,
            };
            let warning = ev.type_.as_deref() == Some("Warning");
            Some(Envelope {
                timestamp: at,
                source_type: source.to_owned(),
                instance_id: instance,
                payload: text,
                stream: if warning { Stream::Err } else { Stream::Out },
            })
        })
        .collect()
}

async fn read(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    Path(source_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> CfResult<Json<Value>> {
    let caller = Caller::of(&state, &headers).await?;
    let app = state
        .caches
        .apps
        .find(|a| a.name_any() == source_id && a.metadata.deletion_timestamp.is_none())
        .filter(|a| a.namespace().is_some_and(|ns| caller.access.space(&ns)))
        .ok_or(CfError::NotFound("App"))?;
    let params = ReadParams::parse(raw.as_deref().unwrap_or(""), nanos(&Timestamp::now()))?;
    if !params.logs {
        return Ok(Json(render(&source_id, &[])));
    }
    let pods = instances(&state, &app);
    let (mut envelopes, events) = futures::join!(
        pod_envelopes(&state, &pods, params.start_time),
        event_envelopes(&state, &app, &pods)
    );
    envelopes.extend(events);
    envelopes.extend(staging_envelopes(&state, &app));
    Ok(Json(render(&source_id, &select(envelopes, &params))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(ts: i64, line: &str) -> Envelope {
        Envelope {
            timestamp: ts,
            source_type: "APP/PROC/WEB".to_owned(),
            instance_id: "0".to_owned(),
            payload: line.to_owned(),
            stream: Stream::Out,
        }
    }

    #[test]
    fn the_cli_recent_query_parses() {
        let p = ReadParams::parse(
            "descending=true&envelope_types=LOG&limit=1000&start_time=-6795364578871345152",
            5,
        )
        .unwrap();
        assert_eq!(
            p,
            ReadParams {
                start_time: -6_795_364_578_871_345_152,
                end_time: 5,
                limit: 1000,
                descending: true,
                logs: true
            }
        );
        let only_gauges = ReadParams::parse("envelope_types=GAUGE&envelope_types=TIMER", 5).unwrap();
        assert!(!only_gauges.logs);
        let both = ReadParams::parse("envelope_types=GAUGE&envelope_types=LOG", 5).unwrap();
        assert!(both.logs);
        assert!(ReadParams::parse("limit=1001", 5).is_err());
        assert!(ReadParams::parse("start_time=yesterday", 5).is_err());
        assert!(ReadParams::parse("envelope_types=BOGUS", 5).is_err());
        assert_eq!(ReadParams::parse("", 9).unwrap().limit, 100);
    }

    #[test]
    fn reads_honour_the_window_order_and_limit() {
        let all: Vec<Envelope> = (1..=5).map(|i| env(i * 10, &format!("l{i}"))).collect();
        let payloads = |v: Vec<Envelope>| v.into_iter().map(|e| e.payload).collect::<Vec<_>>();
        let base = ReadParams {
            start_time: 20,
            end_time: 50,
            limit: 100,
            descending: false,
            logs: true,
        };
        // start inclusive, end exclusive, ascending.
        assert_eq!(payloads(select(all.clone(), &base)), ["l2", "l3", "l4"]);
        // ascending with a limit: the earliest ones.
        assert_eq!(
            payloads(select(
                all.clone(),
                &ReadParams {
                    limit: 2,
                    ..base.clone()
                }
            )),
            ["l2", "l3"]
        );
        // descending with a limit: the latest ones, newest first.
        assert_eq!(
            payloads(select(
                all.clone(),
                &ReadParams {
                    limit: 2,
                    descending: true,
                    start_time: i64::MIN,
                    end_time: i64::MAX,
                    ..base.clone()
                }
            )),
            ["l5", "l4"]
        );
        assert!(select(all, &ReadParams { logs: false, ..base }).is_empty());
    }

    #[test]
    fn envelopes_render_exactly_as_log_cache_does() {
        let mut e = env(1_700_000_000_123_456_789, "hello");
        e.stream = Stream::Err;
        let v = render("app-guid", &[e]);
        assert_eq!(
            v,
            json!({"envelopes": {"batch": [{
                "timestamp": "1700000000123456789",
                "source_id": "app-guid",
                "instance_id": "0",
                "tags": {"source_type": "APP/PROC/WEB"},
                "log": {"payload": "aGVsbG8=", "type": "ERR"},
            }]}})
        );
        assert_eq!(render("g", &[]), json!({"envelopes": {"batch": []}}));
    }

    #[test]
    fn pods_are_tagged_by_process_type_or_task_name() {
        let pod = |labels: &[(&str, &str)]| {
            let mut p = Pod::default();
            p.metadata.labels = Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            );
            p
        };
        let tasks = BTreeMap::from([("t-1".to_owned(), "migrate".to_owned())]);
        assert_eq!(
            pod_source(&pod(&[(PROCESS_TYPE, "worker")]), &tasks),
            "APP/PROC/WORKER"
        );
        assert_eq!(pod_source(&pod(&[]), &tasks), "APP/PROC/WEB");
        assert_eq!(
            pod_source(&pod(&[(TASK_GUID, "t-1")]), &tasks),
            "APP/TASK/migrate"
        );
    }

    #[test]
    fn pod_logs_split_into_timed_lines() {
        let text = "2026-01-02T03:04:05.000000001Z first line\n2026-01-02T03:04:10.5Z second\ncontinued\n";
        let lines = parse_pod_log(text);
        let t1: Timestamp = "2026-01-02T03:04:05.000000001Z".parse().unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0], (nanos(&t1), "first line".to_owned()));
        assert_eq!(lines[1].1, "second");
        assert_eq!(lines[2], (lines[1].0, "continued".to_owned()));
        assert_eq!(lines[1].0 - lines[0].0, 5_499_999_999);
    }
}
