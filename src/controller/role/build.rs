//! The pure half of the CFRole reconciler: the RoleBindings (and, for global roles, the
//! ClusterRoleBinding) a role needs, wherever CF semantics say it reaches.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, RoleRef, Subject};
use kube::{ResourceExt, api::ObjectMeta};

use super::cluster_roles;
use crate::{
    controller::apply::stamp,
    crd::{CFRole, RoleScope, RoleType, SubjectKind},
    labels::{MANAGED_BY, MANAGED_BY_VALUE, OWNER, ROLE_TYPE},
};

/// What resolving a role found: its org, and for org roles the org's spaces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    /// The org the role belongs to (none for global roles).
    pub org: Option<String>,
    /// The space the role belongs to (space roles only).
    pub space: Option<String>,
    /// For org roles: every space namespace of the org, which org roles reach.
    pub org_spaces: Vec<String>,
}

/// Everything a role needs applied.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    /// Namespaced bindings.
    pub role_bindings: Vec<RoleBinding>,
    /// Cluster-wide bindings (global roles only).
    pub cluster_role_bindings: Vec<ClusterRoleBinding>,
}

/// The owner label value for a role's children.
pub fn owner(role: &CFRole) -> String {
    format!(
        "CFRole.{}.{}",
        role.namespace().unwrap_or_default(),
        role.name_any()
    )
}

/// The name of a role's binding in any namespace: unique per source role, within 253 chars.
pub fn binding_name(role: &CFRole) -> String {
    let source = format!("{}/{}", role.namespace().unwrap_or_default(), role.name_any());
    let hash = source.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut name = format!("cf-{:08x}-{}", hash & 0xffff_ffff, role.name_any());
    name.truncate(253);
    name
}

/// The RBAC subject for a role's holder; users and groups get `prefix` (the identity
/// prefix the API maps CF users under).
pub fn subject(role: &CFRole, prefix: &str) -> Subject {
    let s = &role.spec.subject;
    match s.kind {
        SubjectKind::User | SubjectKind::Group => Subject {
            kind: if s.kind == SubjectKind::User {
                "User"
            } else {
                "Group"
            }
            .to_owned(),
            name: format!("{prefix}{}", s.name),
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            namespace: None,
        },
        SubjectKind::ServiceAccount => Subject {
            kind: "ServiceAccount".to_owned(),
            name: s.name.clone(),
            api_group: None,
            namespace: s.namespace.clone(),
        },
    }
}

fn meta(role: &CFRole, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
            (OWNER.to_owned(), owner(role)),
            (ROLE_TYPE.to_owned(), role.spec.type_.as_str().to_owned()),
        ])),
        ..ObjectMeta::default()
    }
}

fn binding(role: &CFRole, namespace: &str, role_ref: RoleRef, prefix: &str) -> RoleBinding {
    stamp(RoleBinding {
        metadata: meta(role, &binding_name(role), Some(namespace)),
        role_ref,
        subjects: Some(vec![subject(role, prefix)]),
    })
}

fn cluster_role_ref(role: RoleType) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: "ClusterRole".to_owned(),
        name: cluster_roles::name(role),
    }
}

fn role_ref(name: String) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: "Role".to_owned(),
        name,
    }
}

/// Name of the Role in the root namespace that lets org members see their org and the domains.
pub fn org_reader_name(org: &str) -> String {
    format!("kubefoundry-org-{org}")
}

/// Name of the Role in the org namespace that lets space members see their space.
pub fn space_reader_name(space: &str) -> String {
    format!("kubefoundry-space-{space}")
}

/// Name of the Role in the org namespace that lets the space's managers see and rename it.
pub fn space_manager_name(space: &str) -> String {
    format!("kubefoundry-space-{space}-manager")
}

/// Org roles that reach into the org's spaces (CF lets them act on space content).
fn reaches_spaces(role: RoleType) -> bool {
    matches!(role, RoleType::OrganizationManager)
}

