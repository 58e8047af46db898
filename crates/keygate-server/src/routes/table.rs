//! The types of the management API's table (`routes::operations`): an [`Operation`] (method,
//! path, who may call it) and the [`Row`] that pairs it with its OpenAPI description and
//! handler. Below the handler modules and `openapi.rs`, which both read rows.

use axum::http::Method;
use axum::routing::MethodRouter;
use keygate_core::access::Access;
use utoipa::openapi::path::{PathItem, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa_axum::router::UtoipaMethodRouter;

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

    /// The one operation a row's path item holds.
    fn of(item: &PathItem) -> Option<Verb> {
        [
            (item.get.is_some(), Verb::Get),
            (item.post.is_some(), Verb::Post),
            (item.patch.is_some(), Verb::Patch),
            (item.delete.is_some(), Verb::Delete),
        ]
        .into_iter()
        .find_map(|(present, verb)| present.then_some(verb))
    }
}

/// One operation of the management API: what it is and who may call it.
#[derive(Debug, Clone)]
pub struct Operation {
    pub verb: Verb,
    /// The full path in axum's and OpenAPI's syntax (`/v1/keys/{id}`), as the handler's
    /// `#[utoipa::path]` declares it.
    pub path: String,
    pub access: Access,
    /// What the caller is doing, for the refusal message: "A viewer cannot {action}".
    pub action: &'static str,
}

/// A row of the table: the operation, its OpenAPI description and schemas, and its handler.
pub(crate) struct Row {
    pub operation: Operation,
    pub paths: Paths,
    pub schemas: Vec<(String, RefOr<Schema>)>,
    pub handler: MethodRouter<AppState>,
}

/// Builds a row from what `utoipa_axum::routes!` made of one handler: the method and path come
/// from the handler's `#[utoipa::path]`, so the router and the document cannot disagree.
pub(super) fn row(
    access: Access,
    action: &'static str,
    (schemas, paths, handler): UtoipaMethodRouter<AppState>,
) -> Row {
    let (path, verb) = match paths.paths.iter().next() {
        Some((path, item)) if paths.paths.len() == 1 => (path.clone(), Verb::of(item)),
        _ => (String::new(), None),
    };
    let Some(verb) = verb else {
        // A programming error every test run catches at the first router build.
        panic!("routes! for {action:?} must describe exactly one GET/POST/PATCH/DELETE operation");
    };
    Row {
        operation: Operation {
            verb,
            path,
            access,
            action,
        },
        paths,
        schemas,
        handler,
    }
}
