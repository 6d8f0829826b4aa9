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
pub fn reconcile(
    cluster: &Cluster,
    key: &Key,
    object: Option<&Value>,
    index: &Index,
    requeue: &Requeue,
    follow: &mut Vec<Key>,
) {
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
        let uid = object
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or("");
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
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == json!(true))
                    });
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
    cluster
        .registry
        .all()
        .into_iter()
        .find(|t| t.group == group && t.plural == plural)
}

fn delete_by_key(cluster: &Cluster, key: &Key, policy: Option<&str>) {
    let Some(rt) = type_of(cluster, key) else {
        // A type no longer served (its CRD is gone): drop the data directly.
        let _ = cluster.store.write(key, |_| Ok::<_, ()>(Write::Delete));
        return;
    };
    let opts = DeleteOptions {
        propagation: policy.map(str::to_owned),
        ..DeleteOptions::default()
    };
    if let Err(err) = delete_object(cluster, &rt, &key.namespace, &key.name, &opts, false)
        && err.code != 404
    {
        tracing::warn!(?key, message = err.message, "garbage collection delete failed");
    }
}

/// Deletes an object once every owner it names is gone; drops references to owners that are
/// gone while others remain.
fn owners(cluster: &Cluster, key: &Key, object: &Value, index: &Index) {
    let Some(refs) = object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
    else {
        return;
    };
    if refs.is_empty() || object.pointer("/metadata/deletionTimestamp").is_some() {
        return;
    }
    let alive = |r: &Value| {
        r["uid"]
            .as_str()
            .and_then(|uid| index.by_uid.get(uid))
            .is_some_and(|k| cluster.store.get(k).is_some())
    };
    let live: Vec<&Value> = refs.iter().filter(|r| alive(r)).collect();
    if live.is_empty() {
        // The owner was deleted in the foreground when it is still around, marked; otherwise background.
        delete_by_key(cluster, key, Some("Background"));
    } else if live.len() < refs.len() {
        let keep: Vec<Value> = live.into_iter().cloned().collect();
        let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
            let Some(current) = current else {
                return Ok(Write::Unchanged);
            };
            let mut next = current.clone();
            next["metadata"]["ownerReferences"] = json!(keep);
            Ok(Write::Put(next))
        });
    }
}

fn remove_owner_ref(cluster: &Cluster, key: &Key, owner_uid: &str) {
    let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
        let Some(current) = current else {
            return Ok(Write::Unchanged);
        };
        let Some(refs) = current
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
        else {
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
        let Some(current) = current else {
            return Ok(Write::Unchanged);
        };
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
        if cluster
            .store
            .get(k)
            .is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_none())
        {
            delete_by_key(cluster, k, Some("Background"));
        }
    }
    let remaining = cluster.store.keys_in_namespace(name);
    let now = crate::time::now_rfc3339();
    if remaining.is_empty() {
        let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
            let Some(current) = current else {
                return Ok(Write::Unchanged);
            };
            let spec_fins: Vec<Value> = current
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter(|f| f.as_str() != Some("kubernetes"))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            if spec_fins.is_empty() && finalizers(current).is_empty() {
                return Ok(Write::Delete);
            }
            let mut next = current.clone();
            next["spec"]["finalizers"] = json!(spec_fins);
            Ok(Write::Put(next))
        });
    } else {
        let conditions = content_conditions(cluster, &remaining, &now);
        let _ = cluster.store.write(key, |current| -> Result<Write, ()> {
            let Some(current) = current else {
                return Ok(Write::Unchanged);
            };
            let mut next = current.clone();
            let old = current
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            // As the namespace controller's updateConditions: a condition keeps its
            // lastTransitionTime unless its status flips, and an unchanged set is not written.
            let merged: Vec<Value> = conditions
                .iter()
                .map(|c| match old.iter().find(|o| o["type"] == c["type"]) {
                    Some(o) if o["status"] == c["status"] => {
                        let mut c = c.clone();
                        c["lastTransitionTime"] = o["lastTransitionTime"].clone();
                        c
                    }
                    _ => c.clone(),
                })
                .collect();
            if merged == old {
                return Ok(Write::Unchanged);
            }
            next["status"]["conditions"] = json!(merged);
            Ok(Write::Put(next))
        });
        follow.extend(remaining.into_iter().take(0));
    }
}

/// The five conditions kube-controller-manager's namespace deleter keeps on a terminating
/// namespace, with its messages: what content remains (`RESOURCE.GROUP has N resource
/// instances`) and which finalizers hold it (`FINALIZER in N resource instances`).
fn content_conditions(cluster: &Cluster, remaining: &[Key], now: &str) -> Vec<Value> {
    let mut by_resource: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    let mut by_finalizer: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for k in remaining {
        let (group, plural) = k.resource.split_once('/').unwrap_or(("", k.resource.as_str()));
        *by_resource.entry(format!("{plural}.{group}")).or_default() += 1;
        if let Some(o) = cluster.store.get(k) {
            for f in finalizers(&o) {
                *by_finalizer.entry(f).or_default() += 1;
            }
        }
    }
    let condition = |type_: &str, status: &str, reason: &str, message: String| json!({"type": type_, "status": status, "lastTransitionTime": now, "reason": reason, "message": message});
    let mut resources: Vec<String> = by_resource
        .iter()
        .map(|(r, n)| format!("{r} has {n} resource instances"))
        .collect();
    resources.sort();
    let mut held: Vec<String> = by_finalizer
        .iter()
        .map(|(f, n)| format!("{f} in {n} resource instances"))
        .collect();
    held.sort();
    vec![
        condition(
            "NamespaceDeletionDiscoveryFailure",
            "False",
            "ResourcesDiscovered",
            "All resources successfully discovered".into(),
        ),
        condition(
            "NamespaceDeletionGroupVersionParsingFailure",
            "False",
            "ParsedGroupVersions",
            "All legacy kube types successfully parsed".into(),
        ),
        condition(
            "NamespaceDeletionContentFailure",
            "False",
            "ContentDeleted",
            "All content successfully deleted, may be waiting on finalization".into(),
        ),
        if resources.is_empty() {
            condition(
                "NamespaceContentRemaining",
                "False",
                "ContentRemoved",
                "All content successfully removed".into(),
            )
        } else {
            condition(
                "NamespaceContentRemaining",
                "True",
                "SomeResourcesRemain",
                format!("Some resources are remaining: {}", resources.join(", ")),
            )
        },
        if held.is_empty() {
            condition(
                "NamespaceFinalizersRemaining",
                "False",
                "ContentHasNoFinalizers",
                "All content-preserving finalizers finished".into(),
            )
        } else {
            condition(
                "NamespaceFinalizersRemaining",
                "True",
                "SomeFinalizersRemain",
                format!(
                    "Some content in the namespace has finalizers remaining: {}",
                    held.join(", ")
                ),
            )
        },
    ]
}

/// A deleted CRD: delete its objects, then release the CRD.
fn crd_cleanup(cluster: &Cluster, key: &Key, crd: &Value) {
    if crd.pointer("/metadata/deletionTimestamp").is_none() {
        return;
    }
    let group = crd.pointer("/spec/group").and_then(Value::as_str).unwrap_or("");
    let plural = crd
        .pointer("/spec/names/plural")
        .and_then(Value::as_str)
        .unwrap_or("");
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
