//! Change feeds of the controller's caches: a cache that also wakes reconcilers.
//!
//! A reconciler woken by its own watch of a related kind may run before the cache it resolves
//! from has seen the change that woke it: the watch and the cache's reflector are separate
//! streams. It would then find the related object stale, wait out a backoff for nothing, and
//! need a live read to avoid it. A [`Feed`] instead publishes each object its cache's reflector
//! applied or deleted *after* the cache holds the change, so a reconcile it wakes reads a cache
//! at least as new as the object that woke it. It also saves a watch of the kind per reconciler.
//!
//! kube-runtime's shared streams (`Controller::watches_shared_stream`) aim at the same thing, but
//! do not wake on deletions, and their handle returns `Pending` without a waker when the object
//! was deleted before the subscriber read it, which can stall the controller's trigger stream.

use std::{
    collections::{HashMap, HashSet},
    ops::Deref,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use futures::{Stream, StreamExt, channel::mpsc};
use kube::runtime::{
    reflector::{ObjectRef, Store},
    watcher,
};

/// Publishes what a cache's reflector applied or deleted to every subscriber.
pub struct Feed<K> {
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Arc<K>>>>>,
}

impl<K> Clone for Feed<K> {
    fn clone(&self) -> Self {
        Self {
            subscribers: self.subscribers.clone(),
        }
    }
}

impl<K> Default for Feed<K> {
    fn default() -> Self {
        Self {
            subscribers: Arc::default(),
        }
    }
}

impl<K: Clone + Send + Sync + 'static> Feed<K> {
    /// Publishes the object of a watch event the cache has applied. Relists republish every
    /// object, as a fresh watch would. Costs nothing while nobody subscribes.
    pub fn publish(&self, event: &watcher::Event<K>) {
        let object = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) | watcher::Event::Delete(o) => o,
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        if self.has_subscribers() {
            self.publish_object(Arc::new(object.clone()));
        }
    }

    /// Whether anyone listens (publishing costs a copy of the object otherwise wasted).
    pub fn has_subscribers(&self) -> bool {
        !self
            .subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// Publishes one object as it is cached.
    pub fn publish_object(&self, object: Arc<K>) {
        let mut subscribers = self.subscribers.lock().unwrap_or_else(PoisonError::into_inner);
        // A subscriber whose reconciler stopped is dropped.
        subscribers.retain(|tx| tx.unbounded_send(object.clone()).is_ok());
    }

    /// The objects `mapper` relates to each published object, for `Controller::reconcile_on`.
    /// Subscribe before the controller runs: its first reconciles then read a cache that holds
    /// every change published before it.
    pub fn triggers<P, I>(
        &self,
        mapper: impl Fn(&K) -> I + Send + 'static,
    ) -> impl Stream<Item = ObjectRef<P>> + Send + 'static
    where
        P: kube::Resource + 'static,
        P::DynamicType: Send,
        I: IntoIterator<Item = ObjectRef<P>>,
    {
        let (tx, rx) = mpsc::unbounded();
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(tx);
        rx.flat_map(move |object: Arc<K>| {
            futures::stream::iter(mapper(&object).into_iter().collect::<Vec<_>>())
        })
    }

    /// The controlling owners of kind `P` of each published object, as `Controller::owns`
    /// would wake them.
    pub fn owners<P>(&self) -> impl Stream<Item = ObjectRef<P>> + Send + 'static
    where
        K: kube::Resource,
        P: kube::Resource<DynamicType = ()> + 'static,
    {
        self.triggers(|child: &K| {
            let namespace = child.meta().namespace.clone();
            child
                .meta()
                .owner_references
                .iter()
                .flatten()
                .filter(|r| {
                    r.controller == Some(true)
                        && r.kind == P::kind(&())
                        && r.api_version == P::api_version(&())
                })
                .map(|r| {
                    let owner = ObjectRef::new(&r.name);
                    match &namespace {
                        Some(ns) => owner.within(ns),
                        None => owner,
                    }
                })
                .collect::<Vec<_>>()
        })
    }
}

/// The names of a cache's objects by namespace, updated by its reflector's task after the
/// store: each applied or deleted object, and the whole store once a relist is done.
#[derive(Clone, Default)]
pub struct NamespaceIndex(Arc<RwLock<HashMap<String, HashSet<String>>>>);

