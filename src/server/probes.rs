//! What the orchestrator asks: `/healthz` (the process answers), `/readyz` (the store takes a
//! durable write, the config was valid at start, the host clock agrees with the service's; the
//! endpoint's outage, if any, is reported without failing readiness), and
//! `/metrics` (Prometheus text: the engine's figures plus contacts by status per campaign).

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::Service;
use crate::dispatch::now_ms;
use crate::metrics::{header, label};

/// A host clock further than this from the service's makes signatures expire (the service
/// allows 300 s); readiness fails before that happens.
pub const MAX_CLOCK_SKEW_SECS: i64 = 240;

pub async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// The clock check: `(ok, detail)` from the skew seen on the last reply (if any) and the
/// local clock's plausibility.
pub fn clock_check(skew: Option<i64>, now_ms: i64) -> (bool, String) {
    // Before 2024 the clock is certainly wrong (an unset RTC starts in 1970).
    if now_ms < 1_704_067_200_000 {
        return (
            false,
            format!("host clock reads {now_ms} ms since 1970: not set"),
        );
    }
    match skew {
        Some(s) if s.abs() > MAX_CLOCK_SKEW_SECS => (
            false,
            format!("host clock is {s} s away from the service's: signatures would expire (limit 300 s)"),
        ),
        Some(s) => (true, format!("within {} s of the service's", s.abs())),
        None => (true, "no reply from the service yet to compare with".into()),
    }
}

pub async fn readyz(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    let store = match svc.store.check_writable(now_ms()).await {
        Ok(()) => (true, "writable".to_string()),
        Err(e) => (false, e.to_string()),
    };
    let clock = clock_check(svc.campaigns.base().client.clock_skew(), now_ms());
    let ready = store.0 && clock.0;
    // Reported, but it does not make the process unready: during an outage the API must stay
    // reachable (through a Service that routes only to ready pods) to steer the campaigns.
    let endpoint = match svc.campaigns.base().outage.current() {
        Some(o) => (false, o.describe()),
        None => (
            true,
            "reachable (no request refused before it left)".to_string(),
        ),
    };
    // Reported like the endpoint: dialling goes on when outcome tracking stops.
    let outcomes = match &svc.outcomes {
        None => (true, "not enabled ([outcomes] enabled = false)".to_string()),
        Some(t) => match t.stopped() {
            Some(why) => (false, why),
            None => (true, "tracking call outcomes (DescribeTelCdr)".to_string()),
        },
    };
    let body = json!({
        "ready": ready,
        "checks": {
            "store": {"ok": store.0, "detail": store.1},
            "config": {"ok": true, "detail": format!("{} validated at start", svc.config().path.display())},
            "clock": {"ok": clock.0, "detail": clock.1},
            "endpoint": {"ok": endpoint.0, "detail": endpoint.1},
            "outcomes": {"ok": outcomes.0, "detail": outcomes.1},
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

pub async fn metrics(State(svc): State<Arc<Service>>) -> impl IntoResponse {
    let engine = svc.campaigns.base();
    let mut out = String::new();
    engine.metrics.render(&mut out);
    engine.lines.render(&mut out);
    header(
        &mut out,
        "ccc_dialer_limiter_rate",
        "gauge",
        "Current pace of the shared limiter in requests per second.",
    );
    let _ = writeln!(
        out,
        "ccc_dialer_limiter_rate {}",
        engine.limiter.current_rate()
    );
    let status = match contact_gauges(&svc, &mut out).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot read contact counts");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (
        status,
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
}

/// Contacts by status per campaign, and in doubt over all of them: counted in the store at
/// most once per `server.metrics_refresh`, whatever the number of scrapers; every other scrape
/// is answered from memory.
async fn contact_gauges(svc: &Service, out: &mut String) -> Result<(), crate::store::StoreError> {
    let refresh = svc.config().server.metrics_refresh;
    let mut cached = svc.gauges.lock().await;
    let fresh = cached
        .as_ref()
        .is_some_and(|(at, _)| at.elapsed() < refresh);
    if !fresh {
        let mut text = String::new();
        count_contacts(svc, &mut text).await?;
        svc.recounts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *cached = Some((tokio::time::Instant::now(), text));
    }
    if let Some((_, text)) = cached.as_ref() {
        out.push_str(text);
    }
    header(
        out,
        "ccc_dialer_contact_recounts_total",
        "counter",
        "Times /metrics counted contacts in the store (at most once per server.metrics_refresh).",
    );
    let _ = writeln!(
        out,
        "ccc_dialer_contact_recounts_total {}",
        svc.recounts.load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(())
}

async fn count_contacts(svc: &Service, out: &mut String) -> Result<(), crate::store::StoreError> {
    header(
        out,
        "ccc_dialer_contacts",
        "gauge",
        "Contacts by status per campaign.",
    );
    let mut in_doubt = 0;
    for c in svc.store.campaigns().await? {
        for (status, n) in svc.counts(&c).await? {
            if status == crate::contact::Status::Unknown {
                in_doubt += n;
            }
            let _ = writeln!(
                out,
                "ccc_dialer_contacts{{campaign=\"{}\",status=\"{status}\"}} {n}",
                label(&c.name)
            );
        }
    }
    header(
        out,
        "ccc_dialer_in_doubt_contacts",
        "gauge",
        "Contacts whose reply was lost (unknown): check before calling again.",
    );
    let _ = writeln!(out, "ccc_dialer_in_doubt_contacts {in_doubt}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clock_far_from_the_service_or_unset_is_not_ready() {
        let now = 1_780_000_000_000;
        assert!(clock_check(None, now).0);
        assert!(clock_check(Some(3), now).0);
        assert!(clock_check(Some(-240), now).0);
        let (ok, why) = clock_check(Some(-600), now);
        assert!(!ok);
        assert!(why.contains("-600 s away"), "{why}");
        assert!(!clock_check(Some(0), 0).0);
    }
}
