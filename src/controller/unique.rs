//! The `UniqueName` condition. Cloud Controller refuses a second org, space (in an org), app or
//! service instance (in a space) with a name already taken, and a second route to the same
//! host, domain, path and port; the façade does too (`api::claims`). Objects applied with
//! kubectl bypass the façade, and there are no admission webhooks, so the controller reports
//! instead: every holder of a name but the oldest gets `UniqueName=False`. It is a report only:
//! `Ready` and the workloads are unaffected.
//!
//! Here are the resolve step (the older holder, from the caches), the build step (the
//! condition, pure) and the watch mapper that wakes the siblings a change may concern.

use std::{
    cmp::Ordering,
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use kube::{
    Resource, ResourceExt,
    core::DeserializeGuard,
    runtime::{controller::Action, reflector::ObjectRef},
};

use super::{
    Cached,
    status::{Want, merge},
};
use crate::crd::{CFApp, CFOrg, CFRoute, CFServiceInstance, CFSpace, CommonStatus};

/// The condition type.
pub const UNIQUE_NAME: &str = "UniqueName";
/// The reason on every holder of a name but the oldest.
pub const DUPLICATE_NAME: &str = "DuplicateName";
/// The reason while no older object holds the name.
pub const NAME_UNIQUE: &str = "NameUnique";

/// A kind whose CF name is unique within a scope.
pub trait Unique: Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    /// The name as messages quote it: `app name "web"`.
    fn describe(&self) -> String;
    /// Whether `other` holds the same name, compared as Cloud Controller compares.
    fn same_name(&self, other: &Self) -> bool;
    /// Whether `other` is in the scope the name is unique within; by default the namespace
    /// (an org's spaces live in its namespace, a space's apps in the space's).
    fn same_scope(&self, other: &Self) -> bool {
        self.meta().namespace == other.meta().namespace
    }
    /// Whether the scope is wider than the namespace (then every cached object is a candidate).
    const GLOBAL: bool = false;
    /// The status conditions are read from.
    fn common(&self) -> Option<&CommonStatus>;
}

/// Case-insensitive, as Cloud Controller's database collation compares names (and as the
/// façade's claims do), without allocating per comparison.
fn same_ci(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

impl Unique for CFOrg {
    fn describe(&self) -> String {
        format!("org name {:?}", self.spec.display_name)
    }
    fn same_name(&self, other: &Self) -> bool {
        same_ci(&self.spec.display_name, &other.spec.display_name)
    }
    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}

impl Unique for CFSpace {
    fn describe(&self) -> String {
        format!("space name {:?}", self.spec.display_name)
    }
    fn same_name(&self, other: &Self) -> bool {
        same_ci(&self.spec.display_name, &other.spec.display_name)
    }
    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}

impl Unique for CFApp {
    fn describe(&self) -> String {
        format!("app name {:?}", self.spec.display_name)
    }
    fn same_name(&self, other: &Self) -> bool {
        same_ci(&self.spec.display_name, &other.spec.display_name)
    }
    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}

impl Unique for CFServiceInstance {
    fn describe(&self) -> String {
        format!("service instance name {:?}", self.spec.display_name)
    }
    fn same_name(&self, other: &Self) -> bool {
        same_ci(&self.spec.display_name, &other.spec.display_name)
    }
    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}

impl Unique for CFRoute {
    fn describe(&self) -> String {
        let s = &self.spec;
        let port = s.port.map(|p| format!(", port {p}")).unwrap_or_default();
        format!(
            "route host {:?}, path {:?} on domain {:?}{port}",
            s.host, s.path, s.domain_guid
        )
    }
    /// The façade's claim key (host, domain, path, port; case-insensitive), so both paths
    /// agree on what a duplicate is.
    fn same_name(&self, other: &Self) -> bool {
        let (a, b) = (&self.spec, &other.spec);
        same_ci(&a.host, &b.host)
            && a.domain_guid == b.domain_guid
            && same_ci(&a.path, &b.path)
            && a.port == b.port
    }
    /// A route's address is global: two spaces cannot serve the same URL.
    fn same_scope(&self, _: &Self) -> bool {
        true
    }
    const GLOBAL: bool = true;
    fn common(&self) -> Option<&CommonStatus> {
        self.status.as_ref().map(|s| &s.common)
    }
}

/// Who holds a name first: the oldest by `creationTimestamp` (which has one-second
/// resolution), ties broken by name and then namespace; an object without a timestamp
/// (never the case for stored objects) counts as newest.
fn older<K: Resource>(a: &K, b: &K) -> Ordering {
    let key = |k: &K| {
        let m = k.meta();
        (
            m.creation_timestamp.is_none(),
            m.creation_timestamp.as_ref().map(|t| t.0),
        )
    };
    key(a)
        .cmp(&key(b))
        .then_with(|| a.meta().name.cmp(&b.meta().name))
        .then_with(|| a.meta().namespace.cmp(&b.meta().namespace))
}

fn is_same_object<K: Resource>(a: &K, b: &K) -> bool {
    a.meta().name == b.meta().name && a.meta().namespace == b.meta().namespace
}

/// Whether `other` is another live holder of `me`'s name in `me`'s scope. Objects being
/// deleted have let their name go (the façade releases its claim on delete too).
fn rival<K: Unique>(me: &K, other: &K) -> bool {
    !is_same_object(me, other)
        && other.meta().deletion_timestamp.is_none()
        && me.same_scope(other)
        && me.same_name(other)
}

/// The oldest other holder of `me`'s name among `others`, if it holds the name before `me`.
pub fn older_holder<'a, K: Unique>(me: &K, others: impl IntoIterator<Item = &'a K>) -> Option<&'a K> {
    others
        .into_iter()
        .filter(|o| rival(me, *o))
        .min_by(|a, b| older(*a, *b))
        .filter(|oldest| older(*oldest, me) == Ordering::Less)
}

