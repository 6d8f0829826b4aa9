//! Garbage collection and the lifecycle controllers of kube-apiserver and
//! kube-controller-manager: ownerReference cascades (background, foreground, orphan),
//! namespace termination, and custom resource cleanup when a CRD is deleted.

use serde_json::{Value, json};

use crate::{
    api::objects::{DeleteOptions, delete_object, finalizers},
    cluster::Cluster,
    controllers::{Index, Requeue},
    store::{Key, Write},
};

/// Reconciles whatever GC concern `key` has.
pub fn reconcile(cluster: &Cluster, key: &Key, object: Option<&Value>, index: &Index, requeue: &Requeue, follow: &mut Vec<Key>) {
    let Some(object) = object else { return };
    let _ = requeue;
    if key.resource == "/namespaces" {
        namespace(cluster, key, object, follow);
        return;
    }
    if key.resource == "apiextensions.k8s.io/customresourcedefinitions" {
        crd_cleanup(cluster, key, object);
    }
    owners(cluster, key, object, index);
    if object.pointer("/metadata/deletionTimestamp").is_some() {
        let fins = finalizers(object);
        let uid = object.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
        if fins.iter().any(|f| f == "orphan") {
            for dep in index.dependents_of(uid) {
                remove_owner_ref(cluster, &dep, uid);
            }
            remove_finalizer(cluster, key, "orphan");
        } else if fins.iter().any(|f| f == "foregroundDeletion") {
            let deps = index.dependents_of(uid);
            let mut blocking = 0;
            for dep in &deps {
                let Some(d) = cluster.store.get(dep) else { continue };
                let blocks = d
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == json!(true)));
                if blocks {
                    blocking += 1;
                }
                if d.pointer("/metadata/deletionTimestamp").is_none() {
                    delete_by_key(cluster, dep, Some("Foreground"));
                }
            }
            if blocking == 0 {
                remove_finalizer(cluster, key, "foregroundDeletion");
            }
        }
    }
}

fn type_of(cluster: &Cluster, key: &Key) -> Option<std::sync::Arc<crate::registry::ResourceType>> {
    let (group, plural) = key.resource.split_once('/')?;
    cluster.registry.all().into_iter().find(|t| t.group == group && t.plural == plural)
}

fn delete_by_key(cluster: &Cluster, key: &Key, policy: Option<&str>) {
    let Some(rt) = type_of(cluster, key) else {
        // A type no longer served (its CRD is gone): drop the data directly.
        let _ = cluster.store.write(key, |_| Ok::<_, ()>(Write::Delete));
        return;
    };
    let opts = DeleteOptions { propagation: policy.map(str::to_owned), ..DeleteOptions::default() };
    if let Err(err) = delete_object(cluster, &rt, &key.namespace, &key.name, &opts, false) {
        if err.code != 404 {
            tracing::warn!(?key, message = err.message, "garbage collection delete failed");
        }
    }
}

/// Deletes an object once every owner it names is gone; drops references to owners that are
/// gone while others remain.
fn owners(cluster: &Cluster, key: &Key, object: &Value, index: &Index) {
    let Some(refs) = object.pointer("/metadata/ownerReferences").and_then(Value::as_array) else { return };
    if refs.is_empty() || object.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let alive = |r: &Value| {
        r["uid"].as_str().and_then(|uid| index.by_uid.get(uid)).is_some_and(|k| cluster.store.get(k).is_some())
    };
    let live: Vec<&Value> = refs.iter().filter(|r| alive(r)).collect();
    if live.is_empty() {
        // The owner was deleted in the foreground when it is still around, marked; otherwise background.
        delete_by_key(cluster, key, Some("Background"));
    } else if live.len() < refs.len() {
        let keep: Vec<Value> = live.into_iter().cloned().collect();
        let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
            let Some(current) = current else { return Ok(Write::Unchanged) };
            let mut next = current.clone();
            next["metadata"]["ownerReferences"] = json!(keep);
            Ok(Write::Put(next))
        });
    }
}

