//! `/v3/routes`: CRUD and destinations, plus `/v3/apps/{guid}/routes`.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
