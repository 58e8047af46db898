//! The identities page: external id, name, shared limits, created, and a link to the keys.

use chrono::{DateTime, Utc};
use keygate_api::identities::IdentityPage;
use maud::{html, Markup};

use super::keys::limits_summary;
use super::layout::{page, time};
use crate::identities::IdentitiesQuery;
use crate::session::SignedIn;

pub fn list(
    signed_in: &SignedIn,
    query: &IdentitiesQuery,
    page_: &IdentityPage,
    now: DateTime<Utc>,
) -> Markup {
    let searched = !query.external_id.trim().is_empty();
    page(
        "Identities",
        Some(signed_in),
        html! {
            h1 { "Identities" }
            p { "Your customers. Each holds keys whose limits it shares: a request must pass the key's limits and its identity's. Create and change identities with "
                code { "keygate identities" } " or " code { "POST /v1/identities" } "." }
            form.filters method="get" action="/dashboard/identities" role="search" {
                div {
                    label for="external_id" { "External ID" }
                    input #external_id type="search" name="external_id" value=(query.external_id);
                }
                button type="submit" { "Find" }
                @if searched { a href="/dashboard/identities" { "Clear" } }
            }
            @if page_.items.is_empty() {
                p.empty { @if searched { "No identity has this external ID." } @else { "No identities yet." } }
            } @else {
                div.table-wrap {
                    table {
                        caption.visually-hidden { "Identities of this workspace" }
                        thead { tr {
                            th scope="col" { "External ID" }
                            th scope="col" { "Name" }
                            th scope="col" { "Shared limits" }
                            th scope="col" { "Created" }
                            th scope="col" { "Keys" }
                        } }
                        tbody {
                            @for identity in &page_.items {
                                tr data-identity-id=(identity.id) {
                                    th scope="row" { code { (identity.external_id) } }
                                    td { (identity.name.as_deref().unwrap_or("—")) }
                                    td { @if identity.limits.is_empty() { "none" } @else { (limits_summary(&identity.limits)) } }
                                    td { (time(identity.created_at, now)) }
                                    td { a href={ "/dashboard/keys?identity=" (identity.id) } { "Keys" } }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if !query.cursor.is_empty() { a href="/dashboard/identities" { "First page" } }
                @if let Some(next) = &page_.next_cursor {
                    a href={ "/dashboard/identities?cursor=" (next) } rel="next" { "Next page" }
                }
            }
        },
    )
}
