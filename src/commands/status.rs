//! `ccc-dialer status`: every campaign with its state and why, counts by status and by error
//! code, from the store alone; times in the campaign's zone as well as UTC.

use jiff::tz::TimeZone;

use crate::cli::StatusArgs;
use crate::config::Config;
use crate::exit::{Done, Failure};
use crate::server::CampaignSettings;
use crate::store::Campaign;

pub async fn run(args: StatusArgs) -> Result<Done, Failure> {
    let store = super::open_existing_store(&args.state).await?;
    let cfg = match &args.config {
        Some(path) => Some(crate::config::Config::load(path).map_err(Failure::input)?),
        None => None,
    };
    // The zone the last `run` or `serve` on this store was configured with.
    let stored = store
        .meta(crate::report::META_ZONE)
        .await
        .map_err(Failure::other)?
        .and_then(|z| crate::calling::zones::zone(&z).ok());
    if let Some(callee) = &args.callee {
        return contact(&store, callee, cfg.as_ref(), stored.as_ref()).await;
    }
    if let Some(o) = store.outage().await.map_err(Failure::other)? {
        crate::say!("{}", o.describe());
    }
    let campaigns = store.campaigns().await.map_err(Failure::other)?;
    if campaigns.is_empty() {
        crate::say!("{}: no campaign yet", store.path().display());
    }
    let agents = store.agent_lines().await.map_err(Failure::other)?;
    for a in &agents {
        // Configured counts live in the config; the store keeps what was learned.
        let lines = a.learned.map_or(
            "no line count learned (configured, or nothing refused yet)".to_string(),
            |l| format!("~{l:.0} lines learned from capacity refusals"),
        );
        crate::say!(
            "agent {}: {lines}; a call holds a line ~{:.1} s",
            a.agent,
            a.hold_seconds
        );
    }
    for c in campaigns {
        let counts = store.counts(c.id).await.map_err(Failure::other)?;
        let total: u64 = counts.values().sum();
        let zone = zone_of(&c, cfg.as_ref(), stored.as_ref());
        crate::say!(
            "campaign {} (id {}, {} contacts): {}{}",
            c.name,
            c.id,
            total,
            c.state,
            c.reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        crate::say!(
            "  created {}",
            time_in(c.created_at, &zone).unwrap_or_default()
        );
        if let Some(at) = c.purged_at {
            crate::say!(
                "  contacts purged {} (purge or store.retain)",
                time_in(at, &zone).unwrap_or_default()
            );
        }
        for (status, n) in &counts {
            crate::say!("  {:<10} {n}", status.as_str());
        }
        let outcomes = store.outcome_counts(c.id).await.map_err(Failure::other)?;
        if outcomes.placed() > 0 && (!outcomes.by_class.is_empty() || outcomes.reconciling > 0) {
            // Each contact once, by its latest call (a redialled contact's earlier calls are in
            // `report`'s by-dial table).
            crate::say!("  contacts by their latest call's outcome:");
            for (class, n) in &outcomes.by_class {
                crate::say!("    {class:<16} {n}");
            }
            if outcomes.awaiting > 0 {
                crate::say!("    {:<16} {}", "(not known yet)", outcomes.awaiting);
            }
            if let Some(rate) = outcomes.answer_rate() {
                crate::say!(
                    "  answer rate: {:.1}% ({} answered of {} contacts whose latest call ended)",
                    rate * 100.0,
                    outcomes.by_class.get("answered").copied().unwrap_or(0),
                    outcomes.ended()
                );
            }
        }
        if outcomes.reconciling > 0 {
            crate::say!(
                "  lost replies being looked up in the call records: {}",
                outcomes.reconciling
            );
        }
        if outcomes.reached + outcomes.not_reached + outcomes.redials_pending > 0 {
            crate::say!(
                "  contacts: reached {}, not reached after all dials {}, waiting for a redial {}",
                outcomes.reached,
                outcomes.not_reached,
                outcomes.redials_pending
            );
        }
        let waiting = store.waiting_by_gate(c.id).await.map_err(Failure::other)?;
        if waiting.iter().any(|(g, _)| g.is_some()) {
            crate::say!("  pending, by what holds them:");
            for (gate, n) in &waiting {
                crate::say!("    {:<16} {n}", gate.as_deref().unwrap_or("due"));
            }
            if let Some((at, Some(gate))) = store.next_wait(c.id).await.map_err(Failure::other)? {
                let until = time_in(at, &zone).unwrap_or_default();
                crate::say!("  next: {gate} until {until}");
            }
        }
        let codes = store.counts_by_code(c.id).await.map_err(Failure::other)?;
        if !codes.is_empty() {
            crate::say!("  by error code:");
            for (status, code, n) in codes {
                crate::say!("    {status:<8} {code:<50} {n}");
            }
        }
    }
    Ok(Done::Ok)
}

/// A campaign's zone: its own window's, else the config's (with `--config`), else the one the
/// last `run` or `serve` on the store was configured with, else UTC.
fn zone_of(c: &Campaign, cfg: Option<&Config>, stored: Option<&TimeZone>) -> TimeZone {
    let settings: CampaignSettings = c
        .settings
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let own = settings
        .calling
        .as_ref()
        .and_then(|w| w.timezone.as_deref())
        .and_then(|z| crate::calling::zones::zone(z).ok());
    own.or_else(|| cfg.map(|cfg| cfg.calling.zone().clone()))
        .or_else(|| stored.cloned())
        .unwrap_or(TimeZone::UTC)
}

/// `ms` in `zone` and in UTC.
fn time_in(ms: i64, zone: &TimeZone) -> Option<String> {
    jiff::Timestamp::from_millisecond(ms)
        .ok()
        .map(|t| crate::calling::gate::local_and_utc(t, zone))
}

/// `--callee`: the contact in every campaign of the store, and why it waits if it does.
async fn contact(
    store: &crate::store::Store,
    raw: &str,
    config: Option<&Config>,
    stored: Option<&TimeZone>,
) -> Result<Done, Failure> {
    use crate::config::CalleeFormat;
    let (country, formats) = match config {
        Some(cfg) => (
            cfg.campaign.default_country.clone(),
            vec![cfg.campaign.callee_format],
        ),
        None => (
            "CN".to_string(),
            vec![CalleeFormat::DoubleZero, CalleeFormat::E164],
        ),
    };
    let mut spellings = vec![raw.trim().to_string()];
    for f in formats {
        if let Ok(n) = crate::phone::normalize(raw, &country, f) {
            spellings.push(n);
        }
    }
    let mut found = false;
    for c in store.campaigns().await.map_err(Failure::other)? {
        let zone = zone_of(&c, config, stored);
        let time = |ms: i64| time_in(ms, &zone);
        for callee in &spellings {
            let Some(d) = store
                .contact_detail(c.id, callee)
                .await
                .map_err(Failure::other)?
            else {
                continue;
            };
            found = true;
            crate::say!(
                "campaign {} ({}): {} line {}: {}",
                c.name,
                c.state,
                d.callee,
                d.line,
                d.status
            );
            if d.status == "pending" {
                let until = (d.next_at > crate::dispatch::now_ms())
                    .then(|| time(d.next_at))
                    .flatten();
                let why = match (&d.gate, &until) {
                    // The redial wait names the outcome that caused it.
                    (Some(g), Some(u)) if g == crate::redial::GATE => format!(
                        "{g} until {u} ({})",
                        d.error_message.as_deref().unwrap_or("redial")
                    ),
                    (Some(g), Some(u)) => format!("{g} until {u}"),
                    (None, Some(u)) if d.reschedules > 0 => format!("rescheduled until {u}"),
                    (None, Some(u)) => format!("retry_backoff until {u}"),
                    _ if c.state != crate::store::CampaignState::Active => {
                        format!("campaign_{}", c.state)
                    }
                    // What the active campaign itself waits for (its start time).
                    _ if c.reason.is_some() => c.reason.clone().unwrap_or_default(),
                    _ => "due: waiting for its turn within the rate".to_string(),
                };
                crate::say!("  waiting: {why}");
            }
            if let (Some(code), Some(message)) = (&d.error_code, &d.error_message) {
                crate::say!("  last: {code}: {message}");
            }
            if d.dials > 0 {
                crate::say!(
                    "  dials: {}{}",
                    d.dials,
                    d.first_dialled_at
                        .and_then(time)
                        .map(|t| format!(", the first at {t}"))
                        .unwrap_or_default()
                );
            }
            let sessions = store.contact_sessions(d.id).await.map_err(Failure::other)?;
            let learned = store.contact_results(d.id).await.map_err(Failure::other)?;
            let outcome_of = |s: &str| {
                sessions
                    .iter()
                    .find(|(id, _)| id == s)
                    .and_then(|(_, o)| o.as_ref())
                    .map(|o| {
                        let mut t = format!(" outcome {}", o.class);
                        if let Some(code) = o.end_status {
                            t.push_str(&format!(
                                " (EndStatus {code} {})",
                                o.end_status_string.as_deref().unwrap_or("")
                            ));
                        }
                        if let Some(d) = o.duration_s.filter(|d| *d > 0) {
                            t.push_str(&format!(" talked {d} s"));
                        }
                        if o.source == "reconciled" {
                            t.push_str(" [reconciled from the call records]");
                        }
                        t
                    })
                    .unwrap_or_default()
            };
            for a in &d.attempts {
                if a.outcome.as_deref() == Some("requeued") {
                    crate::say!(
                        "  {}: {}",
                        time(a.started_at).unwrap_or_default(),
                        a.message.as_deref().unwrap_or("requeued")
                    );
                    continue;
                }
                crate::say!(
                    "  attempt {}: started {} outcome {} {}{}",
                    a.n,
                    time(a.started_at).unwrap_or_default(),
                    a.outcome.as_deref().unwrap_or("(no reply yet)"),
                    a.code.as_deref().unwrap_or(""),
                    a.session_id
                        .as_deref()
                        .map(|s| format!(" session {s}{}", outcome_of(s)))
                        .unwrap_or_default()
                );
                if let Some(r) = a
                    .session_id
                    .as_deref()
                    .and_then(|s| learned.iter().find(|r| r.session_id == s))
                {
                    for line in learned_lines(r) {
                        crate::say!("    {line}");
                    }
                }
            }
            break;
        }
    }
    if !found {
        return Err(Failure::input(anyhow::anyhow!(
            "{raw}: no such contact in any campaign of this store (tried {})",
            spellings.join(", ")
        )));
    }
    Ok(Done::Ok)
}

/// What the AI agent learned in one session, for `--callee`: `tags: callback=true, note=…` and
/// `analysis: mood … · intention … · summary …`. Values are shown as text (control characters
/// replaced), never interpreted.
fn learned_lines(r: &crate::store::SessionResults) -> Vec<String> {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    let mut out = Vec::new();
    if !r.tags.is_empty() {
        let tags: Vec<String> = r
            .tags
            .iter()
            .map(|t| format!("{}={}", clean(&t.name), clean(&t.value)))
            .collect();
        out.push(format!("tags: {}", tags.join(", ")));
    }
    if let Some(a) = &r.analysis {
        out.push(format!(
            "analysis: mood {} · intention {} · summary {}",
            clean(&a.mood),
            clean(&a.intention),
            clean(&a.summary)
        ));
    }
    out
}
