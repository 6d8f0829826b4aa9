//! What a caller may see, decided the way Cloud Controller decides it, from the CFRole cache:
//! global roles see everything; an org is visible to anyone holding a role in it or in one of
//! its spaces; a space is visible to its space roles and to its org's managers. Objects outside
//! are answered 404, never 403. Writes are decided separately, by Kubernetes RBAC.

use std::collections::HashSet;

use kube::ResourceExt;

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
            if !holds(who, &role) {
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
