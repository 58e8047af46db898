//! `/v1/keys`: the key lifecycle. Each handler checks the role, applies a transition from
//! `keygate-core` to the stored key and saves it with its audit row; the cache is told after
//! the commit so the next verification sees the change.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use keygate_api::keys::{
    CreateKey, CreateKeyBody, ImportKey, ImportKeyBody, IssuedKey, KeyPage, ListKeys, RotateKey,
    UpdateKey, UpdateKeyBody,
};
use keygate_core::expiry::{parse_duration, resolve_expiry};
use keygate_core::hash::parse_sha256_hex;
use keygate_core::key::ParsedKey;
use keygate_core::limits::KeyLimits;
use keygate_core::model::{ApiKey, KeyStatus, Scope};
use keygate_core::text::{Description, Permission};
use keygate_core::{ids, EnvTag, PlainKey};
use keygate_store::{ConflictKind, KeyFilter, SecretChange, StoreError};
use serde_json::{Map, Value};

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::invalidation::Change;
use crate::routes::common::{
    active_keys, change_key, key_json, load_identity, load_key, one_active_key, page_request,
    revoked_conflict, valid_limits, valid_metadata, valid_name, valid_rule_id, KeyChange,
};
use crate::state::AppState;

const SHOWN_ONCE: &str = "Store this secret now: it is shown once and cannot be retrieved again.";
const MAX_ROTATION_GRACE_DAYS: i64 = 30;
/// Most projects a key's scope lists; each is looked up when the scope is saved.
const MAX_SCOPE_PROJECTS: usize = 100;

/// Create a key. Its secret is in the answer, and only there: Keygate stores a hash.
#[utoipa::path(post, path = "/v1/keys", tag = "keys",
    request_body = CreateKeyBody,
    responses((status = 201, description = "The new key, with its secret (shown once).", body = IssuedKey)))]
pub async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<impl IntoResponse, ApiError> {
    let issued = create(&state, &caller, &origin, body).await?;
    Ok((StatusCode::CREATED, Json(issued)))
}

/// Creates a key for `caller` (whose role the caller of this function has checked) with its
/// audit row: the one path the API and the dashboard both take.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    body: CreateKey,
) -> Result<IssuedKey, ApiError> {
    let now = state.clock.now();
    let environment = body.environment.unwrap_or_else(EnvTag::live);
    let secret = PlainKey::generate(&caller.workspace.key_prefix, &environment);
    let mut key = new_key(
        state,
        caller,
        KeyFields {
            name: body.name,
            description: body.description,
            environment,
            scope: body.scope,
            permissions: body.permissions,
            expires_in: body.expires_in,
            expires_at: body.expires_at,
            metadata: body.metadata,
        },
        now,
    )
    .await?;
    key.limits = valid_limits(body.limits)?;
    key.routing_rule_id = match &body.routing_rule_id {
        Some(id) => Some(valid_rule_id(state, caller, id).await?),
        None => None,
    };
    key.identity_id = match &body.identity_id {
        Some(id) => Some(
            load_identity(state, caller, id)
                .await
                .map_err(as_reference)?
                .id,
        ),
        None => None,
    };
    key.display = secret.display();
    let hash = state.secret.hash_key(&secret);
    match insert_key(state, caller, origin, "key.create", &key, &hash).await {
        Ok(()) => {}
        Err(StoreError::Conflict(ConflictKind::ActiveKey)) => {
            let env = key.environment.as_str();
            let active = active_keys(state, &caller.workspace.id, Some(env), 5).await?;
            let what = match active.first() {
                Some(k) => format!(
                    "Rotate it for a new secret (POST /v1/keys/{}/rotate, with a grace period if both must work for a while), or disable or revoke it first.",
                    k.id
                ),
                None => "Rotate the active key, or disable or revoke it first.".to_owned(),
            };
            return Err(one_active_key(env, &active, &what));
        }
        Err(e) => return Err(e.into()),
    }
    Ok(IssuedKey {
        secret: secret.expose().to_owned(),
        warning: SHOWN_ONCE.into(),
        old_secret_expires_at: None,
        key,
    })
}

/// The workspace's keys, newest first, a page at a time (follow `next_cursor`).
#[utoipa::path(get, path = "/v1/keys", tag = "keys",
    params(ListKeys),
    responses((status = 200, description = "A page of keys.", body = KeyPage)))]
