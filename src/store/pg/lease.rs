//! Leases: how several replicas share one PostgreSQL store's queue without two of them ever
//! sending a request for the same contact.
//!
//! A replica takes due contacts by *claiming* them (`queue::due_contacts`): in one statement,
//! rows locked `FOR UPDATE SKIP LOCKED` get this process's owner id, an expiry
//! (`lease_until`, unix ms by the **database's** clock, so replicas' clocks do not matter) and
//! a fencing epoch one higher than before (every claim, by anyone, raises it). The claims this
//! process holds are kept here ([`Leases`]), with the epoch each was taken under.
//!
//! Invariants:
//! - An attempt is written down (`queue::begin_attempt_checked`) only while its contact's row
//!   still says: this owner, this epoch, not expired; the check, the attempt (which records the
//!   epoch) and the move to `in_flight` are one transaction. A replica whose lease expired or
//!   was taken over writes nothing and learns it from [`StoreError::LeaseLost`]; its request
//!   never leaves.
//! - Before a request leaves, the dispatcher asks [`Leases::live`]: the lease must have been
//!   confirmed (claimed or renewed) recently enough, by this process's monotonic clock, that
//!   the database cannot yet count it expired. A process frozen (SIGSTOP, a long pause) past
//!   its lease wakes to find it stale and sends nothing.
//! - Every other write for a claimed contact (its finish, a deferral, a release) is fenced by
//!   the epoch: it changes the contact only if nobody claimed it since. The one exception is
//!   the *result* of a request that did leave: it is always recorded on its attempt (keyed by
//!   the attempt), because a call that was placed must never be forgotten; the contact itself
//!   is then changed only to resolve the doubt recovery left (`unknown` to the final status
//!   the reply brought), never back to `pending` (that would be a new send).
//! - A lease is renewed every third of its length while it is held (buffered or in flight);
//!   one that fails to renew (taken over, or expired because the database was unreachable) is
//!   dropped here and its contact is never sent by this process.
//! - Recovery (`queue::recover_expired`): a contact `in_flight` whose lease expired belongs to
//!   a replica that died or froze: its attempt is in doubt, the contact `unknown` (resolved
//!   from the call records when outcome tracking is on), never redialled silently. A `pending`
//!   contact whose lease expired is simply claimable again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::store::StoreError;

/// The database's clock, unix ms: leases are measured by it alone.
pub(super) const DB_NOW: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT";

/// A lease's length unless `[store] lease` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);

/// One claim this process holds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Claim {
    pub campaign_id: i64,
    pub epoch: i64,
    /// When the lease was last confirmed by the database (taken just *before* the statement
    /// that confirmed it was sent, so the database's expiry is never earlier than this plus the
    /// lease's length).
    pub confirmed: Instant,
}

/// The claims this process holds on a PostgreSQL store, and its owner id.
#[derive(Debug)]
pub struct Leases {
    owner: String,
    ttl_ms: AtomicU64,
    held: Mutex<HashMap<i64, Claim>>,
    renewing: std::sync::OnceLock<()>,
    /// Campaigns where another replica's leases ran out on contacts due or in flight (see
    /// `takeover`): their dispatchers here take those contacts before their own batch.
    ran_out: Mutex<std::collections::HashSet<i64>>,
    watching: std::sync::OnceLock<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Leases {
    pub(super) fn new() -> Leases {
        Leases {
            owner: owner_id(),
            ttl_ms: AtomicU64::new(DEFAULT_TTL.as_millis() as u64),
            held: Mutex::new(HashMap::new()),
            renewing: std::sync::OnceLock::new(),
            ran_out: Mutex::new(std::collections::HashSet::new()),
            watching: std::sync::OnceLock::new(),
        }
    }

    /// This process's owner id: host, pid and a random part (`host-1234-9f3a2c1b`).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_millis(self.ttl_ms.load(Ordering::Relaxed))
    }

    pub(super) fn ttl_ms(&self) -> i64 {
        self.ttl_ms.load(Ordering::Relaxed) as i64
    }

    pub(crate) fn set_ttl(&self, ttl: Duration) {
        self.ttl_ms
            .store(ttl.as_millis().max(1) as u64, Ordering::Relaxed);
    }

    /// The claim held on `contact_id`, if any.
    pub(super) fn get(&self, contact_id: i64) -> Option<Claim> {
        lock(&self.held).get(&contact_id).copied()
    }

    pub(super) fn hold(&self, contact_id: i64, claim: Claim) {
        lock(&self.held).insert(contact_id, claim);
    }

    /// The claim on `contact_id` is over (its contact released, or the lease lost).
    pub(super) fn drop_claim(&self, contact_id: i64) -> Option<Claim> {
        lock(&self.held).remove(&contact_id)
    }

