//! Request classification as kube-apiserver's `RequestInfoFactory` does it: resource vs
//! non-resource, kube verb, group/version, namespace, resource, subresource and name.

/// What kube-apiserver learns from a request's method, path and query before authorizing it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestInfo {
    /// True for `/api/{v}/...` and `/apis/{g}/{v}/...` paths deep enough to name a resource.
    pub is_resource_request: bool,
    /// The URL path, as given.
    pub path: String,
    /// Kube verb for resource requests; the lowercase HTTP method for non-resource requests.
    pub verb: String,
    /// `api` or `apis` for resource requests.
    pub api_prefix: String,
    /// API group; empty for the core (`/api`) group.
    pub api_group: String,
    /// API version, e.g. `v1`.
    pub api_version: String,
    /// Namespace named in the path (for `/namespaces/{ns}` itself too); empty otherwise.
    pub namespace: String,
    /// Resource, e.g. `pods`; `namespaces` for `/api/v1/namespaces/{ns}`.
    pub resource: String,
    /// Subresource, e.g. `log`, `status`, `scale`.
    pub subresource: String,
    /// Object name from the path, or from a `metadata.name=` field selector on list/watch.
    pub name: String,
    /// Path segments from the resource on (`resource/name/subresource/...`).
    pub parts: Vec<String>,
    /// Raw `fieldSelector` of a list/watch/deletecollection request.
    pub field_selector: String,
    /// Raw `labelSelector` of a list/watch/deletecollection request.
    pub label_selector: String,
    /// Set when kube-apiserver would reject the request while classifying it (it answers 500
    /// `failed to create RequestInfo: ...`), e.g. `/api/v1/watch` with nothing after it.
    pub error: Option<String>,
}

/// Classifies a request like kube-apiserver's `RequestInfoFactory` (API prefixes `api` and
/// `apis`, the former without a group).
///
/// `method` is the HTTP method (`GET`, `POST`, ...), `path` the already-decoded URL path and
/// `query` the raw query string without `?`.
pub fn request_info(method: &str, path: &str, query: &str) -> RequestInfo {
    let mut info = RequestInfo {
        path: path.to_owned(),
        verb: method.to_ascii_lowercase(),
        ..RequestInfo::default()
    };
    let trimmed = path.trim_matches('/');
    let mut parts: Vec<&str> = if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    };
    if parts.len() < 3 || !matches!(parts[0], "api" | "apis") {
        return info;
    }
    let prefix = parts.remove(0);
    if prefix == "apis" {
        if parts.len() < 3 {
            return info;
        }
        info.api_group = parts.remove(0).to_owned();
    }
    info.api_prefix = prefix.to_owned();
    info.is_resource_request = true;
    info.api_version = parts.remove(0).to_owned();

    let mut verb_via_path = false;
    if matches!(parts[0], "proxy" | "watch") {
        if parts.len() < 2 {
            let url = if query.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{query}")
            };
            info.error = Some(format!("unable to determine kind and namespace from url, {url}"));
            return info;
        }
        info.verb = parts.remove(0).to_owned();
        verb_via_path = true;
    } else {
        info.verb = match method {
            "POST" => "create",
            "GET" | "HEAD" => "get",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "",
        }
        .to_owned();
    }

    if parts[0] == "namespaces" && parts.len() > 1 {
        info.namespace = parts[1].to_owned();
        // `status` and `finalize` are subresources of the namespace, anything else is a
        // namespaced resource in its own right.
        if parts.len() > 2 && !matches!(parts[2], "status" | "finalize") {
            parts.drain(..2);
        }
    }
    info.parts = parts.iter().map(|p| (*p).to_owned()).collect();
    if parts.len() >= 3 && info.verb != "proxy" {
        info.subresource = parts[2].to_owned();
    }
    if parts.len() >= 2 {
        info.name = parts[1].to_owned();
    }
    info.resource = parts[0].to_owned();

    let params = parse_query(query);
    let first = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    if info.name.is_empty() && info.verb == "get" {
        let watch = first("watch").is_some_and(|v| v != "0" && !v.eq_ignore_ascii_case("false"));
        info.verb = if watch { "watch" } else { "list" }.to_owned();
        if list_options_decode(&params)
            && let Some(name) = first("fieldSelector").and_then(exact_name_from_field_selector)
            && is_path_segment_name(&name)
        {
            info.name = name;
        }
    }
    if info.name.is_empty() && info.verb == "delete" {
        info.verb = "deletecollection".to_owned();
    }
    if !verb_via_path && matches!(info.verb.as_str(), "list" | "watch" | "deletecollection") {
        info.field_selector = first("fieldSelector").unwrap_or_default().to_owned();
        info.label_selector = first("labelSelector").unwrap_or_default().to_owned();
    }
    info
}

