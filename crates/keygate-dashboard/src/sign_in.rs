//! Signing in (a management token, or a one-time link) and out.
//!
//! A link is opened with GET, which only shows a button; the link is used by the POST that
//! button sends. So a mail scanner or a browser prefetching the link cannot use it up.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use keygate_api::audit::AuditAction;
use keygate_core::ids;
use keygate_server::audit::{self, Origin};
use keygate_server::auth::{caller_for_member, caller_for_token, Caller};
use keygate_server::error::ApiError;
use keygate_server::AppState;
use keygate_store::{AuditEntry, LinkRedemption, SignInLink};
use serde::Deserialize;
use serde_json::json;

use crate::error::{DashboardError, LinkRefusal};
use crate::pages;
use crate::session::{ended_cookie, link_hash, start_session, SignedIn};
use crate::Dashboard;

#[derive(Deserialize)]
pub struct TokenForm {
    #[serde(default)]
    token: String,
}

#[derive(Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    secret: String,
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// How a member signed in, as the audit row records it.
#[derive(Debug, Clone, Copy)]
enum Method {
    Token,
    Link,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Token => "management_token",
            Method::Link => "sign_in_link",
        }
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

pub async fn sign_in_page(
    query: Result<Query<SignInQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let signed_out = query.is_ok_and(|Query(q)| q.signed_out.is_some());
    pages::sign_in::form_page(None, signed_out).into_response()
}