fn remove_owner_ref(cluster: &Cluster, key: &Key, owner_uid: &str) {
    let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
        let Some(current) = current else { return Ok(Write::Unchanged) };
        let Some(refs) = current.pointer("/metadata/ownerReferences").and_then(Value::as_array) else {
            return Ok(Write::Unchanged);
        };
        let kept: Vec<Value> = refs.iter().filter(|r| r["uid"] != owner_uid).cloned().collect();
        if kept.len() == refs.len() {
            return Ok(Write::Unchanged);
        }
        let mut next = current.clone();
        if kept.is_empty() {
            if let Some(m) = next["metadata"].as_object_mut() {
                m.remove("ownerReferences");
            }
        } else {
            next["metadata"]["ownerReferences"] = json!(kept);
        }
        Ok(Write::Put(next))
    });
}

/// Removes a finalizer; the object goes away when it was the last one and deletion was asked.
pub fn remove_finalizer(cluster: &Cluster, key: &Key, finalizer: &str) {
    let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
        let Some(current) = current else { return Ok(Write::Unchanged) };
        let fins = finalizers(current);
        if !fins.iter().any(|f| f == finalizer) {
            return Ok(Write::Unchanged);
        }
        let kept: Vec<String> = fins.into_iter().filter(|f| f != finalizer).collect();
        if kept.is_empty() && current.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(Write::Delete);
        }
        let mut next = current.clone();
        next["metadata"]["finalizers"] = json!(kept);
        Ok(Write::Put(next))
    });
}

/// A terminating namespace: delete its content, report what remains, and go away when empty.
fn namespace(cluster: &Cluster, key: &Key, ns: &Value, follow: &mut Vec<Key>) {
    if ns.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let name = &key.name;
    let content = cluster.store.keys_in_namespace(name);
    for k in &content {
        if cluster.store.get(k).is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_none()) {
            delete_by_key(cluster, k, Some("Background"));
        }
    }
    let remaining = cluster.store.keys_in_namespace(name);
    let now = crate::time::now_rfc3339();
    if remaining.is_empty() {
        let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
            let Some(current) = current else { return Ok(Write::Unchanged) };
            let spec_fins: Vec<Value> = current
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter(|f| f.as_str() != Some("kubernetes")).cloned().collect())
                .unwrap_or_default();
            if spec_fins.is_empty() && finalizers(current).is_empty() {
                return Ok(Write::Delete);
            }
            let mut next = current.clone();
            next["spec"]["finalizers"] = json!(spec_fins);
            Ok(Write::Put(next))
        });
    } else {
        let blocked: Vec<String> = remaining
            .iter()
            .filter_map(|k| cluster.store.get(k))
            .flat_map(|o| finalizers(&o))
            .collect();
        let message = format!("Some resources are remaining: {} objects", remaining.len());
        let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
            let Some(current) = current else { return Ok(Write::Unchanged) };
            let mut next = current.clone();
            let conditions = json!([
                {"type": "NamespaceContentRemaining", "status": "True", "reason": "SomeResourcesRemain", "message": message, "lastTransitionTime": now},
                {"type": "NamespaceFinalizersRemaining", "status": if blocked.is_empty() { "False" } else { "True" }, "reason": if blocked.is_empty() { "ContentHasNoFinalizers" } else { "SomeFinalizersRemain" }, "message": if blocked.is_empty() { String::new() } else { format!("Some content in the namespace has finalizers remaining: {}", blocked.join(", ")) }, "lastTransitionTime": now},
            ]);
            let same = current
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().zip(conditions.as_array().into_iter().flatten()).all(|(a, b)| a["message"] == b["message"] && a["status"] == b["status"]));
            if same {
                return Ok(Write::Unchanged);
            }
            next["status"]["conditions"] = conditions;
            Ok(Write::Put(next))
        });
        follow.extend(remaining.into_iter().take(0));
    }
}

/// A deleted CRD: delete its objects, then release the CRD.
fn crd_cleanup(cluster: &Cluster, key: &Key, crd: &Value) {
    if crd.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str).unwrap_or("");
    let resource = format!("{group}/{plural}");
    let (objects, _) = cluster.store.list(&resource, None);
    for (k, o) in &objects {
        if o.pointer("/metadata/deletionTimestamp").is_none() {
            delete_by_key(cluster, k, None);
        }
    }
    if cluster.store.list(&resource, None).0.is_empty() {
        cluster.registry.remove(group, plural);
        remove_finalizer(cluster, key, "customresourcecleanup.apiextensions.k8s.io");
    }
}
