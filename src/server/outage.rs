//! `serve` during an endpoint outage: the breaker ([`crate::outage`]) stops every campaign's
//! sending; this task keeps the store telling the truth about it. When the endpoint becomes
//! unreachable, every active campaign shows `paused` with "endpoint unreachable since …, next
//! probe at …" as its reason (updated at each failed probe); when a probe gets through, the
//! campaigns paused that way are resumed. An operator's own pause is never undone here.
//!
//! The runners are not stopped for an outage: they wait on the breaker, and one of them sends
//! the probe. After a restart during an outage, campaigns left paused for it are resumed (and
//! paused again if the endpoint is still down).

use std::sync::Arc;

use tokio::sync::watch;

use super::Service;
use crate::dispatch::Stop;
use crate::outage::Outage;

/// Every outage reason starts with this ([`Outage::describe`]).
pub const REASON_PREFIX: &str = "endpoint unreachable since";

/// Whether a campaign's reason says it was paused by an outage (and may be resumed by one).
pub fn is_outage_reason(reason: Option<&str>) -> bool {
    reason.is_some_and(|r| r.starts_with(REASON_PREFIX))
}

/// The reason a campaign paused by `o` shows.
pub fn reason(o: &Outage) -> String {
    format!(
        "{}; resumes by itself when the endpoint answers",
        o.describe()
    )
}

/// Follow the breaker until `stop` leaves [`Stop::Run`].
pub async fn supervise(svc: Arc<Service>, mut stop: watch::Receiver<Stop>) {
    let breaker = svc.campaigns.base().outage.clone();
    let mut rx = breaker.subscribe();
    loop {
        let current = rx.borrow_and_update().clone();
        if let Err(e) = svc.store.set_outage(current.clone()).await {
            tracing::warn!(error = %e, "cannot record the endpoint's outage in the store");
        }
        let steered = match &current {
            Some(o) => svc.campaigns.pause_for_outage(&reason(o)).await,
            None => svc.campaigns.resume_after_outage().await,
        };
        if let Err(e) = steered {
            tracing::error!(error = %e, "cannot record the campaigns' state for the endpoint's outage");
        }
        tokio::select! {
            changed = rx.changed() => if changed.is_err() { return },
            _ = stop.wait_for(|s| *s != Stop::Run) => return,
        }
    }
}
