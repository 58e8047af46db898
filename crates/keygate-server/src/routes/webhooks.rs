//! `/v1/webhooks`: the workspace's webhook endpoints (owners and editors change them, viewers
//! read them), each one's delivery log, and a test event. Changes are audited; the signing
//! secret is shown once, when the endpoint is created, and stored sealed (`crate::webhooks`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use keygate_api::webhooks::{
    CreateWebhook, CreatedWebhook, DeliveryPage, EventType, TestQueued, UpdateWebhook, Webhook,
    WebhookDelivery, MAX_WEBHOOKS,
};
use keygate_api::Items;
use keygate_core::ids;
use keygate_core::text::Description;
use keygate_store::{Delivery, WebhookEndpoint};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::{self, Origin};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::routes::common::page_request;
use crate::state::AppState;
use crate::webhooks::signing::new_secret;
use crate::webhooks::target::{check_url, resolve};
use crate::webhooks::SECRET_PURPOSE;

const SHOWN_ONCE: &str =
    "Store this signing secret now: it is shown once and cannot be retrieved again.";

/// Create a webhook endpoint. Its signing secret (`whsec_…`) is in the answer, and only there.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = CreateWebhook,
    responses((status = 201, description = "The new endpoint, with its signing secret (shown once).", body = CreatedWebhook)))]
pub async fn create_webhook(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<impl IntoResponse, ApiError> {
    let url = valid_target(&state, &body.url).await?;
    let existing = state.store.list_webhooks(&caller.workspace.id).await?;
    if existing.len() >= MAX_WEBHOOKS {
        return Err(ApiError::Conflict {
            code: keygate_api::error::ErrorCode::TooManyWebhooks,
            message: format!(
                "A workspace has at most {MAX_WEBHOOKS} webhook endpoints: delete one first."
            ),
        });
    }
    let now = state.clock.now();
    let id = ids::new_id("wh");
    let secret = new_secret();
    let sealed = crate::secret::seal(
        &state.secret,
        SECRET_PURPOSE,
        id.as_bytes(),
        secret.as_bytes(),
    )
    .ok_or_else(|| ApiError::internal("sealing a webhook secret failed"))?;
    let endpoint = WebhookEndpoint {
        id,
        workspace_id: caller.workspace.id.clone(),
        url,
        description: valid_description(body.description)?,
        event_types: valid_types(body.event_types)?,
        enabled: body.enabled.unwrap_or(true),
        sealed_secret: sealed,
        failing_since: None,
        disabled_reason: None,
        created_at: now,
        updated_at: now,
    };
    let entry = audit::entry(
        &caller,
        &origin,
        "webhook.create",
        "webhook",
        &endpoint.id,
        audit::diff(&Value::Null, &view_json(&endpoint)),
        now,
    );
    state.store.create_webhook(&endpoint, &entry).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedWebhook {
            webhook: view(&endpoint),
            secret,
            warning: SHOWN_ONCE.into(),
        }),
    ))
}

/// Every webhook endpoint of the workspace.
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "The endpoints.", body = Items<Webhook>)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Items<Webhook>>, ApiError> {
    let items = state.store.list_webhooks(&caller.workspace.id).await?;
    Ok(Json(Items {
        items: items.iter().map(view).collect(),
    }))
}

/// One webhook endpoint.
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).", pattern = r"^wh_[A-Za-z0-9]{1,64}$")),
    responses((status = 200, description = "The endpoint.", body = Webhook)))]
pub async fn get_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Webhook>, ApiError> {
    Ok(Json(view(&load(&state, &caller, &id).await?)))
}

/// Change an endpoint: its URL, description, events, or whether it is enabled.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).", pattern = r"^wh_[A-Za-z0-9]{1,64}$")),
    request_body = UpdateWebhook,
    responses((status = 200, description = "The endpoint as changed.", body = Webhook)))]
pub async fn update_webhook(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<UpdateWebhook>,
) -> Result<Json<Webhook>, ApiError> {
    let before = load(&state, &caller, &id).await?;
    let mut after = before.clone();
    if let Some(url) = body.url {
        after.url = valid_target(&state, &url).await?;
    }
    if let Some(description) = body.description {
        after.description = valid_description(description)?;
    }
    if let Some(types) = body.event_types {
        after.event_types = valid_types(types)?;
    }
    if let Some(enabled) = body.enabled {
        after.enabled = enabled;
        if enabled && !before.enabled {
            // Enabled again (by hand): the failing clock starts afresh, the reason goes.
            after.failing_since = None;
            after.disabled_reason = None;
        }
    }
    after.updated_at = state.clock.now();
    let entry = audit::entry(
        &caller,
        &origin,
        "webhook.update",
        "webhook",
        &id,
        audit::diff(&view_json(&before), &view_json(&after)),
        after.updated_at,
    );
    state.store.save_webhook(&after, &entry).await?;
    Ok(Json(view(&after)))
}

/// Delete an endpoint and its delivery log; nothing more is sent to it.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).", pattern = r"^wh_[A-Za-z0-9]{1,64}$")),
    responses((status = 204, description = "Deleted.")))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    caller: Caller,
    origin: Origin,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let before = load(&state, &caller, &id).await?;
    let entry = audit::entry(
        &caller,
        &origin,
        "webhook.delete",
        "webhook",
        &id,
        audit::diff(&view_json(&before), &Value::Null),
        state.clock.now(),
    );
    state
        .store
        .delete_webhook(&caller.workspace.id, &id, &entry)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Paging through a delivery log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(pattern = r"^-?[0-9]{1,18}\.[A-Za-z0-9_:]{1,200}$")]
    pub cursor: Option<String>,
}

