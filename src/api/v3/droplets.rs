//! `/v3/droplets` and an app's droplets.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
