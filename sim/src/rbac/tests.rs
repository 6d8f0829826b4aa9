//! Tests for RBAC evaluation, rule review, aggregation and the bootstrap policy.

use pretty_assertions::assert_eq;
use serde_json::{Value, json};

use super::*;

fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo::new(name).with_groups(groups.iter().copied())
}

fn alice() -> UserInfo {
    user("alice", &["system:authenticated"])
}

fn res(u: &UserInfo, verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
    Attributes {
        user: u.clone(),
        verb: verb.into(),
        namespace: ns.into(),
        api_group: group.into(),
        resource: resource.into(),
        subresource: sub.into(),
        name: name.into(),
        path: String::new(),
        resource_request: true,
    }
}

fn url(u: &UserInfo, verb: &str, path: &str) -> Attributes {
    Attributes {
        user: u.clone(),
        verb: verb.into(),
        path: path.into(),
        ..Attributes::default()
    }
}

fn role(ns: &str, name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"namespace": ns, "name": name}, "rules": rules})
}

fn cluster_role(name: &str, rules: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": name}, "rules": rules})
}

fn role_binding(ns: &str, name: &str, kind: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"namespace": ns, "name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": role},
        "subjects": subjects})
}

fn cluster_binding(name: &str, role: &str, subjects: Value) -> Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects})
}

fn with_bootstrap(extra: Vec<Value>) -> RbacSnapshot {
    RbacSnapshot::from_objects(bootstrap_policy().into_iter().chain(extra))
}

