//! The HTTP surface: one module per resource. `router` assembles them with the middleware
//! every request passes through.

pub mod audit;
pub mod health;
pub mod keys;
pub mod limits;
pub mod members;
pub mod openapi;
pub mod projects;
pub mod requests;
pub mod routing_rules;
pub mod usage;
pub mod verify;
pub mod workspace;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let v1 = Router::new()
        .route("/keys", post(keys::create_key).get(keys::list_keys))
        .route("/keys/verify", post(verify::verify_key))
        .route("/keys/import", post(keys::import_key))
        .route(
            "/keys/{id}",
            get(keys::get_key)
                .patch(keys::update_key)
                .delete(keys::delete_key),
        )
        .route("/keys/{id}/disable", post(keys::disable_key))
        .route("/keys/{id}/enable", post(keys::enable_key))
        .route("/keys/{id}/revoke", post(keys::revoke_key))
        .route("/keys/{id}/regenerate", post(keys::regenerate_key))
        .route("/keys/{id}/rotate", post(keys::rotate_key))
        .route("/keys/{id}/limits", get(limits::get_key_limits))
        .route("/keys/{id}/usage", get(usage::get_key_usage))
        .route(
            "/usage",
            post(limits::report_usage).get(usage::get_workspace_usage),
        )
        .route("/requests/{request_id}", get(requests::get_request))
        .route("/audit", get(audit::list_audit))
        .route("/reservations", post(limits::create_reservation))
        .route(
            "/reservations/{id}/settle",
            post(limits::settle_reservation),
        )
        .route(
            "/reservations/{id}/release",
            post(limits::release_reservation),
        )
        .route(
            "/projects",
            post(projects::create_project).get(projects::list_projects),
        )
        .route("/projects/{id}", get(projects::get_project))
        .route(
            "/members",
            post(members::create_member).get(members::list_members),
        )
        .route(
            "/members/{id}",
            axum::routing::delete(members::delete_member),
        )
        .route("/me", get(workspace::get_me))
        .route(
            "/routing-rules",
            post(routing_rules::create_routing_rule).get(routing_rules::list_routing_rules),
        )
        .route(
            "/routing-rules/{id}",
            get(routing_rules::get_routing_rule)
                .patch(routing_rules::update_routing_rule)
                .delete(routing_rules::delete_routing_rule),
        )
        .route(
            "/workspace",
            get(workspace::get_workspace).patch(workspace::update_workspace),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::idempotency::honour_idempotency_key,
        ));

    Router::new()
        .nest("/v1", v1)
        // Gateway mode: configured proxy prefixes and the AI endpoints, outside the
        // management API's idempotency layer (their POSTs go to an upstream, not the store).
        .merge(crate::gateway::routes(&state))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(|| async { ApiError::NoRoute })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(CatchPanicLayer::custom(
            |_panic: Box<dyn std::any::Any + Send>| {
                use axum::response::IntoResponse;
                ApiError::Internal("a handler panicked".into()).into_response()
            },
        ))
        .layer(axum::middleware::from_fn(
            crate::request_id::assign_request_id,
        ))
        .with_state(state)
}