pub async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(query): ApiQuery<ListKeys>,
) -> Result<Json<KeyPage>, ApiError> {
    Ok(Json(list(&state, &caller, query).await?))
}

/// A page of the caller's workspace's keys, filtered as `query` says.
pub async fn list(state: &AppState, caller: &Caller, query: ListKeys) -> Result<KeyPage, ApiError> {
    let status =
        match query.status.as_deref() {
            None => None,
            Some(s) => Some(KeyStatus::parse(s).ok_or_else(|| {
                ApiError::invalid("status must be one of active, disabled, revoked")
            })?),
        };
    let filter = KeyFilter {
        status,
        environment: query.environment,
        project: query.project,
        search: query.search,
        legacy: query.legacy,
        identity: query.identity,
    };
    let page = page_request(query.limit, query.cursor)?;
    let page = state
        .store
        .list_keys(&caller.workspace.id, &filter, &page)
        .await?;
    Ok(KeyPage {
        items: page.items,
        next_cursor: page.next_cursor,
    })
}

/// One key (never its secret).
#[utoipa::path(get, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The key.", body = ApiKey)))]
pub async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(get(&state, &caller, &id).await?))
}

/// The key with this id in the caller's workspace; another workspace's id is not found.
pub async fn get(state: &AppState, caller: &Caller, id: &str) -> Result<ApiKey, ApiError> {
    load_key(state, caller, id).await
}

/// Change a key's settings: only the fields sent change (see `UpdateKey` for `null`).
#[utoipa::path(patch, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    request_body = UpdateKeyBody,
    responses((status = 200, description = "The key as saved.", body = ApiKey)))]
pub async fn update_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateKey>,
) -> Result<Json<ApiKey>, ApiError> {
    let now = state.clock.now();
    let name = body.name.as_deref().map(valid_name).transpose()?;
    let description = match body.description {
        Some(d) => Some(valid_description(d)?),
        None => None,
    };
    let scope = match body.scope {
        Some(scope) => Some(valid_scope(&state, &caller, scope).await?),
        None => None,
    };
    let permissions = body.permissions.map(valid_permissions).transpose()?;
    let expires_at = match (body.expires_in.as_deref(), body.expires_at) {
        (None, None) => None,
        (_, Some(None)) => Some(None),
        (expires_in, Some(Some(at))) => Some(
            resolve_expiry(expires_in, Some(&at), now)
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
        (Some(expires_in), None) => Some(
            resolve_expiry(Some(expires_in), None, now)
                .map_err(|e| ApiError::invalid(e.to_string()))?,
        ),
    };
    let metadata = body.metadata.map(valid_metadata).transpose()?;
    let limits = body.limits.map(valid_limits).transpose()?;
    let routing_rule_id = match body.routing_rule_id {
        Some(Some(id)) => Some(Some(valid_rule_id(&state, &caller, &id).await?)),
        Some(None) => Some(None),
        None => None,
    };
    let identity_id = match body.identity_id {
        Some(Some(id)) => Some(Some(
            load_identity(&state, &caller, &id)
                .await
                .map_err(as_reference)?
                .id,
        )),
        Some(None) => Some(None),
        None => None,
    };
    let saved = change_key(&state, &caller, &origin, &id, KeyChange::plain("key.update", SecretChange::None), |key| {
        if key.legacy && limits.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ApiError::LegacyKey(
                "Imported legacy keys carry no limits. Create a new key with limits and retire the legacy one.".into(),
            ));
        }
        if let Some(name) = &name {
            key.name = name.clone();
        }
        if let Some(description) = &description {
            key.description = description.clone();
        }
        if let Some(scope) = &scope {
            key.scope = scope.clone();
        }
        if let Some(permissions) = &permissions {
            key.permissions = permissions.clone();
        }
        if let Some(expires_at) = expires_at {
            key.expires_at = expires_at;
        }
        if let Some(metadata) = &metadata {
            key.metadata = metadata.clone();
        }
        if let Some(limits) = &limits {
            key.limits = limits.clone();
        }
        if let Some(rule) = &routing_rule_id {
            key.routing_rule_id = rule.clone();
        }
        if let Some(identity) = &identity_id {
            key.identity_id = identity.clone();
        }
        Ok(())
    })
    .await?;
    Ok(Json(saved))
}