#[test]
fn rbac_role_binding_allows_in_its_namespace_only() {
    let rbac = RbacSnapshot::from_objects([
        role(
            "dev",
            "cm-reader",
            json!([{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["configmaps"]}]),
        ),
        role_binding(
            "dev",
            "read-cm",
            "Role",
            "cm-reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let d = authorize(&res(&alice(), "list", "", "configmaps", "", "dev", ""), &rbac);
    assert_eq!(
        d,
        Decision {
            allowed: true,
            reason: "RBAC: allowed by RoleBinding \"read-cm/dev\" of Role \"cm-reader\" to User \"alice\""
                .into()
        }
    );
    assert!(!authorize(&res(&alice(), "list", "", "configmaps", "", "prod", ""), &rbac).allowed);
    assert!(!authorize(&res(&alice(), "list", "", "configmaps", "", "", ""), &rbac).allowed);
    assert!(!authorize(&res(&alice(), "delete", "", "configmaps", "", "dev", "x"), &rbac).allowed);
    assert!(
        !authorize(
            &res(&user("bob", &[]), "list", "", "configmaps", "", "dev", ""),
            &rbac
        )
        .allowed
    );
    assert_eq!(
        authorize(&res(&alice(), "list", "", "secrets", "", "dev", ""), &rbac),
        Decision::default()
    );
}

#[test]
fn rbac_cluster_role_binding_reason() {
    let rbac = RbacSnapshot::from_objects([
        cluster_role(
            "ns-reader",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["namespaces"]}]),
        ),
        cluster_binding(
            "alice-ns",
            "ns-reader",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    // GET /api/v1/namespaces/x is namespaced to x by the request parser, and cluster bindings apply.
    let info = request_info("GET", "/api/v1/namespaces/x", "");
    let d = authorize(&Attributes::from_request_info(alice(), &info), &rbac);
    assert_eq!(
        d.reason,
        "RBAC: allowed by ClusterRoleBinding \"alice-ns\" of ClusterRole \"ns-reader\" to User \"alice\""
    );
    assert!(d.allowed);
}

#[test]
fn rbac_role_binding_to_cluster_role_is_namespace_scoped() {
    let rbac = RbacSnapshot::from_objects([
        cluster_role(
            "pod-admin",
            json!([{"verbs": ["*"], "apiGroups": [""], "resources": ["pods"]}]),
        ),
        role_binding(
            "team",
            "pods",
            "ClusterRole",
            "pod-admin",
            json!([{"kind": "Group", "name": "devs"}]),
        ),
    ]);
    let dev = user("dan", &["devs", "system:authenticated"]);
    let d = authorize(&res(&dev, "delete", "", "pods", "", "team", "p"), &rbac);
    assert_eq!(
        d.reason,
        "RBAC: allowed by RoleBinding \"pods/team\" of ClusterRole \"pod-admin\" to Group \"devs\""
    );
    assert!(!authorize(&res(&dev, "delete", "", "pods", "", "other", "p"), &rbac).allowed);
    assert!(!authorize(&res(&dev, "list", "", "pods", "", "", ""), &rbac).allowed);
}

#[test]
fn rbac_service_account_subjects() {
    let sa = add_authenticated_group(UserInfo {
        name: make_service_account_username("ci", "builder"),
        groups: service_account_groups("ci"),
        ..UserInfo::default()
    });
    let rbac = RbacSnapshot::from_objects([
        cluster_role(
            "reader",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
        ),
        // No namespace on the subject: defaults to the binding's namespace.
        role_binding(
            "ci",
            "local",
            "ClusterRole",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "builder"}]),
        ),
        role_binding(
            "other",
            "remote",
            "ClusterRole",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]),
        ),
        // A cluster binding must name the ServiceAccount's namespace.
        cluster_binding(
            "no-ns",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "builder"}]),
        ),
    ]);
    let d = authorize(&res(&sa, "get", "", "secrets", "", "ci", "s"), &rbac);
    assert_eq!(
        d.reason,
        "RBAC: allowed by RoleBinding \"local/ci\" of ClusterRole \"reader\" to ServiceAccount \"builder/ci\""
    );
    let d = authorize(&res(&sa, "get", "", "secrets", "", "other", "s"), &rbac);
    assert_eq!(
        d.reason,
        "RBAC: allowed by RoleBinding \"remote/other\" of ClusterRole \"reader\" to ServiceAccount \"builder/ci\""
    );
    assert!(!authorize(&res(&sa, "get", "", "secrets", "", "third", "s"), &rbac).allowed);

    // Groups of ServiceAccounts bind like any group.
    let rbac = RbacSnapshot::from_objects([
        cluster_role(
            "reader",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"]}]),
        ),
        cluster_binding(
            "all-sa",
            "reader",
            json!([{"kind": "Group", "name": "system:serviceaccounts:ci"}]),
        ),
        cluster_binding(
            "sa",
            "reader",
            json!([{"kind": "ServiceAccount", "name": "builder", "namespace": "ci"}]),
        ),
    ]);
    assert_eq!(
        authorize(&res(&sa, "get", "", "secrets", "", "", "s"), &rbac).reason,
        "RBAC: allowed by ClusterRoleBinding \"all-sa\" of ClusterRole \"reader\" to Group \"system:serviceaccounts:ci\""
    );
    assert!(!authorize(&res(&alice(), "get", "", "secrets", "", "", "s"), &rbac).allowed);
}

#[test]
fn rbac_first_matching_subject_is_reported() {
    let rbac = RbacSnapshot::from_objects([
        cluster_role(
            "r",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
        ),
        cluster_binding(
            "b",
            "r",
            json!([
                {"kind": "User", "name": "bob"},
                {"kind": "Group", "name": "system:authenticated"},
                {"kind": "User", "name": "alice"}
            ]),
        ),
    ]);
    assert_eq!(
        authorize(&res(&alice(), "get", "", "pods", "", "d", "p"), &rbac).reason,
        "RBAC: allowed by ClusterRoleBinding \"b\" of ClusterRole \"r\" to Group \"system:authenticated\""
    );
}

