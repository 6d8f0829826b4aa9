//! The 403 Forbidden `Status` kube-apiserver returns when authorization denies a request (and the
//! 401 it returns when authentication fails).

use serde_json::{Map, Value, json};

use super::{Attributes, go_quote};

/// The `message` of kube-apiserver's 403 Status for a denied request, e.g.
/// `configmaps is forbidden: User "alice" cannot list resource "configmaps" in API group "" in the namespace "default"`,
/// `namespaces "x" is forbidden: User "alice" cannot get resource "namespaces" in API group "" at the cluster scope`
/// or, for non-resource requests, `forbidden: User "alice" cannot get path "/foo"`.
///
/// A non-empty authorizer `reason` (RBAC gives one only when some binding's role could not be
/// found, e.g. `RBAC: clusterrole.rbac.authorization.k8s.io "x" not found`) is appended after
/// `": "`.
pub fn forbidden_message(attrs: &Attributes, reason: &str) -> String {
    let mut detail = sanitize(&describe_denial(attrs));
    if !reason.is_empty() {
        detail.push_str(": ");
        detail.push_str(reason);
    }
    let qualified = qualified_resource(attrs);
    if qualified.is_empty() {
        format!("forbidden: {detail}")
    } else if attrs.name.is_empty() {
        format!("{qualified} is forbidden: {detail}")
    } else {
        format!("{qualified} {} is forbidden: {detail}", go_quote(&attrs.name))
    }
}

/// The full 403 `Status` object (`reason: Forbidden`, `details` naming the group, resource and
/// object) kube-apiserver writes for a denied request.
pub fn forbidden_status(attrs: &Attributes, reason: &str) -> Value {
    let mut details = Map::new();
    for (key, value) in [
        ("name", &attrs.name),
        ("group", &attrs.api_group),
        ("kind", &attrs.resource),
    ] {
        if !value.is_empty() {
            details.insert(key.to_owned(), Value::String(value.clone()));
        }
    }
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": forbidden_message(attrs, reason),
        "reason": "Forbidden",
        "details": details,
        "code": 403,
    })
}

/// The 401 `Status` kube-apiserver returns when a request presents credentials that do not
/// authenticate (or none, with anonymous auth disabled).
pub fn unauthorized_status() -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    })
}

fn describe_denial(attrs: &Attributes) -> String {
    let user = go_quote(&attrs.user.name);
    if !attrs.resource_request {
        return format!("User {user} cannot {} path {}", attrs.verb, go_quote(&attrs.path));
    }
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace {}", go_quote(&attrs.namespace))
    };
    format!(
        "User {user} cannot {} resource {} in API group {} {scope}",
        attrs.verb,
        go_quote(&resource),
        go_quote(&attrs.api_group)
    )
}

// schema.GroupResource's String(): `resource.group`, or just `resource` for the core group.
fn qualified_resource(attrs: &Attributes) -> String {
    if attrs.api_group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.api_group)
    }
}

// The apiserver keeps denial text from looking like HTML.
fn sanitize(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::super::UserInfo;
    use super::*;

    fn attrs(verb: &str, group: &str, resource: &str, sub: &str, ns: &str, name: &str) -> Attributes {
        Attributes {
            user: UserInfo::new("alice"),
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

    #[test]
    fn rbac_forbidden_namespaced_list() {
        assert_eq!(
            forbidden_message(&attrs("list", "", "configmaps", "", "default", ""), ""),
            "configmaps is forbidden: User \"alice\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        );
    }

    #[test]
    fn rbac_forbidden_named_cluster_scope() {
        assert_eq!(
            forbidden_message(&attrs("get", "", "namespaces", "", "", "x"), ""),
            "namespaces \"x\" is forbidden: User \"alice\" cannot get resource \"namespaces\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            forbidden_message(
                &attrs(
                    "delete",
                    "rbac.authorization.k8s.io",
                    "clusterroles",
                    "",
                    "",
                    "admin"
                ),
                ""
            ),
            "clusterroles.rbac.authorization.k8s.io \"admin\" is forbidden: User \"alice\" cannot delete resource \"clusterroles\" in API group \"rbac.authorization.k8s.io\" at the cluster scope"
        );
    }

    #[test]
    fn rbac_forbidden_subresource() {
        assert_eq!(
            forbidden_message(&attrs("create", "", "pods", "log", "d", "p"), ""),
            "pods \"p\" is forbidden: User \"alice\" cannot create resource \"pods/log\" in API group \"\" in the namespace \"d\""
        );
        assert_eq!(
            forbidden_message(&attrs("patch", "apps", "deployments", "scale", "d", "web"), ""),
            "deployments.apps \"web\" is forbidden: User \"alice\" cannot patch resource \"deployments/scale\" in API group \"apps\" in the namespace \"d\""
        );
    }

    #[test]
    fn rbac_forbidden_non_resource() {
        let a = Attributes {
            user: UserInfo::new("alice"),
            verb: "get".into(),
            path: "/foo".into(),
            ..Attributes::default()
        };
        assert_eq!(
            forbidden_message(&a, ""),
            "forbidden: User \"alice\" cannot get path \"/foo\""
        );
        let anon = Attributes {
            user: UserInfo::new("system:anonymous"),
            verb: "get".into(),
            path: "/".into(),
            ..a
        };
        assert_eq!(
            forbidden_message(&anon, ""),
            "forbidden: User \"system:anonymous\" cannot get path \"/\""
        );
    }

    #[test]
    fn rbac_forbidden_reason_suffix_and_sanitizing() {
        let a = attrs("get", "", "pods", "", "d", "");
        assert_eq!(
            forbidden_message(
                &a,
                "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
            ),
            "pods is forbidden: User \"alice\" cannot get resource \"pods\" in API group \"\" in the namespace \"d\": RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found"
        );
        let mut odd = a;
        odd.user.name = "<b>&\"".into();
        assert_eq!(
            forbidden_message(&odd, ""),
            "pods is forbidden: User \"&lt;b&gt;&amp;\\\"\" cannot get resource \"pods\" in API group \"\" in the namespace \"d\""
        );
    }

    #[test]
    fn rbac_unauthorized_status_body() {
        assert_eq!(
            unauthorized_status(),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401})
        );
    }

    #[test]
    fn rbac_forbidden_status_body() {
        let status = forbidden_status(&attrs("get", "apps", "deployments", "", "d", "web"), "");
        assert_eq!(status["kind"], "Status");
        assert_eq!(status["apiVersion"], "v1");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["reason"], "Forbidden");
        assert_eq!(status["code"], 403);
        assert_eq!(
            status["details"],
            json!({"name": "web", "group": "apps", "kind": "deployments"})
        );
        let non_resource = Attributes {
            verb: "get".into(),
            path: "/x".into(),
            ..Attributes::default()
        };
        let status = forbidden_status(&non_resource, "");
        assert_eq!(status["details"], json!({}));
        assert_eq!(status["message"], "forbidden: User \"\" cannot get path \"/x\"");
    }
}
