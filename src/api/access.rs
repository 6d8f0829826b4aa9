//! What a caller may see, decided the way Cloud Controller decides it, from the CFRole cache:
//! global roles see everything; an org is visible to anyone holding a role in it or in one of
//! its spaces; a space is visible to its space roles and to its org's managers. Objects outside
//! are answered 404, never 403. Writes are decided separately, by Kubernetes RBAC.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
};

use kube::{
    ResourceExt,
    runtime::{reflector::store::Writer, watcher},
};

use super::{Caches, auth::Identity};
use crate::crd::{CFRole, RoleScope, RoleType, SubjectKind};

/// The orgs and spaces one caller may read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// Global role (admin, admin_read_only, global_auditor) or `system:masters`: sees all.
    pub global: bool,
    /// GUIDs of visible orgs.
    pub orgs: HashSet<String>,
    /// GUIDs of visible spaces.
    pub spaces: HashSet<String>,
    /// GUIDs of orgs where the caller is a manager (they may see all its spaces).
    pub managed_orgs: HashSet<String>,
}

impl Access {
    /// The access of `who`, from the current role cache.
    pub fn of(caches: &Caches, who: &Identity) -> Self {
        let mut access = Self::default();
        if who.groups.iter().any(|g| g == "system:masters") {
            access.global = true;
            return access;
        }
        for role in caches.roles.state() {
            // A deleted role waits for its finalizer, but grants nothing from the moment it
            // is deleted (as lists and lookups already treat objects being deleted).
            if role.metadata.deletion_timestamp.is_some() || !holds(who, &role) {
                continue;
            }
            let namespace = role.namespace().unwrap_or_default();
            match role.spec.type_.scope() {
                RoleScope::Global => access.global = true,
                RoleScope::Organization => {
                    if role.spec.type_ == RoleType::OrganizationManager {
                        access.managed_orgs.insert(namespace.clone());
                    }
                    access.orgs.insert(namespace);
                }
                RoleScope::Space => {
                    access.spaces.insert(namespace);
                }
            }
        }
        if access.global {
            return access;
        }
        for space in caches.spaces.state() {
            let org = space.namespace().unwrap_or_default();
            if access.spaces.contains(&space.name_any()) {
                access.orgs.insert(org);
            } else if access.managed_orgs.contains(&org) {
                access.spaces.insert(space.name_any());
            }
        }
        access
    }

    /// Whether the org with this GUID is visible.
    pub fn org(&self, guid: &str) -> bool {
        self.global || self.orgs.contains(guid)
    }

    /// Whether the space with this GUID is visible.
    pub fn space(&self, guid: &str) -> bool {
        self.global || self.spaces.contains(guid)
    }
}

/// Counts the writes to the stores that decide access (CFRoles, CFSpaces, CFOrgs), seqlock-style:
/// `started` is bumped before a watcher event is applied to a store and `finished` after it, so
/// equal counts mean no write is under way and the count names the stores' state exactly.
#[derive(Debug, Default)]
pub struct Generation {
    started: AtomicU64,
    finished: AtomicU64,
}

impl Generation {
    /// Applies a watcher event to a store, counted.
    pub fn apply<K>(&self, writer: &mut Writer<K>, event: &watcher::Event<K>)
    where
        K: kube::Resource + Clone + 'static,
        K::DynamicType: Eq + std::hash::Hash + Clone,
    {
        self.started.fetch_add(1, Ordering::SeqCst);
        writer.apply_watcher_event(event);
        self.finished.fetch_add(1, Ordering::SeqCst);
    }

    /// The current generation, or `None` while a write is under way. `finished` is read first:
    /// a write in progress when `started` is read has already bumped it past that.
    fn stable(&self) -> Option<u64> {
        let finished = self.finished.load(Ordering::SeqCst);
        let started = self.started.load(Ordering::SeqCst);
        (started == finished).then_some(started)
    }
}

/// How many identities [`AccessCache`] keeps before it starts over: beyond this, callers are
/// more varied than a cache helps with, and recomputing is what an uncached façade did anyway.
pub const MAX_CACHED_IDENTITIES: usize = 4096;

/// Each caller's [`Access`], computed once per state of the role, space and org caches rather
/// than on every request (computing it scans every CFRole and CFSpace).
///
/// Entries carry the [`Generation`] they were computed at and are all dropped once it moves,
/// so a role change is seen by the first request that starts after the cache holds it.
#[derive(Debug, Default)]
pub struct AccessCache {
    generation: Arc<Generation>,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    by_identity: HashMap<Identity, Arc<Access>>,
}

impl AccessCache {
    /// The counter the CFRole, CFSpace and CFOrg stores must be written through.
    pub fn generation(&self) -> Arc<Generation> {
        self.generation.clone()
    }