#[test]
fn rbac_resource_wildcards() {
    let rules = json!([
        {"verbs": ["get"], "apiGroups": ["apps"], "resources": ["*/scale"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]},
        {"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
        {"verbs": ["*"], "apiGroups": ["batch"], "resources": ["jobs"]},
        {"verbs": ["list"], "apiGroups": ["*"], "resources": ["*"]},
    ]);
    let rbac = RbacSnapshot::from_objects([
        cluster_role("r", rules),
        cluster_binding("b", "r", json!([{"kind": "User", "name": "alice"}])),
    ]);
    let a = alice();
    let allowed = |attrs: Attributes| authorize(&attrs, &rbac).allowed;
    assert!(allowed(res(&a, "get", "apps", "deployments", "scale", "d", "x")));
    assert!(allowed(res(&a, "get", "apps", "statefulsets", "scale", "d", "x")));
    // `*/scale` covers only the scale subresource, not the parent resource.
    assert!(!allowed(res(&a, "get", "apps", "deployments", "", "d", "x")));
    assert!(!allowed(res(
        &a,
        "get",
        "apps",
        "deployments",
        "status",
        "d",
        "x"
    )));
    // `pods/*` is a literal in RBAC, not a wildcard.
    assert!(!allowed(res(&a, "get", "", "pods", "exec", "d", "x")));
    assert!(allowed(res(&a, "get", "", "pods", "log", "d", "x")));
    assert!(!allowed(res(&a, "get", "", "pods", "", "d", "x")));
    assert!(allowed(res(&a, "deletecollection", "batch", "jobs", "", "d", "")));
    assert!(!allowed(res(&a, "get", "batch", "jobs", "status", "d", "j")));
    assert!(allowed(res(&a, "list", "example.com", "widgets", "", "", "")));
    assert!(allowed(res(&a, "list", "", "pods", "log", "", "")));
    assert!(!allowed(res(&a, "watch", "example.com", "widgets", "", "", "")));
}

#[test]
fn rbac_resource_names() {
    let rbac = RbacSnapshot::from_objects([
        role(
            "d",
            "one-cm",
            json!([{"verbs": ["get", "list", "watch", "update"], "apiGroups": [""],
            "resources": ["configmaps"], "resourceNames": ["settings"]}]),
        ),
        role_binding(
            "d",
            "b",
            "Role",
            "one-cm",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let a = alice();
    assert!(authorize(&res(&a, "get", "", "configmaps", "", "d", "settings"), &rbac).allowed);
    assert!(!authorize(&res(&a, "get", "", "configmaps", "", "d", "other"), &rbac).allowed);
    assert!(!authorize(&res(&a, "list", "", "configmaps", "", "d", ""), &rbac).allowed);
    // kubectl get cm settings -w lists with a metadata.name field selector, which names the object.
    let info = request_info(
        "GET",
        "/api/v1/namespaces/d/configmaps",
        "fieldSelector=metadata.name%3Dsettings&watch=true",
    );
    assert!(authorize(&Attributes::from_request_info(a.clone(), &info), &rbac).allowed);
    let info = request_info(
        "GET",
        "/api/v1/namespaces/d/configmaps",
        "fieldSelector=metadata.name%3Dother",
    );
    assert!(!authorize(&Attributes::from_request_info(a, &info), &rbac).allowed);
}

#[test]
fn rbac_non_resource_urls() {
    let rbac = RbacSnapshot::from_objects([
        cluster_role(
            "urls",
            json!([
                {"verbs": ["get"], "nonResourceURLs": ["/apis/*", "/healthz", "/logs**"]},
                {"verbs": ["post"], "nonResourceURLs": ["*"]},
            ]),
        ),
        cluster_binding("b", "urls", json!([{"kind": "User", "name": "alice"}])),
    ]);
    let a = alice();
    let allowed = |attrs: Attributes| authorize(&attrs, &rbac).allowed;
    assert!(allowed(url(&a, "get", "/apis/apps/v1")));
    assert!(allowed(url(&a, "get", "/apis/")));
    assert!(!allowed(url(&a, "get", "/apis")));
    assert!(allowed(url(&a, "get", "/healthz")));
    assert!(!allowed(url(&a, "get", "/healthz/etcd")));
    assert!(allowed(url(&a, "get", "/logs/kube.log")));
    assert!(allowed(url(&a, "post", "/anything")));
    assert!(!allowed(url(&a, "put", "/anything")));
    // URL rules never grant resource access, nor resource rules URL access.
    assert!(!allowed(res(&a, "get", "", "pods", "", "d", "p")));
}

#[test]
fn rbac_system_masters_always_allowed() {
    let admin = user("root", &["system:masters", "system:authenticated"]);
    let empty = RbacSnapshot::default();
    let d = authorize(&res(&admin, "delete", "", "nodes", "", "", "n1"), &empty);
    assert_eq!(
        d,
        Decision {
            allowed: true,
            reason: String::new()
        }
    );
    assert!(authorize(&url(&admin, "get", "/metrics"), &empty).allowed);
}

#[test]
fn rbac_missing_roles_become_the_denial_reason() {
    let rbac = RbacSnapshot::from_objects([
        cluster_binding(
            "gone",
            "does-not-exist",
            json!([{"kind": "Group", "name": "system:authenticated"}]),
        ),
        role_binding(
            "d",
            "gone-role",
            "Role",
            "nope",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        role_binding(
            "d",
            "not-mine",
            "Role",
            "other",
            json!([{"kind": "User", "name": "bob"}]),
        ),
    ]);
    let d = authorize(&res(&alice(), "get", "", "pods", "", "", "p"), &rbac);
    assert_eq!(
        d,
        Decision {
            allowed: false,
            reason: "RBAC: clusterrole.rbac.authorization.k8s.io \"does-not-exist\" not found".into()
        }
    );
    let d = authorize(&res(&alice(), "get", "", "pods", "", "d", "p"), &rbac);
    assert_eq!(
        d.reason,
        "RBAC: [clusterrole.rbac.authorization.k8s.io \"does-not-exist\" not found, role.rbac.authorization.k8s.io \"nope\" not found]"
    );
    assert_eq!(
        forbidden_message(
            &res(&alice(), "get", "", "pods", "", "", "p"),
            &authorize(&res(&alice(), "get", "", "pods", "", "", "p"), &rbac).reason
        ),
        "pods \"p\" is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" at the cluster scope: RBAC: clusterrole.rbac.authorization.k8s.io \"does-not-exist\" not found"
    );
    // Errors do not matter once something allows the request.
    let mut rbac = rbac;
    rbac.push(cluster_role(
        "pods",
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]),
    ));
    rbac.push(cluster_binding(
        "ok",
        "pods",
        json!([{"kind": "User", "name": "alice"}]),
    ));
    assert!(authorize(&res(&alice(), "get", "", "pods", "", "d", "p"), &rbac).allowed);
    // An unknown roleRef kind is an error too.
    let weird = RbacSnapshot::from_objects([json!({"kind": "ClusterRoleBinding", "metadata": {"name": "w"},
        "roleRef": {"kind": "Thing", "name": "x"}, "subjects": [{"kind": "User", "name": "alice"}]})]);
    assert_eq!(
        authorize(&res(&alice(), "get", "", "pods", "", "", ""), &weird).reason,
        "RBAC: unsupported role reference kind: \"Thing\""
    );
}

#[test]
fn rbac_duplicate_errors_are_collapsed() {
    let rbac = RbacSnapshot::from_objects([
        cluster_binding("a", "missing", json!([{"kind": "User", "name": "alice"}])),
        cluster_binding("b", "missing", json!([{"kind": "User", "name": "alice"}])),
    ]);
    assert_eq!(
        authorize(&res(&alice(), "get", "", "pods", "", "", ""), &rbac).reason,
        "RBAC: clusterrole.rbac.authorization.k8s.io \"missing\" not found"
    );
}

#[test]
fn rbac_bootstrap_discovery_and_self_reviews() {
    let rbac = with_bootstrap(vec![]);
    let a = alice();
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/openapi/v2",
        "/openapi/v3",
        "/healthz",
        "/livez",
        "/readyz",
    ] {
        assert!(authorize(&url(&a, "get", path), &rbac).allowed, "{path}");
    }
    assert!(!authorize(&url(&a, "get", "/metrics"), &rbac).allowed);
    assert!(!authorize(&url(&a, "post", "/version"), &rbac).allowed);
    assert_eq!(
        authorize(&url(&a, "get", "/apis"), &rbac).reason,
        "RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\""
    );
    for (group, resource) in [
        ("authorization.k8s.io", "selfsubjectaccessreviews"),
        ("authorization.k8s.io", "selfsubjectrulesreviews"),
        ("authentication.k8s.io", "selfsubjectreviews"),
    ] {
        assert!(
            authorize(&res(&a, "create", group, resource, "", "", ""), &rbac).allowed,
            "{resource}"
        );
    }
    assert!(
        !authorize(
            &res(
                &a,
                "create",
                "authorization.k8s.io",
                "subjectaccessreviews",
                "",
                "",
                ""
            ),
            &rbac
        )
        .allowed
    );
    assert!(!authorize(&res(&a, "list", "", "pods", "", "default", ""), &rbac).allowed);

    // Anonymous requests see only the public info.
    let anon = anonymous_user();
    assert!(authorize(&url(&anon, "get", "/version"), &rbac).allowed);
    assert!(authorize(&url(&anon, "get", "/healthz"), &rbac).allowed);
    assert!(!authorize(&url(&anon, "get", "/apis"), &rbac).allowed);
    assert!(
        !authorize(
            &res(
                &anon,
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                "",
                "",
                ""
            ),
            &rbac
        )
        .allowed
    );

    // Metrics are only for the system:monitoring group.
    let monitor = user("prom", &["system:monitoring", "system:authenticated"]);
    assert!(authorize(&url(&monitor, "get", "/metrics"), &rbac).allowed);
    assert!(authorize(&url(&monitor, "get", "/readyz/etcd"), &rbac).allowed);

    // With the bootstrap bindings, system:masters is also covered by cluster-admin, but the
    // privileged-group authorizer answers first, without a reason.
    let root = user("root", &["system:masters", "system:authenticated"]);
    assert_eq!(
        authorize(&url(&root, "get", "/metrics"), &rbac),
        Decision {
            allowed: true,
            reason: String::new()
        }
    );
    assert_eq!(
        rules_for(&root, "", &rbac).0[0],
        json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    );
}

#[test]
fn rbac_bootstrap_aggregated_roles() {
    let rbac = with_bootstrap(vec![
        role_binding(
            "d",
            "viewers",
            "ClusterRole",
            "view",
            json!([{"kind": "User", "name": "vic"}]),
        ),
        role_binding(
            "d",
            "editors",
            "ClusterRole",
            "edit",
            json!([{"kind": "User", "name": "eve"}]),
        ),
        role_binding(
            "d",
            "admins",
            "ClusterRole",
            "admin",
            json!([{"kind": "User", "name": "ada"}]),
        ),
    ]);
    let (vic, eve, ada) = (user("vic", &[]), user("eve", &[]), user("ada", &[]));
    let ok = |attrs: Attributes| authorize(&attrs, &rbac).allowed;
    assert!(ok(res(&vic, "list", "", "pods", "", "d", "")));
    assert!(ok(res(&vic, "get", "", "pods", "log", "d", "p")));
    assert!(ok(res(&vic, "get", "", "namespaces", "", "d", "d")));
    assert!(!ok(res(&vic, "get", "", "secrets", "", "d", "s")));
    assert!(!ok(res(&vic, "create", "apps", "deployments", "", "d", "")));
    assert!(!ok(res(&vic, "list", "", "pods", "", "other", "")));
    assert!(ok(res(&eve, "create", "apps", "deployments", "", "d", "")));
    assert!(ok(res(&eve, "get", "", "secrets", "", "d", "s")));
    assert!(ok(res(&eve, "list", "", "configmaps", "", "d", "")));
    assert!(ok(res(&eve, "patch", "apps", "deployments", "scale", "d", "web")));
    assert!(!ok(res(
        &eve,
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "",
        "d",
        ""
    )));
    assert!(ok(res(
        &ada,
        "create",
        "rbac.authorization.k8s.io",
        "rolebindings",
        "",
        "d",
        ""
    )));
    assert!(ok(res(&ada, "delete", "", "pods", "", "d", "p")));
    assert_eq!(
        authorize(&res(&vic, "list", "", "pods", "", "d", ""), &rbac).reason,
        "RBAC: allowed by RoleBinding \"viewers/d\" of ClusterRole \"view\" to User \"vic\""
    );

    // A CRD's role labelled aggregate-to-view flows into view, edit and admin.
    let mut rbac = rbac;
    rbac.push(json!({"kind": "ClusterRole", "metadata": {"name": "widgets-view",
        "labels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}},
        "rules": [{"verbs": ["get", "list"], "apiGroups": ["example.com"], "resources": ["widgets"]}]}));
    for u in [&vic, &eve, &ada] {
        assert!(
            authorize(&res(u, "list", "example.com", "widgets", "", "d", ""), &rbac).allowed,
            "{}",
            u.name
        );
    }
}

#[test]
fn rbac_bootstrap_policy_shape() {
    let objects = bootstrap_policy();
    let find = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .cloned()
            .unwrap()
    };
    for o in &objects {
        assert_eq!(o["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(
            o["metadata"]["labels"]["kubernetes.io/bootstrapping"],
            "rbac-defaults"
        );
        assert_eq!(
            o["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"],
            "true"
        );
    }
    let view = find("ClusterRole", "view");
    assert_eq!(
        view["aggregationRule"]["clusterRoleSelectors"][0]["matchLabels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"],
        "true"
    );
    assert_eq!(
        view["rules"],
        find("ClusterRole", "system:aggregate-to-view")["rules"]
    );
    let edit_rules = find("ClusterRole", "edit")["rules"].as_array().unwrap().len();
    let admin_rules = find("ClusterRole", "admin")["rules"].as_array().unwrap().len();
    assert!(admin_rules > edit_rules && edit_rules > view["rules"].as_array().unwrap().len());
    assert_eq!(
        find("ClusterRole", "edit")["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"],
        "true"
    );
    let discovery = find("ClusterRole", "system:discovery");
    assert_eq!(discovery["rules"][0]["verbs"], json!(["get"]));
    let piv = find("ClusterRoleBinding", "system:public-info-viewer");
    assert_eq!(
        piv["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:public-info-viewer"})
    );
    assert_eq!(
        piv["subjects"],
        json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:unauthenticated"}
        ])
    );
    assert_eq!(
        find("ClusterRoleBinding", "cluster-admin")["subjects"][0]["name"],
        "system:masters"
    );
    assert_eq!(
        find("ClusterRoleBinding", "system:basic-user")["subjects"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn rbac_aggregation_selectors() {
    let roles = vec![
        json!({"kind": "ClusterRole", "metadata": {"name": "agg"},
            "aggregationRule": {"clusterRoleSelectors": [
                {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                {"matchLabels": {"extra": "yes"}, "matchExpressions": [{"key": "skip", "operator": "DoesNotExist"}]}
            ]},
            "rules": [{"verbs": ["stale"], "apiGroups": [""], "resources": ["x"]}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "z-tier-a", "labels": {"tier": "a"}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "b-tier-b", "labels": {"tier": "b"}},
            "rules": [{"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
                      {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": []}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "tier-c", "labels": {"tier": "c"}},
            "rules": [{"verbs": ["delete"], "apiGroups": [""], "resources": ["pods"]}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "extra", "labels": {"extra": "yes"}},
            "rules": [{"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]}]}),
        json!({"kind": "ClusterRole", "metadata": {"name": "extra-skipped", "labels": {"extra": "yes", "skip": ""}},
            "rules": [{"verbs": ["patch"], "apiGroups": [""], "resources": ["pods"]}]}),
    ];
    let aggregated = aggregate_cluster_roles(&roles);
    // Rules come from matched roles in name order, de-duplicated; stale rules are replaced.
    assert_eq!(
        aggregated[0]["rules"],
        json!([
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": []},
            {"verbs": ["watch"], "apiGroups": [""], "resources": ["pods"]},
        ])
    );
    assert_eq!(aggregated[1], roles[1]);
    let snapshot = RbacSnapshot::new(vec![], vec![], roles, vec![]);
    assert_eq!(snapshot.cluster_role_rules("agg").unwrap().len(), 3);
    assert!(snapshot.cluster_role_rules("nope").is_none());
}

#[test]
fn rbac_aggregation_is_transitive_and_survives_cycles() {
    let roles = vec![
        json!({"kind": "ClusterRole", "metadata": {"name": "a", "labels": {"to-b": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-a": "true"}}]}}),
        json!({"kind": "ClusterRole", "metadata": {"name": "b", "labels": {"to-a": "true"}},
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"to-b": "true"}}]}}),
        json!({"kind": "ClusterRole", "metadata": {"name": "leaf", "labels": {"to-b": "true"}},
            "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]}),
    ];
    let aggregated = aggregate_cluster_roles(&roles);
    assert_eq!(
        aggregated[0]["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    );
    assert_eq!(
        aggregated[1]["rules"],
        json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    );
}

#[test]
fn rbac_label_selector_operators() {
    let labels = json!({"env": "prod", "tier": "web"});
    let labels = labels.as_object();
    let m = |sel: Value| label_selector_matches(&sel, labels);
    assert!(m(json!({})));
    assert!(m(json!({"matchLabels": {"env": "prod"}})));
    assert!(!m(json!({"matchLabels": {"env": "dev"}})));
    assert!(m(
        json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]})
    ));
    assert!(m(
        json!({"matchExpressions": [{"key": "missing", "operator": "NotIn", "values": ["dev"]}]})
    ));
    assert!(!m(
        json!({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]})
    ));
    assert!(m(
        json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]})
    ));
    assert!(!m(
        json!({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]})
    ));
    // Invalid selectors select nothing.
    assert!(!m(
        json!({"matchExpressions": [{"key": "env", "operator": "In", "values": []}]})
    ));
    assert!(!m(
        json!({"matchExpressions": [{"key": "env", "operator": "Gt", "values": ["1"]}]})
    ));
    assert!(!label_selector_matches(
        &json!({"matchLabels": {"env": "prod"}}),
        None
    ));
}

#[test]
fn rbac_rules_for_self_subject_rules_review() {
    let rbac = with_bootstrap(vec![
        role(
            "d",
            "cm",
            json!([{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]}]),
        ),
        role_binding(
            "d",
            "cm",
            "Role",
            "cm",
            json!([{"kind": "User", "name": "alice"}]),
        ),
        role_binding(
            "d",
            "broken",
            "Role",
            "missing",
            json!([{"kind": "User", "name": "alice"}]),
        ),
    ]);
    let (resource_rules, non_resource_rules) = rules_for(&alice(), "d", &rbac);
    assert!(resource_rules.contains(
        &json!({"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]})
    ));
    assert_eq!(
        resource_rules.last().unwrap(),
        &json!({"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"]})
    );
    assert!(non_resource_rules.iter().any(|r| {
        r["nonResourceURLs"]
            .as_array()
            .unwrap()
            .contains(&json!("/apis/*"))
    }));
    assert!(non_resource_rules.iter().all(|r| r["verbs"] == json!(["get"])));

    // Other namespaces see only cluster-wide grants.
    let (elsewhere, _) = rules_for(&alice(), "other", &rbac);
    assert_eq!(elsewhere.len(), resource_rules.len() - 1);

    let status = rules_review_status(&alice(), "d", &rbac);
    assert_eq!(status["incomplete"], false);
    assert_eq!(
        status["evaluationError"],
        "role.rbac.authorization.k8s.io \"missing\" not found"
    );
    assert_eq!(status["resourceRules"], json!(resource_rules));
    let status = rules_review_status(&alice(), "other", &rbac);
    assert!(status.get("evaluationError").is_none());
    let (rules, urls) = rules_for(&user("nobody", &[]), "d", &RbacSnapshot::default());
    assert!(rules.is_empty() && urls.is_empty());
}

#[test]
fn rbac_user_info_wire_format() {
    let u: UserInfo = serde_json::from_value(json!({
        "username": "alice", "uid": "42", "groups": ["a", "b"], "extra": {"scopes": ["x"]}
    }))
    .unwrap();
    assert_eq!(u.name, "alice");
    assert_eq!(u.uid, "42");
    assert_eq!(u.groups, vec!["a", "b"]);
    assert_eq!(u.extra["scopes"], vec!["x"]);
    assert_eq!(
        serde_json::to_value(&u).unwrap(),
        json!({"username": "alice", "uid": "42", "groups": ["a", "b"], "extra": {"scopes": ["x"]}})
    );
    let sparse: UserInfo = serde_json::from_value(json!({"username": "bob", "groups": null})).unwrap();
    assert_eq!(sparse, UserInfo::new("bob"));
    assert_eq!(
        serde_json::to_value(UserInfo::new("bob")).unwrap(),
        json!({"username": "bob"})
    );
}

#[test]
fn rbac_access_review_specs() {
    let spec = json!({
        "user": "bob", "uid": "7", "groups": ["devs"], "extra": {"k": ["v"]},
        "resourceAttributes": {"namespace": "d", "verb": "get", "group": "apps", "version": "v1",
            "resource": "deployments", "subresource": "scale", "name": "web"}
    });
    let u = user_from_access_review_spec(&spec);
    assert_eq!(u.name, "bob");
    assert_eq!(u.uid, "7");
    assert_eq!(u.groups, vec!["devs"]);
    assert_eq!(u.extra["k"], vec!["v"]);
    let attrs = Attributes::from_access_review_spec(u.clone(), &spec);
    assert_eq!(attrs, res(&u, "get", "apps", "deployments", "scale", "d", "web"));
    let nr = json!({"nonResourceAttributes": {"path": "/healthz", "verb": "get"}});
    assert_eq!(
        Attributes::from_access_review_spec(u.clone(), &nr),
        url(&u, "get", "/healthz")
    );
}

#[test]
fn rbac_end_to_end_forbidden_message() {
    let rbac = with_bootstrap(vec![]);
    let info = request_info("GET", "/api/v1/namespaces/x", "");
    let attrs = Attributes::from_request_info(alice(), &info);
    let d = authorize(&attrs, &rbac);
    assert!(!d.allowed);
    assert_eq!(
        forbidden_message(&attrs, &d.reason),
        "namespaces \"x\" is forbidden: User \"alice\" cannot get resource \"namespaces\" in API group \"\" in the namespace \"x\""
    );
    let info = request_info("GET", "/api/v1/namespaces/default/configmaps", "");
    let attrs = Attributes::from_request_info(alice(), &info);
    assert_eq!(
        forbidden_message(&attrs, &authorize(&attrs, &rbac).reason),
        "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
    );
    let info = request_info("GET", "/foo", "");
    let attrs = Attributes::from_request_info(alice(), &info);
    assert_eq!(
        forbidden_message(&attrs, ""),
        "forbidden: User \"alice\" cannot get path \"/foo\""
    );
}

#[test]
fn rbac_snapshot_lookups() {
    let mut rbac = RbacSnapshot::default();
    assert!(rbac.push(role("a", "r", json!([]))));
    assert!(rbac.push(role("b", "r", json!([{"verbs": ["x"]}]))));
    assert!(!rbac.push(json!({"kind": "ConfigMap"})));
    assert_eq!(rbac.role("b", "r").unwrap()["rules"][0]["verbs"][0], "x");
    assert!(rbac.role("c", "r").is_none());
    rbac.push(role_binding("a", "x", "Role", "r", json!([])));
    rbac.push(role_binding("b", "y", "Role", "r", json!([])));
    assert_eq!(rbac.role_bindings_in("b").count(), 1);
    assert!(rbac.cluster_role("r").is_none());
}

#[test]
fn rbac_go_quote() {
    assert_eq!(go_quote("plain"), "\"plain\"");
    assert_eq!(go_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_eq!(go_quote("tab\tnl\n\u{1}"), "\"tab\\tnl\\n\\x01\"");
    assert_eq!(go_quote("héllo ✓"), "\"héllo ✓\"");
    assert_eq!(go_quote("\u{a0}\u{feff}"), "\"\\u00a0\\ufeff\"");
}
