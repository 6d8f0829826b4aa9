//! Authentication helpers: static token files, client-certificate subjects and ServiceAccount
//! token claims mapped to [`UserInfo`] exactly as kube-apiserver's authenticators map them.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{
    ALL_AUTHENTICATED_GROUP, ALL_SERVICE_ACCOUNTS_GROUP, ALL_UNAUTHENTICATED_GROUP, ANONYMOUS_USER,
    SERVICE_ACCOUNT_GROUP_PREFIX, SERVICE_ACCOUNT_USERNAME_PREFIX, UserInfo,
};

/// `extra` key carrying the credential identifier (`JTI=...` for ServiceAccount tokens).
pub const CREDENTIAL_ID_KEY: &str = "authentication.kubernetes.io/credential-id";
/// `extra` key carrying the name of the pod a ServiceAccount token is bound to.
pub const POD_NAME_KEY: &str = "authentication.kubernetes.io/pod-name";
/// `extra` key carrying the uid of the pod a ServiceAccount token is bound to.
pub const POD_UID_KEY: &str = "authentication.kubernetes.io/pod-uid";
/// `extra` key carrying the name of the node a ServiceAccount token is bound to.
pub const NODE_NAME_KEY: &str = "authentication.kubernetes.io/node-name";
/// `extra` key carrying the uid of the node a ServiceAccount token is bound to.
pub const NODE_UID_KEY: &str = "authentication.kubernetes.io/node-uid";

/// Appends `system:authenticated` as kube-apiserver's `AuthenticatedGroupAdder` does: unless the
/// user is `system:anonymous` or already carries `system:authenticated` or
/// `system:unauthenticated`.
pub fn add_authenticated_group(mut user: UserInfo) -> UserInfo {
    let skip = user.name == ANONYMOUS_USER
        || user
            .groups
            .iter()
            .any(|g| g == ALL_AUTHENTICATED_GROUP || g == ALL_UNAUTHENTICATED_GROUP);
    if !skip {
        user.groups.push(ALL_AUTHENTICATED_GROUP.to_owned());
    }
    user
}

/// The identity of a request that presented no credentials (with anonymous auth enabled):
/// `system:anonymous` in `system:unauthenticated`.
pub fn anonymous_user() -> UserInfo {
    UserInfo::new(ANONYMOUS_USER).with_groups([ALL_UNAUTHENTICATED_GROUP])
}

/// A static token file, as read by kube-apiserver's `--token-auth-file`.
///
/// The file is CSV (Go `encoding/csv`: no comment syntax, blank lines skipped, `"`-quoted fields
/// with `""` escapes) with rows `token,user,uid[,"group1,group2"]`; extra columns are ignored,
/// rows with an empty token are skipped and a repeated token keeps its last row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TokenFile {
    tokens: HashMap<String, UserInfo>,
}

impl TokenFile {
    /// Parses `contents`; `path` only appears in error messages, which match kube-apiserver's
    /// startup errors (`token file '<path>' must have at least 3 columns ...`, CSV parse errors).
    pub fn parse(path: &str, contents: &str) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for record in parse_csv(contents)? {
            if record.len() < 3 {
                return Err(format!(
                    "token file '{path}' must have at least 3 columns (token, user name, user uid), found {}",
                    record.len()
                ));
            }
            if record[0].is_empty() {
                continue;
            }
            let groups = record
                .get(3)
                .map(|g| g.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let user = UserInfo {
                name: record[1].clone(),
                uid: record[2].clone(),
                groups,
                extra: BTreeMap::new(),
            };
            tokens.insert(record[0].clone(), user);
        }
        Ok(Self { tokens })
    }

    /// The user a bearer token authenticates as, with `system:authenticated` added as the
    /// apiserver adds it; `None` for an unknown token.
    pub fn lookup(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned().map(add_authenticated_group)
    }

    /// Number of distinct tokens.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether the file defined no tokens.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }
}

