//! Authentication, authorization (RBAC) and impersonation, as kube-apiserver performs them.
//!
//! Everything here is a pure function over JSON objects: the server feeds in the Roles,
//! ClusterRoles, RoleBindings and ClusterRoleBindings it stores and gets back the same decisions,
//! reasons and 403 bodies a real kube-apiserver (`--authorization-mode=RBAC`) would produce.

mod authn;
mod bootstrap;
mod escalation;
mod forbidden;
mod impersonation;
mod request_info;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};

pub use authn::{
    CREDENTIAL_ID_KEY, NODE_NAME_KEY, NODE_UID_KEY, POD_NAME_KEY, POD_UID_KEY, TokenFile,
    add_authenticated_group, anonymous_user, make_service_account_username, service_account_groups,
    split_service_account_username, user_from_service_account_claims, user_from_subject,
    validate_token_times,
};
pub use bootstrap::bootstrap_policy;
pub use escalation::{EscalationDenied, check_write as check_escalation, rules_cover};
pub use forbidden::{forbidden_message, forbidden_status, unauthorized_status};
pub use impersonation::{
    ImpersonationDenied, ImpersonationRequest, authorize_impersonation, impersonation_checks,
};
pub use request_info::{RequestInfo, request_info};

/// Group whose members kube-apiserver allows everything, ahead of RBAC.
pub const SYSTEM_MASTERS_GROUP: &str = "system:masters";
/// Group every authenticated user carries.
pub const ALL_AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Group every unauthenticated (anonymous) request carries.
pub const ALL_UNAUTHENTICATED_GROUP: &str = "system:unauthenticated";
/// User name of anonymous requests.
pub const ANONYMOUS_USER: &str = "system:anonymous";
/// Prefix of every ServiceAccount user name (`system:serviceaccount:NS:NAME`).
pub const SERVICE_ACCOUNT_USERNAME_PREFIX: &str = "system:serviceaccount:";
/// Group every ServiceAccount carries.
pub const ALL_SERVICE_ACCOUNTS_GROUP: &str = "system:serviceaccounts";
/// Prefix of the per-namespace ServiceAccount group (`system:serviceaccounts:NS`).
pub const SERVICE_ACCOUNT_GROUP_PREFIX: &str = "system:serviceaccounts:";

/// An authenticated identity, shaped like `authentication.k8s.io/v1` `UserInfo` on the wire
/// (`username`, `uid`, `groups`, `extra`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user name (`username` on the wire).
    #[serde(
        rename = "username",
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// A unique id for the user; empty when the authenticator has none.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "String::is_empty"
    )]
    pub uid: String,
    /// Group memberships, in the order the authenticator produced them.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub groups: Vec<String>,
    /// Authenticator-specific extra attributes.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub extra: BTreeMap<String, Vec<String>>,
}

// Clients send `"groups": null` as often as they omit the field; both mean empty.
fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

impl UserInfo {
    /// A user with just a name (no uid, groups or extra).
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Builder-style helper adding groups in order.
    pub fn with_groups<I, S>(mut self, groups: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.groups.extend(groups.into_iter().map(Into::into));
        self
    }

    /// Whether the user carries `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }
}

/// What is being authorized: kube-apiserver's `authorizer.Attributes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// The requesting (or, after impersonation, impersonated) user.
    pub user: UserInfo,
    /// Kube verb for resource requests (`get`, `list`, ...), lowercase HTTP method otherwise.
    pub verb: String,
    /// Namespace of the request; empty for cluster-scoped and non-resource requests.
    pub namespace: String,
    /// API group; empty for the core group.
    pub api_group: String,
    /// Resource (plural), e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `log`, `status`, `scale`.
    pub subresource: String,
    /// Object name when the request names one.
    pub name: String,
    /// URL path; what non-resource rules match against.
    pub path: String,
    /// Whether this is a resource request (resource rules) or a non-resource one (URL rules).
    pub resource_request: bool,
}

