//! `meta.k8s.io/v1` Tables: what `kubectl get` prints. Custom kinds use their CRD's printer
//! columns; built-in kinds use columns modelled on kube-apiserver's printers.

use serde_json::{Value, json};

use super::Ctx;
use crate::{registry::ResourceType, time};

fn column(name: &str, type_: &str, format: &str, description: &str, priority: i64) -> Value {
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace.",
        0,
    )
}

fn age_column() -> Value {
    column(
        "Age",
        "string",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    )
}

/// The column definitions for a type.
pub fn columns(rt: &ResourceType) -> Vec<Value> {
    if rt.custom {
        let mut cols = vec![name_column()];
        if rt.printer_columns.is_empty() {
            cols.push(age_column());
        }
        for c in &rt.printer_columns {
            cols.push(column(
                c["name"].as_str().unwrap_or(""),
                c["type"].as_str().unwrap_or("string"),
                c["format"].as_str().unwrap_or(""),
                c["description"].as_str().unwrap_or(""),
                c["priority"].as_i64().unwrap_or(0),
            ));
        }
        return cols;
    }
    let extra: Vec<(&str, &str)> = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => vec![("Status", "string")],
        ("", "pods") => vec![("Ready", "string"), ("Status", "string"), ("Restarts", "string")],
        ("", "configmaps") => vec![("Data", "integer")],
        ("", "secrets") => vec![("Type", "string"), ("Data", "integer")],
        ("", "serviceaccounts") => vec![("Secrets", "integer")],
        ("", "services") => {
            vec![
                ("Type", "string"),
                ("Cluster-IP", "string"),
                ("External-IP", "string"),
                ("Port(s)", "string"),
            ]
        }
        ("apps", "deployments") => vec![
            ("Ready", "string"),
            ("Up-to-date", "integer"),
            ("Available", "integer"),
        ],
        ("apps", "replicasets") => vec![
            ("Desired", "integer"),
            ("Current", "integer"),
            ("Ready", "integer"),
        ],
        ("batch", "jobs") => vec![("Status", "string"), ("Completions", "string")],
        ("networking.k8s.io", "ingresses") => {
            vec![("Class", "string"), ("Hosts", "string"), ("Address", "string")]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => vec![("Role", "string")],
        ("apiextensions.k8s.io", "customresourcedefinitions") => vec![("Created At", "date")],
        _ => vec![],
    };
    let mut cols = vec![name_column()];
    cols.extend(extra.iter().map(|(n, t)| column(n, t, "", "", 0)));
    if rt.plural != "customresourcedefinitions" {
        cols.push(age_column());
    }
    cols
}

fn s(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned()
}

