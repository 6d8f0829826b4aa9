//! `/v3/tasks` and `/v3/apps/{guid}/tasks`: one-off commands, with cancel.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