impl Attributes {
    /// The attributes kube-apiserver's authorization filter derives from a parsed request.
    pub fn from_request_info(user: UserInfo, info: &RequestInfo) -> Self {
        Self {
            user,
            verb: info.verb.clone(),
            namespace: info.namespace.clone(),
            api_group: info.api_group.clone(),
            resource: info.resource.clone(),
            subresource: info.subresource.clone(),
            name: info.name.clone(),
            path: info.path.clone(),
            resource_request: info.is_resource_request,
        }
    }

    /// Attributes from a (Self/Local)SubjectAccessReview `spec` for `user`.
    ///
    /// `resourceAttributes` wins when present, as in the apiserver; otherwise
    /// `nonResourceAttributes` is used. Use [`user_from_access_review_spec`] for a
    /// SubjectAccessReview, or the requesting user for a SelfSubjectAccessReview.
    pub fn from_access_review_spec(user: UserInfo, spec: &Value) -> Self {
        if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
            return Self {
                user,
                verb: str_at(ra, "verb").to_owned(),
                namespace: str_at(ra, "namespace").to_owned(),
                api_group: str_at(ra, "group").to_owned(),
                resource: str_at(ra, "resource").to_owned(),
                subresource: str_at(ra, "subresource").to_owned(),
                name: str_at(ra, "name").to_owned(),
                path: String::new(),
                resource_request: true,
            };
        }
        let nra = spec.get("nonResourceAttributes").unwrap_or(&Value::Null);
        Self {
            user,
            verb: str_at(nra, "verb").to_owned(),
            path: str_at(nra, "path").to_owned(),
            ..Self::default()
        }
    }
}

/// The user a SubjectAccessReview `spec` asks about (`user`, `uid`, `groups`, `extra`).
///
/// As in kube-apiserver, no `system:authenticated` group is added: the review asks about exactly
/// the identity given.
pub fn user_from_access_review_spec(spec: &Value) -> UserInfo {
    UserInfo {
        name: str_at(spec, "user").to_owned(),
        uid: str_at(spec, "uid").to_owned(),
        groups: str_list(spec, "groups"),
        extra: spec
            .get("extra")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        let vals = v
                            .as_array()
                            .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect())
                            .unwrap_or_default();
                        (k.clone(), vals)
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// An authorization outcome. RBAC never denies outright: `allowed == false` is "no opinion",
/// which kube-apiserver turns into a 403.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request is allowed.
    pub allowed: bool,
    /// Why: `RBAC: allowed by ...` when allowed; empty, or `RBAC: <resolution errors>`, when not.
    pub reason: String,
}

/// The RBAC objects the authorizer consults, as stored JSON.
///
/// Bindings are visited in the order given, so pass them in a stable order (e.g. sorted by
/// namespace and name) to get stable `allowed by` reasons.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RbacSnapshot {
    /// `rbac.authorization.k8s.io/v1` Role objects.
    pub roles: Vec<Value>,
    /// `rbac.authorization.k8s.io/v1` RoleBinding objects.
    pub role_bindings: Vec<Value>,
    /// `rbac.authorization.k8s.io/v1` ClusterRole objects.
    pub cluster_roles: Vec<Value>,
    /// `rbac.authorization.k8s.io/v1` ClusterRoleBinding objects.
    pub cluster_role_bindings: Vec<Value>,
}

impl RbacSnapshot {
    /// A snapshot from the four lists.
    pub fn new(
        roles: Vec<Value>,
        role_bindings: Vec<Value>,
        cluster_roles: Vec<Value>,
        cluster_role_bindings: Vec<Value>,
    ) -> Self {
        Self {
            roles,
            role_bindings,
            cluster_roles,
            cluster_role_bindings,
        }
    }

