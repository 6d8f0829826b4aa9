//! `/v3/packages`: CRUD, bits upload and download, and a package's droplets.

use std::sync::Arc;

use axum::Router;

use crate::api::ApiState;

/// The routes of this family.
pub fn routes() -> Router<Arc<ApiState>> {
    Router::new()
}
