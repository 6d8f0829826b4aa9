//! RBAC privilege-escalation prevention, as kube-apiserver's RBAC storage performs it: a user
//! may write a Role or ClusterRole only with the `escalate` verb on it or when it already holds
//! every permission the role grants, and may write a RoleBinding or ClusterRoleBinding only with
//! the `bind` verb on the referenced role or when it already holds every permission that role
//! grants (in the binding's namespace). Members of `system:masters` are exempt, and writes that
//! change nothing but the fields the garbage collector manages (owner references, finalizers) are
//! not checked.

use serde_json::Value;

use super::{
    Attributes, PolicyRule, RbacSnapshot, SYSTEM_MASTERS_GROUP, UserInfo, Visit, authorize, go_quote,
    role_reference_rules, str_at, visit_rules_for,
};

/// The RBAC API group.
const GROUP: &str = "rbac.authorization.k8s.io";

/// Why a write was refused: the message after `<resource> "<name>" is forbidden: `.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EscalationDenied(pub String);

/// Checks a write of the RBAC object `new` (a Role, ClusterRole, RoleBinding or
/// ClusterRoleBinding; anything else passes) by `user`, replacing `old` when it exists.
pub fn check_write(
    user: &UserInfo,
    rbac: &RbacSnapshot,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), EscalationDenied> {
    if user.in_group(SYSTEM_MASTERS_GROUP) {
        return Ok(());
    }
    if old.is_some_and(|old| only_gc_fields_change(old, new)) {
        return Ok(());
    }
    let namespace = new
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    match str_at(new, "kind") {
        kind @ ("Role" | "ClusterRole") => {
            let resource = if kind == "Role" { "roles" } else { "clusterroles" };
            let namespace = if kind == "Role" { namespace } else { "" };
            if allowed(user, rbac, "escalate", resource, namespace, name) {
                return Ok(());
            }
            let rules = new
                .get("rules")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            confirm_no_escalation(user, rbac, namespace, &rules, Vec::new())
        }
        kind @ ("RoleBinding" | "ClusterRoleBinding") => {
            let namespace = if kind == "RoleBinding" { namespace } else { "" };
            let role_ref = new.get("roleRef").unwrap_or(&Value::Null);
            let resource = match str_at(role_ref, "kind") {
                "Role" => "roles",
                "ClusterRole" => "clusterroles",
                _ => "",
            };
            if allowed(user, rbac, "bind", resource, namespace, str_at(role_ref, "name")) {
                return Ok(());
            }
            let rules = role_reference_rules(role_ref, namespace, rbac).map_err(EscalationDenied)?;
            confirm_no_escalation(user, rbac, namespace, &rules, Vec::new())
        }
        _ => Ok(()),
    }
}

fn allowed(
    user: &UserInfo,
    rbac: &RbacSnapshot,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let attrs = Attributes {
        user: user.clone(),
        verb: verb.to_owned(),
        namespace: namespace.to_owned(),
        api_group: GROUP.to_owned(),
        resource: resource.to_owned(),
        name: name.to_owned(),
        resource_request: true,
        ..Attributes::default()
    };
    authorize(&attrs, rbac).allowed
}

// rbacregistry.IsOnlyMutatingGCFields: the new object with the old owner references, finalizers
// and managed fields equals the old one.
fn only_gc_fields_change(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "ownerReferences",
                "finalizers",
                "managedFields",
                "resourceVersion",
                "generation",
            ] {
                meta.remove(field);
            }
        }
        v
    };
    strip(old) == strip(new)
}