    /// The access of `who`, from the cache when the stores have not changed since.
    pub fn get(&self, caches: &Caches, who: &Identity) -> Arc<Access> {
        let Some(generation) = self.generation.stable() else {
            // A store is being written: what it holds is neither the old state nor settled.
            return Arc::new(Access::of(caches, who));
        };
        {
            let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.generation == generation
                && let Some(access) = entries.by_identity.get(who)
            {
                return access.clone();
            }
        }
        let access = Arc::new(Access::of(caches, who));
        // Kept only if no write started while it was computed (it may have read either side).
        if self.generation.stable() == Some(generation) {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.generation < generation || entries.by_identity.len() >= MAX_CACHED_IDENTITIES {
                entries.by_identity.clear();
                entries.generation = generation;
            }
            // A slower request of an older generation must not displace newer entries.
            if entries.generation == generation {
                entries.by_identity.insert(who.clone(), access.clone());
            }
        }
        access
    }

    /// How many identities are cached (for tests).
    pub fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_identity
            .len()
    }

    /// Whether no identity is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether a CFRole names this caller.
pub fn holds(who: &Identity, role: &CFRole) -> bool {
    let s = &role.spec.subject;
    match s.kind {
        SubjectKind::User => s.name == who.name,
        SubjectKind::Group => who.groups.contains(&s.name),
        SubjectKind::ServiceAccount => {
            who.name
                == format!(
                    "system:serviceaccount:{}:{}",
                    s.namespace.as_deref().unwrap_or_default(),
                    s.name
                )
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use kube::runtime::reflector;

    use super::*;
    use crate::{
        api::v3::roles::testing,
        crd::RoleType,
        fixtures::{self, ORG, SPACE},
    };

    /// Caches with one org and space whose role store is written through the access cache's
    /// generation, as `api::caches` writes it; and that store's writer.
    fn counted_caches() -> (Caches, Writer<CFRole>) {
        let mut caches = testing::caches(
            vec![fixtures::org(ORG, "org")],
            vec![fixtures::space(SPACE, "space")],
            vec![],
        );
        let (roles, writer) = reflector::store();
        caches.roles = roles;
        (caches, writer)
    }

    fn alice() -> Identity {
        Identity::user("alice".into(), vec![])
    }

    #[test]
    fn a_role_change_is_seen_by_the_next_lookup() {
        let (caches, mut writer) = counted_caches();
        let generation = caches.access.generation();
        let role = fixtures::user_role("r1", SPACE, RoleType::SpaceDeveloper, "alice");
        assert!(!caches.access.get(&caches, &alice()).space(SPACE));

        generation.apply(&mut writer, &watcher::Event::Apply(role.clone()));
        let granted = caches.access.get(&caches, &alice());
        assert!(granted.space(SPACE));
        assert!(granted.org(ORG));

        generation.apply(&mut writer, &watcher::Event::Delete(role));
        let revoked = caches.access.get(&caches, &alice());
        assert!(!revoked.space(SPACE));
        assert!(!revoked.org(ORG));
    }

    #[test]
    fn unchanged_stores_answer_from_the_cache() {
        let (caches, mut writer) = counted_caches();
        let generation = caches.access.generation();
        let role = fixtures::user_role("r1", SPACE, RoleType::SpaceDeveloper, "alice");
        generation.apply(&mut writer, &watcher::Event::Apply(role));
        let first = caches.access.get(&caches, &alice());
        let second = caches.access.get(&caches, &alice());
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(caches.access.len(), 1);

        // Any write to a counted store (here an unrelated role) starts over.
        let other = fixtures::user_role("r2", SPACE, RoleType::SpaceDeveloper, "bob");
        generation.apply(&mut writer, &watcher::Event::Apply(other));
        let third = caches.access.get(&caches, &alice());
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(*first, *third);
    }

    #[test]
    fn nothing_is_cached_while_a_write_is_under_way() {
        let (caches, _writer) = counted_caches();
        let generation = caches.access.generation();
        generation.started.fetch_add(1, Ordering::SeqCst);
        let during = caches.access.get(&caches, &alice());
        assert!(caches.access.is_empty());
        generation.finished.fetch_add(1, Ordering::SeqCst);
        let after = caches.access.get(&caches, &alice());
        assert!(!Arc::ptr_eq(&during, &after));
        assert_eq!(caches.access.len(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let (caches, _writer) = counted_caches();
        for i in 0..=MAX_CACHED_IDENTITIES {
            caches
                .access
                .get(&caches, &Identity::user(format!("user-{i}"), vec![]));
        }
        assert!(caches.access.len() <= MAX_CACHED_IDENTITIES);
        assert!(!caches.access.is_empty());
    }
}
