//! The ops dashboard served by the api stage.

use axum::Router;

use crate::api::ApiState;

/// Dashboard routes, merged into [`crate::api::router`].
pub fn router(_state: ApiState) -> Router {
    Router::new()
}
