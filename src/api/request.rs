//! Per-request context every route shares: a request id (the caller's `X-Vcap-Request-Id`, or a
//! new one) echoed in the response and carried by the tracing span, so a 5xx the client sees
//! only as "An unknown error occurred." can be found in the logs; and a deadline, after which
//! the request is answered with a CF error instead of hanging.

use std::time::Duration;

use axum::{
    extract::Request,
    http::HeaderValue,
    middleware::Next,
    response::{IntoResponse, Response},
};
use tracing::Instrument as _;

use super::CfError;

/// The header Cloud Controller and the cf CLI use for request ids.
pub const REQUEST_ID: &str = "x-vcap-request-id";

/// Wraps one request: id, span, deadline.
pub async fn context(deadline: Duration, request: Request, next: Next) -> Response {
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

#[cfg(test)]
mod tests {
    use axum::{Router, body::Body, routing::get};
    use tower::ServiceExt as _;

    use super::*;

    fn app(deadline: Duration) -> Router {
        Router::new()
            .route("/fast", get(|| async { "ok" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .layer(axum::middleware::from_fn(move |req, next| {
                context(deadline, req, next)
            }))
    }

    async fn send(router: Router, path: &str, id: Option<&str>) -> Response {
        let mut req = axum::http::Request::builder().uri(path);
        if let Some(id) = id {
            req = req.header(REQUEST_ID, id);
        }
        router.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    #[tokio::test]
    async fn a_request_past_its_deadline_gets_a_cf_error() {
        let response = send(app(Duration::from_millis(20)), "/slow", None).await;
        assert_eq!(response.status().as_u16(), 503);
        assert!(response.headers().contains_key(REQUEST_ID));
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body["errors"][0]["title"], "CF-ServiceUnavailable");
        let fast = send(app(Duration::from_millis(20)), "/fast", Some("trace-1")).await;
        assert_eq!(fast.status().as_u16(), 200);
        assert_eq!(fast.headers()[REQUEST_ID], "trace-1");
    }
}
