//! User impersonation (`Impersonate-*` headers) as kube-apiserver's impersonation filter does it:
//! which `impersonate` permissions the requester needs, and who the request then runs as.

use std::collections::BTreeMap;

use super::{
    ALL_AUTHENTICATED_GROUP, ALL_UNAUTHENTICATED_GROUP, ANONYMOUS_USER, Attributes, Decision, RbacSnapshot,
    UserInfo, authorize, service_account_groups, split_service_account_username,
};

const USER_HEADER: &str = "impersonate-user";
const GROUP_HEADER: &str = "impersonate-group";
const UID_HEADER: &str = "impersonate-uid";
const EXTRA_HEADER_PREFIX: &str = "impersonate-extra-";
const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";

/// A parsed impersonation: the identity the request will run as and the checks that must pass.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImpersonationRequest {
    /// The impersonated identity, groups completed as the apiserver completes them.
    pub user: UserInfo,
    /// One `impersonate` check per requested user/serviceaccount, group, extra value and uid, in
    /// the order kube-apiserver checks them. Their `user` is empty: see
    /// [`ImpersonationRequest::attributes_for`].
    pub checks: Vec<Attributes>,
}

impl ImpersonationRequest {
    /// The checks with `requester` (the authenticated caller) as the acting user.
    pub fn attributes_for(&self, requester: &UserInfo) -> Vec<Attributes> {
        self.checks
            .iter()
            .map(|c| Attributes {
                user: requester.clone(),
                ..c.clone()
            })
            .collect()
    }
}

enum Target {
    ServiceAccount { namespace: String, name: String },
    User(String),
    Group(String),
    Extra { key: String, value: String },
    Uid(String),
}

impl Target {
    // How the apiserver prints the ObjectReference it built for this target (Go `%v`).
    fn go_object_reference(&self) -> String {
        let auth_version = "authentication.k8s.io/v1";
        let (kind, namespace, name, api_version, field_path) = match self {
            Self::ServiceAccount { namespace, name } => {
                ("ServiceAccount", namespace.as_str(), name.as_str(), "", "")
            }
            Self::User(name) => ("User", "", name.as_str(), "", ""),
            Self::Group(name) => ("Group", "", name.as_str(), "", ""),
            Self::Extra { key, value } => ("UserExtra", "", value.as_str(), auth_version, key.as_str()),
            Self::Uid(uid) => ("UID", "", uid.as_str(), auth_version, ""),
        };
        format!("{{{kind} {namespace} {name}  {api_version}  {field_path}}}")
    }

    fn check(&self) -> Attributes {
        let base = Attributes {
            verb: "impersonate".to_owned(),
            resource_request: true,
            ..Attributes::default()
        };
        match self {
            Self::ServiceAccount { namespace, name } => Attributes {
                namespace: namespace.clone(),
                resource: "serviceaccounts".to_owned(),
                name: name.clone(),
                ..base
            },
            Self::User(name) => Attributes {
                resource: "users".to_owned(),
                name: name.clone(),
                ..base
            },
            Self::Group(name) => Attributes {
                resource: "groups".to_owned(),
                name: name.clone(),
                ..base
            },
            Self::Extra { key, value } => Attributes {
                api_group: AUTHENTICATION_GROUP.to_owned(),
                resource: "userextras".to_owned(),
                subresource: key.clone(),
                name: value.clone(),
                ..base
            },
            Self::Uid(uid) => Attributes {
                api_group: AUTHENTICATION_GROUP.to_owned(),
                resource: "uids".to_owned(),
                name: uid.clone(),
                ..base
            },
        }
    }
}

