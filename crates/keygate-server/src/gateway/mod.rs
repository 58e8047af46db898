//! Gateway mode: Keygate in front of an API, answering for it whether a key may make a request.
//!
//! Two faces over one pipeline. [`proxy`] forwards any HTTP request under a configured prefix
//! to an upstream, with the customer's key stripped and the key's identity added as headers.
//! [`openai`] serves the OpenAI wire format (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`, `/v1/models`) over configured providers, choosing one by the key's
//! routing rule ([`routing`]) and charging the tokens and cost the provider reports
//! ([`metering`]).
//!
//! Neither copies a verification step: both call [`crate::pipeline::check`] — the function
//! verify mode calls — at a [`crate::pipeline::Door::Route`] holding the workspaces the route
//! (or `[ai]`) names in the config, so a key of any other workspace is refused `forbidden`.
//! The check records the request's usage and builds its `RateLimit-*` headers; a handler only
//! answers a refusal with [`crate::pipeline::Checked::admitted`], so gateway mode refuses
//! exactly what verify mode refuses, with the same codes and headers. The one exception to
//! "recorded by the check" is an admitted AI request: it is recorded by its settlement
//! ([`metering`]), once its usage is known. Bodies stream both ways; nothing is buffered whole
//! except an AI request body, which must be read to pick a model.

pub mod config;
mod headers;
pub mod metering;
pub mod openai;
mod openapi;
pub mod proxy;
pub mod routing;
pub mod runtime;

use axum::routing::any;
use axum::Router;

use crate::state::AppState;

pub use config::{ConfigError, GatewayConfig};
pub use runtime::Gateway;

/// The OpenAI-compatible endpoints the AI gateway serves when `[ai]` is configured.
pub const AI_PATHS: [&str; 4] = [
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/models",
];

/// The AI endpoints, each as utoipa-axum makes it of its handler: the method, path and
/// schemas of its `#[utoipa::path]`, and the handler. The router and the OpenAPI document are
/// both built from this list, so they cannot disagree (a test checks it against
/// [`AI_PATHS`]).
fn ai_endpoints() -> [utoipa_axum::router::UtoipaMethodRouter<AppState>; 4] {
    use utoipa_axum::routes;
    [
        routes!(openai::chat_completions),
        routes!(openai::completions),
        routes!(openai::embeddings),
        routes!(openai::list_models),
    ]
}

/// Adds the AI endpoints to the OpenAPI document when the AI gateway serves them (they take
/// a customer's key, not a management token), with the answers only the gateway gives, and
/// narrows routing rules to the providers and priced models of the config.
pub fn document(
    gateway: &Gateway,
    api: &mut utoipa::openapi::OpenApi,
    schemas: &mut Vec<(
        String,
        utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
    )>,
) {
    if let Some(ai) = &gateway.config.ai {
        openapi::document(ai, ai_endpoints(), api, schemas);
    }
}

/// The gateway's routes, to be merged into the application's router: every configured proxy
/// prefix, and the AI endpoints when providers are configured.
pub fn routes(state: &AppState) -> Router<AppState> {
    let mut router = Router::new();
    let Some(gateway) = &state.gateway else {
        return router;
    };
    for route in &gateway.config.proxy {
        let exact = route.clone();
        let nested = route.clone();
        router = router
            .route(
                &route.prefix,
                any(move |state, request| proxy::forward(state, exact.clone(), request)),
            )
            .route(
                &format!("{}/{{*rest}}", route.prefix),
                any(move |state, request| proxy::forward(state, nested.clone(), request)),
            );
    }
    if gateway.config.ai.is_some() {
        for (_, paths, handler) in ai_endpoints() {
            for path in paths.paths.keys() {
                router = router.route(path, handler.clone());
            }
        }
    }
    router
}
