//! Manifests: `/v3/spaces/{guid}/actions/apply_manifest`, `/v3/spaces/{guid}/manifest_diff` and `/v3/apps/{guid}/manifest`.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
