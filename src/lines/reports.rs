//! Outcome tracking's reports of calls' ends (a call record polled from `DescribeTelCdr`, or
//! pushed), as the lines estimate uses them.
//!
//! With outcome tracking on, every call placed will be reported ended. So a call not reported
//! yet is still going, or ended so recently that its report is still on its way: records are
//! visible some time after the call (seconds), the poller sees them at its next check, and a
//! record's end is a whole second (rounded down). [`Reports`] learns that lag from the reports
//! themselves (when each was seen, less the end it gives) and keeps the longest of the latest
//! ones: a call unreported at `now` ended no earlier than `now - lag` (its line is busy, or
//! freed within the lag). The estimate conditions each such call's end on it
//! ([`super::Estimate`]).
//!
//! Pure: times are seconds on the caller's steady clock.

use std::collections::VecDeque;

/// Lags remembered (the longest of these is used).
pub const KEPT: usize = 32;

/// A report's end is a whole second, rounded down: the call ended within the second after it.
/// The middle of that second is its best single value (for the call's length).
pub const WHOLE_SECOND_MIDDLE: f64 = 0.5;

/// A report later than this many times the longest call the estimate believes likely (see
/// [`super::estimate::Estimate`]) is taken as never coming (a record lost, a call the service
/// kept no record of): its call's end is guessed again as without reports.
pub const GIVE_UP_FACTOR: f64 = 2.0;

#[derive(Debug, Clone, Default)]
pub struct Reports {
    lags: VecDeque<f64>,
}

impl Reports {
    /// A report seen at `seen` of a call whose end it gives as `end` (rounded down to a whole
    /// second: the lag includes the rounding).
    pub fn learn(&mut self, seen: f64, end: f64) {
        let lag = seen - end;
        if !lag.is_finite() || lag < 0.0 {
            return;
        }
        self.lags.push_back(lag);
        if self.lags.len() > KEPT {
            self.lags.pop_front();
        }
    }

    /// The longest lag of the latest [`KEPT`] reports; `None` before the first report.
    pub fn lag(&self) -> Option<f64> {
        self.lags.iter().copied().reduce(f64::max)
    }

    /// How many reports were learned from (at most [`KEPT`] remembered).
    pub fn len(&self) -> usize {
        self.lags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lag_is_the_longest_of_the_latest_reports() {
        let mut r = Reports::default();
        assert_eq!(r.lag(), None, "nothing known before the first report");
        r.learn(12.0, 10.0);
        r.learn(13.5, 10.0);
        r.learn(20.0, 19.0);
        assert_eq!(r.lag(), Some(3.5));
        // A report dated after it was seen (another clock) teaches nothing.
        r.learn(5.0, 9.0);
        assert_eq!(r.len(), 3);
        // The long lag is forgotten after KEPT shorter ones.
        for i in 0..KEPT {
            r.learn(100.0 + i as f64, 99.0 + i as f64);
        }
        assert_eq!(r.lag(), Some(1.0));
    }
}
