//! `GET /v1/campaigns/{id}/outcomes/history`: a campaign's calls by the interval they ended in
//! and outcome class, for the console's outcomes-over-time chart. Read from the kept per-minute
//! counts (`crate::store::OutcomeMinute`), so a reply reads at most one row per minute and class
//! of the range it covers, whatever the campaign's size; a range is bounded per reply
//! ([`MAX_INTERVALS`] intervals, [`MAX_MINUTES`] minutes) and paged with `next_from`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::api::{find, rfc3339, ApiError, ApiResult};
use super::Service;
use crate::times::now_ms;

/// The interval lengths served, in seconds.
pub const STEPS: [i64; 4] = [60, 300, 900, 3600];
/// Intervals chosen by default: the last this many (from the campaign's creation at most).
pub const DEFAULT_INTERVALS: i64 = 120;
/// The most intervals, and minutes, one reply covers.
pub const MAX_INTERVALS: i64 = 360;
pub const MAX_MINUTES: i64 = 7 * 24 * 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    step: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// The step a campaign of this age gets by default: the shortest that shows its whole life in
/// [`DEFAULT_INTERVALS`] intervals (the longest otherwise).
pub fn default_step(age_ms: i64) -> i64 {
    STEPS
        .iter()
        .copied()
        .find(|s| age_ms <= s * 1000 * DEFAULT_INTERVALS)
        .unwrap_or(STEPS[STEPS.len() - 1])
}

fn time_of(key: &str, s: &str) -> ApiResult<i64> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            ApiError::bad_request(format!(
                "{key} {s:?}: expected an RFC 3339 time such as 2026-11-29T09:30:00Z"
            ))
        })
}

pub async fn history(
    State(svc): State<Arc<Service>>,
    Path(id): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(q) = query.map_err(|e| {
        ApiError::bad_request(format!("{}; expected step, from and to", e.body_text()))
    })?;
    let c = find(&svc, &id).await?;
    let now = now_ms();
    let step = match q.step.as_deref() {
        None => default_step(now - c.created_at),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| STEPS.contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "step {s:?}: expected one of 60, 300, 900 or 3600 (seconds)"
                ))
            })?,
    };
    let step_ms = step * 1000;
    // Interval edges fall on multiples of the step (UTC); `to` rounds up to take its interval.
    let to = match q.to.as_deref() {
        None => now,
        Some(s) => time_of("to", s)?,
    };
    let to = (to.div_euclid(step_ms) + 1) * step_ms;
    let from = match q.from.as_deref() {
        None => (to - DEFAULT_INTERVALS * step_ms).max(c.created_at),
        Some(s) => time_of("from", s)?,
    };
    let from = from.div_euclid(step_ms) * step_ms;
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "from {} is not before to {}",
            rfc3339(from),
            rfc3339(to)
        )));
    }
    let most = MAX_INTERVALS.min(MAX_MINUTES * 60 / step);
    let (end, next_from) = match (to - from) / step_ms > most {
        true => (from + most * step_ms, Some(rfc3339(from + most * step_ms))),
        false => (to, None),
    };
    let rows = svc
        .store
        .outcome_minutes(c.id, from / 60_000, end / 60_000)
        .await?;
    let n = ((end - from) / step_ms) as usize;
    let mut intervals: Vec<BTreeMap<String, u64>> = vec![BTreeMap::new(); n];
    for r in rows {
        let i = ((r.minute * 60_000 - from) / step_ms) as usize;
        if let Some(by) = intervals.get_mut(i) {
            *by.entry(r.class).or_default() += r.calls;
        }
    }
    let intervals: Vec<serde_json::Value> = intervals
        .into_iter()
        .enumerate()
        .map(|(i, by)| {
            json!({
                "start": rfc3339(from + i as i64 * step_ms),
                "calls": by.values().sum::<u64>(),
                "by_outcome": by,
            })
        })
        .collect();
    Ok(Json(json!({
        "campaign_id": c.id,
        "step_seconds": step,
        "from": rfc3339(from),
        "to": rfc3339(end),
        "intervals": intervals,
        "next_from": next_from,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_step_shows_a_campaigns_life_in_at_most_120_intervals() {
        assert_eq!(default_step(0), 60);
        assert_eq!(default_step(2 * 3_600_000), 60);
        assert_eq!(default_step(2 * 3_600_000 + 1), 300);
        assert_eq!(default_step(10 * 3_600_000), 300);
        assert_eq!(default_step(30 * 3_600_000), 900);
        assert_eq!(default_step(31 * 3_600_000), 3600);
        assert_eq!(default_step(400 * 3_600_000), 3600);
    }
}
