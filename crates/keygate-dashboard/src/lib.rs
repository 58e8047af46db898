//! Keygate's web dashboard: server-rendered pages under `/dashboard`, served by the same
//! binary as the API (the binary merges [`router`] into the server's router).
//!
//! The decisions a reader must know (`docs/design.md`, "The dashboard"):
//!
//! * **One path to the data.** Every read and write calls the same functions as the API
//!   (`keygate_server::routes::keys::{create, list, get, set_enabled, revoke}`), with the same
//!   role check (`keygate_server::auth::check_access`) and the same audit rows, whose actor is
//!   the signed-in member. There is no second, weaker path.
//! * **Sessions are rows**, keyed by a keyed hash of the cookie's random id, so any node
//!   accepts them and a copy of the database signs nobody in. Idle timeout and absolute
//!   lifetime are checked on every request; deleting a member deletes their sessions.
//! * **Forms work without JavaScript**; the one script (a copy button) is a file of ours, so
//!   the CSP can forbid inline script and style. Every POST carries the session's CSRF token
//!   and must come from this origin (`Origin` / `Sec-Fetch-Site`).
//! * **A secret is rendered once**, in the response to the form that created it, with
//!   `Cache-Control: no-store` (as on every dashboard page); it is never put in a URL, a
//!   session, a redirect or a log.
//! * **One error type** (`error::DashboardError`) maps every failure to a page once.

mod error;
mod identities;
mod keys;
mod pages;
mod security;
mod session;
mod sign_in;

use std::sync::Arc;
use std::time::Duration;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Extension, Router};
use keygate_server::AppState;

pub use session::{issue_sign_in_link, IssuedLink, SIGN_IN_LINK_LIFETIME};

/// How the dashboard treats sessions and requests.
#[derive(Debug, Clone)]
pub struct DashboardSettings {
    /// Believe `X-Forwarded-Proto` and `X-Forwarded-For` (set when a TLS-terminating proxy
    /// that overwrites them is the only way in). Off by default: anyone could send them.
    pub trust_proxy: bool,
    /// A session unused this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however active.
    pub lifetime: Duration,
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            trust_proxy: false,
            idle_timeout: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
        }
    }
}

/// What the dashboard's handlers share beside the server's state.
pub(crate) struct Dashboard {
    pub settings: DashboardSettings,
    pub throttle: security::Throttle,
}

/// The dashboard's routes (`/dashboard/…`, and `/` redirecting there), to merge into the
/// server's router (`keygate_server::router_with`).
pub fn router(settings: DashboardSettings) -> Router<AppState> {
    let dashboard = Arc::new(Dashboard {
        settings,
        throttle: security::Throttle::default(),
    });
    let pages = Router::new()
        .route("/", get(keys::home))
        .route(
            "/sign-in",
            get(sign_in::sign_in_page).post(sign_in::sign_in_with_token),
        )
        .route(
            "/sign-in/link",
            get(sign_in::link_page).post(sign_in::sign_in_with_link),
        )
        .route("/sign-out", post(sign_in::sign_out))
        .route("/keys", get(keys::list_keys).post(keys::create_key))
        .route("/keys/new", get(keys::new_key))
        .route("/identities", get(identities::list_identities))
        .route("/keys/{id}", get(keys::show_key))
        .route("/keys/{id}/disable", post(keys::disable_key))
        .route("/keys/{id}/enable", post(keys::enable_key))
        .route(
            "/keys/{id}/revoke",
            get(keys::confirm_revoke).post(keys::revoke_key),
        )
        .route("/static/dashboard.css", get(security::stylesheet))
        .route("/static/dashboard.js", get(security::script))
        .fallback(|| async { error::DashboardError::PageNotFound })
        .layer(axum::middleware::from_fn(security::same_origin_posts))
        .layer(Extension(dashboard));
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .nest("/dashboard", pages)
        // Outermost: every dashboard answer, errors and redirects included, has the headers.
        .layer(axum::middleware::from_fn(security::security_headers))
}
