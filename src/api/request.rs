//! Per-request context every route shares: a request id (the caller's `X-Vcap-Request-Id`, or a
//! new one) echoed in the response and carried by the tracing span, so a 5xx the client sees
//! only as "An unknown error occurred." can be found in the logs; and a deadline, after which
//! the request is answered with a CF error instead of hanging.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::HeaderValue,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument as _;

use super::{ApiState, CfError};

/// The header Cloud Controller and the cf CLI use for request ids.
pub const REQUEST_ID: &str = "x-vcap-request-id";

/// Wraps one request: id, span, deadline.
pub async fn context(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 255 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path()
    );
    let deadline = state.config.request_timeout;
    let mut response = match tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await
    {
        Ok(response) => response,
        Err(_) => {
            span.in_scope(|| tracing::warn!(timeout = ?deadline, "request timed out"));
            CfError::Unavailable(format!(
                "The request did not complete within {} seconds",
                deadline.as_secs()
            ))
            .into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}
