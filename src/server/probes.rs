//! What the orchestrator asks: `/healthz` (the process answers), `/readyz` (the store takes a
//! durable write within [`STORE_PATIENCE`]: a PostgreSQL store that is unreachable makes the
//! replica unready, the config was valid at start, the host clock agrees with the service's; the
//! endpoint's outage, if any, is reported without failing readiness), and
//! `/metrics` (Prometheus text: the engine's figures plus contacts by status per campaign).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use super::Service;
use crate::dispatch::now_ms;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A host clock further than this from the service's makes signatures expire (the service
/// allows 300 s); readiness fails before that happens.
pub const MAX_CLOCK_SKEW_SECS: i64 = 240;

/// How long readiness waits for the store's test write before it says the store is not
/// answering (below the probes' usual 5 s timeout in `samples/kubernetes.yaml`).
pub const STORE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

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
    // A database that stopped answering (a partition, a host gone) must make the replica
    // unready, not hang the probe until the orchestrator's own timeout.
    let check = tokio::time::timeout(STORE_PATIENCE, svc.store.check_writable(now_ms()));
    let store = match check.await {
        Ok(Ok(())) => (true, "writable".to_string()),
        Ok(Err(e)) => (false, e.to_string()),
        Err(_) => (
            false,
            format!(
                "{}: no answer to a write within {} s",
                svc.store.path().display(),
                STORE_PATIENCE.as_secs()
            ),
        ),
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
    // One scrape at a time: the one that finds the contact counts stale counts them while the
    // others wait for its figures, and the scrape-time gauges are set and read together.
    let mut scrape = svc.scrape.lock().await;
    scrape.limiter_rate.set(engine.limiter.current_rate());
    scrape.lines(&engine.lines.snapshot());
    let status = match scrape.contacts(&svc).await {
        Ok(()) => StatusCode::OK,
        Err(e) => {
            tracing::error!(error = %e, "metrics: cannot read contact counts");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    let out = crate::metrics::encode(&scrape.registry);
    (
        status,
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        out,
    )
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabel {
    agent: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLinesLabels {
    agent: u64,
    learned: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ContactLabels {
    campaign: String,
    status: String,
}

/// What `/metrics` serves: the engine's figures (shared with it) and the gauges set at scrape
/// time. Contacts by status are counted in the store at most once per
/// `server.metrics_refresh`, whatever the number of scrapers; every other scrape is answered
/// from memory.
#[derive(Debug)]
pub struct Scrape {
    registry: Registry,
    limiter_rate: Gauge<f64, AtomicU64>,
    agent_lines: Family<AgentLinesLabels, Gauge>,
    agent_active: Family<AgentLabel, Gauge<f64, AtomicU64>>,
    agent_hold: Family<AgentLabel, Gauge<f64, AtomicU64>>,
    capacity_refusals: Family<AgentLabel, Counter>,
    contacts: Family<ContactLabels, Gauge>,
    in_doubt: Gauge,
    recounts: Counter,
    counted_at: Option<tokio::time::Instant>,
}

impl Scrape {
    pub fn new(engine: &crate::metrics::Metrics) -> Scrape {
        let mut registry = Registry::default();
        engine.register(&mut registry);
        let s = Scrape {
            registry: Registry::default(),
            limiter_rate: Gauge::default(),
            agent_lines: Family::default(),
            agent_active: Family::default(),
            agent_hold: Family::default(),
            capacity_refusals: Family::default(),
            contacts: Family::default(),
            in_doubt: Gauge::default(),
            recounts: Counter::default(),
            counted_at: None,
        };
        // prometheus-client adds `_total` to a counter's name and a full stop to its help.
        registry.register(
            "ccc_dialer_agent_lines",
            "Lines of an AI agent in force (configured, or learned from capacity refusals; absent while unknown)",
            s.agent_lines.clone(),
        );
        registry.register(
            "ccc_dialer_agent_active_calls",
            "Calls believed to hold a line of an AI agent now (requests awaiting a reply included)",
            s.agent_active.clone(),
        );
        registry.register(
            "ccc_dialer_agent_hold_seconds",
            "Median time a call is believed to hold a line of an AI agent",
            s.agent_hold.clone(),
        );
        registry.register(
            "ccc_dialer_capacity_refusals",
            "Requests refused because every line of the AI agent was busy (AcquireQuota and kin)",
            s.capacity_refusals.clone(),
        );
        registry.register(
            "ccc_dialer_limiter_rate",
            "Current pace of the shared limiter in requests per second",
            s.limiter_rate.clone(),
        );
        registry.register(
            "ccc_dialer_contacts",
            "Contacts by status per campaign",
            s.contacts.clone(),
        );
        registry.register(
            "ccc_dialer_in_doubt_contacts",
            "Contacts whose reply was lost (unknown): check before calling again",
            s.in_doubt.clone(),
        );
        registry.register(
            "ccc_dialer_contact_recounts",
            "Times /metrics counted contacts in the store (at most once per server.metrics_refresh)",
            s.recounts.clone(),
        );
        Scrape { registry, ..s }
    }

    /// The agents' lines as the limiter sees them now.
    fn lines(&self, agents: &[crate::lines::AgentLines]) {
        self.agent_lines.clear();
        self.agent_active.clear();
        self.agent_hold.clear();
        self.capacity_refusals.clear();
        for a in agents {
            let agent = AgentLabel { agent: a.agent };
            if let Some(n) = a.lines {
                self.agent_lines
                    .get_or_create(&AgentLinesLabels {
                        agent: a.agent,
                        learned: a.learned,
                    })
                    .set(i64::from(n));
            }
            self.agent_active.get_or_create(&agent).set(a.active);
            self.agent_hold.get_or_create(&agent).set(a.hold_seconds);
            self.capacity_refusals
                .get_or_create(&agent)
                .inc_by(a.capacity_refusals);
        }
    }

    /// Contacts by status per campaign, and in doubt over all of them, counted again when the
    /// last count is older than `server.metrics_refresh`.
    async fn contacts(&mut self, svc: &Service) -> Result<(), crate::store::StoreError> {
        let refresh = svc.config().server.metrics_refresh;
        if self.counted_at.is_some_and(|at| at.elapsed() < refresh) {
            return Ok(());
        }
        let mut counts = vec![];
        let mut in_doubt = 0;
        for c in svc.store.campaigns().await? {
            for (status, n) in svc.counts(&c).await? {
                if status == crate::contact::Status::Unknown {
                    in_doubt += n;
                }
                counts.push((
                    ContactLabels {
                        campaign: c.name.clone(),
                        status: status.to_string(),
                    },
                    n,
                ));
            }
        }
        self.contacts.clear();
        for (labels, n) in counts {
            self.contacts
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.in_doubt
            .set(i64::try_from(in_doubt).unwrap_or(i64::MAX));
        self.recounts.inc();
        self.counted_at = Some(tokio::time::Instant::now());
        Ok(())
    }
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
