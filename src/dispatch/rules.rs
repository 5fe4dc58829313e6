//! The calling rules applied by the engine: before a contact takes a rate token, the gates of
//! [`crate::calling`] decide whether it may be called now (and on which caller number), must
//! wait (held back with the gate and until when, using no attempt), or will never be called
//! (do-not-call, campaign ended).
//!
//! Invariants:
//! - With no rules at all ([`Rules::none`], or `[calling] min_gap = "0s"` and nothing else)
//!   nothing is checked ([`Rules::is_active`] is false): the engine's hot path is unchanged.
//!   Without a `[calling]` table the per-person gap of one hour still applies.
//! - Only gates that read memory run per contact, except the per-person check (one indexed
//!   store read, and only when `min_gap` or `max_per_day` is set).
//! - One caller pool for every campaign: caller numbers belong to the account.
//!
//! The std `Mutex` around the pool is never held across an `.await`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::Timestamp;

use crate::calling::callers::{CallerPool, Pick};
use crate::calling::dnc::{DncError, DncLists, LoadReport, Normalise};
use crate::calling::gate::{self, Gate};
use crate::calling::settings::Calling;
use crate::calling::zones;
use crate::config::Config;
use crate::store::{DueContact, PersonGuard, Store, StoreError};

/// Calls that old or older cannot hold a contact back (the daily cap looks at two local days).
const HISTORY: Duration = Duration::from_secs(2 * 24 * 3600);
/// A window that opens nowhere within the search horizon is looked at again after this.
const RECHECK: Duration = Duration::from_secs(24 * 3600);

/// What the gates decided for one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Call now (the caller number is picked later, by [`Rules::pick_caller`]).
    Go,
    /// Hold back until `until` (unix ms); no attempt is used.
    Wait { gate: Gate, until: i64 },
    /// Never: do-not-call (`skipped`) or the campaign ended (every pending contact `expired`).
    End(Gate),
    /// This contact only: its window does not open before the campaign ends (`expired`).
    Expire(Gate),
}

pub struct Rules {
    pub calling: Calling,
    /// Account-wide, shared by every campaign's rules.
    pub dnc: Arc<DncLists>,
    callers: Arc<Mutex<CallerPool>>,
    active: bool,
    pool_active: bool,
    per_person: bool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(t: Timestamp) -> i64 {
    t.as_millisecond()
}

/// How far back calls can hold a number: two local days, or the gap if longer.
fn history_ms(min_gap: Duration) -> i64 {
    i64::try_from(HISTORY.max(min_gap).as_millis()).unwrap_or(i64::MAX / 2)
}

impl Rules {
    /// The config's rules, with its do-not-call lists loaded.
    pub fn from_config(cfg: &Config) -> Result<(Rules, LoadReport), DncError> {
        let norm = Normalise {
            default_country: cfg.campaign.default_country.clone(),
            callee_format: cfg.campaign.callee_format,
        };
        let (dnc, report) = DncLists::load(cfg.calling.dnc_files.clone(), norm)?;
        Ok((Rules::new(cfg.calling.clone(), dnc), report))
    }

    pub fn new(calling: Calling, dnc: DncLists) -> Rules {
        let callers = Arc::new(Mutex::new(CallerPool::new(
            calling.caller_strategy,
            calling.caller_cooldown,
            calling.caller_daily_cap,
            calling.zone().clone(),
        )));
        Rules::sharing(calling, Arc::new(dnc), callers)
    }

    /// A campaign's rules: its own window (`serve` campaign settings) with the account-wide
    /// lists and caller pool of these.
    pub fn for_campaign(&self, calling: Calling) -> Rules {
        Rules::sharing(calling, self.dnc.clone(), self.callers.clone())
    }

    fn sharing(calling: Calling, dnc: Arc<DncLists>, callers: Arc<Mutex<CallerPool>>) -> Rules {
        let pool_active = !calling.caller_cooldown.is_zero() || calling.caller_daily_cap > 0;
        let per_person = !calling.min_gap.is_zero() || calling.max_per_day > 0;
        let active = !calling.window.is_unrestricted()
            || calling.not_after.is_some()
            || !calling.dnc_files.is_empty()
            || per_person
            || pool_active;
        Rules {
            calling,
            dnc,
            callers,
            active,
            pool_active,
            per_person,
        }
    }