/// resolve: the holder `me` must yield its name to, from the cache of its kind.
pub fn resolve<K: Unique>(me: &K, cache: &Cached<K>) -> Option<K> {
    let candidates = candidates(me, cache);
    older_holder(me, candidates.iter().map(AsRef::as_ref)).cloned()
}

/// The cached objects that may share `me`'s scope: its namespace's, unless the scope is global.
fn candidates<K: Unique>(me: &K, cache: &Cached<K>) -> Vec<Arc<K>> {
    if K::GLOBAL {
        cache.state()
    } else {
        cache.in_namespace(me.meta().namespace.as_deref().unwrap_or_default())
    }
}

/// build: the condition for `me`, given the older holder of its name (if any).
pub fn condition<K: Unique>(me: &K, older_holder: Option<&K>) -> Want<'static> {
    match older_holder {
        None => Want {
            type_: UNIQUE_NAME,
            ok: true,
            reason: NAME_UNIQUE,
            message: String::new(),
        },
        Some(o) => Want {
            type_: UNIQUE_NAME,
            ok: false,
            reason: DUPLICATE_NAME,
            message: format!(
                "{} is also used by {} {}/{} (created earlier)",
                me.describe(),
                K::kind(&()),
                o.namespace().unwrap_or_default(),
                o.name_any()
            ),
        },
    }
}

/// build: `common` (already holding `Ready`) with the `UniqueName` condition for `me` merged in.
pub fn with_condition<K: Unique>(common: CommonStatus, me: &K, older_holder: Option<&K>) -> CommonStatus {
    let generation = me.meta().generation;
    CommonStatus {
        conditions: merge(&common.conditions, &[condition(me, older_holder)], generation),
        ..common
    }
}

/// Whether `object` currently reports that it yields its name to an older holder.
fn reports_duplicate<K: Unique>(object: &K) -> bool {
    object
        .common()
        .and_then(|c| c.condition(UNIQUE_NAME))
        .is_some_and(|c| c.status == "False")
}

