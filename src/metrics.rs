//! Process-wide figures for `/metrics`: requests by outcome and code, reply latency, limiter
//! wait, throttle events, requests in flight. Recorded by the engine on every attempt, rendered
//! in the Prometheus text format by [`Metrics::render`] (the store-derived gauges, contacts by
//! status per campaign, are appended by the server at scrape time).
//!
//! Cheap on the hot path: atomics for the histograms and gauges; one short `Mutex` for the
//! (outcome, code) counter map, never held across an `.await`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency and wait histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds.
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        header(out, name, "histogram", help);
        for (i, bound) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count();
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
    }
}

/// Upper bounds of the talk-time histogram, in seconds.
const TALK_BUCKETS: [u64; 10] = [5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600];

/// Talk time of answered calls (outcome records), in whole seconds.
#[derive(Debug, Default)]
pub struct TalkTime {
    counts: [AtomicU64; TALK_BUCKETS.len()],
    count: AtomicU64,
    sum_s: AtomicU64,
}

impl TalkTime {
    pub fn observe(&self, secs: u64) {
        for (i, bound) in TALK_BUCKETS.iter().enumerate() {
            if secs <= *bound {
                self.counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_s.fetch_add(secs, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String) {
        let name = "ccc_dialer_talk_time_seconds";
        header(
            out,
            name,
            "histogram",
            "Talk time of answered calls, from their call records (outcome tracking).",
        );
        for (i, bound) in TALK_BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{bound}\"}} {}",
                self.counts[i].load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(out, "{name}_sum {}", self.sum_s.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {count}");
    }
}

#[derive(Debug, Default)]
pub struct Metrics {
    /// (outcome, code) → requests. Outcome: placed, error, not_sent, in_doubt.
    requests: Mutex<BTreeMap<(&'static str, String), u64>>,
    pub latency: Histogram,
    pub limiter_wait: Histogram,
    pub throttle_events: AtomicU64,
    pub in_flight: AtomicU64,
    /// Outcome class → call records written by this process.
    outcomes: Mutex<BTreeMap<String, u64>>,
    pub talk_time: TalkTime,
}

impl Metrics {
    pub fn request(&self, outcome: &'static str, code: &str) {
        let mut m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        *m.entry((outcome, code.to_string())).or_insert(0) += 1;
    }

    /// A call's outcome became known (with its talk time when it was answered).
    pub fn outcome(&self, class: &str, talk_seconds: Option<i64>) {
        {
            let mut m = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
            *m.entry(class.to_string()).or_insert(0) += 1;
        }
        if class == "answered" {
            if let Some(t) = talk_seconds.filter(|t| *t >= 0) {
                self.talk_time.observe(t as u64);
            }
        }
    }

    /// Total requests recorded with this outcome.
    pub fn requests_with(&self, outcome: &str) -> u64 {
        let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
        m.iter()
            .filter(|((o, _), _)| *o == outcome)
            .map(|(_, n)| n)
            .sum()
    }

    /// The engine's figures in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        header(
            out,
            "ccc_dialer_requests_total",
            "counter",
            "CreateAIAgentCall requests by outcome and error code.",
        );
        {
            let m = self.requests.lock().unwrap_or_else(|e| e.into_inner());
            for ((outcome, code), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "ccc_dialer_requests_total{{outcome=\"{outcome}\",code=\"{}\"}} {n}",
                    label(code)
                );
            }
        }
        self.latency.render(
            out,
            "ccc_dialer_request_duration_seconds",
            "Time from sending a request to its reply (or failure).",
        );
        self.limiter_wait.render(
            out,
            "ccc_dialer_limiter_wait_seconds",
            "Time a request waited for the rate limiter (pace and window).",
        );
        header(
            out,
            "ccc_dialer_throttle_events_total",
            "counter",
            "RequestLimitExceeded replies (each slows the limiter down).",
        );
        let _ = writeln!(
            out,
            "ccc_dialer_throttle_events_total {}",
            self.throttle_events.load(Ordering::Relaxed)
        );
        header(
            out,
            "ccc_dialer_in_flight",
            "gauge",
            "Requests sent and waiting for their reply.",
        );
        let _ = writeln!(
            out,
            "ccc_dialer_in_flight {}",
            self.in_flight.load(Ordering::Relaxed)
        );
        header(
            out,
            "ccc_dialer_call_outcomes_total",
            "counter",
            "Call outcomes learned by this process, by class (answered, not_answered, busy, …, no_record).",
        );
        {
            let m = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
            for (class, n) in m.iter() {
                let _ = writeln!(
                    out,
                    "ccc_dialer_call_outcomes_total{{outcome=\"{}\"}} {n}",
                    label(class)
                );
            }
        }
        self.talk_time.render(out);
    }
}

/// The `# HELP` and `# TYPE` lines of one metric.
pub fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A label value escaped for the text format.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_counts_render() {
        let m = Metrics::default();
        m.latency.observe(Duration::from_millis(30));
        m.latency.observe(Duration::from_millis(400));
        m.request("placed", "");
        m.request("error", "FailedOperation.CallOutFailed");
        m.request("error", "FailedOperation.CallOutFailed");
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("ccc_dialer_request_duration_seconds_bucket{le=\"0.05\"} 1"));
        assert!(out.contains("ccc_dialer_request_duration_seconds_bucket{le=\"0.5\"} 2"));
        assert!(out.contains("ccc_dialer_request_duration_seconds_count 2"));
        assert!(out.contains(
            "ccc_dialer_requests_total{outcome=\"error\",code=\"FailedOperation.CallOutFailed\"} 2"
        ));
        assert_eq!(m.requests_with("error"), 2);
    }

    #[test]
    fn outcomes_count_by_class_and_answered_talk_time_fills_the_histogram() {
        let m = Metrics::default();
        m.outcome("answered", Some(42));
        m.outcome("answered", Some(3));
        m.outcome("busy", Some(0));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("ccc_dialer_call_outcomes_total{outcome=\"answered\"} 2"));
        assert!(out.contains("ccc_dialer_call_outcomes_total{outcome=\"busy\"} 1"));
        assert!(out.contains("ccc_dialer_talk_time_seconds_bucket{le=\"5\"} 1"));
        assert!(out.contains("ccc_dialer_talk_time_seconds_bucket{le=\"60\"} 2"));
        assert!(out.contains("ccc_dialer_talk_time_seconds_sum 45"));
        assert!(out.contains("ccc_dialer_talk_time_seconds_count 2"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
