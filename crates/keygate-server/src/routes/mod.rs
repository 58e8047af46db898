//! The HTTP surface: one module per resource. `router` assembles them with the middleware
//! every request passes through.
//!
//! The resource modules never import one another: what two of them share lives below them,
//! in `common` (shared validators, key and routing-rule lookups), `check` (the management
//! caller's check path, for verify mode and reservations) and [`table`] (the types of the
//! access table, which `openapi` reads too).

pub mod audit;
mod check;
mod common;
pub mod health;
pub mod identities;
pub mod keys;
pub mod leaks;
pub mod limits;
pub mod members;
pub mod openapi;
pub mod projects;
pub mod requests;
pub mod routing_rules;
pub mod table;
pub mod usage;
pub mod verify;
pub mod webhooks;
pub mod workspace;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use keygate_core::access::Access;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::state::AppState;

use table::{row, Row};
pub use table::{Operation, Verb};

/// The management API, one row per operation, and the role each needs. This is the only
/// place a route's access is decided, and the only list of routes: the router and
/// `/openapi.json` are built from it (each handler's `#[utoipa::path]` gives its method, path
/// and description), so a route cannot be served without a row or documented without being
/// served. The caller is authenticated and authorized by the row before the idempotency layer
/// replays anything or the handler reads a body.
#[rustfmt::skip]
pub(crate) fn operations() -> Vec<Row> {
    use Access::*;
    vec![
        row(Write, "create keys", routes!(keys::create_key)),
        row(Read, "list keys", routes!(keys::list_keys)),
        row(Meter, "verify keys", routes!(verify::verify_key)),
        row(Write, "import keys", routes!(keys::import_key)),
        row(Read, "read keys", routes!(keys::get_key)),
        row(Write, "change keys", routes!(keys::update_key)),
        row(Write, "delete keys", routes!(keys::delete_key)),
        row(Write, "disable keys", routes!(keys::disable_key)),
        row(Write, "enable keys", routes!(keys::enable_key)),
        row(Write, "revoke keys", routes!(keys::revoke_key)),
        row(Write, "regenerate keys", routes!(keys::regenerate_key)),
        row(Write, "rotate keys", routes!(keys::rotate_key)),
        row(Report, "report leaked keys", routes!(leaks::report_leaks)),
        row(Read, "read limits", routes!(limits::get_key_limits)),
        row(Read, "read usage", routes!(usage::get_key_usage)),
        row(Meter, "report usage", routes!(limits::report_usage)),
        row(Read, "read usage", routes!(usage::get_workspace_usage)),
        row(Read, "read the request log", routes!(requests::get_request)),
        row(Read, "read the audit trail", routes!(audit::list_audit)),
        row(Meter, "reserve", routes!(limits::create_reservation)),
        row(Meter, "settle reservations", routes!(limits::settle_reservation)),
        row(Meter, "release reservations", routes!(limits::release_reservation)),
        row(Write, "create identities", routes!(identities::create_identity)),
        row(Read, "list identities", routes!(identities::list_identities)),
        row(Read, "read identities", routes!(identities::get_identity)),
        row(Write, "change identities", routes!(identities::update_identity)),
        row(Write, "delete identities", routes!(identities::delete_identity)),
        row(Read, "read usage", routes!(usage::get_identity_usage)),
        row(Write, "create projects", routes!(projects::create_project)),
        row(Read, "list projects", routes!(projects::list_projects)),
        row(Read, "read projects", routes!(projects::get_project)),
        row(Owner, "manage members", routes!(members::create_member)),
        row(Owner, "manage members", routes!(members::list_members)),
        row(Owner, "manage members", routes!(members::delete_member)),
        row(Member, "read their own membership", routes!(workspace::get_me)),
        row(Write, "create routing rules", routes!(routing_rules::create_routing_rule)),
        row(Read, "list routing rules", routes!(routing_rules::list_routing_rules)),
        row(Read, "read routing rules", routes!(routing_rules::get_routing_rule)),
        row(Write, "change routing rules", routes!(routing_rules::update_routing_rule)),
        row(Write, "delete routing rules", routes!(routing_rules::delete_routing_rule)),
        row(Read, "read workspace settings", routes!(workspace::get_workspace)),
        row(Owner, "change workspace settings", routes!(workspace::update_workspace)),
        row(Write, "create webhooks", routes!(webhooks::create_webhook)),
        row(Read, "list webhooks", routes!(webhooks::list_webhooks)),
        row(Read, "read webhooks", routes!(webhooks::get_webhook)),
        row(Write, "change webhooks", routes!(webhooks::update_webhook)),
        row(Write, "delete webhooks", routes!(webhooks::delete_webhook)),
        row(Read, "read webhook deliveries", routes!(webhooks::list_deliveries)),
        row(Write, "send test webhooks", routes!(webhooks::test_webhook)),
        row(Write, "redeliver webhooks", routes!(webhooks::redeliver)),
    ]
}