// validation.ConfirmNoEscalation: the user's rules in `namespace` must cover `rules`.
fn confirm_no_escalation(
    user: &UserInfo,
    rbac: &RbacSnapshot,
    namespace: &str,
    rules: &[Value],
    mut errors: Vec<String>,
) -> Result<(), EscalationDenied> {
    let mut owner = Vec::new();
    visit_rules_for(user, namespace, rbac, &mut |visit| {
        match visit {
            Visit::Rule { rule, .. } => owner.push(PolicyRule::of(rule)),
            Visit::Error(e) => errors.push(e),
        }
        std::ops::ControlFlow::Continue(())
    });
    let missing = uncovered(&owner, rules);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = user.groups.iter().map(|g| go_quote(g)).collect();
    let mut message = format!(
        "user {} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        go_quote(&user.name),
        groups.join(" "),
        missing.join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(EscalationDenied(message))
}

/// One permission: a verb on one group/resource (optionally one name), or on one URL.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
struct Atom {
    group: String,
    resource: String,
    name: String,
    url: String,
    verb: String,
}

// validation.BreakdownRule: a rule as single-verb, single-resource (single-name) rules.
fn breakdown(rule: &PolicyRule) -> Vec<Atom> {
    let mut atoms = Vec::new();
    let names: Vec<&str> = if rule.resource_names.is_empty() {
        vec![""]
    } else {
        rule.resource_names.iter().map(String::as_str).collect()
    };
    for group in &rule.api_groups {
        for resource in &rule.resources {
            for verb in &rule.verbs {
                for name in &names {
                    atoms.push(Atom {
                        group: group.clone(),
                        resource: resource.clone(),
                        name: (*name).to_owned(),
                        url: String::new(),
                        verb: verb.clone(),
                    });
                }
            }
        }
    }
    for url in &rule.non_resource_urls {
        for verb in &rule.verbs {
            atoms.push(Atom {
                url: url.clone(),
                verb: verb.clone(),
                ..Atom::default()
            });
        }
    }
    atoms
}

// validation.ruleCovers, for one atom of the servant rule.
fn covers(owner: &PolicyRule, atom: &Atom) -> bool {
    let has = |list: &[String], v: &str| list.iter().any(|x| x == v);
    if !(has(&owner.verbs, "*") || has(&owner.verbs, &atom.verb)) {
        return false;
    }
    if !atom.url.is_empty() {
        return owner
            .non_resource_urls
            .iter()
            .any(|u| *u == atom.url || (u.ends_with('*') && atom.url.starts_with(u.trim_end_matches('*'))));
    }
    let group = has(&owner.api_groups, "*") || has(&owner.api_groups, &atom.group);
    let resource = has(&owner.resources, "*")
        || has(&owner.resources, &atom.resource)
        || atom
            .resource
            .split_once('/')
            .is_some_and(|(_, sub)| has(&owner.resources, &format!("*/{sub}")));
    let name =
        owner.resource_names.is_empty() || (!atom.name.is_empty() && has(&owner.resource_names, &atom.name));
    group && resource && name
}

/// The permissions in `servant` that no rule of `owner` covers, compacted per
/// group/resource/name into kube-apiserver's `{APIGroups:[…], Resources:[…], Verbs:[…]}` form.
fn uncovered(owner: &[PolicyRule], servant: &[Value]) -> Vec<String> {
    let mut missing: Vec<Atom> = servant
        .iter()
        .flat_map(|r| breakdown(&PolicyRule::of(r)))
        .filter(|atom| !owner.iter().any(|o| covers(o, atom)))
        .collect();
    missing.sort();
    missing.dedup();
    let mut out: Vec<(Atom, Vec<String>)> = Vec::new();
    for atom in missing {
        let key = Atom {
            verb: String::new(),
            ..atom.clone()
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, verbs)) => verbs.push(atom.verb),
            None => out.push((key, vec![atom.verb])),
        }
    }
    let quote = |items: &[String]| items.iter().map(|s| go_quote(s)).collect::<Vec<_>>().join(" ");
    out.into_iter()
        .map(|(k, verbs)| {
            if !k.url.is_empty() {
                return format!(
                    "{{NonResourceURLs:[{}], Verbs:[{}]}}",
                    go_quote(&k.url),
                    quote(&verbs)
                );
            }
            let names = if k.name.is_empty() {
                String::new()
            } else {
                format!(", ResourceNames:[{}]", go_quote(&k.name))
            };
            format!(
                "{{APIGroups:[{}], Resources:[{}]{names}, Verbs:[{}]}}",
                go_quote(&k.group),
                go_quote(&k.resource),
                quote(&verbs)
            )
        })
        .collect()
}

/// Whether rules `owner` cover every permission in `servant` (validation.Covers).
pub fn rules_cover(owner: &[Value], servant: &[Value]) -> bool {
    let owner: Vec<PolicyRule> = owner.iter().map(PolicyRule::of).collect();
    uncovered(&owner, servant).is_empty()
}

#[cfg(test)]
mod tests {
    use pretty_assertions::assert_eq;
    use serde_json::json;

    use super::*;

    fn user() -> UserInfo {
        UserInfo::new("system:serviceaccount:kf:controller")
            .with_groups(["system:serviceaccounts", "system:authenticated"])
    }

