//! The API keys pages: list, create (and the secret shown once), detail, disable / enable,
//! revoke. Each handler checks the role with the API's check and the API's action words, then
//! calls the API's own functions (`keygate_server::routes::keys`).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use keygate_api::keys::{CreateKey, ListKeys};
use keygate_core::access::Access;
use keygate_core::limits::{KeyLimits, RateWindow, WindowLength};
use keygate_core::money::Micros;
use keygate_core::EnvTag;
use keygate_server::auth::check_access;
use keygate_server::routes::keys as domain;
use keygate_server::AppState;
use serde::Deserialize;

use crate::error::DashboardError;
use crate::pages;
use crate::session::SignedIn;

/// Keys per page of the list.
const PAGE_SIZE: u32 = 25;

type FormResult<T> = Result<Form<T>, axum::extract::rejection::FormRejection>;

/// `/dashboard`: the keys for a signed-in member, else the sign-in page.
pub async fn home(signed_in: Result<SignedIn, DashboardError>) -> Redirect {
    match signed_in {
        Ok(_) => Redirect::to("/dashboard/keys"),
        Err(_) => Redirect::to("/dashboard/sign-in"),
    }
}

/// What the list's filters, the page's cursor and the flash message of the last action are.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub search: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub environment: String,
    /// Only the keys of this identity (`idt_…`), from the identities page.
    #[serde(default)]
    pub identity: String,
    #[serde(default)]
    pub cursor: String,
    /// An unknown value shows no message rather than refusing the page.
    #[serde(default, deserialize_with = "lenient_done")]
    pub done: Option<Done>,
}

fn lenient_done<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Done>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    Ok(text.as_deref().and_then(Done::parse))
}

/// The action just taken, for the flash message (in the redirect's query: never a secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Disabled,
    Enabled,
    Revoked,
}

impl Done {
    const ALL: [Done; 3] = [Done::Disabled, Done::Enabled, Done::Revoked];

    pub fn as_str(self) -> &'static str {
        match self {
            Done::Disabled => "disabled",
            Done::Enabled => "enabled",
            Done::Revoked => "revoked",
        }
    }

    pub fn parse(text: &str) -> Option<Done> {
        Self::ALL.into_iter().find(|d| d.as_str() == text)
    }

    pub fn message(self) -> &'static str {
        match self {
            Done::Disabled => {
                "The key is disabled: requests with it are refused until you enable it."
            }
            Done::Enabled => "The key is enabled: it works again.",
            Done::Revoked => "The key is revoked: it will never work again.",
        }
    }
}

