//! `/v3/domains` and `/v3/organizations/{guid}/domains[/default]`.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