    /// No rules at all, not even the default gap (tests that build an engine by hand).
    pub fn none(cfg: &Config) -> Rules {
        Rules::new(
            Calling::unrestricted(cfg.calling.zone().clone()),
            DncLists::empty(Normalise {
                default_country: cfg.campaign.default_country.clone(),
                callee_format: cfg.campaign.callee_format,
            }),
        )
    }

    /// Whether any gate is checked. The account's own do-not-call list can gain its first
    /// number while campaigns run (an opt-out), so it is looked at every time.
    pub fn is_active(&self) -> bool {
        self.active || self.dnc.has_own()
    }

    /// Whether the caller pool picks caller numbers (a cool-down or a daily cap is set).
    pub fn picks_callers(&self) -> bool {
        self.pool_active
    }

    /// Drop the dials too old to matter to any rule (at start-up: the table would otherwise
    /// grow with every call for as long as the store lives).
    pub async fn prune(&self, store: &Store, now: Timestamp) -> Result<(), StoreError> {
        let before = ms(now) - history_ms(self.calling.min_gap);
        store.prune_dials(before).await.map(|_| ())
    }

    /// Count today's caller uses recorded before this process (daily caps survive a restart).
    pub async fn seed_callers(&self, store: &Store, now: Timestamp) -> Result<(), StoreError> {
        if !self.pool_active || self.calling.caller_daily_cap == 0 {
            return Ok(());
        }
        let since = crate::calling::day::start_of_day(
            crate::calling::day::local_date(now, self.calling.zone()),
            self.calling.zone(),
        );
        let uses = store.caller_uses_since(ms(since)).await?;
        let mut pool = lock(&self.callers);
        for (caller, at) in uses {
            if let Ok(t) = Timestamp::from_millisecond(at) {
                pool.record_use(&caller, t);
            }
        }
        Ok(())
    }

    /// The zones `contact` may be living by.
    fn zones(&self, contact: &DueContact) -> Vec<TimeZone> {
        let own = contact
            .overrides
            .timezone
            .as_deref()
            .and_then(|z| zones::zone(z).ok());
        zones::candidates(own.as_ref(), &contact.callee, self.calling.zone())
            .as_slice()
            .to_vec()
    }

    /// Decide for `contact` at `now` (every gate but the caller pool's).
    pub async fn check(
        &self,
        store: &Store,
        contact: &DueContact,
        now: Timestamp,
    ) -> Result<Verdict, StoreError> {
        self.check_ahead(store, contact, now, None).await
    }

    /// [`Rules::check`], with the per-person answer already read for this contact by
    /// [`Rules::read_ahead`] when `ahead` has one (`Some(None)`: not held then).
    pub async fn check_ahead(
        &self,
        store: &Store,
        contact: &DueContact,
        now: Timestamp,
        ahead: Option<Option<Gate>>,
    ) -> Result<Verdict, StoreError> {
        if let Err(g) = gate::campaign_end(self.calling.not_after, now) {
            return Ok(Verdict::End(g));
        }
        if self.dnc.contains(&contact.callee) {
            return Ok(Verdict::End(Gate::Dnc));
        }
        if let Some((gate, until)) = self.window_closed(contact, now) {
            if let Some(end) = self.calling.not_after {
                if until >= ms(end) {
                    // This contact's window opens too late; the others may still be called.
                    return Ok(Verdict::Expire(Gate::NotAfter { at: end }));
                }
            }
            return Ok(Verdict::Wait { gate, until });
        }
        // The same per-person check the store makes again when the attempt is written down;
        // made here too so a held contact does not spend a rate token first.
        if let Some(guard) = self.person_guard(contact, now) {
            let held = match ahead {
                Some(held) => held,
                None => store.person_held(contact.id, guard, ms(now)).await?,
            };
            if let Some(gate) = held {
                let until = gate.until().map_or(ms(now) + 60_000, ms);
                return Ok(Verdict::Wait { gate, until });
            }
        }
        Ok(Verdict::Go)
    }

