//! Personal data retention: a finished campaign's contacts, attempts, dial history, inbox
//! records and uploaded file are deleted on an operator's request (`ccc-dialer purge`,
//! `POST /v1/campaigns/{id}/purge`) or, with `[store] retain = "90d"`, that long after the
//! campaign finished (`run` at its start, `serve` at its start and hourly).
//!
//! What stays: the campaign's row (name, state, when it was purged, its waiting sums) and, for
//! as long as `calling.min_gap`/`max_per_day` need it, the per-person dial history: a campaign
//! whose calls are still in it is purged by `retain` only once they age out (the engine prunes
//! them), and by `purge` only with `--forget-dial-history`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::store::{Campaign, PurgeCounts, PurgeOutcome, Store, StoreError};

/// `[store]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    retain: Option<String>,
    lease: Option<String>,
}

/// `store.lease` (PostgreSQL replicas' claim length, see `store::pg::lease`), or
/// `(key, value, expected)`.
pub fn lease(raw: &RawStore) -> Result<Duration, (String, String, String)> {
    let Some(text) = &raw.lease else {
        return Ok(crate::store::pg::lease::DEFAULT_TTL);
    };
    let bad = |why: &str| {
        (
            "store.lease".to_string(),
            format!("{text:?}"),
            why.to_string(),
        )
    };
    let d = crate::duration::parse(text).map_err(|e| bad(&e))?;
    if d < Duration::from_secs(1) || d > Duration::from_secs(600) {
        return Err(bad("a duration from 1s to 10m (e.g. \"10s\")"));
    }
    Ok(d)
}

/// The longest `retain` accepted (a typo such as `"9000d"` is refused, not obeyed).
const MAX_RETAIN: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// `store.retain`, or `(key, value, expected)`.
pub fn validate(raw: &RawStore) -> Result<Option<Duration>, (String, String, String)> {
    let Some(text) = &raw.retain else {
        return Ok(None);
    };
    let bad = |why: &str| {
        (
            "store.retain".to_string(),
            format!("{text:?}"),
            why.to_string(),
        )
    };
    let d = crate::duration::parse(text).map_err(|e| bad(&e))?;
    if d < Duration::from_secs(3600) || d > MAX_RETAIN {
        return Err(bad("a duration from 1h to 3660d (e.g. \"90d\")"));
    }
    Ok(Some(d))
}

/// What a purge did, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub counts: PurgeCounts,
    /// The uploaded contacts file deleted with it (`serve`'s uploads folder).
    pub upload_deleted: Option<PathBuf>,
}

/// Why a purge was refused, in words (the CLI's error, the API's 409).
pub fn refusal(c: &Campaign, outcome: &PurgeOutcome) -> Option<String> {
    match outcome {
        PurgeOutcome::Unfinished { pending, in_flight } => Some(format!(
            "campaign {:?} is {} with {pending} contacts pending and {in_flight} awaiting a reply: \
             only a finished or cancelled campaign is purged (cancel it first)",
            c.name, c.state
        )),
        PurgeOutcome::DialsNeeded { dials, newest_at } => Some(format!(
            "campaign {:?}: {dials} of its calls (the latest at {}) are still in the per-person \
             dial history that calling.min_gap and max_per_day read across campaigns; purging now \
             would let another campaign call these people sooner\n\
             hint: wait until they age out (2 days, or min_gap if longer), or pass \
             --forget-dial-history (API: ?forget_dial_history=true)",
            c.name,
            crate::report::time(*newest_at, &jiff::tz::TimeZone::UTC).utc
        )),
        PurgeOutcome::LookupsPending { lookups } => Some(format!(
            "campaign {:?}: {lookups} requests whose reply was lost (or that failed with an \
             internal error) are still being looked up in the call records; purging now would \
             forget calls they may have placed (and the dial history that holds those people \
             back), even with --forget-dial-history\n\
             hint: wait until `ccc-dialer status` shows no lost replies being looked up (at most \
             outcomes.reconcile_after), or resolve them now with `ccc-dialer outcomes`, then purge",
            c.name
        )),
        _ => None,
    }
}

/// Purge campaign `c` (see the module's rules), delete its upload when no other campaign shares
/// it, and checkpoint the store so the deleted rows leave no copy in its WAL.
pub async fn purge(
    store: &Store,
    c: &Campaign,
    uploads: &Path,
    forget_dials: bool,
    now_ms: i64,
) -> Result<(PurgeOutcome, Option<Purged>), StoreError> {
    let outcome = store.purge_campaign(c.id, forget_dials, now_ms).await?;
    let PurgeOutcome::Purged(counts) = &outcome else {
        return Ok((outcome, None));
    };
    let upload_deleted = delete_upload(store, c, uploads).await?;
    if let Err(e) = store.checkpoint().await {
        tracing::warn!(error = %e, "purge: the store's WAL was not emptied");
    }
    tracing::info!(
        campaign = %c.name,
        contacts = counts.contacts,
        attempts = counts.attempts,
        dials = counts.dials,
        "campaign purged: its contacts and attempts are deleted"
    );
    let purged = Purged {
        counts: counts.clone(),
        upload_deleted,
    };
    Ok((outcome, Some(purged)))
}