    /// The claims held for `campaign_id`, taken out of the registry.
    pub(super) fn take_campaign(&self, campaign_id: i64) -> Vec<(i64, Claim)> {
        let mut held = lock(&self.held);
        let ids: Vec<i64> = held
            .iter()
            .filter(|(_, c)| c.campaign_id == campaign_id)
            .map(|(id, _)| *id)
            .collect();
        ids.into_iter()
            .filter_map(|id| held.remove(&id).map(|c| (id, c)))
            .collect()
    }

    /// Whether a request for `contact_id` may leave now: this process holds its claim and the
    /// database cannot count the lease expired yet (a fifth of the lease kept as margin for the
    /// request to leave).
    pub fn live(&self, contact_id: i64) -> bool {
        let ttl = self.ttl();
        self.get(contact_id)
            .is_some_and(|c| c.confirmed.elapsed() < ttl - ttl / 5)
    }

    /// How many claims are held (for tests and logs).
    pub fn len(&self) -> usize {
        lock(&self.held).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Start the renewal task (once per store).
    pub(super) fn start_renewal(self: &Arc<Self>, pool: deadpool_postgres::Pool) {
        if self.renewing.set(()).is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(renew_forever(weak, pool));
    }

    /// Start watching the other replicas' leases (once per store; see `takeover`).
    pub(super) fn start_watch(self: &Arc<Self>, pool: deadpool_postgres::Pool) {
        if self.watching.set(()).is_err() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(super::takeover::watch_forever(weak, pool));
    }

    /// Mark `campaigns` as holding contacts whose other replica's lease ran out.
    pub(super) fn mark_ran_out(&self, campaigns: impl IntoIterator<Item = i64>) {
        lock(&self.ran_out).extend(campaigns);
    }

    /// Whether `campaign_id` was marked since the last time this was asked (the mark is
    /// cleared).
    pub(crate) fn take_ran_out(&self, campaign_id: i64) -> bool {
        lock(&self.ran_out).remove(&campaign_id)
    }
}

/// `HOSTNAME` (a pod's name), else the kernel's host name, then the pid and a random part.
fn owner_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let host: String = host
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        .take(40)
        .collect();
    format!(
        "{host}-{}-{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Renew every held lease every third of its length, until the store is dropped.
async fn renew_forever(leases: Weak<Leases>, pool: deadpool_postgres::Pool) {
    loop {
        let Some(every) = leases.upgrade().map(|l| l.ttl() / 3) else {
            return;
        };
        tokio::time::sleep(every.max(Duration::from_millis(50))).await;
        let Some(l) = leases.upgrade() else {
            return;
        };
        if let Err(e) = renew(&l, &pool).await {
            tracing::warn!(owner = %l.owner, error = %e, "cannot renew this replica's leases: its contacts are sent only while the leases last");
        }
    }
}

/// One renewal round: every held lease that is still this process's and not expired is
/// extended; the others are dropped (never sent by this process).
pub(super) async fn renew(l: &Leases, pool: &deadpool_postgres::Pool) -> Result<(), StoreError> {
    let snapshot: Vec<(i64, i64)> = lock(&l.held).iter().map(|(id, c)| (*id, c.epoch)).collect();
    if snapshot.is_empty() {
        return Ok(());
    }
    let asked = Instant::now();
    let (ids, epochs): (Vec<i64>, Vec<i64>) = snapshot.iter().copied().unzip();
    let c = pool.get().await?;
    let stmt = c
        .prepare_cached(&format!(
            "UPDATE contacts k SET lease_until = {DB_NOW} + $2
             FROM unnest($3::BIGINT[], $4::BIGINT[]) AS h(id, epoch)
             WHERE k.id = h.id AND k.epoch = h.epoch AND k.lease_owner = $1
               AND k.lease_until > {DB_NOW}
             RETURNING k.id"
        ))
        .await?;
    let rows = c
        .query(&stmt, &[&l.owner, &l.ttl_ms(), &ids, &epochs])
        .await?;
    let renewed: std::collections::HashSet<i64> =
        rows.iter().filter_map(|r| r.try_get(0).ok()).collect();
    let mut lost = 0;
    let mut held = lock(&l.held);
    for (id, epoch) in snapshot {
        match held.get_mut(&id) {
            // Claimed again meanwhile (a new epoch): not this round's business.
            Some(c) if c.epoch != epoch => {}
            Some(c) if renewed.contains(&id) => c.confirmed = asked,
            Some(_) => {
                held.remove(&id);
                lost += 1;
            }
            None => {}
        }
    }
    drop(held);
    if lost > 0 {
        tracing::warn!(
            owner = %l.owner,
            contacts = lost,
            "leases lost (expired or taken over by another replica): those contacts are not sent by this one"
        );
    }
    Ok(())
}