/// Every binding a role needs.
pub fn desired(role: &CFRole, resolved: &Resolved, root_namespace: &str, prefix: &str) -> Desired {
    let type_ = role.spec.type_;
    let own_namespace = role.namespace().unwrap_or_default();
    let mut out = Desired::default();
    match type_.scope() {
        RoleScope::Global => out.cluster_role_bindings.push(stamp(ClusterRoleBinding {
            metadata: meta(role, &binding_name(role), None),
            role_ref: cluster_role_ref(type_),
            subjects: Some(vec![subject(role, prefix)]),
        })),
        RoleScope::Organization => {
            out.role_bindings
                .push(binding(role, &own_namespace, cluster_role_ref(type_), prefix));
            if let Some(org) = &resolved.org {
                out.role_bindings.push(binding(
                    role,
                    root_namespace,
                    role_ref(org_reader_name(org)),
                    prefix,
                ));
            }
            if reaches_spaces(type_) {
                for space in &resolved.org_spaces {
                    out.role_bindings
                        .push(binding(role, space, cluster_role_ref(type_), prefix));
                }
            }
        }
        RoleScope::Space => {
            out.role_bindings
                .push(binding(role, &own_namespace, cluster_role_ref(type_), prefix));
            if let (Some(org), Some(space)) = (&resolved.org, &resolved.space) {
                // CF lets space managers rename their space; the others only see it.
                let space_role = if type_ == RoleType::SpaceManager {
                    space_manager_name(space)
                } else {
                    space_reader_name(space)
                };
                out.role_bindings
                    .push(binding(role, org, role_ref(space_role), prefix));
                out.role_bindings.push(binding(
                    role,
                    root_namespace,
                    role_ref(org_reader_name(org)),
                    prefix,
                ));
            }
        }
    }
    out
}

fn reader(
    name: String,
    namespace: &str,
    owner_labels: BTreeMap<String, String>,
    rules: Vec<k8s_openapi::api::rbac::v1::PolicyRule>,
) -> Role {
    stamp(Role {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(owner_labels),
            ..ObjectMeta::default()
        },
        rules: Some(rules),
    })
}

fn read_named(resource: &str, name: &str) -> k8s_openapi::api::rbac::v1::PolicyRule {
    named(resource, name, &["get", "watch"])
}

