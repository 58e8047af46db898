//! Liveness and metrics.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::Json;

use crate::error::ApiError;
use crate::state::AppState;

/// 200 when the store answers; load balancers poll this.
pub async fn healthz(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    state.store.ping().await?;
    Ok(Json(serde_json::json!({
        "status": "ok",
        "store": state.store.backend(),
        "invalidation": state.broadcaster.health(),
    })))
}

/// Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let mut text = state.metrics.render();
    state.usage.render_metrics(&mut text);
    state.broadcaster.render_metrics(&mut text);
    let pending = state.store.pending_deliveries().await.ok();
    state.webhook_counts.render(pending, &mut text);
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
