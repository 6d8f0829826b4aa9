//! The `scale` subresource (`autoscaling/v1` Scale) of Deployments, ReplicaSets, StatefulSets
//! and custom kinds that declare one, so `kubectl scale` works on all of them.

use axum::{body::Bytes, response::Response};
use serde_json::{Value, json};

use crate::{
    api::{
        ApiError, ApiResult, Ctx, decode_body,
        objects::{TypeSchema, field_manager, finalizers},
        ok,
    },
    cluster::Cluster,
    managed,
    registry::ResourceType,
    store::{Key, Write},
    time::now_rfc3339,
};

struct Paths {
    spec: String,
    status: String,
    selector: Option<String>,
}

fn paths(rt: &ResourceType) -> Paths {
    match &rt.scale {
        Some(s) => Paths {
            spec: s["specReplicasPath"]
                .as_str()
                .unwrap_or(".spec.replicas")
                .to_owned(),
            status: s["statusReplicasPath"]
                .as_str()
                .unwrap_or(".status.replicas")
                .to_owned(),
            selector: s["labelSelectorPath"].as_str().map(str::to_owned),
        },
        None => Paths {
            spec: ".spec.replicas".into(),
            status: ".status.replicas".into(),
            selector: None,
        },
    }
}

fn pointer(path: &str) -> String {
    path.replace('.', "/")
}

fn scale_of(rt: &ResourceType, object: &Value) -> Value {
    let p = paths(rt);
    let selector = match &p.selector {
        Some(s) => object.pointer(&pointer(s)).cloned().unwrap_or(json!("")),
        None => object
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
            .map(|m| {
                json!(
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            })
            .unwrap_or(json!("")),
    };
    let meta = &object["metadata"];
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"], "creationTimestamp": meta["creationTimestamp"],
        },
        "spec": {"replicas": object.pointer(&pointer(&p.spec)).cloned().unwrap_or(json!(0))},
        "status": {
            "replicas": object.pointer(&pointer(&p.status)).cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

/// `GET .../scale`.
pub fn get(cluster: &Cluster, rt: &ResourceType, namespace: &str, name: &str) -> ApiResult<Response> {
    let object = cluster
        .store
        .get(&Key::new(&rt.key(), namespace, name))
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    Ok(ok(&scale_of(rt, &object)))
}

fn set_replicas(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    ctx: &Ctx,
    replicas: i64,
    rv: Option<String>,
) -> ApiResult<Response> {
    if replicas < 0 {
        return Err(ApiError::invalid(
            rt,
            name,
            &format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
            json!([{"reason": "FieldValueInvalid", "message": format!("Invalid value: {replicas}: must be greater than or equal to 0"), "field": "spec.replicas"}]),
        ));
    }
    let spec_path = pointer(&paths(rt).spec);
    let key = Key::new(&rt.key(), namespace, name);
    let written = cluster.store.write(&key, |current| {
        let current = current.ok_or_else(|| ApiError::not_found(rt, name))?;
        if let Some(rv) = &rv
            && current
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                != Some(rv.as_str())
        {
            return Err(ApiError::stale(rt, name));
        }
        if current.pointer(&spec_path) == Some(&json!(replicas)) {
            return Ok(Write::Unchanged);
        }
        let mut next = current.clone();
        let (parent, field) = spec_path.rsplit_once('/').unwrap_or(("", "replicas"));
        match next.pointer_mut(parent) {
            Some(p) if p.is_object() => p[field] = json!(replicas),
            _ => return Err(ApiError::internal("scale path missing")),
        }
        let generation = next
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1;
        next["metadata"]["generation"] = json!(generation);
        let _ = finalizers(&next);
        // kube-apiserver's scale handler records the writer as owning the replicas field, as
        // `(manager, Update, <parent version>, "scale")`, and takes it from everyone else, so a
        // later server-side apply of another replica count conflicts (the `kubectl scale` vs
        // Helm/HPA case) instead of silently winning.
        let next = managed::update(
            Some(current),
            &next,
            &field_manager(ctx),
            &TypeSchema(rt),
            &now_rfc3339(),
            &rt.api_version(),
            Some("scale"),
        );
        Ok(Write::Put(next))
    })?;
    let object = match written {
        crate::store::Written::Stored(o)
        | crate::store::Written::Deleted(o)
        | crate::store::Written::Unchanged(Some(o)) => o,
        crate::store::Written::Unchanged(None) => return Err(ApiError::not_found(rt, name)),
    };
    Ok(ok(&scale_of(rt, &object)))
}

/// `PUT .../scale`.
pub fn update(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    ctx: &Ctx,
    body: &Bytes,
) -> ApiResult<Response> {
    let scale = decode_body(&ctx.headers, body)?;
    let replicas = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    set_replicas(cluster, rt, namespace, name, ctx, replicas, rv)
}

/// `PATCH .../scale` (merge or strategic: both just carry `spec.replicas`).
pub fn patch(
    cluster: &Cluster,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
    ctx: &Ctx,
    body: &Bytes,
) -> ApiResult<Response> {
    let patch: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
    let replicas = patch
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::bad_request("the scale patch must set spec.replicas"))?;
    set_replicas(cluster, rt, namespace, name, ctx, replicas, None)
}