    /// A snapshot from a mixed list of RBAC objects, sorted into place by `kind`.
    /// Objects of any other kind are ignored.
    pub fn from_objects<I: IntoIterator<Item = Value>>(objects: I) -> Self {
        let mut snapshot = Self::default();
        for object in objects {
            snapshot.push(object);
        }
        snapshot
    }

    /// Adds one RBAC object by its `kind`; returns false (and drops it) for any other kind.
    pub fn push(&mut self, object: Value) -> bool {
        let list = match str_at(&object, "kind") {
            "Role" => &mut self.roles,
            "RoleBinding" => &mut self.role_bindings,
            "ClusterRole" => &mut self.cluster_roles,
            "ClusterRoleBinding" => &mut self.cluster_role_bindings,
            _ => return false,
        };
        list.push(object);
        true
    }

    /// The Role `namespace/name`, if stored.
    pub fn role(&self, namespace: &str, name: &str) -> Option<&Value> {
        self.roles
            .iter()
            .find(|r| meta(r, "namespace") == namespace && meta(r, "name") == name)
    }

    /// The ClusterRole `name`, if stored.
    pub fn cluster_role(&self, name: &str) -> Option<&Value> {
        self.cluster_roles.iter().find(|r| meta(r, "name") == name)
    }

    /// RoleBindings in `namespace`, in stored order.
    pub fn role_bindings_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.role_bindings
            .iter()
            .filter(move |b| meta(b, "namespace") == namespace)
    }

    /// The rules the ClusterRole `name` grants: for an aggregated ClusterRole, the rules the
    /// clusterrole-aggregation controller would have written into it; otherwise its own `rules`.
    pub fn cluster_role_rules(&self, name: &str) -> Option<Vec<Value>> {
        let role = self.cluster_role(name)?;
        Some(effective_cluster_role_rules(
            role,
            &self.cluster_roles,
            &mut Vec::new(),
        ))
    }
}

/// ClusterRoles with every aggregated ClusterRole's `rules` replaced by what kube-controller-manager's
/// clusterrole-aggregation controller writes: the de-duplicated rules of every ClusterRole
/// selected by its `aggregationRule.clusterRoleSelectors`, taken in name order.
///
/// Lets the server persist the converged state, so `GET clusterrole admin` shows the rules.
pub fn aggregate_cluster_roles(cluster_roles: &[Value]) -> Vec<Value> {
    cluster_roles
        .iter()
        .map(|role| {
            let mut role = role.clone();
            if is_aggregated(&role) {
                let rules = effective_cluster_role_rules(&role, cluster_roles, &mut Vec::new());
                if let Some(obj) = role.as_object_mut() {
                    obj.insert("rules".to_owned(), Value::Array(rules));
                }
            }
            role
        })
        .collect()
}

fn is_aggregated(role: &Value) -> bool {
    role.get("aggregationRule").is_some_and(|r| r.is_object())
}