/// The role table, for documentation and tests.
pub fn access_table() -> Vec<Operation> {
    operations().into_iter().map(|row| row.operation).collect()
}

/// Paths a gateway proxy prefix may not equal, contain or fall under: every management route
/// (by its first two segments), the AI endpoints and the server's own pages.
pub fn reserved_paths() -> Vec<String> {
    let mut reserved: Vec<String> = access_table()
        .into_iter()
        .map(|op| op.path.split('/').take(3).collect::<Vec<_>>().join("/"))
        .chain(crate::gateway::AI_PATHS.iter().map(|p| p.to_string()))
        .chain(
            [
                "/healthz",
                "/metrics",
                "/openapi.json",
                "/docs",
                "/dashboard",
            ]
            .iter()
            .map(|p| p.to_string()),
        )
        .collect();
    reserved.sort();
    reserved.dedup();
    reserved
}

/// The whole application, ready to serve.
pub fn router(state: AppState) -> Router {
    router_with(state, Router::new())
}

/// The application with `extra` routes beside the API (the binary adds the dashboard this
/// way: it lives in a crate above this one). They pass through the same request id, panic
/// guard and body limit; the API's authorization and idempotency layers are per route and do
/// not apply to them.
pub fn router_with(state: AppState, extra: Router<AppState>) -> Router {
    let max_body = state.max_body_bytes;
    let rows = operations();
    let document = openapi::Document::build(&rows, state.gateway.as_deref());
    let mut api = Router::new();
    for row in rows {
        // Layers run outside in: authorize (authenticate, then check the role) first, then
        // idempotency, then the handler. `route_layer` keeps 405s for other methods as they
        // are.
        let handler = row
            .handler
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                crate::idempotency::honour_idempotency_key,
            ))
            .route_layer(axum::middleware::from_fn_with_state(
                (state.clone(), row.operation.access, row.operation.action),
                crate::auth::authorize,
            ));
        api = api.route(&row.operation.path, handler);
    }

    api
        // Gateway mode: configured proxy prefixes and the AI endpoints, outside the
        // management API's idempotency layer (their POSTs go to an upstream, not the store).
        .merge(crate::gateway::routes(&state))
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(health::metrics))
        .merge(document.routes())
        .merge(extra)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gateway::GatewayConfig;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn prefixes_cannot_shadow_the_management_api() {
        for bad in [
            "/",
            "/v1",
            "/v1/keys",
            "/v1/keys/x",
            "/v1/routing-rules",
            "/v1/requests",
            "/v1/chat",
            "/docs",
            "/healthz",
            "/proxy/",
            "proxy",
            "/a//b",
            "/a/{id}",
            "/a/*",
            "/a/../v1/keys",
            "/proxy/.",
            "/..",
        ] {
            let text = format!(
                "[[proxy]]\nprefix = \"{bad}\"\nupstream = \"http://127.0.0.1:1\"\nworkspaces = \"*\""
            );
            let checked = GatewayConfig::parse(&text, &no_env)
                .and_then(|c| c.check_reserved(&reserved_paths()));
            assert!(checked.is_err(), "{bad}");
        }
        for good in ["/proxy/billing", "/v1/search", "/api", "/v2/keys"] {
            let text = format!(
                "[[proxy]]\nprefix = \"{good}\"\nupstream = \"http://127.0.0.1:1/base/\"\nworkspaces = \"*\""
            );
            let config = GatewayConfig::parse(&text, &no_env).expect(good);
            config.check_reserved(&reserved_paths()).expect(good);
            assert_eq!(config.proxy[0].upstream, "http://127.0.0.1:1/base");
        }
    }
}
