//! Static and near-static lists: `/v3/resource_matches`, `/v3/stacks`, `/v3/buildpacks`, `/v3/feature_flags`.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
