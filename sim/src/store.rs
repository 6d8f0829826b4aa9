//! The object store: every object as JSON under one monotonically increasing resourceVersion,
//! with a bounded event history for watches (compacted like etcd, hence 410 Gone).

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    ops::Bound,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use serde_json::Value;
use tokio::sync::broadcast;

/// Where an object is stored: its resource (`group/plural`), namespace (empty when cluster
/// scoped) and name. Ordered so a resource's or a namespace's objects are one range.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// `group/plural`, such as `apps/deployments` or `/configmaps`.
    pub resource: String,
    /// The namespace, or empty.
    pub namespace: String,
    /// The object name.
    pub name: String,
}

impl Key {
    /// A key from its parts.
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        Self {
            resource: resource.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// What happened to an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventType {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Removed.
    Deleted,
}

impl EventType {
    /// The watch event `type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches replay it.
#[derive(Clone, Debug)]
pub struct Event {
    /// The resourceVersion the change was written at.
    pub rv: u64,
    /// What happened.
    pub kind: EventType,
    /// Where.
    pub key: Key,
    /// The object after the change (for deletes: its last state, at the delete's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, so filtered watches can tell objects entering and leaving.
    pub prev: Option<Arc<Value>>,
}

/// What a write decided to do.
pub enum Write {
    /// Store this object (create or replace). Its resourceVersion is set by the store.
    Put(Value),
    /// Remove the object.
    Delete,
    /// Nothing changed: no new resourceVersion, no event.
    Unchanged,
}

/// What a write did.
#[derive(Debug, Clone)]
pub enum Written {
    /// Stored at a new resourceVersion.
    Stored(Arc<Value>),
    /// Removed; the last state.
    Deleted(Arc<Value>),
    /// Nothing changed; the current state, if any.
    Unchanged(Option<Arc<Value>>),
}

/// One page of a list, read by [`Store::list_page`].
#[derive(Debug)]
pub struct Page {
    /// The objects, in key order.
    pub items: Vec<Arc<Value>>,
    /// The key of the last item, when matching objects follow it.
    pub last: Option<Key>,
    /// How many matching objects follow the page.
    pub remaining: usize,
    /// The resourceVersion the page shows.
    pub rv: u64,
}

impl Page {
    /// Takes up to `limit` objects that pass `keep` (and lie past `past`, when set) from
    /// `entries`, counting the matching rest.
    fn fill<'a>(
        &mut self,
        entries: impl Iterator<Item = (&'a Key, &'a Arc<Value>)>,
        past: Option<(&str, &str)>,
        limit: Option<usize>,
        keep: &impl Fn(&Value) -> bool,
    ) {
        let mut last = None;
        for (k, v) in entries {
            if past.is_some_and(|(ns, name)| (k.namespace.as_str(), k.name.as_str()) <= (ns, name))
                || !keep(v)
            {
                continue;
            }
            if limit.is_some_and(|l| self.items.len() >= l) {
                self.remaining += 1;
                continue;
            }
            self.items.push(v.clone());
            last = Some(k);
        }
        if self.remaining > 0 {
            self.last = last.cloned();
        }
    }
}

/// A durable backing for the store (the embedded database under `--data-dir`).
pub trait Persistence: Send + Sync {
    /// Records a put or (for `None`) a delete together with the store's resourceVersion.
    fn record(&self, key: &Key, object: Option<&Value>, rv: u64) -> Result<(), String>;
}

struct Inner {
    objects: BTreeMap<Key, Arc<Value>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    compacted: u64,
}

/// What a watch starts from: the events to replay, then the live feed.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// The store shared by every request and background controller.
pub struct Store {
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<Event>>,
    history_limit: usize,
    /// Behind its own lock so a stopped server can let go of its data dir (see
    /// [`Store::detach_persistence`]); always taken after `inner`, never before it.
    persistence: Mutex<Option<Box<dyn Persistence>>>,
}

impl Store {
    /// An empty in-memory store keeping `history_limit` events for watch replay.
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(16_384);
        Self {
            inner: Mutex::new(Inner {
                objects: BTreeMap::new(),
                rv: 1,
                history: VecDeque::new(),
                compacted: 1,
            }),
            events,
            history_limit: history_limit.max(1),
            persistence: Mutex::new(None),
        }
    }

