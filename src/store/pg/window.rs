//! The shared send window (see `store::window`): a slot reserved inside the caller's
//! transaction, and departures told afterwards. Both are one statement, a call of a PL/pgSQL
//! function (schema 20) that locks the action's row in `send_windows`: reservations of one
//! action take turns for the time between the reservation and their transaction's commit, so
//! the reservation is the last statement before the commit.
//!
//! Departures are told by one task per action ([`Windows`]), which takes every report waiting
//! when it goes to the database and tells them in one statement: at the cap's pace each report
//! goes alone, as soon as it comes; when the database is slower than the reports, they share a
//! round trip instead of adding one each to its load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Pool};
use tokio::sync::{mpsc, oneshot};

use super::Pg;
use crate::store::window::{
    spacing, Latency, Slot, DEFAULT_REQUEST_TIMEOUT, HORIZON, UNREPORTED_MARGIN,
};
use crate::store::StoreError;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// This process's side of the shared windows: which actions it shares and at what cap, how
/// long its database takes to reserve a slot ([`Latency`]), its request timeout (which bounds
/// how long its unreported sends count as leaving now), and the tasks that tell departures.
pub struct Windows {
    caps: RwLock<HashMap<String, usize>>,
    latency: Arc<Latency>,
    request_timeout_us: AtomicU64,
    pool: Pool,
    reporters: Mutex<HashMap<String, mpsc::UnboundedSender<Report>>>,
}

/// One send's departure (`None`: its slot given back), and who waits for it to be told.
struct Report {
    slot: i64,
    at: Option<Instant>,
    told: oneshot::Sender<Result<(), String>>,
}

impl Windows {
    pub(crate) fn new(pool: Pool) -> Windows {
        Windows {
            caps: RwLock::new(HashMap::new()),
            latency: Arc::new(Latency::default()),
            request_timeout_us: AtomicU64::new(
                u64::try_from(DEFAULT_REQUEST_TIMEOUT.as_micros()).unwrap_or(u64::MAX),
            ),
            pool,
            reporters: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn share(&self, action: &str, cap: usize) {
        self.caps
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(action.to_string(), cap);
    }

    pub(crate) fn cap(&self, action: &str) -> Option<usize> {
        self.caps
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(action)
            .copied()
    }

    pub(crate) fn set_request_timeout(&self, timeout: Duration) {
        let us = u64::try_from(timeout.as_micros()).unwrap_or(u64::MAX);
        self.request_timeout_us.store(us, Ordering::Relaxed);
    }

    /// How long after its left-by an unreported send of this process may still leave: the
    /// request timeout and the margin.
    fn bound(&self) -> Duration {
        Duration::from_micros(self.request_timeout_us.load(Ordering::Relaxed)) + UNREPORTED_MARGIN
    }

    /// Queue a report for `action`'s task (started on first use, and again if the runtime it
    /// ran on ended).
    fn report(&self, action: &str, report: Report) {
        let mut reporters = self.reporters.lock().unwrap_or_else(|e| e.into_inner());
        let report = match reporters.get(action) {
            Some(tx) => match tx.send(report) {
                Ok(()) => return,
                Err(mpsc::error::SendError(r)) => r,
            },
            None => report,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(tell(self.pool.clone(), action.to_string(), rx));
        // A channel just made, whose receiver the task holds: the send cannot fail.
        let _ = tx.send(report);
        reporters.insert(action.to_string(), tx);
    }
}

/// Reserve a slot for one request of `action` in the caller's transaction, if the store shares
/// `action`'s window (`None` otherwise). Refused with [`StoreError::WindowFull`] when the
/// earliest slot is further ahead than [`HORIZON`]: the caller's transaction must then be
/// rolled back (nothing is written down).
pub async fn reserve<C: GenericClient>(
    c: &C,
    pg: &Pg,
    action: &str,
) -> Result<Option<Slot>, StoreError> {
    let windows = pg.windows();
    let Some(cap) = windows.cap(action) else {
        return Ok(None);
    };
    let stmt = c
        .prepare_cached(
            "SELECT granted, slot, now_us FROM send_window_reserve($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    let hold = windows.latency.hold();
    let asked = Instant::now();
    let row = c
        .query_one(
            &stmt,
            &[
                &action,
                &(cap as i32),
                &micros(spacing()),
                &micros(hold),
                &micros(HORIZON),
                &micros(windows.bound()),
            ],
        )
        .await?;
    let answered = Instant::now();
    let granted: bool = row.try_get(0)?;
    let slot: i64 = row.try_get(1)?;
    let now: i64 = row.try_get(2)?;
    let ahead = Duration::from_micros(u64::try_from(slot - now).unwrap_or(0));
    if !granted {
        // Room within the horizon from then on; counted from the answer, so never early.
        let wait = ahead.saturating_sub(HORIZON);
        return Err(StoreError::WindowFull(answered + wait));
    }
    Ok(Some(Slot {
        action: action.to_string(),
        slot_us: slot,
        hold,
        asked,
        answered,
        ahead,
        latency: windows.latency.clone(),
    }))
}

/// The request of `slot` left at `at` (its left-by becomes the database's clock less how long
/// ago that was), or never reached a connection (`None`: its slot is given back). Returns once
/// the database has it.
pub async fn left(pg: &Pg, slot: &Slot, at: Option<Instant>) -> Result<(), StoreError> {
    let (told, answer) = oneshot::channel();
    pg.windows().report(
        &slot.action,
        Report {
            slot: slot.slot_us,
            at,
            told,
        },
    );
    match answer.await {
        Ok(r) => r.map_err(StoreError::Postgres),
        Err(_) => Err(StoreError::Postgres(
            "the task telling the shared window of departures ended".into(),
        )),
    }
}

/// `action`'s reports, told in batches of whatever is waiting, until every sender is gone.
async fn tell(pool: Pool, action: String, mut rx: mpsc::UnboundedReceiver<Report>) {
    let mut batch = Vec::new();
    while rx.recv_many(&mut batch, usize::MAX).await > 0 {
        let r = tell_batch(&pool, &action, &batch)
            .await
            .map_err(|e| match e {
                StoreError::Postgres(m) => m,
                other => other.to_string(),
            });
        for report in batch.drain(..) {
            let _ = report.told.send(r.clone());
        }
    }
}

async fn tell_batch(pool: &Pool, action: &str, batch: &[Report]) -> Result<(), StoreError> {
    let c = pool.get().await?;
    let stmt = c
        .prepare_cached("SELECT send_window_left($1, $2, $3, $4)")
        .await?;
    let slots: Vec<i64> = batch.iter().map(|r| r.slot).collect();
    // How long ago, measured just before the database reads its clock: never before the real
    // departure.
    let agos: Vec<Option<i64>> = batch
        .iter()
        .map(|r| r.at.map(|at| micros(at.elapsed())))
        .collect();
    c.execute(&stmt, &[&action, &slots, &agos, &micros(spacing())])
        .await?;
    Ok(())
}