fn effective_cluster_role_rules(role: &Value, all: &[Value], visiting: &mut Vec<String>) -> Vec<Value> {
    let own = || {
        role.get("rules")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let Some(rule) = role.get("aggregationRule").filter(|r| r.is_object()) else {
        return own();
    };
    let name = meta(role, "name").to_owned();
    // A cycle of aggregated roles converges, in the controller, to their stored rules.
    if visiting.contains(&name) {
        return own();
    }
    visiting.push(name.clone());
    let selectors = rule
        .get("clusterRoleSelectors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut matched: BTreeMap<String, &Value> = BTreeMap::new();
    for selector in &selectors {
        for candidate in all {
            let candidate_name = meta(candidate, "name");
            if candidate_name == name {
                continue;
            }
            let labels = candidate.pointer("/metadata/labels").and_then(Value::as_object);
            if label_selector_matches(selector, labels) {
                matched.insert(candidate_name.to_owned(), candidate);
            }
        }
    }
    let mut rules: Vec<Value> = Vec::new();
    let mut seen: Vec<NormalizedRule> = Vec::new();
    for candidate in matched.values() {
        for r in effective_cluster_role_rules(candidate, all, visiting) {
            let normalized = NormalizedRule::of(&r);
            if !seen.contains(&normalized) {
                seen.push(normalized);
                rules.push(r);
            }
        }
    }
    visiting.pop();
    rules
}

// The controller compares rules with semantic equality, where a missing list equals an empty one.
#[derive(PartialEq, Eq)]
struct NormalizedRule([Vec<String>; 5]);

impl NormalizedRule {
    fn of(rule: &Value) -> Self {
        Self([
            str_list(rule, "verbs"),
            str_list(rule, "apiGroups"),
            str_list(rule, "resources"),
            str_list(rule, "resourceNames"),
            str_list(rule, "nonResourceURLs"),
        ])
    }
}

/// Whether a `metav1.LabelSelector` (JSON) selects an object with `labels`.
///
/// Supports `matchLabels` and `matchExpressions` (`In`, `NotIn`, `Exists`, `DoesNotExist`); an
/// empty selector selects everything and an invalid one selects nothing, as in apimachinery.
fn label_selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    if let Some(match_labels) = selector.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in match_labels {
            if label(k) != v.as_str() || v.as_str().is_none() {
                return false;
            }
        }
    }
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = str_at(expr, "key");
        let values = str_list(expr, "values");
        let present = label(key);
        let ok = match str_at(expr, "operator") {
            "In" if !values.is_empty() => present.is_some_and(|p| values.iter().any(|v| v == p)),
            "NotIn" if !values.is_empty() => present.is_none_or(|p| values.iter().all(|v| v != p)),
            "Exists" if values.is_empty() => present.is_some(),
            "DoesNotExist" if values.is_empty() => present.is_none(),
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Authorizes `attrs` the way kube-apiserver does with `--authorization-mode=RBAC`: members of
/// `system:masters` are allowed outright (with an empty reason, by the privileged-group
/// authorizer that precedes RBAC), then ClusterRoleBindings and, for namespaced requests, the
/// namespace's RoleBindings are searched for a rule that allows the request.
pub fn authorize(attrs: &Attributes, rbac: &RbacSnapshot) -> Decision {
    if attrs.user.in_group(SYSTEM_MASTERS_GROUP) {
        return Decision {
            allowed: true,
            reason: String::new(),
        };
    }
    let mut errors = Vec::new();
    let mut reason = None;
    visit_rules_for(&attrs.user, &attrs.namespace, rbac, &mut |visit| match visit {
        Visit::Rule { source, rule } => {
            if rule_allows(attrs, &PolicyRule::of(rule)) {
                reason = Some(format!("RBAC: allowed by {source}"));
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        }
        Visit::Error(e) => {
            errors.push(e);
            ControlFlow::Continue(())
        }
    });
    match reason {
        Some(reason) => Decision {
            allowed: true,
            reason,
        },
        None if errors.is_empty() => Decision {
            allowed: false,
            reason: String::new(),
        },
        None => Decision {
            allowed: false,
            reason: format!("RBAC: {}", aggregate_errors(&errors)),
        },
    }
}

/// The rules RBAC grants `user` in `namespace` (cluster-wide bindings plus, when `namespace` is
/// non-empty, that namespace's RoleBindings), as SelfSubjectRulesReview `status.resourceRules`
/// and `status.nonResourceRules`.
pub fn rules_for(user: &UserInfo, namespace: &str, rbac: &RbacSnapshot) -> (Vec<Value>, Vec<Value>) {
    let (resource_rules, non_resource_rules, _) = collect_rules(user, namespace, rbac);
    (resource_rules, non_resource_rules)
}

/// A complete SelfSubjectRulesReview `status`: `resourceRules`, `nonResourceRules`,
/// `incomplete` (always false for RBAC) and `evaluationError` when some binding's role is missing.
pub fn rules_review_status(user: &UserInfo, namespace: &str, rbac: &RbacSnapshot) -> Value {
    let (resource_rules, non_resource_rules, errors) = collect_rules(user, namespace, rbac);
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": false,
    });
    if !errors.is_empty()
        && let Some(obj) = status.as_object_mut()
    {
        obj.insert(
            "evaluationError".to_owned(),
            Value::String(aggregate_errors(&errors)),
        );
    }
    status
}

fn collect_rules(
    user: &UserInfo,
    namespace: &str,
    rbac: &RbacSnapshot,
) -> (Vec<Value>, Vec<Value>, Vec<String>) {
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let mut errors = Vec::new();
    visit_rules_for(user, namespace, rbac, &mut |visit| {
        match visit {
            Visit::Rule { rule, .. } => {
                let r = PolicyRule::of(rule);
                if !r.resources.is_empty() {
                    let mut out = Map::new();
                    out.insert("verbs".to_owned(), json!(r.verbs));
                    for (key, list) in [
                        ("apiGroups", &r.api_groups),
                        ("resources", &r.resources),
                        ("resourceNames", &r.resource_names),
                    ] {
                        if !list.is_empty() {
                            out.insert(key.to_owned(), json!(list));
                        }
                    }
                    resource_rules.push(Value::Object(out));
                }
                if !r.non_resource_urls.is_empty() {
                    non_resource_rules
                        .push(json!({"verbs": r.verbs, "nonResourceURLs": r.non_resource_urls}));
                }
            }
            Visit::Error(e) => errors.push(e),
        }
        ControlFlow::Continue(())
    });
    (resource_rules, non_resource_rules, errors)
}

enum Visit<'a> {
    Rule { source: &'a str, rule: &'a Value },
    Error(String),
}