    /// A store holding previously persisted objects, writing through to `persistence`.
    pub fn restored(
        history_limit: usize,
        objects: Vec<(Key, Value)>,
        rv: u64,
        persistence: Box<dyn Persistence>,
    ) -> Self {
        let mut store = Self::new(history_limit);
        store.persistence = Mutex::new(Some(persistence));
        if let Ok(inner) = store.inner.get_mut() {
            inner.objects = objects.into_iter().map(|(k, v)| (k, Arc::new(v))).collect();
            inner.rv = rv.max(1);
            inner.compacted = inner.rv;
        }
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops writing through to the data dir and closes it, so another server may open it; a
    /// restart of kube-apiserver releases etcd the same way. Later writes stay in memory only.
    pub fn detach_persistence(&self) {
        let _inner = self.lock();
        self.persistence
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// The current resourceVersion.
    pub fn revision(&self) -> u64 {
        self.lock().rv
    }

    /// One object.
    pub fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.lock().objects.get(key).cloned()
    }

    /// Every object of a resource (in one namespace, or all when `namespace` is `None`), in
    /// key order, with the resourceVersion the list was read at.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<(Key, Arc<Value>)>, u64) {
        let inner = self.lock();
        let start = Key::new(resource, namespace.unwrap_or(""), "");
        let items = inner
            .objects
            .range(start..)
            .take_while(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (items, inner.rv)
    }

    /// One page of a list: the objects of a resource (in one namespace, or all) that pass
    /// `keep`, in key order, after the `(namespace, name)` position `after`, at most `limit` of
    /// them, as the store is now or, with `at`, as it was at that resourceVersion (rebuilt by
    /// undoing the history after it, so a paginated list stays one consistent snapshot as etcd
    /// serves it). `None` when that history was compacted away.
    ///
    /// It copies out reference counts, never keys, and a continued page seeks to its start:
    /// copying every key of the resource for every page made paging through 100k objects
    /// quadratic. `keep` runs under the store lock, so it must be cheap.
    pub fn list_page(
        &self,
        resource: &str,
        namespace: Option<&str>,
        at: Option<u64>,
        after: Option<(&str, &str)>,
        limit: Option<usize>,
        keep: impl Fn(&Value) -> bool,
    ) -> Option<Page> {
        let inner = self.lock();
        let rv = at.unwrap_or(inner.rv);
        if rv < inner.compacted {
            return None;
        }
        let in_scope = |k: &Key| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns);
        // The earliest change after `rv` to a key knows what the key held at `rv`.
        let mut undo: HashMap<&Key, Option<&Arc<Value>>> = HashMap::new();
        for event in inner.history.iter().rev().take_while(|e| e.rv > rv) {
            if in_scope(&event.key) {
                undo.insert(&event.key, event.prev.as_ref());
            }
        }
        // Exact bounds, so walking the range compares no keys: at 100k objects, reading each
        // key's strings to test it cost a cache miss apiece. No key of the scope sorts at or
        // past "<scope>\0", and a continued page seeks straight past its last key; keys
        // compare as (namespace, name), the map's own order, where "ns/name" strings would
        // misorder namespaces like `a` and `a-b` ('-' sorts before '/').
        let end = match namespace {
            Some(ns) => Key::new(resource, &format!("{ns}\0"), ""),
            None => Key::new(&format!("{resource}\0"), "", ""),
        };
        let (start, past): (_, Option<(&str, &str)>) = match after {
            Some((ns, name)) if namespace.is_none_or(|scope| scope == ns) => {
                (Bound::Excluded(Key::new(resource, ns, name)), None)
            }
            // A position outside the namespace listed (a token from another list): filter.
            other => (
                Bound::Included(Key::new(resource, namespace.unwrap_or(""), "")),
                other,
            ),
        };
        let current = inner.objects.range((start, Bound::Excluded(end)));
        let mut page = Page {
            items: Vec::new(),
            last: None,
            remaining: 0,
            rv,
        };
        if undo.is_empty() {
            page.fill(current, past, limit, &keep);
        } else {
            let mut entries: Vec<(&Key, &Arc<Value>)> = current
                .filter_map(|(k, v)| match undo.get(k) {
                    None => Some((k, v)),
                    Some(prev) => prev.map(|p| (k, p)),
                })
                .collect();
            // Objects deleted since `rv` are gone from the map but belong to the snapshot.
            let deleted = undo.iter().filter(|(k, _)| !inner.objects.contains_key(**k));
            entries.extend(deleted.filter_map(|(k, prev)| prev.map(|p| (*k, p))));
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let past_start =
                |k: &Key| after.is_none_or(|(ns, name)| (k.namespace.as_str(), k.name.as_str()) > (ns, name));
            page.fill(
                entries.into_iter().filter(|(k, _)| past_start(k)),
                past,
                limit,
                &keep,
            );
        }
        Some(page)
    }

    /// Whether any object of any resource lives in `namespace`, and how many.
    pub fn count_in_namespace(&self, namespace: &str) -> usize {
        self.lock()
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .count()
    }

