//! `metav1.Status` failures in exactly the shape kube-apiserver sends them: clients match on
//! `reason` and `code`, and kubectl prints `message` verbatim.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use crate::registry::ResourceType;

/// A failed request, rendered as a Status object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// The machine-readable `reason`, such as `NotFound`.
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// `details`, when the failure concerns one object.
    pub details: Option<Value>,
}

/// Shorthand for handler results.
pub type ApiResult<T> = Result<T, ApiError>;

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": rt.plural});
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d
}

impl ApiError {
    /// A failure with no details.
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 404 for an object.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", rt.qualified()),
            )
        }
    }

    /// 404 for a namespace that does not exist.
    pub fn namespace_not_found(name: &str) -> Self {
        Self {
            details: Some(json!({"name": name, "kind": "namespaces"})),
            ..Self::new(404, "NotFound", format!("namespaces \"{name}\" not found"))
        }
    }

    /// 404 for a path nothing serves.
    pub fn path_not_found() -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            )
        }
    }

    /// 403 for a write of an object that admission or the registry refuses
    /// (`apierrors.NewForbidden`).
    pub fn forbidden(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                403,
                "Forbidden",
                format!("{} \"{name}\" is forbidden: {why}", rt.qualified()),
            )
        }
    }

    /// 409 for a create of a name that exists.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", rt.qualified()),
            )
        }
    }

    /// 409 for a stale resourceVersion or another optimistic-concurrency failure.
    pub fn conflict(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {why}",
                    rt.qualified()
                ),
            )
        }
    }

    /// The standard stale-write conflict.
    pub fn stale(rt: &ResourceType, name: &str) -> Self {
        Self::conflict(
            rt,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 with field causes.
    pub fn invalid(rt: &ResourceType, name: &str, message: &str, causes: Value) -> Self {
        let mut d = json!({"name": name, "kind": rt.kind, "causes": causes});
        if !rt.group.is_empty() {
            d["group"] = json!(rt.group);
        }
        let kind = if rt.group.is_empty() {
            rt.kind.clone()
        } else {
            format!("{}.{}", rt.kind, rt.group)
        };
        Self {
            details: Some(d),
            ..Self::new(422, "Invalid", format!("{kind} \"{name}\" is invalid: {message}"))
        }
    }

    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 405 for a verb the resource does not serve.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self {
            details: Some(json!({})),
            ..Self::new(405, "MethodNotAllowed", message)
        }
    }

    /// 410 for a resourceVersion older than history.
    pub fn gone(requested: u64, oldest: u64) -> Self {
        Self::new(
            410,
            "Expired",
            format!("too old resource version: {requested} ({oldest})"),
        )
    }

    /// 415 for a body in a format the server does not read.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf; got {content_type}"
            ),
        )
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// The Status object.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            status["details"] = d.clone();
        }
        if self.reason.is_empty()
            && let Some(map) = status.as_object_mut()
        {
            map.remove("reason");
        }
        status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(code, &self.to_status())
    }
}

/// A JSON body with kube-apiserver's content type.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut response = (code, bytes).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
