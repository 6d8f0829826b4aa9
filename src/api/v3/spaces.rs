//! `/v3/spaces`: CRUD, `features`, and `routes?unmapped=true` DELETE.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