fn non_empty(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub async fn list_keys(
    State(state): State<AppState>,
    signed_in: SignedIn,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DashboardError> {
    let Query(query) = query.map_err(|_| DashboardError::BadForm)?;
    check_access(&signed_in.caller, Access::Read, "list keys")?;
    let page = domain::list(
        &state,
        &signed_in.caller,
        ListKeys {
            status: non_empty(&query.status),
            environment: non_empty(&query.environment),
            search: non_empty(&query.search),
            identity: non_empty(&query.identity),
            cursor: non_empty(&query.cursor),
            limit: Some(PAGE_SIZE),
            ..ListKeys::default()
        },
    )
    .await?;
    Ok(pages::keys::list(&signed_in, &query, &page, state.clock.now()).into_response())
}

/// The create form's fields, as typed (kept to show the form again after a refusal).
#[derive(Debug, Default, Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub environment: String,
    /// `never`, `30d`, `90d`, `1y` or `date` (then `expires_on`).
    #[serde(default)]
    pub expires: String,
    #[serde(default)]
    pub expires_on: String,
    /// Separated by commas, spaces or lines.
    #[serde(default)]
    pub permissions: String,
    #[serde(default)]
    pub requests_per_minute: String,
    #[serde(default)]
    pub daily_spend_cap: String,
}

pub async fn new_key(signed_in: SignedIn) -> Result<Response, DashboardError> {
    check_access(&signed_in.caller, Access::Write, "create keys")?;
    let form = CreateForm {
        environment: "live".into(),
        expires: "never".into(),
        ..CreateForm::default()
    };
    Ok(pages::keys::create_form(&signed_in, &form, None).into_response())
}

pub async fn create_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    form: FormResult<CreateForm>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|_| DashboardError::BadForm)?;
    signed_in.check_csrf(&form.csrf)?;
    check_access(&signed_in.caller, Access::Write, "create keys")?;
    let body = match form_to_body(&form) {
        Ok(body) => body,
        Err(message) => {
            return Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                pages::keys::create_form(&signed_in, &form, Some(&message)),
            )
                .into_response())
        }
    };
    match domain::create(&state, &signed_in.caller, &signed_in.origin, body).await {
        // The secret is rendered into this response and nowhere else: no redirect, nothing
        // kept in the session; the page is `no-store` like every dashboard page.
        Ok(issued) => Ok(pages::keys::secret_once(&signed_in, &issued).into_response()),
        Err(error) => {
            let (status, _code, message) = error.public();
            if status.is_client_error() {
                // The member's mistake (a taken name, one active key, a bad date…): the form
                // again, as typed, with what to change.
                Ok((
                    status,
                    pages::keys::create_form(&signed_in, &form, Some(&message)),
                )
                    .into_response())
            } else {
                Err(error.into())
            }
        }
    }
}

/// The form as the API's request body; `Err` says what to fix.
fn form_to_body(form: &CreateForm) -> Result<CreateKey, String> {
    let environment = match non_empty(&form.environment) {
        Some(env) => Some(EnvTag::parse(&env).map_err(|e| format!("Environment: {e}"))?),
        None => None,
    };
    let (expires_in, expires_at) = match form.expires.as_str() {
        "" | "never" => (None, None),
        "30d" | "90d" | "1y" => (Some(form.expires.clone()), None),
        "date" => {
            let date = chrono::NaiveDate::parse_from_str(form.expires_on.trim(), "%Y-%m-%d")
                .map_err(|_| "Expiry date: pick a date (YYYY-MM-DD).".to_owned())?;
            (None, Some(format!("{date}T00:00:00Z")))
        }
        _ => return Err("Expiry: choose one of the offered options.".into()),
    };
    let permissions = form
        .permissions
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    let mut limits = KeyLimits::default();
    if let Some(rpm) = non_empty(&form.requests_per_minute) {
        let limit: u64 = rpm
            .parse()
            .map_err(|_| "Requests per minute: a whole number, at least 1.".to_owned())?;
        limits.rate_limits.push(RateWindow {
            limit,
            window: WindowLength(60),
        });
    }
    if let Some(cap) = non_empty(&form.daily_spend_cap) {
        let cap = Micros::parse_dollars(cap.trim_start_matches('$'))
            .map_err(|e| format!("Daily spend cap: {e}"))?;
        limits.daily_spend_cap = Some(cap);
    }
    Ok(CreateKey {
        name: form.name.clone(),
        description: non_empty(&form.description),
        environment,
        scope: None,
        permissions,
        expires_in,
        expires_at,
        metadata: Default::default(),
        limits,
        routing_rule_id: None,
        identity_id: None,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct DetailQuery {
    #[serde(default, deserialize_with = "lenient_done")]
    pub done: Option<Done>,
}

pub async fn show_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    query: Result<Query<DetailQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DashboardError> {
    let done = query.ok().and_then(|Query(q)| q.done);
    check_access(&signed_in.caller, Access::Read, "read keys")?;
    let key = domain::get(&state, &signed_in.caller, &id).await?;
    Ok(pages::keys::detail(&signed_in, &key, done, state.clock.now()).into_response())
}

/// Where a toggle returns to.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Back {
    #[default]
    List,
    Detail,
}

#[derive(Debug, Deserialize)]
pub struct ToggleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: Back,
}

pub async fn disable_key(
    state: State<AppState>,
    signed_in: SignedIn,
    id: Path<String>,
    form: FormResult<ToggleForm>,
) -> Result<Response, DashboardError> {
    toggle(state, signed_in, id, form, false).await
}

pub async fn enable_key(
    state: State<AppState>,
    signed_in: SignedIn,
    id: Path<String>,
    form: FormResult<ToggleForm>,
) -> Result<Response, DashboardError> {
    toggle(state, signed_in, id, form, true).await
}

async fn toggle(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    form: FormResult<ToggleForm>,
    enabled: bool,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|_| DashboardError::BadForm)?;
    signed_in.check_csrf(&form.csrf)?;
    let (action, done) = if enabled {
        ("enable keys", Done::Enabled)
    } else {
        ("disable keys", Done::Disabled)
    };
    check_access(&signed_in.caller, Access::Write, action)?;
    let key =
        domain::set_enabled(&state, &signed_in.caller, &signed_in.origin, &id, enabled).await?;
    Ok(back_to(form.back, &key.id, done).into_response())
}

