//! A campaign's report, from the store alone (so it works after a `run` and beside a live
//! `serve`): totals by status and by error code, requests per contact, the rate achieved
//! against the cap, how long the campaign waited and why, and (once call outcomes are recorded)
//! reach and answer rates. `ccc-dialer report` prints it; `GET /v1/campaigns/{id}/report`
//! returns it as JSON. Times are given in UTC and in the campaign's zone.

use std::collections::{BTreeMap, VecDeque};

use jiff::tz::TimeZone;
use serde::Serialize;

use crate::store::{Campaign, Store, StoreError};

/// `meta` keys `run` and `serve` set when they start: the account's rate cap and the config's
/// calling zone (a campaign's own settings win over both).
pub const META_RATE: &str = "rate.requests_per_second";
pub const META_ZONE: &str = "calling.timezone";
/// The config's `campaign.max_rate` (empty: none), every campaign's cap unless its own is set.
pub const META_CAMPAIGN_RATE: &str = "campaign.max_rate";

/// A gap between two sends longer than this (or than three paced intervals, if longer) is a
/// pause, not sending: the rate while sending leaves it out.
const PAUSE_MS: i64 = 2_000;

/// An instant in UTC and in the campaign's zone.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Time {
    pub utc: String,
    pub local: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub campaign: CampaignPart,
    /// The zone `local` times are in (IANA name).
    pub zone: String,
    pub generated_at: Time,
    pub total: u64,
    /// Every status, zero included.
    pub by_status: BTreeMap<String, u64>,
    pub by_error_code: Vec<CodeCount>,
    /// How many contacts had 0, 1, 2, … requests sent.
    pub requests_per_contact: Vec<RequestsCount>,
    pub rate: RatePart,
    pub waiting: WaitingPart,
    pub outcomes: OutcomesPart,
}

