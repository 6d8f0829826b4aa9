//! ServiceAccount tokens: HMAC-signed JWTs bound to the ServiceAccount's (and, for legacy
//! token Secrets, the Secret's) uid, so deleting either revokes the token as in kube-apiserver.

use std::sync::Arc;

use axum::{body::Bytes, response::Response};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::{
    api::{ApiError, ApiResult, Ctx, created, decode_body},
    cluster::Cluster,
    rbac::{self as authn, UserInfo},
    store::{Key, Store, Write},
    time,
};

type HmacSha256 = Hmac<Sha256>;

const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

fn sign(key: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap_or_default());
    let signing_input = format!("{header}.{payload}");
    let signature = match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(signing_input.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    };
    format!("{signing_input}.{signature}")
}

/// Issues a token for ServiceAccount `namespace/name`, valid for `seconds`.
pub fn issue(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    seconds: i64,
    secret: Option<(&str, &str)>,
) -> ApiResult<String> {
    let sa = cluster
        .store
        .get(&Key::new("/serviceaccounts", namespace, name))
        .ok_or_else(|| ApiError::new(404, "NotFound", format!("serviceaccounts \"{name}\" not found")))?;
    let uid = sa.pointer("/metadata/uid").and_then(Value::as_str).unwrap_or("");
    let now = time::unix_now();
    let mut k8s = json!({"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}});
    let mut claims = json!({
        "iss": ISSUER,
        "sub": authn::make_service_account_username(namespace, name),
        "aud": ["https://kubernetes.default.svc.cluster.local"],
        "iat": now,
        "nbf": now,
    });
    if let Some((secret_name, secret_uid)) = secret {
        k8s["secret"] = json!({"name": secret_name, "uid": secret_uid});
    } else {
        claims["exp"] = json!(now + seconds);
    }
    claims["kubernetes.io"] = k8s;
    Ok(sign(&cluster.service_account_key, &claims))
}

/// The user a ServiceAccount token authenticates, if it is genuine, current, and its
/// ServiceAccount (and Secret) still exist with the uids it was issued for.
pub fn verify(key: &[u8], token: &str, store: &Store) -> Option<UserInfo> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let mut mac = HmacSha256::new_from_slice(key).ok()?;
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&URL_SAFE_NO_PAD.decode(signature).ok()?).ok()?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    authn::validate_token_times(&claims, time::unix_now()).ok()?;
    let k8s = claims.get("kubernetes.io")?;
    let namespace = k8s["namespace"].as_str()?;
    let sa_name = k8s.pointer("/serviceaccount/name")?.as_str()?;
    let sa = store.get(&Key::new("/serviceaccounts", namespace, sa_name))?;
    if sa.pointer("/metadata/uid") != k8s.pointer("/serviceaccount/uid") {
        return None;
    }
    if let Some(secret) = k8s.get("secret") {
        let stored = store.get(&Key::new("/secrets", namespace, secret["name"].as_str()?))?;
        if stored.pointer("/metadata/uid") != secret.get("uid") {
            return None;
        }
    }
    authn::user_from_service_account_claims(&claims).ok()
}

/// `POST .../serviceaccounts/NAME/token`: a TokenRequest.
pub fn token_request(
    cluster: &Cluster,
    namespace: &str,
    name: &str,
    ctx: &Ctx,
    body: &Bytes,
) -> ApiResult<Response> {
    let mut request = if body.is_empty() {
        json!({})
    } else {
        decode_body(&ctx.headers, body)?
    };
    let seconds = request
        .pointer("/spec/expirationSeconds")
        .and_then(Value::as_i64)
        .unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::bad_request(
            "spec.expirationSeconds: Invalid value: may not specify a duration less than 10 minutes",
        ));
    }
    let token = issue(cluster, namespace, name, seconds, None)?;
    request["apiVersion"] = json!("authentication.k8s.io/v1");
    request["kind"] = json!("TokenRequest");
    request["metadata"] = json!({"name": name, "namespace": namespace, "creationTimestamp": null});
    if request.pointer("/spec/audiences").is_none() {
        request["spec"]["audiences"] = json!(["https://kubernetes.default.svc.cluster.local"]);
    }
    request["spec"]["expirationSeconds"] = json!(seconds);
    request["status"] = json!({"token": token, "expirationTimestamp": time::rfc3339_in(seconds)});
    Ok(created(&request))
}

/// Fills a `kubernetes.io/service-account-token` Secret with its token, as the token
/// controller does.
pub fn fill_token_secret(cluster: &Cluster, secret: &Arc<Value>) {
    if secret.get("type").and_then(Value::as_str) != Some("kubernetes.io/service-account-token")
        || secret.pointer("/data/token").is_some()
    {
        return;
    }
    let namespace = secret
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let name = secret
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let uid = secret
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    let Some(sa) = secret
        .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
        .and_then(Value::as_str)
    else {
        return;
    };
    let Ok(token) = issue(cluster, namespace, sa, 0, Some((name, uid))) else {
        return;
    };
    let sa_uid = cluster
        .store
        .get(&Key::new("/serviceaccounts", namespace, sa))
        .and_then(|s| s.pointer("/metadata/uid").cloned())
        .unwrap_or(json!(""));
    let key = Key::new("/secrets", namespace, name);
    let _ = cluster.store.write(&key, |current| -> Result<Write, ()> {
        let Some(current) = current else {
            return Ok(Write::Unchanged);
        };
        if current.pointer("/data/token").is_some() {
            return Ok(Write::Unchanged);
        }
        let mut next = current.clone();
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        next["data"]["token"] = json!(b64(&token));
        next["data"]["namespace"] = json!(b64(namespace));
        next["data"]["ca.crt"] = json!(b64(&cluster.ca_pem()));
        next["metadata"]["annotations"]["kubernetes.io/service-account.uid"] = sa_uid.clone();
        Ok(Write::Put(next))
    });
}
