//! The account's own do-not-call list over the API: `GET /v1/dnc` (the CSV `ccc-dialer dnc
//! export` writes) and `POST /v1/dnc/remove` (`dnc remove`). A number taken off the list may be
//! called again by every campaign from its next gate check.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiError, ApiResult};
use super::Service;
use crate::dispatch::now_ms;

pub async fn export(State(svc): State<Arc<Service>>) -> ApiResult<Response> {
    let entries = svc.store.own_dnc_entries().await?;
    let csv = crate::calling::opt_out::to_csv(&entries)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"do-not-call.csv\"",
            ),
        ],
        csv,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    number: String,
    reason: String,
}

/// Take a number off the own list: `removed` says whether it was on it (the number as the
/// export shows it, or as a contacts file would write it with the config's country and format).
pub async fn remove(
    State(svc): State<Arc<Service>>,
    body: Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let body = body.map_err(|e| ApiError::rejected(e.status(), e.body_text()))?;
    let body: RemoveBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "body: {e}: expected JSON {{\"number\": \"+86…\", \"reason\": \"…\"}}"
        ))
    })?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "reason: expected why the number comes off the do-not-call list (it is logged)",
        ));
    }
    if body.number.trim().is_empty() {
        return Err(ApiError::bad_request("number: expected a phone number"));
    }
    let cfg = svc.config().clone();
    for n in crate::commands::dnc::candidates(&body.number, Some(&cfg)) {
        if let Some(e) = svc
            .store
            .remove_own_dnc(n, body.reason.trim().to_string(), now_ms())
            .await?
        {
            svc.campaigns.base().rules.dnc.remove_own(&e.number);
            tracing::info!(number = %crate::dispatch::mask(&e.number), "taken off the account's own do-not-call list by an operator");
            return Ok(Json(json!({
                "number": e.number,
                "removed": true,
                "entry": e,
            })));
        }
    }
    Ok(Json(json!({
        "number": body.number,
        "removed": false,
        "entry": null,
    })))
}