// Whether ListOptions would decode from these parameters; when it fails the apiserver drops the
// field selector (and with it any name taken from `metadata.name`).
fn list_options_decode(params: &[(String, String)]) -> bool {
    let first = |key: &str| params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let ints_ok = ["limit", "timeoutSeconds"]
        .iter()
        .all(|k| first(k).is_none_or(|v| v.parse::<i64>().is_ok()));
    let fields_ok = first("fieldSelector").is_none_or(|s| parse_field_selector(s).is_some());
    ints_ok && fields_ok
}

/// Go's `url.ParseQuery`: `&`-separated pairs, `+` as space, `%XX` escapes; pairs with a `;`
/// or a bad escape are dropped.
fn parse_query(query: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in query.split('&') {
        if pair.is_empty() || pair.contains(';') {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if let (Some(k), Some(v)) = (query_unescape(k), query_unescape(v)) {
            out.push((k, v));
        }
    }
    out
}

fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

enum FieldTerm {
    Equals(String, String),
    NotEquals,
}

// fields.ParseSelector: comma-separated `field=value`, `field==value` or `field!=value` terms
// with `\` escapes; `None` when it does not parse.
fn parse_field_selector(selector: &str) -> Option<Vec<FieldTerm>> {
    let mut terms = split_unescaped(selector, ',');
    terms.sort();
    let mut out = Vec::new();
    for term in terms.iter().filter(|t| !t.is_empty()) {
        let (field, op, value) = split_term(term)?;
        let value = unescape_field_value(value)?;
        out.push(match op {
            "!=" => FieldTerm::NotEquals,
            _ => FieldTerm::Equals(field.to_owned(), value),
        });
    }
    Some(out)
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            current.push(c);
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut current));
        } else {
            current.push(c);
        }
    }
    out.push(current);
    out
}

fn split_term(term: &str) -> Option<(&str, &str, &str)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if c == '\\' {
            escaped = true;
            continue;
        }
        for op in ["!=", "==", "="] {
            if term[i..].starts_with(op) {
                return Some((&term[..i], op, &term[i + op.len()..]));
            }
        }
    }
    None
}

fn unescape_field_value(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if escaped {
            if !matches!(c, '\\' | ',' | '=') {
                return None;
            }
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if matches!(c, ',' | '=') {
            return None;
        } else {
            out.push(c);
        }
    }
    (!escaped).then_some(out)
}

fn exact_name_from_field_selector(selector: &str) -> Option<String> {
    parse_field_selector(selector)?.into_iter().find_map(|t| match t {
        FieldTerm::Equals(field, value) if field == "metadata.name" => Some(value),
        _ => None,
    })
}

