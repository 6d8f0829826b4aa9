//! `/v3/processes` and `/v3/apps/{guid}/processes`: get, list, PATCH, scale, stats, sidecars, instance restarts.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