fn back_to(back: Back, id: &str, done: Done) -> Redirect {
    let done = done.as_str();
    match back {
        Back::List => Redirect::to(&format!("/dashboard/keys?done={done}")),
        Back::Detail => Redirect::to(&format!("/dashboard/keys/{id}?done={done}")),
    }
}

/// The confirmation step before a revoke (it cannot be undone).
pub async fn confirm_revoke(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
) -> Result<Response, DashboardError> {
    check_access(&signed_in.caller, Access::Write, "revoke keys")?;
    let key = domain::get(&state, &signed_in.caller, &id).await?;
    Ok(pages::keys::confirm_revoke(&signed_in, &key).into_response())
}

#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
    /// `yes` only from the confirmation page's button.
    #[serde(default)]
    confirm: String,
}

pub async fn revoke_key(
    State(state): State<AppState>,
    signed_in: SignedIn,
    Path(id): Path<String>,
    form: FormResult<RevokeForm>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|_| DashboardError::BadForm)?;
    signed_in.check_csrf(&form.csrf)?;
    check_access(&signed_in.caller, Access::Write, "revoke keys")?;
    if form.confirm != "yes" {
        // Not confirmed: ask (the id is checked there, like everywhere).
        return Ok(
            Redirect::to(&format!("/dashboard/keys/{}/revoke", urlencode_id(&id))).into_response(),
        );
    }
    let key = domain::revoke(&state, &signed_in.caller, &signed_in.origin, &id).await?;
    Ok(back_to(Back::Detail, &key.id, Done::Revoked).into_response())
}

/// A path id as typed may hold anything; keep only what an id can hold.
fn urlencode_id(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_becomes_the_api_body() {
        let form = CreateForm {
            name: "ci".into(),
            environment: "test".into(),
            expires: "30d".into(),
            permissions: "results:read, results:write\nscenarios:read".into(),
            requests_per_minute: "60".into(),
            daily_spend_cap: "$5.50".into(),
            ..CreateForm::default()
        };
        let body = form_to_body(&form).expect("valid");
        assert_eq!(body.expires_in.as_deref(), Some("30d"));
        assert_eq!(body.permissions.len(), 3);
        assert_eq!(body.limits.rate_limits[0].limit, 60);
        assert_eq!(
            body.limits.daily_spend_cap,
            Some(Micros::parse_dollars("5.50").expect("dollars"))
        );
        assert_eq!(Done::parse("revoked"), Some(Done::Revoked));
        assert_eq!(Done::parse("exploded"), None);
        assert!(form_to_body(&CreateForm {
            requests_per_minute: "lots".into(),
            ..CreateForm::default()
        })
        .is_err());
    }
}