// Go's encoding/csv reader with default settings and a variable field count.
fn parse_csv(contents: &str) -> Result<Vec<Vec<String>>, String> {
    let normalized = contents.replace("\r\n", "\n");
    let lines: Vec<&str> = normalized.split_inclusive('\n').collect();
    let mut records = Vec::new();
    let mut idx = 0;
    while idx < lines.len() {
        let start_line = idx + 1;
        let first = lines[idx];
        idx += 1;
        if first == "\n" {
            continue;
        }
        let mut line: Vec<char> = first.strip_suffix('\r').unwrap_or(first).chars().collect();
        let mut line_no = start_line;
        let mut pos = 0;
        let mut fields = Vec::new();
        let parse_error = |line_no: usize, col: usize, msg: &str| {
            if line_no == start_line {
                format!("parse error on line {line_no}, column {col}: {msg}")
            } else {
                format!("record on line {start_line}; parse error on line {line_no}, column {col}: {msg}")
            }
        };
        loop {
            if line.get(pos) == Some(&'"') {
                pos += 1;
                let mut field = String::new();
                loop {
                    match line.get(pos) {
                        Some('"') if line.get(pos + 1) == Some(&'"') => {
                            field.push('"');
                            pos += 2;
                        }
                        Some('"') => {
                            pos += 1;
                            break;
                        }
                        Some(c) => {
                            field.push(*c);
                            pos += 1;
                        }
                        None if idx < lines.len() => {
                            line = lines[idx].chars().collect();
                            line_no += 1;
                            idx += 1;
                            pos = 0;
                        }
                        None => {
                            return Err(parse_error(
                                line_no,
                                line.len() + 1,
                                "extraneous or missing \" in quoted-field",
                            ));
                        }
                    }
                }
                match line.get(pos) {
                    Some(',') => {
                        fields.push(field);
                        pos += 1;
                    }
                    Some('\n') | None => {
                        fields.push(field);
                        break;
                    }
                    Some(_) => {
                        // Go reports the column of the closing quote, not of the stray character.
                        return Err(parse_error(
                            line_no,
                            pos,
                            "extraneous or missing \" in quoted-field",
                        ));
                    }
                }
            } else {
                let mut field = String::new();
                loop {
                    match line.get(pos) {
                        Some('"') => {
                            return Err(parse_error(line_no, pos + 1, "bare \" in non-quoted field"));
                        }
                        Some(',') | Some('\n') | None => break,
                        Some(c) => {
                            field.push(*c);
                            pos += 1;
                        }
                    }
                }
                fields.push(field);
                if line.get(pos) == Some(&',') {
                    pos += 1;
                } else {
                    break;
                }
            }
        }
        records.push(fields);
    }
    Ok(records)
}

/// The user a verified client certificate authenticates as: the subject's Common Name with its
/// Organizations as groups, plus `system:authenticated`.
///
/// Returns `None` for an empty Common Name, which kube-apiserver treats as "not authenticated by
/// this certificate" rather than as a user named "". The credential-id extra
/// (`X509SHA256=<fingerprint>`) needs the certificate bytes and is left to the caller.
pub fn user_from_subject(cn: &str, orgs: &[String]) -> Option<UserInfo> {
    if cn.is_empty() {
        return None;
    }
    Some(add_authenticated_group(
        UserInfo::new(cn).with_groups(orgs.iter().cloned()),
    ))
}

/// `system:serviceaccount:NAMESPACE:NAME`.
pub fn make_service_account_username(namespace: &str, name: &str) -> String {
    format!("{SERVICE_ACCOUNT_USERNAME_PREFIX}{namespace}:{name}")
}

/// The groups every ServiceAccount in `namespace` belongs to:
/// `system:serviceaccounts` and `system:serviceaccounts:NAMESPACE`.
pub fn service_account_groups(namespace: &str) -> Vec<String> {
    vec![
        ALL_SERVICE_ACCOUNTS_GROUP.to_owned(),
        format!("{SERVICE_ACCOUNT_GROUP_PREFIX}{namespace}"),
    ]
}

/// Splits `system:serviceaccount:NS:NAME` into `(NS, NAME)`; `None` unless both parts are valid
/// (a DNS label namespace and a DNS subdomain name), as the apiserver requires.
pub fn split_service_account_username(username: &str) -> Option<(String, String)> {
    let rest = username.strip_prefix(SERVICE_ACCOUNT_USERNAME_PREFIX)?;
    let mut parts = rest.split(':');
    let (namespace, name) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !is_dns1123_label(namespace) || !is_dns1123_subdomain(name) {
        return None;
    }
    Some((namespace.to_owned(), name.to_owned()))
}

fn is_dns1123_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_label)
}