// path.IsPathSegmentName: a name usable as one URL path segment.
fn is_path_segment_name(name: &str) -> bool {
    name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ri(method: &str, path: &str, query: &str) -> RequestInfo {
        request_info(method, path, query)
    }

    #[test]
    fn rbac_request_info_namespace_itself() {
        let info = ri("GET", "/api/v1/namespaces/x", "");
        assert!(info.is_resource_request);
        assert_eq!(info.api_prefix, "api");
        assert_eq!(info.api_group, "");
        assert_eq!(info.api_version, "v1");
        assert_eq!(info.verb, "get");
        assert_eq!(info.namespace, "x");
        assert_eq!(info.resource, "namespaces");
        assert_eq!(info.name, "x");
        assert_eq!(info.subresource, "");
        assert_eq!(info.parts, vec!["namespaces", "x"]);
    }

    #[test]
    fn rbac_request_info_namespace_list_and_subresources() {
        let list = ri("GET", "/api/v1/namespaces", "");
        assert_eq!(
            (
                list.verb.as_str(),
                list.resource.as_str(),
                list.namespace.as_str()
            ),
            ("list", "namespaces", "")
        );
        let status = ri("PUT", "/api/v1/namespaces/x/status", "");
        assert_eq!(status.verb, "update");
        assert_eq!(status.namespace, "x");
        assert_eq!(status.resource, "namespaces");
        assert_eq!(status.name, "x");
        assert_eq!(status.subresource, "status");
        let finalize = ri("PUT", "/api/v1/namespaces/x/finalize", "");
        assert_eq!(finalize.subresource, "finalize");
        let del = ri("DELETE", "/api/v1/namespaces/x", "");
        assert_eq!(del.verb, "delete");
    }

    #[test]
    fn rbac_request_info_pod_log() {
        let info = ri("GET", "/api/v1/namespaces/x/pods/y/log", "follow=true");
        assert_eq!(info.verb, "get");
        assert_eq!(info.namespace, "x");
        assert_eq!(info.resource, "pods");
        assert_eq!(info.name, "y");
        assert_eq!(info.subresource, "log");
        assert_eq!(info.parts, vec!["pods", "y", "log"]);
    }

    #[test]
    fn rbac_request_info_deployment_scale() {
        let info = ri("PATCH", "/apis/apps/v1/namespaces/x/deployments/y/scale", "");
        assert!(info.is_resource_request);
        assert_eq!(info.api_prefix, "apis");
        assert_eq!(info.api_group, "apps");
        assert_eq!(info.api_version, "v1");
        assert_eq!(info.verb, "patch");
        assert_eq!(info.namespace, "x");
        assert_eq!(info.resource, "deployments");
        assert_eq!(info.name, "y");
        assert_eq!(info.subresource, "scale");
    }

    #[test]
    fn rbac_request_info_cluster_scoped() {
        let info = ri("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "");
        assert!(info.is_resource_request);
        assert_eq!(info.api_group, "rbac.authorization.k8s.io");
        assert_eq!(info.verb, "list");
        assert_eq!(info.namespace, "");
        assert_eq!(info.resource, "clusterroles");
        let create = ri("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", "");
        assert_eq!(create.verb, "create");
        let one = ri("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", "");
        assert_eq!((one.verb.as_str(), one.name.as_str()), ("get", "admin"));
        let put = ri("PUT", "/apis/rbac.authorization.k8s.io/v1/clusterroles/admin", "");
        assert_eq!(put.verb, "update");
    }

    #[test]
    fn rbac_request_info_non_resource() {
        for path in [
            "/version",
            "/apis",
            "/healthz",
            "/openapi/v3",
            "/api",
            "/api/v1",
            "/apis/apps",
            "/apis/apps/v1",
            "/",
        ] {
            let info = ri("GET", path, "");
            assert!(!info.is_resource_request, "{path}");
            assert_eq!(info.verb, "get", "{path}");
            assert_eq!(info.path, path);
            assert_eq!(info.resource, "");
            assert_eq!(info.api_prefix, "");
        }
        assert_eq!(ri("POST", "/foo/bar/baz", "").verb, "post");
        assert_eq!(ri("HEAD", "/healthz", "").verb, "head");
        assert!(!ri("GET", "/openapi/v3/apis/apps/v1", "").is_resource_request);
    }

    #[test]
    fn rbac_request_info_list_watch_deletecollection() {
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "").verb, "list");
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "watch=true").verb, "watch");
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "watch=1").verb, "watch");
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "watch=").verb, "watch");
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "watch=false").verb, "list");
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "watch=FALSE").verb, "list");
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods", "watch=0").verb, "list");
        // A name in the path means get, whatever the query says.
        assert_eq!(ri("GET", "/api/v1/namespaces/d/pods/p", "watch=true").verb, "get");
        assert_eq!(
            ri("DELETE", "/api/v1/namespaces/d/pods", "").verb,
            "deletecollection"
        );
        assert_eq!(ri("DELETE", "/api/v1/namespaces/d/pods/p", "").verb, "delete");
        assert_eq!(ri("OPTIONS", "/api/v1/namespaces/d/pods", "").verb, "");
        assert_eq!(ri("HEAD", "/api/v1/namespaces/d/pods/p", "").verb, "get");
    }

    #[test]
    fn rbac_request_info_selectors_and_name_from_field_selector() {
        let info = ri(
            "GET",
            "/api/v1/namespaces/d/configmaps",
            "fieldSelector=metadata.name%3Dcm1&labelSelector=a%3Db",
        );
        assert_eq!(info.verb, "list");
        assert_eq!(info.name, "cm1");
        assert_eq!(info.field_selector, "metadata.name=cm1");
        assert_eq!(info.label_selector, "a=b");
        let watch = ri(
            "GET",
            "/api/v1/namespaces/d/configmaps",
            "watch=1&fieldSelector=metadata.name==cm2",
        );
        assert_eq!((watch.verb.as_str(), watch.name.as_str()), ("watch", "cm2"));
        let other = ri("GET", "/api/v1/pods", "fieldSelector=spec.nodeName%3Dn1");
        assert_eq!(other.name, "");
        let not_eq = ri("GET", "/api/v1/pods", "fieldSelector=metadata.name!%3Dx");
        assert_eq!(not_eq.name, "");
        let bad = ri("GET", "/api/v1/pods", "fieldSelector=metadata.name%3Dx,bogus");
        assert_eq!(bad.name, "");
        let bad_limit = ri("GET", "/api/v1/pods", "limit=abc&fieldSelector=metadata.name%3Dx");
        assert_eq!((bad_limit.verb.as_str(), bad_limit.name.as_str()), ("list", ""));
        let slash = ri("GET", "/api/v1/pods", "fieldSelector=metadata.name%3Da/b");
        assert_eq!(slash.name, "");
        let two = ri(
            "GET",
            "/api/v1/pods",
            "fieldSelector=status.phase%3DRunning,metadata.name%3Dp",
        );
        assert_eq!(two.name, "p");
        let dc = ri("DELETE", "/api/v1/namespaces/d/pods", "labelSelector=x");
        assert_eq!(dc.label_selector, "x");
        assert_eq!(
            ri("GET", "/api/v1/namespaces/d/pods/p", "labelSelector=x").label_selector,
            ""
        );
    }

    #[test]
    fn rbac_request_info_special_verbs() {
        let watch = ri("GET", "/api/v1/watch/namespaces/d/pods", "");
        assert_eq!(
            (
                watch.verb.as_str(),
                watch.namespace.as_str(),
                watch.resource.as_str()
            ),
            ("watch", "d", "pods")
        );
        assert_eq!(watch.field_selector, "");
        let watch_one = ri("GET", "/apis/apps/v1/watch/namespaces/d/deployments/x", "");
        assert_eq!((watch_one.verb.as_str(), watch_one.name.as_str()), ("watch", "x"));
        let proxy = ri("GET", "/api/v1/proxy/namespaces/d/pods/p/some/path", "");
        assert_eq!(proxy.verb, "proxy");
        assert_eq!(proxy.name, "p");
        assert_eq!(proxy.subresource, "");
        let err = ri("GET", "/api/v1/watch", "x=1");
        assert_eq!(
            err.error.as_deref(),
            Some("unable to determine kind and namespace from url, /api/v1/watch?x=1")
        );
        // A pod's proxy subresource is not the proxy verb.
        let sub = ri("GET", "/api/v1/namespaces/d/pods/p/proxy/x", "");
        assert_eq!((sub.verb.as_str(), sub.subresource.as_str()), ("get", "proxy"));
    }

    #[test]
    fn rbac_request_info_trailing_slash_and_short_paths() {
        let info = ri("GET", "/api/v1/namespaces/x/", "");
        assert_eq!((info.resource.as_str(), info.name.as_str()), ("namespaces", "x"));
        let core_list = ri("GET", "/api/v1/pods", "");
        assert_eq!(
            (core_list.verb.as_str(), core_list.resource.as_str()),
            ("list", "pods")
        );
        let nodes = ri("GET", "/api/v1/nodes/n1/proxy/stats", "");
        assert_eq!(
            (nodes.resource.as_str(), nodes.subresource.as_str()),
            ("nodes", "proxy")
        );
    }

    #[test]
    fn rbac_query_parsing() {
        assert_eq!(
            parse_query("a=1&b=x+y&c=%41"),
            vec![
                ("a".to_owned(), "1".to_owned()),
                ("b".to_owned(), "x y".to_owned()),
                ("c".to_owned(), "A".to_owned())
            ]
        );
        assert!(parse_query("a=%zz").is_empty());
        assert!(parse_query("a=1;b=2").is_empty());
        assert_eq!(parse_query("flag"), vec![("flag".to_owned(), String::new())]);
    }
}
