//! The one error type of the CF façade: every failure renders as Cloud Controller's
//! `{"errors":[{"detail","title","code"}]}` with its status, and 5xx details never leak.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::json;

/// A CF API error, from Cloud Controller's catalogue.
#[derive(Debug, thiserror::Error)]
pub enum CfError {
    /// 404 CF-ResourceNotFound for a known kind (`"App not found"` is the detail the cf CLI matches).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 404 CF-NotFound "Unknown request": no such endpoint.
    #[error("Unknown request")]
    UnknownRequest,
    /// 422 CF-UnprocessableEntity with CC's detail.
    #[error("{0}")]
    Unprocessable(String),
    /// 422 CF-UniquenessError.
    #[error("{0}")]
    Uniqueness(String),
    /// 400 CF-InvalidRequest: the request cannot be served as asked (detail is CC's text).
    #[error("{0}")]
    InvalidRequest(String),
    /// 503 CF-ServiceUnavailable: a dependency (the cluster) is not answering.
    #[error("{0}")]
    Unavailable(String),
    /// 400 CF-BadQueryParameter.
    #[error("The query parameter is invalid: {0}")]
    BadQuery(String),
    /// 400 CF-MessageParseError: the body is not the JSON it should be.
    #[error("Request invalid due to parse error: {0}")]
    MessageParse(String),
    /// 400 CF-BadRequest, CC's generic "Bad request: …" (the cf CLI matches some details).
    #[error("Bad request: {0}")]
    BadRequest(String),
    /// 400 CF-PackageBitsAlreadyUploaded.
    #[error("Bits may be uploaded only once. Create a new package to upload different bits.")]
    PackageBitsAlreadyUploaded,
    /// 413 when a body exceeds the cap.
    #[error("Request entity too large")]
    TooLarge,
    /// 401 CF-NotAuthenticated: no credentials.
    #[error("Authentication error")]
    NotAuthenticated,
    /// 401 CF-InvalidAuthToken: bad or expired credentials.
    #[error("Invalid Auth Token")]
    InvalidAuthToken,
    /// 403 CF-NotAuthorized.
    #[error("You are not authorized to perform the requested action")]
    NotAuthorized,
    /// 500 UnknownError; the cause is logged, never shown.
    #[error("An unknown error occurred.")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CfError {
    /// Status, title and numeric code, from Cloud Controller's error catalogue.
    pub fn parts(&self) -> (StatusCode, &'static str, u32) {
        match self {
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "CF-ResourceNotFound", 10010),
            Self::UnknownRequest => (StatusCode::NOT_FOUND, "CF-NotFound", 10000),
            Self::Unprocessable(_) => (StatusCode::UNPROCESSABLE_ENTITY, "CF-UnprocessableEntity", 10008),
            Self::Uniqueness(_) => (StatusCode::UNPROCESSABLE_ENTITY, "CF-UniquenessError", 10016),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "CF-InvalidRequest", 10004),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "CF-ServiceUnavailable", 10015),
            Self::BadQuery(_) => (StatusCode::BAD_REQUEST, "CF-BadQueryParameter", 10005),
            Self::MessageParse(_) => (StatusCode::BAD_REQUEST, "CF-MessageParseError", 1001),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "CF-BadRequest", 1004),
            Self::PackageBitsAlreadyUploaded => {
                (StatusCode::BAD_REQUEST, "CF-PackageBitsAlreadyUploaded", 150004)
            }
            Self::TooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "CF-RequestEntityTooLarge", 10014),
            Self::NotAuthenticated => (StatusCode::UNAUTHORIZED, "CF-NotAuthenticated", 10002),
            Self::InvalidAuthToken => (StatusCode::UNAUTHORIZED, "CF-InvalidAuthToken", 1000),
            Self::NotAuthorized => (StatusCode::FORBIDDEN, "CF-NotAuthorized", 10003),
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "UnknownError", 10001),
        }
    }

    /// Wraps any error as a 500.
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(e))
    }
}

/// Kubernetes errors in CF's words: forbidden reads hide existence (404), forbidden writes are
/// 403, conflicts are uniqueness errors, invalid objects name the field.
pub fn from_kube(e: kube::Error, kind: &'static str, read: bool) -> CfError {
    match e {
        kube::Error::Api(status) => match status.code {
            404 => CfError::NotFound(kind),
            403 if read => CfError::NotFound(kind),
            403 => CfError::NotAuthorized,
            409 => CfError::Uniqueness(status.message),
            422 => CfError::Unprocessable(status.message),
            401 => CfError::InvalidAuthToken,
            _ => CfError::internal(kube::Error::Api(status)),
        },
        other => CfError::internal(other),
    }
}

impl IntoResponse for CfError {
    fn into_response(self) -> Response {
        let (status, title, code) = self.parts();
        let detail = match &self {
            Self::NotFound(kind) => format!("{kind} not found"),
            other => other.to_string(),
        };
        if let Self::Internal(cause) = &self {
            // Logged here with the request id the tracing span carries; the client sees only CF's text.
            tracing::error!(error = %cause, "internal error");
        }
        (
            status,
            Json(json!({"errors": [{"detail": detail, "title": title, "code": code}]})),
        )
            .into_response()
    }
}

/// Shorthand for handler results.
pub type CfResult<T> = Result<T, CfError>;

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(e: CfError) -> (u16, serde_json::Value) {
        let response = e.into_response();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn errors_render_as_cloud_controller_does() {
        assert_eq!(
            body(CfError::NotFound("App")).await,
            (
                404,
                json!({"errors": [{"detail": "App not found", "title": "CF-ResourceNotFound", "code": 10010}]})
            )
        );
        assert_eq!(
            body(CfError::UnknownRequest).await.1["errors"][0]["detail"],
            "Unknown request"
        );
        assert_eq!(body(CfError::NotAuthenticated).await.0, 401);
        assert_eq!(
            body(CfError::InvalidAuthToken).await.1["errors"][0]["title"],
            "CF-InvalidAuthToken"
        );
    }

    /// A 5xx must never leak internals to the client.
    #[tokio::test]
    async fn internal_errors_hide_their_cause() {
        let (status, json) = body(CfError::internal(std::io::Error::other("secret path /etc/x"))).await;
        assert_eq!(status, 500);
        assert_eq!(json["errors"][0]["detail"], "An unknown error occurred.");
        assert!(!json.to_string().contains("secret"));
    }

    #[test]
    fn kubernetes_errors_map_to_cf_errors() {
        let api = |code: u16| {
            kube::Error::Api(Box::new(kube::core::Status {
                code,
                message: "m".into(),
                ..Default::default()
            }))
        };
        assert!(matches!(
            from_kube(api(404), "App", true),
            CfError::NotFound("App")
        ));
        assert!(matches!(
            from_kube(api(403), "App", true),
            CfError::NotFound("App")
        ));
        assert!(matches!(
            from_kube(api(403), "App", false),
            CfError::NotAuthorized
        ));
        assert!(matches!(
            from_kube(api(409), "App", false),
            CfError::Uniqueness(_)
        ));
        assert!(matches!(
            from_kube(api(422), "App", false),
            CfError::Unprocessable(_)
        ));
    }
}