/// Disable a key: it is refused (`disabled`) until enabled again. A revoked key cannot be.
#[utoipa::path(post, path = "/v1/keys/{id}/disable", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The key, disabled.", body = ApiKey)))]
pub async fn disable_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(
        set_enabled(&state, &caller, &origin, &id, false).await?,
    ))
}

/// Enable a disabled key. A revoked key cannot be.
#[utoipa::path(post, path = "/v1/keys/{id}/enable", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The key, active.", body = ApiKey)))]
pub async fn enable_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(
        set_enabled(&state, &caller, &origin, &id, true).await?,
    ))
}

/// Enables or disables a key, with its audit row (`key.enable` / `key.disable`).
pub async fn set_enabled(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    id: &str,
    enabled: bool,
) -> Result<ApiKey, ApiError> {
    let action = if enabled { "key.enable" } else { "key.disable" };
    change_key(
        state,
        caller,
        origin,
        id,
        KeyChange::plain(action, SecretChange::None),
        |key| key.set_enabled(enabled).map_err(revoked_conflict),
    )
    .await
}

/// Revoke a key for good (revoking twice is not an error).
#[utoipa::path(post, path = "/v1/keys/{id}/revoke", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The key, revoked.", body = ApiKey)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(revoke(&state, &caller, &origin, &id).await?))
}

/// Revokes a key for good, with its audit row (`key.revoke`).
pub async fn revoke(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    id: &str,
) -> Result<ApiKey, ApiError> {
    change_key(
        state,
        caller,
        origin,
        id,
        KeyChange::plain("key.revoke", SecretChange::None),
        |key| {
            key.revoke();
            Ok(())
        },
    )
    .await
}

/// Replace a key's secret at once: the old secret stops working now. Not for revoked or
/// imported keys.
#[utoipa::path(post, path = "/v1/keys/{id}/regenerate", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The key, with its new secret (shown once).", body = IssuedKey)))]
pub async fn regenerate_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let current = load_key(&state, &caller, &id).await?;
    refuse_legacy(&current, "regenerated")?;
    let secret = PlainKey::generate(&caller.workspace.key_prefix, &current.environment);
    let change = SecretChange::Replace(state.secret.hash_key(&secret));
    let display = secret.display();
    let saved = change_key(
        &state,
        &caller,
        &origin,
        &id,
        KeyChange::plain("key.regenerate", change),
        |key| {
            key.ensure_not_revoked().map_err(revoked_conflict)?;
            key.display = display.clone();
            Ok(())
        },
    )
    .await?;
    Ok(Json(IssuedKey {
        secret: secret.expose().to_owned(),
        warning: SHOWN_ONCE.into(),
        old_secret_expires_at: None,
        key: saved,
    }))
}

/// Give a key a new secret while the old one keeps working for a grace period. The body is
/// optional. Not for revoked or imported keys.
#[utoipa::path(post, path = "/v1/keys/{id}/rotate", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    request_body(content = RotateKey, description = "May also be left out (or sent empty): the grace period is then 24h.", content_type = "application/json"),
    responses((status = 200, description = "The key, with its new secret (shown once) and when the old one stops working.", body = IssuedKey)))]
pub async fn rotate_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    body: axum::body::Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // The body is optional: an empty one means the default grace period.
    let body: RotateKey = if body.iter().all(u8::is_ascii_whitespace) {
        RotateKey::default()
    } else {
        crate::extract::json_object(&body)?;
        crate::extract::strict_json(&body)?
    };
    let grace = parse_duration(body.grace.as_deref().unwrap_or("24h"))
        .map_err(|e| ApiError::invalid(format!("grace: {e}")))?;
    if grace > chrono::Duration::days(MAX_ROTATION_GRACE_DAYS) {
        return Err(ApiError::invalid(
            "grace can be at most 30d: an old secret should not outlive a rotation by long",
        ));
    }
    let current = load_key(&state, &caller, &id).await?;
    refuse_legacy(&current, "rotated")?;
    let old_until = state.clock.now() + grace;
    let secret = PlainKey::generate(&caller.workspace.key_prefix, &current.environment);
    let change = SecretChange::Rotate {
        new: state.secret.hash_key(&secret),
        old_until,
    };
    let display = secret.display();
    let saved = change_key(
        &state,
        &caller,
        &origin,
        &id,
        KeyChange::plain("key.rotate", change),
        |key| {
            key.ensure_not_revoked().map_err(revoked_conflict)?;
            key.display = display.clone();
            Ok(())
        },
    )
    .await?;
    Ok(Json(IssuedKey {
        secret: secret.expose().to_owned(),
        warning: SHOWN_ONCE.into(),
        old_secret_expires_at: Some(old_until),
        key: saved,
    }))
}