    fn grant(rules: Value) -> RbacSnapshot {
        RbacSnapshot::from_objects([
            json!({"kind": "ClusterRole", "metadata": {"name": "mine"}, "rules": rules}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "mine"},
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": "mine"},
                "subjects": [{"kind": "ServiceAccount", "name": "controller", "namespace": "kf"}]}),
            json!({"kind": "ClusterRole", "metadata": {"name": "big"},
                "rules": [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}]}),
        ])
    }

    fn binding(kind: &str, role_kind: &str, role: &str) -> Value {
        json!({"kind": kind, "metadata": {"name": "b", "namespace": "ns"},
            "roleRef": {"apiGroup": GROUP, "kind": role_kind, "name": role},
            "subjects": [{"kind": "User", "name": "alice"}]})
    }

    #[test]
    fn binding_needs_bind_or_every_permission_of_the_role() {
        let write = |rules: Value| {
            check_write(
                &user(),
                &grant(rules),
                None,
                &binding("RoleBinding", "ClusterRole", "big"),
            )
        };
        let denied = write(json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]))
            .unwrap_err();
        assert!(
            denied
                .0
                .contains("attempting to grant RBAC permissions not currently held"),
            "{}",
            denied.0
        );
        assert!(
            denied
                .0
                .contains(r#"{APIGroups:["apps"], Resources:["deployments"], Verbs:["*"]}"#),
            "{}",
            denied.0
        );
        // `bind` on exactly that ClusterRole suffices; on another name it does not.
        let bind = |name: &str| json!([{"apiGroups": [GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": [name]}]);
        assert_eq!(write(bind("big")), Ok(()));
        assert!(write(bind("other")).is_err());
        // Holding the permissions suffices too.
        assert_eq!(
            write(json!([{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["*"]}])),
            Ok(())
        );
    }

    #[test]
    fn role_write_needs_escalate_or_covering_rules() {
        let role = json!({"kind": "Role", "metadata": {"name": "r", "namespace": "ns"},
            "rules": [{"apiGroups": ["x.dev"], "resources": ["things"], "verbs": ["get"], "resourceNames": ["a"]}]});
        let write = |rules: Value| check_write(&user(), &grant(rules), None, &role);
        assert!(write(json!([{"apiGroups": ["x.dev"], "resources": ["others"], "verbs": ["get"]}])).is_err());
        // A rule without names covers every name; one naming others does not.
        assert_eq!(
            write(json!([{"apiGroups": ["x.dev"], "resources": ["things"], "verbs": ["get", "list"]}])),
            Ok(())
        );
        assert!(write(json!([{"apiGroups": ["x.dev"], "resources": ["things"], "verbs": ["get"], "resourceNames": ["b"]}])).is_err());
        assert_eq!(
            write(json!([{"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["escalate"]}])),
            Ok(())
        );
    }

    #[test]
    fn gc_only_changes_and_masters_are_not_checked() {
        let role = json!({"kind": "ClusterRole", "metadata": {"name": "r"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]});
        let nothing = grant(json!([]));
        assert!(check_write(&user(), &nothing, None, &role).is_err());
        let mut owned = role.clone();
        owned["metadata"]["ownerReferences"] = json!([{"uid": "1"}]);
        assert_eq!(check_write(&user(), &nothing, Some(&role), &owned), Ok(()));
        let admin = UserInfo::new("admin").with_groups([SYSTEM_MASTERS_GROUP]);
        assert_eq!(check_write(&admin, &nothing, None, &role), Ok(()));
    }

    #[test]
    fn subresource_wildcards_and_urls_cover_like_kube() {
        let owner = [
            json!({"apiGroups": [""], "resources": ["*/status"], "verbs": ["get"]}),
            json!({"nonResourceURLs": ["/healthz/*"], "verbs": ["get"]}),
        ];
        assert!(rules_cover(
            &owner,
            &[json!({"apiGroups": [""], "resources": ["pods/status"], "verbs": ["get"]})]
        ));
        assert!(!rules_cover(
            &owner,
            &[json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})]
        ));
        assert!(rules_cover(
            &owner,
            &[json!({"nonResourceURLs": ["/healthz/ping"], "verbs": ["get"]})]
        ));
        assert!(!rules_cover(
            &owner,
            &[json!({"nonResourceURLs": ["/metrics"], "verbs": ["get"]})]
        ));
    }
}
