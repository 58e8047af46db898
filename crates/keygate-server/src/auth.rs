//! Who is calling the management API: the [`Caller`] extractor turns a Bearer management token
//! into a member and their workspace, and the role checks live beside it.
//!
//! Management tokens use the key format with the fixed prefix `kgm` (`kgm_mgmt_…`), so a
//! mistyped token is refused by its checksum before any lookup, and secret scanners can tell a
//! management token from a customer's key.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use keygate_core::access::Access;
use keygate_core::model::{Member, Workspace};
use keygate_core::{EnvTag, KeyPrefix, ParsedKey, PlainKey};

use crate::error::ApiError;
use crate::extract::bearer_token;
use crate::state::AppState;

/// Never change: issued tokens start with it.
pub const TOKEN_PREFIX: &str = "kgm";
const TOKEN_ENV: &str = "mgmt";

/// A new management token.
pub fn generate_token() -> PlainKey {
    let prefix = KeyPrefix::parse(TOKEN_PREFIX).unwrap_or_else(|_| unreachable!());
    let env = EnvTag::parse(TOKEN_ENV).unwrap_or_else(|_| unreachable!());
    PlainKey::generate(&prefix, &env)
}

/// The authenticated member and their workspace.
#[derive(Clone)]
pub struct Caller {
    pub member: Arc<Member>,
    pub workspace: Arc<Workspace>,
}

/// Authenticates the caller of a management route and checks their role against the route's
/// row in the access table (`routes::operations`: its `access`, and its `action` for the
/// refusal message), before anything else looks at the request: no body is read, no
/// idempotent answer replayed and no row written for a caller who may not make this call now.
/// The caller is left in the request's extensions for the handler.
pub async fn authorize(
    State((state, access, action)): State<(AppState, Access, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &state).await {
        Ok(caller) => caller,
        Err(error) => return error.into_response(),
    };
    if let Err(refused) = check_access(&caller, access, action) {
        return refused.into_response();
    }
    next.run(Request::from_parts(parts, body)).await
}

/// Whether the caller's role allows `access`; the refusal names the role and the `action`.
/// The API checks every route's row with it, and the dashboard each of its writes.
pub fn check_access(caller: &Caller, access: Access, action: &'static str) -> Result<(), ApiError> {
    let role = caller.member.role;
    if access.allows(role) {
        Ok(())
    } else {
        Err(ApiError::RoleForbidden {
            role: role.as_str(),
            action,
        })
    }
}

/// The member a management token belongs to, verified as every management request is: its
/// format and checksum first, then its keyed hash against the store.
pub async fn caller_for_token(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    match ParsedKey::parse(token) {
        Ok(ParsedKey::Native { prefix, .. }) if prefix == TOKEN_PREFIX => {}
        _ => {
            return Err(ApiError::Unauthenticated(
                "The management token is malformed. Management tokens start with `kgm_`; customer API keys cannot manage keys.",
            ))
        }
    }
    let hash = state.secret.hash_key(&PlainKey::from_untrusted(token));
    let store = &state.store;
    let member = state
        .members
        .get_or_load(&hash, || async move { store.member_by_token(&hash).await })
        .await?
        .ok_or(ApiError::Unauthenticated(
            "The management token is not valid: it was deleted or never existed.",
        ))?;
    let workspace = state.workspace(&member.workspace_id).await?;
    Ok(Caller { member, workspace })
}

/// A member of a workspace by id (a dashboard session names one); `Unauthenticated` when the
/// member no longer exists.
pub async fn caller_for_member(
    state: &AppState,
    workspace_id: &str,
    member_id: &str,
) -> Result<Caller, ApiError> {
    let member = match state.store.member(workspace_id, member_id).await {
        Ok(member) => member,
        Err(keygate_store::StoreError::NotFound) => {
            return Err(ApiError::Unauthenticated(
                "The member of this session no longer exists.",
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let workspace = state.workspace(workspace_id).await?;
    Ok(Caller {
        member: Arc::new(member),
        workspace,
    })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let token = bearer_token(&parts.headers).ok_or(ApiError::Unauthenticated(
            "Send a management token as `Authorization: Bearer <token>` (created by `keygate bootstrap` or by an owner).",
        ))?;
        let caller = caller_for_token(state, token).await?;
        parts.extensions.insert(caller.clone());
        Ok(caller)
    }
}
