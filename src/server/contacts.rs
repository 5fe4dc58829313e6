//! `GET /v1/campaigns/{id}/contacts`: a campaign's contacts a page at a time, filtered by status
//! or by the outcome of their latest call, and searched by number (see [`crate::store::pages`] for what a page costs the store).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::{find, rfc3339, ApiError, ApiResult};
use super::Service;
use crate::contact::Status;
use crate::outcomes::classes::OutcomeClass;
use crate::store::ContactFilter;

/// The longest `q` (the OpenAPI document's maxLength), in characters.
const Q_MAX_CHARS: usize = 64;

/// Contacts in a page unless `limit` says otherwise, and the most it may say.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 500;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    status: Option<String>,
    outcome: Option<String>,
    q: Option<String>,
    cursor: Option<String>,
    limit: Option<String>,
}

pub async fn list(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!(
            "{}; expected status, q, cursor and limit",
            e.body_text()
        ))
    })?;
    let c = find(&svc, &id).await?;
    let filter = filter_of(&q)?;
    let after = match q.cursor.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(s) => s.parse::<u64>().map_err(|_| {
            ApiError::bad_request(format!(
                "cursor {s:?}: expected the `next_cursor` of a previous page"
            ))
        })?,
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit {s:?}: expected a whole number from 1 to {MAX_LIMIT}"
                ))
            })?,
    };
    let page = svc.store.contacts_page(c.id, after, filter, limit).await?;
    let contacts: Vec<serde_json::Value> = page
        .contacts
        .into_iter()
        .map(|r| {
            json!({
                "line": r.line,
                "callee": r.callee,
                "ext_id": r.ext_id,
                "name": r.name,
                "status": r.status,
                "attempts": r.attempts,
                "next_at": (r.status == "pending" && r.next_at > 0).then(|| rfc3339(r.next_at)),
                "gate": r.gate,
                "session_id": r.session_id,
                "outcome": r.outcome,
                "error_code": r.error_code,
                "error_message": r.error_message,
                "updated_at": rfc3339(r.updated_at),
            })
        })
        .collect();
    Ok(Json(json!({
        "contacts": contacts,
        "next_cursor": page.next_after.map(|l| l.to_string()),
    })))
}

/// `q`'s digits at most, as the `pattern` of `openapi.json` says.
const MAX_Q_DIGITS: usize = 32;

fn filter_of(q: &PageQuery) -> ApiResult<ContactFilter> {
    let outcome = match q.outcome.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            s.parse::<OutcomeClass>()
                .map_err(|_| {
                    ApiError::bad_request(format!(
                        "outcome {s:?}: expected one of {}",
                        OutcomeClass::ALL.map(OutcomeClass::as_str).join(", ")
                    ))
                })?
                .as_str()
                .to_string(),
        ),
    };
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(s.parse::<Status>().map_err(|_| {
            ApiError::bad_request(format!(
                "status {s:?}: expected one of {}",
                Status::ALL.map(Status::as_str).join(", ")
            ))
        })?),
    };
    // The document's maxLength, on the value as sent (65 spaces are not an empty search).
    if let Some(raw) = q.q.as_deref().filter(|s| s.chars().count() > Q_MAX_CHARS) {
        return Err(ApiError::bad_request(format!(
            "q of {} characters: expected at most {Q_MAX_CHARS}",
            raw.chars().count()
        )));
    }
    let digits = match q.q.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let ok = s
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')'));
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            if !ok || digits.is_empty() || digits.len() > MAX_Q_DIGITS {
                return Err(ApiError::bad_request(format!(
                    "q {s:?}: expected part of a phone number (1 to {MAX_Q_DIGITS} digits, optionally with +, spaces, - or parentheses)"
                )));
            }
            Some(digits)
        }
    };
    Ok(ContactFilter {
        status,
        digits,
        outcome,
    })
}
