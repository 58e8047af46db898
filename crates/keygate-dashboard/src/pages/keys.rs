//! The API keys pages. Write controls are shown only to roles that may use them (the server
//! refuses the write anyway).

use chrono::{DateTime, Duration, Utc};
use keygate_api::keys::{IssuedKey, KeyPage};
use keygate_core::access::Access;
use keygate_core::limits::{KeyLimits, ResetPeriod};
use keygate_core::model::{ApiKey, KeyStatus, Scope};
use maud::{html, Markup};

use super::layout::{flash, page, time};
use crate::keys::{CreateForm, Done, ListQuery};
use crate::session::SignedIn;

/// A key expiring within this long is highlighted.
const EXPIRING_SOON_DAYS: i64 = 7;

fn can_write(signed_in: &SignedIn) -> bool {
    Access::Write.allows(signed_in.caller.member.role)
}

fn csrf(signed_in: &SignedIn) -> Markup {
    html! { input type="hidden" name="csrf" value=(signed_in.session.csrf_token); }
}

/// Query string of the list's filters (and a cursor), for links that keep them.
fn list_href(query: &ListQuery, cursor: Option<&str>) -> String {
    let mut pairs = Vec::new();
    for (name, value) in [
        ("search", query.search.as_str()),
        ("status", query.status.as_str()),
        ("environment", query.environment.as_str()),
        ("identity", query.identity.as_str()),
        ("cursor", cursor.unwrap_or("")),
    ] {
        if !value.is_empty() {
            pairs.push(format!("{name}={}", encode(value)));
        }
    }
    if pairs.is_empty() {
        "/dashboard/keys".into()
    } else {
        format!("/dashboard/keys?{}", pairs.join("&"))
    }
}

/// Percent-encodes a query value (everything but unreserved characters).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn status_badge(status: KeyStatus) -> Markup {
    let text = status.as_str();
    html! { span class={ "badge status-" (text) } { (text) } }
}

fn period(reset: ResetPeriod) -> &'static str {
    match reset {
        ResetPeriod::Daily => "day",
        ResetPeriod::Weekly => "week",
        ResetPeriod::Monthly => "month",
        ResetPeriod::Never => "ever",
    }
}

/// "60/min · 1,000/h · 1000000 tokens/month · $5.00/day cap", or the default.
pub fn limits_summary(limits: &KeyLimits) -> String {
    let mut parts: Vec<String> = limits
        .rate_limits
        .iter()
        .map(|w| {
            let unit = match w.window.0 {
                1 => "s".to_owned(),
                60 => "min".to_owned(),
                3600 => "h".to_owned(),
                86_400 => "day".to_owned(),
                s => format!("{s}s"),
            };
            format!("{}/{unit}", w.limit)
        })
        .collect();
    if let Some(t) = &limits.token_limit {
        parts.push(format!("{} tokens/{}", t.limit, period(t.reset)));
    }
    if let Some(c) = &limits.cost_limit {
        parts.push(format!("${}/{}", c.limit, period(c.reset)));
    }
    if let Some(cap) = &limits.daily_spend_cap {
        parts.push(format!("${cap}/day cap"));
    }
    if parts.is_empty() {
        "workspace default".into()
    } else {
        parts.join(" · ")
    }
}

fn scope_summary(scope: &Scope) -> String {
    match scope {
        Scope::All => "all projects".into(),
        Scope::Projects(ids) if ids.len() == 1 => ids[0].clone(),
        Scope::Projects(ids) => format!("{} projects", ids.len()),
    }
}

fn expiry(key: &ApiKey, now: DateTime<Utc>) -> Markup {
    match key.expires_at {
        None => html! { "never" },
        Some(at) if at <= now => html! { span.badge.expired { "expired" } " " (time(at, now)) },
        Some(at) if at - now <= Duration::days(EXPIRING_SOON_DAYS) => {
            html! { span.soon { "expires soon: " (time(at, now)) } }
        }
        Some(at) => time(at, now),
    }
}

fn toggle_form(signed_in: &SignedIn, key: &ApiKey, back: &str) -> Markup {
    let (verb, label) = match key.status {
        KeyStatus::Active => ("disable", "Disable"),
        KeyStatus::Disabled => ("enable", "Enable"),
        KeyStatus::Revoked => return html! {},
    };
    html! {
        form.inline method="post" action={ "/dashboard/keys/" (key.id) "/" (verb) } {
            (csrf(signed_in))
            input type="hidden" name="back" value=(back);
            button.small type="submit" aria-label={ (label) " " (key.name) } { (label) }
        }
    }
}