// Mirrors the apiserver's rule resolver: ClusterRoleBindings first, then the namespace's
// RoleBindings; for each binding, the first subject that matches names the source.
fn visit_rules_for(
    user: &UserInfo,
    namespace: &str,
    rbac: &RbacSnapshot,
    visitor: &mut dyn FnMut(Visit<'_>) -> ControlFlow<()>,
) {
    for binding in &rbac.cluster_role_bindings {
        if visit_binding(user, binding, "", rbac, visitor).is_break() {
            return;
        }
    }
    if namespace.is_empty() {
        return;
    }
    for binding in rbac.role_bindings_in(namespace) {
        if visit_binding(user, binding, namespace, rbac, visitor).is_break() {
            return;
        }
    }
}

fn visit_binding(
    user: &UserInfo,
    binding: &Value,
    namespace: &str,
    rbac: &RbacSnapshot,
    visitor: &mut dyn FnMut(Visit<'_>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let subjects = binding
        .get("subjects")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let Some(subject) = subjects.iter().find(|s| applies_to_user(user, s, namespace)) else {
        return ControlFlow::Continue(());
    };
    let role_ref = binding.get("roleRef").unwrap_or(&Value::Null);
    let rules = match role_reference_rules(role_ref, namespace, rbac) {
        Ok(rules) => rules,
        Err(e) => return visitor(Visit::Error(e)),
    };
    let role_kind = str_at(role_ref, "kind");
    let role_name = go_quote(str_at(role_ref, "name"));
    let subject = describe_subject(subject, namespace);
    let source = if namespace.is_empty() {
        format!(
            "ClusterRoleBinding {} of {role_kind} {role_name} to {subject}",
            go_quote(meta(binding, "name"))
        )
    } else {
        let id = format!("{}/{}", meta(binding, "name"), meta(binding, "namespace"));
        format!(
            "RoleBinding {} of {role_kind} {role_name} to {subject}",
            go_quote(&id)
        )
    };
    for rule in &rules {
        visitor(Visit::Rule {
            source: &source,
            rule,
        })?;
    }
    ControlFlow::Continue(())
}

fn role_reference_rules(
    role_ref: &Value,
    namespace: &str,
    rbac: &RbacSnapshot,
) -> Result<Vec<Value>, String> {
    let name = str_at(role_ref, "name");
    match str_at(role_ref, "kind") {
        "Role" => rbac
            .role(namespace, name)
            .map(|r| {
                r.get("rules")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .ok_or_else(|| format!("role.rbac.authorization.k8s.io {} not found", go_quote(name))),
        "ClusterRole" => rbac.cluster_role_rules(name).ok_or_else(|| {
            format!(
                "clusterrole.rbac.authorization.k8s.io {} not found",
                go_quote(name)
            )
        }),
        other => Err(format!("unsupported role reference kind: {}", go_quote(other))),
    }
}

fn applies_to_user(user: &UserInfo, subject: &Value, namespace: &str) -> bool {
    let name = str_at(subject, "name");
    match str_at(subject, "kind") {
        "User" => user.name == name,
        "Group" => user.in_group(name),
        "ServiceAccount" => {
            let sa_namespace = match str_at(subject, "namespace") {
                "" => namespace,
                ns => ns,
            };
            !sa_namespace.is_empty() && user.name == make_service_account_username(sa_namespace, name)
        }
        _ => false,
    }
}

fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let kind = str_at(subject, "kind");
    let name = str_at(subject, "name");
    if kind == "ServiceAccount" {
        let ns = match str_at(subject, "namespace") {
            "" => binding_namespace,
            ns => ns,
        };
        return format!("{kind} {}", go_quote(&format!("{name}/{ns}")));
    }
    format!("{kind} {}", go_quote(name))
}

struct PolicyRule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

impl PolicyRule {
    fn of(rule: &Value) -> Self {
        Self {
            verbs: str_list(rule, "verbs"),
            api_groups: str_list(rule, "apiGroups"),
            resources: str_list(rule, "resources"),
            resource_names: str_list(rule, "resourceNames"),
            non_resource_urls: str_list(rule, "nonResourceURLs"),
        }
    }
}

fn rule_allows(attrs: &Attributes, rule: &PolicyRule) -> bool {
    let verb_ok = rule.verbs.iter().any(|v| v == "*" || *v == attrs.verb);
    if !verb_ok {
        return false;
    }
    if !attrs.resource_request {
        return rule.non_resource_urls.iter().any(|u| {
            u == "*"
                || *u == attrs.path
                || (u.ends_with('*') && attrs.path.starts_with(u.trim_end_matches('*')))
        });
    }
    let combined = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    rule.api_groups.iter().any(|g| g == "*" || *g == attrs.api_group)
        && rule.resources.iter().any(|r| {
            // Only `*`, exact `resource[/subresource]` and `*/subresource` are wildcards in RBAC;
            // `pods/*` is a literal that matches nothing real.
            r == "*"
                || *r == combined
                || (!attrs.subresource.is_empty() && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
        })
        && (rule.resource_names.is_empty() || rule.resource_names.contains(&attrs.name))
}

// utilerrors.NewAggregate's message: one error verbatim, several de-duplicated in brackets.
fn aggregate_errors(errors: &[String]) -> String {
    if errors.len() == 1 {
        return errors[0].clone();
    }
    let mut seen = BTreeSet::new();
    let unique: Vec<&str> = errors
        .iter()
        .filter(|e| seen.insert(e.as_str()))
        .map(String::as_str)
        .collect();
    if unique.len() == 1 {
        return unique[0].to_owned();
    }
    format!("[{}]", unique.join(", "))
}

fn str_at<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn meta<'a>(object: &'a Value, key: &str) -> &'a str {
    object.get("metadata").map(|m| str_at(m, key)).unwrap_or_default()
}

fn str_list(value: &Value, key: &str) -> Vec<String> {
    value
        .get(key)
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

pub(crate) use crate::gostr::quote as go_quote;

#[cfg(test)]
mod tests;
