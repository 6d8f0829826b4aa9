//! Discovery and the other non-resource endpoints: `/version`, `/api`, `/apis`, group-version
//! resource lists, health checks and the OpenAPI v3 documents kubectl reads for field
//! validation support and `kubectl explain`.

use std::sync::Arc;

use axum::{http::Method, response::Response};
use serde_json::{Value, json};

use super::{ApiError, ApiResult, Ctx, ok};
use crate::cluster::Cluster;

/// Serves a non-resource path.
pub async fn non_resource(cluster: &Arc<Cluster>, method: &Method, ctx: &Ctx) -> ApiResult<Response> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    let path = ctx.info.path.trim_end_matches('/');
    match path {
        "/version" => Ok(ok(&version(cluster))),
        "/api" => Ok(ok(&json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }))),
        "/apis" => Ok(ok(&group_list(cluster))),
        "/healthz" | "/livez" | "/readyz" => Ok(plain("ok")),
        "/openapi/v3" => Ok(ok(&openapi_index(cluster))),
        "/openapi/v2" => Err(ApiError::path_not_found()),
        p if p.starts_with("/openapi/v3/") => openapi_doc(cluster, &p["/openapi/v3/".len()..]),
        p if p.starts_with("/api/") => group_version(cluster, "", &p["/api/".len()..]),
        p if p.starts_with("/apis/") && p["/apis/".len()..].contains('/') => {
            let (group, version) = p["/apis/".len()..].split_once('/').unwrap_or(("", ""));
            group_version(cluster, group, version)
        }
        p if p.starts_with("/apis/") => {
            // `/apis/GROUP`: one group.
            let group = &p["/apis/".len()..];
            let groups = cluster.registry.groups();
            let (_, versions) = groups
                .iter()
                .find(|(g, _)| g == group)
                .ok_or_else(ApiError::path_not_found)?;
            Ok(ok(&group_entry(group, versions)))
        }
        _ => Err(ApiError::path_not_found()),
    }
}

fn plain(body: &'static str) -> Response {
    use axum::response::IntoResponse;
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn version(cluster: &Cluster) -> Value {
    let v = &cluster.config.git_version;
    let mut parts = v.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or("1");
    let minor = parts.next().unwrap_or("0");
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": v,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn group_entry(group: &str, versions: &[String]) -> Value {
    let versions: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions.first().cloned().unwrap_or(Value::Null),
    })
}

fn group_list(cluster: &Cluster) -> Value {
    let groups: Vec<Value> = cluster
        .registry
        .groups()
        .iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| {
            let mut entry = group_entry(g, versions);
            if let Some(m) = entry.as_object_mut() {
                m.remove("kind");
                m.remove("apiVersion");
            }
            entry
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `GET /api/v1` or `/apis/GROUP/VERSION`: the APIResourceList.
pub fn group_version(cluster: &Cluster, group: &str, version: &str) -> ApiResult<Response> {
    let resources: Vec<Value> = cluster
        .registry
        .all()
        .iter()
        .filter(|t| t.group == group && t.version == version)
        .flat_map(|t| t.discovery_entries())
        .collect();
    if resources.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let group_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    Ok(ok(&json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })))
}

fn openapi_index(cluster: &Cluster) -> Value {
    let mut paths = serde_json::Map::new();
    let revision = cluster.store.revision();
    for (group, versions) in cluster.registry.groups() {
        for v in versions {
            let key = if group.is_empty() {
                format!("api/{v}")
            } else {
                format!("apis/{group}/{v}")
            };
            paths.insert(
                key.clone(),
                json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={revision:X}")}),
            );
        }
    }
    json!({"paths": paths})
}

/// An OpenAPI v3 document for one group-version: enough for kubectl to see that PATCH takes
/// `fieldValidation` (so it validates server-side) and for `kubectl explain` on custom kinds.
fn openapi_doc(cluster: &Cluster, gv_path: &str) -> ApiResult<Response> {
    let (group, version) = match gv_path.split('/').collect::<Vec<_>>().as_slice() {
        ["api", v] => (String::new(), (*v).to_owned()),
        ["apis", g, v] => ((*g).to_owned(), (*v).to_owned()),
        _ => return Err(ApiError::path_not_found()),
    };
    let types: Vec<_> = cluster
        .registry
        .all()
        .into_iter()
        .filter(|t| t.group == group && t.version == version)
        .collect();
    if types.is_empty() {
        return Err(ApiError::path_not_found());
    }
    let mut paths = serde_json::Map::new();
    let mut schemas = serde_json::Map::new();
    for t in &types {
        let schema_name = format!(
            "{}.{}.{}",
            if t.group.is_empty() {
                "io.k8s.api.core"
            } else {
                t.group.as_str()
            },
            t.version,
            t.kind
        );
        let gvk = json!([{"group": t.group, "version": t.version, "kind": t.kind}]);
        let params = json!([
            {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
            {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
            {"name": "force", "in": "query", "schema": {"type": "boolean"}},
        ]);
        let item_path = if t.namespaced {
            format!(
                "{}/namespaces/{{namespace}}/{}/{{name}}",
                t.path_prefix(),
                t.plural
            )
        } else {
            format!("{}/{}/{{name}}", t.path_prefix(), t.plural)
        };
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", t.kind),
                "parameters": params,
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": gvk[0],
                "responses": {"200": {"content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}},
            })
        };
        paths.insert(
            item_path,
            json!({"get": op("get"), "put": op("put"), "patch": op("patch"), "delete": op("delete")}),
        );
        let mut schema = t
            .openapi
            .clone()
            .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
        schema["x-kubernetes-group-version-kind"] = gvk;
        schemas.insert(schema_name, schema);
    }
    Ok(ok(&json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": cluster.config.git_version},
        "paths": paths,
        "components": {"schemas": schemas},
    })))
}