/// Delete a key and its counters. Its usage and audit history stay.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "keys",
    params(("id" = String, Path, description = "The key's id (`key_…`); any other id is not found.", pattern = r"^key_[A-Za-z0-9]{1,64}$")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let current = load_key(&state, &caller, &id).await?;
    let entry = audit::entry(
        &caller,
        &origin,
        "key.delete",
        "key",
        &id,
        audit::diff(&key_json(&current), &Value::Null),
        state.clock.now(),
    );
    state
        .store
        .delete_key(&caller.workspace.id, &id, &entry)
        .await
        .map_err(ApiError::store_lookup("key"))?;
    state.changed(Change::Key(id.clone())).await;
    if let Err(e) = state.limiter.forget_key(&id).await {
        tracing::warn!(key_id = %id, error = %e, "could not drop the deleted key's counters");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Import a key issued by another system, in plain text or as its SHA-256, so it keeps
/// working while clients move to keys issued here.
#[utoipa::path(post, path = "/v1/keys/import", tag = "keys",
    request_body = ImportKeyBody,
    responses((status = 201, description = "The imported key (it has no secret to show).", body = ApiKey)))]
pub async fn import_key(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<ImportKey>,
) -> Result<impl IntoResponse, ApiError> {
    let now = state.clock.now();
    let (hash, display) = match (&body.key, &body.sha256) {
        (Some(plain), None) => {
            let plain = PlainKey::from_untrusted(plain.as_str());
            match ParsedKey::parse(plain.expose()) {
                Ok(ParsedKey::Foreign) => {}
                Ok(ParsedKey::Native { .. }) => {
                    return Err(ApiError::invalid(
                        "That is already a key of this service; it needs no import.",
                    ))
                }
                Err(_) => {
                    return Err(ApiError::invalid(format!(
                        "A legacy key must be {} to {} printable characters without spaces, and must not look like one of our keys with a bad checksum.",
                        keygate_core::key::MIN_LEGACY_LEN,
                        keygate_core::key::MAX_KEY_LEN
                    )))
                }
            }
            (state.secret.hash_legacy(&plain), plain.display())
        }
        (None, Some(hex)) => {
            let sha = parse_sha256_hex(hex)
                .ok_or_else(|| ApiError::invalid("sha256 must be 64 hexadecimal characters"))?;
            (
                state.secret.hash_legacy_sha256(&sha),
                // Four hex digits of an unsalted hash of a possibly weak key: as much as a
                // display form shows of any secret material, and no more.
                format!("sha256:{}…", &hex.trim()[..4]),
            )
        }
        _ => {
            return Err(ApiError::invalid(
                "Give exactly one of `key` (the legacy key) or `sha256` (its SHA-256 in hex).",
            ))
        }
    };
    let mut key = new_key(
        &state,
        &caller,
        KeyFields {
            name: body.name,
            description: body.description,
            environment: body.environment.unwrap_or_else(EnvTag::live),
            scope: body.scope,
            permissions: body.permissions,
            expires_in: body.expires_in,
            expires_at: body.expires_at,
            metadata: body.metadata,
        },
        now,
    )
    .await?;
    key.display = display;
    key.legacy = true;
    insert_key(&state, &caller, &origin, "key.import", &key, &hash)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(keygate_store::ConflictKind::Id) => ApiError::Conflict {
                code: keygate_api::error::ErrorCode::AlreadyImported,
                message: "That legacy key has already been imported.".into(),
            },
            other => other.into(),
        })?;
    state.changed(Change::Hash(hash)).await;
    state
        .changed(Change::LegacyKeys(caller.workspace.id.clone()))
        .await;
    Ok((StatusCode::CREATED, Json(key)))
}

