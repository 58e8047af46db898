//! Keygate's HTTP contract: the body of every request and response of the management API,
//! verify mode, reservations, usage, audit, routing rules and the AI gateway, as Rust types
//! with serde and OpenAPI schema derives.
//!
//! Design decisions:
//! - **One contract, many readers.** The server deserialises requests into these types and
//!   serialises answers from them; `/openapi.json` is generated from their schemas (utoipa);
//!   the CLI builds requests and reads answers with them. Nothing about the wire format is
//!   written down twice, so the document cannot drift from the server.
//! - **utoipa** rather than aide/schemars: schemas are derived from the types, and operations
//!   are declared next to each handler (`#[utoipa::path]`); `utoipa-axum` registers the handler
//!   and its description in one call, so the router and the document come from one table.
//! - **Strict requests, tolerant answers.** No type here denies unknown fields, so an older
//!   CLI reads a newer server's answers, even where a field is added deep inside (`limits`).
//!   The server is strict instead: its JSON extractor refuses a request field the type does
//!   not have at any depth (a typo is an error, not a silent default), and the document marks
//!   every request body's objects `additionalProperties: false`. Query strings are only ever
//!   read by the server, so their types deny unknown parameters themselves.
//! - Entities that travel as they are stored (`ApiKey`, `Project`, `Member`, `Workspace`,
//!   limits, money) are keygate-core's own types, re-exported here with their schemas.

pub mod ai;
pub mod audit;
pub mod error;
pub mod fields;
pub mod identities;
pub mod keys;
pub mod leaks;
pub mod limits;
pub mod members;
pub mod projects;
pub mod routing;
pub mod usage;
pub mod verdict;
pub mod verify;
pub mod webhooks;
pub mod workspace;

pub use keygate_core::limits::{CostLimit, KeyLimits, RateWindow, ResetPeriod, TokenLimit};
pub use keygate_core::model::{
    ApiKey, Identity, KeyStatus, LeakPolicy, Member, Project, Role, Scope, Workspace,
};
pub use keygate_core::Micros;

/// A page of items (lists without a cursor return every item).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

/// For PATCH fields where `null` (clear) differs from absent (keep): absent → `None`, `null` →
/// `Some(None)`, a value → `Some(Some(v))`. Use with `#[serde(default)]`.
pub fn nullable<'de, T, D>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(deserializer).map(Some)
}
