//! `/v3/apps`: CRUD, lifecycle actions, env, features, current droplet.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