#[derive(Debug, Clone, Serialize)]
pub struct CampaignPart {
    pub id: i64,
    pub name: String,
    pub state: String,
    pub reason: Option<String>,
    pub created_at: Time,
    /// Set when the campaign's contacts were deleted (`purge`, `[store] retain`): the counts
    /// are then empty.
    pub purged_at: Option<Time>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CodeCount {
    pub status: String,
    pub code: String,
    pub contacts: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RequestsCount {
    pub requests: u64,
    pub contacts: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RatePart {
    pub requests_sent: u64,
    pub first_sent: Option<Time>,
    pub last_sent: Option<Time>,
    /// Requests per second from the first send to the last (`null` under a second).
    pub average_per_second: Option<f64>,
    /// Seconds spent sending: the gaps between sends, pauses left out.
    pub sending_seconds: f64,
    /// Requests per second while sending (`null` under a second of sending).
    pub sending_per_second: Option<f64>,
    /// The most requests sent in any 1-second window.
    pub busiest_second: u64,
    /// The cap they are measured against: the campaign's `max_rate` (its settings', else the
    /// config's `campaign.max_rate`), else the account's
    /// `rate.requests_per_second` as `run`/`serve` last started with (`null`: not recorded).
    pub cap_per_second: Option<f64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitingPart {
    pub total_seconds: f64,
    pub by_reason: Vec<WaitReason>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitReason {
    /// Stable name (`window_closed`, `min_gap`, `outage`, `throttled`, …).
    pub reason: String,
    pub description: String,
    pub seconds: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutcomesPart {
    /// Whether any call record of this campaign's placed calls was recorded (`[outcomes]`
    /// enabled and records arrived).
    pub tracked: bool,
    pub note: String,
    /// Placed contacts by their latest call's outcome class (`answered`, `not_answered`, …).
    pub by_class: BTreeMap<String, u64>,
    /// Placed contacts whose latest call has no record yet.
    pub awaiting: u64,
    /// Answered among the placed contacts whose latest call ended with a record (`null`
    /// before any); every call, redials included, is counted by dial in `by_dial`.
    pub answer_rate: Option<f64>,
    pub by_dial: Vec<DialPart>,
}

/// One dial: every contact's first placed call is dial 1, its second dial 2, …
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DialPart {
    pub dial: u64,
    /// Placed calls at this dial.
    pub calls: u64,
    /// Of them, calls whose record says how they ended.
    pub ended: u64,
    pub answered: u64,
    /// `answered / ended` (`null` when none ended).
    pub answer_rate: Option<f64>,
    /// Contacts answered by this dial or an earlier one, over the contacts placed at least
    /// once (`null` when none was).
    pub reach: Option<f64>,
}

fn ratio(n: u64, of: u64) -> Option<f64> {
    (of > 0).then(|| (n as f64 / of as f64 * 1000.0).round() / 1000.0)
}

async fn outcomes(store: &Store, campaign_id: i64) -> Result<OutcomesPart, StoreError> {
    let counts = store.outcome_counts(campaign_id).await?;
    let (dials, first_answers) = store.outcomes_by_dial(campaign_id).await?;
    let placed_once = dials.first().map_or(0, |d| d.1);
    let by_dial = dials
        .iter()
        .map(|&(dial, calls, ended, answered)| DialPart {
            dial,
            calls,
            ended,
            answered,
            answer_rate: ratio(answered, ended),
            reach: ratio(
                first_answers.iter().filter(|&&d| d <= dial).count() as u64,
                placed_once,
            ),
        })
        .collect();
    let tracked = !counts.by_class.is_empty();
    let note = if tracked {
        format!(
            "outcomes: {} of {} placed contacts have a call record",
            counts.by_class.values().sum::<u64>(),
            counts.placed()
        )
    } else {
        "outcomes: not tracked (no call record of this campaign in the store: [outcomes] \
         enabled = true asks the service for them)"
            .into()
    };
    Ok(OutcomesPart {
        tracked,
        note,
        answer_rate: counts.answer_rate().map(|r| (r * 1000.0).round() / 1000.0),
        by_class: counts.by_class,
        awaiting: counts.awaiting,
        by_dial,
    })
}

fn seconds(ms: u64) -> f64 {
    (ms as f64 / 100.0).round() / 10.0
}

/// `ms` in UTC (RFC 3339) and in `zone` (RFC 3339 with its offset, and the zone's name).
pub fn time(ms: i64, zone: &TimeZone) -> Time {
    match jiff::Timestamp::from_millisecond(ms) {
        Ok(t) => Time {
            utc: t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            local: t
                .to_zoned_datetime(zone.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%.3f%:z")
                .to_string()
                + &format!(" ({})", crate::calling::zones::name(zone)),
        },
        Err(_) => Time {
            utc: String::new(),
            local: String::new(),
        },
    }
}

/// The zone and the cap of `c`: its own settings over what `run`/`serve` recorded.
async fn zone_and_cap(store: &Store, c: &Campaign) -> Result<(TimeZone, Option<f64>), StoreError> {
    let settings: serde_json::Value = c
        .settings
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let own_zone = settings
        .pointer("/calling/timezone")
        .and_then(|z| z.as_str())
        .map(str::to_string);
    let zone_name = match own_zone {
        Some(z) => Some(z),
        None => store.meta(META_ZONE).await?,
    };
    let zone = zone_name
        .and_then(|z| crate::calling::zones::zone(&z).ok())
        .unwrap_or(TimeZone::UTC);
    let account = store
        .meta(META_RATE)
        .await?
        .and_then(|r| r.parse::<f64>().ok());
    let own_cap = match settings.get("max_rate").and_then(|r| r.as_f64()) {
        Some(r) => Some(r),
        None => store
            .meta(META_CAMPAIGN_RATE)
            .await?
            .and_then(|r| r.parse::<f64>().ok()),
    };
    let cap = match (own_cap, account) {
        (Some(o), Some(a)) => Some(o.min(a)),
        (o, a) => o.or(a),
    };
    Ok((zone, cap))
}

/// What the send times say about the rate (fed in order).
#[derive(Default)]
struct Sends {
    n: u64,
    first: Option<i64>,
    last: Option<i64>,
    sending_ms: i64,
    window: VecDeque<i64>,
    busiest: u64,
    pause_ms: i64,
}

impl Sends {
    fn push(&mut self, t: i64) {
        if let Some(prev) = self.last {
            let gap = t - prev;
            if gap <= self.pause_ms {
                self.sending_ms += gap;
            }
        }
        self.first.get_or_insert(t);
        self.last = Some(t);
        self.n += 1;
        self.window.push_back(t);
        while self.window.front().is_some_and(|&f| t - f >= 1000) {
            self.window.pop_front();
        }
        self.busiest = self.busiest.max(self.window.len() as u64);
    }
}

pub async fn build(store: &Store, c: &Campaign, now_ms: i64) -> Result<Report, StoreError> {
    let (zone, cap) = zone_and_cap(store, c).await?;
    let counts = store.counts(c.id).await?;
    let mut by_status: BTreeMap<String, u64> = crate::contact::Status::ALL
        .iter()
        .map(|s| (s.as_str().to_string(), 0))
        .collect();
    for (s, n) in &counts {
        by_status.insert(s.as_str().to_string(), *n);
    }
    let by_error_code = store
        .counts_by_code(c.id)
        .await?
        .into_iter()
        .map(|(status, code, contacts)| CodeCount {
            status,
            code,
            contacts,
        })
        .collect();
    let requests_per_contact = store
        .requests_per_contact(c.id)
        .await?
        .into_iter()
        .map(|(requests, contacts)| RequestsCount { requests, contacts })
        .collect();
    let pause_ms = match cap {
        Some(r) if r > 0.0 => PAUSE_MS.max((3000.0 / r) as i64),
        _ => PAUSE_MS,
    };
    let sends = store
        .for_each_send(
            c.id,
            Sends {
                pause_ms,
                ..Default::default()
            },
            |s, t| s.push(t),
        )
        .await?;
    let span_ms = match (sends.first, sends.last) {
        (Some(f), Some(l)) => l - f,
        _ => 0,
    };
    // Under a second of sending says nothing about a rate per second.
    let per_second = |n: u64, ms: i64| {
        (n > 1 && ms >= 1000)
            .then(|| ((n - 1) as f64 / (ms as f64 / 1000.0) * 100.0).round() / 100.0)
    };
    let rate = RatePart {
        requests_sent: sends.n,
        first_sent: sends.first.map(|t| time(t, &zone)),
        last_sent: sends.last.map(|t| time(t, &zone)),
        average_per_second: per_second(sends.n, span_ms),
        sending_seconds: seconds(sends.sending_ms.max(0) as u64),
        sending_per_second: per_second(sends.n, sends.sending_ms),
        busiest_second: sends.busiest,
        cap_per_second: cap,
    };
    let waits = store.waits(c.id).await?;
    let waiting = WaitingPart {
        total_seconds: seconds(waits.iter().map(|(_, ms)| ms).sum()),
        by_reason: waits
            .into_iter()
            .map(|(reason, ms)| WaitReason {
                description: crate::dispatch::waits::describe(&reason).to_string(),
                reason,
                seconds: seconds(ms),
            })
            .collect(),
    };
    Ok(Report {
        campaign: CampaignPart {
            id: c.id,
            name: c.name.clone(),
            state: c.state.as_str().to_string(),
            reason: c.reason.clone(),
            created_at: time(c.created_at, &zone),
            purged_at: c.purged_at.map(|t| time(t, &zone)),
        },
        zone: crate::calling::zones::name(&zone),
        generated_at: time(now_ms, &zone),
        total: counts.values().sum(),
        by_status,
        by_error_code,
        requests_per_contact,
        rate,
        waiting,
        outcomes: outcomes(store, c.id).await?,
    })
}

/// The report for people: one fact a line, times in UTC and the campaign's zone.
pub fn render_text(r: &Report) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let both = |t: &Time| format!("{} / {}", t.utc, t.local);
    let _ = writeln!(
        o,
        "campaign {} (id {}): {}{}",
        r.campaign.name,
        r.campaign.id,
        r.campaign.state,
        r.campaign
            .reason
            .as_deref()
            .map(|x| format!(" ({x})"))
            .unwrap_or_default()
    );
    let _ = writeln!(o, "  created   {}", both(&r.campaign.created_at));
    let _ = writeln!(o, "  report at {}", both(&r.generated_at));
    if let Some(p) = &r.campaign.purged_at {
        let _ = writeln!(o, "  contacts purged at {}", both(p));
    }
    let _ = writeln!(o, "contacts: {}", r.total);
    for (s, n) in &r.by_status {
        if *n > 0 {
            let _ = writeln!(o, "  {s:<10} {n}");
        }
    }
    if !r.by_error_code.is_empty() {
        let _ = writeln!(o, "by error code:");
        for c in &r.by_error_code {
            let _ = writeln!(o, "  {:<8} {:<44} {}", c.status, c.code, c.contacts);
        }
    }
    let _ = writeln!(o, "requests per contact:");
    for c in &r.requests_per_contact {
        let _ = writeln!(
            o,
            "  {:>3} request(s): {} contact(s)",
            c.requests, c.contacts
        );
    }
    let rate = &r.rate;
    let cap = rate
        .cap_per_second
        .map(|c| format!("{c}/s"))
        .unwrap_or_else(|| "not recorded".into());
    let _ = writeln!(o, "rate (cap {cap}):");
    let _ = writeln!(o, "  requests sent   {}", rate.requests_sent);
    if let (Some(f), Some(l)) = (&rate.first_sent, &rate.last_sent) {
        let _ = writeln!(o, "  first           {}", both(f));
        let _ = writeln!(o, "  last            {}", both(l));
    }
    let per = |x: Option<f64>| {
        x.map(|v| format!("{v:.2}/s"))
            .unwrap_or_else(|| "- (under a second of sending)".into())
    };
    let _ = writeln!(
        o,
        "  while sending   {} over {:.1} s (pauses left out)",
        per(rate.sending_per_second),
        rate.sending_seconds
    );
    let _ = writeln!(o, "  first to last   {}", per(rate.average_per_second));
    let _ = writeln!(o, "  busiest second  {}", rate.busiest_second);
    let _ = writeln!(o, "waiting: {:.1} s", r.waiting.total_seconds);
    for w in r.waiting.by_reason.iter().filter(|w| w.seconds > 0.0) {
        let _ = writeln!(
            o,
            "  {:<18} {:>10.1} s  {}",
            w.reason, w.seconds, w.description
        );
    }
    let out = &r.outcomes;
    let _ = writeln!(o, "{}", out.note);
    if out.tracked {
        for (class, n) in &out.by_class {
            let _ = writeln!(o, "  {class:<16} {n}");
        }
        if out.awaiting > 0 {
            let _ = writeln!(o, "  {:<16} {}", "(no record yet)", out.awaiting);
        }
        let pct = |x: Option<f64>| {
            x.map(|v| format!("{:.1}%", v * 100.0))
                .unwrap_or_else(|| "-".into())
        };
        let _ = writeln!(
            o,
            "  answer rate {} (contacts, by their latest call)",
            pct(out.answer_rate)
        );
        let _ = writeln!(o, "  by dial:  calls  ended  answered  answer rate  reach");
        for d in &out.by_dial {
            let _ = writeln!(
                o,
                "  {:>6}  {:>6} {:>6} {:>9} {:>12} {:>6}",
                d.dial,
                d.calls,
                d.ended,
                d.answered,
                pct(d.answer_rate),
                pct(d.reach)
            );
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busiest_second_counts_sends_in_any_sliding_second() {
        let mut s = Sends {
            pause_ms: PAUSE_MS,
            ..Default::default()
        };
        // Three in [500, 1400], then a pause, then two.
        for t in [0, 500, 900, 1400, 10_000, 10_999] {
            s.push(t);
        }
        assert_eq!(s.busiest, 3);
        assert_eq!(s.n, 6);
        // The 8.6 s pause is not sending: 1.4 s + 0.999 s are.
        assert_eq!(s.sending_ms, 1400 + 999);
    }

    #[test]
    fn times_show_utc_and_the_campaign_zone() {
        let zone = crate::calling::zones::zone("Asia/Shanghai").unwrap();
        // 2026-11-29T19:00:00Z is 03:00 the next day in Shanghai.
        let t = time(1_795_978_800_000, &zone);
        assert_eq!(t.utc, "2026-11-29T19:00:00.000Z");
        assert_eq!(t.local, "2026-11-30T03:00:00.000+08:00 (Asia/Shanghai)");
    }
}
