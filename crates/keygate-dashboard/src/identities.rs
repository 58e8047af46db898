//! The identities page: the workspace's customers, each with the limits all its keys share,
//! and a link to its keys. Read with the API's role check and its own list function
//! (`keygate_server::routes::identities::list`); identities are created and changed through
//! the API and the CLI for now.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use keygate_api::identities::ListIdentities;
use keygate_core::access::Access;
use keygate_server::auth::check_access;
use keygate_server::routes::identities as domain;
use keygate_server::AppState;
use serde::Deserialize;

use crate::error::DashboardError;
use crate::pages;
use crate::session::SignedIn;

/// Identities per page.
const PAGE_SIZE: u32 = 25;

/// The page's cursor, and an external id to find one identity by.
#[derive(Debug, Default, Deserialize)]
pub struct IdentitiesQuery {
    #[serde(default)]
    pub cursor: String,
    #[serde(default)]
    pub external_id: String,
}

pub async fn list_identities(
    State(state): State<AppState>,
    signed_in: SignedIn,
    query: Result<Query<IdentitiesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DashboardError> {
    let Query(query) = query.map_err(|_| DashboardError::BadForm)?;
    check_access(&signed_in.caller, Access::Read, "list identities")?;
    let given = |text: &str| {
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_owned())
    };
    let page = domain::list(
        &state,
        &signed_in.caller,
        ListIdentities {
            external_id: given(&query.external_id),
            cursor: given(&query.cursor),
            limit: Some(PAGE_SIZE),
        },
    )
    .await?;
    Ok(pages::identities::list(&signed_in, &query, &page, state.clock.now()).into_response())
}