/// The campaign's source file when it is an upload kept by `serve` (never an operator's own
/// file: `run`'s contacts file, or the inbox's `done/` copy) and no other campaign reads it.
async fn delete_upload(
    store: &Store,
    c: &Campaign,
    uploads: &Path,
) -> Result<Option<PathBuf>, StoreError> {
    let source = PathBuf::from(&c.source);
    let (Ok(dir), Ok(file)) = (uploads.canonicalize(), source.canonicalize()) else {
        return Ok(None);
    };
    if !file.starts_with(&dir) || store.source_shared(c.id, &c.source).await? {
        return Ok(None);
    }
    match std::fs::remove_file(&file) {
        Ok(()) => Ok(Some(source)),
        Err(e) => {
            tracing::warn!(file = %file.display(), error = %e, "purge: cannot delete the uploaded contacts file");
            Ok(None)
        }
    }
}

/// `[store] retain`: purge every campaign finished more than `retain` ago whose calls have left
/// the dial history. Returns the ids of those purged.
pub async fn apply_retention(
    store: &Store,
    retain: Duration,
    uploads: &Path,
    now_ms: i64,
) -> Result<Vec<i64>, StoreError> {
    let before = now_ms.saturating_sub(i64::try_from(retain.as_millis()).unwrap_or(i64::MAX));
    let mut purged = Vec::new();
    for id in store.finished_before(before).await? {
        let Some(c) = store.campaign(id).await? else {
            continue;
        };
        match purge(store, &c, uploads, false, now_ms).await? {
            (PurgeOutcome::Purged(_), _) => purged.push(id),
            (PurgeOutcome::DialsNeeded { .. }, _) => {
                tracing::debug!(campaign = %c.name, "retain: its calls are still in the dial history; purged once they age out")
            }
            (PurgeOutcome::LookupsPending { lookups }, _) => {
                tracing::debug!(campaign = %c.name, lookups, "retain: lost replies are still being looked up in the call records; purged once they are resolved")
            }
            _ => {}
        }
    }
    if !purged.is_empty() {
        tracing::info!(
            campaigns = purged.len(),
            retain_days = retain.as_secs() / 86_400,
            "store.retain: finished campaigns' contacts deleted"
        );
    }
    Ok(purged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retain_and_lease_take_durations_in_their_ranges() {
        let v = |t: &str| {
            validate(&RawStore {
                retain: Some(t.into()),
                ..RawStore::default()
            })
        };
        assert_eq!(v("90d").unwrap(), Some(Duration::from_secs(90 * 86_400)));
        assert_eq!(validate(&RawStore::default()).unwrap(), None);
        assert_eq!(
            lease(&RawStore::default()).unwrap(),
            Duration::from_secs(10),
            "leases last 10 s unless configured"
        );
        let with = |t: &str| RawStore {
            lease: Some(t.into()),
            ..RawStore::default()
        };
        assert_eq!(lease(&with("2s")).unwrap(), Duration::from_secs(2));
        for bad in ["500ms", "11m", "soon"] {
            let (key, value, _) = lease(&with(bad)).unwrap_err();
            assert_eq!((key.as_str(), value), ("store.lease", format!("{bad:?}")));
        }
        for bad in ["30m", "90", "9000d", ""] {
            let (key, value, _) = v(bad).unwrap_err();
            assert_eq!(key, "store.retain");
            assert_eq!(value, format!("{bad:?}"));
        }
    }

    #[test]
    fn a_purge_refused_for_open_lookups_says_why_and_what_to_do() {
        let c = Campaign {
            id: 1,
            name: "spring".into(),
            fingerprint: String::new(),
            source: String::new(),
            intake_done: true,
            state: crate::store::CampaignState::Completed,
            reason: None,
            settings: None,
            priority: 0,
            created_at: 0,
            purged_at: None,
        };
        let why = refusal(&c, &PurgeOutcome::LookupsPending { lookups: 2 }).expect("refused");
        for want in [
            "campaign \"spring\": 2 requests whose reply was lost",
            "still being looked up in the call records",
            "even with --forget-dial-history",
            "hint: wait until `ccc-dialer status` shows no lost replies being looked up",
        ] {
            assert!(why.contains(want), "wants {want:?}: {why}");
        }
    }
}