    /// Every key in a namespace, for namespace deletion.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<Key> {
        self.lock()
            .objects
            .keys()
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect()
    }

    /// Every object, for garbage collection sweeps.
    pub fn snapshot(&self) -> Vec<(Key, Arc<Value>)> {
        self.lock()
            .objects
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Reads, decides and writes one object atomically: `decide` sees the current object and
    /// returns what to write, or an error that leaves the store untouched.
    pub fn write<E>(
        &self,
        key: &Key,
        decide: impl FnOnce(Option<&Value>) -> Result<Write, E>,
    ) -> Result<Written, E> {
        let mut inner = self.lock();
        let current = inner.objects.get(key).cloned();
        let decision = decide(current.as_deref())?;
        let (kind, object) = match decision {
            Write::Unchanged => return Ok(Written::Unchanged(current)),
            Write::Put(mut object) => {
                let rv = inner.rv + 1;
                set_resource_version(&mut object, rv);
                let kind = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (kind, Arc::new(object))
            }
            Write::Delete => {
                let Some(current) = current.clone() else {
                    return Ok(Written::Unchanged(None));
                };
                let mut last = (*current).clone();
                set_resource_version(&mut last, inner.rv + 1);
                (EventType::Deleted, Arc::new(last))
            }
        };
        inner.rv += 1;
        let rv = inner.rv;
        if let Some(p) = self
            .persistence
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let stored = (kind != EventType::Deleted).then_some(&*object);
            if let Err(err) = p.record(key, stored, rv) {
                tracing::error!(%err, "persisting a write failed; the data dir is behind memory");
            }
        }
        if kind == EventType::Deleted {
            inner.objects.remove(key);
        } else {
            inner.objects.insert(key.clone(), object.clone());
        }
        let event = Arc::new(Event {
            rv,
            kind,
            key: key.clone(),
            object: object.clone(),
            prev: current,
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        // Sending under the lock keeps the channel in resourceVersion order.
        let _ = self.events.send(event);
        drop(inner);
        Ok(match kind {
            EventType::Deleted => Written::Deleted(object),
            _ => Written::Stored(object),
        })
    }

    /// Starts a watch from `since`: the events after it still in history, then a live feed.
    /// Fails with the oldest resourceVersion still available when `since` was compacted away.
    pub fn watch_from(&self, since: u64) -> Result<WatchStart, u64> {
        let inner = self.lock();
        if since < inner.compacted {
            return Err(inner.compacted);
        }
        let receiver = self.events.subscribe();
        let replay = inner.history.iter().filter(|e| e.rv > since).cloned().collect();
        Ok((replay, receiver))
    }

    /// A live feed of every change from now on, for background controllers.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Drops all history up to now, so watches from older resourceVersions get 410 Gone.
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }

    /// The oldest resourceVersion a watch may start from.
    pub fn compacted_revision(&self) -> u64 {
        self.lock().compacted
    }
}

/// Sets `metadata.resourceVersion`.
pub fn set_resource_version(object: &mut Value, rv: u64) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_owned(), Value::String(rv.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn put(store: &Store, ns: &str, name: &str) {
        let object = json!({"metadata": {"name": name, "namespace": ns}});
        store
            .write(&Key::new("/configmaps", ns, name), |_| {
                Ok::<_, ()>(Write::Put(object))
            })
            .unwrap();
    }

    fn names(page: &Page) -> Vec<String> {
        page.items
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["metadata"]["namespace"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn pages_follow_key_order_across_namespaces() {
        let store = Store::new(100);
        for (ns, name) in [("a", "x"), ("a", "y"), ("a-b", "x"), ("b", "x")] {
            put(&store, ns, name);
        }
        let first = store
            .list_page("/configmaps", None, None, None, Some(2), |_| true)
            .unwrap();
        assert_eq!(names(&first), ["a/x", "a/y"]);
        assert_eq!(first.remaining, 2);
        let last = first.last.unwrap();
        let second = store
            .list_page(
                "/configmaps",
                None,
                Some(first.rv),
                Some((&last.namespace, &last.name)),
                Some(2),
                |_| true,
            )
            .unwrap();
        // "a-b/x" sorts before "a/y" as a string; as a key it follows it and must not be lost.
        assert_eq!(names(&second), ["a-b/x", "b/x"]);
        assert_eq!((second.remaining, second.last), (0, None));
    }

    #[test]
    fn pages_show_the_snapshot_they_started_from() {
        let store = Store::new(100);
        for name in ["a", "b", "c", "d"] {
            put(&store, "ns", name);
        }
        let first = store
            .list_page("/configmaps", Some("ns"), None, None, Some(1), |_| true)
            .unwrap();
        assert_eq!(names(&first), ["ns/a"]);
        put(&store, "ns", "bb");
        store
            .write(&Key::new("/configmaps", "ns", "c"), |_| {
                Ok::<_, ()>(Write::Delete)
            })
            .unwrap();
        put(&store, "ns", "d");
        let rest = store
            .list_page(
                "/configmaps",
                Some("ns"),
                Some(first.rv),
                Some(("ns", "a")),
                None,
                |_| true,
            )
            .unwrap();
        assert_eq!(names(&rest), ["ns/b", "ns/c", "ns/d"]);
        let d = &rest.items[2];
        assert_eq!(d["metadata"]["resourceVersion"], json!(first.rv.to_string()));
        let now = store
            .list_page("/configmaps", Some("ns"), None, None, None, |o| {
                o["metadata"]["name"] != "b"
            })
            .unwrap();
        assert_eq!(names(&now), ["ns/a", "ns/bb", "ns/d"]);
        store.compact();
        assert!(
            store
                .list_page("/configmaps", Some("ns"), Some(first.rv), None, None, |_| true)
                .is_none()
        );
    }
}
