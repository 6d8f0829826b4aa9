//! Log-cache (`/api/v1/info`, `/api/v1/read/{source-id}`): pod logs and Kubernetes Events as
//! the envelopes the cf CLI parses.

use std::sync::Arc;

use axum::Router;

use super::ApiState;

/// The routes of log-cache.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
