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
//! A sharper statement comes from the checks themselves: a check that asked about a call and
//! did not find its record says the record was not visible when the check was sent. Records
//! become visible some time after the start of the whole second their call ended in (the
//! record's `EndedTimestamp`); [`Reports::missed`] learns a floor of that time from each record
//! a check missed before another found it (the check's send less the end it gives: the record
//! was not visible yet, so it takes longer than that), and keeps the longest of the latest.
//! A call missed by a check sent at `q` then ended no earlier than the whole second after
//! `q` less that time ([`super::Estimate`]). The longest lag above counts the time from a
//! record's visibility to the check that finds it (up to a check's interval, plus the reply)
//! against every call not reported; this counts only what the service takes, so a call
//! missed a moment ago is known going until much later than `now - lag` says. Without it a
//! call that ended within the lag is believed possibly ended by two counts at once: its report
//! frees its line exactly, and the calls not reported are believed to have ended in the same
//! span, though the check that missed them says they did not (the estimate believed about one
//! call fewer active than the stand-in had, and sent into busy lines).
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
    /// Per record a check missed before: how long after its end's whole second it was still
    /// not visible.
    hidden: VecDeque<f64>,
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

    /// A report whose end is `end` (rounded down to a whole second) was missed by a check sent
    /// at `asked`: the record was not visible yet then.
    pub fn missed(&mut self, asked: f64, end: f64) {
        let hidden = asked - end;
        if !hidden.is_finite() {
            return;
        }
        self.hidden.push_back(hidden.max(0.0));
        if self.hidden.len() > KEPT {
            self.hidden.pop_front();
        }
    }

    /// How long after the start of its end's whole second a record may still be invisible
    /// (the longest of the latest [`KEPT`] records missed before they were found); `None`
    /// before a record a check missed was found.
    pub fn hidden(&self) -> Option<f64> {
        self.hidden.iter().copied().reduce(f64::max)
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

    #[test]
    fn the_time_a_record_stays_hidden_is_the_longest_a_check_missed_it() {
        let mut r = Reports::default();
        assert_eq!(
            r.hidden(),
            None,
            "nothing known before a missed record is found"
        );
        // Ended in the second from 10: a check sent at 10.75 missed it (a later one found it).
        r.missed(10.75, 10.0);
        r.missed(21.25, 20.0);
        assert_eq!(r.hidden(), Some(1.25));
        for i in 0..KEPT {
            r.missed(100.5 + i as f64, 100.0 + i as f64);
        }
        assert_eq!(r.hidden(), Some(0.5), "the latest records only");
    }
}
