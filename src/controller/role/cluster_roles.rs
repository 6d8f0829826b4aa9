//! The ClusterRole for every CF role type, defined once here and exported by the chart and
//! `deploy/`. Each grants through kubectl exactly what Cloud Foundry lets the role do through
//! the API: space auditors read apps and routes but no Secrets; developers manage apps and
//! their credentials; org managers manage spaces and roles.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::ObjectMeta;

use crate::{
    crd::{GROUP, RoleType},
    labels::{MANAGED_BY, MANAGED_BY_VALUE, ROLE_TYPE},
};

/// The kinds that live in a space namespace.
pub const SPACE_KINDS: &[&str] = &[
    "cfapps",
    "cfprocesses",
    "cfpackages",
    "cfbuilds",
    "cfdroplets",
    "cfroutes",
    "cftasks",
    "cfserviceinstances",
    "cfservicebindings",
];

const READ: &[&str] = &["get", "list", "watch"];
const ALL: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

fn observe_workloads() -> Vec<PolicyRule> {
    vec![rule("", &["pods", "pods/log", "events"], READ)]
}

/// Restarting one app instance (`cf restart-app-instance`) deletes its Pod; its Deployment
/// makes a new one. CF lets developers and supporters do it.
fn restart_instances() -> PolicyRule {
    rule("", &["pods"], &["delete"])
}

/// The name of the ClusterRole for a role type, such as `kubefoundry:space_developer`.
pub fn name(role: RoleType) -> String {
    format!("kubefoundry:{}", role.as_str())
}

/// The rules of a role type.
pub fn rules(role: RoleType) -> Vec<PolicyRule> {
    let mut rules = match role {
        RoleType::Admin => vec![
            rule(GROUP, &["*"], &["*"]),
            rule("", &["secrets"], ALL),
            rule("", &["namespaces"], READ),
        ],
        RoleType::AdminReadOnly => vec![
            rule(GROUP, &["*"], READ),
            rule("", &["secrets", "namespaces"], READ),
        ],
        RoleType::GlobalAuditor => vec![rule(GROUP, &["*"], READ), rule("", &["namespaces"], READ)],
        RoleType::OrganizationManager => vec![
            rule(GROUP, &["cfspaces", "cfroles"], ALL),
            rule(GROUP, SPACE_KINDS, READ),
        ],
        RoleType::OrganizationAuditor => vec![rule(GROUP, &["cfspaces", "cfroles"], READ)],
        RoleType::OrganizationBillingManager | RoleType::OrganizationUser => {
            vec![rule(GROUP, &["cfroles"], READ)]
        }
        RoleType::SpaceManager => vec![rule(GROUP, &["cfroles"], ALL), rule(GROUP, SPACE_KINDS, READ)],
        RoleType::SpaceDeveloper => vec![
            rule(GROUP, SPACE_KINDS, ALL),
            rule(GROUP, &["cfprocesses/scale"], &["get", "update", "patch"]),
            rule(GROUP, &["cfroles"], READ),
            rule("", &["secrets"], ALL),
            restart_instances(),
        ],
        RoleType::SpaceAuditor => vec![rule(GROUP, SPACE_KINDS, READ), rule(GROUP, &["cfroles"], READ)],
        RoleType::SpaceSupporter => vec![
            rule(GROUP, SPACE_KINDS, READ),
            rule(GROUP, &["cfapps", "cfprocesses"], &["update", "patch"]),
            rule(GROUP, &["cfprocesses/scale"], &["get", "update", "patch"]),
            rule(GROUP, &["cfservicebindings"], &["create", "delete"]),
            rule(GROUP, &["cfroles"], READ),
            restart_instances(),
        ],
    };
    if !matches!(
        role,
        RoleType::OrganizationBillingManager | RoleType::OrganizationUser
    ) {
        rules.extend(observe_workloads());
    }
    rules
}

/// Every ClusterRole kubefoundry ships, one per CF role type.
pub fn all() -> Vec<ClusterRole> {
    RoleType::ALL
        .iter()
        .map(|role| ClusterRole {
            metadata: ObjectMeta {
                name: Some(name(*role)),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.to_owned(), MANAGED_BY_VALUE.to_owned()),
                    (ROLE_TYPE.to_owned(), role.as_str().to_owned()),
                ])),
                ..ObjectMeta::default()
            },
            rules: Some(rules(*role)),
            ..ClusterRole::default()
        })
        .collect()
}

/// Every ClusterRole exactly as the controller applies it (with its applied-hash annotation,
/// so a controller finding the shipped copy writes nothing), as one multi-document YAML stream:
/// what `kubefoundry rbac` prints and the Helm chart and `deploy/` ship.
pub fn all_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for role in all() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crate::controller::apply::stamp(role))?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allows(role: RoleType, group: &str, resource: &str, verb: &str) -> bool {
        rules(role).iter().any(|r| {
            r.api_groups
                .as_ref()
                .is_some_and(|g| g.iter().any(|g| g == group))
                && r.resources
                    .as_ref()
                    .is_some_and(|rs| rs.iter().any(|x| x == resource || x == "*"))
                && r.verbs.iter().any(|v| v == verb || v == "*")
        })
    }

    /// The CF contract: auditors see apps but never credentials.
    #[test]
    fn space_auditors_read_apps_but_no_secrets() {
        assert!(allows(RoleType::SpaceAuditor, GROUP, "cfapps", "list"));
        assert!(allows(RoleType::SpaceAuditor, GROUP, "cfroutes", "get"));
        assert!(!allows(RoleType::SpaceAuditor, GROUP, "cfapps", "update"));
        assert!(!allows(RoleType::SpaceAuditor, "", "secrets", "get"));
    }

    #[test]
    fn developers_push_and_supporters_only_operate() {
        assert!(allows(RoleType::SpaceDeveloper, GROUP, "cfapps", "create"));
        assert!(allows(RoleType::SpaceDeveloper, "", "secrets", "create"));
        assert!(allows(RoleType::SpaceSupporter, GROUP, "cfapps", "patch"));
        assert!(!allows(RoleType::SpaceSupporter, GROUP, "cfapps", "create"));
        assert!(!allows(RoleType::SpaceSupporter, "", "secrets", "get"));
        // Both may restart one instance (delete its Pod); auditors may not.
        assert!(allows(RoleType::SpaceDeveloper, "", "pods", "delete"));
        assert!(allows(RoleType::SpaceSupporter, "", "pods", "delete"));
        assert!(!allows(RoleType::SpaceAuditor, "", "pods", "delete"));
    }

    #[test]
    fn org_managers_manage_spaces_and_roles_but_not_apps() {
        assert!(allows(RoleType::OrganizationManager, GROUP, "cfspaces", "create"));
        assert!(allows(RoleType::OrganizationManager, GROUP, "cfroles", "delete"));
        assert!(!allows(RoleType::OrganizationManager, GROUP, "cfapps", "create"));
    }

    #[test]
    fn printed_roles_carry_the_hash_the_controller_applies() {
        let yaml = all_yaml().unwrap();
        let docs: Vec<ClusterRole> = yaml
            .split("---\n")
            .filter(|d| !d.is_empty())
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), RoleType::ALL.len());
        for (printed, role) in docs.iter().zip(all()) {
            assert_eq!(printed, &crate::controller::apply::stamp(role));
        }
    }

    #[test]
    fn one_cluster_role_per_role_type() {
        let roles = all();
        assert_eq!(roles.len(), 11);
        assert!(roles.iter().all(|r| {
            r.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("kubefoundry:"))
        }));
    }
}