/// An endpoint's deliveries, newest first: state, attempts, the latest answer.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).", pattern = r"^wh_[A-Za-z0-9]{1,64}$"), DeliveryParams),
    responses((status = 200, description = "A page of deliveries.", body = DeliveryPage)))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    ApiQuery(params): ApiQuery<DeliveryParams>,
) -> Result<Json<DeliveryPage>, ApiError> {
    load(&state, &caller, &id).await?;
    let page = page_request(params.limit.or(Some(50)), params.cursor)?;
    let listed = state
        .store
        .list_deliveries(&caller.workspace.id, &id, &page)
        .await?;
    Ok(Json(DeliveryPage {
        items: listed.items.iter().map(delivery_view).collect(),
        next_cursor: listed.next_cursor,
    }))
}

/// Queue a `webhook.test` event for the endpoint, whatever it subscribes to.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = String, Path, description = "The endpoint's id (`wh_…`).", pattern = r"^wh_[A-Za-z0-9]{1,64}$")),
    responses((status = 202, description = "The test delivery, queued.", body = TestQueued)))]
pub async fn test_webhook(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let endpoint = load(&state, &caller, &id).await?;
    let now = state.clock.now();
    let event_id = ids::new_id("evt");
    let payload = json!({
        "type": EventType::WebhookTest.as_str(),
        "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": {"workspace_id": endpoint.workspace_id, "webhook_id": endpoint.id}
    });
    let delivery = Delivery {
        id: format!("{event_id}:{}", endpoint.id),
        endpoint_id: endpoint.id.clone(),
        workspace_id: endpoint.workspace_id.clone(),
        event_id: event_id.clone(),
        event_type: EventType::WebhookTest,
        payload: payload.to_string(),
        state: keygate_store::DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: now,
        last_status: None,
        last_error: None,
        last_duration_ms: None,
        created_at: now,
        updated_at: now,
    };
    state.store.queue_delivery(&delivery).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(TestQueued {
            delivery_id: delivery.id,
            event_id,
        }),
    ))
}

/// Send a delivery again now: one more attempt, whatever came of the earlier ones (a failed
/// delivery that fails again is failed again).
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(
        ("id" = String, Path, description = "The endpoint's id (`wh_…`).", pattern = r"^wh_[A-Za-z0-9]{1,64}$"),
        ("delivery_id" = String, Path, description = "The delivery's id, from the delivery log.", pattern = r"^[A-Za-z0-9_:]{1,200}$")
    ),
    responses((status = 202, description = "The delivery is due again.")))]
pub async fn redeliver(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath((id, delivery_id)): ApiPath<(String, String)>,
) -> Result<StatusCode, ApiError> {
    load(&state, &caller, &id).await?;
    state
        .store
        .redeliver(&caller.workspace.id, &id, &delivery_id, state.clock.now())
        .await
        .map_err(ApiError::store_lookup("delivery"))?;
    Ok(StatusCode::ACCEPTED)
}

async fn load(state: &AppState, caller: &Caller, id: &str) -> Result<WebhookEndpoint, ApiError> {
    if !ids::looks_like("wh", id) {
        return Err(ApiError::NotFound("webhook"));
    }
    state
        .store
        .webhook(&caller.workspace.id, id)
        .await
        .map_err(ApiError::store_lookup("webhook"))
}

/// A target as `crate::webhooks::target` allows it; a host that resolves now must resolve to
/// allowed addresses only (one that does not resolve yet is checked at every delivery).
async fn valid_target(state: &AppState, url: &str) -> Result<String, ApiError> {
    let parsed = check_url(url.trim(), state.webhook_targets).map_err(ApiError::invalid)?;
    if let Err(why) = resolve(&parsed, state.webhook_targets).await {
        if why.starts_with("webhooks are not sent to") {
            return Err(ApiError::invalid(why));
        }
    }
    Ok(parsed.to_string())
}

fn valid_description(description: Option<String>) -> Result<Option<String>, ApiError> {
    match description {
        None => Ok(None),
        Some(d) => Ok(Description::parse(&d)?.map(Description::into_string)),
    }
}

/// The list without repeats. `webhook.test` may be listed but changes nothing: test events
/// are sent on request (`POST /v1/webhooks/{id}/test`) whatever an endpoint subscribes to.
fn valid_types(types: Vec<EventType>) -> Result<Vec<EventType>, ApiError> {
    // Bounded as the document says (20), repeats included: input is never unbounded.
    if types.len() > 20 {
        return Err(ApiError::invalid("event_types lists at most 20 entries"));
    }
    let mut unique: Vec<EventType> = Vec::new();
    for t in types {
        if !unique.contains(&t) {
            unique.push(t);
        }
    }
    Ok(unique)
}

fn view(e: &WebhookEndpoint) -> Webhook {
    Webhook {
        id: e.id.clone(),
        workspace_id: e.workspace_id.clone(),
        url: e.url.clone(),
        description: e.description.clone(),
        event_types: e.event_types.clone(),
        enabled: e.enabled,
        disabled_reason: e.disabled_reason.clone(),
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

fn view_json(e: &WebhookEndpoint) -> Value {
    serde_json::to_value(view(e)).unwrap_or(Value::Null)
}

fn delivery_view(d: &Delivery) -> WebhookDelivery {
    WebhookDelivery {
        id: d.id.clone(),
        event_id: d.event_id.clone(),
        event_type: d.event_type,
        state: d.state,
        attempts: d.attempts,
        next_attempt_at: d.next_attempt_at,
        last_status: d.last_status,
        last_error: d.last_error.clone(),
        last_duration_ms: d.last_duration_ms,
        created_at: d.created_at,
        updated_at: d.updated_at,
    }
}