impl NamespaceIndex {
    fn key<K: kube::Resource>(o: &K) -> (String, String) {
        let meta = o.meta();
        (
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// Records an object the store has just applied or deleted. Relist events are not
    /// indexed one by one: the store holds a relist only once it is done ([`Self::replace`]).
    pub fn apply<K: kube::Resource>(&self, event: &watcher::Event<K>) {
        let mut names = self.0.write().unwrap_or_else(PoisonError::into_inner);
        match event {
            watcher::Event::Apply(o) => {
                let (ns, name) = Self::key(o);
                names.entry(ns).or_default().insert(name);
            }
            watcher::Event::Delete(o) => {
                let (ns, name) = Self::key(o);
                if let Some(set) = names.get_mut(&ns) {
                    set.remove(&name);
                    if set.is_empty() {
                        names.remove(&ns);
                    }
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) | watcher::Event::InitDone => {}
        }
    }

    /// Indexes exactly `objects`: the store's content after a relist.
    pub fn replace<K: kube::Resource>(&self, objects: &[Arc<K>]) {
        let mut fresh: HashMap<String, HashSet<String>> = HashMap::new();
        for o in objects {
            let (ns, name) = Self::key(o.as_ref());
            fresh.entry(ns).or_default().insert(name);
        }
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = fresh;
    }

    fn names(&self, namespace: &str) -> Vec<String> {
        let names = self.0.read().unwrap_or_else(PoisonError::into_inner);
        names
            .get(namespace)
            .map(|set| set.iter().cloned().collect())
            .unwrap_or_default()
    }
}

/// A cache and its feed. Reads go through the store (`Deref`), or through
/// [`Cached::in_namespace`] where only one namespace matters: at 10k objects a scan of the
/// whole store per event or reconcile is what bounds the controller.
pub struct Cached<K: kube::Resource + 'static>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    /// The objects, as the reflector last saw them.
    pub store: Store<K>,
    /// What the reflector applied or deleted, once the store holds it.
    pub feed: Feed<K>,
    /// The store's names by namespace.
    pub index: NamespaceIndex,
}

impl<K: kube::Resource<DynamicType = ()> + Clone + 'static> Cached<K> {
    /// The cached objects in `namespace` (`""` for cluster-scoped ones).
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<K>> {
        self.index
            .names(namespace)
            .iter()
            .filter_map(|name| {
                let key = ObjectRef::new(name);
                self.store.get(&if namespace.is_empty() {
                    key
                } else {
                    key.within(namespace)
                })
            })
            .collect()
    }
}

impl<K: kube::Resource + 'static> Clone for Cached<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            feed: self.feed.clone(),
            index: self.index.clone(),
        }
    }
}

impl<K: kube::Resource + 'static> Deref for Cached<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    type Target = Store<K>;

    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn config_map(name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    #[tokio::test]
    async fn subscribers_see_applies_and_deletes_but_not_list_markers() {
        let feed = Feed::<ConfigMap>::default();
        let triggers = feed.triggers(|cm: &ConfigMap| {
            vec![
                ObjectRef::<ConfigMap>::new(&format!(
                    "{}-owner",
                    cm.metadata.name.clone().unwrap_or_default()
                ))
                .within("ns"),
            ]
        });
        feed.publish(&watcher::Event::Init);
        feed.publish(&watcher::Event::InitApply(config_map("a")));
        feed.publish(&watcher::Event::InitDone);
        feed.publish(&watcher::Event::Apply(config_map("b")));
        feed.publish(&watcher::Event::Delete(config_map("c")));
        drop(feed);
        let names: Vec<String> = triggers.map(|r| r.name).collect().await;
        assert_eq!(names, ["a-owner", "b-owner", "c-owner"]);
    }

    #[tokio::test]
    async fn a_dropped_subscriber_is_forgotten() {
        let feed = Feed::<ConfigMap>::default();
        drop(feed.triggers(|_: &ConfigMap| Vec::<ObjectRef<ConfigMap>>::new()));
        feed.publish(&watcher::Event::Apply(config_map("a")));
        assert!(feed.subscribers.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn owners_are_the_controlling_owner_of_the_kind() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let feed = Feed::<ConfigMap>::default();
        let owners = feed.owners::<k8s_openapi::api::apps::v1::Deployment>();
        let owner = |kind: &str, api_version: &str, name: &str, controller: bool| OwnerReference {
            api_version: api_version.into(),
            kind: kind.into(),
            name: name.into(),
            controller: Some(controller),
            ..OwnerReference::default()
        };
        let mut child = config_map("a");
        child.metadata.owner_references = Some(vec![
            owner("Deployment", "apps/v1", "not-controller", false),
            owner("StatefulSet", "apps/v1", "other-kind", true),
            owner("Deployment", "extensions/v1beta1", "other-group", true),
            owner("Deployment", "apps/v1", "web", true),
        ]);
        feed.publish(&watcher::Event::Delete(child));
        drop(feed);
        let refs: Vec<_> = owners.collect().await;
        assert_eq!(refs, [ObjectRef::new("web").within("ns")]);
    }

    #[test]
    fn the_namespace_index_follows_applies_deletes_and_relists() {
        let index = NamespaceIndex::default();
        let named = |ns: &str| {
            let mut names = index.names(ns);
            names.sort();
            names
        };
        index.apply(&watcher::Event::<ConfigMap>::Init);
        index.apply(&watcher::Event::InitApply(config_map("a")));
        assert!(
            named("ns").is_empty(),
            "a relist shows once it is done, as the store does"
        );
        index.apply(&watcher::Event::<ConfigMap>::InitDone);
        index.replace(&[Arc::new(config_map("a"))]);
        index.apply(&watcher::Event::Apply(config_map("b")));
        index.apply(&watcher::Event::Apply(config_map("b")));
        assert_eq!(named("ns"), ["a", "b"]);
        index.apply(&watcher::Event::Delete(config_map("a")));
        assert_eq!(named("ns"), ["b"]);
        // A relist that no longer holds `b` drops it.
        index.apply(&watcher::Event::<ConfigMap>::Init);
        index.apply(&watcher::Event::InitApply(config_map("c")));
        assert_eq!(named("ns"), ["b"], "the old view stands until the relist is done");
        index.replace(&[Arc::new(config_map("c"))]);
        assert_eq!(named("ns"), ["c"]);
        assert!(named("other").is_empty());
    }

    #[test]
    fn publishing_without_subscribers_is_a_no_op() {
        let feed = Feed::<ConfigMap>::default();
        feed.publish(&watcher::Event::Apply(config_map("a")));
        assert!(feed.subscribers.lock().unwrap().is_empty());
    }
}