/// Parses `Impersonate-User`, `Impersonate-Group` (repeatable), `Impersonate-Uid` and
/// `Impersonate-Extra-<key>` (repeatable; key lowercased then %-decoded) from request headers
/// (names matched case-insensitively).
///
/// `Ok(None)` when the request impersonates nobody. `Err` carries the message of the 400
/// BadRequest kube-apiserver returns when groups, extras or a uid come without a user, e.g.
/// `requested [{Group  devs    }] without impersonating a user`.
///
/// A user of the form `system:serviceaccount:NS:NAME` is checked as `serviceaccounts` in `NS`,
/// and (when no groups are requested) gets the ServiceAccount groups. `system:authenticated` is
/// appended unless `system:authenticated` or `system:unauthenticated` is already among the groups;
/// impersonating `system:anonymous` appends `system:unauthenticated` instead.
pub fn impersonation_checks(headers: &[(String, String)]) -> Result<Option<ImpersonationRequest>, String> {
    let values = |name: &'static str| {
        headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let mut targets = Vec::new();
    let requested_user = values(USER_HEADER).next().unwrap_or_default();
    let has_user = !requested_user.is_empty();
    if has_user {
        targets.push(match split_service_account_username(requested_user) {
            Some((namespace, name)) => Target::ServiceAccount { namespace, name },
            None => Target::User(requested_user.to_owned()),
        });
    }
    let groups_specified = values(GROUP_HEADER).next().is_some();
    targets.extend(values(GROUP_HEADER).map(|g| Target::Group(g.to_owned())));

    // Go keys headers by canonical name; differently-cased spellings of one header merge.
    let mut extras: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (name, value) in headers {
        let lower = name.to_ascii_lowercase();
        if let Some(suffix) = lower.strip_prefix(EXTRA_HEADER_PREFIX) {
            extras.entry(suffix.to_owned()).or_default().push(value);
        }
    }
    let has_extra = !extras.is_empty();
    for (suffix, vals) in &extras {
        let key = path_unescape(suffix).unwrap_or_else(|| suffix.clone());
        targets.extend(vals.iter().map(|v| Target::Extra {
            key: key.clone(),
            value: (*v).to_owned(),
        }));
    }

    let requested_uid = values(UID_HEADER).next().unwrap_or_default();
    let has_uid = !requested_uid.is_empty();
    if has_uid {
        targets.push(Target::Uid(requested_uid.to_owned()));
    }

    if (groups_specified || has_extra || has_uid) && !has_user {
        let refs: Vec<String> = targets.iter().map(Target::go_object_reference).collect();
        return Err(format!(
            "requested [{}] without impersonating a user",
            refs.join(" ")
        ));
    }
    if targets.is_empty() {
        return Ok(None);
    }

    let mut user = UserInfo::default();
    for target in &targets {
        match target {
            Target::ServiceAccount { namespace, name } => {
                user.name = super::make_service_account_username(namespace, name);
                if !groups_specified {
                    user.groups = service_account_groups(namespace);
                }
            }
            Target::User(name) => user.name = name.clone(),
            Target::Group(group) => user.groups.push(group.clone()),
            Target::Extra { key, value } => user.extra.entry(key.clone()).or_default().push(value.clone()),
            Target::Uid(uid) => user.uid = uid.clone(),
        }
    }
    if user.name == ANONYMOUS_USER {
        if !user.in_group(ALL_UNAUTHENTICATED_GROUP) {
            user.groups.push(ALL_UNAUTHENTICATED_GROUP.to_owned());
        }
    } else if !user.in_group(ALL_AUTHENTICATED_GROUP) && !user.in_group(ALL_UNAUTHENTICATED_GROUP) {
        user.groups.push(ALL_AUTHENTICATED_GROUP.to_owned());
    }
    Ok(Some(ImpersonationRequest {
        user,
        checks: targets.iter().map(Target::check).collect(),
    }))
}

/// The impersonation check that failed, and RBAC's decision on it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImpersonationDenied {
    /// The failing check, with the requester as its user: pass it with `decision.reason` to
    /// [`super::forbidden_status`] for the apiserver's 403 body.
    pub attributes: Attributes,
    /// The (not allowed) decision.
    pub decision: Decision,
}

/// Runs every impersonation check for `requester` against RBAC, in order. Returns the identity
/// to serve the request as, or the first failing check, whose 403 reads e.g. `users "bob" is
/// forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster
/// scope`.
pub fn authorize_impersonation(
    request: &ImpersonationRequest,
    requester: &UserInfo,
    rbac: &RbacSnapshot,
) -> Result<UserInfo, Box<ImpersonationDenied>> {
    for attributes in request.attributes_for(requester) {
        let decision = authorize(&attributes, rbac);
        if !decision.allowed {
            return Err(Box::new(ImpersonationDenied { attributes, decision }));
        }
    }
    Ok(request.user.clone())
}