fn n(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn count(v: &Value, pointer: &str) -> usize {
    v.pointer(pointer).map_or(0, |x| {
        x.as_object()
            .map_or_else(|| x.as_array().map_or(0, Vec::len), |m| m.len())
    })
}

fn age(object: &Value) -> String {
    time::human_age(&s(object, "/metadata/creationTimestamp"))
}

/// Evaluates a CRD printer column's JSONPath against an object.
fn json_path(object: &Value, path: &str) -> Value {
    let Ok(query) = serde_json_path::JsonPath::parse(&format!("${path}")) else {
        return Value::Null;
    };
    let found = query.query(object).all();
    match found.as_slice() {
        [] => Value::Null,
        [one] => (*one).clone(),
        many => Value::String(
            many.iter()
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join(","),
        ),
    }
}

/// The cells of one row.
pub fn cells(rt: &ResourceType, object: &Value) -> Vec<Value> {
    let name = json!(s(object, "/metadata/name"));
    if rt.custom {
        let mut row = vec![name];
        if rt.printer_columns.is_empty() {
            row.push(json!(age(object)));
        }
        for c in &rt.printer_columns {
            let value = json_path(object, c["jsonPath"].as_str().unwrap_or(""));
            row.push(match (c["type"].as_str(), &value) {
                (Some("date"), Value::String(ts)) => json!(time::human_age(ts)),
                _ => value,
            });
        }
        return row;
    }
    let extra: Vec<Value> = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => vec![json!(s(object, "/status/phase"))],
        ("", "pods") => {
            let statuses = object
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let total = object
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = statuses
                .iter()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .map(|c| c["restartCount"].as_i64().unwrap_or(0))
                .sum();
            // kubectl's printPod: the phase (or status.reason), overridden by container states
            // walked last to first, so the first container's waiting/terminated reason wins.
            let mut status = object
                .pointer("/status/reason")
                .and_then(Value::as_str)
                .filter(|r| !r.is_empty())
                .map_or_else(|| s(object, "/status/phase"), str::to_owned);
            let mut has_running = false;
            for c in statuses.iter().rev() {
                let reason = |p: &str| c.pointer(p).and_then(Value::as_str).filter(|r| !r.is_empty());
                if let Some(r) = reason("/state/waiting/reason") {
                    status = r.to_owned();
                } else if let Some(r) = reason("/state/terminated/reason") {
                    status = r.to_owned();
                } else if let Some(t) = c.pointer("/state/terminated") {
                    status = match t["signal"].as_i64().filter(|s| *s != 0) {
                        Some(signal) => format!("Signal:{signal}"),
                        None => format!("ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
                    };
                } else if c["ready"].as_bool() == Some(true) && c.pointer("/state/running").is_some() {
                    has_running = true;
                }
            }
            if status == "Completed" && has_running {
                let ready_condition = object
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
                status = if ready_condition {
                    "Running".to_owned()
                } else {
                    "NotReady".to_owned()
                };
            }
            let terminal = matches!(s(object, "/status/phase").as_str(), "Succeeded" | "Failed");
            if object.pointer("/metadata/deletionTimestamp").is_some() && !terminal {
                status = "Terminating".to_owned();
            }
            vec![
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
            ]
        }
        ("", "configmaps") => vec![json!(count(object, "/data") + count(object, "/binaryData"))],
        ("", "secrets") => vec![json!(s(object, "/type")), json!(count(object, "/data"))],
        ("", "serviceaccounts") => vec![json!(count(object, "/secrets"))],
        ("", "services") => {
            let ports: Vec<String> = object
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{}/{}", p["port"], p["protocol"].as_str().unwrap_or("TCP")))
                        .collect()
                })
                .unwrap_or_default();
            let ports = if ports.is_empty() {
                "<none>".to_owned()
            } else {
                ports.join(",")
            };
            vec![
                json!(s(object, "/spec/type")),
                json!(s(object, "/spec/clusterIP")),
                json!("<none>"),
                json!(ports),
            ]
        }
        ("apps", "deployments") => vec![
            json!(format!(
                "{}/{}",
                n(object, "/status/readyReplicas"),
                n(object, "/spec/replicas")
            )),
            json!(n(object, "/status/updatedReplicas")),
            json!(n(object, "/status/availableReplicas")),
        ],
        ("apps", "replicasets") => vec![
            json!(n(object, "/spec/replicas")),
            json!(n(object, "/status/replicas")),
            json!(n(object, "/status/readyReplicas")),
        ],
        ("batch", "jobs") => {
            let done = object
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| {
                    cs.iter().find(|c| {
                        c["status"] == "True" && matches!(c["type"].as_str(), Some("Complete" | "Failed"))
                    })
                });
            let status = done.map_or("Running", |c| {
                if c["type"] == "Complete" {
                    "Complete"
                } else {
                    "Failed"
                }
            });
            vec![
                json!(status),
                json!(format!(
                    "{}/{}",
                    n(object, "/status/succeeded"),
                    object
                        .pointer("/spec/completions")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                )),
            ]
        }
        ("networking.k8s.io", "ingresses") => {
            let hosts: Vec<String> = object
                .pointer("/spec/rules")
                .and_then(Value::as_array)
                .map(|rs| {
                    rs.iter()
                        .filter_map(|r| r["host"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            vec![
                json!(
                    object
                        .pointer("/spec/ingressClassName")
                        .and_then(Value::as_str)
                        .unwrap_or("<none>")
                ),
                json!(if hosts.is_empty() {
                    "*".to_owned()
                } else {
                    hosts.join(",")
                }),
                json!(""),
            ]
        }
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            vec![json!(format!(
                "{}/{}",
                s(object, "/roleRef/kind"),
                s(object, "/roleRef/name")
            ))]
        }
        ("apiextensions.k8s.io", "customresourcedefinitions") => {
            vec![json!(s(object, "/metadata/creationTimestamp"))]
        }
        _ => vec![],
    };
    let mut row = vec![name];
    row.extend(extra);
    if rt.plural != "customresourcedefinitions" {
        row.push(json!(age(object)));
    }
    row
}

fn row_object(object: &Value, include: &str) -> Value {
    match include {
        "Object" => object.clone(),
        "None" => Value::Null,
        _ => json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": object.get("metadata").cloned().unwrap_or(json!({})),
        }),
    }
}

/// A Table of `objects`.
pub fn table(rt: &ResourceType, objects: &[Value], ctx: &Ctx, rv: &str) -> Value {
    let include = ctx.param("includeObject").unwrap_or("Metadata");
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| json!({"cells": cells(rt, o), "object": row_object(o, include)}))
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns(rt),
        "rows": rows,
    })
}

/// The Table one watch event carries.
pub fn watch_table(rt: &ResourceType, object: &Value, include: &str) -> Value {
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": s(object, "/metadata/resourceVersion")},
        "columnDefinitions": columns(rt),
        "rows": [{"cells": cells(rt, object), "object": row_object(object, include)}],
    })
}
