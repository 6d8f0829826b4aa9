//! The background loop that plays kube-controller-manager and kubelet: it reacts to every
//! store event, marks the affected objects dirty and reconciles them (workloads, garbage
//! collection, namespace and CRD cleanup), with timers for simulated delays.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::Arc,
    time::Duration,
};

use serde_json::Value;
use tokio::sync::{broadcast::error::RecvError, mpsc};

use crate::{
    cluster::Cluster,
    gc,
    store::{EventType, Key},
    workloads,
};

/// What the controllers know between events: who owns whom, by uid.
#[derive(Default)]
pub struct Index {
    /// uid → key of every live object.
    pub by_uid: HashMap<String, Key>,
    /// owner uid → keys of its dependents.
    pub dependents: HashMap<String, HashSet<Key>>,
    owners_of: HashMap<Key, Vec<String>>,
}

impl Index {
    /// Records `key`'s new state (`None`: deleted). `previous` is the state the change replaced,
    /// whose uid is dropped: looking it up beats scanning every uid, which made each event cost
    /// O(objects) and let the loop fall behind (and rebuild) at 100k objects.
    fn observe(&mut self, key: &Key, previous: Option<&Value>, object: Option<&Value>) {
        if let Some(old) = self.owners_of.remove(key) {
            for owner in old {
                if let Some(set) = self.dependents.get_mut(&owner) {
                    set.remove(key);
                    if set.is_empty() {
                        self.dependents.remove(&owner);
                    }
                }
            }
        }
        if let Some(uid) = previous
            .and_then(|p| p.pointer("/metadata/uid"))
            .and_then(Value::as_str)
            && self.by_uid.get(uid) == Some(key)
        {
            self.by_uid.remove(uid);
        }
        let Some(object) = object else { return };
        if let Some(uid) = object.pointer("/metadata/uid").and_then(Value::as_str) {
            self.by_uid.insert(uid.to_owned(), key.clone());
        }
        let owners: Vec<String> = object
            .pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .map(|refs| {
                refs.iter()
                    .filter_map(|r| r["uid"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        for owner in &owners {
            self.dependents
                .entry(owner.clone())
                .or_default()
                .insert(key.clone());
        }
        if !owners.is_empty() {
            self.owners_of.insert(key.clone(), owners);
        }
    }

    /// The keys of `uid`'s dependents.
    pub fn dependents_of(&self, uid: &str) -> Vec<Key> {
        self.dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A handle to schedule a reconcile later.
#[derive(Clone)]
pub struct Requeue(mpsc::UnboundedSender<Key>);

impl Requeue {
    /// Reconciles `key` again after `delay`.
    pub fn after(&self, key: Key, delay: Duration) {
        let tx = self.0.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = tx.send(key);
        });
    }
}

/// Starts the controllers; they run until the returned task is aborted or the runtime shuts down.
pub fn spawn(cluster: Arc<Cluster>) -> tokio::task::JoinHandle<()> {
    let mut events = cluster.store.subscribe();
    let (tx, mut timers) = mpsc::unbounded_channel::<Key>();
    let requeue = Requeue(tx);
    tokio::spawn(async move {
        let mut index = Index::default();
        let mut queue: VecDeque<Key> = VecDeque::new();
        let mut queued: HashSet<Key> = HashSet::new();
        let enqueue = |key: Key, queue: &mut VecDeque<Key>, queued: &mut HashSet<Key>| {
            if queued.insert(key.clone()) {
                queue.push_back(key);
            }
        };
        for (key, object) in cluster.store.snapshot() {
            index.observe(&key, None, Some(&object));
            enqueue(key, &mut queue, &mut queued);
        }
        loop {
            while let Some(key) = queue.pop_front() {
                queued.remove(&key);
                let current = cluster.store.get(&key);
                let mut follow_ups = Vec::new();
                workloads::reconcile(
                    &cluster,
                    &key,
                    current.as_deref(),
                    &index,
                    &requeue,
                    &mut follow_ups,
                );
                gc::reconcile(
                    &cluster,
                    &key,
                    current.as_deref(),
                    &index,
                    &requeue,
                    &mut follow_ups,
                );
                for k in follow_ups {
                    enqueue(k, &mut queue, &mut queued);
                }
                // Stay responsive to new events while a long queue drains.
                if queue.len().is_multiple_of(64) {
                    tokio::task::yield_now().await;
                }
                while let Ok(event) = events.try_recv() {
                    handle_event(&event, &mut index, |k| enqueue(k, &mut queue, &mut queued));
                }
            }
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => handle_event(&event, &mut index, |k| enqueue(k, &mut queue, &mut queued)),
                    Err(RecvError::Lagged(_)) => {
                        // Missed events: rebuild the index and look at everything again.
                        index = Index::default();
                        for (key, object) in cluster.store.snapshot() {
                            index.observe(&key, None, Some(&object));
                            enqueue(key, &mut queue, &mut queued);
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                Some(key) = timers.recv() => enqueue(key, &mut queue, &mut queued),
            }
        }
    })
}

fn handle_event(event: &crate::store::Event, index: &mut Index, mut enqueue: impl FnMut(Key)) {
    let object = (event.kind != EventType::Deleted).then_some(&*event.object);
    // Owners of the changed object react (a ReplicaSet to its Pods, a Job to its Pod).
    let owner_keys: Vec<Key> = event
        .object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| index.by_uid.get(r["uid"].as_str()?).cloned())
                .collect()
        })
        .unwrap_or_default();
    if event.kind == EventType::Deleted {
        // Dependents of a deleted object may now be garbage.
        if let Some(uid) = event.object.pointer("/metadata/uid").and_then(Value::as_str) {
            for k in index.dependents_of(uid) {
                enqueue(k);
            }
        }
        // The namespace of a deleted object may now be empty.
        if !event.key.namespace.is_empty() {
            enqueue(Key::new("/namespaces", "", &event.key.namespace));
        }
        // A deleted custom object may unblock its CRD's cleanup.
        enqueue(Key::new(
            "apiextensions.k8s.io/customresourcedefinitions",
            "",
            &crd_name(&event.key.resource),
        ));
    }
    index.observe(&event.key, event.prev.as_deref(), object);
    for k in owner_keys {
        enqueue(k);
    }
    enqueue(event.key.clone());
}

fn crd_name(resource: &str) -> String {
    let (group, plural) = resource.split_once('/').unwrap_or(("", resource));
    format!("{plural}.{group}")
}
