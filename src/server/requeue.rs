//! `POST /v1/campaigns/{id}/requeue`: the API's `ccc-dialer requeue` (see [`crate::requeue`]).
//! A completed campaign becomes active again and is started; a paused one stays paused (its
//! contacts wait for the resume); a cancelled one is refused.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::{find, view, ApiError, ApiResult};
use super::Service;
use crate::dispatch::now_ms;
use crate::store::CampaignState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequeueBody {
    status: String,
    #[serde(default)]
    codes: Vec<String>,
    #[serde(default)]
    allow_double_call: bool,
}

pub async fn requeue(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let c = find(&svc, &id).await?;
    let body = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let asked: RequeueBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body: {e}: expected JSON {{\"status\": \"failed\", \"codes\": [\"NotSent\"]}}"
        ))
    })?;
    let request = crate::requeue::parse(
        &asked.status,
        asked.codes,
        asked.allow_double_call,
        "an operator (API)",
    )
    .map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_requeue", e))?;
    if c.state == CampaignState::Cancelled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "campaign {} is cancelled: its contacts cannot be requeued",
                c.id
            ),
        ));
    }
    let n = svc.store.requeue(c.id, request, now_ms()).await?;
    svc.forget_counts(c.id);
    let c = find(&svc, &id).await?;
    if n > 0 && c.state == CampaignState::Active {
        svc.campaigns.start_current(c.id).await?;
    }
    let view = view(&svc, c).await?;
    Ok(Json(json!({ "requeued": n, "campaign": view })))
}
