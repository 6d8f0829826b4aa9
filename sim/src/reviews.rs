//! The create-only review kinds: TokenReview, SelfSubjectReview and the access reviews. They
//! are answered from the same authenticator and authorizer that guard live requests, so a
//! review and the real request always agree.

use axum::response::Response;
use serde_json::{Value, json};

use crate::{
    api::{ApiError, ApiResult, Ctx, created, objects::with_type},
    cluster::Cluster,
    rbac::{self, Attributes},
    registry::ResourceType,
};

/// Answers a review POST with the review plus its `status`.
pub fn create(cluster: &Cluster, rt: &ResourceType, ctx: &Ctx, mut body: Value) -> ApiResult<Response> {
    let spec = body.get("spec").cloned().unwrap_or(json!({}));
    let status = match rt.kind.as_str() {
        "TokenReview" => {
            let token = spec["token"].as_str().unwrap_or("");
            let mut headers = axum::http::HeaderMap::new();
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!("Bearer {token}")) {
                headers.insert(axum::http::header::AUTHORIZATION, v);
            }
            match cluster.authenticate(&headers, None) {
                Ok(user) if !token.is_empty() => json!({
                    "authenticated": true,
                    "user": {"username": user.name, "uid": user.uid, "groups": user.groups, "extra": user.extra},
                    "audiences": spec.get("audiences").cloned().unwrap_or(json!(["https://kubernetes.default.svc"])),
                }),
                _ => json!({"user": {}, "error": "invalid bearer token"}),
            }
        }
        "SelfSubjectReview" => json!({"userInfo": {
            "username": ctx.user.name, "uid": ctx.user.uid, "groups": ctx.user.groups, "extra": ctx.user.extra,
        }}),
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let user = rbac::user_from_access_review_spec(&spec);
            if user.name.is_empty() && user.groups.is_empty() {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    "spec.user: Invalid value: \"\": at least one of user or group must be specified",
                    json!([{"reason": "FieldValueInvalid", "message": "Invalid value: \"\": at least one of user or group must be specified", "field": "spec.user"}]),
                ));
            }
            let mut attrs = Attributes::from_access_review_spec(user, &spec);
            if rt.kind == "LocalSubjectAccessReview" {
                attrs.namespace = ctx.info.namespace.clone();
            }
            decision(cluster, &attrs)
        }
        "SelfSubjectAccessReview" => decision(
            cluster,
            &Attributes::from_access_review_spec(ctx.user.clone(), &spec),
        ),
        "SelfSubjectRulesReview" => {
            let namespace = spec["namespace"].as_str().unwrap_or("");
            if ctx.user.in_group("system:masters") {
                json!({
                    "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                    "incomplete": false,
                })
            } else {
                rbac::rules_review_status(&ctx.user, namespace, &cluster.rbac_snapshot())
            }
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "the server does not allow this method on the requested resource",
            ));
        }
    };
    body["status"] = status;
    if body.get("metadata").is_none() {
        body["metadata"] = json!({});
    }
    Ok(created(&with_type(rt, &body)))
}

fn decision(cluster: &Cluster, attrs: &Attributes) -> Value {
    let d = cluster.decide(attrs, &cluster.rbac_snapshot());
    let mut status = json!({"allowed": d.allowed});
    if !d.reason.is_empty() {
        status["reason"] = json!(d.reason);
    }
    status
}
