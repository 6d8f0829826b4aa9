//! `/v3/service_instances`: user-provided service instances.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
