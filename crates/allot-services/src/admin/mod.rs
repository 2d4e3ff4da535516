//! The admin API: rules lifecycle, simulation, reps, offboarding, replay.

use axum::Router;

use crate::api::ApiState;

/// Admin routes, merged into [`crate::api::router`].
pub fn router(_state: ApiState) -> Router {
    Router::new()
}
