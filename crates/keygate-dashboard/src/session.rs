//! Sessions and one-time sign-in links.
//!
//! A session id and a link's secret are 32 random bytes (hex) from the OS's CSPRNG; only a
//! keyed hash (HMAC with the server secret, under a label of its own) is stored. The cookie is
//! `HttpOnly`, `SameSite=Strict`, scoped to `/dashboard`, and `Secure` when the request came
//! over TLS as far as we can tell (see [`came_over_tls`]).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue};
use axum::Extension;
use chrono::{DateTime, Duration, Utc};
use keygate_core::model::Member;
use keygate_server::audit::Origin;
use keygate_server::auth::{caller_for_member, Caller};
use keygate_server::error::ApiError;
use keygate_server::AppState;
use keygate_store::{DashboardSession, SignInLink};
use rand::RngCore;
use subtle::ConstantTimeEq;

use crate::error::DashboardError;
use crate::Dashboard;

pub const COOKIE: &str = "keygate_session";
/// How long a one-time sign-in link works.
pub const SIGN_IN_LINK_LIFETIME: Duration = Duration::minutes(15);
/// Activity is written at most this often per session (the idle timeout is minutes long).
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// 32 random bytes as hex.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// The stored form of a session id.
pub fn session_hash(state: &AppState, id: &str) -> String {
    hex::encode(state.secret.derive("dashboard-session", id.as_bytes()))
}

/// The stored form of a sign-in link's secret.
pub fn link_hash(state: &AppState, secret: &str) -> String {
    hex::encode(
        state
            .secret
            .derive("dashboard-sign-in-link", secret.as_bytes()),
    )
}

/// A one-time sign-in link's secret, to be printed once (its `Debug` hides it).
pub struct IssuedLink {
    secret: String,
    pub expires_at: DateTime<Utc>,
}

impl IssuedLink {
    /// The link's path and query, to put after `http://host:port`.
    pub fn path(&self) -> String {
        format!("/dashboard/sign-in/link?secret={}", self.secret)
    }
}

impl std::fmt::Debug for IssuedLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedLink")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Creates a one-time sign-in link for `member`, valid for [`SIGN_IN_LINK_LIFETIME`].
pub async fn issue_sign_in_link(
    state: &AppState,
    member: &Member,
) -> Result<IssuedLink, keygate_store::StoreError> {
    let secret = random_secret();
    let now = state.clock.now();
    let expires_at = now + SIGN_IN_LINK_LIFETIME;
    state
        .store
        .create_sign_in_link(&SignInLink {
            secret_hash: link_hash(state, &secret),
            workspace_id: member.workspace_id.clone(),
            member_id: member.id.clone(),
            created_at: now,
            expires_at,
            used_at: None,
        })
        .await?;
    Ok(IssuedLink { secret, expires_at })
}

/// Starts a session for `caller`; returns the `Set-Cookie` value.
pub async fn start_session(
    state: &AppState,
    dashboard: &Dashboard,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<HeaderValue, DashboardError> {
    let id = random_secret();
    let now = state.clock.now();
    let lifetime = Duration::from_std(dashboard.settings.lifetime).unwrap_or(Duration::hours(12));
    let idle = Duration::from_std(dashboard.settings.idle_timeout).unwrap_or(Duration::minutes(30));
    // Ended sessions and links go whenever someone signs in: no timer needed.
    if let Err(e) = state.store.purge_dashboard(now, now - idle).await {
        tracing::warn!(error = %e, "could not purge ended dashboard sessions");
    }
    state
        .store
        .create_session(&DashboardSession {
            id_hash: session_hash(state, &id),
            workspace_id: caller.workspace.id.clone(),
            member_id: caller.member.id.clone(),
            csrf_token: random_secret(),
            created_at: now,
            last_seen_at: now,
            expires_at: now + lifetime,
        })
        .await
        .map_err(ApiError::from)?;
    let secure = if came_over_tls(headers, dashboard.settings.trust_proxy) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Strict{secure}"
    ))
    .map_err(|_| ApiError::internal("session cookie").into())
}

/// The `Set-Cookie` value that deletes the session cookie.
pub fn ended_cookie(headers: &HeaderMap, trust_proxy: bool) -> HeaderValue {
    let secure = if came_over_tls(headers, trust_proxy) {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("keygate_session=; Path=/dashboard; Max-Age=0"))
}

/// Whether the browser reached us over TLS. Keygate itself serves plain HTTP, so that is only
/// known from a TLS-terminating proxy's `X-Forwarded-Proto: https`, believed only when the
/// operator said the proxy is trusted (`--trust-proxy`).
pub fn came_over_tls(headers: &HeaderMap, trust_proxy: bool) -> bool {
    trust_proxy
        && headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The session id the request's cookie carries, if any.
pub fn cookie_session_id(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// A signed-in member: the session and the [`Caller`] the domain code takes.
pub struct SignedIn {
    pub caller: Caller,
    pub session: DashboardSession,
    pub origin: Origin,
}

impl SignedIn {
    /// Checks a form's CSRF token against the session's, in constant time.
    pub fn check_csrf(&self, token: &str) -> Result<(), DashboardError> {
        if bool::from(token.as_bytes().ct_eq(self.session.csrf_token.as_bytes())) {
            Ok(())
        } else {
            Err(DashboardError::BadCsrf)
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = DashboardError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, DashboardError> {
        let Extension(dashboard) = Extension::<Arc<Dashboard>>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::internal("the dashboard's extension is missing"))?;
        let id = cookie_session_id(&parts.headers).ok_or(DashboardError::SignedOut)?;
        let hash = session_hash(state, id);
        let session = state
            .store
            .session(&hash)
            .await
            .map_err(ApiError::from)?
            .ok_or(DashboardError::SignedOut)?;
        let now = state.clock.now();
        let idle =
            Duration::from_std(dashboard.settings.idle_timeout).unwrap_or(Duration::minutes(30));
        if now >= session.expires_at || now - session.last_seen_at >= idle {
            state
                .store
                .delete_session(&hash)
                .await
                .map_err(ApiError::from)?;
            return Err(DashboardError::SignedOut);
        }
        let caller = match caller_for_member(state, &session.workspace_id, &session.member_id).await
        {
            Ok(caller) => caller,
            Err(ApiError::Unauthenticated(_)) => {
                state
                    .store
                    .delete_session(&hash)
                    .await
                    .map_err(ApiError::from)?;
                return Err(DashboardError::SignedOut);
            }
            Err(e) => return Err(e.into()),
        };
        if now - session.last_seen_at >= TOUCH_EVERY {
            state
                .store
                .touch_session(&hash, now)
                .await
                .map_err(ApiError::from)?;
        }
        let origin = Origin::from_request_parts(parts, state).await?;
        Ok(SignedIn {
            caller,
            session,
            origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_proto_counts_only_behind_a_trusted_proxy() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert!(came_over_tls(&headers, true));
        assert!(!came_over_tls(&headers, false));
        assert!(!came_over_tls(&HeaderMap::new(), true));
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; keygate_session=abc; b=2"),
        );
        assert_eq!(cookie_session_id(&headers), Some("abc"));
    }
}
