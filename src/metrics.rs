//! Process-wide figures for `/metrics`: requests by outcome and code, reply latency, limiter
//! wait, throttle events, requests in flight, call outcomes and talk time. Recorded by the
//! engine on every attempt into `prometheus-client` metrics; [`Metrics::register`] adds them
//! to the registry the server encodes at each scrape (beside the figures it reads at scrape
//! time: the agents' lines, the limiter's pace, contacts by status per campaign).
//!
//! Cheap on the hot path: atomic counters and gauges; a histogram observation takes one short
//! lock, never held across an `.await`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram;
use prometheus_client::registry::Registry;

/// Upper bounds of the latency and wait histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the talk-time histogram, in seconds.
const TALK_BUCKETS: [f64; 10] = [
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0,
];

/// A histogram of durations, in seconds.
#[derive(Debug, Clone)]
pub struct Histogram(histogram::Histogram);

impl Histogram {
    fn with(buckets: &[f64]) -> Histogram {
        Histogram(histogram::Histogram::new(buckets.iter().copied()))
    }

    pub fn observe(&self, d: Duration) {
        self.0.observe(d.as_secs_f64());
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    outcome: &'static str,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Debug, Clone)]
pub struct Metrics {
    /// Requests by outcome (placed, error, not_sent, in_doubt) and code.
    requests: Family<RequestLabels, Counter>,
    pub latency: Histogram,
    pub limiter_wait: Histogram,
    /// RequestLimitExceeded replies.
    pub throttle_events: Counter,
    /// Requests sent and waiting for their reply.
    pub in_flight: Gauge,
    /// Outcome class → calls whose outcome this process learned, by their class now (a record
    /// that corrects a session's class moves it).
    outcomes: Family<OutcomeLabels, Gauge>,
    talk_time: Histogram,
    /// When these figures began (Unix ms): a correction of a record learned before then
    /// counts the call's new class only (its old one was never counted here).
    since_ms: i64,
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics {
            requests: Family::default(),
            latency: Histogram::with(&BUCKETS),
            limiter_wait: Histogram::with(&BUCKETS),
            throttle_events: Counter::default(),
            in_flight: Gauge::default(),
            outcomes: Family::default(),
            talk_time: Histogram::with(&TALK_BUCKETS),
            since_ms: crate::times::now_ms(),
        }
    }
}

impl Metrics {
    pub fn request(&self, outcome: &'static str, code: &str) {
        self.requests
            .get_or_create(&RequestLabels {
                outcome,
                code: code.to_string(),
            })
            .inc();
    }

    /// A record arrived (see [`crate::store::Arrival`]): [`Metrics::outcome`], moving the call
    /// from the class it had when this process counted that.
    pub fn arrival(&self, a: &crate::store::Arrival) {
        let was = a
            .was
            .as_ref()
            .filter(|(_, at)| *at >= self.since_ms)
            .map(|(class, _)| class.as_str());
        self.outcome(&a.record.class, was, a.record.duration_s);
    }

    /// A call's outcome became known (with its talk time when it was answered), or, with
    /// `was`, a record corrected the class the call had (the poll's call record is the
    /// authority over a push; a late record replaces a give-up): the call moves from `was` to
    /// `class`. Talk time is observed when a call becomes answered.
    pub fn outcome(&self, class: &str, was: Option<&str>, talk_seconds: Option<i64>) {
        if was == Some(class) {
            // Corrected within its class: counted already.
            return;
        }
        if let Some(was) = was {
            self.outcomes
                .get_or_create(&OutcomeLabels {
                    outcome: was.to_string(),
                })
                .dec();
        }
        self.outcomes
            .get_or_create(&OutcomeLabels {
                outcome: class.to_string(),
            })
            .inc();
        if class == "answered" {
            if let Some(t) = talk_seconds.filter(|t| *t >= 0) {
                self.talk_time.observe(Duration::from_secs(t as u64));
            }
        }
    }

    /// Adds the engine's figures to `registry` (the metrics are shared, not copied: what the
    /// engine records later is in every scrape).
    pub fn register(&self, registry: &mut Registry) {
        // prometheus-client adds `_total` to a counter's name and a full stop to its help.
        registry.register(
            "ccc_dialer_requests",
            "CreateAIAgentCall requests by outcome and error code",
            self.requests.clone(),
        );
        registry.register(
            "ccc_dialer_request_duration_seconds",
            "Time from sending a request to its reply (or failure)",
            self.latency.0.clone(),
        );
        registry.register(
            "ccc_dialer_limiter_wait_seconds",
            "Time a request waited for the rate limiter (pace and window)",
            self.limiter_wait.0.clone(),
        );
        registry.register(
            "ccc_dialer_throttle_events",
            "RequestLimitExceeded replies (each slows the limiter down)",
            self.throttle_events.clone(),
        );
        registry.register(
            "ccc_dialer_in_flight",
            "Requests sent and waiting for their reply",
            self.in_flight.clone(),
        );
        registry.register(
            "ccc_dialer_call_outcomes",
            "Calls whose outcome this process learned, by their class now (answered, not_answered, busy, …, no_record; a poll's call record correcting a push moves a call)",
            self.outcomes.clone(),
        );
        registry.register(
            "ccc_dialer_talk_time_seconds",
            "Talk time of answered calls, from their call records (outcome tracking)",
            self.talk_time.0.clone(),
        );
    }
}

/// `registry` in the Prometheus text format (version 0.0.4, [`CONTENT_TYPE`]).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail; a metric that could not encode would be a bug here.
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, registry) {
        tracing::error!(error = %e, "metrics: cannot encode");
    }
    out
}