    /// The per-person answers for `contacts` at `now`, read in one call to the store (see
    /// [`Store::persons_held`]), by contact id; empty when no per-person rule applies. An answer
    /// read ahead only spares a rate token: the store checks again when the attempt is written
    /// down, so one that went stale meanwhile (another campaign called the number) holds the
    /// contact there instead.
    pub async fn read_ahead<'a>(
        &self,
        store: &Store,
        contacts: impl Iterator<Item = &'a DueContact>,
        now: Timestamp,
    ) -> Result<std::collections::HashMap<i64, Option<Gate>>, StoreError> {
        let checks: Vec<(i64, PersonGuard)> = contacts
            .filter_map(|c| self.person_guard(c, now).map(|g| (c.id, g)))
            .collect();
        if checks.is_empty() {
            return Ok(std::collections::HashMap::new());
        }
        let ids: Vec<i64> = checks.iter().map(|(id, _)| *id).collect();
        let held = store.persons_held(checks, ms(now)).await?;
        Ok(ids.into_iter().zip(held).collect())
    }

    /// The caller number for a request about to leave (after the pacer: a pick made earlier
    /// could miss a rest that began meanwhile). `Go(None)` when the pool does not pick.
    pub fn pick_caller(
        &self,
        callers: &[String],
        now: Timestamp,
    ) -> Result<Option<String>, Verdict> {
        if !self.pool_active {
            return Ok(None);
        }
        match lock(&self.callers).pick(callers, now) {
            Pick::Use(c) => Ok(Some(c)),
            Pick::ServiceChooses => Ok(None),
            Pick::AllResting { until } => Err(Verdict::Wait {
                gate: Gate::CallerCooldown { until },
                until: ms(until),
            }),
        }
    }

    /// The window alone, checked again just before an attempt is written down: the contact
    /// may have waited for the rate across a closing time. `Some((gate, until))` when closed.
    pub fn window_closed(&self, contact: &DueContact, now: Timestamp) -> Option<(Gate, i64)> {
        if self.calling.window.is_unrestricted() {
            return None;
        }
        match gate::window(&self.calling.window, now, &self.zones(contact)) {
            Ok(()) => None,
            Err(g) => {
                let until = g
                    .until()
                    .unwrap_or_else(|| crate::calling::day::after(now, RECHECK));
                Some((g, ms(until)))
            }
        }
    }

    /// The per-person rules for `contact`, to be checked again atomically when its attempt is
    /// written down ([`Store::begin_attempt_guarded`]): the check in [`Rules::check`] runs
    /// before the rate wait, and another campaign may call the same number meanwhile.
    pub fn person_guard(&self, contact: &DueContact, now: Timestamp) -> Option<PersonGuard> {
        if !self.per_person {
            return None;
        }
        // Only a daily cap counts local days. The contact's zones come from parsing its number,
        // the costliest step of a contact's dispatch: none without a cap.
        let day_zone = match self.calling.max_per_day {
            0 => self.calling.zone().clone(),
            _ => self
                .zones(contact)
                .into_iter()
                .next()
                .unwrap_or_else(|| self.calling.zone().clone()),
        };
        Some(PersonGuard {
            min_gap: self.calling.min_gap,
            max_per_day: self.calling.max_per_day,
            day_zone,
            since_ms: ms(now) - history_ms(self.calling.min_gap),
        })
    }

    /// After `FailedOperation.CalloutRuleNotWorkTime` at `now`: the next opening of the
    /// contact's window that begins after `now` (the service says the window it knows is
    /// closed, even if ours looks open). `None` without hours of our own.
    pub fn next_opening_after(&self, contact: &DueContact, now: Timestamp) -> Option<Timestamp> {
        if self.calling.window.is_unrestricted() {
            return None;
        }
        self.calling
            .window
            .next_opening_after(now, &self.zones(contact))
    }

    /// Whether a caller answered with `CallerOverFrequency` rests (a cool-down is set): only
    /// then is the contact retried at once on another caller without using an attempt.
    pub fn rests_callers(&self) -> bool {
        self.pool_active && !self.calling.caller_cooldown.is_zero()
    }

    /// `FailedOperation.CallerOverFrequency` on `caller`: it rests for the cool-down.
    pub fn caller_over_frequency(&self, caller: &str, now: Timestamp) {
        if self.pool_active {
            lock(&self.callers).cool_down(caller, now);
        }
    }
}