// Go's url.PathUnescape: %XX escapes only (`+` stays), `None` on a malformed escape.
fn path_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::forbidden_message;
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn rbac_impersonation_none() {
        assert_eq!(
            impersonation_checks(&h(&[("Authorization", "Bearer x")])),
            Ok(None)
        );
        assert_eq!(impersonation_checks(&h(&[("Impersonate-User", "")])), Ok(None));
    }

    #[test]
    fn rbac_impersonation_user_only() {
        let req = impersonation_checks(&h(&[("Impersonate-User", "bob")]))
            .unwrap()
            .unwrap();
        assert_eq!(req.user.name, "bob");
        assert_eq!(req.user.groups, strings(&["system:authenticated"]));
        assert_eq!(req.checks.len(), 1);
        let check = &req.checks[0];
        assert_eq!(check.verb, "impersonate");
        assert_eq!(check.resource, "users");
        assert_eq!(check.name, "bob");
        assert_eq!(check.api_group, "");
        assert!(check.resource_request);
    }

    #[test]
    fn rbac_impersonation_groups_uid_extras() {
        let headers = h(&[
            ("impersonate-user", "bob"),
            ("Impersonate-Group", "devs"),
            ("Impersonate-Group", "ops"),
            ("Impersonate-Uid", "1234"),
            ("Impersonate-Extra-Scopes", "view"),
            ("Impersonate-Extra-Scopes", "edit"),
            ("Impersonate-Extra-example.com%2fteam", "blue"),
        ]);
        let req = impersonation_checks(&headers).unwrap().unwrap();
        assert_eq!(req.user.name, "bob");
        assert_eq!(req.user.uid, "1234");
        assert_eq!(req.user.groups, strings(&["devs", "ops", "system:authenticated"]));
        assert_eq!(req.user.extra["scopes"], strings(&["view", "edit"]));
        assert_eq!(req.user.extra["example.com/team"], strings(&["blue"]));
        let summary: Vec<(&str, &str, &str, &str)> = req
            .checks
            .iter()
            .map(|c| {
                (
                    c.api_group.as_str(),
                    c.resource.as_str(),
                    c.subresource.as_str(),
                    c.name.as_str(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("", "users", "", "bob"),
                ("", "groups", "", "devs"),
                ("", "groups", "", "ops"),
                ("authentication.k8s.io", "userextras", "example.com/team", "blue"),
                ("authentication.k8s.io", "userextras", "scopes", "view"),
                ("authentication.k8s.io", "userextras", "scopes", "edit"),
                ("authentication.k8s.io", "uids", "", "1234"),
            ]
        );
    }

    #[test]
    fn rbac_impersonation_service_account() {
        let req = impersonation_checks(&h(&[("Impersonate-User", "system:serviceaccount:ns:builder")]))
            .unwrap()
            .unwrap();
        assert_eq!(req.user.name, "system:serviceaccount:ns:builder");
        assert_eq!(
            req.user.groups,
            strings(&[
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ])
        );
        let check = &req.checks[0];
        assert_eq!(
            (
                check.resource.as_str(),
                check.namespace.as_str(),
                check.name.as_str()
            ),
            ("serviceaccounts", "ns", "builder")
        );
        // Explicit groups replace the ServiceAccount groups.
        let req = impersonation_checks(&h(&[
            ("Impersonate-User", "system:serviceaccount:ns:builder"),
            ("Impersonate-Group", "x"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(req.user.groups, strings(&["x", "system:authenticated"]));
        // A malformed ServiceAccount name is an ordinary user.
        let req = impersonation_checks(&h(&[("Impersonate-User", "system:serviceaccount:bad")]))
            .unwrap()
            .unwrap();
        assert_eq!(req.checks[0].resource, "users");
    }

    #[test]
    fn rbac_impersonation_authenticated_group_rules() {
        let req = impersonation_checks(&h(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "system:authenticated"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(req.user.groups, strings(&["system:authenticated"]));
        let req = impersonation_checks(&h(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Group", "system:unauthenticated"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(req.user.groups, strings(&["system:unauthenticated"]));
        let req = impersonation_checks(&h(&[("Impersonate-User", "system:anonymous")]))
            .unwrap()
            .unwrap();
        assert_eq!(req.user.groups, strings(&["system:unauthenticated"]));
    }

    #[test]
    fn rbac_impersonation_without_user_is_bad_request() {
        assert_eq!(
            impersonation_checks(&h(&[("Impersonate-Group", "devs")])).unwrap_err(),
            "requested [{Group  devs    }] without impersonating a user"
        );
        assert_eq!(
            impersonation_checks(&h(&[("Impersonate-Extra-Scopes", "v"), ("Impersonate-Uid", "9")]))
                .unwrap_err(),
            "requested [{UserExtra  v  authentication.k8s.io/v1  scopes} {UID  9  authentication.k8s.io/v1  }] without impersonating a user"
        );
    }

    #[test]
    fn rbac_impersonation_authorization() {
        let rbac = RbacSnapshot::from_objects([
            json!({"kind": "ClusterRole", "metadata": {"name": "impersonator"},
                "rules": [{"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users", "groups"]}]}),
            json!({"kind": "ClusterRoleBinding", "metadata": {"name": "alice-imp"},
                "roleRef": {"kind": "ClusterRole", "name": "impersonator", "apiGroup": "rbac.authorization.k8s.io"},
                "subjects": [{"kind": "User", "name": "alice"}]}),
        ]);
        let alice = UserInfo::new("alice").with_groups(["system:authenticated"]);
        let req = impersonation_checks(&h(&[("Impersonate-User", "bob"), ("Impersonate-Group", "devs")]))
            .unwrap()
            .unwrap();
        let user = authorize_impersonation(&req, &alice, &rbac).unwrap();
        assert_eq!(user.name, "bob");
        assert_eq!(user.groups, strings(&["devs", "system:authenticated"]));

        let carol = UserInfo::new("carol");
        let denied = authorize_impersonation(&req, &carol, &rbac).unwrap_err();
        assert!(!denied.decision.allowed);
        assert_eq!(
            forbidden_message(&denied.attributes, &denied.decision.reason),
            "users \"bob\" is forbidden: User \"carol\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );

        let sa = impersonation_checks(&h(&[("Impersonate-User", "system:serviceaccount:ns:sa")]))
            .unwrap()
            .unwrap();
        let denied = authorize_impersonation(&sa, &alice, &rbac).unwrap_err();
        assert_eq!(
            forbidden_message(&denied.attributes, ""),
            "serviceaccounts \"sa\" is forbidden: User \"alice\" cannot impersonate resource \"serviceaccounts\" in API group \"\" in the namespace \"ns\""
        );

        let extra = impersonation_checks(&h(&[
            ("Impersonate-User", "bob"),
            ("Impersonate-Extra-Scopes", "v"),
        ]))
        .unwrap()
        .unwrap();
        let denied = authorize_impersonation(&extra, &alice, &rbac).unwrap_err();
        assert_eq!(
            forbidden_message(&denied.attributes, ""),
            "userextras.authentication.k8s.io \"v\" is forbidden: User \"alice\" cannot impersonate resource \"userextras/scopes\" in API group \"authentication.k8s.io\" at the cluster scope"
        );
    }

    #[test]
    fn rbac_path_unescape() {
        assert_eq!(path_unescape("a%2Fb+c").as_deref(), Some("a/b+c"));
        assert_eq!(path_unescape("bad%zz"), None);
        // A malformed escape keeps the key as sent (lowercased).
        let req = impersonation_checks(&h(&[("Impersonate-User", "u"), ("Impersonate-Extra-A%ZZ", "v")]))
            .unwrap()
            .unwrap();
        assert_eq!(req.user.extra["a%zz"], strings(&["v"]));
    }
}