/// The user a ServiceAccount JWT's (already verified) claims authenticate as.
///
/// Bound tokens carry `"kubernetes.io": {"namespace", "serviceaccount": {name, uid}, "pod"?,
/// "node"?, ...}`; the identity comes from there, with pod and node references and the `jti`
/// surfacing as `extra` (`authentication.kubernetes.io/pod-name`, `.../credential-id` =
/// `JTI=<jti>`, ...). Legacy secret-based tokens carry the flat
/// `kubernetes.io/serviceaccount/{namespace,service-account.name,service-account.uid,secret.name}`
/// claims and must agree with `sub`. The result has the ServiceAccount groups and
/// `system:authenticated`. Checking that the ServiceAccount, pod, secret or node still exists
/// with the claimed uid is the caller's job, as are expiry (see [`validate_token_times`]) and
/// signature checks.
pub fn user_from_service_account_claims(claims: &Value) -> Result<UserInfo, String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
    if let Some(private) = claims.get("kubernetes.io").filter(|v| v.is_object()) {
        let namespace = text(private.get("namespace"));
        let sa = private.get("serviceaccount");
        let name = text(sa.and_then(|s| s.get("name")));
        if namespace.is_empty() || name.is_empty() {
            return Err(
                "service account token claims are missing the namespace or service account name".to_owned(),
            );
        }
        let mut user = UserInfo {
            name: make_service_account_username(&namespace, &name),
            uid: text(sa.and_then(|s| s.get("uid"))),
            groups: service_account_groups(&namespace),
            extra: BTreeMap::new(),
        };
        let reference = |key: &str| {
            private
                .get(key)
                .map(|r| (text(r.get("name")), text(r.get("uid"))))
        };
        if let Some((pod_name, pod_uid)) = reference("pod")
            && !pod_name.is_empty()
            && !pod_uid.is_empty()
        {
            user.extra.insert(POD_NAME_KEY.to_owned(), vec![pod_name]);
            user.extra.insert(POD_UID_KEY.to_owned(), vec![pod_uid]);
        }
        let jti = text(claims.get("jti"));
        if !jti.is_empty() {
            user.extra
                .insert(CREDENTIAL_ID_KEY.to_owned(), vec![format!("JTI={jti}")]);
        }
        if let Some((node_name, node_uid)) = reference("node")
            && !node_name.is_empty()
        {
            user.extra.insert(NODE_NAME_KEY.to_owned(), vec![node_name]);
            if !node_uid.is_empty() {
                user.extra.insert(NODE_UID_KEY.to_owned(), vec![node_uid]);
            }
        }
        return Ok(add_authenticated_group(user));
    }

    let legacy = |key: &str| text(claims.get(format!("kubernetes.io/serviceaccount/{key}").as_str()));
    let subject = text(claims.get("sub"));
    if subject.is_empty() {
        return Err("sub claim is missing".to_owned());
    }
    let namespace = legacy("namespace");
    if namespace.is_empty() {
        return Err("namespace claim is missing".to_owned());
    }
    if legacy("secret.name").is_empty() {
        return Err("secretName claim is missing".to_owned());
    }
    let name = legacy("service-account.name");
    if name.is_empty() {
        return Err("serviceAccountName claim is missing".to_owned());
    }
    let uid = legacy("service-account.uid");
    if uid.is_empty() {
        return Err("serviceAccountUID claim is missing".to_owned());
    }
    match split_service_account_username(&subject) {
        Some((ns, n)) if ns == namespace && n == name => {}
        _ => return Err("sub claim is invalid".to_owned()),
    }
    Ok(add_authenticated_group(UserInfo {
        name: subject,
        uid,
        groups: service_account_groups(&namespace),
        extra: BTreeMap::new(),
    }))
}

