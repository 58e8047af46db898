//! The dashboard's one error type, mapped to a page (or a redirect to sign in) in one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use keygate_server::error::ApiError;

use crate::pages;

/// Why a one-time sign-in link was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkRefusal {
    Unknown,
    Used,
    Expired,
}

#[derive(Debug)]
pub enum DashboardError {
    /// No session, or it ended: go and sign in.
    SignedOut,
    /// A POST from another site (its `Origin` or `Sec-Fetch-Site` says so).
    CrossSite,
    /// A POST without this session's CSRF token.
    BadCsrf,
    /// Too many failed sign-ins from this address.
    Throttled,
    /// A form that could not be read at all.
    BadForm,
    Link(LinkRefusal),
    PageNotFound,
    /// What the domain code refused (or failed at), as the API would have answered.
    Api(ApiError),
}

impl From<ApiError> for DashboardError {
    fn from(error: ApiError) -> Self {
        DashboardError::Api(error)
    }
}

impl IntoResponse for DashboardError {
    fn into_response(self) -> Response {
        use DashboardError::*;
        let (status, title, message): (StatusCode, &str, String) = match self {
            SignedOut => return Redirect::to("/dashboard/sign-in").into_response(),
            CrossSite => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was sent from another site. Open the dashboard directly and try again."
                    .into(),
            ),
            BadCsrf => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form is out of date or was not sent by the dashboard. Reload the page and try again."
                    .into(),
            ),
            Throttled => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many attempts",
                "Too many failed sign-ins from your address. Wait 15 minutes and try again.".into(),
            ),
            BadForm => (
                StatusCode::BAD_REQUEST,
                "Bad form",
                "The form could not be read. Go back, reload the page and try again.".into(),
            ),
            Link(LinkRefusal::Unknown) => (
                StatusCode::BAD_REQUEST,
                "Sign-in link not valid",
                "This sign-in link is not valid. Check that it was copied whole, or sign in with a management token."
                    .into(),
            ),
            Link(LinkRefusal::Used) => (
                StatusCode::GONE,
                "Sign-in link already used",
                "This sign-in link has been used already: each link signs in once. Sign in with a management token, or ask for a new link."
                    .into(),
            ),
            Link(LinkRefusal::Expired) => (
                StatusCode::GONE,
                "Sign-in link expired",
                "This sign-in link has expired (links last 15 minutes). Sign in with a management token, or ask for a new link."
                    .into(),
            ),
            PageNotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is no such page.".into(),
            ),
            Api(error) => {
                let (status, _code, message) = error.public();
                if status.is_server_error() {
                    tracing::error!(error = %error, "dashboard request failed");
                }
                let title = match status {
                    StatusCode::NOT_FOUND => "Not found",
                    StatusCode::FORBIDDEN => "Not allowed",
                    s if s.is_server_error() => "Something went wrong",
                    _ => "Refused",
                };
                (status, title, message)
            }
        };
        (status, pages::layout::error_page(title, &message)).into_response()
    }
}
