//! A campaign's rate and time to completion as `serve` shows them (the campaign view, the
//! console). Pure: the store's figures and the clock come in as arguments.
//!
//! The rate is measured over the last [`WINDOW_MS`], or since this process began dialling the
//! campaign (its start or last resume) when that is more recent, and between the first request
//! of that span and now: `(n - 1) / (now - first)`. A steady campaign reads its true rate from
//! its third request on, instead of the requests of a few seconds spread over a fixed 10 s
//! (18/s read as 5/s, and an ETA four times too long, for the first seconds after a start).

/// The longest span the rate is measured over, in ms.
pub const WINDOW_MS: i64 = 10_000;

/// The shortest span a rate is computed over (two requests a millisecond apart are not a rate
/// of 1000/s), in ms.
const MIN_SPAN_MS: i64 = 100;

/// Where the span the rate is measured over starts: [`WINDOW_MS`] ago, or when this process
/// began dialling the campaign if that is more recent.
pub fn window_start(now_ms: i64, dialling_since: Option<i64>) -> i64 {
    let window = now_ms - WINDOW_MS;
    dialling_since.map_or(window, |since| since.max(window))
}

/// Requests per second from `sent` requests since [`window_start`] `start_ms`, the first of
/// them sent at `first_ms`; never above `cap` (the limiter's own guarantee).
pub fn rate(sent: u64, first_ms: Option<i64>, start_ms: i64, now_ms: i64, cap: f64) -> f64 {
    let per_second = match (sent, first_ms) {
        (0, _) | (_, None) => 0.0,
        // One request: one over the time dialled so far (at least a second).
        (1, Some(_)) => 1000.0 / (now_ms - start_ms).max(1000) as f64,
        (n, Some(first)) => (n - 1) as f64 * 1000.0 / (now_ms - first).max(MIN_SPAN_MS) as f64,
    };
    let r = per_second.min(cap.max(0.0));
    (r * 10.0).round() / 10.0
}

/// Seconds until the `open` contacts (pending and in flight) are final at `rate`; `None` when
/// the campaign is not dialling (or nothing was sent lately to measure a rate by).
pub fn eta(open: u64, rate: f64, dialling: bool) -> Option<f64> {
    (dialling && rate > 0.0).then(|| (open as f64 / rate * 10.0).round() / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A campaign sending 18/s from `start`: the requests sent by `now` (the first at `start`).
    fn steady(start: i64, now: i64, from: i64) -> (u64, Option<i64>) {
        let sends: Vec<i64> = (0..)
            .map(|i| start + i * 1000 / 18)
            .take_while(|t| *t <= now)
            .filter(|t| *t >= from)
            .collect();
        (sends.len() as u64, sends.first().copied())
    }

    #[test]
    fn right_after_a_start_the_rate_and_eta_are_the_real_ones() {
        // 450 contacts at 18/s: 25 s. Two seconds in, the view says ~18/s and ~23 s to go.
        let start = 1_000_000;
        for secs in [1, 2, 5, 9, 12, 20] {
            let now = start + secs * 1000;
            let from = window_start(now, Some(start));
            let (sent, first) = steady(start, now, from);
            let r = rate(sent, first, from, now, 20.0);
            assert!((17.0..=19.0).contains(&r), "{secs} s in: {r}/s");
            let open = 450 - (secs as u64 * 18).min(450);
            let e = eta(open, r, true).unwrap();
            let left = 25.0 - secs as f64;
            assert!(
                (e - left).abs() <= left * 0.1 + 0.5,
                "{secs} s in: ETA {e} s, really {left} s"
            );
        }
    }

    #[test]
    fn a_resume_measures_from_the_resume_not_over_the_pause() {
        // Dialled at 18/s, paused for 8 s, resumed 1 s ago: the sends before the pause are
        // outside the span, and the pause does not dilute the rate.
        let resumed = 2_000_000;
        let now = resumed + 1000;
        let from = window_start(now, Some(resumed));
        assert_eq!(from, resumed);
        let (sent, first) = steady(resumed, now, from);
        let r = rate(sent, first, from, now, 20.0);
        assert!((17.0..=19.0).contains(&r), "{r}");
    }

    #[test]
    fn nothing_sent_reads_zero_and_no_eta_and_nonsense_is_bounded() {
        let now = 5_000_000;
        assert_eq!(rate(0, None, now - WINDOW_MS, now, 20.0), 0.0);
        assert_eq!(eta(100, 0.0, true), None);
        assert_eq!(eta(100, 5.0, false), None);
        // One request 50 ms after the start: one per second at most, not 20/s.
        assert_eq!(rate(1, Some(now - 10), now - 50, now, 20.0), 1.0);
        // Two requests a millisecond apart: bounded by the shortest span, then the cap.
        assert_eq!(rate(2, Some(now - 1), now - 50, now, 20.0), 10.0);
        assert_eq!(rate(5, Some(now - 1), now - 50, now, 20.0), 20.0);
        // A campaign that stopped sending 5 s ago decays instead of showing its old rate.
        let stale = rate(18, Some(now - 6000), now - WINDOW_MS, now, 20.0);
        assert!(stale < 3.0, "{stale}");
        // A paused campaign (no runner) is measured over the plain window.
        assert_eq!(window_start(now, None), now - WINDOW_MS);
        // A runner older than the window: the window.
        assert_eq!(window_start(now, Some(now - 60_000)), now - WINDOW_MS);
    }
}