/// The objects whose `UniqueName` a change of `changed` may flip: those sharing its (new) name,
/// and those now reporting a duplicate, because `changed` may have been the older holder
/// under its previous name (a rename or delete shows only the new name or the deleted object).
/// Each is marked in `woken` for a second look.
pub fn siblings<K: Unique>(
    changed: &K,
    cache: &Cached<K>,
    woken: &Woken,
) -> Vec<ObjectRef<DeserializeGuard<K>>> {
    let refs: Vec<_> = candidates(changed, cache)
        .iter()
        .filter(|o| !is_same_object(changed, o.as_ref()) && changed.same_scope(o))
        .filter(|o| changed.same_name(o) || reports_duplicate(o.as_ref()))
        .map(|o| ObjectRef::new(&o.name_any()).within(&o.namespace().unwrap_or_default()))
        .collect();
    woken.mark::<K>(refs.iter().map(|r| (r.namespace.as_deref(), r.name.as_str())));
    refs
}

/// How soon an object woken by a sibling's change is looked at once more.
const RECHECK: Duration = Duration::from_secs(2);

/// Objects woken by a sibling's change. That change arrived on the reconciler's own watch of
/// the kind; the cache the reconcile resolves siblings from is another watch and may not hold
/// it yet (the older holder still there after its delete). Nothing else would wake the object
/// to correct a stale answer, so each woken object gets one more reconcile shortly after.
#[derive(Default)]
pub struct Woken(Mutex<HashMap<String, Instant>>);

impl Woken {
    fn key<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> String {
        format!("{}/{}/{name}", K::kind(&()), namespace.unwrap_or_default())
    }