pub async fn sign_in_with_token(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    origin: Origin,
    headers: HeaderMap,
    form: Result<Form<TokenForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|_| DashboardError::BadForm)?;
    let (source, now) = throttled_attempt(&state, &dashboard, &origin, &headers)?;
    match caller_for_token(&state, form.token.trim()).await {
        Ok(caller) => {
            signed_in(
                &state,
                &dashboard,
                &caller,
                &origin,
                &headers,
                Method::Token,
            )
            .await
        }
        Err(ApiError::Unauthenticated(_)) => {
            dashboard.throttle.failed(&source, now);
            // The workspace of a token we do not know is unknown: logged, not audited.
            tracing::warn!(source = %source, "dashboard sign-in refused: the management token is malformed or unknown");
            Ok((
                StatusCode::UNAUTHORIZED,
                pages::sign_in::form_page(
                    Some("That management token is not valid. Paste the whole token (it starts with kgm_mgmt_)."),
                    false,
                ),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct LinkQuery {
    #[serde(default)]
    secret: String,
}

/// The page a sign-in link opens: the button that uses it, or why it cannot be used.
pub async fn link_page(
    State(state): State<AppState>,
    query: Result<Query<LinkQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, DashboardError> {
    let Query(query) = query.map_err(|_| DashboardError::Link(LinkRefusal::Unknown))?;
    let link = state
        .store
        .sign_in_link(&link_hash(&state, &query.secret))
        .await
        .map_err(ApiError::from)?
        .ok_or(DashboardError::Link(LinkRefusal::Unknown))?;
    if link.used_at.is_some() {
        return Err(DashboardError::Link(LinkRefusal::Used));
    }
    if link.expires_at <= state.clock.now() {
        return Err(DashboardError::Link(LinkRefusal::Expired));
    }
    Ok(pages::sign_in::link_page(&query.secret).into_response())
}

pub async fn sign_in_with_link(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    origin: Origin,
    headers: HeaderMap,
    form: Result<Form<LinkForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|_| DashboardError::BadForm)?;
    let (source, now) = throttled_attempt(&state, &dashboard, &origin, &headers)?;
    let redemption = state
        .store
        .redeem_sign_in_link(&link_hash(&state, &form.secret), now)
        .await
        .map_err(ApiError::from)?;
    let refusal = match redemption {
        LinkRedemption::Redeemed(link) => {
            let caller = match caller_for_member(&state, &link.workspace_id, &link.member_id).await
            {
                Ok(caller) => caller,
                Err(ApiError::Unauthenticated(_)) => {
                    return Err(DashboardError::Link(LinkRefusal::Unknown))
                }
                Err(e) => return Err(e.into()),
            };
            return signed_in(&state, &dashboard, &caller, &origin, &headers, Method::Link).await;
        }
        LinkRedemption::Unknown => {
            tracing::warn!(source = %source, "dashboard sign-in refused: unknown sign-in link");
            LinkRefusal::Unknown
        }
        LinkRedemption::AlreadyUsed(link) => {
            audit_refused_link(&state, &origin, &link, "used").await;
            LinkRefusal::Used
        }
        LinkRedemption::Expired(link) => {
            audit_refused_link(&state, &origin, &link, "expired").await;
            LinkRefusal::Expired
        }
    };
    dashboard.throttle.failed(&source, now);
    Err(DashboardError::Link(refusal))
}

pub async fn sign_out(
    State(state): State<AppState>,
    Extension(dashboard): Extension<Arc<Dashboard>>,
    signed_in: SignedIn,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, DashboardError> {
    let Form(form) = form.map_err(|_| DashboardError::BadForm)?;
    signed_in.check_csrf(&form.csrf)?;
    state
        .store
        .delete_session(&signed_in.session.id_hash)
        .await
        .map_err(ApiError::from)?;
    Ok((
        [(
            header::SET_COOKIE,
            ended_cookie(&headers, dashboard.settings.trust_proxy),
        )],
        Redirect::to("/dashboard/sign-in?signed_out=1"),
    )
        .into_response())
}

/// Starts the session, audits the sign-in and sends the member to their keys.
async fn signed_in(
    state: &AppState,
    dashboard: &Dashboard,
    caller: &Caller,
    origin: &Origin,
    headers: &HeaderMap,
    method: Method,
) -> Result<Response, DashboardError> {
    let cookie = start_session(state, dashboard, caller, headers).await?;
    let entry = audit::entry(
        caller,
        origin,
        AuditAction::MemberSignIn.as_str(),
        "member",
        &caller.member.id,
        json!({"method": method.as_str()}),
        state.clock.now(),
    );
    state
        .store
        .record_audit(&entry)
        .await
        .map_err(ApiError::from)?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Redirect::to("/dashboard/keys"),
    )
        .into_response())
}

/// A refused link of a known workspace is audited there (never with its secret).
async fn audit_refused_link(state: &AppState, origin: &Origin, link: &SignInLink, why: &str) {
    let entry = AuditEntry {
        id: ids::new_id("aud"),
        workspace_id: link.workspace_id.clone(),
        actor: "unauthenticated".into(),
        action: AuditAction::MemberSignInFailed.as_str().into(),
        target_type: "member".into(),
        target_id: link.member_id.clone(),
        changes: json!({"method": Method::Link.as_str(), "reason": why}),
        source_ip: origin.source_ip.clone(),
        user_agent: origin.user_agent.clone(),
        request_id: origin.request_id.clone(),
        at: state.clock.now(),
    };
    if let Err(e) = state.store.record_audit(&entry).await {
        tracing::warn!(error = %e, "could not audit a refused sign-in");
    }
}

/// The address a sign-in is throttled by: the peer, or behind a trusted proxy the last
/// address it appended to `X-Forwarded-For`.
/// Where a sign-in attempt comes from and when, or `Throttled` when that address has failed
/// too often: both ways of signing in are counted and throttled the same.
fn throttled_attempt(
    state: &AppState,
    dashboard: &Dashboard,
    origin: &Origin,
    headers: &HeaderMap,
) -> Result<(String, chrono::DateTime<chrono::Utc>), DashboardError> {
    let source = source_address(origin, headers, dashboard.settings.trust_proxy);
    let now = state.clock.now();
    if dashboard.throttle.allows(&source, now) {
        Ok((source, now))
    } else {
        Err(DashboardError::Throttled)
    }
}

fn source_address(origin: &Origin, headers: &HeaderMap, trust_proxy: bool) -> String {
    let forwarded = trust_proxy
        .then(|| headers.get("x-forwarded-for")?.to_str().ok())
        .flatten()
        .and_then(|v| v.rsplit(',').next())
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty());
    forwarded
        .or_else(|| origin.source_ip.clone())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_address_counts_only_behind_a_trusted_proxy() {
        let origin = Origin {
            source_ip: Some("10.0.0.9".into()),
            user_agent: None,
            request_id: String::new(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_static("1.2.3.4, 5.6.7.8"),
        );
        assert_eq!(source_address(&origin, &headers, true), "5.6.7.8");
        assert_eq!(source_address(&origin, &headers, false), "10.0.0.9");
    }
}