fn named(resource: &str, name: &str, verbs: &[&str]) -> k8s_openapi::api::rbac::v1::PolicyRule {
    k8s_openapi::api::rbac::v1::PolicyRule {
        api_groups: Some(vec![crate::crd::GROUP.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        resource_names: Some(vec![name.to_owned()]),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..Default::default()
    }
}

/// The Role in the root namespace that lets members of `org` read it and list domains.
pub fn org_reader(org: &str, root_namespace: &str, owner_labels: BTreeMap<String, String>) -> Role {
    reader(
        org_reader_name(org),
        root_namespace,
        owner_labels,
        vec![
            read_named("cforgs", org),
            k8s_openapi::api::rbac::v1::PolicyRule {
                api_groups: Some(vec![crate::crd::GROUP.to_owned()]),
                resources: Some(vec!["cfdomains".to_owned()]),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..Default::default()
            },
        ],
    )
}

/// The Role in the org namespace that lets managers of `space` read and rename it (a merge
/// patch, which is how the API writes, so `patch` is all it takes).
pub fn space_manager(space: &str, org_namespace: &str, owner_labels: BTreeMap<String, String>) -> Role {
    reader(
        space_manager_name(space),
        org_namespace,
        owner_labels,
        vec![named("cfspaces", space, &["get", "watch", "patch"])],
    )
}

/// The Role in the org namespace that lets members of `space` read it.
pub fn space_reader(space: &str, org_namespace: &str, owner_labels: BTreeMap<String, String>) -> Role {
    reader(
        space_reader_name(space),
        org_namespace,
        owner_labels,
        vec![read_named("cfspaces", space)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn places(d: &Desired) -> Vec<(String, String)> {
        d.role_bindings
            .iter()
            .map(|b| {
                (
                    b.metadata.namespace.clone().unwrap_or_default(),
                    b.role_ref.name.clone(),
                )
            })
            .collect()
    }

    /// A space developer can act in the space, see the space in its org, and see the org.
    #[test]
    fn space_roles_bind_in_space_org_and_root() {
        let role = fixtures::user_role("r1", "space-1", RoleType::SpaceDeveloper, "alice");
        let resolved = Resolved {
            org: Some("org-1".into()),
            space: Some("space-1".into()),
            org_spaces: vec![],
        };
        let d = desired(&role, &resolved, "cf", "");
        assert_eq!(
            places(&d),
            vec![
                ("space-1".to_owned(), "kubefoundry:space_developer".to_owned()),
                ("org-1".to_owned(), "kubefoundry-space-space-1".to_owned()),
                ("cf".to_owned(), "kubefoundry-org-org-1".to_owned()),
            ]
        );
        let subject = &d.role_bindings[0].subjects.as_ref().unwrap()[0];
        assert_eq!((subject.kind.as_str(), subject.name.as_str()), ("User", "alice"));
        assert!(d.cluster_role_bindings.is_empty());
    }

    /// CF lets space managers rename their space: in the org namespace they are bound to a
    /// Role that may patch that one CFSpace, where other space roles only read it.
    #[test]
    fn space_managers_may_patch_their_space_only() {
        let role = fixtures::user_role("r1", "space-1", RoleType::SpaceManager, "alice");
        let resolved = Resolved {
            org: Some("org-1".into()),
            space: Some("space-1".into()),
            org_spaces: vec![],
        };
        let d = desired(&role, &resolved, "cf", "");
        assert_eq!(
            places(&d)[1],
            ("org-1".to_owned(), "kubefoundry-space-space-1-manager".to_owned())
        );
        let manager = space_manager("space-1", "org-1", BTreeMap::new());
        let rules = manager.rules.unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].resource_names.as_deref(),
            Some(&["space-1".to_owned()][..])
        );
        assert_eq!(rules[0].verbs, ["get", "watch", "patch"]);
        let reader = space_reader("space-1", "org-1", BTreeMap::new());
        assert_eq!(reader.rules.unwrap()[0].verbs, ["get", "watch"]);
    }

    /// Org managers reach every space of their org, as in CF.
    #[test]
    fn org_managers_reach_every_space() {
        let role = fixtures::user_role("r2", "org-1", RoleType::OrganizationManager, "bob");
        let resolved = Resolved {
            org: Some("org-1".into()),
            space: None,
            org_spaces: vec!["s1".into(), "s2".into()],
        };
        let d = desired(&role, &resolved, "cf", "oidc:");
        let namespaces: Vec<_> = places(&d).into_iter().map(|(ns, _)| ns).collect();
        assert_eq!(namespaces, vec!["org-1", "cf", "s1", "s2"]);
        assert_eq!(d.role_bindings[0].subjects.as_ref().unwrap()[0].name, "oidc:bob");
    }

    #[test]
    fn org_users_do_not_reach_spaces() {
        let role = fixtures::user_role("r3", "org-1", RoleType::OrganizationUser, "carol");
        let resolved = Resolved {
            org: Some("org-1".into()),
            space: None,
            org_spaces: vec!["s1".into()],
        };
        assert_eq!(desired(&role, &resolved, "cf", "").role_bindings.len(), 2);
    }

    #[test]
    fn global_roles_are_cluster_role_bindings() {
        let role = fixtures::user_role("r4", "cf", RoleType::GlobalAuditor, "dave");
        let d = desired(&role, &Resolved::default(), "cf", "");
        assert!(d.role_bindings.is_empty());
        assert_eq!(
            d.cluster_role_bindings[0].role_ref.name,
            "kubefoundry:global_auditor"
        );
    }
}