    fn mark<'a, K: Resource<DynamicType = ()>>(
        &self,
        objects: impl Iterator<Item = (Option<&'a str>, &'a str)>,
    ) {
        let now = Instant::now();
        let mut woken = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Marks of objects deleted before their reconcile must not pile up.
        woken.retain(|_, at| now.duration_since(*at) < RECHECK * 30);
        for (namespace, name) in objects {
            woken.insert(Self::key::<K>(namespace, name), now);
        }
    }

    /// `action`, or a requeue after a short recheck delay when a sibling's change woke `object`
    /// since its last reconcile.
    pub fn settle<K: Resource<DynamicType = ()>>(&self, object: &K, action: Action) -> Action {
        let key = Self::key::<K>(object.meta().namespace.as_deref(), &object.name_any());
        let mut woken = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if woken.remove(&key).is_some() {
            Action::requeue(RECHECK)
        } else {
            action
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Time, jiff::Timestamp};
    use pretty_assertions::assert_eq;

    use super::*;
    use crate::fixtures;

    fn at<K: Resource>(mut k: K, second: i64) -> K {
        k.meta_mut().creation_timestamp = Some(Time(Timestamp::from_second(1_700_000_000 + second).unwrap()));
        k
    }

    fn unique_name(common: &CommonStatus) -> (String, String, String) {
        let c = common.condition(UNIQUE_NAME).unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    /// Cloud Controller treats `Web` and `web` as one name; the younger of two gets the report
    /// naming the older, which keeps its name.
    #[test]
    fn the_younger_of_two_apps_with_one_name_yields_case_insensitively() {
        let old = at(fixtures::app("a1", "Web"), 0);
        let young = at(fixtures::app("a2", "web"), 5);
        let all = [old.clone(), young.clone()];
        assert_eq!(older_holder(&old, &all).map(ResourceExt::name_any), None);
        assert_eq!(
            older_holder(&young, &all).map(ResourceExt::name_any),
            Some("a1".into())
        );
        let w = condition(&young, older_holder(&young, &all));
        assert_eq!(
            (w.type_, w.ok, w.reason, w.message.as_str()),
            (
                "UniqueName",
                false,
                "DuplicateName",
                r#"app name "web" is also used by CFApp space-1/a1 (created earlier)"#
            )
        );
        let w = condition(&old, older_holder(&old, &all));
        assert_eq!((w.ok, w.reason, w.message.as_str()), (true, "NameUnique", ""));
    }

    /// Timestamps have one-second resolution, so ties are common (one `kubectl apply`); the
    /// name decides, so both objects agree on who is older.
    #[test]
    fn ties_are_broken_by_name_and_every_younger_holder_names_the_oldest() {
        let a = at(fixtures::space("s-a", "dev"), 0);
        let b = at(fixtures::space("s-b", "DEV"), 0);
        let c = at(fixtures::space("s-c", "dev"), 3);
        let all = [c.clone(), b.clone(), a.clone()];
        assert!(older_holder(&a, &all).is_none());
        assert_eq!(older_holder(&b, &all).unwrap().name_any(), "s-a");
        assert_eq!(older_holder(&c, &all).unwrap().name_any(), "s-a");
    }

    /// Names are unique per scope only, and an object on its way out no longer holds its name.
    #[test]
    fn other_scopes_other_names_and_deleted_objects_do_not_clash() {
        let me = at(fixtures::app("a2", "web"), 5);
        let mut elsewhere = at(fixtures::app("a1", "web"), 0);
        elsewhere.metadata.namespace = Some("space-2".into());
        let other_name = at(fixtures::app("a0", "api"), 0);
        let mut leaving = at(fixtures::app("a3", "web"), 0);
        leaving.metadata.deletion_timestamp = leaving.metadata.creation_timestamp.clone();
        let all = [elsewhere, other_name, leaving, me.clone()];
        assert!(older_holder(&me, &all).is_none());
    }

    /// Routes clash across spaces (a URL is global) by host, domain, path and port, as the
    /// façade's claims compare them.
    #[test]
    fn routes_clash_by_address_in_any_space() {
        let old = at(fixtures::route("r1", "web", "d1").path("/api"), 0);
        let mut young = at(fixtures::route("r2", "WEB", "d1").path("/API"), 1);
        young.metadata.namespace = Some("space-2".into());
        let other_path = at(fixtures::route("r3", "web", "d1").path("/v2"), 0);
        let other_domain = at(fixtures::route("r4", "web", "d2").path("/api"), 0);
        let all = [old.clone(), other_path, other_domain, young.clone()];
        let holder = older_holder(&young, &all);
        assert_eq!(holder.map(ResourceExt::name_any), Some("r1".into()));
        assert_eq!(
            condition(&young, holder).message,
            r#"route host "WEB", path "/API" on domain "d1" is also used by CFRoute space-1/r1 (created earlier)"#
        );
    }

    /// The condition joins `Ready` without touching it, and re-merging an unchanged answer
    /// leaves the status equal, so a converged object is never written.
    #[test]
    fn the_condition_merges_beside_ready_and_is_stable() {
        let old = at(fixtures::org("o1", "acme"), 0);
        let mut young = at(fixtures::org("o2", "ACME"), 1);
        young.metadata.generation = Some(3);
        let ready =
            crate::controller::ready_status(&CommonStatus::default(), Some(3), &Ok(()), "NamespaceReady");
        let once = with_condition(ready.clone(), &young, Some(&old));
        assert_eq!(once.condition("Ready"), ready.condition("Ready"));
        assert_eq!(once.observed_generation, Some(3));
        assert_eq!(
            unique_name(&once),
            (
                "False".into(),
                "DuplicateName".into(),
                r#"org name "ACME" is also used by CFOrg cf/o1 (created earlier)"#.into()
            )
        );
        assert_eq!(once.condition(UNIQUE_NAME).unwrap().observed_generation, Some(3));
        let twice = with_condition(once.clone(), &young, Some(&old));
        assert_eq!(twice, once);
        let freed = with_condition(once, &young, None);
        assert_eq!(
            unique_name(&freed),
            ("True".into(), "NameUnique".into(), String::new())
        );
    }

    /// Only a reconcile woken by a sibling gets the second look, and only once.
    #[test]
    fn woken_objects_get_one_recheck() {
        let woken = Woken::default();
        let app = fixtures::app("a1", "web");
        let resync = Action::requeue(Duration::from_secs(300));
        assert_eq!(woken.settle(&app, resync.clone()), resync);
        woken.mark::<CFApp>([(Some("space-1"), "a1")].into_iter());
        // Another kind's object of the same name is not the one woken.
        assert_eq!(woken.settle(&fixtures::space("a1", "x"), resync.clone()), resync);
        assert_eq!(woken.settle(&app, resync.clone()), Action::requeue(RECHECK));
        assert_eq!(woken.settle(&app, resync.clone()), resync);
    }
}