/// Checks a token's `nbf`, `exp` and `iat` (seconds since the epoch) against `now_unix` with the
/// one-minute leeway kube-apiserver's JWT library allows, returning its error messages.
pub fn validate_token_times(claims: &Value, now_unix: i64) -> Result<(), String> {
    const LEEWAY: i64 = 60;
    let time = |key: &str| {
        claims
            .get(key)
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
    };
    if time("nbf").is_some_and(|nbf| now_unix + LEEWAY < nbf) {
        return Err("service account token is not valid yet".to_owned());
    }
    if time("exp").is_some_and(|exp| now_unix - LEEWAY > exp) {
        return Err("service account token has expired".to_owned());
    }
    if time("iat").is_some_and(|iat| now_unix + LEEWAY < iat) {
        return Err("service account token is issued in the future".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn rbac_token_file_basic_rows() {
        let file = TokenFile::parse(
            "/etc/tokens.csv",
            "tok1,alice,uid-1\n\ntok2,bob,uid-2,\"dev,ops\"\r\ntok3,carol,uid-3,solo,ignored\n",
        )
        .unwrap();
        assert_eq!(file.len(), 3);
        let alice = file.lookup("tok1").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.uid, "uid-1");
        assert_eq!(alice.groups, strings(&["system:authenticated"]));
        let bob = file.lookup("tok2").unwrap();
        assert_eq!(bob.groups, strings(&["dev", "ops", "system:authenticated"]));
        let carol = file.lookup("tok3").unwrap();
        assert_eq!(carol.groups, strings(&["solo", "system:authenticated"]));
        assert!(file.lookup("nope").is_none());
        assert!(file.lookup("").is_none());
    }

    #[test]
    fn rbac_token_file_edge_rows() {
        // Empty token rows are skipped; duplicates keep the last row; an empty groups column is
        // one empty group, as strings.Split gives.
        let file = TokenFile::parse("f", ",nobody,0\ndup,first,1\ndup,second,2\nt,u,i,\n").unwrap();
        assert_eq!(file.len(), 2);
        assert_eq!(file.lookup("dup").unwrap().name, "second");
        assert_eq!(
            file.lookup("t").unwrap().groups,
            strings(&["", "system:authenticated"])
        );
        // Groups that already include system:authenticated are left alone.
        let file = TokenFile::parse("f", "t,u,i,\"system:authenticated,x\"").unwrap();
        assert_eq!(
            file.lookup("t").unwrap().groups,
            strings(&["system:authenticated", "x"])
        );
        // Quotes inside quoted fields and fields spanning lines.
        let file = TokenFile::parse("f", "\"t\"\"q\",\"multi\nline\",u").unwrap();
        assert_eq!(file.lookup("t\"q").unwrap().name, "multi\nline");
        assert!(TokenFile::parse("f", "").unwrap().is_empty());
    }

    #[test]
    fn rbac_token_file_errors_match_apiserver() {
        assert_eq!(
            TokenFile::parse("/t.csv", "tok,user\n").unwrap_err(),
            "token file '/t.csv' must have at least 3 columns (token, user name, user uid), found 2"
        );
        // No comment syntax: a comment line is just a short record.
        assert_eq!(
            TokenFile::parse("/t.csv", "# tokens\ntok,u,1\n").unwrap_err(),
            "token file '/t.csv' must have at least 3 columns (token, user name, user uid), found 1"
        );
        assert_eq!(
            TokenFile::parse("f", "a,b\"c,d\n").unwrap_err(),
            "parse error on line 1, column 4: bare \" in non-quoted field"
        );
        assert_eq!(
            TokenFile::parse("f", "a,\"b\"x,c\n").unwrap_err(),
            "parse error on line 1, column 5: extraneous or missing \" in quoted-field"
        );
        assert!(
            TokenFile::parse("f", "a,b,\"c\nd")
                .unwrap_err()
                .starts_with("record on line 1; parse error on line 2")
        );
    }

    #[test]
    fn rbac_client_cert_subject() {
        let user = user_from_subject("alice", &strings(&["dev", "system:masters"])).unwrap();
        assert_eq!(user.name, "alice");
        assert_eq!(user.uid, "");
        assert_eq!(
            user.groups,
            strings(&["dev", "system:masters", "system:authenticated"])
        );
        assert!(user_from_subject("", &strings(&["dev"])).is_none());
        assert_eq!(
            user_from_subject("n", &[]).unwrap().groups,
            strings(&["system:authenticated"])
        );
    }

    #[test]
    fn rbac_authenticated_group_adder() {
        let anon = add_authenticated_group(anonymous_user());
        assert_eq!(anon.groups, strings(&["system:unauthenticated"]));
        let u = add_authenticated_group(UserInfo::new("x").with_groups(["system:unauthenticated"]));
        assert_eq!(u.groups, strings(&["system:unauthenticated"]));
        assert_eq!(
            add_authenticated_group(UserInfo::new("x")).groups,
            strings(&["system:authenticated"])
        );
    }

    #[test]
    fn rbac_service_account_usernames() {
        assert_eq!(
            make_service_account_username("ns", "sa"),
            "system:serviceaccount:ns:sa"
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:ns:sa"),
            Some(("ns".into(), "sa".into()))
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:ns:a.b-c"),
            Some(("ns".into(), "a.b-c".into()))
        );
        assert_eq!(split_service_account_username("system:serviceaccount:ns"), None);
        assert_eq!(
            split_service_account_username("system:serviceaccount:ns:a:b"),
            None
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:NS:sa"),
            None
        );
        assert_eq!(
            split_service_account_username("system:serviceaccount:ns.x:sa"),
            None
        );
        assert_eq!(split_service_account_username("alice"), None);
        assert_eq!(
            service_account_groups("ns"),
            strings(&["system:serviceaccounts", "system:serviceaccounts:ns"])
        );
    }

    #[test]
    fn rbac_bound_service_account_claims() {
        let claims = json!({
            "iss": "https://kubernetes.default.svc",
            "sub": "system:serviceaccount:ns:builder",
            "aud": ["https://kubernetes.default.svc"],
            "jti": "abc-123",
            "kubernetes.io": {
                "namespace": "ns",
                "serviceaccount": {"name": "builder", "uid": "sa-uid"},
                "pod": {"name": "p", "uid": "pod-uid"},
                "node": {"name": "n1", "uid": "node-uid"}
            }
        });
        let user = user_from_service_account_claims(&claims).unwrap();
        assert_eq!(user.name, "system:serviceaccount:ns:builder");
        assert_eq!(user.uid, "sa-uid");
        assert_eq!(
            user.groups,
            strings(&[
                "system:serviceaccounts",
                "system:serviceaccounts:ns",
                "system:authenticated"
            ])
        );
        assert_eq!(user.extra[POD_NAME_KEY], strings(&["p"]));
        assert_eq!(user.extra[POD_UID_KEY], strings(&["pod-uid"]));
        assert_eq!(user.extra[NODE_NAME_KEY], strings(&["n1"]));
        assert_eq!(user.extra[NODE_UID_KEY], strings(&["node-uid"]));
        assert_eq!(user.extra[CREDENTIAL_ID_KEY], strings(&["JTI=abc-123"]));

        let plain = json!({
            "sub": "system:serviceaccount:d:x",
            "kubernetes.io": {"namespace": "d", "serviceaccount": {"name": "x", "uid": "u"}}
        });
        let user = user_from_service_account_claims(&plain).unwrap();
        assert!(user.extra.is_empty());
        assert!(user_from_service_account_claims(&json!({"kubernetes.io": {"namespace": "d"}})).is_err());
    }

    #[test]
    fn rbac_legacy_service_account_claims() {
        let claims = json!({
            "iss": "kubernetes/serviceaccount",
            "sub": "system:serviceaccount:kube-system:default",
            "kubernetes.io/serviceaccount/namespace": "kube-system",
            "kubernetes.io/serviceaccount/secret.name": "default-token-abc",
            "kubernetes.io/serviceaccount/service-account.name": "default",
            "kubernetes.io/serviceaccount/service-account.uid": "u1"
        });
        let user = user_from_service_account_claims(&claims).unwrap();
        assert_eq!(user.name, "system:serviceaccount:kube-system:default");
        assert_eq!(user.uid, "u1");
        assert_eq!(
            user.groups,
            strings(&[
                "system:serviceaccounts",
                "system:serviceaccounts:kube-system",
                "system:authenticated"
            ])
        );
        let mut wrong = claims.clone();
        wrong["sub"] = json!("system:serviceaccount:other:default");
        assert_eq!(
            user_from_service_account_claims(&wrong).unwrap_err(),
            "sub claim is invalid"
        );
        let mut missing = claims;
        missing
            .as_object_mut()
            .unwrap()
            .remove("kubernetes.io/serviceaccount/secret.name");
        assert_eq!(
            user_from_service_account_claims(&missing).unwrap_err(),
            "secretName claim is missing"
        );
        assert_eq!(
            user_from_service_account_claims(&json!({})).unwrap_err(),
            "sub claim is missing"
        );
    }

    #[test]
    fn rbac_token_times() {
        let claims = json!({"nbf": 1000, "iat": 1000, "exp": 2000});
        assert!(validate_token_times(&claims, 1500).is_ok());
        assert!(validate_token_times(&claims, 950).is_ok());
        assert_eq!(
            validate_token_times(&claims, 900).unwrap_err(),
            "service account token is not valid yet"
        );
        assert!(validate_token_times(&claims, 2060).is_ok());
        assert_eq!(
            validate_token_times(&claims, 2061).unwrap_err(),
            "service account token has expired"
        );
        assert_eq!(
            validate_token_times(&json!({"iat": 5000}), 1000).unwrap_err(),
            "service account token is issued in the future"
        );
        assert!(validate_token_times(&json!({}), 0).is_ok());
    }
}