/// What the creator of a key chooses, for both new and imported keys.
struct KeyFields {
    name: String,
    description: Option<String>,
    environment: EnvTag,
    scope: Option<Scope>,
    permissions: Vec<String>,
    expires_in: Option<String>,
    expires_at: Option<String>,
    metadata: Map<String, Value>,
}

/// A validated, active key without limits, routing or display form (the caller adds those).
async fn new_key(
    state: &AppState,
    caller: &Caller,
    fields: KeyFields,
    now: DateTime<Utc>,
) -> Result<ApiKey, ApiError> {
    Ok(ApiKey {
        id: ids::new_id("key"),
        workspace_id: caller.workspace.id.clone(),
        name: valid_name(&fields.name)?,
        description: valid_description(fields.description)?,
        environment: fields.environment,
        scope: valid_scope(state, caller, fields.scope.unwrap_or(Scope::All)).await?,
        permissions: valid_permissions(fields.permissions)?,
        expires_at: resolve_expiry(
            fields.expires_in.as_deref(),
            fields.expires_at.as_deref(),
            now,
        )
        .map_err(|e| ApiError::invalid(e.to_string()))?,
        status: KeyStatus::Active,
        metadata: valid_metadata(fields.metadata)?,
        limits: KeyLimits::default(),
        routing_rule_id: None,
        identity_id: None,
        display: String::new(),
        legacy: false,
        created_by: caller.member.id.clone(),
        created_at: now,
        updated_at: now,
        last_used_at: None,
        version: 1,
    })
}

/// Stores a new key with its first secret and its audit row, in one transaction.
async fn insert_key(
    state: &AppState,
    caller: &Caller,
    origin: &Origin,
    action: &str,
    key: &ApiKey,
    hash: &keygate_core::KeyHash,
) -> Result<(), StoreError> {
    let entry = audit::entry(
        caller,
        origin,
        action,
        "key",
        &key.id,
        audit::diff(&Value::Null, &key_json(key)),
        key.created_at,
    );
    state
        .store
        .create_key(key, hash, caller.workspace.single_active_key, &entry)
        .await
}

/// An identity named in a key's body that is not in the workspace is an unknown reference
/// (409), like a `scope` project: the key itself was found.
fn as_reference(error: ApiError) -> ApiError {
    match error {
        ApiError::NotFound(_) => ApiError::UnknownReference(
            "identity_id names no identity of this workspace; GET /v1/identities lists them."
                .into(),
        ),
        other => other,
    }
}

fn refuse_legacy(key: &ApiKey, verb: &str) -> Result<(), ApiError> {
    if key.legacy {
        Err(ApiError::LegacyKey(format!(
            "An imported legacy key cannot be {verb}: create a new key and revoke the legacy one."
        )))
    } else {
        Ok(())
    }
}

fn valid_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        Some(d) => Ok(Description::parse(&d)?.map(Description::into_string)),
        None => Ok(None),
    }
}

fn valid_permissions(permissions: Vec<String>) -> Result<Vec<String>, ApiError> {
    Ok(Permission::parse_all(&permissions)?)
}

async fn valid_scope(state: &AppState, caller: &Caller, scope: Scope) -> Result<Scope, ApiError> {
    let Scope::Projects(mut project_ids) = scope else {
        return Ok(Scope::All);
    };
    project_ids.sort();
    project_ids.dedup();
    if project_ids.len() > MAX_SCOPE_PROJECTS {
        return Err(ApiError::invalid(
            "scope may list at most 100 projects (use \"all\" for more)",
        ));
    }
    if project_ids.is_empty() {
        return Err(ApiError::invalid(
            "scope is \"all\" or a non-empty list of project ids",
        ));
    }
    // A malformed id is a bad request; a well-formed one that names no project of this
    // workspace (another workspace's included) is not found.
    if let Some(id) = project_ids.iter().find(|id| !ids::looks_like("proj", id)) {
        return Err(ApiError::invalid(format!(
            "scope names {id:?}, which is not a project id (`proj_…`)"
        )));
    }
    for id in &project_ids {
        match state.store.project(&caller.workspace.id, id).await {
            Ok(_) => {}
            Err(StoreError::NotFound) => {
                return Err(ApiError::UnknownReference(format!(
                    "scope names project {id:?}, which does not exist in this workspace."
                )))
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Scope::Projects(project_ids))
}