pub fn list(
    signed_in: &SignedIn,
    query: &ListQuery,
    page_: &KeyPage,
    now: DateTime<Utc>,
) -> Markup {
    let filtered = !query.search.is_empty()
        || !query.status.is_empty()
        || !query.environment.is_empty()
        || !query.identity.is_empty();
    page(
        "API keys",
        Some(signed_in),
        html! {
            div.title-row {
                h1 { "API keys" }
                @if can_write(signed_in) {
                    a.button href="/dashboard/keys/new" { "Create API key" }
                }
            }
            @if let Some(done) = query.done {
                (flash(done.message()))
            }
            form.filters method="get" action="/dashboard/keys" role="search" {
                div {
                    label for="search" { "Name contains" }
                    input #search type="search" name="search" value=(query.search);
                }
                div {
                    label for="status" { "Status" }
                    select #status name="status" {
                        @for (value, label) in [("", "Any"), ("active", "Active"), ("disabled", "Disabled"), ("revoked", "Revoked")] {
                            option value=(value) selected[query.status == value] { (label) }
                        }
                    }
                }
                div {
                    label for="environment" { "Environment" }
                    input #environment type="text" name="environment" value=(query.environment) placeholder="live, test…" list="environments";
                    datalist #environments { option value="live"; option value="test"; }
                }
                @if !query.identity.is_empty() {
                    input type="hidden" name="identity" value=(query.identity);
                    p { "Keys of identity " code { (query.identity) } }
                }
                button type="submit" { "Filter" }
                @if filtered { a href="/dashboard/keys" { "Clear" } }
            }
            @if page_.items.is_empty() {
                p.empty { @if filtered { "No key matches these filters." } @else { "No API keys yet." } }
            } @else {
                div.table-wrap {
                    table {
                        caption.visually-hidden { "API keys of this workspace" }
                        thead { tr {
                            th scope="col" { "Name" }
                            th scope="col" { "Key" }
                            th scope="col" { "Environment" }
                            th scope="col" { "Status" }
                            th scope="col" { "Last used" }
                            th scope="col" { "Expires" }
                            th scope="col" { "Scope" }
                            th scope="col" { "Limits" }
                            th scope="col" { "Identity" }
                        } }
                        tbody {
                            @for key in &page_.items {
                                tr data-key-id=(key.id) {
                                    th scope="row" {
                                        a href={ "/dashboard/keys/" (key.id) } { (key.name) }
                                        @if key.legacy { " " span.badge.legacy title="Imported from another system: authenticates, carries no limits" { "legacy" } }
                                    }
                                    td { code { (key.display) } }
                                    td { (key.environment.as_str()) }
                                    td.status {
                                        (status_badge(key.status))
                                        @if can_write(signed_in) { " " (toggle_form(signed_in, key, "list")) }
                                    }
                                    td { @match key.last_used_at { Some(at) => (time(at, now)), None => "never" } }
                                    td { (expiry(key, now)) }
                                    td { (scope_summary(&key.scope)) }
                                    td { (limits_summary(&key.limits)) }
                                    td { @match &key.identity_id {
                                        Some(id) => a href={ "/dashboard/keys?identity=" (id) } title="This identity's keys" { code { (id) } },
                                        None => "—",
                                    } }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages" {
                @if !query.cursor.is_empty() { a href=(list_href(query, None)) { "First page" } }
                @if let Some(next) = &page_.next_cursor { a href=(list_href(query, Some(next))) rel="next" { "Next page" } }
            }
        },
    )
}

pub fn create_form(signed_in: &SignedIn, form: &CreateForm, error: Option<&str>) -> Markup {
    page(
        "Create API key",
        Some(signed_in),
        html! {
            h1 { "Create API key" }
            @if let Some(error) = error {
                p.error role="alert" id="form-error" { (error) }
            }
            form.card method="post" action="/dashboard/keys" {
                (csrf(signed_in))
                label for="name" { "Name " span.required { "(required)" } }
                input #name type="text" name="name" required maxlength="100" value=(form.name)
                    aria-describedby=[error.map(|_| "form-error")];
                label for="description" { "Description" }
                textarea #description name="description" rows="2" maxlength="1000" { (form.description) }
                label for="environment" { "Environment" }
                input #environment type="text" name="environment" value=(form.environment) list="environments"
                    pattern="[a-z0-9]{1,12}" aria-describedby="environment-hint";
                datalist #environments { @for env in ["live", "test", "dev", "stg", "prod", "ci"] { option value=(env); } }
                p.hint #environment-hint { "The tag in the key, e.g. live or test (lowercase letters and digits)." }
                fieldset {
                    legend { "Expires" }
                    @for (value, label) in [("never", "Never"), ("30d", "In 30 days"), ("90d", "In 90 days"), ("1y", "In 1 year"), ("date", "On a date")] {
                        label.choice {
                            input type="radio" name="expires" value=(value) checked[form.expires == value || (form.expires.is_empty() && value == "never")];
                            " " (label)
                        }
                    }
                    label for="expires_on" { "Date (when “On a date”)" }
                    input #expires_on type="date" name="expires_on" value=(form.expires_on);
                }
                label for="permissions" { "Permissions" }
                input #permissions type="text" name="permissions" value=(form.permissions)
                    placeholder="results:read, scenarios:write" aria-describedby="permissions-hint";
                p.hint #permissions-hint { "Separated by commas or spaces; empty for none." }
                fieldset {
                    legend { "Limits" }
                    label for="requests_per_minute" { "Requests per minute" }
                    input #requests_per_minute type="number" min="1" step="1" name="requests_per_minute" value=(form.requests_per_minute)
                        aria-describedby="rpm-hint";
                    p.hint #rpm-hint { "Empty: the workspace's default rate limits apply." }
                    label for="daily_spend_cap" { "Daily spend cap (USD)" }
                    input #daily_spend_cap type="text" inputmode="decimal" name="daily_spend_cap" value=(form.daily_spend_cap) placeholder="25.00";
                }
                div.actions {
                    button type="submit" { "Create API key" }
                    a href="/dashboard/keys" { "Cancel" }
                }
            }
        },
    )
}

/// The only page that ever shows a key's secret: right after it was made.
pub fn secret_once(signed_in: &SignedIn, issued: &IssuedKey) -> Markup {
    let key = &issued.key;
    page(
        "Your new API key",
        Some(signed_in),
        html! {
            h1 { "Your new API key" }
            p.warning role="alert" { strong { "Copy this secret now. " } "It is shown once and cannot be shown again: Keygate keeps only a hash of it." }
            div.secret {
                label for="secret" { "Secret of " (key.name) }
                input #secret type="text" readonly value=(issued.secret) spellcheck="false" autocomplete="off";
                button.copy type="button" data-copy="secret" hidden { "Copy" }
            }
            p { "Use it as a Bearer token:" }
            pre { code { "curl -H \"Authorization: Bearer " (issued.secret) "\" https://your-api.example/…" } }
            p { a.button href={ "/dashboard/keys/" (key.id) } { "I have stored it — go to the key" } }
        },
    )
}

pub fn detail(
    signed_in: &SignedIn,
    key: &ApiKey,
    done: Option<Done>,
    now: DateTime<Utc>,
) -> Markup {
    page(
        &key.name,
        Some(signed_in),
        html! {
            p { a href="/dashboard/keys" { "← API keys" } }
            h1 { (key.name) " " (status_badge(key.status)) }
            @if let Some(done) = done { (flash(done.message())) }
            dl.fields {
                dt { "Key" } dd { code { (key.display) } @if key.legacy { " " span.badge.legacy { "legacy" } } }
                dt { "Id" } dd { code { (key.id) } }
                dt { "Description" } dd { @match &key.description { Some(d) => (d), None => "—" } }
                dt { "Environment" } dd { (key.environment.as_str()) }
                dt { "Status" } dd.status { (key.status.as_str()) }
                dt { "Scope" } dd { (scope_summary(&key.scope)) }
                dt { "Permissions" } dd { @if key.permissions.is_empty() { "none" } @else { (key.permissions.join(", ")) } }
                dt { "Limits" } dd { (limits_summary(&key.limits)) }
                dt { "Expires" } dd { (expiry(key, now)) }
                dt { "Last used" } dd { @match key.last_used_at { Some(at) => (time(at, now)), None => "never" } }
                dt { "Identity" } dd { @match &key.identity_id { Some(id) => code { (id) }, None => "—" } }
                dt { "Created" } dd { (time(key.created_at, now)) " by " code { (key.created_by) } }
            }
            @if can_write(signed_in) && key.status != KeyStatus::Revoked {
                div.actions {
                    (toggle_form(signed_in, key, "detail"))
                    a.button.danger href={ "/dashboard/keys/" (key.id) "/revoke" } { "Revoke…" }
                }
            }
        },
    )
}

pub fn confirm_revoke(signed_in: &SignedIn, key: &ApiKey) -> Markup {
    page(
        "Revoke key",
        Some(signed_in),
        html! {
            h1 { "Revoke " (key.name) "?" }
            p.warning { "A revoked key stops working at once, and this cannot be undone. To stop it for a while, disable it instead." }
            form.card method="post" action={ "/dashboard/keys/" (key.id) "/revoke" } {
                (csrf(signed_in))
                input type="hidden" name="confirm" value="yes";
                div.actions {
                    button.danger type="submit" { "Revoke for good" }
                    a href={ "/dashboard/keys/" (key.id) } { "Cancel" }
                }
            }
        },
    )
}