/// The `Content-Type` of [`encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[cfg(test)]
mod tests {
    use super::*;

    fn render(m: &Metrics) -> String {
        let mut r = Registry::default();
        m.register(&mut r);
        encode(&r)
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_render() {
        let m = Metrics::default();
        m.latency.observe(Duration::from_millis(30));
        m.latency.observe(Duration::from_millis(400));
        m.request("placed", "");
        m.request("error", "FailedOperation.CallOutFailed");
        m.request("error", "FailedOperation.CallOutFailed");
        m.throttle_events.inc();
        let out = render(&m);
        assert!(
            out.contains("ccc_dialer_request_duration_seconds_bucket{le=\"0.05\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_request_duration_seconds_bucket{le=\"0.5\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_request_duration_seconds_bucket{le=\"+Inf\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_request_duration_seconds_count 2"),
            "{out}"
        );
        assert!(out.contains(
            "ccc_dialer_requests_total{outcome=\"error\",code=\"FailedOperation.CallOutFailed\"} 2"
        ), "{out}");
        assert!(
            out.contains("ccc_dialer_requests_total{outcome=\"placed\",code=\"\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE ccc_dialer_requests_total counter"),
            "{out}"
        );
        assert!(out.contains("ccc_dialer_throttle_events_total 1"), "{out}");
        assert!(out.contains("ccc_dialer_in_flight 0"), "{out}");
        assert!(
            out.contains(
                "# HELP ccc_dialer_in_flight Requests sent and waiting for their reply.\n"
            ),
            "one full stop: {out}"
        );
    }

    #[test]
    fn outcomes_count_by_class_and_answered_talk_time_fills_the_histogram() {
        let m = Metrics::default();
        m.outcome("answered", None, Some(42));
        m.outcome("answered", None, Some(3));
        m.outcome("busy", None, Some(0));
        let out = render(&m);
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"answered\"} 2"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"busy\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("# TYPE ccc_dialer_call_outcomes gauge"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_talk_time_seconds_bucket{le=\"5\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_talk_time_seconds_bucket{le=\"60\"} 2"),
            "{out}"
        );
        assert!(out.contains("ccc_dialer_talk_time_seconds_sum 45"), "{out}");
        assert!(
            out.contains("ccc_dialer_talk_time_seconds_count 2"),
            "{out}"
        );
    }

    #[test]
    fn a_correction_moves_a_call_between_classes_and_one_learned_before_start_only_counts_anew() {
        let m = Metrics::default();
        let arrival = |class: &str, was: Option<(&str, i64)>| crate::store::Arrival {
            record: crate::store::OutcomeRecord {
                session_id: "s-1".into(),
                class: class.into(),
                duration_s: Some(20),
                ..Default::default()
            },
            was: was.map(|(c, at)| (c.to_string(), at)),
            redialled: false,
        };
        let now = m.since_ms + 1;
        m.arrival(&arrival("not_answered", None));
        m.arrival(&arrival("busy", Some(("not_answered", now))));
        let out = render(&m);
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"busy\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"not_answered\"} 0"),
            "{out}"
        );
        // Corrected to answered: counted there, with its talk time; within its class: nothing.
        m.arrival(&arrival("answered", Some(("busy", now))));
        m.arrival(&arrival("answered", Some(("answered", now))));
        let out = render(&m);
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"busy\"} 0"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"answered\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("ccc_dialer_talk_time_seconds_count 1"),
            "{out}"
        );
        // A push learned by an earlier process, corrected now: never counted here, no debt.
        m.arrival(&arrival("voicemail", Some(("rejected", m.since_ms - 1))));
        let out = render(&m);
        assert!(
            out.contains("ccc_dialer_call_outcomes{outcome=\"voicemail\"} 1"),
            "{out}"
        );
        assert!(!out.contains("outcome=\"rejected\""), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::default();
        m.request("error", "a\"b\\c\nd");
        let out = render(&m);
        assert!(out.contains("code=\"a\\\"b\\\\c\\nd\"} 1"), "{out}");
    }
}
