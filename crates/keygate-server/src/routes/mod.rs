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
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{get, on, MethodFilter, MethodRouter};
use axum::Router;
use keygate_core::access::Access;
use tower_http::catch_panic::CatchPanicLayer;

use crate::error::ApiError;
use crate::state::AppState;

/// The HTTP methods the management API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Get,
    Post,
    Patch,
    Delete,
}

impl Verb {
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Patch => Method::PATCH,
            Verb::Delete => Method::DELETE,
        }
    }
    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Patch => MethodFilter::PATCH,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One operation of the management API: what it is and who may call it.
#[derive(Debug, Clone, Copy)]
pub struct Operation {
    pub verb: Verb,
    /// Under `/v1`, in axum's syntax (`/keys/{id}`).
    pub path: &'static str,
    pub access: Access,
    /// What the caller is doing, for the refusal message: "A viewer cannot {action}".
    pub action: &'static str,
}

fn op<H, T>(
    verb: Verb,
    path: &'static str,
    access: Access,
    action: &'static str,
    handler: H,
) -> (Operation, MethodRouter<AppState>)
where
    H: Handler<T, AppState>,
    T: 'static,
{
    (
        Operation {
            verb,
            path,
            access,
            action,
        },
        on(verb.filter(), handler),
    )
}

/// The management API, one row per operation, and the role each needs. This is the only
/// place a route's access is decided: the router is built from it, so a route cannot be
/// served without a row, and the caller is authenticated and authorized by the row before the
/// idempotency layer replays anything or the handler reads a body.
#[rustfmt::skip]
fn operations() -> Vec<(Operation, MethodRouter<AppState>)> {
    use Access::*;
    use Verb::*;
    vec![
        op(Post, "/keys", Write, "create keys", keys::create_key),
        op(Get, "/keys", Read, "list keys", keys::list_keys),
        op(Post, "/keys/verify", Meter, "verify keys", verify::verify_key),
        op(Post, "/keys/import", Write, "import keys", keys::import_key),
        op(Get, "/keys/{id}", Read, "read keys", keys::get_key),
        op(Patch, "/keys/{id}", Write, "change keys", keys::update_key),
        op(Delete, "/keys/{id}", Write, "delete keys", keys::delete_key),
        op(Post, "/keys/{id}/disable", Write, "disable keys", keys::disable_key),
        op(Post, "/keys/{id}/enable", Write, "enable keys", keys::enable_key),
        op(Post, "/keys/{id}/revoke", Write, "revoke keys", keys::revoke_key),
        op(Post, "/keys/{id}/regenerate", Write, "regenerate keys", keys::regenerate_key),
        op(Post, "/keys/{id}/rotate", Write, "rotate keys", keys::rotate_key),
        op(Get, "/keys/{id}/limits", Read, "read limits", limits::get_key_limits),
        op(Get, "/keys/{id}/usage", Read, "read usage", usage::get_key_usage),
        op(Post, "/usage", Meter, "report usage", limits::report_usage),
        op(Get, "/usage", Read, "read usage", usage::get_workspace_usage),
        op(Get, "/requests/{request_id}", Read, "read the request log", requests::get_request),
        op(Get, "/audit", Read, "read the audit trail", audit::list_audit),
        op(Post, "/reservations", Meter, "reserve", limits::create_reservation),
        op(Post, "/reservations/{id}/settle", Meter, "settle reservations", limits::settle_reservation),
        op(Post, "/reservations/{id}/release", Meter, "release reservations", limits::release_reservation),
        op(Post, "/projects", Write, "create projects", projects::create_project),
        op(Get, "/projects", Read, "list projects", projects::list_projects),
        op(Get, "/projects/{id}", Read, "read projects", projects::get_project),
        op(Post, "/members", Owner, "manage members", members::create_member),
        op(Get, "/members", Owner, "manage members", members::list_members),
        op(Delete, "/members/{id}", Owner, "manage members", members::delete_member),
        op(Get, "/me", Member, "read their own membership", workspace::get_me),
        op(Post, "/routing-rules", Write, "create routing rules", routing_rules::create_routing_rule),
        op(Get, "/routing-rules", Read, "list routing rules", routing_rules::list_routing_rules),
        op(Get, "/routing-rules/{id}", Read, "read routing rules", routing_rules::get_routing_rule),
        op(Patch, "/routing-rules/{id}", Write, "change routing rules", routing_rules::update_routing_rule),
        op(Delete, "/routing-rules/{id}", Write, "delete routing rules", routing_rules::delete_routing_rule),
        op(Get, "/workspace", Read, "read workspace settings", workspace::get_workspace),
        op(Patch, "/workspace", Owner, "change workspace settings", workspace::update_workspace),
    ]
}

/// The role table, for documentation and tests.
pub fn access_table() -> Vec<Operation> {
    operations().into_iter().map(|(op, _)| op).collect()
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    let max_body = state.max_body_bytes;
    let mut v1 = Router::new();
    for (operation, handler) in operations() {
        // Layers run outside in: authorize (authenticate, then check the role) first, then
        // idempotency, then the handler. `route_layer` keeps 405s for other methods as they
        // are.
        let handler = handler
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::idempotency::honour_idempotency_key,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), operation),
                crate::auth::authorize,
            ));
        v1 = v1.route(operation.path, handler);
    }

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
